//! Checkpoints: durable snapshots of the whole session state.
//!
//! Recovery rebuilds [`Sessions`] by replaying the log. A checkpoint lets it
//! start from a snapshot instead of LSN 1: load the newest valid checkpoint,
//! then replay the log from its `applied_lsn` on.
//!
//! # On-disk format
//!
//! Checkpoints live in `<journal dir>/checkpoints/`
//! ([`crate::store::layout::checkpoints_dir`]). Each is
//! one file named `{applied_lsn:020}.ckpt` (20 decimal digits, zero padded,
//! then `.ckpt`), where `applied_lsn` is [`Sessions::applied`]: one past the
//! last LSN the state covers. Only names of exactly that shape are
//! checkpoints; everything else in the directory is ignored (a
//! `{name}.tmp` is a checkpoint being written, or one a crash interrupted:
//! see [`sweep_temps`]).
//!
//! A file is a 40-byte header followed by the body. All integers are
//! little-endian.
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 0 | 8 | magic | the ASCII bytes `TJCKPT01` ([`MAGIC`]) |
//! | 8 | 4 | version | `u32`, the body's format version: `2` is written ([`VERSION`]); `1` is still read |
//! | 12 | 4 | reserved | `u32`, `0` |
//! | 16 | 8 | applied_lsn | `u64`, equal to the LSN in the file name |
//! | 24 | 8 | body_len | `u64`, the body's length: the file's length minus 40 |
//! | 32 | 4 | body_crc | `u32`, CRC-32 (IEEE, `crc32fast`) of the body |
//! | 36 | 4 | header_crc | `u32`, CRC-32 of bytes 0..36 of the header |
//! | 40 | body_len | body | the snapshot of [`Sessions`] in that version ([`crate::store::model::snapshot`]) |
//!
//! The body is a format of its own ([`crate::store::model::snapshot`]), not the
//! serde image of the model's structs, so a change to the model cannot
//! turn an old checkpoint into an invalid one.
//!
//! A checkpoint is valid only if every field checks out, the body decodes,
//! and the decoded state's [`Sessions::applied`] equals both `applied_lsn`
//! and the LSN in the file name. [`load_newest`] skips an invalid (damaged)
//! file, says why, and falls back to the next older one. A file whose
//! header verifies but whose version this build does not read (a newer
//! tracejournal wrote it) is not damage: [`load_newest`] refuses with
//! [`Error::OpenRefused`] naming the file and the version, unless told to
//! skip it (salvage).
//!
//! # Writing
//!
//! [`write()`] never exposes a partial file under a checkpoint name: it writes
//! `{name}.tmp`, syncs it, renames it to `{name}` and syncs the directory.
//! A crash leaves either no checkpoint, a stray `.tmp` (ignored by loading,
//! removed by [`sweep_temps`]), or the complete checkpoint.
//!
//! Never: allocate more than the real size of the file being read (the
//! `body_len` field is checked against the file's length before anything is
//! allocated); treat an I/O error as an invalid checkpoint (I/O errors are
//! returned, not skipped).

use crate::error::{Error, Result};
use crate::store::model::{snapshot, Sessions};
use crate::wal::failpoint::{names, Failpoints};
use crate::wal::storage::{OpenMode, Storage};
use crate::wal::Lsn;
use std::io;
use std::path::{Path, PathBuf};

/// The first 8 bytes of every checkpoint file.
pub const MAGIC: [u8; 8] = *b"TJCKPT01";

/// The checkpoint format (body) version this build writes. It reads every
/// version from [`snapshot::OLDEST_BODY_VERSION`] up to this one.
pub const VERSION: u32 = snapshot::BODY_VERSION;

/// The length of the fixed header in bytes.
pub const HEADER_LEN: usize = 40;

/// The extension of a checkpoint file.
const EXTENSION: &str = ".ckpt";

/// The extension of a checkpoint being written.
const TMP_EXTENSION: &str = ".tmp";

/// How many decimal digits the LSN in a file name has.
const NAME_DIGITS: usize = 20;

/// What [`write()`] wrote, or which file [`load_newest`] loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// One past the last LSN the state covers ([`Sessions::applied`]).
    pub applied_lsn: Lsn,
    /// The file's size in bytes, header included.
    pub bytes: u64,
    /// The checkpoint file.
    pub path: PathBuf,
}

/// The newest valid checkpoint, as [`load_newest`] found it.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The session state it holds.
    pub state: Sessions,
    /// Which file it came from.
    pub info: CheckpointInfo,
    /// Newer checkpoint files that were skipped: (file name, why). The
    /// store reads [`Scan::skipped`]; this copy is for tests of
    /// [`load_newest`].
    #[cfg(any(test, feature = "testkit"))]
    pub skipped: Vec<(String, String)>,
}

