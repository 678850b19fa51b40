//! # ledger-app
//!
//! The application layer between the callers (HTTP, CLI, billing feed) and the pure
//! domain: it looks up the facts a command needs from other streams, runs the command
//! against its aggregate with optimistic concurrency and bounded retries, and carries who,
//! when and why into every event's envelope.
//!
//! It must not know about HTTP or Kafka; it knows the store only through `EventStore`.

use ledger_domain::DomainError;
use ledger_store::StoreError;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub mod executor;

pub use executor::{CommandContext, Executor, Outcome};

#[derive(Debug, Clone, PartialEq, Error)]
pub enum AppError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored event at position {position} cannot be read: {reason}")]
    Decode { position: u64, reason: String },
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
