//! Shared helpers of the relay tests: a 3-broker mock cluster, a consumer run, and the
//! exactly-once / per-partner-order check.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ledger_bus::consumer::{AppliedEvent, ConsumeStats, ConsumerSettings, PaidTotalsView, ReferenceConsumer};
use ledger_bus::routing::{topic_for, ALL_TOPICS};
use ledger_core::RecordedEvent;
use ledger_store::EventStore;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::ClientConfig;
use rust_decimal::Decimal;

/// Partitions per topic in the tests (fewer than partners, so partitions are shared).
pub const PARTITIONS: i32 = 3;
/// How long a test waits for deliveries or consumption before failing: generous, for a
/// loaded 2-core machine. No assertion depends on it.
pub const PATIENCE: Duration = Duration::from_secs(150);

pub type Cluster = MockCluster<'static, DefaultProducerContext>;

/// Three brokers, every ledger topic with replication factor 3.
pub fn cluster() -> Cluster {
    let cluster = MockCluster::new(3).expect("mock cluster");
    for topic in ALL_TOPICS {
        cluster.create_topic(topic, PARTITIONS, 3).expect("topic");
    }
    cluster
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LEDGER_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// Every event of the store, in order.
pub async fn all_events(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    loop {
        let batch = store.read_all(out.len() as u64 + 1, 10_000).await.expect("read");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// The events the relay must publish (all but the credentials stream's).
pub fn published(events: &[RecordedEvent]) -> Vec<&RecordedEvent> {
    events.iter().filter(|e| topic_for(&e.stream, &e.event_type) != Some(None)).collect()
}

/// How many messages the ledger topics hold (sum of high watermarks; logs start at 0).
pub fn messages_in_topics(brokers: &str) -> u64 {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create().expect("consumer");
    let mut total = 0;
    for topic in ALL_TOPICS {
        for partition in 0..PARTITIONS {
            let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(30)).expect("watermarks");
            assert_eq!(low, 0, "nothing is deleted from {topic}/{partition}");
            total += high as u64;
        }
    }
    total
}

/// Consumes with the reference consumer into the view at `view_path` until `enough`.
pub async fn consume(
    brokers: &str,
    group: &str,
    view_path: &Path,
    mut enough: impl FnMut(&PaidTotalsView, &ConsumeStats) -> bool,
) -> (ConsumeStats, PaidTotalsView) {
    let settings = ConsumerSettings {
        brokers: brokers.to_string(),
        group: group.to_string(),
        topics: ALL_TOPICS.iter().map(|t| t.to_string()).collect(),
        overrides: vec![],
    };
    let view = PaidTotalsView::open(view_path).expect("view");
    let mut consumer = ReferenceConsumer::new(&settings, view).expect("consumer");
    let mut finished = false;
    let stats = tokio::time::timeout(
        PATIENCE,
        consumer.run(std::future::pending(), None, |v, s| {
            finished = enough(v, s);
            finished
        }),
    )
    .await
    .expect("the consumer got everything in time")
    .expect("the consumer ran");
    assert!(finished);
    (stats, consumer.into_view())
}

/// Every published event applied exactly once, nothing else, and per (topic, partner) in
/// log order; the key is the partner.
pub fn assert_exactly_once_in_partner_order(applied: &[AppliedEvent], events: &[RecordedEvent]) {
    let expected = published(events);
    let by_id: HashMap<uuid::Uuid, &RecordedEvent> = expected.iter().map(|e| (e.event_id, *e)).collect();
    let mut seen = HashSet::new();
    for a in applied {
        assert!(seen.insert(a.event_id), "event {} applied twice", a.event_id);
        let e =
            by_id.get(&a.event_id).unwrap_or_else(|| panic!("applied event {} was never to be published", a.event_id));
        assert_eq!(a.position, e.position);
        assert_eq!(Some(Some(a.topic.as_str())), topic_for(&e.stream, &e.event_type).map(|t| t.map(|t| t as &str)));
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(Some(a.partner_id.as_str()), data["partner_id"].as_str(), "the key is the partner id");
    }
    assert_eq!(seen.len(), expected.len(), "every published event arrives");
    let mut last: HashMap<(&str, &str), u64> = HashMap::new();
    for a in applied {
        let prev = last.insert((a.topic.as_str(), a.partner_id.as_str()), a.position);
        if let Some(prev) = prev {
            assert!(prev < a.position, "{} of {}: position {} applied after {prev}", a.topic, a.partner_id, a.position);
        }
    }
    assert!(
        events.iter().filter(|e| e.stream == "credentials").all(|e| !seen.contains(&e.event_id)),
        "no credential event is ever published"
    );
}

/// Paid totals as the store says they should be.
pub fn expected_paid_totals(events: &[RecordedEvent]) -> BTreeMap<String, Decimal> {
    let mut totals = BTreeMap::new();
    for e in events.iter().filter(|e| e.event_type == "QuarterlyPaymentPaid") {
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        let amount = Decimal::from_str(data["amount"]["amount"].as_str().unwrap()).unwrap();
        *totals.entry(data["partner_id"].as_str().unwrap().to_string()).or_default() += amount;
    }
    totals
}

pub fn view_paid_totals(view: &PaidTotalsView) -> BTreeMap<String, Decimal> {
    view.paid_totals().unwrap().into_iter().map(|t| (t.partner_id, t.amount)).collect()
}

pub fn memory_store() -> Arc<ledger_store::memory::MemoryStore> {
    Arc::new(ledger_store::memory::MemoryStore::new())
}
