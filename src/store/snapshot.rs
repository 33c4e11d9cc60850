//! The session store as a reader sees it, beside a writer, without changing
//! a byte: [`StoreSnapshot`], built on [`ReadOnlyJournal`] (see
//! `wal/readonly.rs` for the rules every read-only open follows).
//!
//! [`StoreSnapshot::open`] loads the newest checkpoint, replays the log
//! after it and applies the crash ledger's markers in memory. It writes no
//! `Opened` entry, marks no orphan, sweeps no file, creates no
//! `checkpoints/` directory and leaves the crash ledger where it is.

use crate::error::{Error, JournalError, Result};
use crate::store::checkpoint::{self, Unreadable};
use crate::store::event::{Entry, ENTRY_KIND};
use crate::store::layout;
use crate::store::ledger::Ledger;
use crate::store::model::{Session, Sessions};
use crate::store::names;
use crate::store::render;
use crate::store::{self, check_coverage, SessionSummary, StoreOptions};
use crate::wal::reader::LogRecord;
use crate::wal::readonly::{is_not_found, ReadOnlyJournal, OPEN_ATTEMPTS};
use crate::wal::recovery::RecoveryReport;
use crate::wal::segment;
use crate::wal::Lsn;
use std::path::{Path, PathBuf};

/// What [`StoreSnapshot::open`] found. Nothing was changed on disk.
#[derive(Clone, Debug, Default)]
pub struct SnapshotReport {
    /// The journal's dry-run recovery: where reading stopped
    /// (`truncated`, nothing cut), temporary files present.
    pub journal: RecoveryReport,
    /// The checkpoint loaded (its LSN), if any.
    pub checkpoint: Option<Lsn>,
    /// Checkpoints skipped as invalid, with why.
    pub checkpoints_skipped: Vec<(String, String)>,
    /// Salvaging only: the LSNs lost between the newest usable checkpoint
    /// and the start of the log (their sessions are missing).
    pub missing: Option<std::ops::Range<Lsn>>,
    /// Log entries replayed after the checkpoint.
    pub replayed: u64,
    /// Crash markers found in the crash ledger (applied in memory; the
    /// ledger is left for the writer's next open).
    pub ledger_markers: usize,
    /// Sessions in the snapshot.
    pub sessions: usize,
}

/// The session store as a reader sees it (see the module docs): the state
/// of every session, from the newest checkpoint and the log, kept current
/// by [`StoreSnapshot::refresh`].
#[derive(Debug)]
pub struct StoreSnapshot {
    dir: PathBuf,
    traces: PathBuf,
    journal: ReadOnlyJournal,
    sessions: Sessions,
}

/// A committed store entry, as [`StoreSnapshot::refresh`] returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedEntry {
    /// Its LSN.
    pub lsn: Lsn,
    /// The entry.
    pub entry: Entry,
}

impl StoreSnapshot {
    /// Opens the store in `dir` for reading only: no lock, no write of any
    /// byte (see the module docs). Of `options`, only the journal's storage
    /// and recovery mode matter.
    ///
    /// If the log does not start at LSN 1 and no checkpoint covers the
    /// entries before it, this fails with [`Error::Corruption`] naming the
    /// checkpoint files: a reader never shows a partial store.
    pub fn open(
        dir: impl AsRef<Path>,
        options: &StoreOptions,
    ) -> Result<(StoreSnapshot, SnapshotReport)> {
        let dir = dir.as_ref();
        let mut attempts = 0;
        loop {
            match StoreSnapshot::try_open(dir, options) {
                // A checkpoint was pruned, or segments removed, mid-open.
                Err(e)
                    if (e.as_journal().is_some_and(|j| {
                        is_not_found(j) || matches!(j, JournalError::LsnOutOfRange { .. })
                    }) || matches!(&e, Error::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound))
                        && attempts < OPEN_ATTEMPTS =>
                {
                    attempts += 1
                }
                other => return other,
            }
        }
    }

