//! The relay against librdkafka's mock cluster (3 brokers): exactly once after dedupe,
//! per-partner order, faults (request errors, a broker down), and payloads that are never
//! produced. Most cases use the sample events of `ledger_bus::sample` (cheap to make in
//! bulk); one runs a history generated through the real use cases with the repository's
//! `schemas/`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ledger_bus::checkpoint::{read_checkpoint, Checkpoint};
use ledger_bus::cli::{spawn_in_serve, ServeKafkaArgs};
use ledger_bus::consumer::Incoming;
use ledger_bus::relay::{producer_config, Relay, RelayError, HEADER_SCHEMA_VERSION};
use ledger_bus::routing::{key_for, topic_for, ALL_TOPICS, TOPIC_ANCHORS};
use ledger_bus::sample::{self, SampleKind};
use ledger_bus::schema::SchemaSet;
use ledger_bus::source::StoreSource;
use ledger_core::envelope::{Actor, CommandMeta, NewEvent, Role};
use ledger_store::{AppendRequest, EventStore, ExpectedVersion};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;

fn relay(store: Arc<dyn EventStore>, dir: &Path, brokers: &str) -> Relay {
    let config = producer_config(brokers, &[]).unwrap();
    Relay::new(Arc::new(StoreSource(store)), Arc::new(sample::schema_set()), Checkpoint::open(dir).unwrap(), &config)
        .unwrap()
}

fn write_sample_schemas(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (ty, v, schema) in sample::schemas() {
        std::fs::write(dir.join(format!("{ty}.v{v}.json")), serde_json::to_string_pretty(&schema).unwrap()).unwrap();
    }
}

async fn append(store: &dyn EventStore, stream: &str, event_type: &str, data: serde_json::Value) -> u64 {
    let event = NewEvent::new(event_type, 1, chrono::Utc::now(), &data).unwrap();
    let meta = CommandMeta::new(Actor { principal: "test".into(), role: Role::Admin });
    let req = AppendRequest {
        stream: stream.into(),
        expected: ExpectedVersion::Any,
        events: vec![event],
        meta,
        idempotency: None,
        event_keys: vec![],
    };
    store.append(req).await.unwrap().last_position
}

async fn wait_for(rx: &mut tokio::sync::watch::Receiver<u64>, position: u64) {
    tokio::time::timeout(PATIENCE, rx.wait_for(|p| *p >= position))
        .await
        .expect("the relay reached the position in time")
        .expect("the relay is running");
}

#[test]
fn every_event_arrives_exactly_once_and_in_partner_order() {
    init_logs();
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    runtime().block_on(async {
        let store = memory_store();
        let dyn_store: Arc<dyn EventStore> = store.clone();

        // A log that is already there when the relay starts.
        let head = sample::append_mixed(&*store, 3_000, 25).await.unwrap();
        let mut first = relay(dyn_store.clone(), &data, &brokers);
        let stats = tokio::time::timeout(PATIENCE, first.run_to(head, std::future::pending())).await.unwrap().unwrap();
        let events = all_events(&*store).await;
        let expected = published(&events).len() as u64;
        assert_eq!(stats.checkpoint, head);
        assert_eq!(read_checkpoint(&data).unwrap(), head);
        assert_eq!((stats.produced, stats.withheld), (expected, head - expected));
        drop(first);

        // The relay inside `serve` resumes from the checkpoint and follows live appends.
        let schemas = dir.path().join("schemas");
        write_sample_schemas(&schemas);
        let args =
            ServeKafkaArgs { kafka_brokers: Some(brokers.clone()), schemas: Some(schemas), kafka_config: vec![] };
        let handle = spawn_in_serve(&args, &data, dyn_store.clone()).unwrap().expect("brokers given");
        let mut progress = handle.checkpoint();
        let head = sample::append_mixed(&*store, 1_000, 25).await.unwrap();
        wait_for(&mut progress, head).await;
        let live = handle.shutdown().await.unwrap();
        let events = all_events(&*store).await;
        let expected_all = published(&events).len() as u64;
        assert_eq!(live.produced, expected_all - expected, "nothing before the checkpoint is sent again");
        assert_eq!(messages_in_topics(&brokers), expected_all, "no fault, no duplicate");

        // The reference consumer applies every event once, in partner order.
        let view_path = dir.path().join("view.db");
        let (stats, view) =
            consume(&brokers, "paid-totals", &view_path, |v, _| v.applied_count().unwrap() >= expected_all).await;
        assert_eq!(stats.applied, expected_all);
        assert_exactly_once_in_partner_order(&view.applied_events().unwrap(), &events);
        let totals = view_paid_totals(&view);
        assert!(!totals.is_empty());
        assert_eq!(totals, expected_paid_totals(&events));
        let applied = view.applied_events().unwrap();
        drop(view);

        // Every message delivered again (another group, the same view): nothing changes.
        let (again, view) = consume(&brokers, "replay", &view_path, |_, s| s.messages >= expected_all).await;
        assert_eq!((again.applied, again.duplicates), (0, again.messages));
        assert_eq!(view.applied_events().unwrap(), applied);
        assert_eq!(view_paid_totals(&view), totals);
    });
}

