//! Power loss at *every* storage operation of the three multi-step
//! procedures, on the simulated disk ([`SimStorage`]): a segment rotation,
//! a checkpoint that removes segments, and a trace file publish. Where
//! `tests/crash_sim.rs` samples random crash points over random workloads,
//! these walk each procedure op by op, so no step of it is left unchecked.
//!
//! Each image is reopened and checked: every acknowledged record or event
//! is there exactly once and in order, a crashed session stays crashed,
//! and a trace file on disk is always one whole published version (never
//! a torn one); after `flush` it equals the canonical rendering.

mod common;

use common::sessions::{sim_options, state_tool_ids, tool};
use common::{options_with, read_all};
use std::path::PathBuf;
use std::sync::Arc;
use tracejournal::model::Status;
use tracejournal::testkit::sim::{SimRng, SimStorage};
use tracejournal::testkit::store::names;
use tracejournal::testkit::wal::segment;
use tracejournal::Storage;
use tracejournal::{Durability, Journal, Record, RecoveryMode};
use tracejournal::{Store, StoreOptions};

/// More crash points than any procedure here has storage operations; the
/// ones left over are cancelled.
const MAX_POINTS: u64 = 2_000;

fn dir() -> PathBuf {
    PathBuf::from("/sim/points")
}

/// Schedules `seeds` crash images (each losing a different random part of
/// the unsynced data) before each of the next `MAX_POINTS` storage
/// operations, runs `f`, cancels the rest, and returns the images taken:
/// `seeds` before each op `f` ran, and `seeds` after the last.
fn crash_at_every_op(storage: &SimStorage, seeds: u64, f: impl FnOnce()) -> Vec<(u64, SimStorage)> {
    let start = storage.ops();
    for k in 1..=MAX_POINTS {
        for seed in 0..seeds {
            storage.crash_at(start + k, (k << 8) ^ seed);
        }
    }
    f();
    storage.cancel_crashes();
    let mut images = storage.captured();
    let ran = storage.ops() - start;
    assert!(
        ran < MAX_POINTS,
        "the procedure ran {ran} ops; raise MAX_POINTS"
    );
    assert_eq!(images.len() as u64, ran * seeds, "{seeds} images per op");
    let end = storage.ops() + 1;
    for seed in 0..seeds {
        images.push((
            end,
            storage.crash_image(&mut SimRng::new((end << 8) ^ seed)),
        ));
    }
    images
}

// ---------------------------------------------------------------------------
// Segment rotation
// ---------------------------------------------------------------------------

fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("rotation record {i} ").into_bytes();
    p.resize(300 + (i as usize * 37) % 700, b'a' + (i % 26) as u8);
    p
}

