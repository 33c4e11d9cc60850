//! Section `many`: many concurrent sessions in one store: memory use and
//! how fast their trace files are published.
//!
//! The workload: 1,000 sessions (times the scale, at least
//! [`MIN_SESSIONS`]) of [`EVENTS`] hook payloads each, copies of the example
//! Claude Code session (`SessionStart`, its middle events repeated with
//! fresh `tool_use_id`s and subagent ids, `SessionEnd`), every copy its own
//! session id. Events are built before the clock starts and kept (each
//! ingest takes a clone), so memory measured after the run is the store's
//! growth, not the events'.
//!
//! [`THREADS`] threads ingest durably (`Sync`: each call returns once its
//! event is fsynced; concurrent calls share an fsync), each owning every
//! `THREADS`-th session and interleaving its sessions event by event, so all
//! sessions are open at once. The store has default options (debounce
//! 200 ms: the compactor publishes while events arrive). Phases, each timed:
//!
//! 1. ingest every event but the last of each session;
//! 2. `flush`: every trace file current;
//! 3. ingest every session's `SessionEnd` (an ended session is published at
//!    once);
//! 4. `flush`: every file in its final form.
//!
//! Per phase: events/s, files published (renames, from
//! [`Store::file_stats`]) and trace bytes written, per second; RSS after.

use crate::report::{self, Config, Progress, Section};
use std::time::{Duration, Instant};
use tracejournal::event::{parse_line, Event};
use tracejournal::model::Status;
use tracejournal::{Store, StoreOptions};

/// Sessions at scale 1.
const SESSIONS: u64 = 1_000;
/// Fewest sessions, whatever the scale.
const MIN_SESSIONS: u64 = 20;
/// Events per session, `SessionStart` and `SessionEnd` included.
const EVENTS: usize = 100;
/// Ingesting threads.
const THREADS: usize = 16;

/// Runs the section.
pub fn run(config: &Config, progress: &Progress) -> Vec<Section> {
    let n = config.count(SESSIONS, MIN_SESSIONS) as usize;
    progress.step(&format!("building {n} sessions of {EVENTS} events"));
    let sessions = build_sessions(n);
    let dir = config.temp_dir();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).expect("open the store");
    let rss_before = trimmed_rss();
    let rows: Vec<Row> = [
        Phase::Body,
        Phase::Flush("every file current"),
        Phase::End,
        Phase::Flush("every file final"),
    ]
    .into_iter()
    .map(|p| phase(&store, &sessions, progress, p))
    .collect();
    let totals = Totals::measure(&store, &sessions);
    store.close().expect("close the store");
    vec![section(n, &rows, &totals, rss_before)]
}

/// Every session's events, parsed, in order.
fn build_sessions(n: usize) -> Vec<Vec<Event>> {
    (0..n as u64)
        .map(|copy| {
            report::example_session(copy, EVENTS)
                .iter()
                .map(|line| parse_line(line).expect("an example hook payload"))
                .collect()
        })
        .collect()
}

/// What a phase does.
#[derive(Clone, Copy)]
enum Phase {
    /// Ingest every event but the last of each session.
    Body,
    /// Ingest each session's last event (`SessionEnd`).
    End,
    /// `Store::flush`, for the reason given.
    Flush(&'static str),
}

impl Phase {
    fn label(self) -> String {
        match self {
            Phase::Body => format!(
                "ingest {} events per session ({THREADS} threads, durable)",
                EVENTS - 1
            ),
            Phase::End => format!("ingest `SessionEnd` of every session ({THREADS} threads)"),
            Phase::Flush(why) => format!("`flush`: {why}"),
        }
    }

