//! The session store: the public API for trace and hook events.
//!
//! [`Store::open`] recovers (newest checkpoint, then the log after it, then
//! the crash ledger), marks sessions orphaned by a dead process as crashed
//! (if [`OrphanPolicy::MarkCrashed`]), republishes what recovery changed,
//! and starts the compactor. Then:
//!
//! * [`Store::ingest`] / [`Store::ingest_batch`]: validate, stamp, append
//!   through the group-commit writer, wait for durability, apply in LSN
//!   order, return the LSN (the original one for a duplicate client key).
//! * [`Store::mark_crashed`] / [`Store::mark_all_open_crashed`]: a crash
//!   marker through the urgent lane (or, if the writer does not answer in
//!   time, the crash ledger), applied, and published on the caller's
//!   thread before returning.
//! * [`Store::sessions`], [`Store::session`], [`Store::subscribe`],
//!   [`Store::flush`], [`Store::compact`], [`Store::close`].

//!
//! Submodules: [`event`] (event types, JSON form, the hook table),
//! [`model`] (the session model), [`state`] (live state, subscriptions),
//! [`render`] / [`jcs`] / [`names`] (trace files), [`checkpoint`] and
//! [`ledger`] (persistence), [`compactor`] (publishing, checkpoints, log
//! bounding), [`clock`], [`snapshot`] (the read-only view).

pub mod checkpoint;
pub mod clock;
pub mod commit;
pub mod compactor;
pub mod event;
pub mod jcs;
pub mod layout;
pub mod ledger;
pub mod model;
pub mod names;
pub mod publish;
pub mod render;
pub mod snapshot;
pub mod state;

use crate::error::{Error, JournalError, Result};
use crate::wal::journal::Journal;
use crate::wal::options::Options;
use crate::wal::recovery::RecoveryReport;
use crate::wal::segment::{self, SegmentHeader};
use crate::wal::storage::{OpenMode, Storage};
use crate::wal::view::LogView;
use crate::wal::Lsn;
use checkpoint::{Scan, Unreadable};
use clock::Clock;
use commit::{commit, Commit, Lane};
use compactor::{CompactReport, Compactor, CompactorConfig, CompactorParts};
use event::{Body, Entry, Event, ENTRY_KIND};
use layout::LOCK_FILE;
use ledger::Ledger;
use model::{Session, Sessions, Status, ORPHANED_REASON};
use publish::{FileStats, Publisher, Publishing};
use state::{LiveState, Subscription};
use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What to do at open with sessions that were open when the previous
/// process ended without closing the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OrphanPolicy {
    /// Mark them crashed (durably, before any new event is accepted) and
    /// close their open spans as interrupted. For a store embedded in the
    /// agent's own process: its death is the sessions' death.
    #[default]
    MarkCrashed,
    /// Keep them open. For a store that outlives its agents (a daemon).
    KeepOpen,
}

/// How the session store behaves.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The journal's options (durability, segment size, storage,
    /// failpoints, ...).
    pub journal: Options,
    /// Time source.
    pub clock: Clock,
    /// Orphaned sessions at open.
    pub orphans: OrphanPolicy,
    /// A session's file is published this long after its first unpublished
    /// change (a burst is one write).
    pub debounce: Duration,
    /// Sessions estimated below this size are republished on every debounce
    /// tick; larger ones are paced (see `DESIGN.md`).
    pub pace_min_bytes: u64,
    /// Keep at most this many sessions (and trace files); the oldest
    /// finished ones are retired first. `None`: no limit.
    pub max_trace_files: Option<usize>,
    /// Retire finished sessions that ended longer ago than this.
    pub max_age: Option<Duration>,
    /// Checkpoint when the log reaches this many bytes.
    pub checkpoint_bytes: u64,
    /// How long a crash mark waits for the writer before it takes the
    /// direct path (the crash ledger).
    pub crash_wait: Duration,
    /// Entries a subscriber may fall behind before it is cut off.
    pub subscriber_capacity: usize,
    /// Salvage mode: open even if sessions are lost, and never delete a
    /// file. Without it (the default), `open` refuses with
    /// [`Error::OpenRefused`], changing nothing on disk, when the log no
    /// longer starts at LSN 1 and no checkpoint covers the LSNs before it
    /// (every checkpoint that did is damaged), or when a checkpoint is in a
    /// format version this build does not read. With it, such a store
    /// opens with what is left ([`OpenReport::missing`] says which LSNs are
    /// lost), and nothing is deleted while it is open: no temp or trace
    /// file sweep, no crash ledger removal, no segment removal, no
    /// checkpoint pruning, no retention. Checkpoints are still written, so
    /// once one is, the store opens normally again (with the salvaged
    /// state; the trace files of lost sessions stay, reported as unknown).
    pub salvage: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            journal: Options::default(),
            clock: Clock::System,
            orphans: OrphanPolicy::MarkCrashed,
            debounce: Duration::from_millis(200),
            pace_min_bytes: 256 << 10,
            max_trace_files: None,
            max_age: None,
            checkpoint_bytes: 256 << 20,
            crash_wait: Duration::from_secs(1),
            subscriber_capacity: 65_536,
            salvage: false,
        }
    }
}

