//! Entry points shared by the cargo-fuzz targets in `fuzz/` and by the
//! ordinary tests that replay the committed corpus (`tests/fuzz_corpus.rs`),
//! so CI exercises them on stable without a fuzzing engine.
//!
//! Each function takes arbitrary bytes and panics only if an invariant of
//! the engine is broken; bad input itself must never panic.

use crate::store::event::{
    self, Body, EndStatus, Entry, Event, JsonText, Metadata, ModelRef, Tokens,
};
use crate::store::model::{Session, Sessions, Status};
use crate::store::{jcs, render};
use crate::wal::frame::{self, SegmentId};
use crate::wal::segment;
use crate::wal::Lsn;
use crate::{Journal, JournalError as Error, Options, RecoveryMode};
use serde_json::Value;
use std::collections::HashMap;

/// The segment identity the decoder target checks records against.
pub const FUZZ_SEGMENT: SegmentId = SegmentId {
    number: 1,
    salt: 0x5EED_5EED,
};

/// Decodes arbitrary bytes as a record frame. A frame that decodes must
/// re-encode to exactly the bytes it was read from.
pub fn decode_record(data: &[u8]) {
    for id in [FUZZ_SEGMENT, id_from(data)] {
        if let Ok(f) = frame::decode(data, id) {
            let mut again = Vec::new();
            frame::encode(&mut again, &f.header, f.payload);
            assert_eq!(f.total_len, again.len());
            assert_eq!(
                &again[..],
                &data[..again.len()],
                "decode/encode round trip differs"
            );
            assert_eq!(f.header.segment, id);
            assert!(f.header.kind != 0);
        }
    }
    let _ = segment::SegmentHeader::decode(data);
}

fn id_from(data: &[u8]) -> SegmentId {
    let mut number = [0u8; 8];
    let mut salt = [0u8; 4];
    if data.len() >= 28 {
        number.copy_from_slice(&data[16..24]);
        salt.copy_from_slice(&data[24..28]);
    }
    SegmentId {
        number: u64::from_le_bytes(number),
        salt: u32::from_le_bytes(salt),
    }
}

