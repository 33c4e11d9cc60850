//! Real processes, real kills (issue 4): a child process ingests durably
//! and reports every acknowledgement on a pipe; the parent kills it with
//! SIGKILL at a random moment, reopens the store, checks every promise, and
//! starts the next child on the same directory. Each cycle continues from
//! the state the previous kill and reopen left, so recovery runs again and
//! again on its own output.
//!
//! # The child
//!
//! The test binary re-executes itself (`--exact` this test, with
//! [`ENV_DIR`] set). The child opens the store with small segments (256 KiB),
//! a small checkpoint threshold (so checkpoints and segment removal happen
//! every few hundred milliseconds), a 10 ms debounce on the system clock (so
//! the compactor publishes all the time) and `max_trace_files` (so retention
//! retires finished sessions and the state stays bounded over hundreds of
//! cycles). It resumes every session the previous kill orphaned, tops its
//! pool up with new sessions, and runs:
//!
//! * three ingest threads over a pool of small sessions (a thread owns the
//!   session it picked until it puts it back): typed tool calls keyed by
//!   their call id, `PreToolUse`/`PostToolUse` hook pairs (default hook
//!   keys), atomic `ingest_batch` calls of 2 to 5 tool calls, retries of
//!   acked events (must come back `duplicate` with the original LSN), a
//!   session end followed by a resume, a final end, and `mark_crashed`; a
//!   session is also ended once it has `ROTATE_SPANS` spans, so that no span
//!   is ever elided and every acked tool call stays visible in the state;
//! * a thread appending 48 KiB tool calls to one big session (its file grows
//!   to a few MB, then the session ends and a new one starts) and calling
//!   `flush` every third event, between `PUBLISHING` and `PUBLISHED` lines;
//! * a thread calling `compact` every 20 to 150 ms, between `COMPACTING` and
//!   `COMPACTED` lines;
//! * for some cycles, a failpoint armed with `Pause` that parks the
//!   compactor at a precise point (a checkpoint written but not renamed, a
//!   checkpoint about to remove a segment, the big session's temp file
//!   written and fsynced but not renamed, or the same while holding its
//!   publish lock); a watcher prints `PARKED` once it is there.
//!
//! After each acknowledgement it prints one line (`ACK`, `ACKB` for a batch,
//! whose keys a `BATCH` line announced before the call, `CRASH` for a crash
//! mark with the session's run), written with one `write` on the locked
//! stdout and flushed. A line the kill cut short has no newline and is
//! ignored: that event was not acknowledged as far as the parent knows.
//!
//! # The parent
//!
//! Each cycle draws a plan from the seed: kill after N acks; kill a random
//! few ms after the n-th `COMPACTING` or `PUBLISHING` line; kill right after a
//! `CRASH` line; kill at a random moment of the child's start (during
//! recovery); or kill as soon as the child reports `PARKED`. (A plan whose
//! moment does not come within `FALLBACK_ACKS` acks or `FALLBACK_TIME` kills
//! anyway and is counted as a fallback.) Then, before anything touches the
//! directory, it checks the raw files, and opens the store itself with
//! `OrphanPolicy::MarkCrashed`: the parent is "the next process" of an
//! agent that embeds the store and was killed, so the sessions the child
//! left open must come back crashed (published before `open` returns), and
//! the next child resumes them, which is the resume path of a real agent.
//! (`KeepOpen` plus the parent's clean close would hide every orphan from
//! the next child: the kill would never be seen as a crash.) The parent
//! runs without retention, so nothing disappears while it checks.
//!
//! # What is checked, every cycle
//!
//! * Raw directory after the kill: every trace file parses as JSON; the
//!   file of every session whose crash mark was acked says `crashed`.
//! * Open succeeds; no checkpoint is skipped as damaged; the log has no
//!   damage and nothing set aside (a kill can only cut the tail).
//! * No session is `running` after open (orphans were marked), and every
//!   crashed session's file already equals its rendering when `open`
//!   returns.
//! * Every acked event is present exactly once: its key is known with the
//!   acked LSN (re-ingesting it is a duplicate with that LSN), and its tool
//!   call is exactly one span of the session; no call id appears twice in
//!   any session; no two acks share an LSN, and each thread's acked LSNs
//!   increase (the order of acknowledgement).
//! * Every batch the child started, acked or not, is wholly present or
//!   wholly absent; an acked one is wholly present.
//! * A session whose crash mark was acked is `crashed`, for that run, with
//!   that reason; a session whose final end was acked is `completed`.
//! * A session with acked events is present, unless it had finished
//!   (retention may retire finished sessions only).
//! * After `flush`: the trace directory holds exactly one file per session
//!   and nothing else (no temp file, no orphan), each equal to
//!   `Store::session`; after `close`, no temp file in `traces/` or
//!   `checkpoints/`.
//!
//! Naive behaviour caught: acking before the data reached the OS (acked
//! events missing), a batch written as independent records (a prefix
//! survives), a crash mark acked before it is durable or published, a stale
//! publish renaming an older state over the crashed file, a trace file
//! written in place (a kill leaves half a file), a checkpoint written in
//! place or segments removed before the checkpoint covering them is durable
//! (lost or duplicated entries, or an open that fails), a temp file never
//! swept, a recovery that replays entries a checkpoint already holds
//! (duplicate spans), a session lost by retention while still open.
//!
//! `TRACEJOURNAL_KILL_CYCLES` sets the number of cycles (default 100);
//! `TRACEJOURNAL_KILL_SEED` the seed (decimal or `0x` hex);
//! `TRACEJOURNAL_KILL_VERBOSE=1` prints one line per cycle. A failure prints
//! the seed and the cycle and keeps the directory. The seed fixes every
//! choice (plans, the child's operations and sizes); the moment a kill
//! lands is real time, so a replay retraces the same plans, not
//! necessarily the same interleaving.

