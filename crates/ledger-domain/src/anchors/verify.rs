//! An auditor's check of a log against anchors, with nothing but the log (the store, or a
//! `ledger events` export), the anchors (from anywhere: a file, the Kafka topic, the store)
//! and the public keys the auditor trusts.
//!
//! 1. Every anchor's signature must verify with the key it names, and that key must be the
//!    anchor key at that point: a key the auditor trusts for the first anchor, then the key
//!    each rotation introduced. An auditor may trust any key of the sequence: a rotation is
//!    signed by both its keys, so trust flows along it both ways. Old anchors stay
//!    verifiable after a rotation, and an old (perhaps leaked) key cannot sign new ones.
//! 2. The log must hold the hash chain, and at every anchored position the anchored hash.
//! 3. The log must reach every anchored position.
//!
//! The verdict names the first position that disagrees: a forged anchor's position, the
//! first anchored position whose hash differs (a rewrite happened at or before it, after the
//! last anchored position that agreed), or the first position missing from a log shorter
//! than an anchor.

use std::collections::BTreeSet;

use ledger_core::envelope::ChainVerifier;
use ledger_core::RecordedEvent;
use serde::Serialize;
use serde_json::Value;

use super::key::{check, PublicKey};
use super::{AnchorEvent, ANCHOR_EVENT_TYPES};
use crate::decode;

/// The first position where the log, the anchors and the keys do not agree, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disagreement {
    pub position: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Events of the log whose chain link was checked.
    pub checked: u64,
    /// Anchors whose signature and key held.
    pub anchors: usize,
    /// The highest anchored position the log agreed with (0: none).
    pub anchored_through: u64,
    pub first_bad: Option<Disagreement>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Reads one anchor from a JSON line: a recorded event as `ledger events` and
/// `GET /v1/events` print it, or an anchor payload with its `type` (as `GET
/// /v1/audit/anchors` lists them, or a topic message's value with its `event_type` header).
/// `Ok(None)` for an event of another type, so a whole exported log may be given.
pub fn read_anchor(value: &Value) -> Result<Option<AnchorEvent>, String> {
    let obj = value.as_object().ok_or("an anchor is a JSON object")?;
    let ty = obj.get("type").and_then(Value::as_str).ok_or("an anchor has a \"type\"")?;
    if !ANCHOR_EVENT_TYPES.contains(&ty) {
        return Ok(None);
    }
    let version = match obj.get("schema_version") {
        None => 1,
        Some(v) => v.as_u64().and_then(|v| u32::try_from(v).ok()).ok_or("schema_version is a number")?,
    };
    let payload = match obj.get("data") {
        Some(data) => data.clone(),
        None => {
            let mut payload = obj.clone();
            for envelope in ["type", "schema_version", "position"] {
                payload.remove(envelope);
            }
            Value::Object(payload)
        }
    };
    decode::<AnchorEvent>(ty, version, &payload.to_string()).map(Some).map_err(|e| e.to_string())
}

/// Walks a log in order against a set of anchors (see the module doc).
#[derive(Debug)]
pub struct AnchorVerifier {
    /// The anchors whose signature and key held, by anchored position.
    anchors: Vec<AnchorEvent>,
    next: usize,
    chain: ChainVerifier,
    last_position: u64,
    anchored_through: u64,
    forged: Option<Disagreement>,
    in_log: Option<Disagreement>,
}

