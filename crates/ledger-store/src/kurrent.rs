//! EventStoreDB / KurrentDB: the backend for a clustered event store (`esdb://…`,
//! `kurrentdb://…`), through the official `kurrentdb` client.
//!
//! ## Design: one ordering stream
//!
//! The trait promises one gap-free global order (positions 1, 2, 3, …) with a hash chain
//! over it, and atomic multi-event appends with a per-stream expected version. KurrentDB's
//! `$all` does not give the first: its positions are byte offsets in the transaction file
//! (with gaps, and shared with system events). And KurrentDB appends atomically only to
//! one stream, so writing a ledger stream and a global index as two KurrentDB streams
//! could leave one without the other after a crash.
//!
//! So every ledger event is written to **one KurrentDB stream, the log** (default
//! [`DEFAULT_LOG_STREAM`]): the event at log revision `r` has global position `r + 1`.
//! Revisions of one stream are gap-free and committed in order, so positions are too.
//! The KurrentDB event carries the ledger's event id, type and payload (`data`, canonical
//! JSON, so KurrentDB's UI and projections can read it) and the rest of the envelope in its
//! metadata: ledger stream, version, position, actor, correlation, times, `prev_hash`,
//! `hash`, and the keys the event answers for: on the first event of a keyed append the
//! idempotency key, its fingerprint and the append's result, on an event named by an event
//! key that key (one key is an object, several an array).
//!
//! Ledger streams are therefore not KurrentDB streams: the store keeps an **index** in
//! memory (each ledger stream's positions, the idempotency keys, the event ids, the chain
//! tip), built by reading the log when it opens (verifying positions, versions and every
//! hash) and kept current by its own appends and by a subscription to the log.
//!
//! **Appends.** One writer task per store takes every append that is waiting (up to
//! [`MAX_GROUP`] requests and about [`MAX_GROUP_BYTES`]), decides each against the index
//! (idempotency key, expected version, duplicate event ids — the same rules as SQLite),
//! seals the chain, and appends the whole group to the log in one KurrentDB append with
//! `StreamState::StreamRevision(last revision)` (`NoStream` for an empty log). If another
//! process appended in between, KurrentDB refuses with a wrong expected version; the
//! writer reads what it missed, and decides the group again. Deciding and writing are
//! thus atomic with respect to the whole log, as with SQLite's single writer, also when
//! several ledger processes share one KurrentDB. Callers are answered after KurrentDB
//! acknowledged the append (written to a quorum in a cluster).
//!
//! **Unknown outcomes.** When an append fails without a verdict (deadline, connection
//! lost), the writer reads the log: if the group's first event is there (KurrentDB keeps
//! the ledger's event ids), it landed, and the callers get their results; if not, they get
//! `STORE_UNAVAILABLE`. A request still in flight inside the server might land after that
//! answer: retrying with the same idempotency key is always safe.
//!
//! ## Limits
//! - Write throughput is that of one KurrentDB stream: every append is serialized through
//!   the log (group commit amortizes the round trip).
//! - The index is in memory: per event about one `u64` and one UUID (~50 bytes with the
//!   hash-map overhead), plus the idempotency keys; opening reads the whole log. Past tens
//!   of millions of events, an index kept in KurrentDB (a projection emitting per-stream
//!   links) would be the next step.
//! - Reading one ledger stream reads the log revisions it occupies (one KurrentDB read per
//!   contiguous run).
//! - A group must fit KurrentDB's largest append (1 MiB by default); a single request
//!   larger than that is refused by the server.
//! - Another process's appends are seen (by `stream_version`, `read_stream`, `head`) once
//!   this process's subscription has delivered them, usually within milliseconds; the
//!   writer never decides against a stale index (the log's expected revision sees to it).
//! - Consumers must read the log stream, not `$all`, to get the ledger's order.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, ReadStreamOptions, StreamPosition, StreamState,
    SubscribeToStreamOptions,
};
use ledger_core::envelope::{format_time, parse_time};
use ledger_core::{Actor, ChainHash, RecordedEvent, Role};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::plan::LogTip;
use crate::plan::{plan_group, raise, GroupPlan, KeyRecord, StoredLog};
use crate::{validate, validate_all, AppendRequest, Appended, EventStore, StoreError, MAX_READ_BATCH, MAX_STREAM_LEN};

/// The KurrentDB stream that holds the ledger's global log.
pub const DEFAULT_LOG_STREAM: &str = "ledger-log";
/// Most append requests one log append carries.
pub const MAX_GROUP: usize = 512;
/// Most bytes (estimated) one log append carries: below KurrentDB's default largest
/// append of 1 MiB, with room for gRPC framing.
pub const MAX_GROUP_BYTES: usize = 768 * 1024;
/// Estimated size of one event's envelope metadata, added to its payload.
const ENVELOPE_BYTES: usize = 768;
/// Log entries read per request while catching up.
const READ_PAGE: usize = 4_096;
/// How many times one group is decided again because other processes kept appending.
const MAX_REDECISIONS: usize = 100;
/// Appends that may wait for the writer before callers are held back.
const QUEUE: usize = 8_192;
/// How long one KurrentDB call may take before its outcome is treated as unknown.
const DEADLINE: Duration = Duration::from_secs(10);
/// Pause before resubscribing after the subscription to the log dropped.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// Log reads in flight at once for one `read_stream`.
const READ_CONCURRENCY: usize = 8;
/// The version of the envelope metadata written on each log entry.
const ENVELOPE_FORMAT: u64 = 1;

