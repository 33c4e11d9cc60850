//! Recovery: decide, from the bytes on disk, exactly which records the log
//! holds, and repair a torn tail.
//!
//! The rules (DESIGN.md, "Recovery", argues each):
//!
//! * Files and the directory are fsynced before anything read is trusted.
//! * Segments must be numbered contiguously; each header must be valid and
//!   its first LSN must follow the previous segment's last record.
//! * Within a segment, records are read in order; each must decode, belong
//!   to this segment, and carry the next LSN.
//! * Where that stops, the rest of the file decides. All zeros: the clean
//!   end (preallocated space). Otherwise the writer's group commit tells a
//!   torn tail from corruption: a commit group is what the writer wrote
//!   since its last `fdatasync` (one `write`, or several if it wrote
//!   `Buffered` records without syncing), closed by the next `fdatasync`,
//!   and the next group is written only after that sync returned. So valid
//!   records past the bad spot that belong to the *same* group as the bad
//!   spot (their group began at or before it) are the remains of unsynced
//!   writes: a torn tail. A valid record from a *later* group means a
//!   synced record went bad: corruption.
//! * A torn tail may exist only in the last segment. An atomic batch whose
//!   closing record is missing is part of the torn tail.
//! * Cut bytes are copied to a `.broken` file, then zeroed in place (the
//!   segment keeps its preallocated size), then synced.
//! * An I/O error is returned as an I/O error, never taken for corruption.

use crate::wal::error::{Error, Result};
use crate::wal::failpoint::{names, Failpoints};
use crate::wal::frame::{self, DecodeError, SegmentId};
use crate::wal::segment::{self, SegmentHeader};
use crate::wal::storage::{OpenMode, Storage, StorageFile};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What recovery may do about damaged bytes, as in RocksDB's WAL recovery
/// modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Cut a torn tail of the last segment (the normal result of a crash);
    /// refuse to open on any other damage. The default.
    #[default]
    TolerateTornTail,
    /// Refuse to open if anything at all is damaged, even a torn tail.
    AbsoluteConsistency,
    /// Keep the log up to the first damaged record and cut everything after
    /// it (later segments are set aside as `.broken` files).
    PointInTime,
    /// Skip damaged records and keep every valid record around them. LSNs
    /// may then have gaps. A segment whose header cannot be read is set
    /// aside as a `.broken` file.
    SkipCorrupt,
}

/// A range of bytes cut from a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The segment file.
    pub file: PathBuf,
    /// Offset of the first byte cut.
    pub offset: u64,
    /// How many bytes were cut (zeroed).
    pub bytes: u64,
    /// Where a copy of the cut bytes was kept (none on a dry run).
    pub copy: Option<PathBuf>,
    /// Why.
    pub reason: String,
    /// Whole, checksum-valid records found inside the cut range. A crash
    /// can leave some (the surviving sectors of one unsynced commit group),
    /// but damage to the last commit group looks the same: if any of these
    /// were acknowledged, the cut bytes were not a crash's torn tail.
    pub intact_records: u64,
}

/// Damage that was skipped or cut under a lenient recovery mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The segment file.
    pub file: PathBuf,
    /// Offset of the first bad byte.
    pub offset: u64,
    /// What check failed.
    pub reason: String,
}

/// What recovery found and did.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// True if the directory held no journal and a new one was created.
    pub created: bool,
    /// Segments in the log after recovery.
    pub segments: usize,
    /// Valid records in the log.
    pub records: u64,
    /// Bytes of valid records (frames, padding included).
    pub bytes: u64,
    /// LSN of the first record in the log (or of the next one if empty).
    pub first_lsn: u64,
    /// The LSN the next append will get.
    pub next_lsn: u64,
    /// Torn tail cut (or, on a dry run, that would be cut).
    pub truncated: Vec<Truncation>,
    /// Damage skipped or cut in `PointInTime` / `SkipCorrupt` mode.
    pub damage: Vec<Damage>,
    /// Segments set aside (renamed to `.broken`) in `PointInTime` mode.
    pub set_aside: Vec<PathBuf>,
    /// Leftover temporary files removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// Time recovery took.
    pub elapsed: Duration,
}

