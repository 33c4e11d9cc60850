//! Sessions benchmark: what it costs tracejournal to keep a very large
//! session's trace file current, against the old tracer's approach (rewrite
//! the whole pretty-printed JSON file after every event), measured in one
//! run on one machine (absolute times drift between runs and machines, so
//! the ratios are what matter).
//!
//! The workload is the seed-1 yardstick session: 5,000 tool spans, each
//! with 5,000 characters of input and 5,000 of output (a ~52 MB trace
//! file; see `trace-file-v2.md`, "Very large sessions"). Events are built
//! before the clock starts (parsing them is not timed) and fed from one
//! thread as fast as the store takes them, in one of two forms:
//!
//! * `tool_call`: `session_start`, one `tool_call` event per span,
//!   `session_end`;
//! * hooks: `SessionStart`, a `PreToolUse` + `PostToolUse` pair per span
//!   (the `PostToolUse` repeats `tool_input`, as Claude Code sends it),
//!   `SessionEnd`.
//!
//! Sections, each configuration in a fresh directory under Cargo's target
//! tmp dir (never `/tmp`, which may be a tmpfs where `fsync` is free):
//!
//! 1. tracejournal (`Sync` durability, system clock, debounce 200 ms and
//!    20 ms) on the full session: wall time from the first event until
//!    `flush` returned (every event durable, the file current), the bytes
//!    written to the session's trace files over its life
//!    (`FileStats::written`, temp files included) against the final size
//!    (the aim is at most 4x), the publishes, the time from sending
//!    `session_end` until `wait_published` saw the file current, and the
//!    ingesting thread's pauses (the compactor's pacing publishes a session
//!    over its write budget once no event arrived for a debounce interval
//!    times the overrun, so pauses explain extra publishes). With
//!    `TRACEJOURNAL_BENCH_TIMELINE=1` a thread polls `Store::file_stats`
//!    every 250 µs and the report lists every publish with the bytes
//!    written before it (off by default: the polling costs CPU).
//! 2. The old tracer, measured, not extrapolated: after every event,
//!    serialize the whole trace with `serde_json` pretty-printing (like its
//!    `JSON.stringify(trace, null, 2)`), write a temp file and rename it
//!    over the final name; without any fsync (as the old tool) and with one
//!    (temp file fsynced before the rename, directory after, as
//!    tracejournal publishes). Its cost grows with the square of the
//!    session, so it runs on a scaled-down session of at most
//!    [`BASELINE_MAX_SPANS`] spans (and half that, to show the growth), and
//!    tracejournal runs on exactly the same sessions in the same process
//!    for the ratios.
//! 3. Rendering alone: `render::render` of the full session's state, and one
//!    publish (one small change, then `Store::flush`: render, write, fsync,
//!    rename, fsync the directory), in MB/s of trace file.
//!
//! Before each configuration the bench runs `sync` (outside the clock), so
//! one configuration's write-back does not slow the next one's fsyncs.
//! The markdown report (machine, scale, tables) is printed on stdout and
//! written to `target/bench-sessions.md`; progress goes to stderr.
//!
//! Run: `cargo bench --bench sessions` (about a minute), or for a quick
//! run `TRACEJOURNAL_BENCH_SCALE=0.02 cargo bench --bench sessions`. The
//! scale multiplies the number of tool spans (the texts stay 5,000
//! characters).

mod common;

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;
use tracejournal::event::{hook_event, Body, EndStatus, Event, JsonText, Metadata};
use tracejournal::model::Status;
use tracejournal::testkit::rng::SplitMix64;
use tracejournal::trace as render;
use tracejournal::Durability;
use tracejournal::{Store, StoreOptions};

/// Tool spans of the full yardstick session at scale 1.
const FULL_SPANS: usize = 5_000;
/// Characters of each span's input and of its output.
const TEXT_CHARS: usize = 5_000;
/// The old writer's session is at most this many spans (its cost is
/// quadratic: 500 spans already write over a gigabyte).
const BASELINE_MAX_SPANS: usize = 500;
/// Runs of each rendering measurement (the median is reported).
const RENDER_RUNS: usize = 5;
/// The session's id.
const SESSION: &str = "yardstick-seed-1";
/// The aim for bytes written to trace files over a session's life.
const AIM_WRITE_RATIO: f64 = 4.0;
/// Generous bound on waiting for a publish (a condition wait, not a sleep).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(300);

