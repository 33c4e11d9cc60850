//! The record decoder on arbitrary bytes: never panics, and whatever
//! decodes re-encodes to the same bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tracejournal::testkit::fuzzing::decode_record(data);
});
