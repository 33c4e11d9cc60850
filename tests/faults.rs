//! Failures and pressure: failed syncs and writes poison the journal,
//! rotation failures, a full disk, a full queue, the urgent lane, the
//! directory lock, close and drop (src/writer.rs, src/journal.rs).
//!
//! Ordering is made deterministic with failpoints (`Action::Pause`), never
//! with sleeps.

mod common;

use common::{fs_options, read_all};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracejournal::testkit::failpoint::{names, Action};
use tracejournal::testkit::wal::segment;
use tracejournal::{Durability, Journal, JournalError, Options, Record, RecoveryReport, Ticket};

const WAIT: Duration = Duration::from_secs(30);

fn rec(tag: &str, i: u64) -> Record {
    Record::new(1, format!("{tag} {i}").into_bytes())
}

fn open(dir: &Path) -> (Journal, RecoveryReport) {
    Journal::open(dir, fs_options()).unwrap()
}

fn payloads(j: &Journal) -> Vec<Vec<u8>> {
    read_all(j).into_iter().map(|r| r.payload).collect()
}

fn is_poisoned<T: std::fmt::Debug>(r: &tracejournal::Result<T, JournalError>) -> bool {
    matches!(r, Err(JournalError::Poisoned { .. }))
}

#[test]
fn failed_fsync_poisons_and_nothing_is_acknowledged_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let options = fs_options();
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(dir.path(), options).unwrap();
    for i in 1..=5 {
        assert_eq!(
            j.append_with(rec("before", i), Durability::Sync).unwrap(),
            i
        );
    }
    let durable_before = j.durable_lsn();
    assert_eq!(durable_before, 6);

    // One group in flight, held before its write; twelve more appends from
    // four threads queued behind it.
    fp.arm(names::WRITER_BEFORE_WRITE, Action::Pause);
    let first = j.submit_with(rec("failed", 0), Durability::Sync).unwrap();
    assert!(fp.wait_paused(names::WRITER_BEFORE_WRITE, WAIT));
    let j = Arc::new(j);
    let queued: Vec<Ticket> = (0..4u64)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                (0..3u64)
                    .map(|k| {
                        j.submit_with(rec("failed", 1 + t * 3 + k), Durability::Sync)
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .flat_map(|h| h.join().unwrap())
        .collect();
    fp.arm(
        names::WRITER_BEFORE_SYNC,
        Action::Fail(io::ErrorKind::Other),
    );
    fp.release(names::WRITER_BEFORE_WRITE);

    let first = first.wait();
    match &first {
        Err(JournalError::Io { op, source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::Other);
            assert!(op.contains("sync"), "{op}");
        }
        other => panic!("the group whose fsync failed: {other:?}"),
    }
    // Every appender waits in its own thread; none is acknowledged.
    let waiters: Vec<_> = queued
        .into_iter()
        .map(|t| std::thread::spawn(move || t.wait()))
        .collect();
    for w in waiters {
        let r = w.join().unwrap();
        assert!(
            matches!(
                r,
                Err(JournalError::Io { .. }) | Err(JournalError::Poisoned { .. })
            ),
            "queued append after a failed fsync: {r:?}"
        );
    }
    assert!(j.poisoned().is_some());
    // Later appends, from any thread, at any durability, and sync() fail.
    let later: Vec<_> = (0..4u64)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                let d = [Durability::Sync, Durability::Buffered, Durability::None][t as usize % 3];
                j.append_with(rec("later", t), d)
            })
        })
        .collect();
    for h in later {
        let r = h.join().unwrap();
        assert!(is_poisoned(&r), "{r:?}");
    }
    assert!(is_poisoned(&j.sync()));
    assert!(is_poisoned(&j.append_batch(vec![rec("b", 1), rec("b", 2)])));
    assert!(is_poisoned(&j.append_urgent(rec("urgent", 1))));
    assert_eq!(j.durable_lsn(), durable_before, "nothing became durable");
    // Releasing the failpoint does not unpoison: only a reopen does.
    fp.release_all();
    assert!(is_poisoned(&j.append(rec("later", 9))));
    let j = Arc::into_inner(j).unwrap();
    assert!(is_poisoned(&j.close()));

    let (j, report) = open(dir.path());
    let back = payloads(&j);
    // Every acknowledged record is there. The one whose fsync failed may be
    // too (its write reached the OS); nothing that was never written is.
    assert!(back.len() == 5 || back.len() == 6, "{} records", back.len());
    for (i, p) in back.iter().enumerate().take(5) {
        assert_eq!(p, &rec("before", i as u64 + 1).payload);
    }
    if back.len() == 6 {
        assert_eq!(back[5], rec("failed", 0).payload);
    }
    let lsn = j.append(rec("after", 1)).unwrap();
    assert_eq!(lsn, report.next_lsn);
    assert_eq!(lsn, back.len() as u64 + 1);
    j.close().unwrap();
}

