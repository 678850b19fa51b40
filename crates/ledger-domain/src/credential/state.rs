//! Every credential issued, and whether one is live.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{CredentialEvent, CredentialRole};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub credential_id: String,
    pub role: CredentialRole,
    pub partner_id: Option<String>,
    pub token_sha256: String,
    pub access_key: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who it was issued to.
    pub name: Option<String>,
}

impl Credential {
    /// Whether the credential may act at `now`: not revoked, not expired.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialBook {
    pub by_id: BTreeMap<String, Credential>,
}

impl CredentialBook {
    pub fn get(&self, credential_id: &str) -> Option<&Credential> {
        self.by_id.get(credential_id)
    }

    /// Whether a token hash or access key is held by any credential, live or not: a secret
    /// is never given twice.
    pub fn holds_secret(&self, token_sha256: &str, access_key: &str) -> bool {
        self.by_id.values().any(|c| c.token_sha256 == token_sha256 || c.access_key == access_key)
    }
}

pub fn evolve(mut state: CredentialBook, event: &CredentialEvent) -> CredentialBook {
    match event {
        CredentialEvent::CredentialIssued {
            credential_id,
            role,
            partner_id,
            token_sha256,
            access_key,
            expires_at,
            name,
        } => {
            state.by_id.insert(
                credential_id.clone(),
                Credential {
                    credential_id: credential_id.clone(),
                    role: *role,
                    partner_id: partner_id.clone(),
                    token_sha256: token_sha256.clone(),
                    access_key: access_key.clone(),
                    expires_at: *expires_at,
                    revoked_at: None,
                    name: name.clone(),
                },
            );
        }
        CredentialEvent::CredentialRevoked { credential_id, revoked_at } => {
            let known = state.by_id.get_mut(credential_id);
            debug_assert!(known.is_some(), "a revoked credential was issued first");
            if let Some(c) = known {
                c.revoked_at.get_or_insert(*revoked_at);
            }
        }
    }
    state
}
