//! A simulated [`Storage`] that can lie like a real disk: for tests, crash
//! simulation and fuzzing. Deterministic from a seed.
//!
//! What it models:
//!
//! * **Unsynced data is lost on power loss.** Each file keeps what its
//!   last `sync_data`/`sync_all` made durable and the ranges written since.
//!   [`SimStorage::crash_image`] keeps the durable bytes plus a random subset
//!   of the sectors (512 B or 4 KiB, [`SimStorage::with_sector`]) written
//!   since, each with its latest bytes: any torn write, torn at sector
//!   boundaries, in any order.
//! * **Directory operations not yet made durable are forgotten.** File
//!   creations, renames and removals in a directory are durable only once
//!   that directory is synced; until then a crash keeps a random *prefix*
//!   of them (a journaling file system commits metadata in order).
//!   Directories themselves are taken as durable when created.
//! * **Faults.** [`SimStorage::fail`] makes the n-th matching write, sync,
//!   rename, create, remove or directory sync fail with a chosen error kind
//!   (`EIO`, `ENOSPC`, ...) without doing it.
//! * **Crash points.** Every mutating call gets a sequence number
//!   ([`SimStorage::ops`]); [`SimStorage::crash_at`] takes a crash image at
//!   the moment the n-th one is about to run, for a test to recover later.
//!
//! Files are inodes: an open handle keeps working across renames and
//! removals, as on Unix.

use crate::wal::storage::{DirLock, OpenMode, ReadMap, Storage, StorageFile};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A storage operation, for fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `write_at` (and `set_len`).
    Write,
    /// `sync_data` / `sync_all`.
    Sync,
    /// `rename`.
    Rename,
    /// `open` with `CreateNew`.
    Create,
    /// `remove`.
    Remove,
    /// `sync_dir`.
    SyncDir,
}

#[derive(Clone, Debug)]
struct Fault {
    op: Op,
    path_contains: String,
    /// Fail the n-th match (1-based) ...
    nth: u64,
    /// ... and every later one if set.
    sticky: bool,
    kind: io::ErrorKind,
    seen: u64,
}

#[derive(Clone, Default)]
struct Data {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Byte ranges written since the last sync.
    pending: Vec<(usize, usize)>,
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(String, u64),
    Unlink(String),
    /// A rename within one directory: atomic, as `rename(2)` is.
    Rename(String, String, u64),
}

#[derive(Clone, Default)]
struct Dir {
    durable: BTreeMap<String, u64>,
    current: BTreeMap<String, u64>,
    /// Changes since the last directory sync, in order.
    log: Vec<DirOp>,
}

#[derive(Default)]
struct Sim {
    inodes: HashMap<u64, Arc<Mutex<Data>>>,
    dirs: BTreeMap<PathBuf, Dir>,
    next_inode: u64,
    locks: HashSet<PathBuf>,
    faults: Vec<Fault>,
    ops: u64,
    crash_at: Vec<(u64, u64)>,
    captured: Vec<(u64, SimStorage)>,
}

/// The simulated file system. Clones share it.
#[derive(Clone)]
pub struct SimStorage {
    sim: Arc<Mutex<Sim>>,
    sector: usize,
}

impl std::fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sim = self.sim.lock();
        f.debug_struct("SimStorage")
            .field("dirs", &sim.dirs.keys().collect::<Vec<_>>())
            .field("ops", &sim.ops)
            .finish()
    }
}

impl Default for SimStorage {
    fn default() -> Self {
        SimStorage::new()
    }
}

/// The simulator's generator: the test kit's one seeded generator, so
/// images depend only on the seed.
pub use crate::testkit::rng::SplitMix64 as SimRng;

