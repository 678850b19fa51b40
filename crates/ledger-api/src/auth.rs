//! Who is calling. Tokens (`X-Auth-Token` or `Authorization: Bearer`) and AK/SK signed
//! requests both resolve to a [`Principal`]: a role, and for a partner its partner id.
//!
//! Credentials are events in the `credentials` stream, holding only the SHA-256 of each
//! token and the access key; secret keys are derived from the master key
//! (`signing::derive_secret_key`) and never stored. The first admin token comes from
//! `LEDGER_ADMIN_TOKEN`.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use chrono::{DateTime, Utc};
use ledger_core::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::signing::{self, RequestParts, SigningError};

pub const CREDENTIALS_STREAM: &str = "credentials";
pub const CREDENTIAL_ISSUED: &str = "CredentialIssued";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The credential's id (`admin-env` for the bootstrap token): the envelope's actor.
    pub id: String,
    pub role: Role,
    /// The partner a `partner` credential is bound to.
    pub partner_id: Option<String>,
}

/// The stored fact of a credential: hashes and public parts only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialIssued {
    pub credential_id: String,
    pub role: Role,
    pub partner_id: Option<String>,
    pub token_sha256: String,
    pub access_key: String,
}

/// What the caller of `POST /v1/credentials` sees once.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedCredential {
    pub credential_id: String,
    pub token: String,
    pub access_key: String,
    pub secret_key: String,
}

pub struct Credentials {
    master_key: Vec<u8>,
    admin_token_sha256: Option<String>,
    tokens: RwLock<HashMap<String, Principal>>,
    access_keys: RwLock<HashMap<String, Principal>>,
    /// Signatures of writes seen within the date window: a captured signed write cannot be
    /// sent again.
    seen_signatures: Mutex<HashMap<String, DateTime<Utc>>>,
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS provides randomness");
    hex::encode(buf)
}

/// A fresh master key (32 random bytes, hex).
pub fn new_master_key() -> String {
    random_hex(32)
}

impl Credentials {
    pub fn new(master_key: Vec<u8>, admin_token: Option<&str>) -> Credentials {
        Credentials {
            master_key,
            admin_token_sha256: admin_token.filter(|t| !t.is_empty()).map(sha256_hex),
            tokens: RwLock::new(HashMap::new()),
            access_keys: RwLock::new(HashMap::new()),
            seen_signatures: Mutex::new(HashMap::new()),
        }
    }

    /// Makes a new credential; the caller stores the returned event, then calls `learn`.
    pub fn issue(&self, role: Role, partner_id: Option<String>) -> (IssuedCredential, CredentialIssued) {
        let credential_id = format!("cred-{}", uuid::Uuid::now_v7().simple());
        let token = format!("lt_{}", random_hex(32));
        let access_key = format!("AK{}", random_hex(10).to_ascii_uppercase());
        let secret_key = signing::derive_secret_key(&self.master_key, &access_key);
        let fact = CredentialIssued {
            credential_id: credential_id.clone(),
            role,
            partner_id,
            token_sha256: sha256_hex(&token),
            access_key: access_key.clone(),
        };
        (IssuedCredential { credential_id, token, access_key, secret_key }, fact)
    }

    /// Takes a stored credential into the lookup tables.
    pub fn learn(&self, fact: &CredentialIssued) {
        let principal =
            Principal { id: fact.credential_id.clone(), role: fact.role, partner_id: fact.partner_id.clone() };
        self.tokens.write().expect("lock").insert(fact.token_sha256.clone(), principal.clone());
        self.access_keys.write().expect("lock").insert(fact.access_key.clone(), principal);
    }

    pub fn by_token(&self, token: &str) -> Option<Principal> {
        let digest = sha256_hex(token);
        if self.admin_token_sha256.as_deref() == Some(digest.as_str()) {
            return Some(Principal { id: "admin-env".into(), role: Role::Admin, partner_id: None });
        }
        self.tokens.read().expect("lock").get(&digest).cloned()
    }

    /// Resolves the caller of a request, or says why not (always 401).
    pub fn authenticate(&self, req: &RequestParts<'_>, now: DateTime<Utc>) -> Result<Principal, ApiError> {
        let identified = self.identify(req.header)?;
        self.confirm(identified, req, now)
    }

