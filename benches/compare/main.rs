//! `cargo bench --bench compare`: tracejournal against what a user would
//! pick instead (SQLite through rusqlite, okaywal, a file rewritten per
//! event, the naive `write` + `fdatasync` under a mutex, and the disk's raw
//! `fdatasync` floor), on the same machine, in the same run, with the same
//! events.
//!
//! Sections (each a module):
//!
//! * [`appends`]: 300-byte events and 1-4 KB hook payloads from 1, 4, 16 and
//!   64 concurrent appenders, each waiting for its own acknowledgement.
//! * [`recovery`]: time to open a 256 MiB and a 1 GiB journal, with and
//!   without a recent checkpoint.
//! * [`traces`]: the seed-1 yardstick session (5,000 tool spans, about
//!   52 MB): bytes written and time to keep its file current, against
//!   rewriting the whole file after every event.
//! * [`many`]: 1,000 concurrent sessions of 100 events: memory and publish
//!   throughput.
//!
//! Sizes: `TRACEJOURNAL_BENCH_SCALE` (a positive float, default 1.0: the
//! full run) multiplies every measuring time and data size; CI uses 0.02.
//! `TRACEJOURNAL_BENCH_ONLY=appends,recovery` runs only the named sections.
//! The markdown report goes to stdout and to `target/bench-compare.md` (or
//! `TRACEJOURNAL_BENCH_OUT`); progress goes to stderr.

#[path = "../common/mod.rs"]
mod common;

mod appends;
mod many;
mod recovery;
mod report;
mod systems;
mod traces;

use report::{Config, Progress, Section};

/// A section of the run: its name (for `TRACEJOURNAL_BENCH_ONLY`) and body.
type Runner = fn(&Config, &Progress) -> Vec<Section>;

const SECTIONS: [(&str, Runner); 4] = [
    ("appends", appends::run),
    ("recovery", recovery::run),
    ("traces", traces::run),
    ("many", many::run),
];

fn main() {
    let config = Config::from_env();
    let only = std::env::var("TRACEJOURNAL_BENCH_ONLY").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|list| list.split(',').any(|s| s.trim() == name))
    };
    let progress = Progress::new();
    let mut sections = Vec::new();
    for (name, run) in SECTIONS {
        if wanted(name) {
            progress.stage(name);
            sections.extend(run(&config, &progress));
        }
    }
    let text = report::render(&config, &sections);
    print!("{text}");
    let out = config.out_path();
    std::fs::write(&out, &text).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    eprintln!("wrote {}", out.display());
}
