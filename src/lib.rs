//! tracejournal: a write-ahead journaled store for the trace and hook
//! events of AI coding agents.
//!
//! Records are appended to a checksummed segment log by one group-commit
//! writer thread; an acknowledged record survives what its [`Durability`]
//! promises, and recovery on [`Journal::open`] decides from the bytes on
//! disk exactly which records the log holds.
//!
//! ```no_run
//! use tracejournal::{Journal, Options, Record};
//!
//! let (journal, report) = Journal::open("/tmp/my-journal", Options::default())?;
//! println!("recovered {} records", report.records);
//! let lsn = journal.append(Record::new(1, br#"{"hello":"world"}"#.to_vec()))?;
//! for record in journal.read_from(lsn)? {
//!     println!("{:?}", record?);
//! }
//! journal.close()?;
//! # Ok::<(), tracejournal::Error>(())
//! ```
//!
//! `DESIGN.md` at the repository root is the map: modules, the on-disk
//! format byte by byte, and every invariant with the test that guards it.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(unnameable_types)]
// Functions stay under clippy.toml's `too-many-lines-threshold` (70 lines:
// one screen). Unit tests are exempt: a scenario reads top to bottom.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]

// The tree. Every module is private: the `pub use` lists below are the
// whole public API (`DESIGN.md`, "Code map", labels each boundary).
mod error;
mod store;
mod wal;

#[cfg(feature = "testkit")]
pub mod testkit;

// ---------------------------------------------------------------- errors

pub use error::{Error, JournalError, Result};

// ------------------------------------------------------------ the journal

pub use wal::frame::SegmentId;
pub use wal::journal::{Journal, RemovedSegments};
pub use wal::options::{Durability, Options, Record};
pub use wal::reader::{LogRecord, Reader};
pub use wal::recovery::{Damage, RecoveryMode, RecoveryReport, Truncation};
pub use wal::storage::{DirLock, FsStorage, OpenMode, ReadMap, Storage, StorageFile};
pub use wal::ticket::Ticket;
pub use wal::view::LogView;
pub use wal::Lsn;

// -------------------------------------------------------------- the store

pub use store::clock::{Clock, ManualClock};
pub use store::compactor::CompactReport;
pub use store::publish::FileStats;
pub use store::state::{Committed, Subscription};
pub use store::{Ack, OpenReport, OrphanPolicy, SessionSummary, Store, StoreOptions};

// -------------------------------------------- reading beside a writer

pub use store::snapshot::{CommittedEntry, SnapshotReport, StoreSnapshot};
pub use wal::readonly::{ReadOnlyJournal, ReadOnlyStorage, REFRESH_MAX_BYTES};

// ------------------------------------------------ namespaces of the store

/// Events: what agents and tracers send, as typed values and as one-line
/// JSON ([`event::parse_line`], [`event::hook_event`]), and the log entries
/// of the session store.
pub mod event {
    pub use crate::store::event::{
        hook_event, parse_line, Body, EndStatus, Entry, Event, EventError, JsonText, Metadata,
        ModelRef, Tokens, ENTRY_KIND, ENTRY_VERSION, MAX_ID_LEN,
    };
}

/// The session model: the state of a session as the store keeps it
/// ([`model::Session`]), and the whole state ([`model::Sessions`]).
pub mod model {
    pub use crate::store::model::{
        Applied, LoopInfo, Session, Sessions, Span, Status, ToolInfo, ToolStat, Totals,
        DEFAULT_CRASH_REASON, MAX_RETIRED_REMEMBERED, MAX_SPANS, MAX_TOOL_OUTPUT_CHARS,
        MAX_USER_MESSAGE_CHARS, ORPHANED_REASON,
    };
}

/// Trace files' contents: a session rendered as canonical JSON
/// (`trace-file-v2`, RFC 8785).
pub mod trace {
    pub use crate::store::jcs::canonicalize;
    pub use crate::store::render::{iso8601, render, TRACE_VERSION};
}

/// Where each file lives in a store directory, and how files are named.
pub mod layout {
    pub use crate::store::layout::{
        is_trace_file_name, parse_segment_file_name, segment_file_name, trace_file_name,
        CHECKPOINTS_DIR, LEDGER_FILE, LOCK_FILE, TRACES_DIR,
    };
}

/// Compiles the Rust examples in README.md as doctests, so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