/// A crash at every op of a run of `Sync` appends through three or more
/// segment rotations (16 KiB segments): every acknowledged record
/// survives, in order, and nothing else but the unacknowledged tail.
#[test]
fn crash_at_every_op_through_segment_rotations_loses_nothing() {
    for sector in [512, 4096] {
        let storage = SimStorage::new().with_sector(sector);
        let mut options = options_with(Arc::new(storage.clone()), RecoveryMode::TolerateTornTail);
        options.segment_size = 16 << 10;
        let (j, _) = Journal::open(dir(), options).unwrap();
        // (op count when acknowledged, LSN)
        let mut acked: Vec<(u64, u64)> = Vec::new();
        let images = crash_at_every_op(&storage, 2, || {
            for i in 1..=80u64 {
                let lsn = j
                    .append_with(Record::new(1, payload(i)), Durability::Sync)
                    .unwrap();
                assert_eq!(lsn, i);
                acked.push((storage.ops(), lsn));
            }
        });
        let segments = storage
            .list(&dir())
            .unwrap()
            .iter()
            .filter(|n| n.ends_with(".seg"))
            .count();
        assert!(
            segments >= 4,
            "{sector}: only {segments} segments: no rotations to crash in"
        );
        j.close().unwrap();
        eprintln!(
            "sector {sector}: {} crash points over {segments} segments",
            images.len()
        );
        for (op, image) in images {
            let ctx = format!("sector {sector}, crash before op {op}");
            let (j, _) = Journal::open(
                dir(),
                options_with(Arc::new(image), RecoveryMode::TolerateTornTail),
            )
            .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            let back = read_all(&j);
            for (k, r) in back.iter().enumerate() {
                assert_eq!(r.lsn, k as u64 + 1, "{ctx}: LSNs in order, no gap");
                assert!(r.payload == payload(r.lsn), "{ctx}: LSN {} intact", r.lsn);
            }
            let must = acked
                .iter()
                .filter(|(at, _)| *at < op)
                .map(|(_, l)| *l)
                .max()
                .unwrap_or(0);
            assert!(
                back.len() as u64 >= must,
                "{ctx}: acked LSN {must} lost ({} back)",
                back.len()
            );
            // The journal goes on after the crash.
            let next = j.append(Record::new(1, b"next".to_vec())).unwrap();
            assert_eq!(next, back.len() as u64 + 1, "{ctx}");
            j.close().unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// Store: checkpoint and publish
// ---------------------------------------------------------------------------

fn store_options(storage: &SimStorage) -> StoreOptions {
    let mut o = sim_options(storage);
    o.journal.segment_size = 16 << 10;
    o
}

/// What was acknowledged: each session's call ids in order, and the
/// sessions whose crash mark was acknowledged.
struct Acked {
    calls: Vec<(String, Vec<String>)>,
    crashed: Vec<String>,
}

/// Reopens `image` and checks it against `acked`; `versions` lists the
/// whole files a session's trace file may hold after the crash (sessions
/// not listed: any valid JSON, or no file yet).
fn check_image(image: SimStorage, acked: &Acked, versions: &[(String, Vec<Vec<u8>>)], ctx: &str) {
    for (id, allowed) in versions {
        let path = dir().join("traces").join(names::file_name(id));
        let bytes = image
            .read(&path)
            .unwrap_or_else(|e| panic!("{ctx}: {id}'s published file is gone: {e}"));
        assert!(
            allowed.contains(&bytes),
            "{ctx}: {id}'s file is not a whole published version ({} bytes)",
            bytes.len()
        );
    }
    for name in image.list(&dir().join("traces")).unwrap_or_default() {
        if name.ends_with(".json") && !name.starts_with('.') {
            let bytes = image.read(&dir().join("traces").join(&name)).unwrap();
            let file = serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("{ctx}: {name} is not valid JSON: {e}"));
            common::schema::validate_trace(&file);
        }
    }
    let (store, _) =
        Store::open(dir(), store_options(&image)).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    for (id, calls) in &acked.calls {
        let state = store
            .session_state(id)
            .unwrap_or_else(|| panic!("{ctx}: session {id} lost"));
        assert_eq!(
            &state_tool_ids(&state),
            calls,
            "{ctx}: {id}'s acknowledged events, once, in order"
        );
        if acked.crashed.contains(id) {
            assert_eq!(state.status, Status::Crashed, "{ctx}: {id} stays crashed");
        }
    }
    store
        .flush()
        .unwrap_or_else(|e| panic!("{ctx}: flush: {e}"));
    for (id, _) in &acked.calls {
        let file = image.read(&store.trace_path(id)).unwrap();
        assert!(
            Some(&file) == store.session(id).as_ref(),
            "{ctx}: {id}'s file after flush is the canonical rendering"
        );
    }
    store.close().unwrap();
}

/// Ingests `n` events round-robin into sessions `s0..s2`, recording them.
fn ingest(store: &Store, acked: &mut Acked, from: usize, n: usize) {
    for i in from..from + n {
        let s = i % acked.calls.len();
        let call = format!("c{i}");
        store.ingest(tool(&acked.calls[s].0, &call, 300)).unwrap();
        acked.calls[s].1.push(call);
    }
}

/// A crash at every op of two checkpoints, the second of which removes
/// the segments the first made unnecessary: nothing acknowledged is lost,
/// the crashed session stays crashed, and the store reopens from whatever
/// mix of checkpoint files and segments the crash left.
#[test]
fn crash_at_every_op_of_a_checkpoint_with_segment_removal_loses_nothing() {
    let storage = SimStorage::new();
    let (store, _) = Store::open(dir(), store_options(&storage)).unwrap();
    let mut acked = Acked {
        calls: (0..3).map(|s| (format!("s{s}"), Vec::new())).collect(),
        crashed: vec!["s1".to_string()],
    };
    ingest(&store, &mut acked, 0, 60);
    store.mark_crashed("s1", "agent died").unwrap();
    let first = crash_at_every_op(&storage, 4, || {
        store.compact().unwrap();
    });
    let segments = |s: &SimStorage| {
        s.list(&dir())
            .unwrap()
            .iter()
            .filter(|n| n.ends_with(".seg"))
            .count()
    };
    let before = segments(&storage);
    let first_seg = segment::file_name(1);
    assert!(storage.list(&dir()).unwrap().contains(&first_seg));
    ingest(&store, &mut acked, 60, 60);
    let second = crash_at_every_op(&storage, 4, || {
        store.compact().unwrap();
    });
    assert!(
        !storage.list(&dir()).unwrap().contains(&first_seg),
        "the second checkpoint removed segments ({before} before, {} after)",
        segments(&storage)
    );
    store.close().unwrap();
    eprintln!(
        "{} + {} crash points in the two checkpoints",
        first.len(),
        second.len()
    );
    // The images of the first compact hold only the first 60 events.
    let mut early = Acked {
        calls: acked
            .calls
            .iter()
            .map(|(id, c)| {
                (
                    id.clone(),
                    c.iter()
                        .filter(|c| c[1..].parse::<usize>().unwrap() < 60)
                        .cloned()
                        .collect(),
                )
            })
            .collect(),
        crashed: acked.crashed.clone(),
    };
    early.calls.retain(|(_, c)| !c.is_empty());
    for (op, image) in first {
        check_image(
            image,
            &early,
            &[],
            &format!("first checkpoint, crash before op {op}"),
        );
    }
    for (op, image) in second {
        check_image(
            image,
            &acked,
            &[],
            &format!("second checkpoint, crash before op {op}"),
        );
    }
}

/// A crash at every op of the publish of a 300 KB trace file: the file on
/// disk is always the old version or the new one, whole, never torn, and
/// every acknowledged event is in the reopened store.
#[test]
fn crash_at_every_op_of_a_publish_leaves_a_whole_file() {
    for sector in [512, 4096] {
        let storage = SimStorage::new().with_sector(sector);
        let (store, _) = Store::open(dir(), store_options(&storage)).unwrap();
        let mut acked = Acked {
            calls: vec![("big".to_string(), Vec::new())],
            crashed: Vec::new(),
        };
        for i in 0..100 {
            let call = format!("c{i}");
            store.ingest(tool("big", &call, 1_500)).unwrap();
            acked.calls[0].1.push(call);
        }
        store.flush().unwrap();
        let old = store.session("big").unwrap();
        for i in 100..110 {
            let call = format!("c{i}");
            store.ingest(tool("big", &call, 1_500)).unwrap();
            acked.calls[0].1.push(call);
        }
        let new = store.session("big").unwrap();
        assert!(new.len() > 300_000, "{}", new.len());
        let images = crash_at_every_op(&storage, 16, || store.flush().unwrap());
        assert!(
            images.len() >= 4,
            "a publish is several ops: {}",
            images.len()
        );
        assert!(storage.read(&store.trace_path("big")).unwrap() == new);
        store.close().unwrap();
        let versions = [("big".to_string(), vec![old.clone(), new.clone()])];
        let holding = |v: &Vec<u8>| {
            images
                .iter()
                .filter(|(_, i)| {
                    i.read(&dir().join("traces").join("big.json")).ok().as_ref() == Some(v)
                })
                .count()
        };
        let (with_old, with_new) = (holding(&old), holding(&new));
        eprintln!(
            "sector {sector}: {} crash points, {with_old} leave the old file, {with_new} the new",
            images.len()
        );
        assert!(
            with_old > 0 && with_new > 0,
            "crash points on both sides of the rename"
        );
        for (op, image) in images {
            check_image(
                image,
                &acked,
                &versions,
                &format!("sector {sector}, publish, crash before op {op}"),
            );
        }
    }
}
