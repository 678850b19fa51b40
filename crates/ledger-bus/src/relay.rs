//! The relay: reads the global log from its checkpoint and produces every event to its
//! family's topic, in log order, with an idempotent producer (`acks=all`).
//!
//! Delivery is at least once: the checkpoint moves only past a contiguous prefix of
//! positions that Kafka acknowledged, so a relay killed between a delivery and its
//! checkpoint sends those events again after a restart. Consumers dedupe by the
//! `event_id` header; together that is exactly once per event id.
//!
//! What goes on the wire, per event:
//! * topic: [`crate::routing`] (by stream prefix, then type);
//! * key: the partner id (so one partner's events of one topic stay in one partition, in
//!   order);
//! * value: the event's `data`, the canonical JSON the store holds, checked against the
//!   schema of (type, schema version) before it is produced. The envelope's other fields
//!   travel as headers: [`HEADER_EVENT_ID`], [`HEADER_EVENT_TYPE`],
//!   [`HEADER_SCHEMA_VERSION`], [`HEADER_POSITION`], [`HEADER_STREAM`],
//!   [`HEADER_OCCURRED_AT`]; the record's timestamp is the recorded time.
//!
//! An event the relay cannot route, or whose payload fails its schema (or has none), is
//! never produced: the relay waits for what is already in flight, leaves its checkpoint just
//! before that event and stops with an error naming the position.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use ledger_core::envelope::format_time;
use ledger_core::RecordedEvent;
use ledger_store::StoreError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::checkpoint::Checkpoint;
use crate::routing::{route, Route, RouteError};
use crate::schema::{PayloadError, SchemaSet};
use crate::source::LogSource;

/// Deliveries awaited at once: the relay reads no further ahead of Kafka's acknowledgements.
pub const MAX_IN_FLIGHT: usize = 20_000;
/// Events read from the log per read.
pub const READ_BATCH: usize = 2_000;
/// The checkpoint is written after at most this many acknowledged events...
pub const CHECKPOINT_EVERY_EVENTS: u64 = 10_000;
/// ...or after this long, whichever comes first, and whenever the relay is idle.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// How often a caught-up relay looks for new events when the store cannot notify it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// On stop, how long the relay waits for deliveries already in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub const HEADER_EVENT_ID: &str = "event_id";
pub const HEADER_EVENT_TYPE: &str = "event_type";
pub const HEADER_SCHEMA_VERSION: &str = "schema_version";
pub const HEADER_POSITION: &str = "position";
pub const HEADER_STREAM: &str = "stream";
pub const HEADER_OCCURRED_AT: &str = "occurred_at";

/// Producer settings the relay's guarantees rest on; an override may not change them.
const PINNED: [(&str, &str); 4] = [
    // No duplicates from the producer's own retries, and per-partition order kept across
    // retries (librdkafka limits in-flight requests to 5 per connection for this).
    ("enable.idempotence", "true"),
    // Acknowledged only once every in-sync replica has it.
    ("acks", "all"),
    // A failed batch stops the producer instead of leaving a gap that later batches of
    // the same partition would jump over (a gap would break per-partner order).
    ("enable.gapless.guarantee", "true"),
    // Never give up on a message: an unreachable cluster makes the relay wait, not skip.
    ("message.timeout.ms", "0"),
];

/// The producer configuration of the relay (and of the benchmark's raw baseline).
pub fn producer_config(brokers: &str, overrides: &[(String, String)]) -> Result<ClientConfig, RelayError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "ledger-relay")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", (2 * MAX_IN_FLIGHT).to_string());
    for (key, value) in overrides {
        if PINNED.iter().any(|(k, _)| k == key) {
            return Err(RelayError::Config(format!("{key} is fixed by the relay and cannot be overridden")));
        }
        config.set(key, value);
    }
    for (key, value) in PINNED {
        config.set(key, value);
    }
    Ok(config)
}

