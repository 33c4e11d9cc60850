//! Readers beside a writer: read-only opens of the journal and the store,
//! the CLI's reading commands and `tail`, with the writer in this process
//! or in another one.

mod common;

use common::child::{lines_marked, rerun, KillOnDrop};
use common::fs_options;
use common::sessions::{hook_for, manual_options};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};
use tracejournal::event::{Entry, ENTRY_KIND};
use tracejournal::model::Status;
use tracejournal::testkit::store::ledger::Ledger;
use tracejournal::FsStorage;
use tracejournal::StoreSnapshot;
use tracejournal::{Error, Journal, JournalError, ReadOnlyJournal, Record};
use tracejournal::{OrphanPolicy, Store, StoreOptions};

const BIN: &str = env!("CARGO_BIN_EXE_tracejournal");
/// Set in the child writer process: the store directory.
const ENV_CHILD_DIR: &str = "TJ_READONLY_CHILD_DIR";
/// A safety net only: every wait below ends on an event (a line read), never
/// on time; this bounds a hung test.
const HANG: Duration = Duration::from_secs(120);

/// Store options on the real file system: small segments, manual clock,
/// orphans kept open.
fn options() -> StoreOptions {
    let (mut o, _) = manual_options();
    o.journal = fs_options();
    o.orphans = OrphanPolicy::KeepOpen;
    o
}

fn prompt(session: &str, i: usize, filler: usize) -> tracejournal::event::Event {
    hook_for(
        session,
        "UserPromptSubmit",
        &format!(r#""prompt":"prompt {i} {}""#, "x".repeat(filler)),
    )
}

/// Every file under `dir`: relative path -> (mode, mtime, bytes).
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (u32, SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = std::fs::metadata(&d).unwrap();
        out.insert(
            d.strip_prefix(dir).unwrap().to_path_buf(),
            (
                meta.permissions().mode(),
                meta.modified().unwrap(),
                Vec::new(),
            ),
        );
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    (
                        meta.permissions().mode(),
                        meta.modified().unwrap(),
                        std::fs::read(&path).unwrap(),
                    ),
                );
            }
        }
    }
    out
}

fn assert_unchanged(
    before: &BTreeMap<PathBuf, (u32, SystemTime, Vec<u8>)>,
    dir: &Path,
    what: &str,
) {
    let after = fingerprint(dir);
    let names = |m: &BTreeMap<PathBuf, _>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(before),
        names(&after),
        "{what}: the set of files changed"
    );
    for (path, old) in before {
        let new = &after[path];
        assert!(
            old.0 == new.0 && old.1 == new.1 && old.2 == new.2,
            "{what}: {} changed (mode, mtime or bytes)",
            path.display()
        );
    }
}

/// A store that a writer's open would change in every way it can: an
/// unclean end (sessions it would mark orphaned), a torn tail it would cut,
/// a crash ledger it would apply and remove, stale temp files it would
/// sweep, and no `checkpoints/` directory (it would create one).
/// Returns the id of the session with the ledger's crash marker and of the
/// one left running.
fn messy_store(dir: &Path) -> (String, String) {
    let (crashed, running) = ("s-ledger".to_string(), "s-running".to_string());
    let store = Store::open(dir, options()).unwrap().0;
    for i in 0..4 {
        store.ingest(prompt(&crashed, i, 40)).unwrap();
        store.ingest(prompt(&running, i, 40)).unwrap();
    }
    store.flush().unwrap();
    store.close().unwrap();
    // An `Opened` after the clean close: the next writer sees a dead
    // process and orphans the running sessions.
    let (journal, _) = Journal::open(dir, fs_options()).unwrap();
    journal
        .append(Record::new(ENTRY_KIND, Entry::Opened.encode()))
        .unwrap();
    let end = journal.next_lsn();
    journal.close().unwrap();
    // A crash marker in the ledger (the writer was stuck).
    let marker = Entry::from(tracejournal::event::Event {
        session: crashed.clone(),
        key: None,
        time: Some(1_700_000_000_500),
        body: tracejournal::event::Body::Crash {
            reason: "agent died".into(),
            run: 1,
        },
    });
    Ledger::new(std::sync::Arc::new(FsStorage), dir)
        .append(&marker)
        .unwrap();
    // A torn tail: garbage right after the last record.
    let (journal, _) = ReadOnlyJournal::open(dir, &fs_options()).unwrap();
    let last = journal
        .read_from(journal.first_lsn())
        .unwrap()
        .map(Result::unwrap)
        .last()
        .unwrap();
    assert_eq!(last.lsn + 1, end);
    let seg = dir.join(tracejournal::testkit::wal::segment::file_name(last.segment));
    let tail_at = last.offset + (32 + last.payload.len() as u64).div_ceil(8) * 8;
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0xAB; 20], tail_at).unwrap();
    // Stale temp files, and no checkpoint directory.
    std::fs::write(dir.join("00000000000000000099.seg.tmp"), b"x").unwrap();
    std::fs::write(dir.join("traces").join(".s-ledger.json.7.tmp"), b"{").unwrap();
    std::fs::remove_dir_all(dir.join("checkpoints")).unwrap();
    (crashed, running)
}

