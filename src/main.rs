//! `tracejournal`: the command-line tool for a journal directory and the
//! session store on top of it.
//!
//! ```text
//! tracejournal --dir DIR append [--durability sync|buffered|none] < events.jsonl
//! tracejournal --dir DIR dump [--from LSN]
//! tracejournal --dir DIR verify [--repair]
//! tracejournal --dir DIR stats
//! tracejournal --dir DIR ingest [FILE] [--workers N]
//! tracejournal --dir DIR sessions [--json]
//! tracejournal --dir DIR show ID [--pretty]
//! tracejournal --dir DIR crash ID [--reason TEXT]
//! tracejournal --dir DIR compact
//! tracejournal --dir DIR tail [--session ID] [--all] [--count N] [--no-follow]
//! tracejournal [--dir DIR] demo [--agents N] [--events N]
//! ```
//!
//! Without `--dir`, the directory is `$TRACEJOURNAL_DIR`, else the user's
//! data directory: `$XDG_DATA_HOME/tracejournal`, else
//! `~/.local/share/tracejournal` (on macOS `~/Library/Application
//! Support/tracejournal`). `demo` uses `--dir` or `./tracejournal-demo`.
//!
//! Errors go to stderr as `error: <message>` with exit code 1; usage errors
//! exit with code 2. Everything else goes to stdout.
//!
//! The session commands open the store with [`OrphanPolicy::KeepOpen`]: this
//! tool is not the agents' process, so its own exit (or death) says nothing
//! about their sessions. Mark a dead agent's session with `crash`.
//!
//! The commands that only read (`dump`, `verify` without `--repair`,
//! `stats`, `sessions`, `show`, `tail`) open the directory read-only
//! ([`tracejournal::ReadOnlyJournal`], [`tracejournal::StoreSnapshot`]): no lock, no byte written. They work while
//! another process (an `ingest`, an agent's store) has it open for writing,
//! and on a directory the user may only read.

// Functions stay under clippy.toml's `too-many-lines-threshold` (70 lines:
// one screen). Unit tests are exempt: a scenario reads top to bottom.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracejournal::event::{parse_line, Entry, Event};
use tracejournal::layout;
use tracejournal::model::{Status, DEFAULT_CRASH_REASON, ORPHANED_REASON};
use tracejournal::trace::iso8601;
use tracejournal::Truncation;
use tracejournal::{Durability, Journal, LogRecord, Options, Record, RecoveryReport, Ticket};
use tracejournal::{OpenReport, OrphanPolicy, SessionSummary, Store, StoreOptions};
use tracejournal::{ReadOnlyJournal, StoreSnapshot};

/// The record type `append` gives every line it reads: one JSON value.
pub const RECORD_TYPE_JSON: u8 = 1;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "tracejournal",
    version,
    about = "A journaled store for the trace and hook events of AI coding agents: \
             ingest events, list and show sessions, and read, check and describe the journal"
)]
pub struct Cli {
    /// The store's (journal's) directory [default: $TRACEJOURNAL_DIR, else
    /// $XDG_DATA_HOME/tracejournal, else ~/.local/share/tracejournal; on
    /// macOS ~/Library/Application Support/tracejournal]
    #[arg(long, value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
    /// Open the store even though sessions are lost (the log no longer
    /// starts at its first entry and no checkpoint covers the gap), to
    /// read what is left; nothing is deleted while salvaging
    #[arg(long, global = true)]
    pub salvage: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Append one record per line of JSON read from stdin (blank lines are
    /// skipped); creates the journal if needed.
    Append {
        /// When a record counts as appended.
        #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
        durability: DurabilityArg,
    },
    /// Print every record as one line of JSON.
    Dump {
        /// Start at this LSN instead of the first one.
        #[arg(long, value_name = "LSN")]
        from: Option<u64>,
    },
    /// Check every byte of the log without changing anything; with
    /// `--repair`, cut a torn tail (keeping a `.broken` copy).
    Verify {
        /// Open the journal, which cuts a torn tail.
        #[arg(long)]
        repair: bool,
    },
    /// Describe the journal: segments, records, LSNs, sizes, record types.
    Stats,
    /// Ingest events: one JSON object per line (typed events or raw hook
    /// payloads)
    ///
    /// A typed event has a "type" field; a hook payload, as an agent posts
    /// it, has "hook_event_name". Each line is its own atomic, durable
    /// (fsynced) event. A bad line is reported as `line N: ...` on stderr
    /// and skipped; the exit code is then 1. Creates the store if needed.
    Ingest {
        /// The file to read; standard input if absent or `-`.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// Threads calling the store at once. Events of one session always
        /// go through the same thread, in input order; more threads make
        /// bigger commit groups (fewer fsyncs per event).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: u16,
    },
    /// List the sessions, newest first.
    Sessions {
        /// One JSON array (full ids, epoch milliseconds, raw numbers).
        #[arg(long)]
        json: bool,
    },
    /// Print a session's trace file (trace-file-v2 JSON) as it is now.
    Show {
        /// The session id, or a prefix of it that matches only one session.
        id: String,
        /// Indented, one field per line.
        #[arg(long)]
        pretty: bool,
    },
    /// Mark a running session crashed (its agent died)
    ///
    /// The marker is durable, and the session's trace file says `crashed`,
    /// before this returns.
    Crash {
        /// The session id, or a prefix of it that matches only one session.
        id: String,
        /// Why; becomes the session's error text.
        #[arg(long, value_name = "TEXT", default_value = DEFAULT_CRASH_REASON)]
        reason: String,
    },
    /// Checkpoint every session and remove the log segments that makes
    /// unnecessary
    Compact,
    /// Print committed events as they land, one JSON object per line (like
    /// `tail -f`)
    ///
    /// Reads the log read-only beside a running writer, looking for new
    /// records every 100 ms. Each line is `{"lsn", "session", "type",
    /// "time", "event"}`. Events compacted into a checkpoint before they
    /// could be read are skipped with a note on stderr.
    Tail {
        /// Only this session's events: its id, or a prefix of it that
        /// matches only one session (an id not in the store yet is waited
        /// for).
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// Start with every event still in the log, not only new ones.
        #[arg(long)]
        all: bool,
        /// Exit after printing this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Print what is committed now and exit instead of following.
        #[arg(long)]
        no_follow: bool,
    },
    /// Run the demonstration: concurrent agents, a killed process, recovery
    ///
    /// Agents write through one store in a child process, which is then
    /// killed; this process reopens (recovers) the store and checks every
    /// trace file. Uses --dir, or ./tracejournal-demo. A previous demo's
    /// directory (one with a .tracejournal-demo file) is replaced; nothing
    /// else is ever deleted.
    Demo {
        /// Concurrent agents (threads), one session each.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u16).range(1..=512))]
        agents: u16,
        /// Events per agent, about (each agent's session is built turn by
        /// turn until it has at least this many).
        #[arg(long, default_value_t = DEMO_EVENTS, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
        events: u32,
    },
    /// The demo's child process (internal).
    #[command(hide = true)]
    DemoChild {
        /// Agents.
        #[arg(long)]
        agents: u16,
        /// Events per agent.
        #[arg(long)]
        events: u32,
    },
}

/// The `--durability` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Acknowledged once synced to disk.
    Sync,
    /// Acknowledged once written to the operating system.
    Buffered,
    /// Acknowledged once queued; made durable when the tool closes the journal.
    None,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Durability {
        match d {
            DurabilityArg::Sync => Durability::Sync,
            DurabilityArg::Buffered => Durability::Buffered,
            DurabilityArg::None => Durability::None,
        }
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// Print `error: <message>` and exit 1.
    Message(String),
    /// Stdout was closed by the reader (`dump | head`): stop quietly.
    BrokenPipe,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Message(m) => f.write_str(m),
            Failure::BrokenPipe => f.write_str("broken pipe"),
        }
    }
}

impl From<tracejournal::Error> for Failure {
    fn from(e: tracejournal::Error) -> Failure {
        Failure::Message(e.to_string())
    }
}

impl From<tracejournal::JournalError> for Failure {
    fn from(e: tracejournal::JournalError) -> Failure {
        Failure::Message(e.to_string())
    }
}

impl From<io::Error> for Failure {
    /// Only for errors writing to stdout.
    fn from(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Message(format!("cannot write output: {e}"))
        }
    }
}

type CliResult<T = ()> = Result<T, Failure>;

fn fail<T>(message: impl Into<String>) -> CliResult<T> {
    Err(Failure::Message(message.into()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = run(&cli, &mut out);
    let flushed = out.flush();
    let result = result.and(flushed.map_err(Failure::from));
    match result {
        Ok(()) | Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Message(m)) => {
            // Not `eprintln!`, which panics if stderr is a closed pipe.
            let _ = writeln!(io::stderr(), "error: {m}");
            ExitCode::FAILURE
        }
    }
}

/// The environment variable naming the store's directory when `--dir` is
/// not given.
pub const DIR_VARIABLE: &str = "TRACEJOURNAL_DIR";

/// The store's directory: `--dir`, else `$TRACEJOURNAL_DIR`, else the
/// per-user default ([`default_dir`]). A usage error (exit code 2) if none
/// can be found (no `HOME`).
fn store_dir(cli: &Cli) -> PathBuf {
    let from_env = std::env::var_os(DIR_VARIABLE).filter(|v| !v.is_empty());
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty());
    let xdg = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty());
    let found = cli
        .dir
        .clone()
        .or_else(|| from_env.map(PathBuf::from))
        .or_else(|| default_dir(home.map(PathBuf::from), xdg.map(PathBuf::from)));
    match found {
        Some(dir) => dir,
        None => Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                format!(
                    "no store directory: give --dir <DIR> or set {DIR_VARIABLE} \
                     (HOME is not set, so there is no default)"
                ),
            )
            .exit(),
    }
}

/// `--salvage`, set once by [`run`] before any store is opened (one flag
/// for every command that opens the store, without threading it through
/// each of them).
static SALVAGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The per-user default store directory, from `HOME` and `XDG_DATA_HOME`:
/// `$XDG_DATA_HOME/tracejournal` if that is an absolute path (the XDG Base
/// Directory rule: a relative one is ignored), else
/// `$HOME/.local/share/tracejournal`; on macOS
/// `$HOME/Library/Application Support/tracejournal`. `None` without a home.
fn default_dir(home: Option<PathBuf>, xdg_data_home: Option<PathBuf>) -> Option<PathBuf> {
    if cfg!(target_os = "macos") {
        return home.map(|h| h.join("Library/Application Support/tracejournal"));
    }
    match xdg_data_home {
        Some(xdg) if xdg.is_absolute() => Some(xdg.join("tracejournal")),
        _ => home.map(|h| h.join(".local/share/tracejournal")),
    }
}

fn run(cli: &Cli, out: &mut dyn Write) -> CliResult {
    SALVAGE.store(cli.salvage, std::sync::atomic::Ordering::Relaxed);
    match &cli.command {
        Command::Demo { agents, events } => {
            return demo(cli.dir.as_deref(), *agents, *events, out);
        }
        Command::DemoChild { agents, events } => {
            return demo_child(&store_dir(cli), *agents, *events, out);
        }
        _ => {}
    }
    let dir = store_dir(cli);
    let dir = dir.as_path();
    match &cli.command {
        Command::Append { durability } => {
            let stdin = io::stdin();
            append(dir, (*durability).into(), &mut stdin.lock(), out)
        }
        Command::Dump { from } => dump(dir, *from, out),
        Command::Verify { repair } => verify(dir, *repair, out),
        Command::Stats => stats(dir, out),
        Command::Ingest { file, workers } => ingest(dir, file.as_deref(), *workers as usize, out),
        Command::Sessions { json } => sessions(dir, *json, out),
        Command::Show { id, pretty } => show(dir, id, *pretty, out),
        Command::Crash { id, reason } => crash(dir, id, reason, out),
        Command::Compact => compact(dir, out),
        Command::Tail {
            session,
            all,
            count,
            no_follow,
        } => tail(dir, session.as_deref(), *all, *count, !*no_follow, out),
        Command::Demo { .. } | Command::DemoChild { .. } => unreachable!("handled above"),
    }
}

