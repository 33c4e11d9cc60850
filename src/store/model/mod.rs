//! The session model: state + entry -> new state. Pure: no I/O, no clock,
//! no randomness, so replaying the same log always rebuilds the same
//! state, in memory after an append and on recovery alike.
//!
//! It keeps what a trace file needs (spans, metadata, counters, the
//! summary's inputs) and the bookkeeping that makes the store's promises
//! hold: client keys for idempotency, the run number that makes a crash
//! final for its run, and the `clean_shutdown` flag recovery reads.
//!
//! Rendering the state as a trace file is [`crate::store::render`]'s job.

use crate::store::event::{Body, EndStatus, Entry, Event, JsonText, Metadata, ModelRef, Tokens};
use crate::wal::Lsn;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

pub mod snapshot;

/// The error text of a crash without a reason (the frontends' wording).
pub const DEFAULT_CRASH_REASON: &str = "Process exited before trace completed";

/// The reason recovery gives sessions orphaned by a dead process.
pub const ORPHANED_REASON: &str = "the process ended before the session was closed";

/// At most this many spans are kept per session (the trace file adds one
/// marker span when some were elided, so files hold at most 5,000).
pub const MAX_SPANS: usize = 4_999;

/// The first spans of a session that are never elided (30 % of 5,000).
pub const HEAD_SPANS: usize = 1_500;

/// Tool output is cut to this many characters.
pub const MAX_TOOL_OUTPUT_CHARS: usize = 10_000;

/// A user message is cut to this many characters.
pub const MAX_USER_MESSAGE_CHARS: usize = 4_000;

/// How many retired session ids the state remembers (newest kept), so
/// that open can tell a retired session's leftover trace file from a file
/// it knows nothing about.
pub const MAX_RETIRED_REMEMBERED: usize = 4_096;

/// How many recent tool calls the loop detector looks at.
const LOOP_WINDOW: usize = 10;

/// Identical calls within the window that make a loop.
const LOOP_THRESHOLD: usize = 3;

/// A session's status, as the trace file's `summary.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Open (also between turns).
    Running,
    /// Ended normally.
    Completed,
    /// Ended with an error.
    Error,
    /// Marked crashed; final for its run.
    Crashed,
}

impl Status {
    /// The trace file's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Error => "error",
            Status::Crashed => "crashed",
        }
    }

    /// True once the run has ended.
    pub fn is_final(self) -> bool {
        self != Status::Running
    }
}

/// A tool span's tool details.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// The tool call id.
    pub call_id: String,
    /// Duration, once known.
    pub duration_ms: Option<u64>,
}

/// One span, as the trace file shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Unique within the session.
    pub span_id: String,
    /// The parent's `span_id`; `None` only for the root.
    pub parent: Option<String>,
    /// Display name.
    pub name: String,
    /// `session`, `generation`, `tool`, `user-message`, `span`, ...
    pub kind: String,
    /// Epoch ms.
    pub start: u64,
    /// Epoch ms, once closed.
    pub end: Option<u64>,
    /// `ok` or `error`.
    pub status: EndStatus,
    /// Error text.
    pub message: Option<String>,
    /// Force-closed because its process died.
    pub interrupted: bool,
    /// Generation model.
    pub model: Option<ModelRef>,
    /// Generation finish reason.
    pub finish_reason: Option<String>,
    /// Generation tokens.
    pub tokens: Option<Tokens>,
    /// Generation cost.
    pub cost: Option<f64>,
    /// Tool details.
    pub tool: Option<ToolInfo>,
    /// Input (JSON text).
    pub input: Option<JsonText>,
    /// Output (JSON text).
    pub output: Option<JsonText>,
    /// Attributes (values are canonical JSON text).
    pub attributes: BTreeMap<String, JsonText>,
}

impl Span {
    fn new(span_id: String, parent: Option<String>, name: String, kind: &str, start: u64) -> Span {
        Span {
            span_id,
            parent,
            name,
            kind: kind.to_string(),
            start,
            end: None,
            status: EndStatus::Ok,
            message: None,
            interrupted: false,
            model: None,
            finish_reason: None,
            tokens: None,
            cost: None,
            tool: None,
            input: None,
            output: None,
            attributes: BTreeMap::new(),
        }
    }
}

/// Per-tool counts for `summary.topTools`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolStat {
    /// Calls.
    pub count: u64,
    /// Summed duration.
    pub duration_ms: u64,
}

/// A repeated identical tool call (`summary.loops`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopInfo {
    /// Tool name.
    pub tool: String,
    /// Input hash (identity of "identical").
    pub input_hash: u64,
    /// The input, cut to 200 characters.
    pub input_preview: String,
    /// Most identical calls seen within the window.
    pub count: u64,
}

/// Running totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Token sums over generations.
    pub tokens: Tokens,
    /// Cost sum (finite values only).
    pub cost: f64,
    /// Tool calls.
    pub tool_calls: u64,
    /// Generations.
    pub generations: u64,
    /// Spans ever created, the root included.
    pub spans: u64,
    /// Spans elided from the file.
    pub elided: u64,
}

