//! The event envelope: every fact the ledger stores, with who, when, why and where it sits
//! in the global log, plus the hash-chain link that makes tampering evident.
//!
//! The hash of an event is `SHA-256(prev_hash ‖ canonical_bytes(event))`, where the
//! canonical bytes are every envelope field in a fixed order, each as a 4-byte big-endian
//! length and its UTF-8 text; `data` is canonical JSON (object keys sorted, no whitespace).
//! The first event's `prev_hash` is 32 zero bytes. Any SQLite or SQL tool can recompute it.

use std::fmt;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Vendor operator (finance staff).
    Admin,
    /// A partner, bound to one partner id.
    Partner,
    /// Reads everything, changes nothing.
    Auditor,
    /// The ledger itself (process managers, the billing feed importer).
    System,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Partner => "partner",
            Role::Auditor => "auditor",
            Role::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "partner" => Role::Partner,
            "auditor" => Role::Auditor,
            "system" => Role::System,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub principal: String,
    pub role: Role,
}

impl Actor {
    pub fn system(name: &str) -> Actor {
        Actor { principal: name.to_string(), role: Role::System }
    }
}

/// The metadata one command gives to all the events it appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMeta {
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// The caller's idempotency key, kept on each event for the audit trail.
    pub request_id: Option<String>,
}

impl CommandMeta {
    pub fn new(actor: Actor) -> CommandMeta {
        CommandMeta { actor, correlation_id: Uuid::now_v7(), causation_id: None, request_id: None }
    }
}

/// An event about to be appended: the store adds position, version, recorded time and the
/// chain link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// Business time: when the fact happened.
    pub occurred_at: DateTime<Utc>,
    /// Canonical JSON of the payload.
    pub data: String,
}

impl NewEvent {
    pub fn new<T: Serialize>(
        event_type: &str,
        schema_version: u32,
        occurred_at: DateTime<Utc>,
        data: &T,
    ) -> Result<NewEvent, serde_json::Error> {
        Ok(NewEvent::from_json(event_type, schema_version, occurred_at, &serde_json::to_value(data)?))
    }

    /// [`NewEvent::new`] of a payload already made a JSON value.
    pub fn from_json(
        event_type: &str,
        schema_version: u32,
        occurred_at: DateTime<Utc>,
        data: &serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event_type.to_string(),
            schema_version,
            occurred_at: to_micros(occurred_at),
            data: canonical_json(data),
        }
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub hash: ChainHash,
    pub prev_hash: ChainHash,
    /// Canonical JSON of the payload.
    #[serde(serialize_with = "raw_json", deserialize_with = "json_text")]
    pub data: String,
}

impl RecordedEvent {
    /// Builds the recorded form of `event` at `position`, computing its chain link.
    pub fn seal(
        event: NewEvent,
        meta: &CommandMeta,
        stream: &str,
        version: u64,
        position: u64,
        recorded_at: DateTime<Utc>,
        prev_hash: ChainHash,
    ) -> RecordedEvent {
        let mut e = RecordedEvent {
            position,
            stream: stream.to_string(),
            version,
            event_id: event.event_id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            occurred_at: to_micros(event.occurred_at),
            recorded_at: to_micros(recorded_at),
            actor: meta.actor.clone(),
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            request_id: meta.request_id.clone(),
            hash: ChainHash::ZERO,
            prev_hash,
            data: event.data,
        };
        e.hash = e.compute_hash();
        e
    }

    /// The canonical bytes that the hash covers (everything but the two hashes).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.data.len());
        let mut field = |s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        field(&self.position.to_string());
        field(&self.stream);
        field(&self.version.to_string());
        field(&self.event_id.hyphenated().to_string());
        field(&self.event_type);
        field(&self.schema_version.to_string());
        field(&format_time(self.occurred_at));
        field(&format_time(self.recorded_at));
        field(&self.actor.principal);
        field(self.actor.role.as_str());
        field(&self.correlation_id.hyphenated().to_string());
        field(&self.causation_id.map(|c| c.hyphenated().to_string()).unwrap_or_default());
        field(self.request_id.as_deref().unwrap_or(""));
        field(&self.data);
        out
    }

    pub fn compute_hash(&self) -> ChainHash {
        let mut h = Sha256::new();
        h.update(self.prev_hash.0);
        h.update(self.canonical_bytes());
        ChainHash(h.finalize().into())
    }

    /// Deserialises the payload.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.data)
    }
}

