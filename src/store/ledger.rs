//! The crash ledger: the direct path to disk for crash markers.
//!
//! A crash marker must become durable even when the writer thread is stuck
//! (or dead) and the log cannot take it. `mark_crashed` then appends the
//! marker to a small side file, `<journal dir>/crash.ledger`
//! ([`crate::store::layout::LEDGER_FILE`]), with its own `fdatasync`. On the next open, recovery
//! applies the ledger's markers, appends them to the log, and removes the
//! ledger ([`Ledger::remove`]).
//!
//! # On-disk format
//!
//! No file header: the file is a sequence of records, each
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 0 | 4 | len | `u32` little-endian: the payload's length, 1 to 65,536 ([`MAX_PAYLOAD`]) |
//! | 4 | 4 | crc | `u32` little-endian: CRC-32 (IEEE, `crc32fast`) of the payload |
//! | 8 | len | payload | [`Entry::encode`] bytes |
//!
//! A scan reads records from offset 0 and stops at the first record that is
//! short (fewer than 8 header bytes or fewer than `len` payload bytes left),
//! has `len` of 0 or above [`MAX_PAYLOAD`], a wrong `crc`, or a payload that
//! does not decode: that is the torn tail of an append a crash interrupted.
//! Every record before it counts; nothing after it does.
//!
//! Never: allocate more than [`MAX_PAYLOAD`] bytes for a record, whatever
//! its `len` field says; append after an invalid record (an append goes at
//! the end of the last valid record, and cuts whatever follows it).

use crate::error::{Error, Result};
use crate::store::event::Entry;
use crate::wal::failpoint::{names, Failpoints};
use crate::wal::storage::{OpenMode, Storage, StorageFile};
use parking_lot::Mutex;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest payload a record may hold, in bytes (64 KiB).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The length of a record's header (`len` and `crc`).
pub const RECORD_HEADER_LEN: usize = 8;

/// The crash ledger of one journal directory.
///
/// Appends through one `Ledger` are serialized by its mutex. Only one
/// `Ledger` per directory should append at a time (the journal's directory
/// lock keeps other processes out).
#[derive(Debug)]
pub struct Ledger {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    path: PathBuf,
    failpoints: Failpoints,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The end of the last valid record, if known: trusted only while the
    /// file's length equals it (anything else means a failed append left
    /// bytes behind, or the file changed under us: scan again).
    valid_end: Option<u64>,
    /// True once a `sync_dir` after this ledger's last creation (or since
    /// this `Ledger` was made) returned: the file's name is durable.
    dir_synced: bool,
}

/// The result of scanning a ledger file.
struct Scan {
    entries: Vec<Entry>,
    valid_end: u64,
}

impl Ledger {
    /// The ledger of the journal in `journal_dir`, with no failpoints
    /// armed. Does no I/O.
    pub fn new(storage: Arc<dyn Storage>, journal_dir: &Path) -> Ledger {
        Ledger::with_failpoints(storage, journal_dir, Failpoints::new())
    }

    /// Like [`Ledger::new`], with the journal's failpoint registry (the
    /// ledger hits [`names::LEDGER_BEFORE_SYNC`]).
    pub fn with_failpoints(
        storage: Arc<dyn Storage>,
        journal_dir: &Path,
        failpoints: Failpoints,
    ) -> Ledger {
        Ledger {
            storage,
            dir: journal_dir.to_path_buf(),
            path: super::layout::ledger_path(journal_dir),
            failpoints,
            state: Mutex::new(State::default()),
        }
    }

    /// Appends `entry` and makes it durable: `fdatasync` of the file, and
    /// the first time (after creating the file, or for the first append of
    /// this `Ledger`) `fsync` of the journal directory, so the file's
    /// existence survives a crash too.
    ///
    /// The record goes at the end of the last valid record; a torn tail
    /// left there by an earlier crash is cut first. An entry whose encoding
    /// exceeds [`MAX_PAYLOAD`] is refused with [`Error::InvalidEvent`]
    /// before anything is written. After an error the record may or may not
    /// be in the ledger.
    pub fn append(&self, entry: &Entry) -> Result<()> {
        let payload = entry.encode();
        if payload.is_empty() || payload.len() > MAX_PAYLOAD {
            return Err(Error::InvalidEvent {
                index: 0,
                reason: format!(
                    "a crash ledger record holds 1 to {MAX_PAYLOAD} bytes; this entry encodes to {}",
                    payload.len()
                ),
            });
        }
        let mut record = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);

