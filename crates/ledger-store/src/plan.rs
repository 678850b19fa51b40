//! The append decision every backend shares: idempotency first (a retried request gets its
//! first result even if the stream has moved on since), then the expected version, then the
//! event keys (none may be kept already), then positions, versions and chain links.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use ledger_core::{ChainHash, RecordedEvent};
use tokio::sync::watch;

use crate::{AppendRequest, Appended, StoreError};

/// What the log looks like to one append.
pub(crate) struct LogTip {
    pub next_position: u64,
    pub prev_hash: ChainHash,
}

enum Plan {
    /// The key was seen with the same fingerprint: answer with the first result.
    Replay(Appended),
    /// Append these sealed events and keep these keys (the request's, then its events').
    Append { events: Vec<RecordedEvent>, result: Appended, keys: Vec<KeyRecord> },
}

/// A key as kept: key, fingerprint and the first result it answers with.
pub(crate) type KeyRecord = (String, [u8; 32], Appended);

/// `stream_version`: the stream's current version; `prior`: what the idempotency key
/// stored, if it was used before; `kept`: one of the request's event keys that is already
/// kept, if any. The request was validated by the caller (off the writer's path).
fn plan(
    req: &AppendRequest,
    stream_version: u64,
    prior: Option<([u8; 32], Appended)>,
    kept: Option<&str>,
    tip: &LogTip,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    if let (Some(key), Some((fingerprint, first))) = (&req.idempotency, prior) {
        return if fingerprint == key.fingerprint {
            Ok(Plan::Replay(Appended { replayed: true, ..first }))
        } else {
            Err(StoreError::IdempotencyConflict { key: key.key.clone() })
        };
    }
    if !req.expected.admits(stream_version) {
        return Err(StoreError::ConcurrencyConflict {
            stream: req.stream.clone(),
            expected: req.expected,
            actual: stream_version,
        });
    }
    if let Some(key) = kept {
        return Err(StoreError::IdempotencyConflict { key: key.to_string() });
    }
    let mut prev = tip.prev_hash;
    let mut events = Vec::with_capacity(req.events.len());
    for (i, e) in req.events.iter().enumerate() {
        let i = i as u64;
        let sealed = RecordedEvent::seal(
            e.clone(),
            &req.meta,
            &req.stream,
            stream_version + 1 + i,
            tip.next_position + i,
            now,
            prev,
        );
        prev = sealed.hash;
        events.push(sealed);
    }
    let n = events.len() as u64;
    let result = Appended {
        first_position: tip.next_position,
        last_position: tip.next_position + n - 1,
        stream_version: stream_version + n,
        replayed: false,
    };
    let keys = req
        .idempotency
        .iter()
        .map(|k| (k.key.clone(), k.fingerprint, result))
        .chain(req.event_keys.iter().map(|k| {
            let e = &events[k.event];
            let one = Appended {
                first_position: e.position,
                last_position: e.position,
                stream_version: e.version,
                replayed: false,
            };
            (k.key.clone(), k.fingerprint, one)
        }))
        .collect();
    Ok(Plan::Append { events, result, keys })
}

/// What deciding a group of appends needs to know about the log as stored (before the
/// group). Every backend decides its groups with [`plan_group`].
pub(crate) trait StoredLog {
    fn stream_version(&self, stream: &str) -> Result<u64, StoreError>;
    fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError>;
    /// Whether an event's key is kept. A backend whose storage refuses a repeated key by
    /// itself may answer false and redo the group checking (SQLite): a key only refuses,
    /// where a request's key answers with its first result and must be looked up.
    fn event_key_kept(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.idempotency_key(key)?.is_some())
    }
    /// Whether an event with this id is stored. A backend whose storage refuses a repeated
    /// id by itself may answer false and redo the group checking (SQLite).
    fn has_event(&self, id: &uuid::Uuid) -> Result<bool, StoreError>;
}

/// The outcome of deciding a group: one answer per unit (an `append` is a unit of one
/// request, an `append_all` a unit of several), in order, and what to write.
pub(crate) struct GroupPlan {
    pub answers: Vec<Result<Vec<Appended>, StoreError>>,
    /// Sealed events to write, in position order, continuing the chain from the tip.
    pub events: Vec<RecordedEvent>,
    /// Every key written (of requests and of events).
    pub keys: Vec<KeyRecord>,
}

/// Stream versions, keys and event ids decided so far, on top of the stored log.
#[derive(Default)]
struct Decided {
    versions: HashMap<String, u64>,
    keys: HashMap<String, ([u8; 32], Appended)>,
    ids: HashSet<uuid::Uuid>,
}

