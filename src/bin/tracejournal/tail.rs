//! `tail`: committed events as they land, read beside a running writer.

use crate::failure::{CliResult, Failure};
use crate::open::{open_existing_snapshot, require_dir, resolve_in};
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;
use tracejournal::event::{Entry, Event};
use tracejournal::{StoreOptions, StoreSnapshot};

/// How often `tail` looks for new records. Polling a directory listing and
/// the end of one file costs a few system calls; 100 ms keeps the delay
/// below what a person notices.
const TAIL_POLL: Duration = Duration::from_millis(100);

/// `tail`: committed events as they land, one JSON object per line.
pub(crate) fn tail(
    dir: &Path,
    session: Option<&str>,
    all: bool,
    count: Option<u64>,
    follow: bool,
    out: &mut dyn Write,
) -> CliResult {
    require_dir(dir)?;
    let Some(snapshot) = wait_for_store(dir, follow)? else {
        return Ok(());
    };
    let session = match session {
        Some(wanted) => Some(session_to_follow(dir, &snapshot, wanted)?),
        None => None,
    };
    let mut printer = Printer {
        session,
        count,
        printed: 0,
        out,
    };
    if printer.done() {
        return Ok(());
    }
    if all && print_log(&snapshot, &mut printer)? {
        return Ok(());
    }
    print_new(dir, snapshot, &mut printer, follow)
}

/// The store in `dir` read-only; if there is none yet, waits for a writer
/// to create one (`follow`) or returns `None`.
fn wait_for_store(dir: &Path, follow: bool) -> CliResult<Option<StoreSnapshot>> {
    loop {
        match open_existing_snapshot(dir)? {
            Some(snapshot) => return Ok(Some(snapshot)),
            None if follow => std::thread::sleep(TAIL_POLL),
            None => return Ok(None),
        }
    }
}

/// The session `wanted` names: an id that matches one session (or a prefix
/// of one); an id not in the store yet is taken as it is, to wait for.
fn session_to_follow(dir: &Path, snapshot: &StoreSnapshot, wanted: &str) -> CliResult<String> {
    let list = snapshot.sessions();
    if list.iter().any(|s| s.id.starts_with(wanted)) {
        resolve_in(dir, list, wanted)
    } else {
        Ok(wanted.to_string())
    }
}

/// Prints the events `tail` was asked for, and counts them.
struct Printer<'a> {
    /// Only this session's events, if given.
    session: Option<String>,
    /// Stop after this many events, if given.
    count: Option<u64>,
    /// Events printed so far.
    printed: u64,
    out: &'a mut dyn Write,
}

impl Printer<'_> {
    /// Whether `count` events are printed.
    fn done(&self) -> bool {
        self.count.is_some_and(|n| self.printed >= n)
    }

    /// Prints `entry` if it is an event of the session asked for; true once
    /// `count` events are printed.
    fn print(&mut self, lsn: u64, entry: &Entry) -> CliResult<bool> {
        if let Entry::Event(event) = entry {
            if self.session.as_ref().is_none_or(|id| *id == event.session) {
                self.out.write_all(tail_line(lsn, event).as_bytes())?;
                self.out.flush()?;
                self.printed += 1;
            }
        }
        Ok(self.done())
    }
}

/// `--all`: prints every event still in the log; true once `count` events
/// are printed.
fn print_log(snapshot: &StoreSnapshot, printer: &mut Printer<'_>) -> CliResult<bool> {
    let journal = snapshot.journal();
    for record in journal.read_from(journal.first_lsn())? {
        let record = record?;
        if record.kind != tracejournal::event::ENTRY_KIND {
            continue;
        }
        let entry = Entry::decode(&record.payload)
            .map_err(|e| Failure::Message(format!("LSN {}: {}", record.lsn, e.message())))?;
        if printer.print(record.lsn, &entry)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Prints events as they are committed (with `follow`; else those
/// committed now), reopening the snapshot when entries it had not read were
/// compacted into a checkpoint.
fn print_new(
    dir: &Path,
    mut snapshot: StoreSnapshot,
    printer: &mut Printer<'_>,
    follow: bool,
) -> CliResult {
    loop {
        match snapshot.refresh() {
            Ok(entries) => {
                for committed in &entries {
                    if printer.print(committed.lsn, &committed.entry)? {
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