/// One entry of the log as KurrentDB holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogEntry {
    /// The ledger's event id, used as KurrentDB's event id.
    pub id: Uuid,
    pub event_type: String,
    /// The ledger payload: canonical JSON.
    pub data: String,
    /// The envelope: JSON.
    pub metadata: String,
}

/// Why an append to the log did not happen (or may not have).
#[derive(Debug)]
pub(crate) enum LogAppendError {
    /// The log is no longer at the expected revision: nothing was written.
    Moved,
    /// Refused before or by the server: nothing was written.
    Refused(StoreError),
    /// No verdict (deadline, connection lost): it may or may not have been written.
    Unknown(StoreError),
}

/// The one KurrentDB stream the store needs, behind a seam so the store's logic can also
/// be checked against a simulated log where no server is available.
#[async_trait]
pub(crate) trait OrderingLog: Send + Sync + 'static {
    /// Appends `entries` atomically if the log holds exactly `expected_len` entries.
    async fn append(&self, expected_len: u64, entries: Vec<LogEntry>) -> Result<(), LogAppendError>;
    /// At most `max` entries from revision `from` on, with their revisions.
    async fn read(&self, from: u64, max: usize) -> Result<Vec<(u64, LogEntry)>, StoreError>;
    /// The revisions of entries appended at or after revision `len`, as they appear.
    async fn follow(&self, len: u64) -> BoxStream<'static, Result<u64, StoreError>>;
    /// Marks `key` used; true when it was not marked before ([`EventStore::first_use`]).
    async fn first_use(&self, key: &str) -> Result<bool, StoreError>;
}

/// The log on a KurrentDB server.
struct KurrentLog {
    client: Client,
    stream: String,
}

fn kurrent(e: kurrentdb::Error) -> StoreError {
    StoreError::Backend(format!("KurrentDB: {e}"))
}

#[async_trait]
impl OrderingLog for KurrentLog {
    async fn append(&self, expected_len: u64, entries: Vec<LogEntry>) -> Result<(), LogAppendError> {
        let state = match expected_len {
            0 => StreamState::NoStream,
            n => StreamState::StreamRevision(n - 1),
        };
        let options = AppendToStreamOptions::default().stream_state(state).deadline(DEADLINE);
        let events =
            entries.into_iter().map(to_event_data).collect::<Result<Vec<_>, _>>().map_err(LogAppendError::Refused)?;
        match self.client.append_to_stream(self.stream.as_str(), &options, events).await {
            Ok(_) => Ok(()),
            Err(kurrentdb::Error::WrongExpectedVersion { .. }) => Err(LogAppendError::Moved),
            Err(
                e @ (kurrentdb::Error::AccessDenied
                | kurrentdb::Error::ResourceDeleted
                | kurrentdb::Error::UnsupportedFeature
                | kurrentdb::Error::InitializationError(_)),
            ) => Err(LogAppendError::Refused(kurrent(e))),
            Err(e) => Err(LogAppendError::Unknown(kurrent(e))),
        }
    }

    async fn read(&self, from: u64, max: usize) -> Result<Vec<(u64, LogEntry)>, StoreError> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from))
            .max_count(max)
            .deadline(DEADLINE);
        let mut stream = match self.client.read_stream(self.stream.as_str(), &options).await {
            Ok(s) => s,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(vec![]),
            Err(e) => return Err(kurrent(e)),
        };
        let mut out = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(resolved)) => out.push(from_recorded(resolved.get_original_event())?),
                // A log nobody has appended to yet is an empty log.
                Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => return Ok(out),
                Err(e) => return Err(kurrent(e)),
            }
        }
    }

    async fn first_use(&self, key: &str) -> Result<bool, StoreError> {
        // One tiny stream per key beside the log, created only if it does not exist yet:
        // KurrentDB's expected `NoStream` decides between racing processes. (Its keys never
        // expire; a signed request's key is only ever offered within its date window.)
        let name = format!("{}-used-once-{key}", self.stream);
        let event =
            EventData::json("UsedOnce", &serde_json::json!({})).map_err(|e| StoreError::Backend(e.to_string()))?;
        let options = AppendToStreamOptions::default().stream_state(StreamState::NoStream).deadline(DEADLINE);
        match self.client.append_to_stream(name.as_str(), &options, event).await {
            Ok(_) => Ok(true),
            Err(kurrentdb::Error::WrongExpectedVersion { .. }) => Ok(false),
            Err(e) => Err(kurrent(e)),
        }
    }

    async fn follow(&self, len: u64) -> BoxStream<'static, Result<u64, StoreError>> {
        // Subscribing from a revision delivers the entries after it.
        let start = match len {
            0 => StreamPosition::Start,
            n => StreamPosition::Position(n - 1),
        };
        let options = SubscribeToStreamOptions::default().start_from(start);
        let subscription = self.client.subscribe_to_stream(self.stream.as_str(), &options).await;
        futures::stream::unfold(subscription, |mut s| async move {
            let item = s.next().await.map(|e| e.get_original_event().revision).map_err(kurrent);
            Some((item, s))
        })
        .boxed()
    }
}

