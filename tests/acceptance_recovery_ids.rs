//! Acceptance scenarios 10 to 12 of
//! `/work/shared/reference/acceptance-scenarios.md`: a process that dies
//! without a crash mark, a crash that must not leak into other sessions,
//! and session ids that are hostile as file names.
//!
//! The "process died" cases run on [`common::MemStorage`]: a
//! [`MemStorage::crash_image`] taken while the store is still open is what
//! a power cut (or `kill -9`) at that instant leaves on disk, without
//! leaking the first store's directory lock. One case also kills a real
//! child process with SIGKILL.

mod common;

use common::child::{rerun, KillOnDrop};
use common::sessions::{hook_for, session_start, typed, ReleaseOnDrop};
use common::{MemStorage, Rng};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracejournal::event::{parse_line, Body, EndStatus, Entry, Event, ENTRY_KIND};
use tracejournal::model::{Status, ORPHANED_REASON};
use tracejournal::testkit::failpoint::points;
use tracejournal::testkit::failpoint::Action;
use tracejournal::{Clock, ManualClock};
use tracejournal::{Error, Options};
use tracejournal::{OrphanPolicy, Store, StoreOptions};

/// Epoch ms every manual clock here starts at.
const T0: u64 = 1_700_000_000_000;

/// Store options on `storage` with small segments (the default 64 MiB
/// segment is zero-filled at open) and a manual clock at `now`.
fn mem_options(storage: &MemStorage, now: u64) -> (StoreOptions, Arc<ManualClock>) {
    let (clock, manual) = Clock::manual(now);
    let options = StoreOptions {
        journal: Options {
            segment_size: 1 << 20,
            max_record_size: 256 << 10,
            storage: Arc::new(storage.clone()),
            ..Options::default()
        },
        clock,
        ..StoreOptions::default()
    };
    (options, manual)
}

/// Store options on the real file system with small segments and a manual
/// clock at `now`.
fn fs_options(now: u64) -> (StoreOptions, Arc<ManualClock>) {
    let (clock, manual) = Clock::manual(now);
    let options = StoreOptions {
        journal: Options {
            segment_size: 4 << 20,
            max_record_size: 1 << 20,
            ..Options::default()
        },
        clock,
        ..StoreOptions::default()
    };
    (options, manual)
}

fn mem_dir() -> PathBuf {
    PathBuf::from("/mem/store")
}

fn pre_tool(id: &str, call: &str, tool: &str) -> Event {
    hook_for(
        id,
        "PreToolUse",
        &format!(r#""tool_name":"{tool}","tool_use_id":"{call}","tool_input":{{"path":"{call}"}}"#),
    )
}

fn post_tool(id: &str, call: &str, tool: &str) -> Event {
    hook_for(
        id,
        "PostToolUse",
        &format!(r#""tool_name":"{tool}","tool_use_id":"{call}","tool_response":"ok {call}""#),
    )
}

fn tool_call(session: &str, time: u64, call: &str) -> Event {
    typed(
        session,
        time,
        Body::ToolCall {
            call_id: call.to_string(),
            tool: "Read".into(),
            parent: None,
            input: None,
            output: None,
            status: EndStatus::Ok,
            message: None,
            duration_ms: Some(3),
        },
    )
}

/// The trace file of `id`, parsed, from `storage`.
fn mem_file(storage: &MemStorage, store: &Store, id: &str) -> Value {
    common::schema::trace_json(&storage.read(&store.trace_path(id)))
}

/// The trace file of `id`, parsed, from the real file system.
fn fs_file(store: &Store, id: &str) -> Value {
    let path = store.trace_path(id);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    common::schema::trace_json(&bytes)
}

/// The span of `file` whose `tool.callId` is `call`.
fn tool_span<'a>(file: &'a Value, call: &str) -> &'a Value {
    file["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tool"]["callId"] == call)
        .unwrap_or_else(|| panic!("no tool span {call} in {file}"))
}