// ---------------------------------------------------------------- append

/// Records acknowledged so far.
#[derive(Default)]
struct Acked {
    count: u64,
    last: Option<u64>,
}

impl Acked {
    /// Waits for the ticket of the record read from line `line`.
    fn take(&mut self, (line, ticket): (u64, Ticket)) -> Result<(), String> {
        let lsn = ticket
            .wait()
            .map_err(|e| format!("the record of line {line} was not appended: {e}"))?;
        self.count += 1;
        self.last = Some(self.last.map_or(lsn, |l| l.max(lsn)));
        Ok(())
    }
}

fn append(
    dir: &Path,
    durability: Durability,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> CliResult {
    let options = Options {
        durability,
        ..Options::default()
    };
    // Never more tickets outstanding than the queue holds, so `submit`
    // never waits for queue room long enough to fail with `Busy`.
    let window = options.queue_capacity;
    let (journal, report) = Journal::open(dir, options)?;
    warn_about_cuts(&report);
    let mut pending: VecDeque<(u64, Ticket)> = VecDeque::with_capacity(window);
    let mut acked = Acked::default();
    let mut failure: Option<String> = None;
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => number += 1,
            Err(e) => {
                failure = Some(format!(
                    "cannot read line {} of standard input: {e}",
                    number + 1
                ));
                break;
            }
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(text) {
            failure = Some(format!("line {number} is not valid JSON: {e}"));
            break;
        }
        match journal.submit(Record::new(RECORD_TYPE_JSON, text)) {
            Ok(ticket) => pending.push_back((number, ticket)),
            Err(e) => {
                failure = Some(submit_error(number, &e));
                break;
            }
        }
        if pending.len() >= window {
            let oldest = pending.pop_front().expect("window is at least 1");
            if let Err(e) = acked.take(oldest) {
                failure = Some(e);
                break;
            }
        }
    }
    // Everything submitted before a failure is still waited for: those
    // records are in the log and the count must say so.
    for entry in pending {
        if let Err(e) = acked.take(entry) {
            failure.get_or_insert(e);
        }
    }
    if let Err(e) = journal.close() {
        failure.get_or_insert_with(|| e.to_string());
    }
    match acked.last {
        Some(last) => writeln!(out, "appended {} records, last LSN {last}", acked.count)?,
        None => writeln!(out, "appended 0 records")?,
    }
    match failure {
        Some(m) => Err(Failure::Message(m)),
        None => Ok(()),
    }
}

fn submit_error(line: u64, e: &tracejournal::JournalError) -> String {
    match e {
        tracejournal::JournalError::RecordTooLarge { len, max, .. } => format!(
            "line {line} is {len} bytes, larger than the maximum record size of {max} bytes"
        ),
        other => format!("line {line}: {other}"),
    }
}

// ------------------------------------------------------------------ dump

fn dump(dir: &Path, from: Option<u64>, out: &mut dyn Write) -> CliResult {
    let Some((journal, report)) = open_read_only(dir)? else {
        return match from {
            Some(lsn) if lsn != 1 => Err(Failure::Message(format!(
                "LSN {lsn} is not readable: the journal in {} holds no records",
                dir.display()
            ))),
            _ => Ok(()),
        };
    };
    note_where_reading_stops(&report);
    let start = from.unwrap_or_else(|| journal.first_lsn());
    for record in journal.read_from(start)? {
        out.write_all(dump_line(&record?).as_bytes())?;
    }
    Ok(())
}

/// One record as a line of JSON, newline included.
fn dump_line(r: &LogRecord) -> String {
    let mut s = format!(
        "{{\"lsn\":{},\"segment\":{},\"offset\":{},\"type\":{},\"payload\":",
        r.lsn, r.segment, r.offset, r.kind
    );
    match json_text(&r.payload) {
        Some(json) => s.push_str(&json),
        None => {
            s.push_str("null,\"payload_hex\":\"");
            s.push_str(&hex(&r.payload));
            s.push('"');
        }
    }
    s.push_str("}\n");
    s
}

/// The payload as compact JSON text, if it is valid JSON. The bytes are kept
/// as written (key order, number spelling, escapes); only whitespace
/// outside strings is dropped, so the text fits on one line.
fn json_text(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(payload).ok()?;
    let mut compact = Vec::with_capacity(payload.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in payload {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        compact.push(b);
    }
    String::from_utf8(compact).ok()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

// ---------------------------------------------------------------- verify

fn verify(dir: &Path, repair: bool, out: &mut dyn Write) -> CliResult {
    require_dir(dir)?;
    let repaired = match repair {
        true => open_existing(dir)?,
        false => None,
    };
    let (report, done) = match repaired {
        Some((journal, report)) => {
            journal.close()?;
            (report, true)
        }
        None => (ReadOnlyJournal::open(dir, &Options::default())?.1, false),
    };
    writeln!(out, "journal: {}", dir.display())?;
    write_summary(out, &report)?;
    write_findings(out, &report, done)?;
    writeln!(out, "time: {}", millis(report.elapsed))?;
    let status = if report.segments == 0 {
        "empty (no segment files)"
    } else if report.truncated.is_empty() {
        "clean"
    } else if done {
        "repaired"
    } else if report.truncated.iter().any(|t| t.intact_records > 0) {
        "torn tail with intact records inside it (a crash, or damage to the last commit group: see the warning)"
    } else {
        "torn tail (the normal result of a crash, not corruption; or a write in progress, if a writer has the store open)"
    };
    writeln!(out, "status: {status}")?;
    Ok(())
}

fn write_summary(out: &mut dyn Write, report: &RecoveryReport) -> io::Result<()> {
    writeln!(out, "segments: {}", report.segments)?;
    writeln!(out, "records: {}", report.records)?;
    writeln!(out, "record bytes: {}", report.bytes)?;
    writeln!(
        out,
        "LSNs: {}",
        lsn_range(report.records, report.first_lsn, report.next_lsn)
    )
}

/// What recovery found (dry run) or did (`done`).
fn write_findings(out: &mut dyn Write, report: &RecoveryReport, done: bool) -> io::Result<()> {
    for t in &report.truncated {
        writeln!(
            out,
            "{}: {}",
            if done { "cut torn tail" } else { "torn tail" },
            describe_cut(t)
        )?;
        if t.intact_records > 0 {
            writeln!(
                out,
                "  warning: {} whole, checksum-valid records lie in that range. A crash \
                 leaves such records only from its last, unsynced commit group; if any \
                 of them was acknowledged, this is damage, not a torn write \
                 (inspect the .broken copy)",
                t.intact_records
            )?;
        }
        match (&t.copy, done) {
            (Some(copy), _) => writeln!(out, "  copy of the cut bytes: {}", copy.display())?,
            (None, true) => writeln!(out, "  no copy kept (nothing to copy)")?,
            (None, false) => writeln!(
                out,
                "  run `tracejournal verify --repair` or open the journal to cut it"
            )?,
        }
    }
    for d in &report.damage {
        writeln!(
            out,
            "damage: {} at offset {}: {}",
            d.file.display(),
            d.offset,
            d.reason
        )?;
    }
    for p in &report.set_aside {
        writeln!(out, "set aside: {}", p.display())?;
    }
    for p in &report.removed_temp_files {
        if done {
            writeln!(out, "removed temporary file: {}", p.display())?;
        } else {
            writeln!(
                out,
                "stale temporary file: {} (opening the journal removes it)",
                p.display()
            )?;
        }
    }
    Ok(())
}

fn describe_cut(t: &Truncation) -> String {
    format!(
        "{} at offset {}, {} bytes: {}",
        t.file.display(),
        t.offset,
        t.bytes,
        t.reason
    )
}

// ----------------------------------------------------------------- stats

/// Per record type: count and payload bytes.
type TypeCounts = BTreeMap<u8, (u64, u64)>;

#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn stats(dir: &Path, out: &mut dyn Write) -> CliResult {
    let (report, types) = match open_read_only(dir)? {
        Some((journal, report)) => {
            let mut types = TypeCounts::new();
            for record in journal.read_from(journal.first_lsn())? {
                let record = record?;
                let entry = types.entry(record.kind).or_default();
                entry.0 += 1;
                entry.1 += record.payload.len() as u64;
            }
            (report, types)
        }
        None => (
            ReadOnlyJournal::open(dir, &Options::default())?.1,
            TypeCounts::new(),
        ),
    };
    let files = list_store_files(dir)?;
    let (nested, top): (Vec<_>, Vec<_>) = files.iter().partition(|(name, _)| name.contains('/'));
    let (segments, others): (Vec<_>, Vec<_>) = top
        .into_iter()
        .partition(|(name, _)| layout::parse_segment_file_name(name).is_some());
    let width = segments
        .iter()
        .chain(&others)
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0);
    writeln!(out, "journal: {}", dir.display())?;
    writeln!(out, "segments: {}", segments.len())?;
    for (name, size) in &segments {
        writeln!(out, "  {name:<width$}  {size} bytes")?;
    }
    if !others.is_empty() {
        writeln!(out, "other files: {}", others.len())?;
        for (name, size) in &others {
            writeln!(out, "  {name:<width$}  {size} bytes")?;
        }
    }
    // Subdirectories (checkpoints/, traces/): counted, not listed one by
    // one (a store may hold thousands of trace files).
    let mut subdirs: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (name, size) in &nested {
        let sub = name.split('/').next().unwrap_or(name);
        let e = subdirs.entry(sub).or_default();
        e.0 += 1;
        e.1 += size;
    }
    for (sub, (count, bytes)) in &subdirs {
        let files = if *count == 1 { "file" } else { "files" };
        writeln!(out, "{sub}/: {count} {files}, {bytes} bytes")?;
    }
    writeln!(out, "records: {}", report.records)?;
    writeln!(
        out,
        "LSNs: {}",
        lsn_range(report.records, report.first_lsn, report.next_lsn)
    )?;
    writeln!(
        out,
        "record bytes: {} (frames: headers, payloads, padding)",
        report.bytes
    )?;
    let payload_bytes: u64 = types.values().map(|(_, b)| b).sum();
    writeln!(out, "payload bytes: {payload_bytes}")?;
    let disk: u64 = files.iter().map(|(_, size)| size).sum();
    writeln!(
        out,
        "disk bytes: {disk} (all {} files of the store, in every subdirectory)",
        files.len()
    )?;
    writeln!(out, "record types: {}", types.len())?;
    for (kind, (count, bytes)) in &types {
        let name = if *kind == RECORD_TYPE_JSON {
            " (json)"
        } else if *kind == tracejournal::event::ENTRY_KIND {
            " (session store entry)"
        } else {
            ""
        };
        writeln!(
            out,
            "  type {kind}{name}: {count} records, {bytes} payload bytes"
        )?;
    }
    writeln!(out, "scan time: {}", millis(report.elapsed))?;
    for t in &report.truncated {
        writeln!(
            out,
            "reading stopped at the last whole record: {} (a write in progress, or a torn \
             tail that the next open for writing cuts)",
            describe_cut(t)
        )?;
    }
    for p in &report.removed_temp_files {
        writeln!(out, "temporary file: {}", p.display())?;
    }
    Ok(())
}

