//! End-to-end smoke test of the session store.

#[path = "common/schema.rs"]
mod schema;

use tracejournal::event::parse_line;
use tracejournal::model::Status;
use tracejournal::{Store, StoreOptions};

#[test]
fn ingest_publish_crash_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (store, report) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(report.sessions, 0);
    let lines = [
        r#"{"session_id":"a/b","hook_event_name":"SessionStart","source":"startup","model":"m"}"#,
        r#"{"session_id":"a/b","hook_event_name":"UserPromptSubmit","prompt":"hello"}"#,
        r#"{"session_id":"a/b","hook_event_name":"PreToolUse","tool_name":"Read","tool_use_id":"toolu_1","tool_input":{"p":1}}"#,
        r#"{"session_id":"a/b","hook_event_name":"PostToolUse","tool_name":"Read","tool_use_id":"toolu_1","tool_response":"x"}"#,
    ];
    for l in lines {
        store.ingest(parse_line(l).unwrap()).unwrap();
    }
    let dup = store.ingest(parse_line(lines[3]).unwrap()).unwrap();
    assert!(dup.duplicate);
    store.flush().unwrap();
    let path = store.trace_path("a/b");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(Some(bytes), store.session("a/b"));
    store.mark_crashed("a/b", "boom").unwrap();
    let v = schema::trace_json(&std::fs::read(&path).unwrap());
    assert_eq!(v["summary"]["status"], "crashed");
    let summary = store.sessions();
    assert_eq!(summary[0].status, Status::Crashed);
    drop(store);
    let (store, report) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(report.sessions, 1);
    assert_eq!(store.sessions()[0].status, Status::Crashed);
    assert_eq!(store.sessions()[0].tool_calls, 1);
    let report = store.compact().unwrap();
    assert!(report.checkpoint_lsn > 0);
    store.close().unwrap();
    let (store, report) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(report.checkpoint.is_some());
    assert_eq!(store.sessions()[0].tool_calls, 1);
}

/// An ended session's final file goes out at once, not at the next
/// debounce tick: with a manual clock that never moves, only the end's
/// wake-up can publish it. (A dirty set that wakes the compactor only when
/// a session first becomes dirty fails this: the file waits for a clock.)
#[test]
fn an_ended_session_is_published_without_waiting_for_the_debounce() {
    use std::time::Duration;
    use tracejournal::Clock;
    let dir = tempfile::tempdir().unwrap();
    let (clock, _manual) = Clock::manual(1_700_000_000_000);
    let options = StoreOptions {
        clock,
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(dir.path(), options).unwrap();
    for line in [
        r#"{"type":"session_start","session":"s"}"#,
        r#"{"type":"tool_call","session":"s","call_id":"c1","tool":"Read"}"#,
        r#"{"type":"session_end","session":"s"}"#,
    ] {
        store.ingest(parse_line(line).unwrap()).unwrap();
    }
    assert!(store.wait_published("s", Duration::from_secs(10)));
    let v = schema::trace_json(&std::fs::read(store.trace_path("s")).unwrap());
    assert_eq!(v["summary"]["status"], "completed");
}
