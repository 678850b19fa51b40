//! A reference consumer: how a downstream system consumes the ledger's topics correctly.
//!
//! 1. Join a consumer group with auto-commit off, starting from the earliest offset.
//! 2. Take a batch of messages and apply it to the downstream view in ONE local transaction
//!    that also records each applied `event_id`. An event id already recorded is a
//!    duplicate (the relay delivers at least once) and changes nothing.
//! 3. Only after that transaction commits, commit the next offsets to Kafka. A crash
//!    between 2 and 3 redelivers the batch, and step 2 skips it: exactly once per event id.
//!
//! Order: one partner's events of one topic arrive in log order (one key, one partition).
//! Across topics there is no order; the `position` header gives the global one.
//!
//! The view built here: per-partner paid totals, the sum by currency of the money of every
//! `QuarterlyPaymentPaid` event on `ledger.payments.v1` (its `amount` field, else
//! `payable`, a money object `{"amount": "12.34", "currency": "CNY"}`).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;
use thiserror::Error;

use crate::relay::{HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_POSITION};
use crate::routing::TOPIC_PAYMENTS;

/// Most messages applied in one view transaction (and one offset commit).
pub const APPLY_BATCH: usize = 1_000;
/// The event type whose money the paid-totals view sums.
pub const PAID_EVENT_TYPE: &str = "QuarterlyPaymentPaid";
/// After a consumer error (a broker away, a rebalance), wait this long before polling again.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Error)]
pub enum ConsumeError {
    #[error("kafka consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("view database: {0}")]
    View(#[from] rusqlite::Error),
    #[error("message at {topic}/{partition}@{offset} is not a ledger event: {reason}")]
    Malformed { topic: String, partition: i32, offset: i64, reason: String },
}

/// One message, read into owned fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub partner_id: String,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub position: u64,
    pub data: serde_json::Value,
}

impl Incoming {
    pub fn parse<M: Message>(m: &M) -> Result<Incoming, ConsumeError> {
        let bad = |reason: String| ConsumeError::Malformed {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            reason,
        };
        let mut headers: HashMap<&str, &str> = HashMap::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                if let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                    headers.insert(header.key, value);
                }
            }
        }
        let header = |name: &str| headers.get(name).copied().ok_or_else(|| bad(format!("no {name} header")));
        let event_id = uuid::Uuid::parse_str(header(HEADER_EVENT_ID)?).map_err(|e| bad(e.to_string()))?;
        let position = header(HEADER_POSITION)?.parse::<u64>().map_err(|e| bad(e.to_string()))?;
        let event_type = header(HEADER_EVENT_TYPE)?.to_string();
        let partner_id =
            m.key().and_then(|k| std::str::from_utf8(k).ok()).ok_or_else(|| bad("no key".into()))?.to_string();
        let data: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
        Ok(Incoming {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            partner_id,
            event_id,
            event_type,
            position,
            data,
        })
    }
}

/// One event the view applied, in the order it applied them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEvent {
    pub seq: i64,
    pub event_id: uuid::Uuid,
    pub partner_id: String,
    pub topic: String,
    pub position: u64,
    pub event_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidTotal {
    pub partner_id: String,
    pub currency: String,
    pub amount: Decimal,
    pub payments: u64,
}

/// What one batch did to the view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub applied: u64,
    pub duplicates: u64,
}

/// The downstream view: a SQLite file with the paid totals and the ids of applied events.
///
/// It keeps every applied event id; a long-lived consumer may prune ids older than the
/// topics' retention, since those can no longer be redelivered.
pub struct PaidTotalsView {
    conn: Connection,
}

