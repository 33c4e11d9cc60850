//! Append benchmark: what tracejournal's group commit buys over the disk
//! floor and over the naive "one `write` + `fdatasync` per event under a
//! mutex" design, measured in one run on one machine (absolute times drift
//! between runs and machines, so the ratios are what matter).
//!
//! Every event is a 300-byte payload. Configurations, each in a fresh
//! directory under Cargo's target tmp dir (never `/tmp`, which may be a
//! tmpfs where `fdatasync` is free):
//!
//! 1. Floor: one thread doing `write` + `fdatasync` (`File::sync_data`), on a
//!    preallocated zero-filled file (overwriting in place) and on a growing
//!    file (appending past EOF, so every sync also commits the new size).
//! 2. Baseline: N threads (1, 4, 16, 64), each event one `write` +
//!    `fdatasync` on a preallocated file under a `parking_lot::Mutex`.
//! 3. tracejournal `append_with` at `Sync` and at `Buffered`, N concurrent
//!    appenders each waiting for its own acknowledgement.
//! 4. tracejournal `Buffered` from one producer pipelining `submit_with`,
//!    with at most 10,000 outstanding tickets (waiting on the oldest when
//!    the window is full).
//!
//! Each configuration warms up, then runs for a fixed time; every thread
//! records the latency of each of its operations. The journal is opened
//! (which zero-fills its first 64 MiB segment) before the clock starts and
//! closed after it stops. The markdown table is printed on stdout and
//! written to `target/bench-append.md`; progress goes to stderr.
//!
//! Run: `cargo bench --bench append` (about 40 s), or for a quick run
//! `TRACEJOURNAL_BENCH_SCALE=0.1 cargo bench --bench append`. The scale
//! multiplies every warm-up and measuring time.

mod common;

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tracejournal::{Durability, Journal, Options, Record, Ticket};

const PAYLOAD_LEN: usize = 300;
const MAX_THREADS: usize = 64;
const THREAD_COUNTS: [usize; 4] = [1, 4, 16, MAX_THREADS];
const PIPELINE_WINDOW: usize = 10_000;
/// Size of the preallocated files of the floor and baseline (the size of a
/// default journal segment); writes wrap around to the start at the end.
const PREALLOC_LEN: u64 = 64 << 20;
const FLOOR_TIME: Duration = Duration::from_millis(1500);
const CONCURRENT_TIME: Duration = Duration::from_secs(2);
const PIPELINE_TIME: Duration = Duration::from_secs(3);
/// Warm-up time as a fraction of the measuring time.
const WARMUP_FRACTION: f64 = 0.125;
/// Number of configurations, for the progress line.
const CONFIGURATIONS: usize = 2 + 3 * THREAD_COUNTS.len() + 1;

const FLOOR_PREALLOCATED: &str = "raw write+fdatasync, preallocated file";
const FLOOR_GROWING: &str = "raw write+fdatasync, growing file";
const BASELINE: &str = "baseline: mutex + write+fdatasync";
const JOURNAL_SYNC: &str = "tracejournal append_with Sync";
const JOURNAL_BUFFERED: &str = "tracejournal append_with Buffered";
const JOURNAL_PIPELINE: &str = "tracejournal submit_with Buffered, 10,000-ticket window";

const AIM_SYNC_SPEEDUP: f64 = 25.0;
const AIM_SYNC_OVERHEAD: f64 = 1.2;
const AIM_PIPELINE_RATE: f64 = 1_000_000.0;

fn main() {
    let scale = common::scale_from_env();
    let mut bench = Bench::new(scale);
    let rows = bench.run_all();
    let report = render(&bench, &rows);
    print!("{report}");
    let out = common::target_dir().join("bench-append.md");
    std::fs::write(&out, &report).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    eprintln!("wrote {}", out.display());
}

/// How long one configuration warms up and measures.
#[derive(Clone, Copy)]
struct Plan {
    warmup: Duration,
    measure: Duration,
}

impl Plan {
    fn scaled(base: Duration, scale: f64) -> Plan {
        let measure = base.mul_f64(scale);
        Plan {
            warmup: measure.mul_f64(WARMUP_FRACTION),
            measure,
        }
    }
}

