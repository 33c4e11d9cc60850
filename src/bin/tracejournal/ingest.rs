//! `ingest`: events from a file or stdin into the store, one atomic,
//! durable event per line, through several threads (an event's session
//! picks its thread, so one session's events keep their order).

use crate::failure::{fail, CliResult, Failure};
use crate::format::{plural, quoted, thousands};
use crate::open::open_store;
use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tracejournal::event::{parse_line, Event};
use tracejournal::Store;

/// What one ingest worker did.
#[derive(Default)]
struct IngestTally {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    sessions: HashSet<String>,
}

/// Stops every ingest thread after an error that is not the line's fault
/// (I/O, a poisoned journal): the first such error, with its line.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Stop {
    fn stop(&self, message: String) {
        self.stopped.store(true, Ordering::SeqCst);
        let mut first = self.error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(message);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// `line N: message` on stderr.
fn reject_line(line: u64, message: &str) {
    let _ = writeln!(io::stderr().lock(), "line {line}: {message}");
}

/// The message for an event the store refused because of the event itself,
/// or `None` for an error that is not the line's fault.
fn line_error(e: &tracejournal::Error) -> Option<String> {
    use tracejournal::Error as E;
    use tracejournal::JournalError as J;
    match e {
        E::InvalidEvent { reason, .. } => Some(reason.clone()),
        E::UnknownSession(id) => Some(format!(
            "a crash marker for {}, which is not a session in this store",
            quoted(id)
        )),
        E::Journal(J::RecordTooLarge { len, max, .. }) => Some(format!(
            "the event is {len} bytes once encoded, larger than the maximum record size of {max} bytes"
        )),
        E::Journal(J::InvalidRecord { reason, .. }) => Some(reason.clone()),
        E::Journal(J::Busy { .. }) => Some(e.to_string()),
        _ => None,
    }
}

/// `ingest`: one event per line of `file` (else stdin), through `workers`
/// threads; a bad line is reported and skipped.
pub(crate) fn ingest(
    dir: &Path,
    file: Option<&Path>,
    workers: usize,
    out: &mut dyn Write,
) -> CliResult {
    let stdin = io::stdin();
    let mut input: Box<dyn BufRead> = match file {
        Some(path) if path != Path::new("-") => Box::new(io::BufReader::new(
            std::fs::File::open(path)
                .map_err(|e| Failure::Message(format!("cannot open {}: {e}", path.display())))?,
        )),
        _ => Box::new(stdin.lock()),
    };
    let source = match file {
        Some(path) if path != Path::new("-") => path.display().to_string(),
        _ => "standard input".to_string(),
    };
    let (store, _) = open_store(dir)?;
    let stop = Stop::default();
    let started = Instant::now();
    let (mut total, parse_rejected) = std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = crossbeam_channel::bounded::<(u64, Event)>(256);
            senders.push(tx);
            let (store, stop) = (&store, &stop);
            handles.push(scope.spawn(move || ingest_worker(store, rx, stop)));
        }
        let rejected = read_events(&mut *input, &source, &senders, &stop);
        drop(senders);
        let mut total = IngestTally::default();
        for handle in handles {
            let t = handle.join().expect("an ingest thread panicked");
            total.accepted += t.accepted;
            total.duplicates += t.duplicates;
            total.rejected += t.rejected;
            total.sessions.extend(t.sessions);
        }
        (total, rejected)
    });
    let elapsed = started.elapsed();
    total.rejected += parse_rejected;
    if let Err(e) = store.close() {
        stop.stop(e.to_string());
    }
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        format!(
            " ({} events/s)",
            thousands((total.accepted as f64 / secs) as u64)
        )
    } else {
        String::new()
    };
    let duplicates = match total.duplicates {
        0 => String::new(),
        n => format!(" ({})", plural(n, "duplicate", "duplicates")),
    };
    writeln!(
        out,
        "ingested {}{duplicates} into {} in {secs:.2} s{rate}; {} rejected",
        plural(total.accepted, "event", "events"),
        plural(total.sessions.len() as u64, "session", "sessions"),
        thousands(total.rejected),
    )?;
    let fatal = stop.error.into_inner().unwrap_or_else(|e| e.into_inner());
    match (fatal, total.rejected) {
        (Some(e), _) => fail(format!("ingest stopped: {e}")),
        (None, 0) => Ok(()),
        (None, n) => fail(format!(
            "{} rejected (see the messages above); the other lines were stored",
            plural(n, "line was", "lines were")
        )),
    }
}

/// Reads and parses lines, routing each event to the worker of its
/// session. Returns how many lines were rejected here.
fn read_events(
    input: &mut dyn BufRead,
    source: &str,
    workers: &[crossbeam_channel::Sender<(u64, Event)>],
    stop: &Stop,
) -> u64 {
    let mut rejected = 0;
    let mut line = Vec::new();
    let mut number = 0u64;
    while !stop.is_stopped() {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => number += 1,
            Err(e) => {
                stop.stop(format!("cannot read line {} of {source}: {e}", number + 1));
                break;
            }
        }
        let text = match std::str::from_utf8(&line) {
            Ok(text) => text.trim(),
            Err(e) => {
                reject_line(number, &format!("not valid UTF-8: {e}"));
                rejected += 1;
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let event = match parse_line(text) {
            Ok(event) => event,
            Err(e) => {
                reject_line(number, e.message());
                rejected += 1;
                continue;
            }
        };
        let worker = route(&event.session, workers.len());
        if workers[worker].send((number, event)).is_err() {
            break;
        }
    }
    rejected
}

/// The worker that handles every event of `session`.
fn route(session: &str, workers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    session.hash(&mut hasher);
    (hasher.finish() % workers as u64) as usize
}

fn ingest_worker(
    store: &Store,
    events: crossbeam_channel::Receiver<(u64, Event)>,
    stop: &Stop,
) -> IngestTally {
    let mut tally = IngestTally::default();
    for (line, event) in events {
        if stop.is_stopped() {
            continue;
        }
        let session = event.session.clone();
        match store.ingest(event) {
            Ok(ack) => {
                tally.accepted += 1;
                tally.duplicates += u64::from(ack.duplicate);
                if !tally.sessions.contains(&session) {
                    tally.sessions.insert(session);
                }
            }
            Err(e) => match line_error(&e) {
                Some(message) => {
                    reject_line(line, &message);
                    tally.rejected += 1;
                }
                None => stop.stop(format!("line {line}: {e}")),
            },
        }
    }
    tally
}
