//! Acceptance scenarios 18-21 (`acceptance-scenarios.md`, "Bad input and
//! bad disks"), on the simulated disk ([`SimStorage`]) where a disk fault
//! is needed and with a real second process for the lock.
//!
//! * s18: truncated, zeroed, bit-flipped and garbage segments, in every
//!   recovery mode. (`tests/corruption.rs` flips every single byte of a
//!   journal and `tests/torn_tail.rs` covers torn tails byte by byte; this
//!   file states the scenario's promises once, per kind of damage.)
//! * s19: a failed fsync fails every waiter, acks nothing after it, and
//!   the journal refuses appends until reopened.
//! * s20: a full disk, on a segment write, on segment creation, on a trace
//!   file publish and on a checkpoint: an error to the caller, nothing
//!   corrupted, a clean reopen once space is free.
//! * s21: a second process opening the same directory gets a clear error.

mod common;

use common::child::{rerun, KillOnDrop};
use common::sessions::{sim_options, tool};
use common::{options_with, placements, read_all, Placement, Rng};
use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tracejournal::testkit::failpoint::{names, Action};
use tracejournal::testkit::sim::{Op, SimRng, SimStorage};
use tracejournal::testkit::wal::segment;
use tracejournal::Storage;
use tracejournal::{Durability, Error, Journal, JournalError, Record, RecoveryMode, Ticket};
use tracejournal::{Store, StoreOptions};

const WAIT: Duration = Duration::from_secs(30);
const MODES: [RecoveryMode; 4] = [
    RecoveryMode::TolerateTornTail,
    RecoveryMode::AbsoluteConsistency,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipCorrupt,
];

fn dir() -> PathBuf {
    PathBuf::from("/sim/journal")
}

fn seg_path(n: u64) -> PathBuf {
    dir().join(segment::file_name(n))
}

/// The payload of LSN `lsn`: 40 to 900 bytes, distinct per LSN.
fn payload(lsn: u64) -> Vec<u8> {
    let mut p = format!("s18 record {lsn} ").into_bytes();
    let len = 40 + (lsn * 7919 % 860) as usize;
    p.extend((0..len).map(|i| b'a' + ((lsn as usize + i) % 26) as u8));
    p
}

fn open(
    storage: &SimStorage,
    mode: RecoveryMode,
) -> tracejournal::Result<(Journal, tracejournal::RecoveryReport), JournalError> {
    Journal::open(dir(), options_with(Arc::new(storage.clone()), mode))
}

// ---------------------------------------------------------------------------
// s18: damaged segments
// ---------------------------------------------------------------------------

/// A cleanly closed journal of several 64 KiB segments on a simulated
/// disk, and where each record sits.
fn built_journal() -> (SimStorage, Vec<Placement>) {
    let storage = SimStorage::new();
    let (j, _) = open(&storage, RecoveryMode::TolerateTornTail).unwrap();
    for lsn in 1..=600 {
        assert_eq!(j.append(Record::new(1, payload(lsn))).unwrap(), lsn);
    }
    let placed = placements(&read_all(&j));
    j.close().unwrap();
    assert!(placed.last().unwrap().segment >= 4, "want several segments");
    (storage, placed)
}

/// One kind of damage, where it lands, and what a reader may lose.
struct Damage {
    name: &'static str,
    segment: u64,
    /// Byte range of the damaged file that no longer holds what was written.
    range: (u64, u64),
    /// True if nothing valid follows the damage (a torn tail).
    tail: bool,
}

impl Damage {
    /// Records whose bytes overlap the damage.
    fn hit(&self, placed: &[Placement]) -> BTreeSet<u64> {
        placed
            .iter()
            .filter(|p| {
                p.segment == self.segment
                    && p.offset < self.range.1
                    && p.offset + p.unpadded > self.range.0
            })
            .map(|p| p.lsn)
            .collect()
    }
}

