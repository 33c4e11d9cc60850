//! Section `appends`: concurrent appenders, each waiting for its own
//! acknowledgement, against every system of [`crate::systems`], with the
//! same byte sequences for every system.
//!
//! Workloads:
//!
//! * 300-byte events: a synthetic Claude Code session of 50 hook payloads
//!   (`SessionStart`, a prompt, 23 `Bash` tool calls as `PreToolUse` +
//!   `PostToolUse`, `Stop`, `SessionEnd`), each grown to exactly 300 bytes.
//! * hook payloads of 1-4 KB: the 48 payloads of `examples/session.jsonl`,
//!   each grown to a size drawn once (deterministically) from 1,024..=4,096
//!   bytes by appending source-like text to its main text field (the
//!   longest string under `tool_input` / `tool_response` / `tool_calls`,
//!   else the event's own text such as `prompt` or `reason`).
//!
//! Each appender replays its workload's session over and over; every
//! replay gets a fresh session id and fresh `tool_use_id`s (a 12-digit
//! stamp of appender and cycle number replaces their last 12 characters),
//! so every event is distinct, also for the store's idempotency keys.
//!
//! Per configuration: a fresh directory, the system opened, its background
//! preparation awaited (no write for 50 ms) and `sync` run (outside the
//! clock), a warm-up, then a timed run; the byte and CPU
//! figures are deltas from the start of the timed run to after the system
//! was synced and closed, so buffered data and closing work are counted:
//!
//! * written: bytes the process passed to write calls (`/proc/self/io`
//!   `wchar`; every system here writes its files with `write`/`pwrite`);
//! * device: sectors written by the block device holding the work dir
//!   (`/sys/dev/block/M:m/stat`): data, metadata and the filesystem's
//!   journal, but device-wide, so only meaningful on a quiet machine;
//! * CPU: user + system time of the whole process (10 ms ticks).
//!
//! `/proc/self/io` `write_bytes` is not used: the kernel counts it per
//! page-cache folio dirtied, so on a kernel with large folios a 300-byte
//! overwrite of a preallocated file counts as up to 2 MiB.

use crate::report::{micros, ratio, thousands, Config, Latencies, Progress, Section, Usage};
use crate::systems::{Appender, System};
use serde_json::Value;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};
use tracejournal::testkit::rng::mix;

/// Appender counts, in table order.
const THREADS: [usize; 4] = [1, 4, 16, 64];
/// The appender count the throughput aims are about.
const MAX_THREADS: usize = 64;
/// Measuring time at scale 1, and the least at any scale.
const MEASURE: (Duration, Duration) = (Duration::from_secs(2), Duration::from_millis(200));
/// Warm-up time at scale 1, and the least at any scale.
const WARMUP: (Duration, Duration) = (Duration::from_millis(500), Duration::from_millis(50));

/// A newly opened system is settled once the process wrote nothing for this
/// long (waiting at most `SETTLE_MAX`).
const SETTLE_QUIET: Duration = Duration::from_millis(50);
const SETTLE_MAX: Duration = Duration::from_secs(10);
/// Size of every event of the small workload.
const SMALL_LEN: usize = 300;
/// Hook payloads are grown to a size in this range.
const HOOK_SIZES: (usize, usize) = (1024, 4096);
/// The example session's id; its last 12 characters become the stamp.
const SESSION_ID: &str = "9b2e4c71-5f0a-4d3e-8c16-a7e2f94b0d58";
/// Placeholder for the stamp in the templates (no payload contains `@`).
const MARK: &[u8; STAMP_LEN] = b"@@@@@@@@@@@@";
const STAMP_LEN: usize = 12;
/// `toolu_` ids have 24 characters after the prefix; the last 12 are
/// replaced by the stamp.
const TOOL_ID_PREFIX: &str = "toolu_";
const TOOL_ID_LEN: usize = 24;
/// Top-level fields that are identifiers or enums, never grown.
const NOT_TEXT: [&str; 12] = [
    "session_id",
    "transcript_path",
    "cwd",
    "permission_mode",
    "hook_event_name",
    "tool_name",
    "tool_use_id",
    "agent_id",
    "agent_type",
    "agent_transcript_path",
    "model",
    "notification_type",
];
/// Top-level fields the store matches on or shows as names: never grown.
const IDS: [&str; 6] = [
    "session_id",
    "hook_event_name",
    "tool_name",
    "tool_use_id",
    "agent_id",
    "agent_type",
];
/// Fields whose string leaves are the tool's text content.
const TOOL_TEXT: [&str; 3] = ["tool_input", "tool_response", "tool_calls"];
/// The text appended to grow a payload (repeated, JSON-escaped).
const FILLER: &str = "\n    let attempts = limiter.check(&peer_ip, now)?;\n    if attempts > MAX_LOGIN_ATTEMPTS_PER_MINUTE {\n        let retry = window.remaining(now).as_secs();\n        return Err(ApiError::TooManyAttempts { retry_after: retry });\n    }\n";

