//! The checkpoint body: a versioned snapshot format of [`Sessions`], of its
//! own, decoupled from the model's structs.
//!
//! The model's structs change whenever the trace file or the hook mapping
//! does. If a checkpoint were the serde image of those structs, such a
//! change would turn every old checkpoint into "does not parse", and a
//! store whose log no longer reaches back to LSN 1 would lose its history.
//! So the body is written from the types below (`Ckpt*`), which are
//! frozen: they change only together with a new [`BODY_VERSION`], and the
//! decoder of every older version stays.
//!
//! Versions (the checkpoint header's format version field):
//!
//! | version | body |
//! |---|---|
//! | 1 | `serde_json` of the model as it was in 0.1 (read, never written) |
//! | 2 | the `Ckpt*` types in bincode 2.0.1: little-endian, fixed-width integers, maps as a `u64` count then sorted pairs |
//!
//! Version 1's JSON had exactly the field names and shapes of the `Ckpt*`
//! types (without `retired`), so both versions decode into them.
//!
//! The conversion between the model and these types is in one place:
//! [`to_body`] and [`from_body`]. Both destructure or build every struct
//! with all its fields named, so a field added to the model is a compile
//! error here until it is given a place in a new body version.
//! `checkpoint::tests::golden_body_*` pin the bytes.

use super::{LoopInfo, Session, Sessions, Span, Status, ToolInfo, ToolStat, Totals};
use crate::store::event::{EndStatus, JsonText, Metadata, ModelRef, Tokens};
use crate::wal::Lsn;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// The body version this build writes.
pub const BODY_VERSION: u32 = 2;

/// The oldest body version this build reads.
pub const OLDEST_BODY_VERSION: u32 = 1;

