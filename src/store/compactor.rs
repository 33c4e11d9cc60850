//! The compactor: the thread that turns session state into trace files,
//! checkpoints the state, and bounds the log.
//!
//! * **Publishing** ([`Publisher`], in [`crate::store::publish`]): render, write a temp file in
//!   `traces/`, fsync it, then, holding the session's publish lock, check
//!   that no newer version was published meanwhile, rename over the final
//!   name and fsync the directory. The check and the rename sit in one
//!   critical section, so a slow publish can never rename an older state
//!   over a newer one (the "M1" race of the old tracer; see `DESIGN.md`).
//! * **Scheduling**: a session is published `debounce` after it first
//!   changed (a burst coalesces into one write); a large session whose
//!   rewrites would exceed the write budget waits until it has grown enough
//!   or has been quiet for `debounce`; an ended session is published at
//!   once. Nothing is ever left unpublished once events stop.
//! * **Checkpoints**: a snapshot of all state (see [`crate::store::checkpoint`]),
//!   then removal of log segments wholly covered by the previous one and not
//!   holding unpublished changes.
//! * **Retention**: the oldest finished sessions are retired first; an open
//!   session is never touched.
//!
//! It is the only writer of trace files but one: a crash mark publishes on
//! its caller's thread through the same [`Publisher`] under the same lock
//! (a crash must not wait for a thread that may be the stuck one).

use crate::error::{Error, Result};
use crate::store::checkpoint;
use crate::store::clock::Clock;
use crate::store::model::{Session, Status};
use crate::store::publish::{Publisher, Publishing};
use crate::store::state::LiveState;
use crate::wal::failpoint::Failpoints;
use crate::wal::journal::Journal;
use crate::wal::storage::Storage;
use crate::wal::Lsn;
use crossbeam_channel::{Receiver, Sender};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Failpoints of the compactor and the crash path.
pub mod points {
    /// After the compactor's temp file is written and fsynced, before it
    /// takes the session's publish lock to rename.
    pub const BEFORE_RENAME: &str = "compactor.before_rename";
    /// Holding the publish lock, after the version check, before the
    /// rename.
    pub const RENAME_LOCKED: &str = "compactor.rename_locked";
    /// In the compactor, before it renders a session.
    pub const BEFORE_RENDER: &str = "compactor.before_render";
    /// The crash path's twin of [`BEFORE_RENAME`].
    pub const CRASH_BEFORE_RENAME: &str = "crash.before_rename";
    /// The compactor finished a round of work and is about to wait
    /// (tests arm it with `Observe` and wait for hits to know a round
    /// that started after some change has finished).
    pub const IDLE: &str = "compactor.idle";
}

/// How many checkpoints are kept (the newest may be damaged; recovery then
/// uses the one before, so the log is kept from that one on).
const KEEP_CHECKPOINTS: usize = 2;

/// The compactor's settings.
#[derive(Clone, Debug)]
pub struct CompactorConfig {
    /// Debounce interval.
    pub debounce: Duration,
    /// Sessions smaller than this are published on every debounce tick,
    /// whatever they have written before.
    pub pace_min_bytes: u64,
    /// Keep at most this many trace files (finished sessions go first).
    pub max_trace_files: Option<usize>,
    /// Salvage mode: never delete anything (no segment removal, no
    /// checkpoint pruning, no retention).
    pub salvage: bool,
    /// Retire finished sessions that ended longer ago than this.
    pub max_age: Option<Duration>,
    /// Checkpoint once the log holds this many bytes and has grown by half
    /// of it since the last checkpoint.
    pub checkpoint_bytes: u64,
}

/// What a checkpoint did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// The LSN the new checkpoint covers up to (exclusive).
    pub checkpoint_lsn: Lsn,
    /// The checkpoint's size.
    pub checkpoint_bytes: u64,
    /// Segments removed from the log.
    pub segments_removed: usize,
    /// Bytes freed by removing them.
    pub bytes_freed: u64,
    /// First LSN still in the log.
    pub first_lsn: Lsn,
}