/// Every regular file under `dir` (subdirectories included, symbolic
/// links not followed) with its size, as a `/`-separated path relative to
/// `dir`, sorted.
fn list_store_files(dir: &Path) -> CliResult<Vec<(String, u64)>> {
    fn walk(dir: &Path, prefix: &str, files: &mut Vec<(String, u64)>) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(&entry.path(), &format!("{name}/"), files)?;
            } else if kind.is_file() {
                files.push((name, entry.metadata()?.len()));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, "", &mut files)
        .map_err(|e| Failure::Message(format!("cannot list {}: {e}", dir.display())))?;
    files.sort();
    Ok(files)
}

/// Regular files of `dir` with their sizes, sorted by name.
fn list_files(dir: &Path) -> CliResult<Vec<(String, u64)>> {
    let cannot = |e: io::Error| Failure::Message(format!("cannot list {}: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(cannot)? {
        let entry = entry.map_err(cannot)?;
        let meta = entry.metadata().map_err(cannot)?;
        if meta.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), meta.len()));
        }
    }
    files.sort();
    Ok(files)
}

// --------------------------------------------------------------- helpers

fn require_dir(dir: &Path) -> CliResult {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure::Message(format!(
            "{} is not a directory",
            dir.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Failure::Message(format!(
            "journal directory {} does not exist",
            dir.display()
        ))),
        Err(e) => Err(Failure::Message(format!(
            "cannot access journal directory {}: {e}",
            dir.display()
        ))),
    }
}

/// Opens (and so recovers) the journal in `dir` for reading, or returns
/// `None` if the directory holds no segment: reading commands never create
/// a journal.
fn open_existing(dir: &Path) -> CliResult<Option<(Journal, RecoveryReport)>> {
    require_dir(dir)?;
    let files = list_files(dir)?;
    if !files
        .iter()
        .any(|(name, _)| layout::parse_segment_file_name(name).is_some())
    {
        return Ok(None);
    }
    Ok(Some(Journal::open(dir, Options::default())?))
}

/// Opens the journal in `dir` read-only (no lock, no write), or returns
/// `None` if the directory holds no segment.
fn open_read_only(dir: &Path) -> CliResult<Option<(ReadOnlyJournal, RecoveryReport)>> {
    require_dir(dir)?;
    let files = list_files(dir)?;
    if !files
        .iter()
        .any(|(name, _)| layout::parse_segment_file_name(name).is_some())
    {
        return Ok(None);
    }
    Ok(Some(ReadOnlyJournal::open(dir, &Options::default())?))
}

/// A read-only open stops at the last whole record; commands whose stdout
/// is data say where on stderr when bytes follow it.
fn note_where_reading_stops(report: &RecoveryReport) {
    let mut err = io::stderr().lock();
    for t in &report.truncated {
        let _ = writeln!(
            err,
            "note: reading stopped at the last whole record: {} (a write in progress, or a \
             torn tail that the next open for writing cuts)",
            describe_cut(t)
        );
    }
}

/// Opening a journal cuts a torn tail; commands whose stdout is data say
/// so on stderr.
fn warn_about_cuts(report: &RecoveryReport) {
    let mut err = io::stderr().lock();
    for t in &report.truncated {
        let _ = write!(
            err,
            "warning: recovery cut a torn tail: {}",
            describe_cut(t)
        );
        let _ = match &t.copy {
            Some(copy) => writeln!(err, " (copy kept in {})", copy.display()),
            None => writeln!(err),
        };
    }
}

fn lsn_range(records: u64, first: u64, next: u64) -> String {
    if records == 0 || next <= first {
        format!("none (next {next})")
    } else {
        format!("{first} to {} (next {next})", next - 1)
    }
}

fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

// ------------------------------------------------------- the session store

/// Opens the store for a command of this tool (see the module docs for
/// why orphans are kept open), warning on stderr about what recovery cut.
fn open_store(dir: &Path) -> CliResult<(Store, OpenReport)> {
    let options = StoreOptions {
        orphans: OrphanPolicy::KeepOpen,
        salvage: SALVAGE.load(std::sync::atomic::Ordering::Relaxed),
        ..StoreOptions::default()
    };
    let (store, report) = Store::open(dir, options)?;
    warn_about_cuts(&report.journal);
    warn_about_open(&report);
    Ok((store, report))
}

/// Warns on stderr about skipped checkpoints, lost entries (salvage) and
/// trace files open left alone because no session owns them.
fn warn_about_open(report: &OpenReport) {
    let mut err = io::stderr().lock();
    for (name, why) in &report.checkpoints_skipped {
        let _ = writeln!(err, "warning: skipped checkpoint {name}: {why}");
    }
    if let Some(missing) = &report.missing {
        warn_about_missing(missing);
    }
    for path in &report.unknown_trace_files {
        let _ = writeln!(
            err,
            "warning: {} belongs to no known session; left in place",
            path.display()
        );
    }
}

/// Warns on stderr that salvage lost the entries at `missing`.
fn warn_about_missing(missing: &std::ops::Range<tracejournal::Lsn>) {
    eprintln!(
        "warning: salvage: the entries at LSNs {} to {} are lost; sessions they held are missing",
        missing.start,
        missing.end.saturating_sub(1)
    );
}

/// Opens the store in `dir` if there is one: reading commands never create
/// a store.
fn open_existing_store(dir: &Path) -> CliResult<Option<Store>> {
    require_dir(dir)?;
    let files = list_files(dir)?;
    if !files
        .iter()
        .any(|(name, _)| layout::parse_segment_file_name(name).is_some())
    {
        return Ok(None);
    }
    Ok(Some(open_store(dir)?.0))
}

/// Opens the store in `dir` read-only (no lock, no write) if there is one.
fn open_existing_snapshot(dir: &Path) -> CliResult<Option<StoreSnapshot>> {
    require_dir(dir)?;
    let files = list_files(dir)?;
    if !files
        .iter()
        .any(|(name, _)| layout::parse_segment_file_name(name).is_some())
    {
        return Ok(None);
    }
    let options = StoreOptions {
        salvage: SALVAGE.load(std::sync::atomic::Ordering::Relaxed),
        ..StoreOptions::default()
    };
    let (snapshot, report) = StoreSnapshot::open(dir, &options)?;
    note_where_reading_stops(&report.journal);
    let mut err = io::stderr().lock();
    for (name, why) in &report.checkpoints_skipped {
        let _ = writeln!(err, "warning: skipped checkpoint {name}: {why}");
    }
    if let Some(missing) = &report.missing {
        warn_about_missing(missing);
    }
    Ok(Some(snapshot))
}

/// Closes the store, keeping an earlier failure if there was one.
fn close_store(store: Store, result: CliResult) -> CliResult {
    let closed = store.close();
    result?;
    closed?;
    Ok(())
}

/// The session `wanted` names: its exact id, or the one session whose id
/// starts with it.
fn resolve_session(store: &Store, wanted: &str) -> CliResult<String> {
    resolve_in(store.dir(), store.sessions(), wanted)
}

/// The session `wanted` names among `list` (the sessions of `dir`).
fn resolve_in(dir: &Path, list: Vec<SessionSummary>, wanted: &str) -> CliResult<String> {
    if list.iter().any(|s| s.id == wanted) {
        return Ok(wanted.to_string());
    }
    let matches: Vec<String> = if wanted.is_empty() {
        Vec::new()
    } else {
        list.into_iter()
            .filter(|s| s.id.starts_with(wanted))
            .map(|s| s.id)
            .collect()
    };
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => fail(format!(
            "no session {} in {}",
            quoted(wanted),
            dir.display()
        )),
        n => {
            let shown: Vec<String> = matches.iter().take(5).map(|id| quoted(id)).collect();
            fail(format!(
                "{} is the start of {n} session ids ({}{}); give more of it",
                quoted(wanted),
                shown.join(", "),
                if n > 5 { ", ..." } else { "" }
            ))
        }
    }
}

fn no_store(dir: &Path, id: &str) -> Failure {
    Failure::Message(format!(
        "no session {} in {}: the directory holds no session store",
        quoted(id),
        dir.display()
    ))
}

/// `"text"` with control characters escaped, cut to 200 characters.
fn quoted(text: &str) -> String {
    format!("\"{}\"", cell(text, 200))
}

// ---------------------------------------------------------------- ingest

/// What one ingest worker did.
#[derive(Default)]
struct IngestTally {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    sessions: HashSet<String>,
}

/// Stops every ingest thread after an error that is not the line's fault
/// (I/O, a poisoned journal): the first such error, with its line.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Stop {
    fn stop(&self, message: String) {
        self.stopped.store(true, Ordering::SeqCst);
        let mut first = self.error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(message);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// `line N: message` on stderr.
fn reject_line(line: u64, message: &str) {
    let _ = writeln!(io::stderr().lock(), "line {line}: {message}");
}

/// The message for an event the store refused because of the event itself,
/// or `None` for an error that is not the line's fault.
fn line_error(e: &tracejournal::Error) -> Option<String> {
    use tracejournal::Error as E;
    use tracejournal::JournalError as J;
    match e {
        E::InvalidEvent { reason, .. } => Some(reason.clone()),
        E::UnknownSession(id) => Some(format!(
            "a crash marker for {}, which is not a session in this store",
            quoted(id)
        )),
        E::Journal(J::RecordTooLarge { len, max, .. }) => Some(format!(
            "the event is {len} bytes once encoded, larger than the maximum record size of {max} bytes"
        )),
        E::Journal(J::InvalidRecord { reason, .. }) => Some(reason.clone()),
        E::Journal(J::Busy { .. }) => Some(e.to_string()),
        _ => None,
    }
}

fn ingest(dir: &Path, file: Option<&Path>, workers: usize, out: &mut dyn Write) -> CliResult {
    let stdin = io::stdin();
    let mut input: Box<dyn BufRead> = match file {
        Some(path) if path != Path::new("-") => Box::new(io::BufReader::new(
            std::fs::File::open(path)
                .map_err(|e| Failure::Message(format!("cannot open {}: {e}", path.display())))?,
        )),
        _ => Box::new(stdin.lock()),
    };
    let source = match file {
        Some(path) if path != Path::new("-") => path.display().to_string(),
        _ => "standard input".to_string(),
    };
    let (store, _) = open_store(dir)?;
    let stop = Stop::default();
    let started = Instant::now();
    let (mut total, parse_rejected) = std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = crossbeam_channel::bounded::<(u64, Event)>(256);
            senders.push(tx);
            let (store, stop) = (&store, &stop);
            handles.push(scope.spawn(move || ingest_worker(store, rx, stop)));
        }
        let rejected = read_events(&mut *input, &source, &senders, &stop);
        drop(senders);
        let mut total = IngestTally::default();
        for handle in handles {
            let t = handle.join().expect("an ingest thread panicked");
            total.accepted += t.accepted;
            total.duplicates += t.duplicates;
            total.rejected += t.rejected;
            total.sessions.extend(t.sessions);
        }
        (total, rejected)
    });
    let elapsed = started.elapsed();
    total.rejected += parse_rejected;
    if let Err(e) = store.close() {
        stop.stop(e.to_string());
    }
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        format!(
            " ({} events/s)",
            thousands((total.accepted as f64 / secs) as u64)
        )
    } else {
        String::new()
    };
    let duplicates = match total.duplicates {
        0 => String::new(),
        n => format!(" ({})", plural(n, "duplicate", "duplicates")),
    };
    writeln!(
        out,
        "ingested {}{duplicates} into {} in {secs:.2} s{rate}; {} rejected",
        plural(total.accepted, "event", "events"),
        plural(total.sessions.len() as u64, "session", "sessions"),
        thousands(total.rejected),
    )?;
    let fatal = stop.error.into_inner().unwrap_or_else(|e| e.into_inner());
    match (fatal, total.rejected) {
        (Some(e), _) => fail(format!("ingest stopped: {e}")),
        (None, 0) => Ok(()),
        (None, n) => fail(format!(
            "{} rejected (see the messages above); the other lines were stored",
            plural(n, "line was", "lines were")
        )),
    }
}

