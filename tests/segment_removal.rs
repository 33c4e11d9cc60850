//! Removing old segments (`Journal::remove_segments_before`), the log
//! that starts past segment 1 / LSN 1 afterwards, and the urgent-lane
//! additions: `append_urgent_batch`, `submit_urgent`, `Ticket::wait_timeout`
//! (src/journal.rs, src/log.rs, src/ticket.rs).
//!
//! Ordering is made deterministic with failpoints and a recording storage,
//! never with sleeps.

mod common;

use common::{assert_clean, options_with, read_all, Env, MemStorage, Rng};
use parking_lot::Mutex;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tracejournal::testkit::failpoint::{names, Action, Failpoints};
use tracejournal::testkit::wal::segment;
use tracejournal::RemovedSegments;
use tracejournal::{DirLock, OpenMode, Storage, StorageFile};
use tracejournal::{Journal, JournalError, LogRecord, Options, Record, RecoveryMode};

const WAIT: Duration = Duration::from_secs(30);
/// Small segments: seven records of [`rec`] each.
const SEGMENT: u64 = 1024;

fn rec(i: u64) -> Record {
    Record::new(1, format!("record {i:04} {}", "x".repeat(90)).into_bytes())
}

fn small(options: Options) -> Options {
    Options {
        segment_size: SEGMENT,
        max_record_size: 512,
        ..options
    }
}

fn mem_options(storage: Arc<dyn Storage>) -> Options {
    small(options_with(storage, RecoveryMode::TolerateTornTail))
}

/// A fresh [`MemStorage`], the journal directory on it, and [`mem_options`]
/// through it.
fn mem_journal() -> (MemStorage, PathBuf, Options) {
    let storage = MemStorage::new();
    let options = mem_options(Arc::new(storage.clone()));
    (storage, common::mem_dir(), options)
}

/// Appends records `1..=n` (LSN `i` holds `rec(i)`).
fn fill(j: &Journal, n: u64) {
    let first = j.next_lsn();
    for i in first..first + n {
        assert_eq!(j.append(rec(i)).unwrap(), i);
    }
}

/// Checks that `records` are exactly LSNs `from..to`, each holding `rec(lsn)`.
fn assert_records(records: &[LogRecord], from: u64, to: u64) {
    let lsns: Vec<u64> = records.iter().map(|r| r.lsn).collect();
    assert_eq!(lsns, (from..to).collect::<Vec<_>>());
    for r in records {
        assert_eq!(r.payload, rec(r.lsn).payload, "payload of LSN {}", r.lsn);
    }
}

/// The first LSN of each segment, by segment number, from a read-back.
fn segment_starts(records: &[LogRecord]) -> Vec<(u64, u64)> {
    let mut starts: Vec<(u64, u64)> = Vec::new();
    for r in records {
        if starts.last().is_none_or(|&(s, _)| s != r.segment) {
            starts.push((r.segment, r.lsn));
        }
    }
    starts
}

/// Segment numbers of `names` (segment files only), checked contiguous.
fn contiguous_numbers(names: &[String]) -> Vec<u64> {
    let numbers: Vec<u64> = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n))
        .collect();
    for pair in numbers.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "segments not contiguous: {names:?}");
    }
    numbers
}

/// Opens the journal in `dir`, checks that recovery was clean and that the
/// log runs from LSN `first` up to `next`, and returns it.
fn open_clean(dir: &Path, options: Options, first: u64, next: u64, context: &str) -> Journal {
    let (j, report) = Journal::open(dir, options).unwrap_or_else(|e| panic!("{context}: {e}"));
    assert_clean(&report);
    assert_eq!(
        (report.first_lsn, report.next_lsn),
        (first, next),
        "{context}"
    );
    j
}

/// Opens `image`, a crash or power-cut copy of the journal in `dir`: it
/// recovers cleanly to exactly the records `first..next`.
fn assert_image_recovers(dir: &Path, image: MemStorage, first: u64, next: u64, context: &str) {
    let k = open_clean(dir, mem_options(Arc::new(image)), first, next, context);
    assert_records(&read_all(&k), first, next);
    k.close().unwrap();
}