/// Applies each kind of damage to a copy of the journal; returns the copy.
fn damaged(
    clean: &SimStorage,
    placed: &[Placement],
    kind: usize,
    rng: &mut Rng,
) -> (SimStorage, Damage) {
    let image = clean.crash_image(&mut SimRng::new(0));
    let last = placed.last().unwrap();
    let middle = placed[placed.len() / 2];
    let in_segment = |s: u64| placed.iter().filter(move |p| p.segment == s);
    let damage = match kind {
        // A bit flip inside the very last record: a torn tail.
        0 => {
            let at = last.offset + rng.below(last.unpadded);
            flip(&image, last.segment, at, rng);
            Damage {
                name: "bit flip in the last record",
                segment: last.segment,
                range: (at, at + 1),
                tail: true,
            }
        }
        // The last segment cut short in its last record: a torn tail.
        1 => {
            let at = last.offset + 1 + rng.below(last.unpadded - 1);
            let mut bytes = image.read(&seg_path(last.segment)).unwrap();
            let end = bytes.len() as u64;
            bytes.truncate(at as usize);
            image.put(&seg_path(last.segment), &bytes);
            Damage {
                name: "last segment truncated",
                segment: last.segment,
                range: (at, end),
                tail: true,
            }
        }
        // A bit flip in a record with valid records after it.
        2 => {
            let at = middle.offset + rng.below(middle.unpadded);
            flip(&image, middle.segment, at, rng);
            Damage {
                name: "bit flip mid-log",
                segment: middle.segment,
                range: (at, at + 1),
                tail: false,
            }
        }
        // Two records' worth of zeros in the first segment.
        3 => {
            let victims: Vec<Placement> = in_segment(1).copied().collect();
            let from = victims[victims.len() / 3];
            let to = victims[victims.len() / 3 + 1];
            let end = to.offset + to.unpadded;
            let mut bytes = image.read(&seg_path(1)).unwrap();
            bytes[from.offset as usize..end as usize].fill(0);
            image.put(&seg_path(1), &bytes);
            Damage {
                name: "zeroed range",
                segment: 1,
                range: (from.offset, end),
                tail: false,
            }
        }
        // An earlier segment cut short in the middle of a record.
        4 => {
            let victims: Vec<Placement> = in_segment(2).copied().collect();
            let v = victims[victims.len() / 2];
            let at = v.offset + 1 + rng.below(v.unpadded - 1);
            let mut bytes = image.read(&seg_path(2)).unwrap();
            let end = bytes.len() as u64;
            bytes.truncate(at as usize);
            image.put(&seg_path(2), &bytes);
            Damage {
                name: "earlier segment truncated",
                segment: 2,
                range: (at, end),
                tail: false,
            }
        }
        // A whole segment replaced by garbage.
        _ => {
            let path = seg_path(3);
            let len = image.read(&path).unwrap().len();
            let garbage: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            image.put(&path, &garbage);
            Damage {
                name: "garbage segment",
                segment: 3,
                range: (0, len as u64),
                tail: false,
            }
        }
    };
    (image, damage)
}

fn flip(image: &SimStorage, segment: u64, at: u64, rng: &mut Rng) {
    let path = seg_path(segment);
    let mut bytes = image.read(&path).unwrap();
    bytes[at as usize] ^= 1 << rng.below(8);
    image.put(&path, &bytes);
}

