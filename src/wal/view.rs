//! [`LogView`]: a read-only view of a journal that another component owns
//! the writing of (the session store). It can read and measure the log
//! but never append, sync or remove: a raw append past the owner would
//! give it an LSN it never hears of.

use crate::wal::error::Result;
use crate::wal::journal::Journal;
use crate::wal::reader::Reader;
use crate::wal::Lsn;
use std::path::Path;

/// A read-only view of a journal: the LSNs, the records, the size. Got from
/// [`crate::Store::log`]; it cannot append (only the store writes its log,
/// so the store's sequencer hears of every LSN).
#[derive(Clone, Copy)]
pub struct LogView<'a> {
    journal: &'a Journal,
}

impl std::fmt::Debug for LogView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogView")
            .field("dir", &self.journal.dir())
            .finish()
    }
}

impl<'a> LogView<'a> {
    /// A view of `journal`.
    pub(crate) fn new(journal: &'a Journal) -> LogView<'a> {
        LogView { journal }
    }

    /// The journal directory.
    pub fn dir(&self) -> &'a Path {
        self.journal.dir()
    }

    /// Reads committed (written) records from `lsn` on (see
    /// [`Journal::read_from`]).
    pub fn read_from(&self, lsn: Lsn) -> Result<Reader> {
        self.journal.read_from(lsn)
    }

    /// The LSN the next record will get (one past the last written).
    pub fn next_lsn(&self) -> Lsn {
        self.journal.next_lsn()
    }

    /// One past the last LSN known durable.
    pub fn durable_lsn(&self) -> Lsn {
        self.journal.durable_lsn()
    }

    /// The first LSN still in the log.
    pub fn first_lsn(&self) -> Lsn {
        self.journal.first_lsn()
    }

    /// Total size in bytes of the segment files now in the log (see
    /// [`Journal::segment_bytes`]).
    pub fn segment_bytes(&self) -> u64 {
        self.journal.segment_bytes()
    }

    /// Why the journal is poisoned, if it is.
    pub fn poisoned(&self) -> Option<String> {
        self.journal.poisoned()
    }
}