/// Every message of the ledger topics from the beginning, with its `schema_version` header,
/// until `count` are read.
fn read_topics(brokers: &str, count: u64) -> Vec<(Incoming, u32)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "history-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut partitions = TopicPartitionList::new();
    for topic in ALL_TOPICS {
        for partition in 0..PARTITIONS {
            partitions.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
        }
    }
    consumer.assign(&partitions).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut out = vec![];
    while (out.len() as u64) < count {
        assert!(Instant::now() < deadline, "only {} of {count} messages read in time", out.len());
        let Some(m) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = m.expect("a message");
        let version = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == HEADER_SCHEMA_VERSION))
            .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<u32>().ok())
            .expect("a schema_version header");
        out.push((Incoming::parse(&m).expect("a ledger event"), version));
    }
    out
}

/// A history made by the demo generator through the real use cases (partners, policy,
/// customers, consumption, month closes, payments, coupons, withdrawals), relayed with the
/// repository's `schemas/`: every published event is in its family's topic exactly once,
/// with its stored payload, key and schema version, and that payload passes the schema.
#[test]
fn a_generated_history_is_published_once_per_event_to_its_family_topic_with_the_repository_schemas() {
    use chrono::TimeZone;

    init_logs();
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let schemas_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let schemas = SchemaSet::load_dir(&schemas_dir).expect("the repository's schemas compile");
    let schemas = Arc::new(schemas);
    let (events, stats) = runtime().block_on(async {
        let store: Arc<dyn EventStore> = memory_store();
        let ledger = ledger_app::Ledger::new(Arc::new(ledger_app::Executor::new(store.clone())));
        // Fixed end: the same history every run.
        let until = chrono::Utc.with_ymd_and_hms(2026, 7, 15, 0, 0, 0).unwrap();
        ledger_demo::seed(&ledger, &ledger_demo::DemoPlan::new(10, 4, until), |_, _| {}).await.expect("seeded");
        let head = *store.head().borrow();
        let config = producer_config(&brokers, &[]).unwrap();
        let mut relay = Relay::new(
            Arc::new(StoreSource(store.clone())),
            schemas.clone(),
            Checkpoint::open(dir.path()).unwrap(),
            &config,
        )
        .unwrap();
        let stats = tokio::time::timeout(PATIENCE, relay.run_to(head, std::future::pending())).await.unwrap().unwrap();
        assert_eq!(stats.checkpoint, head);
        (all_events(&*store).await, stats)
    });
    let expected = published(&events);
    assert_eq!((stats.produced, stats.withheld), (expected.len() as u64, events.len() as u64 - expected.len() as u64));
    assert_eq!(messages_in_topics(&brokers), expected.len() as u64, "one message per published event");

    let by_id: HashMap<uuid::Uuid, &ledger_core::RecordedEvent> = expected.iter().map(|e| (e.event_id, *e)).collect();
    let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (m, version) in read_topics(&brokers, expected.len() as u64) {
        assert!(seen.insert(m.event_id), "event {} published twice", m.event_id);
        let e = by_id.get(&m.event_id).unwrap_or_else(|| panic!("{} was never to be published", m.event_id));
        let family_topic = topic_for(&e.stream, &e.event_type).flatten();
        assert_eq!(Some(m.topic.as_str()), family_topic, "{} of {}", e.event_type, e.stream);
        assert_eq!((m.position, m.event_type.as_str(), version), (e.position, e.event_type.as_str(), e.schema_version));
        let stored: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(m.data, stored, "the payload is the stored data");
        assert_eq!(m.partner_id, key_for(&e.stream, &stored).unwrap(), "the key is the stream's partner (or currency)");
        schemas
            .check(&e.event_type, version, &m.data)
            .unwrap_or_else(|err| panic!("{} v{version}: {err}", e.event_type));
        *per_topic.entry(m.topic).or_default() += 1;
    }
    assert_eq!(seen.len(), expected.len(), "every published event arrives");
    eprintln!("{} events, {} published: {per_topic:?}", events.len(), expected.len());
    // The history reaches every family but the anchors (the generator anchors nothing).
    let topics: Vec<&str> = per_topic.keys().map(String::as_str).collect();
    let mut families: Vec<&str> = ALL_TOPICS.iter().copied().filter(|t| *t != TOPIC_ANCHORS).collect();
    families.sort();
    assert_eq!(topics, families, "{per_topic:?}");
}