    /// The event indexes of each session this phase ingests.
    fn range(self) -> std::ops::Range<usize> {
        match self {
            Phase::Body => 0..EVENTS - 1,
            Phase::End => EVENTS - 1..EVENTS,
            Phase::Flush(_) => 0..0,
        }
    }
}

/// What one phase measured.
struct Row {
    phase: Phase,
    events: u64,
    time: Duration,
    publishes: u64,
    bytes: u64,
    rss: Option<u64>,
}

impl Row {
    fn cells(&self) -> Vec<String> {
        let secs = self.time.as_secs_f64();
        let per_s = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        vec![
            self.phase.label(),
            report::thousands(self.events),
            format!("{:.3}", secs),
            if self.events > 0 {
                report::thousands(per_s(self.events as f64) as u64)
            } else {
                "-".into()
            },
            report::thousands(self.publishes),
            report::thousands(per_s(self.publishes as f64) as u64),
            report::mb(self.bytes),
            format!("{:.1}", per_s(self.bytes as f64) / 1e6),
            self.rss.map_or("-".into(), report::mb),
        ]
    }
}

/// Runs one phase and measures it.
fn phase(store: &Store, sessions: &[Vec<Event>], progress: &Progress, phase: Phase) -> Row {
    let publishes = total_publishes(store, sessions);
    let bytes = store.trace_bytes_written();
    let start = Instant::now();
    let events = match phase {
        Phase::Flush(_) => {
            store.flush().expect("flush");
            0
        }
        _ => ingest(store, sessions, phase.range()),
    };
    let time = start.elapsed();
    let row = Row {
        phase,
        events,
        time,
        publishes: total_publishes(store, sessions) - publishes,
        bytes: store.trace_bytes_written() - bytes,
        rss: trimmed_rss(),
    };
    progress.step(&format!("{}: {:.3} s", phase.label(), time.as_secs_f64()));
    row
}

/// Ingests events `range` of every session from [`THREADS`] threads, each
/// owning every `THREADS`-th session and going through its sessions event
/// by event. Returns the events ingested.
fn ingest(store: &Store, sessions: &[Vec<Event>], range: std::ops::Range<usize>) -> u64 {
    let threads = THREADS.min(sessions.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = range.clone();
                scope.spawn(move || {
                    let mine: Vec<&Vec<Event>> = sessions.iter().skip(t).step_by(threads).collect();
                    let mut n = 0u64;
                    for k in range {
                        for events in &mine {
                            store.ingest(events[k].clone()).expect("ingest");
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an ingest thread"))
            .sum()
    })
}

/// RSS after returning freed heap memory to the kernel (`malloc_trim`), so
/// memory an earlier section freed but the allocator kept does not hide
/// this one's growth.
fn trimmed_rss() -> Option<u64> {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    report::rss_bytes()
}

/// Renames done so far for all the sessions' files.
fn total_publishes(store: &Store, sessions: &[Vec<Event>]) -> u64 {
    sessions
        .iter()
        .filter_map(|events| store.file_stats(&events[0].session))
        .map(|stats| stats.publishes)
        .sum()
}

/// Figures over the whole run, taken after the last flush.
struct Totals {
    /// Sum of the trace files' final sizes.
    final_bytes: u64,
    /// Trace bytes written since open (temp files included).
    written: u64,
    publishes: u64,
    /// Sessions whose file exists and holds their live rendering, ended.
    final_files: usize,
}

impl Totals {
    fn measure(store: &Store, sessions: &[Vec<Event>]) -> Totals {
        let mut final_bytes = 0;
        let mut final_files = 0;
        for events in sessions {
            let id = &events[0].session;
            let on_disk = std::fs::read(store.trace_path(id)).unwrap_or_default();
            let ended = store
                .session_state(id)
                .is_some_and(|s| s.status == Status::Completed);
            if ended && Some(&on_disk) == store.session(id).as_ref() {
                final_files += 1;
            }
            final_bytes += on_disk.len() as u64;
        }
        Totals {
            final_bytes,
            written: store.trace_bytes_written(),
            publishes: total_publishes(store, sessions),
            final_files,
        }
    }
}

fn section(n: usize, rows: &[Row], totals: &Totals, rss_before: Option<u64>) -> Section {
    let rss_after = rows.last().and_then(|r| r.rss);
    let per_session = match (rss_before, rss_after) {
        (Some(b), Some(a)) => format!(
            "{} KB per session",
            report::thousands(a.saturating_sub(b) / n as u64 / 1000)
        ),
        _ => "unknown".into(),
    };
    let notes = vec![
        format!(
            "Memory: RSS (whole process, after `malloc_trim`) {} MB before the first event \
             (store open, events built and kept), {} MB after the last flush: {per_session}.",
            rss_before.map_or("-".into(), report::mb),
            rss_after.map_or("-".into(), report::mb),
        ),
        format!(
            "Trace files: {} of {n} sessions ended with a file holding their final rendering; \
             {} publishes in all; {} MB written to trace files (temp files included) for {} MB \
             of final files: {:.2}x.",
            report::thousands(totals.final_files as u64),
            report::thousands(totals.publishes),
            report::mb(totals.written),
            report::mb(totals.final_bytes),
            totals.written as f64 / totals.final_bytes.max(1) as f64
        ),
    ];
    Section {
        title: format!(
            "Many sessions: {} concurrent sessions of {EVENTS} events",
            report::thousands(n as u64)
        ),
        intro: format!(
            "{} copies of the example session, {EVENTS} hook payloads each, ingested durably \
             (`Sync`, group commit) by {THREADS} threads interleaving their sessions event by \
             event, so all are open at once; default `Store` options (debounce 200 ms, the \
             compactor publishes while events arrive). Files published = renames of trace \
             files during the phase; MB = trace bytes written during the phase.",
            report::thousands(n as u64)
        ),
        header: [
            "phase",
            "events:",
            "time (s):",
            "events/s:",
            "files published:",
            "files/s:",
            "MB published:",
            "MB/s:",
            "RSS after (MB):",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: rows.iter().map(Row::cells).collect(),
        notes,
    }
}