#[test]
fn second_open_of_the_same_directory_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = open(dir.path());
    j.append(rec("x", 1)).unwrap();
    match Journal::open(dir.path(), fs_options()) {
        Err(e @ JournalError::Locked { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&dir.path().display().to_string()),
                "message names the directory: {msg}"
            );
            match e {
                JournalError::Locked { dir: d } => assert_eq!(d, dir.path()),
                _ => unreachable!(),
            }
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("second open of a locked directory succeeded"),
    }
    assert!(matches!(
        Journal::inspect(dir.path(), &fs_options()),
        Err(JournalError::Locked { .. })
    ));
    // The refused open changed nothing.
    assert_eq!(payloads(&j), vec![rec("x", 1).payload]);
    j.close().unwrap();
    let (j, report) = open(dir.path());
    assert_eq!(report.records, 1);
    j.close().unwrap();
    // Dropping (rather than closing) also releases the lock.
    let (j, _) = open(dir.path());
    drop(j);
    let (j, _) = open(dir.path());
    j.close().unwrap();
}

/// A journal whose one-slot queue is full: the writer is paused before the
/// sync of `in_flight`, and `queued` waits behind it. Appends that need
/// queue room time out after 50 ms.
struct FullQueue {
    dir: tempfile::TempDir,
    fp: tracejournal::testkit::failpoint::Failpoints,
    j: Journal,
    in_flight: Ticket,
    queued: Ticket,
}

fn full_queue(tag: &str) -> FullQueue {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        queue_capacity: 1,
        append_timeout: Duration::from_millis(50),
        ..fs_options()
    };
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(dir.path(), options).unwrap();
    fp.arm(names::WRITER_BEFORE_SYNC, Action::Pause);
    let in_flight = j.submit(rec(tag, 1)).unwrap();
    assert!(fp.wait_paused(names::WRITER_BEFORE_SYNC, WAIT));
    // The writer holds one request; the queue has room for one more.
    let queued = j.submit(rec(tag, 2)).unwrap();
    FullQueue {
        dir,
        fp,
        j,
        in_flight,
        queued,
    }
}

