//! The public face of the engine: open (with recovery), append, sync, read,
//! close.

use crate::wal::error::{Error, Result};
use crate::wal::failpoint::names;
use crate::wal::frame::{self, SegmentId};
use crate::wal::log::{LogState, SegmentMeta};
use crate::wal::options::{Durability, Options, Record};
use crate::wal::reader::Reader;
use crate::wal::recovery::{Recovered, RecoveredSegment, Recovery, RecoveryReport};
use crate::wal::segment::{self, SegmentHeader};
use crate::wal::storage::DirLock;
use crate::wal::ticket::{self, Ticket};
use crate::wal::writer::{Request, Writer, WriterParts};
use crate::wal::Lsn;
use crossbeam_channel::{SendTimeoutError, Sender};
use parking_lot::Mutex;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The name of the lock file in a journal directory.
pub const LOCK_FILE: &str = "LOCK";

/// A write-ahead journal in one directory.
///
/// Appends from any number of threads go through one group-commit writer
/// thread. Dropping the journal closes it (best effort); call
/// [`Journal::close`] to see the result.
pub struct Journal {
    dir: PathBuf,
    options: Options,
    log: Arc<LogState>,
    normal: Sender<Request>,
    urgent: Sender<Request>,
    writer: Option<JoinHandle<()>>,
    /// Serialises [`Journal::remove_segments_before`] calls.
    removal: Mutex<()>,
    _lock: Box<dyn DirLock>,
}