/// The answer to an ingested event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The event's LSN; for a duplicate, the original's.
    pub lsn: Lsn,
    /// True if the client key was already stored: nothing changed.
    pub duplicate: bool,
}

/// A session's summary, from memory.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSummary {
    /// The id, verbatim.
    pub id: String,
    /// Title, if any.
    pub title: Option<String>,
    /// Status of the current run.
    pub status: Status,
    /// Error text (error, crashed).
    pub error: Option<String>,
    /// Epoch ms of the start.
    pub started_at: u64,
    /// Epoch ms of the end, once ended.
    pub ended_at: Option<u64>,
    /// Duration so far (to the end, or to the latest event).
    pub duration_ms: u64,
    /// Total tokens.
    pub tokens: u64,
    /// Total cost.
    pub cost: f64,
    /// Tool calls.
    pub tool_calls: u64,
    /// Spans created.
    pub spans: u64,
    /// The run number.
    pub run: u32,
    /// Its trace file.
    pub file: PathBuf,
}

/// What [`Store::open`] found and did.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// The journal's recovery.
    pub journal: RecoveryReport,
    /// The checkpoint loaded (its LSN), if any.
    pub checkpoint: Option<Lsn>,
    /// Checkpoints skipped as invalid, with why (file name, reason),
    /// newest first. Set on every open that skipped one.
    pub checkpoints_skipped: Vec<(String, String)>,
    /// Salvage mode only: the LSNs the log no longer holds and no
    /// checkpoint covers (their entries are lost). `None` when nothing is
    /// missing.
    pub missing: Option<Range<Lsn>>,
    /// Trace files in `traces/` that no session owns and that open left
    /// alone (it removes only temp files and retired sessions' leftovers),
    /// sorted.
    pub unknown_trace_files: Vec<PathBuf>,
    /// Log entries replayed after the checkpoint.
    pub replayed: u64,
    /// Crash markers found in the crash ledger.
    pub ledger_markers: usize,
    /// Sessions marked crashed because their process died.
    pub orphans_marked: Vec<String>,
    /// Stale temp files and retired sessions' leftover trace files removed.
    pub swept: usize,
    /// Sessions recovered.
    pub sessions: usize,
}

