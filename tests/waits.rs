//! No caller waits forever (issue 10, part 2): every poisoning path of the
//! journal ends every wait of the store with an answer, within a bound.
//!
//! Each race is made deterministic with failpoints (a thread paused at a
//! named point until the test releases it), never with sleeps. The bound is
//! a `recv_timeout` on a channel that the call under test answers on: a
//! timeout means the call waits forever, and the test fails.

mod common;

use common::sessions::ReleaseOnDrop;
use crossbeam_channel::Receiver;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tracejournal::event::parse_line;
use tracejournal::model::Status;
use tracejournal::testkit::failpoint::{names, Action, Failpoints};
use tracejournal::{Durability, Error, JournalError};
use tracejournal::{OrphanPolicy, Store, StoreOptions};

/// How long a call may take before the test calls it a hang. Far above
/// anything these calls need (they are all answered within milliseconds);
/// only a call that never returns reaches it.
const BOUND: Duration = Duration::from_secs(10);

/// How long the test waits for a thread to reach a failpoint.
const WAIT: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread; its result arrives on the channel.
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Receiver<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// The result of a call started with [`spawn`], or a test failure if it
/// did not return within [`BOUND`].
fn returned<T>(rx: &Receiver<T>, what: &str) -> T {
    rx.recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("{what} did not return within {BOUND:?}: it waits forever"))
}

fn ingest(store: &Store, line: &str) -> tracejournal::Result<tracejournal::Ack> {
    store.ingest(parse_line(line).unwrap())
}

fn tool_call(session: &str, call: &str) -> String {
    format!(r#"{{"type":"tool_call","session":"{session}","call_id":"{call}","tool":"Read"}}"#)
}

/// A store on the real file system with failpoints, orphans kept open, and
/// a crash wait long enough that a crash mark always hears the writer's
/// answer (so the ledger path is taken only because that answer was an
/// error).
fn open_store(durability: Durability, fp: &Failpoints) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions {
        orphans: OrphanPolicy::KeepOpen,
        crash_wait: Duration::from_secs(60),
        ..StoreOptions::default()
    };
    options.journal.failpoints = fp.clone();
    options.journal.durability = durability;
    let (store, _) = Store::open(dir.path(), options).unwrap();
    (dir, Arc::new(store))
}