#[test]
fn full_queue_gives_busy_and_drops_nothing() {
    let FullQueue {
        dir,
        fp,
        j,
        in_flight,
        queued,
    } = full_queue("accepted");
    let started = Instant::now();
    match j.submit(rec("rejected", 3)) {
        Err(JournalError::Busy { waited }) => assert_eq!(waited, Duration::from_millis(50)),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(matches!(
        j.append_with(rec("rejected", 4), Durability::Buffered),
        Err(JournalError::Busy { .. })
    ));
    assert!(matches!(
        j.append_batch(vec![rec("rejected", 5), rec("rejected", 6)]),
        Err(JournalError::Busy { .. })
    ));
    assert!(!in_flight.is_ready() && !queued.is_ready());
    fp.release(names::WRITER_BEFORE_SYNC);
    assert_eq!(in_flight.wait().unwrap(), 1);
    assert_eq!(queued.wait().unwrap(), 2);
    assert_eq!(j.poisoned(), None, "Busy does not poison");
    assert_eq!(j.append(rec("accepted", 3)).unwrap(), 3);
    j.close().unwrap();
    let (j, _) = open(dir.path());
    assert_eq!(
        payloads(&j),
        (1..=3)
            .map(|i| rec("accepted", i).payload)
            .collect::<Vec<_>>()
    );
    j.close().unwrap();
}

#[test]
fn urgent_append_overtakes_queued_appends_and_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let options = fs_options();
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(dir.path(), options).unwrap();
    assert_eq!(j.append(rec("normal", 0)).unwrap(), 1);
    // One normal append in flight, held before its fsync.
    fp.arm(names::WRITER_BEFORE_SYNC, Action::Pause);
    let in_flight = j.submit(rec("normal", 1)).unwrap();
    assert!(fp.wait_paused(names::WRITER_BEFORE_SYNC, WAIT));
    // Normal appends queue up behind it.
    let queued: Vec<Ticket> = (2..=6)
        .map(|i| {
            let d = if i % 2 == 0 {
                Durability::Sync
            } else {
                Durability::Buffered
            };
            j.submit_with(rec("normal", i), d).unwrap()
        })
        .collect();
    // The urgent append comes from another thread.
    let j = Arc::new(j);
    fp.arm(names::URGENT_QUEUED, Action::Observe);
    let urgent = {
        let j = j.clone();
        std::thread::spawn(move || {
            let lsn = j.append_urgent(rec("urgent", 0)).unwrap();
            // Durable when it returns.
            assert!(j.durable_lsn() > lsn, "urgent record not durable on return");
            lsn
        })
    };
    // Deterministic: the journal reports the urgent request queued.
    assert!(fp.wait_hits(names::URGENT_QUEUED, 1, WAIT));
    fp.release(names::WRITER_BEFORE_SYNC);

    let urgent_lsn = urgent.join().unwrap();
    assert_eq!(in_flight.wait().unwrap(), 2);
    let queued: Vec<u64> = queued.into_iter().map(|t| t.wait().unwrap()).collect();
    assert_eq!(urgent_lsn, 3, "written right after the group in flight");
    assert!(
        queued.iter().all(|&l| l > urgent_lsn),
        "urgent LSN {urgent_lsn}, queued {queued:?}"
    );
    assert_eq!(
        queued,
        vec![4, 5, 6, 7, 8],
        "queued appends keep their order"
    );
    let j = Arc::into_inner(j).unwrap();
    j.close().unwrap();
    let (j, _) = open(dir.path());
    let back = read_all(&j);
    assert_eq!(back[2].payload, rec("urgent", 0).payload);
    assert_eq!(back.len(), 8);
    j.close().unwrap();
}

/// Appends ~1000-byte records with `Sync` until one fails; returns the
/// acknowledged payloads and the error.
fn append_until_error(j: &Journal) -> (Vec<Vec<u8>>, JournalError) {
    let mut acked = Vec::new();
    for i in 0..1000u64 {
        let mut r = rec("big", i);
        r.payload.resize(1000, b'.');
        match j.append_with(r.clone(), Durability::Sync) {
            Ok(lsn) => {
                assert_eq!(lsn, i + 1);
                acked.push(r.payload);
            }
            Err(e) => return (acked, e),
        }
    }
    panic!("no append failed (no rotation?)");
}

#[test]
fn failure_during_rotation_poisons_and_keeps_every_acked_record() {
    for point in [
        names::SEGMENT_ROTATE,
        names::SEGMENT_BEFORE_RENAME,
        names::SEGMENT_AFTER_RENAME,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let options = fs_options();
        let fp = options.failpoints.clone();
        let (j, _) = Journal::open(dir.path(), options).unwrap();
        fp.arm(point, Action::Fail(io::ErrorKind::Other));
        let (acked, err) = append_until_error(&j);
        assert!(
            matches!(err, JournalError::Io { .. }),
            "{point}: rotation failure: {err}"
        );
        // The failing append was the one that needed the next segment.
        assert!(acked.len() > 50, "{point}: failed after {}", acked.len());
        assert!(j.poisoned().is_some(), "{point}");
        assert!(is_poisoned(&j.append(rec("x", 1))), "{point}");
        assert!(is_poisoned(&j.sync()), "{point}");
        assert!(is_poisoned(&j.close()), "{point}");

        let (j, report) = open(dir.path());
        assert!(
            report.truncated.is_empty() && report.damage.is_empty(),
            "{point}"
        );
        // The spare whose installation failed stays a spare (not a stale
        // temp file) and is adopted for the next segment.
        assert!(report.removed_temp_files.is_empty(), "{point}: {report:?}");
        if point == names::SEGMENT_BEFORE_RENAME {
            assert!(
                dir.path().join(segment::spare_name(2)).exists(),
                "{point}: the spare is kept"
            );
        }
        assert_eq!(payloads(&j), acked, "{point}");
        // Appends continue, across the rotation that failed before.
        let more = 80;
        for i in 0..more {
            let mut r = rec("more", i);
            r.payload.resize(1000, b'.');
            assert_eq!(
                j.append_with(r, Durability::Sync).unwrap(),
                acked.len() as u64 + i + 1
            );
        }
        j.close().unwrap();
        let (j, report) = open(dir.path());
        assert!(report.segments >= 2, "{point}");
        assert_eq!(report.records, acked.len() as u64 + more, "{point}");
        j.close().unwrap();
    }
}

