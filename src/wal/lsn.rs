//! Log sequence numbers.

/// A log sequence number: the position of a record in the log, starting at
/// 1, dense (each record gets the next one) and never reused for a durable
/// record.
pub type Lsn = u64;
