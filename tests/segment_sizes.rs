//! Issue 10, part 4: small stores stay small. Segments start small and
//! grow fourfold up to `segment_size`; each keeps its size; the spare segment the
//! writer had ready survives a clean close under a name that open adopts and
//! that recovery never reports as stale.

mod common;

use common::{mem_dir, read_all, MemStorage};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use tracejournal::testkit::wal::segment;
use tracejournal::{Durability, Journal, Options, Record};

/// The sizes of the segment files in `dir`, in log order.
fn segment_sizes(storage: &MemStorage, dir: &Path) -> Vec<u64> {
    let mut names: Vec<String> = storage
        .names(dir)
        .into_iter()
        .filter(|n| segment::parse_file_name(n).is_some())
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| storage.read(&dir.join(n)).len() as u64)
        .collect()
}

/// Appends `n` records of `len` bytes (Buffered, pipelined) and syncs.
fn append_n(j: &Journal, n: usize, len: usize) {
    let tickets: Vec<_> = (0..n)
        .map(|i| {
            let mut payload = format!("record {i} ").into_bytes();
            payload.resize(len, b'.');
            j.submit_with(Record::new(1, payload), Durability::Buffered)
                .unwrap()
        })
        .collect();
    for t in tickets {
        t.wait().unwrap();
    }
    j.sync().unwrap();
}

/// The files directly in `dir` (name, length).
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_new_journal_with_default_options_takes_about_one_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(tmp.path(), Options::default()).unwrap();
    j.append(Record::new(1, b"one small record".to_vec()))
        .unwrap();
    j.close().unwrap();
    let listed = files(tmp.path());
    let total: u64 = listed.iter().map(|(_, len)| len).sum();
    let blocks: u64 = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum();
    assert_eq!(
        listed
            .iter()
            .find(|(n, _)| n == &segment::file_name(1))
            .map(|(_, len)| *len),
        Some(1 << 20),
        "{listed:?}"
    );
    assert!(total <= 1 << 20, "{total} bytes: {listed:?}");
    assert!(blocks <= 1 << 20, "{blocks} bytes allocated: {listed:?}");
}

#[test]
fn segments_grow_fourfold_from_the_first_size_up_to_segment_size_and_keep_their_sizes() {
    let storage = MemStorage::new();
    let dir = mem_dir();
    let options = || Options {
        segment_size: 4 << 20,
        storage: Arc::new(storage.clone()),
        ..Options::default()
    };
    let (j, _) = Journal::open(&dir, options()).unwrap();
    // 1 + 4 MiB of segments, then into the third.
    let n = 5_400;
    append_n(&j, n, 1000);
    j.close().unwrap();
    let sizes = segment_sizes(&storage, &dir);
    assert_eq!(sizes, vec![1 << 20, 4 << 20, 4 << 20]);

    // Reopened, every segment keeps its size and every record reads back;
    // the next segment is again of the full size.
    let (j, report) = Journal::open(&dir, options()).unwrap();
    assert_eq!(report.records, n as u64);
    assert_eq!(read_all(&j).len(), n);
    append_n(&j, 4_500, 1000);
    j.close().unwrap();
    assert_eq!(
        segment_sizes(&storage, &dir),
        vec![1 << 20, 4 << 20, 4 << 20, 4 << 20]
    );
}

#[test]
fn a_record_larger_than_the_next_size_gets_a_segment_that_holds_it() {
    let storage = MemStorage::new();
    let dir = mem_dir();
    let options = Options {
        segment_size: 1 << 20,
        first_segment_size: 4096,
        max_record_size: 512 << 10,
        storage: Arc::new(storage.clone()),
        ..Options::default()
    };
    let (j, _) = Journal::open(&dir, options).unwrap();
    j.append(Record::new(1, vec![1; 100])).unwrap();
    // Four times 4 KiB is too small for this one: the next segment fits it.
    let big = 300 << 10;
    let lsn = j.append(Record::new(1, vec![2; big])).unwrap();
    assert_eq!(lsn, 2);
    // Then growth goes on from there, capped at segment_size.
    j.append(Record::new(1, vec![3; 400 << 10])).unwrap();
    j.append(Record::new(1, vec![4; 400 << 10])).unwrap();
    let records = read_all(&j);
    assert_eq!(records.len(), 4);
    assert_eq!(records[1].payload, vec![2; big]);
    j.close().unwrap();
    let sizes = segment_sizes(&storage, &dir);
    let second = 64 + 32 + big as u64;
    assert_eq!(sizes[0], 4096);
    assert_eq!(sizes[1], second);
    assert_eq!(sizes[2], (4 * second).min(1 << 20));
    assert!(sizes.iter().all(|&s| s <= 1 << 20), "{sizes:?}");
}