/// Splits `data` into segment files (separated by the marker
/// `b"--SEG--"`), writes them into a fresh directory as segments 1, 2, ...,
/// and opens the journal in every recovery mode. Opening may fail with an
/// error, never a panic; when it opens, every record read back must verify
/// (the reader re-checks each checksum), and the journal must accept an
/// append at the LSN it reported.
pub fn open_segments(data: &[u8]) {
    let dir = match tempfile_dir() {
        Some(d) => d,
        None => return,
    };
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::PointInTime,
        RecoveryMode::SkipCorrupt,
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create fuzz dir");
        for (i, part) in split(data, b"--SEG--").into_iter().take(4).enumerate() {
            let path = dir.join(segment::file_name(i as u64 + 1));
            std::fs::write(path, part).expect("write fuzz segment");
        }
        let options = Options {
            segment_size: 4096,
            max_record_size: 1024,
            recovery_mode: mode,
            ..Options::default()
        };
        let inspected = Journal::inspect(&dir, &options);
        match Journal::open(&dir, options) {
            Ok((journal, report)) => {
                if let Ok(dry) = inspected {
                    assert_eq!(
                        dry.next_lsn, report.next_lsn,
                        "dry run disagrees with recovery"
                    );
                }
                let mut count = 0u64;
                for record in journal
                    .read_from(journal.first_lsn())
                    .expect("first LSN readable")
                {
                    match record {
                        Ok(_) => count += 1,
                        Err(e) => panic!("recovered log fails on read: {e}"),
                    }
                }
                assert_eq!(
                    count, report.records,
                    "reader and recovery disagree on the record count"
                );
                let lsn = journal
                    .append(crate::Record::new(1, b"after".to_vec()))
                    .expect("append after recovery");
                assert_eq!(lsn, report.next_lsn);
                journal.close().expect("close");
            }
            Err(Error::Corruption { .. }) | Err(Error::Io { .. }) => {}
            Err(e) => panic!("unexpected error kind opening fuzzed segments: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(sep.len()).position(|w| w == sep) {
        parts.push(&rest[..at]);
        rest = &rest[at + sep.len()..];
    }
    parts.push(rest);
    parts
}

fn tempfile_dir() -> Option<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var_os("TRACEJOURNAL_FUZZ_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    Some(base.join(format!(
        "tracejournal-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )))
}

/// Session ids: ordinary, path-like, dot names, emoji, JSON-special
/// characters, and one empty (invalid: the event is dropped, as the store
/// would refuse it).
const SESSIONS: &[&str] = &[
    "s",
    "t",
    "a/b",
    "..",
    ".",
    "\u{1F600}",
    "q\"uo\\te\n",
    "\u{0}\u{2028}",
    "",
];

/// Idempotency keys; `None` is the most common.
const KEYS: &[Option<&str>] = &[
    None,
    None,
    None,
    Some("k1"),
    Some("k2"),
    Some("PreToolUse:toolu_1"),
    Some("PostToolUse:toolu_1"),
    Some("\u{1F600}"),
];

/// Odd times (epoch ms); ordinary events use a clock that moves forward.
const TIMES: &[Option<u64>] = &[
    None,
    Some(0),
    Some(1),
    Some(999),
    Some(1_700_000_000_000),
    Some(u64::MAX),
    Some(u64::MAX - 1),
    Some(1 << 53),
    Some((1 << 53) + 1),
    Some(253_402_300_799_999), // 9999-12-31T23:59:59.999Z
    Some(253_402_300_800_000), // year 10000
    Some(i64::MAX as u64),
    Some(1_000_000_000_000_000_000),
    Some(86_399_999),
    Some(1_699_999_999_999),
    Some(1_700_000_000_001),
];

/// Short strings for names, messages, metadata.
const STRINGS: &[&str] = &[
    "",
    "x",
    "Read",
    "\u{1F600}",
    "a\"b\\c\n\t",
    "\u{0}\u{1f}\u{7f}",
    "\u{2028}\u{2029}",
    "\u{ffff}\u{10ffff}\u{e000}",
    "turn-1",
    "root",
    "line one\nline two",
    "  padded  ",
];

/// Span ids, shared by typed spans, parents and attribute targets, with
/// ids the model derives itself (`root`, `turn-1`, `agent-a1`, tool ids).
const SPAN_IDS: &[&str] = &[
    "g",
    "h",
    "root",
    "turn-1",
    "a/b",
    "agent-a1",
    "toolu_1",
    "elided",
    "g~3",
    "\u{1F600}",
    "",
];

const KINDS: &[&str] = &[
    "generation",
    "tool",
    "span",
    "user-message",
    "session",
    "",
    "\u{1F600}",
];

const CALL_IDS: &[&str] = &["toolu_1", "toolu_2", "toolu_3", "", "turn-1", "root"];

const TOOLS: &[&str] = &["Read", "Bash", "Task", "", "\u{1F600}", "unknown"];

const HOOKS: &[&str] = &[
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "SubagentStart",
    "SubagentStop",
    "Stop",
    "StopFailure",
    "Notification",
    "PreCompact",
    "Unknown",
    "",
    "\u{1F600}Hook",
];

const AGENTS: &[&str] = &["a1", "a2", ""];

const SOURCES: &[&str] = &["startup", "resume", "clear", "compact", "resume"];

/// Small JSON values as text: every number shape JCS cares about
/// (integers past 2^53 and past u64, `-0`, exponents, subnormals, a number
/// too large for a double), strings with escapes and surrogate pairs,
/// nesting, duplicate keys and keys that sort differently in UTF-16.
const VALUES: &[&str] = &[
    "null",
    "true",
    "0",
    "-0",
    "1.0",
    "1.5",
    "-1",
    "1e2",
    "1E-7",
    "1e21",
    "0.1",
    "5e-324",
    "1.7976931348623157e308",
    "9007199254740993",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
    "\"\"",
    "\"x\"",
    "\"\\u00e9\\ud83d\\ude00\\u0000\\u2028\\/\"",
    "[]",
    "[1,[2,[3,[4,{}]]]]",
    "{}",
    "{\"b\":1,\"a\":2}",
    "{\"a\":1,\"a\":{\"a\":2}}",
    "{\"\\ud83d\\ude00\":1,\"\\ue000\":2,\"\":3}",
    "{\"todos\":[{\"content\":\"x\",\"status\":\"pending\"}],\"n\":1.25}",
    "{ \"spaced\" : [ 1 , 2.50 ] }",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

/// Costs: ordinary, zero of both signs, extremes of the double range.
const COSTS: &[f64] = &[
    0.25,
    0.0,
    -0.0,
    -1.5,
    1e21,
    5e-324,
    0.1,
    1.797_693_134_862_315_7e308,
    -1.797_693_134_862_315_7e308,
    // Exactly 1424953923781206.25: a tie between two shortest spellings.
    1_424_953_923_781_206.2,
];

const U64S: &[u64] = &[
    0,
    1,
    7,
    1000,
    1 << 53,
    (1 << 53) + 1,
    u64::MAX,
    u64::MAX / 2,
];

/// `duration_ms` values as hook payloads spell them (some not integers).
const DURATIONS: &[&str] = &[
    "7",
    "0",
    "-1",
    "1.5",
    "18446744073709551615",
    "1e3",
    "null",
    "\"5\"",
];

/// Reads operands from the fuzz input; an exhausted input reads as zeros.
struct Ops<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Ops<'_> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.byte() as usize % items.len()]
    }

    /// `None` for 0, else an item.
    fn opt<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        match self.byte() as usize {
            0 => None,
            b => Some(items[(b - 1) % items.len()]),
        }
    }

    /// A string from [`STRINGS`], or (rarely) one long enough to be cut.
    fn string(&mut self) -> String {
        match self.byte() {
            0xff => "\u{e9}".repeat(4_001),
            b => STRINGS[b as usize % STRINGS.len()].to_string(),
        }
    }

    /// A JSON value's text, or (rarely) a string past the 10,000-character
    /// tool output limit, in characters that take two bytes.
    fn value_text(&mut self) -> String {
        match self.byte() {
            0xff => format!("\"{}\"", "\u{e9}".repeat(10_001)),
            b => VALUES[b as usize % VALUES.len()].to_string(),
        }
    }

    /// A value as a typed event holds it: canonical text (`None` when the
    /// text does not parse, as `1e400` does not).
    fn json(&mut self) -> Option<JsonText> {
        let text = self.value_text();
        serde_json::from_str::<Value>(&text)
            .ok()
            .map(|v| JsonText::canonical(&v))
    }

    /// A canonical JSON object (a non-object value becomes `{"v": value}`).
    fn object(&mut self) -> JsonText {
        match self.json().map(|t| t.parse()) {
            Some(Ok(v @ Value::Object(_))) => JsonText::canonical(&v),
            Some(Ok(v)) => JsonText::canonical(&serde_json::json!({ "v": v })),
            _ => JsonText("{}".into()),
        }
    }
}