const DEBOUNCE_DEFAULT: Duration = Duration::from_millis(200);
const DEBOUNCE_SHORT: Duration = Duration::from_millis(20);

const MB: f64 = 1e6;

fn main() {
    let scale = common::scale_from_env();
    let mut bench = Bench::new(scale);
    let report = bench.run_all();
    print!("{report}");
    let out = common::target_dir().join("bench-sessions.md");
    std::fs::write(&out, &report).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    eprintln!("wrote {}", out.display());
}

/// How the session's events are shaped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// One `tool_call` event per span.
    ToolCall,
    /// A `PreToolUse` + `PostToolUse` hook pair per span.
    Hooks,
}

impl Form {
    fn label(self) -> &'static str {
        match self {
            Form::ToolCall => "tool_call events",
            Form::Hooks => "PreToolUse/PostToolUse hook pairs",
        }
    }
}

/// The yardstick session with `spans` tool spans, as events in `form`
/// (start first, end last).
fn session_events(spans: usize, form: Form) -> Vec<Event> {
    let mut rng = SplitMix64::new(common::TEXT_SEED);
    let mut events = Vec::with_capacity(2 * spans + 2);
    match form {
        Form::ToolCall => events.push(Event {
            session: SESSION.into(),
            key: None,
            time: None,
            body: Body::SessionStart {
                metadata: Metadata {
                    title: Some("seed-1 yardstick".into()),
                    model: Some("bench-model".into()),
                    ..Metadata::default()
                },
                resume: false,
            },
        }),
        Form::Hooks => events.push(hook(json!({
            "session_id": SESSION,
            "hook_event_name": "SessionStart",
            "source": "startup",
            "model": "bench-model",
            "cwd": "/work",
        }))),
    }
    for i in 0..spans {
        let call_id = format!("toolu_{i:06}");
        let input = json!({ "command": common::code_text(&mut rng, TEXT_CHARS) });
        let output = Value::String(common::code_text(&mut rng, TEXT_CHARS));
        match form {
            Form::ToolCall => events.push(Event {
                session: SESSION.into(),
                key: None,
                time: None,
                body: Body::ToolCall {
                    call_id,
                    tool: "Bash".into(),
                    parent: None,
                    input: Some(JsonText::canonical(&input)),
                    output: Some(JsonText::canonical(&output)),
                    status: EndStatus::Ok,
                    message: None,
                    duration_ms: Some(5),
                },
            }),
            Form::Hooks => {
                events.push(hook(json!({
                    "session_id": SESSION,
                    "hook_event_name": "PreToolUse",
                    "tool_name": "Bash",
                    "tool_use_id": call_id,
                    "tool_input": input,
                    "cwd": "/work",
                })));
                events.push(hook(json!({
                    "session_id": SESSION,
                    "hook_event_name": "PostToolUse",
                    "tool_name": "Bash",
                    "tool_use_id": call_id,
                    "tool_input": input,
                    "tool_response": output,
                    "duration_ms": 5,
                    "cwd": "/work",
                })));
            }
        }
    }
    match form {
        Form::ToolCall => events.push(Event {
            session: SESSION.into(),
            key: None,
            time: None,
            body: Body::SessionEnd {
                status: EndStatus::Ok,
                message: None,
            },
        }),
        Form::Hooks => events.push(hook(json!({
            "session_id": SESSION,
            "hook_event_name": "SessionEnd",
            "reason": "other",
        }))),
    }
    events
}

