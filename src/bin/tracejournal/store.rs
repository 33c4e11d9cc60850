//! The session store commands: `sessions`, `show`, `crash`, `compact`.
//! `sessions` and `show` read a read-only snapshot; `crash` and `compact`
//! open the store for writing.

use crate::failure::{fail, CliResult, Failure};
use crate::format::{bytes, cell, plural, quoted};
use crate::open::{
    close_store, no_store, open_existing_snapshot, open_existing_store, resolve_in, resolve_session,
};
use crate::table::write_sessions_table;
use std::io::Write;
use std::path::Path;
use tracejournal::model::Status;
use tracejournal::SessionSummary;

/// `sessions`: the sessions, newest first, as a table or (`json`) one JSON
/// array.
pub(crate) fn sessions(dir: &Path, json: bool, out: &mut dyn Write) -> CliResult {
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

/// One session for `sessions --json`.
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

/// `show`: the session's trace file as it is now.
pub(crate) fn show(dir: &Path, id: &str, pretty: bool, out: &mut dyn Write) -> CliResult {
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

/// `crash`: marks a running session crashed, durably, trace file included.
pub(crate) fn crash(dir: &Path, id: &str, reason: &str, out: &mut dyn Write) -> CliResult {
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

/// `compact`: a checkpoint of every session, and the segments it makes
/// unnecessary removed.
pub(crate) fn compact(dir: &Path, out: &mut dyn Write) -> CliResult {
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