mod common;

use common::child::{rerun, KillOnDrop};
use common::schema;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tracejournal::event::{hook_event, Body, EndStatus, Event, JsonText, Metadata};
use tracejournal::layout::trace_file_name as file_name;
use tracejournal::layout::{CHECKPOINTS_DIR, TRACES_DIR};
use tracejournal::model::{Status, ORPHANED_REASON};
use tracejournal::testkit::failpoint::points;
use tracejournal::testkit::failpoint::{names, Action, Failpoints};
use tracejournal::testkit::rng::SplitMix64;
use tracejournal::{Lsn, Options};
use tracejournal::{OrphanPolicy, Store, StoreOptions};

/// This test's name: the child is this binary run with `--exact` it.
const TEST_NAME: &str = "sigkill_loop_keeps_every_promise";
/// Set in the child: the store directory.
const ENV_DIR: &str = "TJ_KILL_CHILD_DIR";
/// Set in the child: its seed.
const ENV_SEED: &str = "TJ_KILL_SEED";
/// Set in the child: the cycle (it makes ids and keys unique).
const ENV_CYCLE: &str = "TJ_KILL_CYCLE";
/// Set in the child: the failpoint to park the compactor at, or `none`.
const ENV_PARK: &str = "TJ_KILL_PARK";
/// Every line of the protocol carries this marker (libtest may print
/// `test ... ` before it on the same line).
const MARK: &str = "@@KILL-LOOP@@ ";

const DEFAULT_CYCLES: u64 = 100;
const DEFAULT_SEED: u64 = 0x4b11_1009;
/// Small sessions in the child's pool (more than the ingest threads).
const SMALL_SESSIONS: usize = 4;
const INGEST_THREADS: usize = 3;
/// The big-session thread's number in `ACK` lines.
const BIG_THREAD: usize = INGEST_THREADS;
/// The child's main thread's number in `ACK` lines.
const MAIN_THREAD: usize = 9;
/// Retention in the child: at most this many sessions. Retention retires
/// the finished sessions that ended first; the sessions the child will
/// resume (orphans, crashed by the parent's open, at most a pool's worth)
/// ended after every session the child finished for good, so while fewer
/// than this many wait to be resumed, only sessions the child is done with
/// are retired.
const MAX_TRACE_FILES: usize = 12;
/// A small session ends once it has this many spans (well below the 4,999
/// where elision starts: every acked tool call must stay a visible span).
const ROTATE_SPANS: usize = 1_200;
/// Input size of the big session's tool calls.
const BIG_EVENT_CHARS: usize = 48 << 10;
/// The big session ends once its inputs reach this size.
const BIG_SESSION_BYTES: usize = 2 << 20;
/// The reason of the child's crash marks.
const CRASH_REASON: &str = "kill-loop: marked crashed by the agent";
/// A child that outlives this (its parent is gone) aborts.
const CHILD_LIFETIME: Duration = Duration::from_secs(90);
/// A plan whose moment has not come after this many acks kills anyway.
const FALLBACK_ACKS: u64 = 1_500;
/// ... or after this long.
const FALLBACK_TIME: Duration = Duration::from_secs(4);

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// The test kit's seeded generator (SplitMix64), seeded as this test
/// always seeded it, so a reported seed replays the same run.
#[derive(Clone, Debug)]
struct Rng(SplitMix64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed ^ 0x2545_f491_4f6c_dd1d))
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

/// The store's options; the child's have retention and failpoints.
fn store_options(child: bool, failpoints: Failpoints) -> StoreOptions {
    StoreOptions {
        journal: Options {
            segment_size: 256 << 10,
            failpoints,
            ..Options::default()
        },
        orphans: OrphanPolicy::MarkCrashed,
        debounce: Duration::from_millis(10),
        checkpoint_bytes: 768 << 10,
        max_trace_files: if child { Some(MAX_TRACE_FILES) } else { None },
        ..StoreOptions::default()
    }
}

fn is_temp(name: &str) -> bool {
    name.ends_with(".tmp")
}

/// The names in `dir`, sorted (empty if it does not exist).
fn list(dir: &Path) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = read
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------

/// Prints one protocol line with a single write on the locked stdout. If
/// the parent is gone, there is nobody to report to: die.
fn emit(line: std::fmt::Arguments<'_>) {
    let text = format!("{MARK}{line}\n");
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::abort();
    }
}

macro_rules! emit {
    ($($arg:tt)*) => { emit(format_args!($($arg)*)) };
}

/// One session as a child thread holds it.
struct Slot {
    id: String,
    spans: usize,
    bytes: usize,
}

struct Agent {
    store: Store,
    cycle: u64,
    pool: Mutex<Vec<Slot>>,
    next_session: AtomicU64,
    stop: AtomicBool,
}

fn ev(session: &str, key: &str, body: Body) -> Event {
    Event {
        session: session.to_string(),
        key: Some(key.to_string()),
        time: None,
        body,
    }
}

/// A whole tool call keyed by its call id, with `chars` characters of
/// input.
fn tool_call(session: &str, call: &str, chars: usize) -> Event {
    let mut input = format!("{call}:");
    while input.len() < chars {
        input.push_str("0123456789abcdef");
    }
    input.truncate(chars.max(call.len() + 1));
    ev(
        session,
        call,
        Body::ToolCall {
            call_id: call.to_string(),
            tool: "Bash".to_string(),
            parent: None,
            input: Some(JsonText::canonical(&Value::String(input))),
            output: Some(JsonText::canonical(&serde_json::json!({ "exit": 0 }))),
            status: EndStatus::Ok,
            message: None,
            duration_ms: Some(3),
        },
    )
}

