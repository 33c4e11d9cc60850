//! Trace file names: a safe, injective file name for any session id.
//!
//! Trace files live in the `traces/` directory of a journal, one per
//! session, named after the session id. The id is arbitrary user input: it
//! may hold `/`, `\`, `:`, NUL, be `.` or `..`, be empty, be ten thousand
//! characters long, or hold nothing but emoji. [`file_name`] turns any id
//! into a name that is one plain path component on every common file
//! system, and never gives two different ids the same name.
//!
//! # The rule
//!
//! An id is **safe** when all of these hold:
//!
//! * it is 1 to 100 bytes long;
//! * every character is a lowercase ASCII letter, a digit, `_`, `-` or `.`
//!   (so it holds no `~`, no uppercase letter, nothing outside ASCII);
//! * it does not start with `.`;
//! * its part before the first `.` is not a Windows device name: `con`,
//!   `prn`, `aux`, `nul`, `com0` to `com9`, `lpt0` to `lpt9` (Windows
//!   refuses `con.json` as a file name just as it refuses `con`).
//!
//! A safe id's file name is the id itself followed by `.json`:
//! `my-session_1` is stored as `my-session_1.json`.
//!
//! Every other id is **hashed**: its file name is
//! `{prefix}~{hash}.json`, where
//!
//! * `prefix` is the id's first 40 characters, each one outside
//!   `[A-Za-z0-9_-]` replaced by `_` (one `_` per character, however many
//!   bytes it has), so a reader can still recognise the session; it may be
//!   empty;
//! * `hash` is the 128-bit FNV-1a hash of the id's UTF-8 bytes (offset basis
//!   `0x6c62272e07bb014262b821756295c58d`, prime `2^88 + 0x13b`, one byte at
//!   a time: xor, then multiply modulo 2^128), as 32 lowercase hex digits.
//!
//! `a/b` is stored as `a_b~a68d62d6fd8b5822836dbc79781849e9.json` (see the
//! golden test below). **Never change this rule or the hash:** the names
//! are part of the on-disk format, and a journal written by one version
//! must find its trace files with the next.
//!
//! # Why two ids never share a name
//!
//! * A safe id is its own name (less `.json`), so two different safe ids
//!   have different names.
//! * A safe name never holds `~`; a hashed name always does. So a safe id
//!   and a hashed id never share a name.
//! * Two hashed ids share a name only if their 128-bit hashes are equal.
//!   FNV-1a is not a cryptographic hash: two ids built on purpose to
//!   collide can be found, but ids that are not chosen to attack it collide
//!   with odds of about n² / 2^129 for n ids.
//!
//! Case-insensitive file systems (the defaults on macOS and Windows) are
//! why uppercase letters are outside the safe set: safe names are all
//! lowercase, so no two of them differ only by case; hashed names differ in
//! their lowercase hash digits. Every name is ASCII, so Unicode
//! normalisation by the file system (as HFS+ does) cannot merge two names
//! either.
//!
//! # What a name always is
//!
//! A name never holds `/`, `\`, NUL, `:` or any character outside
//! `[A-Za-z0-9_.~-]`, never starts with `.` (so it is never `.`, `..` or a
//! hidden file), always ends with `.json`, and is at most
//! [`MAX_FILE_NAME_LEN`] bytes long (105 for a safe id, 78 for a hashed
//! one), well under the 255-byte limit of common file systems.
//! [`is_trace_file_name`] recognises exactly the names of this shape, so a
//! sweep of `traces/` can tell trace files from temporary files.

use std::fmt::Write as _;

/// The extension every trace file name ends with.
pub const EXTENSION: &str = ".json";

/// Longest safe id, in bytes, stored under its own name.
pub const MAX_SAFE_ID_LEN: usize = 100;

/// How many characters of a hashed id are kept, sanitised, in front of the
/// hash.
pub const HASHED_PREFIX_LEN: usize = 40;

