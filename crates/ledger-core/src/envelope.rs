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

    /// [`NewEvent::new`] of a payload already written as canonical JSON (by
    /// [`crate::canonical`]); it is kept as given.
    pub fn from_canonical(
        event_type: String,
        schema_version: u32,
        occurred_at: DateTime<Utc>,
        data: String,
    ) -> NewEvent {
        NewEvent { event_id: Uuid::now_v7(), event_type, schema_version, occurred_at: to_micros(occurred_at), data }
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
        self.each_canonical_field(|s| {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s);
        });
        out
    }

    pub fn compute_hash(&self) -> ChainHash {
        // The fields go to the hasher as they are made: no buffer of the whole event.
        let mut h = Sha256::new();
        h.update(self.prev_hash.0);
        self.each_canonical_field(|s| {
            h.update((s.len() as u32).to_be_bytes());
            h.update(s);
        });
        ChainHash(h.finalize().into())
    }

    /// Each field of [`RecordedEvent::canonical_bytes`] in order, as its UTF-8 text, made
    /// without allocating (this runs for every event appended and every event verified).
    fn each_canonical_field(&self, mut field: impl FnMut(&[u8])) {
        let mut uuid = uuid::Uuid::encode_buffer();
        field(itoa(self.position, &mut [0; 20]));
        field(self.stream.as_bytes());
        field(itoa(self.version, &mut [0; 20]));
        field(self.event_id.hyphenated().encode_lower(&mut uuid).as_bytes());
        field(self.event_type.as_bytes());
        field(itoa(self.schema_version.into(), &mut [0; 20]));
        field(TimeText::new(self.occurred_at).as_str().as_bytes());
        field(TimeText::new(self.recorded_at).as_str().as_bytes());
        field(self.actor.principal.as_bytes());
        field(self.actor.role.as_str().as_bytes());
        field(self.correlation_id.hyphenated().encode_lower(&mut uuid).as_bytes());
        match self.causation_id {
            Some(c) => field(c.hyphenated().encode_lower(&mut uuid).as_bytes()),
            None => field(b""),
        }
        field(self.request_id.as_deref().unwrap_or("").as_bytes());
        field(self.data.as_bytes());
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

/// [`format_time`]'s text without a `String`: years 0 to 9999 are written here, any other
/// time (and a leap second) by chrono.
pub enum TimeText {
    Fixed([u8; 27]),
    Other(String),
}

impl TimeText {
    pub fn new(t: DateTime<Utc>) -> TimeText {
        use chrono::{Datelike, Timelike};
        let (year, nanos) = (t.year(), t.nanosecond());
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            return TimeText::Other(format_time(t));
        }
        let mut b = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        put(20, 6, nanos / 1_000);
        TimeText::Fixed(b)
    }

    pub fn as_str(&self) -> &str {
        match self {
            TimeText::Fixed(b) => std::str::from_utf8(b).expect("ASCII digits"),
            TimeText::Other(s) => s,
        }
    }
}

/// The decimal digits of `n`, written at the end of `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
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

    /// The canonical bytes as first written: a `String` per field.
    fn old_canonical_bytes(e: &RecordedEvent) -> Vec<u8> {
        let mut out = Vec::new();
        let mut field = |s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        field(&e.position.to_string());
        field(&e.stream);
        field(&e.version.to_string());
        field(&e.event_id.hyphenated().to_string());
        field(&e.event_type);
        field(&e.schema_version.to_string());
        field(&format_time(e.occurred_at));
        field(&format_time(e.recorded_at));
        field(&e.actor.principal);
        field(e.actor.role.as_str());
        field(&e.correlation_id.hyphenated().to_string());
        field(&e.causation_id.map(|c| c.hyphenated().to_string()).unwrap_or_default());
        field(e.request_id.as_deref().unwrap_or(""));
        field(&e.data);
        out
    }

    proptest::proptest! {
        #[test]
        fn canonical_bytes_and_hash_are_those_first_written(
            position in proptest::prelude::any::<u64>(), version in proptest::prelude::any::<u64>(),
            schema_version in proptest::prelude::any::<u32>(),
            stream in ".{0,12}", principal in ".{0,8}", request_id in proptest::option::of(".{0,8}"),
            ids in proptest::prelude::any::<(u128, u128, Option<u128>)>(),
            // Years -9999 to 19999, leap seconds included.
            times in proptest::prelude::any::<((i64, u32), (i64, u32))>(), role in 0usize..4,
            prev in proptest::prelude::any::<[u8; 32]>(),
        ) {
            let at = |(s, n): (i64, u32)| {
                let t = DateTime::from_timestamp(s.rem_euclid(1_000_000_000_000) - 315_537_897_600, n % 2_000_000_000);
                to_micros(t.unwrap_or_default())
            };
            let e = RecordedEvent {
                position, stream, version, event_id: Uuid::from_u128(ids.0), event_type: "LineRecorded".into(),
                schema_version, occurred_at: at(times.0), recorded_at: at(times.1),
                actor: Actor { principal, role: [Role::Admin, Role::Partner, Role::Auditor, Role::System][role] },
                correlation_id: Uuid::from_u128(ids.1), causation_id: ids.2.map(Uuid::from_u128), request_id,
                hash: ChainHash::ZERO, prev_hash: ChainHash(prev), data: r#"{"a":"\u0001é"}"#.into(),
            };
            let old = old_canonical_bytes(&e);
            proptest::prop_assert_eq!(e.canonical_bytes(), old.clone());
            let mut h = Sha256::new();
            h.update(prev);
            h.update(&old);
            proptest::prop_assert_eq!(e.compute_hash(), ChainHash(h.finalize().into()));
            let text = TimeText::new(e.occurred_at);
            proptest::prop_assert_eq!(text.as_str(), format_time(e.occurred_at));
        }
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