#[test]
fn store_snapshot_reads_a_messy_store_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let (crashed, running) = messy_store(&dir);
    let before = fingerprint(&dir);

    let (snapshot, report) = StoreSnapshot::open(&dir, &options()).unwrap();
    // The torn tail is where reading stops; nothing is cut or copied.
    assert_eq!(report.journal.truncated.len(), 1, "{report:?}");
    assert!(report.journal.truncated[0].copy.is_none());
    assert_eq!(report.ledger_markers, 1);
    // The ledger's marker is applied in memory; no orphan is marked.
    assert_eq!(
        snapshot.session_state(&crashed).unwrap().status,
        Status::Crashed
    );
    assert_eq!(
        snapshot.session_state(&running).unwrap().status,
        Status::Running
    );
    assert_eq!(snapshot.sessions().len(), 2);
    assert!(snapshot.session(&running).is_some());
    assert_unchanged(&before, &dir, "StoreSnapshot::open");

    // A writer's open afterwards still finds everything to do.
    let (store, report) = Store::open(&dir, options()).unwrap();
    assert_eq!(report.ledger_markers, 1);
    assert_eq!(report.journal.truncated.len(), 1);
    assert!(report.swept >= 1);
    store.close().unwrap();
}

#[test]
fn a_snapshot_beside_an_open_store_follows_it_across_rotations_and_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open(&dir, options()).unwrap().0;
    store.ingest(prompt("a", 0, 10)).unwrap();
    // Beside the open store: no lock in the way.
    let (mut snapshot, _) = StoreSnapshot::open(&dir, &options()).unwrap();
    assert_eq!(snapshot.sessions(), store.sessions());
    let mut seen = vec![];
    for round in 0..6 {
        for i in 0..20 {
            let id = if i % 2 == 0 { "a" } else { "b" };
            store.ingest(prompt(id, round * 20 + i, 1500)).unwrap();
        }
        seen.extend(snapshot.refresh().unwrap().into_iter().map(|c| c.lsn));
        if round % 2 == 1 {
            // Removes segments the snapshot has already opened.
            assert!(store.compact().unwrap().segments_removed > 0 || round == 1);
        }
        assert_eq!(snapshot.sessions(), store.sessions(), "round {round}");
        assert_eq!(snapshot.session("a"), store.session("a"));
    }
    assert!(seen.windows(2).all(|w| w[0] + 1 == w[1]), "{seen:?}");
    assert_eq!(seen.len(), 120);
    store.close().unwrap();
}

