//! Reading committed records, in LSN order, through memory maps.
//!
//! A reader never trusts bytes it did not verify: every frame is decoded
//! (checksum, segment identity, LSN order) again as it is read ("check after
//! read"). It reads only below each segment's published end, so it never
//! sees a record the writer has not finished writing.

use crate::wal::error::{Error, Result};
use crate::wal::frame;
use crate::wal::log::{LogState, SegmentMeta};
use crate::wal::segment;
use crate::wal::storage::ReadMap;
use crate::wal::Lsn;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its type.
    pub kind: u8,
    /// The segment number it is stored in.
    pub segment: u64,
    /// Its byte offset within that segment file.
    pub offset: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// An iterator over committed records from a starting LSN. It follows the
/// log as it grows: after it returns `None`, a later `next` may return
/// records written since.
pub struct Reader {
    log: Arc<LogState>,
    from: Lsn,
    /// The segments still to read, the current one first. Holding them
    /// keeps their files open: a segment removed from the log
    /// (`Journal::remove_segments_before`) while this reader still needs
    /// it stays readable, and removals never shift what comes next.
    segments: VecDeque<Arc<SegmentMeta>>,
    /// The segment being read, its map, and the segment's end when the
    /// map was taken (a copy, as read-only storage gives, holds no bytes
    /// written after it).
    current: Option<(Arc<SegmentMeta>, ReadMap, u64)>,
    pos: u64,
    expected: Option<Lsn>,
}

impl Reader {
    pub(crate) fn new(log: Arc<LogState>, from: Lsn) -> Result<Reader> {
        let segments = log.segments();
        let first = segments.first().map_or(from, |s| s.first_lsn);
        let end = log.written_lsn();
        if from < first || from > end {
            return Err(Error::LsnOutOfRange {
                lsn: from,
                first,
                end,
            });
        }
        let segment_index = segments
            .iter()
            .rposition(|s| s.first_lsn <= from)
            .unwrap_or(0);
        Ok(Reader {
            log,
            from,
            segments: segments[segment_index..].iter().cloned().collect(),
            current: None,
            pos: segment::HEADER_LEN as u64,
            expected: None,
        })
    }

    fn read_next(&mut self) -> Result<Option<LogRecord>> {
        loop {
            if self.current.is_none() && !self.enter_segment()? {
                return Ok(None);
            }
            // One load of the end serves the whole step: the map covers it.
            let end = self.remap_if_grown()?;
            let (meta, map, _) = self.current.as_ref().expect("entered above");
            let (meta, map) = (meta.clone(), map);
            if let Some(&(_, to)) = meta.skips.iter().find(|(from, _)| *from == self.pos) {
                self.pos = to;
                self.expected = None;
                continue;
            }
            if self.pos >= end {
                if self.next_segment(&meta) {
                    continue;
                }
                return Ok(None);
            }
            let bytes = map.get(self.pos as usize..end as usize).unwrap_or(&[]);
            let f = decode_at(&meta, bytes, self.pos, self.expected)?;
            let offset = self.pos;
            self.pos += f.total_len as u64;
            self.expected = Some(f.header.lsn + 1);
            if f.header.lsn < self.from {
                continue;
            }
            return Ok(Some(LogRecord {
                lsn: f.header.lsn,
                kind: f.header.kind,
                segment: meta.id.number,
                offset,
                payload: f.payload.to_vec(),
            }));
        }
    }

    /// Maps the first segment left to read and starts at its first record;
    /// false if no segment is left.
    fn enter_segment(&mut self) -> Result<bool> {
        let Some(meta) = self.segments.front().cloned() else {
            return Ok(false);
        };
        let mapped_end = meta.end.load(Ordering::Acquire);
        let map = meta
            .file
            .map()
            .map_err(|e| Error::io("map segment for reading", &meta.path, e))?;
        self.pos = segment::HEADER_LEN as u64;
        self.expected = Some(meta.first_lsn);
        self.current = Some((meta, map, mapped_end));
        Ok(true)
    }

    /// Records written since the map was taken: a copy does not hold them,
    /// and a file that grew is longer than its map. Maps again. Returns
    /// the segment's end as loaded for this check.
    fn remap_if_grown(&mut self) -> Result<u64> {
        let (meta, map, mapped_end) = self.current.as_mut().expect("entered");
        let end = meta.end.load(Ordering::Acquire);
        if self.pos < end && ((map.is_copy() && self.pos >= *mapped_end) || end > map.len() as u64)
        {
            *map = meta
                .file
                .map()
                .map_err(|e| Error::io("map segment for reading", &meta.path, e))?;
            *mapped_end = end;
        }
        Ok(end)
    }

    /// At the end of `meta`: moves on to the next segment if the writer
    /// has rotated past it (true), or stays to wait for more (false).
    fn next_segment(&mut self, meta: &SegmentMeta) -> bool {
        if self.segments.len() < 2 {
            take_new_segments(&self.log, &mut self.segments);
        }
        let more_segments = self.segments.len() > 1;
        // Re-check the end: the writer publishes it before rotating.
        if more_segments && self.pos >= meta.end.load(Ordering::Acquire) {
            self.segments.pop_front();
            self.current = None;
            return true;
        }
        false
    }
}

/// Decodes the record at `offset` of segment `meta` from `bytes`, which
/// must carry LSN `expected` when that is known (it is not right after a
/// skipped stretch).
fn decode_at<'a>(
    meta: &SegmentMeta,
    bytes: &'a [u8],
    offset: u64,
    expected: Option<u64>,
) -> Result<frame::Frame<'a>> {
    let f = frame::decode(bytes, meta.id).map_err(|e| Error::Corruption {
        file: meta.path.clone(),
        offset,
        reason: format!("on read: {e}"),
    })?;
    match expected {
        Some(expected) if f.header.lsn != expected => Err(Error::Corruption {
            file: meta.path.clone(),
            offset,
            reason: format!(
                "on read: LSN {} where {expected} was expected",
                f.header.lsn
            ),
        }),
        _ => Ok(f),
    }
}

/// Appends to `segments` the ones the writer added to `log` since.
fn take_new_segments(log: &LogState, segments: &mut VecDeque<Arc<SegmentMeta>>) {
    let last = segments.back().map(|s| s.id.number);
    for s in log.segments() {
        if last.is_none_or(|n| s.id.number > n) {
            segments.push_back(s);
        }
    }
}

impl Iterator for Reader {
    type Item = Result<LogRecord>;

    fn next(&mut self) -> Option<Result<LogRecord>> {
        self.read_next().transpose()
    }
}