impl PaidTotalsView {
    pub fn open(path: &Path) -> rusqlite::Result<PaidTotalsView> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        }
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS applied_event (
                 seq        INTEGER PRIMARY KEY AUTOINCREMENT,
                 event_id   TEXT    NOT NULL UNIQUE,
                 partner_id TEXT    NOT NULL,
                 topic      TEXT    NOT NULL,
                 position   INTEGER NOT NULL,
                 event_type TEXT    NOT NULL
             );
             CREATE TABLE IF NOT EXISTS paid_total (
                 partner_id TEXT    NOT NULL,
                 currency   TEXT    NOT NULL,
                 amount     TEXT    NOT NULL,
                 payments   INTEGER NOT NULL,
                 PRIMARY KEY (partner_id, currency)
             );",
        )?;
        Ok(PaidTotalsView { conn })
    }

    /// Applies a batch in one transaction; an event id seen before is skipped.
    pub fn apply(&mut self, batch: &[Incoming]) -> rusqlite::Result<Applied> {
        let tx = self.conn.transaction()?;
        let mut result = Applied::default();
        for m in batch {
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO applied_event (event_id, partner_id, topic, position, event_type)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    m.event_id.hyphenated().to_string(),
                    m.partner_id,
                    m.topic,
                    m.position as i64,
                    m.event_type
                ])?;
            if inserted == 0 {
                result.duplicates += 1;
                continue;
            }
            result.applied += 1;
            if m.topic == TOPIC_PAYMENTS && m.event_type == PAID_EVENT_TYPE {
                if let Some((amount, currency)) = money_of(&m.data) {
                    add_paid(&tx, &m.partner_id, &currency, amount)?;
                }
            }
        }
        tx.commit()?;
        Ok(result)
    }

    pub fn applied_count(&self) -> rusqlite::Result<u64> {
        self.conn.query_row("SELECT COUNT(*) FROM applied_event", [], |r| r.get::<_, i64>(0)).map(|n| n as u64)
    }

    /// Every applied event, in the order the view applied them.
    pub fn applied_events(&self) -> rusqlite::Result<Vec<AppliedEvent>> {
        let mut st = self
            .conn
            .prepare("SELECT seq, event_id, partner_id, topic, position, event_type FROM applied_event ORDER BY seq")?;
        let rows = st.query_map([], |r| {
            let id: String = r.get(1)?;
            Ok(AppliedEvent {
                seq: r.get(0)?,
                event_id: uuid::Uuid::parse_str(&id)
                    .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into()))?,
                partner_id: r.get(2)?,
                topic: r.get(3)?,
                position: r.get::<_, i64>(4)? as u64,
                event_type: r.get(5)?,
            })
        })?;
        rows.collect()
    }

    pub fn paid_totals(&self) -> rusqlite::Result<Vec<PaidTotal>> {
        let mut st = self
            .conn
            .prepare("SELECT partner_id, currency, amount, payments FROM paid_total ORDER BY partner_id, currency")?;
        let rows = st.query_map([], |r| {
            let amount: String = r.get(2)?;
            Ok(PaidTotal {
                partner_id: r.get(0)?,
                currency: r.get(1)?,
                amount: Decimal::from_str(&amount)
                    .map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into()))?,
                payments: r.get::<_, i64>(3)? as u64,
            })
        })?;
        rows.collect()
    }
}

fn add_paid(tx: &rusqlite::Transaction<'_>, partner: &str, currency: &str, amount: Decimal) -> rusqlite::Result<()> {
    let current: Option<String> = tx
        .query_row(
            "SELECT amount FROM paid_total WHERE partner_id = ?1 AND currency = ?2",
            params![partner, currency],
            |r| r.get(0),
        )
        .optional()?;
    let total = current.and_then(|c| Decimal::from_str(&c).ok()).unwrap_or_default() + amount;
    tx.execute(
        "INSERT INTO paid_total (partner_id, currency, amount, payments) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (partner_id, currency) DO UPDATE SET amount = excluded.amount, payments = payments + 1",
        params![partner, currency, total.to_string()],
    )?;
    Ok(())
}

/// The money of a paid event: its `amount`, else `payable`, as `{amount, currency}`.
pub fn money_of(data: &serde_json::Value) -> Option<(Decimal, String)> {
    ["amount", "payable"].iter().find_map(|field| {
        let m = data.get(field)?;
        let amount = Decimal::from_str(m.get("amount")?.as_str()?).ok()?;
        let currency = m.get("currency")?.as_str()?.to_string();
        Some((amount, currency))
    })
}

/// Settings of the reference consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub brokers: String,
    pub group: String,
    pub topics: Vec<String>,
    /// Extra librdkafka settings.
    pub overrides: Vec<(String, String)>,
}

impl ConsumerSettings {
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("client.id", "ledger-reference-consumer")
            // Offsets are committed by hand, after the view's transaction.
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        for (k, v) in &self.overrides {
            config.set(k, v);
        }
        config
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumeStats {
    pub messages: u64,
    pub applied: u64,
    pub duplicates: u64,
}

pub struct ReferenceConsumer {
    consumer: StreamConsumer,
    view: PaidTotalsView,
}

impl ReferenceConsumer {
    pub fn new(settings: &ConsumerSettings, view: PaidTotalsView) -> Result<ReferenceConsumer, ConsumeError> {
        let consumer: StreamConsumer = settings.client_config().create()?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        Ok(ReferenceConsumer { consumer, view })
    }

    pub fn view(&self) -> &PaidTotalsView {
        &self.view
    }