    fn try_open(dir: &Path, options: &StoreOptions) -> Result<(StoreSnapshot, SnapshotReport)> {
        let (journal, journal_report) = ReadOnlyJournal::open(dir, &options.journal)?;
        let storage = journal.storage();
        let mut report = SnapshotReport {
            journal: journal_report,
            ..SnapshotReport::default()
        };
        let ckpt_dir = layout::checkpoints_dir(dir);
        // The same rules as `Store::open`: a gap no checkpoint covers, or a
        // checkpoint in a version this build cannot read, is a refusal
        // unless salvaging; a salvaged snapshot starts after the gap.
        let unreadable = if options.salvage {
            Unreadable::Skip
        } else {
            Unreadable::Refuse
        };
        let scan = checkpoint::scan(&*storage, &ckpt_dir, unreadable)?;
        if !options.salvage {
            check_coverage(&scan, journal.first_lsn(), &ckpt_dir)?;
        }
        report.checkpoints_skipped = scan.skipped;
        let mut sessions = match scan.loaded {
            Some(loaded) => {
                report.checkpoint = Some(loaded.info.applied_lsn);
                loaded.state
            }
            None => Sessions::new(1),
        };
        if sessions.applied() < journal.first_lsn() {
            report.missing = Some(sessions.applied()..journal.first_lsn());
            sessions.skip(journal.first_lsn() - 1);
        }
        // The checkpoint may be newer than our look at the log: catch up.
        while sessions.applied() > journal.next_lsn() {
            if journal.refresh()?.is_empty() {
                return Err(Error::Journal(JournalError::LsnOutOfRange {
                    lsn: sessions.applied(),
                    first: journal.first_lsn(),
                    end: journal.next_lsn(),
                }));
            }
        }
        let mut snapshot = StoreSnapshot {
            dir: dir.to_path_buf(),
            traces: layout::traces_dir(dir),
            journal,
            sessions,
        };
        let from = snapshot
            .sessions
            .applied()
            .max(snapshot.journal.first_lsn());
        let mut replayed = 0;
        for record in snapshot.journal.read_from(from)? {
            if snapshot.apply(&record?)?.is_some() {
                replayed += 1;
            }
        }
        report.replayed = replayed;
        let ledger = Ledger::new(storage, dir).read()?;
        report.ledger_markers = ledger.len();
        for entry in &ledger {
            if let Entry::Event(event) = entry {
                snapshot.sessions.apply_out_of_band(event);
            }
        }
        report.sessions = snapshot.sessions.len();
        Ok((snapshot, report))
    }

    /// Applies one log record; returns its entry if it is a store entry.
    fn apply(&mut self, record: &LogRecord) -> Result<Option<Entry>> {
        if record.kind != ENTRY_KIND {
            self.sessions.skip(record.lsn);
            return Ok(None);
        }
        let entry = Entry::decode(&record.payload).map_err(|e| Error::Corruption {
            file: self.dir.join(segment::file_name(record.segment)),
            offset: record.offset,
            reason: format!("LSN {}: {e}", record.lsn),
        })?;
        self.sessions.apply(record.lsn, &entry);
        Ok(Some(entry))
    }

    /// Reads what the writer committed since the last look, applies it, and
    /// returns the store entries in LSN order (empty if nothing new). Fails
    /// with [`JournalError::LsnOutOfRange`] (in [`Error::Journal`]) if the entries it needs were compacted
    /// into a checkpoint before it could read them: open a new snapshot.
    pub fn refresh(&mut self) -> Result<Vec<CommittedEntry>> {
        let mut out = Vec::new();
        loop {
            let records = self.journal.refresh()?;
            if records.is_empty() {
                return Ok(out);
            }
            for record in &records {
                if let Some(entry) = self.apply(record)? {
                    out.push(CommittedEntry {
                        lsn: record.lsn,
                        entry,
                    });
                }
            }
        }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The journal under the snapshot.
    pub fn journal(&self) -> &ReadOnlyJournal {
        &self.journal
    }

    /// One past the last LSN applied.
    pub fn applied_lsn(&self) -> Lsn {
        self.sessions.applied()
    }

    /// Summaries of every session, newest first (as [`crate::store::Store::sessions`]).
    pub fn sessions(&self) -> Vec<SessionSummary> {
        store::summaries(self.sessions.iter(), &self.traces)
    }

    /// The rendering of session `id` as of this snapshot: the bytes its
    /// trace file holds once the writer has published this state.
    pub fn session(&self, id: &str) -> Option<Vec<u8>> {
        self.sessions.get(id).map(render::render)
    }

    /// Session `id`'s state.
    pub fn session_state(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// Where session `id`'s trace file is (or will be).
    pub fn trace_path(&self, id: &str) -> PathBuf {
        self.traces.join(names::file_name(id))
    }

    /// The whole state.
    pub fn state(&self) -> &Sessions {
        &self.sessions
    }
}