/// One session's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The original id, verbatim.
    pub id: String,
    /// UUIDv7, derived from the first entry (stable across restarts).
    pub trace_id: String,
    /// Epoch ms of the first event.
    pub started_at: u64,
    /// Epoch ms of the end of the current run, once ended.
    pub ended_at: Option<u64>,
    /// The run: 1 at creation, +1 on each explicit resume.
    pub run: u32,
    /// Status of the current run.
    pub status: Status,
    /// Error text for `error` and `crashed`.
    pub error: Option<String>,
    /// Metadata.
    pub metadata: Metadata,
    /// Spans by sequence number; the root is 0.
    pub spans: BTreeMap<u64, Arc<Span>>,
    /// Totals.
    pub totals: Totals,
    /// Per-tool stats.
    pub tools: BTreeMap<String, ToolStat>,
    /// Loops found.
    pub loops: Vec<LoopInfo>,
    /// Epoch ms of the latest event.
    pub last_time: u64,
    /// Bumped by every entry that changed the session.
    pub version: u64,
    /// LSN of the latest entry applied to it.
    pub last_lsn: Lsn,
    next_seq: u64,
    /// The sequence number of the last span of the never-elided head.
    head_end: u64,
    /// Open spans by lookup key (`s:` client span, `t:` tool call, `a:`
    /// subagent).
    open: HashMap<String, u64>,
    /// Every kept span by its `span_id`.
    by_id: HashMap<String, u64>,
    /// The open turn (user-message span).
    turn: Option<u64>,
    turns: u64,
    recent_tools: VecDeque<(String, u64)>,
}

/// What applying one entry did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The session it touched.
    pub session: Option<String>,
    /// True if the session's state changed.
    pub changed: bool,
    /// Set when the entry's client key was already stored: the LSN of the
    /// original.
    pub duplicate_of: Option<Lsn>,
    /// True if the entry removed the session.
    pub retired: bool,
}

/// The state of every session in the store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sessions {
    sessions: BTreeMap<String, Session>,
    /// Client keys by session: key -> LSN of the original event.
    keys: HashMap<String, HashMap<String, Lsn>>,
    /// One past the last LSN applied.
    applied: Lsn,
    /// True if the latest entry was a clean `Shutdown`.
    clean_shutdown: bool,
    /// Ids of the newest retired sessions (at most
    /// [`MAX_RETIRED_REMEMBERED`], oldest first); never one that exists.
    #[serde(default)]
    retired: VecDeque<String>,
}

impl Sessions {
    /// An empty state, expecting LSN `first` next.
    pub fn new(first: Lsn) -> Sessions {
        Sessions {
            applied: first,
            ..Sessions::default()
        }
    }

    /// One past the last LSN applied.
    pub fn applied(&self) -> Lsn {
        self.applied
    }

    /// True if the latest entry applied was a clean shutdown.
    pub fn clean_shutdown(&self) -> bool {
        self.clean_shutdown
    }

    /// A session by id.
    pub fn get(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// All sessions, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Ids of the newest retired sessions (oldest first; at most
    /// [`MAX_RETIRED_REMEMBERED`]). A trace file of one of them is a
    /// leftover of its retirement.
    pub fn retired(&self) -> impl Iterator<Item = &str> {
        self.retired.iter().map(String::as_str)
    }

    /// The LSN of the event that stored `key` for `session`, if any.
    pub fn key_lsn(&self, session: &str, key: &str) -> Option<Lsn> {
        self.keys.get(session)?.get(key).copied()
    }

    /// Ids of sessions whose current run is open.
    pub fn open_sessions(&self) -> Vec<(String, u32)> {
        self.sessions
            .values()
            .filter(|s| s.status == Status::Running)
            .map(|s| (s.id.clone(), s.run))
            .collect()
    }

    /// Applies the entry at `lsn`. LSNs must be applied in order; an entry
    /// at an LSN below [`Sessions::applied`] is a replay of one already in
    /// the state (a checkpoint covered it) and changes nothing.
    pub fn apply(&mut self, lsn: Lsn, entry: &Entry) -> Applied {
        if lsn < self.applied {
            return Applied::default();
        }
        self.applied = lsn + 1;
        self.clean_shutdown = matches!(entry, Entry::Shutdown);
        match entry {
            Entry::Event(event) => self.apply_event(lsn, event),
            Entry::Retire { session } => {
                self.keys.remove(session);
                let retired = self.sessions.remove(session).is_some();
                if retired {
                    if self.retired.len() >= MAX_RETIRED_REMEMBERED {
                        self.retired.pop_front();
                    }
                    self.retired.push_back(session.clone());
                }
                Applied {
                    session: Some(session.clone()),
                    changed: retired,
                    duplicate_of: None,
                    retired,
                }
            }
            Entry::Shutdown | Entry::Opened => Applied::default(),
        }
    }

    /// Moves past LSN `lsn`, which holds no store entry (a raw record
    /// appended with the journal API).
    pub fn skip(&mut self, lsn: Lsn) {
        if lsn >= self.applied {
            self.applied = lsn + 1;
        }
    }

    /// Applies a crash marker that reached the disk outside the log (the
    /// crash ledger: the writer was stuck). Same rules as a `Crash` entry.
    pub fn apply_out_of_band(&mut self, event: &Event) -> Applied {
        let mut applied = Applied {
            session: Some(event.session.clone()),
            ..Applied::default()
        };
        if let Some(session) = self.sessions.get_mut(&event.session) {
            applied.changed = session.apply_body(event.time_ms(), &event.body);
            if applied.changed {
                session.version += 1;
            }
        }
        applied
    }

    fn apply_event(&mut self, lsn: Lsn, event: &Event) -> Applied {
        let mut applied = Applied {
            session: Some(event.session.clone()),
            ..Applied::default()
        };
        if let Some(key) = &event.key {
            let keys = self.keys.entry(event.session.clone()).or_default();
            if let Some(&original) = keys.get(key) {
                applied.duplicate_of = Some(original);
                return applied;
            }
            keys.insert(key.clone(), lsn);
        }
        let time = event.time_ms();
        if !self.sessions.contains_key(&event.session) {
            if matches!(event.body, Body::Crash { .. }) {
                // A marker for a session that does not exist marks nothing.
                return applied;
            }
            let session = Session::create(&event.session, time, lsn);
            self.sessions.insert(event.session.clone(), session);
            self.retired.retain(|id| *id != event.session);
        }
        let session = self.sessions.get_mut(&event.session).expect("inserted");
        session.changed_by(lsn, time);
        session.apply_body(time, &event.body);
        applied.changed = true;
        applied
    }
}

impl Session {
    fn create(id: &str, time: u64, lsn: Lsn) -> Session {
        let root = Span::new("root".into(), None, id.to_string(), "session", time);
        let mut session = Session {
            id: id.to_string(),
            trace_id: uuid_v7(time, id, lsn),
            started_at: time,
            ended_at: None,
            run: 1,
            status: Status::Running,
            error: None,
            metadata: Metadata::default(),
            spans: BTreeMap::new(),
            totals: Totals::default(),
            tools: BTreeMap::new(),
            loops: Vec::new(),
            last_time: time,
            version: 0,
            last_lsn: lsn,
            next_seq: 0,
            head_end: u64::MAX,
            open: HashMap::new(),
            by_id: HashMap::new(),
            turn: None,
            turns: 0,
            recent_tools: VecDeque::new(),
        };
        session.push_span(root);
        session
    }