/// Starts removing every segment before the active one on another thread
/// and returns once that removal is held before its first segment.
fn held_removal(
    j: &Arc<Journal>,
    fp: &Failpoints,
) -> JoinHandle<tracejournal::Result<RemovedSegments, JournalError>> {
    fp.arm(names::SEGMENT_BEFORE_REMOVE, Action::Pause);
    let remover = {
        let j = j.clone();
        std::thread::spawn(move || j.remove_segments_before(u64::MAX))
    };
    assert!(fp.wait_paused(names::SEGMENT_BEFORE_REMOVE, WAIT));
    remover
}

fn removes_the_segments_before_an_lsn(env: Env) {
    let options = small(env.options(RecoveryMode::TolerateTornTail));
    let (j, _) = Journal::open(env.dir(), options.clone()).unwrap();
    fill(&j, 50);
    let all = read_all(&j);
    let starts = segment_starts(&all);
    assert!(starts.len() >= 6, "several segments: {starts:?}");
    assert_eq!(env.segment_names().len(), starts.len());
    assert_eq!(j.segment_bytes(), starts.len() as u64 * SEGMENT);

    // LSN 25 sits in some segment S; every segment before S goes.
    let (keep_from, first_kept) = *starts.iter().rev().find(|&&(_, l)| l <= 25).unwrap();
    let removed = j.remove_segments_before(25).unwrap();
    assert_eq!(
        removed,
        RemovedSegments {
            segments: (keep_from - 1) as usize,
            bytes: (keep_from - 1) * SEGMENT,
            first_lsn: first_kept,
        }
    );
    assert!(first_kept > 1 && first_kept <= 25);
    assert_eq!(
        contiguous_numbers(&env.segment_names()),
        (keep_from..=starts.last().unwrap().0).collect::<Vec<_>>(),
        "the removed files are gone"
    );
    assert_eq!(j.first_lsn(), first_kept);
    assert_eq!(
        j.segment_bytes(),
        (starts.len() as u64 - (keep_from - 1)) * SEGMENT
    );
    assert_records(
        &j.read_from(first_kept)
            .unwrap()
            .collect::<tracejournal::Result<Vec<_>, JournalError>>()
            .unwrap(),
        first_kept,
        51,
    );
    // Below the first LSN: a clear error naming the readable range.
    for below in [1, first_kept - 1] {
        match j.read_from(below) {
            Err(JournalError::LsnOutOfRange { lsn, first, end }) => {
                assert_eq!((lsn, first, end), (below, first_kept, 51));
                let msg = JournalError::LsnOutOfRange { lsn, first, end }.to_string();
                assert!(msg.contains(&format!("LSNs {first_kept} up to")), "{msg}");
            }
            Err(e) => panic!("expected LsnOutOfRange, got {e}"),
            Ok(_) => panic!("expected LsnOutOfRange, got a reader"),
        }
    }
    // Nothing more to remove at the same LSN; appends go on.
    assert_eq!(j.remove_segments_before(25).unwrap().segments, 0);
    assert_eq!(j.append(rec(51)).unwrap(), 51);
    assert_eq!(j.poisoned(), None);
    j.close().unwrap();

    // Recovery accepts a log that starts at segment `keep_from`, LSN
    // `first_kept`.
    let (j, report) = Journal::open(env.dir(), options).unwrap();
    assert_clean(&report);
    assert_eq!(report.first_lsn, first_kept);
    assert_eq!(report.next_lsn, 52);
    assert_eq!(report.records, 52 - first_kept);
    assert_eq!(j.first_lsn(), first_kept);
    assert_eq!(j.next_lsn(), 52);
    assert_records(&read_all(&j), first_kept, 52);
    assert_eq!(j.append(rec(52)).unwrap(), 52);
    j.close().unwrap();
}