impl RecoveryReport {
    /// Total bytes cut.
    pub fn bytes_truncated(&self) -> u64 {
        self.truncated.iter().map(|t| t.bytes).sum()
    }
}

/// A segment as recovery leaves it.
pub struct RecoveredSegment {
    /// Its header.
    pub header: SegmentHeader,
    /// Its path.
    pub path: PathBuf,
    /// The open file (read-write unless a dry run).
    pub file: Arc<dyn StorageFile>,
    /// End of the last valid record: where the next record goes.
    pub end: u64,
    /// The file's size.
    pub capacity: u64,
    /// LSN one past the last record it holds.
    pub next_lsn: u64,
    /// Byte ranges `[from, to)` that `SkipCorrupt` recovery skipped; readers
    /// jump over them.
    pub skips: Vec<(u64, u64)>,
}

/// The outcome of a successful recovery.
pub struct Recovered {
    /// The segments of the log, in order.
    pub segments: Vec<RecoveredSegment>,
    /// The report.
    pub report: RecoveryReport,
}

/// Inputs of a recovery run.
pub struct Recovery<'a> {
    /// The storage to read (and repair) through.
    pub storage: &'a dyn Storage,
    /// The journal directory.
    pub dir: &'a Path,
    /// The damage policy.
    pub mode: RecoveryMode,
    /// If true, change nothing on disk: only report.
    pub dry_run: bool,
    /// Failpoints.
    pub failpoints: &'a Failpoints,
}

/// How the scan of one segment ended.
enum Ending {
    /// Ran into zeros (or the exact end of the file) with nothing after.
    Clean,
    /// Damage that is a torn tail if this is the last segment.
    Torn {
        at: u64,
        reason: String,
        intact: u64,
    },
    /// Damage that is corruption wherever it is.
    Corrupt { at: u64, reason: String },
}

struct Scan {
    end: u64,
    next_lsn: u64,
    records: u64,
    bytes: u64,
    ending: Ending,
    skipped: Vec<Damage>,
    skips: Vec<(u64, u64)>,
    /// One past the last non-zero byte of the file.
    last_nonzero: u64,
}

/// What [`Recovery::recover_segment`] decided about one segment.
enum Step {
    /// Recovery stops before this segment (a lenient mode stops at the
    /// first damage): it and every later one are set aside.
    StopBefore,
    /// The header is unreadable and `SkipCorrupt` skips the file.
    Unreadable,
    /// The segment is kept; `stop` says recovery ends after it.
    Recovered {
        /// The segment as recovered.
        seg: RecoveredSegment,
        /// Whether recovery ends after it.
        stop: bool,
    },
}

