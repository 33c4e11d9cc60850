//! Where the store is: `--dir`, else `$TRACEJOURNAL_DIR`, else the per-user
//! data directory, found from `HOME` and `XDG_DATA_HOME` without a
//! dependency.

use crate::Cli;
use clap::CommandFactory;
use std::path::PathBuf;

/// The environment variable naming the store's directory when `--dir` is
/// not given.
pub const DIR_VARIABLE: &str = "TRACEJOURNAL_DIR";

/// The store's directory: `--dir`, else `$TRACEJOURNAL_DIR`, else the
/// per-user default ([`default_dir`]). A usage error (exit code 2) if none
/// can be found (no `HOME`).
pub(crate) fn store_dir(cli: &Cli) -> PathBuf {
    let from_env = std::env::var_os(DIR_VARIABLE).filter(|v| !v.is_empty());
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty());
    let xdg = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty());
    let found = cli
        .dir
        .clone()
        .or_else(|| from_env.map(PathBuf::from))
        .or_else(|| default_dir(home.map(PathBuf::from), xdg.map(PathBuf::from)));
    match found {
        Some(dir) => dir,
        None => Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                format!(
                    "no store directory: give --dir <DIR> or set {DIR_VARIABLE} \
                     (HOME is not set, so there is no default)"
                ),
            )
            .exit(),
    }
}

/// The per-user default store directory, from `HOME` and `XDG_DATA_HOME`:
/// `$XDG_DATA_HOME/tracejournal` if that is an absolute path (the XDG Base
/// Directory rule: a relative one is ignored), else
/// `$HOME/.local/share/tracejournal`; on macOS
/// `$HOME/Library/Application Support/tracejournal`. `None` without a home.
pub(crate) fn default_dir(
    home: Option<PathBuf>,
    xdg_data_home: Option<PathBuf>,
) -> Option<PathBuf> {
    if cfg!(target_os = "macos") {
        return home.map(|h| h.join("Library/Application Support/tracejournal"));
    }
    match xdg_data_home {
        Some(xdg) if xdg.is_absolute() => Some(xdg.join("tracejournal")),
        _ => home.map(|h| h.join(".local/share/tracejournal")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_follows_xdg_data_home_then_home() {
        let home = Some(PathBuf::from("/home/u"));
        let xdg = Some(PathBuf::from("/data"));
        let relative = Some(PathBuf::from("data"));
        if cfg!(target_os = "macos") {
            let mac = PathBuf::from("/home/u/Library/Application Support/tracejournal");
            assert_eq!(default_dir(home.clone(), xdg), Some(mac));
        } else {
            assert_eq!(
                default_dir(home.clone(), xdg.clone()),
                Some(PathBuf::from("/data/tracejournal"))
            );
            assert_eq!(
                default_dir(None, xdg),
                Some(PathBuf::from("/data/tracejournal"))
            );
            assert_eq!(
                default_dir(home.clone(), relative),
                Some(PathBuf::from("/home/u/.local/share/tracejournal"))
            );
            assert_eq!(
                default_dir(home, None),
                Some(PathBuf::from("/home/u/.local/share/tracejournal"))
            );
        }
        assert_eq!(default_dir(None, None), None);
    }
}
