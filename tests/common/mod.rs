//! Helpers shared by the integration tests.
//!
//! [`MemStorage`] is an in-memory [`Storage`]: the recovery sweeps below
//! reopen a journal thousands of times, which on a real disk costs several
//! fsyncs each. It keeps files as byte vectors, so "copy the journal
//! directory" is [`MemStorage::snapshot`]. The engine reaches the file
//! system only through `Storage` (src/storage.rs), so recovery sees exactly
//! what it would see on disk. A few cases of each sweep also run on the real
//! file system.
//!
//! It also models a power cut: each file remembers what its last sync made
//! durable and which writes came after, and [`MemStorage::crash_image`]
//! keeps a random subset of the 512-byte sectors those writes touched.
//! (Directory operations are taken as durable at once: the tests using it
//! are about file contents.)

#![allow(dead_code)]

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracejournal::storage::{DirLock, OpenMode, ReadMap, Storage, StorageFile};
use tracejournal::{Journal, LogRecord, Options, RecoveryMode, RecoveryReport};

pub mod sessions;

/// Sector size of the power-cut model.
pub const SECTOR: usize = 512;

#[derive(Default)]
struct FileData {
    /// What reads see.
    current: Vec<u8>,
    /// What the last sync made durable.
    durable: Vec<u8>,
    /// Byte ranges written since the last sync.
    pending: Vec<(usize, usize)>,
}

impl FileData {
    fn settled(bytes: Vec<u8>) -> FileData {
        FileData {
            durable: bytes.clone(),
            current: bytes,
            pending: Vec::new(),
        }
    }

    fn sync(&mut self) {
        self.durable.resize(self.current.len(), 0);
        for (from, to) in self.pending.drain(..) {
            let to = to.min(self.current.len());
            if from < to {
                self.durable[from..to].copy_from_slice(&self.current[from..to]);
            }
        }
    }
}

type Bytes = Arc<Mutex<FileData>>;

#[derive(Default)]
struct Fs {
    files: BTreeMap<PathBuf, Bytes>,
    locks: HashSet<PathBuf>,
}

/// An in-memory file system. Clones share the same files.
#[derive(Clone, Default)]
pub struct MemStorage {
    fs: Arc<Mutex<Fs>>,
}

impl std::fmt::Debug for MemStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fs = self.fs.lock();
        f.debug_struct("MemStorage")
            .field("files", &fs.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

struct MemFile {
    bytes: Bytes,
    writable: bool,
}

struct MemLock {
    fs: Arc<Mutex<Fs>>,
    path: PathBuf,
}

impl DirLock for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        self.fs.lock().locks.remove(&self.path);
    }
}

impl StorageFile for MemFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "file opened read-only",
            ));
        }
        let mut f = self.bytes.lock();
        let end = offset as usize + buf.len();
        if f.current.len() < end {
            f.current.resize(end, 0);
        }
        f.current[offset as usize..end].copy_from_slice(buf);
        f.pending.push((offset as usize, end));
        Ok(())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let b = &self.bytes.lock().current;
        let end = offset as usize + buf.len();
        if end > b.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        buf.copy_from_slice(&b[offset as usize..end]);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.bytes.lock().sync();
        Ok(())
    }
    fn sync_all(&self) -> io::Result<()> {
        self.bytes.lock().sync();
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes.lock().current.len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut f = self.bytes.lock();
        f.current.resize(len as usize, 0);
        let l = f.current.len();
        f.pending.push((0, l));
        Ok(())
    }
    fn map(&self) -> io::Result<ReadMap> {
        let f = self.bytes.lock();
        Ok(ReadMap::from_owned(Arc::from(f.current.as_slice())))
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl Storage for MemStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut fs = self.fs.lock();
        let bytes = match mode {
            OpenMode::Read | OpenMode::ReadWrite => {
                fs.files.get(path).cloned().ok_or_else(|| not_found(path))?
            }
            OpenMode::CreateNew => {
                if fs.files.contains_key(path) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists", path.display()),
                    ));
                }
                let b = Bytes::default();
                fs.files.insert(path.to_path_buf(), b.clone());
                b
            }
        };
        Ok(Box::new(MemFile {
            bytes,
            writable: mode != OpenMode::Read,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut fs = self.fs.lock();
        let b = fs.files.remove(from).ok_or_else(|| not_found(from))?;
        fs.files.insert(to.to_path_buf(), b);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.fs.lock();
        fs.files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let fs = self.fs.lock();
        let mut names: Vec<String> = fs
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let mut fs = self.fs.lock();
        if !fs.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
        }
        Ok(Box::new(MemLock {
            fs: self.fs.clone(),
            path: path.to_path_buf(),
        }))
    }
}

