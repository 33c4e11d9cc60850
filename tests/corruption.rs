//! Damage that is not a torn tail, under each recovery mode
//! (src/recovery.rs, module doc).

mod common;

use common::{assert_clean, options_with, placements, read_all, Env, MemStorage, Placement};
use std::sync::Arc;
use std::time::Duration;
use tracejournal::testkit::failpoint::{names, Action};
use tracejournal::testkit::wal::frame;
use tracejournal::testkit::wal::segment;
use tracejournal::{Durability, Journal, JournalError, LogRecord, Options, Record, RecoveryMode};

const MODES: [RecoveryMode; 4] = [
    RecoveryMode::TolerateTornTail,
    RecoveryMode::AbsoluteConsistency,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipCorrupt,
];

fn seg(n: u64) -> String {
    segment::file_name(n)
}

fn record(i: u64) -> Record {
    let mut p = format!("corruption record {i} ").into_bytes();
    p.extend(std::iter::repeat_n(
        b'a' + (i % 26) as u8,
        (i * 7 % 23) as usize,
    ));
    Record::new(1 + (i % 5) as u8, p)
}

/// Every returned record must be the one written with that LSN.
fn assert_original(back: &[LogRecord], ctx: &str) {
    for r in back {
        let orig = record(r.lsn);
        assert_eq!(r.payload, orig.payload, "{ctx}: payload of LSN {}", r.lsn);
        assert_eq!(r.kind, orig.kind, "{ctx}: type of LSN {}", r.lsn);
    }
}

fn lsns(back: &[LogRecord]) -> Vec<u64> {
    back.iter().map(|r| r.lsn).collect()
}

fn expect_corruption(
    result: tracejournal::Result<(Journal, tracejournal::RecoveryReport), JournalError>,
) -> (std::path::PathBuf, u64, String) {
    match result {
        Err(JournalError::Corruption {
            file,
            offset,
            reason,
        }) => (file, offset, reason),
        Err(e) => panic!("expected corruption, got {e}"),
        Ok((_, report)) => panic!("expected corruption, opened: {report:?}"),
    }
}

/// Where a flipped byte lands.
#[derive(Clone, Copy, Debug)]
enum Hit {
    Header,
    Record(usize),
    Slack,
}