/// A raw tool hook payload (its key is the default `{name}:{id}`).
fn tool_hook(session: &str, name: &str, id: &str) -> Event {
    let sid = serde_json::to_string(session).unwrap();
    let response = if name == "PostToolUse" {
        r#","tool_response":{"content":"fn main() {}","ok":true}"#
    } else {
        ""
    };
    let text = format!(
        r#"{{"session_id":{sid},"hook_event_name":"{name}","tool_name":"Read","tool_use_id":"{id}","tool_input":{{"file_path":"/src/main.rs"}}{response}}}"#
    );
    hook_event(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn session_end(session: &str, key: &str) -> Event {
    ev(
        session,
        key,
        Body::SessionEnd {
            status: EndStatus::Ok,
            message: None,
        },
    )
}

fn resume(session: &str, key: &str) -> Event {
    ev(
        session,
        key,
        Body::SessionStart {
            metadata: Metadata::default(),
            resume: true,
        },
    )
}

impl Agent {
    fn ack(&self, thread: usize, event: Event, kind: &str) -> Lsn {
        let key = event.key.clone().expect("keyed");
        let call = match &event.body {
            Body::ToolCall { call_id, .. } => call_id.clone(),
            Body::Hook { .. } => key.split_once(':').expect("hook key").1.to_string(),
            _ => "-".to_string(),
        };
        let session = event.session.clone();
        let ack = self
            .store
            .ingest(event)
            .unwrap_or_else(|e| panic!("ingest {session} {key}: {e}"));
        assert!(
            !ack.duplicate,
            "{session} {key}: a fresh key came back duplicate"
        );
        emit!("ACK {thread} {} {session} {key} {call} {kind}", ack.lsn);
        ack.lsn
    }

    fn new_session(&self, thread: usize, big: bool) -> Slot {
        let n = self.next_session.fetch_add(1, Ordering::SeqCst);
        let id = if big {
            format!("klbig-{}-{n}", self.cycle)
        } else {
            format!("kl/{}-{n}", self.cycle)
        };
        let start = ev(
            &id,
            "start",
            Body::SessionStart {
                metadata: Metadata {
                    title: Some(format!("kill loop {id}")),
                    agent: Some("kill-loop".into()),
                    ..Metadata::default()
                },
                resume: false,
            },
        );
        self.ack(thread, start, "start");
        Slot {
            id,
            spans: 1,
            bytes: 0,
        }
    }

    /// Ends `slot` for good (the child never touches it again).
    fn finish(&self, thread: usize, slot: &Slot, tag: &str) {
        self.ack(
            thread,
            session_end(&slot.id, &format!("end-{tag}")),
            "endfinal",
        );
    }

    fn take(&self, rng: &mut Rng) -> Slot {
        let mut pool = self.pool.lock().unwrap();
        let i = rng.index(pool.len());
        pool.swap_remove(i)
    }

    fn ingest_loop(&self, t: usize, mut rng: Rng) {
        let c = self.cycle;
        let mut acked: Vec<(Event, Lsn)> = Vec::new();
        let mut i = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let mut slot = self.take(&mut rng);
            let tag = format!("{c}-{t}-{i}");
            match rng.below(100) {
                0..=54 => {
                    let call = format!("k{tag}");
                    let event = tool_call(&slot.id, &call, 40 + rng.index(400));
                    let lsn = self.ack(t, event.clone(), "tool");
                    acked.push((event, lsn));
                    slot.spans += 1;
                }
                55..=69 => {
                    let id = format!("h{tag}");
                    self.ack(t, tool_hook(&slot.id, "PreToolUse", &id), "hook");
                    self.ack(t, tool_hook(&slot.id, "PostToolUse", &id), "hook");
                    slot.spans += 1;
                }
                70..=84 => {
                    let n = 2 + rng.index(4);
                    let calls: Vec<String> = (0..n).map(|j| format!("k{tag}.{j}")).collect();
                    let bid = format!("b{tag}");
                    emit!("BATCH {t} {bid} {} {}", slot.id, calls.join(","));
                    let events: Vec<Event> = calls
                        .iter()
                        .map(|call| tool_call(&slot.id, call, 40 + rng.index(200)))
                        .collect();
                    let acks = self
                        .store
                        .ingest_batch(events)
                        .unwrap_or_else(|e| panic!("batch {bid}: {e}"));
                    let first = acks[0].lsn;
                    for (j, a) in acks.iter().enumerate() {
                        assert!(!a.duplicate && a.lsn == first + j as Lsn, "{bid}: {acks:?}");
                    }
                    emit!("ACKB {t} {bid} {first}");
                    slot.spans += n;
                }
                85..=91 => {
                    // A retry of an acked event: nothing new, the original
                    // LSN back.
                    let mine: Vec<&(Event, Lsn)> =
                        acked.iter().filter(|(e, _)| e.session == slot.id).collect();
                    if !mine.is_empty() {
                        let (event, lsn) = mine[rng.index(mine.len())].clone();
                        let back = self.store.ingest(event.clone()).unwrap();
                        assert!(
                            back.duplicate && back.lsn == lsn,
                            "retry of {:?} in {}: {back:?}, acked at {lsn}",
                            event.key,
                            event.session
                        );
                    }
                }
                92..=96 => {
                    // An end, then a resume (a new run of the session).
                    self.ack(t, session_end(&slot.id, &format!("end-{tag}")), "end");
                    self.ack(t, resume(&slot.id, &format!("resume-{tag}")), "resume");
                }
                97 => {
                    self.finish(t, &slot, &tag);
                    slot = self.new_session(t, false);
                }
                _ => {
                    let run = self.store.session_state(&slot.id).expect("own session").run;
                    let lsn = self
                        .store
                        .mark_crashed(&slot.id, CRASH_REASON)
                        .unwrap_or_else(|e| panic!("mark_crashed {}: {e}", slot.id));
                    emit!("CRASH {t} {} {run} {lsn}", slot.id);
                    slot = self.new_session(t, false);
                }
            }
            if slot.spans >= ROTATE_SPANS {
                self.finish(t, &slot, &format!("{tag}-rotate"));
                slot = self.new_session(t, false);
            }
            if acked.len() > 16 {
                acked.remove(0);
            }
            self.pool.lock().unwrap().push(slot);
            i += 1;
        }
    }

    fn big_loop(&self, mut slot: Slot) {
        let mut k = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let call = format!("g{}-{k}", self.cycle);
            self.ack(
                BIG_THREAD,
                tool_call(&slot.id, &call, BIG_EVENT_CHARS),
                "big",
            );
            slot.bytes += BIG_EVENT_CHARS;
            if k % 3 == 2 {
                emit!("PUBLISHING {}", slot.id);
                self.store.flush().expect("flush");
                emit!("PUBLISHED {}", slot.id);
            }
            if slot.bytes >= BIG_SESSION_BYTES {
                self.finish(BIG_THREAD, &slot, &format!("{}-big", self.cycle));
                slot = self.new_session(BIG_THREAD, true);
            }
            k += 1;
        }
    }

    fn compact_loop(&self, mut rng: Rng) {
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20 + rng.below(130)));
            emit!("COMPACTING");
            let r = self.store.compact().expect("compact");
            emit!(
                "COMPACTED {} {} {}",
                r.checkpoint_lsn,
                r.segments_removed,
                r.first_lsn
            );
        }
    }
}

