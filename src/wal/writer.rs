//! The group-commit writer: the one thread that owns the active segment.
//!
//! Appenders put requests on a bounded queue (and crash markers on the
//! urgent lane). The writer takes everything queued, up to a byte cap, and
//! for that group does exactly one `write` and at most one `fdatasync`, then
//! acknowledges each appender with its own result. It never waits for more
//! company: a lone request is written as soon as it arrives.
//!
//! Order of a group: urgent requests first, then normal ones in queue order.
//! LSNs are assigned here, in that order, so LSN order is log order.
//!
//! A group that needs no durability (only `Buffered` or `None` requests) is
//! written without an `fdatasync`. The commit group recorded in each frame
//! (`group_delta`) therefore runs from one `fdatasync` to the next: records
//! written after an unsynced write join its group, because the two writes
//! may reach the disk in either order (see the recovery rules).
//!
//! Any failed write, sync or rotation poisons the journal: every waiter of
//! the failed group gets the error, nothing is acknowledged after it, and
//! every later request fails until the journal is reopened (recovery then
//! decides from the bytes on disk what survived).

use crate::wal::error::{Error, Result};
use crate::wal::failpoint::{names, Failpoints};
use crate::wal::frame::{self, FrameHeader, SegmentId};
use crate::wal::log::{LogState, SegmentMeta};
use crate::wal::options::{Durability, Record};
use crate::wal::segment::{self, Preallocator, SegmentHeader, Spare};
use crate::wal::storage::{Storage, StorageFile};
use crate::wal::ticket::Completer;
use crate::wal::Lsn;
use crossbeam_channel::{Receiver, TryRecvError};

/// How long the writer busy-waits for the next request before it sleeps
/// ([`Writer::spin_for_requests`]).
const WRITER_SPIN: std::time::Duration = std::time::Duration::from_micros(50);
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What appenders send the writer.
pub(crate) enum Request {
    /// Append records (more than one: an atomic batch).
    Append {
        records: Vec<Record>,
        durability: Durability,
        done: Completer,
    },
    /// Make everything written so far durable.
    Sync { done: Completer },
    /// Write and sync everything queued before this, then stop.
    Close { done: Completer },
}

impl Request {
    fn encoded_bytes(&self) -> usize {
        match self {
            Request::Append { records, .. } => records
                .iter()
                .map(|r| frame::encoded_len(r.payload.len()))
                .sum(),
            _ => 0,
        }
    }

    fn fail(self, error: &Arc<Error>) {
        match self {
            Request::Append { done, .. } | Request::Sync { done } | Request::Close { done } => {
                done.fail(error.clone())
            }
        }
    }
}

/// The segment records are appended to.
struct Active {
    meta: Arc<SegmentMeta>,
    file: Arc<dyn StorageFile>,
    pos: u64,
    capacity: u64,
}

/// Everything the writer needs to run.
pub(crate) struct WriterParts {
    pub dir: PathBuf,
    pub storage: Arc<dyn Storage>,
    pub failpoints: Failpoints,
    pub log: Arc<LogState>,
    /// The largest segment size (`Options::segment_size`); segments grow
    /// towards it ([`segment::next_segment_size`]).
    pub segment_size: u64,
    pub group_bytes: usize,
    pub active: Arc<SegmentMeta>,
    pub active_capacity: u64,
    pub next_lsn: Lsn,
    pub normal: Receiver<Request>,
    pub urgent: Receiver<Request>,
    /// A spare for the segment after `active`, adopted at open.
    pub spare: Option<Spare>,
}

/// One commit group being assembled.
///
/// For recovery, a group (what `group_delta` counts back to) runs from one
/// `fdatasync` to the next: a write that is not followed by a sync (only
/// `Buffered` or `None` requests) leaves the group open, so records written
/// after it join the same group. Two writes with no sync between them may
/// reach the disk in either order, so a hole in the first with the second
/// intact must read as a torn tail, not as corruption.
struct Group {
    /// LSN of the first record written since the last sync.
    first_lsn: Lsn,
    /// Records written (or encoded) since the last sync.
    records: usize,
    buf: Vec<u8>,
    after_write: Vec<(Completer, Lsn)>,
    after_sync: Vec<(Completer, Lsn)>,
    /// `Sync` requests (no record of their own), acknowledged with the
    /// next LSN once the group's sync returned.
    sync_requests: Vec<Completer>,
}

pub(crate) struct Writer {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    failpoints: Failpoints,
    log: Arc<LogState>,
    segment_size: u64,
    group_bytes: usize,
    active: Active,
    next_lsn: Lsn,
    unsynced: bool,
    prealloc: Preallocator,
    prealloc_requested: bool,
    normal: Receiver<Request>,
    urgent: Receiver<Request>,
    group: Group,
}