#[test]
fn every_single_byte_flip_in_each_mode() {
    // A tiny segment so that every byte of the file can be flipped.
    const SIZE: u64 = 1024;
    const N: u64 = 10;
    let storage = MemStorage::new();
    let options = |storage: &MemStorage, mode| Options {
        segment_size: SIZE,
        max_record_size: 512,
        ..options_with(Arc::new(storage.clone()), mode)
    };
    let dir = common::mem_dir();
    let (j, _) = Journal::open(&dir, options(&storage, RecoveryMode::TolerateTornTail)).unwrap();
    for i in 1..=N {
        // One record per commit group.
        assert_eq!(j.append_with(record(i), Durability::Sync).unwrap(), i);
    }
    let placed = placements(&read_all(&j));
    j.close().unwrap();
    assert!(placed.iter().all(|p| p.segment == 1), "all in segment 1");
    let path = dir.join(seg(1));
    let original = storage.read(&path);
    assert_eq!(original.len() as u64, SIZE);
    let records_end = placed.last().map(|p| p.offset + p.total).unwrap();

    for at in 0..SIZE {
        let hit = if at < segment::HEADER_LEN as u64 {
            Hit::Header
        } else if let Some(k) = placed
            .iter()
            .position(|p| (p.offset..p.offset + p.total).contains(&at))
        {
            Hit::Record(k)
        } else {
            Hit::Slack
        };
        let mut bytes = original.clone();
        bytes[at as usize] ^= 0xFF;
        for mode in MODES {
            let copy = MemStorage::new();
            copy.write(&path, &bytes);
            let ctx = format!("flip at {at} ({hit:?}) in {mode:?}");
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Journal::open(&dir, options(&copy, mode))
            }))
            .unwrap_or_else(|_| panic!("{ctx}: open panicked"));
            // What must happen: Some(kept LSNs), or None for a refusal at
            // `offset`.
            let all: Vec<u64> = (1..=N).collect();
            let (expected, refusal_offset): (Option<Vec<u64>>, u64) = match (hit, mode) {
                (Hit::Header, RecoveryMode::TolerateTornTail)
                | (Hit::Header, RecoveryMode::AbsoluteConsistency) => (None, 0),
                (Hit::Header, _) => (Some(vec![]), 0),
                (Hit::Record(k), RecoveryMode::TolerateTornTail) if k + 1 < N as usize => {
                    (None, placed[k].offset)
                }
                (Hit::Record(k), RecoveryMode::AbsoluteConsistency) => (None, placed[k].offset),
                (Hit::Record(k), RecoveryMode::SkipCorrupt) => (
                    Some(all.iter().copied().filter(|&l| l != k as u64 + 1).collect()),
                    0,
                ),
                // PointInTime, and TolerateTornTail on the last record.
                (Hit::Record(k), _) => (Some((1..=k as u64).collect()), 0),
                (Hit::Slack, RecoveryMode::AbsoluteConsistency) => (None, records_end),
                (Hit::Slack, _) => (Some(all.clone()), 0),
            };
            match (expected, result) {
                (None, result) => {
                    let (file, offset, _) = expect_corruption(result);
                    assert_eq!(file, path, "{ctx}");
                    assert_eq!(offset, refusal_offset, "{ctx}");
                }
                (Some(_), Err(e)) => panic!("{ctx}: refused to open: {e}"),
                (Some(kept), Ok((j, report))) => {
                    let back = read_all(&j);
                    assert_original(&back, &ctx);
                    assert_eq!(lsns(&back), kept, "{ctx}");
                    assert_eq!(report.records, kept.len() as u64, "{ctx}");
                    match hit {
                        Hit::Record(k) if mode == RecoveryMode::TolerateTornTail => {
                            assert_eq!(report.truncated.len(), 1, "{ctx}");
                            assert_eq!(report.truncated[0].offset, placed[k].offset, "{ctx}");
                        }
                        Hit::Slack => {
                            assert_eq!(report.truncated.len(), 1, "{ctx}");
                            assert_eq!(report.truncated[0].offset, records_end, "{ctx}");
                        }
                        Hit::Record(k) if k + 1 < N as usize => {
                            assert!(!report.damage.is_empty(), "{ctx}: damage not reported");
                        }
                        Hit::Header => {
                            assert!(!report.damage.is_empty(), "{ctx}: damage not reported");
                            // The damaged segment is not destroyed: it is kept
                            // aside, byte for byte.
                            let kept_aside = copy
                                .names(&dir)
                                .into_iter()
                                .filter(|n| n.starts_with(&seg(1)) && n.contains(".broken"))
                                .map(|n| copy.read(&dir.join(n)))
                                .any(|b| b == bytes);
                            assert!(kept_aside, "{ctx}: damaged segment not kept aside");
                        }
                        _ => {}
                    }
                    let next = j.append(record(99)).unwrap();
                    assert_eq!(next, report.next_lsn, "{ctx}");
                    assert!(
                        next > kept.last().copied().unwrap_or(0),
                        "{ctx}: LSN {next} reused"
                    );
                    j.close().unwrap();
                    // A repairing mode leaves a log the default mode opens
                    // cleanly; SkipCorrupt repairs nothing, so it must find
                    // the same again.
                    let again = if mode == RecoveryMode::SkipCorrupt {
                        mode
                    } else {
                        RecoveryMode::TolerateTornTail
                    };
                    let (j, report) = Journal::open(&dir, options(&copy, again))
                        .unwrap_or_else(|e| panic!("{ctx}: reopen in {again:?}: {e}"));
                    if mode != RecoveryMode::SkipCorrupt {
                        assert_clean(&report);
                    }
                    let back = read_all(&j);
                    assert_original(&back[..back.len() - 1], &ctx);
                    let mut with_next = kept.clone();
                    with_next.push(next);
                    assert_eq!(lsns(&back), with_next, "{ctx}: after reopen");
                    j.close().unwrap();
                }
            }
        }
    }
}