    /// The root span.
    pub fn root(&self) -> &Span {
        self.spans.get(&0).expect("the root span is never elided")
    }

    /// The sequence number of the last never-elided head span.
    pub fn head_end(&self) -> u64 {
        self.head_end
    }

    fn changed_by(&mut self, lsn: Lsn, time: u64) {
        self.version += 1;
        self.last_lsn = lsn;
        self.last_time = self.last_time.max(time);
    }

    /// Applies a body; returns true if it changed anything. Spans closed
    /// by it become candidates for elision at once.
    fn apply_body(&mut self, time: u64, body: &Body) -> bool {
        let changed = self.apply_body_inner(time, body);
        self.elide();
        changed
    }

    #[allow(clippy::too_many_lines)] // TODO(issue 11): split
    fn apply_body_inner(&mut self, time: u64, body: &Body) -> bool {
        match body {
            Body::SessionStart { metadata, resume } => {
                self.start(time, metadata, *resume);
            }
            Body::SpanStart {
                span,
                parent,
                kind,
                name,
                input,
                model,
                attributes,
            } => {
                let parent = self.parent_for(parent.as_deref(), None);
                let name = match (name.is_empty(), kind.as_str()) {
                    (false, _) => name.clone(),
                    (true, "generation") => format!("generation-{span}"),
                    (true, _) => span.clone(),
                };
                let mut s = Span::new(self.unique_id(span), Some(parent), name, kind, time);
                s.input = input.clone();
                s.model = model.clone();
                merge_object(&mut s.attributes, attributes.as_ref());
                match kind.as_str() {
                    "generation" => self.totals.generations += 1,
                    "tool" => self.totals.tool_calls += 1,
                    _ => {}
                }
                let seq = self.push_span(s);
                self.open.insert(format!("s:{span}"), seq);
            }
            Body::SpanEnd {
                span,
                status,
                message,
                output,
                tokens,
                cost,
                finish_reason,
                attributes,
            } => {
                let seq = match self.open.remove(&format!("s:{span}")) {
                    Some(seq) => seq,
                    None => {
                        let parent = self.parent_for(None, None);
                        let s = Span::new(
                            self.unique_id(span),
                            Some(parent),
                            span.clone(),
                            "span",
                            time,
                        );
                        self.push_span(s)
                    }
                };
                let mut totals_tokens = None;
                let mut totals_cost = None;
                if let Some(s) = self.span_mut(seq) {
                    s.end = Some(time.max(s.start));
                    s.status = *status;
                    s.message = message.clone();
                    if output.is_some() {
                        s.output = output.clone();
                    }
                    if let Some(t) = tokens {
                        s.tokens = Some(*t);
                        totals_tokens = Some(*t);
                    }
                    if let Some(c) = cost {
                        s.cost = Some(*c);
                        totals_cost = Some(*c);
                    }
                    if finish_reason.is_some() {
                        s.finish_reason = finish_reason.clone();
                    }
                    merge_object(&mut s.attributes, attributes.as_ref());
                }
                if let Some(t) = totals_tokens {
                    self.totals.tokens.add(&t);
                }
                if let Some(c) = totals_cost.filter(|c| c.is_finite()) {
                    // Two finite costs can sum to infinity, which no JSON
                    // (trace file or checkpoint) can hold: saturate.
                    let sum = self.totals.cost + c;
                    self.totals.cost = if sum.is_finite() {
                        sum
                    } else {
                        f64::MAX.copysign(sum)
                    };
                }
            }
            Body::ToolCall {
                call_id,
                tool,
                parent,
                input,
                output,
                status,
                message,
                duration_ms,
            } => {
                let parent = self.parent_for(parent.as_deref(), None);
                let start = time.saturating_sub(duration_ms.unwrap_or(0));
                let seq = self.open_tool(call_id, tool, parent, input.clone(), start);
                self.open.remove(&format!("t:{call_id}"));
                self.close_tool(
                    seq,
                    time,
                    *status,
                    message.clone(),
                    output.clone(),
                    *duration_ms,
                );
            }
            Body::Attributes { span, attributes } => {
                let seq = match span {
                    None => Some(0),
                    Some(id) => self
                        .open
                        .get(&format!("s:{id}"))
                        .or_else(|| self.by_id.get(id))
                        .copied(),
                };
                let Some(seq) = seq else {
                    // An update for a span this session does not know (or
                    // one elided): keep it on the root, not lost.
                    let mut wrapped = BTreeMap::new();
                    merge_object(&mut wrapped, Some(attributes));
                    if let Some(root) = self.span_mut(0) {
                        for (k, v) in wrapped {
                            root.attributes
                                .insert(format!("{}.{k}", span.as_deref().unwrap_or("")), v);
                        }
                    }
                    return true;
                };
                if let Some(s) = self.span_mut(seq) {
                    merge_object(&mut s.attributes, Some(attributes));
                }
            }
            Body::SessionEnd { status, message } => {
                if self.status.is_final() {
                    // Crashed (or already ended) is final for this run:
                    // the event is stored, the status stays.
                    return false;
                }
                let (st, err) = match status {
                    EndStatus::Ok => (Status::Completed, None),
                    EndStatus::Error => (
                        Status::Error,
                        Some(message.clone().unwrap_or_else(|| "error".into())),
                    ),
                };
                self.end(time, st, err, false);
            }
            Body::Crash { reason, run } => {
                if *run != self.run || self.status == Status::Crashed {
                    return false;
                }
                let reason = if reason.is_empty() {
                    DEFAULT_CRASH_REASON.to_string()
                } else {
                    reason.clone()
                };
                self.end(time, Status::Crashed, Some(reason), true);
            }
            Body::Hook { name, payload } => self.apply_hook(time, name, payload),
        }
        true
    }