#[test]
fn removing_segments_before_an_lsn_deletes_them_and_the_rest_reads_and_reopens() {
    removes_the_segments_before_an_lsn(Env::mem());
}

#[test]
fn removing_segments_on_the_real_file_system() {
    removes_the_segments_before_an_lsn(Env::fs());
}

#[test]
fn active_segment_is_never_removed() {
    let (storage, env_dir, options) = mem_journal();
    let (j, _) = Journal::open(&env_dir, options.clone()).unwrap();
    // A fresh journal: one segment, the active one.
    assert_eq!(j.remove_segments_before(u64::MAX).unwrap().segments, 0);
    fill(&j, 30);
    let starts = segment_starts(&read_all(&j));
    let &(active, active_first) = starts.last().unwrap();
    assert!(active > 1);
    let removed = j.remove_segments_before(u64::MAX).unwrap();
    assert_eq!(removed.segments, starts.len() - 1);
    assert_eq!(removed.first_lsn, active_first);
    assert_eq!(
        contiguous_numbers(&storage.names(&env_dir)),
        vec![active],
        "only the active segment is left"
    );
    assert_eq!(j.segment_bytes(), SEGMENT);
    assert_records(&read_all(&j), active_first, 31);
    // Again: still nothing removes the active segment.
    assert_eq!(j.remove_segments_before(u64::MAX).unwrap().segments, 0);
    // It keeps taking records, and the log rotates on from it.
    fill(&j, 20);
    assert_records(&read_all(&j), active_first, 51);
    j.close().unwrap();
    open_clean(&env_dir, options, active_first, 51, "reopen")
        .close()
        .unwrap();
}

#[test]
fn failed_removal_leaves_a_contiguous_suffix_and_does_not_poison() {
    let (storage, dir, options) = mem_journal();
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(&dir, options.clone()).unwrap();
    fill(&j, 40);
    let starts = segment_starts(&read_all(&j));
    assert!(starts.len() >= 5);
    let j = Arc::new(j);

    // Let the first removal through, fail the second: hold the first hit,
    // then re-arm the point with Fail (which also releases the held hit).
    let remover = held_removal(&j, &fp);
    fp.arm(
        names::SEGMENT_BEFORE_REMOVE,
        Action::Fail(io::ErrorKind::Other),
    );
    match remover.join().unwrap() {
        Err(JournalError::Io { op, path, source }) => {
            assert_eq!(op, "remove segment");
            assert_eq!(source.kind(), io::ErrorKind::Other);
            assert_eq!(
                path,
                dir.join(segment::file_name(2)),
                "failed on the second"
            );
        }
        other => panic!("expected the injected I/O error, got {other:?}"),
    }
    assert_eq!(fp.hits(names::SEGMENT_BEFORE_REMOVE), 2);
    fp.release(names::SEGMENT_BEFORE_REMOVE);

    // Exactly segment 1 is gone, in memory and on disk.
    let last = starts.last().unwrap().0;
    assert_eq!(
        contiguous_numbers(&storage.names(&dir)),
        (2..=last).collect::<Vec<_>>()
    );
    assert_eq!(j.first_lsn(), starts[1].1);
    assert_records(&read_all(&j), starts[1].1, 41);
    // Not a durability failure: the journal goes on.
    assert_eq!(j.poisoned(), None);
    assert_eq!(j.append(rec(41)).unwrap(), 41);

    // A crash now (the journal is not closed): the image opens cleanly.
    assert_image_recovers(&dir, storage.snapshot(), starts[1].1, 42, "crash image");

    // Retrying finishes the job.
    let removed = j.remove_segments_before(u64::MAX).unwrap();
    assert_eq!(removed.segments, starts.len() - 2);
    assert_eq!(contiguous_numbers(&storage.names(&dir)), vec![last]);
    Arc::into_inner(j).unwrap().close().unwrap();
    open_clean(&dir, options, removed.first_lsn, 42, "reopen")
        .close()
        .unwrap();
}

