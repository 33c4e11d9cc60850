//! Group commit really groups: appenders that queue while a sync is in
//! flight share the next single `fdatasync`. A writer that syncs once per
//! record fails this test. Deterministic: the writer is held at a failpoint,
//! not raced with sleeps.

use std::time::Duration;
use tracejournal::testkit::failpoint::{names, Action};
use tracejournal::{Durability, Journal, Options, Record};

#[test]
fn appends_queued_during_a_sync_share_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        segment_size: 1 << 20,
        ..Options::default()
    };
    let fp = options.failpoints.clone();
    let (journal, _) = Journal::open(dir.path(), options).unwrap();
    fp.arm(names::WRITER_AFTER_SYNC, Action::Observe);
    fp.arm(names::WRITER_BEFORE_SYNC, Action::Pause);

    std::thread::scope(|s| {
        let first = s.spawn(|| journal.append(Record::new(1, vec![0u8; 300])).unwrap());
        assert!(fp.wait_paused(names::WRITER_BEFORE_SYNC, Duration::from_secs(10)));
        // The writer is inside the first group's sync; these 20 queue up.
        let tickets: Vec<_> = (0..20u8)
            .map(|i| {
                journal
                    .submit_with(Record::new(1, vec![i; 300]), Durability::Sync)
                    .unwrap()
            })
            .collect();
        assert!(
            tickets.iter().all(|t| !t.is_ready()),
            "acked before its sync"
        );
        fp.release(names::WRITER_BEFORE_SYNC);
        assert_eq!(first.join().unwrap(), 1);
        let lsns: Vec<u64> = tickets.into_iter().map(|t| t.wait().unwrap()).collect();
        assert_eq!(lsns, (2..=21).collect::<Vec<_>>());
    });
    assert_eq!(
        fp.hits(names::WRITER_AFTER_SYNC),
        2,
        "21 records should need exactly 2 fdatasyncs"
    );
    assert_eq!(journal.durable_lsn(), 22);
    journal.close().unwrap();
}

#[test]
fn buffered_appends_are_acked_without_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        segment_size: 1 << 20,
        durability: Durability::Buffered,
        ..Options::default()
    };
    let fp = options.failpoints.clone();
    let (journal, _) = Journal::open(dir.path(), options).unwrap();
    // A sync would block forever here; Buffered appends must not need one.
    fp.arm(names::WRITER_BEFORE_SYNC, Action::Pause);
    for i in 0..100u8 {
        journal.append(Record::new(1, vec![i; 64])).unwrap();
    }
    assert_eq!(journal.next_lsn(), 101);
    assert_eq!(journal.durable_lsn(), 1, "nothing was synced yet");
    fp.release(names::WRITER_BEFORE_SYNC);
    journal.sync().unwrap();
    assert_eq!(journal.durable_lsn(), 101);
    journal.close().unwrap();
}