/// The session store. Cheap to share behind an `Arc`; every method takes
/// `&self`.
pub struct Store {
    dir: PathBuf,
    options: StoreOptions,
    journal: Arc<Journal>,
    live: Arc<LiveState>,
    publisher: Arc<Publisher>,
    ledger: Ledger,
    compactor: parking_lot::Mutex<Option<Compactor>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and recovers it.
    ///
    /// Refuses with [`Error::OpenRefused`] (see [`StoreOptions::salvage`])
    /// before anything is written when opening would silently lose
    /// sessions: the log does not start at LSN 1 and no checkpoint covers
    /// the LSNs before it, or a checkpoint is in a version this build does
    /// not read.
    #[allow(clippy::too_many_lines)] // TODO(issue 11): split
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<(Store, OpenReport)> {
        let dir = dir.as_ref().to_path_buf();
        let storage = options.journal.storage.clone();
        let failpoints = options.journal.failpoints().clone();
        let salvage = options.salvage;
        let ckpt_dir = layout::checkpoints_dir(&dir);
        // The check comes first, reading only: a refused open must not
        // change a byte (not even the journal's recovery may run).
        let checked = if salvage {
            None
        } else {
            precheck(&*storage, &dir, &ckpt_dir)?
        };
        let (journal, journal_report) = Journal::open(&dir, options.journal.clone())?;
        let journal = Arc::new(journal);
        let mut report = OpenReport {
            journal: journal_report,
            ..OpenReport::default()
        };

        // Reuse the checked scan unless the checkpoints changed meanwhile
        // (another process between our check and the journal's lock).
        let scan = match checked {
            Some((names, scan)) if checkpoint::list(&*storage, &ckpt_dir)? == names => scan,
            _ => checkpoint::scan(
                &*storage,
                &ckpt_dir,
                if salvage {
                    Unreadable::Skip
                } else {
                    Unreadable::Refuse
                },
            )?,
        };
        let sessions = starting_state(scan, journal.first_lsn(), &ckpt_dir, salvage, &mut report)?;
        storage
            .create_dir_all(&ckpt_dir)
            .map_err(|e| Error::io("create checkpoint directory", &ckpt_dir, e))?;
        if !salvage {
            report.swept += checkpoint::sweep_temps(&*storage, &ckpt_dir)?;
        }
        let live = Arc::new(LiveState::new(sessions, options.subscriber_capacity));
        stop_waits_on_poison(&journal, &live);
        report.replayed = replay(&journal, &live)?;

        let publisher = Arc::new(Publisher::new(
            storage.clone(),
            layout::traces_dir(&dir),
            failpoints.clone(),
        )?);
        let (owned, retired): (HashSet<String>, HashSet<String>) = {
            let state = live.read();
            (
                state.iter().map(|s| names::file_name(&s.id)).collect(),
                state.retired().map(names::file_name).collect(),
            )
        };
        let swept = publisher.sweep(
            &|name| owned.contains(name),
            &|name| retired.contains(name),
            !salvage,
        )?;
        report.swept += swept.removed;
        report.unknown_trace_files = swept.unknown;

        let store = Store {
            dir: dir.clone(),
            ledger: Ledger::with_failpoints(storage.clone(), &dir, failpoints.clone()),
            options,
            journal,
            live,
            publisher,
            compactor: parking_lot::Mutex::new(None),
        };
        let clean = store.live.read().clean_shutdown();
        let changed = store.recover_crashes(&mut report)?;
        store.publish_after_recovery(&changed, clean)?;
        report.sessions = store.live.read().len();
        store.start_compactor(storage, ckpt_dir)?;
        Ok((store, report))
    }

    /// Applies the crash ledger and, by policy, marks orphans crashed.
    /// Everything is durable in the log before this returns. Returns the
    /// sessions it changed.
    fn recover_crashes(&self, report: &mut OpenReport) -> Result<Vec<String>> {
        let ledger = self.ledger.read()?;
        report.ledger_markers = ledger.len();
        // `Opened` first: from now on, this process's death orphans what
        // is open, even if it never writes another entry.
        let mut entries: Vec<Entry> = vec![Entry::Opened];
        entries.extend(ledger);
        let orphaned =
            self.options.orphans == OrphanPolicy::MarkCrashed && !self.live.read().clean_shutdown();
        if orphaned {
            let now = self.options.clock.now_ms();
            for (id, run) in self.live.read().open_sessions() {
                report.orphans_marked.push(id.clone());
                entries.push(Entry::from(Event {
                    session: id,
                    key: None,
                    time: Some(now),
                    body: Body::Crash {
                        reason: ORPHANED_REASON.to_string(),
                        run,
                    },
                }));
            }
        }
        let now = self.options.clock.now_ms();
        let changed = commit(&self.journal, &self.live, Lane::Urgent, entries, now)?
            .applied
            .into_iter()
            .filter(|a| a.changed)
            .filter_map(|a| a.session)
            .collect();
        if report.ledger_markers > 0 && !self.options.salvage {
            self.ledger.remove()?;
        }
        Ok(changed)
    }