/// The session model on an arbitrary sequence of entries.
///
/// The bytes are a little program, one operation after another (an
/// exhausted input reads as zeros):
///
/// | first byte % 16 | operation | operands |
/// |---|---|---|
/// | 0-8 | an event (body by the byte: 0 session_start, 1 span_start, 2 span_end, 3 tool_call, 4 attributes, 5 session_end, 6 crash, 7-8 hook payload) | session, key, time, then the body's |
/// | 9 | `Retire` | session |
/// | 10 | `Shutdown` | |
/// | 11 | `Opened` | |
/// | 12 | an earlier entry again, at the next LSN (a client retry) | index |
/// | 13 | an earlier entry again at its own LSN (a checkpoint replay) | index |
/// | 14 | checkpoint: the state through the checkpoint body encoding and on from the copy | |
/// | 15 | operand % 32 == 1: a flood of up to 6,000 events (kind: operand / 32); else skip operand / 8 + 1 LSNs | operand, then for a flood: session, 2 bytes count |
///
/// Entries get LSNs in order. Each is encoded and decoded first (the
/// decoded one is what is applied, as recovery would). After every entry:
/// a duplicate key changes nothing but the applied LSN; a run changes only
/// by +1 through a session start; a crash marker for the current run makes
/// the status `crashed` and it stays so until the run changes; `ended_at`
/// is set exactly when the run has ended; and the touched session renders
/// to canonical JSON whose `summary.status` and `endedAt` agree with the
/// model, with at most 5,000 spans unless the kept spans past the head are
/// all open (open spans are never elided). A replay below the applied LSN
/// changes nothing at all. At the end, the state survives the checkpoint
/// round trip.
pub fn session_model(data: &[u8]) {
    let mut run = ModelRun::new(data);
    while !run.ops.done() {
        run.step();
    }
    // Every session was rendered after the last entry that touched it.
    run.checkpoint();
}

