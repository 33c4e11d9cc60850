//! The systems the `appends` section compares, each behind one small
//! adapter: opened in a directory before the clock starts, appended to by
//! concurrent threads (each waiting for its own acknowledgement), and
//! synced and closed after the clock stopped. Every error panics with a
//! message naming the system.

use okaywal::{LogVoid, WriteAheadLog};
use parking_lot::Mutex;
use rusqlite::Connection;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;
use tracejournal::event::parse_line;
use tracejournal::{Durability, Journal, Options, Record};
use tracejournal::{Store, StoreOptions};

/// Size of the preallocated file of the floor and the naive baseline (the
/// size of a default journal segment); writes wrap around at its end.
const PREALLOC_LEN: u64 = 64 << 20;
/// How long a SQLite connection waits for the write lock before
/// `SQLITE_BUSY` (which would panic: no event may be dropped).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(60);
/// The table every SQLite connection inserts into.
const SQLITE_SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)";
const SQLITE_INSERT: &str = "INSERT INTO events (payload) VALUES (?1)";
/// The journal record kind the bench writes.
const RECORD_KIND: u8 = 1;

/// A system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// One thread, one `write` + `fdatasync` per event, preallocated file.
    Floor,
    /// One `write` + `fdatasync` per event under a `parking_lot::Mutex`.
    Naive,
    /// `Journal::append_with(.., Durability::Sync)`.
    JournalSync,
    /// `Journal::append_with(.., Durability::Buffered)`.
    JournalBuffered,
    /// SQLite WAL mode, `synchronous=FULL`, one INSERT transaction per event.
    SqliteFull,
    /// SQLite WAL mode, `synchronous=NORMAL`.
    SqliteNormal,
    /// okaywal 0.3, one committed entry per event.
    Okaywal,
    /// `Store::ingest` of `parse_line(payload)`, `Sync`.
    Store,
}

impl System {
    /// Every system, in table order.
    pub const ALL: [System; 8] = [
        System::Floor,
        System::Naive,
        System::JournalSync,
        System::JournalBuffered,
        System::SqliteFull,
        System::SqliteNormal,
        System::Okaywal,
        System::Store,
    ];

    /// The row label: what is acknowledged, said honestly.
    pub fn label(self) -> &'static str {
        match self {
            System::Floor => "floor: raw write+fdatasync, 1 thread",
            System::Naive => "naive: mutex + write+fdatasync",
            System::JournalSync => "tracejournal Sync",
            System::JournalBuffered => {
                "tracejournal Buffered (acked when written to the OS, not fsynced)"
            }
            System::SqliteFull => "SQLite WAL synchronous=FULL",
            System::SqliteNormal => "SQLite WAL synchronous=NORMAL (not durable per commit)",
            System::Okaywal => "okaywal 0.3",
            System::Store => "product: tracejournal Store parse_line+ingest (Sync)",
        }
    }

    /// Whether the system is run at this many appenders (the floor is one
    /// thread with nothing else going on).
    pub fn runs_at(self, threads: usize) -> bool {
        self != System::Floor || threads == 1
    }

    /// Opens the system in the empty directory `dir` for `threads`
    /// appenders.
    pub fn open(self, dir: &Path, threads: usize) -> Box<dyn Appender> {
        match self {
            System::Floor | System::Naive => Box::new(SyncedFile::preallocated(self, dir)),
            System::JournalSync => Box::new(JournalAppender::open(dir, Durability::Sync)),
            System::JournalBuffered => Box::new(JournalAppender::open(dir, Durability::Buffered)),
            System::SqliteFull => Box::new(Sqlite::open(dir, threads, "FULL")),
            System::SqliteNormal => Box::new(Sqlite::open(dir, threads, "NORMAL")),
            System::Okaywal => Box::new(Okaywal::open(dir)),
            System::Store => Box::new(StoreAppender::open(dir)),
        }
    }
}

/// An opened system, shared by the appender threads.
pub trait Appender: Sync {
    /// Appends one event for appender `thread`; returns once the system
    /// acknowledged it.
    fn append(&self, thread: usize, payload: &[u8]);

