//! What the benches share (`mod common;` in benches/append.rs and
//! benches/sessions.rs, `#[path]` from benches/compare/main.rs): the scale
//! knob, where reports go, the nearest-rank percentile, and the seeded
//! generator of code-like span texts.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;
use tracejournal::testkit::rng::SplitMix64;

/// `TRACEJOURNAL_BENCH_SCALE`, a positive float (default 1.0): multiplies
/// measuring times and data sizes.
pub fn scale_from_env() -> f64 {
    match std::env::var("TRACEJOURNAL_BENCH_SCALE") {
        Err(_) => 1.0,
        Ok(s) => match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => v,
            _ => panic!("TRACEJOURNAL_BENCH_SCALE must be a positive number, got {s:?}"),
        },
    }
}

/// Cargo's target directory (the parent of the target tmp dir), where the
/// markdown reports go.
pub fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// The `q` quantile (0..=1) of `sorted` latencies in nanoseconds, nearest
/// rank; `None` if there are none.
pub fn percentile(sorted: &[u64], q: f64) -> Option<Duration> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    debug_assert!(sorted.windows(2).all(|w| w[0] <= w[1]), "not sorted");
    let rank = ((n as f64 * q).ceil() as usize).clamp(1, n);
    Some(Duration::from_nanos(sorted[rank - 1]))
}

/// The seed of the yardstick session's texts.
pub const TEXT_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Exactly `chars` ASCII characters of code-like words, in lines of about
/// 72 characters (so the JSON holds `\n` escapes, like real tool output).
pub fn code_text(rng: &mut SplitMix64, chars: usize) -> String {
    const WORDS: [&str; 16] = [
        "fn",
        "let",
        "value",
        "result",
        "error",
        "path",
        "src/lib.rs",
        "=>",
        "{",
        "}",
        "match",
        "Ok(())",
        "self",
        "return",
        "tests",
        "//",
    ];
    let mut s = String::with_capacity(chars + 16);
    let mut line = 0;
    while s.len() < chars {
        let word = rng.pick(&WORDS).copied().unwrap_or("fn");
        s.push_str(word);
        line += word.len();
        if line >= 72 {
            s.push('\n');
            line = 0;
        } else {
            s.push(' ');
            line += 1;
        }
    }
    s.truncate(chars);
    s
}