/// What [`Journal::remove_segments_before`] removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemovedSegments {
    /// How many segment files were deleted.
    pub segments: usize,
    /// Their total size in bytes: the files' preallocated sizes (what the
    /// deletion gives back to the disk), not the bytes of their records.
    pub bytes: u64,
    /// The first LSN still in the log afterwards.
    pub first_lsn: Lsn,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("next_lsn", &self.log.written_lsn())
            .finish()
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, recovers it, and
    /// starts its writer. Fails with [`Error::Locked`] if another process or
    /// handle has it open.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<(Journal, RecoveryReport)> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let storage = options.storage.clone();
        storage
            .create_dir_all(&dir)
            .map_err(|e| Error::io("create journal directory", &dir, e))?;
        let lock = lock_dir(&*storage, &dir)?;
        let Recovered {
            segments,
            mut report,
        } = Recovery {
            storage: &*storage,
            dir: &dir,
            mode: options.recovery_mode,
            dry_run: false,
            failpoints: options.failpoints(),
        }
        .run()?;
        let (mut metas, mut active_capacity) = segment_metas(segments);
        // A spare a previous process left for the segment after the last
        // one is adopted; any other spare is removed.
        let next_number = metas.last().map_or(0, |m| m.id.number + 1);
        let spare = segment::adopt_spare(&*storage, &dir, next_number, options.segment_size)
            .map_err(|e| Error::io("adopt spare segment", &dir, e))?;
        if metas.is_empty() {
            let meta = create_first_segment(&dir, &options, report.next_lsn)?;
            active_capacity = meta.capacity;
            metas.push(meta);
            report.created = true;
            report.segments = 1;
        }
        let active = metas.last().expect("at least one segment").clone();
        let log = Arc::new(LogState::new(metas, report.next_lsn));
        let (normal_tx, normal_rx) = crossbeam_channel::bounded(options.queue_capacity);
        let (urgent_tx, urgent_rx) = crossbeam_channel::unbounded();
        let writer = Writer::new(WriterParts {
            dir: dir.clone(),
            storage: storage.clone(),
            failpoints: options.failpoints().clone(),
            log: log.clone(),
            segment_size: options.segment_size,
            group_bytes: options.group_bytes,
            active,
            active_capacity,
            next_lsn: report.next_lsn,
            normal: normal_rx,
            urgent: urgent_rx,
            spare,
        })?;
        let handle = std::thread::Builder::new()
            .name("tracejournal-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::io("start writer thread", &dir, e))?;
        Ok((
            Journal {
                dir,
                options,
                log,
                normal: normal_tx,
                urgent: urgent_tx,
                writer: Some(handle),
                removal: Mutex::new(()),
                _lock: lock,
            },
            report,
        ))
    }

    /// Scans the journal in `dir` and reports what recovery would do,
    /// changing nothing. Takes the directory lock for the duration.
    pub fn inspect(dir: impl AsRef<Path>, options: &Options) -> Result<RecoveryReport> {
        let dir = dir.as_ref();
        let storage = options.storage.clone();
        let _lock = lock_dir(&*storage, dir)?;
        let recovered = Recovery {
            storage: &*storage,
            dir,
            mode: options.recovery_mode,
            dry_run: true,
            failpoints: options.failpoints(),
        }
        .run()?;
        Ok(recovered.report)
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record at the journal's default durability and returns
    /// its LSN once it is acknowledged (see [`Durability`]).
    pub fn append(&self, record: Record) -> Result<Lsn> {
        self.append_with(record, self.options.durability)
    }

    /// Appends one record at the given durability.
    pub fn append_with(&self, record: Record, durability: Durability) -> Result<Lsn> {
        self.submit_with(record, durability)?.wait()
    }

    /// Queues one record and returns at once; [`Ticket::wait`] gives its LSN
    /// when it reaches the journal's default durability. Blocks only while
    /// the queue is full (up to `append_timeout`, then [`Error::Busy`]).
    pub fn submit(&self, record: Record) -> Result<Ticket> {
        self.submit_with(record, self.options.durability)
    }

    /// [`Journal::submit`] at the given durability.
    pub fn submit_with(&self, record: Record, durability: Durability) -> Result<Ticket> {
        self.enqueue(vec![record], durability, false)
    }

    /// Appends records as one atomic unit: after any crash, either all of
    /// them are in the log or none is. Returns their LSN range. If any
    /// record is invalid, none is written and the error names its index.
    pub fn append_batch(&self, records: Vec<Record>) -> Result<Range<Lsn>> {
        let n = records.len() as u64;
        if n == 0 {
            let next = self.log.written_lsn();
            return Ok(next..next);
        }
        let first = self
            .enqueue(records, self.options.durability, false)?
            .wait()?;
        Ok(first..first + n)
    }

    /// Appends a record through the urgent lane: it is written and synced
    /// ahead of every request still queued, never waits for queue room, and
    /// is acknowledged only once durable. For crash markers.
    pub fn append_urgent(&self, record: Record) -> Result<Lsn> {
        self.submit_urgent(record)?.wait()
    }

    /// Appends records through the urgent lane as one atomic batch (see
    /// [`Journal::append_batch`] and [`Journal::append_urgent`]): written and
    /// synced ahead of every request still queued, never waiting for queue
    /// room, and returned only once durable. Returns their LSN range, which
    /// is contiguous. If any record is invalid, none is written.
    pub fn append_urgent_batch(&self, records: Vec<Record>) -> Result<Range<Lsn>> {
        let n = records.len() as u64;
        if n == 0 {
            let next = self.log.written_lsn();
            return Ok(next..next);
        }
        let first = self.enqueue(records, Durability::Sync, true)?.wait()?;
        Ok(first..first + n)
    }

    /// Puts a record on the urgent lane and returns at once: it is written
    /// and synced ahead of every request still queued and never waits for
    /// queue room. [`Ticket::wait`] (or [`Ticket::wait_timeout`]) gives its
    /// LSN once it is durable.
    pub fn submit_urgent(&self, record: Record) -> Result<Ticket> {
        self.enqueue(vec![record], Durability::Sync, true)
    }

    /// Makes every record written so far durable.
    pub fn sync(&self) -> Result<()> {
        self.poison_check()?;
        let (done, ticket) = ticket::pair();
        self.send(Request::Sync { done })?;
        ticket.wait().map(|_| ())
    }

    /// Reads committed (written) records from `lsn` on.
    pub fn read_from(&self, lsn: Lsn) -> Result<Reader> {
        Reader::new(self.log.clone(), lsn)
    }

    /// The LSN the next record will get (one past the last written).
    pub fn next_lsn(&self) -> Lsn {
        self.log.written_lsn()
    }

    /// One past the last LSN known durable.
    pub fn durable_lsn(&self) -> Lsn {
        self.log.durable_lsn()
    }

    /// The first LSN still in the log.
    pub fn first_lsn(&self) -> Lsn {
        self.log.first_lsn()
    }

    /// Total size in bytes of the segment files now in the log: the sum of
    /// each file's size as it was when opened or created. Segments are
    /// preallocated to their full size, so this is the disk space the log
    /// takes (what [`Journal::remove_segments_before`] can give back), not
    /// the bytes of its records. No I/O.
    pub fn segment_bytes(&self) -> u64 {
        self.log.segment_bytes()
    }

    /// Deletes the sealed segments all of whose records have LSNs below
    /// `lsn` (for example, once a checkpoint covers them). Segment *i*
    /// qualifies only if segment *i + 1* exists and starts at or before
    /// `lsn`; the active (last) segment is never removed, so
    /// `remove_segments_before(u64::MAX)` keeps it.
    ///
    /// Segments go oldest first. For each: the failpoint
    /// [`names::SEGMENT_BEFORE_REMOVE`], then it leaves the in-memory
    /// segment list, then its file is removed and the directory is fsynced
    /// before the next one is touched. A crash part-way therefore leaves a
    /// contiguous suffix of the segments, which recovery accepts.
    ///
    /// Safe to call while appends and rotations go on (the writer only adds
    /// segments at the end). Readers already reading a removed segment
    /// finish it: its file stays open while they hold it. Afterwards,
    /// [`Journal::first_lsn`] is the first LSN still in the log and
    /// [`Journal::read_from`] below it fails with [`Error::LsnOutOfRange`].
    ///
    /// An error (an I/O error, or an armed failpoint) stops the removal:
    /// segments removed before it stay removed, the one it failed on and
    /// every later one stay in the log. It does not poison the journal
    /// (nothing acknowledged is at stake) and the call can be retried.
    pub fn remove_segments_before(&self, lsn: Lsn) -> Result<RemovedSegments> {
        let _serial = self.removal.lock();
        // Only sealed segments: `windows` never yields the last one as the
        // first of a pair. Segments start at non-decreasing LSNs, so the
        // ones that qualify are a prefix.
        let doomed: Vec<u64> = self
            .log
            .segments()
            .windows(2)
            .take_while(|pair| pair[1].first_lsn <= lsn)
            .map(|pair| pair[0].id.number)
            .collect();
        let storage = &*self.options.storage;
        let mut removed = RemovedSegments {
            segments: 0,
            bytes: 0,
            first_lsn: self.log.first_lsn(),
        };
        for number in doomed {
            let path = self.dir.join(segment::file_name(number));
            self.options
                .failpoints()
                .hit(names::SEGMENT_BEFORE_REMOVE)
                .map_err(|e| Error::io("remove segment", &path, e))?;
            // Always the oldest segment and never the last: only this
            // (serialised) function takes segments off, the writer only
            // pushes new ones.
            let Some(meta) = self.log.remove_first_segment(number) else {
                break;
            };
            match storage.remove(&meta.path) {
                Ok(()) => {}
                // Already gone: the list now agrees with the directory.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.log.restore_first_segment(meta);
                    return Err(Error::io("remove segment", &path, e));
                }
            }
            // Durable before the next removal, so a crash cannot leave a
            // hole (recovery requires contiguous segment numbers).
            storage
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync journal directory", &self.dir, e))?;
            removed.segments += 1;
            removed.bytes += meta.capacity;
        }
        removed.first_lsn = self.log.first_lsn();
        Ok(removed)
    }

    /// Why the journal is poisoned, if it is.
    pub fn poisoned(&self) -> Option<String> {
        self.log.poisoned()
    }

    /// Once poisoned, the first LSN that was assigned to an append and not
    /// acknowledged: every LSN below it was acknowledged, and no append at
    /// or above it will be, except that `Buffered` and `None` appends of
    /// the failed commit group may have been acknowledged above it before
    /// the failure. `None` while the journal is healthy.
    pub fn failed_from(&self) -> Option<Lsn> {
        self.log.failed_from()
    }

    /// Calls `hook` with [`Journal::failed_from`] and the cause when the
    /// journal is poisoned (at once if it already is), so that whoever
    /// waits for acknowledged LSNs in order can stop waiting for ones that
    /// will never come. The hook runs on the writer thread: it must not
    /// block or call back into the journal. It may be called more than
    /// once, with the same or a lower LSN.
    pub fn on_poison(&self, hook: impl Fn(Lsn, &str) + Send + Sync + 'static) {
        self.log.on_poison(Box::new(hook));
    }

    /// Drains the queue, syncs, and stops the writer.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let Some(handle) = self.writer.take() else {
            return Ok(());
        };
        let (done, ticket) = ticket::pair();
        let result = match self.normal.send(Request::Close { done }) {
            Ok(()) => ticket.wait().map(|_| ()),
            Err(_) => Err(Error::Closed),
        };
        let _ = handle.join();
        result
    }

    fn poison_check(&self) -> Result<()> {
        match self.log.poisoned() {
            Some(cause) => Err(Error::Poisoned { cause }),
            None => Ok(()),
        }
    }

    fn validate(&self, records: &[Record]) -> Result<()> {
        let max = self.options.effective_max_record_size();
        if records.len() > usize::from(u16::MAX) + 1 {
            return Err(Error::InvalidRecord {
                index: usize::from(u16::MAX) + 1,
                reason: format!(
                    "a batch holds at most {} records, this one has {}",
                    usize::from(u16::MAX) + 1,
                    records.len()
                ),
            });
        }
        let mut total = 0u64;
        for (index, r) in records.iter().enumerate() {
            if r.kind == 0 {
                return Err(Error::InvalidRecord {
                    index,
                    reason: "record type 0 is reserved".into(),
                });
            }
            if r.payload.len() > max {
                return Err(Error::RecordTooLarge {
                    index,
                    len: r.payload.len(),
                    max,
                });
            }
            total += frame::encoded_len(r.payload.len()) as u64;
        }
        let room = self.options.segment_size - segment::HEADER_LEN as u64;
        if total > room {
            return Err(Error::InvalidRecord {
                index: records.len() - 1,
                reason: format!(
                    "the batch takes {total} bytes, more than a segment holds ({room})"
                ),
            });
        }
        Ok(())
    }

    fn enqueue(
        &self,
        records: Vec<Record>,
        durability: Durability,
        urgent: bool,
    ) -> Result<Ticket> {
        self.validate(&records)?;
        self.poison_check()?;
        let (done, ticket) = ticket::pair();
        let request = Request::Append {
            records,
            durability,
            done,
        };
        if urgent {
            self.urgent.send(request).map_err(|_| Error::Closed)?;
            // Observe-only: lets tests know the request is queued.
            let _ = self.options.failpoints().hit(names::URGENT_QUEUED);
        } else {
            self.send(request)?;
        }
        Ok(ticket)
    }

    fn send(&self, request: Request) -> Result<()> {
        let timeout = self.options.append_timeout;
        match self.normal.send_timeout(request, timeout) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(Error::Busy { waited: timeout }),
            Err(SendTimeoutError::Disconnected(_)) => Err(Error::Closed),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn lock_dir(storage: &dyn crate::wal::storage::Storage, dir: &Path) -> Result<Box<dyn DirLock>> {
    let path = dir.join(LOCK_FILE);
    storage.lock(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            Error::Locked {
                dir: dir.to_path_buf(),
            }
        } else {
            Error::io("lock journal directory", &path, e)
        }
    })
}