fn to_event_data(e: LogEntry) -> Result<EventData, StoreError> {
    let bad = |what: &str, err: serde_json::Error| StoreError::InvalidAppend(format!("{what} is not JSON: {err}"));
    let data = RawValue::from_string(e.data).map_err(|err| bad("event data", err))?;
    let metadata = RawValue::from_string(e.metadata).map_err(|err| bad("envelope", err))?;
    EventData::json(&e.event_type, &data)
        .and_then(|d| d.id(e.id).metadata_as_json(&metadata))
        .map_err(|err| bad("event", err))
}

fn from_recorded(e: &kurrentdb::RecordedEvent) -> Result<(u64, LogEntry), StoreError> {
    let text = |b: &[u8], what: &str| {
        String::from_utf8(b.to_vec())
            .map_err(|_| StoreError::Corrupt { position: e.revision + 1, reason: format!("{what} is not UTF-8") })
    };
    let entry = LogEntry {
        id: e.id,
        event_type: e.event_type.clone(),
        data: text(&e.data[..], "data")?,
        metadata: text(&e.custom_metadata[..], "metadata")?,
    };
    Ok((e.revision, entry))
}

/// The log entry of a sealed event with the keys whose first result starts at it.
fn encode(e: &RecordedEvent, keys: &[&KeyRecord]) -> LogEntry {
    let mut envelope = json!({
        "ledger": ENVELOPE_FORMAT,
        "position": e.position,
        "stream": e.stream,
        "version": e.version,
        "schema_version": e.schema_version,
        "occurred_at": format_time(e.occurred_at),
        "recorded_at": format_time(e.recorded_at),
        "actor": { "principal": e.actor.principal, "role": e.actor.role.as_str() },
        "correlation_id": e.correlation_id.hyphenated().to_string(),
        "causation_id": e.causation_id.map(|c| c.hyphenated().to_string()),
        "request_id": e.request_id,
        "prev_hash": e.prev_hash.to_string(),
        "hash": e.hash.to_string(),
    });
    let record = |(k, fingerprint, first): &KeyRecord| {
        json!({
            "key": k,
            "fingerprint": ChainHash(*fingerprint).to_string(),
            "first_position": first.first_position,
            "last_position": first.last_position,
            "stream_version": first.stream_version,
        })
    };
    match keys {
        [] => {}
        [one] => envelope["idempotency"] = record(one),
        many => envelope["idempotency"] = Value::Array(many.iter().map(|k| record(k)).collect()),
    }
    LogEntry { id: e.event_id, event_type: e.event_type.clone(), data: e.data.clone(), metadata: envelope.to_string() }
}

/// The ledger event at log revision `revision`, and the key records it carries.
fn decode(revision: u64, entry: &LogEntry) -> Result<(RecordedEvent, Vec<KeyRecord>), StoreError> {
    let position = revision + 1;
    let corrupt = |reason: &str| StoreError::Corrupt { position, reason: reason.to_string() };
    let m: Value = serde_json::from_str(&entry.metadata).map_err(|_| corrupt("the envelope is not JSON"))?;
    let text = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).ok_or_else(|| corrupt(f)).map(str::to_string);
    let number = |v: &Value, f: &str| v.get(f).and_then(Value::as_u64).ok_or_else(|| corrupt(f));
    let id = |v: &Value, f: &str| text(v, f).and_then(|s| Uuid::parse_str(&s).map_err(|_| corrupt(f)));
    let time = |f: &str| text(&m, f).and_then(|s| parse_time(&s).ok_or_else(|| corrupt(f)));
    let hash = |v: &Value, f: &str| {
        v.get(f).cloned().and_then(|h| serde_json::from_value::<ChainHash>(h).ok()).ok_or_else(|| corrupt(f))
    };
    let optional = |f: &str| match m.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(corrupt(f)),
    };
    if number(&m, "ledger")? != ENVELOPE_FORMAT {
        return Err(corrupt("unknown envelope format"));
    }
    if number(&m, "position")? != position {
        return Err(corrupt("the envelope's position is not the log revision + 1"));
    }
    let actor = m.get("actor").ok_or_else(|| corrupt("actor"))?;
    let event = RecordedEvent {
        position,
        stream: text(&m, "stream")?,
        version: number(&m, "version")?,
        event_id: entry.id,
        event_type: entry.event_type.clone(),
        schema_version: u32::try_from(number(&m, "schema_version")?).map_err(|_| corrupt("schema_version"))?,
        occurred_at: time("occurred_at")?,
        recorded_at: time("recorded_at")?,
        actor: Actor {
            principal: text(actor, "principal")?,
            role: Role::parse(&text(actor, "role")?).ok_or_else(|| corrupt("unknown actor role"))?,
        },
        correlation_id: id(&m, "correlation_id")?,
        causation_id: optional("causation_id")?
            .map(|s| Uuid::parse_str(&s).map_err(|_| corrupt("causation_id")))
            .transpose()?,
        request_id: optional("request_id")?,
        hash: hash(&m, "hash")?,
        prev_hash: hash(&m, "prev_hash")?,
        data: entry.data.clone(),
    };
    let record = |k: &Value| -> Result<KeyRecord, StoreError> {
        Ok((
            text(k, "key")?,
            hash(k, "fingerprint")?.0,
            Appended {
                first_position: number(k, "first_position")?,
                last_position: number(k, "last_position")?,
                stream_version: number(k, "stream_version")?,
                replayed: false,
            },
        ))
    };
    let keys = match m.get("idempotency") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(many)) => many.iter().map(record).collect::<Result<_, _>>()?,
        Some(one) => vec![record(one)?],
    };
    Ok((event, keys))
}

