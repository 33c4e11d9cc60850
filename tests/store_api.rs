//! The session store's API promises that the acceptance scenarios do not
//! cover one by one: idempotency across restarts, subscriptions, the crash
//! path with a stuck writer, `mark_all_open_crashed`, and a log that stays
//! bounded under steady ingest into sessions that never end.

mod common;

use common::sessions::ReleaseOnDrop;
use std::time::{Duration, Instant};
use tracejournal::event::parse_line;
use tracejournal::model::Status;
use tracejournal::testkit::failpoint::{names, Action, Failpoints};
use tracejournal::{OrphanPolicy, Store, StoreOptions};

fn ingest(store: &Store, line: &str) -> tracejournal::Ack {
    store.ingest(parse_line(line).unwrap()).unwrap()
}

/// A retried hook counts once, also after a restart: the key lives in the
/// log-derived state, not in a per-process cache. (A store that remembers
/// keys only in memory answers the retry after reopen with a new LSN and
/// counts the tool call twice.)
#[test]
fn a_retried_event_counts_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let post = r#"{"session_id":"k","hook_event_name":"PostToolUse","tool_name":"Bash","tool_use_id":"toolu_7","tool_response":"ok"}"#;
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let first = ingest(&store, post);
    assert!(!first.duplicate);
    let retry = ingest(&store, post);
    assert_eq!((retry.lsn, retry.duplicate), (first.lsn, true));
    store.close().unwrap();

    for compact in [false, true] {
        let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let next = store.log().next_lsn();
        let retry = ingest(&store, post);
        assert_eq!((retry.lsn, retry.duplicate), (first.lsn, true));
        assert_eq!(store.log().next_lsn(), next, "a known key writes nothing");
        assert_eq!(store.sessions()[0].tool_calls, 1);
        if compact {
            // ... and from a checkpoint, with the log before it removed.
            store.compact().unwrap();
        }
        store.close().unwrap();
    }
}

/// Subscribers get every committed entry once, in LSN order, batches
/// included; one that falls behind is cut off and told so, and ingest does
/// not wait for it.
#[test]
fn subscribers_see_committed_entries_in_lsn_order() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        subscriber_capacity: 100,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), options).unwrap();
    let live = store.subscribe();
    let store = std::sync::Arc::new(store);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let line = format!(
                        r#"{{"type":"tool_call","session":"t{t}","call_id":"c{i}","tool":"Read"}}"#
                    );
                    store.ingest(parse_line(&line).unwrap()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seen: Vec<u64> = live.receiver.try_iter().map(|c| c.lsn).collect();
    assert_eq!(seen.len(), 100, "every committed entry, once");
    assert!(seen.windows(2).all(|w| w[0] + 1 == w[1]), "dense, in order");
    assert!(!live.lagged());

    // A subscriber that does not read is cut off once 100 entries behind;
    // ingest goes on without waiting for it.
    let batch = (0..101)
        .map(|i| {
            parse_line(&format!(
                r#"{{"type":"tool_call","session":"t0","call_id":"d{i}","tool":"Read"}}"#
            ))
            .unwrap()
        })
        .collect();
    store.ingest_batch(batch).unwrap();
    assert!(live.lagged(), "cut off, and told so");
    assert_eq!(live.receiver.try_iter().count(), 100, "what fit is kept");
    assert!(live.receiver.recv().is_err(), "then the feed is closed");
    assert_eq!(store.sessions().len(), 4);
}