/// Parks the compactor at `point` (already armed with `Pause`) and says
/// so. For the publish points, only the big session's publish counts: any
/// other is let through (and the point armed again once its temp file is
/// gone).
fn park_watch(dir: &Path, fp: &Failpoints, point: &'static str) {
    let traces = dir.join(TRACES_DIR);
    let publish = point == points::BEFORE_RENAME || point == points::RENAME_LOCKED;
    while fp.wait_paused(point, CHILD_LIFETIME) {
        if !publish {
            emit!("PARKED {point} -");
            return;
        }
        let temps: Vec<String> = list(&traces).into_iter().filter(|n| is_temp(n)).collect();
        if let Some(big) = temps.iter().find(|n| n.starts_with(".klbig-")) {
            emit!("PARKED {point} {big}");
            return;
        }
        // A small session's publish: let it finish, then arm again.
        fp.release(point);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && temps.iter().any(|n| traces.join(n).exists()) {
            std::thread::sleep(Duration::from_millis(1));
        }
        fp.arm(point, Action::Pause);
    }
}

fn run_child(dir: &Path) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        emit!("PANIC");
        std::process::abort();
    }));
    let seed: u64 = std::env::var(ENV_SEED).unwrap().parse().unwrap();
    let cycle: u64 = std::env::var(ENV_CYCLE).unwrap().parse().unwrap();
    let park = std::env::var(ENV_PARK).unwrap();
    let mut rng = Rng::new(seed);
    let fp = Failpoints::new();
    let park: Option<&'static str> = [
        names::SEGMENT_BEFORE_REMOVE,
        names::CHECKPOINT_BEFORE_RENAME,
        points::BEFORE_RENAME,
        points::RENAME_LOCKED,
    ]
    .into_iter()
    .find(|p| *p == park);
    if let Some(point) = park {
        fp.arm(point, Action::Pause);
    }
    let (store, report) = Store::open(dir, store_options(true, fp.clone())).expect("child open");
    emit!("OPEN {} {}", report.replayed, report.sessions);
    let child = Arc::new(Agent {
        store,
        cycle,
        pool: Mutex::new(Vec::new()),
        next_session: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });

    // Resume every session the previous kill orphaned (an agent coming
    // back); keep them in the pool, end the ones that do not fit.
    let mut small = Vec::new();
    let mut big: Option<Slot> = None;
    for s in child.store.sessions() {
        if s.status != Status::Crashed || s.error.as_deref() != Some(ORPHANED_REASON) {
            continue;
        }
        child.ack(
            MAIN_THREAD,
            resume(&s.id, &format!("resume-{cycle}")),
            "resume",
        );
        let state = child.store.session_state(&s.id).expect("just resumed");
        let slot = Slot {
            id: s.id.clone(),
            spans: state.spans.len(),
            bytes: state
                .spans
                .values()
                .filter_map(|sp| sp.input.as_ref())
                .map(|t| t.0.len())
                .sum(),
        };
        if s.id.starts_with("klbig-") && big.is_none() {
            big = Some(slot);
        } else if !s.id.starts_with("klbig-") && small.len() < SMALL_SESSIONS {
            small.push(slot);
        } else {
            child.finish(MAIN_THREAD, &slot, &format!("{cycle}-overflow"));
        }
    }
    while small.len() < SMALL_SESSIONS {
        small.push(child.new_session(MAIN_THREAD, false));
    }
    let big = big.unwrap_or_else(|| child.new_session(MAIN_THREAD, true));
    *child.pool.lock().unwrap() = small;
    emit!("READY");

    let mut threads = Vec::new();
    for t in 0..INGEST_THREADS {
        let (c, r) = (child.clone(), Rng::new(rng.next_u64()));
        threads.push(std::thread::spawn(move || c.ingest_loop(t, r)));
    }
    {
        let c = child.clone();
        threads.push(std::thread::spawn(move || c.big_loop(big)));
    }
    {
        let (c, r) = (child.clone(), Rng::new(rng.next_u64()));
        threads.push(std::thread::spawn(move || c.compact_loop(r)));
    }
    if let Some(point) = park {
        let (fp, dir) = (fp.clone(), dir.to_path_buf());
        threads.push(std::thread::spawn(move || park_watch(&dir, &fp, point)));
    }
    // Wait to be killed. Never close cleanly: if the parent went away,
    // abort.
    std::thread::sleep(CHILD_LIFETIME);
    child.stop.store(true, Ordering::SeqCst);
    std::process::abort();
}