/// Reads and parses lines, routing each event to the worker of its
/// session. Returns how many lines were rejected here.
fn read_events(
    input: &mut dyn BufRead,
    source: &str,
    workers: &[crossbeam_channel::Sender<(u64, Event)>],
    stop: &Stop,
) -> u64 {
    let mut rejected = 0;
    let mut line = Vec::new();
    let mut number = 0u64;
    while !stop.is_stopped() {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => number += 1,
            Err(e) => {
                stop.stop(format!("cannot read line {} of {source}: {e}", number + 1));
                break;
            }
        }
        let text = match std::str::from_utf8(&line) {
            Ok(text) => text.trim(),
            Err(e) => {
                reject_line(number, &format!("not valid UTF-8: {e}"));
                rejected += 1;
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let event = match parse_line(text) {
            Ok(event) => event,
            Err(e) => {
                reject_line(number, e.message());
                rejected += 1;
                continue;
            }
        };
        let worker = route(&event.session, workers.len());
        if workers[worker].send((number, event)).is_err() {
            break;
        }
    }
    rejected
}

/// The worker that handles every event of `session`.
fn route(session: &str, workers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    session.hash(&mut hasher);
    (hasher.finish() % workers as u64) as usize
}

fn ingest_worker(
    store: &Store,
    events: crossbeam_channel::Receiver<(u64, Event)>,
    stop: &Stop,
) -> IngestTally {
    let mut tally = IngestTally::default();
    for (line, event) in events {
        if stop.is_stopped() {
            continue;
        }
        let session = event.session.clone();
        match store.ingest(event) {
            Ok(ack) => {
                tally.accepted += 1;
                tally.duplicates += u64::from(ack.duplicate);
                if !tally.sessions.contains(&session) {
                    tally.sessions.insert(session);
                }
            }
            Err(e) => match line_error(&e) {
                Some(message) => {
                    reject_line(line, &message);
                    tally.rejected += 1;
                }
                None => stop.stop(format!("line {line}: {e}")),
            },
        }
    }
    tally
}

// -------------------------------------------------------------- sessions

fn sessions(dir: &Path, json: bool, out: &mut dyn Write) -> CliResult {
    let list = match open_existing_snapshot(dir)? {
        Some(snapshot) => snapshot.sessions(),
        None => Vec::new(),
    };
    if json {
        let items: Vec<serde_json::Value> = list.iter().map(session_json).collect();
        let text = serde_json::to_string_pretty(&items).expect("values always serialize");
        writeln!(out, "{text}")?;
    } else {
        write_sessions_table(out, &list)?;
    }
    Ok(())
}

fn session_json(s: &SessionSummary) -> serde_json::Value {
    serde_json::json!({
        "id": s.id,
        "title": s.title,
        "status": s.status.as_str(),
        "error": s.error,
        "startedAt": s.started_at,
        "endedAt": s.ended_at,
        "durationMs": s.duration_ms,
        "tokens": s.tokens,
        "cost": s.cost,
        "toolCalls": s.tool_calls,
        "spans": s.spans,
        "run": s.run,
        "file": s.file.display().to_string(),
    })
}

/// Longest id shown in the table (a unique prefix is enough for `show`).
const TABLE_ID_CHARS: usize = 14;
/// Longest title shown in the table.
const TABLE_TITLE_CHARS: usize = 48;
/// Longest error text shown under a row.
const TABLE_ERROR_CHARS: usize = 100;

/// The sessions as an aligned table; an ended session's error text goes on
/// a line of its own under its row.
fn write_sessions_table(out: &mut dyn Write, list: &[SessionSummary]) -> io::Result<()> {
    if list.is_empty() {
        return writeln!(out, "no sessions");
    }
    const HEADERS: [&str; 8] = [
        "ID",
        "STARTED (UTC)",
        "STATUS",
        "DURATION",
        "TOKENS",
        "COST",
        "TOOLS",
        "TITLE",
    ];
    const RIGHT: [bool; 8] = [false, false, false, true, true, true, true, false];
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|s| {
            [
                cell(&s.id, TABLE_ID_CHARS),
                started(s.started_at),
                s.status.as_str().to_string(),
                duration(s.duration_ms),
                tokens(s.tokens),
                cost(s.cost),
                thousands(s.tool_calls),
                s.title
                    .as_deref()
                    .map_or("-".to_string(), |t| cell(t, TABLE_TITLE_CHARS)),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String; 8]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if i > 0 {
                s.push_str("  ");
            }
            if RIGHT[i] {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(c);
            } else if i + 1 < cells.len() {
                s.push_str(c);
                s.extend(std::iter::repeat_n(' ', pad));
            } else {
                s.push_str(c);
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(&HEADERS.map(str::to_string)))?;
    // The error line starts under the STATUS column.
    let indent = widths[0] + widths[1] + 4;
    for (row, s) in rows.iter().zip(list) {
        writeln!(out, "{}", line(row))?;
        if let Some(error) = s.error.as_deref().filter(|_| s.status.is_final()) {
            writeln!(out, "{:indent$}└ {}", "", cell(error, TABLE_ERROR_CHARS))?;
        }
    }
    Ok(())
}

/// Text for a table cell or a message: control and invisible formatting
/// characters escaped (a title cannot move the cursor or reorder the
/// line), cut to `max` characters with `…`.
fn cell(text: &str, max: usize) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        let invisible = matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        );
        if c.is_control() || invisible {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `2026-03-15 10:00:05` (UTC).
fn started(ms: u64) -> String {
    let iso = iso8601(ms);
    format!("{} {}", &iso[..10], &iso[11..19])
}

/// `850ms`, `12.3s`, `4m 05s`, `2h 13m`.
fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// `8,431`, `48.2k`, `1.25M`.
fn tokens(n: u64) -> String {
    match n {
        0..=9_999 => thousands(n),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

/// `$0.41`; `<$0.01` for a small non-zero cost.
fn cost(dollars: f64) -> String {
    if dollars > 0.0 && dollars < 0.005 {
        "<$0.01".to_string()
    } else {
        format!("${dollars:.2}")
    }
}

/// `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    s
}

/// `1 event`, `1,234 events`.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// `1.4 MB`.
fn bytes(n: u64) -> String {
    match n {
        0..=9_999 => format!("{} bytes", thousands(n)),
        10_000..=999_999 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

// ------------------------------------------------------------------ show

fn show(dir: &Path, id: &str, pretty: bool, out: &mut dyn Write) -> CliResult {
    let snapshot = open_existing_snapshot(dir)?.ok_or_else(|| no_store(dir, id))?;
    let id = resolve_in(dir, snapshot.sessions(), id)?;
    let bytes = snapshot
        .session(&id)
        .ok_or_else(|| Failure::Message(format!("session {} vanished", quoted(&id))))?;
    if pretty {
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Message(format!("the rendering is not JSON: {e}")))?;
        let text = serde_json::to_string_pretty(&value).expect("values always serialize");
        writeln!(out, "{text}")?;
    } else {
        out.write_all(&bytes)?;
        writeln!(out)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ tail

/// How often `tail` looks for new records. Polling a directory listing and
/// the end of one file costs a few system calls; 100 ms keeps the delay
/// below what a person notices.
const TAIL_POLL: Duration = Duration::from_millis(100);

#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn tail(
    dir: &Path,
    session: Option<&str>,
    all: bool,
    count: Option<u64>,
    follow: bool,
    out: &mut dyn Write,
) -> CliResult {
    require_dir(dir)?;
    let mut snapshot = loop {
        match open_existing_snapshot(dir)? {
            Some(snapshot) => break snapshot,
            // No store yet: wait for a writer to create one.
            None if follow => std::thread::sleep(TAIL_POLL),
            None => return Ok(()),
        }
    };
    // An id that matches one session (or a prefix of one); an id not in the
    // store yet is taken as it is, to wait for.
    let session = match session {
        Some(wanted) => {
            let list = snapshot.sessions();
            if list.iter().any(|s| s.id.starts_with(wanted)) {
                Some(resolve_in(dir, list, wanted)?)
            } else {
                Some(wanted.to_string())
            }
        }
        None => None,
    };
    let mut printed = 0u64;
    let done = |printed: u64| count.is_some_and(|n| printed >= n);
    let mut print = |lsn: u64, entry: &Entry, out: &mut dyn Write| -> CliResult<bool> {
        if let Entry::Event(event) = entry {
            if session.as_ref().is_none_or(|id| *id == event.session) {
                out.write_all(tail_line(lsn, event).as_bytes())?;
                out.flush()?;
                printed += 1;
            }
        }
        Ok(done(printed))
    };
    if done(0) {
        return Ok(());
    }
    if all {
        let journal = snapshot.journal();
        for record in journal.read_from(journal.first_lsn())? {
            let record = record?;
            if record.kind != tracejournal::event::ENTRY_KIND {
                continue;
            }
            let entry = Entry::decode(&record.payload)
                .map_err(|e| Failure::Message(format!("LSN {}: {}", record.lsn, e.message())))?;
            if print(record.lsn, &entry, out)? {
                return Ok(());
            }
        }
    }
    loop {
        match snapshot.refresh() {
            Ok(entries) => {
                for committed in &entries {
                    if print(committed.lsn, &committed.entry, out)? {
                        return Ok(());
                    }
                }
                if entries.is_empty() {
                    if !follow {
                        return Ok(());
                    }
                    std::thread::sleep(TAIL_POLL);
                }
            }
            Err(tracejournal::Error::Journal(tracejournal::JournalError::LsnOutOfRange {
                lsn,
                ..
            })) => {
                let (fresh, _) = StoreSnapshot::open(dir, &StoreOptions::default())?;
                let _ = writeln!(
                    io::stderr(),
                    "note: LSNs {lsn} to {} were compacted into a checkpoint before tail could \
                     read them; continuing after them",
                    fresh.applied_lsn().saturating_sub(1)
                );
                snapshot = fresh;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One event as a line of JSON, newline included.
fn tail_line(lsn: u64, event: &Event) -> String {
    let line = serde_json::json!({
        "lsn": lsn,
        "session": event.session,
        "type": event.body.type_name(),
        "time": event.time,
        "event": event,
    });
    format!("{line}\n")
}

// ----------------------------------------------------------------- crash

fn crash(dir: &Path, id: &str, reason: &str, out: &mut dyn Write) -> CliResult {
    let store = open_existing_store(dir)?.ok_or_else(|| no_store(dir, id))?;
    let result = (|| -> CliResult {
        let id = resolve_session(&store, id)?;
        let state = store
            .session_state(&id)
            .ok_or_else(|| Failure::Message(format!("session {} vanished", quoted(&id))))?;
        if state.status != Status::Running {
            return fail(format!(
                "session {} is not running: it has ended ({}); only an open session can be marked crashed",
                quoted(&id),
                state.status.as_str()
            ));
        }
        store.mark_crashed(&id, reason)?;
        writeln!(
            out,
            "session {}: crashed ({})",
            quoted(&id),
            cell(reason, 200)
        )?;
        writeln!(
            out,
            "trace file (already says crashed): {}",
            store.trace_path(&id).display()
        )?;
        Ok(())
    })();
    close_store(store, result)
}

// --------------------------------------------------------------- compact

fn compact(dir: &Path, out: &mut dyn Write) -> CliResult {
    let store = open_existing_store(dir)?
        .ok_or_else(|| Failure::Message(format!("{} holds no session store", dir.display())))?;
    let result = (|| -> CliResult {
        let report = store.compact()?;
        writeln!(
            out,
            "checkpoint: every session's state as of LSN {} ({})",
            report.checkpoint_lsn.saturating_sub(1),
            bytes(report.checkpoint_bytes)
        )?;
        if report.segments_removed == 0 {
            writeln!(
                out,
                "log: no segment removed (a segment goes once the previous checkpoint covers \
                 it too, and the one being written never goes)"
            )?;
        } else {
            writeln!(
                out,
                "log: removed {}, {} freed",
                plural(report.segments_removed as u64, "segment", "segments"),
                bytes(report.bytes_freed)
            )?;
        }
        writeln!(out, "the log now starts at LSN {}", report.first_lsn)?;
        Ok(())
    })();
    close_store(store, result)
}

// ------------------------------------------------------------------ demo

/// Default events per demo agent.
const DEMO_EVENTS: u32 = 300;

/// The file that makes a directory a demo directory, which `demo` may
/// delete and recreate. No other directory is ever deleted.
const DEMO_MARKER: &str = ".tracejournal-demo";

/// The line the demo's child prints when it is done and may be killed.
const DEMO_READY: &str = "@@ tracejournal demo child: ready to be killed @@";

/// The demo agent that dies mid-turn (index), and the ones still working
/// when the process dies.
fn demo_roles(agents: usize) -> (usize, Vec<usize>) {
    let crashed = 6.min(agents - 1);
    let mut open: Vec<usize> = [11, 18]
        .into_iter()
        .filter(|&i| i < agents && i != crashed)
        .collect();
    if open.is_empty() && agents >= 2 {
        open.push(if crashed == agents - 1 { 0 } else { agents - 1 });
    }
    (crashed, open)
}

fn agent_name(index: usize) -> String {
    format!("agent-{:02}", index + 1)
}

fn crash_reason(index: usize) -> String {
    format!("{} was killed mid-turn (demo)", agent_name(index))
}

/// Empties (or creates) the demo directory. Returns true if a previous
/// demo's directory was removed.
fn prepare_demo_dir(dir: &Path) -> CliResult<bool> {
    let marker = dir.join(DEMO_MARKER);
    let cannot = |what: &str, e: io::Error| {
        Failure::Message(format!("cannot {what} {}: {e}", dir.display()))
    };
    let mut removed = false;
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(cannot("access", e)),
        Ok(meta) if !meta.is_dir() => {
            return fail(format!(
                "{} exists and is not a directory; choose another --dir",
                dir.display()
            ))
        }
        Ok(_) => {
            let is_demo = std::fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file());
            if is_demo {
                std::fs::remove_dir_all(dir)
                    .map_err(|e| cannot("remove the old demo directory", e))?;
                removed = true;
            } else if std::fs::read_dir(dir)
                .map_err(|e| cannot("list", e))?
                .next()
                .is_some()
            {
                return fail(format!(
                    "{} exists, is not empty and is not a demo directory (it has no {DEMO_MARKER} \
                     file); the demo deletes only its own directories: choose another --dir",
                    dir.display()
                ));
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| cannot("create", e))?;
    std::fs::write(
        &marker,
        "Created by `tracejournal demo`; the next demo run deletes this directory.\n",
    )
    .map_err(|e| cannot("write the marker file in", e))?;
    Ok(removed)
}

#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn demo(dir: Option<&Path>, agents: u16, events: u32, out: &mut dyn Write) -> CliResult {
    let dir = dir.map_or_else(|| PathBuf::from("tracejournal-demo"), Path::to_path_buf);
    let agents = usize::from(agents);
    let (crashed, open) = demo_roles(agents);
    let removed = prepare_demo_dir(&dir)?;
    writeln!(
        out,
        "tracejournal demo: {agents} coding agents write into one store; then their process is killed"
    )?;
    writeln!(
        out,
        "store: {}{}",
        dir.display(),
        if removed {
            " (the previous demo's directory was replaced)"
        } else {
            ""
        }
    )?;
    writeln!(out)?;
    out.flush()?;

    // Phase 1: the agents' process, which will not survive.
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Message(format!("cannot find this program's path: {e}")))?;
    let mut child = std::process::Command::new(exe)
        .arg("--dir")
        .arg(&dir)
        .arg("demo-child")
        .arg("--agents")
        .arg(agents.to_string())
        .arg("--events")
        .arg(events.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| Failure::Message(format!("cannot start the demo's child process: {e}")))?;
    // Held open until the kill: the child waits on it.
    let child_stdin = child.stdin.take();
    let pid = child.id();
    let mut ready = false;
    let child_out = io::BufReader::new(child.stdout.take().expect("piped"));
    for line in child_out.lines() {
        let line =
            line.map_err(|e| Failure::Message(format!("reading the child's output: {e}")))?;
        if line == DEMO_READY {
            ready = true;
            break;
        }
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    if !ready {
        drop(child_stdin);
        let status = child.wait();
        return fail(format!(
            "the demo's child process ended before it was done ({})",
            status.map_or_else(|e| e.to_string(), |s| s.to_string())
        ));
    }
    child
        .kill()
        .map_err(|e| Failure::Message(format!("cannot kill the child process: {e}")))?;
    let status = child
        .wait()
        .map_err(|e| Failure::Message(format!("waiting for the child process: {e}")))?;
    drop(child_stdin);
    writeln!(
        out,
        "[parent] killed process {pid} ({}): no close, no shutdown record, {} left open",
        kill_word(&status),
        plural(open.len() as u64, "session", "sessions")
    )?;
    writeln!(out)?;

    // Phase 2: a new process opens the store.
    let opened = Instant::now();
    let (store, report) = Store::open(&dir, StoreOptions::default())?;
    let open_time = opened.elapsed();
    let result = demo_recovered(
        &dir,
        &store,
        &report,
        open_time,
        (agents, crashed, &open),
        out,
    );
    close_store(store, result)
}

#[cfg(unix)]
fn kill_word(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(9) => "SIGKILL".to_string(),
        Some(n) => format!("signal {n}"),
        None => status.to_string(),
    }
}

#[cfg(not(unix))]
fn kill_word(status: &std::process::ExitStatus) -> String {
    status.to_string()
}

/// Phase 2 of the demo: what recovery did, the sessions, and a check of
/// every trace file against the store.
#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn demo_recovered(
    dir: &Path,
    store: &Store,
    report: &OpenReport,
    open_time: Duration,
    (agents, crashed, open): (usize, usize, &[usize]),
    out: &mut dyn Write,
) -> CliResult {
    let j = &report.journal;
    writeln!(
        out,
        "[parent] reopened the store in {} (recovery included):",
        millis_short(open_time)
    )?;
    writeln!(
        out,
        "  log: {} in {} ({}), replayed into {}",
        plural(j.records, "record", "records"),
        plural(j.segments as u64, "segment", "segments"),
        bytes(j.bytes),
        plural(report.sessions as u64, "session", "sessions"),
    )?;
    if j.truncated.is_empty() {
        writeln!(out, "  torn tail: none")?;
    } else {
        writeln!(
            out,
            "  torn tail: cut {} (writes in flight at the kill, never acknowledged)",
            bytes(j.bytes_truncated())
        )?;
    }
    let names: HashMap<String, String> = (0..agents)
        .map(|i| (demo_session_id(i), agent_name(i)))
        .collect();
    let name_of = |id: &str| names.get(id).cloned().unwrap_or_else(|| "?".into());
    writeln!(
        out,
        "  orphans: {} open when the process died, marked crashed by recovery before anything new is accepted:",
        plural(report.orphans_marked.len() as u64, "session was", "sessions were")
    )?;
    for id in &report.orphans_marked {
        writeln!(out, "    {}  {}", name_of(id), id)?;
    }
    if report.swept > 0 {
        writeln!(
            out,
            "  swept: {} left by a publish the kill interrupted",
            plural(report.swept as u64, "temporary file", "temporary files")
        )?;
    }
    store.flush()?;
    writeln!(out)?;
    let list = store.sessions();
    write_sessions_table(out, &list)?;
    writeln!(out)?;

    // The demo checks itself: every expectation, and every file on disk.
    let mut problems = Vec::new();
    let expect_status = |i: usize| -> (Status, Option<String>) {
        if i == crashed {
            (Status::Crashed, Some(crash_reason(i)))
        } else if open.contains(&i) {
            (Status::Crashed, Some(ORPHANED_REASON.to_string()))
        } else {
            (Status::Completed, None)
        }
    };
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut file_bytes = 0;
    for i in 0..agents {
        let id = demo_session_id(i);
        let Some(summary) = list.iter().find(|s| s.id == id) else {
            problems.push(format!("{}'s session {id} is missing", agent_name(i)));
            continue;
        };
        let (status, error) = expect_status(i);
        if summary.status != status || summary.error != error {
            problems.push(format!(
                "{} is {} ({:?}), expected {} ({:?})",
                agent_name(i),
                summary.status.as_str(),
                summary.error,
                status.as_str(),
                error
            ));
        }
        *counts.entry(summary.status.as_str()).or_default() += 1;
        let path = store.trace_path(&id);
        let file = std::fs::read(&path).map_err(|e| {
            Failure::Message(format!("cannot read trace file {}: {e}", path.display()))
        })?;
        file_bytes += file.len() as u64;
        let current = store.session(&id).unwrap_or_default();
        match serde_json::from_slice::<serde_json::Value>(&file) {
            Err(e) => problems.push(format!("{} is not valid JSON: {e}", path.display())),
            Ok(v) if v["summary"]["status"] != summary.status.as_str() => problems.push(format!(
                "{} says {}, the store says {}",
                path.display(),
                v["summary"]["status"],
                summary.status.as_str()
            )),
            Ok(_) if file != current => problems.push(format!(
                "{} is not the store's current rendering of the session",
                path.display()
            )),
            Ok(_) => {}
        }
    }
    if list.len() != agents {
        problems.push(format!("{} sessions, expected {agents}", list.len()));
    }
    let expected: HashSet<PathBuf> = list.iter().map(|s| store.trace_path(&s.id)).collect();
    let leftovers = std::fs::read_dir(store.traces_dir())
        .map_err(|e| Failure::Message(format!("cannot list the trace files: {e}")))?
        .filter_map(Result::ok)
        .filter(|e| !expected.contains(&e.path()))
        .count();
    if leftovers > 0 {
        problems.push(format!(
            "{} unexpected files in {}",
            leftovers,
            store.traces_dir().display()
        ));
    }
    if !problems.is_empty() {
        return fail(format!(
            "the demo's checks failed:\n  {}",
            problems.join("\n  ")
        ));
    }
    let by_status: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    writeln!(
        out,
        "checked: {} trace files, each complete JSON, byte-identical to the store's state ({}); no temporary files left",
        agents,
        by_status.join(", ")
    )?;
    writeln!(
        out,
        "trace files: {}{} ({})",
        store.traces_dir().display(),
        std::path::MAIN_SEPARATOR,
        bytes(file_bytes)
    )?;
    let example = demo_session_id(crashed);
    let program = std::env::args()
        .next()
        .unwrap_or_else(|| "tracejournal".into());
    writeln!(
        out,
        "look inside: {program} --dir {} show {} --pretty",
        dir.display(),
        &example[..8]
    )?;
    Ok(())
}

fn millis_short(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// What one demo agent did.
#[derive(Default)]
struct AgentRun {
    events: u64,
    duplicates: u64,
    latencies: Vec<Duration>,
}

#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn demo_child(dir: &Path, agents: u16, events: u32, out: &mut dyn Write) -> CliResult {
    if !dir.join(DEMO_MARKER).is_file() {
        return fail(format!(
            "{} is not a demo directory (demo-child is run by `tracejournal demo`)",
            dir.display()
        ));
    }
    let agents = usize::from(agents.max(1));
    let (crashed, open) = demo_roles(agents);
    let plans: Vec<AgentPlan> = (0..agents).map(|i| demo_plan(i, events as usize)).collect();
    let pid = std::process::id();
    let (store, _) = Store::open(dir, StoreOptions::default())?;
    writeln!(
        out,
        "[child {pid}] {agents} agent threads replay Claude Code sessions through one Store:"
    )?;
    writeln!(
        out,
        "  hook payloads, plus a generation span per model call; each line is its own atomic event;"
    )?;
    writeln!(
        out,
        "  an ingest returns once the event is fsynced (durability: sync); concurrent events share an fsync (group commit)"
    )?;
    out.flush()?;

    let barrier = std::sync::Barrier::new(agents + 1);
    let (died_tx, died_rx) = crossbeam_channel::unbounded::<usize>();
    let (elapsed, runs, crash_time) = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(i, plan)| {
                let stop_after = if i == crashed {
                    plan.crash_at
                } else if open.contains(&i) {
                    plan.pause_at
                } else {
                    None
                };
                let (store, barrier, died) = (&store, &barrier, died_tx.clone());
                scope.spawn(move || {
                    barrier.wait();
                    let run = run_agent(store, plan, stop_after);
                    if i == crashed {
                        let _ = died.send(i);
                    }
                    run
                })
            })
            .collect();
        drop(died_tx);
        barrier.wait();
        let start = Instant::now();
        // The supervisor: when an agent dies, mark its session crashed,
        // while the others keep writing.
        let crash_time = died_rx.recv().ok().map(|i| {
            let t = Instant::now();
            let r = store.mark_crashed(&demo_session_id(i), &crash_reason(i));
            r.map(|_| t.elapsed())
        });
        let runs: Vec<Result<AgentRun, String>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("an agent thread panicked".into()))
            })
            .collect();
        (start.elapsed(), runs, crash_time)
    });
    let mut all = AgentRun::default();
    for (i, run) in runs.into_iter().enumerate() {
        let run = run.map_err(|e| Failure::Message(format!("{}: {e}", agent_name(i))))?;
        all.events += run.events;
        all.duplicates += run.duplicates;
        all.latencies.extend(run.latencies);
    }
    let crash_time = crash_time
        .ok_or_else(|| Failure::Message("the crashing agent never reported".into()))??;
    let in_flight = plans[crashed]
        .crash_tool
        .as_deref()
        .map_or(String::new(), |t| {
            let article = if t.starts_with(['A', 'E', 'I', 'O', 'U']) {
                "an"
            } else {
                "a"
            };
            format!(", {article} {t} call in flight")
        });
    writeln!(
        out,
        "  {} died mid-turn{in_flight}; the supervisor thread marked its session crashed in {}:",
        agent_name(crashed),
        millis_short(crash_time)
    )?;
    writeln!(
        out,
        "    the marker jumps the queue (urgent lane) and the trace file says \"crashed\" before the call returns"
    )?;
    let secs = elapsed.as_secs_f64();
    writeln!(
        out,
        "  replayed at full speed (no model or tool time), so the sessions below last milliseconds"
    )?;
    writeln!(
        out,
        "  {} in {secs:.2} s: {} events/s; {}",
        plural(all.events, "event", "events"),
        thousands((all.events as f64 / secs.max(1e-9)) as u64),
        match all.duplicates {
            0 => "no retried deliveries".to_string(),
            n => format!(
                "{} acknowledged as duplicates, applied once",
                plural(n, "retried delivery", "retried deliveries")
            ),
        },
    )?;
    all.latencies.sort_unstable();
    let pct = |p: usize| {
        let v = &all.latencies;
        v.get((v.len().saturating_sub(1)) * p / 100)
            .copied()
            .unwrap_or_default()
    };
    writeln!(
        out,
        "  ack latency (call to return, event on disk): p50 {}, p99 {}, max {}",
        millis_short(pct(50)),
        millis_short(pct(99)),
        millis_short(all.latencies.last().copied().unwrap_or_default())
    )?;
    let still: Vec<String> = open.iter().map(|&i| agent_name(i)).collect();
    if !still.is_empty() {
        writeln!(out, "  still mid-turn, sessions open: {}", still.join(", "))?;
    }
    writeln!(out, "{DEMO_READY}")?;
    out.flush()?;
    // Wait to be killed. If the parent went away instead, die the same way:
    // without closing the store.
    let mut sink = Vec::new();
    let _ = io::Read::read_to_end(&mut io::stdin(), &mut sink);
    std::process::exit(70);
}

