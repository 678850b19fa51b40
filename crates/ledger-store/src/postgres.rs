//! PostgreSQL: the backend for a shared server (`postgres://…` / `postgresql://…`).
//!
//! Two tables, the same as SQLite's (`events`, `idempotency_keys`), with native types an
//! auditor can query (`uuid`, `timestamptz`, `bytea`); `data` is kept as `text` so the
//! hashed canonical JSON comes back byte for byte. Beside them `leases`, `used_once` and
//! `snapshots` (a cache of stream states, as SQLite's `snapshots.db`: not hashed, not
//! published, the newest per stream kept).
//!
//! **Positions are assigned by the writer, not by a sequence.** A `bigint` sequence hands
//! out numbers at insert time but transactions commit in any order, so a reader polling
//! `position > last` could pass over a row that commits late. Every append transaction here
//! first takes `pg_advisory_xact_lock` on a key derived from the `events` table, then reads
//! the log tip (last position and hash) and writes the next positions. The lock is released
//! only after the commit is visible, so transactions commit in position order, the log is
//! gap-free at every instant, and the hash chain is sealed inside the same transaction.
//! Several ledger processes may share one database: the lock serializes them too.
//!
//! **Group commit.** One writer task per store takes every append that is waiting (up to
//! [`MAX_GROUP`] requests, [`MAX_GROUP_EVENTS`] events; when a group is far smaller than the
//! last one it waits up to [`LINGER`] for the last one's callers to come back), decides each
//! against the stored log (idempotency key, expected version, read under the lock), writes
//! their events with one binary `COPY` and their keys and NOTIFY with one statement after
//! it, and answers the callers only after `COMMIT` (`synchronous_commit = on`: the commit is
//! durable when it returns). `COPY` rather than `INSERT … SELECT FROM unnest(…)`: the
//! server inserts its rows several to a heap page at once, about half the cost per row.
//! The writer remembers the tip it left and the stream versions it read and wrote as of it;
//! while the log still ends there nobody else appended. A group of known streams without
//! keys (the steady state of a busy writer) is decided on that alone and is two round
//! trips: `BEGIN`, the lock and the `COPY` pipelined; then its rows, a check that the event
//! it chains to is still the log's (with the NOTIFY) and `COMMIT` pipelined. If another
//! process appended meanwhile, the `COPY`'s first position is refused by the primary key (or
//! the check fails): the transaction rolls back and the group is decided again as below.
//! Any other group is three: `BEGIN`, the lock and the reads (tip, keys, streams not known)
//! pipelined; then the `COPY`; then its rows, the keys (with the NOTIFY) and `COMMIT`
//! pipelined (after another process's append, the known streams are read too: one more
//! round trip, still under the lock). A group of fewer than [`COPY_FROM_EVENTS`] events
//! (a lone appender's) is written by one `INSERT` instead of the `COPY`, a round trip fewer,
//! with the same checks (then a group of known streams is one round trip: `BEGIN`, the
//! lock, the `INSERT` and `COMMIT`, pipelined). An event id
//! already stored fails the write on the table's UNIQUE constraint;
//! the group is then redone looking every id up, so only that append is refused. A failed
//! group is rolled back whole and every caller whose events were in it gets the error. If the
//! connection drops during `COMMIT` the outcome is unknown to the caller (reported as
//! `STORE_UNAVAILABLE`); retrying with the same idempotency key is always safe.
//!
//! **Head.** The writer moves [`EventStore::head`] after each commit and sends
//! `pg_notify` inside the transaction (delivered on commit); a listener connection turns
//! notifications from other processes into head moves, and polls `max(position)` every
//! [`HEAD_POLL`] and after each reconnect so nothing is missed while it was away.
//!
//! Limits: no TLS (tokio-postgres `NoTls`; use a local socket, a private network or a TLS
//! tunnel); a store lives in one schema, chosen with `?schema=name` in the URL (created if
//! missing) or else the connection's `search_path`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::{StreamExt, TryFutureExt};
use ledger_core::envelope::parse_time;
use ledger_core::{Actor, ChainHash, RecordedEvent, Role};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{AsyncMessage, Client, NoTls, Row, Statement};

use crate::plan::{plan_group, raise, GroupPlan, LogTip, StoredLog};
use crate::{validate, validate_all, AppendRequest, Appended, EventStore, Lease, OnceOnly, StoreError, MAX_READ_BATCH};

/// Most append requests one group transaction takes.
pub const MAX_GROUP: usize = 1_024;
/// Most events one group transaction writes (bounds the arrays of one `INSERT`).
pub const MAX_GROUP_EVENTS: usize = 16_384;
/// Appends that may wait for the writer before callers are held back.
const QUEUE: usize = 8_192;
/// Read connections kept open (each pipelines concurrent queries).
const READERS: usize = 4;
/// How often the listener asks for the tip even without notifications.
pub const HEAD_POLL: Duration = Duration::from_secs(5);
/// Longest a group waits for more appends when it is far smaller than the last one.
pub const LINGER: Duration = Duration::from_millis(2);
/// Pause before reconnecting a lost listener connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// Longest identifier PostgreSQL keeps (NAMEDATALEN − 1); `pg_notify` refuses longer.
const MAX_IDENTIFIER_LEN: usize = 63;
/// Prefix of the NOTIFY channel of a schema.
const CHANNEL_PREFIX: &str = "ledger_appended";
/// Longest schema name: its channel `ledger_appended_<schema>` must still be an identifier.
const MAX_SCHEMA_LEN: usize = MAX_IDENTIFIER_LEN - CHANNEL_PREFIX.len() - 1;
/// High 32 bits of the advisory lock keys this store takes ("LEDG").
const LOCK_CLASS: i64 = 0x4c45_4447;
/// The advisory lock serializing schema creation across processes.
const DDL_LOCK: i64 = LOCK_CLASS << 32;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position        BIGINT      PRIMARY KEY CHECK (position > 0),
    stream          TEXT        NOT NULL,
    version         BIGINT      NOT NULL CHECK (version > 0),
    event_id        UUID        NOT NULL UNIQUE,
    event_type      TEXT        NOT NULL,
    schema_version  INTEGER     NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    actor_principal TEXT        NOT NULL,
    actor_role      TEXT        NOT NULL,
    correlation_id  UUID        NOT NULL,
    causation_id    UUID,
    request_id      TEXT,
    data            TEXT        NOT NULL,
    prev_hash       BYTEA       NOT NULL,
    hash            BYTEA       NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key            TEXT   PRIMARY KEY,
    fingerprint    BYTEA  NOT NULL,
    first_position BIGINT NOT NULL,
    last_position  BIGINT NOT NULL,
    stream_version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name         TEXT   PRIMARY KEY,
    holder       TEXT   NOT NULL,
    until_micros BIGINT NOT NULL,
    position     BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS used_once (
    key          TEXT   PRIMARY KEY,
    until_micros BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream  TEXT   PRIMARY KEY,
    version BIGINT NOT NULL,
    data    TEXT   NOT NULL
);
";

/// The columns read back, in `row_to_event` order. Times come back in the stored and hashed
/// text form (RFC 3339, UTC, six fractional digits).
const SELECT_COLUMNS: &str = "position, stream, version, event_id::text, event_type, schema_version, \
    to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
    to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
    actor_principal, actor_role, correlation_id::text, causation_id::text, request_id, data, prev_hash, hash";

/// A group's events, in binary `COPY` (one multi-row heap insert per page on the server,
/// several times cheaper per row than `INSERT … SELECT FROM unnest`). Its columns and
/// types are [`COPY_TYPES`], written by [`copy_data`].
const COPY_EVENTS: &str = "COPY events (position, stream, version, event_id, event_type, schema_version, \
    occurred_at, recorded_at, actor_principal, actor_role, correlation_id, causation_id, request_id, data, \
    prev_hash, hash) FROM STDIN (FORMAT binary)";