struct ModelRun<'a> {
    ops: Ops<'a>,
    state: Sessions,
    next_lsn: Lsn,
    /// The model's clock for ordinary events.
    now: u64,
    /// Entries applied, with their LSNs.
    history: Vec<(Lsn, Entry)>,
    /// Each live session's run after the last entry that touched it.
    runs: HashMap<String, u32>,
    /// Sessions whose current run a crash marker has ended, and that run.
    crashed: HashMap<String, u32>,
    floods: u32,
}

impl<'a> ModelRun<'a> {
    fn new(data: &'a [u8]) -> Self {
        ModelRun {
            ops: Ops { data, pos: 0 },
            state: Sessions::new(1),
            next_lsn: 1,
            now: 1_700_000_000_000,
            history: Vec::new(),
            runs: HashMap::new(),
            crashed: HashMap::new(),
            floods: 0,
        }
    }

    fn step(&mut self) {
        let op = self.ops.byte() % 16;
        match op {
            0..=8 => {
                if let Some(event) = self.event(op) {
                    self.apply(Entry::from(event), true);
                }
            }
            9 => {
                let session = self.ops.pick(SESSIONS).to_string();
                self.apply(Entry::Retire { session }, true);
            }
            10 => self.apply(Entry::Shutdown, true),
            11 => self.apply(Entry::Opened, true),
            12 => {
                if let Some(entry) = self.earlier() {
                    self.apply(entry.1, true);
                }
            }
            13 => {
                if let Some((lsn, entry)) = self.earlier() {
                    let before = self.state.clone();
                    let applied = self.state.apply(lsn, &entry);
                    assert_eq!(
                        applied,
                        Default::default(),
                        "replay of LSN {lsn} did something"
                    );
                    assert!(
                        self.state == before,
                        "replay of LSN {lsn} changed the state"
                    );
                }
            }
            14 => self.checkpoint(),
            _ => {
                let b = self.ops.byte();
                if b & 31 != 1 {
                    // LSNs holding raw journal records, not store entries.
                    let gap = u64::from(b >> 3) + 1;
                    for _ in 0..gap {
                        self.state.skip(self.next_lsn);
                        self.next_lsn += 1;
                    }
                    assert_eq!(self.state.applied(), self.next_lsn);
                } else {
                    // Rare: a flood costs as much as a thousand programs.
                    self.flood(b >> 5);
                }
            }
        }
    }

    fn earlier(&mut self) -> Option<(Lsn, Entry)> {
        let b = self.ops.byte() as usize;
        if self.history.is_empty() {
            return None;
        }
        // Count from the newest: recent entries are the likely retries.
        let i = self.history.len() - 1 - b % self.history.len();
        Some(self.history[i].clone())
    }

    fn time(&mut self) -> Option<u64> {
        let b = self.ops.byte();
        if b < 0xf0 {
            self.now += u64::from(b) * 13;
            Some(self.now)
        } else {
            TIMES[usize::from(b - 0xf0)]
        }
    }

