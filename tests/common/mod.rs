//! Helpers shared by the integration tests.
//!
//! [`MemStorage`] is the simulated disk of src/sim.rs ([`SimStorage`]) with
//! fixture helpers: the recovery sweeps reopen a journal thousands of
//! times, which on a real disk costs several fsyncs each. "Copy the journal
//! directory" is [`MemStorage::snapshot`]; a power cut is
//! [`MemStorage::crash_image`] (lost unsynced sectors, forgotten unsynced
//! directory changes). The engine reaches the file system only through
//! `Storage` (src/storage.rs), so recovery sees exactly what it would see
//! on disk. A few cases of each sweep also run on the real file system.

#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracejournal::testkit::sim::{SimRng, SimStorage};
use tracejournal::{DirLock, OpenMode, Storage, StorageFile};
use tracejournal::{Journal, LogRecord, Options, RecoveryMode, RecoveryReport};

pub mod child;
pub mod schema;
pub mod sessions;

/// The simulated disk ([`SimStorage`], src/sim.rs) with the fixture
/// helpers the byte-level tests use. Clones share the same files.
#[derive(Clone, Debug, Default)]
pub struct MemStorage(pub SimStorage);

impl MemStorage {
    /// A new, empty file system.
    pub fn new() -> MemStorage {
        MemStorage(SimStorage::new())
    }

    /// A deep copy: an independent file system holding the same bytes and
    /// names (what a killed process leaves). Locks are not copied.
    pub fn snapshot(&self) -> MemStorage {
        MemStorage(self.0.snapshot())
    }

    /// What a power cut right now could leave: every file as its last sync
    /// left it plus a random subset of the sectors written since, and a
    /// random prefix of the directory changes made since the last
    /// directory sync ([`SimStorage::crash_image`]).
    pub fn crash_image(&self, rng: &mut Rng) -> MemStorage {
        MemStorage(self.0.crash_image(&mut SimRng::new(rng.next_u64())))
    }

    /// The bytes of a file.
    pub fn read(&self, path: &Path) -> Vec<u8> {
        self.0
            .read(path)
            .unwrap_or_else(|e| panic!("{path:?}: {e}"))
    }

    /// Replaces the bytes of a file (creating it), durably.
    pub fn write(&self, path: &Path, bytes: &[u8]) {
        self.0.put(path, bytes);
    }

    /// Removes a file, durably.
    pub fn delete(&self, path: &Path) {
        self.0.delete(path);
    }

    /// The names of the files in `dir`, sorted.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        self.list(dir).unwrap()
    }
}

impl Storage for MemStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        self.0.open(path, mode)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.0.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.sync_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.0.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.0.list(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        self.0.lock(path)
    }
}

/// Options with small segments, through `storage`.
pub fn options_with(storage: Arc<dyn Storage>, mode: RecoveryMode) -> Options {
    Options {
        segment_size: 64 * 1024,
        max_record_size: 4096,
        recovery_mode: mode,
        storage,
        ..Options::default()
    }
}

/// Options with small segments on the real file system.
pub fn fs_options() -> Options {
    Options {
        segment_size: 64 * 1024,
        max_record_size: 4096,
        ..Options::default()
    }
}

/// The directory journals on a [`MemStorage`] live in.
pub fn mem_dir() -> PathBuf {
    PathBuf::from("/mem/journal")
}

/// Reads every record from LSN `from`, panicking on a read error.
pub fn read_all(j: &Journal) -> Vec<LogRecord> {
    let first = j.first_lsn();
    j.read_from(first)
        .unwrap()
        .map(|r| r.expect("a recovered record fails verification on read"))
        .collect()
}

/// Copies every file of `from` into the new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Where a record sits in its segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Its LSN.
    pub lsn: u64,
    /// Its segment number.
    pub segment: u64,
    /// Offset of its frame.
    pub offset: u64,
    /// Length of its header and payload (without padding).
    pub unpadded: u64,
    /// Length of its frame with padding.
    pub total: u64,
}

/// The placements of every record, from a read-back.
pub fn placements(records: &[LogRecord]) -> Vec<Placement> {
    records
        .iter()
        .map(|r| Placement {
            lsn: r.lsn,
            segment: r.segment,
            offset: r.offset,
            unpadded: (tracejournal::testkit::wal::frame::HEADER_LEN + r.payload.len()) as u64,
            total: tracejournal::testkit::wal::frame::encoded_len(r.payload.len()) as u64,
        })
        .collect()
}