/// What one unit adds: kept apart until every request of it is decided, so a refused
/// request leaves no trace of the ones before it.
struct UnitPlan {
    decided: Decided,
    tip: LogTip,
    events: Vec<RecordedEvent>,
    keys: Vec<KeyRecord>,
    results: Vec<Appended>,
}

/// Decides each unit in order as if the ones before it in the group were already stored:
/// versions, keys and event ids of earlier units count for later ones. A unit is decided
/// whole: all its requests are appended, or none (the first refusal is its answer).
pub(crate) fn plan_group<'a>(
    group: impl IntoIterator<Item = &'a [AppendRequest]>,
    stored: &dyn StoredLog,
    mut tip: LogTip,
    now: DateTime<Utc>,
) -> GroupPlan {
    let mut decided = Decided::default();
    let mut out = GroupPlan { answers: vec![], events: vec![], keys: vec![] };
    for unit in group {
        match plan_unit(unit, &decided, stored, &tip, now) {
            Err(e) => out.answers.push(Err(e)),
            Ok(Err(replayed)) => out.answers.push(Ok(vec![replayed; unit.len()])),
            Ok(Ok(planned)) => {
                decided.versions.extend(planned.decided.versions);
                decided.keys.extend(planned.decided.keys);
                decided.ids.extend(planned.decided.ids);
                tip = planned.tip;
                out.events.extend(planned.events);
                out.keys.extend(planned.keys);
                out.answers.push(Ok(planned.results));
            }
        }
    }
    out
}

/// One unit against the log as stored plus what the group `decided` before it: what it
/// appends, or (`Ok(Err(_))`) the kept result its key replays.
fn plan_unit(
    unit: &[AppendRequest],
    decided: &Decided,
    stored: &dyn StoredLog,
    tip: &LogTip,
    now: DateTime<Utc>,
) -> Result<Result<UnitPlan, Appended>, StoreError> {
    let mut own = UnitPlan {
        decided: Decided::default(),
        tip: LogTip { next_position: tip.next_position, prev_hash: tip.prev_hash },
        events: vec![],
        keys: vec![],
        results: vec![],
    };
    let key_of = |own: &Decided, key: &str| -> Result<Option<([u8; 32], Appended)>, StoreError> {
        match own.keys.get(key).or_else(|| decided.keys.get(key)) {
            Some(k) => Ok(Some(*k)),
            None => stored.idempotency_key(key),
        }
    };
    for req in unit {
        let version = match own.decided.versions.get(&req.stream).or_else(|| decided.versions.get(&req.stream)) {
            Some(v) => *v,
            None => stored.stream_version(&req.stream)?,
        };
        let prior = match &req.idempotency {
            Some(k) => key_of(&own.decided, &k.key)?,
            None => None,
        };
        let mut kept = None;
        for k in &req.event_keys {
            let decided_here = own.decided.keys.contains_key(&k.key) || decided.keys.contains_key(&k.key);
            if decided_here || stored.event_key_kept(&k.key)? {
                kept = Some(k.key.as_str());
                break;
            }
        }
        let (events, result, keys) = match plan(req, version, prior, kept, &own.tip, now)? {
            // Only a unit's first request carries a key (validated): nothing was decided yet.
            Plan::Replay(first) => return Ok(Err(first)),
            Plan::Append { events, result, keys } => (events, result, keys),
        };
        for e in &events {
            let id = &e.event_id;
            if own.decided.ids.contains(id) || decided.ids.contains(id) || stored.has_event(id)? {
                return Err(StoreError::DuplicateEventId(*id));
            }
        }
        own.decided.ids.extend(events.iter().map(|e| e.event_id));
        for (key, fingerprint, first) in &keys {
            own.decided.keys.insert(key.clone(), (*fingerprint, *first));
        }
        own.decided.versions.insert(req.stream.clone(), result.stream_version);
        own.tip = LogTip { next_position: result.last_position + 1, prev_hash: events.last().expect("non-empty").hash };
        own.events.extend(events);
        own.keys.extend(keys);
        own.results.push(result);
    }
    // The unit's key answers for the whole unit: its replay must find every stream's events.
    if let (Some(key), Some(last)) = (&unit[0].idempotency, own.results.last().copied()) {
        let span = Appended { last_position: last.last_position, ..own.results[0] };
        for k in own.keys.iter_mut().filter(|k| k.0 == key.key) {
            k.2 = span;
        }
        own.decided.keys.insert(key.key.clone(), (key.fingerprint, span));
    }
    Ok(Ok(own))
}

/// Moves a head watch forward (never back).
pub(crate) fn raise(head: &watch::Sender<u64>, position: u64) {
    head.send_if_modified(|h| {
        let moved = position > *h;
        *h = (*h).max(position);
        moved
    });
}
