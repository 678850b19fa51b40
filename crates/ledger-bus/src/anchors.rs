//! Reading the anchors back from their topic, `ledger.anchors.v1`: what an auditor does who
//! trusts Kafka's copy more than the database's. Every message of every partition is read
//! from the beginning to the end the topic had when the read began.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

use crate::relay::HEADER_EVENT_TYPE;
use crate::routing::TOPIC_ANCHORS;

/// Every anchor on the topic, each as its payload with its `type` (from the `event_type`
/// header), in partition and offset order: what `ledger_domain::anchors::read_anchor` reads.
pub fn read_topic(brokers: &str, overrides: &[(String, String)], patience: Duration) -> anyhow::Result<Vec<Value>> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", "ledger-anchor-audit")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in overrides {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(TOPIC_ANCHORS), patience)?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == TOPIC_ANCHORS)
        .ok_or_else(|| anyhow::anyhow!("the cluster has no topic {TOPIC_ANCHORS}"))?;
    if let Some(e) = topic.error() {
        anyhow::bail!("topic {TOPIC_ANCHORS}: {:?}", e);
    }
    // Where each partition ends now; a partition already read to its end is left out.
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in topic.partitions() {
        let (low, high) = consumer.fetch_watermarks(TOPIC_ANCHORS, p.id(), patience)?;
        if high > low {
            ends.insert(p.id(), high);
            assignment.add_partition_offset(TOPIC_ANCHORS, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    let mut by_partition: HashMap<i32, Vec<(i64, Value)>> = HashMap::new();
    let deadline = Instant::now() + patience;
    while !ends.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "the anchors topic was not read to its end in {patience:?}");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = message?;
        let event_type = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == HEADER_EVENT_TYPE).and_then(|h| h.value))
            .and_then(|v| std::str::from_utf8(v).ok())
            .ok_or_else(|| {
                anyhow::anyhow!("message {}@{} has no {HEADER_EVENT_TYPE} header", m.partition(), m.offset())
            })?;
        let mut value: Value = serde_json::from_slice(m.payload().unwrap_or_default())?;
        let obj = value
            .as_object_mut()
            .ok_or_else(|| anyhow::anyhow!("message {}@{} is not a JSON object", m.partition(), m.offset()))?;
        obj.insert("type".into(), Value::String(event_type.to_string()));
        by_partition.entry(m.partition()).or_default().push((m.offset(), value));
        if ends.get(&m.partition()).is_some_and(|end| m.offset() + 1 >= *end) {
            ends.remove(&m.partition());
        }
    }
    let mut partitions: Vec<_> = by_partition.into_iter().collect();
    partitions.sort_by_key(|(p, _)| *p);
    Ok(partitions.into_iter().flat_map(|(_, messages)| messages.into_iter().map(|(_, v)| v)).collect())
}