    /// Decodes one event; `None` if the store would refuse it.
    #[allow(clippy::too_many_lines)] // TODO(issue 11): split
    fn event(&mut self, op: u8) -> Option<Event> {
        let session = self.ops.pick(SESSIONS).to_string();
        let key_byte = self.ops.byte();
        let key = KEYS[usize::from(key_byte) % KEYS.len()].map(str::to_string);
        let time = self.time();
        let o = &mut self.ops;
        let body = match op {
            0 => {
                let flags = o.byte();
                let mut m = Metadata::default();
                let field = |bit: u8, o: &mut Ops| (flags & bit != 0).then(|| o.string());
                m.title = field(1, o);
                m.model = field(2, o);
                m.provider_id = field(4, o);
                m.agent = field(8, o);
                m.prompt = field(16, o);
                m.user_id = field(32, o);
                if flags & 64 != 0 {
                    m.variant = Some(o.string());
                    m.environment = Some(o.string());
                    m.version = Some(o.string());
                }
                if flags & 128 != 0 {
                    let n = o.byte() % 4;
                    m.tags = Some((0..n).map(|_| o.string()).collect());
                }
                Body::SessionStart {
                    metadata: m,
                    resume: o.byte() & 1 == 1,
                }
            }
            1 => {
                let span = o.pick(SPAN_IDS).to_string();
                let parent = o.opt(SPAN_IDS).map(str::to_string);
                let kind = o.pick(KINDS).to_string();
                let name = o.string();
                let flags = o.byte();
                Body::SpanStart {
                    span,
                    parent,
                    kind,
                    name,
                    input: if flags & 1 != 0 { o.json() } else { None },
                    model: (flags & 2 != 0).then(|| ModelRef {
                        model_id: o.opt(STRINGS).map(str::to_string),
                        provider_id: o.opt(STRINGS).map(str::to_string),
                        variant: o.opt(STRINGS).map(str::to_string),
                    }),
                    attributes: (flags & 4 != 0).then(|| o.object()),
                }
            }
            2 => {
                let span = o.pick(SPAN_IDS).to_string();
                let status = status(o.byte());
                let flags = o.byte();
                Body::SpanEnd {
                    span,
                    status,
                    message: (flags & 1 != 0).then(|| o.string()),
                    output: if flags & 2 != 0 { o.json() } else { None },
                    tokens: (flags & 4 != 0).then(|| Tokens {
                        input: o.pick(U64S),
                        output: o.pick(U64S),
                        reasoning: o.pick(U64S),
                        cache_read: o.pick(U64S),
                        cache_write: o.pick(U64S),
                    }),
                    cost: (flags & 8 != 0).then(|| o.pick(COSTS)),
                    finish_reason: (flags & 16 != 0).then(|| o.string()),
                    attributes: (flags & 32 != 0).then(|| o.object()),
                }
            }
            3 => {
                let call_id = o.pick(CALL_IDS).to_string();
                let tool = o.pick(TOOLS).to_string();
                let parent = o.opt(SPAN_IDS).map(str::to_string);
                let flags = o.byte();
                Body::ToolCall {
                    call_id,
                    tool,
                    parent,
                    input: if flags & 1 != 0 { o.json() } else { None },
                    output: if flags & 2 != 0 { o.json() } else { None },
                    status: status(flags >> 2),
                    message: (flags & 8 != 0).then(|| o.string()),
                    duration_ms: (flags & 16 != 0).then(|| o.pick(U64S)),
                }
            }
            4 => Body::Attributes {
                span: o.opt(SPAN_IDS).map(str::to_string),
                attributes: o.object(),
            },
            5 => Body::SessionEnd {
                status: status(o.byte()),
                message: o.opt(STRINGS).map(str::to_string),
            },
            6 => {
                let reason = o.string();
                // Mostly the current run, as the store fills it in.
                let current = self.state.get(&session).map_or(1, |s| s.run);
                let run = match o.byte() % 8 {
                    0..=4 => current,
                    5 => current.wrapping_add(1),
                    6 => current.wrapping_sub(1),
                    _ => u32::MAX,
                };
                Body::Crash { reason, run }
            }
            _ => {
                let text = hook_payload(o, &session);
                let mut event = event::hook_event(&text).ok()?;
                assert_eq!(event.session, session, "hook_event took another session id");
                // Key byte 0 keeps the payload's own key (the default
                // `<Name>:<tool_use_id>`); others choose one.
                if key_byte != 0 {
                    event.key = key;
                }
                event.time = time;
                return Some(event);
            }
        };
        let event = Event {
            session,
            key,
            time,
            body,
        };
        event.validate().ok()?;
        Some(event)
    }

