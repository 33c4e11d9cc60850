//! Options of a journal, and the durability levels an append may ask for.

use crate::wal::error::{Error, Result};
use crate::wal::failpoint::Failpoints;
use crate::wal::frame;
use crate::wal::recovery::RecoveryMode;
use crate::wal::segment;
use crate::wal::storage::{FsStorage, Storage};
use std::sync::Arc;
use std::time::Duration;

/// When an append is acknowledged, and so what it survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Acknowledged after the record's commit group was written and
    /// `fdatasync` returned. Survives a process crash, a kernel panic and a
    /// power cut. The default.
    #[default]
    Sync,
    /// Acknowledged after the record was written to the operating system
    /// (`write` returned). Survives a crash of this process; may be lost on
    /// a kernel panic or power cut, until a later sync (any `Sync` append,
    /// [`crate::Journal::sync`] or a clean close) covers it.
    Buffered,
    /// Acknowledged once the writer has taken the record off the queue and
    /// given it its LSN, before it is written. Survives only a clean
    /// [`crate::Journal::close`] (or drop). For fire-and-forget use
    /// [`crate::Journal::submit`] and drop the ticket.
    None,
}

/// How a journal behaves. `Options::default()` is what most users want.
#[derive(Clone, Debug)]
pub struct Options {
    /// The largest size of a segment file in bytes. Default 64 MiB.
    /// Segments start at [`Options::first_segment_size`] and each next one
    /// is four times the size of the one before, up to this; each file is
    /// zero-filled to its size when created and keeps it.
    pub segment_size: u64,
    /// Size of a new journal's first segment in bytes (or `segment_size`,
    /// if that is smaller). Default 1 MiB, so a small store takes little
    /// disk. Set it to `segment_size` for segments of one fixed size.
    pub first_segment_size: u64,
    /// Largest record payload accepted, in bytes. Default 16 MiB. The
    /// limit in force is the smaller of this and what one segment can hold
    /// ([`Options::effective_max_record_size`]).
    pub max_record_size: usize,
    /// Durability of `append`/`submit` calls that do not name one.
    pub durability: Durability,
    /// How many append requests may wait in the queue. Default 4096.
    pub queue_capacity: usize,
    /// How long an append waits for room in a full queue before it fails
    /// with [`Error::Busy`]. Default 5 s.
    pub append_timeout: Duration,
    /// Upper bound on the bytes one commit group gathers (a single request
    /// larger than this still goes, alone). Default 1 MiB.
    pub group_bytes: usize,
    /// What recovery does about damaged bytes.
    pub recovery_mode: RecoveryMode,
    /// The storage every byte goes through.
    pub storage: Arc<dyn Storage>,
    /// Failpoints, for tests. Exists only with the `testkit` feature (so
    /// build `Options` with `..Options::default()`); without it the
    /// engine's failpoint hooks compile to nothing.
    #[cfg(feature = "testkit")]
    pub failpoints: Failpoints,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_size: 64 << 20,
            first_segment_size: 1 << 20,
            max_record_size: 16 << 20,
            durability: Durability::Sync,
            queue_capacity: 4096,
            append_timeout: Duration::from_secs(5),
            group_bytes: 1 << 20,
            recovery_mode: RecoveryMode::TolerateTornTail,
            storage: Arc::new(FsStorage),
            #[cfg(feature = "testkit")]
            failpoints: Failpoints::new(),
        }
    }
}

impl Options {
    /// The failpoint registry the engine's hooks consult: the test's, with
    /// the `testkit` feature; a no-op otherwise.
    #[inline(always)]
    pub(crate) fn failpoints(&self) -> &Failpoints {
        #[cfg(feature = "testkit")]
        {
            &self.failpoints
        }
        #[cfg(not(feature = "testkit"))]
        {
            &Failpoints
        }
    }

    /// The largest payload an append may carry: `max_record_size`, or less
    /// if a segment of `segment_size` cannot hold a record that large.
    pub fn effective_max_record_size(&self) -> usize {
        let room = (self.segment_size as usize)
            .saturating_sub(segment::HEADER_LEN + frame::HEADER_LEN)
            & !(frame::ALIGN - 1);
        self.max_record_size.min(room)
    }

    /// The size of a new journal's first segment: `first_segment_size`,
    /// or `segment_size` if that is smaller.
    pub fn effective_first_segment_size(&self) -> u64 {
        self.first_segment_size.min(self.segment_size)
    }

    /// Checks that the options make sense together.
    pub fn validate(&self) -> Result<()> {
        let min_segment = segment::MIN_SEGMENT_SIZE;
        if self.segment_size < min_segment || self.segment_size > u64::from(u32::MAX) * 4 {
            return Err(Error::InvalidOptions(format!(
                "segment_size {} must be between {min_segment} and 16 GiB",
                self.segment_size
            )));
        }
        if !self.segment_size.is_multiple_of(frame::ALIGN as u64) {
            return Err(Error::InvalidOptions(format!(
                "segment_size {} must be a multiple of {}",
                self.segment_size,
                frame::ALIGN
            )));
        }
        if self.first_segment_size < min_segment
            || !self.first_segment_size.is_multiple_of(frame::ALIGN as u64)
        {
            return Err(Error::InvalidOptions(format!(
                "first_segment_size {} must be at least {min_segment} and a multiple of {}",
                self.first_segment_size,
                frame::ALIGN
            )));
        }
        if self.max_record_size == 0 || self.max_record_size > u32::MAX as usize {
            return Err(Error::InvalidOptions(format!(
                "max_record_size {} must be between 1 and {}",
                self.max_record_size,
                u32::MAX
            )));
        }
        if self.queue_capacity == 0 {
            return Err(Error::InvalidOptions(
                "queue_capacity must be at least 1".into(),
            ));
        }
        if self.group_bytes == 0 {
            return Err(Error::InvalidOptions(
                "group_bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One record to append: a type tag and opaque payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Record type, 1..=255 (0 is reserved and rejected).
    pub kind: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Record {
    /// A record of type `kind` carrying `payload`.
    pub fn new(kind: u8, payload: impl Into<Vec<u8>>) -> Record {
        Record {
            kind,
            payload: payload.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Options::default().validate().unwrap();
    }

    #[test]
    fn record_limit_is_bounded_by_the_segment() {
        let o = Options {
            segment_size: 4096,
            ..Options::default()
        };
        o.validate().unwrap();
        assert_eq!(o.effective_max_record_size(), 4096 - 64 - 32);
        let o = Options {
            segment_size: 4096,
            max_record_size: 1024,
            ..Options::default()
        };
        assert_eq!(o.effective_max_record_size(), 1024);
        let o = Options {
            max_record_size: 0,
            ..Options::default()
        };
        assert!(matches!(o.validate(), Err(Error::InvalidOptions(_))));
    }
}