#[test]
fn failed_background_preallocation_is_retried_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let options = fs_options();
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(dir.path(), options).unwrap();
    fp.arm(
        names::PREALLOCATE,
        Action::FailTimes(io::ErrorKind::Other, 1),
    );
    for i in 1..=150u64 {
        let mut r = rec("big", i);
        r.payload.resize(1000, b'.');
        assert_eq!(j.append_with(r, Durability::Sync).unwrap(), i);
    }
    assert_eq!(fp.hits(names::PREALLOCATE), 1);
    assert_eq!(j.poisoned(), None);
    j.close().unwrap();
    let (j, report) = open(dir.path());
    assert!(report.segments >= 2);
    assert_eq!(report.records, 150);
    j.close().unwrap();
}

#[test]
fn storage_full_is_reported_and_corrupts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = fs_options();
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(dir.path(), options).unwrap();
    let mut acked = Vec::new();
    for i in 1..=10 {
        let d = if i % 2 == 0 {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        assert_eq!(j.append_with(rec("ok", i), d).unwrap(), i);
        acked.push(rec("ok", i).payload);
    }
    fp.arm(
        names::WRITER_BEFORE_WRITE,
        Action::Fail(io::ErrorKind::StorageFull),
    );
    let err = j.append(rec("full", 1)).unwrap_err();
    assert!(err.is_storage_full(), "{err}");
    let err = j
        .append_with(rec("full", 2), Durability::Buffered)
        .unwrap_err();
    assert!(matches!(err, JournalError::Poisoned { .. }), "{err}");
    fp.release_all();
    let _ = j.close();

    let (j, report) = open(dir.path());
    assert!(report.truncated.is_empty() && report.damage.is_empty());
    assert_eq!(payloads(&j), acked);
    assert_eq!(j.append(rec("ok", 11)).unwrap(), 11);
    j.close().unwrap();
    let (j, report) = open(dir.path());
    assert_eq!(report.records, 11);
    j.close().unwrap();
}

#[test]
fn close_drains_every_queued_append() {
    let dir = tempfile::tempdir().unwrap();
    let options = fs_options();
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(dir.path(), options).unwrap();
    fp.arm(names::WRITER_BEFORE_WRITE, Action::Pause);
    let first = j.submit(rec("q", 1)).unwrap();
    assert!(fp.wait_paused(names::WRITER_BEFORE_WRITE, WAIT));
    let tickets: Vec<Ticket> = [Durability::None, Durability::Buffered, Durability::Sync]
        .into_iter()
        .enumerate()
        .map(|(i, d)| j.submit_with(rec("q", i as u64 + 2), d).unwrap())
        .collect();
    // Fire-and-forget: the ticket is dropped at once.
    drop(j.submit_with(rec("q", 5), Durability::None).unwrap());
    // `close` queues behind them and waits; it consumes the journal, so no
    // append can follow it (the compiler rejects `j.append` after
    // `j.close()`).
    let closer = std::thread::spawn(move || j.close());
    fp.release(names::WRITER_BEFORE_WRITE);
    closer.join().unwrap().unwrap();
    assert_eq!(first.wait().unwrap(), 1);
    for (i, t) in tickets.into_iter().enumerate() {
        assert_eq!(t.wait().unwrap(), i as u64 + 2);
    }
    let (j, report) = open(dir.path());
    assert!(report.truncated.is_empty());
    assert_eq!(
        payloads(&j),
        (1..=5).map(|i| rec("q", i).payload).collect::<Vec<_>>()
    );
    j.close().unwrap();
}

