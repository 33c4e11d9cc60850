//! The `tracejournal` command-line tool, run as a child process on
//! temporary directories.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const EXAMPLE: &str = include_str!("../examples/events.jsonl");
const FIRST_SEGMENT: &str = "00000000000000000001.seg";
const FRAME_HEADER: u64 = 32;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the tool with `--dir dir` and `args`, feeding `stdin`.
fn run(dir: &Path, args: &[&str], stdin: &str) -> Run {
    let mut all: Vec<&std::ffi::OsStr> = vec!["--dir".as_ref(), dir.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    run_raw(&all, stdin.as_bytes())
}

fn run_raw<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracejournal"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tracejournal");
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    // The tool may stop reading early (a bad line): ignore a broken pipe.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let output = child.wait_with_output().expect("run tracejournal");
    feeder.join().unwrap();
    Run {
        code: output
            .status
            .code()
            .expect("exited normally, not by a signal"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

fn journal_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    (tmp, dir)
}

fn example_lines() -> Vec<&'static str> {
    EXAMPLE.lines().filter(|l| !l.trim().is_empty()).collect()
}

fn append_ok(dir: &Path, input: &str) -> Run {
    let r = run(dir, &["append"], input);
    assert_eq!(r.code, 0, "append failed: {}", r.stderr);
    r
}

/// The dump of `dir`, parsed line by line.
fn dump(dir: &Path) -> Vec<Value> {
    let r = run(dir, &["dump"], "");
    assert_eq!(r.code, 0, "dump failed: {}", r.stderr);
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("dump line is JSON"))
        .collect()
}

fn align8(n: u64) -> u64 {
    n.div_ceil(8) * 8
}

/// Offset just past the last record, from dump's offsets and the length
/// of the last payload appended.
fn valid_end(dir: &Path, last_payload: &str) -> u64 {
    let records = dump(dir);
    let last = records.last().expect("at least one record");
    last["offset"].as_u64().unwrap() + align8(FRAME_HEADER + last_payload.len() as u64)
}

fn read_segment(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(FIRST_SEGMENT)).unwrap()
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn append_example_prints_count_and_last_lsn() {
    let (_tmp, dir) = journal_dir();
    let n = example_lines().len();
    assert!(n >= 25, "the example has {n} lines");
    let r = append_ok(&dir, EXAMPLE);
    assert_eq!(r.stdout, format!("appended {n} records, last LSN {n}\n"));
    assert_eq!(r.stderr, "");
    // A second run continues the LSNs.
    let r = append_ok(&dir, EXAMPLE);
    assert_eq!(
        r.stdout,
        format!("appended {n} records, last LSN {}\n", 2 * n)
    );
}

#[test]
fn append_of_nothing_says_so() {
    let (_tmp, dir) = journal_dir();
    let r = append_ok(&dir, "\n   \n\t\n");
    assert_eq!(r.stdout, "appended 0 records\n");
    assert!(dump(&dir).is_empty());
}