/// What [`scan`] found: the newest valid checkpoint, if any, and every
/// file it skipped on the way (newest first), with why.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// The newest valid checkpoint.
    pub loaded: Option<Loaded>,
    /// Every checkpoint file skipped, newest first: (file name, why). When
    /// nothing loaded, this is every checkpoint file there is.
    pub skipped: Vec<(String, String)>,
}

/// The file name of the checkpoint whose state has `applied_lsn`.
pub fn file_name(applied_lsn: Lsn) -> String {
    format!("{applied_lsn:0width$}{EXTENSION}", width = NAME_DIGITS)
}

/// The LSN in a checkpoint file name, or `None` if `name` is not exactly 20
/// decimal digits followed by `.ckpt`.
pub fn parse_file_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(EXTENSION)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // 20 digits can exceed u64::MAX; such a name is not a checkpoint.
    digits.parse().ok()
}

/// Encodes the 40-byte header for a body.
fn encode_header(applied_lsn: Lsn, body: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&0u32.to_le_bytes());
    h[16..24].copy_from_slice(&applied_lsn.to_le_bytes());
    h[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
    h[32..36].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    let header_crc = crc32fast::hash(&h[0..36]);
    h[36..40].copy_from_slice(&header_crc.to_le_bytes());
    h
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Lists `dir`; a missing directory lists as empty.
fn list_names(storage: &dyn Storage, dir: &Path) -> Result<Option<Vec<String>>> {
    match storage.list(dir) {
        Ok(names) => Ok(Some(names)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("list checkpoint directory", dir, e)),
    }
}

/// Removes `path`; a file that is already gone counts as removed.
fn remove_if_present(storage: &dyn Storage, path: &Path, op: &'static str) -> Result<()> {
    match storage.remove(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(op, path, e)),
    }
}

/// Writes a checkpoint of `state` into `dir` (the checkpoint directory,
/// created if missing) and makes it durable.
///
/// Steps: encode the body ([`snapshot::encode`]); remove a stale
/// `{name}.tmp`; create `{name}.tmp`; write header and body; `fsync` it;
/// failpoint [`names::CHECKPOINT_BEFORE_RENAME`]; rename it to `{name}`;
/// `fsync` the directory. On an error before the rename the temporary file
/// is removed (best effort). An existing checkpoint of the same LSN is
/// replaced atomically.
pub fn write(
    storage: &dyn Storage,
    dir: &Path,
    state: &Sessions,
    failpoints: &Failpoints,
) -> Result<CheckpointInfo> {
    let applied_lsn = state.applied();
    let name = file_name(applied_lsn);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}{TMP_EXTENSION}"));

    let body = snapshot::encode(state).map_err(|e| {
        Error::io(
            "encode checkpoint",
            &path,
            io::Error::new(io::ErrorKind::InvalidData, e),
        )
    })?;
    let header = encode_header(applied_lsn, &body);

    ensure_dir(storage, dir)?;
    remove_if_present(storage, &tmp, "remove stale checkpoint temp file")?;
    let file = storage
        .open(&tmp, OpenMode::CreateNew)
        .map_err(|e| Error::io("create checkpoint temp file", &tmp, e))?;
    let written = (|| {
        file.write_at(&header, 0)
            .map_err(|e| Error::io("write checkpoint", &tmp, e))?;
        file.write_at(&body, HEADER_LEN as u64)
            .map_err(|e| Error::io("write checkpoint", &tmp, e))?;
        file.sync_all()
            .map_err(|e| Error::io("fsync checkpoint", &tmp, e))?;
        failpoints
            .hit(names::CHECKPOINT_BEFORE_RENAME)
            .map_err(|e| Error::io("rename checkpoint", &tmp, e))?;
        storage
            .rename(&tmp, &path)
            .map_err(|e| Error::io("rename checkpoint", &tmp, e))
    })();
    drop(file);
    if let Err(e) = written {
        // Best effort: a leftover is harmless (ignored, swept later).
        let _ = storage.remove(&tmp);
        return Err(e);
    }
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("fsync checkpoint directory", dir, e))?;
    Ok(CheckpointInfo {
        applied_lsn,
        bytes: (HEADER_LEN + body.len()) as u64,
        path,
    })
}

/// Creates the checkpoint directory if it is missing, durably (the parent
/// directory is synced so the new directory survives a crash).
fn ensure_dir(storage: &dyn Storage, dir: &Path) -> Result<()> {
    match storage.list(dir) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("list checkpoint directory", dir, e)),
    }
    storage
        .create_dir_all(dir)
        .map_err(|e| Error::io("create checkpoint directory", dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        storage
            .sync_dir(parent)
            .map_err(|e| Error::io("fsync journal directory", parent, e))?;
    }
    Ok(())
}