fn hook(payload: Value) -> Event {
    hook_event(&payload.to_string()).expect("a valid hook payload")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What one tracejournal run measured.
struct StoreRun {
    label: String,
    spans: usize,
    events: usize,
    /// First event until the last ingest (`session_end`) returned.
    ingest: Duration,
    /// First event until `flush` returned (everything durable and
    /// published).
    wall: Duration,
    /// From sending `session_end` until `wait_published` returned.
    end_to_current: Duration,
    final_size: u64,
    written: u64,
    publishes: u64,
    superseded: u64,
    /// Pauses between consecutive ingests returning.
    stalls: Stalls,
    /// Every publish seen, if the timeline was asked for.
    timeline: Option<Vec<PublishSeen>>,
}

/// Pauses of the ingesting thread: the compactor's pacing lets a session
/// over its write budget publish once no event arrived for a debounce
/// interval (times the overrun), so these explain extra publishes.
#[derive(Default)]
struct Stalls {
    longest: Duration,
    at_least_debounce: usize,
}

impl Stalls {
    fn note(&mut self, gap: Duration, debounce: Duration) {
        self.longest = self.longest.max(gap);
        if gap >= debounce {
            self.at_least_debounce += 1;
        }
    }
}

/// One publish as seen by polling `Store::file_stats`.
struct PublishSeen {
    /// When the rename was seen, from the first event.
    at: Duration,
    publishes: u64,
    size: u64,
    /// Bytes written to the session's trace files before this publish.
    written_before: u64,
}

/// Polls the session's file stats every 250 µs until `stop`, recording
/// each change (a rename of a 50 MB file takes far longer than that, so
/// no publish is missed).
fn watch_publishes(store: &Store, start: Instant, stop: &AtomicBool) -> Vec<PublishSeen> {
    let mut seen = Vec::new();
    let mut last = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        if let Some(stats) = store.file_stats(SESSION) {
            if stats.publishes != last.0 {
                seen.push(PublishSeen {
                    at: start.elapsed(),
                    publishes: stats.publishes,
                    size: stats.size,
                    written_before: last.1,
                });
            }
            last = (stats.publishes, stats.written);
        }
        std::thread::sleep(Duration::from_micros(250));
    }
    if let Some(stats) = store.file_stats(SESSION) {
        if stats.publishes != last.0 {
            seen.push(PublishSeen {
                at: start.elapsed(),
                publishes: stats.publishes,
                size: stats.size,
                written_before: last.1,
            });
        }
    }
    seen
}

impl StoreRun {
    fn ratio(&self) -> f64 {
        self.written as f64 / self.final_size as f64
    }

    fn rate(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64()
    }
}

/// What one run of the old writer measured.
struct OldRun {
    label: String,
    spans: usize,
    events: usize,
    elapsed: Duration,
    final_size: u64,
    written: u64,
}

/// One rendering measurement.
struct RenderRow {
    label: &'static str,
    bytes: u64,
    /// Sorted.
    times: Vec<Duration>,
}

impl RenderRow {
    fn median(&self) -> Duration {
        self.times[self.times.len() / 2]
    }
}

/// Runs configurations in fresh directories and reports progress.
struct Bench {
    scale: f64,
    root: PathBuf,
    full_spans: usize,
    baseline_spans: usize,
    started: usize,
    total: usize,
    /// `TRACEJOURNAL_BENCH_TIMELINE` set: record every publish of the
    /// section-1 runs and list them in the report.
    timeline: bool,
}

impl Bench {
    fn new(scale: f64) -> Bench {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
        let full_spans = ((FULL_SPANS as f64 * scale).round() as usize).max(2);
        Bench {
            scale,
            root,
            full_spans,
            baseline_spans: full_spans.min(BASELINE_MAX_SPANS),
            started: 0,
            total: 4 + 2 * 2 + 1,
            timeline: std::env::var_os("TRACEJOURNAL_BENCH_TIMELINE").is_some(),
        }
    }

    fn fresh_dir(&self) -> TempDir {
        tempfile::Builder::new()
            .prefix("bench-sessions-")
            .tempdir_in(&self.root)
            .expect("create a bench directory")
    }

    fn progress(&mut self, what: &str) {
        settle();
        self.started += 1;
        eprint!("[{:>2}/{}] {what} ... ", self.started, self.total);
    }

    /// Runs every section and returns the report.
    fn run_all(&mut self) -> String {
        let full = self.full_spans;
        let mut full_runs = Vec::new();
        let mut render_rows = Vec::new();
        for form in [Form::ToolCall, Form::Hooks] {
            for debounce in [DEBOUNCE_DEFAULT, DEBOUNCE_SHORT] {
                // Rendering is measured on the first full session, before
                // its store closes.
                let measure_render = form == Form::ToolCall && debounce == DEBOUNCE_DEFAULT;
                let run = self.store_run(full, form, debounce, |store| {
                    if measure_render {
                        render_rows = measure_rendering(store);
                    }
                });
                full_runs.push(run);
            }
        }

        let small = self.baseline_spans;
        let half = (small / 2).max(1);
        let mut pairs = Vec::new();
        for spans in [half, small] {
            let journal = self.store_run(spans, Form::ToolCall, DEBOUNCE_DEFAULT, |_| {});
            let old = self.old_run(spans, false);
            pairs.push((journal, old));
        }
        let old_fsync = self.old_run(small, true);
        self.render_report(&full_runs, &pairs, &old_fsync, &render_rows)
    }