/// Retires a session: appends a `Retire` entry and waits for it to apply.
pub type Retirer = Box<dyn Fn(&str) -> Result<()> + Send>;

enum Msg {
    Flush(Sender<Result<()>>),
    Compact(Sender<Result<CompactReport>>),
    Stop(Sender<Result<()>>),
}

/// Handle to the compactor thread.
pub struct Compactor {
    ctrl: Sender<Msg>,
    handle: Option<JoinHandle<()>>,
}

/// Everything the compactor thread needs.
pub struct CompactorParts {
    /// Settings.
    pub config: CompactorConfig,
    /// The state it publishes.
    pub live: Arc<LiveState>,
    /// The log it bounds.
    pub journal: Arc<Journal>,
    /// The file writer.
    pub publisher: Arc<Publisher>,
    /// Time.
    pub clock: Clock,
    /// Storage for checkpoints.
    pub storage: Arc<dyn Storage>,
    /// The checkpoint directory.
    pub checkpoints: PathBuf,
    /// Failpoints.
    pub failpoints: Failpoints,
    /// Retention's way to retire a session.
    pub retire: Retirer,
}

impl Compactor {
    /// Starts the thread.
    pub fn start(parts: CompactorParts) -> Result<Compactor> {
        let (ctrl_tx, ctrl_rx) = crossbeam_channel::unbounded();
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        parts.live.dirty.set_waker(wake_tx.clone());
        parts.clock.on_advance(wake_tx);
        let base_bytes = parts.journal.segment_bytes();
        let worker = Worker {
            parts,
            ctrl: ctrl_rx,
            wake: wake_rx,
            ckpt_base_bytes: base_bytes,
            last_retention: 0,
        };
        let handle = std::thread::Builder::new()
            .name("tracejournal-compactor".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::io("start compactor thread", PathBuf::new(), e))?;
        Ok(Compactor {
            ctrl: ctrl_tx,
            handle: Some(handle),
        })
    }

    /// Publishes every dirty session now, ignoring debounce and pacing.
    pub fn flush(&self) -> Result<()> {
        self.call(Msg::Flush)
    }

    /// Flushes, writes a checkpoint and removes covered segments.
    pub fn compact(&self) -> Result<CompactReport> {
        self.call(Msg::Compact)
    }

    /// Flushes and stops the thread.
    pub fn stop(&mut self) -> Result<()> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        let result = self.call(Msg::Stop);
        let _ = handle.join();
        result
    }

    fn call<T>(&self, msg: impl FnOnce(Sender<Result<T>>) -> Msg) -> Result<T> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.ctrl.send(msg(tx)).map_err(|_| Error::Closed)?;
        rx.recv().map_err(|_| Error::Closed)?
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

struct Worker {
    parts: CompactorParts,
    ctrl: Receiver<Msg>,
    wake: Receiver<()>,
    ckpt_base_bytes: u64,
    last_retention: u64,
}

/// When a dirty session is due.
enum Due {
    Now,
    At(u64),
    Gone,
}

impl Worker {
    fn run(mut self) {
        loop {
            let now = self.parts.clock.now_ms();
            let next = self.publish_due(now);
            self.maybe_retain(now);
            self.maybe_checkpoint();
            let _ = self.parts.failpoints.hit(points::IDLE);
            let timeout = match next {
                _ if self.parts.clock.is_manual() => Duration::from_secs(3600),
                Some(at) => Duration::from_millis(at.saturating_sub(now).max(1)),
                None => Duration::from_secs(3600),
            };
            crossbeam_channel::select! {
                recv(self.ctrl) -> msg => match msg {
                    Ok(Msg::Flush(reply)) => {
                        let _ = reply.send(self.publish_all());
                    }
                    Ok(Msg::Compact(reply)) => {
                        let r = self.publish_all().and_then(|()| self.checkpoint());
                        let _ = reply.send(r);
                    }
                    Ok(Msg::Stop(reply)) => {
                        let _ = reply.send(self.publish_all());
                        return;
                    }
                    Err(_) => return,
                },
                recv(self.wake) -> _ => {}
                default(timeout) => {}
            }
        }
    }

