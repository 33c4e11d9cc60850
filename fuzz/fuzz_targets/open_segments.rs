//! Opening a journal directory whose segment files are arbitrary bytes, in
//! every recovery mode: an error or a log that reads back clean, never a
//! panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tracejournal::testkit::fuzzing::open_segments(data);
});
