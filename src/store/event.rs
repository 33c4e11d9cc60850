//! Events: what agents and tracers send, as typed values, as one-line JSON,
//! and as log records.
//!
//! Three forms of one thing:
//!
//! * **JSON lines** (the CLI's input, documented in README): either a typed
//!   event, an object with a `"type"` field (`session_start`, `span_start`,
//!   `span_end`, `tool_call`, `attributes`, `session_end`, `crash`), or a
//!   raw hook payload exactly as an agent posts it (any object with a
//!   `"hook_event_name"` field). [`parse_line`] turns one line into an
//!   [`Event`] with a clear error for anything else.
//! * **[`Event`]**: the typed value the store takes.
//! * **[`Entry`]**: what one log record holds, encoded with
//!   [`crate::wal::payload`] under [`ENTRY_VERSION`] and record kind
//!   [`ENTRY_KIND`]. Hook payloads are stored verbatim (their original
//!   text); JSON values inside typed events are stored as their canonical
//!   (RFC 8785) text.
//!
//! Nothing here does I/O.

use crate::store::jcs;
use crate::wal::payload;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The record kind of every record the session store writes.
pub const ENTRY_KIND: u8 = 0x10;

/// The schema version of [`Entry`] payloads. Bump it, and keep a decoder
/// for every older version, whenever the encoding of [`Entry`] changes.
pub const ENTRY_VERSION: u16 = 1;

/// Longest session id, client key, span id or name accepted (bytes).
pub const MAX_ID_LEN: usize = 16 * 1024;

/// A JSON value held as its text. Typed events hold canonical (RFC 8785)
/// text; hook payloads hold the text the agent sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonText(pub String);

impl JsonText {
    /// The canonical text of `value`.
    pub fn canonical(value: &Value) -> JsonText {
        JsonText(jcs::to_string(value))
    }

    /// Parses the text back into a value.
    pub fn parse(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

/// Session metadata, as in the trace file's `metadata` object. Absent
/// fields stay absent (never `null`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Human title of the session.
    pub title: Option<String>,
    /// Model id.
    pub model: Option<String>,
    /// Model provider.
    pub provider_id: Option<String>,
    /// Agent name.
    pub agent: Option<String>,
    /// Model variant.
    pub variant: Option<String>,
    /// The first prompt.
    pub prompt: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Environment name.
    pub environment: Option<String>,
    /// Agent version.
    pub version: Option<String>,
    /// Free tags.
    pub tags: Option<Vec<String>>,
}

/// Token counts of a generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Tokens read from the prompt cache.
    pub cache_read: u64,
    /// Tokens written to the prompt cache.
    pub cache_write: u64,
}

impl Tokens {
    /// The sum of all five counts.
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.output)
            .saturating_add(self.reasoning)
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }

    /// Adds `other` into `self` (saturating).
    pub fn add(&mut self, other: &Tokens) {
        self.input = self.input.saturating_add(other.input);
        self.output = self.output.saturating_add(other.output);
        self.reasoning = self.reasoning.saturating_add(other.reasoning);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
        self.cache_write = self.cache_write.saturating_add(other.cache_write);
    }
}

/// The model of a generation span.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Model id.
    pub model_id: Option<String>,
    /// Provider id.
    pub provider_id: Option<String>,
    /// Variant.
    pub variant: Option<String>,
}

/// How a span or session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndStatus {
    /// Success.
    Ok,
    /// Failure (the event carries the message).
    Error,
}