/// A [`MemStorage`] that, while `armed`, logs segment removals and
/// directory syncs and takes a power-cut image before each removal and
/// after each directory sync.
struct Recording {
    inner: MemStorage,
    armed: AtomicBool,
    ops: Mutex<Vec<String>>,
    images: Mutex<Vec<MemStorage>>,
    rng: Mutex<Rng>,
}

impl Recording {
    fn new(inner: MemStorage) -> Recording {
        Recording {
            inner,
            armed: AtomicBool::new(false),
            ops: Mutex::new(Vec::new()),
            images: Mutex::new(Vec::new()),
            rng: Mutex::new(Rng::new(0x5e9)),
        }
    }

    fn image(&self) {
        let image = self.inner.crash_image(&mut self.rng.lock());
        self.images.lock().push(image);
    }
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("inner", &self.inner)
            .finish()
    }
}

impl Storage for Recording {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        self.inner.open(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let segment = segment::parse_file_name(&name).is_some();
        if segment && self.armed.load(Ordering::SeqCst) {
            self.image();
            self.ops.lock().push(format!("remove {name}"));
        }
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let result = self.inner.sync_dir(dir);
        if self.armed.load(Ordering::SeqCst) {
            self.ops.lock().push("sync_dir".into());
            self.image();
        }
        result
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        self.inner.lock(path)
    }
}

#[test]
fn power_cut_at_any_step_of_a_removal_leaves_a_contiguous_journal() {
    let mem = MemStorage::new();
    let dir = common::mem_dir();
    let recording = Arc::new(Recording::new(mem.clone()));
    let options = mem_options(recording.clone());
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(&dir, options).unwrap();
    fill(&j, 60);
    let starts = segment_starts(&read_all(&j));
    let doomed = starts.len() - 1;
    assert!(doomed >= 6);

    fp.arm(names::SEGMENT_BEFORE_REMOVE, Action::Observe);
    recording.armed.store(true, Ordering::SeqCst);
    let removed = j.remove_segments_before(u64::MAX).unwrap();
    recording.armed.store(false, Ordering::SeqCst);
    assert_eq!(removed.segments, doomed);
    assert_eq!(fp.hits(names::SEGMENT_BEFORE_REMOVE), doomed as u64);

    // Oldest first, each removal made durable before the next one.
    let expected_ops: Vec<String> = (1..=doomed as u64)
        .flat_map(|n| {
            [
                format!("remove {}", segment::file_name(n)),
                "sync_dir".into(),
            ]
        })
        .collect();
    assert_eq!(*recording.ops.lock(), expected_ops);
    j.close().unwrap();

    let images = std::mem::take(&mut *recording.images.lock());
    assert_eq!(images.len(), 2 * doomed);
    for (step, image) in images.into_iter().enumerate() {
        let names = image.names(&dir);
        let numbers = contiguous_numbers(&names);
        let gone = (step / 2 + step % 2) as u64;
        assert_eq!(numbers.first(), Some(&(gone + 1)), "step {step}: {names:?}");
        let first = starts[gone as usize].1;
        assert_image_recovers(&dir, image, first, 61, &format!("step {step}"));
    }
}

#[test]
fn appends_go_on_and_a_power_cut_is_harmless_while_a_removal_is_held() {
    let (storage, dir, options) = mem_journal();
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(&dir, options).unwrap();
    fill(&j, 30);
    let starts = segment_starts(&read_all(&j));
    // The log starts at segment 2.
    assert_eq!(j.remove_segments_before(starts[1].1).unwrap().segments, 1);
    let j = Arc::new(j);
    // The next removal is held before its first segment; appends (and the
    // rotation they cause) go through meanwhile.
    let remover = held_removal(&j, &fp);
    fill(&j, 10);
    let image = storage.crash_image(&mut Rng::new(7));
    fp.release(names::SEGMENT_BEFORE_REMOVE);
    let removed = remover.join().unwrap().unwrap();
    // What the held call saw: segments 2 up to the one active then.
    assert_eq!(removed.segments, starts.len() - 2);
    assert!(j.first_lsn() <= 31);
    assert_records(&read_all(&j), j.first_lsn(), 41);
    Arc::into_inner(j).unwrap().close().unwrap();

    let numbers = contiguous_numbers(&image.names(&dir));
    assert_eq!(numbers[0], 2);
    assert_image_recovers(&dir, image, starts[1].1, 41, "crash image");
}