/// What one configuration measured.
struct Sample {
    events: u64,
    elapsed: Duration,
    /// Per-operation latencies in nanoseconds, sorted; empty if not recorded.
    latencies: Vec<u64>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile (0..=1) of the latencies, if any were recorded.
    fn percentile(&self, q: f64) -> Option<Duration> {
        common::percentile(&self.latencies, q)
    }
}

/// One line of the results table.
struct Row {
    label: String,
    threads: usize,
    sample: Sample,
}

/// Runs configurations in fresh directories and reports progress.
struct Bench {
    scale: f64,
    root: PathBuf,
    started: usize,
}

impl Bench {
    fn new(scale: f64) -> Bench {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
        Bench {
            scale,
            root,
            started: 0,
        }
    }

    fn plan(&self, base: Duration) -> Plan {
        Plan::scaled(base, self.scale)
    }

    fn fresh_dir(&self) -> TempDir {
        tempfile::Builder::new()
            .prefix("bench-append-")
            .tempdir_in(&self.root)
            .expect("create a bench directory")
    }

    /// Runs every configuration, in table order.
    fn run_all(&mut self) -> Vec<Row> {
        let mut rows = Vec::new();
        let floor = self.plan(FLOOR_TIME);
        rows.push(self.row(FLOOR_PREALLOCATED, 1, |b| {
            let dir = b.fresh_dir();
            let file = SyncedFile::preallocated(&dir.path().join("floor"));
            run_synced_file(file, 1, floor)
        }));
        rows.push(self.row(FLOOR_GROWING, 1, |b| {
            let dir = b.fresh_dir();
            let file = SyncedFile::growing(&dir.path().join("floor"));
            run_synced_file(file, 1, floor)
        }));
        let plan = self.plan(CONCURRENT_TIME);
        for threads in THREAD_COUNTS {
            rows.push(self.row(BASELINE, threads, |b| {
                let dir = b.fresh_dir();
                let file = SyncedFile::preallocated(&dir.path().join("baseline"));
                run_synced_file(file, threads, plan)
            }));
        }
        for (label, durability) in [
            (JOURNAL_SYNC, Durability::Sync),
            (JOURNAL_BUFFERED, Durability::Buffered),
        ] {
            for threads in THREAD_COUNTS {
                rows.push(self.row(label, threads, |b| {
                    run_appenders(&b.fresh_dir(), durability, threads, plan)
                }));
            }
        }
        let pipeline = self.plan(PIPELINE_TIME);
        rows.push(self.row(JOURNAL_PIPELINE, 1, |b| {
            run_pipeline(&b.fresh_dir(), pipeline)
        }));
        rows
    }

    /// Runs one configuration, with a progress line on stderr.
    fn row(&mut self, label: &str, threads: usize, run: impl FnOnce(&Bench) -> Sample) -> Row {
        self.started += 1;
        eprint!(
            "[{:>2}/{CONFIGURATIONS}] {label}, {threads} thread(s) ... ",
            self.started
        );
        let sample = run(self);
        eprintln!(
            "{} events/s, p50 {}",
            group_digits(sample.rate()),
            micros(sample.percentile(0.5))
        );
        Row {
            label: label.to_string(),
            threads,
            sample,
        }
    }
}

/// Runs `op(thread index)` from `threads` threads: each warms up, waits for
/// the others, then repeats `op` for the measuring time, timing each call.
fn run_threads(threads: usize, plan: Plan, op: impl Fn(usize) + Sync) -> Sample {
    let barrier = Barrier::new(threads);
    let runs: Vec<(Instant, Instant, Vec<u64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    repeat_for(plan.warmup, || op(t));
                    barrier.wait();
                    timed_loop(plan.measure, || op(t))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect()
    });
    let start = runs.iter().map(|r| r.0).min().expect("one thread");
    let end = runs.iter().map(|r| r.1).max().expect("one thread");
    let mut latencies: Vec<u64> = runs.into_iter().flat_map(|r| r.2).collect();
    latencies.sort_unstable();
    Sample {
        events: latencies.len() as u64,
        elapsed: end - start,
        latencies,
    }
}

/// Calls `op` until `time` has passed (at least once).
fn repeat_for(time: Duration, mut op: impl FnMut()) {
    let deadline = Instant::now() + time;
    loop {
        op();
        if Instant::now() >= deadline {
            return;
        }
    }
}