/// A journal of at least `segments` segments of records of ~1000 bytes.
fn multi_segment(env: &Env, segments: usize) -> Vec<Placement> {
    let (j, _) = env.open(RecoveryMode::TolerateTornTail).unwrap();
    let mut i = 1;
    loop {
        let mut r = record(i);
        r.payload.resize(1000, b'0' + (i % 10) as u8);
        j.append_with(r, Durability::Buffered).unwrap();
        i += 1;
        if i % 64 == 0 && env.segment_names().len() > segments {
            break;
        }
    }
    j.sync().unwrap();
    let back = read_all(&j);
    j.close().unwrap();
    placements(&back)
}

fn big_payload(lsn: u64) -> Vec<u8> {
    let mut p = record(lsn).payload;
    p.resize(1000, b'0' + (lsn % 10) as u8);
    p
}

fn assert_big_originals(back: &[LogRecord]) {
    for r in back {
        assert_eq!(r.payload, big_payload(r.lsn), "payload of LSN {}", r.lsn);
    }
}

#[test]
fn bad_record_in_an_earlier_segment_is_corruption_even_with_zeros_after_it() {
    let base = Env::mem();
    let placed = multi_segment(&base, 3);
    let n = placed.len() as u64;
    // The last record of segment 1: only zeros follow it in that file.
    let last1 = *placed.iter().rfind(|p| p.segment == 1).unwrap();
    let first2 = placed.iter().find(|p| p.segment == 2).unwrap().lsn;
    assert_eq!(first2, last1.lsn + 1);

    // Flip one byte of its payload.
    let flipped = base.copy();
    let mut bytes = flipped.read(&seg(1));
    bytes[(last1.offset + 40) as usize] ^= 0x01;
    flipped.write(&seg(1), &bytes);
    // Zero it entirely: segment 1 then simply ends early.
    let zeroed = base.copy();
    let mut bytes = zeroed.read(&seg(1));
    bytes[last1.offset as usize..(last1.offset + last1.total) as usize].fill(0);
    zeroed.write(&seg(1), &bytes);

    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        let (file, offset, reason) = expect_corruption(flipped.copy().open(mode));
        assert_eq!(file, base.path(&seg(1)), "{mode:?}");
        assert_eq!(offset, last1.offset, "{mode:?}: {reason}");
        let (file, _, reason) = expect_corruption(zeroed.copy().open(mode));
        assert!(
            file == base.path(&seg(1)) || file == base.path(&seg(2)),
            "{mode:?}: {file:?}: {reason}"
        );
    }

    for env in [flipped, zeroed] {
        // PointInTime keeps everything before the bad record.
        let e = env.copy();
        let (j, report) = e.open(RecoveryMode::PointInTime).unwrap();
        let back = read_all(&j);
        assert_eq!(lsns(&back), (1..last1.lsn).collect::<Vec<_>>());
        assert_big_originals(&back);
        assert!(!report.damage.is_empty());
        assert!(!report.set_aside.is_empty(), "later segments set aside");
        assert_eq!(j.append(record(1)).unwrap(), last1.lsn);
        j.close().unwrap();
        // What PointInTime left opens cleanly in the default mode, and
        // rotation works past the segments it set aside.
        let (j, report) = e.open(RecoveryMode::TolerateTornTail).unwrap();
        assert_clean(&report);
        assert_eq!(report.records, last1.lsn);
        for i in 0..100 {
            let mut r = record(i);
            r.payload.resize(1000, b'x');
            assert_eq!(
                j.append_with(r, Durability::Buffered).unwrap(),
                last1.lsn + 1 + i
            );
        }
        j.close().unwrap();
        let (j, report) = e.open(RecoveryMode::TolerateTornTail).unwrap();
        assert_clean(&report);
        assert_eq!(report.records, last1.lsn + 100);
        assert!(report.segments >= 2);
        j.close().unwrap();
        // SkipCorrupt keeps everything but it.
        let e = env.copy();
        let (j, report) = e.open(RecoveryMode::SkipCorrupt).unwrap();
        let back = read_all(&j);
        assert_eq!(
            lsns(&back),
            (1..=n).filter(|&l| l != last1.lsn).collect::<Vec<_>>()
        );
        assert_big_originals(&back);
        assert!(!report.damage.is_empty());
        assert_eq!(j.append(record(1)).unwrap(), n + 1);
        j.close().unwrap();
    }
}

