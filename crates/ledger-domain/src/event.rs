//! How an aggregate's event enum becomes an envelope payload and back.
//!
//! Convention: every event enum is `#[serde(tag = "type")]` with struct variants; the tag is
//! the envelope's `type` and is stripped from the stored `data`. Each type has a schema
//! version (1 unless bumped); an older stored version is rewritten to the current shape by
//! `upcast` before it is deserialised, so old history always replays.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::anchors::Anchors;
use crate::coupons::Coupons;
use crate::customer::Customer;
use crate::funds::Funds;
use crate::incentives::Incentives;
use crate::lab_points::LabPoints;
use crate::partner::Partner;
use crate::policy::Policies;
use crate::rebate::Rebate;
use crate::Decider;

pub trait EventFamily: Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq {
    /// The current schema version of an event type.
    fn schema_version(_event_type: &str) -> u32 {
        1
    }

    /// Rewrites a payload stored under an older `version` into the current one.
    fn upcast(event_type: &str, version: u32, _payload: Value) -> Result<Value, DecodeError> {
        Err(DecodeError::UnknownVersion { event_type: event_type.to_string(), version })
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum DecodeError {
    #[error("event type {event_type} has no schema version {version}")]
    UnknownVersion { event_type: String, version: u32 },
    #[error("event payload does not match its schema: {0}")]
    Payload(String),
}

/// Every aggregate's stream family ([`Decider::FAMILY`]), so a stream name reads back.
pub const FAMILIES: [&str; 9] = [
    Partner::FAMILY,
    Customer::FAMILY,
    Policies::FAMILY,
    Incentives::FAMILY,
    Funds::FAMILY,
    Coupons::FAMILY,
    Rebate::FAMILY,
    LabPoints::FAMILY,
    Anchors::FAMILY,
];

/// A stream name as `(family, id)`: `("incentives", "P1")` of `incentives-P1`,
/// `("lab-points", "P1")` of `lab-points-P1`. A stream of no aggregate (`credentials`,
/// `billing-batches`) splits at its first '-', or is all family.
pub fn split_stream(stream: &str) -> (&str, &str) {
    let known = FAMILIES.iter().find_map(|f| {
        let id = stream.strip_prefix(f)?.strip_prefix('-')?;
        Some((&stream[..f.len()], id))
    });
    known.unwrap_or_else(|| stream.split_once('-').unwrap_or((stream, "")))
}

/// The family of a stream, which names its aggregate: `incentives` of `incentives-P1`.
pub fn stream_family(stream: &str) -> &str {
    split_stream(stream).0
}

/// Splits an event into `(type, schema version, payload without the tag)`.
pub fn encode<E: EventFamily>(event: &E) -> (String, u32, Value) {
    let mut value = serde_json::to_value(event).expect("events serialise");
    let obj = value.as_object_mut().expect("events are tagged structs");
    let ty = match obj.remove("type") {
        Some(Value::String(t)) => t,
        other => panic!("event enums must be #[serde(tag = \"type\")], found {other:?}"),
    };
    let version = E::schema_version(&ty);
    (ty, version, value)
}

/// [`encode`] with the payload as canonical JSON, written straight from the event (the
/// same bytes as `canonical_json` of `encode`'s value: the appended events' form).
pub fn encode_canonical<E: EventFamily>(event: &E) -> (String, u32, String) {
    let (ty, data) = ledger_core::canonical::to_canonical_json_untagged(event, "type")
        .unwrap_or_else(|e| panic!("event enums must be #[serde(tag = \"type\")] and serialise: {e}"));
    let version = E::schema_version(&ty);
    (ty, version, data)
}

/// Rebuilds an event from its envelope fields, upcasting older versions.
pub fn decode<E: EventFamily>(event_type: &str, version: u32, data: &str) -> Result<E, DecodeError> {
    let current = E::schema_version(event_type);
    if version > current {
        return Err(DecodeError::UnknownVersion { event_type: event_type.to_string(), version });
    }
    if version == current {
        // The common case, read without building a JSON value first (every load and every
        // projection decodes): the payload object with its tag put in front.
        let body = data.trim_start();
        let Some(rest) = body.strip_prefix('{') else {
            return Err(DecodeError::Payload("payload is not an object".into()));
        };
        let tag = serde_json::to_string(event_type).map_err(|e| DecodeError::Payload(e.to_string()))?;
        let empty = rest.trim_start().starts_with('}');
        let tagged = format!("{{\"type\":{tag}{}{rest}", if empty { "" } else { "," });
        return serde_json::from_str(&tagged).map_err(|e| DecodeError::Payload(e.to_string()));
    }
    let mut payload: Value = serde_json::from_str(data).map_err(|e| DecodeError::Payload(e.to_string()))?;
    if version < current {
        payload = E::upcast(event_type, version, payload)?;
    }
    let obj = payload.as_object_mut().ok_or_else(|| DecodeError::Payload("payload is not an object".into()))?;
    obj.insert("type".into(), Value::String(event_type.to_string()));
    serde_json::from_value(payload).map_err(|e| DecodeError::Payload(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::{TimeZone, Utc};
    use ledger_core::envelope::canonical_json;
    use ledger_core::{Currency, Money, Month, Rate};
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    use super::*;
    use crate::incentives::{IncentiveEvent, LineAssociation, LineReason};

    /// Asserts the appended form of each event is the old `canonical_json(encode(e))`;
    /// answers their types.
    fn same_bytes<E: EventFamily>(events: Vec<E>) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                let (ty, version, value) = encode(e);
                assert_eq!(encode_canonical(e), (ty.clone(), version, canonical_json(&value)), "{e:?}");
                assert!(ledger_core::canonical::writes_itself(e, "type"), "not left to the old way: {e:?}");
                ty
            })
            .collect()
    }

    #[test]
    fn every_event_of_every_family_is_appended_in_the_bytes_the_chain_was_built_on() {
        let mut types: BTreeSet<String> = BTreeSet::new();
        types.extend(same_bytes(crate::partner::examples()));
        types.extend(same_bytes(crate::customer::examples()));
        types.extend(same_bytes(crate::policy::examples()));
        types.extend(same_bytes(crate::rebate::examples()));
        types.extend(same_bytes(crate::lab_points::examples()));
        types.extend(same_bytes(crate::incentives::examples()));
        types.extend(same_bytes(crate::funds::examples()));
        types.extend(same_bytes(crate::coupons::examples()));
        types.extend(same_bytes(crate::billing::examples()));
        types.extend(same_bytes(crate::credential::examples()));
        types.extend(same_bytes(crate::anchors::examples()));
        let catalogue: BTreeSet<String> = crate::schema::catalog().into_iter().map(|s| s.event_type).collect();
        assert_eq!(types, catalogue, "an example of every event type of the catalogue");
    }

    prop_compose! {
        fn arb_line()(
            partner in any::<String>(), record in "[A-Za-z0-9_-]{1,20}", customer in any::<String>(),
            resale in any::<bool>(), product in any::<String>(), cents in 1i64..1_000_000_000_000, scale in 0u32..6,
            usd in any::<bool>(), consumed in 0i64..4_000_000_000, after in 0i64..10_000_000, micros in 0u32..1_000_000,
            months in (2000i32..2100, 1u32..13, 0u32..3), deferred in any::<bool>(), rate in prop::option::of(0i64..10_000),
            incentive in any::<i64>(), incentive_scale in 0u32..28, refund in any::<bool>(),
        ) -> IncentiveEvent {
            let at = |s: i64| Utc.timestamp_opt(s, micros * 1_000).unwrap();
            let month = Month::new(months.0, months.1).unwrap();
            let amount = Money::new(Decimal::new(cents, scale), if usd { Currency::USD } else { Currency::CNY });
            let rate = rate.map(|r| Rate::try_from(Decimal::new(r, 4)).unwrap());
            let incentive = Decimal::new(incentive, incentive_scale);
            if refund {
                IncentiveEvent::ConsumptionRefunded {
                    partner_id: partner, refund_id: format!("RF-{record}"), record_id: record, amount,
                    settled_at: at(consumed + after), original_incentive_month: month, incentive_month: month,
                    rate, incentive: -incentive.abs(),
                }
            } else {
                IncentiveEvent::ConsumptionRecorded {
                    partner_id: partner, record_id: record, customer_id: customer,
                    association_type: if resale { LineAssociation::Resale } else { LineAssociation::Referral },
                    product, amount, consumed_at: at(consumed), settled_at: at(consumed + after),
                    consumption_month: month, incentive_month: month,
                    deferred_from: deferred.then_some(month), rate, incentive,
                    reason: rate.is_none().then_some(LineReason::ProductNotEligible),
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_consumption_line_is_appended_in_the_bytes_the_chain_was_built_on(e in arb_line()) {
            let (ty, version, value) = encode(&e);
            prop_assert_eq!(encode_canonical(&e), (ty, version, canonical_json(&value)));
        }
    }
}
