//! The embedded default: one SQLite file in WAL mode (`<dir>/ledger.db`), readable by any
//! SQLite tool an auditor already has.
//!
//! Appends go through one writer thread with group commit: it takes every request that is
//! waiting, decides each against the log (idempotency, expected version), writes them all
//! in one transaction, commits with `synchronous=FULL` (one fsync), and only then answers
//! the callers and moves the head. A crash before the commit loses only appends that were
//! never acknowledged; SQLite's journal guarantees nothing half-written survives.
//!
//! One process writes a store: before its first append the writer takes an exclusive lock
//! on `<dir>/ledger.lock` (released when the process ends, even by a crash) and reads the
//! log's tip under it. Any number of processes may read beside it (`ledger relay`,
//! `ledger events`, `ledger audit verify`); a second writer is refused with a clear error
//! rather than racing the first for positions and the hash chain.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::Utc;
use ledger_core::envelope::{parse_time, TimeText};
use ledger_core::{Actor, ChainHash, RecordedEvent, Role};
use rusqlite::{params, Connection, OptionalExtension, Row};
use tokio::sync::{oneshot, watch, Semaphore};

use crate::plan::{plan_group, LogTip};
use crate::{validate, validate_all, AppendRequest, Appended, EventStore, Lease, OnceOnly, StoreError, MAX_READ_BATCH};