/// The log's view of the recovered segments, oldest first, and the
/// capacity of the last one (0 if there is none).
fn segment_metas(segments: Vec<RecoveredSegment>) -> (Vec<Arc<SegmentMeta>>, u64) {
    let mut metas: Vec<Arc<SegmentMeta>> = Vec::with_capacity(segments.len() + 1);
    let mut active_capacity = 0;
    for seg in segments {
        active_capacity = seg.capacity;
        metas.push(Arc::new(SegmentMeta {
            id: seg.header.id,
            first_lsn: seg.header.first_lsn,
            path: seg.path,
            file: seg.file,
            end: AtomicU64::new(seg.end),
            skips: seg.skips,
            capacity: seg.capacity,
        }));
    }
    (metas, active_capacity)
}

fn create_first_segment(dir: &Path, options: &Options, first_lsn: Lsn) -> Result<Arc<SegmentMeta>> {
    let storage = &*options.storage;
    let number = 1;
    let path = dir.join(segment::file_name(number));
    let spare = segment::prepare_spare(
        storage,
        dir,
        number,
        options.effective_first_segment_size(),
        options.failpoints(),
    )
    .map_err(|e| Error::io("create first segment", &path, e))?;
    let header = SegmentHeader {
        id: SegmentId {
            number,
            salt: segment::new_salt(),
        },
        first_lsn,
    };
    let seg = segment::install(storage, dir, spare, header, options.failpoints())
        .map_err(|e| Error::io("install first segment", &path, e))?;
    Ok(Arc::new(SegmentMeta {
        id: header.id,
        first_lsn,
        path: seg.path,
        file: seg.file,
        end: AtomicU64::new(segment::HEADER_LEN as u64),
        skips: Vec::new(),
        capacity: seg.capacity,
    }))
}