    /// Publishes, before `open` returns, every crashed session and every
    /// session recovery changed, so no stale file (from before a crash, or
    /// left by an interrupted publish) can show another status.
    fn publish_after_recovery(&self, changed: &[String], clean: bool) -> Result<()> {
        let crashed: Vec<Session> = {
            let state = self.live.read();
            state
                .iter()
                .filter(|s| s.status == Status::Crashed || changed.contains(&s.id))
                .cloned()
                .collect()
        };
        for session in &crashed {
            self.live.dirty.take(&session.id);
            self.publisher.publish(session, Publishing::Crash)?;
        }
        // After a crash, everything else is republished in the background:
        // the files may predate the last events before it. After a clean
        // close every file was flushed, so nothing needs rewriting.
        let now = self.options.clock.now_ms();
        if clean {
            return Ok(());
        }
        let state = self.live.read();
        for s in state.iter() {
            if s.status != Status::Crashed && !changed.contains(&s.id) {
                self.live.dirty.mark(&s.id, s.last_lsn, now, false);
            }
        }
        Ok(())
    }

    fn start_compactor(
        &self,
        storage: Arc<dyn crate::wal::storage::Storage>,
        ckpt: PathBuf,
    ) -> Result<()> {
        let journal = self.journal.clone();
        let live = self.live.clone();
        let clock = self.options.clock.clone();
        let retire = Box::new(move |id: &str| -> Result<()> {
            let entry = Entry::Retire {
                session: id.to_string(),
            };
            commit(&journal, &live, Lane::Normal, vec![entry], clock.now_ms())?;
            Ok(())
        });
        let compactor = Compactor::start(CompactorParts {
            config: CompactorConfig {
                debounce: self.options.debounce,
                pace_min_bytes: self.options.pace_min_bytes,
                max_trace_files: self.options.max_trace_files,
                max_age: self.options.max_age,
                checkpoint_bytes: self.options.checkpoint_bytes,
                salvage: self.options.salvage,
            },
            live: self.live.clone(),
            journal: self.journal.clone(),
            publisher: self.publisher.clone(),
            clock: self.options.clock.clone(),
            storage,
            checkpoints: ckpt,
            failpoints: self.options.journal.failpoints().clone(),
            retire,
        })?;
        *self.compactor.lock() = Some(compactor);
        Ok(())
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of trace files.
    pub fn traces_dir(&self) -> &Path {
        self.publisher.dir()
    }

    /// Where session `id`'s trace file is (or will be).
    pub fn trace_path(&self, id: &str) -> PathBuf {
        self.publisher.path_of(id)
    }

    /// A read-only view of the underlying log (its LSNs, its records, its
    /// size). Only the store appends to its log: every entry goes through
    /// [`commit::commit`], so the sequencer hears of every LSN.
    ///
    /// The store hands out no way to append past it (an entry appended
    /// behind the sequencer's back would make every later `ingest` wait for
    /// it); this does not compile:
    ///
    /// ```compile_fail
    /// fn raw_append(store: &tracejournal::Store) {
    ///     let _ = store.journal().append(tracejournal::Record::new(1, vec![1]));
    /// }
    /// ```
    pub fn log(&self) -> LogView<'_> {
        LogView::new(&self.journal)
    }

    /// Ingests one event. Returns once it is as durable as the journal's
    /// durability promises and applied. A crash event is
    /// [`Store::mark_crashed`].
    pub fn ingest(&self, event: Event) -> Result<Ack> {
        if let Body::Crash { reason, .. } = &event.body {
            let lsn = self.mark_crashed(&event.session, reason)?;
            return Ok(Ack {
                lsn,
                duplicate: false,
            });
        }
        Ok(self.ingest_batch(vec![event])?[0])
    }