    fn start(&mut self, time: u64, metadata: &Metadata, resume: bool) {
        merge_metadata(&mut self.metadata, metadata);
        if resume && (self.status.is_final() || self.version > 1) {
            // A new run: whatever the old run left open was interrupted.
            self.interrupt_open(time, "the run was resumed before this span closed");
            self.run += 1;
            self.status = Status::Running;
            self.ended_at = None;
            self.error = None;
            if let Some(root) = self.span_mut(0) {
                root.end = None;
                root.status = EndStatus::Ok;
                root.message = None;
                root.interrupted = false;
            }
        }
    }

    fn end(&mut self, time: u64, status: Status, error: Option<String>, crashed: bool) {
        let time = time.max(self.started_at);
        if crashed {
            self.interrupt_open(time, error.as_deref().unwrap_or(DEFAULT_CRASH_REASON));
        } else {
            let open: Vec<u64> = self.open.drain().map(|(_, seq)| seq).collect();
            for seq in open {
                if let Some(s) = self.span_mut(seq) {
                    s.end = Some(time.max(s.start));
                }
            }
            if let Some(seq) = self.turn.take() {
                if let Some(s) = self.span_mut(seq) {
                    s.end.get_or_insert(time);
                }
            }
        }
        self.status = status;
        self.ended_at = Some(time);
        self.error = error.clone();
        if let Some(root) = self.span_mut(0) {
            root.end = Some(time.max(root.start));
            root.status = if status == Status::Completed {
                EndStatus::Ok
            } else {
                EndStatus::Error
            };
            root.message = error;
        }
    }

    /// Closes every open span as `interrupted`.
    fn interrupt_open(&mut self, time: u64, why: &str) {
        let mut open: Vec<u64> = self.open.drain().map(|(_, seq)| seq).collect();
        open.extend(self.turn.take());
        open.sort_unstable();
        open.dedup();
        for seq in open {
            if let Some(s) = self.span_mut(seq) {
                if s.end.is_none() {
                    s.end = Some(time.max(s.start));
                    s.status = EndStatus::Error;
                    s.interrupted = true;
                    s.message = Some(why.to_string());
                }
            }
        }
    }

