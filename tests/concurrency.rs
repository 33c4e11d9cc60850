//! Many appenders at once through the one group-commit writer
//! (src/writer.rs): LSNs are unique, dense and in log order, and each
//! appender's records keep their order.

mod common;

use common::{fs_options, read_all};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Barrier};
use tracejournal::{Durability, Journal, LogRecord, Record};

const THREADS: u64 = 64;
const PER_THREAD: u64 = 200;

fn payload(thread: u64, seq: u64) -> Vec<u8> {
    // Padding makes the log span several 64 KiB segments.
    format!(
        "thread={thread:03} seq={seq:05} {}",
        "p".repeat((seq % 40) as usize)
    )
    .into_bytes()
}

fn parse(p: &[u8]) -> (u64, u64) {
    let s = std::str::from_utf8(p).unwrap();
    let mut it = s.split(' ');
    let t = it.next().unwrap().strip_prefix("thread=").unwrap();
    let q = it.next().unwrap().strip_prefix("seq=").unwrap();
    let (t, q) = (t.parse().unwrap(), q.parse().unwrap());
    assert_eq!(p, payload(t, q).as_slice(), "payload intact");
    (t, q)
}

/// The log read back must be exactly the acknowledged appends.
fn check_log(back: &[LogRecord], acked: &HashMap<u64, (u64, u64)>) {
    let n = THREADS * PER_THREAD;
    assert_eq!(back.len() as u64, n);
    let mut seen = HashSet::new();
    let mut last_seq: HashMap<u64, u64> = HashMap::new();
    for (i, r) in back.iter().enumerate() {
        assert_eq!(r.lsn, i as u64 + 1, "LSNs dense in log order");
        let (t, q) = parse(&r.payload);
        assert!(seen.insert((t, q)), "({t}, {q}) appears twice");
        assert_eq!(
            acked.get(&r.lsn),
            Some(&(t, q)),
            "LSN {} holds what was acked",
            r.lsn
        );
        if let Some(prev) = last_seq.insert(t, q) {
            assert!(q > prev, "thread {t}: seq {q} after {prev} in the log");
        }
    }
    assert_eq!(seen.len() as u64, n);
}

#[test]
fn sixty_four_appenders_get_unique_dense_ordered_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), fs_options()).unwrap();
    let j = Arc::new(j);
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let j = j.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let mut lsns = Vec::with_capacity(PER_THREAD as usize);
                for q in 0..PER_THREAD {
                    let d = if (t + q) % 3 == 0 {
                        Durability::Sync
                    } else {
                        Durability::Buffered
                    };
                    let lsn = j.append_with(Record::new(7, payload(t, q)), d).unwrap();
                    if d == Durability::Sync {
                        assert!(j.durable_lsn() > lsn, "Sync ack before durable");
                    }
                    lsns.push(lsn);
                }
                lsns
            })
        })
        .collect();
    let mut acked: HashMap<u64, (u64, u64)> = HashMap::new();
    for (t, h) in handles.into_iter().enumerate() {
        let lsns = h.join().unwrap();
        assert!(
            lsns.windows(2).all(|w| w[0] < w[1]),
            "thread {t}: its LSNs must increase"
        );
        for (q, lsn) in lsns.into_iter().enumerate() {
            assert!(
                acked.insert(lsn, (t as u64, q as u64)).is_none(),
                "LSN {lsn} acked twice"
            );
        }
    }
    let n = THREADS * PER_THREAD;
    let keys: Vec<u64> = acked
        .keys()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(keys, (1..=n).collect::<Vec<_>>(), "LSNs dense 1..=N");
    assert_eq!(j.next_lsn(), n + 1);

    check_log(&read_all(&j), &acked);
    let j = Arc::into_inner(j).expect("threads are done");
    j.close().unwrap();

    let (j, report) = Journal::open(dir.path(), fs_options()).unwrap();
    assert_eq!(report.records, n);
    assert!(
        report.segments >= 3,
        "crossed segments: {}",
        report.segments
    );
    assert!(report.truncated.is_empty() && report.damage.is_empty());
    let back = read_all(&j);
    let segments: HashSet<u64> = back.iter().map(|r| r.segment).collect();
    assert!(segments.len() >= 3);
    check_log(&back, &acked);
    assert_eq!(j.append(Record::new(1, b"next".to_vec())).unwrap(), n + 1);
    j.close().unwrap();
}