/// What the store knows of the log, derived from it.
struct Index {
    /// Entries applied: the last position.
    len: u64,
    tip_hash: ChainHash,
    /// Each ledger stream's positions; version `v` is at index `v - 1`.
    streams: HashMap<String, Vec<u64>>,
    keys: HashMap<String, ([u8; 32], Appended)>,
    event_ids: HashSet<Uuid>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            len: 0,
            tip_hash: ChainHash::ZERO,
            streams: HashMap::new(),
            keys: HashMap::new(),
            event_ids: HashSet::new(),
        }
    }
}

impl Index {
    /// Takes the next event of the log, refusing one that does not continue it.
    fn push(&mut self, e: &RecordedEvent, keys: &[&KeyRecord]) -> Result<(), StoreError> {
        let corrupt = |reason: &str| Err(StoreError::Corrupt { position: e.position, reason: reason.to_string() });
        let version = self.streams.get(&e.stream).map_or(0, |p| p.len() as u64);
        if e.position != self.len + 1 {
            return corrupt("position is not the next one in the log");
        }
        if e.prev_hash != self.tip_hash {
            return corrupt("prev_hash is not the previous event's hash");
        }
        if e.compute_hash() != e.hash {
            return corrupt("hash does not match the event's content");
        }
        if e.version != version + 1 {
            return corrupt("version is not the next one of its stream");
        }
        if self.event_ids.contains(&e.event_id) {
            return corrupt("the event id is already in the log");
        }
        for (k, _, first) in keys {
            if first.first_position != e.position || self.keys.contains_key(k) {
                return corrupt("a misplaced or repeated idempotency key");
            }
        }
        for (k, fingerprint, first) in keys {
            self.keys.insert(k.clone(), (*fingerprint, *first));
        }
        self.event_ids.insert(e.event_id);
        match self.streams.get_mut(&e.stream) {
            Some(positions) => positions.push(e.position),
            None => {
                self.streams.insert(e.stream.clone(), vec![e.position]);
            }
        }
        self.len = e.position;
        self.tip_hash = e.hash;
        Ok(())
    }

    fn tip(&self) -> LogTip {
        LogTip { next_position: self.len + 1, prev_hash: self.tip_hash }
    }
}

impl StoredLog for Index {
    fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        Ok(self.streams.get(stream).map_or(0, |p| p.len() as u64))
    }
    fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        Ok(self.keys.get(key).copied())
    }
    fn has_event(&self, id: &Uuid) -> Result<bool, StoreError> {
        Ok(self.event_ids.contains(id))
    }
}

struct Shared {
    log: Arc<dyn OrderingLog>,
    /// Held by whoever reads the log into the index or appends to it (the writer, the
    /// follower), so the index only ever grows by whole, ordered appends.
    turn: tokio::sync::Mutex<()>,
    /// Held briefly, never across a call to KurrentDB, so reads do not wait for appends.
    index: Mutex<Index>,
    head: watch::Sender<u64>,
}

