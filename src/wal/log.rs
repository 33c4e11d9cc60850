//! The log as readers see it: which segments exist, how far each is
//! written, what is durable, and whether the journal is poisoned.
//!
//! The writer is the only thread that adds to this state; readers and
//! appenders only look. The one other change is segment removal
//! ([`crate::Journal::remove_segments_before`]), which takes sealed segments
//! off the *front* of the list. Each segment's `end` is published (Release)
//! after the bytes below it were written, so a reader that loads it
//! (Acquire) and maps the file sees whole records below it.

use crate::wal::frame::SegmentId;
use crate::wal::storage::StorageFile;
use crate::wal::Lsn;
use parking_lot::{Mutex, RwLock};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// One segment of the log.
pub struct SegmentMeta {
    /// Number and salt.
    pub id: SegmentId,
    /// LSN of its first record.
    pub first_lsn: Lsn,
    /// Its path.
    pub path: PathBuf,
    /// The open file.
    pub file: Arc<dyn StorageFile>,
    /// End of the written records (an offset). Grows while the segment is
    /// active; fixed once sealed.
    pub end: AtomicU64,
    /// Byte ranges skipped by `SkipCorrupt` recovery.
    pub skips: Vec<(u64, u64)>,
    /// The file's size when it was opened or created. Segments are
    /// preallocated to full size and never grow, so this is the space the
    /// segment takes on disk, not the bytes of its records.
    pub capacity: u64,
}

/// Told once the journal is poisoned: the first LSN that was assigned to an
/// append and will never be acknowledged (every LSN below it was
/// acknowledged), and the cause. See [`LogState::on_poison`].
pub type PoisonHook = Box<dyn Fn(Lsn, &str) + Send + Sync>;

/// Shared, read-mostly state of the log.
pub struct LogState {
    segments: RwLock<Vec<Arc<SegmentMeta>>>,
    /// One past the last LSN written to the OS.
    written: AtomicU64,
    /// One past the last LSN made durable by `fdatasync`.
    durable: AtomicU64,
    poisoned: AtomicBool,
    poison_cause: Mutex<Option<String>>,
    /// See [`LogState::failed_from`]; `u64::MAX` while not poisoned.
    failed_from: AtomicU64,
    /// Who hears of the poisoning.
    hooks: Mutex<Vec<PoisonHook>>,
}

impl LogState {
    /// State for a log whose segments are `segments` and whose records up
    /// to (not including) `next_lsn` are durable.
    pub fn new(segments: Vec<Arc<SegmentMeta>>, next_lsn: Lsn) -> LogState {
        LogState {
            segments: RwLock::new(segments),
            written: AtomicU64::new(next_lsn),
            durable: AtomicU64::new(next_lsn),
            poisoned: AtomicBool::new(false),
            poison_cause: Mutex::new(None),
            failed_from: AtomicU64::new(u64::MAX),
            hooks: Mutex::new(Vec::new()),
        }
    }

    /// A snapshot of the segment list.
    pub fn segments(&self) -> Vec<Arc<SegmentMeta>> {
        self.segments.read().clone()
    }

    /// Adds a new active segment (after rotation).
    pub fn push_segment(&self, meta: Arc<SegmentMeta>) {
        self.segments.write().push(meta);
    }

    /// Takes the oldest segment off the list if it is segment `number` and
    /// not the last (active) one, and returns it. `None` (nothing changed)
    /// otherwise. Holds the write lock only for the edit.
    ///
    /// Readers that hold the returned segment keep reading it: its file
    /// stays open for as long as the `Arc` lives.
    pub fn remove_first_segment(&self, number: u64) -> Option<Arc<SegmentMeta>> {
        let mut segments = self.segments.write();
        if segments.len() < 2 || segments[0].id.number != number {
            return None;
        }
        Some(segments.remove(0))
    }

    /// Puts back a segment taken off by [`LogState::remove_first_segment`]
    /// (its file could not be removed). Only valid if nothing else was
    /// removed since, which the journal's removal lock ensures.
    pub fn restore_first_segment(&self, meta: Arc<SegmentMeta>) {
        let mut segments = self.segments.write();
        debug_assert!(segments
            .first()
            .is_none_or(|s| s.id.number > meta.id.number));
        segments.insert(0, meta);
    }

    /// Total size of the segment files in the log: the sum of their
    /// [`SegmentMeta::capacity`].
    pub fn segment_bytes(&self) -> u64 {
        self.segments.read().iter().map(|s| s.capacity).sum()
    }

    /// One past the last LSN written.
    pub fn written_lsn(&self) -> Lsn {
        self.written.load(Ordering::Acquire)
    }

    /// One past the last durable LSN.
    pub fn durable_lsn(&self) -> Lsn {
        self.durable.load(Ordering::Acquire)
    }

    /// The first LSN still in the log.
    pub fn first_lsn(&self) -> Lsn {
        self.segments
            .read()
            .first()
            .map_or_else(|| self.written_lsn(), |s| s.first_lsn)
    }

    /// Records that LSNs below `lsn` are written.
    pub fn set_written(&self, lsn: Lsn) {
        self.written.store(lsn, Ordering::Release);
    }

    /// Records that LSNs below `lsn` are durable.
    pub fn set_durable(&self, lsn: Lsn) {
        self.durable.store(lsn, Ordering::Release);
    }

    /// Marks the journal poisoned by `cause` (the first cause wins), and
    /// records that no LSN at or above `failed_from` will ever be
    /// acknowledged from now on while every one below it was (the lowest
    /// value given wins). Then tells every hook ([`LogState::on_poison`]).
    ///
    /// The writer calls this before it resolves the failed group's tickets,
    /// and assigns no LSN afterwards.
    pub fn poison(&self, cause: String, failed_from: Lsn) {
        let cause = {
            let mut slot = self.poison_cause.lock();
            slot.get_or_insert(cause).clone()
        };
        self.failed_from.fetch_min(failed_from, Ordering::AcqRel);
        self.poisoned.store(true, Ordering::Release);
        let from = self.failed_from.load(Ordering::Acquire);
        for hook in self.hooks.lock().iter() {
            hook(from, &cause);
        }
    }

    /// Once poisoned: the first LSN that was assigned to an append and not
    /// acknowledged. Every LSN below it was acknowledged (its appender got
    /// `Ok`); appends at or above it failed or were never assigned, except
    /// that a `Buffered` or `None` append of the failed group may have
    /// been acknowledged above it (its record was written, or sequenced,
    /// before the failure). `None` while not poisoned.
    pub fn failed_from(&self) -> Option<Lsn> {
        match self.failed_from.load(Ordering::Acquire) {
            u64::MAX => None,
            lsn => Some(lsn),
        }
    }

    /// Calls `hook` when the journal is poisoned (at once if it already
    /// is), with [`LogState::failed_from`] and the cause. A hook may be
    /// called more than once, with the same or a lower LSN; it runs on the
    /// thread that poisons (the writer) and must not block.
    pub fn on_poison(&self, hook: PoisonHook) {
        let mut hooks = self.hooks.lock();
        // Checked under the hooks' lock: a poisoning after this check calls
        // the hook from the list.
        if let (Some(from), Some(cause)) = (self.failed_from(), self.poisoned()) {
            hook(from, &cause);
        }
        hooks.push(hook);
    }

    /// The poisoning cause, if poisoned.
    pub fn poisoned(&self) -> Option<String> {
        if !self.poisoned.load(Ordering::Acquire) {
            return None;
        }
        self.poison_cause.lock().clone()
    }
}