#[test]
fn drop_without_close_keeps_buffered_and_fire_and_forget_records() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = open(dir.path());
    for i in 1..=20 {
        assert_eq!(
            j.append_with(rec("buffered", i), Durability::Buffered)
                .unwrap(),
            i
        );
    }
    for i in 21..=40 {
        drop(j.submit_with(rec("buffered", i), Durability::None).unwrap());
    }
    drop(j);
    let (j, report) = open(dir.path());
    assert_eq!(report.records, 40);
    assert!(report.truncated.is_empty());
    assert_eq!(
        payloads(&j),
        (1..=40)
            .map(|i| rec("buffered", i).payload)
            .collect::<Vec<_>>()
    );
    j.close().unwrap();
}

#[test]
fn tickets_outlive_a_dropped_journal() {
    // A ticket whose journal is dropped before it is waited on still
    // resolves: Ok if the record was written, never a hang.
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = open(dir.path());
    let t = j.submit_with(rec("t", 1), Durability::Sync).unwrap();
    drop(j);
    assert_eq!(t.wait().unwrap(), 1);
    // The record the ticket acknowledged is really there.
    let (j, report) = open(dir.path());
    assert_eq!(report.records, 1);
    assert_eq!(read_all(&j)[0].payload, rec("t", 1).payload);
}

#[test]
fn urgent_append_never_waits_for_queue_room() {
    let FullQueue {
        dir: _dir,
        fp,
        j,
        in_flight,
        queued,
    } = full_queue("normal");
    // The queue is full.
    let j = Arc::new(j);
    fp.arm(names::URGENT_QUEUED, Action::Observe);
    let urgent = {
        let j = j.clone();
        std::thread::spawn(move || j.append_urgent(rec("urgent", 0)))
    };
    // Deterministic: the journal reports the urgent request queued.
    assert!(fp.wait_hits(names::URGENT_QUEUED, 1, WAIT));
    // A normal append now waits out the whole timeout; had the urgent one
    // gone through the full queue, it would have timed out too.
    assert!(matches!(
        j.submit(rec("normal", 3)),
        Err(JournalError::Busy { .. })
    ));
    fp.release(names::WRITER_BEFORE_SYNC);
    assert_eq!(urgent.join().unwrap().unwrap(), 2);
    assert_eq!(in_flight.wait().unwrap(), 1);
    assert_eq!(queued.wait().unwrap(), 3);
    Arc::into_inner(j).unwrap().close().unwrap();
}

/// A failure while recovery sets a segment aside is an I/O error, changes
/// nothing it should not, and the next open (without the fault) finishes
/// the job.
#[test]
fn failure_while_setting_a_segment_aside_is_an_io_error_and_retryable() {
    use tracejournal::RecoveryMode;
    let dir = tempfile::tempdir().unwrap();
    let small = || Options {
        segment_size: 4096,
        max_record_size: 1024,
        ..Options::default()
    };
    let (j, _) = Journal::open(dir.path(), small()).unwrap();
    for i in 0..40u8 {
        j.append(Record::new(1, vec![i; 200])).unwrap();
    }
    j.close().unwrap();
    // Damage segment 1's first record: PointInTime keeps nothing after it.
    let seg1 = dir.path().join("00000000000000000001.seg");
    let mut bytes = std::fs::read(&seg1).unwrap();
    bytes[64 + 40] ^= 0xFF;
    std::fs::write(&seg1, &bytes).unwrap();
    let options = Options {
        recovery_mode: RecoveryMode::PointInTime,
        ..small()
    };
    options.failpoints.arm(
        tracejournal::testkit::failpoint::names::RECOVERY_BEFORE_SET_ASIDE,
        tracejournal::testkit::failpoint::Action::Fail(std::io::ErrorKind::Other),
    );
    match Journal::open(dir.path(), options) {
        Err(tracejournal::JournalError::Io { op, .. }) => assert_eq!(op, "set aside segment"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert!(dir.path().join("00000000000000000002.seg").exists());
    let (j, report) = Journal::open(
        dir.path(),
        Options {
            recovery_mode: RecoveryMode::PointInTime,
            ..small()
        },
    )
    .unwrap();
    assert_eq!(report.records, 0);
    assert!(!report.set_aside.is_empty());
    assert!(!dir.path().join("00000000000000000002.seg").exists());
    assert_eq!(j.append(Record::new(1, b"fresh".to_vec())).unwrap(), 1);
}