    pub fn into_view(self) -> PaidTotalsView {
        self.view
    }

    /// Consumes until `stop` resolves, until no message came for `idle_exit`, or until
    /// `done(view, stats so far)` holds (checked after every batch and once a second).
    pub async fn run(
        &mut self,
        stop: impl Future<Output = ()>,
        idle_exit: Option<Duration>,
        mut done: impl FnMut(&PaidTotalsView, &ConsumeStats) -> bool,
    ) -> Result<ConsumeStats, ConsumeError> {
        tokio::pin!(stop);
        let mut stats = ConsumeStats::default();
        let mut idle_since = tokio::time::Instant::now();
        loop {
            if done(&self.view, &stats) {
                break;
            }
            if idle_exit.is_some_and(|idle| idle_since.elapsed() >= idle) {
                break;
            }
            let first = tokio::select! {
                biased;
                _ = &mut stop => break,
                m = self.consumer.recv() => m,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            };
            let first = match first {
                Ok(m) => Incoming::parse(&m)?,
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error; retrying");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < APPLY_BATCH {
                match self.consumer.recv().now_or_never() {
                    Some(Ok(m)) => batch.push(Incoming::parse(&m)?),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "consumer error; applying what was read");
                        break;
                    }
                    None => break,
                }
            }
            let applied = self.view.apply(&batch)?;
            stats.messages += batch.len() as u64;
            stats.applied += applied.applied;
            stats.duplicates += applied.duplicates;
            // Only now, with the view committed, tell Kafka these offsets are done. An
            // asynchronous commit that is lost only means a redelivery, which dedupes.
            self.consumer.commit(&next_offsets(&batch)?, CommitMode::Async)?;
            idle_since = tokio::time::Instant::now();
        }
        Ok(stats)
    }
}

/// The offsets to commit after a batch: one past the last message of each partition.
fn next_offsets(batch: &[Incoming]) -> Result<TopicPartitionList, ConsumeError> {
    let mut last: HashMap<(&str, i32), i64> = HashMap::new();
    for m in batch {
        let e = last.entry((m.topic.as_str(), m.partition)).or_insert(m.offset);
        *e = (*e).max(m.offset);
    }
    let mut tpl = TopicPartitionList::with_capacity(last.len());
    for ((topic, partition), offset) in last {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
    }
    Ok(tpl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn incoming(id: u128, topic: &str, ty: &str, data: serde_json::Value) -> Incoming {
        Incoming {
            topic: topic.into(),
            partition: 0,
            offset: id as i64,
            partner_id: "P1".into(),
            event_id: uuid::Uuid::from_u128(id),
            event_type: ty.into(),
            position: id as u64,
            data,
        }
    }

    #[test]
    fn a_redelivered_event_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut view = PaidTotalsView::open(&dir.path().join("view.db")).unwrap();
        let paid = |id, amount: &str| {
            incoming(
                id,
                TOPIC_PAYMENTS,
                PAID_EVENT_TYPE,
                json!({"partner_id": "P1", "amount": {"amount": amount, "currency": "CNY"}}),
            )
        };
        let other =
            incoming(3, TOPIC_PAYMENTS, "RebateCredited", json!({"amount": {"amount": "5.00", "currency": "CNY"}}));
        let first = view.apply(&[paid(1, "10.50"), paid(2, "0.25"), other.clone()]).unwrap();
        assert_eq!(first, Applied { applied: 3, duplicates: 0 });
        let again = view.apply(&[paid(2, "0.25"), other, paid(4, "1.00")]).unwrap();
        assert_eq!(again, Applied { applied: 1, duplicates: 2 });
        let totals = view.paid_totals().unwrap();
        assert_eq!(totals.len(), 1);
        assert_eq!(totals[0].amount, Decimal::from_str("11.75").unwrap());
        assert_eq!(totals[0].payments, 3);
        let order: Vec<u64> = view.applied_events().unwrap().iter().map(|e| e.position).collect();
        assert_eq!(order, [1, 2, 3, 4]);
    }

    #[test]
    fn the_committed_offset_is_one_past_the_last_applied_message_per_partition() {
        let mut a = incoming(1, "t", "X", json!({}));
        a.offset = 7;
        let mut b = a.clone();
        b.offset = 9;
        let mut c = a.clone();
        c.partition = 1;
        c.offset = 2;
        let tpl = next_offsets(&[b, a, c]).unwrap();
        assert_eq!(tpl.find_partition("t", 0).unwrap().offset(), Offset::Offset(10));
        assert_eq!(tpl.find_partition("t", 1).unwrap().offset(), Offset::Offset(3));
    }
}
