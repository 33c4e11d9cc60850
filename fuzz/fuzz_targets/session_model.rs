//! The session model on arbitrary entry sequences (the bytes are a small
//! event language, see `tracejournal::testkit::fuzzing::session_model`): never
//! panics; every rendering is canonical JSON agreeing with the model; a
//! crash is final for its run; duplicates change nothing; entries and the
//! whole state round-trip through their encodings.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tracejournal::testkit::fuzzing::session_model(data);
});