/// Aims (issue 5), as ratios of this run.
const AIM_OVER_OKAYWAL: f64 = 2.5;
const AIM_OVER_SQLITE_FULL: f64 = 40.0;
const AIM_P50_OVER_FLOOR: f64 = 1.2;

/// Runs the section: one table per workload.
pub fn run(config: &Config, progress: &Progress) -> Vec<Section> {
    let plan = Plan {
        warmup: config.duration(WARMUP.0, WARMUP.1),
        measure: config.duration(MEASURE.0, MEASURE.1),
        device: device_stat(&config.work_dir),
    };
    let workloads = [Workload::small(), Workload::hooks()];
    let total = workloads.len() * configurations().count();
    let mut done = 0;
    workloads
        .iter()
        .map(|workload| {
            let rows: Vec<Row> = configurations()
                .map(|(system, threads)| {
                    done += 1;
                    progress.step(&format!(
                        "[{done}/{total}] {}, {}, {threads} appender(s)",
                        system.label(),
                        workload.name
                    ));
                    let row = measure(config, system, workload, threads, &plan);
                    progress.step(&row.summary());
                    row
                })
                .collect();
            section(workload, &plan, rows)
        })
        .collect()
}

/// Every (system, appenders) pair, in table order.
fn configurations() -> impl Iterator<Item = (System, usize)> {
    System::ALL.into_iter().flat_map(|system| {
        THREADS
            .into_iter()
            .filter(move |&t| system.runs_at(t))
            .map(move |t| (system, t))
    })
}

/// How every configuration is run and measured.
struct Plan {
    warmup: Duration,
    measure: Duration,
    /// The `stat` file of the block device holding the work dir, if found.
    device: Option<PathBuf>,
}

/// The block device `stat` file (`/sys/dev/block/M:m/stat`) of the
/// filesystem holding `dir`, if there is one.
fn device_stat(dir: &Path) -> Option<PathBuf> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x00ff);
    let path = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
    path.exists().then_some(path)
}

/// Process CPU time (of [`Usage`]), bytes passed to write calls, bytes the
/// device wrote.
#[derive(Clone, Copy, Default)]
struct Counters {
    usage: Usage,
    written: u64,
    device: Option<u64>,
}

impl Counters {
    /// Reads them now.
    fn now(device: Option<&Path>) -> Counters {
        Counters {
            usage: Usage::now(),
            written: proc_io_wchar().unwrap_or(0),
            device: device.and_then(device_bytes_written),
        }
    }

    /// `self - earlier`, saturating.
    fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            usage: self.usage.since(&earlier.usage),
            written: self.written.saturating_sub(earlier.written),
            device: self
                .device
                .zip(earlier.device)
                .map(|(a, b)| a.saturating_sub(b)),
        }
    }
}

/// `wchar` of `/proc/self/io`: bytes passed to write calls.
fn proc_io_wchar() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Sectors written (the 7th field of a block device's `stat`), in bytes.
fn device_bytes_written(stat: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(stat).ok()?;
    let sectors: u64 = text.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors * 512)
}

/// One payload with the byte offsets where the stamp goes.
struct Template {
    bytes: Vec<u8>,
    stamps: Vec<usize>,
}

/// A session's payloads, replayed by every appender with fresh ids.
struct Workload {
    name: &'static str,
    templates: Vec<Template>,
}

impl Workload {
    /// The 300-byte workload.
    fn small() -> Workload {
        let lines = small_session();
        let templates = lines
            .iter()
            .map(|line| template(&grow(line, SMALL_LEN)))
            .collect();
        Workload::checked("300 B", templates)
    }