#[derive(Debug, Error)]
pub enum RelayError {
    #[error("{0}")]
    Route(#[from] RouteError),
    #[error("event at position {position} ({event_type} v{version}, id {event_id}) is not produced: {source}")]
    Payload { position: u64, event_type: String, version: u32, event_id: uuid::Uuid, source: PayloadError },
    #[error("event at position {position} has a payload that is not JSON: {reason}")]
    NotJson { position: u64, reason: String },
    #[error("delivery of the event at position {position} failed: {error}")]
    Delivery { position: u64, error: KafkaError },
    #[error("the log has a gap: expected position {expected}, read {found}")]
    Gap { expected: u64, found: u64 },
    #[error("reading the log: {0}")]
    Store(#[from] StoreError),
    #[error("writing the relay checkpoint: {0}")]
    Checkpoint(#[from] rusqlite::Error),
    #[error("kafka producer: {0}")]
    Producer(KafkaError),
    #[error("relay configuration: {0}")]
    Config(String),
}

impl RelayError {
    /// The log position the error is about, when it concerns one event.
    pub fn position(&self) -> Option<u64> {
        match self {
            RelayError::Route(RouteError::UnknownStream { position, .. } | RouteError::NoKey { position, .. }) => {
                Some(*position)
            }
            RelayError::Payload { position, .. }
            | RelayError::NotJson { position, .. }
            | RelayError::Delivery { position, .. } => Some(*position),
            _ => None,
        }
    }
}

/// What one run of the relay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Events produced and acknowledged in this run.
    pub produced: u64,
    /// Events skipped on purpose (the credentials stream) in this run.
    pub withheld: u64,
    /// The checkpoint when the run ended.
    pub checkpoint: u64,
}

struct InFlight {
    position: u64,
    /// `None` for a withheld event: nothing to wait for.
    delivery: Option<DeliveryFuture>,
}

/// One event, read, routed and checked, ready for the producer.
enum Prepared {
    Publish {
        position: u64,
        topic: &'static str,
        key: String,
        payload: String,
        timestamp: i64,
        headers: OwnedHeaders,
    },
    /// Never published (the credentials stream); only moves the checkpoint.
    Withheld {
        position: u64,
    },
    /// The relay stops here: nothing at or after this point is produced.
    Fail(RelayError),
}

/// Prepared batches waiting for the producer (the read-ahead of the pipeline).
const PREPARED_BATCHES: usize = 4;

pub struct Relay {
    source: Arc<dyn LogSource>,
    schemas: Arc<SchemaSet>,
    producer: FutureProducer,
    checkpoint: Checkpoint,
    acknowledged: watch::Sender<u64>,
    stats: RelayStats,
}

impl Relay {
    pub fn new(
        source: Arc<dyn LogSource>,
        schemas: Arc<SchemaSet>,
        checkpoint: Checkpoint,
        config: &ClientConfig,
    ) -> Result<Relay, RelayError> {
        let producer: FutureProducer = config.create().map_err(RelayError::Producer)?;
        let (acknowledged, _) = watch::channel(checkpoint.position());
        Ok(Relay { source, schemas, producer, checkpoint, acknowledged, stats: RelayStats::default() })
    }

    /// The durable checkpoint, updated each time it is written.
    pub fn checkpoint_watch(&self) -> watch::Receiver<u64> {
        self.acknowledged.subscribe()
    }

    pub fn checkpoint(&self) -> u64 {
        self.checkpoint.position()
    }

    /// Relays until `stop` resolves (then drains what is in flight and writes the
    /// checkpoint) or until an error.
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<RelayStats, RelayError> {
        self.relay(None, stop).await
    }

    /// Relays until every position up to `position` is acknowledged (or `stop` resolves).
    pub async fn run_to(&mut self, position: u64, stop: impl Future<Output = ()>) -> Result<RelayStats, RelayError> {
        self.relay(Some(position), stop).await
    }

    /// Two stages: a task reads the log, routes and checks each event ([`prepare_log`]);
    /// this loop produces what it prepared, keeps at most [`MAX_IN_FLIGHT`] deliveries
    /// open, and moves the checkpoint over the acknowledged prefix.
    async fn relay(&mut self, goal: Option<u64>, stop: impl Future<Output = ()>) -> Result<RelayStats, RelayError> {
        tokio::pin!(stop);
        self.stats = RelayStats { checkpoint: self.checkpoint.position(), ..RelayStats::default() };
        let mut acked = self.checkpoint.position();
        let (tx, mut rx) = mpsc::channel::<Vec<Prepared>>(PREPARED_BATCHES);
        let reader = tokio::spawn(prepare_log(self.source.clone(), self.schemas.clone(), acked + 1, goal, tx));
        let mut pending: VecDeque<Prepared> = VecDeque::new();
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut reader_done = false;
        let mut last_write = Instant::now();
        let mut failure: Option<RelayError> = None;

        'relay: loop {
            if goal.is_some_and(|g| acked >= g) {
                break;
            }
            // Produce what was prepared, while the window has room.
            let mut queue_full = false;
            while in_flight.len() < MAX_IN_FLIGHT {
                let Some(item) = pending.pop_front() else { break };
                match self.send(item) {
                    Ok(Ok(f)) => in_flight.push_back(f),
                    Ok(Err(item)) => {
                        pending.push_front(item);
                        queue_full = true;
                        break;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break 'relay;
                    }
                }
            }
            // Take what the reader prepared meanwhile, without waiting.
            if pending.is_empty() && in_flight.len() < MAX_IN_FLIGHT && !reader_done {
                match rx.try_recv() {
                    Ok(batch) => {
                        pending.extend(batch);
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {}
                    Err(mpsc::error::TryRecvError::Disconnected) => reader_done = true,
                }
            }
            if let Some(front) = in_flight.front_mut() {
                // Wait for the oldest delivery.
                let outcome = match front.delivery.as_mut() {
                    None => Ok(()),
                    Some(delivery) => match (&mut *delivery).now_or_never() {
                        Some(r) => delivery_outcome(r),
                        None => tokio::select! {
                            biased;
                            _ = &mut stop => break,
                            r = delivery => delivery_outcome(r),
                        },
                    },
                };
                let done = in_flight.pop_front().expect("front exists");
                if let Err(error) = outcome {
                    failure = Some(RelayError::Delivery { position: done.position, error });
                    break;
                }
                acked = done.position;
                match done.delivery {
                    Some(_) => self.stats.produced += 1,
                    None => self.stats.withheld += 1,
                }
                let due = acked - self.checkpoint.position() >= CHECKPOINT_EVERY_EVENTS
                    || in_flight.is_empty()
                    || last_write.elapsed() >= CHECKPOINT_EVERY;
                if due {
                    if let Err(e) = self.write_checkpoint(acked) {
                        failure = Some(e);
                        break;
                    }
                    last_write = Instant::now();
                }
            } else if queue_full {
                tokio::time::sleep(Duration::from_millis(10)).await;
            } else if pending.is_empty() {
                // Everything sent is acknowledged: wait for the reader.
                if let Err(e) = self.write_checkpoint(acked) {
                    failure = Some(e);
                    break;
                }
                if goal.is_some_and(|g| acked >= g) || reader_done {
                    break;
                }
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    batch = rx.recv() => match batch {
                        Some(batch) => pending.extend(batch),
                        None => reader_done = true,
                    },
                }
            }
        }
        drop(rx);
        reader.abort();

        // Stopping (asked to, goal reached, or failed): what is already in flight may still
        // be acknowledged; move the checkpoint as far as the acknowledged prefix goes.
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while let Some(mut f) = in_flight.pop_front() {
            let outcome = match f.delivery.as_mut() {
                None => Ok(()),
                Some(delivery) => match tokio::time::timeout_at(deadline, delivery).await {
                    Ok(r) => delivery_outcome(r),
                    Err(_) => {
                        tracing::warn!(position = f.position, "deliveries still in flight after {DRAIN_TIMEOUT:?}");
                        break;
                    }
                },
            };
            if outcome.is_err() {
                break;
            }
            acked = f.position;
            match f.delivery {
                Some(_) => self.stats.produced += 1,
                None => self.stats.withheld += 1,
            }
        }
        let written = self.write_checkpoint(acked);
        self.stats.checkpoint = self.checkpoint.position();
        match (failure, written) {
            (Some(e), _) => Err(e),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(self.stats),
        }
    }

    fn write_checkpoint(&mut self, position: u64) -> Result<(), RelayError> {
        if position > self.checkpoint.position() {
            self.checkpoint.advance(position)?;
            self.acknowledged.send_replace(position);
        }
        Ok(())
    }

    /// Hands one prepared event to the producer; gives it back when the producer's queue
    /// is full.
    fn send(&self, item: Prepared) -> Result<Result<InFlight, Prepared>, RelayError> {
        let (position, topic, key, payload, timestamp, headers) = match item {
            Prepared::Fail(e) => return Err(e),
            Prepared::Withheld { position } => return Ok(Ok(InFlight { position, delivery: None })),
            Prepared::Publish { position, topic, key, payload, timestamp, headers } => {
                (position, topic, key, payload, timestamp, headers)
            }
        };
        let record = FutureRecord::to(topic)
            .key(key.as_bytes())
            .payload(payload.as_bytes())
            .timestamp(timestamp)
            .headers(headers);
        match self.producer.send_result(record) {
            Ok(delivery) => Ok(Ok(InFlight { position, delivery: Some(delivery) })),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                let headers = back.headers.unwrap_or_default();
                Ok(Err(Prepared::Publish { position, topic, key, payload, timestamp, headers }))
            }
            Err((error, _)) => Err(RelayError::Delivery { position, error }),
        }
    }
}