impl Recovery<'_> {
    /// Runs recovery over the directory.
    pub fn run(&self) -> Result<Recovered> {
        let started = Instant::now();
        let mut report = RecoveryReport::default();
        let (names, numbers) = self.list_segments(&mut report)?;
        let mut segments: Vec<RecoveredSegment> = Vec::new();
        let mut stop_after: Option<usize> = None;
        // Segments whose header cannot be read, skipped in `SkipCorrupt`
        // mode: set aside, so that a new segment of the same number never
        // replaces their bytes.
        let mut unreadable: Vec<u64> = Vec::new();
        for (i, &number) in numbers.iter().enumerate() {
            let is_last = i + 1 == numbers.len();
            match self.recover_segment(number, is_last, segments.last(), &mut report)? {
                Step::StopBefore => {
                    stop_after = Some(i);
                    break;
                }
                Step::Unreadable => unreadable.push(number),
                Step::Recovered { seg, stop } => {
                    segments.push(seg);
                    if stop {
                        stop_after = Some(i + 1);
                        break;
                    }
                }
            }
        }
        if let Some(first_dropped) = stop_after {
            unreadable.extend_from_slice(&numbers[first_dropped..]);
        }
        self.set_aside(&unreadable, &names, &mut report)?;
        report.segments = segments.len();
        report.first_lsn = segments.first().map_or(1, |s| s.header.first_lsn);
        report.next_lsn = segments.last().map_or(1, |s| s.next_lsn);
        report.elapsed = started.elapsed();
        Ok(Recovered { segments, report })
    }

    /// Lists the directory, sweeps stale temporary files, and returns the
    /// names seen and the segment numbers in ascending order (the directory
    /// is fsynced first unless this is a dry run, so the listing is
    /// durable before anything is decided from it).
    fn list_segments(&self, report: &mut RecoveryReport) -> Result<(Vec<String>, Vec<u64>)> {
        let names = self
            .storage
            .list(self.dir)
            .map_err(|e| Error::io("list journal directory", self.dir, e))?;
        self.sweep_temp_files(&names, report)?;
        let mut numbers: Vec<u64> = names
            .iter()
            .filter_map(|n| segment::parse_file_name(n))
            .collect();
        numbers.sort_unstable();
        if !self.dry_run && !numbers.is_empty() {
            self.storage
                .sync_dir(self.dir)
                .map_err(|e| Error::io("fsync journal directory", self.dir, e))?;
        }
        Ok((names, numbers))
    }

    /// Recovers segment `number`, which follows `prev` (the last segment
    /// kept): checks it continues `prev` (number and first LSN), reads its
    /// header, scans its records and settles its ending.
    fn recover_segment(
        &self,
        number: u64,
        is_last: bool,
        prev: Option<&RecoveredSegment>,
        report: &mut RecoveryReport,
    ) -> Result<Step> {
        let path = self.dir.join(segment::file_name(number));
        if let Some(prev) = prev.filter(|p| number != p.header.id.number + 1) {
            let reason = format!(
                "segment {} is missing between {} and {number}",
                prev.header.id.number + 1,
                prev.header.id.number
            );
            if self.lenient_stop(&path, 0, reason, report)? {
                return Ok(Step::StopBefore);
            }
        }
        let (file, map) = self.open_segment(&path)?;
        let header = match SegmentHeader::decode(&map) {
            Ok(h) if h.id.number == number => h,
            Ok(h) => Err(format!(
                "header says segment {} but the file is named for {number}",
                h.id.number
            ))
            .map_err(|r| self.corruption(&path, 0, r))?,
            Err(reason) => {
                let stop = self.lenient_stop(&path, 0, reason, report)?;
                return Ok(if stop {
                    Step::StopBefore
                } else {
                    Step::Unreadable
                });
            }
        };
        if let Some(exp) = prev.map(|p| p.next_lsn).filter(|&e| e != header.first_lsn) {
            let reason = format!(
                "segment starts at LSN {} but the previous one ended before LSN {exp}",
                header.first_lsn
            );
            if self.lenient_stop(&path, 0, reason, report)? {
                return Ok(Step::StopBefore);
            }
        }
        let scan = scan_segment(&map, &header, self.mode == RecoveryMode::SkipCorrupt);
        report.damage.extend(scan.skipped.iter().map(|d| Damage {
            file: path.clone(),
            ..d.clone()
        }));
        let capacity = map.len() as u64;
        drop(map);
        let mut seg = RecoveredSegment {
            header,
            path,
            file,
            end: scan.end,
            capacity,
            next_lsn: scan.next_lsn,
            skips: scan.skips.clone(),
        };
        report.records += scan.records;
        report.bytes += scan.bytes;
        let stop = self.settle_ending(&mut seg, &scan, is_last, report)?;
        Ok(Step::Recovered { seg, stop })
    }

    fn sweep_temp_files(&self, names: &[String], report: &mut RecoveryReport) -> Result<()> {
        for name in names.iter().filter(|n| segment::is_temp_name(n)) {
            let path = self.dir.join(name);
            if !self.dry_run {
                self.storage
                    .remove(&path)
                    .map_err(|e| Error::io("remove stale temporary segment", &path, e))?;
            }
            report.removed_temp_files.push(path);
        }
        Ok(())
    }

    fn open_segment(
        &self,
        path: &Path,
    ) -> Result<(Arc<dyn StorageFile>, crate::wal::storage::ReadMap)> {
        let mode = if self.dry_run {
            OpenMode::Read
        } else {
            OpenMode::ReadWrite
        };
        let file = self
            .storage
            .open(path, mode)
            .map_err(|e| Error::io("open segment", path, e))?;
        if !self.dry_run {
            file.sync_all()
                .map_err(|e| Error::io("fsync segment before recovery", path, e))?;
        }
        let map = file
            .map()
            .map_err(|e| Error::io("map segment for recovery", path, e))?;
        Ok((Arc::from(file), map))
    }

    fn corruption(&self, file: &Path, offset: u64, reason: String) -> Error {
        Error::Corruption {
            file: file.to_path_buf(),
            offset,
            reason,
        }
    }

    /// Damage before the segment's records: stop here in `PointInTime`,
    /// skip in `SkipCorrupt`, refuse otherwise. Returns true to stop.
    fn lenient_stop(
        &self,
        file: &Path,
        offset: u64,
        reason: String,
        report: &mut RecoveryReport,
    ) -> Result<bool> {
        match self.mode {
            RecoveryMode::PointInTime => {
                report.damage.push(Damage {
                    file: file.to_path_buf(),
                    offset,
                    reason,
                });
                Ok(true)
            }
            RecoveryMode::SkipCorrupt => {
                report.damage.push(Damage {
                    file: file.to_path_buf(),
                    offset,
                    reason,
                });
                Ok(false)
            }
            _ => Err(self.corruption(file, offset, reason)),
        }
    }

    /// Applies the mode to how a segment's scan ended. Returns true if the
    /// log stops after this segment.
    fn settle_ending(
        &self,
        seg: &mut RecoveredSegment,
        scan: &Scan,
        is_last: bool,
        report: &mut RecoveryReport,
    ) -> Result<bool> {
        let (at, reason, corrupt) = match &scan.ending {
            Ending::Clean => return Ok(false),
            Ending::Torn { at, reason, .. } => (*at, reason.clone(), !is_last),
            Ending::Corrupt { at, reason } => (*at, reason.clone(), true),
        };
        let reason = if corrupt && !is_last {
            format!("{reason} (in a segment that is not the last one)")
        } else {
            reason
        };
        match (self.mode, corrupt) {
            (RecoveryMode::TolerateTornTail, false)
            | (RecoveryMode::SkipCorrupt, false)
            | (RecoveryMode::PointInTime, false) => {
                self.cut(seg, at, scan, reason, report)?;
                Ok(false)
            }
            (RecoveryMode::AbsoluteConsistency, false) => Err(self.corruption(
                &seg.path,
                at,
                format!("{reason}; absolute-consistency mode does not cut a torn tail"),
            )),
            (RecoveryMode::PointInTime, true) | (RecoveryMode::SkipCorrupt, true) => {
                // SkipCorrupt's scan already skipped what it could, so what
                // is left here has no valid record after it: both modes cut
                // it. PointInTime also ends the log here.
                report.damage.push(Damage {
                    file: seg.path.clone(),
                    offset: at,
                    reason: reason.clone(),
                });
                self.cut(seg, at, scan, reason, report)?;
                Ok(self.mode == RecoveryMode::PointInTime)
            }
            (_, true) => Err(self.corruption(&seg.path, at, reason)),
        }
    }

    /// Copies `[at, until)` of the segment to a `.broken` file, then zeroes
    /// it in place and syncs.
    fn cut(
        &self,
        seg: &mut RecoveredSegment,
        at: u64,
        scan: &Scan,
        reason: String,
        report: &mut RecoveryReport,
    ) -> Result<()> {
        let until = scan.last_nonzero.max(at);
        let intact_records = match scan.ending {
            Ending::Torn { intact, .. } => intact,
            _ => 0,
        };
        let len = until - at;
        let mut copy = None;
        if !self.dry_run && len > 0 {
            self.failpoints
                .hit(names::RECOVERY_BEFORE_TRUNCATE)
                .map_err(|e| Error::io("cut torn tail", &seg.path, e))?;
            let existing = self
                .storage
                .list(self.dir)
                .map_err(|e| Error::io("list journal directory", self.dir, e))?;
            let seg_name = segment::file_name(seg.header.id.number);
            let broken = self.dir.join(segment::broken_name(&seg_name, &existing));
            let out = self
                .storage
                .open(&broken, OpenMode::CreateNew)
                .map_err(|e| Error::io("create .broken copy", &broken, e))?;
            // Copy first, in bounded chunks (the cut range is bounded only by
            // the file's size), and make the copy durable before zeroing.
            let mut chunk = vec![0u8; CUT_CHUNK.min(len as usize)];
            for (from, n) in chunks(at, len) {
                seg.file
                    .read_at(&mut chunk[..n], from)
                    .map_err(|e| Error::io("read torn tail", &seg.path, e))?;
                out.write_at(&chunk[..n], from - at)
                    .map_err(|e| Error::io("write .broken copy", &broken, e))?;
            }
            out.sync_all()
                .map_err(|e| Error::io("write .broken copy", &broken, e))?;
            self.storage
                .sync_dir(self.dir)
                .map_err(|e| Error::io("fsync journal directory", self.dir, e))?;
            chunk.fill(0);
            for (from, n) in chunks(at, len) {
                seg.file
                    .write_at(&chunk[..n], from)
                    .map_err(|e| Error::io("zero torn tail", &seg.path, e))?;
            }
            seg.file
                .sync_data()
                .map_err(|e| Error::io("zero torn tail", &seg.path, e))?;
            copy = Some(broken);
        }
        seg.end = at;
        report.truncated.push(Truncation {
            file: seg.path.clone(),
            offset: at,
            bytes: len,
            copy,
            reason,
            intact_records,
        });
        Ok(())
    }

    fn set_aside(
        &self,
        numbers: &[u64],
        names: &[String],
        report: &mut RecoveryReport,
    ) -> Result<()> {
        let mut existing = names.to_vec();
        for &number in numbers {
            let name = segment::file_name(number);
            let from = self.dir.join(&name);
            let to_name = segment::broken_name(&name, &existing);
            let to = self.dir.join(&to_name);
            if !self.dry_run {
                self.failpoints
                    .hit(names::RECOVERY_BEFORE_SET_ASIDE)
                    .and_then(|()| self.storage.rename(&from, &to))
                    .map_err(|e| Error::io("set aside segment", &from, e))?;
            }
            existing.push(to_name);
            report.set_aside.push(to);
        }
        if !self.dry_run && !numbers.is_empty() {
            self.storage
                .sync_dir(self.dir)
                .map_err(|e| Error::io("fsync journal directory", self.dir, e))?;
        }
        Ok(())
    }
}