        let mut state = self.state.lock();
        let result = self.append_locked(&mut state, &record);
        if result.is_err() {
            state.valid_end = None;
        }
        result
    }

    fn append_locked(&self, state: &mut State, record: &[u8]) -> Result<()> {
        let (file, created) = match self.storage.open(&self.path, OpenMode::CreateNew) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let file = self
                    .storage
                    .open(&self.path, OpenMode::ReadWrite)
                    .map_err(|e| self.io("open crash ledger", e))?;
                (file, false)
            }
            Err(e) => return Err(self.io("create crash ledger", e)),
        };
        if created {
            state.valid_end = Some(0);
            state.dir_synced = false;
        }
        let len = file.len().map_err(|e| self.io("stat crash ledger", e))?;
        let end = match state.valid_end {
            Some(end) if end == len => end,
            _ => {
                let end = self.scan(&*file, len)?.valid_end;
                if end < len {
                    // A torn tail: cut it so the new record is the last one.
                    file.set_len(end)
                        .map_err(|e| self.io("truncate crash ledger", e))?;
                }
                end
            }
        };
        file.write_at(record, end)
            .map_err(|e| self.io("write crash ledger", e))?;
        self.failpoints
            .hit(names::LEDGER_BEFORE_SYNC)
            .map_err(|e| self.io("fdatasync crash ledger", e))?;
        file.sync_data()
            .map_err(|e| self.io("fdatasync crash ledger", e))?;
        if !state.dir_synced {
            self.storage
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync journal directory", &self.dir, e))?;
            state.dir_synced = true;
        }
        state.valid_end = Some(end + record.len() as u64);
        Ok(())
    }

    /// The entries of the valid records, in order. A missing file reads as
    /// empty; a torn tail is left out.
    pub fn read(&self) -> Result<Vec<Entry>> {
        let _state = self.state.lock();
        let file = match self.storage.open(&self.path, OpenMode::Read) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("open crash ledger", e)),
        };
        let len = file.len().map_err(|e| self.io("stat crash ledger", e))?;
        Ok(self.scan(&*file, len)?.entries)
    }

    /// Deletes the ledger (if present) and syncs the journal directory, so
    /// the removal is durable.
    pub fn remove(&self) -> Result<()> {
        let mut state = self.state.lock();
        state.valid_end = None;
        state.dir_synced = false;
        match self.storage.remove(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io("remove crash ledger", e)),
        }
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync journal directory", &self.dir, e))
    }

    /// Reads records from the start of the file until the first invalid
    /// one (or the end). Allocates at most [`MAX_PAYLOAD`] bytes per record.
    fn scan(&self, file: &dyn StorageFile, len: u64) -> Result<Scan> {
        let mut entries = Vec::new();
        let mut at = 0u64;
        loop {
            if len - at < RECORD_HEADER_LEN as u64 {
                break;
            }
            let mut header = [0u8; RECORD_HEADER_LEN];
            file.read_at(&mut header, at)
                .map_err(|e| self.io("read crash ledger", e))?;
            let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
            let payload_len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
            let crc = u32::from_le_bytes([c0, c1, c2, c3]);
            if payload_len == 0 || payload_len > MAX_PAYLOAD {
                break;
            }
            let record_end = at + (RECORD_HEADER_LEN + payload_len) as u64;
            if record_end > len {
                break;
            }
            let mut payload = vec![0u8; payload_len];
            file.read_at(&mut payload, at + RECORD_HEADER_LEN as u64)
                .map_err(|e| self.io("read crash ledger", e))?;
            if crc32fast::hash(&payload) != crc {
                break;
            }
            let Ok(entry) = Entry::decode(&payload) else {
                break;
            };
            entries.push(entry);
            at = record_end;
        }
        Ok(Scan {
            entries,
            valid_end: at,
        })
    }

    fn io(&self, op: &'static str, source: io::Error) -> Error {
        Error::io(op, &self.path, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::parse_line;
    use crate::store::layout::LEDGER_FILE as FILE_NAME;
    use crate::testkit::failpoint::Action;
    use crate::wal::storage::FsStorage;
    use tempfile::TempDir;

    fn marker(session: &str, reason: &str) -> Entry {
        Entry::from(
            parse_line(&format!(
                r#"{{"type":"crash","session":"{session}","reason":"{reason}","time":1234}}"#
            ))
            .unwrap(),
        )
    }

    fn ledger(tmp: &TempDir) -> Ledger {
        Ledger::new(Arc::new(FsStorage), tmp.path())
    }

    fn record_bytes(entry: &Entry) -> Vec<u8> {
        let payload = entry.encode();
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes
    }

    #[test]
    fn append_three_read_three() {
        let tmp = TempDir::new().unwrap();
        let ledger = ledger(&tmp);
        assert_eq!(ledger.read().unwrap(), Vec::<Entry>::new());
        let entries = [marker("a", "x"), marker("b", "y"), Entry::Shutdown];
        for e in &entries {
            ledger.append(e).unwrap();
        }
        assert_eq!(ledger.read().unwrap(), entries);
        // The bytes are exactly the documented records, back to back.
        let want: Vec<u8> = entries.iter().flat_map(record_bytes).collect();
        assert_eq!(std::fs::read(tmp.path().join(FILE_NAME)).unwrap(), want);
        // A fresh ledger (the next process) reads and extends the same file.
        let again = Ledger::new(Arc::new(FsStorage), tmp.path());
        assert_eq!(again.read().unwrap(), entries);
        again.append(&marker("c", "z")).unwrap();
        assert_eq!(again.read().unwrap().len(), 4);
    }

    #[test]
    fn torn_tail_is_cut_and_appends_land_after_the_valid_prefix() {
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join(FILE_NAME);
        let entries = [marker("a", "1"), marker("b", "2"), marker("c", "3")];
        let full: Vec<u8> = entries.iter().flat_map(record_bytes).collect();
        let two = record_bytes(&entries[0]).len() + record_bytes(&entries[1]).len();

        // Every cut inside the third record leaves the first two.
        for cut in two..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            for fresh in [true, false] {
                let ledger = ledger(&tmp);
                if !fresh {
                    // A ledger whose cached end is stale.
                    std::fs::write(&path, &full).unwrap();
                    ledger.append(&marker("x", "warm")).unwrap();
                    std::fs::write(&path, &full[..cut]).unwrap();
                }
                assert_eq!(ledger.read().unwrap(), entries[..2], "cut at {cut}");
                ledger.append(&marker("d", "4")).unwrap();
                let mut want = entries[..2].to_vec();
                want.push(marker("d", "4"));
                assert_eq!(ledger.read().unwrap(), want, "cut at {cut}");
                let file_len = std::fs::metadata(&path).unwrap().len() as usize;
                assert_eq!(file_len, two + record_bytes(&marker("d", "4")).len());
                std::fs::remove_file(&path).unwrap();
                std::fs::write(&path, &full[..cut]).unwrap();
            }
        }

        // Garbage after valid records.
        for garbage in [
            &[0u8; 3][..],
            &[0u8; 64],
            &[0xAB; 100],
            b"\x05\0\0\0\0\0\0\0hello",
        ] {
            let mut bytes = full.clone();
            bytes.extend_from_slice(garbage);
            std::fs::write(&path, &bytes).unwrap();
            let ledger = ledger(&tmp);
            assert_eq!(ledger.read().unwrap(), entries);
            ledger.append(&marker("e", "5")).unwrap();
            let mut want = entries.to_vec();
            want.push(marker("e", "5"));
            assert_eq!(ledger.read().unwrap(), want);
        }
    }

    #[test]
    fn a_bad_record_ends_the_scan() {
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join(FILE_NAME);
        let first = record_bytes(&marker("a", "1"));
        let second = record_bytes(&marker("b", "2"));
        let ledger = ledger(&tmp);
        for i in 0..second.len() {
            let mut bad = second.clone();
            bad[i] ^= 0x01;
            let mut bytes = first.clone();
            bytes.extend_from_slice(&bad);
            bytes.extend_from_slice(&first); // never reached
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(ledger.read().unwrap(), vec![marker("a", "1")], "byte {i}");
        }
        // A record with a good CRC whose payload is not an entry.
        let mut bytes = first.clone();
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(b"abc").to_le_bytes());
        bytes.extend_from_slice(b"abc");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(ledger.read().unwrap(), vec![marker("a", "1")]);
    }

    #[test]
    fn huge_len_field_does_not_allocate() {
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join(FILE_NAME);
        let first = record_bytes(&marker("a", "1"));
        for len in [u32::MAX, (MAX_PAYLOAD + 1) as u32, 1 << 30] {
            let mut bytes = first.clone();
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&[0u8; 4]);
            bytes.extend_from_slice(&[7u8; 32]);
            std::fs::write(&path, &bytes).unwrap();
            let ledger = ledger(&tmp);
            assert_eq!(ledger.read().unwrap(), vec![marker("a", "1")]);
            ledger.append(&marker("b", "2")).unwrap();
            assert_eq!(
                ledger.read().unwrap(),
                vec![marker("a", "1"), marker("b", "2")]
            );
        }
        // A well-formed record over the limit (good CRC, decodable entry)
        // is not a record: the limit alone rejects it.
        let over = Entry::Retire {
            session: "s".repeat(MAX_PAYLOAD + 1),
        };
        let mut bytes = first.clone();
        bytes.extend_from_slice(&record_bytes(&over));
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(ledger(&tmp).read().unwrap(), vec![marker("a", "1")]);
        std::fs::remove_file(&path).unwrap();

        // A whole 64 KiB payload is still a record.
        let big = Entry::Retire {
            session: "s".repeat(MAX_PAYLOAD - 64),
        };
        assert!(big.encode().len() <= MAX_PAYLOAD);
        let ledger = ledger(&tmp);
        ledger.append(&big).unwrap();
        assert_eq!(ledger.read().unwrap().last(), Some(&big));
    }

    #[test]
    fn oversized_entry_is_refused_before_writing() {
        let tmp = TempDir::new().unwrap();
        let ledger = ledger(&tmp);
        let huge = Entry::Retire {
            session: "s".repeat(MAX_PAYLOAD + 1),
        };
        let err = ledger.append(&huge).unwrap_err();
        assert!(matches!(err, Error::InvalidEvent { .. }), "{err}");
        assert!(!tmp.path().join(FILE_NAME).exists());
    }

    #[test]
    fn remove_then_read_is_empty() {
        let tmp = TempDir::new().unwrap();
        let ledger = ledger(&tmp);
        ledger.remove().unwrap(); // nothing to remove is fine
        ledger.append(&marker("a", "1")).unwrap();
        ledger.remove().unwrap();
        assert!(!tmp.path().join(FILE_NAME).exists());
        assert_eq!(ledger.read().unwrap(), Vec::<Entry>::new());
        // Appending again starts a new file.
        ledger.append(&marker("b", "2")).unwrap();
        assert_eq!(ledger.read().unwrap(), vec![marker("b", "2")]);
    }

    #[test]
    fn failed_sync_then_retry() {
        let tmp = TempDir::new().unwrap();
        let fp = Failpoints::new();
        let ledger = Ledger::with_failpoints(Arc::new(FsStorage), tmp.path(), fp.clone());
        ledger.append(&marker("a", "1")).unwrap();
        fp.arm(
            names::LEDGER_BEFORE_SYNC,
            Action::FailTimes(io::ErrorKind::Other, 1),
        );
        let err = ledger.append(&marker("b", "2")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert_eq!(fp.hits(names::LEDGER_BEFORE_SYNC), 1);
        // The failed record was written but not synced: it may or may not
        // count. Here it reached the file, so it reads back; the next
        // append goes after it.
        ledger.append(&marker("c", "3")).unwrap();
        assert_eq!(
            ledger.read().unwrap(),
            vec![marker("a", "1"), marker("b", "2"), marker("c", "3")]
        );
    }

    #[test]
    fn concurrent_appends_serialize() {
        let tmp = TempDir::new().unwrap();
        let ledger = Arc::new(ledger(&tmp));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let ledger = ledger.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        ledger
                            .append(&marker(&format!("s{t}"), &i.to_string()))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let entries = ledger.read().unwrap();
        assert_eq!(entries.len(), 40);
        for t in 0..4 {
            let session = format!("s{t}");
            let reasons: Vec<String> = entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Event(ev) if ev.session == session => match &ev.body {
                        crate::store::event::Body::Crash { reason, .. } => Some(reason.clone()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            let want: Vec<String> = (0..10).map(|i| i.to_string()).collect();
            assert_eq!(reasons, want, "each thread's appends in order");
        }
    }
}
