//! Golden bytes of the session store's log entries.
//!
//! Every record the store writes holds an [`Entry`] encoded by
//! [`Entry::encode`]: a little-endian `u16` schema version
//! ([`ENTRY_VERSION`], 1) followed by the value in bincode 2.0.1 (serde,
//! little-endian, fixed-width integers; see `src/payload.rs`). These bytes
//! are the on-disk format of every journal ever written.
//!
//! **If a test here fails, old logs have become unreadable.** Do not
//! update the hex to make it pass. A change to the encoding of [`Entry`]
//! (a renamed or reordered field or variant, a new field, another integer
//! width, a bincode upgrade) must bump [`ENTRY_VERSION`] and keep a
//! decoder for version 1, so that these exact bytes still decode to these
//! exact values; then add goldens for the new version next to these.
//!
//! The hex was generated once from the values below with the encoder of
//! commit 42ccfa5 and pasted here.

use tracejournal::event::{
    Body, EndStatus, Entry, Event, JsonText, Metadata, ModelRef, Tokens, ENTRY_VERSION,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn event(key: Option<&str>, time: Option<u64>, body: Body) -> Entry {
    Entry::from(Event {
        session: "s/1".into(),
        key: key.map(str::to_string),
        time,
        body,
    })
}

/// One entry of each kind: every [`Body`] variant, then `Retire` and
/// `Shutdown`. Options are set in some and absent in others, so both
/// encodings of `Option` are pinned.
fn entries() -> Vec<(&'static str, Entry)> {
    vec![
        (
            "session_start",
            event(
                Some("k1"),
                Some(1_700_000_000_000),
                Body::SessionStart {
                    metadata: Metadata {
                        title: Some("T".into()),
                        model: Some("m".into()),
                        provider_id: None,
                        agent: Some("a".into()),
                        variant: None,
                        prompt: None,
                        user_id: Some("u".into()),
                        environment: None,
                        version: Some("1".into()),
                        tags: Some(vec!["x".into(), "y".into()]),
                    },
                    resume: true,
                },
            ),
        ),
        (
            "span_start",
            event(
                None,
                Some(5),
                Body::SpanStart {
                    span: "g".into(),
                    parent: Some("root".into()),
                    kind: "generation".into(),
                    name: "gen".into(),
                    input: Some(JsonText(r#"{"a":1}"#.into())),
                    model: Some(ModelRef {
                        model_id: Some("m".into()),
                        provider_id: None,
                        variant: Some("v".into()),
                    }),
                    attributes: Some(JsonText(r#"{"k":true}"#.into())),
                },
            ),
        ),
        (
            "span_end",
            event(
                None,
                Some(6),
                Body::SpanEnd {
                    span: "g".into(),
                    status: EndStatus::Error,
                    message: Some("bad".into()),
                    output: Some(JsonText(r#""o""#.into())),
                    tokens: Some(Tokens {
                        input: 1,
                        output: 2,
                        reasoning: 3,
                        cache_read: 4,
                        cache_write: 5,
                    }),
                    cost: Some(0.25),
                    finish_reason: Some("stop".into()),
                    attributes: None,
                },
            ),
        ),
        (
            "tool_call",
            event(
                Some("tc"),
                Some(7),
                Body::ToolCall {
                    call_id: "toolu_1".into(),
                    tool: "Read".into(),
                    parent: None,
                    input: Some(JsonText("{}".into())),
                    output: None,
                    status: EndStatus::Ok,
                    message: None,
                    duration_ms: Some(7),
                },
            ),
        ),
        (
            "attributes",
            event(
                None,
                Some(8),
                Body::Attributes {
                    span: Some("g".into()),
                    attributes: JsonText(r#"{"x":[1,2]}"#.into()),
                },
            ),
        ),
        (
            "session_end",
            event(
                None,
                None,
                Body::SessionEnd {
                    status: EndStatus::Ok,
                    message: None,
                },
            ),
        ),
        (
            "crash",
            event(
                None,
                Some(9),
                Body::Crash {
                    reason: "boom".into(),
                    run: 2,
                },
            ),
        ),
        (
            "hook",
            event(
                Some("PostToolUse:t"),
                Some(10),
                Body::Hook {
                    name: "PostToolUse".into(),
                    payload: JsonText(r#"{"hook_event_name":"PostToolUse","x":"é"}"#.into()),
                },
            ),
        ),
        (
            "retire",
            Entry::Retire {
                session: "s/1".into(),
            },
        ),
        ("shutdown", Entry::Shutdown),
        ("opened", Entry::Opened),
    ]
}

/// The pinned encodings, by name (see the module docs before touching).
const GOLDEN: [(&str, &str); 11] = [
    ("session_start", "0100000000000300000000000000732f310102000000000000006b31010068e5cf8b01000000000000010100000000000000540101000000000000006d0001010000000000000061000001010000000000000075000101000000000000003101020000000000000001000000000000007801000000000000007901"),
    ("span_start", "0100000000000300000000000000732f310001050000000000000001000000010000000000000067010400000000000000726f6f740a0000000000000067656e65726174696f6e030000000000000067656e0107000000000000007b2261223a317d010101000000000000006d0001010000000000000076010a000000000000007b226b223a747275657d"),
    ("span_end", "0100000000000300000000000000732f31000106000000000000000200000001000000000000006701000000010300000000000000626164010300000000000000226f22010100000000000000020000000000000003000000000000000400000000000000050000000000000001000000000000d03f01040000000000000073746f7000"),
    ("tool_call", "0100000000000300000000000000732f310102000000000000007463010700000000000000030000000700000000000000746f6f6c755f31040000000000000052656164000102000000000000007b7d000000000000010700000000000000"),
    ("attributes", "0100000000000300000000000000732f310001080000000000000004000000010100000000000000670b000000000000007b2278223a5b312c325d7d"),
    ("session_end", "0100000000000300000000000000732f310000050000000000000000"),
    ("crash", "0100000000000300000000000000732f3100010900000000000000060000000400000000000000626f6f6d02000000"),
    ("hook", "0100000000000300000000000000732f31010d00000000000000506f7374546f6f6c5573653a74010a00000000000000070000000b00000000000000506f7374546f6f6c5573652a000000000000007b22686f6f6b5f6576656e745f6e616d65223a22506f7374546f6f6c557365222c2278223a22c3a9227d"),
    ("retire", "0100010000000300000000000000732f31"),
    ("shutdown", "010002000000"),
    ("opened", "010003000000"),
];

/// Which `Body` variant, by an exhaustive match: a new variant does not
/// compile here until it gets a golden.
fn body_variant(body: &Body) -> usize {
    match body {
        Body::SessionStart { .. } => 0,
        Body::SpanStart { .. } => 1,
        Body::SpanEnd { .. } => 2,
        Body::ToolCall { .. } => 3,
        Body::Attributes { .. } => 4,
        Body::SessionEnd { .. } => 5,
        Body::Crash { .. } => 6,
        Body::Hook { .. } => 7,
    }
}

/// Which `Entry` variant (an `Event` counts by its body), exhaustively.
fn entry_variant(entry: &Entry) -> usize {
    match entry {
        Entry::Event(e) => body_variant(&e.body),
        Entry::Retire { .. } => 8,
        Entry::Shutdown => 9,
        Entry::Opened => 10,
    }
}

#[test]
fn golden_entry_bytes_are_pinned() {
    assert_eq!(ENTRY_VERSION, 1, "a new version needs its own goldens");
    let entries = entries();
    let covered: std::collections::BTreeSet<usize> =
        entries.iter().map(|(_, e)| entry_variant(e)).collect();
    assert_eq!(covered, (0..11).collect(), "one golden per variant");
    if std::env::var_os("TRACEJOURNAL_PRINT_GOLDEN").is_some() {
        for (name, entry) in &entries {
            println!("    (\"{name}\", \"{}\"),", hex(&entry.encode()));
        }
    }
    for ((name, entry), (golden_name, golden)) in entries.iter().zip(GOLDEN) {
        assert_eq!(*name, golden_name);
        let bytes = entry.encode();
        assert_eq!(
            hex(&bytes),
            golden,
            "{name}: the encoding of Entry changed; old logs would no longer decode \
             (bump ENTRY_VERSION and keep a decoder for version 1 instead)"
        );
        assert_eq!(&bytes[..2], &1u16.to_le_bytes(), "{name}: version tag");
    }
}

#[test]
fn golden_entry_bytes_decode_to_their_values() {
    for ((name, entry), (_, golden)) in entries().iter().zip(GOLDEN) {
        let decoded = Entry::decode(&unhex(golden))
            .unwrap_or_else(|e| panic!("{name}: pinned bytes no longer decode: {e}"));
        assert_eq!(&decoded, entry, "{name}");
    }
}

/// Bytes of another schema version, or with bytes after the value, are
/// refused with a message, never misread.
#[test]
fn golden_entry_bytes_with_another_version_or_trailing_bytes_are_refused() {
    let (_, golden) = GOLDEN[0];
    let mut bytes = unhex(golden);
    bytes[..2].copy_from_slice(&2u16.to_le_bytes());
    let err = Entry::decode(&bytes).unwrap_err();
    assert!(
        err.message().contains("schema version 2 is not known"),
        "{err}"
    );
    let mut bytes = unhex(golden);
    bytes.push(0);
    assert!(Entry::decode(&bytes).is_err());
    assert!(Entry::decode(&unhex(golden)[..5]).is_err());
}
