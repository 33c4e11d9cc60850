//! Reading a journal beside a writer, without changing a byte (the session
//! store's reader, [`crate::StoreSnapshot`], is built on this).
//!
//! [`ReadOnlyJournal::open`] and [`crate::StoreSnapshot::open`] take no lock, open
//! every file read-only (`O_RDONLY`), and never create, write, sync, rename
//! or remove anything: they go through [`ReadOnlyStorage`], which refuses
//! every such call with an error, so a slip is an error, never a write. So
//! they work while another process has the store open for writing, and on
//! a directory the user may only read.
//!
//! * **Recovery as a dry run.** The open runs the writer's recovery scan
//!   with `dry_run` set: nothing is swept, synced or cut. Where the last
//!   segment's whole records end and non-zero bytes follow (a write in
//!   progress, or the torn tail of a crash that the writer's next open will
//!   cut), reading stops at the last whole record and the report lists the
//!   spot in [`RecoveryReport::truncated`] (with no copy). Damage in any
//!   other segment is still [`Error::Corruption`].
//! * **Segments are read by copy, not mapped.** Another process writes the
//!   files while we read them, so every read is a `pread` into memory this
//!   process owns: no mapped byte can change under a check.
//! * **Following.** [`ReadOnlyJournal::refresh`] reads what was committed
//!   since the last look: it extends the last segment up to its last whole
//!   record (never into an atomic batch without its closing record), then
//!   opens segments the writer added, checking that each starts where the
//!   previous one ended. Segments a checkpoint removed are forgotten (so
//!   their disk space is given back), but a [`crate::Reader`] that holds one
//!   keeps reading it, since its file stays open. If a segment the follower
//!   still needed was created *and* removed between two refreshes, the
//!   refresh fails with [`Error::LsnOutOfRange`]: those entries now live
//!   only in a checkpoint. A [`StoreSnapshot`] then reopens (checkpoint,
//!   then the log after it), which is what `tracejournal tail` does.

use crate::wal::error::{Error, Result};
use crate::wal::frame;
use crate::wal::log::{LogState, SegmentMeta};
use crate::wal::options::Options;
use crate::wal::reader::{LogRecord, Reader};
use crate::wal::recovery::{Recovered, Recovery, RecoveryMode, RecoveryReport};
use crate::wal::segment::{self, SegmentHeader};
use crate::wal::storage::{DirLock, OpenMode, ReadMap, Storage, StorageFile};
use crate::wal::Lsn;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A [`Storage`] that can only read: `open` in [`OpenMode::Read`], `list`,
/// and reads of the files it opened. Every other call (create, write, set
/// length, sync, rename, remove, create a directory, lock) fails with
/// [`io::ErrorKind::PermissionDenied`] and touches nothing. Maps are copies
/// read with `pread`, never memory maps, because another process may be
/// writing the file.
#[derive(Debug, Clone)]
pub struct ReadOnlyStorage {
    inner: Arc<dyn Storage>,
}

impl ReadOnlyStorage {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Storage>) -> ReadOnlyStorage {
        ReadOnlyStorage { inner }
    }
}

fn refused(what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "a read-only open never writes (refused: {what} {})",
            path.display()
        ),
    )
}

struct ReadOnlyFile {
    inner: Box<dyn StorageFile>,
    path: PathBuf,
}

impl StorageFile for ReadOnlyFile {
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(refused("write to", &self.path))
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        Err(refused("fdatasync", &self.path))
    }
    fn sync_all(&self) -> io::Result<()> {
        Err(refused("fsync", &self.path))
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(refused("set the length of", &self.path))
    }
    fn map(&self) -> io::Result<ReadMap> {
        // The file's length bounds the allocation: it is the real size of
        // the file, not a field read from it.
        let len = usize::try_from(self.inner.len()?)
            .map_err(|_| io::Error::other("file too large to read into memory"))?;
        let mut bytes = vec![0u8; len];
        match self.inner.read_at(&mut bytes, 0) {
            Ok(()) => {}
            // The file shrank since its length was taken: keep what is
            // there (the caller reads only below ends it verified).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                let now = usize::try_from(self.inner.len()?).unwrap_or(0).min(len);
                bytes.truncate(now);
                self.inner.read_at(&mut bytes, 0)?;
            }
            Err(e) => return Err(e),
        }
        Ok(ReadMap::from_owned(Arc::from(bytes)))
    }
}

impl Storage for ReadOnlyStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn StorageFile>> {
        if mode != OpenMode::Read {
            return Err(refused("open for writing", path));
        }
        Ok(Box::new(ReadOnlyFile {
            inner: self.inner.open(path, OpenMode::Read)?,
            path: path.to_path_buf(),
        }))
    }
    fn rename(&self, from: &Path, _: &Path) -> io::Result<()> {
        Err(refused("rename", from))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        Err(refused("remove", path))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        Err(refused("fsync directory", dir))
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        Err(refused("create directory", dir))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn DirLock>> {
        Err(refused("lock", path))
    }
}

