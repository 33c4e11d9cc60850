//! The live state: every session, kept current by applying committed log
//! entries strictly in LSN order.
//!
//! Appenders finish out of order (a group commit wakes many at once), but
//! the state must be exactly what replaying the log gives, or a trace file
//! written now could differ from the one written after a restart. So each
//! appender hands its acknowledged entries to the [`LiveState`] sequencer,
//! which applies the contiguous prefix of what it holds and parks the rest
//! until the gap before it fills. Appliers then learn, per entry, what it
//! did (for example that its client key was a duplicate).
//!
//! After applying, the state marks the touched sessions dirty for the
//! compactor and hands the entries to subscribers. It never touches files.

use crate::error::{Error, Result};
use crate::store::event::Entry;
use crate::store::model::{Applied, Sessions};
use crate::wal::Lsn;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::{Condvar, Mutex, RwLock, RwLockReadGuard};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A committed entry, as subscribers receive it.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Its LSN.
    pub lsn: Lsn,
    /// The entry.
    pub entry: Arc<Entry>,
}

/// A live feed of committed entries, in LSN order.
///
/// The feed is bounded: a subscriber that falls more than its capacity
/// behind is cut off ([`Subscription::lagged`] turns true and the channel
/// closes) rather than slowing ingest or growing memory without bound. It
/// can catch up from the log and subscribe again.
#[derive(Debug)]
pub struct Subscription {
    /// The entries.
    pub receiver: Receiver<Committed>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// True if the feed was cut off because the subscriber fell behind.
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }
}

struct Subscriber {
    sender: Sender<Committed>,
    lagged: Arc<AtomicBool>,
}

/// A session the compactor should publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dirty {
    /// Clock time (ms) it became dirty.
    pub since: u64,
    /// Clock time (ms) of its latest change.
    pub last: u64,
    /// The first LSN not yet in its published file.
    pub first_lsn: Lsn,
}

/// Sessions with changes not yet published.
#[derive(Default)]
pub struct DirtySet {
    map: Mutex<HashMap<String, Dirty>>,
    wake: Mutex<Option<Sender<()>>>,
}

impl DirtySet {
    /// Records a change to `id` at clock time `now` by the entry at `lsn`.
    /// Wakes the compactor if the session was clean, or if `urgent` (the
    /// session just ended: its final file goes out at once).
    pub fn mark(&self, id: &str, lsn: Lsn, now: u64, urgent: bool) {
        let fresh = {
            let mut map = self.map.lock();
            match map.get_mut(id) {
                Some(d) => {
                    d.last = d.last.max(now);
                    false
                }
                None => {
                    map.insert(
                        id.to_string(),
                        Dirty {
                            since: now,
                            last: now,
                            first_lsn: lsn,
                        },
                    );
                    true
                }
            }
        };
        if fresh || urgent {
            self.wake();
        }
    }

    /// Wakes the compactor.
    pub fn wake(&self) {
        if let Some(w) = self.wake.lock().as_ref() {
            let _ = w.try_send(());
        }
    }

    /// Sets the compactor's wake-up channel.
    pub fn set_waker(&self, waker: Sender<()>) {
        *self.wake.lock() = Some(waker);
    }

