//! `demo`: concurrent agents write into one store in a child process,
//! which is then killed; this process reopens (recovers) the store and
//! checks every trace file.
//!
//! - `child`: the agents' process (`demo-child`), which does not survive;
//! - `report`: the parent after the kill: recovery, sessions, checks;
//! - `plan`: each agent's session, generated (Claude Code hook payloads
//!   and generation spans), from `data` (projects, tasks, code, command
//!   output) with `rng`, the demo's own seeded generator. The demo is not
//!   test code, so it keeps its generator here rather than using the test
//!   kit's.

mod child;
mod data;
mod plan;
mod report;
mod rng;

pub(crate) use child::demo_child;

use crate::failure::{fail, CliResult, Failure};
use crate::format::plural;
use crate::open::close_store;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tracejournal::{Store, StoreOptions};

/// Default events per demo agent.
pub(crate) const DEMO_EVENTS: u32 = 300;

/// The file that makes a directory a demo directory, which `demo` may
/// delete and recreate. No other directory is ever deleted.
pub(super) const DEMO_MARKER: &str = ".tracejournal-demo";

/// The line the demo's child prints when it is done and may be killed.
pub(super) const DEMO_READY: &str = "@@ tracejournal demo child: ready to be killed @@";

/// The demo agent that dies mid-turn (index), and the ones still working
/// when the process dies.
pub(super) fn demo_roles(agents: usize) -> (usize, Vec<usize>) {
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

/// Demo agent `index`'s name, as the demo prints it.
pub(super) fn agent_name(index: usize) -> String {
    format!("agent-{:02}", index + 1)
}

/// Why the crashing agent's session is marked crashed.
pub(super) fn crash_reason(index: usize) -> String {
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

/// `demo`: runs the child, kills it, reopens the store and checks it.
pub(crate) fn demo(dir: Option<&Path>, agents: u16, events: u32, out: &mut dyn Write) -> CliResult {
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
    let (pid, status) = run_and_kill_child(&dir, agents, events, out)?;
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
    let result = report::demo_recovered(
        &dir,
        &store,
        &report,
        open_time,
        (agents, crashed, &open),
        out,
    );
    close_store(store, result)
}

/// Starts the demo's child process, passes its output on until it says it
/// is ready ([`DEMO_READY`]), then kills it. Returns its process id and
/// how it ended.
fn run_and_kill_child(
    dir: &Path,
    agents: usize,
    events: u32,
    out: &mut dyn Write,
) -> CliResult<(u32, ExitStatus)> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Message(format!("cannot find this program's path: {e}")))?;
    let mut child = std::process::Command::new(exe)
        .arg("--dir")
        .arg(dir)
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
    Ok((pid, status))
}

#[cfg(unix)]
fn kill_word(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(9) => "SIGKILL".to_string(),
        Some(n) => format!("signal {n}"),
        None => status.to_string(),
    }
}

#[cfg(not(unix))]
fn kill_word(status: &ExitStatus) -> String {
    status.to_string()
}

/// `1.23 ms`, `12.3 ms`.
pub(super) fn millis_short(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}
