//! Opening what a command works on (a journal, a store, a read-only
//! snapshot), never creating one where a command only reads, and what the
//! tool says on stderr about the open: torn tails cut or left, checkpoints
//! skipped, entries lost to salvage, unknown trace files.

use crate::failure::{fail, CliResult, Failure};
use crate::format::quoted;
use crate::journal::describe_cut;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use tracejournal::layout;
use tracejournal::{Journal, Options, RecoveryReport};
use tracejournal::{OpenReport, OrphanPolicy, SessionSummary, Store, StoreOptions};
use tracejournal::{ReadOnlyJournal, StoreSnapshot};

/// `--salvage`, set once by [`set_salvage`] before any store is opened (one
/// flag for every command that opens the store, without threading it
/// through each of them).
static SALVAGE: AtomicBool = AtomicBool::new(false);

/// Sets `--salvage` for every store this process opens.
pub(crate) fn set_salvage(salvage: bool) {
    SALVAGE.store(salvage, Ordering::Relaxed);
}

/// Whether `--salvage` was given.
fn salvage() -> bool {
    SALVAGE.load(Ordering::Relaxed)
}

/// Fails unless `dir` is an existing directory.
pub(crate) fn require_dir(dir: &Path) -> CliResult {
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
pub(crate) fn open_existing(dir: &Path) -> CliResult<Option<(Journal, RecoveryReport)>> {
    if !holds_segments(dir)? {
        return Ok(None);
    }
    Ok(Some(Journal::open(dir, Options::default())?))
}

/// Opens the journal in `dir` read-only (no lock, no write), or returns
/// `None` if the directory holds no segment.
pub(crate) fn open_read_only(dir: &Path) -> CliResult<Option<(ReadOnlyJournal, RecoveryReport)>> {
    if !holds_segments(dir)? {
        return Ok(None);
    }
    Ok(Some(ReadOnlyJournal::open(dir, &Options::default())?))
}

/// A read-only open stops at the last whole record; commands whose stdout
/// is data say where on stderr when bytes follow it.
pub(crate) fn note_where_reading_stops(report: &RecoveryReport) {
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
pub(crate) fn warn_about_cuts(report: &RecoveryReport) {
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

/// Opens the store for a command of this tool (see the module docs for
/// why orphans are kept open), warning on stderr about what recovery cut.
pub(crate) fn open_store(dir: &Path) -> CliResult<(Store, OpenReport)> {
    let options = StoreOptions {
        orphans: OrphanPolicy::KeepOpen,
        salvage: salvage(),
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
pub(crate) fn open_existing_store(dir: &Path) -> CliResult<Option<Store>> {
    if !holds_segments(dir)? {
        return Ok(None);
    }
    Ok(Some(open_store(dir)?.0))
}

/// Opens the store in `dir` read-only (no lock, no write) if there is one.
pub(crate) fn open_existing_snapshot(dir: &Path) -> CliResult<Option<StoreSnapshot>> {
    if !holds_segments(dir)? {
        return Ok(None);
    }
    let options = StoreOptions {
        salvage: salvage(),
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
pub(crate) fn close_store(store: Store, result: CliResult) -> CliResult {
    let closed = store.close();
    result?;
    closed?;
    Ok(())
}

/// The session `wanted` names: its exact id, or the one session whose id
/// starts with it.
pub(crate) fn resolve_session(store: &Store, wanted: &str) -> CliResult<String> {
    resolve_in(store.dir(), store.sessions(), wanted)
}

/// The session `wanted` names among `list` (the sessions of `dir`).
pub(crate) fn resolve_in(dir: &Path, list: Vec<SessionSummary>, wanted: &str) -> CliResult<String> {
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

/// The failure for a session command on a directory without a store.
pub(crate) fn no_store(dir: &Path, id: &str) -> Failure {
    Failure::Message(format!(
        "no session {} in {}: the directory holds no session store",
        quoted(id),
        dir.display()
    ))
}

/// Whether the directory `dir` (which must exist) holds a segment file:
/// reading commands never create a journal or a store.
fn holds_segments(dir: &Path) -> CliResult<bool> {
    require_dir(dir)?;
    let files = list_files(dir)?;
    Ok(files
        .iter()
        .any(|(name, _)| layout::parse_segment_file_name(name).is_some()))
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