    /// Up to 6,000 events into one session, to cross the 5,000-span limit:
    /// tool calls left open, whole tool calls, typed spans left open, or
    /// instant hook spans. Checked once at the end (rendering each step
    /// would be quadratic); at most two floods per input.
    fn flood(&mut self, kind: u8) {
        let session = self.ops.pick(SESSIONS).to_string();
        let count = (usize::from(self.ops.byte()) << 8 | usize::from(self.ops.byte())) % 6_000 + 1;
        self.floods += 1;
        if self.floods > 2 || session.is_empty() {
            return;
        }
        for i in 0..count {
            self.now += 1;
            let body = match kind % 4 {
                0 => Body::Hook {
                    name: "PreToolUse".into(),
                    payload: JsonText(format!(
                        r#"{{"hook_event_name":"PreToolUse","tool_name":"Read","tool_use_id":"f{i}","tool_input":{{"n":{i}}}}}"#
                    )),
                },
                1 => Body::ToolCall {
                    call_id: format!("f{i}"),
                    tool: "Bash".into(),
                    parent: None,
                    input: Some(JsonText(format!("{}", i % 3))),
                    output: None,
                    status: EndStatus::Ok,
                    message: None,
                    duration_ms: Some(1),
                },
                2 => Body::SpanStart {
                    span: format!("f{i}"),
                    parent: None,
                    kind: "span".into(),
                    name: String::new(),
                    input: None,
                    model: None,
                    attributes: None,
                },
                _ => Body::Hook {
                    name: "Notification".into(),
                    payload: JsonText(r#"{"message":"m"}"#.into()),
                },
            };
            let event = Event {
                session: session.clone(),
                key: None,
                time: Some(self.now),
                body,
            };
            self.apply(Entry::from(event), i == 0);
        }
        if let Some(s) = self.state.get(&session) {
            check_rendering(s);
        }
    }

    /// The checkpoint round trip: the state through the checkpoint body
    /// encoding (`model::snapshot`) must come back equal, and the run goes
    /// on from the copy, as after a restart.
    fn checkpoint(&mut self) {
        let body = crate::store::model::snapshot::encode(&self.state)
            .unwrap_or_else(|e| panic!("the state does not encode as a checkpoint: {e}"));
        let back: Sessions = crate::store::model::snapshot::decode(
            crate::store::model::snapshot::BODY_VERSION,
            &body,
        )
        .unwrap_or_else(|e| panic!("the state does not survive the checkpoint round trip: {e}"));
        assert!(
            back == self.state,
            "the checkpoint round trip changed the state"
        );
        self.state = back;
    }

    /// Applies `entry` at the next LSN and checks the invariants; `render`
    /// also renders the touched session and round-trips the entry through
    /// its log encoding (floods skip both).
    fn apply(&mut self, entry: Entry, render: bool) {
        let decoded = if render {
            let decoded = Entry::decode(&entry.encode())
                .unwrap_or_else(|e| panic!("an encoded entry does not decode: {e}"));
            assert_eq!(decoded, entry, "Entry encode/decode round trip differs");
            decoded
        } else {
            // Flood entries are all alike: one was checked.
            entry.clone()
        };
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        let original = match &entry {
            Entry::Event(e) => e
                .key
                .as_ref()
                .and_then(|k| self.state.key_lsn(&e.session, k)),
            _ => None,
        };
        // A duplicate must do exactly what an entry that carries nothing
        // does: move the applied LSN on.
        let expected = original.map(|_| {
            let mut s = self.state.clone();
            s.apply(lsn, &Entry::Opened);
            s
        });
        let applied = self.state.apply(lsn, &decoded);
        assert_eq!(applied.duplicate_of, original, "duplicate_of at LSN {lsn}");
        if let Some(expected) = expected {
            assert!(
                self.state == expected,
                "a duplicate key changed the state: {entry:?}"
            );
        }
        assert_eq!(self.state.applied(), lsn + 1);
        assert_eq!(
            self.state.clean_shutdown(),
            matches!(entry, Entry::Shutdown)
        );
        let touched = match &entry {
            Entry::Event(e) => Some(e.session.as_str()),
            Entry::Retire { session } => Some(session.as_str()),
            Entry::Shutdown | Entry::Opened => None,
        };
        if let Some(id) = touched {
            self.check_runs(id, &entry, original.is_some());
            if render {
                if let Some(s) = self.state.get(id) {
                    check_rendering(s);
                }
            }
        }
        self.history.push((lsn, decoded));
    }

    /// Runs and crash finality for the session `entry` touched.
    fn check_runs(&mut self, id: &str, entry: &Entry, duplicate: bool) {
        let Some(s) = self.state.get(id) else {
            self.runs.remove(id);
            self.crashed.remove(id);
            return;
        };
        assert_eq!(
            s.ended_at.is_some(),
            s.status.is_final(),
            "{id:?}: ended_at {:?} with status {:?}",
            s.ended_at,
            s.status
        );
        let body = match entry {
            Entry::Event(e) if !duplicate => Some(&e.body),
            _ => None,
        };
        let starts = matches!(body, Some(Body::SessionStart { .. }))
            || matches!(body, Some(Body::Hook { name, .. }) if name == "SessionStart");
        match self.runs.insert(id.to_string(), s.run) {
            None => assert_eq!(s.run, 1, "{id:?}: a new session starts at run 1"),
            Some(prev) => assert!(
                s.run == prev || (starts && s.run == prev + 1),
                "{id:?}: run went from {prev} to {} by {entry:?}",
                s.run
            ),
        }
        if let Some(Body::Crash { run, .. }) = body {
            if *run == s.run {
                assert_eq!(
                    s.status,
                    Status::Crashed,
                    "{id:?}: a crash marker for the current run {run} left the status"
                );
                self.crashed.insert(id.to_string(), *run);
            }
        }
        if let Some(&r) = self.crashed.get(id) {
            if s.run == r {
                assert_eq!(
                    s.status,
                    Status::Crashed,
                    "{id:?}: run {r} was crashed, then {entry:?} changed its status"
                );
                assert!(s.error.is_some(), "{id:?}: crashed without an error text");
            } else {
                self.crashed.remove(id);
            }
        }
    }
}

fn status(b: u8) -> EndStatus {
    if b & 1 == 0 {
        EndStatus::Ok
    } else {
        EndStatus::Error
    }
}

/// A hook payload's text: `session_id` and `hook_event_name`, then the
/// fields two flag bytes select, optionally a duplicate key and loose
/// whitespace.
#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn hook_payload(o: &mut Ops, session: &str) -> String {
    let name = o.pick(HOOKS);
    let lo = o.byte();
    let hi = o.byte();
    let mut fields: Vec<(&str, String)> = vec![
        ("session_id", json_str(session)),
        ("hook_event_name", json_str(name)),
    ];
    let s = |o: &mut Ops, items: &[&str]| json_str(o.pick(items));
    if lo & 1 != 0 {
        fields.push(("tool_use_id", s(o, CALL_IDS)));
    }
    if lo & 2 != 0 {
        fields.push(("tool_name", s(o, TOOLS)));
    }
    if lo & 4 != 0 {
        fields.push(("tool_input", o.value_text()));
    }
    if lo & 8 != 0 {
        fields.push(("tool_response", o.value_text()));
    }
    if lo & 16 != 0 {
        fields.push(("duration_ms", o.pick(DURATIONS).to_string()));
    }
    if lo & 32 != 0 {
        fields.push(("agent_id", s(o, AGENTS)));
    }
    if lo & 64 != 0 {
        fields.push(("agent_type", json_str(&o.string())));
    }
    if lo & 128 != 0 || (name == "SessionStart" && hi & 128 == 0) {
        fields.push(("source", s(o, SOURCES)));
    }
    if hi & 1 != 0 {
        fields.push(("prompt", json_str(&o.string())));
    }
    if hi & 2 != 0 {
        fields.push(("last_assistant_message", o.value_text()));
    }
    if hi & 4 != 0 {
        fields.push(("error", o.value_text()));
    }
    if hi & 8 != 0 {
        fields.push(("is_interrupt", o.value_text()));
    }
    if hi & 16 != 0 {
        let n = o.byte() % 4;
        let calls: Vec<String> = (0..n)
            .map(|_| {
                format!(
                    r#"{{"tool_use_id":{},"tool_name":{},"tool_response":{},"duration_ms":{}}}"#,
                    s(o, CALL_IDS),
                    s(o, TOOLS),
                    o.value_text(),
                    o.pick(DURATIONS)
                )
            })
            .collect();
        fields.push(("tool_calls", format!("[{}]", calls.join(","))));
    }
    if hi & 32 != 0 {
        let field = o.pick(&[
            "reason",
            "model",
            "cwd",
            "transcript_path",
            "message",
            "type",
        ]);
        fields.push((field, json_str(&o.string())));
    }
    if hi & 64 != 0 {
        // A duplicate key: serde_json keeps the last one.
        fields.push(("tool_use_id", s(o, CALL_IDS)));
    }
    let sep = if hi & 128 != 0 { " ,\n\t" } else { "," };
    let members: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_str(k)))
        .collect();
    format!("{{{}}}", members.join(sep))
}

