//! End-to-end smoke: append, reopen, read back, rotate.
use tracejournal::{Durability, Journal, Options, Record};

fn small() -> Options {
    Options {
        segment_size: 64 * 1024,
        max_record_size: 8 * 1024,
        ..Options::default()
    }
}

#[test]
fn append_reopen_read_back_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let (j, report) = Journal::open(dir.path(), small()).unwrap();
    assert!(report.created);
    let mut lsns = Vec::new();
    for i in 0..2000u32 {
        let d = if i % 2 == 0 {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        lsns.push(
            j.append_with(Record::new(1, format!("record {i}").into_bytes()), d)
                .unwrap(),
        );
    }
    assert_eq!(lsns, (1..=2000).collect::<Vec<_>>());
    j.close().unwrap();
    let (j, report) = Journal::open(dir.path(), small()).unwrap();
    assert_eq!(report.records, 2000);
    assert!(
        report.segments > 1,
        "expected rotation, got {} segments",
        report.segments
    );
    assert!(report.truncated.is_empty());
    let back: Vec<_> = j.read_from(1).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(back.len(), 2000);
    for (i, r) in back.iter().enumerate() {
        assert_eq!(r.lsn, i as u64 + 1);
        assert_eq!(r.payload, format!("record {i}").into_bytes());
    }
    assert_eq!(j.append(Record::new(1, b"after".to_vec())).unwrap(), 2001);
}