    #[allow(clippy::too_many_lines)] // TODO(issue 11): split
    fn apply_hook(&mut self, time: u64, name: &str, payload: &JsonText) {
        let obj = match payload.parse() {
            Ok(Value::Object(obj)) => obj,
            _ => serde_json::Map::new(),
        };
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let agent = s("agent_id");
        if name != "SessionStart"
            && (self.metadata.agent.is_none() || self.metadata.provider_id.is_none())
        {
            // A session first seen after its `SessionStart` (the agent ran
            // before the store did): the same identity from any hook. Only
            // `SessionStart`'s `agent_type` names the session's agent;
            // elsewhere it names a subagent.
            let mut found = Metadata::default();
            hook_agent_and_provider(&obj, &self.metadata, &mut found);
            merge_metadata(&mut self.metadata, &found);
        }
        match name {
            "SessionStart" => {
                let mut metadata = Metadata {
                    model: s("model"),
                    agent: s("agent_type"),
                    ..Metadata::default()
                };
                hook_agent_and_provider(&obj, &self.metadata, &mut metadata);
                self.start(time, &metadata, s("source").as_deref() == Some("resume"));
                let attrs = pick(
                    &obj,
                    &["source", "cwd", "transcript_path", "permission_mode"],
                );
                if let Some(root) = self.span_mut(0) {
                    root.attributes.extend(attrs);
                }
            }
            "SessionEnd" => {
                if !self.status.is_final() {
                    if let Some(root) = self.span_mut(0) {
                        root.attributes.extend(pick(&obj, &["reason"]));
                    }
                    self.end(time, Status::Completed, None, false);
                }
            }
            "UserPromptSubmit" => {
                self.close_turn(time, None, EndStatus::Ok, None);
                let prompt = s("prompt").unwrap_or_default();
                if self.metadata.prompt.is_none() && !prompt.is_empty() {
                    self.metadata.prompt = Some(cut_chars(&prompt, MAX_USER_MESSAGE_CHARS));
                }
                if self.metadata.title.is_none() && !prompt.is_empty() {
                    let line = prompt.lines().next().unwrap_or_default();
                    self.metadata.title = Some(cut_chars(line.trim(), 80));
                }
                self.turns += 1;
                // The prompt: a zero-length leaf under the root.
                let id = self.unique_id(&format!("prompt-{}", self.turns));
                let mut span = Span::new(
                    id,
                    Some("root".into()),
                    "user-message".into(),
                    "user-message",
                    time,
                );
                span.end = Some(time);
                span.input = Some(JsonText::canonical(&Value::String(cut_chars(
                    &prompt,
                    MAX_USER_MESSAGE_CHARS,
                ))));
                self.push_span(span);
                // The turn: a generation under the root that parents the
                // turn's tool calls and, at `Stop`, carries the assistant's
                // last message (the hook protocol shows no model calls, so
                // the turn stands for them).
                let id = self.unique_id(&format!("turn-{}", self.turns));
                let mut span = Span::new(
                    id.clone(),
                    Some("root".into()),
                    format!("generation-{id}"),
                    "generation",
                    time,
                );
                if self.metadata.model.is_some() {
                    span.model = Some(ModelRef {
                        model_id: self.metadata.model.clone(),
                        provider_id: self.metadata.provider_id.clone(),
                        variant: self.metadata.variant.clone(),
                    });
                }
                self.totals.generations += 1;
                let seq = self.push_span(span);
                self.turn = Some(seq);
            }
            "PreToolUse" => {
                let call_id = s("tool_use_id").unwrap_or_default();
                let parent = self.parent_for(None, agent.as_deref());
                let input = obj.get("tool_input").map(JsonText::canonical);
                let tool = s("tool_name").unwrap_or_default();
                self.open_tool(&call_id, &tool, parent, input, time);
            }
            "PostToolUse" | "PostToolUseFailure" => {
                let failed = name == "PostToolUseFailure";
                self.finish_tool_call(time, &obj, agent.as_deref(), failed);
            }
            "PostToolBatch" => {
                if let Some(Value::Array(calls)) = obj.get("tool_calls") {
                    for call in calls {
                        if let Value::Object(call) = call {
                            self.finish_tool_call(time, call, agent.as_deref(), false);
                        }
                    }
                }
            }
            "SubagentStart" => {
                let agent_id = agent.clone().unwrap_or_default();
                let parent = self.parent_for(None, None);
                let name = format!("subagent {}", s("agent_type").unwrap_or_default());
                let id = self.unique_id(&format!("agent-{agent_id}"));
                let mut span = Span::new(id, Some(parent), name.trim().to_string(), "span", time);
                span.attributes
                    .extend(pick(&obj, &["agent_id", "agent_type"]));
                let seq = self.push_span(span);
                self.open.insert(format!("a:{agent_id}"), seq);
            }
            "SubagentStop" => {
                let agent_id = agent.clone().unwrap_or_default();
                let seq = match self.open.remove(&format!("a:{agent_id}")) {
                    Some(seq) => seq,
                    None => {
                        let parent = self.parent_for(None, None);
                        let id = self.unique_id(&format!("agent-{agent_id}"));
                        self.push_span(Span::new(id, Some(parent), "subagent".into(), "span", time))
                    }
                };
                let output = obj.get("last_assistant_message").map(JsonText::canonical);
                if let Some(span) = self.span_mut(seq) {
                    span.end = Some(time.max(span.start));
                    span.output = output;
                    span.attributes
                        .extend(pick(&obj, &["agent_type", "agent_transcript_path"]));
                }
            }
            "Stop" | "StopFailure" => {
                let output = obj.get("last_assistant_message").map(|v| match v {
                    Value::String(_) => JsonText::canonical(v),
                    other => JsonText::canonical(&Value::String(JsonText::canonical(other).0)),
                });
                if name == "Stop" {
                    self.close_turn(time, output, EndStatus::Ok, None);
                } else {
                    let msg = s("error").unwrap_or_else(|| "stop failure".into());
                    self.close_turn(time, output, EndStatus::Error, Some(msg));
                }
            }
            _ => {
                let parent = self.parent_for(None, agent.as_deref());
                let id = self.unique_id(&format!("{name}-{}", self.next_seq));
                let mut span = Span::new(id, Some(parent), name.to_string(), "span", time);
                span.end = Some(time);
                for (k, v) in &obj {
                    span.attributes.insert(k.clone(), JsonText::canonical(v));
                }
                self.push_span(span);
            }
        }
    }

    fn finish_tool_call(
        &mut self,
        time: u64,
        obj: &serde_json::Map<String, Value>,
        agent: Option<&str>,
        failed: bool,
    ) {
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let call_id = s("tool_use_id").unwrap_or_default();
        let duration = obj.get("duration_ms").and_then(Value::as_u64);
        let seq = match self.open.remove(&format!("t:{call_id}")) {
            Some(seq) => seq,
            None => {
                let parent = self.parent_for(None, agent);
                let tool = s("tool_name").unwrap_or_default();
                let input = obj.get("tool_input").map(JsonText::canonical);
                let start = time.saturating_sub(duration.unwrap_or(0));
                let seq = self.open_tool(&call_id, &tool, parent, input, start);
                self.open.remove(&format!("t:{call_id}"));
                seq
            }
        };
        let output = obj
            .get("tool_response")
            .map(|v| limit_json(v, MAX_TOOL_OUTPUT_CHARS));
        let (status, message) = if failed {
            (
                EndStatus::Error,
                Some(s("error").unwrap_or_else(|| "tool failed".into())),
            )
        } else {
            (EndStatus::Ok, None)
        };
        self.close_tool(seq, time, status, message, output, duration);
        if failed {
            let attrs = pick(obj, &["is_interrupt"]);
            if let Some(span) = self.span_mut(seq) {
                span.attributes.extend(attrs);
            }
        }
    }

    fn open_tool(
        &mut self,
        call_id: &str,
        tool: &str,
        parent: String,
        input: Option<JsonText>,
        start: u64,
    ) -> u64 {
        let tool = if tool.is_empty() { "unknown" } else { tool };
        let id = if call_id.is_empty() {
            format!("tool-{}", self.next_seq)
        } else {
            call_id.to_string()
        };
        let mut span = Span::new(
            self.unique_id(&id),
            Some(parent),
            tool.to_string(),
            "tool",
            start,
        );
        span.tool = Some(ToolInfo {
            call_id: call_id.to_string(),
            duration_ms: None,
        });
        self.note_tool_call(tool, input.as_ref());
        span.input = input;
        let seq = self.push_span(span);
        self.totals.tool_calls += 1;
        self.open.insert(format!("t:{call_id}"), seq);
        seq
    }