    /// Publishes the sessions that are due; returns the next due time.
    fn publish_due(&mut self, now: u64) -> Option<u64> {
        let mut next: Option<u64> = None;
        for (id, dirty) in self.parts.live.dirty.snapshot() {
            match self.due(&id, dirty, now) {
                Due::Gone => {
                    self.parts.live.dirty.take(&id);
                }
                Due::At(at) => next = Some(next.map_or(at, |n| n.min(at))),
                Due::Now => {
                    // Errors are retried on the next tick; flush reports them.
                    if self.publish_one(&id).is_err() {
                        next = Some(now + self.debounce_ms());
                    }
                }
            }
        }
        next
    }

    fn debounce_ms(&self) -> u64 {
        self.parts.config.debounce.as_millis() as u64
    }

    fn due(&self, id: &str, dirty: crate::store::state::Dirty, now: u64) -> Due {
        let state = self.parts.live.read();
        let Some(session) = state.get(id) else {
            return Due::Gone;
        };
        if session.status.is_final() {
            return Due::Now;
        }
        let debounce = self.debounce_ms();
        if now < dirty.since + debounce {
            return Due::At(dirty.since + debounce);
        }
        let estimate = render_estimate(session);
        let stats = self.parts.publisher.stats(id).unwrap_or_default();
        // Budget: what was written before this rewrite stays within twice
        // the current size, so with the final write the total stays within
        // 4x the final size (DESIGN.md, "Pacing").
        if estimate < self.parts.config.pace_min_bytes || stats.written <= 2 * estimate {
            return Due::Now;
        }
        let quiet = quiet_period(debounce, stats.last_duration_ms, stats.written, estimate);
        if now >= dirty.last + quiet {
            return Due::Now; // quiet: the guaranteed follow-up
        }
        Due::At(dirty.last + quiet)
    }

    fn publish_one(&self, id: &str) -> Result<()> {
        let Some(dirty) = self.parts.live.dirty.take(id) else {
            return Ok(());
        };
        if let Err(e) = self.parts.failpoints.hit(points::BEFORE_RENDER) {
            self.parts.live.dirty.restore(id, dirty);
            return Err(Error::io(
                "render trace file",
                self.parts.publisher.dir(),
                e,
            ));
        }
        let copy = self.parts.live.read().get(id).cloned();
        let Some(session) = copy else {
            return Ok(());
        };
        self.parts
            .publisher
            .publish(&session, Publishing::Compactor)
            .inspect_err(|_| self.parts.live.dirty.restore(id, dirty))
            .map(|_| ())
    }

