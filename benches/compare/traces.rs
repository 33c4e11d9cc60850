//! Section `traces`: what it costs to keep one very large session's trace
//! file current over its whole life: tracejournal against the seed-0
//! tracer, which rewrote the whole JSON file after every event.
//!
//! The workload is the seed-1 yardstick session: 5,000 tool spans (times the
//! scale, at least [`MIN_SPANS`]), each with 5,000 characters of input and
//! 5,000 of output, sent as Claude Code hooks: `SessionStart`, a
//! `PreToolUse` + `PostToolUse` pair per span (the `PostToolUse` repeats
//! `tool_input`, as Claude Code sends it), `SessionEnd`. Events are built
//! before any clock starts and fed from one thread, event by event.
//!
//! * tracejournal: a [`Store`] with default options (`Sync` durability: each
//!   ingest returns once its event is fsynced; debounce 200 ms); time from
//!   the first event until `flush` returned (every event durable, the file
//!   current); bytes = [`FileStats::written`](tracejournal::FileStats)
//!   (temp files included) over the session's life.
//! * The seed-0 tracer, measured: after every event, serialize the whole
//!   trace with `serde_json` pretty-printing (its `JSON.stringify(trace,
//!   null, 2)`), write it to a temp file and rename that over the final name,
//!   without fsync (as it did). Its cost grows with the square of the
//!   session, so it runs under a time budget (`TRACEJOURNAL_BENCH_REWRITE_SECS`,
//!   default 60 s times the scale, at least [`MIN_REWRITE_SECS`]): if the
//!   session does not finish within it, the measured prefix is reported,
//!   and the whole life is projected from it (see [`Projection`]).

use crate::common;
use crate::report::{self, Config, Progress, Section};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracejournal::event::{hook_event, Event};
use tracejournal::testkit::rng::SplitMix64;
use tracejournal::{Store, StoreOptions};

/// Tool spans of the yardstick session at scale 1.
const FULL_SPANS: u64 = 5_000;
/// Fewest spans, whatever the scale (so the file is not trivially small).
const MIN_SPANS: u64 = 50;
/// Characters of each span's input and of its output.
const TEXT_CHARS: usize = 5_000;
/// The session's id.
const SESSION: &str = "yardstick-seed-1";
/// The aim: bytes written to the trace file over its life, at most this
/// times its final size.
const AIM_WRITE_RATIO: f64 = 4.0;
/// The rewrite's time budget at scale 1, in seconds.
const REWRITE_SECS: f64 = 60.0;
/// The rewrite's smallest budget, in seconds.
const MIN_REWRITE_SECS: f64 = 5.0;

/// Runs the section.
pub fn run(config: &Config, progress: &Progress) -> Vec<Section> {
    let spans = config.count(FULL_SPANS, MIN_SPANS) as usize;
    progress.step(&format!("building the {spans}-span yardstick session"));
    let payloads = session_payloads(spans);
    let journal = store_run(config, progress, &payloads, spans);
    sync_all();
    let rewrite = rewrite_run(config, progress, &payloads, spans);
    sync_all();
    vec![section(&journal, &rewrite)]
}

/// The yardstick session as hook payloads, in order.
fn session_payloads(spans: usize) -> Vec<Value> {
    let mut rng = SplitMix64::new(common::TEXT_SEED);
    let mut out = Vec::with_capacity(2 * spans + 2);
    out.push(json!({
        "session_id": SESSION, "hook_event_name": "SessionStart", "source": "startup",
        "model": "claude-sonnet-4-5", "cwd": "/work",
    }));
    for i in 0..spans {
        let id = format!("toolu_{i:06}");
        let input = json!({ "command": common::code_text(&mut rng, TEXT_CHARS) });
        let output = Value::String(common::code_text(&mut rng, TEXT_CHARS));
        out.push(json!({
            "session_id": SESSION, "hook_event_name": "PreToolUse", "tool_name": "Bash",
            "tool_use_id": id, "tool_input": input, "cwd": "/work",
        }));
        out.push(json!({
            "session_id": SESSION, "hook_event_name": "PostToolUse", "tool_name": "Bash",
            "tool_use_id": id, "tool_input": input, "tool_response": output,
            "duration_ms": 5, "cwd": "/work",
        }));
    }
    out.push(json!({ "session_id": SESSION, "hook_event_name": "SessionEnd", "reason": "other" }));
    out
}

