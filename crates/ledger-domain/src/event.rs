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
