//! Section `recovery`: how long opening a closed store takes, for a log of
//! 256 MiB and of 1 GiB (both times the scale), without a checkpoint and
//! with a recent one.
//!
//! How: each log is built through a [`Store`] from copies of the example
//! Claude Code session (48 raw hook payloads per copy, each copy its own
//! session id and `tool_use_id`s), one `ingest_batch` per copy with
//! `Buffered` durability (building is not measured), the default segment
//! size and `checkpoint_bytes` out of reach so no automatic checkpoint
//! happens. The "recent checkpoint" variant calls `Store::compact` once 95 %
//! of the bytes are written and then writes the rest, so an open replays
//! only the tail (compact keeps the segments the previous checkpoint covers,
//! and there is none before it: the log itself stays whole). The store is
//! closed cleanly, then each open is timed on the closed directory:
//!
//! * `Journal::open`: scan every segment and verify every record's checksum;
//! * `Store::open`: the same, then load the checkpoint, replay the log after
//!   it into the session model, publish what recovery changed, start the
//!   compactor (measuring opens keep `checkpoint_bytes` out of reach too, so
//!   no checkpoint starts behind them and every run opens the same log).
//!
//! Warm: the files' pages are in the page cache (one untimed open first).
//! Cold: before every run each file in the directory is fsynced and its
//! cached pages dropped with `posix_fadvise(POSIX_FADV_DONTNEED)` (no root
//! needed); `mincore` then tells how much of it is still resident. The host
//! under a VM may still cache the disk. Every figure is the median of
//! [`RUNS`] runs. A further table splits `Store::open` of the largest log
//! into its phases, redone one by one with the public API.

use crate::report::{self, Config, Progress, Section};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tracejournal::event::{parse_line, Entry, Event, ENTRY_KIND};
use tracejournal::layout::{CHECKPOINTS_DIR, TRACES_DIR};
use tracejournal::model::Sessions;
use tracejournal::testkit::store::checkpoint;
use tracejournal::testkit::wal::frame;
use tracejournal::testkit::wal::segment;
use tracejournal::FsStorage;
use tracejournal::{Durability, Journal, Options};
use tracejournal::{Store, StoreOptions};

/// The log sizes at scale 1, with their labels.
const SIZES: [(&str, u64); 2] = [("256 MiB", 256 << 20), ("1 GiB", 1 << 30)];
/// No log is built smaller than this, whatever the scale.
const MIN_BYTES: u64 = 1 << 20;
/// The recent checkpoint is taken once this share of the bytes is written.
const CHECKPOINT_AT: f64 = 0.95;
/// Timed runs of each open (the median is reported).
const RUNS: usize = 3;
/// The aim: recovery reads the log at this many GB/s or more.
const AIM_GB_PER_S: f64 = 1.0;
/// Hook payloads per copy of the example session (all of its lines).
const EVENTS_PER_COPY: usize = 48;
/// Records decoded per chunk in the phase split (decode, then apply).
const PHASE_CHUNK: usize = 4096;

/// Runs the section.
pub fn run(config: &Config, progress: &Progress) -> Vec<Section> {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut phase_rows = Vec::new();
    for (i, (label, base)) in SIZES.iter().enumerate() {
        let target = ((*base as f64 * config.scale) as u64).max(MIN_BYTES);
        for with_checkpoint in [false, true] {
            let built = build(config, progress, target, with_checkpoint);
            notes.push(built.describe(label));
            let (measured, cold) = measure(&built, label, progress);
            rows.extend(measured);
            notes.extend(cold);
            if i + 1 == SIZES.len() {
                phase_rows.extend(phases(&built, label, progress));
            }
        }
    }
    notes.extend(aim_notes(&rows));
    vec![results_section(rows, notes), phases_section(phase_rows)]
}

/// A closed store directory holding a log built for this section.
struct Built {
    dir: TempDir,
    with_checkpoint: bool,
    target: u64,
    sessions: u64,
    events: u64,
    elapsed: Duration,
    /// The checkpoint written at 95 % (its size), if asked for.
    checkpoint_bytes: Option<u64>,
}

impl Built {
    /// One line for the notes: what was built and how long it took.
    fn describe(&self, label: &str) -> String {
        let files = count_files(&self.dir.path().join(TRACES_DIR));
        let (segments, segment_bytes) = segment_files(self.dir.path());
        format!(
            "{label} log{}: {} sessions, {} events ({} MB of records aimed at) in {segments} \
             segment file(s) ({} MB on disk), built in {:.1} s (not measured); {} trace files in \
             `traces/`{}.",
            checkpoint_suffix(self.with_checkpoint),
            report::thousands(self.sessions),
            report::thousands(self.events),
            report::mb(self.target),
            report::mb(segment_bytes),
            self.elapsed.as_secs_f64(),
            report::thousands(files as u64),
            self.checkpoint_bytes.map_or(String::new(), |b| format!(
                "; checkpoint file {} MB",
                report::mb(b)
            ))
        )
    }
}