/// What one approach measured.
struct Life {
    label: String,
    spans: usize,
    /// Events sent (all of them, or the measured prefix).
    events: usize,
    /// Events the session has.
    total_events: usize,
    /// The trace file's size at the end of what was run.
    final_size: u64,
    written: u64,
    time: Duration,
    /// How the figures came about.
    how: String,
}

impl Life {
    fn cells(&self) -> Vec<String> {
        vec![
            self.label.clone(),
            report::thousands(self.spans as u64),
            format!(
                "{} of {}",
                report::thousands(self.events as u64),
                report::thousands(self.total_events as u64)
            ),
            report::mb(self.final_size),
            report::mb(self.written),
            format!("{:.2}x", self.ratio()),
            format!("{:.2}", self.time.as_secs_f64()),
            self.how.clone(),
        ]
    }

    fn ratio(&self) -> f64 {
        self.written as f64 / self.final_size as f64
    }
}

/// tracejournal: a fresh store with default options; events ingested one by
/// one, then `flush`.
fn store_run(config: &Config, progress: &Progress, payloads: &[Value], spans: usize) -> Life {
    progress.step("tracejournal: ingest + keep the file current");
    let events: Vec<Event> = payloads
        .iter()
        .map(|p| hook_event(&p.to_string()).expect("a hook payload"))
        .collect();
    let n = events.len();
    let dir = config.temp_dir();
    // Opening zero-fills the first segment: before the clock starts.
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).expect("open the store");
    let start = Instant::now();
    for event in events {
        store.ingest(event).expect("ingest");
    }
    store.flush().expect("flush");
    let time = start.elapsed();
    let stats = store.file_stats(SESSION).expect("the session's file stats");
    let on_disk = std::fs::read(store.trace_path(SESSION)).expect("read the trace file");
    assert_eq!(
        Some(&on_disk),
        store.session(SESSION).as_ref(),
        "the file is current"
    );
    store.close().expect("close");
    progress.step(&format!(
        "tracejournal: {:.2} s, written/final {:.2}x, {} publishes",
        time.as_secs_f64(),
        stats.written as f64 / on_disk.len() as f64,
        stats.publishes
    ));
    Life {
        label: "tracejournal `Store` (Sync, debounce 200 ms)".into(),
        spans,
        events: n,
        total_events: n,
        final_size: on_disk.len() as u64,
        written: stats.written,
        time,
        how: format!("measured ({} publishes)", stats.publishes),
    }
}

/// The seed-0 tracer's file writer, reduced to what it did per event: keep
/// the trace in memory; after every event serialize all of it
/// pretty-printed, write a temp file, rename it over the final name.
struct Rewriter {
    trace: Value,
    open: HashMap<String, usize>,
    tmp: PathBuf,
    path: PathBuf,
}

impl Rewriter {
    fn new(dir: &Path) -> Rewriter {
        let now = now_ms();
        Rewriter {
            trace: json!({
                "version": 2,
                "traceId": "0190f5e2-0000-7000-8000-000000000001",
                "sessionId": SESSION,
                "startedAt": tracejournal::trace::iso8601(now),
                "endedAt": tracejournal::trace::iso8601(now),
                "metadata": {},
                "spans": [{ "spanId": "root", "parentSpanId": null, "name": SESSION,
                            "kind": "session", "startTime": now, "status": "ok" }],
                "summary": { "totalToolCalls": 0, "duration": 0, "status": "running" },
            }),
            open: HashMap::new(),
            tmp: dir.join(format!("{SESSION}.json.tmp")),
            path: dir.join(format!("{SESSION}.json")),
        }
    }

    /// Applies one hook payload to the in-memory trace.
    fn apply(&mut self, hook: &Value) {
        let now = now_ms();
        let id = hook["tool_use_id"].as_str().unwrap_or_default().to_string();
        match hook["hook_event_name"].as_str().unwrap_or_default() {
            "SessionStart" => self.trace["metadata"]["model"] = hook["model"].clone(),
            "PreToolUse" => self.open_span(id, hook, now),
            "PostToolUse" => self.close_span(&id, hook, now),
            "SessionEnd" => {
                self.trace["spans"][0]["endTime"] = json!(now);
                self.trace["summary"]["status"] = json!("completed");
            }
            _ => {}
        }
        self.trace["endedAt"] = json!(tracejournal::trace::iso8601(now));
    }

