//! Trace files against the v2 type frontends read
//! (tests/schema/trace-file-v2.schema.json, from
//! shared/reference/trace-file-v2.md): a wide range of sessions is
//! rendered after every event and each file is validated; the viewer's
//! nesting rules ("How spans nest") are checked on the hook sessions.
//!
//! Catches: `summary.topTools[]` / `summary.loops[]` in any shape but
//! `{name, count, totalDuration}` / `{tool, inputHash?, count,
//! description}`; a hook turn's tool calls parented to anything but a
//! generation (the Chat tab drops them); a generation whose `output` is
//! an object (shown as `[object Object]`); hook sessions without
//! `providerId` / `agent`.

#[path = "common/schema.rs"]
mod schema;

use serde_json::{json, Value};
use tracejournal::event::{parse_line, Body, Entry, Event};
use tracejournal::model::Sessions;
use tracejournal::trace::render;

const HOOKS: &str = include_str!("../examples/session.jsonl");
const HOOKS_2: &str = include_str!("../examples/events.jsonl");
const TYPED: &str = include_str!("../examples/typed.jsonl");

/// Applies events one by one, rendering and validating every session's
/// file after each one (live states included).
struct Run {
    state: Sessions,
    lsn: u64,
    time: u64,
    validate_each: bool,
}

impl Run {
    fn new() -> Run {
        Run {
            state: Sessions::new(1),
            lsn: 1,
            time: 1_773_568_800_000,
            validate_each: true,
        }
    }

    fn event(&mut self, mut event: Event) {
        self.time += 7;
        event.time.get_or_insert(self.time);
        let session = event.session.clone();
        self.state.apply(self.lsn, &Entry::from(event));
        self.lsn += 1;
        if self.validate_each {
            if let Some(s) = self.state.get(&session) {
                schema::trace_json(&render(s));
            }
        }
    }

    fn line(&mut self, line: &str) {
        let event = parse_line(line).unwrap_or_else(|e| panic!("{line}: {}", e.message()));
        self.event(event);
    }

    fn lines(&mut self, text: &str) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.line(line);
        }
    }

    fn hook(&mut self, session: &str, value: Value) {
        let mut value = value;
        value["session_id"] = json!(session);
        self.line(&value.to_string());
    }

    fn crash(&mut self, session: &str, reason: &str) {
        let run = self.state.get(session).unwrap().run;
        self.event(Event {
            session: session.into(),
            key: None,
            time: None,
            body: Body::Crash {
                reason: reason.into(),
                run,
            },
        });
    }

    /// The file of `session`, validated.
    fn file(&self, session: &str) -> Value {
        schema::trace_json(&render(self.state.get(session).unwrap()))
    }
}

fn spans(file: &Value) -> &Vec<Value> {
    file["spans"].as_array().unwrap()
}

fn span<'a>(file: &'a Value, id: &str) -> &'a Value {
    spans(file)
        .iter()
        .find(|s| s["spanId"] == id)
        .unwrap_or_else(|| panic!("no span {id}"))
}

fn session_id(text: &str) -> String {
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    first["session_id"].as_str().unwrap().to_string()
}

/// A file as today's writer produced it (summary shapes of the old
/// writer) is rejected: the schema is not vacuous.
#[test]
fn the_schema_rejects_the_old_summary_shapes_and_object_outputs() {
    let mut run = Run::new();
    run.lines(TYPED);
    let good = run.file("opencode/ses_7Hq2XkW9pLm4");
    let mut old = good.clone();
    old["summary"]["topTools"] = json!([{"name": "bash", "count": 2, "durationMs": 4391}]);
    assert!(
        !schema::schema_errors(&old).is_empty(),
        "topTools durationMs"
    );
    let mut old = good.clone();
    old["summary"]["loops"] = json!([{"tool": "Read", "count": 3, "input": "{}"}]);
    assert!(!schema::schema_errors(&old).is_empty(), "loops input");
    let mut old = good.clone();
    let gen = spans(&old)
        .iter()
        .position(|s| s["kind"] == "generation")
        .unwrap();
    old["spans"][gen]["output"] = json!({"text": "hi"});
    assert!(!schema::schema_errors(&old).is_empty(), "object output");
    let mut old = good.clone();
    old["summary"]["status"] = json!("running");
    assert!(
        !schema::schema_errors(&old).is_empty(),
        "endedAt while live"
    );
    let mut old = good;
    old["spans"][1]["parentSpanId"] = Value::Null;
    assert!(!schema::schema_errors(&old).is_empty(), "a second root");
}