    fn close_tool(
        &mut self,
        seq: u64,
        time: u64,
        status: EndStatus,
        message: Option<String>,
        output: Option<JsonText>,
        duration: Option<u64>,
    ) {
        let Some(span) = self.span_mut(seq) else {
            return;
        };
        let end = time.max(span.start);
        let duration = duration.unwrap_or(end - span.start);
        span.end = Some(end);
        span.status = status;
        span.message = message;
        if output.is_some() {
            span.output = output;
        }
        if let Some(tool) = span.tool.as_mut() {
            tool.duration_ms = Some(duration);
        }
        let name = span.name.clone();
        let stat = self.tools.entry(name).or_default();
        stat.duration_ms = stat.duration_ms.saturating_add(duration);
    }

    fn note_tool_call(&mut self, tool: &str, input: Option<&JsonText>) {
        let text = input.map_or("", |t| t.0.as_str());
        let hash = fnv64(0, text.as_bytes());
        self.tools.entry(tool.to_string()).or_default().count += 1;
        self.recent_tools.push_back((tool.to_string(), hash));
        if self.recent_tools.len() > LOOP_WINDOW {
            self.recent_tools.pop_front();
        }
        let count = self
            .recent_tools
            .iter()
            .filter(|(t, h)| t == tool && *h == hash)
            .count() as u64;
        if count < LOOP_THRESHOLD as u64 {
            return;
        }
        match self
            .loops
            .iter_mut()
            .find(|l| l.tool == tool && l.input_hash == hash)
        {
            Some(l) => l.count = l.count.max(count),
            None => self.loops.push(LoopInfo {
                tool: tool.to_string(),
                input_hash: hash,
                input_preview: cut_chars(text, 200),
                count,
            }),
        }
    }

    fn close_turn(
        &mut self,
        time: u64,
        output: Option<JsonText>,
        status: EndStatus,
        message: Option<String>,
    ) {
        let Some(seq) = self.turn.take() else {
            return;
        };
        // Without the assistant's message, the turn's output names its
        // tool calls, as the frontends' own files do.
        let output = output.or_else(|| self.turn_tool_calls(seq));
        if let Some(span) = self.span_mut(seq) {
            if span.end.is_none() {
                span.end = Some(time.max(span.start));
                span.finish_reason = Some(
                    match status {
                        EndStatus::Ok => "stop",
                        EndStatus::Error => "error",
                    }
                    .to_string(),
                );
                span.status = status;
                span.message = message;
                if output.is_some() {
                    span.output = output;
                }
            }
        }
    }

    /// `[tool calls: a, b]` for the kept tool spans under the turn span
    /// `seq`, or `None` if it has none.
    fn turn_tool_calls(&self, seq: u64) -> Option<JsonText> {
        let id = &self.spans.get(&seq)?.span_id;
        let names: Vec<&str> = self
            .spans
            .range(seq + 1..)
            .filter(|(_, s)| s.kind == "tool" && s.parent.as_ref() == Some(id))
            .map(|(_, s)| s.name.as_str())
            .collect();
        if names.is_empty() {
            return None;
        }
        let text = format!("[tool calls: {}]", names.join(", "));
        Some(JsonText::canonical(&Value::String(text)))
    }

    /// The parent span id for a new span: the named client span, else the
    /// agent's open subagent span, else the open turn, else the root.
    fn parent_for(&self, parent: Option<&str>, agent: Option<&str>) -> String {
        let seq = parent
            .and_then(|p| {
                self.open
                    .get(&format!("s:{p}"))
                    .or_else(|| self.by_id.get(p))
            })
            .or_else(|| agent.and_then(|a| self.open.get(&format!("a:{a}"))))
            .or(self.turn.as_ref())
            .copied()
            .unwrap_or(0);
        self.spans
            .get(&seq)
            .map_or_else(|| "root".to_string(), |s| s.span_id.clone())
    }

    /// `wanted`, or `wanted~N` if a kept span already has that id.
    fn unique_id(&self, wanted: &str) -> String {
        if !self.by_id.contains_key(wanted) {
            return wanted.to_string();
        }
        format!("{wanted}~{}", self.next_seq)
    }

    fn span_mut(&mut self, seq: u64) -> Option<&mut Span> {
        self.spans.get_mut(&seq).map(Arc::make_mut)
    }

    fn push_span(&mut self, span: Span) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.totals.spans += 1;
        self.by_id.insert(span.span_id.clone(), seq);
        self.spans.insert(seq, Arc::new(span));
        if self.spans.len() == HEAD_SPANS && self.head_end == u64::MAX {
            self.head_end = seq;
        }
        self.elide();
        seq
    }

    /// Keeps at most [`MAX_SPANS`]: drops the oldest closed span after the
    /// head. Totals stay exact.
    fn elide(&mut self) {
        while self.spans.len() > MAX_SPANS {
            let victim = self
                .spans
                .range(self.head_end.saturating_add(1)..)
                .find(|(_, s)| s.end.is_some())
                .map(|(&seq, s)| (seq, s.span_id.clone()));
            let Some((seq, id)) = victim else {
                return; // everything after the head is open: keep it all
            };
            self.spans.remove(&seq);
            self.by_id.remove(&id);
            self.totals.elided += 1;
        }
    }
}

fn merge_metadata(into: &mut Metadata, from: &Metadata) {
    macro_rules! take {
        ($($f:ident),*) => {$(
            if from.$f.is_some() {
                into.$f = from.$f.clone();
            }
        )*};
    }
    take!(
        title,
        model,
        provider_id,
        agent,
        variant,
        prompt,
        user_id,
        environment,
        version,
        tags
    );
}