/// The longest name [`file_name`] returns, in bytes: a 100-byte safe id
/// plus `.json`.
pub const MAX_FILE_NAME_LEN: usize = MAX_SAFE_ID_LEN + EXTENSION.len();

/// Separates a hashed name's prefix from its hash; never in a safe id.
const HASH_SEPARATOR: char = '~';

/// Hex digits of the hash in a hashed name.
const HASH_HEX_LEN: usize = 32;

const FNV128_OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = (1 << 88) + 0x13b;

/// The trace file name for `session_id`: `{id}.json` for a safe id,
/// `{prefix}~{hash}.json` for any other (see the [module docs](self) for
/// the rule and why no two ids share a name).
pub fn file_name(session_id: &str) -> String {
    if is_safe_id(session_id) {
        return format!("{session_id}{EXTENSION}");
    }
    let mut name = String::with_capacity(HASHED_PREFIX_LEN + 1 + HASH_HEX_LEN + EXTENSION.len());
    name.extend(session_id.chars().take(HASHED_PREFIX_LEN).map(|c| {
        if is_prefix_char(c) {
            c
        } else {
            '_'
        }
    }));
    name.push(HASH_SEPARATOR);
    let _ = write!(name, "{:032x}", fnv1a_128(session_id.as_bytes()));
    name.push_str(EXTENSION);
    // The hashed form's length is fixed by construction; checked here, on
    // the way out, as the safe form's is by `is_safe_id`.
    assert!(name.len() <= MAX_FILE_NAME_LEN, "trace file name too long");
    name
}

/// Whether `name` has the shape of a name [`file_name`] returns: a safe id
/// followed by `.json`, or up to 40 characters of `[A-Za-z0-9_-]`, `~`, 32
/// lowercase hex digits and `.json`.
///
/// Anything else in `traces/` (a temporary file, a hidden file, a name
/// with another extension) is not a trace file. Whether a hashed name's
/// hash matches some id cannot be checked without the id.
pub fn is_trace_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(EXTENSION) else {
        return false;
    };
    match stem.split_once(HASH_SEPARATOR) {
        None => is_safe_id(stem),
        Some((prefix, hash)) => {
            prefix.len() <= HASHED_PREFIX_LEN
                && prefix.chars().all(is_prefix_char)
                && hash.len() == HASH_HEX_LEN
                && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
    }
}

/// Whether `id` is stored under its own name (the module docs' rule).
fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SAFE_ID_LEN
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.'))
        && !is_windows_device_name(id)
}

/// Whether the part of `id` before its first `.` is a Windows device name.
/// `id` is already known to be lowercase ASCII.
fn is_windows_device_name(id: &str) -> bool {
    let base = id.split('.').next().unwrap_or(id);
    match base.as_bytes() {
        b"con" | b"prn" | b"aux" | b"nul" => true,
        [b'c', b'o', b'm', digit] | [b'l', b'p', b't', digit] => digit.is_ascii_digit(),
        _ => false,
    }
}