#[test]
fn a_follower_that_falls_behind_a_checkpoint_is_told_and_a_reopen_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open(&dir, options()).unwrap().0;
    store.ingest(prompt("a", 0, 10)).unwrap();
    let (mut snapshot, _) = StoreSnapshot::open(&dir, &options()).unwrap();
    // Many segments come and go before the snapshot looks again.
    for i in 1..200 {
        store.ingest(prompt("a", i, 1500)).unwrap();
    }
    // A segment goes once two checkpoints cover it.
    store.compact().unwrap();
    store.ingest(prompt("a", 200, 10)).unwrap();
    let removed = store.compact().unwrap().segments_removed;
    assert!(removed >= 3, "removed {removed}");
    match snapshot.refresh() {
        Err(Error::Journal(JournalError::LsnOutOfRange { lsn, first, .. })) => {
            assert!(first > lsn, "{lsn} {first}")
        }
        other => panic!("expected LsnOutOfRange, got {other:?}"),
    }
    let (fresh, report) = StoreSnapshot::open(&dir, &options()).unwrap();
    assert!(report.checkpoint.is_some());
    assert_eq!(fresh.sessions(), store.sessions());
    assert_eq!(fresh.session("a"), store.session("a"));
    store.close().unwrap();
}

// ------------------------------------------------------------------- CLI

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Every reading command, each required to succeed.
fn run_read_commands(dir: &Path, session: &str) -> BTreeMap<&'static str, Run> {
    let commands: [(&str, Vec<&str>); 8] = [
        ("sessions", vec!["sessions"]),
        ("sessions --json", vec!["sessions", "--json"]),
        ("show", vec!["show", session]),
        ("show --pretty", vec!["show", session, "--pretty"]),
        ("dump", vec!["dump"]),
        ("stats", vec!["stats"]),
        ("verify", vec!["verify"]),
        ("tail", vec!["tail", "--all", "--no-follow"]),
    ];
    let mut out = BTreeMap::new();
    for (name, args) in commands {
        let r = run(dir, &args);
        assert_eq!(r.code, 0, "{name} failed: {}", r.stderr);
        out.insert(name, r);
    }
    out
}

#[test]
fn read_commands_change_no_byte_of_an_idle_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let (crashed, _) = messy_store(&dir);
    let before = fingerprint(&dir);
    let runs = run_read_commands(&dir, &crashed);
    assert_unchanged(&before, &dir, "the reading commands");
    assert!(runs["sessions --json"].stdout.contains("s-running"));
    assert!(runs["show"].stdout.contains(r#""status":"crashed""#));
    assert!(runs["dump"]
        .stderr
        .contains("reading stopped at the last whole record"));
    assert_eq!(runs["tail"].stdout.lines().count(), 8);
}

#[test]
fn read_commands_work_on_a_directory_the_user_may_only_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let (crashed, _) = messy_store(&dir);
    let set_mode = |writable: bool| {
        let mut stack = vec![dir.clone()];
        while let Some(p) = stack.pop() {
            let is_dir = p.is_dir();
            if is_dir {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            }
            let mode = match (is_dir, writable) {
                (true, true) => 0o755,
                (true, false) => 0o555,
                (false, true) => 0o644,
                (false, false) => 0o444,
            };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    set_mode(false);
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!(
            "note: running as root, where permission bits do not stop writes; \
             the fingerprint (bytes, mtimes, names) is what proves nothing was written"
        );
    }
    let before = fingerprint(&dir);
    let runs = run_read_commands(&dir, &crashed);
    assert_unchanged(&before, &dir, "the reading commands on a read-only tree");
    set_mode(true);
    assert!(runs["sessions"].stdout.contains("s-ledger"));
}

/// The child writer: a store held open, fed by stdin. `event JSON` ingests
/// and answers `ok LSN`; `compact` answers `ok`; EOF closes the store and
/// answers `closed`.
fn child_writer(dir: &Path) {
    let store = Store::open(dir, options()).unwrap().0;
    let stdout = std::io::stdout();
    let say = |line: String| {
        let mut out = stdout.lock();
        writeln!(out, "@@RO@@ {line}").unwrap();
        out.flush().unwrap();
    };
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if let Some(json) = line.strip_prefix("event ") {
            let event = tracejournal::event::parse_line(json).unwrap();
            say(format!("ok {}", store.ingest(event).unwrap().lsn));
        } else if line == "compact" {
            store.compact().unwrap();
            say("ok".into());
        }
    }
    store.close().unwrap();
    say("closed".into());
}

