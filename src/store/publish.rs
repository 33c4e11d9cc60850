//! Publishing trace files atomically: the [`Publisher`], shared by the
//! compactor thread and the crash path.
//!
//! Render, write a temp file in `traces/`, fsync it, then, holding the
//! session's publish lock, check that no newer version was published
//! meanwhile, rename over the final name and fsync the directory. The check
//! and the rename sit in one critical section, so a slow publish can never
//! rename an older state over a newer one (the "M1" race of the old tracer;
//! see `DESIGN.md`).

use crate::error::{Error, Result};
use crate::store::compactor::points;
use crate::store::model::Session;
use crate::store::names;
use crate::store::render;
use crate::wal::failpoint::Failpoints;
use crate::wal::storage::{OpenMode, Storage};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the publisher knows about one session's file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStats {
    /// The session version in the file now (0: never published here).
    pub version: u64,
    /// The file's size.
    pub size: u64,
    /// Bytes written for this session's file since the store opened.
    pub written: u64,
    /// Renames done.
    pub publishes: u64,
    /// Temp files dropped because a newer version won the lock first.
    pub superseded: u64,
    /// How long the latest publish took (render to directory fsync), ms.
    pub last_duration_ms: u64,
}

/// Who is publishing (they use different failpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publishing {
    /// The compactor thread.
    Compactor,
    /// A crash mark on its caller's thread.
    Crash,
}

/// Writes trace files atomically; shared by the compactor thread and the
/// crash path.
pub struct Publisher {
    storage: Arc<dyn Storage>,
    traces: PathBuf,
    failpoints: Failpoints,
    files: Mutex<HashMap<String, Arc<Mutex<FileStats>>>>,
    tmp_seq: AtomicU64,
    bytes_written: AtomicU64,
    /// Signalled after every rename (with `files` held).
    renamed: Condvar,
}

impl Publisher {
    /// A publisher for `traces` (created if missing).
    pub fn new(storage: Arc<dyn Storage>, traces: PathBuf, failpoints: Failpoints) -> Result<Self> {
        storage
            .create_dir_all(&traces)
            .map_err(|e| Error::io("create trace directory", &traces, e))?;
        Ok(Publisher {
            storage,
            traces,
            failpoints,
            files: Mutex::new(HashMap::new()),
            tmp_seq: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            renamed: Condvar::new(),
        })
    }

    /// The trace directory.
    pub fn dir(&self) -> &Path {
        &self.traces
    }

    /// Where session `id`'s file lives.
    pub fn path_of(&self, id: &str) -> PathBuf {
        self.traces.join(names::file_name(id))
    }

    /// What is known about `id`'s file.
    pub fn stats(&self, id: &str) -> Option<FileStats> {
        let lock = self.files.lock().get(id).cloned()?;
        let stats = *lock.lock();
        Some(stats)
    }

