//! Time for the session store: the system clock in production, a manual
//! clock in tests, so debounce and retention are driven deterministically.
//!
//! Only the store and the compactor read the clock; the session model never
//! does (events carry their time).

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in epoch milliseconds.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// A clock that moves only when told to.
    Manual(Arc<ManualClock>),
}

impl Clock {
    /// A manual clock starting at `ms`, and its handle.
    pub fn manual(ms: u64) -> (Clock, Arc<ManualClock>) {
        let manual = Arc::new(ManualClock {
            inner: Mutex::new(ManualInner {
                now: ms,
                wakers: Vec::new(),
            }),
        });
        (Clock::Manual(manual.clone()), manual)
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            Clock::Manual(m) => m.inner.lock().now,
        }
    }

    /// Registers a channel that gets a message whenever a manual clock
    /// moves (the compactor's wake-up). A no-op for the system clock.
    pub fn on_advance(&self, waker: Sender<()>) {
        if let Clock::Manual(m) = self {
            m.inner.lock().wakers.push(waker);
        }
    }

    /// True for the manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}

/// A test clock: time stands still until [`ManualClock::advance`].
#[derive(Debug)]
pub struct ManualClock {
    inner: Mutex<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    now: u64,
    wakers: Vec<Sender<()>>,
}

impl ManualClock {
    /// Moves the clock forward by `ms` and wakes whoever waits on it.
    pub fn advance(&self, ms: u64) {
        let mut inner = self.inner.lock();
        inner.now = inner.now.saturating_add(ms);
        inner.wakers.retain(|w| match w.try_send(()) {
            Ok(()) | Err(crossbeam_channel::TrySendError::Full(())) => true,
            Err(crossbeam_channel::TrySendError::Disconnected(())) => false,
        });
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.inner.lock().now
    }
}