    /// Feeds the session to a fresh store; `before_close` runs on the
    /// store once everything is measured.
    fn store_run(
        &mut self,
        spans: usize,
        form: Form,
        debounce: Duration,
        before_close: impl FnOnce(&Store),
    ) -> StoreRun {
        let label = format!(
            "tracejournal, {}, debounce {} ms",
            form.label(),
            debounce.as_millis()
        );
        self.progress(&format!("{label}, {spans} spans"));
        let dir = self.fresh_dir();
        let mut events = session_events(spans, form);
        let n = events.len();
        let end = events.pop().expect("an end event");
        let mut options = StoreOptions {
            debounce,
            ..StoreOptions::default()
        };
        options.journal.durability = Durability::Sync;
        // Opening zero-fills the first segment: before the clock starts.
        let (store, _report) = Store::open(dir.path(), options).expect("open store");

        let stop = AtomicBool::new(false);
        let mut stalls = Stalls::default();
        let start = Instant::now();
        let (timeline, ingest, end_to_current) = std::thread::scope(|scope| {
            let monitor = self
                .timeline
                .then(|| scope.spawn(|| watch_publishes(&store, start, &stop)));
            let mut previous = start;
            for event in events {
                store.ingest(event).expect("ingest");
                let now = Instant::now();
                stalls.note(now - previous, debounce);
                previous = now;
            }
            let end_sent = Instant::now();
            store.ingest(end).expect("ingest session_end");
            let ingest = start.elapsed();
            assert!(
                store.wait_published(SESSION, PUBLISH_TIMEOUT),
                "the ended session was not published within {PUBLISH_TIMEOUT:?}"
            );
            let end_to_current = end_sent.elapsed();
            stop.store(true, Ordering::Relaxed);
            let timeline = monitor.map(|m| m.join().expect("monitor thread"));
            (timeline, ingest, end_to_current)
        });
        store.flush().expect("flush");
        let wall = start.elapsed();

        let stats = store.file_stats(SESSION).expect("the session has a file");
        let path = store.trace_path(SESSION);
        let on_disk = std::fs::read(&path).expect("read the trace file");
        assert_eq!(
            Some(&on_disk),
            store.session(SESSION).as_ref(),
            "after flush the file must hold the live rendering"
        );
        let state = store.session_state(SESSION).expect("session state");
        assert_eq!(state.status, Status::Completed);
        assert_eq!(state.totals.tool_calls, spans as u64);
        assert_eq!(stats.size, on_disk.len() as u64);
        before_close(&store);
        store.close().expect("close store");

        let run = StoreRun {
            label,
            spans,
            events: n,
            ingest,
            wall,
            end_to_current,
            final_size: on_disk.len() as u64,
            written: stats.written,
            publishes: stats.publishes,
            superseded: stats.superseded,
            stalls,
            timeline,
        };
        eprintln!(
            "{:.2} s, {} events/s, written/final {:.2}x, {} publishes",
            run.wall.as_secs_f64(),
            group_digits(run.rate()),
            run.ratio(),
            run.publishes
        );
        run
    }