    /// A copy of the set.
    pub fn snapshot(&self) -> Vec<(String, Dirty)> {
        self.map
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Takes `id` out of the set (the caller is about to publish it).
    pub fn take(&self, id: &str) -> Option<Dirty> {
        self.map.lock().remove(id)
    }

    /// Puts `id` back after a failed publish, merging with any newer mark.
    pub fn restore(&self, id: &str, dirty: Dirty) {
        let mut map = self.map.lock();
        let d = map.entry(id.to_string()).or_insert(dirty);
        d.since = d.since.min(dirty.since);
        d.first_lsn = d.first_lsn.min(dirty.first_lsn);
    }

    /// The lowest unpublished LSN, if any session is dirty.
    pub fn min_lsn(&self) -> Option<Lsn> {
        self.map.lock().values().map(|d| d.first_lsn).min()
    }
}

#[derive(Default)]
struct Sequencer {
    /// Acknowledged entries waiting for a gap before them to fill, by
    /// first LSN.
    parked: BTreeMap<Lsn, Vec<Entry>>,
    /// What applying each batch did, by first LSN, until its appender
    /// collects it.
    done: HashMap<Lsn, Vec<Applied>>,
    /// The appenders asleep until their batch is applied, by first LSN:
    /// each is woken alone when its batch is, not with everyone at every
    /// drain (with 64 appenders on 2 cores, a `perf` profile put about 29 %
    /// of the Store's samples in that wake-up and re-check).
    sleeping: HashMap<Lsn, Arc<Condvar>>,
    /// Set once no entry at or above this LSN will ever be applied (the
    /// journal was poisoned, or the store closed), with the error each
    /// appender of such an entry gets.
    abandoned: Option<(Lsn, Error)>,
}

/// The sessions, the sequencer that feeds them, and who hears of changes.
pub struct LiveState {
    sessions: RwLock<Sessions>,
    sequencer: Mutex<Sequencer>,
    applied: Condvar,
    /// Sessions the compactor should publish.
    pub dirty: DirtySet,
    subscribers: Mutex<Vec<Subscriber>>,
    subscriber_capacity: usize,
}

impl LiveState {
    /// Live state starting from `sessions` (recovered).
    pub fn new(sessions: Sessions, subscriber_capacity: usize) -> LiveState {
        LiveState {
            sessions: RwLock::new(sessions),
            sequencer: Mutex::new(Sequencer::default()),
            applied: Condvar::new(),
            dirty: DirtySet::default(),
            subscribers: Mutex::new(Vec::new()),
            subscriber_capacity,
        }
    }

    /// Read access to the sessions.
    pub fn read(&self) -> RwLockReadGuard<'_, Sessions> {
        self.sessions.read()
    }

    /// Runs `f` with write access (for out-of-band crash markers, which
    /// have no LSN).
    pub fn with_write<R>(&self, f: impl FnOnce(&mut Sessions) -> R) -> R {
        f(&mut self.sessions.write())
    }

    /// One past the last applied LSN.
    pub fn applied_lsn(&self) -> Lsn {
        self.sessions.read().applied()
    }

    /// Hands over the acknowledged entries starting at `first`, applies
    /// whatever is now contiguous, and waits until these entries are
    /// applied. Returns what each did.
    ///
    /// Ends with an error, and without applying the entries, if they can
    /// never be applied in order: an LSN below them will never be handed
    /// over because its append failed ([`LiveState::abandon_from`], called
    /// when the journal is poisoned), or the store closed. The state then
    /// does not hold them, so the appender must not be told they were
    /// applied.
    pub fn complete(&self, first: Lsn, entries: Vec<Entry>, now: u64) -> Result<Vec<Applied>> {
        let mut seq = self.sequencer.lock();
        if let Some(e) = Self::refused(&seq, first) {
            return Err(e);
        }
        // An LSN at or below one already applied, or handed over twice,
        // would park forever: its appender would never wake.
        let applied = self.sessions.read().applied();
        assert!(
            first >= applied,
            "entries at LSN {first} handed over after LSN {applied} was applied"
        );
        assert!(!entries.is_empty(), "no entries handed over at LSN {first}");
        let previous = seq.parked.insert(first, entries);
        assert!(previous.is_none(), "LSN {first} handed over twice");
        self.drain(&mut seq, now);
        if let Some(done) = seq.done.remove(&first) {
            return Ok(done);
        }
        let wake = Arc::new(Condvar::new());
        seq.sleeping.insert(first, wake.clone());
        loop {
            wake.wait(&mut seq);
            if let Some(done) = seq.done.remove(&first) {
                return Ok(done);
            }
            if let Some(e) = Self::refused(&seq, first) {
                // `abandon_from` took the entries out of `parked` and this
                // waiter out of `sleeping`.
                return Err(e);
            }
        }
    }