/// Routes and checks one event.
fn prepare(schemas: &SchemaSet, event: RecordedEvent) -> Prepared {
    let data: serde_json::Value = match serde_json::from_str(&event.data) {
        Ok(d) => d,
        Err(e) => return Prepared::Fail(RelayError::NotJson { position: event.position, reason: e.to_string() }),
    };
    let (topic, key) = match route(&event, &data) {
        Err(e) => return Prepared::Fail(e.into()),
        Ok(Route::Withheld) => return Prepared::Withheld { position: event.position },
        Ok(Route::Publish { topic, key }) => (topic, key),
    };
    if let Err(source) = schemas.check(&event.event_type, event.schema_version, &data) {
        return Prepared::Fail(RelayError::Payload {
            position: event.position,
            event_type: event.event_type,
            version: event.schema_version,
            event_id: event.event_id,
            source,
        });
    }
    Prepared::Publish {
        position: event.position,
        topic,
        key,
        timestamp: event.recorded_at.timestamp_millis(),
        headers: headers(&event),
        payload: event.data,
    }
}

/// What the reader stage passes to the checking stage.
enum Read {
    Events(Vec<RecordedEvent>),
    Fail(RelayError),
}

/// The reader and checking stages: one task reads the log from `next` in order (up to
/// `goal` when given, else following it), another routes and checks each event, so that
/// reading and checking overlap. Both stop after the first event that may not be produced,
/// or when the producer stage is gone.
async fn prepare_log(
    source: Arc<dyn LogSource>,
    schemas: Arc<SchemaSet>,
    next: u64,
    goal: Option<u64>,
    tx: mpsc::Sender<Vec<Prepared>>,
) {
    let (read_tx, mut read_rx) = mpsc::channel::<Read>(PREPARED_BATCHES);
    let reader = tokio::spawn(read_log(source, next, goal, read_tx));
    while let Some(read) = read_rx.recv().await {
        let batch = match read {
            Read::Fail(e) => {
                let _ = tx.send(vec![Prepared::Fail(e)]).await;
                break;
            }
            Read::Events(batch) => batch,
        };
        let mut prepared = Vec::with_capacity(batch.len());
        let mut failed = false;
        for event in batch {
            let item = prepare(&schemas, event);
            failed = matches!(item, Prepared::Fail(_));
            prepared.push(item);
            if failed {
                break;
            }
        }
        if tx.send(prepared).await.is_err() || failed {
            break;
        }
    }
    reader.abort();
}