/// Fills `metadata.agent` and `metadata.providerId` of a hook session
/// from what its `SessionStart` payload shows, where neither the payload
/// nor the session already says (`current`):
///
/// - `agent`: the payload's `agent_type` (set inside subagents), else
///   `claude-code` when `transcript_path` lies in Claude Code's transcript
///   store (`/.claude/projects/`); other agents stay unnamed ("default").
/// - `providerId`: the provider a model family implies (`claude-*`:
///   `anthropic`, `gpt-*`/`o1`/`o3`/`o4`/`codex-*`: `openai`, `gemini-*`:
///   `google`); without a model, `anthropic` for Claude Code.
fn hook_agent_and_provider(
    obj: &serde_json::Map<String, Value>,
    current: &Metadata,
    metadata: &mut Metadata,
) {
    let claude_code = obj
        .get("transcript_path")
        .and_then(Value::as_str)
        .is_some_and(|p| p.replace('\\', "/").contains("/.claude/projects/"));
    if metadata.agent.is_none() && current.agent.is_none() && claude_code {
        metadata.agent = Some("claude-code".into());
    }
    if current.provider_id.is_none() {
        let model = metadata.model.as_deref().or(current.model.as_deref());
        metadata.provider_id = match model {
            Some(m) => provider_of_model(m).map(str::to_string),
            None if claude_code => Some("anthropic".into()),
            None => None,
        };
    }
}

/// The provider a model id's family implies, if it is a known one.
fn provider_of_model(model: &str) -> Option<&'static str> {
    let m = model.to_ascii_lowercase();
    let m = m.rsplit('/').next().unwrap_or(&m);
    if m.starts_with("claude") {
        Some("anthropic")
    } else if m.starts_with("gpt-")
        || m.starts_with("codex")
        || ["o1", "o3", "o4"]
            .iter()
            .any(|p| m == *p || m.starts_with(&format!("{p}-")))
    {
        Some("openai")
    } else if m.starts_with("gemini") {
        Some("google")
    } else {
        None
    }
}

fn merge_object(into: &mut BTreeMap<String, JsonText>, object: Option<&JsonText>) {
    let Some(Ok(Value::Object(obj))) = object.map(JsonText::parse) else {
        return;
    };
    for (k, v) in obj {
        into.insert(k, JsonText::canonical(&v));
    }
}

fn pick(obj: &serde_json::Map<String, Value>, fields: &[&str]) -> Vec<(String, JsonText)> {
    fields
        .iter()
        .filter_map(|f| obj.get(*f).map(|v| (f.to_string(), JsonText::canonical(v))))
        .collect()
}

/// `value` as canonical text, or, if that is longer than `max` characters,
/// a string holding its first `max` characters and a note of the cut.
fn limit_json(value: &Value, max: usize) -> JsonText {
    if let Value::String(s) = value {
        if s.chars().count() <= max {
            return JsonText::canonical(value);
        }
        return JsonText::canonical(&Value::String(cut_with_note(s, max)));
    }
    let text = JsonText::canonical(value);
    if text.0.chars().count() <= max {
        return text;
    }
    JsonText::canonical(&Value::String(cut_with_note(&text.0, max)))
}

fn cut_with_note(s: &str, max: usize) -> String {
    let total = s.chars().count();
    format!(
        "{}… [cut {} of {total} characters]",
        cut_chars(s, max),
        total - max
    )
}