/// A link of the hash chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    pub const ZERO: ChainHash = ChainHash([0; 32]);

    pub fn from_slice(b: &[u8]) -> Option<ChainHash> {
        <[u8; 32]>::try_from(b).ok().map(ChainHash)
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

impl Serialize for ChainHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = hex::decode(&s).map_err(serde::de::Error::custom)?;
        ChainHash::from_slice(&bytes).ok_or_else(|| serde::de::Error::custom("a hash has 32 bytes"))
    }
}

/// Walks the global log in order and reports the first event that breaks the chain: a
/// gap in positions, a `prev_hash` that is not the previous event's hash, or a hash that
/// does not match the event's bytes.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev_hash: ChainHash,
    next_position: u64,
    checked: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub position: u64,
    pub reason: &'static str,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier { prev_hash: ChainHash::ZERO, next_position: 1, checked: 0 }
    }
}

impl ChainVerifier {
    /// A verifier that goes on after a log's last event (`position`, `hash`; 0 and
    /// `ChainHash::ZERO` for an empty log).
    pub fn after(position: u64, hash: ChainHash) -> ChainVerifier {
        ChainVerifier { prev_hash: hash, next_position: position + 1, checked: 0 }
    }

    pub fn check(&mut self, e: &RecordedEvent) -> Result<(), ChainBreak> {
        let brk = |reason| Err(ChainBreak { position: e.position, reason });
        if e.position != self.next_position {
            return Err(ChainBreak { position: self.next_position, reason: "position missing from the log" });
        }
        if e.prev_hash != self.prev_hash {
            return brk("prev_hash is not the previous event's hash");
        }
        if e.compute_hash() != e.hash {
            return brk("hash does not match the event's content");
        }
        self.prev_hash = e.hash;
        self.next_position += 1;
        self.checked += 1;
        Ok(())
    }

    pub fn checked(&self) -> u64 {
        self.checked
    }
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant whitespace.
pub fn canonical_json(v: &serde_json::Value) -> String {
    let mut out = Vec::with_capacity(512);
    write_canonical(v, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Keys and leaves are written by serde_json straight into `out` (no text per leaf: this
/// runs for every event appended).
fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // serde_json's map is usually sorted already; a feature could make it keep
            // insertion order, so sort anyway (cheap on sorted input).
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("a string serialises");
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        other => serde_json::to_writer(&mut *out, other).expect("a JSON value serialises"),
    }
}

/// Times are kept to the microsecond so that every store round-trips them exactly.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// RFC 3339 UTC with exactly six fractional digits: the stored and hashed form.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn raw_json<S: Serializer>(data: &str, s: S) -> Result<S::Ok, S::Error> {
    let raw: &serde_json::value::RawValue = serde_json::from_str(data).map_err(serde::ser::Error::custom)?;
    raw.serialize(s)
}

fn json_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(canonical_json(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(position: u64, prev: ChainHash) -> RecordedEvent {
        let ev =
            NewEvent::new("FundsCredited", 1, Utc::now(), &json!({"b": 1, "a": {"z": "1.00", "y": [2, 1]}})).unwrap();
        let meta = CommandMeta::new(Actor { principal: "ops".into(), role: Role::Admin });
        RecordedEvent::seal(ev, &meta, "funds-D1", position, position, Utc::now(), prev)
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let v: serde_json::Value = serde_json::from_str(r#"{ "b": 1, "a": {"z": "x", "y": [2, 1]} }"#).unwrap();
        assert_eq!(canonical_json(&v), r#"{"a":{"y":[2,1],"z":"x"},"b":1}"#);
    }

    #[test]
    fn the_same_event_always_gives_the_same_bytes() {
        let e = sample(1, ChainHash::ZERO);
        let round: RecordedEvent = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(round.canonical_bytes(), e.canonical_bytes());
        assert_eq!(round.compute_hash(), e.hash);
    }

    #[test]
    fn the_verifier_catches_every_kind_of_break() {
        let a = sample(1, ChainHash::ZERO);
        let b = sample(2, a.hash);
        let mut v = ChainVerifier::default();
        v.check(&a).unwrap();
        v.check(&b).unwrap();
        assert_eq!(v.checked(), 2);

        let mut tampered = b.clone();
        tampered.data = tampered.data.replace("1.00", "9.00");
        let mut v = ChainVerifier::default();
        v.check(&a).unwrap();
        assert_eq!(v.check(&tampered).unwrap_err().position, 2);

        let mut v = ChainVerifier::default();
        assert_eq!(v.check(&b).unwrap_err().reason, "position missing from the log");

        let c = sample(2, ChainHash([7; 32]));
        let mut v = ChainVerifier::default();
        v.check(&a).unwrap();
        assert_eq!(v.check(&c).unwrap_err().reason, "prev_hash is not the previous event's hash");
    }
}
