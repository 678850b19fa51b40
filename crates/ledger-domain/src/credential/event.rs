//! The credential events. `CredentialIssued` version 1 (before expiry existed) is upcast
//! with no expiry, version 2 (before names) with no name.

use chrono::{DateTime, Utc};
use ledger_core::Role;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{DecodeError, EventFamily};

/// The roles a credential can carry (`system` is the ledger's own, never issued).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialRole {
    Admin,
    Partner,
    Auditor,
}

impl From<CredentialRole> for Role {
    fn from(role: CredentialRole) -> Role {
        match role {
            CredentialRole::Admin => Role::Admin,
            CredentialRole::Partner => Role::Partner,
            CredentialRole::Auditor => Role::Auditor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum CredentialEvent {
    CredentialIssued {
        credential_id: String,
        role: CredentialRole,
        partner_id: Option<String>,
        token_sha256: String,
        access_key: String,
        /// None: until revoked.
        expires_at: Option<DateTime<Utc>>,
        /// Who it was issued to (free text); the actor of what it writes shows it.
        name: Option<String>,
    },
    CredentialRevoked {
        credential_id: String,
        revoked_at: DateTime<Utc>,
    },
}

impl EventFamily for CredentialEvent {
    fn schema_version(event_type: &str) -> u32 {
        match event_type {
            "CredentialIssued" => 3,
            _ => 1,
        }
    }

    fn upcast(event_type: &str, version: u32, payload: Value) -> Result<Value, DecodeError> {
        match (event_type, version) {
            ("CredentialIssued", 1) => legacy::credential_issued_v1_to_v3(payload),
            ("CredentialIssued", 2) => legacy::credential_issued_v2_to_v3(payload),
            _ => Err(DecodeError::UnknownVersion { event_type: event_type.to_string(), version }),
        }
    }
}

/// Older schema versions and their upcasters.
pub mod legacy {
    use super::*;

    /// `CredentialIssued` schema version 1: no expiry (every such credential lives until
    /// revoked).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CredentialIssuedV1 {
        pub credential_id: String,
        pub role: CredentialRole,
        pub partner_id: Option<String>,
        pub token_sha256: String,
        pub access_key: String,
    }

    /// `CredentialIssued` schema version 2: no name.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CredentialIssuedV2 {
        pub credential_id: String,
        pub role: CredentialRole,
        pub partner_id: Option<String>,
        pub token_sha256: String,
        pub access_key: String,
        pub expires_at: Option<DateTime<Utc>>,
    }

    pub fn credential_issued_v1_to_v3(payload: Value) -> Result<Value, DecodeError> {
        let v1: CredentialIssuedV1 =
            serde_json::from_value(payload).map_err(|e| DecodeError::Payload(e.to_string()))?;
        let v2 = CredentialIssuedV2 {
            credential_id: v1.credential_id,
            role: v1.role,
            partner_id: v1.partner_id,
            token_sha256: v1.token_sha256,
            access_key: v1.access_key,
            expires_at: None,
        };
        credential_issued_v2_to_v3(serde_json::to_value(v2).expect("serialises"))
    }

    pub fn credential_issued_v2_to_v3(payload: Value) -> Result<Value, DecodeError> {
        let v2: CredentialIssuedV2 =
            serde_json::from_value(payload).map_err(|e| DecodeError::Payload(e.to_string()))?;
        let current = CredentialEvent::CredentialIssued {
            credential_id: v2.credential_id,
            role: v2.role,
            partner_id: v2.partner_id,
            token_sha256: v2.token_sha256,
            access_key: v2.access_key,
            expires_at: v2.expires_at,
            name: None,
        };
        Ok(crate::encode(&current).2)
    }
}

/// One example of every event, for the JSON Schema catalogue.
pub fn examples() -> Vec<CredentialEvent> {
    vec![
        CredentialEvent::CredentialIssued {
            credential_id: "cred-0192b3c4d5e6".into(),
            role: CredentialRole::Partner,
            partner_id: Some("P1".into()),
            token_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            access_key: "AK0123456789ABCDEF0123".into(),
            expires_at: Some("2027-06-30T16:00:00Z".parse().expect("a valid timestamp")),
            name: Some("Li Wei, finance of P1".into()),
        },
        CredentialEvent::CredentialRevoked {
            credential_id: "cred-0192b3c4d5e6".into(),
            revoked_at: "2026-09-01T02:00:00Z".parse().expect("a valid timestamp"),
        },
    ]
}
