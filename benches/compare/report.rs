//! Run configuration, progress display, measurement helpers shared by the
//! sections, and the markdown report.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the whole run is sized by.
pub struct Config {
    /// `TRACEJOURNAL_BENCH_SCALE`: multiplies measuring times and sizes.
    pub scale: f64,
    /// Where the benchmarks make their directories: under Cargo's target
    /// dir, never `/tmp` (which may be a tmpfs where `fdatasync` is free).
    pub work_dir: PathBuf,
    started: Instant,
}

impl Config {
    /// Reads `TRACEJOURNAL_BENCH_SCALE` (default 1.0).
    pub fn from_env() -> Config {
        let scale = crate::common::scale_from_env();
        let work_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(&work_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", work_dir.display()));
        Config {
            scale,
            work_dir,
            started: Instant::now(),
        }
    }

    /// `base` scaled, at least `min`.
    pub fn duration(&self, base: Duration, min: Duration) -> Duration {
        base.mul_f64(self.scale).max(min)
    }

    /// `base` scaled, at least `min`.
    pub fn count(&self, base: u64, min: u64) -> u64 {
        ((base as f64 * self.scale).round() as u64).max(min)
    }

    /// A fresh directory under the work dir.
    pub fn temp_dir(&self) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("compare-")
            .tempdir_in(&self.work_dir)
            .unwrap_or_else(|e| panic!("temp dir in {}: {e}", self.work_dir.display()))
    }

    /// Where the report is written.
    pub fn out_path(&self) -> PathBuf {
        match std::env::var_os("TRACEJOURNAL_BENCH_OUT") {
            Some(p) => PathBuf::from(p),
            None => target_dir().join("bench-compare.md"),
        }
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Cargo's target directory (the parent of the target tmp dir).
pub fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// One table of the report.
pub struct Section {
    /// Markdown heading (without `#`).
    pub title: String,
    /// Text above the table: what was measured and how.
    pub intro: String,
    /// Column names; a name ending in `:` is right-aligned (numbers).
    pub header: Vec<String>,
    /// Cells, already formatted.
    pub rows: Vec<Vec<String>>,
    /// Text below the table: ratios against the aims, findings.
    pub notes: Vec<String>,
}

/// Progress on stderr: one line per step, with the time since the start.
pub struct Progress {
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Starts the clock.
    pub fn new() -> Progress {
        Progress {
            started: Instant::now(),
        }
    }

    /// A new section begins.
    pub fn stage(&self, name: &str) {
        self.line(&format!("== {name}"));
    }

    /// One step (a configuration about to run, or a result).
    pub fn step(&self, what: &str) {
        self.line(&format!("   {what}"));
    }

    fn line(&self, text: &str) {
        let t = self.started.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[{t:7.1}s] {text}");
    }
}

/// Latencies in nanoseconds; `percentile` sorts on first use.
#[derive(Default)]
pub struct Latencies {
    ns: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    /// Records one latency.
    pub fn push(&mut self, d: Duration) {
        self.ns.push(d.as_nanos().min(u64::MAX as u128) as u64);
        self.sorted = false;
    }

    /// Adds every latency of `other`.
    pub fn extend(&mut self, other: Latencies) {
        self.ns.extend(other.ns);
        self.sorted = false;
    }

    /// How many were recorded.
    pub fn len(&self) -> usize {
        self.ns.len()
    }

    /// The `q` quantile (0..=1), nearest rank; None if empty.
    pub fn percentile(&mut self, q: f64) -> Option<Duration> {
        if self.ns.is_empty() {
            return None;
        }
        if !self.sorted {
            self.ns.sort_unstable();
            self.sorted = true;
        }
        crate::common::percentile(&self.ns, q)
    }
}

/// This process's CPU time (user + system) and bytes it caused to be
/// written to storage (`/proc/self/io` `write_bytes`), for per-event
/// deltas.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User + system CPU time of the whole process.
    pub cpu: Duration,
    /// Bytes this process caused to be sent to the storage layer.
    pub write_bytes: u64,
}

impl Usage {
    /// Reads the current figures (zeros where the kernel does not say).
    pub fn now() -> Usage {
        Usage {
            cpu: process_cpu(),
            write_bytes: proc_io_field("write_bytes").unwrap_or(0),
        }
    }

