//! Segment files: names, the header, and how a new segment comes to exist.
//!
//! ```text
//! segment header, 64 bytes, little-endian
//! offset size field
//!  0     8    magic b"TJSEGMNT"
//!  8     2    format version (1)
//! 10     2    header length (64)
//! 12     4    salt (u32): random per segment, part of every record's identity
//! 16     8    segment number (u64), equal to the number in the file name
//! 24     8    LSN of the first record this segment holds
//! 32    28    reserved, zero
//! 60     4    crc32 of bytes 0..60
//! ```
//!
//! A segment is named `{number:020}.seg`, so names sort in log order. A new
//! segment is born as `{number:020}.seg.tmp`, zero-filled to its full size
//! (overwriting allocated blocks syncs faster than growing a file) and
//! synced, then renamed to `{number:020}.seg.spare`: a *spare*, a whole
//! zero-filled file ready to become segment `number`. Installing it writes
//! and syncs the header, renames it to its final name and fsyncs the
//! directory. Only then does the writer put records in it. The zero-fill of
//! the next segment happens ahead of time on the [`Preallocator`] thread, so
//! rotation does not stall appenders.
//!
//! Segments do not all have the same size. A journal's first segment is
//! small ([`crate::Options::first_segment_size`], 1 MiB by default) and each
//! next one is [`GROWTH`] (4) times the size of the one before, up to
//! [`crate::Options::segment_size`] ([`next_segment_size`]), so a small
//! store takes little disk and a busy one soon rotates rarely. Each file
//! keeps the size it was created with: a reader's map never sees a segment
//! grow.
//!
//! A spare is never written to except by its installation, so it holds only
//! zeros (and perhaps a header an interrupted installation wrote, which the
//! next installation overwrites). A spare left at close (or by a crash)
//! stays on disk under its `.seg.spare` name, and the next open adopts it if
//! it is the one the log needs next ([`adopt_spare`]); any other spare is
//! removed then. `.seg.tmp` files are never adopted: their zero-fill may not
//! have finished, so recovery sweeps them.

use crate::wal::failpoint::{names, Failpoints};
use crate::wal::frame::SegmentId;
use crate::wal::storage::{OpenMode, Storage, StorageFile};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Length of the segment header; the first record starts here.
pub const HEADER_LEN: usize = 64;
/// The magic bytes at the start of every segment.
pub const MAGIC: [u8; 8] = *b"TJSEGMNT";
/// The current format version.
pub const FORMAT_VERSION: u16 = 1;
const SEGMENT_SUFFIX: &str = ".seg";
const TEMP_SUFFIX: &str = ".seg.tmp";
const SPARE_SUFFIX: &str = ".seg.spare";
/// How much larger each segment is than the one before (up to
/// `segment_size`): 1, 4, 16, 64 MiB by default. Doubling (1, 2, 4, ... 64)
/// zero-filled 126 MiB on the way to the first full-size segment and cost
/// the pipelined append benchmark about a quarter of its rate in short
/// runs; fourfold fills 84 MiB and keeps a small store's spare at 4 MiB.
pub const GROWTH: u64 = 4;
/// The smallest size a segment file may have: its header and one empty
/// record frame.
pub const MIN_SEGMENT_SIZE: u64 =
    (HEADER_LEN + crate::wal::frame::HEADER_LEN + crate::wal::frame::ALIGN) as u64;
const BROKEN_SUFFIX: &str = ".broken";

/// The decoded header of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Number and salt.
    pub id: SegmentId,
    /// LSN of the first record in the segment.
    pub first_lsn: u64,
}

impl SegmentHeader {
    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let header_len = u16::try_from(HEADER_LEN).expect("the header length fits its u16 field");
        b[10..12].copy_from_slice(&header_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.id.salt.to_le_bytes());
        b[16..24].copy_from_slice(&self.id.number.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_lsn.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        // Paired with `decode`: what is written must read back as written.
        debug_assert_eq!(SegmentHeader::decode(&b).as_ref(), Ok(self));
        b
    }