/// What happened, without the session and key envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A session starts, or with `resume`, a new run of it starts.
    SessionStart {
        /// Metadata (merged into what the session has).
        metadata: Metadata,
        /// An explicit resume: starts a new run even after an end or crash.
        resume: bool,
    },
    /// A span opens.
    SpanStart {
        /// The client's span id (unique per session while open).
        span: String,
        /// The parent's span id; `None` for a child of the root.
        parent: Option<String>,
        /// `generation`, `tool`, `user-message`, `span`, ... (open set).
        kind: String,
        /// Display name.
        name: String,
        /// Input (canonical JSON).
        input: Option<JsonText>,
        /// Model, for generations.
        model: Option<ModelRef>,
        /// Free attributes (a canonical JSON object).
        attributes: Option<JsonText>,
    },
    /// A span closes.
    SpanEnd {
        /// The client's span id.
        span: String,
        /// How it ended.
        status: EndStatus,
        /// Error text.
        message: Option<String>,
        /// Output (canonical JSON).
        output: Option<JsonText>,
        /// Tokens, for generations.
        tokens: Option<Tokens>,
        /// Cost in dollars, for generations.
        cost: Option<f64>,
        /// Finish reason, for generations.
        finish_reason: Option<String>,
        /// Attributes merged into the span's (a canonical JSON object).
        attributes: Option<JsonText>,
    },
    /// A whole tool call in one event.
    ToolCall {
        /// The tool call id (`toolu_...`).
        call_id: String,
        /// Tool name.
        tool: String,
        /// Parent span id; `None` for the current turn or the root.
        parent: Option<String>,
        /// Input (canonical JSON).
        input: Option<JsonText>,
        /// Output (canonical JSON).
        output: Option<JsonText>,
        /// How it ended.
        status: EndStatus,
        /// Error text.
        message: Option<String>,
        /// Duration in milliseconds.
        duration_ms: Option<u64>,
    },
    /// Attributes merged into a span (or the root span when `span` is
    /// `None`).
    Attributes {
        /// The span id, or `None` for the root.
        span: Option<String>,
        /// A canonical JSON object.
        attributes: JsonText,
    },
    /// The session ends.
    SessionEnd {
        /// `Ok` is `completed`, `Error` is `error`.
        status: EndStatus,
        /// Error text.
        message: Option<String>,
    },
    /// A crash marker for run `run` of the session. Written through the
    /// urgent lane; once applied, nothing changes that run's status.
    Crash {
        /// Why.
        reason: String,
        /// The run it marks.
        run: u32,
    },
    /// A raw hook payload, verbatim.
    Hook {
        /// The payload's `hook_event_name`.
        name: String,
        /// The payload text exactly as received.
        payload: JsonText,
    },
}

impl Body {
    /// A short name for messages and the CLI.
    pub fn type_name(&self) -> &str {
        match self {
            Body::SessionStart { .. } => "session_start",
            Body::SpanStart { .. } => "span_start",
            Body::SpanEnd { .. } => "span_end",
            Body::ToolCall { .. } => "tool_call",
            Body::Attributes { .. } => "attributes",
            Body::SessionEnd { .. } => "session_end",
            Body::Crash { .. } => "crash",
            Body::Hook { name, .. } => name,
        }
    }
}

/// One event for one session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The session id, verbatim.
    pub session: String,
    /// Optional idempotency key: a second event with the same key in the
    /// same session is acknowledged with the first one's LSN and changes
    /// nothing.
    pub key: Option<String>,
    /// Epoch milliseconds; stamped by the store when `None`.
    pub time: Option<u64>,
    /// What happened.
    pub body: Body,
}

/// What one log record of the session store holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Entry {
    /// An event, with its time stamped.
    Event(Box<Event>),
    /// Retention removed a finished session: forget it.
    Retire {
        /// The session id.
        session: String,
    },
    /// The store was closed cleanly: sessions open now were not orphaned
    /// by a dead process.
    Shutdown,
    /// A process opened the store. Until its `Shutdown`, a death of that
    /// process orphans the sessions open at the time (without it, a process
    /// that died before writing anything would look like a clean close).
    Opened,
}

impl From<Event> for Entry {
    fn from(event: Event) -> Entry {
        Entry::Event(Box::new(event))
    }
}

impl Entry {
    /// The log record payload.
    pub fn encode(&self) -> Vec<u8> {
        payload::encode(ENTRY_VERSION, self).expect("entries always encode")
    }

    /// Decodes a log record payload.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EventError> {
        let (version, entry) = payload::decode::<Entry>(bytes)
            .map_err(|e| EventError::new(format!("undecodable entry: {e}")))?;
        if version != ENTRY_VERSION {
            return Err(EventError::new(format!(
                "entry schema version {version} is not known to this build (knows {ENTRY_VERSION})"
            )));
        }
        Ok(entry)
    }
}

/// Why an event was refused. The message names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventError(String);

