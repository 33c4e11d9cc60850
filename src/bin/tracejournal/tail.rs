//! `tail`: committed events as they land, read beside a running writer.

use crate::failure::{CliResult, Failure};
use crate::open::{open_existing_snapshot, require_dir, resolve_in};
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;
use tracejournal::event::{Entry, Event};
use tracejournal::readonly::StoreSnapshot;
use tracejournal::store::StoreOptions;

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
            Err(tracejournal::Error::LsnOutOfRange { lsn, .. }) => {
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