/// After the `COPY` of a group decided on remembered versions (see [`KnownVersions`]): the
/// event it was chained to is still at position $1 with hash $2 ($1 = 0: the log was empty),
/// else a division by zero fails the transaction; and the NOTIFY announcing the new tip
/// (delivered on commit). That the log did not grow past $1 is the `COPY`'s own check: its
/// first row takes position $1 + 1, which the primary key refuses if anyone wrote it.
const CHECK_TIP_AND_NOTIFY: &str = "SELECT 1 / CASE WHEN $1::int8 = 0 OR EXISTS (SELECT FROM events \
    WHERE position = $1 AND hash = $2::bytea) THEN 1 ELSE 0 END, pg_notify($3, $4)";

/// After the `COPY` of a group decided under the lock: its keys (an empty array inserts none)
/// and the NOTIFY announcing the new tip (delivered on commit).
const INSERT_KEYS_AND_NOTIFY: &str = "WITH k AS (INSERT INTO idempotency_keys (key, fingerprint, first_position, \
    last_position, stream_version) SELECT * FROM unnest($1::text[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[])) \
    SELECT pg_notify($6, $7)";

/// A group decided on remembered versions with fewer events than this is written in one
/// round trip by [`INSERT_SMALL_GROUP`] instead: `COPY` costs a round trip more (its rows
/// go out only once the server has started it), more than it saves on a few rows.
const COPY_FROM_EVENTS: usize = 4;

/// A small group's whole write in one statement: its events, its keys (an empty array
/// inserts none) and the NOTIFY announcing the new tip (delivered on commit), all only if the
/// log still ends where the group was decided: at position $24 (0: empty) with hash $25. It
/// answers one row when written, none when the log had moved (nothing is written then).
/// "Nothing at $24 + 1" is "nothing after $24" (positions are gap-free) as an index probe:
/// `position > $24` in the statement's generic plan scans the whole table.
const INSERT_SMALL_GROUP: &str = "WITH ok AS (SELECT WHERE ($24::int8 = 0 OR EXISTS (SELECT FROM events \
    WHERE position = $24 AND hash = $25::bytea)) AND NOT EXISTS (SELECT FROM events WHERE position = $24 + 1)), \
    e AS (INSERT INTO events (position, stream, version, event_id, event_type, \
    schema_version, occurred_at, recorded_at, actor_principal, actor_role, correlation_id, causation_id, request_id, \
    data, prev_hash, hash) \
    SELECT p, s, v, e, t, sv, o, r, ap, ar, c, ca, rq, d, ph, h \
    FROM unnest($1::int8[], $2::text[], $3::int8[], $4::uuid[], $5::text[], $6::int4[], $7::timestamptz[], \
                $8::timestamptz[], $9::text[], $10::text[], $11::uuid[], $12::uuid[], $13::text[], $14::text[], $15::bytea[], \
                $16::bytea[]) AS u(p, s, v, e, t, sv, o, r, ap, ar, c, ca, rq, d, ph, h) WHERE EXISTS (SELECT FROM ok)), \
    k AS (INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position, stream_version) \
    SELECT * FROM unnest($17::text[], $18::bytea[], $19::int8[], $20::int8[], $21::int8[]) \
    WHERE EXISTS (SELECT FROM ok)) \
    SELECT pg_notify($22, $23) FROM ok";

/// The primary key of `events`, named in the error a position already written raises.
const POSITION_CONSTRAINT: &str = "events_pkey";

/// `import`'s write: events only.
const INSERT_EVENTS: &str = "INSERT INTO events (position, stream, version, event_id, event_type, schema_version, \
    occurred_at, recorded_at, actor_principal, actor_role, correlation_id, causation_id, request_id, data, \
    prev_hash, hash) \
    SELECT p, s, v, e, t, sv, o, r, ap, ar, c, ca, rq, d, ph, h \
    FROM unnest($1::int8[], $2::text[], $3::int8[], $4::uuid[], $5::text[], $6::int4[], $7::timestamptz[], \
                $8::timestamptz[], $9::text[], $10::text[], $11::uuid[], $12::uuid[], $13::text[], $14::text[], $15::bytea[], \
                $16::bytea[]) AS u(p, s, v, e, t, sv, o, r, ap, ar, c, ca, rq, d, ph, h)";

/// The UNIQUE constraint on `events.event_id`, named in the error a repeated id raises.
const EVENT_ID_CONSTRAINT: &str = "events_event_id_key";

/// A unit of requests appended all or nothing (one request for `append`), and its answer.
type Job = (Vec<AppendRequest>, oneshot::Sender<Result<Vec<Appended>, StoreError>>);

/// Where the store lives: the connection URL (without our `schema` parameter) and the schema.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    schema: Option<String>,
}

impl Target {
    fn parse(url: &str) -> Result<Target, StoreError> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut schema = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", name)) => schema = Some(name.to_string()),
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        Target::new(&url, schema.as_deref())
    }

    fn new(url: &str, schema: Option<&str>) -> Result<Target, StoreError> {
        if let Some(s) = schema {
            let valid = !s.is_empty()
                && s.len() <= MAX_SCHEMA_LEN
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && !s.as_bytes()[0].is_ascii_digit();
            if !valid {
                return Err(StoreError::Backend(format!(
                    "schema name {s:?} must be 1 to {MAX_SCHEMA_LEN} of a-z, 0-9, _ (not starting with a digit)"
                )));
            }
        }
        url.parse::<tokio_postgres::Config>().map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?;
        Ok(Target { url: url.to_string(), schema: schema.map(str::to_string) })
    }

    /// The NOTIFY channel appends to this schema are announced on.
    fn channel(&self) -> String {
        let channel = match &self.schema {
            Some(s) => format!("{CHANNEL_PREFIX}_{s}"),
            None => CHANNEL_PREFIX.to_string(),
        };
        debug_assert!(channel.len() <= MAX_IDENTIFIER_LEN);
        channel
    }

    /// Connects, drives the connection on a task, and points `search_path` at the schema.
    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.map_err(pg)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended");
            }
        });
        self.use_schema(&client).await?;
        Ok(client)
    }

    async fn use_schema(&self, client: &Client) -> Result<(), StoreError> {
        if let Some(s) = &self.schema {
            client.batch_execute(&format!("SET search_path TO \"{s}\"")).await.map_err(pg)?;
        }
        Ok(())
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("PostgreSQL: {} ({})", db.message(), db.code().code())),
        None => StoreError::Backend(format!("PostgreSQL: {e}")),
    }
}