    /// The 1-4 KB hook payloads from `examples/session.jsonl`.
    fn hooks() -> Workload {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/session.jsonl");
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("appends: read {path}: {e}"));
        let templates = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| {
                let marked = mark_ids(line);
                template(&grow(&marked, hook_size(i, marked.len())))
            })
            .collect();
        Workload::checked("hook 1-4 KB", templates)
    }

    /// Checks that every payload, stamped, parses as an event and that the
    /// tool ids of one replay are distinct.
    fn checked(name: &'static str, templates: Vec<Template>) -> Workload {
        let workload = Workload { name, templates };
        let mut buf = Vec::new();
        let mut keys = std::collections::HashSet::new();
        for seq in 0..workload.templates.len() as u64 {
            workload.fill(7, seq, &mut buf);
            let line = std::str::from_utf8(&buf).expect("ASCII payload");
            tracejournal::event::parse_line(line)
                .unwrap_or_else(|e| panic!("appends: {name} payload {seq} does not parse: {e}"));
            let value: Value = serde_json::from_str(line).expect("parsed above");
            if let (Some(Value::String(event)), Some(Value::String(id))) =
                (value.get("hook_event_name"), value.get("tool_use_id"))
            {
                let fresh = keys.insert(format!("{event}:{id}"));
                assert!(fresh, "appends: {name}: duplicate tool event {event}:{id}");
            }
        }
        workload
    }

    /// Appender `thread`'s event number `seq` into `buf`.
    fn fill(&self, thread: usize, seq: u64, buf: &mut Vec<u8>) {
        let n = self.templates.len() as u64;
        let template = &self.templates[(seq % n) as usize];
        let stamp = stamp(thread, seq / n);
        buf.clear();
        buf.extend_from_slice(&template.bytes);
        for &at in &template.stamps {
            buf[at..at + STAMP_LEN].copy_from_slice(&stamp);
        }
    }

    /// Smallest and largest payload, in bytes.
    fn size_range(&self) -> (usize, usize) {
        let sizes = self.templates.iter().map(|t| t.bytes.len());
        (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0))
    }
}

/// The 12 ASCII digits identifying appender `thread`'s replay `cycle`.
fn stamp(thread: usize, cycle: u64) -> [u8; STAMP_LEN] {
    let text = format!("{:02}{:010}", thread % 100, cycle % 10_000_000_000);
    let mut out = [0u8; STAMP_LEN];
    out.copy_from_slice(text.as_bytes());
    out
}

/// A template of `line`: the offsets of every [`MARK`].
fn template(line: &str) -> Template {
    let bytes = line.as_bytes().to_vec();
    let stamps = (0..bytes.len().saturating_sub(STAMP_LEN - 1))
        .filter(|&i| &bytes[i..i + STAMP_LEN] == MARK)
        .collect();
    Template { bytes, stamps }
}

/// `line` with the stamp marks in place of the last 12 characters of the
/// session id and of every `toolu_` id.
fn mark_ids(line: &str) -> String {
    let marked_session = format!("{}{}", &SESSION_ID[..SESSION_ID.len() - STAMP_LEN], mark());
    let mut bytes = line.replace(SESSION_ID, &marked_session).into_bytes();
    let prefix = TOOL_ID_PREFIX.as_bytes();
    let mut i = 0;
    while i + prefix.len() + TOOL_ID_LEN <= bytes.len() {
        let id = i + prefix.len();
        let is_tool_id = &bytes[i..id] == prefix
            && bytes[id..id + TOOL_ID_LEN]
                .iter()
                .all(u8::is_ascii_alphanumeric);
        if is_tool_id {
            let end = id + TOOL_ID_LEN;
            bytes[end - STAMP_LEN..end].copy_from_slice(MARK);
            i = end;
        } else {
            i += 1;
        }
    }
    String::from_utf8(bytes).expect("ASCII marks keep UTF-8")
}

fn mark() -> &'static str {
    std::str::from_utf8(MARK).expect("ASCII")
}