impl AnchorVerifier {
    pub fn new(mut anchors: Vec<AnchorEvent>, trusted: &[PublicKey]) -> AnchorVerifier {
        anchors.sort_by_key(AnchorEvent::head_position);
        let mut forged: Option<Disagreement> = None;
        let mut forge = |a: &AnchorEvent, why: String| {
            let position = a.head_position();
            match &forged {
                Some(f) if f.position <= position => {}
                _ => {
                    let reason = format!("the anchor of position {position} signed at {} {why}", a.signed_at());
                    forged = Some(Disagreement { position, reason });
                }
            }
        };
        let mut signed = Vec::with_capacity(anchors.len());
        for a in anchors {
            let statement = a.statement();
            let result = match &a {
                _ if a.head_position() == 0 => Err("names position 0, which no event has".to_string()),
                AnchorEvent::ChainAnchored { public_key, signature, .. } => {
                    check(public_key, &statement, signature).map_err(|e| format!("is forged: {e}"))
                }
                AnchorEvent::AnchorKeyRotated { public_key, new_public_key, signature, new_key_signature, .. } => {
                    check(public_key, &statement, signature)
                        .and_then(|()| check(new_public_key, &statement, new_key_signature))
                        .map_err(|e| format!("is forged: {e}"))
                }
            };
            match result {
                Ok(()) => signed.push(a),
                Err(why) => forge(&a, why),
            }
        }

        // Trust flows along each rotation: both keys signed it.
        let mut trusted: BTreeSet<String> = trusted.iter().map(PublicKey::to_string).collect();
        loop {
            let before = trusted.len();
            for a in &signed {
                if let Some(new_key) = a.new_public_key() {
                    if trusted.contains(a.public_key()) || trusted.contains(new_key) {
                        trusted.insert(a.public_key().to_string());
                        trusted.insert(new_key.to_string());
                    }
                }
            }
            if trusted.len() == before {
                break;
            }
        }

        let mut current: Option<String> = None;
        let mut kept = Vec::with_capacity(signed.len());
        for a in signed {
            match &current {
                None if !trusted.contains(a.public_key()) => {
                    forge(&a, format!("is signed by key {}, which is not a trusted anchor key", a.public_key()));
                    continue;
                }
                Some(c) if c != a.public_key() => {
                    forge(
                        &a,
                        format!(
                            "is signed by key {}, but the anchor key at that point is {c} (a new key is introduced \
                             only by a rotation signed by the current one)",
                            a.public_key()
                        ),
                    );
                    continue;
                }
                _ => {}
            }
            current = Some(a.new_public_key().unwrap_or(a.public_key()).to_string());
            kept.push(a);
        }
        AnchorVerifier {
            anchors: kept,
            next: 0,
            chain: ChainVerifier::default(),
            last_position: 0,
            anchored_through: 0,
            forged,
            in_log: None,
        }
    }

    /// Checks the next event of the log. An error is the log's first disagreement: the walk
    /// can stop there.
    pub fn check(&mut self, e: &RecordedEvent) -> Result<(), Disagreement> {
        if let Err(b) = self.chain.check(e) {
            return Err(self.stop(b.position, format!("the hash chain breaks: {}", b.reason)));
        }
        self.last_position = e.position;
        while let Some(a) = self.anchors.get(self.next).filter(|a| a.head_position() == e.position) {
            let hash = e.hash.to_string();
            if a.head_hash() != hash {
                let reason = format!(
                    "the log's hash at position {} is {hash}, but the anchor signed at {} says {}: the log was \
                     rewritten after position {} (the last anchored position that agrees)",
                    e.position,
                    a.signed_at(),
                    a.head_hash(),
                    self.anchored_through
                );
                return Err(self.stop(e.position, reason));
            }
            self.anchored_through = e.position;
            self.next += 1;
        }
        Ok(())
    }

    /// Records a disagreement found while reading the log (an unreadable event).
    pub fn stop(&mut self, position: u64, reason: String) -> Disagreement {
        let d = Disagreement { position, reason };
        self.in_log = Some(d.clone());
        d
    }

    pub fn finish(self) -> Verdict {
        let mut in_log = self.in_log;
        if in_log.is_none() {
            if let Some(a) = self.anchors.get(self.next) {
                let position = self.last_position + 1;
                in_log = Some(Disagreement {
                    position,
                    reason: format!(
                        "the log ends at position {}, but the anchor signed at {} covers position {}: the events \
                         from position {position} on were dropped",
                        self.last_position,
                        a.signed_at(),
                        a.head_position()
                    ),
                });
            }
        }
        let first_bad = match (self.forged, in_log) {
            (Some(f), Some(l)) => Some(if f.position <= l.position { f } else { l }),
            (f, l) => f.or(l),
        };
        Verdict {
            checked: self.chain.checked(),
            anchors: self.anchors.len(),
            anchored_through: self.anchored_through,
            first_bad,
        }
    }
}
