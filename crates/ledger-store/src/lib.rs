//! # ledger-store
//!
//! The event store: one global, gap-free, hash-chained log of every event, split into
//! streams with optimistic concurrency. [`EventStore`] is the one interface; backends:
//! [`memory::MemoryStore`] (tests), [`sqlite::SqliteStore`] (the embedded default),
//! [`postgres::PostgresStore`] (a shared server) and [`kurrent::KurrentStore`]
//! (EventStoreDB/KurrentDB), chosen by [`open_store`]. Every backend decides appends with
//! the same rules (`plan`) and must pass [`conformance`].
//!
//! It must not know what the events mean: no domain types, no HTTP, no Kafka.

use std::sync::Arc;

use async_trait::async_trait;
use ledger_core::envelope::{CommandMeta, NewEvent, RecordedEvent};
use thiserror::Error;
use tokio::sync::watch;

pub mod conformance;
pub mod kurrent;
pub mod memory;
mod open;
mod plan;
pub mod postgres;
pub mod sqlite;
mod subscription;

pub use open::{open_store, KURRENT_SCHEMES, POSTGRES_SCHEMES};
pub use subscription::Subscription;

/// A request to take or renew a lease ([`EventStore::lease`]).
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub name: &'a str,
    pub holder: &'a str,
    /// Microseconds since the Unix epoch, by the caller's clock.
    pub now_micros: i64,
    pub until_micros: i64,
    /// The holder's position, kept with the lease (never moving back).
    pub position: u64,
}

/// What a store keeps beside the log so that a request acts once (docs/API.md): an
/// idempotency or event key with the first append's result, or a signed request in the
/// replay memory until its time. `ledger migrate` carries them with the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnceOnly {
    Key { key: String, fingerprint: [u8; 32], first: Appended },
    Used { key: String, until_micros: i64 },
}

impl OnceOnly {
    /// The order [`EventStore::read_once_only`] pages by: keys first, then the replay memory,
    /// each by its text.
    pub fn cursor(&self) -> (u8, &str) {
        match self {
            OnceOnly::Key { key, .. } => (0, key),
            OnceOnly::Used { key, .. } => (1, key),
        }
    }
}

/// What a store that keeps no leases answers to [`EventStore::lease`].
pub const NO_LEASES: &str = "this store keeps no leases";
/// Most events one append may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 1_000;
/// Most events one read returns.
pub const MAX_READ_BATCH: usize = 10_000;
/// Longest stream name.
pub const MAX_STREAM_LEN: usize = 200;
/// Longest idempotency key.
pub const MAX_KEY_LEN: usize = 200;

/// What the caller believes about the stream before appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have this version (versions start at 1).
    Exact(u64),
}

impl ExpectedVersion {
    fn admits(self, current: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(v) => current == v,
        }
    }
}

/// An idempotency key: the first append under a key is stored; a later append under the
/// same key and fingerprint returns that first result without appending; under the same
/// key with another fingerprint it is refused with `IDEMPOTENCY_CONFLICT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    /// A digest of what the request asked for (e.g. SHA-256 of its canonical body).
    pub fingerprint: [u8; 32],
}

#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub meta: CommandMeta,
    pub idempotency: Option<IdempotencyKey>,
    /// Keys that name single events of this append (a billing line's `record_id` names the
    /// line's event), so one append can carry many idempotent items. Each is kept like an
    /// idempotency key whose first result is that one event. An append naming a key that
    /// is already kept is refused whole (`IDEMPOTENCY_CONFLICT` with that key): the caller
    /// looks the key up and decides again, and no two appends ever store one key's item.
    pub event_keys: Vec<EventKey>,
}

/// A key naming the event at index `event` of its append (see [`AppendRequest::event_keys`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    pub key: String,
    /// A digest of the item the event stores, read back by [`EventStore::idempotency_key`].
    pub fingerprint: [u8; 32],
    pub event: usize,
}

