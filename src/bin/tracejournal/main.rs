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

//!
//! This file holds the argument definitions and the dispatch; each command
//! group lives in a module of its own:
//!
//! - `journal`: `append`, `dump`, `verify`, `stats` (the raw log);
//! - `ingest`: `ingest`;
//! - `store`: `sessions`, `show`, `crash`, `compact`;
//! - `tail`: `tail`;
//! - `demo`: `demo` and its hidden child, with the demo's session generator;
//! - `open`: opening a journal, a store or a read-only snapshot for a
//!   command, and what the tool says about the open on stderr;
//! - `dirs`: where the store is when `--dir` is not given;
//! - `format` and `table`: numbers, text cells and the sessions table;
//! - `failure`: how a command fails.

// Functions stay under clippy.toml's `too-many-lines-threshold` (70 lines:
// one screen). Unit tests are exempt: a scenario reads top to bottom.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]

mod demo;
mod dirs;
mod failure;
mod format;
mod ingest;
mod journal;
mod open;
mod store;
mod table;
mod tail;

use clap::{Parser, Subcommand, ValueEnum};
use failure::{CliResult, Failure};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use tracejournal::model::DEFAULT_CRASH_REASON;
use tracejournal::Durability;

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
        #[arg(long, default_value_t = demo::DEMO_EVENTS, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
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

/// Runs the command `cli` names, writing its output to `out`.
fn run(cli: &Cli, out: &mut dyn Write) -> CliResult {
    open::set_salvage(cli.salvage);
    match &cli.command {
        Command::Demo { agents, events } => {
            return demo::demo(cli.dir.as_deref(), *agents, *events, out);
        }
        Command::DemoChild { agents, events } => {
            return demo::demo_child(&dirs::store_dir(cli), *agents, *events, out);
        }
        _ => {}
    }
    let dir = dirs::store_dir(cli);
    let dir = dir.as_path();
    match &cli.command {
        Command::Append { durability } => {
            let stdin = io::stdin();
            journal::append(dir, (*durability).into(), &mut stdin.lock(), out)
        }
        Command::Dump { from } => journal::dump(dir, *from, out),
        Command::Verify { repair } => journal::verify(dir, *repair, out),
        Command::Stats => journal::stats(dir, out),
        Command::Ingest { file, workers } => {
            ingest::ingest(dir, file.as_deref(), *workers as usize, out)
        }
        Command::Sessions { json } => store::sessions(dir, *json, out),
        Command::Show { id, pretty } => store::show(dir, id, *pretty, out),
        Command::Crash { id, reason } => store::crash(dir, id, reason, out),
        Command::Compact => store::compact(dir, out),
        Command::Tail {
            session,
            all,
            count,
            no_follow,
        } => tail::tail(dir, session.as_deref(), *all, *count, !*no_follow, out),
        Command::Demo { .. } | Command::DemoChild { .. } => unreachable!("handled above"),
    }
}