    /// `self - earlier`, saturating.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
        }
    }
}

/// User + system CPU time of this process, from `/proc/self/stat`.
fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may contain spaces) start after
    // the last ')': utime and stime are fields 14 and 15 (1-based).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // fields[0] is field 3 (state), so field n is fields[n - 3].
    let total = ticks(14 - 3) + ticks(15 - 3);
    let hz = clock_ticks_per_second();
    Duration::from_secs_f64(total as f64 / hz as f64)
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
fn clock_ticks_per_second() -> u64 {
    100
}

fn proc_io_field(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Resident set size of this process in bytes (`VmRSS`), if known.
pub fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix("VmRSS:")?;
        let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in microseconds with one decimal.
pub fn micros(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_string(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e6),
    )
}

/// A ratio with two decimals and an `x`.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".to_string()
    }
}

/// The whole report as markdown.
pub fn render(config: &Config, sections: &[Section]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Benchmark run: scale {} ({}), {} s, {}.\n\n",
        config.scale,
        if config.scale >= 1.0 {
            "full"
        } else {
            "reduced"
        },
        config.elapsed().as_secs(),
        machine()
    ));
    for s in sections {
        out.push_str(&format!("### {}\n\n", s.title));
        if !s.intro.is_empty() {
            out.push_str(s.intro.trim_end());
            out.push_str("\n\n");
        }
        out.push_str(&format!(
            "| {} |\n",
            s.header
                .iter()
                .map(|h| h.trim_end_matches(':'))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
        out.push_str(&format!(
            "|{}|\n",
            s.header
                .iter()
                .map(|h| if h.ends_with(':') { "---:" } else { "---" })
                .collect::<Vec<_>>()
                .join("|")
        ));
        for row in &s.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out.push('\n');
        for n in &s.notes {
            out.push_str(&format!("- {n}\n"));
        }
        if !s.notes.is_empty() {
            out.push('\n');
        }
    }
    out
}

/// CPU model and count, from `/proc/cpuinfo`.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs ({model})")
}

/// The example Claude Code session: 48 raw hook payloads (276-2155 bytes),
/// `SessionStart` first and `SessionEnd` last.
pub const EXAMPLE_SESSION: &str = include_str!("../../examples/session.jsonl");

/// The example session's id, replaced in every copy.
const EXAMPLE_SESSION_ID: &str = "9b2e4c71-5f0a-4d3e-8c16-a7e2f94b0d58";

/// The example session's subagent id, replaced in every repetition.
const EXAMPLE_AGENT_ID: &str = "a4f19c2e7";

/// Copy number `copy` of the example session as `events` (at least 2) hook
/// payload lines: its `SessionStart`, its middle events repeated as often
/// as needed, its `SessionEnd`. The copy gets its own session id (as long
/// as the original, so payload sizes stay realistic); every repetition gets
/// its own `tool_use_id`s and subagent id, distinct across copies too.
pub fn example_session(copy: u64, events: usize) -> Vec<String> {
    let lines: Vec<&str> = EXAMPLE_SESSION.lines().filter(|l| !l.is_empty()).collect();
    let (first, rest) = lines.split_first().expect("a first line");
    let (last, middle) = rest.split_last().expect("a last line");
    let session = format!("9b2e4c71-5f0a-4d3e-8c16-{:012x}", copy % (1 << 48));
    let copied = |line: &str, rep: usize| {
        line.replace(EXAMPLE_SESSION_ID, &session)
            .replace("\"toolu_01", &format!("\"toolu_{copy:x}r{rep}_"))
            .replace(
                EXAMPLE_AGENT_ID,
                &format!("{EXAMPLE_AGENT_ID}{copy:x}r{rep}"),
            )
    };
    let mut out = vec![copied(first, 0)];
    let wanted = events.max(2) - 2;
    out.extend((0..wanted).map(|i| copied(middle[i % middle.len()], i / middle.len())));
    out.push(copied(last, 0));
    out
}

/// `met` or `missed`, for an aim.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

/// Bytes as MB (10^6) with one decimal.
pub fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// A duration in milliseconds with one decimal.
pub fn millis(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}
