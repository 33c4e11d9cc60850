//! Entry points shared by the cargo-fuzz targets in `fuzz/` and by the
//! ordinary tests that replay the committed corpus (`tests/fuzz_corpus.rs`),
//! so CI exercises them on stable without a fuzzing engine.
//!
//! Each function takes arbitrary bytes and panics only if an invariant of
//! the engine is broken; bad input itself must never panic.

use crate::frame::{self, SegmentId};
use crate::segment;
use crate::{Error, Journal, Options, RecoveryMode};

/// The segment identity the decoder target checks records against.
pub const FUZZ_SEGMENT: SegmentId = SegmentId {
    number: 1,
    salt: 0x5EED_5EED,
};

/// Decodes arbitrary bytes as a record frame. A frame that decodes must
/// re-encode to exactly the bytes it was read from.
pub fn decode_record(data: &[u8]) {
    for id in [FUZZ_SEGMENT, id_from(data)] {
        if let Ok(f) = frame::decode(data, id) {
            let mut again = Vec::new();
            frame::encode(&mut again, &f.header, f.payload);
            assert_eq!(f.total_len, again.len());
            assert_eq!(
                &again[..],
                &data[..again.len()],
                "decode/encode round trip differs"
            );
            assert_eq!(f.header.segment, id);
            assert!(f.header.kind != 0);
        }
    }
    let _ = segment::SegmentHeader::decode(data);
}

fn id_from(data: &[u8]) -> SegmentId {
    let mut number = [0u8; 8];
    let mut salt = [0u8; 4];
    if data.len() >= 28 {
        number.copy_from_slice(&data[16..24]);
        salt.copy_from_slice(&data[24..28]);
    }
    SegmentId {
        number: u64::from_le_bytes(number),
        salt: u32::from_le_bytes(salt),
    }
}

/// Splits `data` into segment files (separated by the marker
/// `b"--SEG--"`), writes them into a fresh directory as segments 1, 2, ...,
/// and opens the journal in every recovery mode. Opening may fail with an
/// error, never a panic; when it opens, every record read back must verify
/// (the reader re-checks each checksum), and the journal must accept an
/// append at the LSN it reported.
pub fn open_segments(data: &[u8]) {
    let dir = match tempfile_dir() {
        Some(d) => d,
        None => return,
    };
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
        RecoveryMode::PointInTime,
        RecoveryMode::SkipCorrupt,
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create fuzz dir");
        for (i, part) in split(data, b"--SEG--").into_iter().take(4).enumerate() {
            let path = dir.join(segment::file_name(i as u64 + 1));
            std::fs::write(path, part).expect("write fuzz segment");
        }
        let options = Options {
            segment_size: 4096,
            max_record_size: 1024,
            recovery_mode: mode,
            ..Options::default()
        };
        let inspected = Journal::inspect(&dir, &options);
        match Journal::open(&dir, options) {
            Ok((journal, report)) => {
                if let Ok(dry) = inspected {
                    assert_eq!(
                        dry.next_lsn, report.next_lsn,
                        "dry run disagrees with recovery"
                    );
                }
                let mut count = 0u64;
                for record in journal
                    .read_from(journal.first_lsn())
                    .expect("first LSN readable")
                {
                    match record {
                        Ok(_) => count += 1,
                        Err(e) => panic!("recovered log fails on read: {e}"),
                    }
                }
                assert_eq!(
                    count, report.records,
                    "reader and recovery disagree on the record count"
                );
                let lsn = journal
                    .append(crate::Record::new(1, b"after".to_vec()))
                    .expect("append after recovery");
                assert_eq!(lsn, report.next_lsn);
                journal.close().expect("close");
            }
            Err(Error::Corruption { .. }) | Err(Error::Io { .. }) => {}
            Err(e) => panic!("unexpected error kind opening fuzzed segments: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(sep.len()).position(|w| w == sep) {
        parts.push(&rest[..at]);
        rest = &rest[at + sep.len()..];
    }
    parts.push(rest);
    parts
}

fn tempfile_dir() -> Option<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var_os("TRACEJOURNAL_FUZZ_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    Some(base.join(format!(
        "tracejournal-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )))
}