/// The characters a hashed name's prefix keeps.
fn is_prefix_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// 128-bit FNV-1a. Part of the on-disk format: never change it.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    bytes.iter().fold(FNV128_OFFSET_BASIS, |hash, &b| {
        (hash ^ u128::from(b)).wrapping_mul(FNV128_PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::{Component, Path};

    /// Checks everything a name must be, whatever the id.
    fn assert_well_formed(id: &str, name: &str) {
        let mut components = Path::new(name).components();
        assert!(
            matches!(components.next(), Some(Component::Normal(_))),
            "{id:?} -> {name:?}"
        );
        assert!(components.next().is_none(), "{id:?} -> {name:?}");
        assert!(!name.starts_with('.'), "{id:?} -> {name:?}");
        assert!(name.ends_with(EXTENSION), "{id:?} -> {name:?}");
        assert!(name.len() <= MAX_FILE_NAME_LEN, "{id:?} -> {name:?}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.~".contains(&b)),
            "{id:?} -> {name:?}"
        );
        assert!(is_trace_file_name(name), "{id:?} -> {name:?}");
    }

    fn odd_ids() -> Vec<String> {
        let mut ids: Vec<String> = [
            "a/b",
            "a\\b",
            "a.b",
            "a:b",
            "..",
            ".",
            "",
            "\0",
            "a\0b",
            "////",
            "\\\\",
            "CON",
            "con",
            "Con",
            "con.json",
            "Con.json",
            "con.txt",
            "nul",
            "aux.tar.gz",
            "com1",
            "COM9",
            "lpt0",
            "lpt1.x",
            "conx",
            "com",
            "com10",
            "console",
            "~",
            "a~b",
            "a_b~0123456789abcdef0123456789abcdef",
            "😀",
            "😀😀😀",
            "é",
            "a b",
            " ",
            "\n",
            "..a",
            ".hidden",
            "a.",
            "a..b",
            "-",
            "_",
            "x.json",
            "C:\\Windows",
            "/etc/passwd",
            "../../etc/passwd",
            "a/../b",
            "\u{202e}gnp.exe",
            "\u{ff0f}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        ids.push("x".repeat(10_000));
        ids.push("x".repeat(MAX_SAFE_ID_LEN));
        ids.push("x".repeat(MAX_SAFE_ID_LEN + 1));
        ids.push("😀".repeat(10_000));
        ids.push("/".repeat(10_000));
        ids
    }

    #[test]
    fn odd_ids_give_single_plain_components() {
        for id in odd_ids() {
            assert_well_formed(&id, &file_name(&id));
        }
    }

    #[test]
    fn safe_ids_keep_their_name() {
        for id in [
            "my-session_1",
            "a.b",
            "a..b",
            "a.",
            "-",
            "_",
            "x.json",
            "0",
            "conx",
        ] {
            assert_eq!(file_name(id), format!("{id}.json"));
        }
        let longest = "x".repeat(MAX_SAFE_ID_LEN);
        assert_eq!(file_name(&longest), format!("{longest}.json"));
        assert_eq!(file_name(&longest).len(), MAX_FILE_NAME_LEN);
    }

    #[test]
    fn unsafe_ids_are_hashed() {
        for id in odd_ids() {
            let safe = file_name(&id) == format!("{id}.json");
            let expected_safe = [
                "a.b", "a.", "a..b", "-", "_", "x.json", "conx", "com", "com10", "console",
            ]
            .contains(&id.as_str())
                || id == "x".repeat(MAX_SAFE_ID_LEN);
            assert_eq!(safe, expected_safe, "{id:?}");
            if !safe {
                assert!(file_name(&id).contains('~'), "{id:?}");
            }
        }
        // Uppercase, Windows device names with or without an extension, and
        // leading dots are never stored verbatim.
        for id in ["ABC", "Con.json", "con.json", "com1.txt", ".hidden", "."] {
            assert!(file_name(id).contains('~'), "{id:?}");
        }
    }

    #[test]
    fn prefix_is_sanitised_and_cut() {
        assert!(file_name("a/b").starts_with("a_b~"));
        assert!(file_name("A/😀:b").starts_with("A___b~"));
        assert!(file_name("").starts_with('~'));
        assert!(file_name("..").starts_with("__~"));
        let long = file_name(&"y".repeat(10_000));
        assert!(long.starts_with(&format!("{}~", "y".repeat(HASHED_PREFIX_LEN))));
        assert_eq!(
            long.len(),
            HASHED_PREFIX_LEN + 1 + HASH_HEX_LEN + EXTENSION.len()
        );
    }

    /// Pins the exact names (computed independently of this code): a change
    /// to the rule or the hash breaks journals already on disk.
    #[test]
    fn golden_names() {
        assert_eq!(file_name("my-session_1"), "my-session_1.json");
        assert_eq!(
            file_name("a/b"),
            "a_b~a68d62d6fd8b5822836dbc79781849e9.json"
        );
        assert_eq!(file_name(""), "~6c62272e07bb014262b821756295c58d.json");
        assert_eq!(
            file_name("Session 😀/42"),
            "Session___42~0918d8ca22f898c0b302f60cf3dd2493.json"
        );
        // The published FNV-1a 128 test vector for "a".
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn distinct_ids_get_distinct_names_even_ignoring_case() {
        let mut ids = odd_ids();
        // Pairs that sanitise to the same prefix.
        for base in ["a", "ab", "session", "x-1", "con"] {
            for sep in [
                "/", "_", ":", "\\", ".", " ", "~", "\0", "😀", "-", "__", "/_",
            ] {
                for tail in ["b", "B", "", "1"] {
                    ids.push(format!("{base}{sep}{tail}"));
                    ids.push(format!("{}{sep}{tail}", base.to_uppercase()));
                }
            }
        }
        // Long ids sharing their first 40 (and 100) characters.
        for i in 0..50 {
            ids.push(format!("{}{i}", "p".repeat(HASHED_PREFIX_LEN)));
            ids.push(format!("{}{i}", "q".repeat(MAX_SAFE_ID_LEN - 1)));
            ids.push(format!("{}/{i}", "q".repeat(MAX_SAFE_ID_LEN - 1)));
        }
        // Ids that look like names other ids get.
        for id in ids.clone() {
            let name = file_name(&id);
            ids.push(name.clone());
            ids.push(name.trim_end_matches(EXTENSION).to_string());
        }
        // Random ids over an alphabet of safe and unsafe characters.
        let alphabet: Vec<char> = "ab.-_~/\\:AZ\0 é😀".chars().collect();
        let mut state: u64 = 0x5eed;
        for _ in 0..1500 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (state >> 59) as usize;
            let id: String = (0..len)
                .map(|i| {
                    let r = state.rotate_left(7 * i as u32 + 3);
                    alphabet[(r % alphabet.len() as u64) as usize]
                })
                .collect();
            ids.push(id);
        }
        ids.sort();
        ids.dedup();
        assert!(ids.len() >= 2000, "only {} ids", ids.len());

        let mut seen: HashMap<String, &str> = HashMap::new();
        for id in &ids {
            let name = file_name(id);
            assert_well_formed(id, &name);
            assert_eq!(file_name(id), name, "deterministic");
            if let Some(other) = seen.insert(name.to_ascii_lowercase(), id) {
                panic!("{other:?} and {id:?} share the name {name:?}");
            }
        }
    }

    #[test]
    fn recognises_trace_file_names_only() {
        for name in [
            "a.json",
            "my-session_1.json",
            "x.json.json",
            "~6c62272e07bb014262b821756295c58d.json",
            "A_b~a68d62d6fd8b5822836dbc79781849e9.json",
        ] {
            assert!(is_trace_file_name(name), "{name:?}");
        }
        for name in [
            "",
            ".json",
            "a.JSON",
            "a.json.tmp",
            ".a.json",
            ".a.json.tmp",
            "a.tmp",
            "A.json",
            "con.json",
            "a b.json",
            "a~b.json",
            "a~A68D62D6FD8B5822836DBC79781849E9.json",
            "a~d3d0d8e0d95a5d46f2e9b7a4bd17ec4.json",
            "a.b~a68d62d6fd8b5822836dbc79781849e9.json",
            "a~b~a68d62d6fd8b5822836dbc79781849e9.json",
            &format!("{}~a68d62d6fd8b5822836dbc79781849e9.json", "p".repeat(41)),
            &format!("{}.json", "x".repeat(MAX_SAFE_ID_LEN + 1)),
        ] {
            assert!(!is_trace_file_name(name), "{name:?}");
        }
    }
}