fn hook_line(session: &str, i: usize) -> String {
    format!(
        r#"{{"session_id":"{session}","hook_event_name":"UserPromptSubmit","prompt":"prompt {i} {}"}}"#,
        "y".repeat(1500)
    )
}

#[test]
fn read_commands_and_tail_work_beside_a_writer_in_another_process() {
    if let Ok(dir) = std::env::var(ENV_CHILD_DIR) {
        child_writer(Path::new(&dir));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut child = KillOnDrop::spawn(
        rerun("read_commands_and_tail_work_beside_a_writer_in_another_process")
            .arg("--test-threads=1")
            .env(ENV_CHILD_DIR, &dir)
            .stdin(Stdio::piped()),
    );
    let mut to_child = child.0.stdin.take().unwrap();
    let from_child = lines_marked(child.0.stdout.take().unwrap(), "@@RO@@ ");
    let ingest = |to_child: &mut std::process::ChildStdin, line: String| -> u64 {
        writeln!(to_child, "event {line}").unwrap();
        let answer = from_child.recv_timeout(HANG).expect("child answers");
        answer.strip_prefix("ok ").unwrap().parse().unwrap()
    };
    let mut acked = vec![];
    for i in 0..5 {
        acked.push(ingest(&mut to_child, hook_line("live", i)));
    }

    // Every reading command works while the child holds the store.
    let runs = run_read_commands(&dir, "live");
    assert!(runs["sessions --json"].stdout.contains(r#""live""#));
    assert!(runs["show"].stdout.contains(r#""sessionId":"live""#));
    let dumped = runs["dump"].stdout.lines().count();
    assert!(dumped > 5, "dump printed {dumped} records");
    assert!(runs["verify"].stdout.contains("segments:"));

    // `tail` follows: first what is there, then every event as it lands,
    // across segment rotations and checkpoints that remove segments.
    let total = 60;
    let mut tail = KillOnDrop(
        Command::new(BIN)
            .arg("--dir")
            .arg(&dir)
            .args([
                "tail",
                "--all",
                "--session",
                "live",
                "--count",
                &total.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let from_tail = lines_marked(tail.0.stdout.take().unwrap(), "");
    let mut tailed = vec![];
    let next_line = || -> serde_json::Value {
        let line = from_tail.recv_timeout(HANG).expect("tail prints");
        serde_json::from_str(&line).unwrap()
    };
    for _ in 0..5 {
        tailed.push(next_line());
    }
    for i in 5..total {
        acked.push(ingest(&mut to_child, hook_line("live", i)));
        // Wait for tail to print it before writing more (lockstep: no
        // sleep, and no segment can come and go unseen).
        tailed.push(next_line());
        if i % 10 == 9 {
            writeln!(to_child, "compact").unwrap();
            assert_eq!(from_child.recv_timeout(HANG).unwrap(), "ok");
        }
    }
    let status = tail.0.wait().unwrap();
    assert!(status.success(), "tail exited with {status}");
    let lsns: Vec<u64> = tailed.iter().map(|v| v["lsn"].as_u64().unwrap()).collect();
    assert_eq!(lsns, acked, "tail printed every event once, in LSN order");
    for (i, v) in tailed.iter().enumerate() {
        assert_eq!(v["session"], "live");
        assert_eq!(v["type"], "UserPromptSubmit");
        let text = v["event"].to_string();
        assert!(text.contains(&format!("prompt {i} ")), "line {i}: {text}");
    }
    drop(to_child);
    assert_eq!(from_child.recv_timeout(HANG).unwrap(), "closed");
    assert!(child.0.wait().unwrap().success());
}