#[test]
fn the_spare_survives_a_clean_close_is_never_stale_and_is_adopted_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let options = || Options {
        segment_size: 1 << 20,
        ..Options::default()
    };
    let (j, _) = Journal::open(dir, options()).unwrap();
    // More than 1/16 of the segment: the writer asks for the spare.
    append_n(&j, 100, 1000);
    j.close().unwrap();

    let listed = files(dir);
    assert!(
        listed.iter().all(|(n, _)| !segment::is_temp_name(n)),
        "a temporary segment outlived a clean close: {listed:?}"
    );
    let spare = dir.join(segment::spare_name(2));
    assert_eq!(
        std::fs::metadata(&spare).map(|m| m.len()).ok(),
        Some(1 << 20),
        "{listed:?}"
    );
    // Neither `verify` (a dry run) nor an open calls it stale.
    let report = Journal::inspect(dir, &options()).unwrap();
    assert!(report.removed_temp_files.is_empty(), "{report:?}");
    let inode = std::fs::metadata(&spare).unwrap().ino();

    // A stray spare for another segment, and one too small to be a
    // segment, are removed at open; the right one is kept.
    std::fs::write(dir.join(segment::spare_name(9)), vec![0u8; 4096]).unwrap();
    let (j, report) = Journal::open(dir, options()).unwrap();
    assert!(report.removed_temp_files.is_empty(), "{report:?}");
    assert!(!dir.join(segment::spare_name(9)).exists());
    assert!(spare.exists());
    // Filling the first segment installs the adopted spare as segment 2.
    append_n(&j, 1_000, 1000);
    j.close().unwrap();
    let second = dir.join(segment::file_name(2));
    assert_eq!(std::fs::metadata(&second).unwrap().ino(), inode);
    assert!(!spare.exists());
    let (j, report) = Journal::open(dir, options()).unwrap();
    assert_eq!(report.records, 1_100);
    assert_eq!(read_all(&j).len(), 1_100);
    j.close().unwrap();
}

#[test]
fn a_spare_of_the_wrong_size_is_replaced_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let options = || Options {
        segment_size: 1 << 20,
        ..Options::default()
    };
    let (j, _) = Journal::open(dir, options()).unwrap();
    j.append(Record::new(1, b"a".to_vec())).unwrap();
    j.close().unwrap();
    // Too small to be a segment, and not a multiple of 8.
    std::fs::write(dir.join(segment::spare_name(2)), vec![0u8; 77]).unwrap();
    let (j, _) = Journal::open(dir, options()).unwrap();
    assert!(!dir.join(segment::spare_name(2)).exists());
    append_n(&j, 1_100, 1000);
    j.close().unwrap();
    assert_eq!(
        std::fs::metadata(dir.join(segment::file_name(2)))
            .unwrap()
            .len(),
        1 << 20
    );
    let (j, report) = Journal::open(dir, options()).unwrap();
    assert_eq!(report.records, 1_101);
    j.close().unwrap();
}

// ------------------------------------------------------- through the CLI

const SESSION: &str = include_str!("../examples/session.jsonl");

/// Runs the tool with `--dir dir` and `args`, feeding `stdin`; returns
/// (exit code, stdout, stderr).
fn cli(dir: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracejournal"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tracejournal");
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.as_bytes().to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        out.status.code().expect("exited normally"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Every regular file under `dir`: (path relative to `dir`, length,
/// allocated bytes).
fn tree(dir: &Path) -> Vec<(String, u64, u64)> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, u64, u64)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                walk(&e.path(), &format!("{name}/"), out);
            } else {
                out.push((name, meta.len(), meta.blocks() * 512));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

#[test]
fn a_store_holding_the_example_session_takes_under_8_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let (code, stdout, stderr) = cli(&dir, &["ingest"], SESSION);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, _, stderr) = cli(&dir, &["sessions"], "");
    assert_eq!(code, 0, "{stderr}");
    let files = tree(&dir);
    let len: u64 = files.iter().map(|f| f.1).sum();
    let allocated: u64 = files.iter().map(|f| f.2).sum();
    assert!(len < 8 << 20, "{len} bytes: {files:?}");
    assert!(
        allocated < 8 << 20,
        "{allocated} bytes allocated: {files:?}"
    );
    assert!(
        files.iter().any(|f| f.0.starts_with("traces/")),
        "{files:?}"
    );
}

#[test]
fn verify_never_reports_the_engines_own_spare_as_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    // About 6.3 MB: more than 1/16 of the active segment (with fixed 64 MiB
    // segments too), so the writer has a spare ready when the tool closes
    // the journal.
    let lines: String = (0..18_000)
        .map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "x".repeat(300)))
        .collect();
    let (code, _, stderr) = cli(&dir, &["append", "--durability", "buffered"], &lines);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = cli(&dir, &["verify"], "");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        !stdout.contains("stale") && !stdout.contains("temporary"),
        "{stdout}"
    );
    let files = tree(&dir);
    assert!(
        files
            .iter()
            .any(|f| segment::parse_spare_name(&f.0).is_some()),
        "no spare kept: {files:?}"
    );
    assert!(stdout.contains("status: clean"), "{stdout}");
    assert!(stdout.contains("records: 18000"), "{stdout}");
}

#[test]
fn stats_counts_every_file_of_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let (code, _, stderr) = cli(&dir, &["ingest"], SESSION);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = cli(&dir, &["compact"], "");
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = cli(&dir, &["stats"], "");
    assert_eq!(code, 0, "{stderr}");
    let files = tree(&dir);
    let count = |sub: &str| {
        let of: Vec<_> = files
            .iter()
            .filter(|f| f.0.starts_with(&format!("{sub}/")))
            .collect();
        (of.len(), of.iter().map(|f| f.1).sum::<u64>())
    };
    let (checkpoints, checkpoint_bytes) = count("checkpoints");
    let (traces, trace_bytes) = count("traces");
    assert_eq!((checkpoints, traces), (1, 1), "{files:?}");
    assert!(
        stdout.contains(&format!(
            "\ncheckpoints/: 1 file, {checkpoint_bytes} bytes\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\ntraces/: 1 file, {trace_bytes} bytes\n")),
        "{stdout}"
    );
    let total: u64 = files.iter().map(|f| f.1).sum();
    assert!(
        stdout.contains(&format!(
            "\ndisk bytes: {total} (all {} files of the store",
            files.len()
        )),
        "{stdout}"
    );
}
