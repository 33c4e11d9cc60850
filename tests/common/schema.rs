//! Validation of trace files against the v2 JSON Schema
//! (tests/schema/trace-file-v2.schema.json, written from
//! shared/reference/trace-file-v2.md). Every test that reads a trace file
//! reads it through [`trace_json`], so every file the tests produce is
//! checked against the type frontends read.
//!
//! Self-contained (no other test helper), so test binaries without
//! `mod common` include it with `#[path = "common/schema.rs"]`.

#![allow(dead_code)]

use serde_json::Value;
use std::sync::OnceLock;

/// The schema's text.
pub const SCHEMA: &str = include_str!("../schema/trace-file-v2.schema.json");

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
        jsonschema::draft202012::new(&schema).expect("the schema compiles")
    })
}

/// Every way `file` breaks the v2 schema, one line each (empty if none).
pub fn schema_errors(file: &Value) -> Vec<String> {
    validator()
        .iter_errors(file)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

/// Panics, listing every violation, unless `file` is a valid v2 trace file.
pub fn validate_trace(file: &Value) {
    let errors = schema_errors(file);
    assert!(
        errors.is_empty(),
        "the trace file of {} breaks the v2 schema:\n  {}",
        file["sessionId"],
        errors.join("\n  ")
    );
}

/// Parses a trace file's bytes and validates them against the v2 schema.
pub fn trace_json(bytes: &[u8]) -> Value {
    let file: Value = serde_json::from_slice(bytes).expect("a trace file is complete, valid JSON");
    validate_trace(&file);
    file
}