impl EventError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> EventError {
        EventError(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EventError {}

impl Event {
    /// Checks what the model cannot repair: non-empty, bounded ids.
    pub fn validate(&self) -> Result<(), EventError> {
        check_id("session", &self.session)?;
        if let Some(key) = &self.key {
            check_id("key", key)?;
        }
        match &self.body {
            Body::SpanStart { span, kind, .. } => {
                check_id("span", span)?;
                check_len("kind", kind)
            }
            Body::SpanEnd { span, cost, .. } => {
                check_id("span", span)?;
                match cost {
                    Some(c) if !c.is_finite() => {
                        Err(EventError::new("field `cost` must be a finite number"))
                    }
                    _ => Ok(()),
                }
            }
            Body::ToolCall { call_id, tool, .. } => {
                check_id("call_id", call_id)?;
                check_len("tool", tool)
            }
            Body::Hook { name, .. } => check_len("hook_event_name", name),
            _ => Ok(()),
        }
    }

    /// The time, or 0 when not stamped yet.
    pub fn time_ms(&self) -> u64 {
        self.time.unwrap_or(0)
    }
}

fn check_id(field: &str, value: &str) -> Result<(), EventError> {
    if value.is_empty() {
        return Err(EventError::new(format!(
            "field `{field}` must not be empty"
        )));
    }
    check_len(field, value)
}

fn check_len(field: &str, value: &str) -> Result<(), EventError> {
    if value.len() > MAX_ID_LEN {
        return Err(EventError::new(format!(
            "field `{field}` is {} bytes; the limit is {MAX_ID_LEN}",
            value.len()
        )));
    }
    Ok(())
}

/// Parses one JSON line: a typed event (with `"type"`) or a raw hook payload
/// (with `"hook_event_name"`).
pub fn parse_line(line: &str) -> Result<Event, EventError> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| EventError::new(format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = &value else {
        return Err(EventError::new("an event must be a JSON object"));
    };
    // A hook payload is recognised first: agents' payloads may carry a
    // field named `type` of their own.
    let event = if obj.contains_key("hook_event_name") {
        parse_hook(line, obj)?
    } else if obj.contains_key("type") {
        parse_typed(obj)?
    } else {
        return Err(EventError::new(
            "an event needs a `type` field (a typed event) or a `hook_event_name` field (a hook payload)",
        ));
    };
    event.validate()?;
    Ok(event)
}

/// Builds a hook event from a payload's text (kept verbatim).
pub fn hook_event(text: &str) -> Result<Event, EventError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| EventError::new(format!("hook payload is not valid JSON: {e}")))?;
    let Value::Object(obj) = &value else {
        return Err(EventError::new("a hook payload must be a JSON object"));
    };
    let event = parse_hook(text, obj)?;
    event.validate()?;
    Ok(event)
}

fn parse_hook(text: &str, obj: &Map<String, Value>) -> Result<Event, EventError> {
    let name = req_str(obj, "hook_event_name")?;
    let session = req_str(obj, "session_id")?;
    let key = opt_str(obj, "idempotency_key")?.or_else(|| default_hook_key(&name, obj));
    Ok(Event {
        session,
        key,
        time: None,
        body: Body::Hook {
            name,
            payload: JsonText(text.trim().to_string()),
        },
    })
}

/// The natural de-duplication key of a hook delivery: the event name plus
/// its `tool_use_id` (tool events) or the ids of its calls (`PostToolBatch`),
/// so a retried delivery counts once.
fn default_hook_key(name: &str, obj: &Map<String, Value>) -> Option<String> {
    if let Some(id) = obj.get("tool_use_id").and_then(Value::as_str) {
        return Some(format!("{name}:{id}"));
    }
    // A batch is identified by the ids of its calls.
    let calls = obj.get("tool_calls")?.as_array()?;
    let ids: Vec<&str> = calls
        .iter()
        .map(|c| c.get("tool_use_id").and_then(Value::as_str))
        .collect::<Option<_>>()?;
    if ids.is_empty() {
        return None;
    }
    Some(format!("{name}:{}", ids.join(",")))
}