/// Calls `op` until `time` has passed (at least once); returns the start,
/// the end, and the latency of every call in nanoseconds.
fn timed_loop(time: Duration, mut op: impl FnMut()) -> (Instant, Instant, Vec<u64>) {
    let start = Instant::now();
    let deadline = start + time;
    let mut latencies = Vec::new();
    let mut now = start;
    loop {
        op();
        let done = Instant::now();
        latencies.push((done - now).as_nanos() as u64);
        now = done;
        if now >= deadline {
            return (start, now, latencies);
        }
    }
}

/// A distinct 300-byte payload per thread.
fn payload(thread: usize) -> Vec<u8> {
    vec![b'a' + (thread % 26) as u8; PAYLOAD_LEN]
}

/// A file written with one `write` + `fdatasync` per event.
struct SyncedFile {
    file: File,
    offset: u64,
    /// Where writes wrap around to offset 0 (preallocated); `None` appends
    /// past EOF forever (growing).
    wrap_at: Option<u64>,
}

impl SyncedFile {
    /// A file zero-filled to [`PREALLOC_LEN`] and synced, as the journal
    /// prepares its segments, so overwrites need no metadata update.
    fn preallocated(path: &Path) -> SyncedFile {
        let file = File::create_new(path).expect("create preallocated file");
        let zeros = vec![0u8; 1 << 20];
        for chunk in 0..PREALLOC_LEN / zeros.len() as u64 {
            file.write_all_at(&zeros, chunk * zeros.len() as u64)
                .expect("zero-fill");
        }
        file.sync_all().expect("sync preallocated file");
        SyncedFile {
            file,
            offset: 0,
            wrap_at: Some(PREALLOC_LEN),
        }
    }

    /// An empty file that every write extends.
    fn growing(path: &Path) -> SyncedFile {
        SyncedFile {
            file: File::create_new(path).expect("create growing file"),
            offset: 0,
            wrap_at: None,
        }
    }

    fn write_synced(&mut self, buf: &[u8]) {
        if self
            .wrap_at
            .is_some_and(|end| self.offset + buf.len() as u64 > end)
        {
            self.offset = 0;
        }
        self.file.write_all_at(buf, self.offset).expect("write");
        self.file.sync_data().expect("fdatasync");
        self.offset += buf.len() as u64;
    }
}

/// `threads` threads each writing and syncing its own events, one at a
/// time under a mutex.
fn run_synced_file(file: SyncedFile, threads: usize, plan: Plan) -> Sample {
    let payloads: Vec<Vec<u8>> = (0..threads).map(payload).collect();
    let file = Mutex::new(file);
    run_threads(threads, plan, |t| file.lock().write_synced(&payloads[t]))
}

/// Opens a journal with default options (the first open zero-fills the
/// first segment, so call this before the clock starts).
fn open_journal(dir: &TempDir) -> Journal {
    let (journal, _report) = Journal::open(dir.path(), Options::default()).expect("open journal");
    journal
}

/// `threads` appenders each calling `append_with` and waiting for its ack.
fn run_appenders(dir: &TempDir, durability: Durability, threads: usize, plan: Plan) -> Sample {
    let journal = open_journal(dir);
    let payloads: Vec<Vec<u8>> = (0..threads).map(payload).collect();
    let sample = run_threads(threads, plan, |t| {
        let record = Record::new(1, payloads[t].clone());
        journal.append_with(record, durability).expect("append");
    });
    journal.close().expect("close journal");
    sample
}

/// One producer pipelining `submit_with(.., Buffered)`, keeping at most
/// [`PIPELINE_WINDOW`] tickets outstanding. Counts an event once its ticket
/// resolved; the clock stops when the last one has.
fn run_pipeline(dir: &TempDir, plan: Plan) -> Sample {
    let journal = open_journal(dir);
    pipeline_for(&journal, plan.warmup);
    let start = Instant::now();
    let events = pipeline_for(&journal, plan.measure);
    let elapsed = start.elapsed();
    journal.close().expect("close journal");
    Sample {
        events,
        elapsed,
        latencies: Vec::new(),
    }
}

