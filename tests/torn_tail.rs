//! Torn tails: what a crash leaves at the end of the last segment, and how
//! recovery cuts it (src/recovery.rs, module doc).

mod common;

use common::{assert_clean, last_nonzero, placements, read_all, Env, Placement, Rng};
use std::time::Duration;
use tracejournal::testkit::failpoint::{names, Action};
use tracejournal::testkit::wal::frame::{self, SegmentId};
use tracejournal::testkit::wal::segment::{self, SegmentHeader};
use tracejournal::{Durability, Journal, JournalError, Record, RecoveryMode};

const SEG1: &str = "00000000000000000001.seg";

/// Distinct payloads of varied lengths, every one ending in a non-zero byte.
fn record(i: u64) -> Record {
    Record::new(1 + (i % 3) as u8, payload(i))
}

fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("torn-tail record {i}:").into_bytes();
    let fill = b'a' + (i % 26) as u8;
    p.extend(std::iter::repeat_n(fill, (i * 13 % 61) as usize));
    p.push(b'!');
    p
}

/// Appends records `first..first + n` one at a time with `Sync`, so each
/// is its own commit group.
fn append_each(j: &Journal, first: u64, n: u64) {
    for i in first..first + n {
        let lsn = j.append_with(record(i), Durability::Sync).unwrap();
        assert_eq!(lsn, i);
    }
}

/// A journal of `n` records, each its own commit group, all in segment 1.
fn journal_of(env: &Env, n: u64) -> Vec<Placement> {
    let (j, _) = env.open(RecoveryMode::TolerateTornTail).unwrap();
    append_each(&j, 1, n);
    let recs = read_all(&j);
    j.close().unwrap();
    let p = placements(&recs);
    assert!(p.iter().all(|p| p.segment == 1), "all in one segment");
    p
}

/// Checks that the journal holds exactly records `1..=n` as written.
fn assert_holds(j: &Journal, n: u64) {
    let back = read_all(j);
    let lsns: Vec<u64> = back.iter().map(|r| r.lsn).collect();
    assert_eq!(lsns, (1..=n).collect::<Vec<_>>());
    for r in &back {
        assert_eq!(r.payload, payload(r.lsn), "payload of LSN {}", r.lsn);
        assert_eq!(r.kind, 1 + (r.lsn % 3) as u8);
    }
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Zero every byte from the cut to the end of the file: a lost
    /// unsynced write in a preallocated, zero-filled segment.
    Zero,
    /// Truncate the file at the cut.
    SetLen,
}

/// Damages a copy of `base` at `cut`, reopens it and checks everything the
/// torn-tail rule promises.
fn check_cut(base: &Env, placed: &[Placement], cut: u64, how: Cut) {
    let env = base.copy();
    let mut bytes = env.read(SEG1);
    let size = bytes.len() as u64;
    match how {
        Cut::Zero => {
            bytes[cut as usize..].fill(0);
            env.write(SEG1, &bytes);
        }
        Cut::SetLen => {
            bytes.truncate(cut as usize);
            env.set_len(SEG1, cut);
        }
    }
    // A record is whole if every byte it occupies is still there: zeroing
    // its (zero) padding changes nothing, truncating it away does.
    let whole = placed
        .iter()
        .take_while(|p| match how {
            Cut::Zero => p.offset + p.unpadded <= cut,
            Cut::SetLen => p.offset + p.total <= cut,
        })
        .count() as u64;
    let records_end = if whole == 0 {
        segment::HEADER_LEN as u64
    } else {
        let p = placed[whole as usize - 1];
        p.offset + p.total
    };
    let garbage_end = (last_nonzero(&bytes) as u64).max(records_end);
    let ctx = format!("cut at {cut} ({how:?}), {whole} whole records");

    let (j, report) = env
        .open(RecoveryMode::TolerateTornTail)
        .unwrap_or_else(|e| panic!("{ctx}: refused: {e}"));
    assert_eq!(report.records, whole, "{ctx}");
    assert_eq!(report.next_lsn, whole + 1, "{ctx}");
    assert!(report.damage.is_empty(), "{ctx}: {:?}", report.damage);
    if garbage_end > records_end {
        assert_eq!(report.truncated.len(), 1, "{ctx}: {:?}", report.truncated);
        let t = &report.truncated[0];
        assert_eq!(t.file, env.path(SEG1), "{ctx}");
        assert_eq!(t.offset, records_end, "{ctx}");
        assert_eq!(t.offset + t.bytes, garbage_end, "{ctx}: {t:?}");
        assert_eq!(report.bytes_truncated(), garbage_end - records_end);
        let copy = t.copy.as_ref().expect("cut bytes are kept");
        let kept = env.read(copy.file_name().unwrap().to_str().unwrap());
        assert_eq!(
            kept,
            &bytes[records_end as usize..garbage_end as usize],
            "{ctx}"
        );
    } else {
        assert!(report.truncated.is_empty(), "{ctx}: {:?}", report.truncated);
    }
    assert_holds(&j, whole);
    // The cut bytes are zeroed in place; the file keeps its size.
    let after = env.read(SEG1);
    let expected_len = match how {
        Cut::Zero => size,
        Cut::SetLen => cut,
    };
    assert_eq!(after.len() as u64, expected_len, "{ctx}");
    assert!(
        after[records_end as usize..].iter().all(|&b| b == 0),
        "{ctx}: bytes after the last whole record are not zero"
    );

    append_each(&j, whole + 1, 2);
    j.close().unwrap();

    let (j, report) = env.open(RecoveryMode::TolerateTornTail).unwrap();
    assert_clean(&report);
    assert_eq!(report.records, whole + 2, "{ctx}");
    assert_holds(&j, whole + 2);
    j.close().unwrap();
}