#[test]
fn nothing_is_lost_when_requests_fail_or_a_broker_goes_down_mid_stream() {
    init_logs();
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    runtime().block_on(async {
        let store = memory_store();
        let mut relay = relay(store.clone(), &data, &brokers);
        let mut progress = relay.checkpoint_watch();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            relay
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        });

        let head = sample::append_mixed(&*store, 1_500, 30).await.unwrap();
        wait_for(&mut progress, head).await;

        // Produce requests fail with retriable errors.
        use RDKafkaRespErr::*;
        let errors = [
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ];
        let many: Vec<_> = errors.iter().cycle().take(40).copied().collect();
        cluster.request_errors(RDKafkaApiKey::Produce, &many);
        let head = sample::append_mixed(&*store, 1_500, 30).await.unwrap();
        wait_for(&mut progress, head).await;
        cluster.clear_request_errors(RDKafkaApiKey::Produce);

        // A broker goes down while events keep coming, and comes back.
        cluster.broker_down(2).unwrap();
        let head_while_down = sample::append_mixed(&*store, 1_500, 30).await.unwrap();
        // Long enough for the producer to notice and retry; nothing is asserted on it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The broker leads some partitions (no leader change on the mock): the events keyed
        // there cannot be acknowledged, so the checkpoint waits before them.
        assert!(read_checkpoint(&data).unwrap() < head_while_down);
        cluster.broker_up(2).unwrap();
        let head = sample::append_mixed(&*store, 500, 30).await.unwrap();
        wait_for(&mut progress, head).await;
        stop_tx.send(()).unwrap();
        let stats = task.await.unwrap().unwrap();
        assert_eq!(stats.checkpoint, head);

        let events = all_events(&*store).await;
        let expected = published(&events).len() as u64;
        let in_topics = messages_in_topics(&brokers);
        assert!(in_topics >= expected);
        eprintln!("{expected} events published, {in_topics} messages in the topics");
        let (stats, view) =
            consume(&brokers, "faults", &dir.path().join("view.db"), |v, _| v.applied_count().unwrap() >= expected)
                .await;
        assert_eq!(stats.applied, expected);
        assert_exactly_once_in_partner_order(&view.applied_events().unwrap(), &events);
        assert_eq!(view_paid_totals(&view), expected_paid_totals(&events));
    });
}