/// The one seeded generator of the test kit (SplitMix64), under the name
/// the tests use.
pub use tracejournal::testkit::rng::SplitMix64 as Rng;

/// The report of a clean open: nothing cut, nothing skipped.
pub fn assert_clean(report: &RecoveryReport) {
    assert!(
        report.truncated.is_empty(),
        "expected a clean open, cut {:?}",
        report.truncated
    );
    assert!(
        report.damage.is_empty(),
        "expected a clean open, damage {:?}",
        report.damage
    );
    assert!(report.set_aside.is_empty(), "{:?}", report.set_aside);
}

/// Where a test journal lives: in memory or in a real temporary directory.
pub enum Backend {
    /// An in-memory file system.
    Mem(MemStorage),
    /// A real directory (kept alive by the handle).
    Fs(tempfile::TempDir),
}

/// A journal directory a test can damage byte by byte and reopen.
pub struct Env {
    backend: Backend,
    dir: PathBuf,
}

impl Env {
    /// A fresh in-memory journal directory.
    pub fn mem() -> Env {
        Env {
            backend: Backend::Mem(MemStorage::new()),
            dir: mem_dir(),
        }
    }

    /// A fresh real temporary directory.
    pub fn fs() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        Env {
            backend: Backend::Fs(tmp),
            dir,
        }
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of a file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Small-segment options for this backend.
    pub fn options(&self, mode: RecoveryMode) -> Options {
        match &self.backend {
            Backend::Mem(m) => options_with(Arc::new(m.clone()), mode),
            Backend::Fs(_) => Options {
                recovery_mode: mode,
                ..fs_options()
            },
        }
    }

    /// Opens the journal in `mode`.
    pub fn open(
        &self,
        mode: RecoveryMode,
    ) -> Result<(Journal, RecoveryReport), tracejournal::JournalError> {
        Journal::open(&self.dir, self.options(mode))
    }

    /// An independent copy of the directory.
    pub fn copy(&self) -> Env {
        match &self.backend {
            Backend::Mem(m) => Env {
                backend: Backend::Mem(m.snapshot()),
                dir: self.dir.clone(),
            },
            Backend::Fs(_) => {
                let e = Env::fs();
                copy_dir(&self.dir, &e.dir);
                e
            }
        }
    }

    /// The bytes of file `name`.
    pub fn read(&self, name: &str) -> Vec<u8> {
        match &self.backend {
            Backend::Mem(m) => m.read(&self.path(name)),
            Backend::Fs(_) => std::fs::read(self.path(name)).unwrap(),
        }
    }

    /// Replaces the bytes of file `name`.
    pub fn write(&self, name: &str, bytes: &[u8]) {
        match &self.backend {
            Backend::Mem(m) => m.write(&self.path(name), bytes),
            Backend::Fs(_) => std::fs::write(self.path(name), bytes).unwrap(),
        }
    }

    /// Truncates (or extends) file `name` to `len` bytes.
    pub fn set_len(&self, name: &str, len: u64) {
        match &self.backend {
            Backend::Mem(m) => {
                let mut b = m.read(&self.path(name));
                b.resize(len as usize, 0);
                m.write(&self.path(name), &b);
            }
            Backend::Fs(_) => std::fs::OpenOptions::new()
                .write(true)
                .open(self.path(name))
                .unwrap()
                .set_len(len)
                .unwrap(),
        }
    }

    /// Removes file `name`.
    pub fn remove(&self, name: &str) {
        match &self.backend {
            Backend::Mem(m) => m.delete(&self.path(name)),
            Backend::Fs(_) => std::fs::remove_file(self.path(name)).unwrap(),
        }
    }

    /// The names of the files in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        match &self.backend {
            Backend::Mem(m) => m.names(&self.dir),
            Backend::Fs(_) => {
                let mut v: Vec<String> = std::fs::read_dir(&self.dir)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                v
            }
        }
    }

    /// The names of the segment files, in order.
    pub fn segment_names(&self) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|n| tracejournal::testkit::wal::segment::parse_file_name(n).is_some())
            .collect()
    }
}

/// One past the last non-zero byte of `bytes` (0 if all zero).
pub fn last_nonzero(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)
}
