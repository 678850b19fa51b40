//! Realistic sample events and their schemas, for the relay's tests and benchmark (they do
//! not depend on the domain crate, so the relay can be tested on its own).
//!
//! Each payload carries `partner_id` and money as `{"amount": "12.34", "currency": "CNY"}`,
//! like the domain's events.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_core::envelope::{Actor, CommandMeta, NewEvent, Role};
use ledger_store::{AppendRequest, EventStore, ExpectedVersion, StoreError};
use serde_json::{json, Value};

/// Most events one append may carry (the store's own limit).
const BULK_APPEND: usize = ledger_store::MAX_EVENTS_PER_APPEND;
/// Bulk appends awaited at once (so the SQLite store commits them in groups).
const BULK_CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// `ConsumptionRecorded` on `incentives-{P}` → ledger.incentives.v1
    Consumption,
    /// `AllocationMade` on `funds-{P}` → ledger.adjustments.v1
    Allocation,
    /// `WithdrawalRequested` on `rebate-{P}` → ledger.withdrawals.v1
    Withdrawal,
    /// `QuarterlyPaymentPaid` on `incentives-{P}` → ledger.payments.v1
    QuarterlyPaymentPaid,
    /// `CredentialIssued` on `credentials`: never published.
    Credential,
}

/// The mix of a realistic log: consumption lines dominate.
pub fn kind_of(i: u64) -> SampleKind {
    match i % 20 {
        0..=13 => SampleKind::Consumption,
        14 | 15 => SampleKind::Allocation,
        16 | 17 => SampleKind::Withdrawal,
        18 => SampleKind::QuarterlyPaymentPaid,
        _ => SampleKind::Credential,
    }
}

fn money_schema() -> Value {
    json!({
        "type": "object",
        "required": ["amount", "currency"],
        "additionalProperties": false,
        "properties": {
            "amount": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,2})?$"},
            "currency": {"type": "string", "enum": ["CNY", "USD"]}
        }
    })
}

fn object_schema(required: &[&str], properties: Value) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": required,
        "additionalProperties": false,
        "properties": properties
    })
}

/// The schemas of the sample types (credential events need none: they are never produced).
pub fn schemas() -> Vec<(String, u32, Value)> {
    let id = json!({"type": "string", "minLength": 1, "maxLength": 64});
    let time = json!({"type": "string", "format": "date-time"});
    vec![
        (
            "ConsumptionRecorded".into(),
            1,
            object_schema(
                &["partner_id", "record_id", "customer_id", "product", "amount", "consumed_at", "settled_at"],
                json!({
                    "partner_id": id, "record_id": id, "customer_id": id, "product": id,
                    "amount": money_schema(), "consumed_at": time, "settled_at": time,
                    "incentive_month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}
                }),
            ),
        ),
        (
            "AllocationMade".into(),
            1,
            object_schema(
                &["partner_id", "record_id", "counterparty", "amount", "occurred_at"],
                json!({
                    "partner_id": id, "record_id": id, "amount": money_schema(), "occurred_at": time,
                    "remark": {"type": ["string", "null"]},
                    "counterparty": {
                        "type": "object", "required": ["type", "id"],
                        "properties": {"type": {"enum": ["customer", "reseller"]}, "id": id}
                    }
                }),
            ),
        ),
        (
            "WithdrawalRequested".into(),
            1,
            object_schema(
                &["partner_id", "withdrawal_id", "amount", "requested_at"],
                json!({"partner_id": id, "withdrawal_id": id, "amount": money_schema(), "requested_at": time}),
            ),
        ),
        (
            "QuarterlyPaymentPaid".into(),
            1,
            object_schema(
                &["partner_id", "payment_id", "quarter", "amount", "method", "paid_at"],
                json!({
                    "partner_id": id, "payment_id": id, "amount": money_schema(), "paid_at": time,
                    "quarter": {"type": "string", "pattern": "^[0-9]{4}Q[1-4]$"},
                    "method": {"enum": ["bank_transfer", "cloud_account_credit"]}
                }),
            ),
        ),
    ]
}

pub fn schema_set() -> crate::schema::SchemaSet {
    crate::schema::SchemaSet::from_list(schemas()).expect("sample schemas compile")
}

