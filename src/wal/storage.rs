//! The narrow storage interface every byte of the engine goes through.
//!
//! The engine never touches `std::fs` directly: it asks a [`Storage`] to
//! open, write at an offset, sync, rename, remove, sync a directory, list,
//! lock, or map a file for reading. [`FsStorage`] is the real file system.
//! A simulated implementation that loses unsynced data like a power cut can
//! stand in for it in tests, because nothing else reaches around this
//! module.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file read-only.
    Read,
    /// Open an existing file for reading and writing.
    ReadWrite,
    /// Create a new file (fail if it exists), for reading and writing.
    CreateNew,
}

/// A read-only view of a whole file's bytes (a memory map on a real file
/// system).
pub struct ReadMap {
    bytes: MapBytes,
}

enum MapBytes {
    Empty,
    Mmap(memmap2::Mmap),
    Owned(Arc<[u8]>),
}

impl ReadMap {
    /// A view of owned bytes (for simulated storage).
    pub fn from_owned(bytes: Arc<[u8]>) -> ReadMap {
        ReadMap {
            bytes: MapBytes::Owned(bytes),
        }
    }

    /// True if this is a copy of the file's bytes (taken when mapped), not
    /// a live memory map: it does not see later writes.
    pub fn is_copy(&self) -> bool {
        matches!(self.bytes, MapBytes::Owned(_))
    }
}

impl Deref for ReadMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.bytes {
            MapBytes::Empty => &[],
            MapBytes::Mmap(m) => m,
            MapBytes::Owned(b) => b,
        }
    }
}

impl fmt::Debug for ReadMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadMap({} bytes)", self.len())
    }
}

/// An open file.
pub trait StorageFile: Send + Sync {
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Fills all of `buf` from `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Makes written data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes written data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// True if the file holds no bytes.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Truncates or extends the file (extension reads as zeros).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Maps the whole file, as it is now, for reading.
    fn map(&self) -> io::Result<ReadMap>;
}

/// A held exclusive lock on a journal directory; released on drop.
pub trait DirLock: Send + Sync {}

/// The file system, as the engine sees it.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens `path` in `mode`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>>;
    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates a directory and its parents (no-op if it exists).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Takes an exclusive lock on `path` (created if missing), failing with
    /// [`io::ErrorKind::WouldBlock`] if someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

struct FsFile {
    file: File,
}

struct FsLock {
    _file: File,
}

impl DirLock for FsLock {}

impl StorageFile for FsFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn map(&self) -> io::Result<ReadMap> {
        if self.is_empty()? {
            return Ok(ReadMap {
                bytes: MapBytes::Empty,
            });
        }
        // SAFETY: memmap2 requires that the mapped file is not truncated or
        // modified in an undefined way while mapped. Segment files are only
        // ever written by this process while it holds the directory lock
        // (`Storage::lock`), are never truncated below a mapped length
        // (preallocated segments keep their size; torn tails are zeroed in
        // place, before any map is handed out), and bytes that may change
        // (the region past the committed end) are never read through a map.
        let map = unsafe { memmap2::Mmap::map(&self.file)? };
        Ok(ReadMap {
            bytes: MapBytes::Mmap(map),
        })
    }
}

impl Storage for FsStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        let mut opts = OpenOptions::new();
        match mode {
            OpenMode::Read => opts.read(true),
            OpenMode::ReadWrite => opts.read(true).write(true),
            OpenMode::CreateNew => opts.read(true).write(true).create_new(true),
        };
        Ok(Box::new(FsFile {
            file: opts.open(path)?,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(FsLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "lock held by another process",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