/// Bytes copied or zeroed at a time when a torn tail is cut.
const CUT_CHUNK: usize = 1 << 20;

/// `(offset, length)` pieces of at most [`CUT_CHUNK`] bytes covering
/// `[at, at + len)`.
fn chunks(at: u64, len: u64) -> impl Iterator<Item = (u64, usize)> {
    (0..len.div_ceil(CUT_CHUNK as u64)).map(move |i| {
        let from = at + i * CUT_CHUNK as u64;
        (from, (at + len - from).min(CUT_CHUNK as u64) as usize)
    })
}

/// Scans the records of one segment. Pure: reads `map`, changes nothing.
fn scan_segment(map: &[u8], header: &SegmentHeader, skip_corrupt: bool) -> Scan {
    let mut scanner = Scanner::new(map, header, skip_corrupt);
    loop {
        let problem = match frame::decode(&map[scanner.pos..], scanner.id) {
            Ok(f) if f.header.lsn == scanner.expected => {
                scanner.accept(f.header.batch_continues(), f.total_len);
                continue;
            }
            Ok(f) => format!(
                "record has LSN {} where LSN {} was expected",
                f.header.lsn, scanner.expected
            ),
            Err(DecodeError::Zeroed) | Err(DecodeError::ShortHeader)
                if scanner.pos as u64 >= scanner.scan.last_nonzero =>
            {
                break;
            }
            Err(e) => e.to_string(),
        };
        if !scanner.bad_record(problem) {
            break;
        }
    }
    scanner.finish()
}