/// The result of an append: where its events landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub first_position: u64,
    pub last_position: u64,
    /// The stream's version after the append.
    pub stream_version: u64,
    /// True when this is the stored result of an earlier append with the same key.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("stream {stream} is at version {actual}, the append expected {expected:?}")]
    ConcurrencyConflict { stream: String, expected: ExpectedVersion, actual: u64 },
    #[error("idempotency key {key} was used for a different request")]
    IdempotencyConflict { key: String },
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    #[error("event id {0} is already in the log")]
    DuplicateEventId(uuid::Uuid),
    #[error("the store is closed")]
    Closed,
    #[error("storage failure: {0}")]
    Backend(String),
    #[error("stored data is corrupt at position {position}: {reason}")]
    Corrupt { position: u64, reason: String },
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::ConcurrencyConflict { .. } => "CONCURRENCY_CONFLICT",
            StoreError::IdempotencyConflict { .. } => "IDEMPOTENCY_CONFLICT",
            StoreError::InvalidAppend(_) => "INVALID_FIELD",
            StoreError::DuplicateEventId(_) => "DUPLICATE_EVENT_ID",
            StoreError::Closed => "STORE_CLOSED",
            StoreError::Backend(_) => "STORE_UNAVAILABLE",
            StoreError::Corrupt { .. } => "STORE_CORRUPT",
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends all of `req.events` to one stream atomically, or nothing. Returns once the
    /// events are durable.
    async fn append(&self, req: AppendRequest) -> Result<Appended, StoreError>;

    /// Appends to several streams at once, all or nothing: one transaction, the events at
    /// consecutive positions in the order given, each request decided as
    /// [`EventStore::append`] decides it (its expected version, event keys and event ids),
    /// seeing the requests before it. When any is refused nothing is stored and its
    /// refusal is the answer. Only the first request may carry an idempotency key: it is
    /// the key of the whole append, and its kept result spans every request's events (from
    /// the first position to the last; the first stream's version). A replay answers that
    /// kept result once per request. Answers one result per request, in order.
    /// Memory, SQLite, PostgreSQL and KurrentDB append this way; a wrapper that does not
    /// forward it refuses.
    async fn append_all(&self, reqs: Vec<AppendRequest>) -> Result<Vec<Appended>, StoreError> {
        let _ = reqs;
        Err(StoreError::Backend("this store cannot append to several streams at once".into()))
    }

    /// Events of one stream with version ≥ `from_version`, in order, at most `limit`.
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events of the global log with position ≥ `from_position`, in order, at most `limit`.
    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// What an idempotency key stored: its fingerprint and the first append's result.
    /// Callers check this before deciding, so a retried request gets its first answer even
    /// when the state has moved on; `append` checks it again atomically.
    async fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError>;

    /// [`EventStore::idempotency_key`] of each key, in order: a backend answers them in one
    /// round trip where it can (a billing batch asks for a thousand).
    async fn idempotency_keys(&self, keys: &[String]) -> Result<Vec<Option<([u8; 32], Appended)>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.idempotency_key(k).await?);
        }
        Ok(out)
    }

    /// A snapshot of a stream's state kept by [`EventStore::save_snapshot`]: its version
    /// and text. Snapshots are a cache beside the log, never part of it (not hashed, not
    /// published, lost without harm); a backend that keeps none answers `None`.
    async fn load_snapshot(&self, stream: &str) -> Result<Option<(u64, String)>, StoreError> {
        let _ = stream;
        Ok(None)
    }

    /// Keeps `text` as the state of `stream` at `version`, replacing an older one.
    async fn save_snapshot(&self, stream: &str, version: u64, text: String) -> Result<(), StoreError> {
        let _ = (stream, version, text);
        Ok(())
    }

    /// The stream's current version (0 when it has no events).
    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError>;

    /// [`EventStore::stream_version`] of each stream, in order: a backend answers them in one
    /// round trip where it can (a billing batch checks a thousand cached states at once).
    async fn stream_versions(&self, streams: &[String]) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::with_capacity(streams.len());
        for s in streams {
            out.push(self.stream_version(s).await?);
        }
        Ok(out)
    }

    /// The last durable position, updated after every commit.
    fn head(&self) -> watch::Receiver<u64>;

    /// Marks `key` used until `until_micros` (microseconds since the Unix epoch) and answers
    /// whether this is its first use: false when it is already marked and `now_micros` is
    /// before its time. It is the signed-request replay memory (docs/API.md,
    /// Authentication), kept beside the log so that every process sharing the store shares
    /// it and a restart keeps it. Keys whose time has passed may be forgotten.
    /// SQLite, PostgreSQL, KurrentDB and memory keep it; a wrapper that does not forward it refuses.
    async fn first_use(&self, key: &str, now_micros: i64, until_micros: i64) -> Result<bool, StoreError> {
        let _ = (key, now_micros, until_micros);
        Err(StoreError::Backend("this store keeps no replay memory".into()))
    }

    /// A lease that one of the processes sharing the store holds at a time (the Kafka
    /// relay's): `holder` takes it when it is free, expired at `now_micros`, or already its
    /// own, until `until_micros`; holding it again renews it. `position` is kept with it and
    /// never moves back (the relay's checkpoint, where a successor starts). Answers the kept
    /// position when `holder` holds the lease, None when another does. SQLite, PostgreSQL
    /// and memory keep leases; other backends refuse.
    async fn lease(&self, lease: Lease<'_>) -> Result<Option<u64>, StoreError> {
        let Lease { name, holder, now_micros, until_micros, position } = lease;
        let _ = (name, holder, now_micros, until_micros, position);
        Err(StoreError::Backend(NO_LEASES.into()))
    }

    /// Writes `events` as they are (positions, event ids, times, metadata, hashes) after the
    /// log's last event, all or none: for copying a log between backends (`ledger
    /// migrate`). They must continue the log exactly: the next positions, each chained to
    /// the one before, each hashing to its own hash. Idempotency keys travel apart
    /// ([`EventStore::import_once_only`]), after the events they name. The
    /// target should not be served while it is imported into (a writer in the same process
    /// would not know the new tip until its next conflict). SQLite and PostgreSQL import;
    /// other backends refuse.
    async fn import(&self, events: Vec<RecordedEvent>) -> Result<(), StoreError> {
        let _ = events;
        Err(StoreError::Backend("this store cannot import a log (SQLite and PostgreSQL can)".into()))
    }

    /// Up to `limit` of what the store keeps for once-only requests ([`OnceOnly`]), in
    /// [`OnceOnly::cursor`] order after `after` (from the start when None); replay-memory
    /// entries whose time has passed at `now_micros` are left out. For `ledger migrate`.
    /// SQLite and PostgreSQL answer; other backends refuse.
    async fn read_once_only(
        &self,
        after: Option<(u8, String)>,
        limit: usize,
        now_micros: i64,
    ) -> Result<Vec<OnceOnly>, StoreError> {
        let _ = (after, limit, now_micros);
        Err(StoreError::Backend(NO_ONCE_ONLY_EXPORT.into()))
    }

    /// Keeps `items` as [`EventStore::read_once_only`] read them from another store, in one
    /// transaction; one already kept is left as it is (a resumed migration copies some
    /// again). The events a key names must be in the log already. SQLite and PostgreSQL
    /// import; other backends refuse.
    async fn import_once_only(&self, items: Vec<OnceOnly>) -> Result<(), StoreError> {
        let _ = items;
        Err(StoreError::Backend("this store cannot import idempotency keys (SQLite and PostgreSQL can)".into()))
    }
}