/// A deterministic amount in 0.01..=999.99 for event `seq`.
pub fn amount_of(seq: u64) -> String {
    let cents = seq.wrapping_mul(7_919) % 99_999 + 1;
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The stream and payload of one sample event of `kind` for `partner`.
pub fn event(kind: SampleKind, partner: &str, seq: u64) -> (String, NewEvent) {
    let base = Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).single().expect("a valid date");
    let at: DateTime<Utc> = base + Duration::seconds((seq % 2_000_000) as i64);
    let t = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let money = json!({"amount": amount_of(seq), "currency": "CNY"});
    let (stream, ty, data) = match kind {
        SampleKind::Consumption => (
            ledger_domain::incentives::stream_id(partner),
            "ConsumptionRecorded",
            json!({
                "partner_id": partner, "record_id": format!("R{seq}"), "customer_id": format!("C{}", seq % 97),
                "product": "ecs.general", "amount": money, "consumed_at": t(at),
                "settled_at": t(at + Duration::days(2)), "incentive_month": "2026-07"
            }),
        ),
        SampleKind::Allocation => (
            ledger_domain::funds::stream_id(partner),
            "AllocationMade",
            json!({
                "partner_id": partner, "record_id": format!("A{seq}"),
                "counterparty": {"type": "customer", "id": format!("C{}", seq % 97)},
                "amount": money, "occurred_at": t(at), "remark": null
            }),
        ),
        SampleKind::Withdrawal => (
            ledger_domain::rebate::stream_id(partner),
            "WithdrawalRequested",
            json!({"partner_id": partner, "withdrawal_id": format!("W{seq}"), "amount": money, "requested_at": t(at)}),
        ),
        SampleKind::QuarterlyPaymentPaid => (
            ledger_domain::incentives::stream_id(partner),
            "QuarterlyPaymentPaid",
            json!({
                "partner_id": partner, "payment_id": format!("Q{seq}"), "quarter": "2026Q3",
                "amount": money, "method": "bank_transfer", "paid_at": t(at)
            }),
        ),
        SampleKind::Credential => (
            "credentials".to_string(),
            "CredentialIssued",
            json!({"partner_id": partner, "access_key": format!("AK{seq}"), "secret_hash": "00".repeat(32)}),
        ),
    };
    (stream, NewEvent::new(ty, 1, at, &data).expect("sample events serialise"))
}

fn meta() -> CommandMeta {
    CommandMeta::new(Actor { principal: "sample".into(), role: Role::System })
}

/// Appends `count` events one per append, partners and kinds interleaved as in a live
/// log. Returns the last position.
pub async fn append_mixed(store: &dyn EventStore, count: u64, partners: u64) -> Result<u64, StoreError> {
    let mut last = 0;
    for i in 0..count {
        let partner = format!("P{}", (i * 7 + i / 3) % partners.max(1));
        let (stream, event) = event(kind_of(i), &partner, i);
        let req = AppendRequest {
            stream,
            expected: ExpectedVersion::Any,
            events: vec![event],
            meta: meta(),
            idempotency: None,
            event_keys: vec![],
        };
        last = store.append(req).await?.last_position;
    }
    Ok(last)
}

/// Appends `count` events in appends of `chunk` (at most 1,000) events of one stream each,
/// several appends at once so a SQLite store commits them in groups. Returns the last
/// position.
pub async fn append_bulk(
    store: Arc<dyn EventStore>,
    count: u64,
    partners: u64,
    chunk: usize,
) -> Result<u64, StoreError> {
    assert!((1..=BULK_APPEND).contains(&chunk), "an append carries 1 to {BULK_APPEND} events");
    let mut index = 0u64;
    let mut done = 0u64;
    let mut last = 0;
    while done < count {
        let mut tasks = Vec::with_capacity(BULK_CONCURRENCY);
        for _ in 0..BULK_CONCURRENCY {
            if done >= count {
                break;
            }
            let n = (count - done).min(chunk as u64);
            let kind = kind_of(index);
            let partner = format!("P{}", (index * 7 + index / 3) % partners.max(1));
            let events: Vec<(String, NewEvent)> = (done..done + n).map(|seq| event(kind, &partner, seq)).collect();
            let stream = events[0].0.clone();
            let req = AppendRequest {
                stream,
                expected: ExpectedVersion::Any,
                events: events.into_iter().map(|(_, e)| e).collect(),
                meta: meta(),
                idempotency: None,
                event_keys: vec![],
            };
            let store = store.clone();
            tasks.push(tokio::spawn(async move { store.append(req).await }));
            done += n;
            index += 1;
        }
        for t in tasks {
            let appended = t.await.map_err(|e| StoreError::Backend(e.to_string()))??;
            last = last.max(appended.last_position);
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_payload_is_valid_against_its_schema() {
        let set = schema_set();
        for i in 0..200 {
            let kind = kind_of(i);
            if kind == SampleKind::Credential {
                continue;
            }
            let (_, e) = event(kind, "P1", i);
            let data: Value = serde_json::from_str(&e.data).unwrap();
            set.check(&e.event_type, e.schema_version, &data).unwrap();
        }
    }
}