/// Body v1/v2: the whole state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CkptSessions {
    sessions: BTreeMap<String, CkptSession>,
    keys: BTreeMap<String, BTreeMap<String, u64>>,
    applied: u64,
    clean_shutdown: bool,
    /// Not in version 1 (empty when read from it).
    #[serde(default)]
    retired: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum CkptStatus {
    Running,
    Completed,
    Error,
    Crashed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum CkptEndStatus {
    Ok,
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CkptMetadata {
    title: Option<String>,
    model: Option<String>,
    provider_id: Option<String>,
    agent: Option<String>,
    variant: Option<String>,
    prompt: Option<String>,
    user_id: Option<String>,
    environment: Option<String>,
    version: Option<String>,
    tags: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct CkptTokens {
    input: u64,
    output: u64,
    reasoning: u64,
    cache_read: u64,
    cache_write: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CkptModelRef {
    model_id: Option<String>,
    provider_id: Option<String>,
    variant: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CkptToolInfo {
    call_id: String,
    duration_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CkptSpan {
    span_id: String,
    parent: Option<String>,
    name: String,
    kind: String,
    start: u64,
    end: Option<u64>,
    status: CkptEndStatus,
    message: Option<String>,
    interrupted: bool,
    model: Option<CkptModelRef>,
    finish_reason: Option<String>,
    tokens: Option<CkptTokens>,
    cost: Option<f64>,
    tool: Option<CkptToolInfo>,
    input: Option<String>,
    output: Option<String>,
    attributes: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CkptToolStat {
    count: u64,
    duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CkptLoopInfo {
    tool: String,
    input_hash: u64,
    input_preview: String,
    count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CkptTotals {
    tokens: CkptTokens,
    cost: f64,
    tool_calls: u64,
    generations: u64,
    spans: u64,
    elided: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CkptSession {
    id: String,
    trace_id: String,
    started_at: u64,
    ended_at: Option<u64>,
    run: u32,
    status: CkptStatus,
    error: Option<String>,
    metadata: CkptMetadata,
    spans: BTreeMap<u64, CkptSpan>,
    totals: CkptTotals,
    tools: BTreeMap<String, CkptToolStat>,
    loops: Vec<CkptLoopInfo>,
    last_time: u64,
    version: u64,
    last_lsn: u64,
    next_seq: u64,
    head_end: u64,
    open: BTreeMap<String, u64>,
    by_id: BTreeMap<String, u64>,
    turn: Option<u64>,
    turns: u64,
    recent_tools: Vec<(String, u64)>,
}

/// Encodes `state` as a body of version [`BODY_VERSION`]. The same state
/// always gives the same bytes (maps are written sorted).
pub fn encode(state: &Sessions) -> Result<Vec<u8>, String> {
    let body = to_body(state);
    bincode::serde::encode_to_vec(&body, config::<{ usize::MAX }>()).map_err(|e| e.to_string())
}

/// Decodes a body of `version`. `Err` says why it does not decode; the
/// caller has already checked that `version` is one this build reads.
pub fn decode(version: u32, body: &[u8]) -> Result<Sessions, String> {
    let dto = match version {
        1 => serde_json::from_slice::<CkptSessions>(body).map_err(|e| e.to_string())?,
        2 => decode_v2(body)?,
        other => return Err(format!("body version {other} is not one this build reads")),
    };
    Ok(from_body(dto))
}

fn config<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<LIMIT>()
}

fn decode_with<const LIMIT: usize>(body: &[u8]) -> Result<CkptSessions, String> {
    let (dto, used): (CkptSessions, usize) =
        bincode::serde::decode_from_slice(body, config::<LIMIT>()).map_err(|e| e.to_string())?;
    if used != body.len() {
        return Err(format!(
            "{} trailing bytes after the state",
            body.len() - used
        ));
    }
    Ok(dto)
}

/// Decodes a version 2 body with a decode limit of the smallest power of
/// two at least twice its length (and at least 1 MiB): a hostile length
/// prefix inside the body can never make the decoder allocate more than
/// that.
fn decode_v2(body: &[u8]) -> Result<CkptSessions, String> {
    let need = body.len().saturating_mul(2);
    macro_rules! by_limit {
        ($($shift:literal)*) => {
            $(
                if need <= 1usize << $shift {
                    return decode_with::<{ 1usize << $shift }>(body);
                }
            )*
        };
    }
    by_limit!(20 22 24 26 28 30 32 34 36 38 40 42 44 46 48);
    decode_with::<{ usize::MAX }>(body)
}

fn status_to(s: Status) -> CkptStatus {
    match s {
        Status::Running => CkptStatus::Running,
        Status::Completed => CkptStatus::Completed,
        Status::Error => CkptStatus::Error,
        Status::Crashed => CkptStatus::Crashed,
    }
}

fn status_from(s: CkptStatus) -> Status {
    match s {
        CkptStatus::Running => Status::Running,
        CkptStatus::Completed => Status::Completed,
        CkptStatus::Error => Status::Error,
        CkptStatus::Crashed => Status::Crashed,
    }
}

fn end_to(s: EndStatus) -> CkptEndStatus {
    match s {
        EndStatus::Ok => CkptEndStatus::Ok,
        EndStatus::Error => CkptEndStatus::Error,
    }
}

fn end_from(s: CkptEndStatus) -> EndStatus {
    match s {
        CkptEndStatus::Ok => EndStatus::Ok,
        CkptEndStatus::Error => EndStatus::Error,
    }
}

fn tokens_to(t: &Tokens) -> CkptTokens {
    let Tokens {
        input,
        output,
        reasoning,
        cache_read,
        cache_write,
    } = *t;
    CkptTokens {
        input,
        output,
        reasoning,
        cache_read,
        cache_write,
    }
}

fn tokens_from(t: CkptTokens) -> Tokens {
    let CkptTokens {
        input,
        output,
        reasoning,
        cache_read,
        cache_write,
    } = t;
    Tokens {
        input,
        output,
        reasoning,
        cache_read,
        cache_write,
    }
}

fn sorted<V: Clone>(map: &HashMap<String, V>) -> BTreeMap<String, V> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The model's state as a body. The one place (with [`from_body`]) that
/// knows both sides.
fn to_body(state: &Sessions) -> CkptSessions {
    let Sessions {
        sessions,
        keys,
        applied,
        clean_shutdown,
        retired,
    } = state;
    CkptSessions {
        sessions: sessions
            .iter()
            .map(|(id, s)| (id.clone(), session_to(s)))
            .collect(),
        keys: keys.iter().map(|(s, k)| (s.clone(), sorted(k))).collect(),
        applied: *applied,
        clean_shutdown: *clean_shutdown,
        retired: retired.iter().cloned().collect(),
    }
}

/// A body as the model's state. The one place (with [`to_body`]) that
/// knows both sides.
fn from_body(body: CkptSessions) -> Sessions {
    let CkptSessions {
        sessions,
        keys,
        applied,
        clean_shutdown,
        retired,
    } = body;
    Sessions {
        sessions: sessions
            .into_iter()
            .map(|(id, s)| (id, session_from(s)))
            .collect(),
        keys: keys
            .into_iter()
            .map(|(s, k)| (s, k.into_iter().collect::<HashMap<String, Lsn>>()))
            .collect(),
        applied,
        clean_shutdown,
        retired: retired.into_iter().collect::<VecDeque<String>>(),
    }
}

#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn session_to(s: &Session) -> CkptSession {
    let Session {
        id,
        trace_id,
        started_at,
        ended_at,
        run,
        status,
        error,
        metadata,
        spans,
        totals,
        tools,
        loops,
        last_time,
        version,
        last_lsn,
        next_seq,
        head_end,
        open,
        by_id,
        turn,
        turns,
        recent_tools,
    } = s;
    let Metadata {
        title,
        model,
        provider_id,
        agent,
        variant,
        prompt,
        user_id,
        environment,
        version: agent_version,
        tags,
    } = metadata.clone();
    let Totals {
        tokens,
        cost,
        tool_calls,
        generations,
        spans: span_count,
        elided,
    } = totals;
    CkptSession {
        id: id.clone(),
        trace_id: trace_id.clone(),
        started_at: *started_at,
        ended_at: *ended_at,
        run: *run,
        status: status_to(*status),
        error: error.clone(),
        metadata: CkptMetadata {
            title,
            model,
            provider_id,
            agent,
            variant,
            prompt,
            user_id,
            environment,
            version: agent_version,
            tags,
        },
        spans: spans.iter().map(|(k, v)| (*k, span_to(v))).collect(),
        totals: CkptTotals {
            tokens: tokens_to(tokens),
            cost: *cost,
            tool_calls: *tool_calls,
            generations: *generations,
            spans: *span_count,
            elided: *elided,
        },
        tools: tools
            .iter()
            .map(|(name, ToolStat { count, duration_ms })| {
                (
                    name.clone(),
                    CkptToolStat {
                        count: *count,
                        duration_ms: *duration_ms,
                    },
                )
            })
            .collect(),
        loops: loops
            .iter()
            .map(
                |LoopInfo {
                     tool,
                     input_hash,
                     input_preview,
                     count,
                 }| CkptLoopInfo {
                    tool: tool.clone(),
                    input_hash: *input_hash,
                    input_preview: input_preview.clone(),
                    count: *count,
                },
            )
            .collect(),
        last_time: *last_time,
        version: *version,
        last_lsn: *last_lsn,
        next_seq: *next_seq,
        head_end: *head_end,
        open: sorted(open),
        by_id: sorted(by_id),
        turn: *turn,
        turns: *turns,
        recent_tools: recent_tools.iter().cloned().collect(),
    }
}

#[allow(clippy::too_many_lines)] // TODO(issue 11): split
fn session_from(s: CkptSession) -> Session {
    let CkptSession {
        id,
        trace_id,
        started_at,
        ended_at,
        run,
        status,
        error,
        metadata,
        spans,
        totals,
        tools,
        loops,
        last_time,
        version,
        last_lsn,
        next_seq,
        head_end,
        open,
        by_id,
        turn,
        turns,
        recent_tools,
    } = s;
    let CkptMetadata {
        title,
        model,
        provider_id,
        agent,
        variant,
        prompt,
        user_id,
        environment,
        version: agent_version,
        tags,
    } = metadata;
    let CkptTotals {
        tokens,
        cost,
        tool_calls,
        generations,
        spans: span_count,
        elided,
    } = totals;
    Session {
        id,
        trace_id,
        started_at,
        ended_at,
        run,
        status: status_from(status),
        error,
        metadata: Metadata {
            title,
            model,
            provider_id,
            agent,
            variant,
            prompt,
            user_id,
            environment,
            version: agent_version,
            tags,
        },
        spans: spans
            .into_iter()
            .map(|(k, v)| (k, Arc::new(span_from(v))))
            .collect(),
        totals: Totals {
            tokens: tokens_from(tokens),
            cost,
            tool_calls,
            generations,
            spans: span_count,
            elided,
        },
        tools: tools
            .into_iter()
            .map(|(name, CkptToolStat { count, duration_ms })| {
                (name, ToolStat { count, duration_ms })
            })
            .collect(),
        loops: loops
            .into_iter()
            .map(
                |CkptLoopInfo {
                     tool,
                     input_hash,
                     input_preview,
                     count,
                 }| LoopInfo {
                    tool,
                    input_hash,
                    input_preview,
                    count,
                },
            )
            .collect(),
        last_time,
        version,
        last_lsn,
        next_seq,
        head_end,
        open: open.into_iter().collect(),
        by_id: by_id.into_iter().collect(),
        turn,
        turns,
        recent_tools: recent_tools.into_iter().collect(),
    }
}

fn span_to(s: &Span) -> CkptSpan {
    let Span {
        span_id,
        parent,
        name,
        kind,
        start,
        end,
        status,
        message,
        interrupted,
        model,
        finish_reason,
        tokens,
        cost,
        tool,
        input,
        output,
        attributes,
    } = s;
    CkptSpan {
        span_id: span_id.clone(),
        parent: parent.clone(),
        name: name.clone(),
        kind: kind.clone(),
        start: *start,
        end: *end,
        status: end_to(*status),
        message: message.clone(),
        interrupted: *interrupted,
        model: model.as_ref().map(
            |ModelRef {
                 model_id,
                 provider_id,
                 variant,
             }| CkptModelRef {
                model_id: model_id.clone(),
                provider_id: provider_id.clone(),
                variant: variant.clone(),
            },
        ),
        finish_reason: finish_reason.clone(),
        tokens: tokens.as_ref().map(tokens_to),
        cost: *cost,
        tool: tool.as_ref().map(
            |ToolInfo {
                 call_id,
                 duration_ms,
             }| CkptToolInfo {
                call_id: call_id.clone(),
                duration_ms: *duration_ms,
            },
        ),
        input: input.as_ref().map(|t| t.0.clone()),
        output: output.as_ref().map(|t| t.0.clone()),
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
    }
}

fn span_from(s: CkptSpan) -> Span {
    let CkptSpan {
        span_id,
        parent,
        name,
        kind,
        start,
        end,
        status,
        message,
        interrupted,
        model,
        finish_reason,
        tokens,
        cost,
        tool,
        input,
        output,
        attributes,
    } = s;
    Span {
        span_id,
        parent,
        name,
        kind,
        start,
        end,
        status: end_from(status),
        message,
        interrupted,
        model: model.map(
            |CkptModelRef {
                 model_id,
                 provider_id,
                 variant,
             }| ModelRef {
                model_id,
                provider_id,
                variant,
            },
        ),
        finish_reason,
        tokens: tokens.map(tokens_from),
        cost,
        tool: tool.map(
            |CkptToolInfo {
                 call_id,
                 duration_ms,
             }| ToolInfo {
                call_id,
                duration_ms,
            },
        ),
        input: input.map(JsonText),
        output: output.map(JsonText),
        attributes: attributes
            .into_iter()
            .map(|(k, v)| (k, JsonText(v)))
            .collect(),
    }
}

#[cfg(test)]
impl Sessions {
    /// Drops the retired ids (a version 1 body had none).
    pub(crate) fn forget_retired_for_tests(&mut self) {
        self.retired.clear();
    }
}