/// Replays `plan` (up to line `stop_after`, inclusive, if given).
fn run_agent(
    store: &Store,
    plan: &AgentPlan,
    stop_after: Option<usize>,
) -> Result<AgentRun, String> {
    let end = stop_after.map_or(plan.lines.len(), |i| i + 1);
    let mut run = AgentRun {
        latencies: Vec::with_capacity(end),
        ..AgentRun::default()
    };
    for (n, line) in plan.lines[..end].iter().enumerate() {
        let event = parse_line(line).map_err(|e| format!("line {n} of its plan: {e}"))?;
        let t = Instant::now();
        let ack = store.ingest(event).map_err(|e| e.to_string())?;
        run.latencies.push(t.elapsed());
        run.events += 1;
        run.duplicates += u64::from(ack.duplicate);
    }
    Ok(run)
}

// ------------------------------------------------------- demo sessions

/// A small deterministic generator (SplitMix64): the demo is the same on
/// every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }

    fn base62(&mut self, n: usize) -> String {
        const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..n)
            .map(|_| char::from(CHARS[(self.next() % 62) as usize]))
            .collect()
    }
}

fn agent_rng(index: usize) -> Rng {
    Rng::new(0x7ace_d00d_0000_0000 ^ (index as u64).wrapping_mul(0x1000_0001))
}