impl Writer {
    pub(crate) fn new(parts: WriterParts) -> Result<Writer> {
        let prealloc = Preallocator::start(
            parts.storage.clone(),
            parts.dir.clone(),
            parts.failpoints.clone(),
            parts.spare,
        )
        .map_err(|e| Error::io("start preallocator thread", &parts.dir, e))?;
        let pos = parts.active.end.load(Ordering::Acquire);
        Ok(Writer {
            dir: parts.dir,
            storage: parts.storage,
            failpoints: parts.failpoints,
            log: parts.log,
            segment_size: parts.segment_size,
            group_bytes: parts.group_bytes,
            active: Active {
                file: parts.active.file.clone(),
                meta: parts.active,
                pos,
                capacity: parts.active_capacity,
            },
            next_lsn: parts.next_lsn,
            unsynced: false,
            prealloc,
            prealloc_requested: false,
            normal: parts.normal,
            urgent: parts.urgent,
            group: Group {
                first_lsn: parts.next_lsn,
                records: 0,
                buf: Vec::with_capacity(1 << 20),
                after_write: Vec::new(),
                after_sync: Vec::new(),
                sync_requests: Vec::new(),
            },
        })
    }

    /// The writer thread's body. Returns after a `Close` request, or when
    /// every sender is gone.
    pub(crate) fn run(mut self) {
        while let Some((urgent, normal)) = self.next_group() {
            if self.process(urgent, normal) {
                return;
            }
        }
        // Every sender is gone without a Close: make what we wrote durable.
        let _ = self.commit(true);
    }

