//! The demo's child process: agent threads replay their sessions through
//! one store until the parent kills the process.

use super::plan::{demo_plan, demo_session_id, AgentPlan};
use super::{agent_name, crash_reason, demo_roles, millis_short, DEMO_MARKER, DEMO_READY};
use crate::failure::{fail, CliResult, Failure};
use crate::format::{plural, thousands};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use tracejournal::event::parse_line;
use tracejournal::{Store, StoreOptions};

/// What one demo agent did.
#[derive(Default)]
struct AgentRun {
    events: u64,
    duplicates: u64,
    latencies: Vec<Duration>,
}

/// `demo-child`: the agents' process. Prints [`DEMO_READY`] when done, then
/// waits to be killed; never returns.
pub(crate) fn demo_child(dir: &Path, agents: u16, events: u32, out: &mut dyn Write) -> CliResult {
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

    let (elapsed, runs, crash_time) = run_agents(&store, &plans, crashed, &open);
    let mut all = AgentRun::default();
    for (i, run) in runs.into_iter().enumerate() {
        let run = run.map_err(|e| Failure::Message(format!("{}: {e}", agent_name(i))))?;
        all.events += run.events;
        all.duplicates += run.duplicates;
        all.latencies.extend(run.latencies);
    }
    let crash_time = crash_time
        .ok_or_else(|| Failure::Message("the crashing agent never reported".into()))??;
    write_crash(out, &plans[crashed], crashed, crash_time)?;
    write_throughput(out, &mut all, elapsed)?;
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

/// Runs one thread per agent, all starting together, each replaying its
/// plan (the crashing one and the open ones stop where their role says);
/// a supervisor marks the crashing agent's session crashed when it dies.
/// Returns the time the agents took, each agent's run, and how long the
/// crash mark took (`None` if the crashing agent never reported).
fn run_agents(
    store: &Store,
    plans: &[AgentPlan],
    crashed: usize,
    open: &[usize],
) -> (
    Duration,
    Vec<Result<AgentRun, String>>,
    Option<CliResult<Duration>>,
) {
    let barrier = std::sync::Barrier::new(plans.len() + 1);
    let (died_tx, died_rx) = crossbeam_channel::unbounded::<usize>();
    std::thread::scope(|scope| {
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
                let (barrier, died) = (&barrier, died_tx.clone());
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
            r.map(|_| t.elapsed()).map_err(Failure::from)
        });
        let runs: Vec<Result<AgentRun, String>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("an agent thread panicked".into()))
            })
            .collect();
        (start.elapsed(), runs, crash_time)
    })
}

/// The crashing agent: where it died, and how long marking its session
/// crashed took.
fn write_crash(
    out: &mut dyn Write,
    plan: &AgentPlan,
    crashed: usize,
    crash_time: Duration,
) -> CliResult {
    let in_flight = plan.crash_tool.as_deref().map_or(String::new(), |t| {
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
    Ok(())
}

/// How many events the agents wrote, how fast, and the latency of their
/// acknowledgements.
fn write_throughput(out: &mut dyn Write, all: &mut AgentRun, elapsed: Duration) -> CliResult {
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
    Ok(())
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