    fn publish_all(&self) -> Result<()> {
        let mut first_err = None;
        for (id, _) in self.parts.live.dirty.snapshot() {
            if let Err(e) = self.publish_one(&id) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn maybe_checkpoint(&mut self) {
        let bytes = self.parts.journal.segment_bytes();
        let threshold = self.parts.config.checkpoint_bytes;
        if bytes >= threshold && bytes.saturating_sub(self.ckpt_base_bytes) >= threshold / 2 {
            // A failed automatic checkpoint is retried when the log grows
            // further; `compact` reports errors to its caller.
            let _ = self.checkpoint();
            self.ckpt_base_bytes = self.parts.journal.segment_bytes();
        }
    }

    fn checkpoint(&mut self) -> Result<CompactReport> {
        let p = &self.parts;
        let state = p.live.read().clone();
        let info = checkpoint::write(&*p.storage, &p.checkpoints, &state, &p.failpoints)?;
        drop(state);
        let lsns = checkpoint::list(&*p.storage, &p.checkpoints)?;
        // Keep the log from the previous checkpoint on (the fallback if the
        // newest is ever unreadable), and every unpublished change.
        let mut bound = if lsns.len() >= KEEP_CHECKPOINTS {
            lsns[lsns.len() - KEEP_CHECKPOINTS]
        } else {
            0
        };
        if let Some(min) = p.live.dirty.min_lsn() {
            bound = bound.min(min);
        }
        if p.config.salvage {
            // Nothing is ever deleted while salvaging.
            bound = 0;
        }
        let removed = p.journal.remove_segments_before(bound)?;
        if !p.config.salvage {
            checkpoint::prune(&*p.storage, &p.checkpoints, KEEP_CHECKPOINTS)?;
        }
        self.ckpt_base_bytes = p.journal.segment_bytes();
        Ok(CompactReport {
            checkpoint_lsn: info.applied_lsn,
            checkpoint_bytes: info.bytes,
            segments_removed: removed.segments,
            bytes_freed: removed.bytes,
            first_lsn: removed.first_lsn,
        })
    }

    /// Retention: retire the oldest finished sessions beyond the limits.
    fn maybe_retain(&mut self, now: u64) {
        let cfg = &self.parts.config;
        if cfg.salvage || (cfg.max_trace_files.is_none() && cfg.max_age.is_none()) {
            return;
        }
        if now < self.last_retention + self.debounce_ms() && self.last_retention != 0 {
            return;
        }
        self.last_retention = now;
        let victims = {
            let state = self.parts.live.read();
            let mut finished: Vec<(u64, String)> = state
                .iter()
                .filter(|s| s.status != Status::Running)
                .map(|s| (s.ended_at.unwrap_or(s.last_time), s.id.clone()))
                .collect();
            finished.sort();
            let mut victims = Vec::new();
            if let Some(max_age) = cfg.max_age {
                let cutoff = now.saturating_sub(max_age.as_millis() as u64);
                victims.extend(finished.iter().filter(|(t, _)| *t < cutoff).cloned());
            }
            if let Some(max) = cfg.max_trace_files {
                let excess = state.len().saturating_sub(max);
                for v in finished.iter().take(excess) {
                    if !victims.contains(v) {
                        victims.push(v.clone());
                    }
                }
            }
            victims
        };
        for (_, id) in victims {
            // Log first, then the file: a crash in between leaves an orphan
            // file that the next open sweeps, never a resurrected session.
            if (self.parts.retire)(&id).is_ok() {
                let _ = self.parts.publisher.remove(&id);
            }
        }
    }
}

/// How long an over-budget session must be quiet before its follow-up
/// publish: at least the debounce and twice as long as its last publish
/// took (a stall caused by the publish itself is not a pause in the
/// events), doubled for each further `2 × size` already written (capped at
/// 64x), so a trickle of events cannot force a rewrite of the whole file
/// per event.
pub fn quiet_period(debounce: u64, last_publish_ms: u64, written: u64, estimate: u64) -> u64 {
    let base = debounce.max(last_publish_ms.saturating_mul(2));
    let over = written
        .div_ceil(2 * estimate.max(1))
        .saturating_sub(1)
        .min(6) as u32;
    base.saturating_mul(1 << over)
}

/// A cheap estimate of a session's rendered size (for pacing decisions).
fn render_estimate(session: &Session) -> u64 {
    session
        .spans
        .values()
        .map(|s| {
            300 + s.input.as_ref().map_or(0, |t| t.0.len() as u64)
                + s.output.as_ref().map_or(0, |t| t.0.len() as u64)
        })
        .sum::<u64>()
        + 1024
}

#[cfg(test)]
mod tests {
    use super::quiet_period;

    #[test]
    fn quiet_period_grows_with_the_overrun_and_the_publish_time() {
        // Within 2x..4x of the size over budget: twice the base.
        assert_eq!(quiet_period(200, 10, 3_000, 1_000), 400);
        // A slow publish (150 ms) stretches the base past a short debounce.
        assert_eq!(quiet_period(20, 150, 3_000, 1_000), 600);
        // Each further 2x doubles it.
        assert_eq!(quiet_period(200, 0, 5_000, 1_000), 800);
        assert_eq!(quiet_period(200, 0, 7_000, 1_000), 1_600);
        // Capped at 64x.
        assert_eq!(quiet_period(200, 0, u64::MAX / 2, 1), 200 * 64);
    }
}
