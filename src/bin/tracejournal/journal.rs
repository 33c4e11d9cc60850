//! The journal commands, on the raw log: `append`, `dump`, `verify`,
//! `stats`.

use crate::failure::{CliResult, Failure};
use crate::format::{lsn_range, millis};
use crate::open::{
    note_where_reading_stops, open_existing, open_read_only, require_dir, warn_about_cuts,
};
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, Write};
use std::path::Path;
use tracejournal::layout;
use tracejournal::ReadOnlyJournal;
use tracejournal::Truncation;
use tracejournal::{Durability, Journal, LogRecord, Options, Record, RecoveryReport, Ticket};

/// The record type `append` gives every line it reads: one JSON value.
pub const RECORD_TYPE_JSON: u8 = 1;

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

/// `append`: one record per line of JSON read from `input`.
pub(crate) fn append(
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

/// `dump`: every record from `from` (else the first) as a line of JSON.
pub(crate) fn dump(dir: &Path, from: Option<u64>, out: &mut dyn Write) -> CliResult {
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

/// `verify`: a dry-run recovery (or, with `repair`, a real one) and what it
/// found.
pub(crate) fn verify(dir: &Path, repair: bool, out: &mut dyn Write) -> CliResult {
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

/// A torn tail: file, offset, length and why.
pub(crate) fn describe_cut(t: &Truncation) -> String {
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

/// `stats`: the store's files, then what the log holds.
pub(crate) fn stats(dir: &Path, out: &mut dyn Write) -> CliResult {
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
    writeln!(out, "journal: {}", dir.display())?;
    write_files(out, &files)?;
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
    write_record_types(out, &types)?;
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

/// The segments and other top-level files one by one, then each
/// subdirectory's file count and size.
fn write_files(out: &mut dyn Write, files: &[(String, u64)]) -> io::Result<()> {
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
    Ok(())
}

/// How many record types, then each one's records and payload bytes.
fn write_record_types(out: &mut dyn Write, types: &TypeCounts) -> io::Result<()> {
    writeln!(out, "record types: {}", types.len())?;
    for (kind, (count, bytes)) in types {
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
}
