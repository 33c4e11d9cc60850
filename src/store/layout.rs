//! Where every file of a store directory lives. The one module that spells
//! the store's directory and file names; every other module asks it.
//!
//! ```text
//! LOCK                    the journal's directory lock      (wal)
//! <20 digits>.seg[...]    segments, spares, temps, .broken  (wal)
//! crash.ledger            crash markers written directly    (store/ledger)
//! checkpoints/<lsn>.ckpt  checkpoints                       (store/checkpoint)
//! traces/<name>.json      one trace file per session        (store/publish)
//! ```

use std::path::{Path, PathBuf};

pub use super::names::{file_name as trace_file_name, is_trace_file_name};
pub use crate::wal::journal::LOCK_FILE;
pub use crate::wal::segment::{
    file_name as segment_file_name, parse_file_name as parse_segment_file_name,
};

/// The subdirectory of a store directory holding trace files.
pub const TRACES_DIR: &str = "traces";

/// The subdirectory of a store directory holding checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// The crash ledger's file name, in the store directory.
pub const LEDGER_FILE: &str = "crash.ledger";

/// The trace-file directory of the store in `dir`.
pub fn traces_dir(dir: &Path) -> PathBuf {
    dir.join(TRACES_DIR)
}

/// The checkpoint directory of the store in `dir`.
pub fn checkpoints_dir(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINTS_DIR)
}

/// The crash ledger of the store in `dir`.
pub fn ledger_path(dir: &Path) -> PathBuf {
    dir.join(LEDGER_FILE)
}