// ---------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------

/// When a cycle's child is killed.
#[derive(Clone, Debug)]
enum Plan {
    /// After this many acks.
    Acks(u64),
    /// This long after the child was spawned (often during its open or
    /// its resumes).
    Early(Duration),
    /// `delay` after the `nth` line starting with `marker`.
    Marker {
        marker: &'static str,
        nth: u64,
        delay: Duration,
    },
    /// As soon as the child reports the compactor parked at this point.
    Park(&'static str),
}

impl Plan {
    fn draw(rng: &mut Rng) -> Plan {
        let ms = |rng: &mut Rng, n| Duration::from_millis(rng.below(n));
        match rng.below(100) {
            0..=29 => Plan::Acks(5 + rng.below(400)),
            30..=34 => Plan::Early(ms(rng, 400)),
            35..=47 => Plan::Marker {
                marker: "COMPACTING",
                nth: 1 + rng.below(2),
                delay: ms(rng, 25),
            },
            48..=61 => Plan::Marker {
                marker: "PUBLISHING",
                nth: 1 + rng.below(2),
                delay: ms(rng, 60),
            },
            62..=67 => Plan::Marker {
                marker: "CRASH",
                nth: 1,
                delay: Duration::ZERO,
            },
            68..=75 => Plan::Park(names::SEGMENT_BEFORE_REMOVE),
            76..=83 => Plan::Park(names::CHECKPOINT_BEFORE_RENAME),
            84..=91 => Plan::Park(points::BEFORE_RENAME),
            _ => Plan::Park(points::RENAME_LOCKED),
        }
    }

    fn name(&self) -> String {
        match self {
            Plan::Acks(_) => "after N acks".into(),
            Plan::Early(_) => "within 400 ms of the start".into(),
            Plan::Marker { marker, .. } => format!("after {marker}"),
            Plan::Park(point) => format!("parked at {point}"),
        }
    }

    fn park_point(&self) -> &'static str {
        match self {
            Plan::Park(point) => point,
            _ => "none",
        }
    }
}

/// A batch the child started (acked or not).
#[derive(Debug)]
struct Batch {
    id: String,
    calls: Vec<String>,
    acked: Option<Lsn>,
    /// Counted in the statistics (an unacked one is counted once).
    counted: bool,
}

/// What the parent knows a session must hold.
#[derive(Debug, Default)]
struct SessionModel {
    /// Acked keys: LSN, and the tool call id the event created if any.
    keys: BTreeMap<String, (Lsn, Option<String>)>,
    batches: Vec<Batch>,
    /// An acked crash mark: the run it marked.
    crashed_run: Option<u32>,
    /// An acked final end.
    ended: bool,
    /// Finished for good: the child never touches it again, and retention
    /// may retire it.
    settled: bool,
}

#[derive(Default)]
struct Model {
    sessions: BTreeMap<String, SessionModel>,
    /// Every acked LSN (crash marks through the ledger have none).
    lsns: HashMap<Lsn, (String, String)>,
}

impl Model {
    fn ack(&mut self, session: &str, key: &str, lsn: Lsn, call: Option<String>) {
        if let Some(other) = self
            .lsns
            .insert(lsn, (session.to_string(), key.to_string()))
        {
            panic!("two acks share LSN {lsn}: {other:?} and ({session}, {key})");
        }
        let s = self.sessions.entry(session.to_string()).or_default();
        if let Some(old) = s.keys.insert(key.to_string(), (lsn, call)) {
            panic!(
                "{session}: key {key} acked twice as new (LSN {} and {lsn})",
                old.0
            );
        }
    }
}

#[derive(Default, Debug)]
struct Stats {
    cycles: u64,
    acks: u64,
    key_checks: u64,
    batches_acked: u64,
    batches_unacked: u64,
    batches_unacked_present: u64,
    crash_marks: u64,
    plans: BTreeMap<String, u64>,
    fallbacks: u64,
    killed_in_compact: u64,
    killed_in_big_flush: u64,
    parked: BTreeMap<String, u64>,
    trace_temps: u64,
    big_temps: u64,
    checkpoint_temps: u64,
    cut_lines: u64,
    torn_tails: u64,
    orphans_marked: u64,
    retired: u64,
    segments_removed: u64,
    opened_with_checkpoint: u64,
    max_sessions: usize,
}

/// What one child said, as it is read.
#[derive(Default)]
struct CycleLog {
    acks: u64,
    markers: BTreeMap<String, u64>,
    compacting: bool,
    publishing: bool,
    parked: Option<String>,
    panicked: bool,
    thread_lsn: HashMap<usize, Lsn>,
    batches: HashMap<String, (String, usize)>,
}