/// Demo agent `index`'s session id: a UUIDv4, as Claude Code uses.
fn demo_session_id(index: usize) -> String {
    let mut rng = agent_rng(index);
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        8 + (b >> 62),
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// One demo agent's session: JSON lines, and where it can die.
struct AgentPlan {
    lines: Vec<String>,
    /// The line after which the agent dies mid-turn (a tool call started).
    crash_at: Option<usize>,
    /// That tool's name.
    crash_tool: Option<String>,
    /// The line after which the agent is still working (between two tool
    /// calls) when its process dies.
    pause_at: Option<usize>,
}

/// A project: name, language, files.
struct Project {
    name: &'static str,
    lang: Lang,
    files: &'static [&'static str],
}

#[derive(Clone, Copy)]
enum Lang {
    Rust,
    Ts,
    Py,
    Go,
}

const PROJECTS: &[Project] = &[
    Project {
        name: "acme-api",
        lang: Lang::Rust,
        files: &[
            "src/main.rs",
            "src/handlers/orders.rs",
            "src/handlers/customers.rs",
            "src/db.rs",
            "src/error.rs",
            "tests/orders.rs",
        ],
    },
    Project {
        name: "web-dashboard",
        lang: Lang::Ts,
        files: &[
            "src/App.tsx",
            "src/hooks/useTheme.ts",
            "src/components/Sidebar.tsx",
            "src/api/client.ts",
            "src/pages/Usage.tsx",
            "tests/theme.test.ts",
        ],
    },
    Project {
        name: "ingest-worker",
        lang: Lang::Py,
        files: &[
            "worker/main.py",
            "worker/importer.py",
            "worker/queue.py",
            "worker/settings.py",
            "tests/test_importer.py",
        ],
    },
    Project {
        name: "gateway",
        lang: Lang::Go,
        files: &[
            "cmd/gateway/main.go",
            "internal/ratelimit/limiter.go",
            "internal/proxy/proxy.go",
            "internal/auth/jwt.go",
            "internal/ratelimit/limiter_test.go",
        ],
    },
];

/// (project index, first prompt).
const TASKS: &[(usize, &str)] = &[
    (0, "The /orders endpoint returns 500 when the cart is empty. Find out why and fix it, with a test."),
    (1, "Dark mode doesn't persist across reloads; store the choice in localStorage"),
    (2, "Port the CSV importer from pandas to polars and keep the tests green"),
    (3, "Add per-tenant rate limiting to the gateway (token bucket, configurable)"),
    (0, "Add cursor-based pagination to GET /customers"),
    (1, "Replace moment.js with date-fns everywhere"),
    (2, "Memory grows without bound when the queue is slow. Find the leak"),
    (3, "JWT validation accepts tokens with alg=none. Fix it and add a regression test"),
    (0, "Refunds over $10k need a second approver; implement the check"),
    (1, "The usage chart shows UTC dates; show them in the user's time zone"),
    (2, "Retry failed S3 uploads with exponential backoff and jitter"),
    (3, "The proxy drops the X-Request-Id header; propagate it upstream"),
    (0, "Invoice totals are off by a cent for some currencies. Use integer minor units"),
    (1, "Sidebar re-renders on every keystroke in the search box; fix the performance"),
    (2, "Make the importer idempotent: re-running a file must not duplicate rows"),
    (3, "Add a /healthz endpoint that checks the upstream pool"),
    (0, "Why is tests/orders.rs flaky on CI? Make it deterministic"),
    (1, "Add an API client retry for 429 responses, honoring Retry-After"),
    (2, "Type-check the worker with mypy --strict and fix what it finds"),
    (3, "Limiter state leaks for tenants that stopped sending; evict idle buckets"),
    (0, "Return 404 instead of 500 for unknown customer ids"),
    (1, "Write tests for useTheme"),
    (2, "The settings loader ignores INGEST_BATCH_SIZE; fix it"),
    (3, "go vet reports a copied lock in proxy.go; fix it"),
];

const FOLLOW_UPS: &[&str] = &[
    "Looks good. Also handle the case where the input is empty.",
    "Run the full test suite and fix anything that broke.",
    "Can you make the error message clearer for users?",
    "That broke the lint step, please fix it.",
    "Add a short note about this to the README.",
    "Now add a test for the failure path too.",
    "Simplify that: the helper function isn't needed.",
];

const MODELS: &[&str] = &[
    "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-1-20250805",
    "claude-haiku-4-5-20251001",
];

