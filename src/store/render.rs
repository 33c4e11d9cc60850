//! Rendering: a session's state as a trace file (`trace-file-v2`), in
//! canonical JSON (RFC 8785), so identical state gives identical bytes.
//!
//! Field names and meanings are those existing frontends read (see
//! `DESIGN.md`, "Trace files"). Two improvements over the old writer:
//! `endedAt` appears only once the run has ended, and `summary.status` is
//! `running` while the session is open, also between turns. `duration`
//! of a live session runs to its latest event (not to "now", which would
//! make the bytes depend on the clock).

use crate::store::event::{EndStatus, JsonText, Metadata, ModelRef, Tokens};
use crate::store::jcs;
use crate::store::model::{Session, Span, Status};
use std::borrow::Cow;

/// The trace file format version.
pub const TRACE_VERSION: u64 = 2;

/// How many tools `summary.topTools` lists.
const TOP_TOOLS: usize = 10;

/// The session's trace file bytes.
pub fn render(session: &Session) -> Vec<u8> {
    let mut out = String::with_capacity(estimate(session));
    let mut top = Obj::default();
    top.raw("version", TRACE_VERSION.to_string());
    top.str("traceId", &session.trace_id);
    top.str("sessionId", &session.id);
    top.str("startedAt", &iso8601(session.started_at));
    if let Some(end) = session.ended_at {
        top.str("endedAt", &iso8601(end));
    }
    top.raw("metadata", metadata(&session.metadata));
    top.raw("spans", spans(session));
    top.raw("summary", summary(session));
    top.write(&mut out);
    out.into_bytes()
}

fn estimate(session: &Session) -> usize {
    let payload: usize = session
        .spans
        .values()
        .map(|s| {
            300 + s.input.as_ref().map_or(0, |t| t.0.len())
                + s.output.as_ref().map_or(0, |t| t.0.len())
        })
        .sum();
    payload + 4096
}

/// An object under construction: members are sorted by RFC 8785's key
/// order when written.
#[derive(Default)]
struct Obj<'a> {
    members: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Obj<'a> {
    fn raw(&mut self, key: &'a str, value: impl Into<Cow<'a, str>>) {
        self.members.push((Cow::Borrowed(key), value.into()));
    }

    fn str(&mut self, key: &'a str, value: &str) {
        let mut s = String::with_capacity(value.len() + 2);
        jcs::write_str(&mut s, value);
        self.raw(key, s);
    }

    fn opt_str(&mut self, key: &'a str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    fn u64(&mut self, key: &'a str, value: u64) {
        let mut s = String::new();
        jcs::write_u64(&mut s, value);
        self.raw(key, s);
    }

    fn f64(&mut self, key: &'a str, value: f64) {
        let mut s = String::new();
        jcs::write_f64(&mut s, if value.is_finite() { value } else { 0.0 });
        self.raw(key, s);
    }

    fn json(&mut self, key: &'a str, value: &'a JsonText) {
        self.raw(key, Cow::Borrowed(value.0.as_str()));
    }

    fn write(mut self, out: &mut String) {
        self.members.sort_by(|a, b| jcs::cmp_keys(&a.0, &b.0));
        out.push('{');
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            jcs::write_str(out, k);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
    }

    fn finish(self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

fn metadata(m: &Metadata) -> String {
    let mut o = Obj::default();
    o.opt_str("title", m.title.as_deref());
    o.opt_str("model", m.model.as_deref());
    o.opt_str("providerId", m.provider_id.as_deref());
    o.opt_str("agent", m.agent.as_deref());
    o.opt_str("variant", m.variant.as_deref());
    o.opt_str("prompt", m.prompt.as_deref());
    o.opt_str("userId", m.user_id.as_deref());
    o.opt_str("environment", m.environment.as_deref());
    o.opt_str("version", m.version.as_deref());
    if let Some(tags) = &m.tags {
        let mut s = String::from("[");
        for (i, t) in tags.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            jcs::write_str(&mut s, t);
        }
        s.push(']');
        o.raw("tags", s);
    }
    o.finish()
}

fn spans(session: &Session) -> String {
    let mut out = String::with_capacity(estimate(session));
    out.push('[');
    let mut first = true;
    let mut marker_written = session.totals.elided == 0;
    for (&seq, span) in &session.spans {
        if !marker_written && seq > session.head_end() {
            push_sep(&mut out, &mut first);
            elided_marker(session).write(&mut out);
            marker_written = true;
        }
        push_sep(&mut out, &mut first);
        span_obj(span).write(&mut out);
    }
    if !marker_written {
        push_sep(&mut out, &mut first);
        elided_marker(session).write(&mut out);
    }
    out.push(']');
    out
}