/// The size hook payload `index` (now `len` bytes) is grown to: drawn
/// from [`HOOK_SIZES`] (at least `len`) by a fixed hash of the index.
fn hook_size(index: usize, len: usize) -> usize {
    let low = len.max(HOOK_SIZES.0);
    let span = (HOOK_SIZES.1 + 1).saturating_sub(low).max(1) as u64;
    low + (mix((index as u64).wrapping_add(0x9e37_79b9_7f4a_7c15)) % span) as usize
}

/// `line` grown to exactly `target` bytes by appending [`FILLER`] text to
/// its main text field (see the module doc).
fn grow(line: &str, target: usize) -> String {
    assert!(
        line.len() <= target,
        "appends: payload of {} bytes is over its target {target}: {line}",
        line.len()
    );
    let value: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("appends: bad JSON {line}: {e}"));
    let field = main_text(&value).unwrap_or_else(|| panic!("appends: no text field in {line}"));
    let quoted = serde_json::to_string(field).expect("a string serializes");
    let at = line
        .find(&quoted)
        .unwrap_or_else(|| panic!("appends: text {quoted} not found verbatim in {line}"));
    let insert = at + quoted.len() - 1; // before the closing quote
    let mut out = String::with_capacity(target);
    out.push_str(&line[..insert]);
    out.push_str(&filler(target - line.len()));
    out.push_str(&line[insert..]);
    debug_assert_eq!(out.len(), target);
    out
}

/// The string a payload is grown through: the longest string leaf under a
/// [`TOOL_TEXT`] field, else the longest top-level text field, else (an
/// event with no text, like `SubagentStart`) its longest top-level string
/// that is not an identifier the store matches on ([`IDS`]).
fn main_text(value: &Value) -> Option<&str> {
    let object = value.as_object()?;
    let mut tool = Vec::new();
    let mut text = Vec::new();
    let mut other = Vec::new();
    for (key, v) in object {
        let key = key.as_str();
        if TOOL_TEXT.contains(&key) {
            string_leaves(v, &mut tool);
        } else if let Value::String(s) = v {
            if !NOT_TEXT.contains(&key) {
                text.push(s.as_str());
            } else if !IDS.contains(&key) {
                other.push(s.as_str());
            }
        }
    }
    [tool, text, other]
        .into_iter()
        .find_map(|strings| strings.into_iter().max_by_key(|s| s.len()))
}

/// Every string leaf of `value` except `tool_use_id`s.
fn string_leaves<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| string_leaves(v, out)),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "tool_use_id")
            .for_each(|(_, v)| string_leaves(v, out)),
        _ => {}
    }
}

/// `len` bytes of JSON-escaped [`FILLER`] text, never ending inside an
/// escape.
fn filler(len: usize) -> String {
    let escaped = serde_json::to_string(FILLER).expect("a string serializes");
    let unit = &escaped[1..escaped.len() - 1];
    let mut out: String = unit.chars().cycle().take(len).collect();
    if out.ends_with('\\') {
        out.pop();
        out.push(' ');
    }
    out
}

