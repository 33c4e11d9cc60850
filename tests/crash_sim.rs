//! Seeded crash simulation against a model.
//!
//! Each run drives a random workload (single events, atomic batches, crash
//! marks, session ends and resumes, checkpoints with segment removal,
//! compactor publishes, segment rotations) against a `Store` on
//! [`SimStorage`], which captures power-loss images at random storage
//! operations *during* the run (inside group commits, renames, checkpoint
//! writes, segment removals). Every image is reopened and checked:
//!
//! * every event acknowledged before the crash point is present, once;
//! * no batch is partly present;
//! * each session's events are in acknowledgement order;
//! * a session whose crash mark was acknowledged shows `crashed` for that
//!   run, in memory and in its file;
//! * every trace file on disk is valid JSON, and after `flush` equals the
//!   canonical rendering of the recovered state.
//!
//! `TRACEJOURNAL_SIM_RUNS` sets the number of runs (default 200, with 10
//! crash points each: 2,000); `TRACEJOURNAL_SIM_SEED` replays one run. A
//! failure prints the seed and the crash point.

#[path = "common/schema.rs"]
mod schema;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracejournal::event::{parse_line, Event};
use tracejournal::model::Status;
use tracejournal::testkit::sim::{SimRng, SimStorage};
use tracejournal::Clock;
use tracejournal::{OpenMode, Storage};
use tracejournal::{OrphanPolicy, Store, StoreOptions};

const SESSIONS: usize = 3;
const POINTS_PER_RUN: u64 = 10;

fn dir() -> PathBuf {
    PathBuf::from("/sim/store")
}

fn options(storage: &SimStorage) -> StoreOptions {
    let (clock, _) = Clock::manual(1_700_000_000_000);
    let mut o = StoreOptions {
        clock,
        orphans: OrphanPolicy::KeepOpen,
        checkpoint_bytes: u64::MAX,
        crash_wait: std::time::Duration::from_secs(30),
        ..StoreOptions::default()
    };
    o.journal.storage = Arc::new(storage.clone());
    o.journal.segment_size = 16 << 10;
    o
}

/// What the workload was told, in order.
#[derive(Default)]
struct Model {
    /// (storage op count when acknowledged, session, call id).
    acked: Vec<(u64, usize, String)>,
    /// Every batch submitted (acknowledged or not): its call ids.
    batches: Vec<Vec<String>>,
    /// Order of submission per session: call id -> index.
    order: HashMap<String, u64>,
    /// (op count when acknowledged, session, run marked crashed).
    crashes: Vec<(u64, usize, u32)>,
}

fn tool(session: usize, call: &str) -> Event {
    parse_line(&format!(
        r#"{{"type":"tool_call","session":"s{session}","call_id":"{call}","tool":"Read","input":{{"n":"{call}"}}}}"#
    ))
    .unwrap()
}