#[test]
fn removal_runs_concurrently_with_appends_and_rotation() {
    let (storage, dir, options) = mem_journal();
    let (j, _) = Journal::open(&dir, options.clone()).unwrap();
    let j = Arc::new(j);
    let (acked_tx, acked_rx) = crossbeam_channel::unbounded();
    let appender = {
        let j = j.clone();
        std::thread::spawn(move || {
            for i in 1..=300u64 {
                assert_eq!(j.append(rec(i)).unwrap(), i);
                acked_tx.send(i).unwrap();
            }
        })
    };
    let mut removed_total = 0;
    for acked in acked_rx {
        // Remove behind the appender, while it rotates.
        let removed = j.remove_segments_before(acked.saturating_sub(10)).unwrap();
        removed_total += removed.segments;
        let first = j.first_lsn();
        assert!(first <= acked.saturating_sub(10).max(1));
        // Up to `acked` only: MemStorage maps a copy of the file, so bytes
        // written after the map would read as zeros (a real map is live).
        let back: Vec<LogRecord> = j
            .read_from(first)
            .unwrap()
            .take((acked + 1 - first) as usize)
            .collect::<tracejournal::Result<_, JournalError>>()
            .unwrap();
        assert_records(&back, first, acked + 1);
    }
    appender.join().unwrap();
    assert!(removed_total >= 30, "removed {removed_total}");
    let first = j.first_lsn();
    assert_records(&read_all(&j), first, 301);
    let names = storage.names(&dir);
    assert_eq!(
        contiguous_numbers(&names).len() as u64 * SEGMENT,
        j.segment_bytes()
    );
    Arc::into_inner(j).unwrap().close().unwrap();
    open_clean(&dir, options, first, 301, "reopen")
        .close()
        .unwrap();
}

/// A reader in the middle of a segment that is removed under it finishes
/// that segment (its file stays open) and goes on into the next one.
///
/// Ignored: `Reader` (src/reader.rs) indexes the live segment list, so after
/// a removal from the front its index points past the segments it has not
/// read yet and it silently skips them.
#[test]
fn reader_in_a_removed_segment_continues_into_the_next() {
    let storage = MemStorage::new();
    let dir = common::mem_dir();
    let (j, _) = Journal::open(&dir, mem_options(Arc::new(storage))).unwrap();
    fill(&j, 40);
    let starts = segment_starts(&read_all(&j));
    let mut reader = j.read_from(1).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().lsn, 1);
    // Segments 1 and 2 go while the reader is in segment 1.
    let removed = j.remove_segments_before(starts[2].1).unwrap();
    assert_eq!(removed.segments, 2);
    let rest: Vec<LogRecord> = reader
        .collect::<tracejournal::Result<_, JournalError>>()
        .unwrap();
    assert_records(&rest, 2, 41);
    j.close().unwrap();
}