/// The store options of the build: fast appends, default segments, no
/// automatic checkpoint.
fn build_options() -> StoreOptions {
    let mut options = measure_options();
    options.journal.durability = Durability::Buffered;
    options
}

/// The store options of the measured opens: defaults, but no automatic
/// checkpoint (it would change the log between runs).
fn measure_options() -> StoreOptions {
    StoreOptions {
        checkpoint_bytes: u64::MAX,
        ..StoreOptions::default()
    }
}

/// Builds a log of about `target` record bytes through a store, with a
/// checkpoint at 95 % if asked, and closes the store.
fn build(config: &Config, progress: &Progress, target: u64, with_checkpoint: bool) -> Built {
    progress.step(&format!(
        "building a {} MB log{}",
        report::mb(target),
        checkpoint_suffix(with_checkpoint)
    ));
    let dir = config.temp_dir();
    let (store, _) = Store::open(dir.path(), build_options()).expect("open the store to build");
    let start = Instant::now();
    let (mut bytes, mut sessions, mut events) = (0u64, 0u64, 0u64);
    let mut checkpoint_bytes = None;
    while bytes < target {
        if with_checkpoint
            && checkpoint_bytes.is_none()
            && bytes as f64 >= CHECKPOINT_AT * target as f64
        {
            checkpoint_bytes = Some(store.compact().expect("compact").checkpoint_bytes);
        }
        let batch = session_copy(sessions);
        bytes += batch.iter().map(record_bytes).sum::<u64>();
        events += batch.len() as u64;
        store.ingest_batch(batch).expect("ingest a session");
        sessions += 1;
    }
    store.close().expect("close the built store");
    Built {
        dir,
        with_checkpoint,
        target,
        sessions,
        events,
        elapsed: start.elapsed(),
        checkpoint_bytes,
    }
}

/// Copy `n` of the example session, parsed and time-stamped (so its record
/// size is known before the store sees it).
fn session_copy(n: u64) -> Vec<Event> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    report::example_session(n, EVENTS_PER_COPY)
        .iter()
        .map(|line| {
            let mut event = parse_line(line).expect("an example hook payload");
            event.time = Some(now);
            event
        })
        .collect()
}

/// The bytes `event` takes in the log: its frame, header and padding
/// included.
fn record_bytes(event: &Event) -> u64 {
    let payload = Entry::from(event.clone()).encode();
    frame::encoded_len(payload.len()) as u64
}

/// Which open is timed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Journal,
    Store,
}

/// Whether the files' pages are cached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cache {
    Warm,
    Cold,
}

/// What one open did and took.
#[derive(Clone, Copy, Default)]
struct Opening {
    /// The call, from entry to return.
    total: Duration,
    /// The journal's recovery scan (`RecoveryReport::elapsed`).
    scan: Duration,
    records: u64,
    /// Record bytes in the log (frames, headers, padding).
    bytes: u64,
    /// Log entries replayed into the model (`Store::open` only).
    replayed: u64,
    /// Trace bytes written before `Store::open` returned.
    published: u64,
    orphans: usize,
}

/// One row of the results table, before formatting.
struct Row {
    label: String,
    with_checkpoint: bool,
    cache: Cache,
    kind: Kind,
    opening: Opening,
}

impl Row {
    /// Log bytes per second of the open, in GB/s.
    fn gb_per_s(&self) -> f64 {
        self.opening.bytes as f64 / 1e9 / self.opening.total.as_secs_f64()
    }

    fn cells(&self) -> Vec<String> {
        let o = &self.opening;
        let gbps = self.gb_per_s();
        vec![
            self.label.clone(),
            checkpoint_cell(self.with_checkpoint),
            match self.cache {
                Cache::Warm => "warm".into(),
                Cache::Cold => "cold (dropped)".into(),
            },
            match self.kind {
                Kind::Journal => "`Journal::open`".into(),
                Kind::Store => "`Store::open`".into(),
            },
            report::thousands(o.records),
            report::mb(o.bytes),
            report::millis(o.total),
            report::millis(o.scan),
            format!("{gbps:.2}"),
            match self.kind {
                Kind::Journal => "-".into(),
                Kind::Store => report::thousands(o.replayed),
            },
            format!(
                "{} {}",
                report::ratio(gbps, AIM_GB_PER_S),
                report::verdict(gbps >= AIM_GB_PER_S)
            ),
        ]
    }
}