#[test]
fn missing_middle_segment_is_refused_and_named() {
    let base = Env::mem();
    let placed = multi_segment(&base, 3);
    let n = placed.len() as u64;
    let env = base.copy();
    env.remove(&seg(2));
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        let err = match env.copy().open(mode) {
            Err(e) => e,
            Ok(_) => panic!("{mode:?}: opened without segment 2"),
        };
        assert!(matches!(err, JournalError::Corruption { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("segment 2 "), "{mode:?}: {msg}");
    }
    // Nothing was changed by the refusals.
    assert_eq!(env.segment_names(), vec![seg(1), seg(3), seg(4)]);

    let in1: Vec<u64> = placed
        .iter()
        .filter(|p| p.segment == 1)
        .map(|p| p.lsn)
        .collect();
    let e = env.copy();
    let (j, report) = e.open(RecoveryMode::PointInTime).unwrap();
    assert_eq!(lsns(&read_all(&j)), in1);
    assert!(!report.set_aside.is_empty());
    j.close().unwrap();

    let e = env.copy();
    let (j, _) = e.open(RecoveryMode::SkipCorrupt).unwrap();
    let back = read_all(&j);
    let expected: Vec<u64> = placed
        .iter()
        .filter(|p| p.segment != 2)
        .map(|p| p.lsn)
        .collect();
    assert_eq!(lsns(&back), expected);
    assert_big_originals(&back);
    assert_eq!(j.append(record(1)).unwrap(), n + 1);
    j.close().unwrap();
}

#[test]
fn preallocated_space_is_never_read_as_records() {
    for env in [Env::fs(), Env::mem()] {
        let placed = multi_segment(&env, 5);
        let n = placed.len() as u64;
        assert!(env.segment_names().len() >= 6);
        let (j, report) = env.open(RecoveryMode::AbsoluteConsistency).unwrap();
        assert_clean(&report);
        assert_eq!(report.records, n);
        assert_eq!(report.next_lsn, n + 1);
        assert_eq!(
            report.bytes,
            placed.iter().map(|p| p.total).sum::<u64>(),
            "bytes of valid records"
        );
        let back = read_all(&j);
        assert_eq!(lsns(&back), (1..=n).collect::<Vec<_>>());
        assert_big_originals(&back);
        assert_eq!(placements(&back), placed);
        // The files really are preallocated: full size, zero past the end.
        for name in env.segment_names() {
            let bytes = env.read(&name);
            assert_eq!(bytes.len(), 64 * 1024, "{name}");
            let number = segment::parse_file_name(&name).unwrap();
            let end = placed
                .iter()
                .filter(|p| p.segment == number)
                .map(|p| p.offset + p.total)
                .max()
                .unwrap_or(segment::HEADER_LEN as u64);
            assert!(bytes[end as usize..].iter().all(|&b| b == 0), "{name}");
        }
        assert_eq!(j.append(record(1)).unwrap(), n + 1);
        j.close().unwrap();
    }
}

/// Builds: records 1..=3 (one group each), then 4..=8 as one commit group
/// (an atomic batch if `batch`, else five appends queued behind a paused
/// writer), then record 9 in a later group.
fn group_then_later(batch: bool) -> (Env, Vec<Placement>) {
    let env = Env::mem();
    let options = env.options(RecoveryMode::TolerateTornTail);
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(env.dir(), options).unwrap();
    for i in 1..=3 {
        j.append_with(record(i), Durability::Sync).unwrap();
    }
    if batch {
        assert_eq!(j.append_batch((4..=8).map(record).collect()).unwrap(), 4..9);
    } else {
        fp.arm(names::WRITER_BEFORE_WRITE, Action::Pause);
        let first = j.submit_with(record(4), Durability::Sync).unwrap();
        assert!(fp.wait_paused(names::WRITER_BEFORE_WRITE, Duration::from_secs(30)));
        let rest: Vec<_> = (5..=9)
            .map(|i| {
                let d = if i == 9 {
                    Durability::Sync
                } else {
                    Durability::Buffered
                };
                j.submit_with(record(i), d).unwrap()
            })
            .collect();
        // 4 is alone in its group; hold 5..=8(+9) back the same way.
        fp.release(names::WRITER_BEFORE_WRITE);
        assert_eq!(first.wait().unwrap(), 4);
        for t in rest {
            t.wait().unwrap();
        }
    }
    j.append_with(record(if batch { 9 } else { 10 }), Durability::Sync)
        .unwrap();
    let placed = placements(&read_all(&j));
    j.close().unwrap();
    (env, placed)
}

fn group_deltas(env: &Env) -> Vec<u16> {
    let bytes = env.read(&seg(1));
    let id = segment::SegmentHeader::decode(&bytes).unwrap().id;
    let mut at = segment::HEADER_LEN;
    let mut out = Vec::new();
    while let Ok(f) = frame::decode(&bytes[at..], id) {
        out.push(f.header.group_delta);
        at += f.total_len;
    }
    out
}

#[test]
fn hole_in_a_group_followed_by_a_later_group_is_corruption() {
    // Atomic batch 4..=8 is one group; 9 is a later group.
    let (base, placed) = group_then_later(true);
    assert_eq!(group_deltas(&base), vec![0, 0, 0, 0, 1, 2, 3, 4, 0]);
    let hole = placed[4]; // LSN 5, the batch's second record
    let damaged = base.copy();
    let mut bytes = damaged.read(&seg(1));
    bytes[hole.offset as usize..(hole.offset + hole.total) as usize].fill(0);
    damaged.write(&seg(1), &bytes);

    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        let (file, offset, reason) = expect_corruption(damaged.copy().open(mode));
        assert_eq!(file, base.path(&seg(1)));
        assert!(
            (placed[3].offset..=hole.offset).contains(&offset),
            "{mode:?}: offset {offset}: {reason}"
        );
    }
    let e = damaged.copy();
    let (j, report) = e.open(RecoveryMode::PointInTime).unwrap();
    assert_eq!(lsns(&read_all(&j)), vec![1, 2, 3]);
    assert!(!report.damage.is_empty());
    j.close().unwrap();
    let e = damaged.copy();
    let (j, report) = e.open(RecoveryMode::SkipCorrupt).unwrap();
    let back = read_all(&j);
    assert_original(&back, "skip");
    // The batch is all or nothing; record 9 (a later, synced group) stays.
    assert_eq!(lsns(&back), vec![1, 2, 3, 9]);
    assert!(!report.damage.is_empty());
    assert_eq!(j.append(record(10)).unwrap(), 10);
    j.close().unwrap();

    // The same with a group of single records: 5..=9 are one group, 10 a
    // later one.
    let (base, placed) = group_then_later(false);
    assert_eq!(
        group_deltas(&base),
        vec![0, 0, 0, 0, 0, 1, 2, 3, 4, 0],
        "premise: 5..=9 form one group"
    );
    let hole = placed[5]; // LSN 6, the group's second record
    let damaged = base.copy();
    let mut bytes = damaged.read(&seg(1));
    bytes[hole.offset as usize + 8] ^= 0x10;
    damaged.write(&seg(1), &bytes);
    let (file, offset, _) = expect_corruption(damaged.copy().open(RecoveryMode::TolerateTornTail));
    assert_eq!(file, base.path(&seg(1)));
    assert_eq!(offset, hole.offset);
    let e = damaged.copy();
    let (j, _) = e.open(RecoveryMode::PointInTime).unwrap();
    assert_eq!(lsns(&read_all(&j)), vec![1, 2, 3, 4, 5]);
    j.close().unwrap();
    let e = damaged.copy();
    let (j, _) = e.open(RecoveryMode::SkipCorrupt).unwrap();
    let back = read_all(&j);
    assert_original(&back, "skip");
    let kept = lsns(&back);
    assert!(!kept.contains(&6));
    for l in [1, 2, 3, 4, 5, 10] {
        assert!(kept.contains(&l), "LSN {l} lost: {kept:?}");
    }
    j.close().unwrap();
}
