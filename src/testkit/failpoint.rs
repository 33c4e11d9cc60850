//! Failpoint control for tests: the registry behind the engine's named
//! hooks ([`crate::wal::failpoint`]).
//!
//! A test arms a point to either fail with an I/O error or pause the thread
//! that reaches it until the test releases it. The registry belongs to one
//! journal (it is passed in `Options::failpoints`, a field that exists only
//! with the `testkit` feature), so tests running in parallel in one process
//! do not disturb each other.
//!
//! Unused, a hit costs one relaxed atomic load.

pub use crate::store::compactor::points;
pub use crate::wal::failpoint::names;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an armed failpoint does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Return an I/O error of this kind (every time it is hit).
    Fail(io::ErrorKind),
    /// Return an I/O error the next `n` hits, then behave as unarmed.
    FailTimes(io::ErrorKind, u32),
    /// Block the thread until [`Failpoints::release`] is called.
    Pause,
    /// Do nothing but count the hit (see [`Failpoints::hits`]).
    Observe,
    /// Panic the thread that reaches it, once; then the point behaves as
    /// unarmed. Stands for a bug in an engine thread: tests use it to show
    /// that no caller waits forever when a thread dies.
    Panic,
}

#[derive(Default)]
struct State {
    actions: HashMap<String, Action>,
    /// How many threads are paused at each point right now.
    paused: HashMap<String, usize>,
    /// How many times each armed point was reached in total.
    hits: HashMap<String, u64>,
}

/// A registry of failpoints for one journal. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Failpoints {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    armed: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

impl std::fmt::Debug for Failpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.lock();
        f.debug_struct("Failpoints")
            .field("armed", &state.actions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Failpoints {
    /// A registry with nothing armed.
    pub fn new() -> Failpoints {
        Failpoints::default()
    }

    /// Arms `name` with `action`, replacing what it had.
    pub fn arm(&self, name: &str, action: Action) {
        let mut state = self.inner.state.lock();
        state.actions.insert(name.to_string(), action);
        self.inner.armed.store(true, Ordering::Release);
        self.inner.changed.notify_all();
    }

    /// Disarms `name` and releases any thread paused there.
    pub fn release(&self, name: &str) {
        let mut state = self.inner.state.lock();
        state.actions.remove(name);
        if state.actions.is_empty() {
            self.inner.armed.store(false, Ordering::Release);
        }
        self.inner.changed.notify_all();
    }

    /// Disarms everything and releases every paused thread.
    pub fn release_all(&self) {
        let mut state = self.inner.state.lock();
        state.actions.clear();
        self.inner.armed.store(false, Ordering::Release);
        self.inner.changed.notify_all();
    }

    /// Waits until at least one thread is paused at `name`. Returns false if
    /// `timeout` passed first (a test should fail then, not hang).
    pub fn wait_paused(&self, name: &str, timeout: Duration) -> bool {
        self.wait_for(timeout, |state| {
            state.paused.get(name).copied().unwrap_or(0) > 0
        })
    }

    /// Waits until the armed point `name` was reached at least `n` times.
    /// Returns false if `timeout` passed first.
    pub fn wait_hits(&self, name: &str, n: u64, timeout: Duration) -> bool {
        self.wait_for(timeout, |state| {
            state.hits.get(name).copied().unwrap_or(0) >= n
        })
    }

    fn wait_for(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.inner.state.lock();
        while !done(&state) {
            if self
                .inner
                .changed
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return done(&state);
            }
        }
        true
    }

    /// How many times the armed point `name` was reached.
    pub fn hits(&self, name: &str) -> u64 {
        self.inner.state.lock().hits.get(name).copied().unwrap_or(0)
    }

    /// Called by the engine at the point `name`. Returns the armed error, or
    /// blocks while the point is armed with [`Action::Pause`].
    #[inline]
    pub fn hit(&self, name: &'static str) -> io::Result<()> {
        if !self.inner.armed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.hit_slow(name)
    }

    #[cold]
    fn hit_slow(&self, name: &'static str) -> io::Result<()> {
        let mut state = self.inner.state.lock();
        let Some(action) = state.actions.get(name).cloned() else {
            return Ok(());
        };
        *state.hits.entry(name.to_string()).or_default() += 1;
        self.inner.changed.notify_all();
        match action {
            Action::Fail(kind) => Err(failpoint_error(kind, name)),
            Action::FailTimes(kind, n) => {
                if n <= 1 {
                    state.actions.remove(name);
                } else {
                    state
                        .actions
                        .insert(name.to_string(), Action::FailTimes(kind, n - 1));
                }
                Err(failpoint_error(kind, name))
            }
            Action::Observe => Ok(()),
            Action::Panic => {
                state.actions.remove(name);
                drop(state);
                panic!("injected by failpoint {name}");
            }
            Action::Pause => {
                *state.paused.entry(name.to_string()).or_default() += 1;
                self.inner.changed.notify_all();
                while matches!(state.actions.get(name), Some(Action::Pause)) {
                    self.inner.changed.wait(&mut state);
                }
                *state.paused.entry(name.to_string()).or_default() -= 1;
                self.inner.changed.notify_all();
                Ok(())
            }
        }
    }
}

fn failpoint_error(kind: io::ErrorKind, name: &str) -> io::Error {
    io::Error::new(kind, format!("injected by failpoint {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unarmed_point_passes() {
        let fp = Failpoints::new();
        assert!(fp.hit(names::WRITER_BEFORE_SYNC).is_ok());
    }

    #[test]
    fn fail_times_counts_down() {
        let fp = Failpoints::new();
        fp.arm(
            names::WRITER_BEFORE_SYNC,
            Action::FailTimes(io::ErrorKind::Other, 2),
        );
        assert!(fp.hit(names::WRITER_BEFORE_SYNC).is_err());
        assert!(fp.hit(names::WRITER_BEFORE_SYNC).is_err());
        assert!(fp.hit(names::WRITER_BEFORE_SYNC).is_ok());
        assert_eq!(fp.hits(names::WRITER_BEFORE_SYNC), 2);
    }

    #[test]
    fn pause_blocks_until_release() {
        let fp = Failpoints::new();
        fp.arm(names::WRITER_BEFORE_SYNC, Action::Pause);
        let passed = Arc::new(AtomicBool::new(false));
        let t = {
            let fp = fp.clone();
            let passed = passed.clone();
            std::thread::spawn(move || {
                fp.hit(names::WRITER_BEFORE_SYNC).unwrap();
                passed.store(true, Ordering::SeqCst);
            })
        };
        assert!(fp.wait_paused(names::WRITER_BEFORE_SYNC, Duration::from_secs(10)));
        assert!(!passed.load(Ordering::SeqCst));
        fp.release(names::WRITER_BEFORE_SYNC);
        t.join().unwrap();
        assert!(passed.load(Ordering::SeqCst));
    }
}