/// Times both opens warm and cold on a built directory. Returns the rows
/// and notes about the cold runs.
fn measure(built: &Built, label: &str, progress: &Progress) -> (Vec<Row>, Vec<String>) {
    let dir = built.dir.path();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for kind in [Kind::Journal, Kind::Store] {
        open_once(dir, kind); // warms the cache
        let opening = median_of_runs(dir, kind, || {});
        progress.step(&format!(
            "{label}: {} warm {}",
            kind_name(kind),
            report::millis(opening.total)
        ));
        rows.push(row(built, label, Cache::Warm, kind, opening));
    }
    let mut resident = Vec::new();
    if evict(dir) {
        for kind in [Kind::Journal, Kind::Store] {
            let opening = median_of_runs(dir, kind, || {
                evict(dir);
                resident.push(resident_share(dir));
            });
            progress.step(&format!(
                "{label}: {} cold {}",
                kind_name(kind),
                report::millis(opening.total)
            ));
            rows.push(row(built, label, Cache::Cold, kind, opening));
        }
        let worst = resident.iter().copied().fold(0.0, f64::max);
        notes.push(format!(
            "{label}{}: cold runs: after dropping, at most {:.1} % of the directory's pages were \
             still resident (mincore).",
            checkpoint_suffix(built.with_checkpoint),
            worst * 100.0
        ));
    } else {
        notes.push(format!(
            "{label}: cold runs skipped: posix_fadvise(DONTNEED) failed here."
        ));
    }
    (rows, notes)
}

fn row(built: &Built, label: &str, cache: Cache, kind: Kind, opening: Opening) -> Row {
    Row {
        label: label.to_string(),
        with_checkpoint: built.with_checkpoint,
        cache,
        kind,
        opening,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Journal => "Journal::open",
        Kind::Store => "Store::open",
    }
}

/// " with a checkpoint at 95 %" or nothing, for prose.
fn checkpoint_suffix(with: bool) -> &'static str {
    if with {
        " with a checkpoint at 95 %"
    } else {
        ""
    }
}

/// The checkpoint column's cell.
fn checkpoint_cell(with: bool) -> String {
    if with { "at 95 %" } else { "none" }.to_string()
}

/// [`RUNS`] timed opens, each after `before`; the one with the median time.
fn median_of_runs(dir: &Path, kind: Kind, mut before: impl FnMut()) -> Opening {
    let mut runs: Vec<Opening> = (0..RUNS)
        .map(|_| {
            before();
            open_once(dir, kind)
        })
        .collect();
    runs.sort_by_key(|o| o.total);
    runs[runs.len() / 2]
}

/// One timed open, then a close (not timed).
fn open_once(dir: &Path, kind: Kind) -> Opening {
    match kind {
        Kind::Journal => open_journal(dir),
        Kind::Store => open_store(dir),
    }
}

fn open_journal(dir: &Path) -> Opening {
    let start = Instant::now();
    let (journal, report) = Journal::open(dir, Options::default()).expect("Journal::open");
    let total = start.elapsed();
    journal.close().expect("close the journal");
    Opening {
        total,
        scan: report.elapsed,
        records: report.records,
        bytes: report.bytes,
        ..Opening::default()
    }
}

fn open_store(dir: &Path) -> Opening {
    let start = Instant::now();
    let (store, report) = Store::open(dir, measure_options()).expect("Store::open");
    let total = start.elapsed();
    let published = store.trace_bytes_written();
    store.close().expect("close the store");
    Opening {
        total,
        scan: report.journal.elapsed,
        records: report.journal.records,
        bytes: report.journal.bytes,
        replayed: report.replayed,
        published,
        orphans: report.orphans_marked.len(),
    }
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&path)),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    out
}

/// How many segment files `dir` holds, and their total size.
fn segment_files(dir: &Path) -> (usize, u64) {
    let sizes: Vec<u64> = files_under(dir)
        .iter()
        .filter(|p| {
            p.parent() == Some(dir)
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(segment::parse_file_name)
                    .is_some()
        })
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .collect();
    (sizes.len(), sizes.iter().sum())
}

fn count_files(dir: &Path) -> usize {
    files_under(dir).len()
}

/// Drops the cached pages of every file under `dir` (fsync first, so none
/// is dirty). False if the kernel refused.
fn evict(dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    files_under(dir).iter().all(|path| {
        let Ok(file) = std::fs::File::open(path) else {
            return true; // removed meanwhile
        };
        let _ = file.sync_all();
        // SAFETY: a plain syscall on an open descriptor.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        rc == 0
    })
}

