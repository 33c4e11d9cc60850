//! The `tracejournal` command-line tool, run as a child process on
//! temporary directories.

#[path = "common/schema.rs"]
mod schema;

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
        // Never a store of the environment's (the tests give --dir).
        .env_remove("TRACEJOURNAL_DIR")
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
            .contains(&format!("\n  {FIRST_SEGMENT}  {} bytes\n", 1 << 20)),
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
    assert!(r.stdout.contains("\nscan time: "), "{}", r.stdout);
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
    // No --dir, no TRACEJOURNAL_DIR and no HOME: no directory to use.
    let r = run_with_env(&["dump"], &[], "");
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
fn dump_stops_at_a_torn_tail_says_so_on_stderr_and_cuts_nothing() {
    let (_tmp, dir) = journal_dir();
    append_ok(&dir, EXAMPLE);
    let n = example_lines().len();
    let end = valid_end(&dir, example_lines().last().unwrap());
    let segment = dir.join(FIRST_SEGMENT);
    write_at(&segment, end, &[9, 9, 9]);
    let before = std::fs::read(&segment).unwrap();
    let expected = format!(
        "note: reading stopped at the last whole record: {} at offset {end}, 3 bytes: {} \
         (a write in progress, or a torn tail that the next open for writing cuts)\n",
        segment.display(),
        "record belongs to another segment or cycle",
    );
    // Read-only: the same note every time, and the bytes stay.
    for _ in 0..2 {
        let r = run(&dir, &["dump"], "");
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout.lines().count(), n);
        assert_eq!(r.stderr, expected);
    }
    assert_eq!(std::fs::read(&segment).unwrap(), before);
    assert!(!dir.join(format!("{FIRST_SEGMENT}.broken")).exists());
    // A writer's open cuts it.
    let r = run(&dir, &["verify", "--repair"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&dir, &["dump"], "");
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

// ------------------------------------------------- the session store CLI

const SESSION: &str = include_str!("../examples/session.jsonl");
const TYPED: &str = include_str!("../examples/typed.jsonl");
const SESSION_ID: &str = "9b2e4c71-5f0a-4d3e-8c16-a7e2f94b0d58";
const TYPED_ID: &str = "opencode/ses_7Hq2XkW9pLm4";

fn lines_of(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// Runs the tool in `cwd` with exactly `args`.
fn run_in(cwd: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_tracejournal"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run tracejournal");
    Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Checks an ingest summary line: counts exact, timing and rate free.
fn assert_ingested(r: &Run, events: usize, duplicates: usize, sessions: usize, rejected: usize) {
    let dups = match duplicates {
        0 => String::new(),
        1 => " (1 duplicate)".to_string(),
        n => format!(" ({n} duplicates)"),
    };
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("{n} {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let start = format!(
        "ingested {}{dups} into {} in ",
        plural(events, "event", "events"),
        plural(sessions, "session", "sessions")
    );
    let end = format!("; {rejected} rejected\n");
    assert!(
        r.stdout.starts_with(&start) && r.stdout.ends_with(&end) && r.stdout.lines().count() == 1,
        "expected `{start}... s (... events/s){end}`, got {:?} (stderr {:?})",
        r.stdout,
        r.stderr
    );
}

fn show_json(dir: &Path, id: &str) -> Value {
    let r = run(dir, &["show", id, "--pretty"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let trace = serde_json::from_str(&r.stdout).expect("show --pretty prints JSON");
    schema::validate_trace(&trace);
    trace
}

fn spans_of<'a>(trace: &'a Value, kind: &str) -> Vec<&'a Value> {
    trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .filter(|s| s["kind"] == kind)
        .collect()
}

/// Both examples ingest with nothing rejected, list, and show as trace
/// files. Catches: an example the parser refuses, a summary line that
/// miscounts, a `show` that prints something other than the trace file, a
/// table without the session.
#[test]
fn examples_ingest_list_and_show() {
    let (_tmp, dir) = journal_dir();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/session.jsonl");
    let r = run(&dir, &["ingest", path.to_str().unwrap()], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert_ingested(&r, lines_of(SESSION).len(), 0, 1, 0);
    // From standard input, with the default of 8 workers.
    let r = run(&dir, &["ingest"], TYPED);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ingested(&r, lines_of(TYPED).len(), 0, 1, 0);

    let r = run(&dir, &["sessions"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("ID "), "{}", r.stdout);
    for word in ["STATUS", "DURATION", "TOKENS", "COST", "TOOLS", "TITLE"] {
        assert!(lines[0].contains(word), "{}", r.stdout);
    }
    let row = |prefix: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no row for {prefix}: {}", r.stdout))
    };
    let hooks = row("9b2e4c71-5f0a…");
    assert!(hooks.contains(" completed "), "{hooks}");
    assert!(hooks.contains("Brute-force protection"), "{hooks}");
    let typed = row("opencode/ses_…");
    assert!(typed.contains(" completed "), "{typed}");
    assert!(typed.contains("2025-03-15 10:00:00"), "{typed}");
    assert!(typed.contains("26.2s"), "{typed}");
    assert!(typed.contains("60.8k"), "{typed}");
    assert!(typed.contains("$0.05"), "{typed}");
    assert!(typed.ends_with("Fix the flaky date test"), "{typed}");
    // Newest first: the hook session was stamped now, the typed one in 2025-03.
    let pos = |l: &str| lines.iter().position(|x| *x == l).unwrap();
    assert!(pos(hooks) < pos(typed), "{}", r.stdout);

    let r = run(&dir, &["sessions", "--json"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let typed = list.iter().find(|s| s["id"] == TYPED_ID).expect("full id");
    assert_eq!(typed["status"], "completed");
    assert_eq!(typed["tokens"], 60_755);
    assert_eq!(typed["toolCalls"], 5);
    assert_eq!(typed["startedAt"], 1_742_032_800_000u64);
    assert!(list.iter().any(|s| s["id"] == SESSION_ID));

    // The hook session: every tool call of the file, the failures as
    // errors, the subagent's calls under its span.
    let trace = show_json(&dir, SESSION_ID);
    assert_eq!(trace["sessionId"], SESSION_ID);
    assert_eq!(trace["summary"]["status"], "completed");
    let tool_ids: std::collections::BTreeSet<String> = lines_of(SESSION)
        .iter()
        .flat_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let mut ids = vec![v["tool_use_id"].as_str().map(str::to_string)];
            if let Some(calls) = v["tool_calls"].as_array() {
                ids.extend(
                    calls
                        .iter()
                        .map(|c| c["tool_use_id"].as_str().map(str::to_string)),
                );
            }
            ids.into_iter().flatten()
        })
        .collect();
    let tools = spans_of(&trace, "tool");
    assert_eq!(tools.len(), tool_ids.len());
    assert_eq!(trace["summary"]["totalToolCalls"], tool_ids.len());
    let failed: Vec<_> = tools.iter().filter(|s| s["status"] == "error").collect();
    assert_eq!(failed.len(), 2, "the two PostToolUseFailure events");
    assert!(failed[0]["statusMessage"]
        .as_str()
        .unwrap()
        .contains("TooManyAttempts"));
    let subagent = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "subagent Explore")
        .expect("the subagent's span");
    assert_eq!(
        tools
            .iter()
            .filter(|t| t["parentSpanId"] == subagent["spanId"])
            .count(),
        2
    );
    assert_eq!(spans_of(&trace, "user-message").len(), 3);

    // The typed session: generations with tokens, cost and finish reason.
    let trace = show_json(&dir, TYPED_ID);
    let gens = spans_of(&trace, "generation");
    assert_eq!(gens.len(), 4);
    assert_eq!(gens[0]["tokens"]["total"], 12_932);
    assert_eq!(gens[0]["finishReason"], "tool_calls");
    assert_eq!(gens[3]["finishReason"], "stop");
    assert_eq!(
        trace["metadata"]["tags"],
        serde_json::json!(["ci", "flaky-test"])
    );
    assert_eq!(trace["summary"]["totalGenerations"], 4);

    // Without --pretty: exactly the bytes of the trace file on disk.
    let r = run(&dir, &["show", TYPED_ID], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = dir
        .join("traces")
        .join(tracejournal::layout::trace_file_name(TYPED_ID));
    let on_disk = std::fs::read_to_string(&file).unwrap();
    assert_eq!(r.stdout, format!("{on_disk}\n"));
    assert_eq!(r.stdout.lines().count(), 1);
}

/// A bad line is reported with its number and skipped; the good lines
/// around it are stored; the exit code says something was rejected.
/// Catches: stopping at the first bad line, line numbers that skip blank
/// lines, exit code 0 after a rejection, one failure rejecting a session.
#[test]
fn ingest_reports_bad_lines_and_keeps_the_good_ones() {
    let (_tmp, dir) = journal_dir();
    let mut input = Vec::new();
    let good = |call: &str| {
        format!(
            "{{\"type\":\"tool_call\",\"session\":\"s-bad\",\"call_id\":\"{call}\",\"tool\":\"Read\"}}\n"
        )
    };
    input.extend(good("c1").as_bytes()); // 1
    input.extend(b"{\"type\":\"tool_call\",\"session\":\"s-bad\",\n"); // 2
    input.extend(b"{\"type\":\"span_stop\",\"session\":\"s-bad\"}\n"); // 3
    input.extend(b"\n"); // 4 (blank: skipped, still counted)
    input.extend(b"{\"hook_event_name\":\"Stop\"}\n"); // 5
    input.extend(good("c2").as_bytes()); // 6
    input.extend(b"{\"type\":\"crash\",\"session\":\"nobody\",\"reason\":\"x\"}\n"); // 7
    input.extend(b"\"\xff\xfe\"\n"); // 8
    input.extend(b"[1,2]\n"); // 9
    input.extend(good("c3").as_bytes()); // 10
    let r = run_raw(
        &["--dir".as_ref(), dir.as_os_str(), "ingest".as_ref()],
        &input,
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_ingested(&r, 3, 0, 1, 6);
    let mut errors: Vec<&str> = r.stderr.lines().collect();
    let last = errors.pop().unwrap();
    assert_eq!(
        last,
        "error: 6 lines were rejected (see the messages above); the other lines were stored"
    );
    errors.sort();
    assert_eq!(errors.len(), 6, "{}", r.stderr);
    let expect = [
        "line 2: not valid JSON: ",
        "line 3: unknown event type `span_stop`",
        "line 5: field `session_id` is required",
        "line 7: a crash marker for \"nobody\", which is not a session in this store",
        "line 8: not valid UTF-8",
        "line 9: an event must be a JSON object",
    ];
    for (line, want) in errors.iter().zip(expect) {
        assert!(
            line.starts_with(want),
            "{line:?} should start with {want:?}"
        );
    }
    let trace = show_json(&dir, "s-bad");
    let calls: Vec<&str> = spans_of(&trace, "tool")
        .iter()
        .map(|s| s["tool"]["callId"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["c1", "c2", "c3"]);
    // A file that does not exist is an error before anything is opened.
    let r = run(&dir, &["ingest", "/nonexistent/events.jsonl"], "");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error: cannot open /nonexistent/events.jsonl: "),
        "{}",
        r.stderr
    );
}

/// Interleaved sessions through many workers: each session's events are
/// applied in input order, and a retried delivery counts once. Catches
/// (almost surely) routing by anything but the session (round robin), and
/// duplicates counted as new events.
#[test]
fn ingest_keeps_each_sessions_order_and_counts_duplicates() {
    let (_tmp, dir) = journal_dir();
    let sessions = 20;
    let calls = 30;
    let mut input = String::new();
    for c in 0..calls {
        for s in 0..sessions {
            input.push_str(&format!(
                "{{\"type\":\"tool_call\",\"session\":\"order-{s}\",\"key\":\"k{c}\",\"call_id\":\"c{c:02}\",\"tool\":\"Bash\"}}\n"
            ));
        }
    }
    // Retried deliveries of the first session's first two events.
    input.push_str(
        "{\"type\":\"tool_call\",\"session\":\"order-0\",\"key\":\"k0\",\"call_id\":\"c00\",\"tool\":\"Bash\"}\n",
    );
    input.push_str(
        "{\"type\":\"tool_call\",\"session\":\"order-0\",\"key\":\"k1\",\"call_id\":\"c01\",\"tool\":\"Bash\"}\n",
    );
    let r = run(&dir, &["ingest", "--workers", "16"], &input);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ingested(&r, sessions * calls + 2, 2, sessions, 0);
    let want: Vec<String> = (0..calls).map(|c| format!("c{c:02}")).collect();
    // The tool closed the store, which flushed every trace file: read them
    // (one `show` per session would reopen the store 20 times).
    for s in 0..sessions {
        let file = dir
            .join("traces")
            .join(tracejournal::layout::trace_file_name(&format!("order-{s}")));
        let trace = schema::trace_json(&std::fs::read(file).unwrap());
        let got: Vec<&str> = spans_of(&trace, "tool")
            .iter()
            .map(|t| t["tool"]["callId"].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "session order-{s}");
    }
    let r = run(&dir, &["ingest", "--workers", "0"], "");
    assert_eq!(r.code, 2, "a usage error: {}", r.stderr);
}

/// `crash` marks a running session: the printed trace file says crashed at
/// once, `show` and `sessions` agree, and an ended or unknown session is
/// refused. Catches: a crash that only changes memory, a file still saying
/// running, a crash that overrides a finished session.
#[test]
fn crash_marks_a_running_session() {
    let (_tmp, dir) = journal_dir();
    let lines = lines_of(SESSION);
    let open = format!("{}\n", lines[..lines.len() - 1].join("\n"));
    let r = run(&dir, &["ingest"], &open);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&dir, &["sessions"], "");
    assert!(r.stdout.contains(" running "), "{}", r.stdout);

    let r = run(
        &dir,
        &["crash", "9b2e4c71", "--reason", "agent OOM-killed"],
        "",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = dir
        .join("traces")
        .join(tracejournal::layout::trace_file_name(SESSION_ID));
    assert_eq!(
        r.stdout,
        format!(
            "session \"{SESSION_ID}\": crashed (agent OOM-killed)\ntrace file (already says crashed): {}\n",
            file.display()
        )
    );
    let on_disk = schema::trace_json(&std::fs::read(&file).unwrap());
    assert_eq!(on_disk["summary"]["status"], "crashed");

    let trace = show_json(&dir, SESSION_ID);
    assert_eq!(trace["summary"]["status"], "crashed");
    assert_eq!(trace["summary"]["error"], "agent OOM-killed");
    assert!(trace.get("endedAt").is_some());
    let r = run(&dir, &["sessions"], "");
    let crashed_row = r
        .stdout
        .lines()
        .position(|l| l.starts_with("9b2e4c71-5f0a…"))
        .unwrap();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[crashed_row].contains(" crashed "), "{}", r.stdout);
    assert_eq!(lines[crashed_row + 1].trim_start(), "└ agent OOM-killed");

    // Already ended: refused, nothing changes.
    let r = run(&dir, &["crash", SESSION_ID, "--reason", "again"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is not running"), "{}", r.stderr);
    assert_eq!(
        show_json(&dir, SESSION_ID)["summary"]["error"],
        "agent OOM-killed"
    );
    // Unknown ids.
    for args in [&["crash", "nope", "--reason", "x"][..], &["show", "nope"]] {
        let r = run(&dir, args, "");
        assert_eq!(r.code, 1, "{args:?}");
        assert_eq!(
            r.stderr,
            format!("error: no session \"nope\" in {}\n", dir.display())
        );
        assert_eq!(r.stdout, "");
    }
}

/// A prefix must name one session; control characters in ids and titles
/// are escaped in the table; long ones are cut with an ellipsis. Catches:
/// a prefix silently picking one of several sessions, a title that writes
/// terminal escape sequences.
#[test]
fn prefixes_must_be_unique_and_the_table_is_safe() {
    let (_tmp, dir) = journal_dir();
    let title = format!("line one\nline two\u{1b}[31m red {}", "x".repeat(100));
    let events = [
        serde_json::json!({"type": "session_start", "session": "dup-a", "metadata": {"title": "A"}}),
        serde_json::json!({"type": "session_start", "session": "dup-b", "metadata": {"title": "B"}}),
        serde_json::json!({"type": "session_start", "session": "evil\u{1b}]0;pwned\u{7}", "metadata": {"title": title}}),
    ];
    let input: String = events.iter().map(|e| format!("{e}\n")).collect();
    let r = run(&dir, &["ingest"], &input);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&dir, &["show", "dup-"], "");
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("error: \"dup-\" is the start of 2 session ids"),
        "{}",
        r.stderr
    );
    assert_eq!(show_json(&dir, "dup-b")["metadata"]["title"], "B");
    let r = run(&dir, &["sessions"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains('\u{1b}'), "{:?}", r.stdout);
    assert!(!r.stdout.contains('\u{7}'), "{:?}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 4, "{}", r.stdout);
    let evil = r.stdout.lines().find(|l| l.starts_with("evil")).unwrap();
    assert!(evil.starts_with("evil\\u{1b}]0;…"), "{evil}");
    assert!(
        evil.contains("line one\\nline two\\u{1b}[31m red xx"),
        "{evil}"
    );
    assert!(evil.ends_with('…'), "{evil}");
}

/// `compact` writes a checkpoint, says so, and the sessions survive it and
/// a reopen. Catches: a compact that writes nothing, state lost by it.
#[test]
fn compact_writes_a_checkpoint() {
    let (_tmp, dir) = journal_dir();
    let r = run(&dir, &["compact"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    let r = run(&dir, &["ingest"], TYPED);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before = show_json(&dir, TYPED_ID);
    let r = run(&dir, &["compact"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("checkpoint: every session's state as of LSN "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\nlog: "), "{}", r.stdout);
    assert!(
        r.stdout.ends_with("the log now starts at LSN 1\n"),
        "{}",
        r.stdout
    );
    let checkpoints = std::fs::read_dir(dir.join("checkpoints")).unwrap().count();
    assert!(checkpoints >= 1, "no checkpoint file");
    assert_eq!(show_json(&dir, TYPED_ID), before);
}

/// Reading commands never create a store; a missing --dir is a usage
/// error (except for `demo`).
#[test]
fn session_commands_need_an_existing_store() {
    let (_tmp, dir) = journal_dir();
    let r = run(&dir, &["sessions"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(!dir.exists());
    std::fs::create_dir(&dir).unwrap();
    let r = run(&dir, &["sessions"], "");
    assert_eq!((r.code, r.stdout.as_str()), (0, "no sessions\n"));
    let r = run(&dir, &["sessions", "--json"], "");
    assert_eq!((r.code, r.stdout.as_str()), (0, "[]\n"));
    let r = run(&dir, &["show", "x"], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("holds no session store"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    for args in [&["sessions"][..], &["ingest"], &["show", "x"]] {
        // No --dir, no TRACEJOURNAL_DIR and no HOME: no directory to use.
        let r = run_with_env(args, &[], "");
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains("--dir"), "{}", r.stderr);
    }
}

/// The demo: a child process writes through one store and is killed; the
/// reopened store shows the supervisor's crash mark, marks the orphans
/// crashed, and every trace file agrees (the demo checks that itself and
/// fails otherwise). Catches: orphans left running after the kill, a crash
/// mark lost, a demo that deletes a directory it did not create.
#[test]
fn demo_kills_its_child_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_in(tmp.path(), &["demo", "--events", "40"]);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    assert!(out.contains("store: tracejournal-demo\n"), "{out}");
    assert!(out.contains("agent-07 died mid-turn"), "{out}");
    assert!(out.contains(" events/s"), "{out}");
    assert!(
        out.contains("ack latency (call to return, event on disk): p50 "),
        "{out}"
    );
    assert!(out.contains("[parent] killed process "), "{out}");
    assert!(
        out.contains("  orphans: 2 sessions were open when the process died"),
        "{out}"
    );
    assert!(out.contains("    agent-12  "), "{out}");
    assert!(out.contains("    agent-19  "), "{out}");
    assert_eq!(
        out.matches("└ agent-07 was killed mid-turn (demo)\n")
            .count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.matches("└ the process ended before the session was closed\n")
            .count(),
        2,
        "{out}"
    );
    assert_eq!(out.matches(" completed ").count(), 21, "{out}");
    assert!(
        out.contains("checked: 24 trace files, each complete JSON, byte-identical to the store's state (21 completed, 3 crashed)"),
        "{out}"
    );
    let dir = tmp.path().join("tracejournal-demo");
    assert!(dir.join(".tracejournal-demo").is_file());
    assert_eq!(std::fs::read_dir(dir.join("traces")).unwrap().count(), 24);

    // The store is an ordinary one afterwards.
    let r = run(&dir, &["sessions", "--json"], "");
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 24);
    assert_eq!(list.iter().filter(|s| s["status"] == "crashed").count(), 3);

    // Again in the same place: the previous demo's directory is replaced.
    let r = run_in(tmp.path(), &["demo", "--agents", "3", "--events", "10"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("store: tracejournal-demo (the previous demo's directory was replaced)\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("checked: 3 trace files"), "{}", r.stdout);

    // A directory that is not a demo's is never deleted.
    let precious = tmp.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("thesis.tex"), "do not delete").unwrap();
    let r = run_in(tmp.path(), &["--dir", "precious", "demo"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is not a demo directory"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(precious.join("thesis.tex")).unwrap(),
        "do not delete"
    );
    assert_eq!(std::fs::read_dir(&precious).unwrap().count(), 1);
}

// ------------------------------------ where the store is, and crash defaults

/// Runs the tool with exactly `args` (no `--dir` added) and an environment
/// where `TRACEJOURNAL_DIR`, `HOME` and `XDG_DATA_HOME` are only what
/// `env` sets.
fn run_with_env(args: &[&str], env: &[(&str, &Path)], stdin: &str) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tracejournal"));
    command
        .args(args)
        .env_remove("TRACEJOURNAL_DIR")
        .env_remove("HOME")
        .env_remove("XDG_DATA_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start tracejournal");
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.as_bytes().to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let output = child.wait_with_output().expect("run tracejournal");
    feeder.join().unwrap();
    Run {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

fn has_segment(dir: &Path) -> bool {
    dir.join(FIRST_SEGMENT).is_file()
}

/// `TRACEJOURNAL_DIR` names the store when `--dir` is not given; `--dir`
/// wins over it. Catches: `--dir` still required, the variable ignored or
/// taking precedence over the flag.
#[test]
fn tracejournal_dir_names_the_store_without_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("from-env");
    let home = tmp.path().join("home");
    let env = [
        ("TRACEJOURNAL_DIR", store.as_path()),
        ("HOME", home.as_path()),
    ];
    let r = run_with_env(&["ingest"], &env, SESSION);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(has_segment(&store));
    assert!(!home.exists(), "the default directory was used");
    let r = run_with_env(&["sessions"], &env, "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("9b2e4c71-5f0a"), "{}", r.stdout);

    // --dir wins.
    let other = tmp.path().join("flag");
    let r = run_with_env(&["--dir", other.to_str().unwrap(), "sessions"], &env, "");
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        format!(
            "error: journal directory {} does not exist\n",
            other.display()
        )
    );
}

/// With neither `--dir` nor `TRACEJOURNAL_DIR`, the store is in the user's
/// data directory: `$XDG_DATA_HOME/tracejournal`, else
/// `~/.local/share/tracejournal` (macOS: `~/Library/Application Support`).
/// Without any of them it is a usage error naming the ways out. Catches:
/// `--dir` still required, a default that ignores XDG_DATA_HOME.
#[test]
fn without_dir_the_store_is_in_the_users_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let r = run_with_env(&["ingest"], &[("HOME", home.as_path())], SESSION);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected = if cfg!(target_os = "macos") {
        home.join("Library/Application Support/tracejournal")
    } else {
        home.join(".local/share/tracejournal")
    };
    assert!(has_segment(&expected), "no store in {}", expected.display());
    let r = run_with_env(&["sessions"], &[("HOME", home.as_path())], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("9b2e4c71-5f0a"), "{}", r.stdout);

    if !cfg!(target_os = "macos") {
        let xdg = tmp.path().join("xdg");
        let env = [("HOME", home.as_path()), ("XDG_DATA_HOME", xdg.as_path())];
        let r = run_with_env(&["ingest"], &env, SESSION);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(has_segment(&xdg.join("tracejournal")));
        // A relative XDG_DATA_HOME is ignored, as the XDG spec says.
        let relative = Path::new("relative-xdg");
        let env = [("HOME", home.as_path()), ("XDG_DATA_HOME", relative)];
        let r = run_with_env(&["sessions"], &env, "");
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("9b2e4c71-5f0a"), "{}", r.stdout);
    }

    let r = run_with_env(&["sessions"], &[], "");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--dir") && r.stderr.contains("TRACEJOURNAL_DIR"),
        "{}",
        r.stderr
    );
}

/// `crash ID` without `--reason` marks the session crashed with the
/// documented default reason. Catches: `--reason` still required.
#[test]
fn crash_without_a_reason_records_the_default_reason() {
    let (_tmp, dir) = journal_dir();
    let lines = lines_of(SESSION);
    let open = format!("{}\n", lines[..lines.len() - 1].join("\n"));
    let r = run(&dir, &["ingest"], &open);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&dir, &["crash", "9b2e4c71"], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let default = tracejournal::model::DEFAULT_CRASH_REASON;
    assert_eq!(default, "Process exited before trace completed");
    assert!(
        r.stdout
            .starts_with(&format!("session \"{SESSION_ID}\": crashed ({default})\n")),
        "{}",
        r.stdout
    );
    let trace = show_json(&dir, SESSION_ID);
    assert_eq!(trace["summary"]["status"], "crashed");
    assert_eq!(trace["summary"]["error"], default);
}
