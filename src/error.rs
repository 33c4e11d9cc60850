//! The store's error type, exported as `tracejournal::Error`: the error of
//! the crate's front door ([`crate::Store`] and everything beside it).
//!
//! Two layers, two types: the journal (`src/wal/`) fails with
//! [`JournalError`], whose remedies are the journal's (recovery modes,
//! reopening the journal); the store wraps it in [`Error::Journal`] through
//! `From`, and fails on its own with the variants below, whose remedies are
//! the store's (salvage, restoring a checkpoint, reopening the store). A
//! poisoned or closed journal is a poisoned or closed store: `From` maps
//! those two onto [`Error::Poisoned`] and [`Error::Closed`], so a caller of
//! the store matches one variant whichever layer noticed first.
//!
//! Every variant says what happened, where, and what the user can do. I/O
//! errors keep the operation and the path, so that "permission denied"
//! never arrives without a file name.

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use crate::wal::error::Error as JournalError;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The journal under the store failed; its message carries the
    /// journal's remedy.
    Journal(JournalError),
    /// An operating-system I/O call on one of the store's own files
    /// (checkpoints, trace files, the crash ledger) failed. Never reported
    /// as corruption.
    Io {
        /// What the store was doing, e.g. `"fsync checkpoint"`.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A record the journal verified holds no entry this store can decode,
    /// so the session state cannot be rebuilt past it.
    Corruption {
        /// The file holding the record.
        file: PathBuf,
        /// Byte offset of the record within `file`.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// An earlier write, sync or compaction failed; nothing is acknowledged
    /// after such a failure. Reopen the store (which recovers it) to
    /// continue.
    Poisoned {
        /// The failure that poisoned the store.
        cause: String,
    },
    /// The store was closed; no more events are accepted.
    Closed,
    /// An event was refused before anything was written (for a batch:
    /// none of its events was written).
    InvalidEvent {
        /// Index of the event within its batch (0 for a single event).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// No session has this id.
    UnknownSession(String),
    /// The store refused to open, and changed nothing on disk: opening
    /// would silently lose sessions (the log no longer starts at LSN 1 and
    /// no checkpoint covers the gap), or a checkpoint is in a format this
    /// build cannot read. The reason names every file involved and what
    /// the user can do.
    OpenRefused {
        /// The store directory or the checkpoint file.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
}

impl From<JournalError> for Error {
    fn from(e: JournalError) -> Error {
        match e {
            JournalError::Poisoned { cause } => Error::Poisoned { cause },
            JournalError::Closed => Error::Closed,
            other => Error::Journal(other),
        }
    }
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
            Error::Journal(e) => Error::Journal(e.duplicate()),
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
            Error::Closed => Error::Closed,
            Error::InvalidEvent { index, reason } => Error::InvalidEvent {
                index: *index,
                reason: reason.clone(),
            },
            Error::UnknownSession(id) => Error::UnknownSession(id.clone()),
            Error::OpenRefused { path, reason } => Error::OpenRefused {
                path: path.clone(),
                reason: reason.clone(),
            },
        }
    }

    /// True if this error means the storage ran out of space (in the
    /// journal or in one of the store's own files).
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Journal(e) => e.is_storage_full(),
            Error::Io { source, .. } => source.kind() == io::ErrorKind::StorageFull,
            _ => false,
        }
    }

    /// The journal's error, if the journal is where this failed.
    pub fn as_journal(&self) -> Option<&JournalError> {
        match self {
            Error::Journal(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Journal(e) => e.fmt(f),
            Error::Io { op, path, source } => {
                write!(f, "I/O error during {op} on {}: {source}", path.display())
            }
            Error::Corruption {
                file,
                offset,
                reason,
            } => write!(
                f,
                "store entry unreadable in {} at byte offset {offset}: {reason} \
                 (the journal verified its checksum, so it was written by a different \
                 build or by a bug: open the store with the build that wrote it, or \
                 restore the store directory from a copy)",
                file.display()
            ),
            Error::Poisoned { cause } => write!(
                f,
                "store stopped accepting events after an earlier failure ({cause}); \
                 nothing after it was acknowledged; reopen the store to recover"
            ),
            Error::Closed => write!(f, "store is closed"),
            Error::InvalidEvent { index, reason } => {
                write!(f, "event {index} rejected, nothing written: {reason}")
            }
            Error::UnknownSession(id) => write!(f, "no session has the id {id:?}"),
            Error::OpenRefused { path, reason } => write!(
                f,
                "refusing to open the store ({}): {reason}; nothing on disk was changed",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent: Display already shows the journal's message.
            Error::Journal(e) => std::error::Error::source(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each layer suggests its own remedies: a journal corruption the
    /// recovery modes, a store entry the store's (not a journal mode).
    #[test]
    fn each_layer_names_its_own_remedies() {
        let journal = JournalError::Corruption {
            file: "seg".into(),
            offset: 64,
            reason: "bad checksum".into(),
        };
        assert!(journal.to_string().contains("RecoveryMode::PointInTime"));
        let wrapped = Error::from(journal);
        assert!(matches!(
            wrapped,
            Error::Journal(JournalError::Corruption { .. })
        ));
        assert!(wrapped.to_string().contains("RecoveryMode::PointInTime"));
        let store = Error::Corruption {
            file: "seg".into(),
            offset: 64,
            reason: "LSN 3: unknown entry".into(),
        };
        let msg = store.to_string();
        assert!(!msg.contains("RecoveryMode"), "{msg}");
        assert!(msg.contains("restore the store directory"), "{msg}");
    }

    /// A poisoned or closed journal is a poisoned or closed store; other
    /// journal errors keep their variant inside `Error::Journal`.
    #[test]
    fn from_journal_maps_poison_and_close_onto_the_store() {
        let poisoned = Error::from(JournalError::Poisoned {
            cause: "EIO".into(),
        });
        assert!(matches!(poisoned, Error::Poisoned { ref cause } if cause == "EIO"));
        assert!(matches!(Error::from(JournalError::Closed), Error::Closed));
        let full = Error::from(JournalError::io(
            "write segment",
            "seg",
            io::Error::from(io::ErrorKind::StorageFull),
        ));
        assert!(full.is_storage_full());
        assert!(full.as_journal().is_some_and(JournalError::is_storage_full));
        assert!(full.duplicate().is_storage_full());
    }
}