impl Shared {
    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().expect("index lock")
    }

    /// Reads what the index has not seen yet. The caller holds `turn`.
    async fn catch_up(&self) -> Result<(), StoreError> {
        loop {
            let from = self.index().len;
            let batch = self.log.read(from, READ_PAGE).await?;
            let full = batch.len() == READ_PAGE;
            let decoded = batch
                .iter()
                .enumerate()
                .map(|(i, (revision, entry))| {
                    if *revision != from + i as u64 {
                        return Err(StoreError::Corrupt {
                            position: from + i as u64 + 1,
                            reason: "the log has a gap".into(),
                        });
                    }
                    decode(*revision, entry)
                })
                .collect::<Result<Vec<_>, _>>()?;
            {
                let mut index = self.index();
                for (event, keys) in &decoded {
                    index.push(event, &keys.iter().collect::<Vec<_>>())?;
                }
                raise(&self.head, index.len);
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Decides and appends one group; one answer per request. The caller holds `turn`.
    async fn append_group(&self, group: &[&[AppendRequest]]) -> Vec<Result<Vec<Appended>, StoreError>> {
        for _ in 0..MAX_REDECISIONS {
            let (plan, expected_len) = {
                let index = self.index();
                (plan_group(group.iter().copied(), &*index, index.tip(), Utc::now()), index.len)
            };
            let Some(first_id) = plan.events.first().map(|e| e.event_id) else {
                return plan.answers; // nothing to write: replays and refusals only
            };
            match self.log.append(expected_len, entries(&plan)).await {
                Ok(()) => {
                    let applied = {
                        let mut index = self.index();
                        let applied = apply(&mut index, &plan);
                        raise(&self.head, index.len);
                        applied
                    };
                    return match applied {
                        Ok(()) => plan.answers,
                        Err(e) => failed(plan.answers, e),
                    };
                }
                Err(LogAppendError::Moved) => {
                    // Another process appended: learn what it wrote and decide again.
                    if let Err(e) = self.catch_up().await {
                        return failed(plan.answers, e);
                    }
                }
                Err(LogAppendError::Refused(e)) => return failed(plan.answers, e),
                Err(LogAppendError::Unknown(e)) => {
                    tracing::warn!(error = %e, "log append without a verdict; reading the log to find out");
                    if self.catch_up().await.is_ok() && self.index().event_ids.contains(&first_id) {
                        return plan.answers; // it landed, at the positions planned
                    }
                    return failed(plan.answers, e);
                }
            }
        }
        let busy = StoreError::Backend(format!("the log moved {MAX_REDECISIONS} times while appending; try again"));
        vec![Err(busy); group.len()]
    }
}

/// The keys of a group by the position of the event each rides on (its first result's).
fn keys_by_position(plan: &GroupPlan) -> HashMap<u64, Vec<&KeyRecord>> {
    let mut keys: HashMap<u64, Vec<&KeyRecord>> = HashMap::new();
    for k in &plan.keys {
        keys.entry(k.2.first_position).or_default().push(k);
    }
    keys
}

/// The log entries of a group's events, each with the keys it carries.
fn entries(plan: &GroupPlan) -> Vec<LogEntry> {
    let keys = keys_by_position(plan);
    plan.events.iter().map(|e| encode(e, keys.get(&e.position).map_or(&[][..], Vec::as_slice))).collect()
}

fn apply(index: &mut Index, plan: &GroupPlan) -> Result<(), StoreError> {
    let keys = keys_by_position(plan);
    plan.events.iter().try_for_each(|e| index.push(e, keys.get(&e.position).map_or(&[][..], Vec::as_slice)))
}

/// The answers of a group that was not written: appends that would have been written get
/// `error`; replays and refusals keep their answer.
fn failed(
    answers: Vec<Result<Vec<Appended>, StoreError>>,
    error: StoreError,
) -> Vec<Result<Vec<Appended>, StoreError>> {
    let written = |a: &Result<Vec<Appended>, StoreError>| matches!(a, Ok(r) if r.iter().any(|r| !r.replayed));
    answers.into_iter().map(|a| if written(&a) { Err(error.clone()) } else { a }).collect()
}

/// A unit of requests appended all or nothing (one request for `append`), and its answer.
type Job = (Vec<AppendRequest>, oneshot::Sender<Result<Vec<Appended>, StoreError>>);

fn estimated_bytes(unit: &[AppendRequest]) -> usize {
    unit.iter().flat_map(|r| &r.events).map(|e| e.data.len() + e.event_type.len() + ENVELOPE_BYTES).sum()
}

/// Takes every waiting append into one group, within the group limits.
async fn write(shared: Arc<Shared>, mut jobs: mpsc::Receiver<Job>) {
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match jobs.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut bytes = estimated_bytes(&first.0);
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            let Ok(job) = jobs.try_recv() else { break };
            let more = estimated_bytes(&job.0);
            if bytes + more > MAX_GROUP_BYTES {
                carried = Some(job);
                break;
            }
            bytes += more;
            group.push(job);
        }
        let answers = {
            let _turn = shared.turn.lock().await;
            let requests: Vec<&[AppendRequest]> = group.iter().map(|(unit, _)| unit.as_slice()).collect();
            shared.append_group(&requests).await
        };
        for ((_, reply), answer) in group.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
    }
}