/// The most record bytes one [`ReadOnlyJournal::refresh`] reads; call it
/// again to get the rest.
pub const REFRESH_MAX_BYTES: u64 = 16 << 20;

/// A journal opened for reading only (see the module docs). Cheap to keep
/// open: it holds one open file per segment and no memory maps.
pub struct ReadOnlyJournal {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    log: Arc<LogState>,
}

impl std::fmt::Debug for ReadOnlyJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyJournal")
            .field("dir", &self.dir)
            .field("next_lsn", &self.log.written_lsn())
            .finish()
    }
}

impl ReadOnlyJournal {
    /// Opens the journal in `dir` for reading: no lock, no write of any
    /// byte. Recovery runs as a dry run; the report says where reading
    /// stops (`truncated`: the live end of a writer, or a torn tail left for
    /// the writer's next open to cut) and which temporary files are present
    /// (`removed_temp_files`: listed, not removed). A directory without
    /// segment files is an empty journal. `AbsoluteConsistency` reads as
    /// `TolerateTornTail`: a reader cannot tell a torn tail from a write in
    /// progress.
    pub fn open(
        dir: impl AsRef<Path>,
        options: &Options,
    ) -> Result<(ReadOnlyJournal, RecoveryReport)> {
        let dir = dir.as_ref().to_path_buf();
        let storage: Arc<dyn Storage> = Arc::new(ReadOnlyStorage::new(options.storage.clone()));
        let mode = match options.recovery_mode {
            RecoveryMode::AbsoluteConsistency => RecoveryMode::TolerateTornTail,
            other => other,
        };
        // A checkpoint may remove a segment between the listing and its
        // open: list again.
        let mut attempts = 0;
        let Recovered { segments, report } = loop {
            let run = Recovery {
                storage: &*storage,
                dir: &dir,
                mode,
                dry_run: true,
                failpoints: options.failpoints(),
            }
            .run();
            match run {
                Err(e) if is_not_found(&e) && attempts < OPEN_ATTEMPTS => attempts += 1,
                other => break other?,
            }
        };
        let metas = segments
            .into_iter()
            .map(|seg| {
                Arc::new(SegmentMeta {
                    id: seg.header.id,
                    first_lsn: seg.header.first_lsn,
                    path: seg.path,
                    file: seg.file,
                    end: AtomicU64::new(seg.end),
                    skips: seg.skips,
                    capacity: seg.capacity,
                })
            })
            .collect();
        let log = Arc::new(LogState::new(metas, report.next_lsn));
        Ok((ReadOnlyJournal { dir, storage, log }, report))
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The read-only storage this journal reads through.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// The first LSN in the log as last seen.
    pub fn first_lsn(&self) -> Lsn {
        self.log.first_lsn()
    }

    /// One past the last whole record seen (open, then each refresh).
    pub fn next_lsn(&self) -> Lsn {
        self.log.written_lsn()
    }

    /// Reads records from `lsn` up to the last whole record seen. Like
    /// [`crate::Journal::read_from`], the reader follows: after a
    /// [`ReadOnlyJournal::refresh`] it returns what that refresh found.
    pub fn read_from(&self, lsn: Lsn) -> Result<Reader> {
        Reader::new(self.log.clone(), lsn)
    }

    /// Looks again at the directory and returns, in LSN order, the records
    /// committed since the last look (at most about [`REFRESH_MAX_BYTES`] of
    /// them; call again while it returns any). Partial records at the live
    /// end and an atomic batch without its closing record are left for a
    /// later refresh. Segments removed by a checkpoint are forgotten.
    ///
    /// Fails with [`Error::LsnOutOfRange`] if the next record lies in a
    /// segment that was removed before this reader could open it, and with
    /// [`Error::Corruption`] if a new segment does not start where the
    /// previous one ended.
    pub fn refresh(&self) -> Result<Vec<LogRecord>> {
        let numbers = self.segment_numbers()?;
        self.forget_removed(&numbers);
        let mut out = Vec::new();
        let mut budget = REFRESH_MAX_BYTES;
        let known = self.log.segments().last().cloned();
        if let Some(last) = &known {
            self.extend(last, &mut out, &mut budget)?;
            if budget == 0 {
                return Ok(out);
            }
        }
        let mut previous = known.map(|s| s.id.number);
        let newer: Vec<u64> = numbers
            .into_iter()
            .filter(|&n| previous.is_none_or(|p| n > p))
            .collect();
        for number in newer {
            let meta = self.open_next_segment(number, previous)?;
            self.log.push_segment(meta.clone());
            previous = Some(number);
            self.extend(&meta, &mut out, &mut budget)?;
            if budget == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// The numbers of the segments in the directory, ascending.
    fn segment_numbers(&self) -> Result<Vec<u64>> {
        let names = self
            .storage
            .list(&self.dir)
            .map_err(|e| Error::io("list journal directory", &self.dir, e))?;
        let mut numbers: Vec<u64> = names
            .iter()
            .filter_map(|n| segment::parse_file_name(n))
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Forgets segments a checkpoint removed (never the last one known):
    /// those not among `numbers`, the directory's.
    fn forget_removed(&self, numbers: &[u64]) {
        loop {
            let segments = self.log.segments();
            match segments.first() {
                Some(first)
                    if segments.len() >= 2 && numbers.binary_search(&first.id.number).is_err() =>
                {
                    self.log.remove_first_segment(first.id.number);
                }
                _ => break,
            }
        }
    }

    /// Opens segment `number`, which must follow segment `previous` (the
    /// last known) and start at the next LSN, for reading.
    fn open_next_segment(&self, number: u64, previous: Option<u64>) -> Result<Arc<SegmentMeta>> {
        let path = self.dir.join(segment::file_name(number));
        let expected = self.log.written_lsn();
        if previous.is_some_and(|p| number != p + 1) {
            return Err(self.fell_behind(expected, &path));
        }
        let file = match self.storage.open(&path, OpenMode::Read) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::LsnOutOfRange {
                    lsn: expected,
                    first: expected,
                    end: expected,
                })
            }
            Err(e) => return Err(Error::io("open segment", &path, e)),
        };
        let header = read_header(&*file, &path)?;
        let reason = if header.id.number != number {
            format!(
                "header says segment {} but the file is named for {number}",
                header.id.number
            )
        } else if header.first_lsn != expected {
            format!(
                "segment starts at LSN {} but the previous one ended before LSN {expected}",
                header.first_lsn
            )
        } else {
            let capacity = file
                .len()
                .map_err(|e| Error::io("stat segment", &path, e))?;
            return Ok(Arc::new(SegmentMeta {
                id: header.id,
                first_lsn: header.first_lsn,
                path,
                file: Arc::from(file),
                end: AtomicU64::new(segment::HEADER_LEN as u64),
                skips: Vec::new(),
                capacity,
            }));
        };
        Err(Error::Corruption {
            file: path,
            offset: 0,
            reason,
        })
    }

    /// The error for a follower whose next record was removed unseen.
    fn fell_behind(&self, lsn: Lsn, next_file: &Path) -> Error {
        let first = self
            .storage
            .open(next_file, OpenMode::Read)
            .ok()
            .and_then(|f| read_header(&*f, next_file).ok())
            .map_or(lsn, |h| h.first_lsn);
        Error::LsnOutOfRange {
            lsn,
            first,
            end: first,
        }
    }

    /// Reads whole records of `meta` past its end, publishing the new end
    /// after each closed batch.
    fn extend(&self, meta: &SegmentMeta, out: &mut Vec<LogRecord>, budget: &mut u64) -> Result<()> {
        let len = meta
            .file
            .len()
            .map_err(|e| Error::io("stat segment", &meta.path, e))?;
        let mut pos = meta.end.load(Ordering::Acquire);
        let mut expected = self.log.written_lsn();
        let mut pending: Vec<LogRecord> = Vec::new();
        let mut header = [0u8; frame::HEADER_LEN];
        while pos + frame::HEADER_LEN as u64 <= len && *budget > 0 {
            meta.file
                .read_at(&mut header, pos)
                .map_err(|e| Error::io("read segment", &meta.path, e))?;
            let payload_len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let total = frame::encoded_len(payload_len as usize) as u64;
            // Bounded by the real file size before anything is allocated.
            if pos + total > len {
                break;
            }
            let mut bytes = vec![0u8; total as usize];
            meta.file
                .read_at(&mut bytes, pos)
                .map_err(|e| Error::io("read segment", &meta.path, e))?;
            let Ok(f) = frame::decode(&bytes, meta.id) else {
                break;
            };
            if f.header.lsn != expected {
                break;
            }
            pending.push(LogRecord {
                lsn: f.header.lsn,
                kind: f.header.kind,
                segment: meta.id.number,
                offset: pos,
                payload: f.payload.to_vec(),
            });
            pos += total;
            expected += 1;
            if !f.header.batch_continues() {
                *budget = budget
                    .saturating_sub(pending.iter().map(|r| r.payload.len() as u64 + 32).sum());
                out.append(&mut pending);
                meta.end.store(pos, Ordering::Release);
                self.log.set_durable(expected);
                self.log.set_written(expected);
            }
        }
        Ok(())
    }
}

/// Bounded retries of an open that raced with a segment or checkpoint
/// removal.
pub(crate) const OPEN_ATTEMPTS: u32 = 8;

pub(crate) fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

fn read_header(file: &dyn StorageFile, path: &Path) -> Result<SegmentHeader> {
    let mut bytes = [0u8; segment::HEADER_LEN];
    file.read_at(&mut bytes, 0)
        .map_err(|e| Error::io("read segment header", path, e))?;
    SegmentHeader::decode(&bytes).map_err(|reason| Error::Corruption {
        file: path.to_path_buf(),
        offset: 0,
        reason,
    })
}
