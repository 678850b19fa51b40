//! # ledger-domain
//!
//! The rules of `docs/DOMAIN.md` as plain data and plain functions. Each aggregate (one
//! consistency boundary, one event stream, a [`Decider`] with its stream `FAMILY`) is a
//! folder read top to bottom: `mod.rs` (which rules live here, re-exports), `event.rs`,
//! `command.rs` (one struct per command), `decide.rs`
//! (`decide(&State, Command, now) -> Result<Vec<Event>, DomainError>`), `state.rs`
//! (`evolve(State, &Event) -> State`), `postings.rs` (how its events move money) and
//! `tests.rs`. Checks every aggregate makes live once, in [`guard`].
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
pub mod guard;
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

// Who may call the API.
pub mod credential;
// Tamper evidence: signed anchors of the hash chain.
pub mod anchors;

pub use decider::Decider;
pub use error::{Blocker, DomainError};
pub use event::{decode, encode, encode_canonical, split_stream, stream_family, DecodeError, EventFamily, FAMILIES};
pub use postings::{Posting, Side};