impl MemStorage {
    /// A new, empty file system.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// A deep copy: an independent file system holding the same bytes.
    /// Locks are not copied.
    pub fn snapshot(&self) -> MemStorage {
        let fs = self.fs.lock();
        let files = fs
            .files
            .iter()
            .map(|(p, b)| {
                let bytes = b.lock().current.clone();
                (p.clone(), Arc::new(Mutex::new(FileData::settled(bytes))))
            })
            .collect();
        MemStorage {
            fs: Arc::new(Mutex::new(Fs {
                files,
                locks: HashSet::new(),
            })),
        }
    }

    /// What a power cut right now could leave: every file as its last sync
    /// left it, plus a random subset of the sectors written since (each
    /// kept sector holds its latest bytes).
    pub fn crash_image(&self, rng: &mut Rng) -> MemStorage {
        let fs = self.fs.lock();
        let files = fs
            .files
            .iter()
            .map(|(p, b)| {
                let f = b.lock();
                let mut image = f.durable.clone();
                image.resize(f.current.len().max(image.len()), 0);
                for &(from, to) in &f.pending {
                    let mut sector = from / SECTOR * SECTOR;
                    while sector < to {
                        let end = (sector + SECTOR).min(f.current.len());
                        if sector < end && rng.below(2) == 0 {
                            image[sector..end].copy_from_slice(&f.current[sector..end]);
                        }
                        sector += SECTOR;
                    }
                }
                (p.clone(), Arc::new(Mutex::new(FileData::settled(image))))
            })
            .collect();
        MemStorage {
            fs: Arc::new(Mutex::new(Fs {
                files,
                locks: HashSet::new(),
            })),
        }
    }

    /// The bytes of a file.
    pub fn read(&self, path: &Path) -> Vec<u8> {
        let fs = self.fs.lock();
        let b = fs.files.get(path).unwrap_or_else(|| panic!("{path:?}"));
        let v = b.lock().current.clone();
        v
    }

    /// Replaces the bytes of a file (creating it).
    pub fn write(&self, path: &Path, bytes: &[u8]) {
        let mut fs = self.fs.lock();
        let b = fs.files.entry(path.to_path_buf()).or_default().clone();
        *b.lock() = FileData::settled(bytes.to_vec());
    }

    /// Removes a file.
    pub fn delete(&self, path: &Path) {
        self.fs.lock().files.remove(path).expect("file exists");
    }

    /// The names of the files in `dir`, sorted.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        self.list(dir).unwrap()
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
            unpadded: (tracejournal::frame::HEADER_LEN + r.payload.len()) as u64,
            total: tracejournal::frame::encoded_len(r.payload.len()) as u64,
        })
        .collect()
}

/// A tiny deterministic PRNG (xorshift64*), so tests need no extra crate.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

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
    pub fn open(&self, mode: RecoveryMode) -> tracejournal::Result<(Journal, RecoveryReport)> {
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
            .filter(|n| tracejournal::segment::parse_file_name(n).is_some())
            .collect()
    }
}

/// One past the last non-zero byte of `bytes` (0 if all zero).
pub fn last_nonzero(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)
}