/// What recovery in `mode` did with `damage`, checked against the
/// scenario's promises.
fn check_recovery(image: &SimStorage, placed: &[Placement], damage: &Damage, mode: RecoveryMode) {
    let ctx = format!("{} ({mode:?})", damage.name);
    let hit = damage.hit(placed);
    let first_bad = *hit
        .iter()
        .next()
        .unwrap_or_else(|| panic!("{ctx}: damage hits no record"));
    let before = image.read(&seg_path(damage.segment)).unwrap();
    let refuse = mode == RecoveryMode::AbsoluteConsistency
        || (mode == RecoveryMode::TolerateTornTail && !damage.tail);
    match open(image, mode) {
        Err(JournalError::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert!(refuse, "{ctx}: refused, but this mode recovers: {reason}");
            assert_eq!(file, seg_path(damage.segment), "{ctx}: names the file");
            let bad = placed.iter().find(|p| p.lsn == first_bad).unwrap();
            // A whole garbage segment is refused at its header (offset 0);
            // any other damage at the first damaged record or inside the
            // damaged range.
            let at_damage = (bad.offset..damage.range.1.max(bad.offset + 1)).contains(&offset);
            let at_header = damage.range.0 == 0 && offset == 0;
            assert!(
                at_damage || at_header,
                "{ctx}: offset {offset} not at the damage ({bad:?}, {:?})",
                damage.range
            );
        }
        Err(e) => panic!("{ctx}: not a corruption error: {e}"),
        Ok((j, report)) => {
            assert!(
                !refuse,
                "{ctx}: opened despite damage with valid records after it: {report:?}"
            );
            let back = read_all(&j);
            // Never a record whose checksum does not match: every record
            // read back is the one written at its LSN.
            for r in &back {
                assert_eq!(r.payload, payload(r.lsn), "{ctx}: LSN {}", r.lsn);
            }
            let got: Vec<u64> = back.iter().map(|r| r.lsn).collect();
            let expected: Vec<u64> = match mode {
                RecoveryMode::SkipCorrupt => {
                    let lost: BTreeSet<u64> = if damage.name == "garbage segment" {
                        placed
                            .iter()
                            .filter(|p| p.segment == damage.segment)
                            .map(|p| p.lsn)
                            .collect()
                    } else if damage.tail || damage.name == "earlier segment truncated" {
                        placed
                            .iter()
                            .filter(|p| p.segment == damage.segment && p.lsn >= first_bad)
                            .map(|p| p.lsn)
                            .collect()
                    } else {
                        hit.clone()
                    };
                    placed
                        .iter()
                        .map(|p| p.lsn)
                        .filter(|l| !lost.contains(l))
                        .collect()
                }
                _ => (1..first_bad).collect(),
            };
            assert_eq!(got, expected, "{ctx}: records kept");
            if damage.tail && mode == RecoveryMode::TolerateTornTail {
                assert_eq!(report.truncated.len(), 1, "{ctx}: {report:?}");
                let t = &report.truncated[0];
                assert_eq!(t.file, seg_path(damage.segment), "{ctx}");
                let copy = t
                    .copy
                    .as_ref()
                    .unwrap_or_else(|| panic!("{ctx}: no copy of the cut bytes"));
                let kept = image.read(copy).unwrap();
                let cut_end = (t.offset + kept.len() as u64) as usize;
                assert_eq!(
                    kept,
                    before[t.offset as usize..cut_end.min(before.len())],
                    "{ctx}: the copy holds the cut bytes"
                );
            } else if !damage.tail && mode != RecoveryMode::AbsoluteConsistency {
                let named = report
                    .damage
                    .iter()
                    .map(|d| &d.file)
                    .chain(report.truncated.iter().map(|t| &t.file));
                assert!(
                    named.clone().any(|f| *f == seg_path(damage.segment))
                        || report.set_aside.iter().any(|p| p
                            .to_string_lossy()
                            .contains(&segment::file_name(damage.segment))),
                    "{ctx}: the report names the damaged file: {report:?}"
                );
            }
            // The journal goes on: a new record gets the next LSN and a
            // reopen is clean.
            let next = j.append(Record::new(1, b"after".to_vec())).unwrap();
            assert_eq!(next, report.next_lsn, "{ctx}");
            j.close().unwrap();
            let (j, again) = open(image, mode).unwrap();
            // Damage that was cut is gone; skipped damage stays where it
            // was (and is reported again); nothing new is found.
            assert!(again.truncated.is_empty(), "{ctx}: second open {again:?}");
            if mode == RecoveryMode::SkipCorrupt {
                assert!(
                    again.damage.iter().all(|d| report.damage.contains(d)),
                    "{ctx}: second open found new damage: {again:?} after {report:?}"
                );
            } else {
                assert!(again.damage.is_empty(), "{ctx}: second open {again:?}");
            }
            assert_eq!(read_all(&j).last().unwrap().payload, b"after", "{ctx}");
            j.close().unwrap();
        }
    }
}

