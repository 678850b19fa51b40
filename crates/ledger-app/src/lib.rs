//! # ledger-app
//!
//! The application layer between the callers (HTTP, CLI, billing feed) and the pure
//! domain: it looks up the facts a command needs from other streams, runs the command
//! against its aggregate with optimistic concurrency and bounded retries, and carries who,
//! when and why into every event's envelope.
//!
//! It must not know about HTTP or Kafka; it knows the store only through `EventStore`.

use ledger_domain::{Decider, DomainError};
use ledger_store::StoreError;
use sha2::{Digest, Sha256};
use thiserror::Error;

use std::sync::Arc;

use ledger_core::workdays::WorkingCalendar;

pub mod anchors;
pub mod billing;
pub mod coupons;
pub mod credentials;
pub mod executor;
pub mod funds;
pub mod incentives;
pub mod lab_points;
pub mod rebate;
pub mod registry;
pub mod turns;

pub use executor::{CommandContext, Executor, Outcome};

/// The ledger's use cases: each looks up the facts its command needs from other streams
/// and runs the command against its aggregate through the [`Executor`].
pub struct Ledger {
    pub exec: Arc<Executor>,
    /// Working days for the withdrawal arrival date (§6): the built-in calendar, or the
    /// file `--calendar` loads.
    pub calendar: WorkingCalendar,
}

impl Ledger {
    pub fn new(exec: Arc<Executor>) -> Ledger {
        Ledger { exec, calendar: WorkingCalendar::builtin() }
    }

    pub fn with_calendar(self, calendar: WorkingCalendar) -> Ledger {
        Ledger { calendar, ..self }
    }

    /// For a write replayed by its request id: the id the first request created, read back
    /// from the event it stored (a fresh id would name nothing).
    pub(crate) async fn created_id<E>(&self, outcome: &Outcome<E>, field: &str) -> Result<Option<String>, AppError> {
        let Outcome::Replayed { appended } = outcome else { return Ok(None) };
        let events = self.exec.store().read_all(appended.first_position, 1).await?;
        Ok(events.first().and_then(|e| {
            serde_json::from_str::<serde_json::Value>(&e.data).ok()?.get(field)?.as_str().map(str::to_string)
        }))
    }
}

impl Ledger {
    /// The state of aggregate `D`'s `stream` that a write left, to answer it from: the
    /// version its append left, so that a retry under its request id answers what the first
    /// call answered, whatever came after (docs/API.md). A write that changed nothing
    /// answers from the current state (nothing was kept for it: a retry decides again).
    pub async fn state_after<D: executor::Aggregate, E>(
        &self,
        stream: &str,
        outcome: &Outcome<E>,
    ) -> Result<Arc<D::State>, AppError> {
        match outcome {
            Outcome::Unchanged { .. } => Ok(self.exec.load_shared::<D>(stream).await?.0),
            written => self.exec.load_at::<D>(stream, written.stream_version()).await,
        }
    }

    /// The events of aggregate `D` that one earlier append stored (an append holds nothing
    /// else between its first and last position).
    pub(crate) async fn appended_events<D: Decider>(
        &self,
        appended: &ledger_store::Appended,
    ) -> Result<Vec<D::Event>, AppError>
    where
        D::Event: ledger_domain::EventFamily,
    {
        let count = (appended.last_position + 1).saturating_sub(appended.first_position) as usize;
        let mut events = vec![];
        for e in self.exec.store().read_all(appended.first_position, count).await? {
            if ledger_domain::stream_family(&e.stream) == D::FAMILY {
                events.push(
                    ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
                        .map_err(|err| AppError::Decode { position: e.position, reason: err.to_string() })?,
                );
            }
        }
        Ok(events)
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum AppError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored event at position {position} cannot be read: {reason}")]
    Decode { position: u64, reason: String },
}

impl From<ledger_core::CoreError> for AppError {
    fn from(e: ledger_core::CoreError) -> AppError {
        AppError::Domain(DomainError::Invalid(e))
    }
}

impl AppError {
    pub fn code(&self) -> &str {
        match self {
            AppError::Domain(e) => e.code(),
            AppError::Store(e) => e.code(),
            AppError::Decode { .. } => "STORE_CORRUPT",
        }
    }
}

/// The fingerprint of a request for idempotency: SHA-256 of what it asked for.
pub fn fingerprint(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}