    /// The error for entries starting at `first` if they can never be
    /// applied.
    fn refused(seq: &Sequencer, first: Lsn) -> Option<Error> {
        match &seq.abandoned {
            Some((from, e)) if first >= *from => Some(e.duplicate()),
            _ => None,
        }
    }

    /// No entry at or above `lsn` will be applied: every appender waiting
    /// for one (now or later) gets `error` instead, and their entries are
    /// dropped. Entries below `lsn` are applied as before (their appenders
    /// were acknowledged and hand them over). Called when the journal is
    /// poisoned, with the first LSN whose append failed (see
    /// [`crate::wal::log::LogState::failed_from`]); a later call can only lower
    /// the bound. Wakes `wait_applied` callers too.
    pub fn abandon_from(&self, lsn: Lsn, error: Error) {
        let mut seq = self.sequencer.lock();
        match &seq.abandoned {
            Some((from, _)) if *from <= lsn => {}
            _ => seq.abandoned = Some((lsn, error)),
        }
        let from = seq.abandoned.as_ref().map_or(lsn, |(from, _)| *from);
        let doomed: Vec<Lsn> = seq.parked.range(from..).map(|(k, _)| *k).collect();
        for first in doomed {
            seq.parked.remove(&first);
        }
        let sleepers: Vec<Lsn> = seq
            .sleeping
            .keys()
            .copied()
            .filter(|k| *k >= from)
            .collect();
        for first in sleepers {
            if let Some(wake) = seq.sleeping.remove(&first) {
                wake.notify_one();
            }
        }
        self.applied.notify_all();
    }

    /// Applies parked entries while the next one is contiguous.
    fn drain(&self, seq: &mut Sequencer, now: u64) {
        let mut any = false;
        loop {
            let next = self.sessions.read().applied();
            let Some(entries) = seq.parked.remove(&next) else {
                break;
            };
            let results = self.apply_now(next, &entries, now);
            seq.done.insert(next, results);
            if let Some(wake) = seq.sleeping.remove(&next) {
                wake.notify_one();
            }
            any = true;
        }
        if any {
            // `wait_applied` callers (flush, close).
            self.applied.notify_all();
        }
    }

