//! What an operator asks of the credentials.

use chrono::{DateTime, Utc};

use super::CredentialRole;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialCommand {
    Issue(IssueCredential),
    Revoke(RevokeCredential),
}

/// A new credential; its secrets were made by the caller, only their hash and the public
/// access key come here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueCredential {
    pub credential_id: String,
    pub role: CredentialRole,
    pub partner_id: Option<String>,
    pub token_sha256: String,
    pub access_key: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Who it is issued to (free text, at most [`super::MAX_NAME_CHARS`] characters).
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeCredential {
    pub credential_id: String,
}