/// The LSNs of the crash markers in the store's log, by session.
fn crash_marker_lsns(store: &Store) -> BTreeMap<String, Vec<u64>> {
    let journal = store.log();
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for record in journal.read_from(journal.first_lsn()).unwrap() {
        let record = record.unwrap();
        if record.kind != ENTRY_KIND {
            continue;
        }
        if let Entry::Event(e) = Entry::decode(&record.payload).unwrap() {
            if matches!(e.body, Body::Crash { .. }) {
                out.entry(e.session.clone()).or_default().push(record.lsn);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Scenario 10
// ---------------------------------------------------------------------------

/// The sessions the S10 cases leave open when the process dies.
const ORPHANS: [&str; 3] = ["alive-1", "alive-2", "alive/3"];

/// The session the S10 cases end normally before the process dies.
const ENDED: &str = "ended";

/// Three open sessions (each with an open turn, an open tool span, and one
/// closed tool span), and one session that ended normally.
fn feed_s10(store: &Store, manual: &ManualClock) {
    for id in ORPHANS {
        store
            .ingest(hook_for(id, "SessionStart", r#""source":"startup""#))
            .unwrap();
        store
            .ingest(hook_for(id, "UserPromptSubmit", r#""prompt":"do it""#))
            .unwrap();
        manual.advance(10);
        store.ingest(pre_tool(id, "toolu_done", "Read")).unwrap();
        manual.advance(10);
        store.ingest(post_tool(id, "toolu_done", "Read")).unwrap();
        // Open: PreToolUse without its PostToolUse.
        store.ingest(pre_tool(id, "toolu_open", "Bash")).unwrap();
    }
    store
        .ingest(hook_for(ENDED, "SessionStart", r#""source":"startup""#))
        .unwrap();
    store.ingest(pre_tool(ENDED, "toolu_e", "Read")).unwrap();
    manual.advance(10);
    store.ingest(post_tool(ENDED, "toolu_e", "Read")).unwrap();
    store
        .ingest(hook_for(ENDED, "SessionEnd", r#""reason":"exit""#))
        .unwrap();
}

/// Checks the S10 outcome in `store` (opened at `t1` on the crash image
/// `storage`): every orphan crashed with the orphan reason, its open spans
/// interrupted; its file on disk says so; the ended session untouched.
fn assert_orphans_crashed(store: &Store, storage: &MemStorage, t1: u64, ended_bytes: &[u8]) {
    for id in ORPHANS {
        let s = store.session_state(id).unwrap();
        assert_eq!(s.status, Status::Crashed, "{id}");
        assert_eq!(s.error.as_deref(), Some(ORPHANED_REASON), "{id}");
        assert_eq!(s.ended_at, Some(t1), "{id}: ended when recovery noticed");

        let file = mem_file(storage, store, id);
        assert_eq!(file["sessionId"], id);
        assert_eq!(file["summary"]["status"], "crashed", "{id}: {file}");
        assert_eq!(file["summary"]["error"], ORPHANED_REASON, "{id}");
        assert!(
            file.get("endedAt").is_some(),
            "{id}: a crashed run has ended"
        );
        let open = tool_span(&file, "toolu_open");
        assert_eq!(open["interrupted"], true, "{id}: {open}");
        assert_eq!(open["status"], "error", "{id}");
        assert_eq!(open["endTime"], t1, "{id}");
        let done = tool_span(&file, "toolu_done");
        assert!(
            done.get("interrupted").is_none(),
            "{id}: a span that had closed is not interrupted: {done}"
        );
        assert_eq!(done["status"], "ok");
        // The open turn is closed as interrupted too; no span stays open.
        for span in file["spans"].as_array().unwrap() {
            assert!(span.get("endTime").is_some(), "{id}: open span {span}");
        }
        assert_eq!(
            storage.read(&store.trace_path(id)),
            store.session(id).unwrap(),
            "{id}: the file holds the crashed state itself"
        );
    }
    let ended = store.session_state(ENDED).unwrap();
    assert_eq!(ended.status, Status::Completed);
    assert_eq!(ended.error, None);
    assert_eq!(
        store.session(ENDED).unwrap(),
        ended_bytes,
        "recovery must not touch a session that ended normally"
    );
}

/// Scenario 10: "Process died without a mark: sessions that were open when
/// the owning process died are marked `crashed` (reason: the process ended
/// before the session was closed) by recovery, durably, before any new
/// event is accepted; their open spans are closed as `interrupted`."
///
/// Naive behaviour caught: a recovery that leaves orphans `running`
/// forever (the old tracer's dead sessions never ended), marks them only in
/// memory (the second crash image would show them running), touches the
/// ended session, leaves the open tool span without an end, or leaves the
/// crashed files to the compactor (paused here) instead of writing them
/// before `open` returns.
#[test]
fn s10_orphans_of_a_dead_process_are_marked_crashed_durably() {
    for seed in 1..=3u64 {
        let storage = MemStorage::new();
        let (options, manual) = mem_options(&storage, T0);
        let (store, _) = Store::open(mem_dir(), options).unwrap();
        feed_s10(&store, &manual);
        store.flush().unwrap();
        for id in ORPHANS {
            assert_eq!(
                mem_file(&storage, &store, id)["summary"]["status"],
                "running"
            );
        }
        let ended_bytes = store.session(ENDED).unwrap();
        // The process dies here: no close, no Drop, no crash mark.
        let image = storage.crash_image(&mut Rng::new(seed));
        drop(store);

        let t1 = T0 + 3_600_000;
        let (options, _manual) = mem_options(&image, t1);
        // The compactor may not publish anything: whatever the files say
        // when open returns, open itself wrote.
        let fp = options.journal.failpoints.clone();
        fp.arm(points::BEFORE_RENDER, Action::Pause);
        let (store, report) = Store::open(mem_dir(), options).unwrap();
        let _release = ReleaseOnDrop(fp.clone()); // dropped before the store
                                                  // Before anything else: the disk as it is the instant open returns.
        let after_open = image.crash_image(&mut Rng::new(seed + 100));
        for id in ORPHANS {
            let path = store.trace_path(id);
            for disk in [&image, &after_open] {
                let file = common::schema::trace_json(&disk.read(&path));
                assert_eq!(file["summary"]["status"], "crashed", "{id} at open");
            }
        }
        fp.release_all();

        let mut marked = report.orphans_marked.clone();
        marked.sort();
        let mut want: Vec<String> = ORPHANS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(marked, want, "seed {seed}");
        assert_orphans_crashed(&store, &image, t1, &ended_bytes);

        // The markers precede every event accepted after open: a late
        // PostToolUse for the interrupted call is stored after them and
        // cannot reopen the run.
        let late = store
            .ingest(post_tool("alive-1", "toolu_open", "Bash"))
            .unwrap();
        let markers = crash_marker_lsns(&store);
        for id in ORPHANS {
            let lsns = &markers[id];
            assert_eq!(lsns.len(), 1, "{id}: one marker");
            assert!(lsns[0] < late.lsn, "{id}: marker {lsns:?} after {late:?}");
        }
        assert_eq!(
            store.session_state("alive-1").unwrap().status,
            Status::Crashed
        );
        drop(store);

        // Durable before open returned: a power cut right after open, then
        // an open that marks nothing by itself (KeepOpen), still shows them
        // crashed.
        let (mut options, _manual) = mem_options(&after_open, t1 + 1_000);
        options.orphans = OrphanPolicy::KeepOpen;
        let (store, report) = Store::open(mem_dir(), options).unwrap();
        assert!(report.orphans_marked.is_empty());
        assert_orphans_crashed(&store, &after_open, t1, &ended_bytes);
    }
}

/// Scenario 10, policy `KeepOpen`: "For a store that outlives its agents
/// (a daemon)" the same crash image keeps its sessions running.
///
/// Naive behaviour caught: a recovery that ignores the policy and crashes
/// every open session of a daemon's store on each restart.
#[test]
fn s10_keep_open_policy_leaves_orphans_running() {
    let storage = MemStorage::new();
    let (options, manual) = mem_options(&storage, T0);
    let (store, _) = Store::open(mem_dir(), options).unwrap();
    feed_s10(&store, &manual);
    store.flush().unwrap();
    let before: BTreeMap<&str, Vec<u8>> = ORPHANS
        .iter()
        .map(|id| (*id, store.session(id).unwrap()))
        .collect();
    let image = storage.crash_image(&mut Rng::new(7));
    drop(store);

    let (mut options, _manual) = mem_options(&image, T0 + 3_600_000);
    options.orphans = OrphanPolicy::KeepOpen;
    let (store, report) = Store::open(mem_dir(), options).unwrap();
    assert!(report.orphans_marked.is_empty());
    store.flush().unwrap();
    for id in ORPHANS {
        let s = store.session_state(id).unwrap();
        assert_eq!(s.status, Status::Running, "{id}");
        assert_eq!(s.ended_at, None);
        let file = mem_file(&image, &store, id);
        assert_eq!(file["summary"]["status"], "running");
        assert!(file.get("endedAt").is_none());
        let open = tool_span(&file, "toolu_open");
        assert!(open.get("endTime").is_none(), "still open: {open}");
        assert!(open.get("interrupted").is_none());
        assert_eq!(store.session(id).unwrap(), before[id], "{id} unchanged");
    }
    // The daemon's session goes on: its tool call completes.
    store
        .ingest(post_tool("alive-1", "toolu_open", "Bash"))
        .unwrap();
    store.flush().unwrap();
    let file = mem_file(&image, &store, "alive-1");
    assert_eq!(tool_span(&file, "toolu_open")["status"], "ok");
}

/// Scenario 10, clean shutdown: "sessions that were open when the owning
/// process *died*": a clean `close()` is not a death, so reopening marks
/// nothing, even with `MarkCrashed`.
///
/// Naive behaviour caught: a recovery that crashes every open session at
/// every open (a restart of the host would "crash" every live session).
#[test]
fn s10_clean_close_marks_nothing_on_reopen() {
    let storage = MemStorage::new();
    let (options, manual) = mem_options(&storage, T0);
    let (store, _) = Store::open(mem_dir(), options).unwrap();
    feed_s10(&store, &manual);
    store.close().unwrap();

    let (options, _manual) = mem_options(&storage, T0 + 3_600_000);
    let (store, report) = Store::open(mem_dir(), options).unwrap();
    assert!(report.orphans_marked.is_empty(), "{report:?}");
    assert!(crash_marker_lsns(&store).is_empty());
    for id in ORPHANS {
        assert_eq!(store.session_state(id).unwrap().status, Status::Running);
        assert_eq!(
            mem_file(&storage, &store, id)["summary"]["status"],
            "running"
        );
    }
    assert_eq!(
        store.session_state(ENDED).unwrap().status,
        Status::Completed
    );
}

/// Scenario 10, the owner after a clean restart: process 1 closes cleanly
/// with sessions open (allowed: "a clean close does not orphan them");
/// process 2 opens the store, owns those sessions, and dies without a
/// close before it ingests anything. Its sessions were open when their
/// owning process died, so the next open must mark them crashed.
///
/// Naive behaviour caught: a "clean" flag that is only reset by the next
/// ingested entry, so a process that opened the store and died idle looks
/// like a clean shutdown and its sessions stay `running` forever.
#[test]
fn s10_death_after_a_clean_reopen_still_marks_orphans() {
    let storage = MemStorage::new();
    let (options, manual) = mem_options(&storage, T0);
    let (store, _) = Store::open(mem_dir(), options).unwrap();
    feed_s10(&store, &manual);
    store.close().unwrap();

    // Process 2: opens (nothing to mark: process 1 shut down cleanly) ...
    let (options, _manual) = mem_options(&storage, T0 + 60_000);
    let (store, report) = Store::open(mem_dir(), options).unwrap();
    assert!(report.orphans_marked.is_empty());
    // ... and is killed while its sessions are open.
    let image = storage.crash_image(&mut Rng::new(3));
    drop(store);

    let (options, _manual) = mem_options(&image, T0 + 120_000);
    let (store, report) = Store::open(mem_dir(), options).unwrap();
    let mut marked = report.orphans_marked.clone();
    marked.sort();
    assert_eq!(marked, ["alive-1", "alive-2", "alive/3"]);
    for id in ORPHANS {
        assert_eq!(store.session_state(id).unwrap().status, Status::Crashed);
    }
}

/// The environment variable that turns [`s10_child_process_helper`] into
/// the child process of [`s10_sigkilled_process_orphans_are_crashed`].
const CHILD_DIR_ENV: &str = "TRACEJOURNAL_S10_CHILD_DIR";

/// What the child prints once its sessions are on disk.
const READY: &str = "TRACEJOURNAL-S10-CHILD-READY";

/// Not a test by itself: when [`CHILD_DIR_ENV`] is set, this is the
/// "agent process" of the real-process S10 case. It opens the store,
/// ingests two open sessions and an ended one, prints [`READY`], and waits to
/// be killed.
#[test]
fn s10_child_process_helper() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let (options, manual) = fs_options(T0);
    let (store, _) = Store::open(&dir, options).unwrap();
    for id in ["p/1", "p:2"] {
        store
            .ingest(hook_for(id, "SessionStart", r#""source":"startup""#))
            .unwrap();
        store.ingest(pre_tool(id, "toolu_open", "Bash")).unwrap();
    }
    store.ingest(session_start("p-done", T0)).unwrap();
    store
        .ingest(typed(
            "p-done",
            T0 + 5,
            Body::SessionEnd {
                status: EndStatus::Ok,
                message: None,
            },
        ))
        .unwrap();
    manual.advance(1_000);
    store.flush().unwrap();
    // libtest may print "test ... " on the same line first.
    println!("{READY}");
    // Wait for SIGKILL (the parent holds our stdin open).
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    // Never reached in the real scenario; if the parent went away, do not
    // close cleanly either.
    std::process::abort();
}

/// Scenario 10 with a real process killed by SIGKILL in the middle of its
/// sessions (see [`s10_child_process_helper`]).
///
/// Naive behaviour caught: the same as the in-memory case, on a real file
/// system and a real process death (no destructor, no flush, no close).
#[test]
fn s10_sigkilled_process_orphans_are_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop::spawn(
        rerun("s10_child_process_helper")
            .arg("--test-threads=1")
            .env(CHILD_DIR_ENV, dir.path())
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null()),
    );
    // A child that never gets ready fails this test (after a generous
    // bound) instead of hanging it.
    let lines = child.lines();
    let ready = loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.contains(READY) => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    let status = child.sigkill();
    assert!(ready, "the child process never got ready");
    assert!(!status.success());

    let t1 = T0 + 86_400_000;
    let (options, _manual) = fs_options(t1);
    let (store, report) = Store::open(dir.path(), options).unwrap();
    let mut marked = report.orphans_marked.clone();
    marked.sort();
    assert_eq!(marked, ["p/1", "p:2"]);
    for id in ["p/1", "p:2"] {
        // Read before anything else can publish: open already did.
        let file = fs_file(&store, id);
        assert_eq!(file["summary"]["status"], "crashed", "{id}");
        assert_eq!(file["summary"]["error"], ORPHANED_REASON);
        let open = tool_span(&file, "toolu_open");
        assert_eq!(open["interrupted"], true);
        assert_eq!(open["endTime"], t1);
    }
    assert_eq!(fs_file(&store, "p-done")["summary"]["status"], "completed");
    assert_eq!(
        store.session_state("p-done").unwrap().ended_at,
        Some(T0 + 5)
    );
}

// ---------------------------------------------------------------------------
// Scenario 11
// ---------------------------------------------------------------------------

/// Scenario 11: "Shared state does not leak: crashing session A does not
/// affect session B in the same journal; B ends `completed`."
///
/// A is `team/a` and B is `team_a`: the old tool's sanitizer mapped both
/// to one name, and its crash flag (keyed by that name, on a shared
/// writer) muted every later write. C starts only after A's crash.
///
/// Naive behaviour caught: a store-wide "crashed" flag (B's and C's later
/// events never reach their files, or their files say crashed), a crash
/// keyed by a lossy name (B is crashed along with A), a crash path that
/// interrupts every open span in the store, or B's end rewriting A.
#[test]
fn s11_crashing_one_session_does_not_touch_another() {
    let dir = tempfile::tempdir().unwrap();
    let (options, manual) = fs_options(T0);
    let (store, _) = Store::open(dir.path(), options).unwrap();
    let (a, b, c) = ("team/a", "team_a", "team:c");
    for id in [a, b] {
        store
            .ingest(hook_for(id, "SessionStart", r#""source":"startup""#))
            .unwrap();
        store
            .ingest(hook_for(id, "UserPromptSubmit", r#""prompt":"go""#))
            .unwrap();
        store.ingest(pre_tool(id, "toolu_1", "Bash")).unwrap();
    }
    store.flush().unwrap();
    let b_before_crash = store.session_state(b).unwrap();

    manual.advance(1_000);
    store.mark_crashed(a, "boom-A").unwrap();
    let a_file_at_crash = std::fs::read(store.trace_path(a)).unwrap();
    let a_at_crash = common::schema::trace_json(&a_file_at_crash);
    assert_eq!(a_at_crash["summary"]["status"], "crashed");
    assert_eq!(a_at_crash["summary"]["error"], "boom-A");
    assert_eq!(tool_span(&a_at_crash, "toolu_1")["interrupted"], true);

    // A's crash left B exactly as it was.
    assert_eq!(store.session_state(b).unwrap(), b_before_crash);
    let b_file = fs_file(&store, b);
    assert_eq!(b_file["summary"]["status"], "running");
    assert!(tool_span(&b_file, "toolu_1").get("endTime").is_none());

    // B goes on and ends normally; C starts after the crash and ends too.
    manual.advance(1_000);
    store.ingest(post_tool(b, "toolu_1", "Bash")).unwrap();
    store.ingest(pre_tool(b, "toolu_2", "Read")).unwrap();
    store.ingest(post_tool(b, "toolu_2", "Read")).unwrap();
    store
        .ingest(hook_for(b, "Stop", r#""last_assistant_message":"done""#))
        .unwrap();
    store.ingest(session_start(c, manual.now_ms())).unwrap();
    store
        .ingest(tool_call(c, manual.now_ms() + 1, "toolu_c"))
        .unwrap();
    manual.advance(1_000);
    for id in [b, c] {
        store
            .ingest(hook_for(id, "SessionEnd", r#""reason":"exit""#))
            .unwrap();
    }
    store.flush().unwrap();

    for id in [b, c] {
        let file = fs_file(&store, id);
        assert_eq!(file["sessionId"], id);
        assert_eq!(file["summary"]["status"], "completed", "{id}: {file}");
        assert!(file["summary"].get("error").is_none(), "{id}");
        assert!(file.get("endedAt").is_some());
        for span in file["spans"].as_array().unwrap() {
            assert!(span.get("interrupted").is_none(), "{id}: {span}");
        }
        assert_eq!(
            std::fs::read(store.trace_path(id)).unwrap(),
            store.session(id).unwrap()
        );
    }
    let b_file = fs_file(&store, b);
    assert_eq!(b_file["summary"]["totalToolCalls"], 2);
    assert_eq!(tool_span(&b_file, "toolu_1")["status"], "ok");
    assert_eq!(tool_span(&b_file, "toolu_2")["status"], "ok");
    // B's events never reached A's file.
    assert_eq!(
        std::fs::read(store.trace_path(a)).unwrap(),
        a_file_at_crash,
        "A's file changed after its crash"
    );
    assert_ne!(store.trace_path(a), store.trace_path(b));

    let summaries: BTreeMap<String, (Status, Option<String>)> = store
        .sessions()
        .into_iter()
        .map(|s| (s.id, (s.status, s.error)))
        .collect();
    assert_eq!(summaries[a], (Status::Crashed, Some("boom-A".to_string())));
    assert_eq!(summaries[b], (Status::Completed, None));
    assert_eq!(summaries[c], (Status::Completed, None));
    store.close().unwrap();

    // And after a restart.
    let (options, _manual) = fs_options(T0 + 10_000);
    let (store, report) = Store::open(dir.path(), options).unwrap();
    assert!(report.orphans_marked.is_empty());
    assert_eq!(store.session_state(a).unwrap().status, Status::Crashed);
    assert_eq!(store.session_state(b).unwrap().status, Status::Completed);
    assert_eq!(store.session_state(c).unwrap().status, Status::Completed);
    assert_eq!(fs_file(&store, b)["summary"]["status"], "completed");
}

// ---------------------------------------------------------------------------
// Scenario 12
// ---------------------------------------------------------------------------

/// Every file under `root`, relative, with its bytes.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The odd ids of scenario 12.
fn odd_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "a/b",
        "a\\b",
        "a.b",
        "a:b",
        "a_b", // collides with the four above under the old sanitizer
        "a-b",
        "A/B",
        "A_B",
        "a/B",
        "..",
        ".",
        "...",
        ".hidden",
        "../escape",
        "../../etc/passwd",
        "/abs/path",
        "a/../../b",
        "////",
        "\\\\server\\share",
        ":::",
        "a\0b",
        "\0",
        "🦀",
        "🦀🔥 session",
        "CON",
        "con",
        "Con",
        "con.json",
        "NUL",
        "aux.txt",
        "com1",
        "LPT9",
        "a~b",
        "a.json",
        "x.json.tmp",
        " ",
        "tab\there",
        "new\nline",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ids.push("x".repeat(10_000));
    ids.push(format!("{}y", "x".repeat(9_999))); // same first 40 characters
    ids.push("🦀".repeat(4_000)); // 16,000 bytes: just under the id limit
    ids.push("/".repeat(10_000)); // only unsafe characters, long
    ids
}

/// Scenario 12: "Odd ids: a session id with `/ \ . :`, `..`, NUL, 10,000
/// characters, emoji, or only unsafe characters works end to end, maps to
/// one file inside the trace directory and nowhere else, and two different
/// ids never share a file."
///
/// Naive behaviour caught: `traces.join(id + ".json")` (`a/b` becomes a
/// subdirectory, `../escape` leaves `traces/`, NUL fails, 10,000
/// characters exceed the name limit), the old sanitizer (`a/b`, `a\b`,
/// `a.b`, `a:b` and `a_b` share one file), a lossy `sessionId`, names that
/// differ only by case (one file on macOS and Windows), Windows device
/// names, and a sweep at reopen that deletes files whose names it cannot
/// map back to a session.
#[test]
fn s12_odd_ids_each_map_to_one_file_inside_traces() {
    let dir = tempfile::tempdir().unwrap();
    let (options, manual) = fs_options(T0);
    let (store, _) = Store::open(dir.path(), options).unwrap();
    let traces = store.traces_dir().to_path_buf();
    assert_eq!(traces, dir.path().join("traces"));
    let before = tree(dir.path());

    let ids = odd_ids();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "test ids are distinct"
    );
    for (i, id) in ids.iter().enumerate() {
        let t = T0 + i as u64;
        store.ingest(session_start(id, t)).unwrap();
        store.ingest(tool_call(id, t, "toolu_1")).unwrap();
        // Hook payloads carry the id through JSON text.
        store
            .ingest(hook_for(id, "UserPromptSubmit", r#""prompt":"hi""#))
            .unwrap();
    }
    manual.advance(1_000);
    store.flush().unwrap();

    let mut names = BTreeSet::new();
    let mut lower = BTreeSet::new();
    for id in &ids {
        let path = store.trace_path(id);
        assert_eq!(path.parent(), Some(traces.as_path()), "{id:?} -> {path:?}");
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            Path::new(&name).components().collect::<Vec<_>>(),
            [Component::Normal(name.as_ref())],
            "{id:?}: {name:?} is one plain component"
        );
        assert!(name.ends_with(".json") && !name.starts_with('.'), "{name}");
        assert!(name.len() <= 255, "{id:?}: {} bytes", name.len());
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.~-".contains(&b)),
            "{name:?}"
        );
        let stem = name.split('.').next().unwrap().to_ascii_lowercase();
        let device = ["con", "prn", "aux", "nul"].contains(&stem.as_str())
            || ((stem.starts_with("com") || stem.starts_with("lpt"))
                && stem.len() == 4
                && stem.as_bytes()[3].is_ascii_digit());
        assert!(!device, "{id:?}: {name} is a Windows device name");
        assert!(path.is_file(), "{id:?}: {path:?} missing");
        let file = common::schema::trace_json(&std::fs::read(&path).unwrap());
        assert_eq!(file["sessionId"].as_str(), Some(id.as_str()), "{name}");
        assert_eq!(file["summary"]["totalToolCalls"], 1, "{name}");
        assert_eq!(
            store
                .sessions()
                .iter()
                .find(|s| &s.id == id)
                .map(|s| s.file.clone()),
            Some(path.clone())
        );
        assert!(names.insert(name.clone()), "{id:?} shares {name}");
        assert!(
            lower.insert(name.to_ascii_lowercase()),
            "{id:?}: {name} differs from another name only by case"
        );
    }

    // Nothing outside traces/ but the log itself; traces/ holds exactly
    // one file per id.
    let after = tree(dir.path());
    let new_traces: BTreeSet<String> = after
        .keys()
        .filter(|p| !before.contains_key(*p))
        .filter(|p| p.parent() == Some(Path::new("traces")))
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(new_traces, names);
    for (path, bytes) in &after {
        if path.parent() == Some(Path::new("traces")) {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        // The log: its segments and the spare ready to become the next.
        let is_segment = path.parent() == Some(Path::new(""))
            && (tracejournal::testkit::wal::segment::parse_file_name(name).is_some()
                || tracejournal::testkit::wal::segment::parse_spare_name(name).is_some());
        assert!(
            is_segment || before.get(path) == Some(bytes),
            "{path:?} was written outside traces/"
        );
    }
    assert!(
        before.keys().all(|p| after.contains_key(p)),
        "a file disappeared"
    );
    store.close().unwrap();

    // Reopen: the sweep keeps every file (each is owned), and the ids
    // still map to them.
    let (options, _manual) = fs_options(T0 + 10_000);
    let (store, report) = Store::open(dir.path(), options).unwrap();
    assert_eq!(report.swept, 0);
    assert_eq!(report.sessions, ids.len());
    for id in &ids {
        let file = fs_file(&store, id);
        assert_eq!(file["sessionId"].as_str(), Some(id.as_str()));
    }
    let listed: BTreeSet<String> = std::fs::read_dir(&traces)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(listed, names);
}

/// Scenario 12, the edges: an empty id is rejected with an error that
/// names the field, and nothing is written; so is an id over the limit.
///
/// Naive behaviour caught: an empty id stored as `traces/.json` (a hidden
/// file) or as the trace directory itself; a huge id written to the log.
#[test]
fn s12_empty_and_oversized_ids_are_rejected_clearly() {
    let storage = MemStorage::new();
    let (options, _manual) = mem_options(&storage, T0);
    let (store, _) = Store::open(mem_dir(), options).unwrap();
    let next = store.log().next_lsn();

    match store.ingest(session_start("", T0)) {
        Err(Error::InvalidEvent { index: 0, reason }) => {
            assert!(reason.contains("`session` must not be empty"), "{reason}")
        }
        other => panic!("an empty id was not rejected: {other:?}"),
    }
    let err = parse_line(r#"{"session_id":"","hook_event_name":"Stop"}"#).unwrap_err();
    assert!(
        err.message().contains("`session` must not be empty"),
        "{err}"
    );
    let err = parse_line(r#"{"type":"session_start","session":""}"#).unwrap_err();
    assert!(
        err.message().contains("`session` must not be empty"),
        "{err}"
    );

    let huge = "x".repeat(tracejournal::event::MAX_ID_LEN + 1);
    match store.ingest_batch(vec![session_start("ok", T0), session_start(&huge, T0)]) {
        Err(Error::InvalidEvent { index: 1, reason }) => {
            assert!(
                reason.contains("`session`") && reason.contains("limit"),
                "{reason}"
            )
        }
        other => panic!("an oversized id was not rejected: {other:?}"),
    }
    assert_eq!(store.log().next_lsn(), next, "nothing was written");
    assert!(store.sessions().is_empty());
    store.flush().unwrap();
    assert!(storage.names(store.traces_dir()).is_empty());
    let err = store.mark_crashed("", "x").unwrap_err();
    assert!(matches!(err, Error::UnknownSession(_)), "{err:?}");
}
