//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same functions the cargo-fuzz targets call, so CI exercises them on
//! stable without a fuzzing engine. Also runs mutations of each seed.

use std::path::{Path, PathBuf};
use tracejournal::{fuzzing, Durability, Journal, Options, Record};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// Deterministic mutations: bit flips, truncations and splices.
fn mutations(seed: &[u8], count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed.len() as u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..count {
        let mut m = seed.to_vec();
        if m.is_empty() {
            out.push(vec![next() as u8]);
            continue;
        }
        match next() % 3 {
            0 => {
                let i = next() as usize % m.len();
                m[i] ^= 1 << (next() % 8);
            }
            1 => {
                let n = next() as usize % m.len();
                m.truncate(n);
            }
            _ => {
                let i = next() as usize % m.len();
                let v = next().to_le_bytes();
                for (k, b) in v.iter().enumerate() {
                    if i + k < m.len() {
                        m[i + k] = *b;
                    }
                }
            }
        }
        out.push(m);
    }
    out
}

#[test]
fn decode_record_corpus() {
    let seeds = corpus("decode_record");
    assert!(!seeds.is_empty());
    for (_, bytes) in &seeds {
        fuzzing::decode_record(bytes);
        for m in mutations(bytes, 2000) {
            fuzzing::decode_record(&m);
        }
    }
}

#[test]
fn open_segments_corpus() {
    let seeds = corpus("open_segments");
    assert!(!seeds.is_empty());
    for (_, bytes) in &seeds {
        fuzzing::open_segments(bytes);
        for m in mutations(bytes, 25) {
            fuzzing::open_segments(&m);
        }
    }
}

/// Writes the seed corpora. Run once by hand:
/// `cargo test --test fuzz_corpus -- --ignored generate_seeds`
#[test]
#[ignore]
fn generate_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let tmp = tempfile::tempdir().unwrap();
    let options = || Options {
        segment_size: 4096,
        max_record_size: 1024,
        ..Options::default()
    };
    let (j, _) = Journal::open(tmp.path(), options()).unwrap();
    j.append(Record::new(
        1,
        br#"{"hook_event_name":"SessionStart","session_id":"s1"}"#.to_vec(),
    ))
    .unwrap();
    j.append_batch(vec![
        Record::new(2, b"batch-a".to_vec()),
        Record::new(2, b"batch-b".to_vec()),
    ])
    .unwrap();
    j.append_with(Record::new(3, vec![7u8; 100]), Durability::Buffered)
        .unwrap();
    j.close().unwrap();
    let seg1 = std::fs::read(tmp.path().join("00000000000000000001.seg")).unwrap();
    // The first record's frame alone, for the decoder.
    let len = u32::from_le_bytes(seg1[68..72].try_into().unwrap()) as usize;
    let frame = &seg1[64..64 + ((32 + len + 7) & !7)];
    std::fs::write(root.join("decode_record/seed-frame"), frame).unwrap();
    std::fs::write(root.join("decode_record/seed-header"), &seg1[..64]).unwrap();
    // Only the written prefix of the segment (the rest is zeros).
    let end = seg1.iter().rposition(|&b| b != 0).unwrap() + 1;
    std::fs::write(root.join("open_segments/seed-one-segment"), &seg1[..end]).unwrap();
    // Two segments: force a rotation.
    let tmp2 = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(tmp2.path(), options()).unwrap();
    for i in 0..40u32 {
        j.append(Record::new(1, vec![i as u8; 150])).unwrap();
    }
    j.close().unwrap();
    let a = std::fs::read(tmp2.path().join("00000000000000000001.seg")).unwrap();
    let b = std::fs::read(tmp2.path().join("00000000000000000002.seg")).unwrap();
    let b_end = b.iter().rposition(|&x| x != 0).map_or(64, |p| p + 1);
    let mut two = a.clone();
    two.extend_from_slice(b"--SEG--");
    two.extend_from_slice(&b[..b_end]);
    std::fs::write(root.join("open_segments/seed-two-segments"), two).unwrap();
}