async fn read_log(source: Arc<dyn LogSource>, mut next: u64, goal: Option<u64>, tx: mpsc::Sender<Read>) {
    let mut head = source.head();
    while goal.is_none_or(|g| next <= g) {
        let batch = match source.read(next, READ_BATCH).await {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Read::Fail(e.into())).await;
                return;
            }
        };
        let Some(first) = batch.first() else {
            tokio::select! {
                _ = tx.closed() => return,
                _ = wait_for_growth(&mut head) => continue,
            }
        };
        if first.position != next {
            let _ = tx.send(Read::Fail(RelayError::Gap { expected: next, found: first.position })).await;
            return;
        }
        next = batch[batch.len() - 1].position + 1;
        if tx.send(Read::Events(batch)).await.is_err() {
            return;
        }
    }
}

/// The headers of one event: the envelope fields a consumer needs without parsing the value.
pub fn headers(event: &RecordedEvent) -> OwnedHeaders {
    let id = event.event_id.hyphenated().to_string();
    let version = event.schema_version.to_string();
    let position = event.position.to_string();
    let occurred = format_time(event.occurred_at);
    OwnedHeaders::new_with_capacity(6)
        .insert(Header { key: HEADER_EVENT_ID, value: Some(id.as_str()) })
        .insert(Header { key: HEADER_EVENT_TYPE, value: Some(event.event_type.as_str()) })
        .insert(Header { key: HEADER_SCHEMA_VERSION, value: Some(version.as_str()) })
        .insert(Header { key: HEADER_POSITION, value: Some(position.as_str()) })
        .insert(Header { key: HEADER_STREAM, value: Some(event.stream.as_str()) })
        .insert(Header { key: HEADER_OCCURRED_AT, value: Some(occurred.as_str()) })
}

fn delivery_outcome(
    r: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
) -> Result<(), KafkaError> {
    match r {
        Ok(Ok(_delivery)) => Ok(()),
        Ok(Err((error, _message))) => Err(error),
        Err(_canceled) => Err(KafkaError::Canceled),
    }
}

async fn wait_for_growth(head: &mut Option<watch::Receiver<u64>>) {
    match head {
        Some(rx) => {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        // The store closed; fall back to polling.
                        *head = None;
                        tokio::time::sleep(POLL_INTERVAL).await;
                    }
                }
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
        None => tokio::time::sleep(POLL_INTERVAL).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_safety_settings_cannot_be_overridden() {
        let err = producer_config("b:9092", &[("acks".into(), "1".into())]).unwrap_err();
        assert!(err.to_string().contains("acks"), "{err}");
        let config = producer_config("b:9092", &[("linger.ms".into(), "1".into())]).unwrap();
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("linger.ms"), Some("1"));
    }
}