/// The state of [`scan_segment`] walking one segment's records.
struct Scanner<'a> {
    map: &'a [u8],
    id: SegmentId,
    skip_corrupt: bool,
    /// Offset of the next record.
    pos: usize,
    /// LSN the next record must carry.
    expected: u64,
    /// Start of an atomic batch whose closing record has not been seen
    /// yet: its offset, first LSN and the record count before it.
    open_batch: Option<(usize, u64, u64)>,
    scan: Scan,
}

impl<'a> Scanner<'a> {
    fn new(map: &'a [u8], header: &SegmentHeader, skip_corrupt: bool) -> Scanner<'a> {
        let pos = segment::HEADER_LEN;
        Scanner {
            map,
            id: header.id,
            skip_corrupt,
            pos,
            expected: header.first_lsn,
            open_batch: None,
            scan: Scan {
                end: pos as u64,
                next_lsn: header.first_lsn,
                records: 0,
                bytes: 0,
                ending: Ending::Clean,
                skipped: Vec::new(),
                skips: Vec::new(),
                last_nonzero: last_nonzero(map).max(segment::HEADER_LEN as u64),
            },
        }
    }

    /// Takes the valid record of `len` bytes at `pos`; the log ends after
    /// it unless it continues an atomic batch.
    fn accept(&mut self, batch_continues: bool, len: usize) {
        if batch_continues && self.open_batch.is_none() {
            self.open_batch = Some((self.pos, self.expected, self.scan.records));
        }
        self.pos += len;
        self.expected += 1;
        self.scan.records += 1;
        self.scan.bytes += len as u64;
        if !batch_continues {
            self.open_batch = None;
            self.scan.end = self.pos as u64;
            self.scan.next_lsn = self.expected;
        }
    }

    /// A bad record at `pos`: is a valid record of a later commit group
    /// after it? (Valid records of the bad record's own group may come
    /// first: they prove nothing, a later group anywhere after it does.)
    /// Returns whether the scan goes on (`SkipCorrupt` skipped the damage).
    fn bad_record(&mut self, problem: String) -> bool {
        let pos = self.pos;
        match find_later_group(self.map, pos + frame::ALIGN, self.id, self.expected) {
            Some((at, f)) if self.skip_corrupt => {
                self.skip_to(at, f.lsn, &problem);
                true
            }
            Some((at, f)) => {
                self.scan.ending = Ending::Corrupt {
                    at: pos as u64,
                    reason: format!(
                        "{problem}, and a valid record from a later commit group (LSN {}) follows at offset {at}",
                        f.lsn
                    ),
                };
                false
            }
            None => {
                self.scan.ending = Ending::Torn {
                    at: pos as u64,
                    reason: problem,
                    intact: 0,
                };
                false
            }
        }
    }

    /// Skips from the start of any unclosed batch (it can never be whole)
    /// to the next valid record, at `at` with LSN `lsn`.
    fn skip_to(&mut self, at: usize, lsn: u64, problem: &str) {
        let from = match self.open_batch.take() {
            Some((batch_pos, _, records_before)) => {
                self.scan.records = records_before;
                self.scan.bytes -= (self.pos - batch_pos) as u64;
                batch_pos
            }
            None => self.pos,
        };
        self.scan.skipped.push(Damage {
            file: PathBuf::new(),
            offset: from as u64,
            reason: format!(
                "{problem}; skipped {} bytes to the next valid record (LSN {lsn})",
                at - from
            ),
        });
        self.scan.skips.push((from as u64, at as u64));
        self.pos = at;
        self.expected = lsn;
    }

    /// Ends the scan: an atomic batch without its closing record was never
    /// acknowledged and is cut; a torn ending counts the intact records
    /// after it.
    fn finish(mut self) -> Scan {
        if let Some((batch_pos, _, records_before)) = self.open_batch {
            let at = batch_pos as u64;
            self.scan.records = records_before;
            self.scan.bytes -= self.pos as u64 - at;
            let reason = "atomic batch without its closing record".to_string();
            self.scan.ending = match self.scan.ending {
                Ending::Corrupt { at: c, reason: r } => Ending::Corrupt {
                    at: c.min(at),
                    reason: r,
                },
                _ => Ending::Torn {
                    at,
                    reason,
                    intact: 0,
                },
            };
        }
        let last_nonzero = self.scan.last_nonzero as usize;
        if let Ending::Torn { at, intact, .. } = &mut self.scan.ending {
            *intact = count_intact(self.map, *at as usize, last_nonzero, self.id);
        }
        self.scan
    }
}

/// The first aligned offset at or after `from` holding a valid record of
/// segment `id` from a commit group that began after LSN `bad_lsn` (the
/// LSN expected where the bad record is).
fn find_later_group(
    map: &[u8],
    from: usize,
    id: SegmentId,
    bad_lsn: u64,
) -> Option<(usize, frame::FrameHeader)> {
    let number = id.number.to_le_bytes();
    let mut at = from;
    while at + frame::HEADER_LEN <= map.len() {
        if map[at + 16..at + 24] == number {
            if let Ok(f) = frame::decode(&map[at..], id) {
                if f.header.group_first_lsn() > bad_lsn {
                    return Some((at, f.header));
                }
            }
        }
        at += frame::ALIGN;
    }
    None
}

/// How many checksum-valid records of segment `id` start at aligned
/// offsets in `[from, until)`.
fn count_intact(map: &[u8], from: usize, until: usize, id: SegmentId) -> u64 {
    let mut count = 0;
    let mut at = from;
    while at < until && at + frame::HEADER_LEN <= map.len() {
        match frame::decode(&map[at..], id) {
            Ok(f) => {
                count += 1;
                at += f.total_len;
            }
            Err(_) => at += frame::ALIGN,
        }
    }
    count
}

/// One past the offset of the last non-zero byte (0 if all zero).
fn last_nonzero(map: &[u8]) -> u64 {
    let mut end = map.len();
    while end >= 64 {
        let chunk = &map[end - 64..end];
        if chunk.iter().any(|&b| b != 0) {
            break;
        }
        end -= 64;
    }
    map[..end]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |p| p as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_chunks_cover_the_range_exactly() {
        let pieces: Vec<_> = chunks(8, 2 * CUT_CHUNK as u64 + 5).collect();
        assert_eq!(
            pieces,
            vec![
                (8, CUT_CHUNK),
                (8 + CUT_CHUNK as u64, CUT_CHUNK),
                (8 + 2 * CUT_CHUNK as u64, 5)
            ]
        );
        assert_eq!(chunks(0, 0).count(), 0);
    }

    #[test]
    fn last_nonzero_finds_the_end() {
        let mut v = vec![0u8; 1000];
        assert_eq!(last_nonzero(&v), 0);
        v[0] = 1;
        assert_eq!(last_nonzero(&v), 1);
        v[777] = 9;
        assert_eq!(last_nonzero(&v), 778);
        v[999] = 9;
        assert_eq!(last_nonzero(&v), 1000);
    }
}