/// Scenario 18: recovery never panics, never returns a record whose
/// checksum does not match, cuts a torn tail of the last segment (keeping a
/// copy of the cut bytes), and refuses corruption with valid records after
/// it, naming the file and offset, or (in the mode the user chose) stops
/// or skips.
#[test]
fn s18_damaged_segments_are_cut_refused_or_skipped_never_returned() {
    let (clean, placed) = built_journal();
    let mut rng = Rng::new(18);
    for _round in 0..4 {
        for kind in 0..6 {
            for mode in MODES {
                let (image, damage) = damaged(&clean, &placed, kind, &mut rng);
                check_recovery(&image, &placed, &damage, mode);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// s19: a failed fsync
// ---------------------------------------------------------------------------

fn rec(tag: &str, i: u64) -> Record {
    Record::new(1, format!("{tag} {i}").into_bytes())
}

fn is_poisoned<T: std::fmt::Debug>(r: &tracejournal::Result<T, JournalError>) -> bool {
    matches!(r, Err(JournalError::Poisoned { .. }))
}

/// Scenario 19 on the simulated disk: the segment's fsync fails with EIO
/// while one commit group of 13 appends waits on it. Every waiter gets the
/// error, nothing is acknowledged after it, the journal refuses every
/// append (and `sync`) until reopened, and both a restart and a power cut
/// after the failure recover exactly the acknowledged records (plus, on a
/// restart, possibly the failed group, whose write reached the OS).
#[test]
fn s19_failed_fsync_fails_every_waiter_and_poisons_until_reopen() {
    let storage = SimStorage::new();
    let options = options_with(Arc::new(storage.clone()), RecoveryMode::TolerateTornTail);
    let fp = options.failpoints.clone();
    let (j, _) = Journal::open(dir(), options).unwrap();
    for i in 1..=5 {
        assert_eq!(j.append_with(rec("acked", i), Durability::Sync).unwrap(), i);
    }
    // Hold one group before its write; queue twelve more behind it.
    fp.arm(names::WRITER_BEFORE_WRITE, Action::Pause);
    let first = j.submit_with(rec("failed", 0), Durability::Sync).unwrap();
    assert!(fp.wait_paused(names::WRITER_BEFORE_WRITE, WAIT));
    let j = Arc::new(j);
    let queued: Vec<Ticket> = (1..=12u64)
        .map(|i| j.submit_with(rec("failed", i), Durability::Sync).unwrap())
        .collect();
    storage.fail(
        Op::Sync,
        &segment::file_name(1),
        1,
        false,
        io::ErrorKind::Other,
    );
    fp.release(names::WRITER_BEFORE_WRITE);

    let mut failures = vec![first.wait()];
    failures.extend(queued.into_iter().map(Ticket::wait));
    for (i, r) in failures.iter().enumerate() {
        assert!(
            matches!(
                r,
                Err(JournalError::Io { .. }) | Err(JournalError::Poisoned { .. })
            ),
            "waiter {i} after a failed fsync: {r:?}"
        );
    }
    assert!(
        matches!(&failures[0], Err(JournalError::Io { op, .. }) if op.contains("sync")),
        "{:?}",
        failures[0]
    );
    assert!(j.poisoned().is_some());
    // The fault is gone, yet nothing is acknowledged until a reopen.
    storage.clear_faults();
    for d in [Durability::Sync, Durability::Buffered, Durability::None] {
        assert!(is_poisoned(&j.append_with(rec("later", 0), d)), "{d:?}");
    }
    assert!(is_poisoned(&j.sync()));
    assert!(is_poisoned(&j.append_batch(vec![rec("b", 1), rec("b", 2)])));
    assert!(is_poisoned(&j.append_urgent(rec("urgent", 0))));
    assert_eq!(
        j.durable_lsn(),
        6,
        "nothing became durable after the failure"
    );

    // A power cut now: exactly the acknowledged records survive.
    for seed in 0..8 {
        let image = storage.crash_image(&mut SimRng::new(seed));
        let (back, _) = open(&image, RecoveryMode::TolerateTornTail).unwrap();
        let got: Vec<Vec<u8>> = read_all(&back).into_iter().map(|r| r.payload).collect();
        assert_eq!(
            got[..5],
            (1..=5).map(|i| rec("acked", i).payload).collect::<Vec<_>>()[..],
            "seed {seed}"
        );
        for (k, p) in got[5..].iter().enumerate() {
            assert_eq!(
                p,
                &rec("failed", k as u64).payload,
                "seed {seed}: only the failed group, in order"
            );
        }
        back.close().unwrap();
    }
    // A restart: the journal reopens and appends continue.
    let j = Arc::into_inner(j).unwrap();
    assert!(is_poisoned(&j.close()));
    let (j, report) = open(&storage, RecoveryMode::TolerateTornTail).unwrap();
    let back = read_all(&j);
    assert!(back.len() >= 5 && back.len() <= 18, "{}", back.len());
    for (i, r) in back.iter().enumerate().take(5) {
        assert_eq!(r.payload, rec("acked", i as u64 + 1).payload);
    }
    assert_eq!(j.append(rec("after", 0)).unwrap(), report.next_lsn);
    j.close().unwrap();
}

// ---------------------------------------------------------------------------
// s20: a full disk
// ---------------------------------------------------------------------------

/// Appends ~1,000-byte records with `Sync` until one fails; returns the
/// acknowledged payloads and the error.
fn append_until_error(j: &Journal, tag: &str) -> (Vec<Vec<u8>>, JournalError) {
    let mut acked = Vec::new();
    for i in 0..2_000u64 {
        let mut r = rec(tag, i);
        r.payload.resize(1000, b'.');
        match j.append_with(r.clone(), Durability::Sync) {
            Ok(_) => acked.push(r.payload),
            Err(e) => return (acked, e),
        }
    }
    panic!("no append failed");
}

/// After space is freed: a clean reopen (nothing cut, nothing damaged),
/// exactly `acked` in order, and appends go on across a rotation.
fn reopens_cleanly(storage: &SimStorage, acked: &[Vec<u8>], ctx: &str) {
    storage.clear_faults();
    let (j, report) = open(storage, RecoveryMode::AbsoluteConsistency)
        .unwrap_or_else(|e| panic!("{ctx}: reopen after space was freed: {e}"));
    assert!(
        report.truncated.is_empty() && report.damage.is_empty(),
        "{ctx}: {report:?}"
    );
    let got: Vec<Vec<u8>> = read_all(&j).into_iter().map(|r| r.payload).collect();
    assert_eq!(got.len(), acked.len(), "{ctx}: record count");
    assert!(got == acked, "{ctx}: the acknowledged records, in order");
    let (more, err) = {
        let mut more = 0;
        for i in 0..150u64 {
            let mut r = rec("more", i);
            r.payload.resize(1000, b'.');
            j.append_with(r, Durability::Sync)
                .unwrap_or_else(|e| panic!("{ctx}: append after reopen: {e}"));
            more += 1;
        }
        (more, j.close())
    };
    err.unwrap();
    let (j, report) = open(storage, RecoveryMode::AbsoluteConsistency).unwrap();
    assert_eq!(report.records, acked.len() as u64 + more, "{ctx}");
    j.close().unwrap();
}

/// Scenario 20, on a segment write: the appender gets a "storage full"
/// error, later appends are refused, and once space is free the journal
/// reopens with every acknowledged record and nothing else damaged.
#[test]
fn s20_full_disk_on_write_errors_corrupts_nothing_and_reopens() {
    let storage = SimStorage::new();
    let (j, _) = open(&storage, RecoveryMode::TolerateTornTail).unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        let d = if i % 2 == 0 {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        j.append_with(rec("ok", i), d).unwrap();
        acked.push(rec("ok", i).payload);
    }
    storage.fail(
        Op::Write,
        &segment::file_name(1),
        1,
        true,
        io::ErrorKind::StorageFull,
    );
    let err = j.append(rec("full", 0)).unwrap_err();
    assert!(
        err.is_storage_full(),
        "the appender is told the disk is full: {err}"
    );
    assert!(
        err.to_string().contains(&segment::file_name(1)),
        "names the file: {err}"
    );
    assert!(is_poisoned(&j.append(rec("full", 1))));
    let _ = j.close();
    // Power cut while full, then space freed: the same.
    reopens_cleanly(
        &storage.crash_image(&mut SimRng::new(20)),
        &acked,
        "power cut",
    );
    reopens_cleanly(&storage, &acked, "restart");
}

/// Scenario 20, on segment creation: the next segment cannot be created
/// (neither by the background preallocator nor by the writer's retry).
#[test]
fn s20_full_disk_on_segment_creation_errors_corrupts_nothing_and_reopens() {
    let storage = SimStorage::new();
    let (j, _) = open(&storage, RecoveryMode::TolerateTornTail).unwrap();
    storage.fail(
        Op::Create,
        &dir().to_string_lossy(),
        1,
        true,
        io::ErrorKind::StorageFull,
    );
    let (acked, err) = append_until_error(&j, "fill");
    assert!(err.is_storage_full(), "{err}");
    assert!(
        acked.len() > 30,
        "failed at the first rotation, not before: {}",
        acked.len()
    );
    assert!(is_poisoned(&j.append(rec("x", 0))));
    let _ = j.close();
    reopens_cleanly(
        &storage.crash_image(&mut SimRng::new(21)),
        &acked,
        "power cut",
    );
    reopens_cleanly(&storage, &acked, "restart");
}

fn store_options(storage: &SimStorage) -> StoreOptions {
    sim_options(storage)
}

fn traces(storage: &SimStorage) -> Vec<String> {
    storage.list(&dir().join("traces")).unwrap_or_default()
}

/// Scenario 20, on a trace file publish (ENOSPC while writing the temp
/// file, then EIO on the rename): ingest is unaffected (the journal is
/// another file), `flush` reports the error naming the file, the published
/// file keeps its last good version, no temp file is left, and once space
/// is free the next flush publishes the current state.
#[test]
fn s20_full_disk_on_publish_keeps_the_last_good_file() {
    let storage = SimStorage::new();
    let (store, _) = Store::open(dir(), store_options(&storage)).unwrap();
    for i in 0..5 {
        store.ingest(tool("s", &format!("a{i}"), 1_000)).unwrap();
    }
    store.flush().unwrap();
    let file = store.trace_path("s");
    let mut good = storage.read(&file).unwrap();
    assert!(Some(&good) == store.session("s").as_ref(), "published");

    for (op, kind) in [
        (Op::Write, io::ErrorKind::StorageFull),
        (Op::Rename, io::ErrorKind::Other),
    ] {
        storage.fail(op, "/traces/", 1, true, kind);
        let ack = store.ingest(tool("s", &format!("{op:?}"), 1_000)).unwrap();
        assert!(ack.lsn > 0, "ingest goes on while publishing fails");
        let err = store.flush().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("traces"),
            "{op:?}: the error names the trace file: {msg}"
        );
        if op == Op::Write {
            assert!(err.is_storage_full(), "{msg}");
        }
        assert!(
            storage.read(&file).unwrap() == good,
            "{op:?}: the last good file is untouched"
        );
        let left: Vec<String> = traces(&storage)
            .into_iter()
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{op:?}: temp files left: {left:?}");
        storage.clear_faults();
        store.flush().unwrap();
        let now = storage.read(&file).unwrap();
        assert!(
            Some(&now) == store.session("s").as_ref(),
            "{op:?}: published after space was freed"
        );
        assert!(now != good, "{op:?}: a new version");
        good = now;
    }
    let expected = store.session("s").unwrap();
    store.close().unwrap();
    let (store, report) = Store::open(dir(), store_options(&storage)).unwrap();
    assert!(report.journal.truncated.is_empty() && report.journal.damage.is_empty());
    assert!(
        store.session("s") == Some(expected),
        "the same file after a reopen"
    );
    store.close().unwrap();
}

/// Scenario 20, on a checkpoint: `compact` fails naming the checkpoint,
/// no segment is removed, and a reopen replays the whole log.
#[test]
fn s20_full_disk_on_checkpoint_removes_nothing() {
    let storage = SimStorage::new();
    let (store, _) = Store::open(dir(), store_options(&storage)).unwrap();
    for i in 0..200 {
        store
            .ingest(tool(&format!("s{}", i % 4), &format!("c{i}"), 1_000))
            .unwrap();
    }
    let segments_before = storage.list(&dir()).unwrap();
    storage.fail(
        Op::Write,
        "checkpoints",
        1,
        true,
        io::ErrorKind::StorageFull,
    );
    let err = store.compact().unwrap_err();
    assert!(err.is_storage_full(), "{err}");
    assert!(err.to_string().contains("checkpoints"), "{err}");
    assert_eq!(
        storage.list(&dir()).unwrap(),
        segments_before,
        "no segment removed"
    );
    let expected: Vec<Option<Vec<u8>>> = (0..4).map(|s| store.session(&format!("s{s}"))).collect();
    storage.clear_faults();
    store.close().unwrap();
    let (store, report) = Store::open(dir(), store_options(&storage)).unwrap();
    assert_eq!(report.checkpoint, None, "no checkpoint was written");
    let got: Vec<Option<Vec<u8>>> = (0..4).map(|s| store.session(&format!("s{s}"))).collect();
    assert!(got == expected, "the same sessions after a reopen");
    store.compact().unwrap();
    store.close().unwrap();
}

// ---------------------------------------------------------------------------
// s21: two processes
// ---------------------------------------------------------------------------

const CHILD_DIR: &str = "TJ_S21_CHILD_DIR";

/// The child: opens the store, ingests, says "ready", and holds the store
/// open until its stdin closes; then closes it cleanly.
fn s21_child(dir: &Path) {
    let (store, _) = Store::open(dir, StoreOptions::default()).unwrap();
    for i in 0..10 {
        store.ingest(tool("held", &format!("c{i}"), 100)).unwrap();
    }
    println!("ready");
    io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = io::stdin().read_line(&mut line);
    store.close().unwrap();
    println!("closed");
}

/// Scenario 21: while a second process holds the store, opening it (as a
/// store or as a bare journal) fails with a clear "locked" error naming the
/// directory, and the refused open damages nothing: once the holder
/// closes, every event it wrote is there.
#[test]
fn s21_a_second_process_gets_a_clear_error_not_a_corrupted_log() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        s21_child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop::spawn(
        rerun("s21_a_second_process_gets_a_clear_error_not_a_corrupted_log")
            .env(CHILD_DIR, dir.path())
            .stdin(Stdio::piped()),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    while line.trim() != "ready" {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child exited before it was ready"
        );
    }
    for attempt in 0..2 {
        let err = match Store::open(dir.path(), StoreOptions::default()) {
            Err(e) => e,
            Ok(_) => panic!("attempt {attempt}: a second process opened a store that is in use"),
        };
        assert!(
            matches!(err, Error::Journal(JournalError::Locked { .. })),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.path().display().to_string()),
            "names the directory: {msg}"
        );
        assert!(
            msg.contains("lock") || msg.contains("use"),
            "says why: {msg}"
        );
        assert!(matches!(
            Journal::open(dir.path(), tracejournal::Options::default()),
            Err(JournalError::Locked { .. })
        ));
    }
    // Let the child close, then open: everything it wrote is there.
    drop(child.0.stdin.take());
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "closed");
    assert!(child.0.wait().unwrap().success());
    let (store, report) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(report.journal.truncated.is_empty() && report.journal.damage.is_empty());
    let state = store.session_state("held").expect("the holder's session");
    assert_eq!(state.totals.tool_calls, 10);
    store.close().unwrap();
}