    /// The old writer on the `tool_call` form of a `spans`-span session.
    fn old_run(&mut self, spans: usize, fsync: bool) -> OldRun {
        let label = if fsync {
            "old writer: pretty JSON rewrite per event, write+fsync temp, rename, fsync dir"
        } else {
            "old writer: pretty JSON rewrite per event, write temp, rename (no fsync)"
        };
        self.progress(&format!("{label}, {spans} spans"));
        let dir = self.fresh_dir();
        let events = session_events(spans, Form::ToolCall);
        let n = events.len();
        let mut tool = OldTool::new(dir.path(), fsync);
        let start = Instant::now();
        for event in &events {
            tool.apply(event);
            tool.snapshot().expect("old writer snapshot");
        }
        let elapsed = start.elapsed();
        let final_size = std::fs::metadata(&tool.final_path)
            .expect("the old writer's file")
            .len();
        let file: Value =
            serde_json::from_slice(&std::fs::read(&tool.final_path).expect("read old file"))
                .expect("the old writer's file is JSON");
        assert_eq!(file["spans"].as_array().map(Vec::len), Some(spans + 1));
        let run = OldRun {
            label: label.into(),
            spans,
            events: n,
            elapsed,
            final_size,
            written: tool.written,
        };
        eprintln!(
            "{:.2} s, {:.1} MB written, written/final {:.1}x",
            run.elapsed.as_secs_f64(),
            run.written as f64 / MB,
            run.written as f64 / run.final_size as f64
        );
        run
    }

    fn render_report(
        &self,
        full_runs: &[StoreRun],
        pairs: &[(StoreRun, OldRun)],
        old_fsync: &OldRun,
        render_rows: &[RenderRow],
    ) -> String {
        let mut out = String::new();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let _ = writeln!(out, "# tracejournal sessions benchmark\n");
        let _ = writeln!(
            out,
            "Scale {} ({} of {} tool spans, {} characters of input and of output each); \
             {cpus} CPUs (nproc), CPU `{}`; files under `{}`.\n",
            self.scale,
            group_digits(self.full_spans as f64),
            group_digits(FULL_SPANS as f64),
            group_digits(TEXT_CHARS as f64),
            cpu_model(),
            self.root.display()
        );

        let _ = writeln!(
            out,
            "## 1. tracejournal, the full yardstick session ({} spans)\n",
            group_digits(self.full_spans as f64)
        );
        let _ = writeln!(
            out,
            "`Sync` durability, system clock, one thread ingesting event by event; \
             wall = first event until `flush` returned. Written = bytes written to the \
             session's trace files (temp files included) over its life.\n"
        );
        let _ = writeln!(
            out,
            "| Configuration | Events | Ingest (s) | Ingest+publish (s) | Events/s | \
             Final file (MB) | Written (MB) | Written/final | Aim <= {AIM_WRITE_RATIO}x | \
             Publishes | Superseded | session_end → file current (ms) | \
             Longest ingest stall (ms) | Stalls >= debounce |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"
        );
        for r in full_runs {
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} | {} | {:.1} | {:.1} | {:.2}x | {} | {} | {} | {:.0} | {:.0} | {} |",
                r.label,
                group_digits(r.events as f64),
                r.ingest.as_secs_f64(),
                r.wall.as_secs_f64(),
                group_digits(r.rate()),
                r.final_size as f64 / MB,
                r.written as f64 / MB,
                r.ratio(),
                verdict(r.ratio() <= AIM_WRITE_RATIO),
                r.publishes,
                r.superseded,
                r.end_to_current.as_secs_f64() * 1e3,
                r.stalls.longest.as_secs_f64() * 1e3,
                r.stalls.at_least_debounce,
            );
        }
        let _ = writeln!(out);
        for r in full_runs {
            if let Some(timeline) = &r.timeline {
                render_timeline(&mut out, r, timeline);
            }
        }

        let _ = writeln!(
            out,
            "## 2. The old writer against tracejournal, on the same scaled-down sessions\n"
        );
        let _ = writeln!(
            out,
            "Measured in full on sessions of {} and {} tool spans (`tool_call` events; the \
             old writer's cost is quadratic, so the full session is not run with it). \
             tracejournal: as in section 1, debounce {} ms, time = ingest+publish. Old writer: \
             after every event, `serde_json` pretty-printing of the whole trace, temp file, \
             rename; its events are not journaled at all.\n",
            pairs[0].0.spans,
            pairs[pairs.len() - 1].0.spans,
            DEBOUNCE_DEFAULT.as_millis()
        );
        let _ = writeln!(
            out,
            "| Approach | Spans | Events | Ingest (s) | Time (s) | Events/s | Final file (MB) | \
             Written (MB) | Written/final | Written vs tracejournal | Time vs tracejournal |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let last = &pairs[pairs.len() - 1].0;
        for (journal, old) in pairs {
            let _ = writeln!(
                out,
                "| tracejournal, {}, debounce {} ms | {} | {} | {:.2} | {:.2} | {} | {:.2} | {:.1} | {:.2}x | 1x | 1x |",
                Form::ToolCall.label(),
                DEBOUNCE_DEFAULT.as_millis(),
                journal.spans,
                group_digits(journal.events as f64),
                journal.ingest.as_secs_f64(),
                journal.wall.as_secs_f64(),
                group_digits(journal.rate()),
                journal.final_size as f64 / MB,
                journal.written as f64 / MB,
                journal.ratio(),
            );
            old_row(&mut out, old, journal);
        }
        old_row(&mut out, old_fsync, last);
        let _ = writeln!(out);
        if let [(j1, o1), (j2, o2)] = pairs {
            if j1.spans != j2.spans {
                let _ = writeln!(
                    out,
                    "Growth from {} to {} spans ({:.1}x the spans): old writer's bytes x{:.2}, \
                     time x{:.2}; tracejournal's bytes x{:.2}, time x{:.2}.\n",
                    j1.spans,
                    j2.spans,
                    j2.spans as f64 / j1.spans as f64,
                    o2.written as f64 / o1.written as f64,
                    o2.elapsed.as_secs_f64() / o1.elapsed.as_secs_f64(),
                    j2.written as f64 / j1.written as f64,
                    j2.wall.as_secs_f64() / j1.wall.as_secs_f64(),
                );
            }
        }

        let _ = writeln!(
            out,
            "## 3. Rendering the full session ({} spans, {:.1} MB)\n",
            group_digits(self.full_spans as f64),
            render_rows.first().map_or(0.0, |r| r.bytes as f64 / MB)
        );
        let _ = writeln!(
            out,
            "Median of {RENDER_RUNS} runs on the ended session of the first run of section 1.\n"
        );
        let _ = writeln!(
            out,
            "| Operation | File (MB) | Median (ms) | Min (ms) | Max (ms) | MB/s (median) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for r in render_rows {
            let median = r.median().as_secs_f64();
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
                r.label,
                r.bytes as f64 / MB,
                median * 1e3,
                r.times[0].as_secs_f64() * 1e3,
                r.times[r.times.len() - 1].as_secs_f64() * 1e3,
                r.bytes as f64 / MB / median,
            );
        }
        out
    }
}