/// The share of the pages of the files under `dir` that are in the page
/// cache (`mincore` over a read-only mapping of each).
fn resident_share(dir: &Path) -> f64 {
    let (mut resident, mut total) = (0u64, 0u64);
    for path in files_under(dir) {
        let (r, t) = resident_pages(&path);
        resident += r;
        total += t;
    }
    if total == 0 {
        0.0
    } else {
        resident as f64 / total as f64
    }
}

/// (resident, total) pages of one file; (0, 0) if it cannot be mapped.
fn resident_pages(path: &Path) -> (u64, u64) {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else {
        return (0, 0);
    };
    let len = file.metadata().map_or(0, |m| m.len()) as usize;
    if len == 0 {
        return (0, 0);
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: a shared read-only mapping of an open file, only passed to
    // mincore (never read through) and unmapped before returning; `vec`
    // has one byte per page of the mapping.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        if addr == libc::MAP_FAILED {
            return (0, 0);
        }
        let rc = libc::mincore(addr, len, vec.as_mut_ptr());
        libc::munmap(addr, len);
        if rc != 0 {
            return (0, 0);
        }
    }
    let resident = vec.iter().filter(|b| **b & 1 == 1).count() as u64;
    (resident, pages as u64)
}

/// `Store::open`'s phases redone one by one on a closed directory (warm),
/// each the median of [`RUNS`] split opens: the journal scan, the
/// checkpoint load, reading + decoding the log after it, applying it to the
/// model, listing `traces/`; the rest of the measured `Store::open`
/// (appending and fsyncing its `Opened` record, starting the compactor) is
/// the difference.
fn phases(built: &Built, label: &str, progress: &Progress) -> Vec<Vec<String>> {
    let dir = built.dir.path();
    progress.step(&format!("{label}: Store::open phases"));
    let whole = median_of_runs(dir, Kind::Store, || {}).total;
    let splits: Vec<Split> = (0..RUNS).map(|_| split_open(dir)).collect();
    let median = |f: fn(&Split) -> Duration| {
        let mut v: Vec<Duration> = splits.iter().map(f).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let parts = [
        (
            "journal scan + checksums (`Journal::open`)".to_string(),
            median(|s| s.scan),
        ),
        (
            "checkpoint load (`checkpoint::load_newest`)".to_string(),
            median(|s| s.checkpoint),
        ),
        (
            "read + decode the log after it (`read_from`, `Entry::decode`)".to_string(),
            median(|s| s.decode),
        ),
        (
            format!(
                "apply {} entries to the session model (`Sessions::apply`)",
                report::thousands(splits[0].entries)
            ),
            median(|s| s.apply),
        ),
        (
            "list `traces/` (as the sweep does)".to_string(),
            median(|s| s.listing),
        ),
    ];
    let ckpt = checkpoint_cell(built.with_checkpoint);
    let share = |d: Duration| format!("{:.0} %", 100.0 * d.as_secs_f64() / whole.as_secs_f64());
    let cells = |name: String, time: String, share: String| {
        vec![label.to_string(), ckpt.clone(), name, time, share]
    };
    let mut rows: Vec<Vec<String>> = parts
        .iter()
        .map(|(name, d)| cells(name.clone(), report::millis(*d), share(*d)))
        .collect();
    let sum: Duration = parts.iter().map(|(_, d)| *d).sum();
    let rest = "rest (`Opened` record + fsync, compactor start, ...)".to_string();
    rows.push(match whole.checked_sub(sum) {
        Some(d) => cells(rest, report::millis(d), share(d)),
        None => cells(
            format!("{rest}: the phases' medians sum to more than the whole (run-to-run noise)"),
            "-".into(),
            "-".into(),
        ),
    });
    rows.push(cells(
        "**`Store::open`, measured whole**".into(),
        report::millis(whole),
        "100 %".into(),
    ));
    rows
}

/// The phase times of one split open.
#[derive(Default)]
struct Split {
    scan: Duration,
    checkpoint: Duration,
    decode: Duration,
    apply: Duration,
    listing: Duration,
    entries: u64,
}

/// Opens the journal, loads the checkpoint, then reads, decodes and
/// applies the log after it in chunks, timing each phase.
fn split_open(dir: &Path) -> Split {
    let mut split = Split::default();
    let start = Instant::now();
    let (journal, _) = Journal::open(dir, Options::default()).expect("Journal::open");
    split.scan = start.elapsed();
    let start = Instant::now();
    let loaded =
        checkpoint::load_newest(&FsStorage, &dir.join(CHECKPOINTS_DIR)).expect("load checkpoint");
    split.checkpoint = start.elapsed();
    let mut sessions = loaded.map_or_else(|| Sessions::new(journal.first_lsn()), |l| l.state);
    let from = sessions.applied().max(journal.first_lsn());
    let mut reader = journal.read_from(from).expect("read the log").peekable();
    while reader.peek().is_some() {
        let start = Instant::now();
        let chunk: Vec<(u64, Entry)> = reader
            .by_ref()
            .take(PHASE_CHUNK)
            .map(|r| r.expect("a record"))
            .filter(|r| r.kind == ENTRY_KIND)
            .map(|r| (r.lsn, Entry::decode(&r.payload).expect("an entry")))
            .collect();
        split.decode += start.elapsed();
        let start = Instant::now();
        for (lsn, entry) in &chunk {
            sessions.apply(*lsn, entry);
        }
        split.apply += start.elapsed();
        split.entries += chunk.len() as u64;
    }
    drop(reader);
    journal.close().expect("close the journal");
    split.listing = time(|| count_files(&dir.join(TRACES_DIR)));
    split
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let start = Instant::now();
    let _ = f();
    start.elapsed()
}

/// Notes: how open time scales with the log, and anything published or
/// marked at open.
fn aim_notes(rows: &[Row]) -> Vec<String> {
    let mut notes = Vec::new();
    for kind in [Kind::Journal, Kind::Store] {
        for cache in [Cache::Warm, Cache::Cold] {
            let times: Vec<&Row> = rows
                .iter()
                .filter(|r| r.kind == kind && r.cache == cache && !r.with_checkpoint)
                .collect();
            if let [small, large] = times.as_slice() {
                notes.push(format!(
                    "Scaling, {} {}, no checkpoint: {:.2}x the bytes took {:.2}x the time.",
                    kind_name(kind),
                    if cache == Cache::Warm { "warm" } else { "cold" },
                    large.opening.bytes as f64 / small.opening.bytes as f64,
                    large.opening.total.as_secs_f64() / small.opening.total.as_secs_f64()
                ));
            }
        }
    }
    let published: u64 = rows.iter().map(|r| r.opening.published).sum();
    let orphans: usize = rows.iter().map(|r| r.opening.orphans).sum();
    notes.push(format!(
        "Opening after a clean close published {} trace bytes and marked {orphans} orphans \
         (over all `Store::open` runs).",
        report::thousands(published)
    ));
    notes
}

fn results_section(rows: Vec<Row>, notes: Vec<String>) -> Section {
    Section {
        title: "Recovery: opening a closed store".into(),
        intro:
            "Logs of 256 MiB and 1 GiB (times the scale) built through the store from copies of \
                the example session's hook payloads; closed cleanly; then each open timed on the \
                closed directory (median of 3). `Journal::open` scans and verifies every record; \
                `Store::open` also loads the checkpoint and replays the log after it into the \
                session model. \"warm\": pages cached; \"cold (dropped)\": each file fsynced and \
                its cached pages dropped with `posix_fadvise(DONTNEED)` before every run (the \
                VM host may still cache the disk). With the checkpoint at 95 % the log is still \
                whole (compact keeps the segments the previous checkpoint covers, and there is \
                none), so the scan reads everything and the replay only the tail. GB/s = record \
                bytes of the whole log / open time. Segments are preallocated (64 MiB) and the \
                scan also reads the active one's zero tail (to tell a clean end from a torn \
                one), so below full scale, where the log is a fraction of a segment, that fixed \
                cost dominates and GB/s understates. Aim: recovery at least 1 GB/s."
                .into(),
        header: [
            "log",
            "checkpoint",
            "page cache",
            "open",
            "records:",
            "log (MB):",
            "time (ms):",
            "scan (ms):",
            "GB/s:",
            "replayed:",
            "aim >= 1 GB/s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: rows.iter().map(Row::cells).collect(),
        notes,
    }
}

fn phases_section(rows: Vec<Vec<String>>) -> Section {
    Section {
        title: "Recovery: where `Store::open` spends its time (largest log, warm)".into(),
        intro: "Each phase redone on its own with the public API on the closed directory (so \
                the phases are measured, not inferred), median of 3 each; \"rest\" is the \
                measured whole (median of 3) minus their sum; shares are of the whole."
            .into(),
        header: ["log", "checkpoint", "phase", "time (ms):", "share:"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        rows,
        notes: Vec::new(),
    }
}