/// Submits for `time`, then waits for every ticket; returns the count.
fn pipeline_for(journal: &Journal, time: Duration) -> u64 {
    const CLOCK_EVERY: u64 = 256;
    let payload = payload(0);
    let mut window: VecDeque<Ticket> = VecDeque::with_capacity(PIPELINE_WINDOW);
    let deadline = Instant::now() + time;
    let mut events = 0u64;
    loop {
        if window.len() == PIPELINE_WINDOW {
            let oldest = window.pop_front().expect("full window");
            oldest.wait().expect("buffered append");
        }
        let record = Record::new(1, payload.clone());
        let ticket = journal
            .submit_with(record, Durability::Buffered)
            .expect("submit");
        window.push_back(ticket);
        events += 1;
        if events.is_multiple_of(CLOCK_EVERY) && Instant::now() >= deadline {
            break;
        }
    }
    for ticket in window {
        ticket.wait().expect("buffered append");
    }
    events
}

/// The markdown report: the results table, then the ratios against aims.
fn render(bench: &Bench, rows: &[Row]) -> String {
    let mut out = String::new();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(out, "# tracejournal append benchmark\n");
    let _ = writeln!(
        out,
        "{PAYLOAD_LEN}-byte events, scale {}, {cpus} CPUs, files under `{}`.\n",
        bench.scale,
        bench.root.display()
    );
    render_table(&mut out, rows);
    render_ratios(&mut out, rows);
    out
}

fn render_table(out: &mut String, rows: &[Row]) {
    let _ = writeln!(
        out,
        "| Configuration | Threads | Events | Events/s | p50 (µs) | p99 (µs) | p99.9 (µs) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let s = &row.sample;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            row.threads,
            group_digits(s.events as f64),
            group_digits(s.rate()),
            micros(s.percentile(0.5)),
            micros(s.percentile(0.99)),
            micros(s.percentile(0.999)),
        );
    }
    let _ = writeln!(out);
}

/// The sample of the row `label` at `threads` threads.
fn find<'a>(rows: &'a [Row], label: &str, threads: usize) -> &'a Sample {
    rows.iter()
        .find(|r| r.label == label && r.threads == threads)
        .map(|r| &r.sample)
        .unwrap_or_else(|| panic!("no row {label:?} at {threads} threads"))
}

/// The median latency of a sample, in seconds (NaN if none recorded).
fn p50_secs(sample: &Sample) -> f64 {
    sample.percentile(0.5).map_or(f64::NAN, |d| d.as_secs_f64())
}

fn render_ratios(out: &mut String, rows: &[Row]) {
    let floor = p50_secs(find(rows, FLOOR_PREALLOCATED, 1));
    let speedup =
        find(rows, JOURNAL_SYNC, MAX_THREADS).rate() / find(rows, BASELINE, MAX_THREADS).rate();
    let overhead = p50_secs(find(rows, JOURNAL_SYNC, 1)) / floor;
    let growing = p50_secs(find(rows, FLOOR_GROWING, 1)) / floor;
    let pipeline = find(rows, JOURNAL_PIPELINE, 1).rate();

    let _ = writeln!(out, "| Ratio | Value | Aim | Verdict |");
    let _ = writeln!(out, "|---|---:|---:|---|");
    let _ = writeln!(
        out,
        "| tracejournal Sync @{MAX_THREADS} / baseline @{MAX_THREADS}, events/s | {speedup:.1}x | >= {AIM_SYNC_SPEEDUP}x | {} |",
        verdict(speedup >= AIM_SYNC_SPEEDUP)
    );
    let _ = writeln!(
        out,
        "| tracejournal Sync @1 p50 / raw fdatasync p50 (preallocated) | {overhead:.2}x | <= {AIM_SYNC_OVERHEAD}x | {} |",
        verdict(overhead <= AIM_SYNC_OVERHEAD)
    );
    let _ = writeln!(
        out,
        "| tracejournal Buffered single producer, events/s | {} | >= {} | {} |",
        group_digits(pipeline),
        group_digits(AIM_PIPELINE_RATE),
        verdict(pipeline >= AIM_PIPELINE_RATE)
    );
    let _ = writeln!(
        out,
        "| raw fdatasync p50, growing / preallocated file | {growing:.2}x | (info) | |"
    );
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

/// A latency in microseconds with one decimal, or "-" if none.
fn micros(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e6))
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