fn parse_typed(obj: &Map<String, Value>) -> Result<Event, EventError> {
    let ty = req_str(obj, "type")?;
    let session = req_str(obj, "session")?;
    let key = opt_str(obj, "key")?;
    let time = opt_u64(obj, "time")?;
    let body = match ty.as_str() {
        "session_start" => Body::SessionStart {
            metadata: parse_metadata(obj.get("metadata"))?,
            resume: opt_bool(obj, "resume")?.unwrap_or(false),
        },
        "span_start" => Body::SpanStart {
            span: req_str(obj, "span")?,
            parent: opt_str(obj, "parent")?,
            kind: opt_str(obj, "kind")?.unwrap_or_else(|| "span".into()),
            name: opt_str(obj, "name")?.unwrap_or_default(),
            input: opt_json(obj, "input"),
            model: parse_model(obj.get("model"))?,
            attributes: opt_object(obj, "attributes")?,
        },
        "span_end" => Body::SpanEnd {
            span: req_str(obj, "span")?,
            status: parse_status(obj, "status", "ok", "error")?,
            message: opt_str(obj, "message")?,
            output: opt_json(obj, "output"),
            tokens: parse_tokens(obj.get("tokens"))?,
            cost: opt_f64(obj, "cost")?,
            finish_reason: opt_str(obj, "finish_reason")?,
            attributes: opt_object(obj, "attributes")?,
        },
        "tool_call" => Body::ToolCall {
            call_id: req_str(obj, "call_id")?,
            tool: opt_str(obj, "tool")?.unwrap_or_default(),
            parent: opt_str(obj, "parent")?,
            input: opt_json(obj, "input"),
            output: opt_json(obj, "output"),
            status: parse_status(obj, "status", "ok", "error")?,
            message: opt_str(obj, "message")?,
            duration_ms: opt_u64(obj, "duration_ms")?,
        },
        "attributes" => Body::Attributes {
            span: opt_str(obj, "span")?,
            attributes: opt_object(obj, "attributes")?
                .ok_or_else(|| EventError::new("field `attributes` is required"))?,
        },
        "session_end" => Body::SessionEnd {
            status: parse_status(obj, "status", "completed", "error")?,
            message: opt_str(obj, "message")?,
        },
        "crash" => Body::Crash {
            reason: opt_str(obj, "reason")?.unwrap_or_default(),
            run: 0,
        },
        other => {
            return Err(EventError::new(format!(
                "unknown event type `{other}` (expected session_start, span_start, span_end, \
                 tool_call, attributes, session_end or crash; raw hook payloads carry \
                 `hook_event_name` instead of `type`)"
            )))
        }
    };
    Ok(Event {
        session,
        key,
        time,
        body,
    })
}

fn req_str(obj: &Map<String, Value>, field: &str) -> Result<String, EventError> {
    opt_str(obj, field)?.ok_or_else(|| EventError::new(format!("field `{field}` is required")))
}

fn opt_str(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(EventError::new(format!("field `{field}` must be a string"))),
    }
}

fn opt_bool(obj: &Map<String, Value>, field: &str) -> Result<Option<bool>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(EventError::new(format!(
            "field `{field}` must be true or false"
        ))),
    }
}

fn opt_u64(obj: &Map<String, Value>, field: &str) -> Result<Option<u64>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            EventError::new(format!("field `{field}` must be a non-negative integer"))
        }),
    }
}

fn opt_f64(obj: &Map<String, Value>, field: &str) -> Result<Option<f64>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| EventError::new(format!("field `{field}` must be a finite number"))),
    }
}

fn opt_json(obj: &Map<String, Value>, field: &str) -> Option<JsonText> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(v) => Some(JsonText::canonical(v)),
    }
}

fn opt_object(obj: &Map<String, Value>, field: &str) -> Result<Option<JsonText>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(JsonText::canonical(v))),
        Some(_) => Err(EventError::new(format!(
            "field `{field}` must be an object"
        ))),
    }
}

fn parse_status(
    obj: &Map<String, Value>,
    field: &str,
    ok: &str,
    error: &str,
) -> Result<EndStatus, EventError> {
    match opt_str(obj, field)? {
        None => Ok(EndStatus::Ok),
        Some(s) if s == ok => Ok(EndStatus::Ok),
        Some(s) if s == error => Ok(EndStatus::Error),
        Some(s) => Err(EventError::new(format!(
            "field `{field}` must be `{ok}` or `{error}`, not `{s}`"
        ))),
    }
}