    /// Decodes and checks a header. The error says which check failed.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!(
                "segment is {} bytes, shorter than its {HEADER_LEN}-byte header",
                bytes.len()
            ));
        }
        let b = &bytes[..HEADER_LEN];
        if b[0..8] != MAGIC {
            return Err("bad magic: not a tracejournal segment".into());
        }
        let stored = u32::from_le_bytes(b[60..64].try_into().expect("4 bytes"));
        if crc32fast::hash(&b[0..60]) != stored {
            return Err("segment header checksum mismatch".into());
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != FORMAT_VERSION {
            return Err(format!(
                "segment format version {version} is not supported (this build reads {FORMAT_VERSION})"
            ));
        }
        let header_len = u16::from_le_bytes([b[10], b[11]]);
        if usize::from(header_len) != HEADER_LEN || b[32..60].iter().any(|&x| x != 0) {
            return Err("segment header has unknown fields".into());
        }
        Ok(SegmentHeader {
            id: SegmentId {
                salt: u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")),
                number: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
            },
            first_lsn: u64::from_le_bytes(b[24..32].try_into().expect("8 bytes")),
        })
    }
}

/// The file name of segment `number`.
pub fn file_name(number: u64) -> String {
    format!("{number:020}{SEGMENT_SUFFIX}")
}

/// The temporary name a segment is born under.
pub fn temp_name(number: u64) -> String {
    format!("{number:020}{TEMP_SUFFIX}")
}

/// The name of the spare that is ready to become segment `number`.
pub fn spare_name(number: u64) -> String {
    format!("{number:020}{SPARE_SUFFIX}")
}

/// The segment number a spare's file name is for, if it is a spare's name.
pub fn parse_spare_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SPARE_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The size of the segment that follows one of `current` bytes, when it
/// must hold at least `needed` bytes (its header included): [`GROWTH`]
/// times `current`, at least `needed`, rounded up to a multiple of 8, and at most
/// `max` (the configured `segment_size`, itself a multiple of 8 that the
/// journal's validation keeps at or above every `needed`).
pub fn next_segment_size(current: u64, needed: u64, max: u64) -> u64 {
    let align = crate::wal::frame::ALIGN as u64;
    let want = current
        .saturating_mul(GROWTH)
        .max(needed)
        .max(MIN_SEGMENT_SIZE);
    let aligned = want.saturating_add(align - 1) / align * align;
    aligned.min(max)
}

/// The segment number of a segment file name, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// True for leftovers of an interrupted segment creation.
pub fn is_temp_name(name: &str) -> bool {
    name.ends_with(TEMP_SUFFIX)
}

/// A name for keeping cut bytes of `segment_name` that does not exist yet.
pub fn broken_name(segment_name: &str, existing: &[String]) -> String {
    let base = format!("{segment_name}{BROKEN_SUFFIX}");
    if !existing.contains(&base) {
        return base;
    }
    (1..)
        .map(|i| format!("{base}.{i}"))
        .find(|n| !existing.contains(n))
        .expect("an unused name exists")
}

/// A fresh random salt.
pub fn new_salt() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    let v = h.finish();
    (v as u32) ^ ((v >> 32) as u32)
}

/// A zero-filled file, synced and named `{number}.seg.spare`, ready to
/// become segment `number`.
pub struct Spare {
    number: u64,
    size: u64,
    path: PathBuf,
    file: Box<dyn StorageFile>,
}

/// A segment the writer may append to.
pub struct OpenSegment {
    /// Its path.
    pub path: PathBuf,
    /// The open file.
    pub file: Arc<dyn StorageFile>,
    /// Its size in bytes (records never go past it).
    pub capacity: u64,
}

