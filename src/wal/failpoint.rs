//! Named failpoints: the engine's hooks that make races and faults
//! deterministic in tests.
//!
//! The engine calls [`Failpoints::hit`] at a few named places (see
//! [`names`]). With the `testkit` feature, [`Failpoints`] is the registry of
//! `crate::testkit::failpoint`: a test arms a point to fail with an I/O
//! error or pause the thread that reaches it. Without it (every default
//! build), [`Failpoints`] is a zero-sized type whose `hit` is an inlined
//! `Ok(())`: the hooks compile to nothing and no failpoint rides in the
//! public [`crate::Options`].

/// The names of every failpoint in the engine.
pub mod names {
    /// In the writer, after it took the first request of a group and before
    /// it gathers the rest (the urgent lane, then the queue): a request sent
    /// while a thread is paused here joins this group.
    pub const WRITER_GATHER: &str = "writer.gather";
    /// In the writer, after a group is encoded and before its `write`.
    pub const WRITER_BEFORE_WRITE: &str = "writer.before_write";
    /// In the writer, after the `write` and before `fdatasync`.
    pub const WRITER_BEFORE_SYNC: &str = "writer.before_sync";
    /// In the writer, after `fdatasync` and before the acknowledgements.
    pub const WRITER_AFTER_SYNC: &str = "writer.after_sync";
    /// At the start of a segment rotation.
    pub const SEGMENT_ROTATE: &str = "segment.rotate";
    /// After a new segment's header is synced, before its rename.
    pub const SEGMENT_BEFORE_RENAME: &str = "segment.before_rename";
    /// After a new segment's rename, before the directory fsync.
    pub const SEGMENT_AFTER_RENAME: &str = "segment.after_rename";
    /// In `Journal::remove_segments_before`, before each segment leaves the
    /// log (list and file): earlier ones are already removed and the
    /// removal made durable.
    pub const SEGMENT_BEFORE_REMOVE: &str = "segment.before_remove";
    /// In the preallocator, before it zero-fills a spare segment.
    pub const PREALLOCATE: &str = "segment.preallocate";
    /// In recovery, before a torn tail is cut.
    pub const RECOVERY_BEFORE_TRUNCATE: &str = "recovery.before_truncate";
    /// In `append_urgent`, right after the request is on the urgent lane.
    pub const URGENT_QUEUED: &str = "journal.urgent_queued";
    /// In recovery, before a segment is renamed aside as `.broken`.
    pub const RECOVERY_BEFORE_SET_ASIDE: &str = "recovery.before_set_aside";
    /// In checkpoint writing, after the temp file is synced, before its
    /// rename.
    pub const CHECKPOINT_BEFORE_RENAME: &str = "checkpoint.before_rename";
    /// In the crash ledger, after a record's `write`, before `fdatasync`.
    pub const LEDGER_BEFORE_SYNC: &str = "ledger.before_sync";
}

#[cfg(feature = "testkit")]
pub use crate::testkit::failpoint::Failpoints;

/// The failpoint registry of a build without the test kit: nothing can be
/// armed, every hit passes, and it takes no space.
#[cfg(not(feature = "testkit"))]
#[derive(Clone, Debug, Default)]
pub struct Failpoints;

#[cfg(not(feature = "testkit"))]
impl Failpoints {
    /// The (only) registry.
    #[inline(always)]
    pub fn new() -> Failpoints {
        Failpoints
    }

    /// Called by the engine at the point `name`: always passes.
    #[inline(always)]
    pub fn hit(&self, _name: &'static str) -> std::io::Result<()> {
        Ok(())
    }
}