    /// Bytes written to trace files since open.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    fn lock_of(&self, id: &str) -> Arc<Mutex<FileStats>> {
        self.files.lock().entry(id.to_string()).or_default().clone()
    }

    /// Publishes `session` (a consistent copy of its state). Returns false
    /// if a newer version was already published (the temp file is dropped).
    pub fn publish(&self, session: &Session, by: Publishing) -> Result<bool> {
        let started = std::time::Instant::now();
        let bytes = render::render(session);
        let name = names::file_name(&session.id);
        let final_path = self.traces.join(&name);
        let tmp = self.traces.join(format!(
            ".{name}.{}.tmp",
            self.tmp_seq.fetch_add(1, Ordering::Relaxed)
        ));
        self.write_temp(&tmp, &bytes)?;
        let before = match by {
            Publishing::Compactor => points::BEFORE_RENAME,
            Publishing::Crash => points::CRASH_BEFORE_RENAME,
        };
        if let Err(e) = self.failpoints.hit(before) {
            let _ = self.storage.remove(&tmp);
            return Err(Error::io("publish trace file", &tmp, e));
        }
        let lock = self.lock_of(&session.id);
        let mut stats = lock.lock();
        stats.written += bytes.len() as u64;
        self.bytes_written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if stats.version >= session.version {
            // A newer (or the same) state is already in the file: never
            // rename an older one over it.
            stats.superseded += 1;
            drop(stats);
            self.storage
                .remove(&tmp)
                .map_err(|e| Error::io("remove superseded temp file", &tmp, e))?;
            return Ok(false);
        }
        if by == Publishing::Compactor {
            if let Err(e) = self.failpoints.hit(points::RENAME_LOCKED) {
                let _ = self.storage.remove(&tmp);
                return Err(Error::io("publish trace file", &tmp, e));
            }
        }
        if let Err(e) = self.storage.rename(&tmp, &final_path) {
            let _ = self.storage.remove(&tmp);
            return Err(Error::io("rename trace file", &final_path, e));
        }
        self.storage
            .sync_dir(&self.traces)
            .map_err(|e| Error::io("fsync trace directory", &self.traces, e))?;
        stats.version = session.version;
        stats.size = bytes.len() as u64;
        stats.publishes += 1;
        stats.last_duration_ms = started.elapsed().as_millis() as u64;
        drop(stats);
        let _files = self.files.lock();
        self.renamed.notify_all();
        Ok(true)
    }

    /// Waits until session `id`'s file holds version `version` or newer;
    /// false on timeout. (For tests and tools that must know a publish
    /// happened, without polling the file.)
    pub fn wait_published(&self, id: &str, version: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut files = self.files.lock();
        loop {
            if let Some(lock) = files.get(id) {
                if lock.lock().version >= version {
                    return true;
                }
            }
            if self.renamed.wait_until(&mut files, deadline).timed_out() {
                return files.get(id).is_some_and(|l| l.lock().version >= version);
            }
        }
    }

    fn write_temp(&self, tmp: &Path, bytes: &[u8]) -> Result<()> {
        let result = (|| {
            let file = self.storage.open(tmp, OpenMode::CreateNew)?;
            file.write_at(bytes, 0)?;
            file.sync_all()
        })();
        result.map_err(|e| {
            let _ = self.storage.remove(tmp);
            Error::io("write trace temp file", tmp, e)
        })
    }

    /// Removes `id`'s file (retention) and forgets it.
    pub fn remove(&self, id: &str) -> Result<()> {
        let lock = self.lock_of(id);
        let _guard = lock.lock();
        let path = self.path_of(id);
        match self.storage.remove(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove trace file", &path, e)),
        }
        self.storage
            .sync_dir(&self.traces)
            .map_err(|e| Error::io("fsync trace directory", &self.traces, e))?;
        // Lock order is `files` before a session's lock: release it first.
        drop(_guard);
        self.files.lock().remove(id);
        Ok(())
    }

    /// Sweeps the trace directory at open. With `delete`, removes temp
    /// files left by a crash and the files of sessions the log says were
    /// retired (`retired`: a retirement whose file removal did not happen).
    /// A trace file that no session owns (`owned`) and that is not such a
    /// leftover is never removed: it is listed in [`Swept::unknown`]. Without
    /// `delete` (salvage) nothing is removed and every trace file no session
    /// owns is listed.
    pub fn sweep(
        &self,
        owned: &dyn Fn(&str) -> bool,
        retired: &dyn Fn(&str) -> bool,
        delete: bool,
    ) -> Result<Swept> {
        let list = self
            .storage
            .list(&self.traces)
            .map_err(|e| Error::io("list trace directory", &self.traces, e))?;
        let mut swept = Swept::default();
        for name in list {
            let stale_tmp = name.starts_with('.') && name.ends_with(".tmp");
            let trace = names::is_trace_file_name(&name) && !owned(&name);
            let path = self.traces.join(&name);
            if delete && (stale_tmp || (trace && retired(&name))) {
                self.storage
                    .remove(&path)
                    .map_err(|e| Error::io("remove stale trace file", &path, e))?;
                swept.removed += 1;
            } else if trace {
                swept.unknown.push(path);
            }
        }
        if swept.removed > 0 {
            self.storage
                .sync_dir(&self.traces)
                .map_err(|e| Error::io("fsync trace directory", &self.traces, e))?;
        }
        swept.unknown.sort();
        Ok(swept)
    }
}

/// What [`Publisher::sweep`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Files removed (temp files and retired sessions' leftovers).
    pub removed: usize,
    /// Trace files no session owns that were left in place, sorted.
    pub unknown: Vec<PathBuf>,
}