#[test]
fn a_payload_that_fails_its_schema_is_never_produced_and_the_relay_stops_before_it() {
    init_logs();
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = memory_store();
        let good = sample::append_mixed(&*store, 200, 10).await.unwrap();
        // Three decimal places: the schema's money pattern refuses it.
        let bad = append(
            &*store,
            "incentives-P3",
            "ConsumptionRecorded",
            json!({
                "partner_id": "P3", "record_id": "R-bad", "customer_id": "C1", "product": "ecs",
                "amount": {"amount": "1.005", "currency": "CNY"},
                "consumed_at": "2026-07-01T00:00:00Z", "settled_at": "2026-07-02T00:00:00Z"
            }),
        )
        .await;
        assert_eq!(bad, good + 1);
        sample::append_mixed(&*store, 100, 10).await.unwrap();
        let head = *store.head().borrow();

        for attempt in 0..2 {
            let mut relay = relay(store.clone(), dir.path(), &brokers);
            let err =
                tokio::time::timeout(PATIENCE, relay.run_to(head, std::future::pending())).await.unwrap().unwrap_err();
            assert!(matches!(err, RelayError::Payload { .. }), "{err}");
            assert_eq!(err.position(), Some(bad));
            let msg = err.to_string();
            assert!(msg.contains(&format!("position {bad}")), "{msg}");
            assert!(msg.contains("ConsumptionRecorded v1"), "{msg}");
            assert!(msg.contains("/amount/amount"), "{msg}");
            assert_eq!(read_checkpoint(dir.path()).unwrap(), good, "attempt {attempt}: the checkpoint stays before it");
        }
        let events = all_events(&*store).await;
        let before = published(&events[..good as usize]).len() as u64;
        assert_eq!(messages_in_topics(&brokers), before, "nothing at or after the bad event was produced");
    });
}

#[test]
fn an_event_without_a_schema_or_a_topic_stops_the_relay_and_credentials_are_withheld() {
    init_logs();
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    runtime().block_on(async {
        // Credentials are skipped (and move the checkpoint); the next event has no schema.
        let dir = tempfile::tempdir().unwrap();
        let store = memory_store();
        let (stream, e) = sample::event(SampleKind::Credential, "P1", 1);
        append(&*store, &stream, &e.event_type, serde_json::from_str(&e.data).unwrap()).await;
        let (stream, e) = sample::event(SampleKind::Consumption, "P1", 2);
        append(&*store, &stream, &e.event_type, serde_json::from_str(&e.data).unwrap()).await;
        let unknown_type = append(&*store, "incentives-P1", "IncentiveTeleported", json!({"partner_id": "P1"})).await;
        let mut r = relay(store.clone(), dir.path(), &brokers);
        let err =
            tokio::time::timeout(PATIENCE, r.run_to(unknown_type, std::future::pending())).await.unwrap().unwrap_err();
        assert_eq!(err.position(), Some(3));
        assert!(err.to_string().contains("no schema for IncentiveTeleported v1"), "{err}");
        assert_eq!(read_checkpoint(dir.path()).unwrap(), 2);

        // A stream of no known family.
        let dir = tempfile::tempdir().unwrap();
        let store = memory_store();
        let (stream, e) = sample::event(SampleKind::Withdrawal, "P2", 1);
        append(&*store, &stream, &e.event_type, serde_json::from_str(&e.data).unwrap()).await;
        let unknown_stream = append(&*store, "orders-9", "OrderPlaced", json!({"partner_id": "P2"})).await;
        let mut r = relay(store.clone(), dir.path(), &brokers);
        let err = tokio::time::timeout(PATIENCE, r.run_to(unknown_stream, std::future::pending()))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.position(), Some(2));
        assert!(err.to_string().contains("orders-9"), "{err}");
        assert_eq!(read_checkpoint(dir.path()).unwrap(), 1);
    });
    // Only the consumption line and the withdrawal were produced.
    assert_eq!(messages_in_topics(&brokers), 2);
}