#[test]
fn concurrent_atomic_batches_get_contiguous_lsns() {
    const BATCH_THREADS: u64 = 8;
    const BATCHES: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), fs_options()).unwrap();
    let j = Arc::new(j);
    let start = Arc::new(Barrier::new(BATCH_THREADS as usize + 1));
    let batch_of = |t: u64, b: u64| -> Vec<Record> {
        let size = 1 + (t + b) % 7;
        (0..size)
            .map(|k| {
                let mut p = format!("t{t} b{b} k{k} ").into_bytes();
                p.resize(200 + (k as usize * 37) % 300, b'0' + (b % 10) as u8);
                Record::new(2, p)
            })
            .collect()
    };
    let handles: Vec<_> = (0..BATCH_THREADS)
        .map(|t| {
            let j = j.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                (0..BATCHES)
                    .map(|b| j.append_batch(batch_of(t, b)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // Single appends interleave with the batches from one more thread.
    start.wait();
    let mut singles = Vec::new();
    for i in 0..100u64 {
        singles.push(
            j.append_with(
                Record::new(1, format!("single {i}").into_bytes()),
                Durability::Buffered,
            )
            .unwrap(),
        );
    }
    let mut ranges: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new(); // start -> (end, t, b)
    for (t, h) in handles.into_iter().enumerate() {
        for (b, range) in h.join().unwrap().into_iter().enumerate() {
            let (t, b) = (t as u64, b as u64);
            assert_eq!(range.end - range.start, batch_of(t, b).len() as u64);
            ranges.insert(range.start, (range.end, t, b));
        }
    }
    j.sync().unwrap();
    let j = Arc::into_inner(j).unwrap();
    j.close().unwrap();
    let (j, report) = Journal::open(dir.path(), fs_options()).unwrap();
    assert!(report.segments >= 2, "batches should cross segments");
    let back = read_all(&j);
    // Every batch got its own first LSN.
    assert_eq!(ranges.len() as u64, BATCH_THREADS * BATCHES);
    let by_lsn: HashMap<u64, &LogRecord> = back.iter().map(|r| (r.lsn, r)).collect();
    assert_eq!(by_lsn.len(), back.len());
    let mut covered = HashSet::new();
    for (&first, &(end, t, b)) in &ranges {
        let batch = batch_of(t, b);
        let seg = by_lsn[&first].segment;
        for (k, lsn) in (first..end).enumerate() {
            let r = by_lsn[&lsn];
            assert_eq!(r.payload, batch[k].payload, "batch ({t}, {b}) record {k}");
            assert_eq!(r.segment, seg, "a batch never spans two segments");
            assert!(covered.insert(lsn));
        }
    }
    for (i, lsn) in singles.iter().enumerate() {
        assert_eq!(by_lsn[lsn].payload, format!("single {i}").into_bytes());
        assert!(covered.insert(*lsn), "single append inside a batch");
    }
    assert_eq!(covered.len(), back.len(), "nothing else in the log");
    j.close().unwrap();
}

#[test]
fn tailing_reader_sees_every_record_in_order_while_appenders_run() {
    const WRITERS: u64 = 8;
    const EACH: u64 = 400;
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), fs_options()).unwrap();
    let j = Arc::new(j);
    let start = Arc::new(Barrier::new(WRITERS as usize + 1));
    let reader = {
        let j = j.clone();
        let start = start.clone();
        std::thread::spawn(move || {
            let mut reader = j.read_from(1).unwrap();
            start.wait();
            let mut seen = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while (seen.len() as u64) < WRITERS * EACH {
                match reader.next() {
                    Some(r) => {
                        let r = r.expect("a record read while the log grows fails verification");
                        assert_eq!(r.lsn, seen.len() as u64 + 1, "tail is read in LSN order");
                        seen.push(parse(&r.payload));
                    }
                    None => {
                        assert!(std::time::Instant::now() < deadline, "reader stalled");
                        std::thread::yield_now();
                    }
                }
            }
            assert!(reader.next().is_none(), "nothing past what was appended");
            seen
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let j = j.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                for q in 0..EACH {
                    let d = if q % 5 == 0 {
                        Durability::Sync
                    } else {
                        Durability::Buffered
                    };
                    j.append_with(Record::new(3, payload(t, q)), d).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let seen = reader.join().unwrap();
    let mut next_seq: HashMap<u64, u64> = HashMap::new();
    for (t, q) in seen {
        let expected = next_seq.entry(t).or_insert(0);
        assert_eq!(
            q, *expected,
            "thread {t}: records in its own order, none missing"
        );
        *expected += 1;
    }
    assert!(next_seq.values().all(|&n| n == EACH));
    let j = Arc::into_inner(j).unwrap();
    assert!(j.read_from(1).unwrap().last().unwrap().unwrap().segment >= 2);
    j.close().unwrap();
}