/// Creates `{number}.seg.tmp`, zero-fills it to `size` bytes, syncs it and
/// renames it to `{number}.seg.spare` (replacing any older spare of that
/// number). The rename needs no directory fsync: after a crash either name
/// may be there, and both hold a whole, synced, zero-filled file or are
/// swept.
pub fn prepare_spare(
    storage: &dyn Storage,
    dir: &Path,
    number: u64,
    size: u64,
    failpoints: &Failpoints,
) -> io::Result<Spare> {
    failpoints.hit(names::PREALLOCATE)?;
    let path = dir.join(temp_name(number));
    match storage.remove(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let file = storage.open(&path, OpenMode::CreateNew)?;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(zeros.len() as u64) as usize;
        file.write_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()?;
    let spare_path = dir.join(spare_name(number));
    storage.rename(&path, &spare_path)?;
    Ok(Spare {
        number,
        size,
        path: spare_path,
        file,
    })
}

/// Looks for spares left by an earlier process (a clean close keeps the one
/// the writer had ready). The spare for segment `number`, if its size is a
/// multiple of 8 between [`MIN_SEGMENT_SIZE`] and `max`, is returned for the
/// writer to use; every other `*.seg.spare` file is removed. Call only with
/// the directory lock held and never on a read-only or dry-run open.
pub fn adopt_spare(
    storage: &dyn Storage,
    dir: &Path,
    number: u64,
    max: u64,
) -> io::Result<Option<Spare>> {
    let mut names = storage.list(dir)?;
    names.sort();
    let mut adopted = None;
    for name in names {
        let Some(n) = parse_spare_name(&name) else {
            continue;
        };
        let path = dir.join(&name);
        if n == number && adopted.is_none() {
            let file = storage.open(&path, OpenMode::ReadWrite)?;
            let size = file.len()?;
            let align = crate::wal::frame::ALIGN as u64;
            if (MIN_SEGMENT_SIZE..=max).contains(&size) && size.is_multiple_of(align) {
                adopted = Some(Spare {
                    number,
                    size,
                    path,
                    file,
                });
                continue;
            }
        }
        match storage.remove(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(adopted)
}

/// Turns a spare into segment `header.id.number`: header written and
/// synced, renamed to its final name, directory fsynced.
pub fn install(
    storage: &dyn Storage,
    dir: &Path,
    spare: Spare,
    header: SegmentHeader,
    failpoints: &Failpoints,
) -> io::Result<OpenSegment> {
    assert_eq!(spare.number, header.id.number, "spare for another segment");
    let capacity = spare.file.len()?;
    assert!(capacity >= HEADER_LEN as u64, "spare smaller than a header");
    spare.file.write_at(&header.encode(), 0)?;
    spare.file.sync_data()?;
    failpoints.hit(names::SEGMENT_BEFORE_RENAME)?;
    let path = dir.join(file_name(header.id.number));
    storage.rename(&spare.path, &path)?;
    failpoints.hit(names::SEGMENT_AFTER_RENAME)?;
    storage.sync_dir(dir)?;
    Ok(OpenSegment {
        path,
        file: Arc::from(spare.file),
        capacity,
    })
}

enum Slot {
    Idle,
    /// The thread is (or will be) preparing segment `.0` at size `.1`.
    Preparing(u64, u64),
    Ready(Spare),
    Failed(u64, io::Error),
}

struct Shared {
    slot: Mutex<Slot>,
    done: Condvar,
    /// Set (under `slot`'s lock) when the thread has stopped, also by a
    /// panic: nothing will answer a preparation any more.
    stopped: AtomicBool,
}

/// Marks the preallocator thread stopped when it ends, however it ends
/// (a panic included), and wakes a writer waiting in
/// [`Preallocator::take`], which then prepares the spare itself.
struct StopGuard(Arc<Shared>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        let _slot = self.0.slot.lock();
        self.0.stopped.store(true, Ordering::Release);
        self.0.done.notify_all();
    }
}

/// A background thread that zero-fills the next segment ahead of time.
pub struct Preallocator {
    shared: Arc<Shared>,
    requests: Option<Sender<(u64, u64)>>,
    thread: Option<JoinHandle<()>>,
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    failpoints: Failpoints,
}

impl Preallocator {
    /// Starts the thread, holding `adopted` (a spare found at open, see
    /// [`adopt_spare`]) as ready if there is one.
    pub fn start(
        storage: Arc<dyn Storage>,
        dir: PathBuf,
        failpoints: Failpoints,
        adopted: Option<Spare>,
    ) -> io::Result<Preallocator> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(adopted.map_or(Slot::Idle, Slot::Ready)),
            done: Condvar::new(),
            stopped: AtomicBool::new(false),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = {
            let shared = shared.clone();
            let storage = storage.clone();
            let dir = dir.clone();
            let failpoints = failpoints.clone();
            std::thread::Builder::new()
                .name("tracejournal-prealloc".into())
                .spawn(move || preallocate_loop(rx, shared, storage, dir, failpoints))?
        };
        Ok(Preallocator {
            shared,
            requests: Some(tx),
            thread: Some(thread),
            storage,
            dir,
            failpoints,
        })
    }

    /// Asks for segment `number` to be prepared in the background, at
    /// `size` bytes. Nothing to do if a spare that large is ready for it.
    pub fn request(&self, number: u64, size: u64) {
        {
            let mut slot = self.shared.slot.lock();
            match &*slot {
                Slot::Ready(s) if s.number == number && s.size >= size => return,
                Slot::Preparing(n, z) if *n == number && *z == size => return,
                _ => {}
            }
            let old = std::mem::replace(&mut *slot, Slot::Preparing(number, size));
            self.discard(old, number);
        }
        if let Some(tx) = &self.requests {
            // The thread only stops when `requests` is dropped, so this
            // cannot fail while `self` exists.
            let _ = tx.send((number, size));
        }
    }

    /// Takes the spare for segment `number`, at least `size` bytes large:
    /// waits for a preparation under way, or prepares it on this thread if
    /// none is ready (or the ready one is too small, or the thread has
    /// stopped: the wait ends when the thread answers or ends).
    pub fn take(&self, number: u64, size: u64) -> io::Result<Spare> {
        let mut slot = self.shared.slot.lock();
        while matches!(&*slot, Slot::Preparing(n, _) if *n == number)
            && !self.shared.stopped.load(Ordering::Acquire)
        {
            self.shared.done.wait(&mut slot);
        }
        match std::mem::replace(&mut *slot, Slot::Idle) {
            Slot::Ready(spare) if spare.number == number && spare.size >= size => Ok(spare),
            old => {
                self.discard(old, number);
                drop(slot);
                // Replaces a too-small spare of the same number.
                prepare_spare(&*self.storage, &self.dir, number, size, &self.failpoints)
            }
        }
    }

    /// Removes the file of a ready spare that is not for segment `number`
    /// (best effort: a leftover is removed or adopted by the next open). A
    /// spare for `number` is left: preparing it again renames over it.
    fn discard(&self, old: Slot, number: u64) {
        if let Slot::Ready(spare) = old {
            if spare.number != number {
                let _ = self.storage.remove(&spare.path);
            }
        }
    }
}

impl Drop for Preallocator {
    /// Stops the thread after the preparation under way. A ready spare
    /// stays on disk as `{number}.seg.spare`, for the next open to adopt.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn preallocate_loop(
    rx: Receiver<(u64, u64)>,
    shared: Arc<Shared>,
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    failpoints: Failpoints,
) {
    let _stopped = StopGuard(shared.clone());
    let wanted = |slot: &Slot, number: u64, size: u64| matches!(slot, Slot::Preparing(n, z) if *n == number && *z == size);
    for (number, size) in rx {
        // Skip requests that were taken over (by `take`, or a newer
        // request): never prepare a segment `take` may be preparing too.
        if !wanted(&shared.slot.lock(), number, size) {
            continue;
        }
        let result = prepare_spare(&*storage, &dir, number, size, &failpoints);
        let mut slot = shared.slot.lock();
        if wanted(&slot, number, size) {
            *slot = match result {
                Ok(spare) => Slot::Ready(spare),
                Err(e) => Slot::Failed(number, e),
            };
        } else if let Ok(spare) = result {
            // Nobody wants it any more and nobody else prepares this
            // number while the slot does not say `Preparing` for it.
            if !matches!(&*slot, Slot::Preparing(n, _) if *n == number) {
                let _ = storage.remove(&spare.path);
            }
        }
        shared.done.notify_all();
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Idle => write!(f, "Idle"),
            Slot::Preparing(n, z) => write!(f, "Preparing({n}, {z} bytes)"),
            Slot::Ready(s) => write!(f, "Ready({})", s.number),
            Slot::Failed(n, e) => write!(f, "Failed({n}, {e})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_log_order_and_parse_back() {
        let mut names: Vec<String> = [10u64, 2, 1_000_000, 9]
            .iter()
            .map(|&n| file_name(n))
            .collect();
        names.sort();
        let parsed: Vec<u64> = names.iter().map(|n| parse_file_name(n).unwrap()).collect();
        assert_eq!(parsed, vec![2, 9, 10, 1_000_000]);
        assert_eq!(parse_file_name("00000000000000000001.seg.tmp"), None);
        assert_eq!(parse_file_name("1.seg"), None);
        assert!(is_temp_name(&temp_name(3)));
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SegmentHeader {
            id: SegmentId {
                number: 3,
                salt: 99,
            },
            first_lsn: 1234,
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes).unwrap(), h);
        for i in 0..HEADER_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x40;
            assert!(SegmentHeader::decode(&bad).is_err(), "flip at {i} passed");
        }
        assert!(SegmentHeader::decode(&bytes[..10]).is_err());
    }

    #[test]
    fn spare_names_parse_back_and_are_neither_segments_nor_temps() {
        assert_eq!(parse_spare_name(&spare_name(7)), Some(7));
        assert_eq!(parse_file_name(&spare_name(7)), None);
        assert!(!is_temp_name(&spare_name(7)));
        assert_eq!(parse_spare_name(&file_name(7)), None);
        assert_eq!(parse_spare_name(&temp_name(7)), None);
        assert_eq!(parse_spare_name("7.seg.spare"), None);
    }

    #[test]
    fn segment_sizes_grow_fourfold_fit_the_record_and_stop_at_the_maximum() {
        let max = 64 << 20;
        assert_eq!(next_segment_size(1 << 20, 0, max), 4 << 20);
        assert_eq!(next_segment_size(16 << 20, 0, max), 64 << 20);
        assert_eq!(next_segment_size(32 << 20, 0, max), 64 << 20);
        assert_eq!(next_segment_size(64 << 20, 0, max), 64 << 20);
        // An old segment larger than the maximum: the maximum.
        assert_eq!(next_segment_size(100 << 20, 0, max), 64 << 20);
        // A record that needs more than the next size gets room for it,
        // rounded up to the frame alignment.
        assert_eq!(next_segment_size(4096, 20_001, max), 20_008);
        assert_eq!(next_segment_size(4096, 0, max), 16_384);
        assert_eq!(next_segment_size(4096, 20_001, 16_384), 16_384);
        // Odd sizes of an existing file are rounded up too; never below
        // the smallest segment.
        assert_eq!(next_segment_size(4099, 0, max), 16_400);
        assert_eq!(next_segment_size(0, 0, max), MIN_SEGMENT_SIZE);
        assert_eq!(next_segment_size(u64::MAX, 0, max), max);
    }

    #[test]
    fn broken_names_never_collide() {
        let existing = vec!["a.seg.broken".to_string(), "a.seg.broken.1".to_string()];
        assert_eq!(broken_name("a.seg", &existing), "a.seg.broken.2");
        assert_eq!(broken_name("b.seg", &existing), "b.seg.broken");
    }
}
