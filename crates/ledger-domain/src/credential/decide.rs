//! Issuing and revoking credentials.

use chrono::{DateTime, Utc};

use super::{CredentialBook, CredentialCommand, CredentialEvent, CredentialRole, IssueCredential, RevokeCredential};
use crate::guard::invalid;
use crate::DomainError;

pub fn decide(
    state: &CredentialBook,
    command: CredentialCommand,
    now: DateTime<Utc>,
) -> Result<Vec<CredentialEvent>, DomainError> {
    match command {
        CredentialCommand::Issue(c) => issue(state, c, now),
        CredentialCommand::Revoke(c) => revoke(state, c, now),
    }
}

fn issue(state: &CredentialBook, c: IssueCredential, now: DateTime<Utc>) -> Result<Vec<CredentialEvent>, DomainError> {
    match (c.role, &c.partner_id) {
        (CredentialRole::Partner, None) => return Err(invalid("partner_id", "a partner credential names its partner")),
        (CredentialRole::Partner, Some(p)) => ledger_core::ids::validate_id("partner_id", p)?,
        (_, Some(_)) => return Err(invalid("partner_id", "only a partner credential has one")),
        _ => {}
    }
    if let Some(name) = &c.name {
        ledger_core::ids::validate_text("name", name, super::MAX_NAME_CHARS)?;
        if name.trim().is_empty() {
            return Err(invalid("name", "must not be blank (leave it out instead)"));
        }
    }
    if c.expires_at.is_some_and(|at| at <= now) {
        return Err(invalid("expires_at", "must lie in the future"));
    }
    if state.get(&c.credential_id).is_some() {
        return Err(DomainError::AlreadyExists { what: "credential", id: c.credential_id });
    }
    if state.holds_secret(&c.token_sha256, &c.access_key) {
        return Err(invalid("credential", "its token or access key was given before"));
    }
    Ok(vec![CredentialEvent::CredentialIssued {
        credential_id: c.credential_id,
        role: c.role,
        partner_id: c.partner_id,
        token_sha256: c.token_sha256,
        access_key: c.access_key,
        expires_at: c.expires_at,
        name: c.name,
    }])
}

fn revoke(
    state: &CredentialBook,
    c: RevokeCredential,
    now: DateTime<Utc>,
) -> Result<Vec<CredentialEvent>, DomainError> {
    let Some(credential) = state.get(&c.credential_id) else {
        return Err(DomainError::NotFound { what: "credential", id: c.credential_id });
    };
    if credential.revoked_at.is_some() {
        return Ok(vec![]);
    }
    Ok(vec![CredentialEvent::CredentialRevoked { credential_id: c.credential_id, revoked_at: now }])
}