    /// Blocks for the next request, then gathers the group: every urgent
    /// request queued, and (if there are none) normal requests up to the
    /// byte cap.
    fn next_group(&mut self) -> Option<(Vec<Request>, Vec<Request>)> {
        let mut urgent = Vec::new();
        let mut normal = Vec::new();
        self.spin_for_requests();
        match self.urgent.try_recv() {
            Ok(r) => urgent.push(r),
            Err(_) => {
                crossbeam_channel::select! {
                    recv(self.urgent) -> r => match r {
                        Ok(r) => urgent.push(r),
                        Err(_) => match self.normal.recv() {
                            Ok(r) => normal.push(r),
                            Err(_) => return None,
                        },
                    },
                    recv(self.normal) -> r => match r {
                        Ok(r) => normal.push(r),
                        Err(_) => match self.urgent.recv() {
                            Ok(r) => urgent.push(r),
                            Err(_) => return None,
                        },
                    },
                }
            }
        }
        // Pause-only point (tests put an urgent request behind a normal one
        // in one group).
        let _ = self.failpoints.hit(names::WRITER_GATHER);
        while let Ok(r) = self.urgent.try_recv() {
            urgent.push(r);
        }
        if urgent.is_empty() {
            let mut bytes = normal.iter().map(Request::encoded_bytes).sum::<usize>();
            while bytes < self.group_bytes {
                match self.normal.try_recv() {
                    Ok(r) => {
                        bytes += r.encoded_bytes();
                        let stop = matches!(r, Request::Close { .. });
                        normal.push(r);
                        if stop {
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                }
            }
        }
        Some((urgent, normal))
    }

    /// Busy-waits up to [`WRITER_SPIN`] for a request before the writer
    /// goes to sleep in the channel: an appender that just got its ack
    /// usually sends its next append within microseconds, and catching it
    /// awake saves a thread wake-up on the ack path.
    fn spin_for_requests(&self) {
        let start = std::time::Instant::now();
        while self.urgent.is_empty() && self.normal.is_empty() && start.elapsed() < WRITER_SPIN {
            std::hint::spin_loop();
        }
    }

    /// Writes one group. Returns true if the writer must stop (closed).
    fn process(&mut self, urgent: Vec<Request>, normal: Vec<Request>) -> bool {
        let mut need_sync = !urgent.is_empty();
        let mut close = None;
        for req in urgent.into_iter().chain(normal) {
            if let Some(cause) = self.log.poisoned() {
                if let Request::Close { done } = req {
                    close = Some(done);
                } else {
                    req.fail(&Arc::new(Error::Poisoned { cause }));
                }
                continue;
            }
            match req {
                Request::Append {
                    records,
                    durability,
                    done,
                } => {
                    if durability == Durability::Sync {
                        need_sync = true;
                    }
                    self.append(records, durability, done);
                }
                Request::Sync { done } => {
                    need_sync = true;
                    self.group.sync_requests.push(done);
                }
                Request::Close { done } => {
                    need_sync = true;
                    close = Some(done);
                }
            }
        }
        let _ = self.commit(need_sync);
        if let Some(done) = close {
            match self.log.poisoned() {
                Some(cause) => done.fail(Arc::new(Error::Poisoned { cause })),
                None => done.succeed(self.next_lsn),
            }
            return true;
        }
        false
    }

    /// Encodes one request into the group, rotating first if it does not
    /// fit in the active segment.
    fn append(&mut self, records: Vec<Record>, durability: Durability, done: Completer) {
        let bytes: u64 = records
            .iter()
            .map(|r| frame::encoded_len(r.payload.len()) as u64)
            .sum();
        let too_many = self.group.records + records.len() > usize::from(u16::MAX) + 1;
        let too_big = self.active.pos + self.group.buf.len() as u64 + bytes > self.active.capacity;
        if too_many || too_big {
            // The segment must be synced before the next one gets records,
            // so recovery can trust that a later segment implies an intact
            // earlier one. A group too large for `group_delta` is closed
            // with a sync too (only a sync starts a new group).
            if self.commit(true).is_err() {
                return self.fail_poisoned(done);
            }
            if too_big {
                if let Err(e) = self.rotate(segment::HEADER_LEN as u64 + bytes) {
                    self.poison(e.to_string());
                    return done.fail(Arc::new(e));
                }
            }
        }
        let first = self.next_lsn;
        let last_index = records.len() - 1;
        for (i, record) in records.iter().enumerate() {
            // A group's LSNs are dense: `group_delta` counts back to its
            // first record, and recovery relies on it.
            assert_eq!(
                self.next_lsn,
                self.group.first_lsn + self.group.records as u64,
                "the LSNs of a commit group are dense"
            );
            let header = FrameHeader {
                len: u32::try_from(record.payload.len())
                    .expect("record size checked against max_record_size (below u32::MAX)"),
                lsn: self.next_lsn,
                segment: self.active.meta.id,
                group_delta: u16::try_from(self.next_lsn - self.group.first_lsn)
                    .expect("a group is closed before it exceeds u16::MAX + 1 records"),
                kind: record.kind,
                flags: if i < last_index {
                    frame::FLAG_BATCH_CONTINUES
                } else {
                    0
                },
            };
            frame::encode(&mut self.group.buf, &header, &record.payload);
            self.next_lsn += 1;
            self.group.records += 1;
        }
        match durability {
            Durability::None => done.succeed(first),
            Durability::Buffered => self.group.after_write.push((done, first)),
            Durability::Sync => self.group.after_sync.push((done, first)),
        }
    }

    /// Poisons the journal. Called before the failed group's waiters are
    /// resolved: the first LSN that will never be acknowledged is the
    /// lowest record LSN still waiting in the group (its write or sync is
    /// what failed), or the next LSN if none is (nothing is assigned after
    /// this). Whoever waits for LSNs in order (the store's sequencer)
    /// learns it through [`LogState::on_poison`] and stops waiting.
    fn poison(&self, cause: String) {
        let failed_from = self
            .group
            .after_write
            .iter()
            .chain(&self.group.after_sync)
            .map(|(_, lsn)| *lsn)
            .min()
            .unwrap_or(self.next_lsn)
            .min(self.next_lsn);
        self.log.poison(cause, failed_from);
    }

    fn fail_poisoned(&self, done: Completer) {
        let cause = self.log.poisoned().unwrap_or_else(|| "unknown".into());
        done.fail(Arc::new(Error::Poisoned { cause }));
    }

    /// Writes the group's buffer with one `write`, syncs it if `sync`, and
    /// acknowledges its waiters. Only a sync starts a new group. Without
    /// `sync`, waiters for durability move on with the still-open group:
    /// they are never acknowledged before an `fdatasync` covers them.
    fn commit(&mut self, sync: bool) -> Result<(), ()> {
        let result = self.write_and_sync(sync);
        let mut buf = std::mem::take(&mut self.group.buf);
        buf.clear();
        let after_write = std::mem::take(&mut self.group.after_write);
        let mut after_sync = std::mem::take(&mut self.group.after_sync);
        let sync_requests = std::mem::take(&mut self.group.sync_requests);
        let (first_lsn, records) = if sync {
            (self.next_lsn, 0)
        } else {
            (self.group.first_lsn, self.group.records)
        };
        self.group = Group {
            first_lsn,
            records,
            buf,
            after_write: Vec::new(),
            after_sync: Vec::new(),
            sync_requests: Vec::new(),
        };
        match result {
            Ok(()) if !sync => {
                self.group.after_sync = after_sync;
                self.group.sync_requests = sync_requests;
                Ok(())
            }
            Ok(()) => {
                for (done, lsn) in after_sync.drain(..) {
                    done.succeed(lsn);
                }
                for done in sync_requests {
                    done.succeed(self.next_lsn);
                }
                Ok(())
            }
            Err(e) => {
                let e = Arc::new(e);
                // `after_write` is non-empty only if the write itself failed.
                for (done, _) in after_sync.into_iter().chain(after_write) {
                    done.fail(e.clone());
                }
                for done in sync_requests {
                    done.fail(e.clone());
                }
                Err(())
            }
        }
    }

    fn write_and_sync(&mut self, sync: bool) -> Result<()> {
        if let Some(cause) = self.log.poisoned() {
            return Err(Error::Poisoned { cause });
        }
        let path = self.active.meta.path.clone();
        if !self.group.buf.is_empty() {
            let wrote = self
                .failpoints
                .hit(names::WRITER_BEFORE_WRITE)
                .and_then(|()| self.active.file.write_at(&self.group.buf, self.active.pos));
            if let Err(e) = wrote {
                let e = Error::io("write to segment", &path, e);
                self.poison(e.to_string());
                return Err(e);
            }
            self.active.pos += self.group.buf.len() as u64;
            self.active
                .meta
                .end
                .store(self.active.pos, Ordering::Release);
            self.log.set_written(self.next_lsn);
            self.unsynced = true;
            for (done, lsn) in self.group.after_write.drain(..) {
                done.succeed(lsn);
            }
            self.maybe_request_spare();
        }
        if sync && self.unsynced {
            let synced = self
                .failpoints
                .hit(names::WRITER_BEFORE_SYNC)
                .and_then(|()| self.active.file.sync_data());
            if let Err(e) = synced {
                let e = Error::io("fdatasync segment", &path, e);
                self.poison(e.to_string());
                return Err(e);
            }
            self.unsynced = false;
            self.log.set_durable(self.next_lsn);
            // Pause-only point (a failure here would come after the sync).
            let _ = self.failpoints.hit(names::WRITER_AFTER_SYNC);
        }
        Ok(())
    }

    /// Asks for the next segment to be zero-filled (at the size
    /// [`Writer::next_segment_size`] gives) once the active one is 1/16
    /// full. Asking at half-full left too little lead: at a million
    /// events a second a 64 MiB segment fills in about 0.2 s and the
    /// zero-fill takes about as long, so the writer stalled at rotation.
    /// Asking at the first write would make every short-lived journal (a CLI
    /// run) zero-fill 64 MiB it never uses.
    fn maybe_request_spare(&mut self) {
        if !self.prealloc_requested && self.active.pos > self.active.capacity / 16 {
            self.prealloc
                .request(self.active.meta.id.number + 1, self.next_segment_size(0));
            self.prealloc_requested = true;
        }
    }

    /// The size of the segment after the active one, if it must hold
    /// `needed` bytes (header included): four times the active one's, up to the
    /// configured `segment_size`.
    fn next_segment_size(&self, needed: u64) -> u64 {
        segment::next_segment_size(self.active.capacity, needed, self.segment_size)
    }

    /// Seals the active segment (already synced) and starts the next one,
    /// large enough for `needed` bytes (header included).
    fn rotate(&mut self, needed: u64) -> Result<()> {
        let number = self.active.meta.id.number + 1;
        let io = |op, e| Error::io(op, self.dir.join(segment::file_name(number)), e);
        self.failpoints
            .hit(names::SEGMENT_ROTATE)
            .map_err(|e| io("rotate segment", e))?;
        let spare = self
            .prealloc
            .take(number, self.next_segment_size(needed))
            .map_err(|e| io("preallocate segment", e))?;
        let header = SegmentHeader {
            id: SegmentId {
                number,
                salt: segment::new_salt(),
            },
            first_lsn: self.next_lsn,
        };
        let seg = segment::install(&*self.storage, &self.dir, spare, header, &self.failpoints)
            .map_err(|e| io("install segment", e))?;
        let meta = Arc::new(SegmentMeta {
            id: header.id,
            first_lsn: header.first_lsn,
            path: seg.path,
            file: seg.file.clone(),
            end: std::sync::atomic::AtomicU64::new(segment::HEADER_LEN as u64),
            skips: Vec::new(),
            capacity: seg.capacity,
        });
        self.log.push_segment(meta.clone());
        self.active = Active {
            meta,
            file: seg.file,
            pos: segment::HEADER_LEN as u64,
            capacity: seg.capacity,
        };
        self.group.first_lsn = self.next_lsn;
        self.prealloc_requested = false;
        Ok(())
    }
}

impl Drop for Writer {
    /// A panic in the writer (a bug) poisons the journal before the
    /// group's waiters are dropped (they resolve to [`Error::Closed`]), so
    /// that no one waiting for an LSN of that group waits forever.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.poison("the writer thread panicked".into());
        }
    }
}