impl CycleLog {
    /// Takes one line into the model. Returns its first word.
    fn record(&mut self, line: &str, model: &mut Model, stats: &mut Stats) -> String {
        let w: Vec<&str> = line.split(' ').collect();
        let word = w[0].to_string();
        *self.markers.entry(word.clone()).or_default() += 1;
        let mut ordered = |thread: &str, lsn: Lsn| {
            let t: usize = thread.parse().unwrap();
            if let Some(prev) = self.thread_lsn.insert(t, lsn) {
                assert!(lsn > prev, "thread {t}: acked LSN {lsn} after {prev}");
            }
        };
        match word.as_str() {
            "ACK" => {
                let lsn: Lsn = w[2].parse().unwrap();
                ordered(w[1], lsn);
                let call = (w[5] != "-").then(|| w[5].to_string());
                model.ack(w[3], w[4], lsn, call);
                if w[6] == "endfinal" {
                    let s = model.sessions.get_mut(w[3]).unwrap();
                    s.ended = true;
                    s.settled = true;
                }
                self.acks += 1;
                stats.acks += 1;
            }
            "BATCH" => {
                let s = model.sessions.entry(w[3].to_string()).or_default();
                self.batches
                    .insert(w[2].to_string(), (w[3].to_string(), s.batches.len()));
                s.batches.push(Batch {
                    id: w[2].to_string(),
                    calls: w[4].split(',').map(str::to_string).collect(),
                    acked: None,
                    counted: false,
                });
            }
            "ACKB" => {
                let first: Lsn = w[3].parse().unwrap();
                let (session, index) = self.batches[w[2]].clone();
                let calls = {
                    let s = model.sessions.get_mut(&session).unwrap();
                    s.batches[index].acked = Some(first);
                    s.batches[index].calls.clone()
                };
                for (j, call) in calls.iter().enumerate() {
                    let lsn = first + j as Lsn;
                    ordered(w[1], lsn);
                    model.ack(&session, call, lsn, Some(call.clone()));
                }
                self.acks += calls.len() as u64;
                stats.acks += calls.len() as u64;
                stats.batches_acked += 1;
            }
            "CRASH" => {
                let lsn: Lsn = w[4].parse().unwrap();
                if lsn != 0 {
                    ordered(w[1], lsn);
                }
                let s = model.sessions.entry(w[2].to_string()).or_default();
                s.crashed_run = Some(w[3].parse().unwrap());
                s.settled = true;
                self.acks += 1;
                stats.acks += 1;
                stats.crash_marks += 1;
            }
            "COMPACTING" => self.compacting = true,
            "COMPACTED" => {
                self.compacting = false;
                stats.segments_removed += w[2].parse::<u64>().unwrap();
            }
            "PUBLISHING" => self.publishing = true,
            "PUBLISHED" => self.publishing = false,
            "PARKED" => self.parked = Some(w[1].to_string()),
            "PANIC" => self.panicked = true,
            _ => {}
        }
        word
    }
}

/// Reads the child's stdout: complete protocol lines only (a line the kill
/// cut short never reached its newline, so it was never an ack).
fn read_lines(stdout: std::process::ChildStdout, tx: mpsc::Sender<String>) -> u64 {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        if buf.last() != Some(&b'\n') {
            // Cut by the kill (libtest's own "test ... " line has no
            // newline either: only a protocol line counts).
            return u64::from(String::from_utf8_lossy(&buf).contains(MARK.trim_end()));
        }
        let line = String::from_utf8_lossy(&buf);
        if let Some(at) = line.find(MARK) {
            let _ = tx.send(line[at + MARK.len()..].trim_end().to_string());
        }
    }
}

#[test]
fn sigkill_loop_keeps_every_promise() {
    if let Ok(dir) = std::env::var(ENV_DIR) {
        run_child(Path::new(&dir));
        return;
    }
    let cycles: u64 = std::env::var("TRACEJOURNAL_KILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    let seed: u64 = std::env::var("TRACEJOURNAL_KILL_SEED")
        .ok()
        .map(|v| match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).expect("TRACEJOURNAL_KILL_SEED"),
            None => v.parse().expect("TRACEJOURNAL_KILL_SEED"),
        })
        .unwrap_or(DEFAULT_SEED);
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let mut stats = Stats::default();
    let started = Instant::now();
    for cycle in 0..cycles {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_cycle(dir.path(), seed, cycle, &mut model, &mut stats)
        }));
        if let Err(panic) = result {
            let kept = dir.keep();
            eprintln!(
                "kill loop FAILED at cycle {cycle} (seed {seed:#x}); replay with \
                 TRACEJOURNAL_KILL_SEED={seed:#x} TRACEJOURNAL_KILL_CYCLES={}; \
                 the store directory is kept at {}",
                cycle + 1,
                kept.display()
            );
            std::panic::resume_unwind(panic);
        }
    }
    let elapsed = started.elapsed();
    println!(
        "kill loop: seed {seed:#x}, {} cycles in {:.1} s; {} acks ({} batches acked, {} crash \
         marks), {} acked-key checks; {} unacked batches (present whole: {}); kills: {:?}, \
         {} fallbacks; killed inside compact(): {}, inside the big session's flush(): {}; \
         parked: {:?}; found after kills: {} trace temp files ({} of the big session), {} \
         checkpoint temp files, {} cut output lines, {} torn log tails; {} orphans marked; {} \
         sessions retired; {} segments removed by compact(); {} opens from a checkpoint; at \
         most {} sessions",
        stats.cycles,
        elapsed.as_secs_f64(),
        stats.acks,
        stats.batches_acked,
        stats.crash_marks,
        stats.key_checks,
        stats.batches_unacked,
        stats.batches_unacked_present,
        stats.plans,
        stats.fallbacks,
        stats.killed_in_compact,
        stats.killed_in_big_flush,
        stats.parked,
        stats.trace_temps,
        stats.big_temps,
        stats.checkpoint_temps,
        stats.cut_lines,
        stats.torn_tails,
        stats.orphans_marked,
        stats.retired,
        stats.segments_removed,
        stats.opened_with_checkpoint,
        stats.max_sessions,
    );
    assert_eq!(stats.cycles, cycles);
    assert!(stats.acks >= cycles, "too few acks to prove anything");
    if cycles >= DEFAULT_CYCLES {
        // The run must have reached the moments it claims to test.
        for point in [
            names::SEGMENT_BEFORE_REMOVE,
            names::CHECKPOINT_BEFORE_RENAME,
            points::BEFORE_RENAME,
            points::RENAME_LOCKED,
        ] {
            assert!(
                stats.parked.contains_key(point),
                "no kill with the compactor parked at {point}"
            );
        }
        assert!(stats.killed_in_compact > 0 && stats.killed_in_big_flush > 0);
        assert!(stats.big_temps > 0 && stats.checkpoint_temps > 0);
        assert!(stats.crash_marks > 0 && stats.orphans_marked > 0 && stats.retired > 0);
        assert!(stats.segments_removed > 0 && stats.opened_with_checkpoint > 0);
    }
}

