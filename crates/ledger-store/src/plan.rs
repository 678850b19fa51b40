//! The append decision every backend shares: idempotency first (a retried request gets its
//! first result even if the stream has moved on since), then the expected version, then
//! positions, versions and chain links.

use chrono::{DateTime, Utc};
use ledger_core::{ChainHash, RecordedEvent};

use crate::{AppendRequest, Appended, StoreError};

/// What the log looks like to one append.
pub(crate) struct LogTip {
    pub next_position: u64,
    pub prev_hash: ChainHash,
}

pub(crate) enum Plan {
    /// The key was seen with the same fingerprint: answer with the first result.
    Replay(Appended),
    /// Append these sealed events.
    Append { events: Vec<RecordedEvent>, result: Appended },
}

/// `stream_version`: the stream's current version; `prior`: what the idempotency key
/// stored, if it was used before. The request was validated by the caller (off the
/// writer's path).
pub(crate) fn plan(
    req: &AppendRequest,
    stream_version: u64,
    prior: Option<([u8; 32], Appended)>,
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
    Ok(Plan::Append { events, result })
}
