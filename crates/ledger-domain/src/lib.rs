//! # ledger-domain
//!
//! The rules of `DOMAIN.md` as plain data and plain functions. Each aggregate (one
//! consistency boundary, one event stream) is a module with its events, commands, state,
//! `decide(&State, Command, now) -> Result<Vec<Event>, DomainError>` and
//! `evolve(State, &Event) -> State`, and its tests next to the rules.
//!
//! It must not know about storage, HTTP, Kafka or the clock: the caller passes `now`.

pub mod decider;
pub mod error;

pub use decider::Decider;
pub use error::DomainError;