    /// Applies a contiguous batch (under one write lock: a batch is
    /// visible whole or not at all), marks dirty, notifies subscribers.
    fn apply_now(&self, first: Lsn, entries: &[Entry], now: u64) -> Vec<Applied> {
        let (results, ended): (Vec<Applied>, Vec<bool>) = {
            let mut sessions = self.sessions.write();
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let applied = sessions.apply(first + i as Lsn, e);
                    let ended = applied
                        .session
                        .as_deref()
                        .and_then(|id| sessions.get(id))
                        .is_some_and(|s| s.status.is_final());
                    (applied, ended)
                })
                .unzip()
        };
        for (i, r) in results.iter().enumerate() {
            if let (Some(id), true) = (&r.session, r.changed) {
                self.dirty.mark(id, first + i as Lsn, now, ended[i]);
            }
        }
        self.publish_to_subscribers(first, entries);
        results
    }

    /// Applies entries replayed at open (no appenders wait for them).
    pub fn replay(&self, lsn: Lsn, entry: &Entry) -> Applied {
        self.sessions.write().apply(lsn, entry)
    }

    /// Skips LSN `lsn` (a record that is not a store entry).
    pub fn skip(&self, lsn: Lsn) {
        self.sessions.write().skip(lsn);
    }

    /// Waits until every LSN below `lsn` is applied, up to `timeout`.
    /// Returns `Ok(false)` on timeout, and the error of
    /// [`LiveState::abandon_from`] at once if some LSN below `lsn` will
    /// never be applied.
    pub fn wait_applied(&self, lsn: Lsn, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut seq = self.sequencer.lock();
        loop {
            let applied = self.sessions.read().applied();
            if applied >= lsn {
                return Ok(true);
            }
            if let Some((from, e)) = &seq.abandoned {
                if *from < lsn && applied >= *from {
                    return Err(e.duplicate());
                }
            }
            if self.applied.wait_until(&mut seq, deadline).timed_out() {
                return Ok(self.sessions.read().applied() >= lsn);
            }
        }
    }

    /// A new subscription to committed entries.
    pub fn subscribe(&self) -> Subscription {
        let (sender, receiver) = crossbeam_channel::bounded(self.subscriber_capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        self.subscribers.lock().push(Subscriber {
            sender,
            lagged: lagged.clone(),
        });
        Subscription { receiver, lagged }
    }

    fn publish_to_subscribers(&self, first: Lsn, entries: &[Entry]) {
        let mut subs = self.subscribers.lock();
        if subs.is_empty() {
            return;
        }
        for (i, entry) in entries.iter().enumerate() {
            let committed = Committed {
                lsn: first + i as Lsn,
                entry: Arc::new(entry.clone()),
            };
            subs.retain(|s| match s.sender.try_send(committed.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    s.lagged.store(true, Ordering::Release);
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poisoned() -> Error {
        Error::Poisoned {
            cause: "fdatasync failed".into(),
        }
    }

    /// The sequencer refuses, loudly, entries at an LSN already applied:
    /// parked below the applied LSN, they would never be drained and their
    /// appender would sleep forever (before this assertion, it did).
    #[test]
    fn handing_over_an_applied_lsn_panics_instead_of_hanging() {
        let live = Arc::new(LiveState::new(Sessions::new(1), 16));
        live.complete(1, vec![Entry::Opened], 0).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let again = live.clone();
        std::thread::spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                again.complete(1, vec![Entry::Opened], 0)
            }));
            let _ = tx.send(result.is_err());
        });
        // Bounds only the failure on the old code (it hung); the new code
        // answers at once.
        let panicked = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(panicked, Ok(true), "a second hand-over of LSN 1 must panic");
    }

    /// LSN 2 is never handed over (its append failed). An appender of LSN
    /// 3 already asleep, and one of LSN 4 arriving later, both get the
    /// error and their entries stay unapplied; LSN 1, below the abandoned
    /// one, is still applied; `wait_applied` past the gap returns the error
    /// at once. (Without `abandon_from`, the appender of LSN 3 sleeps
    /// forever.)
    #[test]
    fn abandoned_lsns_end_every_wait_above_them() {
        let live = Arc::new(LiveState::new(Sessions::new(1), 16));
        let (tx, rx) = crossbeam_channel::bounded(1);
        let waiter = {
            let live = live.clone();
            std::thread::spawn(move || {
                let _ = tx.send(live.complete(3, vec![Entry::Opened], 0));
            })
        };
        // Wait (a condition, not a sleep) until it is asleep in the sequencer.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !live.sequencer.lock().sleeping.contains_key(&3) {
            assert!(
                Instant::now() < deadline,
                "the appender never went to sleep"
            );
            std::thread::yield_now();
        }
        assert!(
            rx.try_recv().is_err(),
            "no answer while LSN 2 may still come"
        );
        live.abandon_from(2, poisoned());
        let answer = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the sleeping appender is woken");
        assert!(matches!(answer, Err(Error::Poisoned { .. })));
        waiter.join().unwrap();
        assert!(matches!(
            live.complete(4, vec![Entry::Opened], 0),
            Err(Error::Poisoned { .. })
        ));
        assert_eq!(live.complete(1, vec![Entry::Opened], 0).unwrap().len(), 1);
        assert_eq!(live.applied_lsn(), 2, "LSN 1 applied, nothing above 2");
        assert!(matches!(
            live.wait_applied(5, Duration::from_secs(3600)),
            Err(Error::Poisoned { .. })
        ));
        assert!(live.wait_applied(2, Duration::ZERO).unwrap());
        // A later call can only lower the bound.
        live.abandon_from(9, Error::Closed);
        assert!(matches!(
            live.complete(2, vec![Entry::Opened], 0),
            Err(Error::Poisoned { .. })
        ));
    }
}
