//! # Credentials (stream `credentials`)
//!
//! Who may call the API (docs/API.md, Authentication): a credential has a role, for a partner
//! the partner it is bound to, the SHA-256 of its token and its access key (the secret key is
//! derived from the server's master key and never stored), an optional expiry, and may be
//! revoked. The stream is never published (see `ledger_bus::routing::CREDENTIALS_STREAM`).
//!
//! ## The rules, where they live
//! - [`decide`]: issuing (a partner credential names its partner and no other role does; an
//!   expiry lies ahead; ids, tokens and access keys are never reused) and revoking (a known
//!   credential; revoking twice changes nothing).
//! - [`state`]: the credentials and whether one is live at a time.
//! - That the partner exists is looked up by the application (another aggregate's fact).
//! - Credentials move no money ([`postings`]).

mod command;
mod decide;
mod event;
pub mod postings;
mod state;
#[cfg(test)]
mod tests;

pub use command::{CredentialCommand, IssueCredential, RevokeCredential};
pub use event::{examples, legacy, CredentialEvent, CredentialRole};
pub use state::{Credential, CredentialBook};

use chrono::{DateTime, Utc};

use crate::{Decider, DomainError};

/// The one stream holding every credential: few, and revocation must see them all.
pub const STREAM: &str = "credentials";
/// Longest name of whom a credential is issued to.
pub const MAX_NAME_CHARS: usize = 100;

pub struct Credentials;

impl Decider for Credentials {
    const FAMILY: &'static str = "credentials";

    type State = CredentialBook;
    type Command = CredentialCommand;
    type Event = CredentialEvent;

    fn decide(
        state: &CredentialBook,
        command: CredentialCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<CredentialEvent>, DomainError> {
        decide::decide(state, command, now)
    }

    fn evolve(state: CredentialBook, event: &CredentialEvent) -> CredentialBook {
        state::evolve(state, event)
    }
}