/// Runs one workload; returns the model and the captured images.
fn run(seed: u64) -> (Model, Vec<(u64, SimStorage)>) {
    let mut rng = SimRng::new(seed);
    let storage = SimStorage::new().with_sector(if seed.is_multiple_of(2) { 512 } else { 4096 });
    let (store, _) = Store::open(dir(), options(&storage)).unwrap();
    // Crash points spread over the run (its length is about 6 ops per
    // step; points past the end are taken at the end).
    let steps = 40 + rng.below(40);
    let start = storage.ops();
    for i in 0..POINTS_PER_RUN {
        storage.crash_at(start + 1 + rng.below(steps * 6), seed ^ (i << 32));
    }
    let mut m = Model::default();
    let mut next = 0u64;
    let mut runs = [1u32; SESSIONS];
    let mut ended = [false; SESSIONS];
    for _ in 0..steps {
        let s = rng.below(SESSIONS as u64) as usize;
        match rng.below(20) {
            0..=9 => {
                let call = format!("c{next}");
                m.order.insert(call.clone(), next);
                next += 1;
                if store.ingest(tool(s, &call)).is_ok() {
                    m.acked.push((storage.ops(), s, call));
                }
            }
            10..=12 => {
                let n = 2 + rng.below(3);
                let calls: Vec<String> = (0..n)
                    .map(|_| {
                        let c = format!("c{next}");
                        m.order.insert(c.clone(), next);
                        next += 1;
                        c
                    })
                    .collect();
                m.batches.push(calls.clone());
                let events = calls.iter().map(|c| tool(s, c)).collect();
                if store.ingest_batch(events).is_ok() {
                    let ops = storage.ops();
                    m.acked.extend(calls.into_iter().map(|c| (ops, s, c)));
                }
            }
            13 => {
                if store
                    .mark_crashed(&format!("s{s}"), &format!("crash-{seed}"))
                    .is_ok()
                {
                    m.crashes.push((storage.ops(), s, runs[s]));
                    ended[s] = true;
                }
            }
            14 => {
                let line = format!(r#"{{"type":"session_end","session":"s{s}"}}"#);
                if store.ingest(parse_line(&line).unwrap()).is_ok() {
                    ended[s] = true;
                }
            }
            15 => {
                if ended[s] {
                    let line =
                        format!(r#"{{"type":"session_start","session":"s{s}","resume":true}}"#);
                    if store.ingest(parse_line(&line).unwrap()).is_ok() {
                        runs[s] += 1;
                        ended[s] = false;
                    }
                }
            }
            16 => {
                let _ = store.compact();
            }
            _ => {
                let _ = store.flush();
            }
        }
    }
    let mut images = storage.captured();
    // Points not reached: crash at the end.
    while (images.len() as u64) < POINTS_PER_RUN {
        let n = images.len() as u64;
        images.push((
            storage.ops() + 1,
            storage.crash_image(&mut SimRng::new(seed ^ (n << 40))),
        ));
    }
    drop(store);
    (m, images)
}

fn check(seed: u64, at: u64, m: &Model, image: &SimStorage) {
    let ctx =
        format!("seed {seed}, crash before storage op {at} (replay: TRACEJOURNAL_SIM_SEED={seed})");
    // Files as they are on the image, before recovery touches them.
    let traces = dir().join("traces");
    for name in image.list(&traces).unwrap_or_default() {
        if name.ends_with(".json") && !name.starts_with('.') {
            let bytes = image.read(&traces.join(&name)).unwrap();
            let file = serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("{ctx}: {name} is not valid JSON on disk: {e}"));
            schema::validate_trace(&file);
        }
    }
    let (store, _) =
        Store::open(dir(), options(image)).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));

    // Which call ids are present, per session, in span order.
    let mut present: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for s in 0..SESSIONS {
        if let Some(state) = store.session_state(&format!("s{s}")) {
            let ids: Vec<String> = state
                .spans
                .values()
                .filter(|sp| sp.kind == "tool")
                .map(|sp| sp.span_id.clone())
                .collect();
            present.insert(s, ids);
        }
    }
    let all: HashMap<&str, usize> =
        present
            .values()
            .flatten()
            .fold(HashMap::new(), |mut acc, id| {
                *acc.entry(id.as_str()).or_default() += 1;
                acc
            });
    for (ops, s, call) in &m.acked {
        if *ops < at {
            let ids = present.get(s).map(Vec::as_slice).unwrap_or_default();
            assert!(
                ids.contains(call),
                "{ctx}: acknowledged {call} of s{s} is missing"
            );
        }
    }
    for (id, n) in &all {
        assert_eq!(*n, 1, "{ctx}: {id} is present {n} times");
        assert!(!id.contains('~'), "{ctx}: {id} was applied twice");
    }
    for batch in &m.batches {
        let n = batch
            .iter()
            .filter(|c| all.contains_key(c.as_str()))
            .count();
        assert!(
            n == 0 || n == batch.len(),
            "{ctx}: batch {batch:?} is {n}/{} present",
            batch.len()
        );
    }
    for (s, ids) in &present {
        let idx: Vec<u64> = ids.iter().map(|c| m.order[c]).collect();
        assert!(
            idx.windows(2).all(|w| w[0] < w[1]),
            "{ctx}: s{s} out of order: {ids:?}"
        );
    }
    for (ops, s, run) in &m.crashes {
        if *ops >= at {
            continue;
        }
        let st = store
            .session_state(&format!("s{s}"))
            .expect("marked sessions exist");
        if st.run == *run {
            assert_eq!(
                st.status,
                Status::Crashed,
                "{ctx}: s{s} run {run} lost its crash mark"
            );
            let file = read(image, &store.trace_path(&format!("s{s}")));
            let v = schema::trace_json(&file);
            assert_eq!(v["summary"]["status"], "crashed", "{ctx}: s{s}'s file");
        } else {
            assert!(st.run > *run, "{ctx}: s{s} went back to run {}", st.run);
        }
    }
    store
        .flush()
        .unwrap_or_else(|e| panic!("{ctx}: flush: {e}"));
    for s in 0..SESSIONS {
        let id = format!("s{s}");
        if let Some(bytes) = store.session(&id) {
            assert_eq!(
                read(image, &store.trace_path(&id)),
                bytes,
                "{ctx}: {id}'s file after flush"
            );
        }
    }
    store.close().unwrap();
}

fn read(storage: &SimStorage, path: &Path) -> Vec<u8> {
    let f = storage.open(path, OpenMode::Read).unwrap();
    let mut buf = vec![0; f.len().unwrap() as usize];
    f.read_at(&mut buf, 0).unwrap();
    buf
}

#[test]
fn power_loss_at_random_storage_operations_keeps_every_promise() {
    let seeds: Vec<u64> = match std::env::var("TRACEJOURNAL_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("TRACEJOURNAL_SIM_SEED is a number")],
        Err(_) => {
            let runs: u64 = std::env::var("TRACEJOURNAL_SIM_RUNS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(200);
            (1..=runs).collect()
        }
    };
    let mut points = 0;
    for seed in seeds {
        let (model, images) = run(seed);
        for (at, image) in images {
            check(seed, at, &model, &image);
            points += 1;
        }
    }
    println!("{points} crash points checked");
}