    /// Syncs and closes everything (after the clock stopped).
    fn finish(self: Box<Self>);
}

/// A preallocated file written with one `write` + `fdatasync` per event,
/// under a mutex (uncontended for the floor's single thread).
struct SyncedFile {
    system: System,
    file: Mutex<(File, u64)>,
}

impl SyncedFile {
    /// A file zero-filled to [`PREALLOC_LEN`] and synced, as the journal
    /// prepares its segments, so overwrites need no metadata update.
    fn preallocated(system: System, dir: &Path) -> SyncedFile {
        let path = dir.join("events");
        let fail = |what: &str, e: std::io::Error| -> ! {
            panic!("{}: {what} {}: {e}", system.label(), path.display())
        };
        let file = File::create_new(&path).unwrap_or_else(|e| fail("create", e));
        let zeros = vec![0u8; 1 << 20];
        for chunk in 0..PREALLOC_LEN / zeros.len() as u64 {
            file.write_all_at(&zeros, chunk * zeros.len() as u64)
                .unwrap_or_else(|e| fail("zero-fill", e));
        }
        file.sync_all().unwrap_or_else(|e| fail("sync", e));
        SyncedFile {
            system,
            file: Mutex::new((file, 0)),
        }
    }
}

impl Appender for SyncedFile {
    fn append(&self, _thread: usize, payload: &[u8]) {
        let mut guard = self.file.lock();
        let (file, offset) = &mut *guard;
        if *offset + payload.len() as u64 > PREALLOC_LEN {
            *offset = 0;
        }
        let result = file
            .write_all_at(payload, *offset)
            .and_then(|()| file.sync_data());
        if let Err(e) = result {
            panic!("{}: write+fdatasync: {e}", self.system.label());
        }
        *offset += payload.len() as u64;
    }

    fn finish(self: Box<Self>) {
        let (file, _) = self.file.into_inner();
        if let Err(e) = file.sync_all() {
            panic!("{}: final sync: {e}", self.system.label());
        }
    }
}

/// A tracejournal journal with default options, appended to at one
/// durability.
struct JournalAppender {
    journal: Journal,
    durability: Durability,
}

impl JournalAppender {
    fn open(dir: &Path, durability: Durability) -> JournalAppender {
        let (journal, _report) = Journal::open(dir, Options::default())
            .unwrap_or_else(|e| panic!("tracejournal {durability:?}: open: {e}"));
        JournalAppender {
            journal,
            durability,
        }
    }
}

impl Appender for JournalAppender {
    fn append(&self, _thread: usize, payload: &[u8]) {
        let record = Record::new(RECORD_KIND, payload.to_vec());
        if let Err(e) = self.journal.append_with(record, self.durability) {
            panic!("tracejournal {:?}: append: {e}", self.durability);
        }
    }

    fn finish(self: Box<Self>) {
        let durability = self.durability;
        if let Err(e) = self.journal.close() {
            panic!("tracejournal {durability:?}: close: {e}");
        }
    }
}

/// SQLite in WAL mode: one connection per appender thread (like concurrent
/// hook handlers), each with a busy timeout, one autocommit INSERT (one
/// transaction) per event.
struct Sqlite {
    name: String,
    connections: Vec<Mutex<Connection>>,
}

impl Sqlite {
    fn open(dir: &Path, threads: usize, synchronous: &str) -> Sqlite {
        let name = format!("SQLite synchronous={synchronous}");
        let path = dir.join("events.db");
        let fail = |what: &str, e: rusqlite::Error| -> ! { panic!("{name}: {what}: {e}") };
        let first = Connection::open(&path).unwrap_or_else(|e| fail("open", e));
        let mode: String = first
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap_or_else(|e| fail("journal_mode=WAL", e));
        assert_eq!(mode, "wal", "{name}: journal_mode is {mode}, not wal");
        first
            .execute_batch(SQLITE_SCHEMA)
            .unwrap_or_else(|e| fail("create table", e));
        let mut connections = vec![first];
        while connections.len() < threads {
            connections.push(Connection::open(&path).unwrap_or_else(|e| fail("open", e)));
        }
        for conn in &connections {
            Self::configure(conn, synchronous).unwrap_or_else(|e| fail("configure", e));
        }
        Sqlite {
            name,
            connections: connections.into_iter().map(Mutex::new).collect(),
        }
    }

