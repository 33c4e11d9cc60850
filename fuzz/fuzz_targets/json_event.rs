//! The JSON event / hook payload parsers on arbitrary bytes: never panics;
//! whatever parses validates, round-trips through the log encoding, and
//! renders to canonical JSON.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tracejournal::testkit::fuzzing::json_event(data);
});
