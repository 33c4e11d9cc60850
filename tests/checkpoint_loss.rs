//! Issue 10, part 1: a lost checkpoint never opens a partial store.
//!
//! Once a checkpoint has let the compactor remove the log's first
//! segments, the checkpoints are the only copy of the sessions those
//! segments held. If every checkpoint that covers them is damaged, `open`
//! must refuse, naming each checkpoint and why, and change nothing on disk
//! (not even the journal's torn-tail cut); salvage mode opens what is left
//! and deletes nothing; the trace-file sweep never deletes a file it knows
//! nothing about.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracejournal::event::{Body, EndStatus, Event, JsonText, Metadata};
use tracejournal::layout::{CHECKPOINTS_DIR, TRACES_DIR};
use tracejournal::testkit::failpoint::points;
use tracejournal::testkit::failpoint::{Action, Failpoints};
use tracejournal::testkit::store::checkpoint;
use tracejournal::testkit::wal::segment;
use tracejournal::{Clock, ManualClock};
use tracejournal::{Error, Options};
use tracejournal::{OpenReport, Store, StoreOptions};

const T0: u64 = 1_700_000_000_000;
const WAIT: Duration = Duration::from_secs(60);

fn store_options(now: u64) -> (StoreOptions, Arc<ManualClock>, Failpoints) {
    let (clock, manual) = Clock::manual(now);
    let failpoints = Failpoints::new();
    failpoints.arm(points::IDLE, Action::Observe);
    let options = StoreOptions {
        journal: Options {
            segment_size: 64 << 10,
            max_record_size: 16 << 10,
            failpoints: failpoints.clone(),
            ..Options::default()
        },
        clock,
        debounce: Duration::from_millis(100),
        checkpoint_bytes: u64::MAX,
        ..StoreOptions::default()
    };
    (options, manual, failpoints)
}

fn event(session: &str, time: u64, body: Body) -> Event {
    Event {
        session: session.into(),
        key: None,
        time: Some(time),
        body,
    }
}

fn start(session: &str, time: u64) -> Event {
    event(
        session,
        time,
        Body::SessionStart {
            metadata: Metadata::default(),
            resume: false,
        },
    )
}

fn attrs(session: &str, time: u64, n: usize) -> Event {
    let mut map = serde_json::Map::new();
    map.insert("pad".into(), serde_json::Value::String("x".repeat(n)));
    event(
        session,
        time,
        Body::Attributes {
            span: None,
            attributes: JsonText::canonical(&serde_json::Value::Object(map)),
        },
    )
}

fn end(session: &str, time: u64) -> Event {
    event(
        session,
        time,
        Body::SessionEnd {
            status: EndStatus::Ok,
            message: None,
        },
    )
}

/// Every file under `dir` (relative path) with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.insert(path.strip_prefix(root).unwrap().join(""), Vec::new());
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn segments(dir: &Path) -> Vec<u64> {
    let mut n: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| segment::parse_file_name(e.unwrap().file_name().to_str()?))
        .collect();
    n.sort();
    n
}

fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    checkpoint::list(&tracejournal::FsStorage, &dir.join(CHECKPOINTS_DIR))
        .unwrap()
        .into_iter()
        .map(|lsn| dir.join(CHECKPOINTS_DIR).join(checkpoint::file_name(lsn)))
        .collect()
}

/// A store whose first segments were removed by a checkpoint: session
/// `early` lives only in the checkpoints (and its trace file), `mid` partly
/// and `late` wholly in the log too. Two checkpoints remain; the log starts after LSN 1.
fn store_after_segment_removal() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (options, _manual, _fp) = store_options(T0);
    let (store, _) = Store::open(dir.path(), options).unwrap();
    store.ingest(start("early", T0)).unwrap();
    for i in 0..40 {
        store.ingest(attrs("early", T0 + i, 4_000)).unwrap();
    }
    store.ingest(end("early", T0 + 100)).unwrap();
    // Enough after it that the segments holding `early` are whole ones
    // below the first checkpoint.
    store.ingest(start("mid", T0 + 150)).unwrap();
    for i in 0..40 {
        store.ingest(attrs("mid", T0 + 150 + i, 4_000)).unwrap();
    }
    store.compact().unwrap();
    store.ingest(start("late", T0 + 200)).unwrap();
    for i in 0..40 {
        store.ingest(attrs("late", T0 + 200 + i, 4_000)).unwrap();
    }
    let report = store.compact().unwrap();
    assert!(report.segments_removed > 0, "{report:?}");
    store.close().unwrap();
    assert!(segments(dir.path())[0] > 1);
    assert_eq!(checkpoints(dir.path()).len(), 2);
    assert!(dir.path().join(TRACES_DIR).join("early.json").exists());
    dir
}