fn push_sep(out: &mut String, first: &mut bool) {
    if !*first {
        out.push(',');
    }
    *first = false;
}

fn elided_marker(session: &Session) -> Obj<'static> {
    let n = session.totals.elided;
    let mut o = Obj::default();
    o.str("spanId", "elided");
    o.str("parentSpanId", &session.root().span_id);
    o.str(
        "name",
        &format!("… {n} spans elided (trace exceeded 5000 spans) …"),
    );
    o.str("kind", "span");
    o.u64("startTime", session.started_at);
    o.u64("endTime", session.started_at);
    o.str("status", "ok");
    let mut attrs = Obj::default();
    attrs.u64("elided", n);
    attrs.u64("totalSpans", session.totals.spans);
    o.raw("attributes", attrs.finish());
    o
}

fn span_obj(span: &Span) -> Obj<'_> {
    let mut o = Obj::default();
    o.str("spanId", &span.span_id);
    match &span.parent {
        Some(p) => o.str("parentSpanId", p),
        None => o.raw("parentSpanId", "null"),
    }
    o.str("name", &span.name);
    o.str("kind", &span.kind);
    o.u64("startTime", span.start);
    if let Some(end) = span.end {
        o.u64("endTime", end);
    }
    o.str(
        "status",
        match span.status {
            EndStatus::Ok => "ok",
            EndStatus::Error => "error",
        },
    );
    o.opt_str("statusMessage", span.message.as_deref());
    if span.interrupted {
        o.raw("interrupted", "true");
    }
    if let Some(m) = &span.model {
        o.raw("model", model(m));
    }
    o.opt_str("finishReason", span.finish_reason.as_deref());
    if let Some(t) = &span.tokens {
        o.raw("tokens", tokens(t, true));
    }
    if let Some(c) = span.cost {
        o.f64("cost", c);
    }
    if let Some(tool) = &span.tool {
        let mut t = Obj::default();
        t.str("callId", &tool.call_id);
        if let Some(d) = tool.duration_ms {
            t.u64("durationMs", d);
        }
        o.raw("tool", t.finish());
    }
    if let Some(input) = &span.input {
        o.json("input", input);
    }
    if let Some(output) = &span.output {
        if span.kind == "generation" {
            o.str("output", &generation_output(output));
        } else {
            o.json("output", output);
        }
    }
    if !span.attributes.is_empty() {
        let mut a = Obj::default();
        for (k, v) in &span.attributes {
            a.members
                .push((Cow::Borrowed(k.as_str()), Cow::Borrowed(v.0.as_str())));
        }
        o.raw("attributes", a.finish());
    }
    o
}

/// A generation's `output` as the string frontends print (they show
/// `String(output)`, so an object would read `[object Object]`): a JSON
/// string as is; an object's `text` (or `content`) string; an object's
/// `tool_calls` array of named calls as `[tool calls: a, b]`; anything
/// else as its JSON text.
pub fn generation_output(output: &JsonText) -> String {
    let value = match output.parse() {
        Ok(v) => v,
        Err(_) => return output.0.clone(),
    };
    match &value {
        serde_json::Value::String(s) => return s.clone(),
        serde_json::Value::Object(obj) => {
            for key in ["text", "content"] {
                if let Some(serde_json::Value::String(s)) = obj.get(key) {
                    return s.clone();
                }
            }
            for key in ["tool_calls", "toolCalls"] {
                if let Some(serde_json::Value::Array(calls)) = obj.get(key) {
                    let names: Vec<&str> = calls
                        .iter()
                        .filter_map(|c| {
                            c.get("name")
                                .or_else(|| c.get("tool_name"))
                                .or_else(|| c.get("tool"))
                                .and_then(serde_json::Value::as_str)
                        })
                        .collect();
                    if !names.is_empty() {
                        return format!("[tool calls: {}]", names.join(", "));
                    }
                }
            }
        }
        _ => {}
    }
    output.0.clone()
}

fn model(m: &ModelRef) -> String {
    let mut o = Obj::default();
    o.opt_str("modelId", m.model_id.as_deref());
    o.opt_str("providerId", m.provider_id.as_deref());
    o.opt_str("variant", m.variant.as_deref());
    o.finish()
}

fn tokens(t: &Tokens, with_total: bool) -> String {
    let mut o = Obj::default();
    o.u64("input", t.input);
    o.u64("output", t.output);
    o.u64("reasoning", t.reasoning);
    o.u64("cacheRead", t.cache_read);
    o.u64("cacheWrite", t.cache_write);
    if with_total {
        o.u64("total", t.total());
    }
    o.finish()
}