pub struct PostgresStore {
    jobs: mpsc::Sender<Job>,
    readers: Readers,
    head: watch::Receiver<u64>,
    listener: JoinHandle<()>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`, optionally `?schema=name`),
    /// creating the tables if needed.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::start(Target::parse(url)?).await
    }

    /// Connects to `url` and keeps the store in `schema` (created if missing).
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::start(Target::new(url, Some(schema))?).await
    }

    async fn start(target: Target) -> Result<PostgresStore, StoreError> {
        let conn = WriterConn::open(&target, true).await?;
        let tip = read_tip(&conn.client, &conn.st.tip).await?;
        let (head_tx, head) = watch::channel(tip.next_position - 1);
        let head_tx = Arc::new(head_tx);
        let (jobs, rx) = mpsc::channel(QUEUE);
        let writer =
            Writer { target: target.clone(), conn: Some(conn), head: head_tx.clone(), known: KnownVersions::default() };
        tokio::spawn(writer.run(rx));
        let listener = tokio::spawn(follow_head(target.clone(), head_tx));
        let readers = Readers { target, slots: (0..READERS).map(|_| Default::default()).collect(), next: 0.into() };
        Ok(PostgresStore { jobs, readers, head, listener })
    }
}

impl PostgresStore {
    /// Hands a unit to the writer and waits for its answer.
    async fn send(&self, unit: Vec<AppendRequest>) -> Result<Vec<Appended>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send((unit, tx)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The writer stops by itself once the queue it drains is closed and empty.
        self.listener.abort();
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, req: AppendRequest) -> Result<Appended, StoreError> {
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
        let r = self.readers.get().await?;
        let limit = limit.min(MAX_READ_BATCH) as i64;
        let rows = r.client.query(&r.read_stream, &[&stream, &(from_version as i64), &limit]).await.map_err(pg)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let r = self.readers.get().await?;
        let limit = limit.min(MAX_READ_BATCH) as i64;
        let rows = r.client.query(&r.read_all, &[&(from_position as i64), &limit]).await.map_err(pg)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        let r = self.readers.get().await?;
        let row = r.client.query_opt(&r.key, &[&key]).await.map_err(pg)?;
        row.map(|row| key_row(&row, 0)).transpose()
    }

    async fn idempotency_keys(&self, keys: &[String]) -> Result<Vec<Option<([u8; 32], Appended)>>, StoreError> {
        let r = self.readers.get().await?;
        let mut found = HashMap::new();
        for row in r.client.query(&r.keys, &[&keys]).await.map_err(pg)? {
            let key: String = row.try_get(0).map_err(pg)?;
            found.insert(key, key_row(&row, 1)?);
        }
        Ok(keys.iter().map(|k| found.get(k).copied()).collect())
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        let r = self.readers.get().await?;
        let v: Option<i64> = r.client.query_one(&r.version, &[&stream]).await.map_err(pg)?.get(0);
        Ok(v.unwrap_or(0) as u64)
    }

    /// One query for all of them (a billing batch asks for a thousand streams at once).
    async fn stream_versions(&self, streams: &[String]) -> Result<Vec<u64>, StoreError> {
        let r = self.readers.get().await?;
        let rows = r.client.query(&r.versions, &[&streams]).await.map_err(pg)?;
        Ok(rows.iter().map(|row| row.get::<_, Option<i64>>(0).unwrap_or(0) as u64).collect())
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<(u64, String)>, StoreError> {
        let r = self.readers.get().await?;
        let row = r.client.query_opt(&r.snapshot, &[&stream]).await.map_err(pg)?;
        row.map(|row| Ok((row.try_get::<_, i64>(0).map_err(pg)? as u64, row.try_get(1).map_err(pg)?))).transpose()
    }

    /// One statement on a read connection: a snapshot is a cache, so it needs no writer's
    /// lock; racing saves keep the newest.
    async fn save_snapshot(&self, stream: &str, version: u64, text: String) -> Result<(), StoreError> {
        let r = self.readers.get().await?;
        r.client.execute(&r.save_snapshot, &[&stream, &(version as i64), &text]).await.map_err(pg)?;
        Ok(())
    }

    async fn import(&self, events: Vec<RecordedEvent>) -> Result<(), StoreError> {
        let Some(last) = events.last().map(|e| e.position.to_string()) else { return Ok(()) };
        // A connection of its own, under the writers' lock: the tip it checks against is the
        // tip it writes after, whatever other processes append.
        let mut conn = WriterConn::open(&self.readers.target, false).await?;
        let (st, lock_key) = (&conn.st, conn.lock_key);
        let tx = conn.client.transaction().await.map_err(pg)?;
        tx.execute(&st.lock, &[&lock_key]).await.map_err(pg)?;
        crate::check_import(&read_tip(&tx, &st.tip).await?, &events)?;
        let cols = EventColumns::from(&events);
        let event_params = cols.params();
        tx.execute(&st.insert_events, &event_params).await.map_err(pg)?;
        tx.execute(&st.notify, &[&self.readers.target.channel(), &last]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn read_once_only(
        &self,
        after: Option<(u8, String)>,
        limit: usize,
        now_micros: i64,
    ) -> Result<Vec<OnceOnly>, StoreError> {
        let r = self.readers.get().await?;
        let (table, from) = after.unwrap_or((0, String::new()));
        let mut out = vec![];
        if table == 0 {
            let rows = r
                .client
                .query(
                    "SELECT key, fingerprint, first_position, last_position, stream_version FROM idempotency_keys \
                     WHERE key > $1 ORDER BY key LIMIT $2",
                    &[&from, &(limit as i64)],
                )
                .await
                .map_err(pg)?;
            for row in rows {
                let (fingerprint, first) = key_row(&row, 1)?;
                out.push(OnceOnly::Key { key: row.try_get(0).map_err(pg)?, fingerprint, first });
            }
        }
        if out.len() < limit {
            let from = if table == 1 { from } else { String::new() };
            let rows = r
                .client
                .query(
                    "SELECT key, until_micros FROM used_once WHERE key > $1 AND until_micros > $2 ORDER BY key LIMIT $3",
                    &[&from, &now_micros, &((limit - out.len()) as i64)],
                )
                .await
                .map_err(pg)?;
            for row in rows {
                out.push(OnceOnly::Used {
                    key: row.try_get(0).map_err(pg)?,
                    until_micros: row.try_get(1).map_err(pg)?,
                });
            }
        }
        Ok(out)
    }

    async fn import_once_only(&self, items: Vec<OnceOnly>) -> Result<(), StoreError> {
        let (mut keys, mut fingerprints, mut firsts, mut lasts, mut versions) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut used, mut untils) = (vec![], vec![]);
        for item in items {
            match item {
                OnceOnly::Key { key, fingerprint, first } => {
                    keys.push(key);
                    fingerprints.push(fingerprint.to_vec());
                    firsts.push(first.first_position as i64);
                    lasts.push(first.last_position as i64);
                    versions.push(first.stream_version as i64);
                }
                OnceOnly::Used { key, until_micros } => {
                    used.push(key);
                    untils.push(until_micros);
                }
            }
        }
        let mut conn = WriterConn::open(&self.readers.target, false).await?;
        let tx = conn.client.transaction().await.map_err(pg)?;
        let head: i64 = tx.query_one("SELECT COALESCE(MAX(position), 0) FROM events", &[]).await.map_err(pg)?.get(0);
        if let Some(past) = lasts.iter().copied().filter(|l| *l > head).max() {
            return Err(StoreError::InvalidAppend(format!(
                "an idempotency key names position {past}, past the log's end {head}"
            )));
        }
        tx.execute(
            "INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position, stream_version) \
             SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[]) \
             ON CONFLICT (key) DO NOTHING",
            &[&keys, &fingerprints, &firsts, &lasts, &versions],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "INSERT INTO used_once (key, until_micros) SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
             ON CONFLICT (key) DO NOTHING",
            &[&used, &untils],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn lease(&self, lease: Lease<'_>) -> Result<Option<u64>, StoreError> {
        let Lease { name, holder, now_micros, until_micros, position } = lease;
        let r = self.readers.get().await?;
        // The row lock of the upsert decides between racing processes.
        let row = r
            .client
            .query_opt(
                "INSERT INTO leases (name, holder, until_micros, position) VALUES ($1, $2, $4, $5) \
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until_micros = EXCLUDED.until_micros, \
                 position = GREATEST(leases.position, EXCLUDED.position) \
                 WHERE leases.holder = EXCLUDED.holder OR leases.until_micros <= $3 RETURNING position",
                &[&name, &holder, &now_micros, &until_micros, &(position as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    async fn first_use(&self, key: &str, now_micros: i64, until_micros: i64) -> Result<bool, StoreError> {
        let r = self.readers.get().await?;
        // The primary key decides between racing processes: the loser waits for the winner's
        // row and then updates nothing (unless that row's time has passed). Old rows go a
        // few at a time, skipping those another process is deleting (no lock waits).
        let added = r
            .client
            .execute(
                "WITH gone AS (DELETE FROM used_once WHERE key IN (SELECT key FROM used_once \
                 WHERE until_micros <= $2 LIMIT 100 FOR UPDATE SKIP LOCKED)) \
                 INSERT INTO used_once (key, until_micros) VALUES ($1, $3) \
                 ON CONFLICT (key) DO UPDATE SET until_micros = EXCLUDED.until_micros \
                 WHERE used_once.until_micros <= $2",
                &[&key, &now_micros, &until_micros],
            )
            .await
            .map_err(pg)?;
        Ok(added == 1)
    }
}

/// A read connection with its statements prepared once.
struct Reader {
    client: Client,
    read_all: Statement,
    read_stream: Statement,
    version: Statement,
    versions: Statement,
    key: Statement,
    keys: Statement,
    snapshot: Statement,
    save_snapshot: Statement,
}

impl Reader {
    async fn open(target: &Target) -> Result<Reader, StoreError> {
        let client = target.connect().await?;
        let prepare = |sql: String| {
            let client = &client;
            async move { client.prepare(&sql).await.map_err(pg) }
        };
        let (read_all, read_stream, version, versions, key, keys, snapshot, save_snapshot) = futures::try_join!(
            prepare(format!("SELECT {SELECT_COLUMNS} FROM events WHERE position >= $1 ORDER BY position LIMIT $2")),
            prepare(format!(
                "SELECT {SELECT_COLUMNS} FROM events WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3"
            )),
            prepare("SELECT max(version) FROM events WHERE stream = $1".into()),
            // Each stream's version in the order asked, one index probe per stream.
            prepare(
                "SELECT (SELECT max(version) FROM events WHERE stream = s) FROM UNNEST($1::text[]) \
                 WITH ORDINALITY AS asked(s, i) ORDER BY i"
                    .into()
            ),
            prepare(
                "SELECT fingerprint, first_position, last_position, stream_version FROM idempotency_keys \
                 WHERE key = $1"
                    .into()
            ),
            prepare(
                "SELECT key, fingerprint, first_position, last_position, stream_version FROM idempotency_keys \
                 WHERE key = ANY($1)"
                    .into()
            ),
            prepare("SELECT version, data FROM snapshots WHERE stream = $1".into()),
            prepare(
                "INSERT INTO snapshots (stream, version, data) VALUES ($1, $2, $3) ON CONFLICT (stream) \
                 DO UPDATE SET version = EXCLUDED.version, data = EXCLUDED.data WHERE EXCLUDED.version > snapshots.version"
                    .into()
            ),
        )?;
        Ok(Reader { client, read_all, read_stream, version, versions, key, keys, snapshot, save_snapshot })
    }
}

/// A few read connections, opened on first use and reopened when one is lost.
struct Readers {
    target: Target,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Reader>>>>,
    next: AtomicUsize,
}

impl Readers {
    async fn get(&self) -> Result<Arc<Reader>, StoreError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(r) = slot.as_ref().filter(|r| !r.client.is_closed()) {
            return Ok(r.clone());
        }
        let r = Arc::new(Reader::open(&self.target).await?);
        *slot = Some(r.clone());
        Ok(r)
    }
}

/// The writer's connection and its statements.
struct WriterConn {
    client: Client,
    lock_key: i64,
    st: WriterStatements,
    /// Set when a `COPY` was refused before it started (an aborted transaction): tokio-postgres
    /// then gets two `ReadyForQuery` for one request, and the connection's answers may be
    /// out of step with its requests. Such a connection is never used again.
    spoiled: std::sync::atomic::AtomicBool,
}

struct WriterStatements {
    lock: Statement,
    tip: Statement,
    versions: Statement,
    keys: Statement,
    ids: Statement,
    copy_events: Statement,
    check_tip: Statement,
    insert_small: Statement,
    insert_keys: Statement,
    insert_events: Statement,
    notify: Statement,
}

impl WriterConn {
    /// Connects; with `create`, makes the schema and tables if they are missing.
    async fn open(target: &Target, create: bool) -> Result<WriterConn, StoreError> {
        let client = target.connect().await?;
        if create {
            let make_schema = match &target.schema {
                Some(s) => format!("CREATE SCHEMA IF NOT EXISTS \"{s}\";"),
                None => String::new(),
            };
            // Two processes starting at once must not race on CREATE TABLE.
            client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({DDL_LOCK}); {make_schema} {SCHEMA} COMMIT;"
                ))
                .await
                .map_err(pg)?;
        }
        // A commit returns only once it is durable, whatever the server's default.
        client.batch_execute("SET synchronous_commit = on").await.map_err(pg)?;
        let oid: i64 = client.query_one("SELECT 'events'::regclass::oid::bigint", &[]).await.map_err(pg)?.get(0);
        let lock_key = (LOCK_CLASS << 32) | oid;
        let prepare = |sql: &'static str| {
            let client = &client;
            async move { client.prepare(sql).await.map_err(pg) }
        };
        let (lock, tip, versions, keys, ids, copy_events, check_tip, insert_small, insert_keys, insert_events, notify) =
            futures::try_join!(
                prepare("SELECT pg_advisory_xact_lock($1)"),
                prepare("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"),
                // One index probe per stream (not a scan of its versions).
                prepare("SELECT s, (SELECT max(version) FROM events WHERE stream = s) FROM unnest($1::text[]) AS s"),
                prepare(
                    "SELECT key, fingerprint, first_position, last_position, stream_version FROM idempotency_keys \
                 WHERE key = ANY($1)"
                ),
                prepare("SELECT event_id::text FROM events WHERE event_id = ANY($1::text[]::uuid[])"),
                prepare(COPY_EVENTS),
                prepare(CHECK_TIP_AND_NOTIFY),
                prepare(INSERT_SMALL_GROUP),
                prepare(INSERT_KEYS_AND_NOTIFY),
                prepare(INSERT_EVENTS),
                prepare("SELECT pg_notify($1, $2)"),
            )?;
        let st = WriterStatements {
            lock,
            tip,
            versions,
            keys,
            ids,
            copy_events,
            check_tip,
            insert_small,
            insert_keys,
            insert_events,
            notify,
        };
        Ok(WriterConn { client, lock_key, st, spoiled: false.into() })
    }
}

async fn read_tip(client: &impl tokio_postgres::GenericClient, tip: &Statement) -> Result<LogTip, StoreError> {
    Ok(match client.query_opt(tip, &[]).await.map_err(pg)? {
        None => LogTip { next_position: 1, prev_hash: ChainHash::ZERO },
        Some(row) => tip_from_row(&row)?,
    })
}

fn tip_from_row(row: &Row) -> Result<LogTip, StoreError> {
    let position: i64 = row.try_get(0).map_err(pg)?;
    let hash: Vec<u8> = row.try_get(1).map_err(pg)?;
    Ok(LogTip {
        next_position: position as u64 + 1,
        prev_hash: ChainHash::from_slice(&hash)
            .ok_or_else(|| StoreError::Corrupt { position: position as u64, reason: "hash is not 32 bytes".into() })?,
    })
}

struct Writer {
    target: Target,
    /// None after the connection was lost: the next group reconnects.
    conn: Option<WriterConn>,
    head: Arc<watch::Sender<u64>>,
    known: KnownVersions,
}

/// The log's tip as this writer left it, and stream versions it read or wrote as of that
/// tip. While the log still ends there nobody appended since (positions are gap-free and
/// assigned under the lock): a group of known streams without keys is decided on these
/// alone and written in one round trip whose write checks that the log still ends there;
/// other groups read under the lock only the streams not known here.
#[derive(Default)]
struct KnownVersions {
    /// 0 (never a tip): nothing known.
    next_position: u64,
    /// The hash of the event at `next_position - 1`.
    prev_hash: Option<ChainHash>,
    versions: HashMap<String, u64>,
}

impl KnownVersions {
    /// The group decided on what is known here, when that is all it needs: a known tip,
    /// every stream known, no key to look up, something to write (a group that only
    /// refuses is decided under the lock, where its refusals are checked against the log).
    fn plan(&self, group: &[&[AppendRequest]]) -> Option<GroupPlan> {
        let prev_hash = self.prev_hash.filter(|_| self.next_position != 0)?;
        let mut requests = group.iter().flat_map(|unit| unit.iter());
        if !requests
            .all(|r| r.idempotency.is_none() && r.event_keys.is_empty() && self.versions.contains_key(&r.stream))
        {
            return None;
        }
        let tip = LogTip { next_position: self.next_position, prev_hash };
        Some(plan_group(group.iter().copied(), self, tip, Utc::now())).filter(|plan| !plan.events.is_empty())
    }

    /// What is known once `plan` (decided after `read`, with the log ending at `tip`) is
    /// committed.
    fn remember(&mut self, read: HashMap<String, u64>, tip: &LogTip, plan: &GroupPlan) {
        if self.versions.len() + read.len() > MAX_KNOWN_VERSIONS {
            self.versions.clear();
        }
        self.versions.extend(read);
        for e in &plan.events {
            self.versions.insert(e.stream.clone(), e.version);
        }
        (self.next_position, self.prev_hash) = match plan.events.last() {
            Some(last) => (last.position + 1, Some(last.hash)),
            None => (tip.next_position, Some(tip.prev_hash)),
        };
    }
}

/// Only asked by [`KnownVersions::plan`], for streams it knows and groups without keys.
impl StoredLog for KnownVersions {
    fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        Ok(self.versions.get(stream).copied().unwrap_or(0))
    }
    fn idempotency_key(&self, _: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        Ok(None)
    }
    /// A stored id fails the write on the UNIQUE constraint (see `commit_group`).
    fn has_event(&self, _: &uuid::Uuid) -> Result<bool, StoreError> {
        Ok(false)
    }
}

/// Most stream versions kept between groups.
const MAX_KNOWN_VERSIONS: usize = 100_000;

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut last_size = 0;
        while let Some(first) = rx.recv().await {
            let mut events = unit_events(&first.0);
            let mut group = vec![first];
            let room = |group: &Vec<Job>, events: usize| group.len() < MAX_GROUP && events < MAX_GROUP_EVENTS;
            while room(&group, events) {
                match rx.try_recv() {
                    Ok(job) => {
                        events += unit_events(&job.0);
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            // Under load the callers of the last group come back while this one is being
            // gathered: a group far smaller than the last waits a moment for them, so each
            // commit (and its fsync) carries most of them instead of alternating big and
            // tiny groups. A lone appender (last group of one) never waits.
            if group.len() * 2 < last_size {
                let deadline = tokio::time::Instant::now() + LINGER;
                while group.len() * 2 < last_size && room(&group, events) {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(job)) => {
                            events += unit_events(&job.0);
                            group.push(job);
                        }
                        _ => break,
                    }
                }
            }
            let (size, started) = (group.len(), std::time::Instant::now());
            last_size = size;
            self.commit_group(group).await;
            tracing::debug!(size, micros = started.elapsed().as_micros() as u64, "group committed");
        }
    }

    async fn commit_group(&mut self, group: Vec<Job>) {
        let units: Vec<&[AppendRequest]> = group.iter().map(|(unit, _)| unit.as_slice()).collect();
        let mut outcome = self.write_group(&units, false).await;
        if matches!(&outcome, Err(StoreError::Backend(m)) if m.contains(EVENT_ID_CONSTRAINT)) {
            // A caller reused a stored event id. Rare: redo the group looking every id up
            // first, so only that append is refused.
            outcome = self.write_group(&units, true).await;
        }
        let answers = match outcome {
            Ok(plan) => {
                if let Some(last) = plan.events.last() {
                    raise(&self.head, last.position);
                }
                plan.answers
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; rolled back");
                vec![Err(e); group.len()]
            }
        };
        for ((_, reply), answer) in group.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }

    /// One group in one transaction. When what this writer knows decides the group
    /// ([`KnownVersions::plan`]), two round trips (one below [`COPY_FROM_EVENTS`] events, by
    /// [`INSERT_SMALL_GROUP`]): BEGIN, the lock and the `COPY`, pipelined;
    /// then the rows, the check that the log still ended where the group was decided (and
    /// the NOTIFY) and COMMIT, pipelined; if the log had moved the transaction rolls back
    /// and the group is decided again as below. Otherwise three: BEGIN, the lock and every
    /// read the decision needs, pipelined; then the `COPY`; then the rows, the keys (and
    /// the NOTIFY) and COMMIT, pipelined. `check_ids` also looks the group's event ids up;
    /// without it a stored id fails the `COPY` on the table's UNIQUE constraint (see
    /// `commit_group`).
    async fn write_group(&mut self, group: &[&[AppendRequest]], check_ids: bool) -> Result<GroupPlan, StoreError> {
        if self.conn.is_none() {
            self.conn = Some(WriterConn::open(&self.target, false).await?);
        }
        let conn = self.conn.as_ref().expect("connected above");
        let mut written = Err(StoreError::Closed);
        let mut decided = false;
        if let Some(plan) = self.known.plan(group).filter(|_| !check_ids) {
            let tip =
                LogTip { next_position: self.known.next_position, prev_hash: self.known.prev_hash.expect("planned") };
            let started = std::time::Instant::now();
            let write = GroupWrite::new(&plan, &tip, &self.target);
            let check: [&(dyn ToSql + Sync); 4] = [&write.prev_position, &write.prev_hash, &write.channel, &write.last];
            let outcome = match plan.events.len() < COPY_FROM_EVENTS {
                true => {
                    // One round trip: BEGIN, the lock, the write (checking the tip) and COMMIT.
                    let events = EventColumns::from(&plan.events);
                    insert_small_group(conn, true, &write.small_params(&events)).await
                }
                false => copy_group(conn, true, write.data, &conn.st.check_tip, &check).await,
            };
            match outcome {
                Ok(()) => {
                    self.known.remember(HashMap::new(), &tip, &plan);
                    tracing::debug!(
                        events = plan.events.len(),
                        micros = started.elapsed().as_micros() as u64,
                        "group written on known versions"
                    );
                    written = Ok(plan);
                    decided = true;
                }
                // Another process appended since: decide again on what is stored (the
                // transaction was rolled back by its COMMIT).
                Err(CopyFailure::Moved(e)) => {
                    tracing::debug!(error = %e, "the log moved since the last group; deciding again");
                    self.known = KnownVersions::default();
                }
                Err(CopyFailure::Failed(e)) => {
                    written = Err(e);
                    decided = true;
                }
            }
        }
        if !decided {
            written = Writer::write_on(conn, &self.target, &mut self.known, group, check_ids).await;
        }
        if written.is_err() {
            // Rolled back (or unknown): what was known may describe writes that are not there.
            self.known = KnownVersions::default();
            // Whatever was left open is rolled back (harmless if the COMMIT already ended
            // it); a lost (or spoiled) connection is made again for the next group.
            if conn.client.is_closed()
                || conn.spoiled.load(Ordering::Relaxed)
                || conn.client.batch_execute("ROLLBACK").await.is_err()
            {
                self.conn = None;
            }
        }
        written
    }

    async fn write_on(
        conn: &WriterConn,
        target: &Target,
        known: &mut KnownVersions,
        group: &[&[AppendRequest]],
        check_ids: bool,
    ) -> Result<GroupPlan, StoreError> {
        let (client, st) = (&conn.client, &conn.st);
        let started = std::time::Instant::now();
        let (mut streams, mut keys, mut ids) = (vec![], vec![], vec![]);
        for r in group.iter().flat_map(|unit| unit.iter()) {
            streams.push(r.stream.as_str());
            keys.extend(r.idempotency.iter().map(|k| k.key.as_str()));
            keys.extend(r.event_keys.iter().map(|k| k.key.as_str()));
            if check_ids {
                ids.extend(r.events.iter().map(|e| e.event_id.hyphenated().to_string()));
            }
        }
        streams.sort_unstable();
        streams.dedup();
        // Streams whose version this writer knows are not read (checked against the tip below).
        let (skipped, to_read): (Vec<&str>, Vec<&str>) =
            streams.iter().partition(|s| known.next_position != 0 && known.versions.contains_key(**s));

        // Pipelined, in this order: the lock first, so the reads after it (each with its own
        // READ COMMITTED snapshot, taken once the lock is granted) see every append committed
        // before. The lock and the tip cannot share a statement: its snapshot would predate
        // the lock.
        let params: [[&(dyn ToSql + Sync); 1]; 4] = [[&conn.lock_key], [&to_read], [&keys], [&ids]];
        let (_, _, tip, versions, key_rows, id_rows) = futures::try_join!(
            client.batch_execute("BEGIN").map_err(pg),
            client.execute(&st.lock, &params[0]).map_err(pg),
            read_tip(client, &st.tip),
            async {
                match to_read.is_empty() {
                    true => Ok(vec![]),
                    false => client.query(&st.versions, &params[1]).await,
                }
            }
            .map_err(pg),
            async {
                match keys.is_empty() {
                    true => Ok(vec![]),
                    false => client.query(&st.keys, &params[2]).await,
                }
            }
            .map_err(pg),
            async {
                match ids.is_empty() {
                    true => Ok(vec![]),
                    false => client.query(&st.ids, &params[3]).await,
                }
            }
            .map_err(pg),
        )?;
        let mut stored = StoredFacts::default();
        let mut versions = versions;
        if tip.next_position == known.next_position {
            for s in &skipped {
                stored.versions.insert(s.to_string(), known.versions[*s]);
            }
        } else {
            // Another process appended since (or nothing is known): read those too, still
            // under the lock.
            known.versions.clear();
            if !skipped.is_empty() {
                versions.extend(client.query(&st.versions, &[&skipped]).await.map_err(pg)?);
            }
        }
        let read = started.elapsed();
        for row in &versions {
            let v: Option<i64> = row.try_get(1).map_err(pg)?;
            stored.versions.insert(row.try_get(0).map_err(pg)?, v.unwrap_or(0) as u64);
        }
        for row in &key_rows {
            stored.keys.insert(row.try_get(0).map_err(pg)?, key_row(row, 1)?);
        }
        for row in &id_rows {
            let id: &str = row.try_get(0).map_err(pg)?;
            stored.ids.insert(id.parse().map_err(|_| StoreError::Backend(format!("bad event id {id}")))?);
        }

        let plan = plan_group(
            group.iter().copied(),
            &stored,
            LogTip { next_position: tip.next_position, prev_hash: tip.prev_hash },
            Utc::now(),
        );
        if plan.events.is_empty() {
            client.batch_execute("COMMIT").await.map_err(pg)?;
            known.remember(stored.versions, &tip, &plan);
            return Ok(plan);
        }
        let write = GroupWrite::new(&plan, &tip, target);
        let keys = &write.keys;
        let params: [&(dyn ToSql + Sync); 7] = [
            &keys.key,
            &keys.fingerprint,
            &keys.first_position,
            &keys.last_position,
            &keys.stream_version,
            &write.channel,
            &write.last,
        ];
        let planned = started.elapsed();
        let outcome = match plan.events.len() < COPY_FROM_EVENTS {
            true => {
                // One round trip: the write (its check cannot fail under the lock) and COMMIT.
                let events = EventColumns::from(&plan.events);
                insert_small_group(conn, false, &write.small_params(&events)).await
            }
            false => copy_group(conn, false, write.data, &st.insert_keys, &params).await,
        };
        match outcome {
            Ok(()) => {}
            // The tip was read under the lock: only a writer that does not take it moves it.
            Err(CopyFailure::Moved(e)) => {
                return Err(StoreError::Backend(format!("the log moved while the writers' lock was held: {e}")))
            }
            Err(CopyFailure::Failed(e)) => return Err(e),
        }
        known.remember(stored.versions, &tip, &plan);
        tracing::debug!(
            events = plan.events.len(),
            read_micros = read.as_micros() as u64,
            plan_micros = (planned - read).as_micros() as u64,
            write_micros = (started.elapsed() - planned).as_micros() as u64,
            "group written"
        );
        Ok(plan)
    }
}

/// What a group decided with the log ending at `tip` sends: its events in `COPY` form, its
/// keys, the NOTIFY, and the tip it was chained to.
struct GroupWrite {
    data: bytes::Bytes,
    keys: KeyColumns,
    channel: String,
    last: String,
    prev_position: i64,
    prev_hash: Vec<u8>,
}

impl GroupWrite {
    fn new(plan: &GroupPlan, tip: &LogTip, target: &Target) -> GroupWrite {
        GroupWrite {
            data: copy_data(&plan.events),
            keys: KeyColumns::from(&plan.keys),
            channel: target.channel(),
            last: plan.events.last().map_or(tip.next_position - 1, |e| e.position).to_string(),
            prev_position: tip.next_position as i64 - 1,
            prev_hash: tip.prev_hash.0.to_vec(),
        }
    }
}

impl GroupWrite {
    /// The parameters of [`INSERT_SMALL_GROUP`], with `events` the group's events.
    fn small_params<'a>(&'a self, events: &'a EventColumns) -> Vec<&'a (dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = events.params().to_vec();
        params.extend([
            &self.keys.key as &(dyn ToSql + Sync),
            &self.keys.fingerprint,
            &self.keys.first_position,
            &self.keys.last_position,
            &self.keys.stream_version,
            &self.channel,
            &self.last,
            &self.prev_position,
            &self.prev_hash,
        ]);
        params
    }
}

/// How a group's write (`COPY`, or a small group's `INSERT`) and the statements after it
/// failed.
enum CopyFailure {
    /// The log had moved past the tip the group was decided on (the `COPY` met a position
    /// already written, or the check after it found another event at the tip); rolled back.
    Moved(StoreError),
    /// Anything else; rolled back, or (the COMMIT failed) unknown.
    Failed(StoreError),
}

/// `BEGIN`, when `begin`: the first of a group's pipelined requests.
async fn begin_if(conn: &WriterConn, begin: bool) -> Result<(), tokio_postgres::Error> {
    match begin {
        true => conn.client.batch_execute("BEGIN").await,
        false => Ok(()),
    }
}

/// The writers' lock, when `begin`: the second of a group's pipelined requests.
async fn lock_if(conn: &WriterConn, begin: bool) -> Result<(), tokio_postgres::Error> {
    match begin {
        true => conn.client.execute(&conn.st.lock, &[&conn.lock_key]).await.map(drop),
        false => Ok(()),
    }
}

/// Writes a group of fewer than [`COPY_FROM_EVENTS`] events with one statement (events,
/// keys and NOTIFY, only if the log still ends where the group was decided), then COMMIT;
/// with `begin`, BEGIN and the writers' lock go first, all pipelined. A failed statement
/// aborts the transaction and the COMMIT after it rolls back: the first error is the answer.
async fn insert_small_group(conn: &WriterConn, begin: bool, params: &[&(dyn ToSql + Sync)]) -> Result<(), CopyFailure> {
    let client = &conn.client;
    // One poll of each sends its request, in this order.
    let (began, locked, written, committed) = futures::join!(
        begin_if(conn, begin),
        lock_if(conn, begin),
        client.execute(&conn.st.insert_small, params),
        client.batch_execute("COMMIT"),
    );
    match (began.and(locked), written, committed) {
        (Err(e), ..) | (_, Err(e), _) | (_, _, Err(e)) => Err(CopyFailure::Failed(pg(e))),
        (Ok(()), Ok(1), Ok(())) => Ok(()),
        (Ok(()), Ok(_), Ok(())) => Err(CopyFailure::Moved(StoreError::Backend("the log moved".into()))),
    }
}

/// Writes a group: the `COPY` of its events (`data`, from [`copy_data`]), then `then` with
/// `params` (the check or the keys, and the NOTIFY), then COMMIT; with `begin`, BEGIN and
/// the writers' lock go first, pipelined with the `COPY`. The transaction is always ended
/// when this returns, unless the connection was spoiled (see [`WriterConn::spoiled`]).
async fn copy_group(
    conn: &WriterConn,
    begin: bool,
    data: bytes::Bytes,
    then: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), CopyFailure> {
    use futures::SinkExt;
    let client = &conn.client;
    // One poll of each sends its request, in this order.
    let (began, locked, sink) = futures::join!(
        begin_if(conn, begin),
        lock_if(conn, begin),
        client.copy_in::<_, bytes::Bytes>(&conn.st.copy_events),
    );
    let sink = match sink {
        Ok(sink) => sink,
        Err(e) => {
            conn.spoiled.store(true, Ordering::Relaxed);
            return Err(CopyFailure::Failed(pg(began.and(locked).err().unwrap_or(e))));
        }
    };
    let mut sink = std::pin::pin!(sink);
    // The statements after the COPY wait in the connection until its rows are sent.
    let (copied, checked, committed) = futures::join!(
        async {
            sink.as_mut().send(data).await?;
            sink.as_mut().finish().await
        },
        client.query(then, params),
        client.batch_execute("COMMIT"),
    );
    let moved = |e: &tokio_postgres::Error, code: &tokio_postgres::error::SqlState, constraint: Option<&str>| {
        e.as_db_error().is_some_and(|db| db.code() == code && (constraint.is_none() || db.constraint() == constraint))
    };
    use tokio_postgres::error::SqlState;
    match (began.and(locked), copied, checked, committed) {
        (Err(e), ..) => Err(CopyFailure::Failed(pg(e))),
        (_, Err(e), ..) if moved(&e, &SqlState::UNIQUE_VIOLATION, Some(POSITION_CONSTRAINT)) => {
            Err(CopyFailure::Moved(pg(e)))
        }
        (_, Err(e), ..) => Err(CopyFailure::Failed(pg(e))),
        (_, _, Err(e), _) if moved(&e, &SqlState::DIVISION_BY_ZERO, None) => Err(CopyFailure::Moved(pg(e))),
        (_, _, Err(e), _) => Err(CopyFailure::Failed(pg(e))),
        (_, _, _, Err(e)) => Err(CopyFailure::Failed(pg(e))),
        (Ok(()), Ok(_), Ok(_), Ok(())) => Ok(()),
    }
}

/// The types of [`COPY_EVENTS`]'s columns, in its order.
const COPY_TYPES: [Type; 16] = [
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::UUID,
    Type::TEXT,
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::UUID,
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::BYTEA,
    Type::BYTEA,
];

/// `events` in PostgreSQL's binary `COPY` format, one message's worth (ids and times in
/// binary; times are whole microseconds, as stored and hashed).
fn copy_data(events: &[RecordedEvent]) -> bytes::Bytes {
    use bytes::BufMut;
    let size: usize = events.iter().map(|e| 300 + e.data.len() + e.stream.len() + e.event_type.len()).sum();
    let mut buf = bytes::BytesMut::with_capacity(23 + size);
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension
    for e in events {
        let (position, version, schema_version) = (e.position as i64, e.version as i64, e.schema_version as i32);
        let row: [&(dyn ToSql + Sync); 16] = [
            &position,
            &e.stream,
            &version,
            &e.event_id,
            &e.event_type,
            &schema_version,
            &e.occurred_at,
            &e.recorded_at,
            &e.actor.principal,
            &e.actor.role.as_str(),
            &e.correlation_id,
            &e.causation_id,
            &e.request_id,
            &e.data,
            &e.prev_hash.0.as_slice(),
            &e.hash.0.as_slice(),
        ];
        buf.put_i16(row.len() as i16);
        for (value, ty) in row.iter().zip(&COPY_TYPES) {
            let at = buf.len();
            buf.put_i32(0);
            // Every value here has a binary form of its column's type.
            let len = match value.to_sql_checked(ty, &mut buf).expect("a value of its column's type") {
                IsNull::Yes => -1,
                IsNull::No => (buf.len() - at - 4) as i32,
            };
            buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
    buf.put_i16(-1);
    buf.freeze()
}

/// The events of a group as one array per column, for `INSERT … SELECT FROM unnest(…)`.
/// Ids and times go in binary (no parsing on the server; times are whole microseconds,
/// as stored and hashed).
struct EventColumns {
    position: Vec<i64>,
    stream: Vec<String>,
    version: Vec<i64>,
    event_id: Vec<uuid::Uuid>,
    event_type: Vec<String>,
    schema_version: Vec<i32>,
    occurred_at: Vec<chrono::DateTime<Utc>>,
    recorded_at: Vec<chrono::DateTime<Utc>>,
    actor_principal: Vec<String>,
    actor_role: Vec<String>,
    correlation_id: Vec<uuid::Uuid>,
    causation_id: Vec<Option<uuid::Uuid>>,
    request_id: Vec<Option<String>>,
    data: Vec<String>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl EventColumns {
    /// The parameters of `INSERT_EVENTS`, in its order.
    fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.position,
            &self.stream,
            &self.version,
            &self.event_id,
            &self.event_type,
            &self.schema_version,
            &self.occurred_at,
            &self.recorded_at,
            &self.actor_principal,
            &self.actor_role,
            &self.correlation_id,
            &self.causation_id,
            &self.request_id,
            &self.data,
            &self.prev_hash,
            &self.hash,
        ]
    }
}

impl From<&Vec<RecordedEvent>> for EventColumns {
    fn from(events: &Vec<RecordedEvent>) -> Self {
        let col = |f: &dyn Fn(&RecordedEvent) -> String| events.iter().map(f).collect::<Vec<_>>();
        EventColumns {
            position: events.iter().map(|e| e.position as i64).collect(),
            stream: col(&|e| e.stream.clone()),
            version: events.iter().map(|e| e.version as i64).collect(),
            event_id: events.iter().map(|e| e.event_id).collect(),
            event_type: col(&|e| e.event_type.clone()),
            schema_version: events.iter().map(|e| e.schema_version as i32).collect(),
            occurred_at: events.iter().map(|e| e.occurred_at).collect(),
            recorded_at: events.iter().map(|e| e.recorded_at).collect(),
            actor_principal: col(&|e| e.actor.principal.clone()),
            actor_role: col(&|e| e.actor.role.as_str().to_string()),
            correlation_id: events.iter().map(|e| e.correlation_id).collect(),
            causation_id: events.iter().map(|e| e.causation_id).collect(),
            request_id: events.iter().map(|e| e.request_id.clone()).collect(),
            data: col(&|e| e.data.clone()),
            prev_hash: events.iter().map(|e| e.prev_hash.0.to_vec()).collect(),
            hash: events.iter().map(|e| e.hash.0.to_vec()).collect(),
        }
    }
}

struct KeyColumns {
    key: Vec<String>,
    fingerprint: Vec<Vec<u8>>,
    first_position: Vec<i64>,
    last_position: Vec<i64>,
    stream_version: Vec<i64>,
}

impl From<&Vec<(String, [u8; 32], Appended)>> for KeyColumns {
    fn from(keys: &Vec<(String, [u8; 32], Appended)>) -> Self {
        KeyColumns {
            key: keys.iter().map(|k| k.0.clone()).collect(),
            fingerprint: keys.iter().map(|k| k.1.to_vec()).collect(),
            first_position: keys.iter().map(|k| k.2.first_position as i64).collect(),
            last_position: keys.iter().map(|k| k.2.last_position as i64).collect(),
            stream_version: keys.iter().map(|k| k.2.stream_version as i64).collect(),
        }
    }
}

/// What the stored log says about one group's streams, keys and event ids (looked up only
/// when a group is redone after a repeated id: otherwise the table's UNIQUE constraint
/// refuses a stored id).
#[derive(Default)]
struct StoredFacts {
    versions: HashMap<String, u64>,
    keys: HashMap<String, ([u8; 32], Appended)>,
    ids: HashSet<uuid::Uuid>,
}

impl StoredLog for StoredFacts {
    fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        Ok(self.versions.get(stream).copied().unwrap_or(0))
    }
    fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        Ok(self.keys.get(key).copied())
    }
    fn has_event(&self, id: &uuid::Uuid) -> Result<bool, StoreError> {
        Ok(self.ids.contains(id))
    }
}

/// The events of a unit, for the group's size limit.
fn unit_events(unit: &[AppendRequest]) -> usize {
    unit.iter().map(|r| r.events.len()).sum()
}

/// Keeps the head up with appends made by other processes: LISTEN for the writers'
/// notifications, and poll the tip now and then in case one was missed.
async fn follow_head(target: Target, head: Arc<watch::Sender<u64>>) {
    loop {
        if let Err(e) = listen(&target, &head).await {
            tracing::warn!(error = %e, "head listener lost its connection; reconnecting");
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

async fn listen(target: &Target, head: &watch::Sender<u64>) -> Result<(), StoreError> {
    let (client, mut connection) = tokio_postgres::connect(&target.url, NoTls).await.map_err(pg)?;
    let (notified, mut notifications) = mpsc::unbounded_channel::<String>();
    // Driving the connection by hand is how notifications are received.
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notified.send(n.payload().to_string()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL listener connection ended");
                    return;
                }
            }
        }
    });
    let result = async {
        target.use_schema(&client).await?;
        client.batch_execute(&format!("LISTEN {}", target.channel())).await.map_err(pg)?;
        let tip = client.prepare("SELECT coalesce(max(position), 0) FROM events").await.map_err(pg)?;
        let mut poll = tokio::time::interval(HEAD_POLL);
        loop {
            tokio::select! {
                payload = notifications.recv() => match payload {
                    Some(p) => match p.parse::<u64>() {
                        Ok(position) => raise(head, position),
                        Err(_) => tracing::warn!(payload = %p, "ignoring a malformed append notification"),
                    },
                    None => return Err(StoreError::Backend("listener connection closed".into())),
                },
                _ = poll.tick() => {
                    let last: i64 = client.query_one(&tip, &[]).await.map_err(pg)?.get(0);
                    raise(head, last as u64);
                }
            }
        }
    }
    .await;
    driver.abort();
    result
}

fn key_row(row: &Row, first: usize) -> Result<([u8; 32], Appended), StoreError> {
    let fp: Vec<u8> = row.try_get(first).map_err(pg)?;
    let first_position: i64 = row.try_get(first + 1).map_err(pg)?;
    let fingerprint = <[u8; 32]>::try_from(fp.as_slice()).map_err(|_| StoreError::Corrupt {
        position: first_position as u64,
        reason: "an idempotency key has a malformed fingerprint".into(),
    })?;
    Ok((
        fingerprint,
        Appended {
            first_position: first_position as u64,
            last_position: row.try_get::<_, i64>(first + 2).map_err(pg)? as u64,
            stream_version: row.try_get::<_, i64>(first + 3).map_err(pg)? as u64,
            replayed: false,
        },
    ))
}

fn row_to_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    let position = row.try_get::<_, i64>(0).map_err(pg)? as u64;
    let corrupt = |reason: &str| StoreError::Corrupt { position, reason: reason.to_string() };
    let text = |i: usize, what: &str| row.try_get::<_, String>(i).map_err(|_| corrupt(what));
    let uuid = |s: String, what: &str| uuid::Uuid::parse_str(&s).map_err(|_| corrupt(what));
    let time = |i: usize, what: &str| parse_time(&text(i, what)?).ok_or_else(|| corrupt(what));
    let hash = |i: usize, what: &str| {
        let b: Vec<u8> = row.try_get(i).map_err(|_| corrupt(what))?;
        ChainHash::from_slice(&b).ok_or_else(|| corrupt(what))
    };
    let causation: Option<String> = row.try_get(11).map_err(|_| corrupt("causation_id"))?;
    Ok(RecordedEvent {
        position,
        stream: text(1, "stream")?,
        version: row.try_get::<_, i64>(2).map_err(|_| corrupt("version"))? as u64,
        event_id: uuid(text(3, "event_id")?, "event_id")?,
        event_type: text(4, "event_type")?,
        schema_version: row.try_get::<_, i32>(5).map_err(|_| corrupt("schema_version"))? as u32,
        occurred_at: time(6, "occurred_at")?,
        recorded_at: time(7, "recorded_at")?,
        actor: Actor {
            principal: text(8, "actor")?,
            role: Role::parse(&text(9, "actor_role")?).ok_or_else(|| corrupt("unknown actor role"))?,
        },
        correlation_id: uuid(text(10, "correlation_id")?, "correlation_id")?,
        causation_id: causation.map(|c| uuid(c, "causation_id")).transpose()?,
        request_id: row.try_get(12).map_err(|_| corrupt("request_id"))?,
        data: text(13, "data")?,
        prev_hash: hash(14, "prev_hash")?,
        hash: hash(15, "hash")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_parameter_is_taken_out_of_the_url() {
        let t = Target::parse("postgres://postgres@127.0.0.1:5432/test?schema=ledger_a&connect_timeout=5").unwrap();
        assert_eq!(t.schema.as_deref(), Some("ledger_a"));
        assert_eq!(t.url, "postgres://postgres@127.0.0.1:5432/test?connect_timeout=5");
        assert_eq!(t.channel(), "ledger_appended_ledger_a");
        let t = Target::parse("postgresql://u@h/db").unwrap();
        assert_eq!((t.url.as_str(), t.schema.as_deref()), ("postgresql://u@h/db", None));
        assert_eq!(t.channel(), "ledger_appended");
    }

    #[test]
    fn schema_names_that_would_need_quoting_are_refused() {
        for bad in ["", "Ledger", "a-b", "1abc", "x\"; DROP TABLE events; --", &"a".repeat(MAX_SCHEMA_LEN + 1)] {
            assert!(Target::new("postgres://u@h/db", Some(bad)).is_err(), "{bad:?}");
        }
        assert!(Target::new("postgres://u@h/db", Some("ledger_test_0a1b")).is_ok());
        let longest = Target::new("postgres://u@h/db", Some(&"a".repeat(MAX_SCHEMA_LEN))).unwrap();
        assert_eq!(longest.channel().len(), MAX_IDENTIFIER_LEN);
        assert!(Target::parse("postgres://u@h/db?bogus_option=1").is_err());
    }
}