/// Every kind of session the model builds renders a valid v2 file, at
/// every step of its life.
#[test]
fn every_kind_of_session_renders_a_valid_v2_file() {
    let mut run = Run::new();
    // Hook sessions (subagents, failed tools, a batch), typed events.
    run.lines(HOOKS);
    run.lines(HOOKS_2);
    run.lines(TYPED);

    // A session crashed mid-turn with a tool call open.
    run.hook(
        "crashed",
        json!({"hook_event_name": "SessionStart", "model": "claude-opus-4-1"}),
    );
    run.hook(
        "crashed",
        json!({"hook_event_name": "UserPromptSubmit", "prompt": "go"}),
    );
    run.hook("crashed", json!({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "t1", "tool_input": {"command": "make"}}));
    run.crash("crashed", "");
    let file = run.file("crashed");
    assert_eq!(file["summary"]["status"], "crashed");
    assert_eq!(span(&file, "t1")["interrupted"], true);
    assert_eq!(span(&file, "turn-1")["interrupted"], true);

    // Ended with an error; a StopFailure turn; a Stop without a message;
    // a message that is not a string; a turn cut by the next prompt.
    run.hook(
        "err",
        json!({"hook_event_name": "UserPromptSubmit", "prompt": "a"}),
    );
    run.hook("err", json!({"hook_event_name": "PostToolUse", "tool_name": "Read", "tool_use_id": "r1", "tool_input": {"p": 1}, "tool_response": {"ok": true}}));
    run.hook(
        "err",
        json!({"hook_event_name": "PostToolUse", "tool_name": "Grep", "tool_use_id": "r2"}),
    );
    run.hook("err", json!({"hook_event_name": "Stop"}));
    run.hook(
        "err",
        json!({"hook_event_name": "UserPromptSubmit", "prompt": "b"}),
    );
    run.hook("err", json!({"hook_event_name": "StopFailure", "error": "rate limited", "last_assistant_message": {"parts": ["x"]}}));
    run.hook(
        "err",
        json!({"hook_event_name": "UserPromptSubmit", "prompt": "c"}),
    );
    run.hook(
        "err",
        json!({"hook_event_name": "UserPromptSubmit", "prompt": "d"}),
    );
    run.line(r#"{"type":"session_end","session":"err","status":"error","message":"agent failed"}"#);
    let file = run.file("err");
    assert_eq!(file["summary"]["status"], "error");
    assert_eq!(span(&file, "turn-1")["output"], "[tool calls: Read, Grep]");
    assert_eq!(span(&file, "turn-2")["status"], "error");
    assert_eq!(span(&file, "turn-2")["finishReason"], "error");
    assert_eq!(span(&file, "turn-2")["output"], r#"{"parts":["x"]}"#);
    assert!(span(&file, "turn-3")["endTime"].is_u64());

    // Typed: a generation whose output is an object or a list of named
    // tool calls, unknown kinds, a tool span started by kind, a resume.
    for line in [
        r#"{"type":"session_start","session":"t","metadata":{"model":"m"}}"#,
        r#"{"type":"span_start","session":"t","span":"g1","kind":"generation"}"#,
        r#"{"type":"span_end","session":"t","span":"g1","output":{"tool_calls":[{"name":"read"},{"name":"edit"}]}}"#,
        r#"{"type":"span_start","session":"t","span":"g2","kind":"generation","name":"custom"}"#,
        r#"{"type":"span_end","session":"t","span":"g2","output":[1,2]}"#,
        r#"{"type":"span_start","session":"t","span":"k","kind":"retrieval"}"#,
        r#"{"type":"span_start","session":"t","span":"tk","kind":"tool"}"#,
        r#"{"type":"span_end","session":"t","span":"tk","status":"error","message":"no"}"#,
        r#"{"type":"session_end","session":"t","status":"completed"}"#,
        r#"{"type":"session_start","session":"t","resume":true}"#,
        r#"{"type":"tool_call","session":"t","call_id":"c","tool":""}"#,
    ] {
        run.line(line);
    }
    let file = run.file("t");
    assert_eq!(span(&file, "g1")["output"], "[tool calls: read, edit]");
    assert_eq!(span(&file, "g2")["output"], "[1,2]");
    assert_eq!(file["summary"]["status"], "running");

    // Loops: the same call four times, then the session ends.
    for i in 0..4 {
        run.line(&format!(
            r#"{{"type":"tool_call","session":"loop","call_id":"c{i}","tool":"Read","input":{{"path":"a.rs"}},"duration_ms":5}}"#
        ));
    }
    run.line(
        r#"{"type":"tool_call","session":"loop","call_id":"x","tool":"Edit","duration_ms":2}"#,
    );
    run.line(r#"{"type":"session_end","session":"loop"}"#);
    let file = run.file("loop");
    assert_eq!(
        file["summary"]["topTools"],
        json!([
            {"name": "Read", "count": 4, "totalDuration": 20},
            {"name": "Edit", "count": 1, "totalDuration": 2}
        ])
    );
    let loops = file["summary"]["loops"].as_array().unwrap();
    assert_eq!(loops.len(), 1);
    assert_eq!(loops[0]["tool"], "Read");
    assert_eq!(loops[0]["count"], 4);
    assert_eq!(
        loops[0]["description"],
        "Read called 4 times with the same input"
    );
    assert_eq!(loops[0]["inputHash"].as_str().unwrap().len(), 16);

    // Every session ended or not: valid.
    for s in run.state.iter() {
        schema::trace_json(&render(s));
    }

    // Elided: more than 5,000 spans (validated once, at the end).
    run.validate_each = false;
    run.hook(
        "big",
        json!({"hook_event_name": "UserPromptSubmit", "prompt": "loop"}),
    );
    for i in 0..6_000 {
        run.hook("big", json!({"hook_event_name": "PostToolUse", "tool_name": "Read", "tool_use_id": format!("b{i}"), "tool_input": {"i": i % 7}, "duration_ms": 1}));
    }
    run.hook(
        "big",
        json!({"hook_event_name": "Stop", "last_assistant_message": "done"}),
    );
    run.hook(
        "big",
        json!({"hook_event_name": "SessionEnd", "reason": "other"}),
    );
    let file = run.file("big");
    assert_eq!(spans(&file).len(), 5_000);
    assert!(spans(&file).iter().any(|s| s["spanId"] == "elided"));
    assert_eq!(span(&file, "turn-1")["output"], "done");
}

/// The viewer's Chat tab shows a tool call only under a generation: every
/// tool call of a hook turn hangs under the turn's generation, which
/// carries the assistant's last message as a string; the prompt is a
/// zero-length leaf under the root. A subagent's calls stay under its
/// span.
#[test]
fn hook_turns_are_generations_that_parent_their_tool_calls() {
    let mut run = Run::new();
    run.lines(HOOKS);
    let id = session_id(HOOKS);
    let file = run.file(&id);
    let by_id = |sid: &Value| spans(&file).iter().find(|s| s["spanId"] == *sid).unwrap();
    let subagents: Vec<&Value> = spans(&file)
        .iter()
        .filter(|s| s["name"].as_str().unwrap().starts_with("subagent"))
        .map(|s| &s["spanId"])
        .collect();
    assert!(!subagents.is_empty());
    let mut under_generation = 0;
    for tool in spans(&file).iter().filter(|s| s["kind"] == "tool") {
        let parent = by_id(&tool["parentSpanId"]);
        if subagents.contains(&&parent["spanId"]) {
            continue;
        }
        assert_eq!(
            parent["kind"], "generation",
            "tool {} hangs under {}",
            tool["name"], parent["spanId"]
        );
        under_generation += 1;
    }
    assert!(under_generation >= 10, "{under_generation}");
    let prompts: Vec<&Value> = spans(&file)
        .iter()
        .filter(|s| s["kind"] == "user-message")
        .collect();
    assert_eq!(prompts.len(), 3);
    for p in &prompts {
        assert_eq!(p["parentSpanId"], "root");
        assert_eq!(
            p["startTime"], p["endTime"],
            "a prompt is a zero-length leaf"
        );
        assert!(p["input"].is_string());
    }
    let turns: Vec<&Value> = spans(&file)
        .iter()
        .filter(|s| s["kind"] == "generation")
        .collect();
    assert_eq!(turns.len(), 3, "one generation per turn");
    let stops: Vec<String> = HOOKS
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["hook_event_name"] == "Stop")
        .map(|v| v["last_assistant_message"].as_str().unwrap().to_string())
        .collect();
    for (turn, message) in turns.iter().zip(&stops) {
        assert_eq!(turn["parentSpanId"], "root");
        assert_eq!(turn["output"].as_str(), Some(message.as_str()));
        assert_eq!(turn["finishReason"], "stop");
        assert_eq!(turn["model"]["providerId"], "anthropic");
    }
    assert_eq!(file["summary"]["totalGenerations"], 3);
}

/// The header's provider and agent: a Claude Code hook session says
/// `anthropic` / `claude-code` (its model is a Claude model, its
/// transcript lies in Claude Code's store), not "unknown" / "default".
#[test]
fn hook_sessions_name_provider_and_agent() {
    let mut run = Run::new();
    run.lines(HOOKS);
    run.lines(HOOKS_2);
    for text in [HOOKS, HOOKS_2] {
        let file = run.file(&session_id(text));
        assert_eq!(file["metadata"]["providerId"], "anthropic");
        assert_eq!(file["metadata"]["agent"], "claude-code");
    }
    assert_eq!(
        run.file(&session_id(HOOKS))["metadata"]["model"],
        "claude-sonnet-4-5-20250929"
    );
}

/// A typed generation's object output is written as the string frontends
/// print: its `text`.
#[test]
fn typed_generation_outputs_are_strings() {
    let mut run = Run::new();
    run.lines(TYPED);
    let file = run.file("opencode/ses_7Hq2XkW9pLm4");
    assert_eq!(
        span(&file, "gen-1")["output"],
        "I'll read the test and the helper it calls."
    );
    for s in spans(&file).iter().filter(|s| s["kind"] == "generation") {
        assert!(s["output"].is_string(), "{s}");
    }
    // Tool output keeps its JSON shape.
    assert!(span(&file, "call_k2V9")["output"].is_object());
}
