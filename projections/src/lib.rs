//! # ledger-projections
//!
//! The read side: the reads of docs/API.md are served from here. A [`runner::Runner`] follows
//! the global log and applies events to read models kept in `<data>/projections.db`, each
//! with its checkpoint in the same transaction as its rows. The read models can be dropped
//! and rebuilt from position 1 at any time (`ledger projections rebuild`).
//!
//! The read models of domain entities (incentive months, rollover lines, quarterly
//! payments, coupons, withdrawals) keep the domain's own entity per row and change it with
//! the domain's own per-entity `apply`, the code the aggregates' evolve runs: no status or
//! amount rule is written here. Eligibility and the withdrawable balance are not read
//! models: they guard a rule, so the API computes them from the stream the rule is checked
//! against (docs/DESIGN.md).
//!
//! It must not decide anything: no command runs here, and the event log is never written.

use thiserror::Error;

pub mod adjustments;
pub mod codec;
pub mod coupons;
pub mod incentive_details;
pub mod incentive_months;
pub mod journal;
pub mod lookup;
pub mod partners;
pub mod quarterly_payments;
pub mod reader;
pub mod rollover_lines;
pub mod runner;
pub mod sql;
#[cfg(test)]
mod testkit;
pub mod withdrawals;

pub use reader::ReadPool;
pub use runner::{Projection, ReadModels, Runner};
pub use sql::Db;

/// Every read model the ledger keeps, in the order they apply each batch.
pub fn all() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(journal::Journal),
        Box::new(lookup::Lookup),
        Box::new(adjustments::Adjustments),
        Box::new(incentive_months::IncentiveMonths::default()),
        Box::new(rollover_lines::RolloverLines::default()),
        Box::new(incentive_details::IncentiveDetails::default()),
        Box::new(quarterly_payments::QuarterlyPayments),
        Box::new(coupons::Coupons),
        Box::new(withdrawals::Withdrawals),
        Box::new(partners::Partners),
    ]
}

#[derive(Debug, Error)]
pub enum ProjectionError {
    #[error("projection storage: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("projection storage (PostgreSQL): {0}")]
    Postgres(String),
    #[error("read models: {0}")]
    Config(String),
    /// Another process moved a shared read model's checkpoint: this one no longer applies
    /// them (it follows until it holds the lead again).
    #[error("another node applied the read models past this one's checkpoint of {projection}")]
    Superseded { projection: &'static str },
    #[error("event store: {0}")]
    Store(#[from] ledger_store::StoreError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("projection {projection} cannot apply the event at position {position}: {reason}")]
    Apply { projection: &'static str, position: u64, reason: String },
    #[error("event at position {position} cannot be read: {reason}")]
    Decode { position: u64, reason: String },
    #[error("no projection is named {0}")]
    Unknown(String),
    #[error("projections have applied position {applied}, not yet {position}")]
    Lagging { position: u64, applied: u64 },
}

impl From<tokio_postgres::Error> for ProjectionError {
    fn from(e: tokio_postgres::Error) -> ProjectionError {
        // The server's own message says what was wrong ("db error" alone does not).
        ProjectionError::Postgres(match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        })
    }
}

impl ProjectionError {
    pub fn code(&self) -> &'static str {
        match self {
            ProjectionError::Lagging { .. } => "PROJECTION_LAGGING",
            ProjectionError::Unknown(_) => "NOT_FOUND",
            _ => "PROJECTION_FAILED",
        }
    }
}