fn cut_range(placed: &[Placement]) -> std::ops::RangeInclusive<u64> {
    let first = placed[14].offset;
    let last = placed[19].offset + placed[19].total;
    first..=last
}

#[test]
fn every_cut_in_the_last_records_keeps_exactly_the_whole_ones() {
    let base = Env::mem();
    let placed = journal_of(&base, 20);
    for cut in cut_range(&placed) {
        check_cut(&base, &placed, cut, Cut::Zero);
        check_cut(&base, &placed, cut, Cut::SetLen);
    }
}

#[test]
fn cuts_on_the_real_file_system() {
    let base = Env::fs();
    let placed = journal_of(&base, 20);
    let p = |i: usize| placed[i];
    let cuts = [
        p(14).offset,                      // exactly at a record boundary
        p(15).offset + 3,                  // inside a crc
        p(16).offset + 20,                 // inside the header
        p(17).offset + p(17).unpadded - 1, // last payload byte
        p(18).offset + p(18).unpadded,     // start of the padding
        p(19).offset + p(19).total - 1,    // inside the last padding
        p(19).offset + p(19).total,        // after the last record
    ];
    for cut in cuts {
        check_cut(&base, &placed, cut, Cut::Zero);
        check_cut(&base, &placed, cut, Cut::SetLen);
    }
}

/// Random non-zero bytes.
fn garbage(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| 1 + rng.below(255) as u8).collect()
}