#[test]
fn dump_round_trips_the_payloads() {
    let (_tmp, dir) = journal_dir();
    append_ok(&dir, EXAMPLE);
    let r = run(&dir, &["dump"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = example_lines();
    let dumped: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(dumped.len(), lines.len());
    let mut previous_offset = 0;
    for (i, (out, input)) in dumped.iter().zip(&lines).enumerate() {
        let v: Value = serde_json::from_str(out).unwrap();
        let lsn = i as u64 + 1;
        assert_eq!(v["lsn"], lsn);
        assert_eq!(v["segment"], 1);
        assert_eq!(v["type"], 1);
        assert!(v.get("payload_hex").is_none());
        let offset = v["offset"].as_u64().unwrap();
        assert!(offset > previous_offset && offset.is_multiple_of(8));
        previous_offset = offset;
        let original: Value = serde_json::from_str(input).unwrap();
        assert_eq!(v["payload"], original);
        // Byte for byte: key order, escapes and non-ASCII text survive.
        assert_eq!(
            *out,
            format!(
                "{{\"lsn\":{lsn},\"segment\":1,\"offset\":{offset},\"type\":1,\"payload\":{input}}}"
            )
        );
    }
}

#[test]
fn dump_from_an_lsn_and_out_of_range() {
    let (_tmp, dir) = journal_dir();
    append_ok(&dir, EXAMPLE);
    let n = example_lines().len() as u64;
    let r = run(&dir, &["dump", "--from", "29"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lsns: Vec<u64> = r
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["lsn"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(lsns, (29..=n).collect::<Vec<_>>());
    let r = run(&dir, &["dump", "--from", &(n + 1).to_string()], "");
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    let r = run(&dir, &["dump", "--from", &(n + 5).to_string()], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("error: LSN "), "{}", r.stderr);
    assert_eq!(r.stdout, "");
}

#[test]
fn blank_lines_are_skipped_and_lines_trimmed() {
    let (_tmp, dir) = journal_dir();
    let r = append_ok(&dir, "\n  {\"a\": 1}  \r\n\n\t[1, 2]\t\n\"x\"");
    assert_eq!(r.stdout, "appended 3 records, last LSN 3\n");
    let records = dump(&dir);
    let payloads: Vec<&Value> = records.iter().map(|r| &r["payload"]).collect();
    assert_eq!(
        payloads,
        [
            &serde_json::json!({"a": 1}),
            &serde_json::json!([1, 2]),
            &serde_json::json!("x")
        ]
    );
}

#[test]
fn bad_line_appends_the_lines_before_it_and_exits_1() {
    let (_tmp, dir) = journal_dir();
    let input = "{\"n\":1}\n{\"n\":2}\nnot json at all\n{\"n\":4}\n";
    let r = run(&dir, &["append"], input);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "appended 2 records, last LSN 2\n");
    assert_eq!(
        r.stderr,
        "error: line 3 is not valid JSON: expected ident at line 1 column 2\n"
    );
    let records = dump(&dir);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["payload"], serde_json::json!({"n": 2}));
}

#[test]
fn bad_first_line_appends_nothing() {
    let (_tmp, dir) = journal_dir();
    let r = run(&dir, &["append"], "\n{\"open\": \n{\"n\":2}\n");
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "appended 0 records\n");
    assert!(
        r.stderr.starts_with("error: line 2 is not valid JSON: "),
        "{}",
        r.stderr
    );
    assert!(dump(&dir).is_empty());
}

#[test]
fn invalid_utf8_is_an_error_not_a_panic() {
    let (_tmp, dir) = journal_dir();
    let r = run_raw(
        &["--dir".as_ref(), dir.as_os_str(), "append".as_ref()],
        b"{\"ok\":true}\n\"\xff\xfe\"\n",
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "appended 1 records, last LSN 1\n");
    assert!(
        r.stderr.starts_with("error: line 2 is not valid JSON"),
        "{}",
        r.stderr
    );
    assert_eq!(dump(&dir).len(), 1);
}

#[test]
fn every_durability_appends() {
    let (_tmp, dir) = journal_dir();
    for (i, d) in ["sync", "buffered", "none"].iter().enumerate() {
        let r = run(&dir, &["append", "--durability", d], EXAMPLE);
        assert_eq!(r.code, 0, "{d}: {}", r.stderr);
        let n = example_lines().len() * (i + 1);
        assert!(
            r.stdout.ends_with(&format!("last LSN {n}\n")),
            "{}",
            r.stdout
        );
    }
    assert_eq!(dump(&dir).len(), 3 * example_lines().len());
    let r = run(&dir, &["append", "--durability", "eventually"], "");
    assert_eq!(r.code, 2, "a usage error: {}", r.stderr);
}

#[test]
fn dump_shows_non_json_payloads_as_hex() {
    let (_tmp, dir) = journal_dir();
    {
        let (j, _) = tracejournal::Journal::open(&dir, tracejournal::Options::default()).unwrap();
        j.append(tracejournal::Record::new(7, vec![0x00, 0xff, b'{']))
            .unwrap();
        j.append(tracejournal::Record::new(
            1,
            b"{\n  \"pretty\": [1, 2]\n}".to_vec(),
        ))
        .unwrap();
        j.close().unwrap();
    }
    let r = run(&dir, &["dump"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "{\"lsn\":1,\"segment\":1,\"offset\":64,\"type\":7,\"payload\":null,\"payload_hex\":\"00ff7b\"}\n\
         {\"lsn\":2,\"segment\":1,\"offset\":104,\"type\":1,\"payload\":{\"pretty\":[1,2]}}\n"
    );
    let r = run(&dir, &["stats"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("\nrecords: 2\n"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("  type 1 (json): 1 records, 22 payload bytes\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("  type 7: 1 records, 3 payload bytes\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn verify_a_clean_journal() {
    let (_tmp, dir) = journal_dir();
    append_ok(&dir, EXAMPLE);
    let n = example_lines().len();
    let before = read_segment(&dir);
    let r = run(&dir, &["verify"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("\nsegments: 1\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("\nrecords: {n}\n")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("\nLSNs: 1 to {n} (next {})\n", n + 1)),
        "{}",
        r.stdout
    );
    assert!(r.stdout.ends_with("status: clean\n"), "{}", r.stdout);
    assert!(!r.stdout.contains("torn"), "{}", r.stdout);
    assert_eq!(r.stderr, "");
    assert_eq!(read_segment(&dir), before, "verify changed the segment");
}

#[test]
fn verify_reports_a_torn_tail_and_repair_cuts_it() {
    let (_tmp, dir) = journal_dir();
    append_ok(&dir, EXAMPLE);
    let n = example_lines().len();
    let end = valid_end(&dir, example_lines().last().unwrap());
    let segment = dir.join(FIRST_SEGMENT);
    assert!(
        read_segment(&dir)[end as usize..end as usize + 64]
            .iter()
            .all(|&b| b == 0),
        "the computed end is not the end of the records"
    );
    let garbage = [0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03];
    write_at(&segment, end, &garbage);
    let damaged = read_segment(&dir);

    let r = run(&dir, &["verify"], "");
    assert_eq!(r.code, 0, "a torn tail is not corruption: {}", r.stderr);
    let expected = format!(
        "torn tail: {} at offset {end}, {} bytes: ",
        segment.display(),
        garbage.len()
    );
    assert!(r.stdout.contains(&expected), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("run `tracejournal verify --repair` or open the journal to cut it"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("\nrecords: {n}\n")),
        "{}",
        r.stdout
    );
    assert_eq!(
        read_segment(&dir),
        damaged,
        "verify without --repair changed the segment"
    );
    assert!(!dir.join(format!("{FIRST_SEGMENT}.broken")).exists());

    let r = run(&dir, &["verify", "--repair"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let broken = dir.join(format!("{FIRST_SEGMENT}.broken"));
    let expected = format!(
        "cut torn tail: {} at offset {end}, {} bytes: ",
        segment.display(),
        garbage.len()
    );
    assert!(r.stdout.contains(&expected), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("  copy of the cut bytes: {}\n", broken.display())),
        "{}",
        r.stdout
    );
    assert!(r.stdout.ends_with("status: repaired\n"), "{}", r.stdout);
    assert_eq!(std::fs::read(&broken).unwrap(), garbage);
    let repaired = read_segment(&dir);
    assert!(repaired[end as usize..end as usize + garbage.len()]
        .iter()
        .all(|&b| b == 0));
    assert_eq!(repaired[..end as usize], damaged[..end as usize]);

    let r = run(&dir, &["verify"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.ends_with("status: clean\n"), "{}", r.stdout);
    assert_eq!(dump(&dir).len(), n);
    let r = append_ok(&dir, "{\"after\":\"repair\"}\n");
    assert_eq!(
        r.stdout,
        format!("appended 1 records, last LSN {}\n", n + 1)
    );
}

#[test]
fn verify_fails_on_a_flipped_byte_in_the_first_record() {
    let (_tmp, dir) = journal_dir();
    let lines = example_lines();
    // Separate runs, so the later records are in later commit groups: they
    // were synced after the first one, so its damage cannot be a torn write.
    append_ok(&dir, &format!("{}\n", lines[0]));
    append_ok(&dir, &lines[1..].join("\n"));
    let segment = dir.join(FIRST_SEGMENT);
    let first = dump(&dir)[0]["offset"].as_u64().unwrap();
    assert_eq!(first, 64);
    let at = first + FRAME_HEADER + 10;
    let mut bytes = read_segment(&dir);
    write_at(&segment, at, &[bytes[at as usize] ^ 0x20]);
    bytes[at as usize] ^= 0x20;

    let r = run(&dir, &["verify"], "");
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.starts_with("error: corruption in "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&segment.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("at byte offset {first}")),
        "{}",
        r.stderr
    );

    // Repair refuses too, and changes nothing.
    let r = run(&dir, &["verify", "--repair"], "");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!("at byte offset {first}")),
        "{}",
        r.stderr
    );
    assert_eq!(read_segment(&dir), bytes);
    assert!(!dir.join(format!("{FIRST_SEGMENT}.broken")).exists());

    let r = run(&dir, &["dump"], "");
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert!(
        r.stderr.starts_with("error: corruption in "),
        "{}",
        r.stderr
    );
}

#[test]
fn stats_prints_the_counts() {
    let (_tmp, dir) = journal_dir();
    append_ok(&dir, EXAMPLE);
    let n = example_lines().len();
    let payload: usize = example_lines().iter().map(|l| l.len()).sum();
    let r = run(&dir, &["stats"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("\nsegments: 1\n"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("\n  {FIRST_SEGMENT}  {} bytes\n", 64 << 20)),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("\nrecords: {n}\n")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("\nLSNs: 1 to {n} (next {})\n", n + 1)),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("\npayload bytes: {payload}\n")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "\n  type 1 (json): {n} records, {payload} payload bytes\n"
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\nrecovery time: "), "{}", r.stdout);
}

#[test]
fn reading_commands_never_create_a_journal() {
    let (_tmp, dir) = journal_dir();
    for args in [
        &["dump"][..],
        &["verify"],
        &["verify", "--repair"],
        &["stats"],
    ] {
        let r = run(&dir, args, "");
        assert_eq!(r.code, 1, "{args:?}");
        assert_eq!(
            r.stderr,
            format!(
                "error: journal directory {} does not exist\n",
                dir.display()
            )
        );
        assert!(!dir.exists(), "{args:?} created the directory");
    }
    std::fs::create_dir(&dir).unwrap();
    let r = run(&dir, &["dump"], "");
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    let r = run(&dir, &["verify", "--repair"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.ends_with("status: empty (no segment files)\n"),
        "{}",
        r.stdout
    );
    let r = run(&dir, &["stats"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("\nrecords: 0\n"), "{}", r.stdout);
    assert!(!dir.join(FIRST_SEGMENT).exists());
}

#[test]
fn usage_errors_exit_2_and_a_locked_journal_exits_1() {
    let r = run_raw(&["dump"], b"");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--dir"), "{}", r.stderr);
    let (_tmp, dir) = journal_dir();
    let r = run(&dir, &["frobnicate"], "");
    assert_eq!(r.code, 2);

    let (journal, _) = tracejournal::Journal::open(&dir, tracejournal::Options::default()).unwrap();
    let r = run(&dir, &["append"], "{}\n");
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.starts_with("error: journal directory "),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("already open"), "{}", r.stderr);
    journal.close().unwrap();
    append_ok(&dir, "{}\n");
}

#[test]
fn dump_warns_on_stderr_when_opening_cuts_a_torn_tail() {
    let (_tmp, dir) = journal_dir();
    append_ok(&dir, EXAMPLE);
    let n = example_lines().len();
    let end = valid_end(&dir, example_lines().last().unwrap());
    let segment = dir.join(FIRST_SEGMENT);
    write_at(&segment, end, &[9, 9, 9]);
    let r = run(&dir, &["dump"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), n);
    assert_eq!(
        r.stderr,
        format!(
            "warning: recovery cut a torn tail: {} at offset {end}, 3 bytes: {} (copy kept in {}.broken)\n",
            segment.display(),
            "record belongs to another segment or cycle",
            segment.display()
        )
    );
    let r = run(&dir, &["dump"], "");
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}