/// The 300-byte workload's session, before growing: 50 hook payloads.
fn small_session() -> Vec<String> {
    let session = format!("{}{}", &SESSION_ID[..SESSION_ID.len() - STAMP_LEN], mark());
    let head = format!(r#"{{"session_id":"{session}","#);
    let mut lines = vec![
        format!(
            r#"{head}"hook_event_name":"SessionStart","source":"startup","model":"claude-sonnet-4-5-20250929"}}"#
        ),
        format!(
            r#"{head}"hook_event_name":"UserPromptSubmit","prompt":"Run the tests and fix what fails."}}"#
        ),
    ];
    for call in 0..23 {
        let id = format!("{TOOL_ID_PREFIX}01Bench{call:05}{}", mark());
        let input = r#""tool_input":{"command":"cargo test"}"#;
        lines.push(format!(
            r#"{head}"hook_event_name":"PreToolUse","tool_name":"Bash",{input},"tool_use_id":"{id}"}}"#
        ));
        lines.push(format!(
            r#"{head}"hook_event_name":"PostToolUse","tool_name":"Bash",{input},"tool_response":{{"stdout":"test result: ok","stderr":""}},"tool_use_id":"{id}","duration_ms":1200}}"#
        ));
    }
    lines.push(format!(
        r#"{head}"hook_event_name":"Stop","stop_hook_active":false,"last_assistant_message":"All tests pass."}}"#
    ));
    lines.push(format!(
        r#"{head}"hook_event_name":"SessionEnd","reason":"prompt_input_exit"}}"#
    ));
    lines
}

/// What one configuration measured.
struct Row {
    system: System,
    threads: usize,
    events: u64,
    payload_bytes: u64,
    elapsed: Duration,
    latencies: Latencies,
    counters: Counters,
}

impl Row {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn p50(&mut self) -> Option<Duration> {
        self.latencies.percentile(0.5)
    }

    /// A value per event.
    fn per_event(&self, total: f64) -> f64 {
        total / (self.events.max(1) as f64)
    }

    /// The progress line after the run.
    fn summary(&self) -> String {
        format!(
            "-> {} events in {:.2} s: {} events/s",
            thousands(self.events),
            self.elapsed.as_secs_f64(),
            thousands(self.rate().round() as u64)
        )
    }

    /// The table cells.
    fn cells(&mut self, workload: &str) -> Vec<String> {
        let payload = self.per_event(self.payload_bytes as f64);
        let written = self.per_event(self.counters.written as f64);
        let device = self
            .counters
            .device
            .map(|bytes| self.per_event(bytes as f64));
        let cpu = self.per_event(self.counters.usage.cpu.as_secs_f64() * 1e6);
        vec![
            self.system.label().to_string(),
            workload.to_string(),
            self.threads.to_string(),
            thousands(self.events),
            thousands(self.rate().round() as u64),
            micros(self.latencies.percentile(0.5)),
            micros(self.latencies.percentile(0.99)),
            micros(self.latencies.percentile(0.999)),
            thousands(payload.round() as u64),
            thousands(written.round() as u64),
            device.map_or_else(|| "-".to_string(), |d| thousands(d.round() as u64)),
            format!("{cpu:.1}"),
        ]
    }
}

/// Runs one configuration in a fresh directory.
fn measure(
    config: &Config,
    system: System,
    workload: &Workload,
    threads: usize,
    plan: &Plan,
) -> Row {
    let dir = config.temp_dir();
    let appender = system.open(dir.path(), threads);
    settle();
    // Earlier configurations' write-back must not slow this one's syncs.
    let _ = std::process::Command::new("sync").status();
    let run = drive(&*appender, workload, threads, plan);
    appender.finish();
    let counters = Counters::now(plan.device.as_deref()).since(&run.before);
    Row {
        system,
        threads,
        events: run.latencies.len() as u64,
        payload_bytes: run.payload_bytes,
        elapsed: run.elapsed,
        latencies: run.latencies,
        counters,
    }
}

/// Waits until the process has written nothing for [`SETTLE_QUIET`] (at
/// most [`SETTLE_MAX`]): a freshly opened system may still be preparing
/// files in the background (the journal zero-fills its next segment), and
/// that one-time work must not land in the timed run.
fn settle() {
    let deadline = Instant::now() + SETTLE_MAX;
    let mut last = proc_io_wchar();
    while Instant::now() < deadline {
        std::thread::sleep(SETTLE_QUIET);
        let now = proc_io_wchar();
        if now == last {
            return;
        }
        last = now;
    }
}

/// The timed part of a configuration.
struct Run {
    /// The counters when the timed run started.
    before: Counters,
    elapsed: Duration,
    payload_bytes: u64,
    latencies: Latencies,
}

/// One appender thread's timed run.
struct ThreadRun {
    start: Instant,
    end: Instant,
    payload_bytes: u64,
    latencies: Latencies,
}

/// `threads` appenders warm up, wait for each other (the counters are read
/// then), and append for the measuring time, each timing every
/// acknowledgement.
fn drive(appender: &dyn Appender, workload: &Workload, threads: usize, plan: &Plan) -> Run {
    let warmed = Barrier::new(threads + 1);
    let go = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (warmed, go) = (&warmed, &go);
                s.spawn(move || {
                    let mut appending = Appending::new(appender, workload, t);
                    appending.for_time(plan.warmup);
                    warmed.wait();
                    go.wait();
                    appending.latencies = Latencies::default();
                    appending.payload_bytes = 0;
                    appending.timed(plan.measure)
                })
            })
            .collect();
        warmed.wait();
        let before = Counters::now(plan.device.as_deref());
        go.wait();
        let runs: Vec<ThreadRun> = handles
            .into_iter()
            .map(|h| h.join().expect("appends: an appender thread panicked"))
            .collect();
        combine(before, runs)
    })
}