/// Why a checkpoint file is not valid.
type Invalid = String;

/// Reads and verifies the checkpoint at `path`, whose name says `lsn`.
/// `Ok(Err(why))` is an invalid file; `Err` is an I/O error.
#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn load_one(
    storage: &dyn Storage,
    path: &Path,
    lsn: Lsn,
    unreadable: Unreadable,
) -> Result<std::result::Result<(Sessions, u64), Invalid>> {
    let file = storage
        .open(path, OpenMode::Read)
        .map_err(|e| Error::io("open checkpoint", path, e))?;
    let len = file
        .len()
        .map_err(|e| Error::io("stat checkpoint", path, e))?;
    if len < HEADER_LEN as u64 {
        return Ok(Err(format!(
            "file is {len} bytes, shorter than the {HEADER_LEN}-byte header"
        )));
    }
    let mut header = [0u8; HEADER_LEN];
    file.read_at(&mut header, 0)
        .map_err(|e| Error::io("read checkpoint", path, e))?;
    if header[0..8] != MAGIC {
        return Ok(Err("bad magic (not a tracejournal checkpoint)".into()));
    }
    // The header checksum first: a damaged version field is damage, not a
    // version this build cannot read.
    let header_crc = u32_at(&header, 36);
    let computed = crc32fast::hash(&header[0..36]);
    if header_crc != computed {
        return Ok(Err(format!(
            "header checksum mismatch (stored {header_crc:#010x}, computed {computed:#010x})"
        )));
    }
    let version = u32_at(&header, 8);
    if !(snapshot::OLDEST_BODY_VERSION..=VERSION).contains(&version) {
        let why = if version > VERSION {
            format!(
                "format version {version} was written by a newer tracejournal; this build \
                 reads versions {}..={VERSION}",
                snapshot::OLDEST_BODY_VERSION
            )
        } else {
            format!(
                "format version {version} is no longer readable; this build reads versions \
                 {}..={VERSION}",
                snapshot::OLDEST_BODY_VERSION
            )
        };
        if unreadable == Unreadable::Skip {
            return Ok(Err(why));
        }
        return Err(Error::OpenRefused {
            path: path.to_path_buf(),
            reason: format!(
                "checkpoint {}: {why}. Open the store with a tracejournal that reads this \
                 version, or in salvage mode to read what the log still holds",
                path.display()
            ),
        });
    }
    let reserved = u32_at(&header, 12);
    if reserved != 0 {
        return Ok(Err(format!("reserved header field is {reserved}, not 0")));
    }
    let header_lsn = u64_at(&header, 16);
    if header_lsn != lsn {
        return Ok(Err(format!(
            "header says applied LSN {header_lsn}, the file name says {lsn}"
        )));
    }
    // Checked against the real file size before anything is allocated.
    let body_len = u64_at(&header, 24);
    let actual = len - HEADER_LEN as u64;
    if body_len != actual {
        return Ok(Err(format!(
            "header says the body is {body_len} bytes, the file holds {actual}"
        )));
    }
    let Ok(body_len) = usize::try_from(body_len) else {
        return Ok(Err(format!(
            "body of {body_len} bytes does not fit in memory"
        )));
    };
    let mut body = vec![0u8; body_len];
    file.read_at(&mut body, HEADER_LEN as u64)
        .map_err(|e| Error::io("read checkpoint", path, e))?;
    let body_crc = u32_at(&header, 32);
    let computed = crc32fast::hash(&body);
    if body_crc != computed {
        return Ok(Err(format!(
            "body checksum mismatch (stored {body_crc:#010x}, computed {computed:#010x})"
        )));
    }
    let state = match snapshot::decode(version, &body) {
        Ok(state) => state,
        Err(e) => {
            return Ok(Err(format!(
                "body (version {version}) does not decode: {e}"
            )))
        }
    };
    if state.applied() != lsn {
        return Ok(Err(format!(
            "the state covers LSNs up to {}, the header and file name say {lsn}",
            state.applied()
        )));
    }
    Ok(Ok((state, len)))
}

/// What to do with a checkpoint whose header verifies but whose format
/// version this build does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreadable {
    /// Refuse: [`Error::OpenRefused`] naming the file and version.
    Refuse,
    /// Skip it like a damaged file (salvage).
    Skip,
}

/// Loads the newest valid checkpoint in `dir` (the checkpoint directory).
///
/// Files are tried newest (highest LSN) first; an invalid one is recorded
/// in [`Scan::skipped`] and the next older one is tried. `Ok(None)` if
/// the directory is missing or holds no valid checkpoint. An I/O error is
/// returned as such, never taken for an invalid file; a file in a version
/// this build does not read is [`Error::OpenRefused`].
/// (The store opens through [`scan`]; this is for tests and benchmarks.)
#[cfg(any(test, feature = "testkit"))]
pub fn load_newest(storage: &dyn Storage, dir: &Path) -> Result<Option<Loaded>> {
    Ok(scan(storage, dir, Unreadable::Refuse)?.loaded)
}