fn check_garbage(base: &Env, placed: &[Placement], gap: u64, len: usize, seed: u64) {
    let env = base.copy();
    let last = placed.last().unwrap();
    let records_end = last.offset + last.total;
    let mut bytes = env.read(SEG1);
    let junk = garbage(&mut Rng::new(seed), len);
    let at = (records_end + gap) as usize;
    bytes[at..at + len].copy_from_slice(&junk);
    env.write(SEG1, &bytes);
    let ctx = format!("{len} bytes of garbage {gap} bytes after the records");

    let before: Vec<String> = env.names();
    let (j, report) = env.open(RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(report.records, placed.len() as u64, "{ctx}");
    assert_eq!(report.truncated.len(), 1, "{ctx}");
    let t = &report.truncated[0];
    assert_eq!(t.offset, records_end, "{ctx}");
    assert_eq!(t.bytes, gap + len as u64, "{ctx}");
    let broken = format!("{SEG1}.broken");
    assert_eq!(t.copy.as_deref(), Some(env.path(&broken).as_path()));
    let mut after_names = env.names();
    after_names.retain(|n| !before.contains(n));
    assert_eq!(after_names, vec![broken.clone()], "{ctx}");
    let kept = env.read(&broken);
    assert_eq!(kept.len(), gap as usize + len, "{ctx}");
    assert!(kept[..gap as usize].iter().all(|&b| b == 0));
    assert_eq!(&kept[gap as usize..], &junk[..], "{ctx}");
    assert!(env.read(SEG1)[records_end as usize..]
        .iter()
        .all(|&b| b == 0));
    assert_holds(&j, placed.len() as u64);
    append_each(&j, placed.len() as u64 + 1, 1);
    j.close().unwrap();
    let (j, report) = env.open(RecoveryMode::TolerateTornTail).unwrap();
    assert_clean(&report);
    assert_holds(&j, placed.len() as u64 + 1);
    j.close().unwrap();

    // Absolute consistency refuses the same damage.
    let env = base.copy();
    env.write(SEG1, &bytes);
    match env.open(RecoveryMode::AbsoluteConsistency) {
        Err(JournalError::Corruption { file, offset, .. }) => {
            assert_eq!(file, env.path(SEG1));
            assert_eq!(offset, records_end);
        }
        other => panic!("{ctx}: absolute consistency: {:?}", other.map(|r| r.1)),
    }
}

#[test]
fn garbage_tail_is_cut_and_kept_in_a_broken_file() {
    let base = Env::fs();
    let placed = journal_of(&base, 10);
    check_garbage(&base, &placed, 0, 100, 1);

    let base = Env::mem();
    let placed = journal_of(&base, 10);
    for (i, (gap, len)) in [
        (0, 1),
        (0, 7),
        (0, 31),
        (0, 33),
        (0, 3000),
        (8, 5),
        (400, 64),
    ]
    .into_iter()
    .enumerate()
    {
        check_garbage(&base, &placed, gap, len, 7 + i as u64);
    }
}

/// Decodes the frames of segment 1 of `env` directly from its bytes.
fn frames(env: &Env) -> Vec<(u64, frame::FrameHeader)> {
    let bytes = env.read(SEG1);
    let header = SegmentHeader::decode(&bytes).unwrap();
    let id: SegmentId = header.id;
    let mut at = segment::HEADER_LEN;
    let mut out = Vec::new();
    while let Ok(f) = frame::decode(&bytes[at..], id) {
        out.push((at as u64, f.header));
        at += f.total_len;
    }
    out
}

fn zero_range(env: &Env, from: u64, to: u64) {
    let mut bytes = env.read(SEG1);
    bytes[from as usize..to as usize].fill(0);
    env.write(SEG1, &bytes);
}

#[test]
fn torn_atomic_batch_with_a_later_sector_surviving_is_a_torn_tail() {
    for base in [Env::mem(), Env::fs()] {
        let (j, _) = base.open(RecoveryMode::TolerateTornTail).unwrap();
        append_each(&j, 1, 5);
        let batch: Vec<Record> = (6..=10).map(record).collect();
        assert_eq!(j.append_batch(batch).unwrap(), 6..11);
        j.close().unwrap();
        // The premise: the batch is one commit group.
        let f = frames(&base);
        assert_eq!(f.len(), 10);
        for (k, (_, h)) in f[5..].iter().enumerate() {
            assert_eq!(h.group_delta as usize, k, "batch record {k}");
            assert_eq!(h.batch_continues(), k < 4);
        }
        let (second_at, second) = f[6];
        let batch_at = f[5].0;
        // The last batch record ends in a non-zero payload byte: the cut
        // runs from the batch start to there.
        let last_end = f[9].0 + frame::HEADER_LEN as u64 + u64::from(f[9].1.len);

        let env = base.copy();
        zero_range(
            &env,
            second_at,
            second_at + frame::encoded_len(second.len as usize) as u64,
        );
        let (j, report) = env.open(RecoveryMode::TolerateTornTail).unwrap();
        assert_eq!(report.records, 5);
        assert_eq!(report.next_lsn, 6);
        assert_eq!(report.truncated.len(), 1, "{:?}", report.truncated);
        assert_eq!(report.truncated[0].offset, batch_at);
        assert_eq!(
            report.truncated[0].offset + report.truncated[0].bytes,
            last_end
        );
        assert_holds(&j, 5);
        append_each(&j, 6, 1);
        j.close().unwrap();
        let (j, report) = env.open(RecoveryMode::TolerateTornTail).unwrap();
        assert_clean(&report);
        assert_holds(&j, 6);
        j.close().unwrap();

        let env = base.copy();
        zero_range(
            &env,
            second_at,
            second_at + frame::encoded_len(second.len as usize) as u64,
        );
        assert!(matches!(
            env.open(RecoveryMode::AbsoluteConsistency),
            Err(JournalError::Corruption { .. })
        ));
    }
}

#[test]
fn torn_group_of_single_records_keeps_the_records_before_the_hole() {
    let base = Env::mem();
    let mut options = base.options(RecoveryMode::TolerateTornTail);
    let fp = options.failpoints.clone();
    options.durability = Durability::Buffered;
    let (j, _) = Journal::open(base.dir(), options).unwrap();
    append_each(&j, 1, 3);
    // Hold the writer inside the synced group {4} while 5..=9 queue up
    // behind it, so they become one group.
    fp.arm(names::WRITER_BEFORE_WRITE, Action::Pause);
    let first = j.submit_with(record(4), Durability::Sync).unwrap();
    assert!(fp.wait_paused(names::WRITER_BEFORE_WRITE, Duration::from_secs(30)));
    let tickets: Vec<_> = (5..=9).map(|i| j.submit(record(i)).unwrap()).collect();
    fp.release(names::WRITER_BEFORE_WRITE);
    assert_eq!(first.wait().unwrap(), 4);
    for (t, i) in tickets.into_iter().zip(5..) {
        assert_eq!(t.wait().unwrap(), i);
    }
    j.close().unwrap();
    let f = frames(&base);
    assert_eq!(f.len(), 9);
    for (k, (_, h)) in f[4..].iter().enumerate() {
        assert_eq!(h.group_delta as usize, k, "premise: 5..=9 are one group");
    }

    // Lose record 6 (the second of the group) but keep 7..=9.
    let env = base.copy();
    let (at, h) = f[5];
    zero_range(&env, at, at + frame::encoded_len(h.len as usize) as u64);
    let (j, report) = env.open(RecoveryMode::TolerateTornTail).unwrap();
    assert_eq!(report.records, 5);
    assert_eq!(report.truncated.len(), 1);
    assert_eq!(report.truncated[0].offset, at);
    let back = read_all(&j);
    assert_eq!(back.len(), 5);
    for r in &back {
        assert_eq!(r.payload, payload(r.lsn));
    }
    assert_eq!(j.append(record(6)).unwrap(), 6);
    j.close().unwrap();
}

#[test]
fn atomic_batch_cut_in_the_middle_is_wholly_absent() {
    let base = Env::mem();
    let (j, _) = base.open(RecoveryMode::TolerateTornTail).unwrap();
    append_each(&j, 1, 3);
    let batch: Vec<Record> = (4..=8).map(record).collect();
    assert_eq!(j.append_batch(batch).unwrap(), 4..9);
    j.close().unwrap();
    let f = frames(&base);
    assert_eq!(f.len(), 8);
    let batch_at = f[3].0;
    let payload_end = f[7].0 + frame::HEADER_LEN as u64 + u64::from(f[7].1.len);
    let padded_end = f[7].0 + frame::encoded_len(f[7].1.len as usize) as u64;
    // Every cut from inside the batch's first record to inside its last
    // (zeroing the last record's padding changes nothing, so a zeroing cut
    // must hit its payload at least).
    for cut in (batch_at + 1)..padded_end {
        for how in [Cut::Zero, Cut::SetLen] {
            if matches!(how, Cut::Zero) && cut >= payload_end {
                continue;
            }
            let env = base.copy();
            match how {
                Cut::Zero => {
                    let len = env.read(SEG1).len() as u64;
                    zero_range(&env, cut, len);
                }
                Cut::SetLen => env.set_len(SEG1, cut),
            }
            let ctx = format!("cut at {cut} ({how:?})");
            let (j, report) = env
                .open(RecoveryMode::TolerateTornTail)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(report.records, 3, "{ctx}");
            assert_eq!(report.next_lsn, 4, "{ctx}");
            assert_holds(&j, 3);
            if report.truncated.is_empty() {
                // Only possible if nothing of the batch is left.
                assert!(env.read(SEG1)[batch_at as usize..].iter().all(|&b| b == 0));
            } else {
                assert_eq!(report.truncated[0].offset, batch_at, "{ctx}");
            }
            assert_eq!(j.append(record(4)).unwrap(), 4, "{ctx}");
            j.close().unwrap();
            let (j, report) = env.open(RecoveryMode::TolerateTornTail).unwrap();
            assert_clean(&report);
            assert_holds(&j, 4);
            j.close().unwrap();
        }
    }
}

#[test]
fn lost_unsynced_buffered_write_before_a_surviving_one_is_a_torn_tail() {
    // Buffered appends are written without an fdatasync. Two of them in a
    // row are two writes with no sync between: a power cut may persist the
    // second and lose the first (the OS writes pages back in any order).
    // That is an ordinary crash, so the default mode must open, cutting both
    // (they were never promised to survive a power cut); every Sync record
    // before them stays.
    let base = Env::mem();
    let (j, _) = base.open(RecoveryMode::TolerateTornTail).unwrap();
    append_each(&j, 1, 3);
    for i in 4..=6 {
        assert_eq!(j.append_with(record(i), Durability::Buffered).unwrap(), i);
    }
    j.close().unwrap();
    let f = frames(&base);
    assert_eq!(f.len(), 6);
    for lost in [3usize, 4] {
        let env = base.copy();
        let (at, h) = f[lost];
        zero_range(&env, at, at + frame::encoded_len(h.len as usize) as u64);
        let ctx = format!("write of LSN {} lost", lost + 1);
        let (j, report) = env
            .open(RecoveryMode::TolerateTornTail)
            .unwrap_or_else(|e| panic!("{ctx}: a power cut made the journal unopenable: {e}"));
        assert_eq!(report.records, lost as u64, "{ctx}");
        assert_eq!(report.truncated.len(), 1, "{ctx}");
        assert_eq!(report.truncated[0].offset, at, "{ctx}");
        assert_holds(&j, lost as u64);
        append_each(&j, lost as u64 + 1, 1);
        j.close().unwrap();
        let (j, report) = env.open(RecoveryMode::TolerateTornTail).unwrap();
        assert_clean(&report);
        assert_holds(&j, lost as u64 + 1);
        j.close().unwrap();
    }
}

#[test]
fn a_sync_append_closes_the_unsynced_run_before_it() {
    // After a Sync append returns, a later bad record in an earlier group is
    // damage to synced data: with a valid record of a later, synced group
    // after it, the default mode refuses.
    let base = Env::mem();
    let (j, _) = base.open(RecoveryMode::TolerateTornTail).unwrap();
    append_each(&j, 1, 2);
    assert_eq!(j.append_with(record(3), Durability::Buffered).unwrap(), 3);
    assert_eq!(j.append_with(record(4), Durability::Sync).unwrap(), 4);
    append_each(&j, 5, 2);
    j.close().unwrap();
    let f = frames(&base);
    for bad in [2usize, 3] {
        let env = base.copy();
        let (at, h) = f[bad];
        zero_range(&env, at, at + frame::encoded_len(h.len as usize) as u64);
        match env.open(RecoveryMode::TolerateTornTail) {
            Err(JournalError::Corruption { offset, .. }) => assert_eq!(offset, at),
            Err(e) => panic!("LSN {}: {e}", bad + 1),
            Ok((_, r)) => panic!("LSN {} lost silently: {r:?}", bad + 1),
        }
    }
}

#[test]
fn power_cut_at_any_moment_opens_and_keeps_every_synced_record() {
    use common::{options_with, MemStorage};
    use parking_lot::Mutex;
    use std::sync::Arc;
    const THREADS: u64 = 4;
    const EACH: u64 = 120;
    let big = |t: u64, q: u64| -> Vec<u8> {
        let mut p = format!("t={t} q={q} ").into_bytes();
        p.resize(
            300 + ((t * 31 + q * 17) % 400) as usize,
            b'a' + (q % 26) as u8,
        );
        p
    };
    for seed in 1..=40u64 {
        let mut rng = Rng::new(seed * 7919);
        let storage = MemStorage::new();
        let options = options_with(Arc::new(storage.clone()), RecoveryMode::TolerateTornTail);
        let (j, _) = Journal::open(common::mem_dir(), options).unwrap();
        let j = Arc::new(j);
        // (lsn, thread, seq, durability) of every acknowledged append.
        type Acks = Vec<(u64, u64, u64, Durability)>;
        let acked: Arc<Mutex<Acks>> = Arc::default();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let j = j.clone();
                let acked = acked.clone();
                std::thread::spawn(move || {
                    for q in 0..EACH {
                        let d = [Durability::Sync, Durability::Buffered, Durability::None]
                            [((t + q) % 3) as usize];
                        let lsn = j.append_with(Record::new(1, big(t, q)), d).unwrap();
                        acked.lock().push((lsn, t, q, d));
                    }
                })
            })
            .collect();
        let cut_after = rng.below(THREADS * EACH) as usize;
        while acked.lock().len() < cut_after {
            std::thread::yield_now();
        }
        // Everything acknowledged before the power cut...
        let before = acked.lock().clone();
        // ...and the disk as the power cut leaves it.
        let image = storage.crash_image(&mut rng);
        for t in threads {
            t.join().unwrap();
        }
        let j = Arc::into_inner(j).unwrap();
        j.close().unwrap();
        let all: std::collections::HashMap<u64, (u64, u64)> = acked
            .lock()
            .iter()
            .map(|&(lsn, t, q, _)| (lsn, (t, q)))
            .collect();

        let ctx = format!("seed {seed}, cut after {cut_after} acks");
        let options = options_with(Arc::new(image.clone()), RecoveryMode::TolerateTornTail);
        let (j, report) = Journal::open(common::mem_dir(), options)
            .unwrap_or_else(|e| panic!("{ctx}: a power cut made the journal unopenable: {e}"));
        assert!(report.damage.is_empty(), "{ctx}");
        let back = read_all(&j);
        let n = back.len() as u64;
        assert_eq!(report.records, n, "{ctx}");
        for (i, r) in back.iter().enumerate() {
            assert_eq!(r.lsn, i as u64 + 1, "{ctx}: LSNs dense");
            let (t, q) = all[&r.lsn];
            assert_eq!(
                r.payload,
                big(t, q),
                "{ctx}: LSN {} holds its own record",
                r.lsn
            );
        }
        for &(lsn, t, q, d) in &before {
            if d == Durability::Sync {
                assert!(
                    lsn <= n,
                    "{ctx}: synced record {lsn} (thread {t}, seq {q}) lost"
                );
            }
        }
        assert_eq!(
            j.append(Record::new(1, b"after".to_vec())).unwrap(),
            n + 1,
            "{ctx}"
        );
        j.close().unwrap();
        let options = options_with(Arc::new(image), RecoveryMode::TolerateTornTail);
        let (j, report) = Journal::open(common::mem_dir(), options).unwrap();
        assert_clean(&report);
        assert_eq!(report.records, n + 1, "{ctx}");
        j.close().unwrap();
    }
}