/// The ways a checkpoint file can be lost.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// One byte of the body flipped.
    FlippedByte,
    /// Cut in the middle of the body.
    Truncated,
    /// A body with valid checksums that does not decode (as a change of
    /// the model's structs made of every old checkpoint before v2).
    Undecodable,
}

fn damage(path: &Path, how: Damage) {
    let mut bytes = std::fs::read(path).unwrap();
    match how {
        Damage::FlippedByte => {
            let at = 40 + (bytes.len() - 40) / 2;
            bytes[at] ^= 0x20;
        }
        Damage::Truncated => bytes.truncate(40 + (bytes.len() - 40) / 2),
        Damage::Undecodable => {
            let body = b"{\"sessions\":{\"renamed_field\":1}}".to_vec();
            bytes.truncate(40);
            bytes[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
            bytes[32..36].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
            let crc = crc32fast::hash(&bytes[..36]);
            bytes[36..40].copy_from_slice(&crc.to_le_bytes());
            bytes.extend_from_slice(&body);
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// Non-zero bytes after the last record of the last segment: a torn tail
/// that the journal's recovery would cut (and keep a `.broken` copy of).
fn add_torn_tail(dir: &Path) {
    let last = *segments(dir).last().unwrap();
    let path = dir.join(segment::file_name(last));
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 64..n - 32].fill(0xab);
    std::fs::write(&path, bytes).unwrap();
}

fn refused(result: tracejournal::Result<(Store, OpenReport)>) -> (PathBuf, String) {
    match result {
        Err(Error::OpenRefused { path, reason }) => (path, reason),
        Err(other) => panic!("expected OpenRefused, got: {other}"),
        Ok((_, report)) => panic!(
            "the store opened with {} sessions and skipped {:?}",
            report.sessions, report.checkpoints_skipped
        ),
    }
}

#[test]
fn lost_checkpoints_refuse_to_open_and_change_nothing_on_disk() {
    let fixture = store_after_segment_removal();
    for how in [Damage::FlippedByte, Damage::Truncated, Damage::Undecodable] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(fixture.path(), dir.path());
        for ckpt in checkpoints(dir.path()) {
            damage(&ckpt, how);
        }
        add_torn_tail(dir.path());
        let before = tree(dir.path());

        let (options, _, _) = store_options(T0 + 10_000);
        let (path, reason) = refused(Store::open(dir.path(), options));
        assert_eq!(path, dir.path().join(CHECKPOINTS_DIR), "{how:?}");
        for ckpt in checkpoints(dir.path()) {
            let name = ckpt.file_name().unwrap().to_str().unwrap().to_string();
            assert!(
                reason.contains(&name),
                "{how:?}: {name} not named in: {reason}"
            );
        }
        assert!(reason.contains("salvage"), "{reason}");
        assert!(reason.contains("the log starts at LSN"), "{reason}");
        let why = match how {
            Damage::FlippedByte => "body checksum mismatch",
            Damage::Truncated => "the file holds",
            Damage::Undecodable => "does not decode",
        };
        assert!(reason.contains(why), "{how:?}: {reason}");

        assert!(
            tree(dir.path()) == before,
            "{how:?}: the refused open changed the directory: {:?} -> {:?}",
            before.keys().collect::<Vec<_>>(),
            tree(dir.path()).keys().collect::<Vec<_>>()
        );
        // A second try is refused the same way (nothing was "repaired").
        let (options, _, _) = store_options(T0 + 10_000);
        refused(Store::open(dir.path(), options));
        assert!(tree(dir.path()) == before, "{how:?}");
    }
}

#[test]
fn checkpoint_of_an_unreadable_version_is_a_refusal_not_a_fallback() {
    let fixture = store_after_segment_removal();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(fixture.path(), dir.path());
    // The newest checkpoint says "version 3" (a newer tracejournal wrote
    // it); the older one is valid and the log still covers it.
    let newest = checkpoints(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..36]);
    bytes[36..40].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&newest, bytes).unwrap();
    let before = tree(dir.path());
    let (options, _, _) = store_options(T0 + 10_000);
    let (path, reason) = refused(Store::open(dir.path(), options));
    assert_eq!(path, newest);
    assert!(reason.contains("format version 3"), "{reason}");
    assert!(reason.contains("newer tracejournal"), "{reason}");
    assert!(tree(dir.path()) == before);
}