/// The review's path: a `Buffered` (or `None`) append shares a group with
/// an urgent crash marker; the normal one is acknowledged by the journal
/// (after the write, or at once for `None`); the marker's sync (or the
/// write) fails and poisons the journal. The marker's LSN is below the
/// normal one and is never applied, so on the old code the acknowledged
/// appender waited in the store's sequencer for it forever.
///
/// Now: the appender gets `Poisoned` (it was not applied, so it is not told
/// it was), the state does not hold its event, the crash mark takes the
/// ledger and returns, and `flush` and `close` return.
fn acked_append_behind_a_failed_urgent_marker(durability: Durability, fail_at: &'static str) {
    let fp = Failpoints::new();
    let _release = ReleaseOnDrop(fp.clone());
    let (_dir, store) = open_store(durability, &fp);
    ingest(&store, r#"{"type":"session_start","session":"victim"}"#).unwrap();
    ingest(&store, r#"{"type":"session_start","session":"worker"}"#).unwrap();
    store.flush().unwrap();

    // The writer takes the normal append first and is held there ...
    fp.arm(names::URGENT_QUEUED, Action::Observe);
    fp.arm(names::WRITER_GATHER, Action::Pause);
    let normal = {
        let store = store.clone();
        spawn(move || ingest(&store, &tool_call("worker", "c1")))
    };
    assert!(fp.wait_paused(names::WRITER_GATHER, WAIT));
    // ... until the crash marker is on the urgent lane: both go in one
    // group, the marker first (lower LSN).
    let crash = {
        let store = store.clone();
        spawn(move || store.mark_crashed("victim", "the agent died"))
    };
    assert!(fp.wait_hits(names::URGENT_QUEUED, 1, WAIT));
    fp.arm(fail_at, Action::Fail(io::ErrorKind::Other));
    fp.release(names::WRITER_GATHER);

    let normal = returned(&normal, "the acknowledged normal append");
    assert!(
        matches!(
            normal,
            Err(Error::Poisoned { .. }) | Err(Error::Journal(JournalError::Io { .. }))
        ),
        "its entry cannot be applied, so it must not be told it was: {normal:?}"
    );
    assert_eq!(
        store.session_state("worker").unwrap().totals.tool_calls,
        0,
        "the state does not hold the refused event"
    );
    let crash = returned(&crash, "mark_crashed");
    assert_eq!(crash.unwrap(), 0, "the marker went to the crash ledger");
    assert_eq!(
        store.session_state("victim").unwrap().status,
        Status::Crashed
    );
    // Nothing is acknowledged after the failure, and nothing waits.
    let later = {
        let store = store.clone();
        spawn(move || ingest(&store, &tool_call("worker", "c2")))
    };
    assert!(matches!(
        returned(&later, "an append after the failure"),
        Err(Error::Poisoned { .. })
    ));
    let flush = {
        let store = store.clone();
        spawn(move || store.flush())
    };
    assert!(returned(&flush, "flush").is_err());
    let close = spawn(move || Arc::try_unwrap(store).map(Store::close));
    let closed = returned(&close, "close");
    assert!(closed.is_ok(), "no other handle to the store is left");
}

#[test]
fn buffered_append_behind_an_urgent_marker_whose_sync_fails_returns() {
    acked_append_behind_a_failed_urgent_marker(Durability::Buffered, names::WRITER_BEFORE_SYNC);
}

#[test]
fn unsynced_append_behind_an_urgent_marker_whose_sync_fails_returns() {
    acked_append_behind_a_failed_urgent_marker(Durability::None, names::WRITER_BEFORE_SYNC);
}

#[test]
fn unsynced_append_behind_an_urgent_marker_whose_write_fails_returns() {
    acked_append_behind_a_failed_urgent_marker(Durability::None, names::WRITER_BEFORE_WRITE);
}

#[test]
fn buffered_append_behind_an_urgent_marker_whose_write_fails_returns() {
    acked_append_behind_a_failed_urgent_marker(Durability::Buffered, names::WRITER_BEFORE_WRITE);
}

/// The compactor's hand-off: retention retires a session with a `Retire`
/// entry (a normal `Buffered` append) and waits for it to apply. If that
/// append shares a group with a crash marker whose sync fails, the old code
/// left the compactor thread waiting in the sequencer forever, and with it
/// every later `flush` and `close` (which wait for the compactor's answer
/// and its thread). Now the retirement fails, the session stays, and
/// `close` returns.
#[test]
fn compactor_retirement_behind_a_failed_urgent_marker_lets_close_return() {
    let fp = Failpoints::new();
    let _release = ReleaseOnDrop(fp.clone());
    let dir = tempfile::tempdir().unwrap();
    let (clock, manual) = tracejournal::Clock::manual(1_700_000_000_000);
    let mut options = StoreOptions {
        clock,
        orphans: OrphanPolicy::KeepOpen,
        crash_wait: Duration::from_secs(60),
        max_age: Some(Duration::from_secs(3600)),
        ..StoreOptions::default()
    };
    options.journal.failpoints = fp.clone();
    options.journal.durability = Durability::Buffered;
    let (store, _) = Store::open(dir.path(), options).unwrap();
    let store = Arc::new(store);
    ingest(&store, r#"{"type":"session_start","session":"old"}"#).unwrap();
    ingest(&store, r#"{"type":"session_end","session":"old"}"#).unwrap();
    ingest(&store, r#"{"type":"session_start","session":"live"}"#).unwrap();
    store.flush().unwrap();

    // Two hours later retention retires "old": its `Retire` append reaches
    // the writer, which is held there ...
    fp.arm(names::URGENT_QUEUED, Action::Observe);
    fp.arm(names::WRITER_GATHER, Action::Pause);
    manual.advance(2 * 3600 * 1000);
    assert!(fp.wait_paused(names::WRITER_GATHER, WAIT));
    // ... until a crash marker joins the group ahead of it; its sync fails.
    let crash = {
        let store = store.clone();
        spawn(move || store.mark_crashed("live", "the agent died"))
    };
    assert!(fp.wait_hits(names::URGENT_QUEUED, 1, WAIT));
    fp.arm(
        names::WRITER_BEFORE_SYNC,
        Action::Fail(io::ErrorKind::Other),
    );
    fp.release(names::WRITER_GATHER);

    assert_eq!(returned(&crash, "mark_crashed").unwrap(), 0, "the ledger");
    // The last handle: once `flush` returns, `close` owns the store.
    let close = spawn(move || {
        let flushed = store.flush();
        let state = store.session_state("old");
        (flushed, state, Arc::try_unwrap(store).map(Store::close))
    });
    let (flushed, old, closed) = returned(&close, "flush and close");
    assert!(
        matches!(flushed, Err(Error::Poisoned { .. })),
        "{flushed:?}"
    );
    assert!(old.is_some(), "the failed retirement was not applied");
    assert!(
        matches!(closed, Ok(Err(Error::Poisoned { .. }))),
        "close returns the poisoning: {closed:?}"
    );
}

/// A writer thread that dies (a bug, here a panic injected after the
/// group's write) used to drop the group's tickets (`Closed`) without
/// poisoning the journal: the acknowledged `Buffered` append behind the
/// failed crash marker then waited in the sequencer forever. Now the dying
/// writer poisons the journal first, and every caller returns.
#[test]
fn a_panicking_writer_ends_every_wait() {
    let fp = Failpoints::new();
    let _release = ReleaseOnDrop(fp.clone());
    let (_dir, store) = open_store(Durability::Buffered, &fp);
    ingest(&store, r#"{"type":"session_start","session":"victim"}"#).unwrap();
    ingest(&store, r#"{"type":"session_start","session":"worker"}"#).unwrap();

    fp.arm(names::URGENT_QUEUED, Action::Observe);
    fp.arm(names::WRITER_GATHER, Action::Pause);
    let normal = {
        let store = store.clone();
        spawn(move || ingest(&store, &tool_call("worker", "c1")))
    };
    assert!(fp.wait_paused(names::WRITER_GATHER, WAIT));
    let crash = {
        let store = store.clone();
        spawn(move || store.mark_crashed("victim", "the agent died"))
    };
    assert!(fp.wait_hits(names::URGENT_QUEUED, 1, WAIT));
    fp.arm(names::WRITER_BEFORE_SYNC, Action::Panic);
    fp.release(names::WRITER_GATHER);

    let normal = returned(&normal, "the acknowledged normal append");
    assert!(
        normal.is_err(),
        "not applied, so not acknowledged: {normal:?}"
    );
    assert_eq!(store.session_state("worker").unwrap().totals.tool_calls, 0);
    assert_eq!(returned(&crash, "mark_crashed").unwrap(), 0, "the ledger");
    let later = {
        let store = store.clone();
        spawn(move || ingest(&store, &tool_call("worker", "c2")))
    };
    assert!(returned(&later, "an append after the panic").is_err());
    let close = spawn(move || Arc::try_unwrap(store).map(Store::close));
    assert!(returned(&close, "close").is_ok_and(|r| r.is_err()));
}

/// The preallocator thread dying (a panic while it zero-fills the next
/// segment) used to leave its slot "preparing" for ever: the writer waited
/// in `take` at the next rotation, and so did every appender. Now the
/// writer learns that the thread stopped, prepares the spare itself, and
/// the appends go on.
#[test]
fn a_panicking_preallocator_does_not_stop_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let options = common::fs_options();
    let fp = options.failpoints.clone();
    let _release = ReleaseOnDrop(fp.clone());
    let (journal, _) = tracejournal::Journal::open(dir.path(), options).unwrap();
    // Armed after open (which prepares the first segment on its own thread):
    // the next hit is the preallocator thread's.
    fp.arm(names::PREALLOCATE, Action::Panic);
    let appends = spawn(move || {
        // 256 KiB through 64 KiB segments: several rotations.
        let lsns: Vec<_> = (0..256)
            .map(|i| {
                journal.append_with(
                    tracejournal::Record::new(1, vec![i as u8; 1000]),
                    Durability::Sync,
                )
            })
            .collect();
        (lsns, journal.close())
    });
    let (lsns, closed) = returned(&appends, "appends across rotations");
    for (i, lsn) in lsns.into_iter().enumerate() {
        assert_eq!(lsn.unwrap(), i as u64 + 1);
    }
    closed.unwrap();
    assert_eq!(
        fp.hits(names::PREALLOCATE),
        1,
        "the injected panic happened"
    );
}