/// A garbage tail larger than the 1 MiB pieces recovery copies and zeroes
/// in: the `.broken` copy holds every byte, the segment keeps its size and
/// is zero after the last record.
#[test]
fn garbage_tail_larger_than_a_chunk_is_copied_whole() {
    let dir = tempfile::tempdir().unwrap();
    let options = || tracejournal::Options {
        segment_size: 4 << 20,
        first_segment_size: 4 << 20,
        max_record_size: 4096,
        ..tracejournal::Options::default()
    };
    let (j, _) = tracejournal::Journal::open(dir.path(), options()).unwrap();
    j.append(tracejournal::Record::new(1, b"kept".to_vec()))
        .unwrap();
    j.close().unwrap();
    let seg = dir.path().join("00000000000000000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let end = 64 + 40; // header + one 4-byte record frame
    let garbage: Vec<u8> = (0..(5usize << 19)).map(|i| (i % 251) as u8 | 1).collect();
    bytes[end..end + garbage.len()].copy_from_slice(&garbage);
    std::fs::write(&seg, &bytes).unwrap();

    let (j, report) = tracejournal::Journal::open(dir.path(), options()).unwrap();
    assert_eq!(report.records, 1);
    assert_eq!(report.truncated.len(), 1);
    assert_eq!(report.truncated[0].offset, end as u64);
    assert_eq!(report.truncated[0].bytes, garbage.len() as u64);
    let copy = std::fs::read(report.truncated[0].copy.as_ref().unwrap()).unwrap();
    assert!(
        copy == garbage,
        "the .broken copy differs from the cut bytes"
    );
    let after = std::fs::read(&seg).unwrap();
    assert_eq!(after.len(), 4 << 20);
    assert!(after[end..].iter().all(|&b| b == 0));
    assert_eq!(
        j.append(tracejournal::Record::new(1, b"next".to_vec()))
            .unwrap(),
        2
    );
}