fn json_str(s: &str) -> String {
    let mut out = String::new();
    jcs::write_str(&mut out, s);
    out
}

/// Renders `session` and checks the trace file: UTF-8 JSON, its own
/// canonical form, `summary.status` and `endedAt` as the model says, and
/// at most 5,000 spans unless every kept span past the head is open.
fn check_rendering(session: &Session) {
    let id = &session.id;
    let bytes = render::render(session);
    let text = std::str::from_utf8(&bytes)
        .unwrap_or_else(|e| panic!("{id:?}: the rendering is not UTF-8: {e}"));
    let value: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{id:?}: the rendering is not JSON: {e}"));
    let canonical = jcs::canonicalize(text)
        .unwrap_or_else(|e| panic!("{id:?}: the rendering does not canonicalize: {e}"));
    if canonical != text {
        let at = canonical
            .bytes()
            .zip(text.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(canonical.len().min(text.len()));
        let near = |t: &str| {
            let bytes = &t.as_bytes()[at.saturating_sub(60)..(at + 60).min(t.len())];
            String::from_utf8_lossy(bytes).into_owned()
        };
        panic!(
            "{id:?}: the rendering is not canonical JSON; first difference at byte {at}:\n rendered:  {:?}\n canonical: {:?}",
            near(text),
            near(&canonical)
        );
    }
    assert_eq!(
        value["summary"]["status"].as_str(),
        Some(session.status.as_str()),
        "{id:?}: summary.status"
    );
    assert_eq!(
        value.get("endedAt").is_some(),
        session.status != Status::Running,
        "{id:?}: endedAt with status {:?}",
        session.status
    );
    assert_eq!(value["sessionId"].as_str(), Some(id.as_str()));
    let spans = value["spans"]
        .as_array()
        .unwrap_or_else(|| panic!("{id:?}: no spans array"))
        .len();
    if spans > 5_000 {
        let closed_past_head = session
            .spans
            .range(session.head_end().saturating_add(1)..)
            .filter(|(_, s)| s.end.is_some())
            .count();
        assert_eq!(
            closed_past_head, 0,
            "{id:?}: the file has {spans} spans (limit 5,000) and {closed_past_head} closed spans past the head were not elided"
        );
    }
}

/// The JSON event parsers on arbitrary bytes (as UTF-8, lossily): never a
/// panic; whatever parses validates, round-trips through the log encoding,
/// applies to a fresh state, and renders to canonical JSON. Input with
/// several lines is also read line by line into one state, as the CLI
/// reads a file.
pub fn json_event(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(event) = event::parse_line(&text) {
        check_parsed(&text, event, false);
    }
    if let Ok(event) = event::hook_event(&text) {
        check_parsed(&text, event, true);
    }
    if text.contains('\n') {
        let mut state = Sessions::new(1);
        for (i, line) in text.lines().enumerate() {
            let Ok(mut event) = event::parse_line(line) else {
                continue;
            };
            event.time.get_or_insert(1_700_000_000_000 + i as u64);
            let id = event.session.clone();
            state.apply(i as u64 + 1, &Entry::from(event));
            if let Some(s) = state.get(&id) {
                check_rendering(s);
            }
        }
    }
}

fn check_parsed(text: &str, mut event: Event, hook: bool) {
    if let Err(e) = event.validate() {
        panic!("a parsed event does not validate: {e}");
    }
    if let Body::Hook { payload, name } = &event.body {
        assert_eq!(payload.0, text.trim(), "a hook payload is kept verbatim");
        assert!(payload.parse().is_ok(), "the hook payload does not parse");
        let value: Value = serde_json::from_str(text).expect("parsed before");
        assert_eq!(value["hook_event_name"].as_str(), Some(name.as_str()));
    } else {
        assert!(!hook, "hook_event gave a typed event");
    }
    event.time.get_or_insert(1_700_000_000_000);
    let entry = Entry::from(event.clone());
    let decoded = Entry::decode(&entry.encode())
        .unwrap_or_else(|e| panic!("an encoded entry does not decode: {e}"));
    assert_eq!(decoded, entry, "Entry encode/decode round trip differs");
    let mut state = Sessions::new(1);
    let mut lsn = 1;
    if let Body::Crash { .. } = event.body {
        // A marker only marks a session that exists: open one first, and
        // mark its run as the store would.
        let start = Event {
            body: Body::SessionStart {
                metadata: Metadata::default(),
                resume: false,
            },
            key: None,
            ..event.clone()
        };
        state.apply(lsn, &Entry::from(start));
        lsn += 1;
        if let Body::Crash { run, .. } = &mut event.body {
            *run = 1;
        }
    }
    state.apply(lsn, &Entry::from(event.clone()));
    let session = state
        .get(&event.session)
        .unwrap_or_else(|| panic!("the event did not create its session"));
    if let Body::Crash { .. } = event.body {
        assert_eq!(session.status, Status::Crashed);
    }
    check_rendering(session);
}