fn summary(s: &Session) -> String {
    let mut o = Obj::default();
    o.u64("totalTokens", s.totals.tokens.total());
    o.f64("totalCost", s.totals.cost);
    o.u64("totalToolCalls", s.totals.tool_calls);
    o.u64("totalGenerations", s.totals.generations);
    let end = s.ended_at.unwrap_or(s.last_time);
    o.u64("duration", end.saturating_sub(s.started_at));
    o.str("status", s.status.as_str());
    if matches!(s.status, Status::Error | Status::Crashed) {
        o.opt_str("error", s.error.as_deref());
    }
    o.raw("tokens", tokens(&s.totals.tokens, false));
    if s.ended_at.is_some() {
        o.raw("topTools", top_tools(s));
        o.raw("loops", loops(s));
        o.str("narrative", &narrative(s));
    }
    o.finish()
}

fn ranked_tools(s: &Session) -> Vec<(&String, u64, u64)> {
    let mut tools: Vec<_> = s
        .tools
        .iter()
        .map(|(name, st)| (name, st.count, st.duration_ms))
        .collect();
    tools.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    tools.truncate(TOP_TOOLS);
    tools
}

fn top_tools(s: &Session) -> String {
    let items: Vec<String> = ranked_tools(s)
        .into_iter()
        .map(|(name, count, dur)| {
            let mut o = Obj::default();
            o.str("name", name);
            o.u64("count", count);
            o.u64("totalDuration", dur);
            o.finish()
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn loops(s: &Session) -> String {
    let items: Vec<String> = s
        .loops
        .iter()
        .map(|l| {
            let mut o = Obj::default();
            o.str("tool", &l.tool);
            o.str("inputHash", &format!("{:016x}", l.input_hash));
            o.u64("count", l.count);
            o.str(
                "description",
                &format!("{} called {} times with the same input", l.tool, l.count),
            );
            o.finish()
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// A one-line human summary of an ended session.
pub fn narrative(s: &Session) -> String {
    let secs = s
        .ended_at
        .unwrap_or(s.last_time)
        .saturating_sub(s.started_at) as f64
        / 1000.0;
    let verb = match s.status {
        Status::Running => "Running for".to_string(),
        Status::Completed => "Completed in".to_string(),
        Status::Error => "Failed after".to_string(),
        Status::Crashed => "Crashed after".to_string(),
    };
    let tools: Vec<String> = ranked_tools(s)
        .into_iter()
        .take(3)
        .map(|(n, c, _)| format!("{n} {c}"))
        .collect();
    let mut line = format!(
        "{verb} {secs:.1}s: {} generations, {} tool calls",
        s.totals.generations, s.totals.tool_calls
    );
    if !tools.is_empty() {
        line.push_str(&format!(" ({})", tools.join(", ")));
    }
    line.push_str(&format!(
        ", {} tokens, ${:.2}",
        s.totals.tokens.total(),
        s.totals.cost
    ));
    if !s.loops.is_empty() {
        line.push_str(&format!(", {} repeated-call loop(s)", s.loops.len()));
    }
    if let Some(e) = s.error.as_ref().filter(|_| s.status != Status::Completed) {
        line.push_str(&format!("; {e}"));
    }
    line.push('.');
    line
}

/// `ms` since the epoch as ISO-8601 UTC with milliseconds.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::{parse_line, Entry};
    use crate::store::model::Sessions;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_773_568_800_000), "2026-03-15T10:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn rendering_is_canonical_and_live_sessions_have_no_end() {
        let mut state = Sessions::new(1);
        let lines = [
            r#"{"type":"session_start","session":"r","time":1000,"metadata":{"title":"t","tags":["a"]}}"#,
            r#"{"type":"span_start","session":"r","span":"g","kind":"generation","time":1001}"#,
            r#"{"type":"span_end","session":"r","span":"g","time":1005,"tokens":{"input":10,"output":5},"cost":0.25,"finish_reason":"stop"}"#,
        ];
        for (i, l) in lines.iter().enumerate() {
            state.apply(i as u64 + 1, &Entry::from(parse_line(l).unwrap()));
        }
        let bytes = render(state.get("r").unwrap());
        let text = String::from_utf8(bytes.clone()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            jcs::to_string(&value),
            text,
            "the file is its own canonical form"
        );
        assert!(value.get("endedAt").is_none());
        assert_eq!(value["summary"]["status"], "running");
        assert_eq!(value["summary"]["totalTokens"], 15);
        assert_eq!(value["spans"][1]["tokens"]["total"], 15);
        assert_eq!(value["spans"][0]["parentSpanId"], serde_json::Value::Null);
        assert!(value["summary"].get("narrative").is_none());
        assert_eq!(render(state.get("r").unwrap()), bytes);
    }
}