fn split(path: &Path) -> (PathBuf, String) {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl SimStorage {
    /// An empty file system with 512-byte sectors.
    pub fn new() -> SimStorage {
        SimStorage {
            sim: Arc::new(Mutex::new(Sim::default())),
            sector: 512,
        }
    }

    /// The same file system, with crash images torn at `sector`-byte
    /// boundaries (512 or 4096).
    pub fn with_sector(mut self, sector: usize) -> SimStorage {
        assert!(sector.is_power_of_two() && sector >= 512);
        self.sector = sector;
        self
    }

    /// Makes the `nth` (1-based) `op` on a path containing `path_contains`
    /// fail with `kind`, and with `sticky` every later one too. The failed
    /// call does nothing.
    pub fn fail(&self, op: Op, path_contains: &str, nth: u64, sticky: bool, kind: io::ErrorKind) {
        self.sim.lock().faults.push(Fault {
            op,
            path_contains: path_contains.to_string(),
            nth,
            sticky,
            kind,
            seen: 0,
        });
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.sim.lock().faults.clear();
    }

    /// How many mutating calls have run (or been attempted).
    pub fn ops(&self) -> u64 {
        self.sim.lock().ops
    }

    /// Takes a crash image (with `seed`) just before mutating call number
    /// `op` runs (several may be scheduled); collect them with
    /// [`SimStorage::captured`].
    pub fn crash_at(&self, op: u64, seed: u64) {
        self.sim.lock().crash_at.push((op, seed));
    }

    /// Cancels every crash image scheduled by [`SimStorage::crash_at`] that
    /// has not been taken yet.
    pub fn cancel_crashes(&self) {
        self.sim.lock().crash_at.clear();
    }

    /// The crash images taken by [`SimStorage::crash_at`], with their op
    /// numbers.
    pub fn captured(&self) -> Vec<(u64, SimStorage)> {
        std::mem::take(&mut self.sim.lock().captured)
    }

    /// Counts a mutating call, takes a scheduled crash image, and checks
    /// the faults. `Err` means: fail the call without doing it.
    fn begin(&self, sim: &mut Sim, op: Op, path: &Path) -> io::Result<()> {
        sim.ops += 1;
        let now = sim.ops;
        let due: Vec<(u64, u64)> = sim
            .crash_at
            .iter()
            .copied()
            .filter(|(at, _)| *at == now)
            .collect();
        for (at, seed) in due {
            let image = self.image_of(sim, &mut SimRng::new(seed));
            sim.captured.push((at, image));
        }
        sim.crash_at.retain(|(at, _)| *at > now);
        let text = path.to_string_lossy();
        for f in &mut sim.faults {
            if f.op == op && text.contains(&f.path_contains) {
                f.seen += 1;
                if f.seen == f.nth || (f.sticky && f.seen > f.nth) {
                    return Err(io::Error::new(
                        f.kind,
                        format!("injected {:?} failure on {}", f.op, path.display()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What a power cut right now could leave, chosen by `rng`.
    pub fn crash_image(&self, rng: &mut SimRng) -> SimStorage {
        let sim = self.sim.lock();
        self.image_of(&sim, rng)
    }

    fn image_of(&self, sim: &Sim, rng: &mut SimRng) -> SimStorage {
        let mut out = Sim {
            next_inode: sim.next_inode,
            ..Sim::default()
        };
        for (path, dir) in &sim.dirs {
            // A random prefix of the unsynced directory changes survives.
            let keep = rng.below(dir.log.len() as u64 + 1) as usize;
            let mut entries = dir.durable.clone();
            for op in &dir.log[..keep] {
                match op {
                    DirOp::Link(name, ino) => {
                        entries.insert(name.clone(), *ino);
                    }
                    DirOp::Unlink(name) => {
                        entries.remove(name);
                    }
                    DirOp::Rename(from, to, ino) => {
                        entries.remove(from);
                        entries.insert(to.clone(), *ino);
                    }
                }
            }
            for &ino in entries.values() {
                if out.inodes.contains_key(&ino) {
                    continue;
                }
                let Some(data) = sim.inodes.get(&ino) else {
                    continue;
                };
                let image = self.torn(&data.lock(), rng);
                out.inodes.insert(ino, Arc::new(Mutex::new(image)));
            }
            out.dirs.insert(
                path.clone(),
                Dir {
                    durable: entries.clone(),
                    current: entries,
                    log: Vec::new(),
                },
            );
        }
        SimStorage {
            sim: Arc::new(Mutex::new(out)),
            sector: self.sector,
        }
    }

    /// A file's durable bytes plus a random subset of its unsynced sectors.
    fn torn(&self, f: &Data, rng: &mut SimRng) -> Data {
        let mut image = f.durable.clone();
        let mut len = image.len();
        for &(from, to) in &f.pending {
            let mut sector = from / self.sector * self.sector;
            while sector < to {
                let end = (sector + self.sector).min(f.current.len());
                if sector < end && rng.below(2) == 0 {
                    if image.len() < end {
                        image.resize(end, 0);
                    }
                    image[sector..end].copy_from_slice(&f.current[sector..end]);
                    len = len.max(end);
                }
                sector += self.sector;
            }
        }
        image.truncate(len);
        Data {
            durable: image.clone(),
            current: image,
            pending: Vec::new(),
        }
    }

    /// An independent copy of the file system as it is now, everything
    /// durable: what a killed process (not a power cut) leaves behind,
    /// since the OS keeps every write and directory change.
    pub fn snapshot(&self) -> SimStorage {
        let sim = self.sim.lock();
        let mut out = Sim {
            next_inode: sim.next_inode,
            ..Sim::default()
        };
        for (path, dir) in &sim.dirs {
            for &ino in dir.current.values() {
                if let Some(data) = sim.inodes.get(&ino) {
                    let bytes = data.lock().current.clone();
                    out.inodes.entry(ino).or_insert_with(|| {
                        Arc::new(Mutex::new(Data {
                            durable: bytes.clone(),
                            current: bytes,
                            pending: Vec::new(),
                        }))
                    });
                }
            }
            out.dirs.insert(
                path.clone(),
                Dir {
                    durable: dir.current.clone(),
                    current: dir.current.clone(),
                    log: Vec::new(),
                },
            );
        }
        SimStorage {
            sim: Arc::new(Mutex::new(out)),
            sector: self.sector,
        }
    }

    /// Removes a file, durably (test fixtures). Panics if it is missing.
    pub fn delete(&self, path: &Path) {
        let mut sim = self.sim.lock();
        let (dir, name) = split(path);
        let d = sim.dirs.get_mut(&dir).expect("directory exists");
        d.current.remove(&name).expect("file exists");
        d.durable.remove(&name);
    }

    /// A file's current bytes (for test assertions).
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let sim = self.sim.lock();
        let (dir, name) = split(path);
        let ino = sim
            .dirs
            .get(&dir)
            .and_then(|d| d.current.get(&name))
            .ok_or_else(|| not_found(path))?;
        let data = sim.inodes[ino].lock().current.clone();
        Ok(data)
    }

    /// Writes a whole file, durably (test fixtures: stale files, garbage).
    pub fn put(&self, path: &Path, bytes: &[u8]) {
        let mut sim = self.sim.lock();
        let (dir, name) = split(path);
        sim.next_inode += 1;
        let ino = sim.next_inode;
        sim.inodes.insert(
            ino,
            Arc::new(Mutex::new(Data {
                current: bytes.to_vec(),
                durable: bytes.to_vec(),
                pending: Vec::new(),
            })),
        );
        let d = sim.dirs.entry(dir).or_default();
        d.current.insert(name.clone(), ino);
        d.durable.insert(name, ino);
    }
}

struct SimFile {
    storage: SimStorage,
    path: PathBuf,
    data: Arc<Mutex<Data>>,
    writable: bool,
}

impl SimFile {
    fn begin(&self, op: Op) -> io::Result<()> {
        let mut sim = self.storage.sim.lock();
        self.storage.begin(&mut sim, op, &self.path)
    }
}

impl StorageFile for SimFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "file opened read-only",
            ));
        }
        self.begin(Op::Write)?;
        let mut f = self.data.lock();
        let start = offset as usize;
        let end = start + buf.len();
        if f.current.len() < end {
            f.current.resize(end, 0);
        }
        f.current[start..end].copy_from_slice(buf);
        f.pending.push((start, end));
        Ok(())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let f = self.data.lock();
        let start = offset as usize;
        let end = start + buf.len();
        if end > f.current.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        buf.copy_from_slice(&f.current[start..end]);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.begin(Op::Sync)?;
        let mut f = self.data.lock();
        let Data {
            current,
            durable,
            pending,
        } = &mut *f;
        durable.resize(current.len(), 0);
        for (from, to) in pending.drain(..) {
            let to = to.min(current.len());
            if from < to {
                durable[from..to].copy_from_slice(&current[from..to]);
            }
        }
        durable.truncate(current.len());
        Ok(())
    }
    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.data.lock().current.len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.begin(Op::Write)?;
        let mut f = self.data.lock();
        let old = f.current.len();
        f.current.resize(len as usize, 0);
        let new = f.current.len();
        f.pending.push((old.min(new), old.max(new)));
        Ok(())
    }
    fn map(&self) -> io::Result<ReadMap> {
        let f = self.data.lock();
        Ok(ReadMap::from_owned(Arc::from(f.current.as_slice())))
    }
}

struct SimLock {
    sim: Arc<Mutex<Sim>>,
    path: PathBuf,
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.sim.lock().locks.remove(&self.path);
    }
}

