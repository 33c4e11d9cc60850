//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same functions the cargo-fuzz targets call, so CI exercises them on
//! stable without a fuzzing engine. Also runs mutations of each seed.

use std::path::{Path, PathBuf};
use tracejournal::testkit::fuzzing;
use tracejournal::testkit::rng::SplitMix64;
use tracejournal::{Durability, Journal, Options, Record};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// Deterministic mutations: bit flips, truncations and splices.
fn mutations(seed: &[u8], count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rng = SplitMix64::new(0x9E37_79B9_7F4A_7C15 ^ seed.len() as u64);
    let mut next = || rng.next_u64();
    for _ in 0..count {
        let mut m = seed.to_vec();
        if m.is_empty() {
            out.push(vec![next() as u8]);
            continue;
        }
        match next() % 3 {
            0 => {
                let i = next() as usize % m.len();
                m[i] ^= 1 << (next() % 8);
            }
            1 => {
                let n = next() as usize % m.len();
                m.truncate(n);
            }
            _ => {
                let i = next() as usize % m.len();
                let v = next().to_le_bytes();
                for (k, b) in v.iter().enumerate() {
                    if i + k < m.len() {
                        m[i + k] = *b;
                    }
                }
            }
        }
        out.push(m);
    }
    out
}

#[test]
fn decode_record_corpus() {
    let seeds = corpus("decode_record");
    assert!(!seeds.is_empty());
    for (_, bytes) in &seeds {
        fuzzing::decode_record(bytes);
        for m in mutations(bytes, 2000) {
            fuzzing::decode_record(&m);
        }
    }
}

#[test]
fn open_segments_corpus() {
    let seeds = corpus("open_segments");
    assert!(!seeds.is_empty());
    for (_, bytes) in &seeds {
        fuzzing::open_segments(bytes);
        for m in mutations(bytes, 25) {
            fuzzing::open_segments(&m);
        }
    }
}

#[test]
fn session_model_corpus() {
    let seeds = corpus("session_model");
    assert!(!seeds.is_empty());
    for (path, bytes) in &seeds {
        fuzzing::session_model(bytes);
        // A flood applies thousands of entries: few mutations of the seeds
        // named `flood-*` (among them the fuzzer's finding that needs one).
        let flood = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("flood");
        for m in mutations(bytes, if flood { 2 } else { 150 }) {
            fuzzing::session_model(&m);
        }
    }
}

#[test]
fn json_event_corpus() {
    let seeds = corpus("json_event");
    assert!(!seeds.is_empty());
    for (_, bytes) in &seeds {
        fuzzing::json_event(bytes);
        for m in mutations(bytes, 1000) {
            fuzzing::json_event(&m);
        }
    }
}

/// Found by the `session_model` fuzzer: a span that closes after the file
/// passed 5,000 spans is never elided, because elision runs only when a
/// span is added. 5,100 tool calls left open (`PreToolUse` without
/// `PostToolUse`), then the session ends: every span is closed and the
/// final file holds 5,101 spans.
#[test]
fn session_model_closed_spans_past_the_limit_are_elided() {
    fuzzing::session_model(&[
        0, 0, 0, 10, 0, 0, // session_start "s"
        15, 1, 0, 0x13, 0xeb, // flood: 5,100 PreToolUse hooks, left open
        5, 0, 0, 10, 0, 0, // session_end: closes them all
    ]);
}

/// Found by the `session_model` fuzzer: two finite costs whose sum
/// overflows make `totals.cost` infinite; `serde_json` writes it as `null`
/// and cannot read it back, so no checkpoint of the store can be written
/// (`Store::compact` fails with "the session state does not survive a JSON
/// round trip") for as long as the session is kept.
#[test]
fn session_model_cost_overflow_survives_a_checkpoint() {
    fuzzing::session_model(&[
        0, 0, 0, 10, 0, 0, // session_start "s"
        2, 0, 0, 10, 0, 0, 8, 7, // span_end "g", cost 1.7976931348623157e308
        2, 0, 0, 10, 1, 0, 8, 7, // span_end "h", the same cost
    ]);
}

