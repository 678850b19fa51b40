//! # ledger-domain
//!
//! The rules of `DOMAIN.md` as plain data and plain functions. Each aggregate (one
//! consistency boundary, one event stream) is a module with its events, commands, state,
//! `decide(&State, Command, now) -> Result<Vec<Event>, DomainError>` and
//! `evolve(State, &Event) -> State`, and its tests next to the rules.
//!
//! Facts an aggregate needs from another stream (a customer's association type, a
//! partner's legal name, the policy in force) are looked up by the application layer and
//! passed in the command; balances that guard a rule always live in the stream that
//! enforces them, so the check and the append share one expected version.
//!
//! It must not know about storage, HTTP, Kafka or the clock: the caller passes `now`.

pub mod decider;
pub mod error;
pub mod event;
pub mod journal;
pub mod postings;
pub mod schema;

// Incentives side (see each module's doc).
pub mod customer;
pub mod incentives;
pub mod partner;
pub mod policy;

// Money movement side.
pub mod coupons;
pub mod funds;
pub mod lab_points;
pub mod rebate;

// The billing feed's batch receipts (idempotency of a whole batch).
pub mod billing;

pub use decider::Decider;
pub use error::{Blocker, DomainError};
pub use event::{decode, encode, stream_family, DecodeError, EventFamily};
pub use postings::{Posting, Side};