#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn code_lines(lang: Lang) -> &'static [&'static str] {
    match lang {
        Lang::Rust => &[
            "use crate::db::Pool;",
            "use crate::error::ApiError;",
            "",
            "pub async fn create_order(pool: &Pool, cart: Cart) -> Result<Order, ApiError> {",
            "    let first = cart.items.first().ok_or(ApiError::EmptyCart)?;",
            "    let total: i64 = cart.items.iter().map(|i| i.price_cents * i64::from(i.qty)).sum();",
            "    let mut tx = pool.begin().await?;",
            "    let id = sqlx::query_scalar!(\"INSERT INTO orders (customer_id, total) VALUES ($1, $2) RETURNING id\", cart.customer_id, total)",
            "        .fetch_one(&mut *tx)",
            "        .await?;",
            "    tx.commit().await?;",
            "    tracing::info!(order = id, items = cart.items.len(), \"order created\");",
            "    Ok(Order { id, total, currency: first.currency })",
            "}",
            "",
            "#[derive(Debug, thiserror::Error)]",
            "pub enum ApiError {",
            "    #[error(\"the cart is empty\")]",
            "    EmptyCart,",
            "    #[error(transparent)]",
            "    Db(#[from] sqlx::Error),",
            "}",
        ],
        Lang::Ts => &[
            "import { useEffect, useState } from 'react';",
            "import { format } from 'date-fns';",
            "",
            "export function useTheme(): [Theme, (t: Theme) => void] {",
            "  const [theme, setTheme] = useState<Theme>(() => (localStorage.getItem('theme') as Theme) ?? 'light');",
            "  useEffect(() => {",
            "    document.documentElement.dataset.theme = theme;",
            "    localStorage.setItem('theme', theme);",
            "  }, [theme]);",
            "  return [theme, setTheme];",
            "}",
            "",
            "export async function fetchUsage(client: ApiClient, from: Date): Promise<UsageRow[]> {",
            "  const res = await client.get(`/usage?from=${format(from, 'yyyy-MM-dd')}`);",
            "  if (!res.ok) throw new ApiError(res.status, await res.text());",
            "  return (await res.json()) as UsageRow[];",
            "}",
        ],
        Lang::Py => &[
            "import logging",
            "from dataclasses import dataclass",
            "",
            "import polars as pl",
            "",
            "log = logging.getLogger(__name__)",
            "",
            "@dataclass(frozen=True)",
            "class ImportResult:",
            "    rows: int",
            "    skipped: int",
            "",
            "def import_csv(path: str, batch_size: int = 5000) -> ImportResult:",
            "    frame = pl.read_csv(path, infer_schema_length=1000)",
            "    frame = frame.unique(subset=[\"external_id\"], keep=\"first\")",
            "    skipped = 0",
            "    for batch in frame.iter_slices(batch_size):",
            "        skipped += upsert(batch)",
            "    log.info(\"imported %s rows from %s (%s skipped)\", frame.height, path, skipped)",
            "    return ImportResult(rows=frame.height, skipped=skipped)",
        ],
        Lang::Go => &[
            "package ratelimit",
            "",
            "import (",
            "\t\"sync\"",
            "\t\"time\"",
            ")",
            "",
            "type Limiter struct {",
            "\tmu      sync.Mutex",
            "\tbuckets map[string]*bucket",
            "\trate    float64",
            "\tburst   float64",
            "}",
            "",
            "func (l *Limiter) Allow(tenant string, now time.Time) bool {",
            "\tl.mu.Lock()",
            "\tdefer l.mu.Unlock()",
            "\tb, ok := l.buckets[tenant]",
            "\tif !ok {",
            "\t\tb = &bucket{tokens: l.burst, last: now}",
            "\t\tl.buckets[tenant] = b",
            "\t}",
            "\tb.refill(now, l.rate, l.burst)",
            "\treturn b.take()",
            "}",
        ],
    }
}

/// (command, success output, failure output).
fn commands(lang: Lang) -> &'static [(&'static str, &'static str, &'static str)] {
    match lang {
        Lang::Rust => &[
            ("cargo test --all-targets", "running 42 tests\n..........................................\ntest result: ok. 42 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.84s", "running 42 tests\n....................F.....................\nfailures:\n\n---- orders::empty_cart_is_rejected stdout ----\nthread 'orders::empty_cart_is_rejected' panicked at tests/orders.rs:57:5:\nassertion `left == right` failed\n  left: 500\n right: 422\n\ntest result: FAILED. 41 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"),
            ("cargo clippy --all-targets -- -D warnings", "    Checking acme-api v0.4.2 (/home/dev/acme-api)\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 6.21s", "error: this `if` has identical blocks\n  --> src/handlers/orders.rs:88:9\n   |\n88 |         if cart.items.is_empty() {\n   |         ^^^^^^^^^^^^^^^^^^^^^^^^^^\n   = note: `-D clippy::if-same-then-else` implied by `-D warnings`"),
            ("git status --short", " M src/handlers/orders.rs\n M tests/orders.rs", "fatal: not a git repository"),
        ],
        Lang::Ts => &[
            ("npm test -- --run", " ✓ tests/theme.test.ts (4 tests) 31ms\n ✓ tests/client.test.ts (7 tests) 58ms\n\n Test Files  2 passed (2)\n      Tests  11 passed (11)\n   Duration  1.42s", " ❯ tests/theme.test.ts (4 tests | 1 failed) 35ms\n   × useTheme > restores the stored theme\n     → expected 'light' to be 'dark'\n\n Test Files  1 failed | 1 passed (2)\n      Tests  1 failed | 10 passed (11)"),
            ("npx tsc --noEmit", "", "src/api/client.ts(41,7): error TS2322: Type 'string | null' is not assignable to type 'string'.\n  Type 'null' is not assignable to type 'string'."),
            ("npm run lint", "> web-dashboard@1.9.0 lint\n> eslint src --max-warnings 0", "src/components/Sidebar.tsx\n  23:9  error  React Hook useEffect has a missing dependency: 'query'  react-hooks/exhaustive-deps\n\n✖ 1 problem (1 error, 0 warnings)"),
        ],
        Lang::Py => &[
            ("pytest -q", "........................                                    [100%]\n24 passed in 2.91s", ".......F................                                    [100%]\n=================================== FAILURES ===================================\n___________________________ test_import_is_idempotent __________________________\n    assert count_rows() == 3\nE   assert 6 == 3\n1 failed, 23 passed in 3.02s"),
            ("ruff check .", "All checks passed!", "worker/importer.py:14:5: F841 Local variable `frame` is assigned to but never used\nFound 1 error."),
            ("mypy --strict worker", "Success: no issues found in 6 source files", "worker/queue.py:31: error: Function is missing a return type annotation  [no-untyped-def]\nFound 1 error in 1 file (checked 6 source files)"),
        ],
        Lang::Go => &[
            ("go test ./...", "ok  \tgateway/internal/ratelimit\t0.412s\nok  \tgateway/internal/proxy\t0.188s\nok  \tgateway/internal/auth\t0.097s", "--- FAIL: TestLimiterEvictsIdle (0.00s)\n    limiter_test.go:48: buckets = 3, want 1\nFAIL\nFAIL\tgateway/internal/ratelimit\t0.031s"),
            ("go vet ./...", "", "# gateway/internal/proxy\ninternal/proxy/proxy.go:77:14: call of copyConfig copies lock value: gateway/internal/proxy.Config contains sync.Mutex"),
            ("git diff --stat", " internal/ratelimit/limiter.go      | 34 +++++++++++++++++++++++-----\n internal/ratelimit/limiter_test.go | 21 ++++++++++++++++\n 2 files changed, 49 insertions(+), 6 deletions(-)", "fatal: bad revision"),
        ],
    }
}

/// A JSON object with its members in this order (hook payloads read best
/// in the order agents send them).
fn ordered(members: &[(&str, serde_json::Value)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&serde_json::Value::from(*k).to_string());
        s.push(':');
        s.push_str(&v.to_string());
    }
    s.push('}');
    s
}

/// Builds one agent's session, turn by turn.
struct PlanBuilder {
    rng: Rng,
    session: String,
    project: &'static Project,
    base: Vec<(&'static str, serde_json::Value)>,
    model: &'static str,
    lines: Vec<String>,
    generations: u64,
    /// (line index, tool name) of each PreToolUse of the main agent.
    pre_tools: Vec<(usize, String)>,
    /// Line index of each PostToolUse of the main agent.
    post_tools: Vec<usize>,
    agents: u64,
}

impl PlanBuilder {
    fn hook(&mut self, name: &str, extra: Vec<(&str, serde_json::Value)>) -> usize {
        let mut members: Vec<(&str, serde_json::Value)> = self.base.clone();
        members.push(("hook_event_name", name.into()));
        members.extend(extra);
        self.lines.push(ordered(&members));
        self.lines.len() - 1
    }

    fn typed(&mut self, value: serde_json::Value) {
        self.lines.push(value.to_string());
    }

    fn tool_id(&mut self) -> String {
        format!("toolu_01{}", self.rng.base62(22))
    }

    fn file_content(&mut self, min: usize, max: usize) -> (String, usize) {
        let code = code_lines(self.project.lang);
        let want = self.rng.range(min as u64, max as u64) as usize;
        let mut text = String::new();
        let mut n = 0;
        let mut i = self.rng.next() as usize % code.len();
        while text.len() < want {
            text.push_str(code[i % code.len()]);
            text.push('\n');
            i += 1;
            n += 1;
        }
        (text, n)
    }

    /// A generation span: the model call that asked for the next tools.
    fn generation(&mut self, last: bool) {
        self.generations += 1;
        let span = format!("gen-{}", self.generations);
        let (session, model) = (self.session.clone(), self.model);
        self.typed(serde_json::json!({
            "type": "span_start", "session": session, "span": span, "kind": "generation",
            "model": {"modelId": model, "providerId": "anthropic"},
        }));
        let input = self.rng.range(3, 2_500);
        let cache_read = 9_000 + self.generations * self.rng.range(400, 1_200);
        let cache_write = self.rng.range(300, 4_000);
        let output = self.rng.range(60, 1_800);
        let (pin, pout, pcr, pcw) = if model.contains("opus") {
            (15.0, 75.0, 1.5, 18.75)
        } else if model.contains("haiku") {
            (1.0, 5.0, 0.1, 1.25)
        } else {
            (3.0, 15.0, 0.3, 3.75)
        };
        let cost = (input as f64 * pin
            + output as f64 * pout
            + cache_read as f64 * pcr
            + cache_write as f64 * pcw)
            / 1e6;
        let cost = (cost * 1e6).round() / 1e6;
        self.typed(serde_json::json!({
            "type": "span_end", "session": session, "span": span,
            "tokens": {"input": input, "output": output, "cacheRead": cache_read, "cacheWrite": cache_write},
            "cost": cost,
            "finish_reason": if last { "end_turn" } else { "tool_use" },
        }));
    }