/// Writes the seed corpora. Run once by hand:
/// `cargo test --test fuzz_corpus -- --ignored generate_seeds`
#[test]
#[ignore]
fn generate_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let tmp = tempfile::tempdir().unwrap();
    let options = || Options {
        segment_size: 4096,
        max_record_size: 1024,
        ..Options::default()
    };
    let (j, _) = Journal::open(tmp.path(), options()).unwrap();
    j.append(Record::new(
        1,
        br#"{"hook_event_name":"SessionStart","session_id":"s1"}"#.to_vec(),
    ))
    .unwrap();
    j.append_batch(vec![
        Record::new(2, b"batch-a".to_vec()),
        Record::new(2, b"batch-b".to_vec()),
    ])
    .unwrap();
    j.append_with(Record::new(3, vec![7u8; 100]), Durability::Buffered)
        .unwrap();
    j.close().unwrap();
    let seg1 = std::fs::read(tmp.path().join("00000000000000000001.seg")).unwrap();
    // The first record's frame alone, for the decoder.
    let len = u32::from_le_bytes(seg1[68..72].try_into().unwrap()) as usize;
    let frame = &seg1[64..64 + ((32 + len + 7) & !7)];
    std::fs::write(root.join("decode_record/seed-frame"), frame).unwrap();
    std::fs::write(root.join("decode_record/seed-header"), &seg1[..64]).unwrap();
    // Only the written prefix of the segment (the rest is zeros).
    let end = seg1.iter().rposition(|&b| b != 0).unwrap() + 1;
    std::fs::write(root.join("open_segments/seed-one-segment"), &seg1[..end]).unwrap();
    // Two segments: force a rotation.
    let tmp2 = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(tmp2.path(), options()).unwrap();
    for i in 0..40u32 {
        j.append(Record::new(1, vec![i as u8; 150])).unwrap();
    }
    j.close().unwrap();
    let a = std::fs::read(tmp2.path().join("00000000000000000001.seg")).unwrap();
    let b = std::fs::read(tmp2.path().join("00000000000000000002.seg")).unwrap();
    let b_end = b.iter().rposition(|&x| x != 0).map_or(64, |p| p + 1);
    let mut two = a.clone();
    two.extend_from_slice(b"--SEG--");
    two.extend_from_slice(&b[..b_end]);
    std::fs::write(root.join("open_segments/seed-two-segments"), two).unwrap();
}

