//! Helpers shared by the session-store tests (the `acceptance_*` files and
//! `store_api.rs`): store options, event builders, and readers of trace
//! files and directory listings.

use super::{options_with, MemStorage};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracejournal::event::{hook_event, Body, EndStatus, Event, JsonText};
use tracejournal::model::Session;
use tracejournal::testkit::failpoint::Failpoints;
use tracejournal::testkit::sim::SimStorage;
use tracejournal::RecoveryMode;
use tracejournal::{Clock, ManualClock};
use tracejournal::{OrphanPolicy, Store, StoreOptions};

/// The debounce of [`manual_options`], in ms.
pub const DEBOUNCE_MS: u64 = 200;

// ---------------------------------------------------------------------------
// Options and guards
// ---------------------------------------------------------------------------

/// Store options on the real file system with a manual clock.
pub fn manual_options() -> (StoreOptions, Arc<ManualClock>) {
    let (clock, manual) = Clock::manual(1_700_000_000_000);
    let options = StoreOptions {
        clock,
        debounce: Duration::from_millis(DEBOUNCE_MS),
        ..StoreOptions::default()
    };
    (options, manual)
}

/// Store options on `mem` (small segments) with a manual clock.
pub fn mem_options(mem: &MemStorage) -> (StoreOptions, Arc<ManualClock>) {
    let (mut options, manual) = manual_options();
    options.journal = options_with(Arc::new(mem.clone()), RecoveryMode::TolerateTornTail);
    (options, manual)
}

/// Store options on the simulated disk `storage` (small segments), with a
/// manual clock, orphans kept open and no automatic checkpoint: the
/// bad-disk and crash-point tests decide when anything happens.
pub fn sim_options(storage: &SimStorage) -> StoreOptions {
    let (clock, _) = Clock::manual(1_700_000_000_000);
    let mut o = StoreOptions {
        clock,
        orphans: OrphanPolicy::KeepOpen,
        checkpoint_bytes: u64::MAX,
        ..StoreOptions::default()
    };
    o.journal = options_with(Arc::new(storage.clone()), RecoveryMode::TolerateTornTail);
    o
}

/// Releases every failpoint when dropped. Declared after the store, it is
/// dropped first, so a failing assertion never leaves a thread paused while
/// the store's drop waits for it.
pub struct ReleaseOnDrop(pub Failpoints);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release_all();
    }
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// An event of `session` with no key and no time.
pub fn event(session: &str, body: Body) -> Event {
    Event {
        session: session.to_string(),
        key: None,
        time: None,
        body,
    }
}

/// An event of `session` with no key and an explicit time.
pub fn typed(session: &str, time: u64, body: Body) -> Event {
    Event {
        session: session.to_string(),
        key: None,
        time: Some(time),
        body,
    }
}

/// A session start (not a resume) with default metadata at `time`.
pub fn session_start(session: &str, time: u64) -> Event {
    typed(
        session,
        time,
        Body::SessionStart {
            metadata: Default::default(),
            resume: false,
        },
    )
}

/// A hook payload for `session` (any id, JSON-escaped): its event name and
/// the rest of its fields (`extra`, JSON members without braces).
pub fn hook_for(session: &str, name: &str, extra: &str) -> Event {
    let sid = serde_json::to_string(session).unwrap();
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(",{extra}")
    };
    let text = format!(r#"{{"session_id":{sid},"hook_event_name":"{name}"{extra}}}"#);
    hook_event(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// `len` characters starting with `tag`, then a filler that needs no JSON
/// escaping.
pub fn text(tag: &str, len: usize) -> String {
    let mut s = format!("{tag}:");
    let filler = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut i = 0;
    while s.len() < len {
        s.push(filler[i % filler.len()] as char);
        i += 1;
    }
    s
}

/// A whole `Bash` tool call keyed `tool:{call_id}`, with `chars`
/// characters of input and of output.
pub fn tool(session: &str, call_id: &str, chars: usize) -> Event {
    Event {
        session: session.to_string(),
        key: Some(format!("tool:{call_id}")),
        time: None,
        body: Body::ToolCall {
            call_id: call_id.to_string(),
            tool: "Bash".to_string(),
            parent: None,
            input: Some(JsonText::canonical(&Value::String(text(
                &format!("{call_id}-in"),
                chars,
            )))),
            output: Some(JsonText::canonical(&Value::String(text(
                &format!("{call_id}-out"),
                chars,
            )))),
            status: EndStatus::Ok,
            message: None,
            duration_ms: Some(7),
        },
    }
}

// ---------------------------------------------------------------------------
// Trace files and listings
// ---------------------------------------------------------------------------

/// A trace file's bytes, parsed and validated against the v2 schema.
pub fn parse(bytes: &[u8]) -> Value {
    super::schema::trace_json(bytes)
}

/// The trace file of `id` on the real file system, parsed.
pub fn read_fs(store: &Store, id: &str) -> Value {
    parse(&std::fs::read(store.trace_path(id)).expect("trace file exists"))
}

/// The tool call ids of a trace file's tool spans, in file order.
pub fn file_tool_ids(v: &Value) -> Vec<String> {
    v["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .filter(|s| s["kind"] == "tool")
        .map(|s| s["tool"]["callId"].as_str().expect("callId").to_string())
        .collect()
}

/// The tool call ids of a session's state, in span order.
pub fn state_tool_ids(s: &Session) -> Vec<String> {
    s.spans
        .values()
        .filter_map(|sp| sp.tool.as_ref().map(|t| t.call_id.clone()))
        .collect()
}

/// Temp files left in a trace directory listing.
pub fn temps_in(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .cloned()
        .collect()
}

/// The names in `dir` (lossily decoded), sorted.
pub fn fs_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
