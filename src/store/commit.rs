//! The store's one commit path: encode the entries, append them through
//! the journal (normal lane or urgent lane), and hand them to the sequencer
//! ([`LiveState::complete`]), which applies them in LSN order.
//!
//! Every entry the store writes goes through [`commit`]: ingested events,
//! crash markers, the `Opened` batch and orphan markers at open, `Shutdown`
//! at close, and the compactor's `Retire` entries. So the rule "the
//! sequencer hears of every LSN the store appends" holds in one place.
//!
//! Never: appends without handing the entries over (a gap the sequencer
//! would wait on forever); hands over entries whose append failed.

use crate::error::Result;
use crate::wal::journal::Journal;
use crate::wal::options::Record;
use crate::wal::Lsn;

use super::event::{Entry, ENTRY_KIND};
use super::model::Applied;
use super::state::LiveState;

/// Which lane of the journal's writer the entries take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// The bounded queue: one entry as a single append, several as one
    /// atomic batch.
    Normal,
    /// The urgent lane, ahead of everything queued (crash markers, the
    /// `Opened` batch), always as one atomic batch.
    Urgent,
}

/// What a commit did: the first LSN, and what applying each entry did.
#[derive(Debug)]
pub struct Commit {
    /// The LSN of the first entry; the others follow in order.
    pub first: Lsn,
    /// What applying each entry did, in order.
    pub applied: Vec<Applied>,
}

/// Encodes `entries`, appends them on `lane`, and waits until the
/// sequencer applied them (`now` is the time the dirty set records).
///
/// An append error returns before anything is handed over (the journal
/// assigned no LSN the sequencer waits for: the writer poisons and the
/// store's poison hook abandons the LSNs from the failed one on). A
/// sequencer error (the journal was poisoned below these entries, or the
/// store closed) returns with the entries unapplied.
pub fn commit(
    journal: &Journal,
    live: &LiveState,
    lane: Lane,
    entries: Vec<Entry>,
    now: u64,
) -> Result<Commit> {
    assert!(!entries.is_empty(), "commit of no entries");
    let count = entries.len();
    let first = append(journal, lane, encode(&entries))?;
    let applied = live.complete(first, entries, now)?;
    assert_eq!(applied.len(), count, "one result per committed entry");
    Ok(Commit { first, applied })
}

/// The entries as log records.
fn encode(entries: &[Entry]) -> Vec<Record> {
    entries
        .iter()
        .map(|e| Record::new(ENTRY_KIND, e.encode()))
        .collect()
}

/// Appends `records` on `lane`; returns the first LSN.
fn append(journal: &Journal, lane: Lane, mut records: Vec<Record>) -> Result<Lsn> {
    match lane {
        Lane::Normal if records.len() == 1 => {
            Ok(journal.append(records.pop().expect("one record"))?)
        }
        Lane::Normal => Ok(journal.append_batch(records)?.start),
        Lane::Urgent => Ok(journal.append_urgent_batch(records)?.start),
    }
}