/// Writes the seed corpora of `session_model` and `json_event`. Run once by
/// hand: `cargo test --test fuzz_corpus -- --ignored generate_session_seeds`
///
/// `session_model` input is a small program (see
/// `tracejournal::testkit::fuzzing::session_model`): an event is `op, session,
/// key, time` then the body's operands. Session 0 is `"s"`, key 0 none
/// (for hooks: the payload's default key), time byte 10 moves the clock
/// 130 ms.
#[test]
#[ignore]
fn generate_session_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let model = root.join("session_model");
    let json = root.join("json_event");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::create_dir_all(&json).unwrap();

    // Typed events.
    let start = [0u8, 0, 0, 10, 0b11, 1, 2, 0]; // title "x", model "Read"
    let resume = [0u8, 0, 0, 10, 0, 1];
    let end_ok = [5u8, 0, 0, 10, 0, 0];
    let end_err = [5u8, 0, 0, 10, 1, 5]; // message "a\"b\\c\n\t"
    let crash = [6u8, 0, 0, 10, 1, 0]; // reason "x", the current run
    let checkpoint = [14u8];
    let seeds: Vec<(&str, Vec<&[u8]>)> = vec![
        (
            "typed-lifecycle",
            vec![
                &start,
                // span_start "g" (generation) with input, model, attributes
                &[1, 0, 0, 10, 0, 0, 0, 0, 7, 24, 1, 2, 0, 24],
                // span_end "g": message, output, tokens, cost, finish, attributes
                &[2, 0, 0, 10, 0, 0, 0b11_1111, 1, 19, 1, 2, 3, 0, 0, 0, 1, 24],
                // tool_call toolu_1 Read under "g", input, output, 7 ms
                &[3, 0, 0, 10, 0, 0, 1, 0b1_0011, 24, 22, 2],
                // attributes on the root
                &[4, 0, 0, 10, 0, 26],
                &end_ok,
                &checkpoint,
            ],
        ),
        (
            "crash-then-end-then-resume",
            vec![
                &start,
                &crash,
                &end_ok,
                &resume,
                &crash,
                &resume,
                &end_err,
                &checkpoint,
            ],
        ),
        (
            "crash-run-numbers",
            vec![
                &start,
                &[6, 0, 0, 10, 0, 5], // run + 1: marks nothing
                &[6, 0, 0, 10, 0, 6], // run - 1
                &[6, 0, 0, 10, 0, 7], // u32::MAX
                &[6, 1, 0, 10, 0, 0], // a session that does not exist
                &crash,
                &[6, 0, 0, 10, 4, 0], // a second marker
                &[0, 0, 0, 10, 0, 0], // a start without resume
            ],
        ),
        (
            "hooks-tool-pairing",
            vec![
                // SessionStart (source startup)
                &[7, 0, 0, 10, 0, 0, 0, 0],
                // UserPromptSubmit with a two-line prompt
                &[7, 0, 0, 10, 2, 0, 1, 10],
                // PreToolUse toolu_1 Read with input
                &[7, 0, 0, 10, 3, 0b111, 0, 0, 0, 24],
                // PostToolUse toolu_1 Read, response, 7 ms
                &[7, 0, 0, 10, 4, 0b1_1011, 0, 0, 0, 19, 0],
                // the same delivery again: a duplicate by its default key
                &[12, 0],
                // Stop with the last message, then SessionEnd with a reason
                &[7, 0, 0, 10, 9, 0, 2, 19],
                &[7, 0, 0, 10, 1, 0, 32, 0, 1],
            ],
        ),
        (
            "hooks-subagent-batch-failure",
            vec![
                &[7, 0, 0, 10, 0, 0, 0, 0],
                // SubagentStart a1, PreToolUse toolu_2 Bash in it
                &[7, 0, 0, 10, 7, 0b110_0000, 0, 0, 1],
                &[7, 0, 0, 10, 3, 0b10_0011, 0, 1, 1, 0],
                // PostToolBatch of two calls
                &[7, 0, 0, 10, 6, 0, 16, 2, 1, 1, 3, 0, 2, 0, 4, 3],
                // SubagentStop a1 with a message
                &[7, 0, 0, 10, 8, 0b10_0000, 2, 0, 20],
                // an unknown hook with a duplicate JSON key and loose spacing
                &[7, 0, 0, 10, 13, 0b1, 0b1100_0000, 0, 1],
                // PostToolUseFailure with an error and is_interrupt
                &[7, 0, 0, 10, 5, 0b11, 0b1100, 2, 2, 19, 1],
                // StopFailure, then a resume through the hook
                &[7, 0, 0, 10, 10, 0, 4, 19],
                &[7, 0, 0, 10, 0, 0b1000_0000, 0, 1],
            ],
        ),
        (
            "odd-sessions-keys-retire",
            vec![
                &[0, 2, 3, 10, 0, 0],                  // "a/b" with key k1
                &[0, 2, 3, 10, 0, 1],                  // same key: duplicate
                &[3, 3, 4, 10, 0, 0, 0, 0],            // ".." tool_call with key k2
                &[4, 5, 0, 10, 3, 27],                 // emoji: attributes for "a/b"
                &[5, 6, 0, 10, 1, 0],                  // quoted id ends with error
                &[7, 7, 5, 10, 3, 0b111, 0, 1, 1, 25], // NUL id, PreToolUse
                &[9, 2],                               // retire "a/b"
                &[0, 2, 3, 10, 0, 0],                  // k1 again: a new session
                &[10],                                 // Shutdown
                &[11],                                 // Opened
                &[13, 3],                              // replay at an old LSN
                &[15, 32],                             // five raw records
                &checkpoint,
            ],
        ),
        (
            "odd-times-numbers",
            vec![
                &[0, 0, 0, 0xf5, 0, 0],                           // start at u64::MAX
                &[2, 0, 0, 0xf1, 0, 1, 0b1100, 6, 6, 6, 6, 6, 4], // time 0, max tokens, cost 1e21
                &[1, 0, 0, 0xfa, 1, 1, 2, 3, 1, 9],               // year 10000, input 1e21
                &[2, 0, 0, 0xf0, 1, 0, 0b1010, 11, 2],            // no time, 5e-324, -0
                &[3, 0, 0, 0xf8, 2, 2, 0, 0b1_0011, 13, 14, 6],
                &end_ok,
            ],
        ),
        (
            "long-strings",
            vec![
                &[0, 0, 0, 10, 0b1_0001, 0xff, 0xff, 0], // title and prompt cut
                &[7, 0, 0, 10, 2, 0, 1, 0xff],           // a 4,001-character prompt
                &[7, 0, 0, 10, 4, 0b1011, 0, 0, 0, 0xff], // a 10,001-character response
                &[3, 0, 0, 10, 1, 1, 0, 0b11, 0xff, 0xff],
                &end_ok,
            ],
        ),
        (
            "flood-closed-tools",
            // 5,100 whole tool calls: elision keeps 4,999 and a marker.
            vec![&start, &[15, 33, 0, 0x13, 0xeb], &end_ok],
        ),
        (
            "flood-open-spans",
            // 5,100 typed spans left open in session "t": none may be
            // elided, so the file holds 5,101; then a crash interrupts
            // them all and they must be elided at once.
            vec![
                &start,
                &[15, 65, 1, 0x13, 0xeb],
                &checkpoint,
                &[6, 1, 0, 10, 0, 0],
            ],
        ),
        (
            "retries-and-replays",
            vec![
                &start,
                &[7, 0, 0, 10, 3, 0b111, 0, 0, 0, 24],
                &[12, 0],
                &[12, 1],
                &[13, 0],
                &[13, 2],
                &[7, 0, 0, 10, 4, 0b1011, 0, 0, 0, 19],
                &[12, 0],
                &checkpoint,
                &[12, 3],
            ],
        ),
    ];
    for (name, ops) in seeds {
        std::fs::write(model.join(name), ops.concat()).unwrap();
    }
    // Bytes with no plan: every byte string is a program. (Without byte
    // 15 mod 16, the flood and gap operation, so that its mutations stay
    // cheap.)
    let mut rng = SplitMix64::new(0x2545_f491_4f6c_dd1d);
    let noise: Vec<u8> = (0..96)
        .map(|_| {
            let b = rng.next_u64() as u8;
            if b % 16 == 15 {
                b - 1
            } else {
                b
            }
        })
        .collect();
    std::fs::write(model.join("noise"), noise).unwrap();

    // json_event: the shortest hook line of each kind in
    // examples/session.jsonl, typed lines, and edge cases.
    let session = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/session.jsonl"),
    )
    .unwrap();
    for hook in ["SessionStart", "UserPromptSubmit", "SubagentStart", "Stop"] {
        let needle = format!("\"hook_event_name\":\"{hook}\"");
        let line = session
            .lines()
            .filter(|l| l.contains(&needle))
            .min_by_key(|l| l.len())
            .unwrap();
        std::fs::write(json.join(format!("hook-{hook}")), line).unwrap();
    }
    let typed: &[(&str, &str)] = &[
        (
            "typed-session-start",
            r#"{"type":"session_start","session":"opencode/ses_1","time":1742032800000,"key":"start","metadata":{"title":"Fix","tags":["ci"],"userId":"u"},"resume":false}"#,
        ),
        (
            "typed-span-end",
            r#"{"type":"span_end","session":"s","span":"gen-1","status":"ok","output":{"text":"x","n":1.50},"tokens":{"input":1840,"output":212,"cacheRead":10240},"cost":0.011352,"finish_reason":"tool_calls","attributes":{"b":1,"a":-0}}"#,
        ),
        (
            "typed-tool-call",
            r#"{"type":"tool_call","session":"a/b","call_id":"call_k2V9","tool":"read","parent":"msg-1","input":{"filePath":"x"},"output":"\u00e9\ud83d\ude00","status":"error","message":"exit 1","duration_ms":7}"#,
        ),
        (
            "typed-crash",
            r#"{"type":"crash","session":"..","reason":"killed"}"#,
        ),
        (
            "typed-end-error",
            r#"{"type":"session_end","session":"\ud83d\ude00","status":"error","message":"boom","time":18446744073709551615}"#,
        ),
        (
            "hook-duplicate-keys-and-type",
            "{\"session_id\":\"s\", \"hook_event_name\":\"PostToolUse\",\"type\":\"x\",\"tool_use_id\":\"toolu_1\",\n \"tool_use_id\":\"toolu_2\",\"tool_response\":[1e21,5e-324,9007199254740993]}\n",
        ),
        (
            "lines",
            "{\"type\":\"session_start\",\"session\":\"s\"}\n{\"type\":\"span_start\",\"session\":\"s\",\"span\":\"g\",\"kind\":\"generation\"}\nnot json\n{\"session_id\":\"s\",\"hook_event_name\":\"Stop\"}\n{\"type\":\"session_end\",\"session\":\"s\"}\n",
        ),
    ];
    for (name, text) in typed {
        std::fs::write(json.join(name), text).unwrap();
    }
    // Not UTF-8: read lossily.
    std::fs::write(
        json.join("not-utf8"),
        b"{\"type\":\"session_start\",\"session\":\"\xff\xfe\"}",
    )
    .unwrap();
}