    /// One tool call: PreToolUse, then PostToolUse or PostToolUseFailure.
    #[allow(clippy::too_many_lines)] // TODO(issue 11): split
    fn tool_call(&mut self, agent: Option<(&str, &str)>) {
        let lang = self.project.lang;
        let file = (*self.rng.pick(self.project.files)).to_string();
        let dir = self.base[2].1.as_str().unwrap_or_default().to_string();
        let path = format!("{dir}/{file}");
        let roll = self.rng.range(0, 99);
        let mut failed: Option<String> = None;
        let duration = self.rng.range(8, 400);
        let (tool, input, response) = match roll {
            0..=34 => {
                let (content, lines) = self.file_content(400, 4_000);
                (
                    "Read",
                    serde_json::json!({"file_path": path}),
                    serde_json::json!({"type": "text", "file": {"filePath": path, "content": content, "numLines": lines, "startLine": 1, "totalLines": lines}}),
                )
            }
            35..=49 => {
                let pattern = *self.rng.pick(&[
                    "unwrap\\(\\)",
                    "TODO",
                    "items",
                    "retry",
                    "fn |func |def ",
                    "localStorage",
                    "Mutex",
                ]);
                let hits: Vec<String> = (0..self.rng.range(2, 9))
                    .map(|_| {
                        let f = self.rng.pick(self.project.files);
                        let l = self.rng.range(3, 240);
                        let code = self.rng.pick(code_lines(lang)).trim();
                        format!("{f}:{l}:{code}")
                    })
                    .collect();
                (
                    "Grep",
                    serde_json::json!({"pattern": pattern, "path": dir, "output_mode": "content", "-n": true}),
                    serde_json::json!({"mode": "content", "numFiles": hits.len(), "filenames": [], "content": hits.join("\n"), "numLines": hits.len()}),
                )
            }
            50..=69 => {
                let (old, _) = self.file_content(80, 600);
                let (new, _) = self.file_content(80, 900);
                (
                    "Edit",
                    serde_json::json!({"file_path": path, "old_string": old, "new_string": new}),
                    serde_json::json!({"filePath": path, "oldString": old, "newString": new, "userModified": false, "replaceAll": false}),
                )
            }
            70..=91 => {
                let (command, ok, err) = *self.rng.pick(commands(lang));
                let fails = self.rng.chance(18);
                if fails {
                    failed = Some(format!("Exit code 1\n{err}"));
                }
                (
                    "Bash",
                    serde_json::json!({"command": command, "description": format!("Run {}", command.split(' ').next().unwrap_or(command)), "timeout": 120000}),
                    serde_json::json!({"stdout": ok, "stderr": "", "interrupted": false, "isImage": false}),
                )
            }
            _ => {
                let ext = match lang {
                    Lang::Rust => "rs",
                    Lang::Ts => "ts",
                    Lang::Py => "py",
                    Lang::Go => "go",
                };
                let names: Vec<String> = self
                    .project
                    .files
                    .iter()
                    .map(|f| format!("{dir}/{f}"))
                    .collect();
                (
                    "Glob",
                    serde_json::json!({"pattern": format!("**/*.{ext}")}),
                    serde_json::json!({"filenames": names, "durationMs": duration, "numFiles": names.len(), "truncated": false}),
                )
            }
        };
        let id = self.tool_id();
        let mut agent_fields: Vec<(&str, serde_json::Value)> = Vec::new();
        if let Some((agent_id, agent_type)) = agent {
            agent_fields.push(("agent_id", agent_id.into()));
            agent_fields.push(("agent_type", agent_type.into()));
        }
        let mut pre = agent_fields.clone();
        pre.extend([
            ("tool_name", tool.into()),
            ("tool_input", input.clone()),
            ("tool_use_id", id.clone().into()),
        ]);
        let pre_line = self.hook("PreToolUse", pre);
        if agent.is_none() {
            self.pre_tools.push((pre_line, tool.to_string()));
        }
        if tool == "Bash" && self.rng.chance(15) {
            self.hook(
                "Notification",
                vec![
                    ("message", "Claude needs your permission to use Bash".into()),
                    ("notification_type", "permission_prompt".into()),
                ],
            );
        }
        let mut post = agent_fields;
        post.extend([("tool_name", tool.into()), ("tool_input", input)]);
        let post_line = match failed {
            Some(error) => {
                post.extend([
                    ("tool_use_id", id.into()),
                    ("error", error.into()),
                    ("is_interrupt", false.into()),
                ]);
                self.hook("PostToolUseFailure", post)
            }
            None => {
                post.extend([
                    ("tool_response", response),
                    ("tool_use_id", id.into()),
                    ("duration_ms", duration.into()),
                ]);
                self.hook("PostToolUse", post)
            }
        };
        if agent.is_none() {
            self.post_tools.push(post_line);
        }
        // Now and then the hook's HTTP call times out after the store took
        // the event, and the hook retries: the same payload again.
        if self.rng.chance(2) {
            let again = self.lines[post_line].clone();
            self.lines.push(again);
        }
    }

    /// A subagent doing a few tool calls for the main agent.
    fn subagent(&mut self) {
        self.agents += 1;
        let agent_id = format!("a{}", self.rng.base62(7).to_lowercase());
        let task_id = self.tool_id();
        let task_input = serde_json::json!({
            "description": "Survey the code",
            "prompt": "Find every place that touches the code in question and report file:line with one sentence each.",
            "subagent_type": "Explore",
        });
        self.hook(
            "PreToolUse",
            vec![
                ("tool_name", "Task".into()),
                ("tool_input", task_input.clone()),
                ("tool_use_id", task_id.clone().into()),
            ],
        );
        self.hook(
            "SubagentStart",
            vec![
                ("agent_id", agent_id.clone().into()),
                ("agent_type", "Explore".into()),
            ],
        );
        for _ in 0..self.rng.range(2, 4) {
            self.tool_call(Some((&agent_id, "Explore")));
        }
        let summary = format!(
            "Found the relevant code in {} and {}; the second one is the only caller.",
            self.rng.pick(self.project.files),
            self.rng.pick(self.project.files)
        );
        let transcript = format!(
            "{}/subagents/agent-{agent_id}.jsonl",
            self.base[1]
                .1
                .as_str()
                .unwrap_or_default()
                .trim_end_matches(".jsonl")
        );
        self.hook(
            "SubagentStop",
            vec![
                ("stop_hook_active", false.into()),
                ("agent_id", agent_id.clone().into()),
                ("agent_type", "Explore".into()),
                ("agent_transcript_path", transcript.into()),
                ("last_assistant_message", summary.clone().into()),
            ],
        );
        let duration = self.rng.range(4_000, 40_000);
        self.hook(
            "PostToolUse",
            vec![
                ("tool_name", "Task".into()),
                ("tool_input", task_input),
                (
                    "tool_response",
                    serde_json::json!({"content": [{"type": "text", "text": summary}], "totalDurationMs": duration, "totalToolUseCount": 3}),
                ),
                ("tool_use_id", task_id.into()),
                ("duration_ms", duration.into()),
            ],
        );
    }

    fn turn(&mut self, prompt: &str) {
        self.hook("UserPromptSubmit", vec![("prompt", prompt.into())]);
        if self.agents == 0 && self.rng.chance(40) {
            self.subagent();
        }
        let calls = self.rng.range(2, 5);
        for c in 0..calls {
            let last = c + 1 == calls;
            self.generation(last);
            if !last {
                for _ in 0..self.rng.range(1, 3) {
                    self.tool_call(None);
                }
            }
        }
        let message = *self.rng.pick(&[
            "Done. The fix is in place and the tests pass.",
            "I made the change and added a test for it; the full suite passes.",
            "Fixed. I also tightened the error message while I was there.",
            "Done — one test needed updating because it encoded the old behaviour.",
        ]);
        self.hook(
            "Stop",
            vec![
                ("stop_hook_active", false.into()),
                ("last_assistant_message", message.into()),
            ],
        );
    }
}

#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn demo_plan(index: usize, events: usize) -> AgentPlan {
    let session = demo_session_id(index);
    let mut rng = agent_rng(index);
    rng.next();
    rng.next();
    let (project, prompt) = TASKS[index % TASKS.len()];
    let project = &PROJECTS[project];
    let model = *rng.pick(MODELS);
    let cwd = format!("/home/dev/{}", project.name);
    let transcript = format!(
        "/home/dev/.claude/projects/-home-dev-{}/{session}.jsonl",
        project.name
    );
    let mut b = PlanBuilder {
        rng,
        session: session.clone(),
        project,
        base: vec![
            ("session_id", session.into()),
            ("transcript_path", transcript.into()),
            ("cwd", cwd.into()),
            ("permission_mode", "default".into()),
        ],
        model,
        lines: Vec::new(),
        generations: 0,
        pre_tools: Vec::new(),
        post_tools: Vec::new(),
        agents: 0,
    };
    b.hook(
        "SessionStart",
        vec![("source", "startup".into()), ("model", model.into())],
    );
    b.turn(prompt);
    let mut compacted = false;
    while b.lines.len() + 1 < events {
        if !compacted && b.lines.len() > events * 2 / 3 && b.rng.chance(50) {
            compacted = true;
            b.hook(
                "PreCompact",
                vec![
                    ("trigger", "auto".into()),
                    ("custom_instructions", "".into()),
                ],
            );
        }
        let prompt = *b.rng.pick(FOLLOW_UPS);
        b.turn(prompt);
    }
    let reason = *b
        .rng
        .pick(&["prompt_input_exit", "prompt_input_exit", "logout", "clear"]);
    b.hook("SessionEnd", vec![("reason", reason.into())]);
    let len = b.lines.len();
    // Every turn has at least one tool call of the main agent, so both
    // are found.
    let crash = b
        .pre_tools
        .iter()
        .find(|(i, _)| *i >= len * 3 / 5)
        .or(b.pre_tools.last())
        .cloned();
    let pause_at = b
        .post_tools
        .iter()
        .copied()
        .find(|&i| i >= len * 7 / 10)
        .or(b.post_tools.last().copied());
    AgentPlan {
        lines: b.lines,
        crash_at: crash.as_ref().map(|(i, _)| *i),
        crash_tool: crash.map(|(_, t)| t),
        pause_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_keeps_bytes_and_drops_outer_whitespace() {
        assert_eq!(
            json_text(b" {\"b\": 1.50,\n \"a\": \"x y\\\" z\"}\n").as_deref(),
            Some("{\"b\":1.50,\"a\":\"x y\\\" z\"}")
        );
        assert_eq!(json_text(b"not json"), None);
        assert_eq!(json_text(b"\"\xff\""), None);
        assert_eq!(json_text(b""), None);
    }

    #[test]
    fn default_dir_follows_xdg_data_home_then_home() {
        let home = Some(PathBuf::from("/home/u"));
        let xdg = Some(PathBuf::from("/data"));
        let relative = Some(PathBuf::from("data"));
        if cfg!(target_os = "macos") {
            let mac = PathBuf::from("/home/u/Library/Application Support/tracejournal");
            assert_eq!(default_dir(home.clone(), xdg), Some(mac));
        } else {
            assert_eq!(
                default_dir(home.clone(), xdg.clone()),
                Some(PathBuf::from("/data/tracejournal"))
            );
            assert_eq!(
                default_dir(None, xdg),
                Some(PathBuf::from("/data/tracejournal"))
            );
            assert_eq!(
                default_dir(home.clone(), relative),
                Some(PathBuf::from("/home/u/.local/share/tracejournal"))
            );
            assert_eq!(
                default_dir(home, None),
                Some(PathBuf::from("/home/u/.local/share/tracejournal"))
            );
        }
        assert_eq!(default_dir(None, None), None);
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        assert_eq!(hex(&[0x00, 0xab, 0x10, 0xff]), "00ab10ff");
    }

    #[test]
    fn table_cells_are_escaped_and_cut() {
        assert_eq!(cell("plain", 10), "plain");
        assert_eq!(cell("a\nb\u{1b}[2J", 20), "a\\nb\\u{1b}[2J");
        assert_eq!(cell("\u{202e}evil", 20), "\\u{202e}evil");
        assert_eq!(cell("abcdefghij", 5), "abcd…");
        assert_eq!(cell("ééééé", 5), "ééééé");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(100), "100");
        assert_eq!(tokens(9_999), "9,999");
        assert_eq!(tokens(48_240), "48.2k");
        assert_eq!(tokens(1_250_000), "1.25M");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(245_000), "4m 05s");
        assert_eq!(duration(7_980_000), "2h 13m");
        assert_eq!(cost(0.0), "$0.00");
        assert_eq!(cost(0.001), "<$0.01");
        assert_eq!(cost(12.345), "$12.35");
        assert_eq!(started(1_773_568_805_000), "2026-03-15 10:00:05");
        assert_eq!(plural(1, "event", "events"), "1 event");
        assert_eq!(plural(1_000, "event", "events"), "1,000 events");
    }

    #[test]
    fn demo_plans_are_valid_and_deterministic() {
        for agents in [1, 2, 3, 24] {
            let (crashed, open) = demo_roles(agents);
            assert!(crashed < agents);
            assert!(open.iter().all(|&i| i < agents && i != crashed));
            assert_eq!(open.is_empty(), agents == 1);
        }
        let a = demo_plan(6, 60);
        let b = demo_plan(6, 60);
        assert_eq!(a.lines, b.lines);
        assert!(a.lines.len() >= 60);
        for line in &a.lines {
            let event = parse_line(line).expect("every planned line parses");
            assert_eq!(event.session, demo_session_id(6));
        }
        let crash = a.crash_at.expect("a tool call to die in");
        assert!(a.lines[crash].contains("\"PreToolUse\""));
        let pause = a.pause_at.expect("a tool call to pause after");
        assert!(a.lines[pause].contains("\"PostToolUse"));
        assert_ne!(demo_session_id(0), demo_session_id(1));
    }

    #[test]
    fn lsn_ranges_read_well() {
        assert_eq!(lsn_range(0, 1, 1), "none (next 1)");
        assert_eq!(lsn_range(3, 1, 4), "1 to 3 (next 4)");
    }
}