/// The compactor compares the bytes written before a publish with twice an
/// estimate of the size, taken a moment before it renders; the estimate
/// runs about 1 % above the real size here, so a publish seen up to this
/// factor above 2x was within budget when decided.
const BUDGET_SLACK: f64 = 1.03;

/// The publishes of one run, each with the bytes written before it
/// against its size: the compactor's budget lets a paced publish happen
/// only while that is at most 2x (or while the file is below
/// `pace_min_bytes`); above it, only the final publish of an ended
/// session or a quiet-period follow-up.
fn render_timeline(out: &mut String, run: &StoreRun, timeline: &[PublishSeen]) {
    let _ = writeln!(out, "Publishes of \"{}\":\n", run.label);
    let _ = writeln!(
        out,
        "| # | Seen at (ms) | Size (MB) | Written before (MB) | Before/size | Path |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---|");
    for (i, p) in timeline.iter().enumerate() {
        let ratio = p.written_before as f64 / p.size as f64;
        let path = if i + 1 == timeline.len() {
            "final (ended session)"
        } else if p.size < StoreOptions::default().pace_min_bytes {
            "below pace_min_bytes: every debounce tick"
        } else if ratio <= BUDGET_SLACK * 2.0 {
            "within budget (before <= 2x estimate)"
        } else {
            "over budget: quiet-period follow-up"
        };
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.1} | {:.1} | {:.2} | {} |",
            p.publishes,
            p.at.as_secs_f64() * 1e3,
            p.size as f64 / MB,
            p.written_before as f64 / MB,
            ratio,
            path
        );
    }
    let _ = writeln!(out);
}