#[test]
fn urgent_batch_is_contiguous_overtakes_queued_appends_and_is_durable() {
    let (_, dir, options) = mem_journal();
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(&dir, options.clone()).unwrap();
    assert_eq!(j.append(rec(1)).unwrap(), 1);
    // One normal append held before its sync, two queued behind it.
    fp.arm(names::WRITER_BEFORE_SYNC, Action::Pause);
    let in_flight = j.submit(rec(2)).unwrap();
    assert!(fp.wait_paused(names::WRITER_BEFORE_SYNC, WAIT));
    let queued = [j.submit(rec(8)).unwrap(), j.submit(rec(9)).unwrap()];
    let j = Arc::new(j);
    fp.arm(names::URGENT_QUEUED, Action::Observe);
    let urgent = {
        let j = j.clone();
        std::thread::spawn(move || {
            let range = j.append_urgent_batch((3..8).map(rec).collect()).unwrap();
            assert!(j.durable_lsn() >= range.end, "urgent batch not durable");
            range
        })
    };
    assert!(fp.wait_hits(names::URGENT_QUEUED, 1, WAIT));
    fp.release(names::WRITER_BEFORE_SYNC);
    assert_eq!(urgent.join().unwrap(), 3..8);
    assert_eq!(in_flight.wait().unwrap(), 2);
    let [a, b] = queued;
    assert_eq!((a.wait().unwrap(), b.wait().unwrap()), (8, 9));
    assert_records(&read_all(&j), 1, 10);

    // A batch that does not fit in the active segment moves to the next
    // one whole; an empty batch is an empty range; an invalid record
    // rejects the whole batch.
    let range = j.append_urgent_batch((10..16).map(rec).collect()).unwrap();
    assert_eq!(range, 10..16);
    let back = read_all(&j);
    let segments: Vec<u64> = back[9..].iter().map(|r| r.segment).collect();
    assert!(segments.iter().all(|&s| s == segments[0]), "{segments:?}");
    assert_eq!(j.append_urgent_batch(Vec::new()).unwrap(), 16..16);
    let bad = vec![rec(16), Record::new(0, b"reserved type".to_vec())];
    assert!(matches!(
        j.append_urgent_batch(bad),
        Err(JournalError::InvalidRecord { index: 1, .. })
    ));
    assert_eq!(j.next_lsn(), 16);
    Arc::into_inner(j).unwrap().close().unwrap();
    let (j, report) = Journal::open(&dir, options).unwrap();
    assert_clean(&report);
    assert_records(&read_all(&j), 1, 16);
    j.close().unwrap();
}

#[test]
fn urgent_ticket_wait_timeout_gives_the_ticket_back_while_the_writer_is_held() {
    let (_, dir, options) = mem_journal();
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(&dir, options).unwrap();
    assert_eq!(j.append(rec(1)).unwrap(), 1);
    // A normal append held before its sync, one queued behind it; the
    // urgent record goes in right after the one in flight.
    fp.arm(names::WRITER_BEFORE_SYNC, Action::Pause);
    let in_flight = j.submit(rec(2)).unwrap();
    assert!(fp.wait_paused(names::WRITER_BEFORE_SYNC, WAIT));
    let queued = j.submit(rec(4)).unwrap();
    let urgent = j.submit_urgent(rec(3)).unwrap();
    // The writer cannot sync: the wait times out and hands the ticket back.
    let urgent = urgent
        .wait_timeout(Duration::ZERO)
        .expect_err("resolved while the writer is held");
    let urgent = urgent
        .wait_timeout(Duration::from_millis(20))
        .expect_err("resolved while the writer is held");
    assert!(!urgent.is_ready());
    fp.release(names::WRITER_BEFORE_SYNC);
    let lsn = urgent
        .wait_timeout(WAIT)
        .expect("resolved after the release")
        .unwrap();
    assert_eq!(lsn, 3);
    assert!(j.durable_lsn() > 3);
    assert_eq!(in_flight.wait().unwrap(), 2);
    assert_eq!(queued.wait().unwrap(), 4);
    assert_records(&read_all(&j), 1, 5);
    j.close().unwrap();
}

#[test]
fn segment_bytes_counts_every_segment_file() {
    let env = Env::mem();
    let (j, _) = Journal::open(env.dir(), small(env.options(RecoveryMode::default()))).unwrap();
    assert_eq!(j.segment_bytes(), SEGMENT);
    fill(&j, 20);
    let files = env.segment_names().len() as u64;
    assert!(files >= 3);
    assert_eq!(j.segment_bytes(), files * SEGMENT);
    let on_disk: u64 = env
        .segment_names()
        .iter()
        .map(|n| env.read(n).len() as u64)
        .sum();
    assert_eq!(j.segment_bytes(), on_disk);
    j.close().unwrap();
}
