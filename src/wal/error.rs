//! The journal's error type, exported as `tracejournal::JournalError`.
//!
//! Every variant says what happened, where, and (where it helps) what the
//! user can do about it, in the journal's own terms: a corrupt segment
//! suggests the recovery modes, a poisoned journal suggests reopening it.
//! The store wraps this type ([`crate::Error::Journal`]) and adds its own
//! remedies. I/O errors keep the operation and the path, so that
//! "permission denied" never arrives without a file name.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Result alias used throughout the journal.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the journal (`src/wal/`).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed. Never reported as corruption.
    Io {
        /// What the engine was doing, e.g. `"fdatasync segment"`.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Bytes on disk fail verification in a place where a torn tail is not
    /// a possible explanation (or the recovery mode forbids repairing it).
    Corruption {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the first bad byte within `file`.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// An earlier write or sync failed; nothing is acknowledged after such a
    /// failure. Reopen the journal (which recovers it) to continue.
    Poisoned {
        /// The failure that poisoned the journal.
        cause: String,
    },
    /// The append queue stayed full for the whole configured timeout.
    /// Nothing was written; the caller may retry.
    Busy {
        /// How long the append waited.
        waited: Duration,
    },
    /// A record is larger than the configured maximum record size.
    RecordTooLarge {
        /// Index of the record within its batch (0 for a single append).
        index: usize,
        /// Its payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A record was rejected before anything was written.
    InvalidRecord {
        /// Index of the record within its batch (0 for a single append).
        index: usize,
        /// Why.
        reason: String,
    },
    /// Another process (or another `Journal` in this process) has the
    /// directory open.
    Locked {
        /// The journal directory.
        dir: PathBuf,
    },
    /// The journal was closed; no more appends are accepted.
    Closed,
    /// The options do not make sense together.
    InvalidOptions(String),
    /// A requested LSN is outside the readable range.
    LsnOutOfRange {
        /// The LSN asked for.
        lsn: u64,
        /// The first LSN still in the log.
        first: u64,
        /// One past the last readable LSN.
        end: u64,
    },
}

impl Error {
    /// Builds an [`Error::Io`] with context.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// A copy of this error, for handing one failure to many waiters
    /// (`io::Error` is not `Clone`: its kind and message are kept).
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Io { op, path, source } => Error::Io {
                op,
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corruption {
                file,
                offset,
                reason,
            } => Error::Corruption {
                file: file.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            Error::Poisoned { cause } => Error::Poisoned {
                cause: cause.clone(),
            },
            Error::Busy { waited } => Error::Busy { waited: *waited },
            Error::RecordTooLarge { index, len, max } => Error::RecordTooLarge {
                index: *index,
                len: *len,
                max: *max,
            },
            Error::InvalidRecord { index, reason } => Error::InvalidRecord {
                index: *index,
                reason: reason.clone(),
            },
            Error::Locked { dir } => Error::Locked { dir: dir.clone() },
            Error::Closed => Error::Closed,
            Error::InvalidOptions(s) => Error::InvalidOptions(s.clone()),
            Error::LsnOutOfRange { lsn, first, end } => Error::LsnOutOfRange {
                lsn: *lsn,
                first: *first,
                end: *end,
            },
        }
    }

    /// True if this error means the storage ran out of space.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => {
                write!(f, "I/O error during {op} on {}: {source}", path.display())
            }
            Error::Corruption {
                file,
                offset,
                reason,
            } => write!(
                f,
                "corruption in {} at byte offset {offset}: {reason} \
                 (open with RecoveryMode::PointInTime or SkipCorrupt to salvage)",
                file.display()
            ),
            Error::Poisoned { cause } => write!(
                f,
                "journal is poisoned by an earlier failure ({cause}); \
                 nothing after it was acknowledged; reopen the journal to recover"
            ),
            Error::Busy { waited } => write!(
                f,
                "append queue full for {} ms; nothing was written, retry later",
                waited.as_millis()
            ),
            Error::RecordTooLarge { index, len, max } => write!(
                f,
                "record {index} is {len} bytes, larger than the maximum record size of {max} bytes"
            ),
            Error::InvalidRecord { index, reason } => {
                write!(f, "record {index} rejected: {reason}")
            }
            Error::Locked { dir } => write!(
                f,
                "journal directory {} is already open in another process or handle \
                 (it holds the lock on {}/LOCK)",
                dir.display(),
                dir.display()
            ),
            Error::Closed => write!(f, "journal is closed"),
            Error::InvalidOptions(why) => write!(f, "invalid options: {why}"),
            Error::LsnOutOfRange { lsn, first, end } => write!(
                f,
                "LSN {lsn} is not readable: the log holds LSNs {first} up to (not including) {end}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