/// Merges the threads' runs: the clock runs from the first start to the
/// last end.
fn combine(before: Counters, runs: Vec<ThreadRun>) -> Run {
    let start = runs.iter().map(|r| r.start).min().expect("one appender");
    let end = runs.iter().map(|r| r.end).max().expect("one appender");
    let mut latencies = Latencies::default();
    let mut payload_bytes = 0;
    for run in runs {
        payload_bytes += run.payload_bytes;
        latencies.extend(run.latencies);
    }
    Run {
        before,
        elapsed: end - start,
        payload_bytes,
        latencies,
    }
}

/// One appender thread: its next event and what it measured.
struct Appending<'a> {
    appender: &'a dyn Appender,
    workload: &'a Workload,
    thread: usize,
    seq: u64,
    buf: Vec<u8>,
    payload_bytes: u64,
    latencies: Latencies,
}

impl<'a> Appending<'a> {
    fn new(appender: &'a dyn Appender, workload: &'a Workload, thread: usize) -> Self {
        Appending {
            appender,
            workload,
            thread,
            seq: 0,
            buf: Vec::with_capacity(HOOK_SIZES.1),
            payload_bytes: 0,
            latencies: Latencies::default(),
        }
    }

    /// Appends the next event and waits for its acknowledgement; returns
    /// when it came.
    fn one(&mut self) -> Instant {
        self.workload.fill(self.thread, self.seq, &mut self.buf);
        self.seq += 1;
        let sent = Instant::now();
        self.appender.append(self.thread, &self.buf);
        let acked = Instant::now();
        self.latencies.push(acked - sent);
        self.payload_bytes += self.buf.len() as u64;
        acked
    }

    /// Appends until `time` has passed (at least once).
    fn for_time(&mut self, time: Duration) {
        let deadline = Instant::now() + time;
        while self.one() < deadline {}
    }

    /// Appends for `time` (at least once) and returns what it measured.
    fn timed(mut self, time: Duration) -> ThreadRun {
        let start = Instant::now();
        let deadline = start + time;
        let mut end = self.one();
        while end < deadline {
            end = self.one();
        }
        ThreadRun {
            start,
            end,
            payload_bytes: self.payload_bytes,
            latencies: self.latencies,
        }
    }
}

