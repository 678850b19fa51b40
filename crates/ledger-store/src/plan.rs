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

pub(crate) enum Plan {
    /// The key was seen with the same fingerprint: answer with the first result.
    Replay(Appended),
    /// Append these sealed events and keep these keys (the request's, then its events').
    Append { events: Vec<RecordedEvent>, result: Appended, keys: Vec<KeyRecord> },
}

/// A key as kept: key, fingerprint and the first result it answers with.
pub(crate) type KeyRecord = (String, [u8; 32], Appended);

/// The first of `req`'s event keys that `is_kept` (already stored, or earlier in a group).
pub(crate) fn kept_event_key(req: &AppendRequest, is_kept: impl Fn(&str) -> bool) -> Option<&str> {
    req.event_keys.iter().map(|k| k.key.as_str()).find(|k| is_kept(k))
}

/// `stream_version`: the stream's current version; `prior`: what the idempotency key
/// stored, if it was used before; `kept`: one of the request's event keys that is already
/// kept, if any. The request was validated by the caller (off the writer's path).
pub(crate) fn plan(
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
/// group). Shared by the backends that decide a whole group at once (PostgreSQL, KurrentDB).
pub(crate) trait StoredLog {
    fn stream_version(&self, stream: &str) -> u64;
    fn idempotency_key(&self, key: &str) -> Option<([u8; 32], Appended)>;
    fn has_event(&self, id: &uuid::Uuid) -> bool;
}

/// The outcome of deciding a group: one answer per request, in order, and what to write.
pub(crate) struct GroupPlan {
    pub answers: Vec<Result<Appended, StoreError>>,
    /// Sealed events to write, in position order, continuing the chain from the tip.
    pub events: Vec<RecordedEvent>,
    /// Every key written (of requests and of events).
    pub keys: Vec<KeyRecord>,
}

/// Decides each request in order as if the ones before it in the group were already
/// stored: versions, keys and event ids of earlier requests count for later ones.
pub(crate) fn plan_group<'a>(
    group: impl IntoIterator<Item = &'a AppendRequest>,
    stored: &dyn StoredLog,
    mut tip: LogTip,
    now: DateTime<Utc>,
) -> GroupPlan {
    let mut versions: HashMap<&str, u64> = HashMap::new();
    let mut keys: HashMap<String, ([u8; 32], Appended)> = HashMap::new();
    let mut ids: HashSet<uuid::Uuid> = HashSet::new();
    let mut out = GroupPlan { answers: vec![], events: vec![], keys: vec![] };
    for req in group {
        let version = versions.get(req.stream.as_str()).copied().unwrap_or_else(|| stored.stream_version(&req.stream));
        let prior = req
            .idempotency
            .as_ref()
            .and_then(|k| keys.get(k.key.as_str()).copied().or_else(|| stored.idempotency_key(&k.key)));
        let kept = kept_event_key(req, |k| keys.contains_key(k) || stored.idempotency_key(k).is_some());
        let (events, result, new_keys) = match plan(req, version, prior, kept, &tip, now) {
            Ok(Plan::Append { events, result, keys }) => (events, result, keys),
            Ok(Plan::Replay(first)) => {
                out.answers.push(Ok(first));
                continue;
            }
            Err(e) => {
                out.answers.push(Err(e));
                continue;
            }
        };
        if let Some(dup) = events.iter().find(|e| ids.contains(&e.event_id) || stored.has_event(&e.event_id)) {
            out.answers.push(Err(StoreError::DuplicateEventId(dup.event_id)));
            continue;
        }
        ids.extend(events.iter().map(|e| e.event_id));
        for (key, fingerprint, first) in &new_keys {
            keys.insert(key.clone(), (*fingerprint, *first));
        }
        out.keys.extend(new_keys);
        tip = LogTip { next_position: result.last_position + 1, prev_hash: events.last().expect("non-empty").hash };
        versions.insert(req.stream.as_str(), result.stream_version);
        out.events.extend(events);
        out.answers.push(Ok(result));
    }
    out
}

/// Moves a head watch forward (never back).
pub(crate) fn raise(head: &watch::Sender<u64>, position: u64) {
    head.send_if_modified(|h| {
        let moved = position > *h;
        *h = (*h).max(position);
        moved
    });
}
