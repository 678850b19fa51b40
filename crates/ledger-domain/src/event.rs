//! How an aggregate's event enum becomes an envelope payload and back.
//!
//! Convention: every event enum is `#[serde(tag = "type")]` with struct variants; the tag is
//! the envelope's `type` and is stripped from the stored `data`. Each type has a schema
//! version (1 unless bumped); an older stored version is rewritten to the current shape by
//! `upcast` before it is deserialised, so old history always replays.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use thiserror::Error;

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

/// The family of a stream, which names its aggregate: `incentives` of `incentives-P1`.
pub fn stream_family(stream: &str) -> &str {
    stream.split_once('-').map_or(stream, |(f, _)| f)
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
    let mut payload: Value = serde_json::from_str(data).map_err(|e| DecodeError::Payload(e.to_string()))?;
    let current = E::schema_version(event_type);
    if version > current {
        return Err(DecodeError::UnknownVersion { event_type: event_type.to_string(), version });
    }
    if version < current {
        payload = E::upcast(event_type, version, payload)?;
    }
    let obj = payload.as_object_mut().ok_or_else(|| DecodeError::Payload("payload is not an object".into()))?;
    obj.insert("type".into(), Value::String(event_type.to_string()));
    serde_json::from_value(payload).map_err(|e| DecodeError::Payload(e.to_string()))
}