/// [`load_newest`], also returning every file skipped when none loads, and
/// with a choice for files in a version this build does not read.
/// Reads only: changes nothing on disk.
pub fn scan(storage: &dyn Storage, dir: &Path, unreadable: Unreadable) -> Result<Scan> {
    let mut lsns = list(storage, dir)?;
    lsns.reverse();
    let mut skipped = Vec::new();
    for lsn in lsns {
        let name = file_name(lsn);
        let path = dir.join(&name);
        match load_one(storage, &path, lsn, unreadable)? {
            Ok((state, bytes)) => {
                return Ok(Scan {
                    loaded: Some(Loaded {
                        state,
                        info: CheckpointInfo {
                            applied_lsn: lsn,
                            bytes,
                            path,
                        },
                        #[cfg(any(test, feature = "testkit"))]
                        skipped: skipped.clone(),
                    }),
                    skipped,
                })
            }
            Err(why) => skipped.push((name, why)),
        }
    }
    Ok(Scan {
        loaded: None,
        skipped,
    })
}

/// The LSNs of the well-named checkpoint files in `dir`, ascending (valid
/// or not: only the names are looked at). A missing directory is empty.
pub fn list(storage: &dyn Storage, dir: &Path) -> Result<Vec<Lsn>> {
    let names = list_names(storage, dir)?.unwrap_or_default();
    let mut lsns: Vec<Lsn> = names.iter().filter_map(|n| parse_file_name(n)).collect();
    lsns.sort_unstable();
    lsns.dedup();
    Ok(lsns)
}

/// Removes all but the newest `keep` checkpoint files (by name), then syncs
/// the directory. Returns the removed LSNs, ascending.
pub fn prune(storage: &dyn Storage, dir: &Path, keep: usize) -> Result<Vec<Lsn>> {
    let lsns = list(storage, dir)?;
    let cut = lsns.len().saturating_sub(keep);
    let removed = lsns[..cut].to_vec();
    for &lsn in &removed {
        remove_if_present(storage, &dir.join(file_name(lsn)), "remove old checkpoint")?;
    }
    if !removed.is_empty() {
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync checkpoint directory", dir, e))?;
    }
    Ok(removed)
}

