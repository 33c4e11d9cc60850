//! `tracejournal`: the command-line tool for a journal directory.
//!
//! ```text
//! tracejournal --dir DIR append [--durability sync|buffered|none] < events.jsonl
//! tracejournal --dir DIR dump [--from LSN]
//! tracejournal --dir DIR verify [--repair]
//! tracejournal --dir DIR stats
//! ```
//!
//! Errors go to stderr as `error: <message>` with exit code 1; usage errors
//! exit with code 2. Everything else goes to stdout.

use clap::{Parser, Subcommand, ValueEnum};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tracejournal::recovery::Truncation;
use tracejournal::segment;
use tracejournal::{Durability, Journal, LogRecord, Options, Record, RecoveryReport, Ticket};

/// The record type `append` gives every line it reads: one JSON value.
pub const RECORD_TYPE_JSON: u8 = 1;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "tracejournal",
    version,
    about = "Append to, read, check and describe a tracejournal directory"
)]
pub struct Cli {
    /// The journal directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
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

fn run(cli: &Cli, out: &mut dyn Write) -> CliResult {
    match &cli.command {
        Command::Append { durability } => {
            let stdin = io::stdin();
            append(&cli.dir, (*durability).into(), &mut stdin.lock(), out)
        }
        Command::Dump { from } => dump(&cli.dir, *from, out),
        Command::Verify { repair } => verify(&cli.dir, *repair, out),
        Command::Stats => stats(&cli.dir, out),
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

fn submit_error(line: u64, e: &tracejournal::Error) -> String {
    match e {
        tracejournal::Error::RecordTooLarge { len, max, .. } => format!(
            "line {line} is {len} bytes, larger than the maximum record size of {max} bytes"
        ),
        other => format!("line {line}: {other}"),
    }
}

// ------------------------------------------------------------------ dump

fn dump(dir: &Path, from: Option<u64>, out: &mut dyn Write) -> CliResult {
    let Some((journal, report)) = open_existing(dir)? else {
        return match from {
            Some(lsn) if lsn != 1 => Err(Failure::Message(format!(
                "LSN {lsn} is not readable: the journal in {} holds no records",
                dir.display()
            ))),
            _ => Ok(()),
        };
    };
    warn_about_cuts(&report);
    let start = from.unwrap_or_else(|| journal.first_lsn());
    let result = (|| -> CliResult {
        for record in journal.read_from(start)? {
            out.write_all(dump_line(&record?).as_bytes())?;
        }
        Ok(())
    })();
    let closed = journal.close();
    result?;
    closed?;
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
        None => (Journal::inspect(dir, &Options::default())?, false),
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
        "torn tail (the normal result of a crash, not corruption)"
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

fn stats(dir: &Path, out: &mut dyn Write) -> CliResult {
    let (report, types) = match open_existing(dir)? {
        Some((journal, report)) => {
            let mut types = TypeCounts::new();
            let read = (|| -> CliResult {
                for record in journal.read_from(journal.first_lsn())? {
                    let record = record?;
                    let entry = types.entry(record.kind).or_default();
                    entry.0 += 1;
                    entry.1 += record.payload.len() as u64;
                }
                Ok(())
            })();
            let closed = journal.close();
            read?;
            closed?;
            (report, types)
        }
        None => (
            Journal::inspect(dir, &Options::default())?,
            TypeCounts::new(),
        ),
    };
    let files = list_files(dir)?;
    let (segments, others): (Vec<_>, Vec<_>) = files
        .iter()
        .partition(|(name, _)| segment::parse_file_name(name).is_some());
    let width = files.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
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
        "disk bytes: {disk} (all {} files in the directory)",
        files.len()
    )?;
    writeln!(out, "record types: {}", types.len())?;
    for (kind, (count, bytes)) in &types {
        let name = if *kind == RECORD_TYPE_JSON {
            " (json)"
        } else {
            ""
        };
        writeln!(
            out,
            "  type {kind}{name}: {count} records, {bytes} payload bytes"
        )?;
    }
    writeln!(out, "recovery time: {}", millis(report.elapsed))?;
    for t in &report.truncated {
        writeln!(out, "recovery cut a torn tail: {}", describe_cut(t))?;
        if let Some(copy) = &t.copy {
            writeln!(out, "  copy of the cut bytes: {}", copy.display())?;
        }
    }
    for p in &report.removed_temp_files {
        writeln!(out, "recovery removed temporary file: {}", p.display())?;
    }
    Ok(())
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
        .any(|(name, _)| segment::parse_file_name(name).is_some())
    {
        return Ok(None);
    }
    Ok(Some(Journal::open(dir, Options::default())?))
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
    fn hex_is_lowercase_pairs() {
        assert_eq!(hex(&[0x00, 0xab, 0x10, 0xff]), "00ab10ff");
    }

    #[test]
    fn lsn_ranges_read_well() {
        assert_eq!(lsn_range(0, 1, 1), "none (next 1)");
        assert_eq!(lsn_range(3, 1, 4), "1 to 3 (next 4)");
    }
}
