//! The demo's parent after the kill: what recovery did, the sessions, and
//! a check of every trace file against the store.

use super::plan::demo_session_id;
use super::{agent_name, crash_reason, millis_short};
use crate::failure::{fail, CliResult, Failure};
use crate::format::{bytes, plural};
use crate::table::write_sessions_table;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracejournal::model::{Status, ORPHANED_REASON};
use tracejournal::{OpenReport, SessionSummary, Store};

/// Phase 2 of the demo: what recovery did, the sessions, and a check of
/// every trace file against the store.
pub(super) fn demo_recovered(
    dir: &Path,
    store: &Store,
    report: &OpenReport,
    open_time: Duration,
    roles: (usize, usize, &[usize]),
    out: &mut dyn Write,
) -> CliResult {
    let (agents, crashed, _) = roles;
    write_recovery(report, open_time, agents, out)?;
    store.flush()?;
    writeln!(out)?;
    let list = store.sessions();
    write_sessions_table(out, &list)?;
    writeln!(out)?;

    // The demo checks itself: every expectation, and every file on disk.
    let (counts, file_bytes) = check_sessions(store, &list, roles)?;
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

/// What the reopen did: the log replayed, the torn tail cut, the orphans
/// marked crashed, the temporary files swept.
fn write_recovery(
    report: &OpenReport,
    open_time: Duration,
    agents: usize,
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
    Ok(())
}

/// Checks every agent's session (status and error as its role says) and
/// trace file, and that `traces/` holds nothing else. Returns how many
/// sessions have each status, and the trace files' total size.
fn check_sessions(
    store: &Store,
    list: &[SessionSummary],
    (agents, crashed, open): (usize, usize, &[usize]),
) -> CliResult<(BTreeMap<&'static str, u64>, u64)> {
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
        file_bytes += check_trace_file(store, summary, &mut problems)?;
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
    Ok((counts, file_bytes))
}

/// Checks that the session's trace file is valid JSON with the session's
/// status, byte-identical to the store's current rendering; adds what is
/// wrong to `problems`. Returns the file's size.
fn check_trace_file(
    store: &Store,
    summary: &SessionSummary,
    problems: &mut Vec<String>,
) -> CliResult<u64> {
    let id = &summary.id;
    let path = store.trace_path(id);
    let file = std::fs::read(&path)
        .map_err(|e| Failure::Message(format!("cannot read trace file {}: {e}", path.display())))?;
    let current = store.session(id).unwrap_or_default();
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
    Ok(file.len() as u64)
}