/// The crash path must work when the writer is stuck: with the writer held
/// before its fdatasync, `mark_crashed` gives up on the urgent lane after
/// `crash_wait`, writes the marker to the crash ledger, and returns with
/// the file saying `crashed`. After a restart the marker is still there
/// (applied from the ledger, then moved into the log). A crash path that
/// only uses the journal blocks here until the writer moves.
#[test]
fn mark_crashed_takes_the_ledger_when_the_writer_is_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let fp = Failpoints::new();
    let _release = ReleaseOnDrop(fp.clone());
    let mut options = StoreOptions {
        crash_wait: Duration::from_millis(200),
        orphans: OrphanPolicy::KeepOpen,
        ..StoreOptions::default()
    };
    options.journal.failpoints = fp.clone();
    let (store, _) = Store::open(dir.path(), options.clone()).unwrap();
    ingest(&store, r#"{"type":"session_start","session":"stuck"}"#);
    store.flush().unwrap();

    fp.arm(names::WRITER_BEFORE_SYNC, Action::Pause);
    let store = std::sync::Arc::new(store);
    let blocked = {
        let store = store.clone();
        std::thread::spawn(move || {
            let line = r#"{"type":"tool_call","session":"other","call_id":"c","tool":"Read"}"#;
            let _ = store.ingest(parse_line(line).unwrap());
        })
    };
    assert!(fp.wait_paused(names::WRITER_BEFORE_SYNC, Duration::from_secs(30)));
    let started = Instant::now();
    let lsn = store.mark_crashed("stuck", "writer wedged").unwrap();
    assert_eq!(lsn, 0, "the marker went to the crash ledger");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(dir.path().join("crash.ledger").exists());
    let file = common::schema::trace_json(&std::fs::read(store.trace_path("stuck")).unwrap());
    assert_eq!(file["summary"]["status"], "crashed");
    assert_eq!(file["summary"]["error"], "writer wedged");

    // The process dies with the writer still stuck: copy the directory
    // as it is on disk (the ledger is synced; the stuck group is not).
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() && entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), image.path().join(entry.file_name())).unwrap();
        }
    }
    fp.release_all();
    blocked.join().unwrap();
    drop(store);

    let options = StoreOptions {
        orphans: OrphanPolicy::KeepOpen,
        ..StoreOptions::default()
    };
    let (store, report) = Store::open(image.path(), options.clone()).unwrap();
    assert_eq!(report.ledger_markers, 1);
    assert!(
        !image.path().join("crash.ledger").exists(),
        "moved into the log"
    );
    let s = store.session_state("stuck").unwrap();
    assert_eq!(
        (s.status, s.error.as_deref()),
        (Status::Crashed, Some("writer wedged"))
    );
    store.close().unwrap();
    let (store, report) = Store::open(image.path(), options).unwrap();
    assert_eq!(report.ledger_markers, 0);
    assert_eq!(
        store.session_state("stuck").unwrap().status,
        Status::Crashed
    );
}

/// `mark_all_open_crashed` (a panic hook's call) marks every open session,
/// in one durable batch, and leaves ended sessions alone.
#[test]
fn mark_all_open_crashed_marks_only_open_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    for id in ["a", "b", "c"] {
        ingest(
            &store,
            &format!(r#"{{"type":"session_start","session":"{id}"}}"#),
        );
    }
    ingest(&store, r#"{"type":"session_end","session":"b"}"#);
    let mut marked = store.mark_all_open_crashed("panic in the agent").unwrap();
    marked.sort();
    assert_eq!(marked, ["a", "c"]);
    for (id, want) in [("a", "crashed"), ("b", "completed"), ("c", "crashed")] {
        let file = common::schema::trace_json(&std::fs::read(store.trace_path(id)).unwrap());
        assert_eq!(file["summary"]["status"], want, "{id}");
    }
    assert!(store.mark_all_open_crashed("again").unwrap().is_empty());
}

/// Sessions that stay open while events keep coming: checkpoints remove
/// covered segments, so the log's size stays bounded instead of growing
/// with the total ingested; a reopen rebuilds exactly the same state from
/// the newest checkpoint plus the log after it. The same workload without
/// `compact` is run too, to show the bound is not vacuous.
#[test]
fn steady_ingest_into_open_sessions_keeps_the_log_bounded() {
    let unbounded = steady_ingest(false);
    let bounded = steady_ingest(true);
    assert!(unbounded >= 15, "the workload spans {unbounded} segments");
    assert!(
        bounded <= 8,
        "with checkpoints the log peaked at {bounded} segments of 64 KiB"
    );
}

/// Runs the workload; returns the most segments the log had at once.
fn steady_ingest(compact: bool) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions {
        checkpoint_bytes: u64::MAX,
        orphans: OrphanPolicy::KeepOpen,
        ..StoreOptions::default()
    };
    options.journal.segment_size = 64 << 10;
    let (store, _) = Store::open(dir.path(), options.clone()).unwrap();
    let payload = "x".repeat(300);
    let mut max_segments = 0;
    for round in 0..100 {
        let batch = (0..30)
            .map(|i| {
                parse_line(&format!(
                    r#"{{"type":"attributes","session":"s{}","attributes":{{"k{}":"{payload}"}}}}"#,
                    i % 3,
                    round * 30 + i
                ))
                .unwrap()
            })
            .collect();
        store.ingest_batch(batch).unwrap();
        if compact && round % 4 == 3 {
            store.compact().unwrap();
        }
        let segments = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".seg")
            })
            .count();
        max_segments = max_segments.max(segments);
    }
    let before: Vec<_> = ["s0", "s1", "s2"]
        .iter()
        .map(|id| store.session(id).unwrap())
        .collect();
    store.close().unwrap();
    let (store, report) = Store::open(dir.path(), options).unwrap();
    assert_eq!(report.checkpoint.is_some(), compact);
    if compact {
        assert!(store.log().first_lsn() > 1, "the log's head was removed");
    }
    for (id, bytes) in ["s0", "s1", "s2"].iter().zip(before) {
        assert_eq!(store.session(id).unwrap(), bytes, "{id}");
    }
    max_segments
}