fn run_cycle(dir: &Path, seed: u64, cycle: u64, model: &mut Model, stats: &mut Stats) {
    let mut rng = Rng::new(seed ^ cycle.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let child_seed = rng.next_u64();
    let plan = Plan::draw(&mut rng);
    *stats.plans.entry(plan.name()).or_default() += 1;
    let spawned = Instant::now();
    let mut child = KillOnDrop::spawn(
        rerun(TEST_NAME)
            .arg("--test-threads=1")
            .env(ENV_DIR, dir)
            .env(ENV_SEED, child_seed.to_string())
            .env(ENV_CYCLE, cycle.to_string())
            .env(ENV_PARK, plan.park_point()),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || read_lines(stdout, tx));

    let mut log = CycleLog::default();
    loop {
        let wait = match &plan {
            Plan::Early(after) => after.saturating_sub(spawned.elapsed()),
            _ => FALLBACK_TIME.saturating_sub(spawned.elapsed()),
        };
        let line = match rx.recv_timeout(wait) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !matches!(plan, Plan::Early(_)) {
                    stats.fallbacks += 1;
                }
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.0.wait().unwrap();
                panic!("the child exited before it was killed: {status} (see its stderr above)");
            }
        };
        let word = log.record(&line, model, stats);
        assert!(!log.panicked, "the child panicked (see its stderr above)");
        let fire = match &plan {
            Plan::Acks(n) => log.acks >= *n,
            Plan::Early(_) => false,
            Plan::Marker { marker, nth, delay } => {
                let hit = word == *marker && log.markers[&word] == *nth;
                if hit {
                    std::thread::sleep(*delay);
                }
                hit
            }
            Plan::Park(_) => log.parked.is_some(),
        };
        if fire {
            break;
        }
        if log.acks >= FALLBACK_ACKS {
            stats.fallbacks += 1;
            break;
        }
    }
    child.0.kill().unwrap(); // SIGKILL
    let status = child.0.wait().unwrap();
    // Acks the child printed before it died are acks too.
    for line in rx.iter() {
        log.record(&line, model, stats);
    }
    stats.cut_lines += reader.join().unwrap();
    assert!(!log.panicked, "the child panicked (see its stderr above)");
    assert_eq!(
        status.signal(),
        Some(9),
        "the child should have died of SIGKILL: {status}"
    );
    stats.killed_in_compact += u64::from(log.compacting);
    stats.killed_in_big_flush += u64::from(log.publishing);
    if let Some(point) = &log.parked {
        *stats.parked.entry(point.clone()).or_default() += 1;
    }

    let killed_at = spawned.elapsed();
    check_after_kill(dir, model, stats);
    stats.cycles += 1;
    if std::env::var_os("TRACEJOURNAL_KILL_VERBOSE").is_some() {
        println!(
            "cycle {cycle}: {plan:?}, {} acks, killed after {} ms{}{}{}, checked in {} ms",
            log.acks,
            killed_at.as_millis(),
            if log.compacting {
                ", inside compact()"
            } else {
                ""
            },
            if log.publishing {
                ", inside the big flush()"
            } else {
                ""
            },
            log.parked
                .as_deref()
                .map(|p| format!(", parked at {p}"))
                .unwrap_or_default(),
            (spawned.elapsed() - killed_at).as_millis()
        );
    }
}

/// The file of `id` in `traces`, parsed, if it exists.
fn read_trace(traces: &Path, id: &str) -> Option<Value> {
    let bytes = std::fs::read(traces.join(file_name(id))).ok()?;
    let file = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the trace file of {id} is not valid JSON: {e}"));
    schema::validate_trace(&file);
    Some(file)
}