fn old_row(out: &mut String, old: &OldRun, journal: &StoreRun) {
    let _ = writeln!(
        out,
        "| {} | {} | {} | {:.2} | {:.2} | {} | {:.2} | {:.1} | {:.1}x | {:.1}x | {:.1}x |",
        old.label,
        old.spans,
        group_digits(old.events as f64),
        old.elapsed.as_secs_f64(),
        old.elapsed.as_secs_f64(),
        group_digits(old.events as f64 / old.elapsed.as_secs_f64()),
        old.final_size as f64 / MB,
        old.written as f64 / MB,
        old.written as f64 / old.final_size as f64,
        old.written as f64 / journal.written as f64,
        old.elapsed.as_secs_f64() / journal.wall.as_secs_f64(),
    );
}

/// Times `render::render` on the session's state, then one publish: one
/// small change (an attribute on the root) and `Store::flush`.
fn measure_rendering(store: &Store) -> Vec<RenderRow> {
    eprint!("(rendering) ");
    let state = store.session_state(SESSION).expect("session state");
    let mut render_times = Vec::with_capacity(RENDER_RUNS);
    let mut bytes = 0;
    for _ in 0..RENDER_RUNS {
        let start = Instant::now();
        let rendered = render::render(&state);
        render_times.push(start.elapsed());
        bytes = rendered.len() as u64;
        drop(rendered);
    }
    render_times.sort_unstable();

    let mut publish_times = Vec::with_capacity(RENDER_RUNS);
    let mut published = 0;
    for i in 0..RENDER_RUNS {
        let before = store.file_stats(SESSION).expect("stats").publishes;
        let change = Event {
            session: SESSION.into(),
            key: None,
            time: None,
            body: Body::Attributes {
                span: None,
                attributes: JsonText::canonical(&json!({ "bench.publish": i })),
            },
        };
        let start = Instant::now();
        store.ingest(change).expect("ingest a small change");
        store.flush().expect("flush");
        publish_times.push(start.elapsed());
        let stats = store.file_stats(SESSION).expect("stats");
        assert_eq!(
            stats.publishes,
            before + 1,
            "exactly one publish per change"
        );
        published = stats.size;
    }
    publish_times.sort_unstable();
    vec![
        RenderRow {
            label: "render::render(&Store::session_state(..))",
            bytes,
            times: render_times,
        },
        RenderRow {
            label: "publish once: ingest 1 small change + Store::flush (render, write, fsync, rename, fsync dir)",
            bytes: published,
            times: publish_times,
        },
    ]
}