    /// Ingests events as one atomic unit: after any crash, all of them or
    /// none. If any event is invalid, none is written and the error names
    /// its index.
    pub fn ingest_batch(&self, events: Vec<Event>) -> Result<Vec<Ack>> {
        let now = self.options.clock.now_ms();
        let mut entries = Vec::with_capacity(events.len());
        let mut known = Vec::with_capacity(events.len());
        for (index, mut event) in events.into_iter().enumerate() {
            event.validate().map_err(|e| Error::InvalidEvent {
                index,
                reason: e.to_string(),
            })?;
            if matches!(event.body, Body::Crash { .. }) {
                return Err(Error::InvalidEvent {
                    index,
                    reason: "a crash marker cannot be part of a batch; use mark_crashed".into(),
                });
            }
            event.time.get_or_insert(now);
            known.push(self.known_key(&event));
            entries.push(Entry::from(event));
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        if known.iter().all(Option::is_some) {
            // Every event is a retry of a stored one: nothing to write.
            return Ok(known
                .into_iter()
                .map(|lsn| Ack {
                    lsn: lsn.expect("checked"),
                    duplicate: true,
                })
                .collect());
        }
        let Commit { first, applied } =
            commit(&self.journal, &self.live, Lane::Normal, entries, now)?;
        Ok(applied
            .into_iter()
            .enumerate()
            .map(|(i, a)| match a.duplicate_of {
                Some(lsn) => Ack {
                    lsn,
                    duplicate: true,
                },
                None => Ack {
                    lsn: first + i as Lsn,
                    duplicate: false,
                },
            })
            .collect())
    }

    fn known_key(&self, event: &Event) -> Option<Lsn> {
        let key = event.key.as_ref()?;
        self.live.read().key_lsn(&event.session, key)
    }

    /// Marks the current run of session `id` crashed with `reason`. The
    /// marker is durable before this returns, ahead of everything still
    /// queued; and so is the session's trace file saying `crashed`. Nothing
    /// later replaces that status for this run. Returns the marker's LSN
    /// (0 if it went to the crash ledger because the writer did not answer
    /// within `crash_wait`).
    pub fn mark_crashed(&self, id: &str, reason: &str) -> Result<Lsn> {
        let run = self
            .live
            .read()
            .get(id)
            .map(|s| s.run)
            .ok_or_else(|| Error::UnknownSession(id.to_string()))?;
        let lsn = self.write_markers(vec![(id.to_string(), run)], reason)?;
        self.publish_now(id)?;
        Ok(lsn)
    }

    /// Marks every open session crashed (a panic hook or a shutdown path).
    /// Returns their ids.
    pub fn mark_all_open_crashed(&self, reason: &str) -> Result<Vec<String>> {
        let open = self.live.read().open_sessions();
        if open.is_empty() {
            return Ok(Vec::new());
        }
        self.write_markers(open.clone(), reason)?;
        for (id, _) in &open {
            self.publish_now(id)?;
        }
        Ok(open.into_iter().map(|(id, _)| id).collect())
    }

    /// Makes crash markers durable: the urgent lane with a bounded wait,
    /// then the crash ledger. Applies them. Returns the first LSN (0 for the
    /// ledger path).
    fn write_markers(&self, targets: Vec<(String, u32)>, reason: &str) -> Result<Lsn> {
        let now = self.options.clock.now_ms();
        let entries: Vec<Entry> = targets
            .into_iter()
            .map(|(session, run)| {
                Entry::from(Event {
                    session,
                    key: None,
                    time: Some(now),
                    body: Body::Crash {
                        reason: reason.to_string(),
                        run,
                    },
                })
            })
            .collect();
        // The urgent lane, on a helper thread so that a stuck writer costs
        // this caller at most `crash_wait`. If it answers later, the helper
        // still applies the entries (the sequencer must see every LSN).
        let (tx, rx) = crossbeam_channel::bounded(1);
        let journal = self.journal.clone();
        let live = self.live.clone();
        let applied = entries.clone();
        let spawned = std::thread::Builder::new()
            .name("tracejournal-crash-mark".into())
            .spawn(move || {
                // A sequencer error here means the journal was poisoned
                // after the marker was acknowledged, by a lower LSN that
                // failed: the marker stays unapplied, and the caller (if it
                // still waits) takes the ledger.
                let result = commit(&journal, &live, Lane::Urgent, applied, now).map(|c| c.first);
                let _ = tx.send(result);
            });
        let urgent = match spawned {
            Ok(_) => rx
                .recv_timeout(self.options.crash_wait)
                .ok()
                .and_then(|r| r.ok()),
            Err(_) => None,
        };
        match urgent {
            Some(first) => Ok(first),
            None => {
                // The writer is stuck or dead: the direct path.
                for entry in &entries {
                    self.ledger.append(entry)?;
                }
                self.live.with_write(|s| {
                    for entry in &entries {
                        if let Entry::Event(e) = entry {
                            s.apply_out_of_band(e);
                        }
                    }
                });
                Ok(0)
            }
        }
    }

    /// Publishes session `id` on this thread (the crash path).
    fn publish_now(&self, id: &str) -> Result<()> {
        let copy = self.live.read().get(id).cloned();
        if let Some(session) = copy {
            self.publisher.publish(&session, Publishing::Crash)?;
        }
        Ok(())
    }

    /// Summaries of every session, from memory (no file is read), newest
    /// first.
    pub fn sessions(&self) -> Vec<SessionSummary> {
        let state = self.live.read();
        let mut list: Vec<SessionSummary> = state.iter().map(|s| self.summary(s)).collect();
        list.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
        list
    }

    fn summary(&self, s: &Session) -> SessionSummary {
        summarize(s, self.publisher.path_of(&s.id))
    }

    /// The live rendering of session `id`: the bytes its trace file will
    /// hold once published.
    pub fn session(&self, id: &str) -> Option<Vec<u8>> {
        let copy = self.live.read().get(id).cloned()?;
        Some(render::render(&copy))
    }

    /// A copy of session `id`'s state.
    pub fn session_state(&self, id: &str) -> Option<Session> {
        self.live.read().get(id).cloned()
    }

    /// What the publisher knows about session `id`'s file (bytes written
    /// over its life in this process, publishes, ...).
    pub fn file_stats(&self, id: &str) -> Option<FileStats> {
        self.publisher.stats(id)
    }

    /// Waits until session `id`'s trace file holds its state as of now
    /// (or newer); false on timeout.
    pub fn wait_published(&self, id: &str, timeout: Duration) -> bool {
        let Some(version) = self.live.read().get(id).map(|s| s.version) else {
            return false;
        };
        self.publisher.wait_published(id, version, timeout)
    }

    /// Bytes written to trace files since open.
    pub fn trace_bytes_written(&self) -> u64 {
        self.publisher.bytes_written()
    }

    /// Committed entries as they are applied, for dashboards.
    pub fn subscribe(&self) -> Subscription {
        self.live.subscribe()
    }

    /// Makes every event durable and every trace file current.
    pub fn flush(&self) -> Result<()> {
        self.journal.sync()?;
        let target = self.journal.next_lsn();
        while !self.live.wait_applied(target, Duration::from_millis(100))? {
            if let Some(cause) = self.journal.poisoned() {
                return Err(Error::Poisoned { cause });
            }
        }
        self.with_compactor(Compactor::flush)
    }

    /// Flushes, writes a checkpoint, and removes the log segments it (and
    /// the one before it) covers.
    pub fn compact(&self) -> Result<CompactReport> {
        self.flush()?;
        self.with_compactor(Compactor::compact)
    }

    fn with_compactor<T>(&self, f: impl FnOnce(&Compactor) -> Result<T>) -> Result<T> {
        let guard = self.compactor.lock();
        let compactor = guard.as_ref().ok_or(Error::Closed)?;
        f(compactor)
    }

    /// Flushes, records a clean shutdown, and stops the compactor and the
    /// writer. Sessions still open stay open (a clean close does not orphan
    /// them).
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        let Some(mut compactor) = self.compactor.lock().take() else {
            return Ok(());
        };
        let result = (|| {
            self.journal.sync()?;
            let target = self.journal.next_lsn();
            while !self.live.wait_applied(target, Duration::from_millis(100))? {
                if let Some(cause) = self.journal.poisoned() {
                    return Err(Error::Poisoned { cause });
                }
            }
            compactor.stop()?;
            let now = self.options.clock.now_ms();
            commit(
                &self.journal,
                &self.live,
                Lane::Normal,
                vec![Entry::Shutdown],
                now,
            )?;
            Ok(self.journal.sync()?)
        })();
        let _ = compactor.stop();
        // Nothing is applied after close: a crash mark's helper thread still
        // waiting for the writer gets `Closed` instead of waiting on.
        self.live
            .abandon_from(self.journal.next_lsn(), Error::Closed);
        result
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Makes every wait of the state's sequencer end once the journal is
/// poisoned: entries at or above the first LSN whose append failed can
/// never be applied in order, so their appenders get `Poisoned` instead of
/// waiting for the gap to fill (DESIGN.md, "Every wait and what ends it").
fn stop_waits_on_poison(journal: &Journal, live: &Arc<LiveState>) {
    let live = Arc::downgrade(live);
    journal.on_poison(move |failed_from, cause| {
        if let Some(live) = live.upgrade() {
            live.abandon_from(
                failed_from,
                Error::Poisoned {
                    cause: cause.to_string(),
                },
            );
        }
    });
}

/// The check [`Store::open`] makes before anything can write: reads the
/// first segment's header (the LSN the log starts at) and scans the
/// checkpoints, under the directory lock when the store has one, and
/// refuses if the log does not start at LSN 1 and no checkpoint covers the
/// gap, or if a checkpoint is in a version this build does not read.
/// Returns the checkpoint names it saw and the scan, to be reused; `None`
/// when there is nothing to check (no directory, no segment, or a first
/// segment the journal's recovery must judge).
fn precheck(
    storage: &dyn Storage,
    dir: &Path,
    ckpt_dir: &Path,
) -> Result<Option<(Vec<Lsn>, Scan)>> {
    let names = match storage.list(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("list store directory", dir, e)),
    };
    // Taking the lock changes no byte of an existing LOCK file; a store
    // without one was never opened by tracejournal, so nobody holds it.
    let _lock = if names.iter().any(|n| n == LOCK_FILE) {
        let path = dir.join(LOCK_FILE);
        Some(storage.lock(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::Journal(JournalError::Locked {
                    dir: dir.to_path_buf(),
                })
            } else {
                Error::io("lock journal directory", &path, e)
            }
        })?)
    } else {
        None
    };
    let Some(first_segment) = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n))
        .min()
    else {
        return Ok(None);
    };
    let path = dir.join(segment::file_name(first_segment));
    let mut header = [0u8; segment::HEADER_LEN];
    let read = storage
        .open(&path, OpenMode::Read)
        .and_then(|file| file.read_at(&mut header, 0));
    let Ok(SegmentHeader { first_lsn, .. }) = read
        .map_err(|e| e.to_string())
        .and_then(|()| SegmentHeader::decode(&header))
    else {
        // Damage in the first segment is the journal's recovery to judge;
        // the check after it still refuses a gap.
        return Ok(None);
    };
    let listed = checkpoint::list(storage, ckpt_dir)?;
    let scan = checkpoint::scan(storage, ckpt_dir, Unreadable::Refuse)?;
    check_coverage(&scan, first_lsn, ckpt_dir)?;
    Ok(Some((listed, scan)))
}