/// Removes every `*.tmp` file in `dir` (checkpoints a crash interrupted
/// before their rename), then syncs the directory if anything was removed.
/// Returns how many were removed. Call it only while no checkpoint is being
/// written.
pub fn sweep_temps(storage: &dyn Storage, dir: &Path) -> Result<usize> {
    let names = list_names(storage, dir)?.unwrap_or_default();
    let mut removed = 0;
    for name in names.iter().filter(|n| n.ends_with(TMP_EXTENSION)) {
        remove_if_present(
            storage,
            &dir.join(name),
            "remove stale checkpoint temp file",
        )?;
        removed += 1;
    }
    if removed > 0 {
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync checkpoint directory", dir, e))?;
    }
    Ok(removed)
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::golden::{GOLDEN_BODY_V1, GOLDEN_BODY_V2};
    use super::*;
    use crate::store::event::{parse_line, Entry};
    use crate::testkit::failpoint::Action;
    use crate::wal::storage::FsStorage;
    use tempfile::TempDir;

    /// A state built by applying events at LSNs `first..first + lines.len()`.
    fn state_from(first: Lsn, lines: &[&str]) -> Sessions {
        let mut state = Sessions::new(first);
        for (i, line) in lines.iter().enumerate() {
            let entry = Entry::from(parse_line(line).unwrap());
            state.apply(first + i as Lsn, &entry);
        }
        state
    }

    fn small_state() -> Sessions {
        state_from(
            1,
            &[
                r#"{"type":"session_start","session":"s1","time":1000,"metadata":{"title":"t"}}"#,
                r#"{"type":"span_start","session":"s1","span":"g1","kind":"generation","name":"gen","time":1001}"#,
                r#"{"type":"span_end","session":"s1","span":"g1","tokens":{"input":3,"output":4},"cost":0.1,"time":1002}"#,
            ],
        )
    }

    fn older_state() -> Sessions {
        state_from(
            1,
            &[r#"{"type":"session_start","session":"s0","time":900}"#],
        )
    }

    fn setup() -> (TempDir, PathBuf) {
        let tmp = TempDir::new().unwrap();
        let dir = crate::store::layout::checkpoints_dir(tmp.path());
        (tmp, dir)
    }

    /// Writes a file with a correct header for `body` under the name of
    /// `name_lsn`, with `header_lsn` in the header.
    fn write_raw(dir: &Path, name_lsn: Lsn, header_lsn: Lsn, body: &[u8]) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let mut bytes = encode_header(header_lsn, body).to_vec();
        bytes.extend_from_slice(body);
        let path = dir.join(file_name(name_lsn));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name(42), "00000000000000000042.ckpt");
        assert_eq!(parse_file_name("00000000000000000042.ckpt"), Some(42));
        assert_eq!(
            parse_file_name(&file_name(u64::MAX)),
            Some(u64::MAX),
            "the largest LSN fits in 20 digits"
        );
        for bad in [
            "0000000000000000042.ckpt",
            "000000000000000000042.ckpt",
            "00000000000000000042.ckpt.tmp",
            "0000000000000000004x.ckpt",
            "+0000000000000000042.ckpt",
            "99999999999999999999.ckpt",
            "00000000000000000042.CKPT",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trip() {
        let (_tmp, dir) = setup();
        let state = small_state();
        assert_eq!(state.applied(), 4);
        assert_eq!(load_newest(&FsStorage, &dir).unwrap().map(|l| l.info), None);
        let info = write(&FsStorage, &dir, &state, &Failpoints::new()).unwrap();
        assert_eq!(info.applied_lsn, 4);
        assert_eq!(info.path, dir.join("00000000000000000004.ckpt"));
        assert_eq!(info.bytes, std::fs::metadata(&info.path).unwrap().len());
        let loaded = load_newest(&FsStorage, &dir).unwrap().unwrap();
        assert_eq!(loaded.state, state);
        assert_eq!(loaded.info, info);
        assert!(loaded.skipped.is_empty());
        assert_eq!(list(&FsStorage, &dir).unwrap(), vec![4]);

        // The header, byte by byte.
        let bytes = std::fs::read(&info.path).unwrap();
        assert_eq!(&bytes[0..8], b"TJCKPT01");
        assert_eq!(bytes[8..12], 2u32.to_le_bytes());
        assert_eq!(bytes[12..16], [0; 4]);
        assert_eq!(bytes[16..24], 4u64.to_le_bytes());
        assert_eq!(bytes[24..32], ((bytes.len() - 40) as u64).to_le_bytes());
        assert_eq!(bytes[32..36], crc32fast::hash(&bytes[40..]).to_le_bytes());
        assert_eq!(bytes[36..40], crc32fast::hash(&bytes[..36]).to_le_bytes());
        assert_eq!(snapshot::decode(2, &bytes[40..]).unwrap(), state);
    }

    #[test]
    fn newest_wins_and_same_lsn_is_replaced() {
        let (_tmp, dir) = setup();
        write(&FsStorage, &dir, &older_state(), &Failpoints::new()).unwrap();
        write(&FsStorage, &dir, &small_state(), &Failpoints::new()).unwrap();
        let loaded = load_newest(&FsStorage, &dir).unwrap().unwrap();
        assert_eq!(loaded.state, small_state());
        // Writing the same LSN again replaces the file.
        write(&FsStorage, &dir, &small_state(), &Failpoints::new()).unwrap();
        assert_eq!(list(&FsStorage, &dir).unwrap(), vec![2, 4]);
    }

    #[test]
    fn every_single_byte_corruption_falls_back() {
        let (_tmp, dir) = setup();
        write(&FsStorage, &dir, &older_state(), &Failpoints::new()).unwrap();
        let newest = write(&FsStorage, &dir, &small_state(), &Failpoints::new()).unwrap();
        let good = std::fs::read(&newest.path).unwrap();
        for i in 0..good.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= mask;
                std::fs::write(&newest.path, &bad).unwrap();
                let loaded = load_newest(&FsStorage, &dir).unwrap().unwrap();
                assert_eq!(loaded.info.applied_lsn, 2, "byte {i} ^ {mask:#x}");
                assert_eq!(loaded.state, older_state());
                assert_eq!(loaded.skipped.len(), 1);
                assert_eq!(loaded.skipped[0].0, "00000000000000000004.ckpt");
            }
        }
        // With no older checkpoint, a corrupt one leaves nothing to load.
        std::fs::remove_file(dir.join(file_name(2))).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&newest.path, &bad).unwrap();
            assert!(load_newest(&FsStorage, &dir).unwrap().is_none(), "byte {i}");
        }
        std::fs::write(&newest.path, &good).unwrap();
        assert!(load_newest(&FsStorage, &dir).unwrap().is_some());
    }

    #[test]
    fn truncated_file_is_skipped() {
        let (_tmp, dir) = setup();
        write(&FsStorage, &dir, &older_state(), &Failpoints::new()).unwrap();
        let newest = write(&FsStorage, &dir, &small_state(), &Failpoints::new()).unwrap();
        let good = std::fs::read(&newest.path).unwrap();
        for len in [0, 1, 39, 40, 41, good.len() / 2, good.len() - 1] {
            std::fs::write(&newest.path, &good[..len]).unwrap();
            let loaded = load_newest(&FsStorage, &dir).unwrap().unwrap();
            assert_eq!(loaded.info.applied_lsn, 2, "truncated to {len}");
            assert_eq!(loaded.skipped.len(), 1);
        }
        // Extra bytes after the body are as wrong as missing ones.
        let mut long = good.clone();
        long.push(b' ');
        std::fs::write(&newest.path, &long).unwrap();
        let loaded = load_newest(&FsStorage, &dir).unwrap().unwrap();
        assert_eq!(loaded.info.applied_lsn, 2);
        assert!(
            loaded.skipped[0].1.contains("the file holds"),
            "{:?}",
            loaded.skipped
        );
    }

    #[test]
    fn huge_body_len_does_not_allocate() {
        let (_tmp, dir) = setup();
        let body = snapshot::encode(&small_state()).unwrap();
        let path = write_raw(&dir, 4, 4, &body);
        let mut bytes = std::fs::read(&path).unwrap();
        // A self-consistent header (valid header CRC) claiming an enormous
        // body: if this were trusted, the allocation would abort the test.
        for claimed in [u64::MAX, 1 << 60, (body.len() as u64) + 1] {
            bytes[24..32].copy_from_slice(&claimed.to_le_bytes());
            let crc = crc32fast::hash(&bytes[..36]);
            bytes[36..40].copy_from_slice(&crc.to_le_bytes());
            std::fs::write(&path, &bytes).unwrap();
            assert!(load_newest(&FsStorage, &dir).unwrap().is_none());
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(HEADER_LEN);
        std::fs::write(&path, &bytes).unwrap();
        assert!(load_newest(&FsStorage, &dir).unwrap().is_none());
    }

    #[test]
    fn lsn_mismatches_are_rejected() {
        let (_tmp, dir) = setup();
        let state = small_state();
        let body = snapshot::encode(&state).unwrap();

        // A valid file copied to another name.
        write_raw(&dir, 5, 4, &body);
        let loaded = load_newest(&FsStorage, &dir).unwrap();
        assert!(loaded.is_none());

        // Header and name agree, the state says otherwise.
        std::fs::remove_file(dir.join(file_name(5))).unwrap();
        write_raw(&dir, 7, 7, &body);
        write_raw(&dir, 4, 4, &body);
        let loaded = load_newest(&FsStorage, &dir).unwrap().unwrap();
        assert_eq!(loaded.info.applied_lsn, 4);
        assert_eq!(loaded.skipped.len(), 1);
        assert_eq!(loaded.skipped[0].0, file_name(7));
        assert!(
            loaded.skipped[0].1.contains("the state covers"),
            "{:?}",
            loaded.skipped
        );
    }

    /// Rewrites the version field of the checkpoint at `path` (with a
    /// valid header checksum, so it is not damage).
    fn set_version(path: &Path, version: u32) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..36]);
        bytes[36..40].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(path, &bytes).unwrap();
    }

    #[test]
    fn unreadable_version_is_a_refusal_not_a_fallback() {
        let (_tmp, dir) = setup();
        write(&FsStorage, &dir, &older_state(), &Failpoints::new()).unwrap();
        let newest = write(&FsStorage, &dir, &small_state(), &Failpoints::new()).unwrap();
        for (version, says) in [
            (3, "written by a newer tracejournal"),
            (u32::MAX, "written by a newer tracejournal"),
            (0, "no longer readable"),
        ] {
            set_version(&newest.path, version);
            let err = load_newest(&FsStorage, &dir).unwrap_err();
            let Error::OpenRefused { path, reason } = &err else {
                panic!("version {version}: {err}");
            };
            assert_eq!(path, &newest.path);
            assert!(reason.contains(says), "{reason}");
            assert!(
                reason.contains(&format!("format version {version}")),
                "{reason}"
            );
            assert!(
                err.to_string().contains("00000000000000000004.ckpt"),
                "{err}"
            );
            // Salvage skips it (and says why) instead.
            let scan = scan(&FsStorage, &dir, Unreadable::Skip).unwrap();
            assert_eq!(scan.loaded.unwrap().info.applied_lsn, 2);
            assert!(scan.skipped[0].1.contains(says), "{:?}", scan.skipped);
        }
        // A flipped bit in the version field is damage (the header checksum
        // says so): skipped for the older one.
        set_version(&newest.path, 2);
        let mut bytes = std::fs::read(&newest.path).unwrap();
        bytes[8] ^= 0x04;
        std::fs::write(&newest.path, &bytes).unwrap();
        let loaded = load_newest(&FsStorage, &dir).unwrap().unwrap();
        assert_eq!(loaded.info.applied_lsn, 2);
        assert!(
            loaded.skipped[0].1.contains("header checksum"),
            "{:?}",
            loaded.skipped
        );
    }

    /// A fixed state for the golden tests: one session with a finished
    /// generation and a client key, one retired session.
    fn golden_state() -> Sessions {
        let mut state = state_from(
            1,
            &[
                r#"{"type":"session_start","session":"s","time":1000,"metadata":{"title":"t"}}"#,
                r#"{"type":"span_start","session":"s","span":"g","kind":"generation","name":"n","time":1001,"key":"k"}"#,
                r#"{"type":"span_end","session":"s","span":"g","tokens":{"input":3,"output":4},"cost":0.5,"time":1002}"#,
                r#"{"type":"session_start","session":"r","time":1003}"#,
            ],
        );
        state.apply(
            5,
            &Entry::Retire {
                session: "r".into(),
            },
        );
        state
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn golden_body_bytes_are_pinned() {
        let bytes = snapshot::encode(&golden_state()).unwrap();
        assert_eq!(
            hex(&bytes),
            GOLDEN_BODY_V2.split_whitespace().collect::<String>(),
            "the checkpoint body encoding changed: bump snapshot::BODY_VERSION and keep a \
             decoder for the old version instead"
        );
        // Deterministic: maps are written sorted, whatever the hash order.
        assert_eq!(snapshot::encode(&golden_state()).unwrap(), bytes);
    }

    #[test]
    fn golden_body_bytes_decode_to_their_state() {
        let state = snapshot::decode(2, &unhex(GOLDEN_BODY_V2)).unwrap();
        assert_eq!(state, golden_state());
        // Spelled out, so a change of the model's apply rules cannot hide a
        // change of the decoder.
        assert_eq!(state.applied(), 6);
        assert_eq!(state.retired().collect::<Vec<_>>(), vec!["r"]);
        assert_eq!(state.key_lsn("s", "k"), Some(2));
        let s = state.get("s").unwrap();
        assert_eq!(s.metadata.title.as_deref(), Some("t"));
        assert_eq!((s.started_at, s.last_time, s.last_lsn), (1000, 1002, 3));
        assert_eq!(s.totals.tokens.total(), 7);
        assert_eq!(s.totals.cost, 0.5);
        assert_eq!(s.spans.len(), 2);
        assert!(state.get("r").is_none());
    }

    #[test]
    fn version_1_json_bodies_still_load() {
        // The body of a version 1 checkpoint of the golden state, as 0.1
        // wrote it (`serde_json` of the model, which had no retired list).
        let (_tmp, dir) = setup();
        let path = write_raw(&dir, 6, 6, GOLDEN_BODY_V1.as_bytes());
        set_version(&path, 1);
        let loaded = load_newest(&FsStorage, &dir).unwrap().unwrap();
        // Version 1 did not remember retired ids.
        let mut expected = golden_state();
        assert_eq!(expected.retired().count(), 1);
        expected.forget_retired_for_tests();
        assert_eq!(loaded.state, expected);
    }

    #[test]
    fn hostile_lengths_inside_the_body_do_not_allocate() {
        let good = snapshot::encode(&golden_state()).unwrap();
        // Every 8-byte window set to a huge length: decoding fails or
        // succeeds, but never allocates the claimed size (that would
        // abort the test) and never panics.
        for at in 0..good.len().saturating_sub(8) {
            for claimed in [u64::MAX, 1 << 40, 1 << 31] {
                let mut bad = good.clone();
                bad[at..at + 8].copy_from_slice(&claimed.to_le_bytes());
                let _ = snapshot::decode(2, &bad);
            }
        }
    }

    #[test]
    fn prune_keeps_the_newest() {
        let (_tmp, dir) = setup();
        let lines = [
            r#"{"type":"session_start","session":"a","time":1}"#,
            r#"{"type":"session_start","session":"b","time":2}"#,
            r#"{"type":"session_start","session":"c","time":3}"#,
            r#"{"type":"session_start","session":"d","time":4}"#,
        ];
        for n in 1..=lines.len() {
            write(
                &FsStorage,
                &dir,
                &state_from(1, &lines[..n]),
                &Failpoints::new(),
            )
            .unwrap();
        }
        std::fs::write(dir.join("unrelated.txt"), b"x").unwrap();
        assert_eq!(list(&FsStorage, &dir).unwrap(), vec![2, 3, 4, 5]);
        assert_eq!(prune(&FsStorage, &dir, 2).unwrap(), vec![2, 3]);
        assert_eq!(list(&FsStorage, &dir).unwrap(), vec![4, 5]);
        assert_eq!(prune(&FsStorage, &dir, 2).unwrap(), Vec::<Lsn>::new());
        assert_eq!(prune(&FsStorage, &dir, 5).unwrap(), Vec::<Lsn>::new());
        assert_eq!(
            load_newest(&FsStorage, &dir)
                .unwrap()
                .unwrap()
                .info
                .applied_lsn,
            5
        );
        assert_eq!(prune(&FsStorage, &dir, 0).unwrap(), vec![4, 5]);
        assert!(dir.join("unrelated.txt").exists());
        assert!(load_newest(&FsStorage, &dir).unwrap().is_none());
        // A missing directory has nothing to prune, list or sweep.
        let missing = dir.join("nope");
        assert_eq!(prune(&FsStorage, &missing, 1).unwrap(), Vec::<Lsn>::new());
        assert_eq!(list(&FsStorage, &missing).unwrap(), Vec::<Lsn>::new());
        assert_eq!(sweep_temps(&FsStorage, &missing).unwrap(), 0);
        assert!(load_newest(&FsStorage, &missing).unwrap().is_none());
    }

    #[test]
    fn temps_are_ignored_and_swept() {
        let (_tmp, dir) = setup();
        write(&FsStorage, &dir, &older_state(), &Failpoints::new()).unwrap();
        // A crash mid-write leaves a temp file, possibly even a complete one.
        let complete = std::fs::read(dir.join(file_name(2))).unwrap();
        std::fs::write(dir.join("00000000000000000009.ckpt.tmp"), &complete).unwrap();
        std::fs::write(dir.join("00000000000000000004.ckpt.tmp"), b"half").unwrap();
        let loaded = load_newest(&FsStorage, &dir).unwrap().unwrap();
        assert_eq!(loaded.info.applied_lsn, 2);
        assert!(loaded.skipped.is_empty());
        assert_eq!(list(&FsStorage, &dir).unwrap(), vec![2]);

        // A stale temp of the same name does not stop a write.
        let info = write(&FsStorage, &dir, &small_state(), &Failpoints::new()).unwrap();
        assert_eq!(info.applied_lsn, 4);
        assert!(!dir.join("00000000000000000004.ckpt.tmp").exists());

        assert_eq!(sweep_temps(&FsStorage, &dir).unwrap(), 1);
        assert_eq!(sweep_temps(&FsStorage, &dir).unwrap(), 0);
        let mut names = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>();
        names.sort();
        assert_eq!(names, vec![file_name(2), file_name(4)]);
    }

    #[test]
    fn failure_before_rename_leaves_no_checkpoint() {
        let (_tmp, dir) = setup();
        let fp = Failpoints::new();
        fp.arm(
            names::CHECKPOINT_BEFORE_RENAME,
            Action::Fail(io::ErrorKind::Other),
        );
        let err = write(&FsStorage, &dir, &small_state(), &fp).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert_eq!(fp.hits(names::CHECKPOINT_BEFORE_RENAME), 1);
        assert!(load_newest(&FsStorage, &dir).unwrap().is_none());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "temp removed");
        fp.release_all();
        write(&FsStorage, &dir, &small_state(), &fp).unwrap();
        assert_eq!(
            load_newest(&FsStorage, &dir).unwrap().unwrap().state,
            small_state()
        );
    }

    /// The file system, except that opening `fail` is denied.
    #[derive(Debug)]
    struct DenyOpen {
        fail: PathBuf,
    }

    impl Storage for DenyOpen {
        fn open(
            &self,
            path: &Path,
            mode: OpenMode,
        ) -> io::Result<Box<dyn crate::wal::storage::StorageFile>> {
            if path == self.fail {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, "denied"));
            }
            FsStorage.open(path, mode)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            FsStorage.rename(from, to)
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            FsStorage.remove(path)
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            FsStorage.sync_dir(dir)
        }
        fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            FsStorage.create_dir_all(dir)
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            FsStorage.list(dir)
        }
        fn lock(&self, path: &Path) -> io::Result<Box<dyn crate::wal::storage::DirLock>> {
            FsStorage.lock(path)
        }
    }

    #[test]
    fn io_errors_are_returned_not_skipped() {
        let (_tmp, dir) = setup();
        write(&FsStorage, &dir, &older_state(), &Failpoints::new()).unwrap();
        let newest = write(&FsStorage, &dir, &small_state(), &Failpoints::new()).unwrap();
        let storage = DenyOpen {
            fail: newest.path.clone(),
        };
        let err = load_newest(&storage, &dir).unwrap_err();
        match err {
            Error::Io { path, source, .. } => {
                assert_eq!(path, newest.path);
                assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
            }
            other => panic!("{other}"),
        }
    }
}