/// What a store that cannot list its idempotency keys answers to [`EventStore::read_once_only`].
pub const NO_ONCE_ONLY_EXPORT: &str = "this store cannot list its idempotency keys (SQLite and PostgreSQL can)";

/// Checks that `events` continue a log whose last event is at `tip` (see
/// [`EventStore::import`]).
pub(crate) fn check_import(tip: &plan::LogTip, events: &[RecordedEvent]) -> Result<(), StoreError> {
    let mut chain = ledger_core::envelope::ChainVerifier::after(tip.next_position - 1, tip.prev_hash);
    for e in events {
        chain.check(e).map_err(|b| {
            StoreError::InvalidAppend(format!(
                "the imported event at position {} does not continue the log: {}",
                b.position, b.reason
            ))
        })?;
    }
    Ok(())
}

/// Catches up from `from_position` and then follows live appends: every event once, in
/// order, without gaps.
pub fn subscribe_all(store: Arc<dyn EventStore>, from_position: u64) -> Subscription {
    Subscription::new(store, from_position)
}

/// Checks what every backend checks before appending several requests at once (see
/// [`EventStore::append_all`]): each request, and what they share.
pub(crate) fn validate_all(reqs: &[AppendRequest]) -> Result<(), StoreError> {
    let bad = |m: &str| Err(StoreError::InvalidAppend(m.to_string()));
    let Some((first, rest)) = reqs.split_first() else {
        return bad("an append carries at least one event");
    };
    reqs.iter().try_for_each(validate)?;
    if rest.iter().any(|r| r.idempotency.is_some()) {
        return bad("only the first request of a multi-stream append carries its idempotency key");
    }
    if reqs.iter().map(|r| r.events.len()).sum::<usize>() > MAX_EVENTS_PER_APPEND {
        return bad(&format!("an append carries at most {MAX_EVENTS_PER_APPEND} events"));
    }
    let mut keys: Vec<&str> = first.idempotency.iter().map(|k| k.key.as_str()).collect();
    keys.extend(reqs.iter().flat_map(|r| r.event_keys.iter().map(|k| k.key.as_str())));
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return bad("the keys of an append must be distinct");
    }
    let mut ids: Vec<_> = reqs.iter().flat_map(|r| r.events.iter().map(|e| e.event_id)).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return bad("event ids must be unique within an append");
    }
    Ok(())
}

