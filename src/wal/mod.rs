//! The write-ahead log: a checksummed segment log, one group-commit writer,
//! recovery, readers. Knows nothing of sessions or events: a record is a
//! type tag and opaque bytes.
//!
//! Layers, bottom up: [`lsn`], [`frame`] / [`segment`] / [`payload`] (the
//! on-disk format), [`storage`] (every byte goes through it), [`failpoint`]
//! (named hooks, live only with the `testkit` feature), [`log`] (what
//! readers see), [`writer`] and [`ticket`] (group commit), [`reader`],
//! [`recovery`], [`journal`] (the public face), [`options`], [`readonly`]
//! (reading beside a writer).
//!
//! The modules are `pub` inside this private module so that `lib.rs` and
//! the test kit can re-export what they choose; nothing here is reachable
//! from outside the crate except through those re-exports.

pub mod error;
pub mod failpoint;
pub mod frame;
pub mod journal;
pub mod log;
pub mod lsn;
pub mod options;
pub mod payload;
pub mod reader;
pub mod readonly;
pub mod recovery;
pub mod segment;
pub mod storage;
pub mod ticket;
pub mod view;
pub mod writer;

pub use lsn::Lsn;