/// The old tracer's file writer, reduced to what it did per event: keep
/// the trace in memory, and after every event serialize all of it
/// pretty-printed, write a temp file, rename it over the final name.
struct OldTool {
    trace: OldTrace,
    open: HashMap<String, usize>,
    final_path: PathBuf,
    tmp_path: PathBuf,
    dir: PathBuf,
    fsync: bool,
    written: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OldTrace {
    version: u32,
    trace_id: String,
    session_id: String,
    started_at: String,
    ended_at: String,
    metadata: OldMetadata,
    spans: Vec<OldSpan>,
    summary: OldSummary,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct OldMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OldSpan {
    span_id: String,
    parent_span_id: Option<String>,
    name: String,
    kind: &'static str,
    start_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<u64>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<OldToolInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OldToolInfo {
    call_id: String,
    duration_ms: u64,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct OldSummary {
    total_tokens: u64,
    total_cost: f64,
    total_tool_calls: u64,
    total_generations: u64,
    duration: u64,
    status: &'static str,
    tokens: OldTokens,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct OldTokens {
    input: u64,
    output: u64,
    reasoning: u64,
    cache_read: u64,
    cache_write: u64,
}

impl OldTool {
    fn new(dir: &Path, fsync: bool) -> OldTool {
        let now = now_ms();
        OldTool {
            trace: OldTrace {
                version: 2,
                trace_id: "0190f5e2-0000-7000-8000-000000000001".into(),
                session_id: SESSION.into(),
                started_at: render::iso8601(now),
                ended_at: render::iso8601(now),
                metadata: OldMetadata::default(),
                spans: vec![OldSpan {
                    span_id: "root".into(),
                    parent_span_id: None,
                    name: SESSION.into(),
                    kind: "session",
                    start_time: now,
                    end_time: None,
                    status: "ok",
                    tool: None,
                    input: None,
                    output: None,
                }],
                summary: OldSummary {
                    status: "running",
                    ..OldSummary::default()
                },
            },
            open: HashMap::new(),
            final_path: dir.join(format!("{SESSION}.json")),
            tmp_path: dir.join(format!("{SESSION}.json.tmp")),
            dir: dir.to_path_buf(),
            fsync,
            written: 0,
        }
    }

    fn apply(&mut self, event: &Event) {
        let now = event.time.unwrap_or_else(now_ms);
        match &event.body {
            Body::SessionStart { metadata, .. } => {
                self.trace.metadata.title = metadata.title.clone();
                self.trace.metadata.model = metadata.model.clone();
            }
            Body::ToolCall {
                call_id,
                tool,
                input,
                output,
                duration_ms,
                ..
            } => {
                let parse = |t: &Option<JsonText>| t.as_ref().map(|t| t.parse().expect("JSON"));
                let span = self.tool_span(call_id, tool, parse(input), now);
                span.end_time = Some(now);
                span.output = parse(output);
                span.tool.as_mut().expect("tool").duration_ms = duration_ms.unwrap_or(0);
            }
            Body::SessionEnd { .. } => self.end(now),
            Body::Hook { name, payload } => {
                let obj = payload.parse().expect("hook JSON");
                let call_id = obj["tool_use_id"].as_str().unwrap_or_default().to_string();
                match name.as_str() {
                    "SessionStart" => {
                        self.trace.metadata.model = obj["model"].as_str().map(str::to_string);
                    }
                    "PreToolUse" => {
                        let tool = obj["tool_name"].as_str().unwrap_or_default().to_string();
                        let input = obj.get("tool_input").cloned();
                        self.tool_span(&call_id, &tool, input, now);
                        self.open.insert(call_id, self.trace.spans.len() - 1);
                    }
                    "PostToolUse" => {
                        if let Some(i) = self.open.remove(&call_id) {
                            let span = &mut self.trace.spans[i];
                            span.end_time = Some(now);
                            span.output = obj.get("tool_response").cloned();
                            span.tool.as_mut().expect("tool").duration_ms =
                                obj["duration_ms"].as_u64().unwrap_or(0);
                        }
                    }
                    "SessionEnd" => self.end(now),
                    _ => {}
                }
            }
            _ => {}
        }
        self.trace.ended_at = render::iso8601(now);
    }

    fn tool_span(
        &mut self,
        call_id: &str,
        tool: &str,
        input: Option<Value>,
        now: u64,
    ) -> &mut OldSpan {
        self.trace.spans.push(OldSpan {
            span_id: call_id.to_string(),
            parent_span_id: Some("root".into()),
            name: tool.to_string(),
            kind: "tool",
            start_time: now,
            end_time: None,
            status: "ok",
            tool: Some(OldToolInfo {
                call_id: call_id.to_string(),
                duration_ms: 0,
            }),
            input,
            output: None,
        });
        self.trace.spans.last_mut().expect("just pushed")
    }

    fn end(&mut self, now: u64) {
        self.trace.spans[0].end_time = Some(now);
        self.trace.summary.status = "completed";
    }

    /// The old `snapshot()`: recompute the summary, serialize everything
    /// pretty-printed, temp file, rename.
    fn snapshot(&mut self) -> std::io::Result<()> {
        let t = &mut self.trace;
        t.summary.total_tool_calls = t.spans.iter().filter(|s| s.kind == "tool").count() as u64;
        let end = t.spans.iter().filter_map(|s| s.end_time).max().unwrap_or(0);
        t.summary.duration = end.saturating_sub(t.spans[0].start_time);
        let bytes = serde_json::to_vec_pretty(&self.trace)?;
        let mut file = File::create(&self.tmp_path)?;
        file.write_all(&bytes)?;
        if self.fsync {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path)?;
        if self.fsync {
            File::open(&self.dir)?.sync_all()?;
        }
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Flushes every file system's dirty pages before a configuration starts,
/// so that one configuration's write-back (the old writer leaves up to
/// gigabytes of it) does not slow the next one's fsyncs. Best effort.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

/// The CPU model from `/proc/cpuinfo` ("unknown" if not found).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

/// `x` rounded, with thousands separators: 1234567.8 -> "1,234,568".
fn group_digits(x: f64) -> String {
    let digits = (x.round() as u64).to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