    fn open_span(&mut self, id: String, hook: &Value, now: u64) {
        let spans = self.trace["spans"].as_array_mut().expect("spans");
        spans.push(json!({
            "spanId": id, "parentSpanId": "root", "name": hook["tool_name"], "kind": "tool",
            "startTime": now, "status": "ok", "tool": { "callId": id, "durationMs": 0 },
            "input": hook["tool_input"],
        }));
        self.open.insert(id, spans.len() - 1);
    }

    fn close_span(&mut self, id: &str, hook: &Value, now: u64) {
        if let Some(i) = self.open.remove(id) {
            let span = &mut self.trace["spans"][i];
            span["endTime"] = json!(now);
            span["output"] = hook["tool_response"].clone();
            span["tool"]["durationMs"] = hook["duration_ms"].clone();
        }
    }

    /// The seed tracer's `snapshot()`: recompute the summary, serialize
    /// everything pretty-printed. Returns the file's bytes.
    fn serialize(&mut self) -> Vec<u8> {
        let spans = self.trace["spans"].as_array().expect("spans");
        let tools = spans.iter().filter(|s| s["kind"] == "tool").count();
        let start = spans[0]["startTime"].as_u64().unwrap_or(0);
        let end = spans
            .iter()
            .filter_map(|s| s["endTime"].as_u64())
            .max()
            .unwrap_or(start);
        self.trace["summary"]["totalToolCalls"] = json!(tools);
        self.trace["summary"]["duration"] = json!(end.saturating_sub(start));
        serde_json::to_vec_pretty(&self.trace).expect("serialize the trace")
    }

    /// Writes the temp file and renames it over the final name (no fsync,
    /// as the seed tracer). Returns the bytes written.
    fn write(&self, bytes: &[u8]) -> u64 {
        let mut file = std::fs::File::create(&self.tmp).expect("create the temp file");
        file.write_all(bytes).expect("write the temp file");
        drop(file);
        std::fs::rename(&self.tmp, &self.path).expect("rename over the trace file");
        bytes.len() as u64
    }
}

/// Cumulative figures after each event of the rewrite.
#[derive(Clone, Copy, Default)]
struct Mark {
    written: u64,
    elapsed: Duration,
}

/// The rewrite, event by event, until done or out of budget.
fn rewrite_run(config: &Config, progress: &Progress, payloads: &[Value], spans: usize) -> Rewrite {
    let budget = rewrite_budget(config);
    progress.step(&format!(
        "seed-0 rewrite per event (budget {:.0} s)",
        budget.as_secs_f64()
    ));
    let dir = config.temp_dir();
    let mut rewriter = Rewriter::new(dir.path());
    let mut marks = Vec::with_capacity(payloads.len());
    let mut mark = Mark::default();
    let mut last_size = 0;
    let start = Instant::now();
    for hook in payloads {
        rewriter.apply(hook);
        let bytes = rewriter.serialize();
        last_size = rewriter.write(&bytes);
        mark = Mark {
            written: mark.written + last_size,
            elapsed: start.elapsed(),
        };
        marks.push(mark);
        if mark.elapsed >= budget {
            break;
        }
    }
    let done = marks.len();
    progress.step(&format!(
        "seed-0 rewrite: {done} of {} events in {:.2} s, {} MB written",
        payloads.len(),
        mark.elapsed.as_secs_f64(),
        report::mb(mark.written)
    ));
    let measured = Life {
        label: "seed-0 tracer: whole pretty JSON rewritten per event (no fsync)".into(),
        spans,
        events: done,
        total_events: payloads.len(),
        final_size: last_size,
        written: mark.written,
        time: mark.elapsed,
        how: "measured".into(),
    };
    if done == payloads.len() {
        return Rewrite {
            measured,
            projected: None,
        };
    }
    let projected = project(&measured, &marks, rewriter, &payloads[done..]);
    Rewrite {
        measured: Life {
            how: "measured prefix (out of budget); file = the last one written".into(),
            ..measured
        },
        projected: Some(projected),
    }
}

/// The rewrite's figures: measured (the whole life, or the prefix that fit
/// the budget) and, for a prefix, the projection of the whole life.
struct Rewrite {
    measured: Life,
    projected: Option<(Life, String)>,
}

/// `TRACEJOURNAL_BENCH_REWRITE_SECS` if set (any positive number), else 60 s
/// times the scale but at least [`MIN_REWRITE_SECS`].
fn rewrite_budget(config: &Config) -> Duration {
    let secs = match std::env::var("TRACEJOURNAL_BENCH_REWRITE_SECS") {
        Ok(s) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => v,
            _ => panic!("TRACEJOURNAL_BENCH_REWRITE_SECS must be a positive number, got {s:?}"),
        },
        Err(_) => (REWRITE_SECS * config.scale).max(MIN_REWRITE_SECS),
    };
    Duration::from_secs_f64(secs)
}