fn check_after_kill(dir: &Path, model: &mut Model, stats: &mut Stats) {
    let traces = dir.join(TRACES_DIR);
    let checkpoints = dir.join(CHECKPOINTS_DIR);

    // 1. The directory exactly as the kill left it.
    for name in list(&traces) {
        if is_temp(&name) {
            stats.trace_temps += 1;
            stats.big_temps += u64::from(name.starts_with(".klbig-"));
            continue;
        }
        let bytes = std::fs::read(traces.join(&name)).unwrap();
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(file) => schema::validate_trace(&file),
            Err(e) => panic!("after the kill, trace file {name} is not valid JSON: {e}"),
        }
    }
    stats.checkpoint_temps += list(&checkpoints).iter().filter(|n| is_temp(n)).count() as u64;
    for (id, s) in &model.sessions {
        if s.crashed_run.is_some() {
            if let Some(file) = read_trace(&traces, id) {
                assert_eq!(
                    file["summary"]["status"], "crashed",
                    "after the kill, the file of {id} (crash mark acked) says {}",
                    file["summary"]["status"]
                );
            }
        }
    }

    // 2. Reopen, as the next process of a killed agent.
    let (store, report) = Store::open(dir, store_options(false, Failpoints::new()))
        .unwrap_or_else(|e| panic!("reopening after SIGKILL failed: {e}"));
    assert!(
        report.checkpoints_skipped.is_empty(),
        "a checkpoint was damaged by a kill: {:?}",
        report.checkpoints_skipped
    );
    assert!(
        report.journal.damage.is_empty() && report.journal.set_aside.is_empty(),
        "a kill damaged the log beyond its tail: {:?}",
        report.journal
    );
    stats.torn_tails += report.journal.truncated.len() as u64;
    stats.orphans_marked += report.orphans_marked.len() as u64;
    stats.opened_with_checkpoint += u64::from(report.checkpoint.is_some());
    let summaries = store.sessions();
    stats.max_sessions = stats.max_sessions.max(summaries.len());
    for s in &summaries {
        assert_ne!(
            s.status,
            Status::Running,
            "{} is still running after an open that marks orphans",
            s.id
        );
        if s.status == Status::Crashed {
            // Published before `open` returned.
            let file = std::fs::read(store.trace_path(&s.id))
                .unwrap_or_else(|e| panic!("crashed session {} has no file after open: {e}", s.id));
            assert!(
                file == store.session(&s.id).unwrap(),
                "the file of crashed session {} is not its state when open returns",
                s.id
            );
        }
    }

    // 3. Every acked event, batch, crash and end.
    let mut retired = Vec::new();
    for (id, m) in model.sessions.iter_mut() {
        let Some(state) = store.session_state(id) else {
            let acked = m.keys.len() + usize::from(m.crashed_run.is_some());
            assert!(
                m.settled || acked == 0,
                "session {id} is gone after the kill, with {acked} acked events, and it was \
                 never finished: {:?}",
                m.keys.keys().take(5).collect::<Vec<_>>()
            );
            retired.push(id.clone());
            continue;
        };
        assert_eq!(
            state.totals.elided, 0,
            "{id}: spans elided (the test rotates sessions to prevent it)"
        );
        let mut calls: HashMap<&str, usize> = HashMap::new();
        for span in state.spans.values() {
            if let Some(tool) = &span.tool {
                *calls.entry(tool.call_id.as_str()).or_default() += 1;
            }
        }
        if let Some((call, n)) = calls.iter().find(|(_, n)| **n > 1) {
            panic!("{id}: tool call {call} is present {n} times");
        }
        for (key, (lsn, call)) in &m.keys {
            if let Some(call) = call {
                assert!(
                    calls.contains_key(call.as_str()),
                    "{id}: acked event {key} (LSN {lsn}) is missing: no span for call {call}"
                );
            }
            let probe = Event {
                session: id.clone(),
                key: Some(key.clone()),
                time: None,
                body: Body::Attributes {
                    span: None,
                    attributes: JsonText::canonical(&serde_json::json!({})),
                },
            };
            let ack = store.ingest(probe).unwrap();
            assert!(
                ack.duplicate && ack.lsn == *lsn,
                "{id}: acked key {key} (LSN {lsn}) is not stored at its LSN: re-ingesting it \
                 gave {ack:?}"
            );
            stats.key_checks += 1;
        }
        for b in &m.batches {
            let present = b
                .calls
                .iter()
                .filter(|c| calls.contains_key(c.as_str()))
                .count();
            assert!(
                present == 0 || present == b.calls.len(),
                "{id}: batch {} is partly present: {present} of {} ({:?})",
                b.id,
                b.calls.len(),
                b.calls
            );
            if let Some(first) = b.acked {
                assert_eq!(
                    present,
                    b.calls.len(),
                    "{id}: acked batch {} (LSN {first}) is missing",
                    b.id
                );
            }
        }
        if let Some(run) = m.crashed_run {
            assert!(
                state.status == Status::Crashed
                    && state.run == run
                    && state.error.as_deref() == Some(CRASH_REASON),
                "{id}: its crash mark for run {run} was acked, but it is {:?} in run {} ({:?})",
                state.status,
                state.run,
                state.error
            );
        }
        if m.ended {
            assert_eq!(
                state.status,
                Status::Completed,
                "{id}: its end was acked, but it is {:?} ({:?})",
                state.status,
                state.error
            );
        }
        // Finished other than by the kill: the child never touches it
        // again, so retention may retire it from now on.
        if state.status != Status::Running && state.error.as_deref() != Some(ORPHANED_REASON) {
            m.settled = true;
        }
        // An unacked batch is counted once (and checked again every cycle
        // while its session lives: all or nothing, whichever it was).
        for b in m.batches.iter_mut().filter(|b| !b.counted) {
            b.counted = true;
            if b.acked.is_none() {
                stats.batches_unacked += 1;
                stats.batches_unacked_present +=
                    u64::from(b.calls.iter().all(|c| calls.contains_key(c.as_str())));
            }
        }
    }
    stats.retired += retired.len() as u64;
    for id in retired {
        let m = model.sessions.remove(&id).unwrap();
        for (lsn, _) in m.keys.values() {
            model.lsns.remove(lsn);
        }
    }

    // 4. After flush: one file per session, each its rendering, nothing else.
    store.flush().unwrap();
    let sessions = store.sessions();
    let expected: BTreeSet<String> = sessions.iter().map(|s| file_name(&s.id)).collect();
    let found: BTreeSet<String> = list(&traces).into_iter().collect();
    assert_eq!(
        found, expected,
        "after flush, traces/ should hold exactly one file per session"
    );
    for s in &sessions {
        let file = std::fs::read(store.trace_path(&s.id)).unwrap();
        assert!(
            file == store.session(&s.id).unwrap(),
            "after flush, the file of {} differs from its rendering",
            s.id
        );
    }
    store.close().unwrap();
    let left: Vec<String> = list(&traces)
        .into_iter()
        .chain(list(&checkpoints))
        .filter(|n| is_temp(n))
        .collect();
    assert!(left.is_empty(), "temp files left after close: {left:?}");
}