impl Storage for SimStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut sim = self.sim.lock();
        let (dir, name) = split(path);
        let existing = sim
            .dirs
            .get(&dir)
            .and_then(|d| d.current.get(&name))
            .copied();
        let data = match (mode, existing) {
            (OpenMode::Read | OpenMode::ReadWrite, Some(ino)) => sim.inodes[&ino].clone(),
            (OpenMode::Read | OpenMode::ReadWrite, None) => return Err(not_found(path)),
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", path.display()),
                ))
            }
            (OpenMode::CreateNew, None) => {
                if !sim.dirs.contains_key(&dir) {
                    return Err(not_found(&dir));
                }
                self.begin(&mut sim, Op::Create, path)?;
                sim.next_inode += 1;
                let ino = sim.next_inode;
                let data = Arc::new(Mutex::new(Data::default()));
                sim.inodes.insert(ino, data.clone());
                let d = sim.dirs.get_mut(&dir).expect("checked");
                d.current.insert(name.clone(), ino);
                d.log.push(DirOp::Link(name, ino));
                data
            }
        };
        Ok(Box::new(SimFile {
            storage: self.clone(),
            path: path.to_path_buf(),
            data,
            writable: mode != OpenMode::Read,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut sim = self.sim.lock();
        self.begin(&mut sim, Op::Rename, to)?;
        let (fdir, fname) = split(from);
        let (tdir, tname) = split(to);
        let ino = sim
            .dirs
            .get_mut(&fdir)
            .and_then(|d| d.current.remove(&fname))
            .ok_or_else(|| not_found(from))?;
        if fdir == tdir {
            let d = sim.dirs.get_mut(&fdir).expect("exists");
            d.current.insert(tname.clone(), ino);
            d.log.push(DirOp::Rename(fname, tname, ino));
            return Ok(());
        }
        // Across directories the two halves are separate changes (each
        // made durable by its own directory's sync).
        sim.dirs
            .get_mut(&fdir)
            .expect("exists")
            .log
            .push(DirOp::Unlink(fname));
        let d = sim.dirs.get_mut(&tdir).ok_or_else(|| not_found(&tdir))?;
        d.current.insert(tname.clone(), ino);
        d.log.push(DirOp::Link(tname, ino));
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.sim.lock();
        self.begin(&mut sim, Op::Remove, path)?;
        let (dir, name) = split(path);
        let d = sim.dirs.get_mut(&dir).ok_or_else(|| not_found(path))?;
        d.current.remove(&name).ok_or_else(|| not_found(path))?;
        d.log.push(DirOp::Unlink(name));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut sim = self.sim.lock();
        self.begin(&mut sim, Op::SyncDir, dir)?;
        let d = sim.dirs.get_mut(dir).ok_or_else(|| not_found(dir))?;
        d.durable = d.current.clone();
        d.log.clear();
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut sim = self.sim.lock();
        let mut p = Some(dir);
        while let Some(d) = p {
            sim.dirs.entry(d.to_path_buf()).or_default();
            p = d.parent();
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let sim = self.sim.lock();
        let d = sim.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(d.current.keys().cloned().collect())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let mut sim = self.sim.lock();
        if !sim.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "locked"));
        }
        Ok(Box::new(SimLock {
            sim: self.sim.clone(),
            path: path.to_path_buf(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn unsynced_creations_and_renames_can_be_forgotten_synced_ones_cannot() {
        let s = SimStorage::new();
        s.create_dir_all(&p("/d")).unwrap();
        let f = s.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        f.write_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        let mut lost = 0;
        for seed in 0..64 {
            let img = s.crash_image(&mut SimRng::new(seed));
            if img.list(&p("/d")).unwrap().is_empty() {
                lost += 1;
            } else {
                assert_eq!(img.read(&p("/d/a")).unwrap(), b"hello");
            }
        }
        assert!(
            lost > 0 && lost < 64,
            "the unsynced creation is sometimes lost"
        );
        s.sync_dir(&p("/d")).unwrap();
        s.rename(&p("/d/a"), &p("/d/b")).unwrap();
        for seed in 0..64 {
            let img = s.crash_image(&mut SimRng::new(seed));
            let names = img.list(&p("/d")).unwrap();
            assert!(
                names == ["a"] || names == ["b"],
                "{names:?}: never both, never none"
            );
        }
    }

    #[test]
    fn unsynced_sectors_survive_at_random_and_synced_bytes_always() {
        let s = SimStorage::new().with_sector(4096);
        s.create_dir_all(&p("/d")).unwrap();
        let f = s.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
        f.write_at(&[1; 8192], 0).unwrap();
        f.sync_data().unwrap();
        s.sync_dir(&p("/d")).unwrap();
        f.write_at(&[2; 8192], 0).unwrap();
        let mut kinds = HashSet::new();
        for seed in 0..64 {
            let img = s.crash_image(&mut SimRng::new(seed));
            let bytes = img.read(&p("/d/f")).unwrap();
            assert_eq!(bytes.len(), 8192);
            // Torn only at 4 KiB boundaries.
            kinds.insert((bytes[0], bytes[4096]));
            assert!(bytes[..4096].iter().all(|&b| b == bytes[0]));
            assert!(bytes[4096..].iter().all(|&b| b == bytes[4096]));
        }
        assert_eq!(kinds.len(), 4, "every combination of the two sectors");
    }

    #[test]
    fn faults_fail_the_chosen_call_and_do_nothing() {
        let s = SimStorage::new();
        s.create_dir_all(&p("/d")).unwrap();
        s.fail(Op::Write, "/d/f", 2, false, io::ErrorKind::StorageFull);
        let f = s.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
        f.write_at(b"a", 0).unwrap();
        let e = f.write_at(b"b", 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        f.write_at(b"c", 1).unwrap();
        assert_eq!(s.read(&p("/d/f")).unwrap(), b"ac");
        s.fail(Op::Sync, "", 1, true, io::ErrorKind::Other);
        assert!(f.sync_data().is_err() && f.sync_data().is_err());
    }

    #[test]
    fn crash_at_captures_the_state_before_the_chosen_call() {
        let s = SimStorage::new();
        s.create_dir_all(&p("/d")).unwrap();
        let f = s.open(&p("/d/f"), OpenMode::CreateNew).unwrap(); // op 1
        s.sync_dir(&p("/d")).unwrap(); // op 2
        f.write_at(b"x", 0).unwrap(); // op 3
        s.crash_at(s.ops() + 2, 7);
        f.sync_data().unwrap(); // op 4
        f.write_at(b"y", 1).unwrap(); // op 5: captured before it runs
        let captured = s.captured();
        assert_eq!(captured.len(), 1);
        assert_eq!(captured[0].1.read(&p("/d/f")).unwrap(), b"x");
    }
}