fn parse_metadata(value: Option<&Value>) -> Result<Metadata, EventError> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(Metadata::default()),
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err(EventError::new("field `metadata` must be an object")),
    };
    let tags = match obj.get("tags") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|t| {
                    t.as_str().map(str::to_string).ok_or_else(|| {
                        EventError::new("field `metadata.tags` must be an array of strings")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => {
            return Err(EventError::new(
                "field `metadata.tags` must be an array of strings",
            ))
        }
    };
    Ok(Metadata {
        title: opt_str(obj, "title")?,
        model: opt_str(obj, "model")?,
        provider_id: opt_str(obj, "providerId")?,
        agent: opt_str(obj, "agent")?,
        variant: opt_str(obj, "variant")?,
        prompt: opt_str(obj, "prompt")?,
        user_id: opt_str(obj, "userId")?,
        environment: opt_str(obj, "environment")?,
        version: opt_str(obj, "version")?,
        tags,
    })
}

fn parse_model(value: Option<&Value>) -> Result<Option<ModelRef>, EventError> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err(EventError::new("field `model` must be an object")),
    };
    Ok(Some(ModelRef {
        model_id: opt_str(obj, "modelId")?,
        provider_id: opt_str(obj, "providerId")?,
        variant: opt_str(obj, "variant")?,
    }))
}

fn parse_tokens(value: Option<&Value>) -> Result<Option<Tokens>, EventError> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err(EventError::new("field `tokens` must be an object")),
    };
    let get = |name: &str| opt_u64(obj, name).map(Option::unwrap_or_default);
    Ok(Some(Tokens {
        input: get("input")?,
        output: get("output")?,
        reasoning: get("reasoning")?,
        cache_read: get("cacheRead")?,
        cache_write: get("cacheWrite")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_and_hook_lines_parse() {
        let e = parse_line(
            r#"{"type":"tool_call","session":"s/1","call_id":"toolu_1","tool":"Read","input":{"b":1,"a":2},"duration_ms":5}"#,
        )
        .unwrap();
        assert_eq!(e.session, "s/1");
        match e.body {
            Body::ToolCall { input, .. } => assert_eq!(input.unwrap().0, r#"{"a":2,"b":1}"#),
            other => panic!("{other:?}"),
        }
        let text = r#"{"session_id":"abc","hook_event_name":"PostToolUse","tool_use_id":"toolu_9","tool_name":"Bash"}"#;
        let e = parse_line(text).unwrap();
        assert_eq!(e.key.as_deref(), Some("PostToolUse:toolu_9"));
        match e.body {
            Body::Hook { name, payload } => {
                assert_eq!(name, "PostToolUse");
                assert_eq!(payload.0, text, "hook payloads are kept verbatim");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hook_payloads_win_over_a_type_field_and_batches_get_keys() {
        let text = r#"{"session_id":"s","hook_event_name":"Notification","type":"info"}"#;
        assert!(matches!(parse_line(text).unwrap().body, Body::Hook { .. }));
        let batch = r#"{"session_id":"s","hook_event_name":"PostToolBatch","tool_calls":[{"tool_use_id":"a"},{"tool_use_id":"b"}]}"#;
        assert_eq!(
            parse_line(batch).unwrap().key.as_deref(),
            Some("PostToolBatch:a,b")
        );
        let no_ids =
            r#"{"session_id":"s","hook_event_name":"PostToolBatch","tool_calls":[{"x":1}]}"#;
        assert_eq!(parse_line(no_ids).unwrap().key, None);
    }

    #[test]
    fn bad_lines_name_the_problem() {
        let cases = [
            ("[1]", "must be a JSON object"),
            ("{}", "needs a `type` field"),
            (
                r#"{"type":"nope","session":"s"}"#,
                "unknown event type `nope`",
            ),
            (
                r#"{"type":"span_end","session":"s"}"#,
                "field `span` is required",
            ),
            (
                r#"{"type":"session_end","session":""}"#,
                "`session` must not be empty",
            ),
            (
                r#"{"type":"span_end","session":"s","span":"x","status":"maybe"}"#,
                "`ok` or `error`",
            ),
            (
                r#"{"hook_event_name":"Stop"}"#,
                "field `session_id` is required",
            ),
            (
                r#"{"type":"session_start","session":"s","time":-1}"#,
                "non-negative integer",
            ),
        ];
        for (line, want) in cases {
            let err = parse_line(line).unwrap_err();
            assert!(err.message().contains(want), "{line}: {err}");
        }
    }

    #[test]
    fn entries_round_trip() {
        let e = parse_line(
            r#"{"type":"span_end","session":"s","span":"g","tokens":{"input":3},"cost":0.5}"#,
        )
        .unwrap();
        let entry = Entry::from(e);
        assert_eq!(Entry::decode(&entry.encode()).unwrap(), entry);
        assert!(Entry::decode(&[9, 9, 0]).is_err());
    }
}