/// The first `max` characters of `s`.
pub fn cut_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// FNV-1a, 64 bits, with a seed mixed in first.
fn fnv64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x100_0000_01b3);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// A UUIDv7 whose time is `ms` and whose "random" bits are a hash of the
/// session id and the LSN that created it: deterministic on replay,
/// distinct per session.
fn uuid_v7(ms: u64, id: &str, lsn: Lsn) -> String {
    let a = fnv64(lsn, id.as_bytes());
    let b = fnv64(lsn ^ 0x9e37_79b9_7f4a_7c15, id.as_bytes());
    let time = ms & 0xffff_ffff_ffff;
    let rand_a = a & 0x0fff;
    let rand_b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        time >> 16,
        time & 0xffff,
        rand_a,
        rand_b >> 48,
        rand_b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::parse_line;

    fn apply_lines(lines: &[&str]) -> Sessions {
        let mut state = Sessions::new(1);
        for (i, line) in lines.iter().enumerate() {
            let mut event = parse_line(line).unwrap();
            event.time.get_or_insert(1_000 + i as u64);
            state.apply(i as u64 + 1, &Entry::from(event));
        }
        state
    }

    #[test]
    fn crash_is_final_for_its_run_and_resume_starts_a_new_one() {
        let state = apply_lines(&[
            r#"{"type":"session_start","session":"s"}"#,
            r#"{"type":"crash","session":"s","reason":"boom"}"#,
        ]);
        // A crash line parses with run 0; the store fills in the run. Here
        // run 0 matches nothing: the status stays.
        assert_eq!(state.get("s").unwrap().status, Status::Running);

        let mut state = Sessions::new(1);
        let ev = |body: Body| {
            Entry::from(Event {
                session: "s".into(),
                key: None,
                time: Some(5),
                body,
            })
        };
        state.apply(
            1,
            &ev(Body::SessionStart {
                metadata: Metadata::default(),
                resume: false,
            }),
        );
        state.apply(
            2,
            &ev(Body::Crash {
                reason: "boom".into(),
                run: 1,
            }),
        );
        state.apply(
            3,
            &ev(Body::SessionEnd {
                status: EndStatus::Ok,
                message: None,
            }),
        );
        let s = state.get("s").unwrap();
        assert_eq!(
            (s.status, s.error.as_deref()),
            (Status::Crashed, Some("boom"))
        );
        state.apply(
            4,
            &ev(Body::SessionStart {
                metadata: Metadata::default(),
                resume: true,
            }),
        );
        state.apply(
            5,
            &ev(Body::SessionEnd {
                status: EndStatus::Ok,
                message: None,
            }),
        );
        let s = state.get("s").unwrap();
        assert_eq!((s.status, s.run), (Status::Completed, 2));
    }

    #[test]
    fn hooks_pair_tool_spans_by_tool_use_id() {
        let state = apply_lines(&[
            r#"{"session_id":"h","hook_event_name":"SessionStart","source":"startup","model":"m1"}"#,
            r#"{"session_id":"h","hook_event_name":"UserPromptSubmit","prompt":"fix the bug"}"#,
            r#"{"session_id":"h","hook_event_name":"PreToolUse","tool_name":"Read","tool_use_id":"toolu_1","tool_input":{"path":"a"}}"#,
            r#"{"session_id":"h","hook_event_name":"PostToolUse","tool_name":"Read","tool_use_id":"toolu_1","tool_response":"ok","duration_ms":7}"#,
            r#"{"session_id":"h","hook_event_name":"Notification","message":"hi"}"#,
            r#"{"session_id":"h","hook_event_name":"Stop","last_assistant_message":"done"}"#,
        ]);
        let s = state.get("h").unwrap();
        assert_eq!(
            s.status,
            Status::Running,
            "between turns the session is running"
        );
        assert_eq!(s.metadata.title.as_deref(), Some("fix the bug"));
        let spans: Vec<_> = s.spans.values().collect();
        let kinds: Vec<_> = spans.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["session", "user-message", "generation", "tool", "span"]
        );
        let (prompt, turn, tool) = (spans[1], spans[2], spans[3]);
        assert_eq!(prompt.parent.as_deref(), Some("root"));
        assert_eq!(prompt.end, Some(prompt.start), "the prompt is a leaf");
        assert_eq!(prompt.input.as_ref().unwrap().0, "\"fix the bug\"");
        assert_eq!(turn.parent.as_deref(), Some("root"));
        assert_eq!(turn.name, format!("generation-{}", turn.span_id));
        assert_eq!(
            tool.parent.as_deref(),
            Some(turn.span_id.as_str()),
            "a hook turn's tool call hangs under the turn's generation"
        );
        assert_eq!(tool.tool.as_ref().unwrap().duration_ms, Some(7));
        assert_eq!(tool.output.as_ref().unwrap().0, "\"ok\"");
        assert!(turn.end.is_some(), "Stop closes the turn");
        assert_eq!(turn.output.as_ref().unwrap().0, "\"done\"");
        assert_eq!(turn.finish_reason.as_deref(), Some("stop"));
        assert_eq!(turn.model.as_ref().unwrap().model_id.as_deref(), Some("m1"));
        assert_eq!(spans[4].name, "Notification");
        assert_eq!(s.totals.tool_calls, 1);
        assert_eq!(s.totals.generations, 1);
    }

    #[test]
    fn hook_sessions_name_their_agent_and_provider() {
        let state = apply_lines(&[
            r#"{"session_id":"c","transcript_path":"/home/u/.claude/projects/-x/c.jsonl","hook_event_name":"SessionStart","source":"startup","model":"claude-sonnet-4-5-20250929"}"#,
            r#"{"session_id":"n","transcript_path":"/home/u/.claude/projects/-x/n.jsonl","hook_event_name":"SessionStart","source":"startup"}"#,
            r#"{"session_id":"g","hook_event_name":"SessionStart","model":"gpt-5-codex"}"#,
            r#"{"session_id":"u","hook_event_name":"SessionStart","model":"some-local-model"}"#,
            r#"{"session_id":"late","transcript_path":"/home/u/.claude/projects/-x/l.jsonl","hook_event_name":"PreToolUse","tool_name":"Read","tool_use_id":"t","agent_type":"Explore"}"#,
        ]);
        let meta = |id: &str| {
            let m = &state.get(id).unwrap().metadata;
            (m.agent.clone(), m.provider_id.clone())
        };
        let some = |a: &str| Some(a.to_string());
        assert_eq!(meta("c"), (some("claude-code"), some("anthropic")));
        assert_eq!(meta("n"), (some("claude-code"), some("anthropic")));
        assert_eq!(meta("g"), (None, some("openai")));
        assert_eq!(meta("u"), (None, None), "no guess for an unknown model");
        assert_eq!(
            meta("late"),
            (some("claude-code"), some("anthropic")),
            "a subagent's agent_type does not name the session's agent"
        );
    }

    #[test]
    fn duplicate_keys_change_nothing() {
        let mut state = Sessions::new(1);
        let line = r#"{"session_id":"k","hook_event_name":"PostToolUse","tool_use_id":"toolu_1","tool_name":"Bash"}"#;
        let e = Entry::from(parse_line(line).unwrap());
        assert_eq!(state.apply(1, &e).duplicate_of, None);
        let before = state.clone();
        let again = state.apply(2, &e);
        assert_eq!(again.duplicate_of, Some(1));
        assert_eq!(state.get("k"), before.get("k"));
    }

    #[test]
    fn elision_keeps_head_tail_and_exact_totals() {
        let mut state = Sessions::new(1);
        for i in 0..6_000u64 {
            let e = Event {
                session: "big".into(),
                key: None,
                time: Some(i),
                body: Body::ToolCall {
                    call_id: format!("c{i}"),
                    tool: "Read".into(),
                    parent: None,
                    input: None,
                    output: None,
                    status: EndStatus::Ok,
                    message: None,
                    duration_ms: Some(1),
                },
            };
            state.apply(i + 1, &Entry::from(e));
        }
        let s = state.get("big").unwrap();
        assert_eq!(s.spans.len(), MAX_SPANS);
        assert_eq!(s.totals.tool_calls, 6_000);
        assert_eq!(s.totals.elided, 6_001 - MAX_SPANS as u64);
        assert!(s.spans.contains_key(&1) && s.spans.contains_key(&6_000));
    }

    #[test]
    fn uuid_v7_shape() {
        let u = uuid_v7(1_700_000_000_000, "s", 1);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "7");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(u, uuid_v7(1_700_000_000_000, "t", 1));
    }
}