/// Most append requests one group commit takes.
pub const MAX_GROUP: usize = 1_024;
/// Read connections kept open.
const READERS: usize = 4;
/// How long a connection waits for a lock another holds (ms): readers and the replay guard.
pub const BUSY_MS: u64 = 5_000;
/// How long the log's writer waits for the write lock (ms); see `open_with_wal_limit`.
pub const WRITER_BUSY_MS: u64 = 60_000;
pub const DB_FILE: &str = "ledger.db";
/// The writer's lock file, beside the database.
pub const LOCK_FILE: &str = "ledger.lock";
/// Snapshots of long streams' states, beside the database: a cache, outside the log.
pub const SNAPSHOT_FILE: &str = "snapshots.db";

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position        INTEGER PRIMARY KEY,
    stream          TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    event_id        TEXT    NOT NULL UNIQUE,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    occurred_at     TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    actor_principal TEXT    NOT NULL,
    actor_role      TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    causation_id    TEXT,
    request_id      TEXT,
    data            TEXT    NOT NULL,
    prev_hash       BLOB    NOT NULL,
    hash            BLOB    NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key            TEXT    PRIMARY KEY,
    fingerprint    BLOB    NOT NULL,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL,
    stream_version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    name         TEXT    PRIMARY KEY,
    holder       TEXT    NOT NULL,
    until_micros INTEGER NOT NULL,
    position     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS used_once (
    key          TEXT    PRIMARY KEY,
    until_micros INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Takes or renews a lease (see [`EventStore::lease`]); returns a row only to its holder.
const LEASE_SQL: &str = "INSERT INTO leases (name, holder, until_micros, position) VALUES (?1, ?2, ?4, ?5) \
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_micros = excluded.until_micros, \
    position = max(leases.position, excluded.position) \
    WHERE leases.holder = excluded.holder OR leases.until_micros <= ?3 RETURNING position";

const COLUMNS: &str = "position, stream, version, event_id, event_type, schema_version, occurred_at, \
    recorded_at, actor_principal, actor_role, correlation_id, causation_id, request_id, data, prev_hash, hash";

/// The streams' versions this process knows for certain, shared by the writer and the
/// readers. Only the process holding the writer's lock knows: every append to the file goes
/// through its writer, so a version the writer committed, or one read from the file while it
/// held the lock, stays true until that writer appends again (and then it updates the entry
/// after its commit). A billing batch touching 1,000 partners asks 2,000 stream versions; one
/// query each was a ninth of the server's time (issue 11).
#[derive(Default)]
struct KnownVersions {
    versions: HashMap<String, u64>,
    /// This process holds the writer's lock: entries may be kept and trusted.
    writer: bool,
    /// Moves whenever entries are dropped, so a version read from the file before a group
    /// that failed (and whose entries were forgotten) is not kept after it.
    generation: u64,
}

impl KnownVersions {
    fn forget(&mut self) {
        self.versions.clear();
        self.generation += 1;
    }
}

/// The events the writer committed last, kept for the readers that follow the log's head
/// (the projections, the relay): they read what was just written from here instead of from
/// the file, which was a tenth of the server's time under a billing feed (issue 11).
#[derive(Default)]
struct Tail {
    events: std::collections::VecDeque<RecordedEvent>,
}

/// Most events [`Tail`] keeps (a few MiB).
const TAIL_EVENTS: usize = 4_096;

impl Tail {
    /// Up to `limit` events from `from`, when the tail holds `from`.
    fn read(&self, from: u64, limit: usize) -> Option<Vec<RecordedEvent>> {
        let first = self.events.front()?.position;
        let last = self.events.back()?.position;
        if from < first || from > last {
            return None;
        }
        Some(self.events.iter().skip((from - first) as usize).take(limit).cloned().collect())
    }

    /// Keeps `events`, the next ones after those kept (else the tail starts over with them).
    fn extend(&mut self, events: Vec<RecordedEvent>) {
        let follows = match (self.events.back(), events.first()) {
            (Some(last), Some(first)) => first.position == last.position + 1,
            _ => true,
        };
        if !follows {
            self.events.clear();
        }
        self.events.extend(events);
        let over = self.events.len().saturating_sub(TAIL_EVENTS);
        self.events.drain(..over);
    }
}

/// A unit of requests appended all or nothing (one request for `append`), and its answer.
type Job = (Vec<AppendRequest>, oneshot::Sender<Result<Vec<Appended>, StoreError>>);

pub struct SqliteStore {
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// One permit per reader connection: a query waits for a connection rather than
    /// opening (and then closing) one of its own, which under load cost more than the query.
    reader_permits: Arc<Semaphore>,
    head: watch::Receiver<u64>,
    known: Arc<Mutex<KnownVersions>>,
    tail: Arc<Mutex<Tail>>,
    /// Opened on first use; its own file, so saving one never waits for the log's writer.
    snapshots: Arc<Mutex<Option<Connection>>>,
    /// The snapshot connection's turn, taken before a blocking thread is: a burst of loads
    /// (a batch touching 1,000 streams none of which is cached) waits here, on no thread,
    /// instead of starting one blocking thread per load that then waits on the connection
    /// (hundreds of threads, each keeping its stack and allocator pages: issue 11).
    snapshot_permit: Arc<Semaphore>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in directory `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_wal_limit(dir, WAL_SIZE_LIMIT)
    }

    /// Like [`SqliteStore::open`], holding the WAL to `wal_limit` bytes (tests use a small one).
    pub fn open_with_wal_limit(dir: &Path, wal_limit: i64) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let conn = open_connection(&path)?;
        // The writer keeps hot index pages in a larger cache and never checkpoints itself:
        // the checkpointer thread copies the WAL into the database beside it.
        // journal_size_limit: when the WAL starts over from its beginning (after a checkpoint
        // that copied all of it), the writer cuts the file back to this size.
        // busy_timeout: the writer waits for the write lock as long as another connection
        // may hold it (a TRUNCATE checkpoint copying a large WAL under load held it past the
        // readers' 5 s, and the group failed with "database is locked"): a wait, never a
        // lost batch.
        conn.execute_batch(&format!(
            "PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {wal_limit}; \
             PRAGMA busy_timeout = {WRITER_BUSY_MS};"
        ))?;
        conn.execute_batch(SCHEMA)?;
        let tip = read_tip(&conn)?;
        let (head_tx, head) = watch::channel(tip.next_position - 1);
        let (tx, rx) = mpsc::channel::<Job>();
        let known = Arc::new(Mutex::new(KnownVersions::default()));
        let tail = Arc::new(Mutex::new(Tail::default()));
        let writer = Writer {
            conn,
            tip,
            known: known.clone(),
            tail: tail.clone(),
            head: head_tx,
            lock_path: dir.join(LOCK_FILE),
            lock: None,
        };
        let handle = std::thread::Builder::new()
            .name("ledger-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let checkpointer = Checkpointer { conn: open_connection(&path)?, head: head.clone(), wal_limit };
        std::thread::Builder::new()
            .name("ledger-store-checkpoint".into())
            .spawn(move || checkpointer.run())
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let readers = (0..READERS).map(|_| open_connection(&path)).collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteStore {
            path,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            readers: Arc::new(Mutex::new(readers)),
            reader_permits: Arc::new(Semaphore::new(READERS)),
            head,
            known,
            tail,
            snapshots: Arc::new(Mutex::new(None)),
            snapshot_permit: Arc::new(Semaphore::new(1)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the writer after the appends already queued, and waits for it; a writer that
    /// appended leaves the WAL empty (a TRUNCATE checkpoint).
    pub fn close(&self) {
        self.jobs.lock().expect("lock").take();
        if let Some(h) = self.writer.lock().expect("lock").take() {
            let _ = h.join();
        }
    }

    /// Runs `f` on the snapshot file's connection (opened, and its table made, on first use).
    async fn with_snapshots<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (slot, path) = (self.snapshots.clone(), self.path.with_file_name(SNAPSHOT_FILE));
        let permit = self.snapshot_permit.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut slot = slot.lock().expect("lock");
            if slot.is_none() {
                let conn = Connection::open(&path)?;
                // A cache: losing the last snapshots in a crash costs a longer load, nothing else.
                conn.execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
                     CREATE TABLE IF NOT EXISTS snapshots (stream TEXT PRIMARY KEY, version INTEGER NOT NULL, \
                     data TEXT NOT NULL) WITHOUT ROWID;",
                )?;
                *slot = Some(conn);
            }
            f(slot.as_ref().expect("opened above"))
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.readers.clone();
        let path = self.path.clone();
        let permit = self.reader_permits.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool.lock().expect("lock").pop();
            let conn = match conn {
                Some(c) => c,
                None => open_connection(&path)?,
            };
            let out = f(&conn);
            let mut pool = pool.lock().expect("lock");
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

impl SqliteStore {
    /// Hands a unit to the writer and waits for its answer.
    async fn send(&self, unit: Vec<AppendRequest>) -> Result<Vec<Appended>, StoreError> {
        let (tx, rx) = oneshot::channel();
        {
            let jobs = self.jobs.lock().expect("lock");
            jobs.as_ref().ok_or(StoreError::Closed)?.send((unit, tx)).map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, req: AppendRequest) -> Result<Appended, StoreError> {
        // Validation runs here, on the caller's task, so the single writer only writes.
        validate(&req)?;
        Ok(self.send(vec![req]).await?.remove(0))
    }

    async fn append_all(&self, reqs: Vec<AppendRequest>) -> Result<Vec<Appended>, StoreError> {
        validate_all(&reqs)?;
        self.send(reqs).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_string();
        let limit = limit.min(MAX_READ_BATCH) as i64;
        self.with_reader(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version LIMIT ?3"
            ))?;
            let rows = st.query_map(params![stream, from_version as i64, limit], row_to_event)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = limit.min(MAX_READ_BATCH);
        if let Some(events) = self.tail.lock().expect("lock").read(from_position, limit) {
            return Ok(events);
        }
        self.with_reader(move |c| read_all_sync(c, from_position, limit as i64)).await
    }

    async fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        let key = key.to_string();
        self.with_reader(move |c| find_key(c, &key)).await
    }

    async fn idempotency_keys(&self, keys: &[String]) -> Result<Vec<Option<([u8; 32], Appended)>>, StoreError> {
        let keys = keys.to_vec();
        self.with_reader(move |c| keys.iter().map(|k| find_key(c, k)).collect()).await
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<(u64, String)>, StoreError> {
        let stream = stream.to_string();
        self.with_snapshots(move |c| {
            let row = c
                .prepare_cached("SELECT version, data FROM snapshots WHERE stream = ?1")?
                .query_row([&stream], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)))
                .optional()?;
            Ok(row)
        })
        .await
    }

    async fn save_snapshot(&self, stream: &str, version: u64, text: String) -> Result<(), StoreError> {
        let stream = stream.to_string();
        self.with_snapshots(move |c| {
            c.prepare_cached(
                "INSERT INTO snapshots (stream, version, data) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (stream) DO UPDATE SET version = excluded.version, data = excluded.data \
                 WHERE excluded.version > snapshots.version",
            )?
            .execute(params![stream, version as i64, text])?;
            Ok(())
        })
        .await
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        Ok(self.stream_versions(&[stream.to_string()]).await?[0])
    }

    async fn stream_versions(&self, streams: &[String]) -> Result<Vec<u64>, StoreError> {
        // The writer's own knowledge first; the file for the rest, kept for next time when
        // this process is the writer and nothing was forgotten meanwhile.
        let (mut answers, generation) = {
            let known = self.known.lock().expect("lock");
            let answers: Vec<Option<u64>> = streams.iter().map(|s| known.versions.get(s).copied()).collect();
            (answers, known.writer.then_some(known.generation))
        };
        let missing: Vec<String> =
            streams.iter().zip(&answers).filter(|(_, v)| v.is_none()).map(|(s, _)| s.clone()).collect();
        if !missing.is_empty() {
            let read = self
                .with_reader(move |c| {
                    missing
                        .iter()
                        .map(|s| stream_version_sync(c, s).map(|v| (s.clone(), v)))
                        .collect::<Result<Vec<_>, _>>()
                })
                .await?;
            let mut known = self.known.lock().expect("lock");
            // A version read from the file is kept only if no entry was forgotten since:
            // one the writer set meanwhile is newer and stays.
            let keep = generation.is_some() && generation == known.writer.then_some(known.generation);
            let mut read = read.into_iter();
            for answer in answers.iter_mut().filter(|a| a.is_none()) {
                let (stream, version) = read.next().expect("one version per stream read");
                if keep {
                    known.versions.entry(stream).or_insert(version);
                }
                *answer = Some(version);
            }
        }
        Ok(answers.into_iter().map(|a| a.expect("every stream answered")).collect())
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<(), StoreError> {
        // Written beside the writer: the versions it knows no longer hold, and the events it
        // kept are no longer the log's last.
        self.known.lock().expect("lock").forget();
        self.tail.lock().expect("lock").events.clear();
        let known = self.known.clone();
        self.with_reader(move |c| {
            let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            crate::check_import(&read_tip(&tx)?, &events)?;
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))?;
            for e in &events {
                insert_event(&mut insert, e)?;
            }
            drop(insert);
            tx.commit()?;
            known.lock().expect("lock").forget();
            Ok(())
        })
        .await
    }

    async fn read_once_only(
        &self,
        after: Option<(u8, String)>,
        limit: usize,
        now_micros: i64,
    ) -> Result<Vec<OnceOnly>, StoreError> {
        self.with_reader(move |c| {
            let (table, from) = after.unwrap_or((0, String::new()));
            let mut out = vec![];
            if table == 0 {
                let mut st = c.prepare_cached(
                    "SELECT key, fingerprint, first_position, last_position, stream_version FROM idempotency_keys \
                     WHERE key > ?1 ORDER BY key LIMIT ?2",
                )?;
                let mut rows = st.query(params![from, limit as i64])?;
                while let Some(r) = rows.next()? {
                    let (key, fp): (String, Vec<u8>) = (r.get(0)?, r.get(1)?);
                    let first = r.get::<_, i64>(2)? as u64;
                    let fingerprint = <[u8; 32]>::try_from(fp.as_slice()).map_err(|_| StoreError::Corrupt {
                        position: first,
                        reason: format!("idempotency key {key} has a malformed fingerprint"),
                    })?;
                    let appended = Appended {
                        first_position: first,
                        last_position: r.get::<_, i64>(3)? as u64,
                        stream_version: r.get::<_, i64>(4)? as u64,
                        replayed: false,
                    };
                    out.push(OnceOnly::Key { key, fingerprint, first: appended });
                }
            }
            if out.len() < limit {
                let from = if table == 1 { from } else { String::new() };
                let mut st = c.prepare_cached(
                    "SELECT key, until_micros FROM used_once WHERE key > ?1 AND until_micros > ?2 ORDER BY key LIMIT ?3",
                )?;
                let rows = st.query_map(params![from, now_micros, (limit - out.len()) as i64], |r| {
                    Ok(OnceOnly::Used { key: r.get(0)?, until_micros: r.get(1)? })
                })?;
                for r in rows {
                    out.push(r?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn import_once_only(&self, items: Vec<OnceOnly>) -> Result<(), StoreError> {
        self.with_reader(move |c| {
            let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            let head: i64 = tx.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0))?;
            for item in &items {
                match item {
                    OnceOnly::Key { key, fingerprint, first } => {
                        if first.last_position > head as u64 {
                            return Err(StoreError::InvalidAppend(format!(
                                "idempotency key {key} names position {}, past the log's end {head}",
                                first.last_position
                            )));
                        }
                        tx.prepare_cached(
                            "INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position, \
                             stream_version) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (key) DO NOTHING",
                        )?
                        .execute(params![
                            key,
                            fingerprint.as_slice(),
                            first.first_position as i64,
                            first.last_position as i64,
                            first.stream_version as i64
                        ])?;
                    }
                    OnceOnly::Used { key, until_micros } => {
                        tx.prepare_cached(
                            "INSERT INTO used_once (key, until_micros) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                        )?
                        .execute(params![key, until_micros])?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn lease(&self, lease: Lease<'_>) -> Result<Option<u64>, StoreError> {
        let Lease { name, holder, now_micros, until_micros, position } = lease;
        let (name, holder) = (name.to_string(), holder.to_string());
        self.with_reader(move |c| {
            let kept: Option<i64> = c
                .prepare_cached(LEASE_SQL)?
                .query_row(params![name, holder, now_micros, until_micros, position as i64], |r| r.get(0))
                .optional()?;
            Ok(kept.map(|p| p as u64))
        })
        .await
    }

    async fn first_use(&self, key: &str, now_micros: i64, until_micros: i64) -> Result<bool, StoreError> {
        let key = key.to_string();
        // A short write transaction of its own beside the log's writer (busy_timeout waits
        // for the writer's turn); the row's own primary key decides who was first.
        self.with_reader(move |c| {
            let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM used_once WHERE until_micros <= ?1", [now_micros])?;
            let added = tx.execute(
                "INSERT OR IGNORE INTO used_once (key, until_micros) VALUES (?1, ?2)",
                rusqlite::params![key, until_micros],
            )?;
            tx.commit()?;
            Ok(added == 1)
        })
        .await
    }
}

/// Reads the global log synchronously: for tools that walk a whole file (audit, export).
pub fn read_all_sync(c: &Connection, from_position: u64, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut st =
        c.prepare_cached(&format!("SELECT {COLUMNS} FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2"))?;
    let rows = st.query_map(params![from_position as i64, limit], row_to_event)?;
    rows.map(|r| r?).collect()
}

pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    // WAL: readers never block the writer. FULL: a commit is on disk before it returns.
    // The busy timeout first: setting the journal mode may wait for a checkpoint.
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = {BUSY_MS}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA foreign_keys = ON;"
    ))?;
    Ok(conn)
}

/// Writes one event's row with the statement `INSERT INTO events ({COLUMNS}) VALUES (?1 … ?16)`.
/// Ids and times are formatted on the stack (a row per event appended).
fn insert_event(insert: &mut rusqlite::CachedStatement<'_>, e: &RecordedEvent) -> Result<(), StoreError> {
    let (mut id, mut correlation, mut causation) =
        (uuid::Uuid::encode_buffer(), uuid::Uuid::encode_buffer(), uuid::Uuid::encode_buffer());
    insert.execute(params![
        e.position as i64,
        e.stream,
        e.version as i64,
        &*e.event_id.hyphenated().encode_lower(&mut id),
        e.event_type,
        e.schema_version as i64,
        TimeText::new(e.occurred_at).as_str(),
        TimeText::new(e.recorded_at).as_str(),
        e.actor.principal,
        e.actor.role.as_str(),
        &*e.correlation_id.hyphenated().encode_lower(&mut correlation),
        e.causation_id.map(|c| &*c.hyphenated().encode_lower(&mut causation)),
        e.request_id,
        e.data,
        &e.prev_hash.0[..],
        &e.hash.0[..],
    ])?;
    Ok(())
}

fn read_tip(conn: &Connection) -> Result<LogTip, StoreError> {
    let last: Option<(i64, Vec<u8>)> = conn
        .query_row("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(match last {
        None => LogTip { next_position: 1, prev_hash: ChainHash::ZERO },
        Some((position, hash)) => LogTip {
            next_position: position as u64 + 1,
            prev_hash: ChainHash::from_slice(&hash).ok_or_else(|| StoreError::Corrupt {
                position: position as u64,
                reason: "hash is not 32 bytes".into(),
            })?,
        },
    })
}

fn find_key(c: &Connection, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT fingerprint, first_position, last_position, stream_version FROM idempotency_keys WHERE key = ?1",
        )?
        .query_row([key], |r| {
            let fp: Vec<u8> = r.get(0)?;
            Ok((fp, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
        })
        .optional()?;
    let Some((fp, first, last, version)) = row else { return Ok(None) };
    let fingerprint = <[u8; 32]>::try_from(fp.as_slice()).map_err(|_| StoreError::Corrupt {
        position: first as u64,
        reason: format!("idempotency key {key} has a malformed fingerprint"),
    })?;
    let first = Appended {
        first_position: first as u64,
        last_position: last as u64,
        stream_version: version as u64,
        replayed: false,
    };
    Ok(Some((fingerprint, first)))
}

fn stream_version_sync(c: &Connection, stream: &str) -> Result<u64, StoreError> {
    let v: Option<i64> =
        c.prepare_cached("SELECT max(version) FROM events WHERE stream = ?1")?.query_row([stream], |r| r.get(0))?;
    Ok(v.unwrap_or(0) as u64)
}

fn row_to_event(r: &Row<'_>) -> rusqlite::Result<Result<RecordedEvent, StoreError>> {
    let position: i64 = r.get(0)?;
    let corrupt = |reason: &str| StoreError::Corrupt { position: position as u64, reason: reason.to_string() };
    let text = |i: usize| r.get_ref(i).and_then(|v| v.as_str().map_err(Into::into));
    let time = |i: usize| -> rusqlite::Result<Result<_, StoreError>> {
        Ok(parse_time(text(i)?).ok_or_else(|| corrupt("a time is not RFC 3339")))
    };
    let uuid = |s: &str| uuid::Uuid::parse_str(s).map_err(|_| corrupt("an id is not a UUID"));
    let hash = |i: usize| -> rusqlite::Result<Result<ChainHash, StoreError>> {
        Ok(ChainHash::from_slice(r.get_ref(i)?.as_blob()?).ok_or_else(|| corrupt("a hash is not 32 bytes")))
    };
    let build = || -> rusqlite::Result<Result<RecordedEvent, StoreError>> {
        let role = match Role::parse(text(9)?) {
            Some(role) => role,
            None => return Ok(Err(corrupt("unknown actor role"))),
        };
        let causation = match r.get_ref(11)?.as_str_or_null()? {
            Some(s) => match uuid(s) {
                Ok(u) => Some(u),
                Err(e) => return Ok(Err(e)),
            },
            None => None,
        };
        let event = (|| {
            Ok(RecordedEvent {
                position: position as u64,
                stream: text(1).map_err(|_| corrupt("stream"))?.to_string(),
                version: r.get::<_, i64>(2).map_err(|_| corrupt("version"))? as u64,
                event_id: uuid(text(3).map_err(|_| corrupt("event_id"))?)?,
                event_type: text(4).map_err(|_| corrupt("event_type"))?.to_string(),
                schema_version: r.get::<_, i64>(5).map_err(|_| corrupt("schema_version"))? as u32,
                occurred_at: time(6).map_err(|_| corrupt("occurred_at"))??,
                recorded_at: time(7).map_err(|_| corrupt("recorded_at"))??,
                actor: Actor { principal: text(8).map_err(|_| corrupt("actor"))?.to_string(), role },
                correlation_id: uuid(text(10).map_err(|_| corrupt("correlation_id"))?)?,
                causation_id: causation,
                request_id: r.get::<_, Option<String>>(12).map_err(|_| corrupt("request_id"))?,
                data: text(13).map_err(|_| corrupt("data"))?.to_string(),
                prev_hash: hash(14).map_err(|_| corrupt("prev_hash"))??,
                hash: hash(15).map_err(|_| corrupt("hash"))??,
            })
        })();
        Ok(event)
    };
    build()
}

/// The WAL size the checkpointer holds the file to (bytes): past it a checkpoint that
/// waits for readers (TRUNCATE) runs instead of a passive one.
pub const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Copies committed WAL frames into the database file off the writer's path, after every
/// few thousand new events ([`checkpoint_bounded`], the WAL held to [`WAL_SIZE_LIMIT`]).
struct Checkpointer {
    conn: Connection,
    head: watch::Receiver<u64>,
    wal_limit: i64,
}

impl Checkpointer {
    const EVERY: u64 = 4_096;

    fn run(mut self) {
        let mut last = *self.head.borrow();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if self.head.has_changed().is_err() {
                return; // the writer is gone (and checkpointed as it closed)
            }
            let now = *self.head.borrow_and_update();
            if now >= last + Self::EVERY {
                if let Err(e) = checkpoint_bounded(&self.conn, self.wal_limit) {
                    tracing::warn!(error = %e, "checkpoint failed; will retry");
                }
                last = now;
            }
        }
    }
}

/// Copies the WAL of `conn`'s database back into it without blocking the writer or the
/// readers (PASSIVE). Under a steady load that may never reach the WAL's end, and SQLite
/// starts a WAL over only once all of it was copied: so past `limit` bytes a TRUNCATE
/// waits for the readers (at most 100 ms, as it holds off the writer meanwhile; else it is
/// tried again at the next call), copies everything and cuts the file to nothing. Shared
/// by the log's checkpointer and the read models'.
pub fn checkpoint_bounded(conn: &Connection, limit: i64) -> Result<(), StoreError> {
    let (wal_frames, _) = checkpoint(conn, "PASSIVE")?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    if wal_frames * page_size > limit {
        let busy: i64 = conn.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA busy_timeout = 100;")?;
        if let Err(e) = checkpoint(conn, "TRUNCATE") {
            tracing::debug!(error = %e, "checkpoint (truncate) deferred");
        }
        conn.execute_batch(&format!("PRAGMA busy_timeout = {busy};"))?;
    }
    Ok(())
}

/// Runs a checkpoint; answers the WAL's frames and how many of them are in the database.
fn checkpoint(conn: &Connection, mode: &str) -> Result<(i64, i64), StoreError> {
    Ok(conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| Ok((r.get(1)?, r.get(2)?)))?)
}

struct Writer {
    conn: Connection,
    tip: LogTip,
    /// Stream versions known for certain (shared with the readers); a miss asks the database.
    known: Arc<Mutex<KnownVersions>>,
    tail: Arc<Mutex<Tail>>,
    head: watch::Sender<u64>,
    lock_path: PathBuf,
    /// Held from the first append on: this process is the store's one writer.
    lock: Option<std::fs::File>,
}

impl Writer {
    /// Takes the writer's lock once, then reads the tip under it: another process may have
    /// written since this one opened the store.
    fn ensure_lock(&mut self) -> Result<(), StoreError> {
        if self.lock.is_some() {
            return Ok(());
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", self.lock_path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Backend(format!(
                    "another process is writing the store in {} (one process writes an embedded store: \
                     send the writes to that process, or share a PostgreSQL store)",
                    self.lock_path.parent().map_or_else(String::new, |d| d.display().to_string())
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Backend(format!("cannot lock {}: {e}", self.lock_path.display())))
            }
        }
        // A WAL a crash left behind is copied in and cut back now, once this process is the
        // one writer (a reader process must not stall the writer of another).
        if let Err(e) = checkpoint(&self.conn, "TRUNCATE") {
            tracing::warn!(error = %e, "opening checkpoint failed");
        }
        self.tip = read_tip(&self.conn)?;
        {
            let mut known = self.known.lock().expect("lock");
            known.forget();
            known.writer = true;
        }
        crate::plan::raise(&self.head, self.tip.next_position - 1);
        self.lock = Some(file);
        Ok(())
    }

    fn run(mut self, rx: mpsc::Receiver<Job>) {
        self.serve(rx);
        // Closed: everything the WAL holds goes into the database and the WAL is cut to
        // nothing, so the next open starts with no WAL to read. Only by the process that
        // wrote: a reader process must not stall another process's writer.
        if self.lock.is_some() {
            if let Err(e) = checkpoint(&self.conn, "TRUNCATE") {
                tracing::warn!(error = %e, "closing checkpoint failed");
            }
        }
    }

    fn serve(&mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            let (size, started) = (group.len(), std::time::Instant::now());
            self.commit_group(group);
            tracing::debug!(size, micros = started.elapsed().as_micros() as u64, "group committed");
        }
    }

    fn commit_group(&mut self, group: Vec<Job>) {
        if let Err(e) = self.ensure_lock() {
            for (_, reply) in group {
                let _ = reply.send(Err(e.clone()));
            }
            return;
        }
        let mut outcome = self.write_group(&group, false);
        if matches!(&outcome, Err(StoreError::Backend(m)) if m.contains("events.event_id") || m.contains("idempotency_keys.key"))
        {
            // A caller reused an event id, or sent an event key already kept (a line sent
            // again). Rare: redo the group looking each up, so only that append is refused.
            outcome = self.write_group(&group, true);
        }
        let answers = match outcome {
            Ok(answers) => answers,
            Err(e) => {
                // Nothing of the group is stored: tell every caller, and forget cached
                // versions, which may describe the rolled-back writes.
                tracing::error!(error = %e, "group commit failed; rolled back");
                self.known.lock().expect("lock").forget();
                match read_tip(&self.conn) {
                    Ok(tip) => self.tip = tip,
                    Err(e) => tracing::error!(error = %e, "cannot re-read the log tip"),
                }
                vec![Err(e); group.len()]
            }
        };
        for ((_, reply), answer) in group.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }

    /// Decides the group (`plan_group`) and writes what it appends in one transaction; one
    /// answer per job. `check_ids` looks every event id and event key up first; otherwise a
    /// repeated one fails the whole transaction on its table's UNIQUE constraint (a lookup
    /// per event on the writer's path was most of the cost of planning a billing batch).
    fn write_group(
        &mut self,
        group: &[Job],
        check_ids: bool,
    ) -> Result<Vec<Result<Vec<Appended>, StoreError>>, StoreError> {
        // IMMEDIATE: the write lock first, waiting for it (busy_timeout) while the checkpointer
        // or the replay guard holds it. A deferred transaction reads first, and SQLite refuses
        // a reader's upgrade to writer at once ("database is locked"), without waiting.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let tip = LogTip { next_position: self.tip.next_position, prev_hash: self.tip.prev_hash };
        let plan = {
            let known = self.known.lock().expect("lock");
            let stored = Stored { conn: &tx, versions: &known.versions, check_ids };
            plan_group(group.iter().map(|(unit, _)| unit.as_slice()), &stored, tip, Utc::now())
        };
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))?;
            let mut insert_key = tx.prepare_cached(
                "INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position, stream_version) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in &plan.events {
                insert_event(&mut insert, e)?;
            }
            for (key, fingerprint, first) in &plan.keys {
                insert_key.execute(params![
                    key,
                    &fingerprint[..],
                    first.first_position as i64,
                    first.last_position as i64,
                    first.stream_version as i64
                ])?;
            }
        }
        tx.commit()?;
        // Set after the commit, over any version a reader kept meanwhile: that one was read
        // from the file before this commit.
        {
            let mut known = self.known.lock().expect("lock");
            for e in &plan.events {
                // A new String only for a stream not yet known (a batch is many events to few).
                match known.versions.get_mut(&e.stream) {
                    Some(v) => *v = e.version,
                    None => {
                        known.versions.insert(e.stream.clone(), e.version);
                    }
                }
            }
        }
        // The tail before the head moves, so a reader the head wakes finds the events there.
        if let Some(last) = plan.events.last() {
            let (position, hash) = (last.position, last.hash);
            self.tip = LogTip { next_position: position + 1, prev_hash: hash };
            self.tail.lock().expect("lock").extend(plan.events);
            crate::plan::raise(&self.head, position);
        }
        Ok(plan.answers)
    }
}

/// The log as the writer's transaction sees it, for `plan_group`.
struct Stored<'a> {
    conn: &'a Connection,
    /// Stream versions the writer has seen; a miss asks the database.
    versions: &'a HashMap<String, u64>,
    check_ids: bool,
}

impl crate::plan::StoredLog for Stored<'_> {
    fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        match self.versions.get(stream) {
            Some(v) => Ok(*v),
            None => stream_version_sync(self.conn, stream),
        }
    }

    fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        find_key(self.conn, key)
    }

    fn event_key_kept(&self, key: &str) -> Result<bool, StoreError> {
        if !self.check_ids {
            return Ok(false);
        }
        Ok(find_key(self.conn, key)?.is_some())
    }

    fn has_event(&self, id: &uuid::Uuid) -> Result<bool, StoreError> {
        if !self.check_ids {
            return Ok(false);
        }
        let mut find = self.conn.prepare_cached("SELECT 1 FROM events WHERE event_id = ?1")?;
        Ok(find.exists([id.hyphenated().to_string()])?)
    }
}