    /// Who the headers say is calling, before any body is read: a token resolves here; a
    /// signature needs a known access key here and the body in [`Credentials::confirm`].
    /// A caller the server does not know is refused without its body ever being read.
    pub fn identify(&self, header: &dyn Fn(&str) -> Option<String>) -> Result<Identified, ApiError> {
        if let Some(token) = header("x-auth-token") {
            return self.by_token(token.trim()).map(Identified::Token).ok_or_else(unknown_token);
        }
        let Some(authorization) = header("authorization") else {
            return Err(ApiError::unauthenticated(
                "send X-Auth-Token, Authorization: Bearer <token>, or an SDK-HMAC-SHA256 signature",
            ));
        };
        // The scheme is case-insensitive (RFC 7235 §2.1): `bearer` is `Bearer`.
        if let Some((scheme, token)) = authorization.trim_start().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return self.by_token(token.trim()).map(Identified::Token).ok_or_else(unknown_token);
            }
        }
        let auth =
            signing::parse_authorization(&authorization).map_err(|e| ApiError::unauthenticated(e.to_string()))?;
        let principal = self
            .access_keys
            .read()
            .expect("lock")
            .get(&auth.access_key)
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("unknown access key"))?;
        Ok(Identified::Signed { auth: Box::new(auth), principal })
    }

    /// The caller, once the whole request is known: a signature must match it, and a signed
    /// write is accepted once.
    pub fn confirm(
        &self,
        identified: Identified,
        req: &RequestParts<'_>,
        now: DateTime<Utc>,
    ) -> Result<Principal, ApiError> {
        let (auth, principal) = match identified {
            Identified::Token(principal) => return Ok(principal),
            Identified::Signed { auth, principal } => (auth, principal),
        };
        let secret = signing::derive_secret_key(&self.master_key, &auth.access_key);
        signing::verify(&auth, req, &secret, now)
            .map_err(|e: SigningError| ApiError::unauthenticated(e.to_string()))?;
        if !req.method.eq_ignore_ascii_case("GET") {
            let mut seen = self.seen_signatures.lock().expect("lock");
            seen.retain(|_, at| now - *at <= signing::DATE_WINDOW * 2);
            if seen.insert(auth.signature.clone(), now).is_some() {
                return Err(ApiError::unauthenticated("this signed request was already received; sign it again"));
            }
        }
        Ok(principal)
    }
}

/// What the headers alone establish about the caller.
#[derive(Debug)]
pub enum Identified {
    /// A token: the caller is known.
    Token(Principal),
    /// A signature by a known access key, still to be checked against the body.
    Signed { auth: Box<signing::SignedAuthorization>, principal: Principal },
}

fn unknown_token() -> ApiError {
    ApiError::unauthenticated("unknown token")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(h: &'a dyn Fn(&str) -> Option<String>, method: &'a str) -> RequestParts<'a> {
        RequestParts { method, path: "/v1/withdrawals", query: "", header: h, body: b"{}" }
    }

    #[test]
    fn tokens_resolve_and_only_their_hash_is_kept() {
        let creds = Credentials::new(b"master".to_vec(), Some("boot"));
        let (issued, fact) = creds.issue(Role::Partner, Some("P1".into()));
        assert!(!serde_json::to_string(&fact).unwrap().contains(&issued.token));
        assert!(!serde_json::to_string(&fact).unwrap().contains(&issued.secret_key));
        creds.learn(&fact);
        let bearer = format!("Bearer {}", issued.token);
        let h = |n: &str| (n == "authorization").then(|| bearer.clone());
        let p = creds.authenticate(&parts(&h, "GET"), Utc::now()).unwrap();
        assert_eq!((p.role, p.partner_id.as_deref()), (Role::Partner, Some("P1")));
        let h = |n: &str| (n == "x-auth-token").then(|| "boot".to_string());
        assert_eq!(creds.authenticate(&parts(&h, "GET"), Utc::now()).unwrap().role, Role::Admin);
        let h = |n: &str| (n == "x-auth-token").then(|| "guess".to_string());
        assert_eq!(creds.authenticate(&parts(&h, "GET"), Utc::now()).unwrap_err().code, "UNAUTHENTICATED");
        let h = |_: &str| None;
        assert_eq!(creds.authenticate(&parts(&h, "GET"), Utc::now()).unwrap_err().code, "UNAUTHENTICATED");
    }

    #[test]
    fn a_signed_write_is_accepted_once() {
        let creds = Credentials::new(b"master".to_vec(), None);
        let (issued, fact) = creds.issue(Role::Partner, Some("P1".into()));
        creds.learn(&fact);
        let now = Utc::now();
        let date = signing::format_sdk_date(now);
        let base = |n: &str| (n == "x-sdk-date").then(|| date.clone());
        let header = signing::authorization_header(
            &issued.access_key,
            &issued.secret_key,
            &parts(&base, "POST"),
            &["x-sdk-date"],
        )
        .unwrap();
        let h = |n: &str| match n {
            "authorization" => Some(header.clone()),
            other => base(other),
        };
        assert_eq!(creds.authenticate(&parts(&h, "POST"), now).unwrap().partner_id.as_deref(), Some("P1"));
        let replay = creds.authenticate(&parts(&h, "POST"), now).unwrap_err();
        assert!(replay.message.contains("already received"), "{}", replay.message);

        // A key the server never issued, or a secret of another master key, is refused.
        let other = Credentials::new(b"other-master".to_vec(), None);
        other.learn(&fact);
        assert_eq!(other.authenticate(&parts(&h, "POST"), now).unwrap_err().message, "signature does not match");
    }
}