    /// Per-connection settings: busy timeout, `synchronous`, the INSERT
    /// prepared (cached) ahead of the clock.
    fn configure(conn: &Connection, synchronous: &str) -> rusqlite::Result<()> {
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        conn.execute_batch(&format!("PRAGMA synchronous={synchronous}"))?;
        conn.prepare_cached(SQLITE_INSERT)?;
        Ok(())
    }
}

impl Appender for Sqlite {
    fn append(&self, thread: usize, payload: &[u8]) {
        let text = std::str::from_utf8(payload)
            .unwrap_or_else(|e| panic!("{}: payload is not UTF-8: {e}", self.name));
        let conn = self.connections[thread].lock();
        let result = conn
            .prepare_cached(SQLITE_INSERT)
            .and_then(|mut stmt| stmt.execute([text]));
        if let Err(e) = result {
            panic!("{}: insert: {e}", self.name);
        }
    }

    fn finish(self: Box<Self>) {
        // The last connection to close checkpoints the WAL into the
        // database and syncs it.
        for conn in self.connections {
            if let Err((_, e)) = conn.into_inner().close() {
                panic!("{}: close: {e}", self.name);
            }
        }
    }
}

/// okaywal with its default configuration (1 MiB preallocated segments,
/// checkpoint after 768 KiB) and its `LogVoid` manager: a checkpoint
/// applies nothing (the entries are dropped) and recovery abandons old
/// segments, so only the log itself is measured.
struct Okaywal {
    wal: WriteAheadLog,
}

impl Okaywal {
    fn open(dir: &Path) -> Okaywal {
        let wal = WriteAheadLog::recover(dir, LogVoid)
            .unwrap_or_else(|e| panic!("okaywal: open {}: {e}", dir.display()));
        Okaywal { wal }
    }
}

impl Appender for Okaywal {
    fn append(&self, _thread: usize, payload: &[u8]) {
        let result = self.wal.begin_entry().and_then(|mut entry| {
            entry.write_chunk(payload)?;
            entry.commit()
        });
        if let Err(e) = result {
            panic!("okaywal: append: {e}");
        }
    }

    fn finish(self: Box<Self>) {
        if let Err(e) = self.wal.shutdown() {
            panic!("okaywal: shutdown: {e}");
        }
    }
}

/// The session store with default options (journal `Sync`), ingesting the
/// payload parsed as a hook event: the cost of the whole session layer.
struct StoreAppender {
    store: Store,
}

impl StoreAppender {
    fn open(dir: &Path) -> StoreAppender {
        let (store, _report) = Store::open(dir, StoreOptions::default())
            .unwrap_or_else(|e| panic!("tracejournal Store: open {}: {e}", dir.display()));
        StoreAppender { store }
    }
}

impl Appender for StoreAppender {
    fn append(&self, _thread: usize, payload: &[u8]) {
        let line = std::str::from_utf8(payload)
            .unwrap_or_else(|e| panic!("tracejournal Store: payload is not UTF-8: {e}"));
        let event =
            parse_line(line).unwrap_or_else(|e| panic!("tracejournal Store: parse_line: {e}"));
        let ack = self
            .store
            .ingest(event)
            .unwrap_or_else(|e| panic!("tracejournal Store: ingest: {e}"));
        assert!(
            !ack.duplicate,
            "tracejournal Store: event acknowledged as a duplicate (the bench's events must be distinct)"
        );
    }

    fn finish(self: Box<Self>) {
        if let Err(e) = self.store.close() {
            panic!("tracejournal Store: close: {e}");
        }
    }
}
