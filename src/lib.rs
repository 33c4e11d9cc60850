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

pub mod checkpoint;
pub mod clock;
pub mod compactor;
pub mod error;
pub mod event;
pub mod failpoint;
pub mod frame;
pub mod fuzzing;
pub mod jcs;
pub mod journal;
pub mod ledger;
mod log;
pub mod model;
pub mod names;
pub mod options;
pub mod payload;
pub mod reader;
pub mod readonly;
pub mod recovery;
pub mod render;
pub mod segment;
pub mod sim;
pub mod state;
pub mod storage;
pub mod store;
mod ticket;
mod writer;

/// A log sequence number: the position of a record in the log, starting at
/// 1, dense (each record gets the next one) and never reused for a durable
/// record.
pub type Lsn = u64;

pub use error::{Error, Result};
pub use journal::Journal;
pub use options::{Durability, Options, Record};
pub use reader::{LogRecord, Reader};
pub use readonly::{ReadOnlyJournal, StoreSnapshot};
pub use recovery::{RecoveryMode, RecoveryReport};
pub use ticket::Ticket;

/// Compiles the Rust examples in README.md as doctests, so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