/// Refuses ([`Error::OpenRefused`]) if the log starts after LSN 1 and the
/// newest valid checkpoint (if any) does not reach it.
pub(crate) fn check_coverage(scan: &Scan, first_lsn: Lsn, ckpt_dir: &Path) -> Result<()> {
    let covered = scan.loaded.as_ref().map_or(1, |l| l.state.applied());
    if covered >= first_lsn {
        return Ok(());
    }
    let mut files: Vec<String> = scan
        .skipped
        .iter()
        .map(|(name, why)| format!("{name}: {why}"))
        .collect();
    if let Some(loaded) = &scan.loaded {
        files.push(format!(
            "{}: valid, but covers only LSNs below {}",
            loaded.info.path.file_name().map_or_else(
                || loaded.info.path.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            ),
            loaded.info.applied_lsn
        ));
    }
    let found = if files.is_empty() {
        format!("{} holds no checkpoint", ckpt_dir.display())
    } else {
        format!(
            "checkpoints in {}: {}",
            ckpt_dir.display(),
            files.join("; ")
        )
    };
    Err(Error::OpenRefused {
        path: ckpt_dir.to_path_buf(),
        reason: format!(
            "the log starts at LSN {first_lsn}, and no usable checkpoint covers LSNs \
             {covered}..{first_lsn} (the segments holding them were removed after a \
             checkpoint): opening would lose the sessions they hold ({found}). Restore a \
             checkpoint file from a backup, or open in salvage mode (StoreOptions::salvage, \
             `--salvage`) to read what is left; salvage deletes nothing"
        ),
    })
}