/// Checks what every backend checks before appending.
pub(crate) fn validate(req: &AppendRequest) -> Result<(), StoreError> {
    let bad = |m: String| Err(StoreError::InvalidAppend(m));
    if req.events.is_empty() {
        return bad("an append carries at least one event".into());
    }
    if req.events.len() > MAX_EVENTS_PER_APPEND {
        return bad(format!("an append carries at most {MAX_EVENTS_PER_APPEND} events"));
    }
    if req.stream.is_empty() || req.stream.len() > MAX_STREAM_LEN || req.stream.chars().any(char::is_control) {
        return bad(format!("stream name must be 1 to {MAX_STREAM_LEN} printable characters"));
    }
    let keys = req.idempotency.iter().map(|k| &k.key).chain(req.event_keys.iter().map(|k| &k.key));
    if keys.clone().any(|k| k.is_empty() || k.len() > MAX_KEY_LEN) {
        return bad(format!("idempotency key must be 1 to {MAX_KEY_LEN} bytes"));
    }
    let mut names: Vec<&String> = keys.collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return bad("the keys of an append must be distinct".into());
    }
    if req.event_keys.iter().any(|k| k.event >= req.events.len()) {
        return bad("an event key must name an event of its append".into());
    }
    for e in &req.events {
        if e.event_type.is_empty() || e.event_type.len() > 100 {
            return bad("event type must be 1 to 100 bytes".into());
        }
        // Parsed without building it (this runs for every event appended).
        let object = e.data.trim_start().starts_with('{');
        if !object || serde_json::from_str::<&serde_json::value::RawValue>(&e.data).is_err() {
            return bad(format!("event {} data must be a JSON object", e.event_type));
        }
    }
    let mut ids: Vec<_> = req.events.iter().map(|e| e.event_id).collect();
    ids.sort();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return bad("event ids must be unique within an append".into());
    }
    Ok(())
}