#[test]
fn salvage_opens_what_is_left_and_deletes_nothing() {
    let fixture = store_after_segment_removal();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(fixture.path(), dir.path());
    for ckpt in checkpoints(dir.path()) {
        damage(&ckpt, Damage::FlippedByte);
    }
    let before = tree(dir.path());
    let (mut options, manual, _fp) = store_options(T0 + 10_000);
    options.salvage = true;
    let (store, report) = Store::open(dir.path(), options).unwrap();
    assert_eq!(report.checkpoints_skipped.len(), 2, "{report:?}");
    assert_eq!(report.checkpoint, None);
    let missing = report.missing.clone().expect("the lost LSNs are reported");
    assert_eq!(missing.start, 1);
    assert!(missing.end > 1);
    assert_eq!(
        report.unknown_trace_files,
        vec![dir.path().join(TRACES_DIR).join("early.json")]
    );
    assert!(store.session_state("early").is_none());
    // Nothing is deleted while salvaging, whatever the store does.
    store.ingest(attrs("late", manual.now_ms(), 4_000)).unwrap();
    store.compact().unwrap();
    store.close().unwrap();
    let after = tree(dir.path());
    for name in before.keys() {
        assert!(
            after.contains_key(name),
            "salvage deleted {}",
            name.display()
        );
    }
    // The salvaged store wrote a checkpoint: it opens normally again,
    // still without deleting the lost session's file.
    let (options, _, _) = store_options(T0 + 20_000);
    let (store, report) = Store::open(dir.path(), options).unwrap();
    assert_eq!(report.missing, None);
    assert!(dir.path().join(TRACES_DIR).join("early.json").exists());
    assert!(store.session_state("late").is_some());
    store.close().unwrap();
}

#[test]
fn a_skipped_checkpoint_with_a_valid_older_one_opens_and_is_reported() {
    let fixture = store_after_segment_removal();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(fixture.path(), dir.path());
    let all = checkpoints(dir.path());
    damage(&all[1], Damage::FlippedByte);
    let (options, _, _) = store_options(T0 + 10_000);
    let (store, report) = Store::open(dir.path(), options).unwrap();
    let newest = all[1].file_name().unwrap().to_str().unwrap();
    assert_eq!(report.checkpoints_skipped.len(), 1);
    assert_eq!(report.checkpoints_skipped[0].0, newest);
    assert_eq!(
        report.checkpoint,
        checkpoint::parse_file_name(all[0].file_name().unwrap().to_str().unwrap())
    );
    assert!(store.session_state("early").is_some());
    assert!(store.session_state("late").is_some());
    store.close().unwrap();

    // The CLI says so on every open that skipped one.
    let dir2 = tempfile::tempdir().unwrap();
    copy_dir(fixture.path(), dir2.path());
    damage(&checkpoints(dir2.path())[1], Damage::FlippedByte);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracejournal"))
        .args(["sessions", "--dir"])
        .arg(dir2.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("warning: skipped checkpoint {newest}")),
        "{stderr}"
    );
    // And the CLI refuses a lost checkpoint, naming it, unless --salvage.
    for ckpt in checkpoints(dir2.path()) {
        damage(&ckpt, Damage::Truncated);
    }
    let before = tree(dir2.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracejournal"))
        .args(["sessions", "--dir"])
        .arg(dir2.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refusing to open"), "{stderr}");
    assert!(tree(dir2.path()) == before);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tracejournal"))
        .args(["sessions", "--salvage", "--dir"])
        .arg(dir2.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("are lost"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("late"));
}

#[test]
fn open_sweep_removes_retired_leftovers_and_temps_but_keeps_unknown_files() {
    let dir = tempfile::tempdir().unwrap();
    let (mut options, manual, fp) = store_options(T0);
    options.max_trace_files = Some(1);
    let (store, _) = Store::open(dir.path(), options).unwrap();
    for id in ["old", "new"] {
        store.ingest(start(id, manual.now_ms())).unwrap();
        manual.advance(100);
        store.ingest(end(id, manual.now_ms())).unwrap();
    }
    // Retention retires `old`: a Retire entry, then its file goes.
    let retired_file = store.trace_path("old");
    let deadline = std::time::Instant::now() + WAIT;
    while store.session_state("old").is_some() || retired_file.exists() {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        let h = fp.hits(points::IDLE);
        manual.advance(200);
        assert!(fp.wait_hits(points::IDLE, h + 1, WAIT));
    }
    store.close().unwrap();

    let traces = dir.path().join(TRACES_DIR);
    // A crash between the Retire entry and the file's removal leaves the
    // file; a crashed publish leaves a temp; and someone put a file of
    // their own in traces/.
    std::fs::write(&retired_file, b"{\"sessionId\":\"old\"}").unwrap();
    std::fs::write(traces.join(".new.json.7.tmp"), b"half").unwrap();
    let stranger = traces.join("stranger.json");
    std::fs::write(&stranger, b"{\"mine\":true}").unwrap();

    let (options, _, _) = store_options(T0 + 10_000);
    let (store, report) = Store::open(dir.path(), options).unwrap();
    assert!(
        !retired_file.exists(),
        "the retired session's leftover stays"
    );
    assert!(!traces.join(".new.json.7.tmp").exists());
    assert_eq!(report.swept, 2, "{report:?}");
    assert_eq!(std::fs::read(&stranger).unwrap(), b"{\"mine\":true}");
    assert_eq!(report.unknown_trace_files, vec![stranger.clone()]);
    store.close().unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