/// Projects a rewrite that ran out of budget over the session's whole
/// life. Returns the row and the method, in words: the remaining events are
/// applied to the trace without writing and the final file is serialized
/// once (its size measured); the files between are taken to grow linearly
/// from the last one written to that final one (every span adds the same
/// bytes); writing them is taken to go at the bytes per second of the
/// measured prefix's second half (where its files were largest).
fn project(
    measured: &Life,
    marks: &[Mark],
    mut rewriter: Rewriter,
    rest: &[Value],
) -> (Life, String) {
    for hook in rest {
        rewriter.apply(hook);
    }
    let final_size = rewriter.serialize().len() as u64;
    let remaining = rest.len() as u64;
    let last = measured.final_size;
    let rest_bytes = remaining * last + final_size.saturating_sub(last) * (remaining + 1) / 2;
    let half = marks[marks.len() / 2];
    let end = marks[marks.len() - 1];
    let rate =
        (end.written - half.written) as f64 / (end.elapsed - half.elapsed).as_secs_f64().max(1e-9);
    let row = Life {
        label: "seed-0 tracer, whole life: **projected from the measured prefix**".into(),
        events: measured.total_events,
        final_size,
        written: end.written + rest_bytes,
        time: end.elapsed + Duration::from_secs_f64(rest_bytes as f64 / rate),
        how: "projected (method below)".into(),
        ..*measured
    };
    let method = format!(
        "Projection of the seed-0 tracer's whole life from its measured prefix ({} of {} events \
         in {:.1} s): the remaining events applied without writing and the final file serialized \
         once ({} MB, measured); the {} files between taken to grow linearly from the last one \
         written ({} MB) to that final one; their writing taken at the rate of the prefix's \
         second half ({:.0} MB/s). A projection, not a measurement.",
        report::thousands(measured.events as u64),
        report::thousands(measured.total_events as u64),
        end.elapsed.as_secs_f64(),
        report::mb(final_size),
        report::thousands(remaining),
        report::mb(last),
        rate / 1e6
    );
    (row, method)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Flushes every file system (outside the clocks), so one run's write-back
/// does not slow the next one's fsyncs.
fn sync_all() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
}

fn section(journal: &Life, rewrite: &Rewrite) -> Section {
    let ratio = journal.ratio();
    let mut notes = vec![format!(
        "Aim: tracejournal writes at most {AIM_WRITE_RATIO}x the final size: {:.2}x, {} of the \
         aim ({}).",
        ratio,
        report::ratio(ratio, AIM_WRITE_RATIO),
        report::verdict(ratio <= AIM_WRITE_RATIO)
    )];
    let whole = match &rewrite.projected {
        None => &rewrite.measured,
        Some((row, method)) => {
            notes.push(method.clone());
            row
        }
    };
    notes.push(format!(
        "Over the whole life the rewrite writes {} the bytes tracejournal writes, in {} its \
         time{}.",
        report::ratio(whole.written as f64, journal.written as f64),
        report::ratio(whole.time.as_secs_f64(), journal.time.as_secs_f64()),
        if rewrite.projected.is_some() {
            " (projected)"
        } else {
            " (measured)"
        }
    ));
    let mut rows = vec![journal.cells(), rewrite.measured.cells()];
    rows.extend(rewrite.projected.iter().map(|(row, _)| row.cells()));
    Section {
        title: "Trace files: the seed-1 yardstick session kept current".into(),
        intro: format!(
            "One session of {} tool spans ({} characters of input and of output each) sent as \
             Claude Code hooks, `PreToolUse` + `PostToolUse` per span, from one thread. \
             tracejournal: default `Store` options, every event fsynced in the log before its \
             ingest returns, each publish fsynced; time = first event until `flush` returned. \
             Seed-0 tracer: after every event the whole trace serialized with `serde_json` \
             pretty-printing, written to a temp file and renamed over the final name, no fsync \
             and no log (as it did); run under a time budget. Write amplification = bytes \
             written / final file size.",
            report::thousands(journal.spans as u64),
            report::thousands(TEXT_CHARS as u64)
        ),
        header: [
            "approach",
            "spans:",
            "events:",
            "final file (MB):",
            "bytes written (MB):",
            "write amplification:",
            "time (s):",
            "figures",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows,
        notes,
    }
}