/// The table of one workload, with the aims as notes.
fn section(workload: &Workload, plan: &Plan, mut rows: Vec<Row>) -> Section {
    let mut notes = notes(&mut rows);
    notes.extend(method_notes(plan));
    Section {
        title: format!("Appends: {} events", workload.name),
        intro: intro(workload, plan),
        header: [
            "system",
            "payload",
            "appenders:",
            "events:",
            "events/s:",
            "p50 µs:",
            "p99 µs:",
            "p99.9 µs:",
            "payload B/event:",
            "written B/event:",
            "device B/event:",
            "CPU µs/event:",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows.iter_mut().map(|r| r.cells(workload.name)).collect(),
        notes,
    }
}

/// What was measured, above the table.
fn intro(workload: &Workload, plan: &Plan) -> String {
    let sizes = match workload.size_range() {
        (low, high) if low == high => format!("{low} bytes each"),
        (low, high) => format!("{low}-{high} bytes"),
    };
    format!(
        "Each appender replays a session of {} hook payloads ({sizes}; fresh \
         session and tool ids every replay; the same bytes for every system) and waits for \
         each acknowledgement before its next event. Per configuration: a fresh directory \
         under the target dir; before the clock, the system opened, its background \
         preparation awaited (50 ms without a write) and `sync` run; {:.2} s \
         warm-up, {:.2} s measured. Latency: per acknowledged append. Bytes and CPU: from \
         the start of the timed run to after the system was synced and closed, per event \
         of the timed run; \"written\" is what the process passed to write calls, \
         \"device\" what the work dir's block device wrote (filesystem journal included).",
        workload.templates.len(),
        plan.warmup.as_secs_f64(),
        plan.measure.as_secs_f64()
    )
}

/// How each system was set up and what the byte and CPU columns mean.
fn method_notes(plan: &Plan) -> Vec<String> {
    let device = match &plan.device {
        Some(path) => format!(
            "device B/event: sectors written by the whole device ({}), so other processes' \
             writes count too: meaningful on a quiet machine only",
            path.display()
        ),
        None => "device B/event: no block device found for the work dir".to_string(),
    };
    vec![
        "tracejournal Buffered acknowledges once the event is written to the OS, not \
         fsynced; SQLite synchronous=NORMAL commits without an fsync in WAL mode (synced \
         at checkpoints): neither is durable per acknowledgement"
            .to_string(),
        "SQLite: WAL mode, one connection per appender (like concurrent hook handlers), \
         busy_timeout 60 s, one autocommit INSERT (one transaction) of the payload as TEXT \
         per event. A connection that finds the write lock taken waits in SQLite's busy \
         handler, which sleeps between tries (1 ms growing to 100 ms)"
            .to_string(),
        "okaywal: default configuration (1 MiB preallocated segments, checkpoint after \
         768 KiB) with its `LogVoid` manager (a checkpoint applies nothing, so only the \
         log is measured); one entry of one chunk per event, committed"
            .to_string(),
        "floor and naive: a 64 MiB zero-filled, synced file overwritten in place; the \
         floor is one thread with nothing else running"
            .to_string(),
        "tracejournal zero-fills each 64 MiB segment before use (asked for when the active \
         one is 1/16 full) and counts it as written: in steady state one byte of zeros per \
         byte of log, but a short timed run that crosses that point carries a whole 64 MiB \
         fill, so its written and device bytes per event are lumpy"
            .to_string(),
        "product row: `parse_line` + `Store::ingest` (default options, `Sync`), timed \
         together: the cost of the whole session layer, trace files included"
            .to_string(),
        device,
        "CPU µs/event: user + system time of the whole process, in 10 ms ticks (coarse \
         for short runs)"
            .to_string(),
    ]
}

/// The aims of issue 5 as ratios of this run.
fn notes(rows: &mut [Row]) -> Vec<String> {
    let rate = |rows: &mut [Row], system, threads| find(rows, system, threads).rate();
    let sync64 = rate(rows, System::JournalSync, MAX_THREADS);
    let okaywal64 = rate(rows, System::Okaywal, MAX_THREADS);
    let sqlite64 = rate(rows, System::SqliteFull, MAX_THREADS);
    let naive64 = rate(rows, System::Naive, MAX_THREADS);
    let sync_p50 = secs(find(rows, System::JournalSync, 1).p50());
    let floor_p50 = secs(find(rows, System::Floor, 1).p50());
    vec![
        aim(
            &format!("tracejournal Sync / okaywal events/s at {MAX_THREADS} appenders"),
            sync64 / okaywal64,
            AIM_OVER_OKAYWAL,
            true,
        ),
        aim(
            &format!("tracejournal Sync / SQLite FULL events/s at {MAX_THREADS} appenders"),
            sync64 / sqlite64,
            AIM_OVER_SQLITE_FULL,
            true,
        ),
        aim(
            "tracejournal Sync p50 / floor p50, 1 appender",
            sync_p50 / floor_p50,
            AIM_P50_OVER_FLOOR,
            false,
        ),
        format!(
            "(info) tracejournal Sync / naive baseline events/s at {MAX_THREADS} appenders: {}",
            ratio(sync64, naive64)
        ),
    ]
}

/// One aim's line: the ratio, the aim, met or missed.
fn aim(what: &str, value: f64, aim: f64, at_least: bool) -> String {
    let met = if at_least { value >= aim } else { value <= aim };
    format!(
        "{what}: {} (aim {} {aim}x): {}",
        ratio(value, 1.0),
        if at_least { ">=" } else { "<=" },
        if met { "met" } else { "missed" }
    )
}

fn secs(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64())
}

/// The row of `system` at `threads` appenders.
fn find(rows: &mut [Row], system: System, threads: usize) -> &mut Row {
    rows.iter_mut()
        .find(|r| r.system == system && r.threads == threads)
        .unwrap_or_else(|| panic!("appends: no row {system:?} at {threads} appenders"))
}