/// The state open starts from: the newest valid checkpoint's, or an empty
/// one. Refuses a gap unless salvaging; when salvaging, records it in
/// [`OpenReport::missing`] and starts after it.
fn starting_state(
    scan: Scan,
    first_lsn: Lsn,
    ckpt_dir: &Path,
    salvage: bool,
    report: &mut OpenReport,
) -> Result<Sessions> {
    if !salvage {
        check_coverage(&scan, first_lsn, ckpt_dir)?;
    }
    report.checkpoints_skipped = scan.skipped;
    let mut sessions = match scan.loaded {
        Some(loaded) => {
            report.checkpoint = Some(loaded.info.applied_lsn);
            loaded.state
        }
        None => Sessions::new(1),
    };
    if sessions.applied() < first_lsn {
        report.missing = Some(sessions.applied()..first_lsn);
        sessions.skip(first_lsn - 1);
    }
    Ok(sessions)
}

/// Replays the log from the state's applied LSN; returns entries applied.
fn replay(journal: &Journal, live: &LiveState) -> Result<u64> {
    let from = live.applied_lsn().max(journal.first_lsn());
    let mut n = 0;
    for record in journal.read_from(from)? {
        let record = record?;
        if record.kind != ENTRY_KIND {
            live.skip(record.lsn);
            continue;
        }
        let entry = Entry::decode(&record.payload).map_err(|e| Error::Corruption {
            file: journal.dir().join(format!("segment {}", record.segment)),
            offset: record.offset,
            reason: format!("LSN {}: {e}", record.lsn),
        })?;
        live.replay(record.lsn, &entry);
        n += 1;
    }
    Ok(n)
}

/// The summary of session `s`, whose trace file is `file`.
pub(crate) fn summarize(s: &Session, file: PathBuf) -> SessionSummary {
    SessionSummary {
        id: s.id.clone(),
        title: s.metadata.title.clone(),
        status: s.status,
        error: s.error.clone(),
        started_at: s.started_at,
        ended_at: s.ended_at,
        duration_ms: s
            .ended_at
            .unwrap_or(s.last_time)
            .saturating_sub(s.started_at),
        tokens: s.totals.tokens.total(),
        cost: s.totals.cost,
        tool_calls: s.totals.tool_calls,
        spans: s.totals.spans,
        run: s.run,
        file,
    }
}

/// Summaries of `sessions`, newest first, with their trace files in
/// `traces`.
pub(crate) fn summaries<'a>(
    sessions: impl Iterator<Item = &'a Session>,
    traces: &Path,
) -> Vec<SessionSummary> {
    let mut list: Vec<SessionSummary> = sessions
        .map(|s| summarize(s, traces.join(names::file_name(&s.id))))
        .collect();
    list.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(a.id.cmp(&b.id)));
    list
}