/// Follows the log so appends by other processes reach the index and the head.
async fn follow(shared: Arc<Shared>) {
    loop {
        let len = shared.index().len;
        let mut revisions = shared.log.follow(len).await;
        while let Some(item) = revisions.next().await {
            match item {
                // Already applied (most often: this process's own append).
                Ok(revision) if revision < *shared.head.borrow() => {}
                Ok(_) => {
                    let _turn = shared.turn.lock().await;
                    if let Err(e) = shared.catch_up().await {
                        tracing::warn!(error = %e, "cannot read the log; resubscribing");
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the subscription to the log dropped; resubscribing");
                    break;
                }
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

pub struct KurrentStore {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    head: watch::Receiver<u64>,
    follower: JoinHandle<()>,
}

impl KurrentStore {
    /// Connects to a KurrentDB connection string (`esdb://host:2113?tls=false`,
    /// `kurrentdb+discover://…`) with the log in [`DEFAULT_LOG_STREAM`].
    pub async fn connect(url: &str) -> Result<KurrentStore, StoreError> {
        KurrentStore::connect_with_log(url, DEFAULT_LOG_STREAM).await
    }

    /// Connects with the log in `log_stream` (one KurrentDB database can hold several
    /// ledgers, one log stream each). Reads the whole log to build the index.
    pub async fn connect_with_log(url: &str, log_stream: &str) -> Result<KurrentStore, StoreError> {
        if log_stream.is_empty() || log_stream.len() > MAX_STREAM_LEN || log_stream.starts_with('$') {
            return Err(StoreError::Backend(format!(
                "the log stream name must be 1 to {MAX_STREAM_LEN} bytes and not a system stream ($…)"
            )));
        }
        let settings: ClientSettings =
            url.parse().map_err(|e| StoreError::Backend(format!("bad KurrentDB connection string: {e}")))?;
        let client = Client::new(settings).map_err(|e| StoreError::Backend(format!("KurrentDB: {e}")))?;
        KurrentStore::over(Arc::new(KurrentLog { client, stream: log_stream.to_string() })).await
    }

    pub(crate) async fn over(log: Arc<dyn OrderingLog>) -> Result<KurrentStore, StoreError> {
        let (head_tx, head) = watch::channel(0);
        let shared = Arc::new(Shared {
            log,
            turn: tokio::sync::Mutex::new(()),
            index: Mutex::new(Index::default()),
            head: head_tx,
        });
        {
            let _turn = shared.turn.lock().await;
            shared.catch_up().await?;
        }
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(shared.clone(), rx));
        let follower = tokio::spawn(follow(shared.clone()));
        Ok(KurrentStore { shared, jobs, head, follower })
    }
}

impl KurrentStore {
    /// Hands a unit to the writer and waits for its answer.
    async fn send(&self, unit: Vec<AppendRequest>) -> Result<Vec<Appended>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send((unit, tx)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for KurrentStore {
    fn drop(&mut self) {
        // The writer stops by itself once the queue it drains is closed and empty.
        self.follower.abort();
    }
}

#[async_trait]
impl EventStore for KurrentStore {
    async fn append(&self, req: AppendRequest) -> Result<Appended, StoreError> {
        validate(&req)?;
        Ok(self.send(vec![req]).await?.remove(0))
    }

    /// One append to the ordering log: atomic there as any append is.
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
        let positions: Vec<u64> = match self.shared.index().streams.get(stream) {
            None => return Ok(vec![]),
            Some(p) => p
                .iter()
                .skip(from_version.saturating_sub(1) as usize)
                .take(limit.min(MAX_READ_BATCH))
                .copied()
                .collect(),
        };
        // Contiguous positions are read with one request.
        let mut runs: Vec<(u64, usize)> = Vec::new();
        for p in positions {
            match runs.last_mut() {
                Some((start, len)) if *start + *len as u64 == p => *len += 1,
                _ => runs.push((p, 1)),
            }
        }
        let log = &self.shared.log;
        let batches: Vec<Vec<(u64, LogEntry)>> = futures::stream::iter(runs)
            .map(|(start, len)| log.read(start - 1, len))
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for (revision, entry) in batches.iter().flatten() {
            let (event, _) = decode(*revision, entry)?;
            if event.stream != stream {
                return Err(StoreError::Corrupt {
                    position: event.position,
                    reason: "the index points elsewhere".into(),
                });
            }
            out.push(event);
        }
        Ok(out)
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = limit.min(MAX_READ_BATCH);
        if limit == 0 {
            return Ok(vec![]);
        }
        let entries = self.shared.log.read(from_position.max(1) - 1, limit).await?;
        entries.iter().map(|(revision, entry)| decode(*revision, entry).map(|(e, _)| e)).collect()
    }

    async fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        Ok(self.shared.index().keys.get(key).copied())
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        StoredLog::stream_version(&*self.shared.index(), stream)
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head.clone()
    }

    async fn first_use(&self, key: &str, _now_micros: i64, _until_micros: i64) -> Result<bool, StoreError> {
        self.shared.log.first_use(key).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::conformance::{self, event, request, Store};
    use crate::{ExpectedVersion, IdempotencyKey};

    /// A log with KurrentDB's stream semantics (atomic append at an expected revision,
    /// ordered reads, a subscription that resumes after a revision), in memory, with
    /// faults to inject.
    pub(super) struct SimLog {
        entries: Mutex<Vec<LogEntry>>,
        grown: watch::Sender<u64>,
        /// The next appends to write and then answer without a verdict.
        lose_verdicts: AtomicUsize,
        /// The next appends to drop without writing and without a verdict.
        drop_appends: AtomicUsize,
        used_once: Mutex<std::collections::HashSet<String>>,
    }

    impl SimLog {
        pub(super) fn new() -> Arc<SimLog> {
            Arc::new(SimLog {
                entries: Mutex::new(vec![]),
                grown: watch::channel(0).0,
                lose_verdicts: AtomicUsize::new(0),
                drop_appends: AtomicUsize::new(0),
                used_once: Mutex::new(Default::default()),
            })
        }

        fn take(counter: &AtomicUsize) -> bool {
            counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
        }
    }

    #[async_trait]
    impl OrderingLog for SimLog {
        async fn append(&self, expected_len: u64, new: Vec<LogEntry>) -> Result<(), LogAppendError> {
            tokio::task::yield_now().await; // a round trip: other tasks run meanwhile
            if SimLog::take(&self.drop_appends) {
                return Err(LogAppendError::Unknown(StoreError::Backend("deadline exceeded".into())));
            }
            let len = {
                let mut entries = self.entries.lock().unwrap();
                if entries.len() as u64 != expected_len {
                    return Err(LogAppendError::Moved);
                }
                entries.extend(new);
                entries.len() as u64
            };
            self.grown.send_replace(len);
            if SimLog::take(&self.lose_verdicts) {
                return Err(LogAppendError::Unknown(StoreError::Backend("connection lost".into())));
            }
            Ok(())
        }

        async fn first_use(&self, key: &str) -> Result<bool, StoreError> {
            Ok(self.used_once.lock().unwrap().insert(key.to_string()))
        }

        async fn read(&self, from: u64, max: usize) -> Result<Vec<(u64, LogEntry)>, StoreError> {
            tokio::task::yield_now().await;
            let entries = self.entries.lock().unwrap();
            Ok(entries.iter().cloned().enumerate().skip(from as usize).take(max).map(|(i, e)| (i as u64, e)).collect())
        }

        async fn follow(&self, len: u64) -> BoxStream<'static, Result<u64, StoreError>> {
            futures::stream::unfold((self.grown.subscribe(), len), |(mut grown, next)| async move {
                loop {
                    if *grown.borrow_and_update() > next {
                        return Some((Ok(next), (grown, next + 1)));
                    }
                    grown.changed().await.ok()?;
                }
            })
            .boxed()
        }
    }

    async fn make() -> Option<(Store, ())> {
        Some((Arc::new(KurrentStore::over(SimLog::new()).await.unwrap()) as Store, ()))
    }

    /// The whole conformance suite, against the store's logic over a simulated log (the
    /// same suite runs against a real server in tests/kurrentdb.rs when one is given).
    mod conformance_on_a_simulated_log {
        use super::make;
        crate::conformance_suite!(make);
    }

    fn sealed(n: u64) -> RecordedEvent {
        let mut meta = ledger_core::envelope::CommandMeta::new(Actor { principal: "ops".into(), role: Role::Admin });
        meta.causation_id = Some(Uuid::now_v7());
        meta.request_id = Some("req-1".into());
        RecordedEvent::seal(event(n), &meta, "acct-1", 2, 7, Utc::now(), ChainHash([9; 32]))
    }

    #[test]
    fn a_log_entry_carries_the_whole_envelope_and_the_key() {
        let e = sealed(1);
        let first = Appended { first_position: 7, last_position: 8, stream_version: 3, replayed: false };
        let key = ("req-1".to_string(), [5; 32], first);
        let entry = encode(&e, &[&key]);
        assert_eq!((entry.id, entry.data.as_str()), (e.event_id, e.data.as_str()));
        assert_eq!(decode(6, &entry).unwrap(), (e.clone(), vec![key.clone()]));
        let line = Appended { first_position: 7, last_position: 7, stream_version: 2, replayed: false };
        let event_key = ("consumption:R1".to_string(), [6; 32], line);
        let both = encode(&e, &[&key, &event_key]);
        assert_eq!(decode(6, &both).unwrap(), (e.clone(), vec![key, event_key]));
        let plain = encode(&e, &[]);
        assert_eq!(decode(6, &plain).unwrap(), (e, vec![]));
        let err = decode(5, &plain).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { position: 6, .. }), "{err:?}");
    }

    #[tokio::test]
    async fn two_processes_on_one_log_keep_one_order_and_one_chain() {
        let log = SimLog::new();
        let a: Store = Arc::new(KurrentStore::over(log.clone()).await.unwrap());
        let b: Store = Arc::new(KurrentStore::over(log.clone()).await.unwrap());
        let tasks: Vec<_> = (0..32u64)
            .map(|t| {
                let store = if t % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    for i in 0..10 {
                        let stream = format!("acct-{}", t % 4);
                        store.append(request(&stream, ExpectedVersion::Any, vec![event(t * 100 + i)])).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let all = a.read_all(1, 1_000).await.unwrap();
        assert_eq!(all.len(), 320);
        let mut verifier = ledger_core::envelope::ChainVerifier::default();
        all.iter().for_each(|e| verifier.check(e).unwrap());
        // Each process sees the other's appends: versions, head and stream reads agree.
        let mut head = b.head();
        tokio::time::timeout(Duration::from_secs(5), head.wait_for(|h| *h == 320)).await.unwrap().unwrap();
        for s in 0..4 {
            let stream = format!("acct-{s}");
            assert_eq!(a.stream_version(&stream).await.unwrap(), 80);
            assert_eq!(b.stream_version(&stream).await.unwrap(), 80);
            let versions: Vec<u64> = b.read_stream(&stream, 1, 100).await.unwrap().iter().map(|e| e.version).collect();
            assert_eq!(versions, (1..=80).collect::<Vec<_>>());
        }
        // One version, two processes: exactly one wins.
        let (ra, rb) = tokio::join!(
            a.append(request("acct-0", ExpectedVersion::Exact(80), vec![event(1)])),
            b.append(request("acct-0", ExpectedVersion::Exact(80), vec![event(2)])),
        );
        assert_eq!(ra.is_ok() as u8 + rb.is_ok() as u8, 1, "{ra:?} {rb:?}");
        let loser = if ra.is_ok() { rb } else { ra };
        assert_eq!(loser.unwrap_err().code(), "CONCURRENCY_CONFLICT");
    }

    #[tokio::test]
    async fn an_append_without_a_verdict_is_answered_from_the_log() {
        let log = SimLog::new();
        let store: Store = Arc::new(KurrentStore::over(log.clone()).await.unwrap());
        // Written, but the answer was lost: the store finds it in the log.
        log.lose_verdicts.store(1, Ordering::SeqCst);
        let a = store.append(request("acct", ExpectedVersion::NoStream, vec![event(1), event(2)])).await.unwrap();
        assert_eq!((a.first_position, a.last_position, a.stream_version), (1, 2, 2));
        // Never written: the caller is told, and nothing is stored.
        log.drop_appends.store(1, Ordering::SeqCst);
        let err = store.append(request("acct", ExpectedVersion::Exact(2), vec![event(3)])).await.unwrap_err();
        assert_eq!(err.code(), "STORE_UNAVAILABLE");
        assert_eq!(store.read_all(1, 10).await.unwrap().len(), 2);
        let b = store.append(request("acct", ExpectedVersion::Exact(2), vec![event(3)])).await.unwrap();
        assert_eq!((b.first_position, b.stream_version), (3, 3));
    }

    #[tokio::test]
    async fn reopening_rebuilds_versions_keys_and_the_chain_tip_from_the_log() {
        let log = SimLog::new();
        {
            let store: Store = Arc::new(KurrentStore::over(log.clone()).await.unwrap());
            conformance::append_n(&store, "acct", 5).await;
            let mut r = request("keyed", ExpectedVersion::Any, vec![event(9), event(10)]);
            r.idempotency = Some(IdempotencyKey { key: "k".into(), fingerprint: [1; 32] });
            store.append(r).await.unwrap();
        }
        let store: Store = Arc::new(KurrentStore::over(log.clone()).await.unwrap());
        assert_eq!(*store.head().borrow(), 7);
        assert_eq!(store.stream_version("acct").await.unwrap(), 5);
        let (fingerprint, first) = store.idempotency_key("k").await.unwrap().unwrap();
        assert_eq!((fingerprint, first.first_position, first.last_position, first.stream_version), ([1; 32], 6, 7, 2));
        let err = store.append(request("acct", ExpectedVersion::Exact(4), vec![event(1)])).await.unwrap_err();
        assert_eq!(err.code(), "CONCURRENCY_CONFLICT");
        let next = store.append(request("acct", ExpectedVersion::Exact(5), vec![event(6)])).await.unwrap();
        assert_eq!(next.first_position, 8);
        let mut verifier = ledger_core::envelope::ChainVerifier::default();
        store.read_all(1, 100).await.unwrap().iter().for_each(|e| verifier.check(e).unwrap());
        assert_eq!(verifier.checked(), 8);
    }

    #[tokio::test]
    async fn a_tampered_log_is_refused_when_opening() {
        let log = SimLog::new();
        {
            let store: Store = Arc::new(KurrentStore::over(log.clone()).await.unwrap());
            conformance::append_n(&store, "acct", 3).await;
        }
        log.entries.lock().unwrap()[1].data = r#"{"n":1000,"note":"conformance"}"#.into();
        let err = KurrentStore::over(log).await.err().expect("refused");
        assert!(matches!(err, StoreError::Corrupt { position: 2, .. }), "{err:?}");
    }
}
