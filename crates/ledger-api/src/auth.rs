//! Who is calling. Tokens (`X-Auth-Token` or `Authorization: Bearer`) and AK/SK signed
//! requests both resolve to a [`Principal`]: a role, and for a partner its partner id.
//!
//! Credentials are the domain's `credential` aggregate (stream `credentials`), holding only
//! the SHA-256 of each token and the access key. A credential's token, access key and secret
//! key are derived from the master key and its id (`Credentials::secrets_of`), so they are
//! never stored and a replayed issue answers the same secrets. The lookup tables here follow
//! the stored book ([`Credentials::sync`]); an expired or revoked credential is refused. The
//! first admin token comes from `LEDGER_ADMIN_TOKEN`.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use ledger_core::Role;
use ledger_domain::credential::CredentialBook;
use serde::Serialize;
use sha2::{Digest, Sha256};

use ledger_store::EventStore;

use crate::error::ApiError;
use crate::signing::{self, RequestParts, SigningError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The credential's id (`admin-env` for the bootstrap token): the envelope's actor.
    pub id: String,
    pub role: Role,
    /// The partner a `partner` credential is bound to.
    pub partner_id: Option<String>,
    /// Who the credential was issued to, when it was given a name.
    pub name: Option<String>,
}

impl Principal {
    /// The actor of what it writes (the events' envelope, an adjustment record's `actor`):
    /// `name (credential id)` when it has a name, else the credential id.
    pub fn actor(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({})", self.id),
            None => self.id.clone(),
        }
    }
}

/// What the caller of `POST /v1/credentials` sees (and its replay sees again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCredential {
    pub credential_id: String,
    pub token: String,
    pub access_key: String,
    pub secret_key: String,
}

/// A live credential as the lookup tables hold it.
#[derive(Debug, Clone)]
struct Known {
    principal: Principal,
    expires_at: Option<DateTime<Utc>>,
}

impl Known {
    fn at(&self, now: DateTime<Utc>) -> Option<Principal> {
        self.expires_at.is_none_or(|at| now < at).then(|| self.principal.clone())
    }
}

pub struct Credentials {
    master_key: Vec<u8>,
    admin_token_sha256: Option<String>,
    tokens: RwLock<HashMap<String, Known>>,
    access_keys: RwLock<HashMap<String, Known>>,
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

/// A fresh credential id: random, so that nobody can name the next one.
pub fn new_credential_id() -> String {
    format!("cred-{}", random_hex(12))
}

impl Credentials {
    pub fn new(master_key: Vec<u8>, admin_token: Option<&str>) -> Credentials {
        Credentials {
            master_key,
            admin_token_sha256: admin_token.filter(|t| !t.is_empty()).map(sha256_hex),
            tokens: RwLock::new(HashMap::new()),
            access_keys: RwLock::new(HashMap::new()),
        }
    }

    /// The secrets of credential `credential_id`, derived from the master key: the same id
    /// always gives the same secrets, and nobody without the master key can compute them.
    pub fn secrets_of(&self, credential_id: &str) -> IssuedCredential {
        let derive = |purpose: &str| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&self.master_key).expect("HMAC takes any key length");
            mac.update(purpose.as_bytes());
            mac.update(credential_id.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        };
        let token = format!("lt_{}", derive("ledger-token:"));
        let access_key = format!("AK{}", derive("ledger-ak:")[..20].to_ascii_uppercase());
        let secret_key = signing::derive_secret_key(&self.master_key, &access_key);
        IssuedCredential { credential_id: credential_id.to_string(), token, access_key, secret_key }
    }

    /// Makes the lookup tables those of `book`: its live credentials, nothing else (a
    /// revoked one is gone at once).
    pub fn sync(&self, book: &CredentialBook) {
        let mut tokens = HashMap::new();
        let mut access_keys = HashMap::new();
        for c in book.by_id.values().filter(|c| c.revoked_at.is_none()) {
            let principal = Principal {
                id: c.credential_id.clone(),
                role: c.role.into(),
                partner_id: c.partner_id.clone(),
                name: c.name.clone(),
            };
            let known = Known { principal, expires_at: c.expires_at };
            tokens.insert(c.token_sha256.clone(), known.clone());
            access_keys.insert(c.access_key.clone(), known);
        }
        *self.tokens.write().expect("lock") = tokens;
        *self.access_keys.write().expect("lock") = access_keys;
    }

    pub fn by_token(&self, token: &str, now: DateTime<Utc>) -> Option<Principal> {
        let digest = sha256_hex(token);
        if self.admin_token_sha256.as_deref() == Some(digest.as_str()) {
            return Some(Principal { id: "admin-env".into(), role: Role::Admin, partner_id: None, name: None });
        }
        self.tokens.read().expect("lock").get(&digest).and_then(|k| k.at(now))
    }

    /// Resolves the caller of a request, or says why not (always 401).
    pub fn authenticate(&self, req: &RequestParts<'_>, now: DateTime<Utc>) -> Result<Principal, ApiError> {
        let identified = self.identify(req.header, now)?;
        self.confirm(identified, req, now)
    }

    /// Who the headers say is calling, before any body is read: a token resolves here; a
    /// signature needs a known access key here and the body in [`Credentials::confirm`].
    /// A caller the server does not know is refused without its body ever being read.
    pub fn identify(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Identified, ApiError> {
        if let Some(token) = header("x-auth-token") {
            return self.by_token(token.trim(), now).map(Identified::Token).ok_or_else(unknown_token);
        }
        let Some(authorization) = header("authorization") else {
            return Err(ApiError::unauthenticated(
                "send X-Auth-Token, Authorization: Bearer <token>, or an SDK-HMAC-SHA256 signature",
            ));
        };
        // The scheme is case-insensitive (RFC 7235 §2.1): `bearer` is `Bearer`.
        if let Some((scheme, token)) = authorization.trim_start().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return self.by_token(token.trim(), now).map(Identified::Token).ok_or_else(unknown_token);
            }
        }
        let auth =
            signing::parse_authorization(&authorization).map_err(|e| ApiError::unauthenticated(e.to_string()))?;
        let principal = self
            .access_keys
            .read()
            .expect("lock")
            .get(&auth.access_key)
            .and_then(|k| k.at(now))
            .ok_or_else(|| ApiError::unauthenticated("unknown access key"))?;
        Ok(Identified::Signed { auth: Box::new(auth), principal })
    }

    /// The caller, once the whole request is known: a signature must match it. (That a
    /// signed write is accepted once is [`first_receipt`]'s to check, in the store.)
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
        Ok(principal)
    }
}

/// The vendor's queries sent as POST (the SDK's ListQuotaCoupons, ListIndirectPartners):
/// reads, whatever their method.
pub const POST_QUERIES: &[&str] = &["/v2/partners/coupon-quotas/query", "/v2/partners/indirect-partners/query"];

/// The signature a signed write must be received once by, if `identified` is one (a read,
/// also a POST query, may be sent again: it acts on nothing).
pub fn once_only(identified: &Identified, method: &str, path: &str) -> Option<String> {
    let read = method.eq_ignore_ascii_case("GET")
        || (method.eq_ignore_ascii_case("POST") && POST_QUERIES.contains(&path.trim_end_matches('/')));
    match identified {
        Identified::Signed { auth, .. } if !read => Some(auth.signature.clone()),
        _ => None,
    }
}

/// Refuses a signed write whose signature was received before: a captured request cannot
/// act twice. The memory is the store's ([`EventStore::first_use`]), so it holds across a
/// restart and across every node sharing the store. A signature is kept for twice the date
/// window: past that its date is refused anyway. Call it only after the signature checked.
pub async fn first_receipt(store: &dyn EventStore, signature: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
    let key = format!("signed-request:{signature}");
    let until = now + signing::DATE_WINDOW * 2;
    if store.first_use(&key, now.timestamp_micros(), until.timestamp_micros()).await? {
        Ok(())
    } else {
        Err(ApiError::unauthenticated("this signed request was already received; sign it again"))
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
    ApiError::unauthenticated("unknown, expired or revoked token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_domain::credential::{Credential, CredentialRole};

    fn parts<'a>(h: &'a dyn Fn(&str) -> Option<String>, method: &'a str) -> RequestParts<'a> {
        RequestParts { method, path: "/v1/withdrawals", query: "", header: h, body: b"{}" }
    }

    /// Stores a partner credential for P1 in `book` and makes it known.
    fn issue(
        creds: &Credentials,
        book: &mut CredentialBook,
        id: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> IssuedCredential {
        let secrets = creds.secrets_of(id);
        book.by_id.insert(
            id.into(),
            Credential {
                credential_id: id.into(),
                role: CredentialRole::Partner,
                partner_id: Some("P1".into()),
                token_sha256: sha256_hex(&secrets.token),
                access_key: secrets.access_key.clone(),
                expires_at,
                revoked_at: None,
                name: None,
            },
        );
        creds.sync(book);
        secrets
    }

    #[test]
    fn tokens_resolve_and_only_their_hash_is_kept() {
        let creds = Credentials::new(b"master".to_vec(), Some("boot"));
        let mut book = CredentialBook::default();
        let issued = issue(&creds, &mut book, "cred-1", None);
        assert!(!format!("{book:?}").contains(&issued.token));
        assert!(!format!("{book:?}").contains(&issued.secret_key));
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let bearer = format!("{scheme} {}", issued.token);
            let h = |n: &str| (n == "authorization").then(|| bearer.clone());
            let p = creds.authenticate(&parts(&h, "GET"), Utc::now()).unwrap();
            assert_eq!((p.role, p.partner_id.as_deref()), (Role::Partner, Some("P1")), "{scheme}");
        }
        let h = |n: &str| (n == "x-auth-token").then(|| "boot".to_string());
        assert_eq!(creds.authenticate(&parts(&h, "GET"), Utc::now()).unwrap().role, Role::Admin);
        let h = |n: &str| (n == "x-auth-token").then(|| "guess".to_string());
        assert_eq!(creds.authenticate(&parts(&h, "GET"), Utc::now()).unwrap_err().code, "UNAUTHENTICATED");
        let h = |_: &str| None;
        assert_eq!(creds.authenticate(&parts(&h, "GET"), Utc::now()).unwrap_err().code, "UNAUTHENTICATED");
    }

    #[test]
    fn secrets_follow_from_the_id_and_the_master_key() {
        let creds = Credentials::new(b"master".to_vec(), None);
        assert_eq!(creds.secrets_of("cred-1"), creds.secrets_of("cred-1"), "a replay answers the same secrets");
        let (a, b) = (creds.secrets_of("cred-1"), creds.secrets_of("cred-2"));
        assert!(a.token != b.token && a.access_key != b.access_key && a.secret_key != b.secret_key);
        let other = Credentials::new(b"other-master".to_vec(), None).secrets_of("cred-1");
        assert!(other.token != a.token && other.access_key != a.access_key);
    }

    #[test]
    fn an_expired_or_revoked_credential_is_refused() {
        let creds = Credentials::new(b"master".to_vec(), None);
        let mut book = CredentialBook::default();
        let now = Utc::now();
        let issued = issue(&creds, &mut book, "cred-1", Some(now + chrono::Duration::hours(1)));
        let h = |n: &str| (n == "x-auth-token").then(|| issued.token.clone());
        assert!(creds.authenticate(&parts(&h, "GET"), now).is_ok());
        let later = now + chrono::Duration::hours(1);
        assert_eq!(creds.authenticate(&parts(&h, "GET"), later).unwrap_err().code, "UNAUTHENTICATED");
        book.by_id.get_mut("cred-1").unwrap().revoked_at = Some(now);
        creds.sync(&book);
        assert_eq!(creds.authenticate(&parts(&h, "GET"), now).unwrap_err().code, "UNAUTHENTICATED");
    }

    #[tokio::test]
    async fn a_signed_write_is_accepted_once() {
        let creds = Credentials::new(b"master".to_vec(), None);
        let mut book = CredentialBook::default();
        let issued = issue(&creds, &mut book, "cred-1", None);
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
        let identified = creds.identify(&h, now).unwrap();
        let signature = once_only(&identified, "POST", "/v1/withdrawals").expect("a signed write is received once");
        for query in POST_QUERIES {
            assert_eq!(once_only(&identified, "POST", query), None, "a POST query is a read: {query}");
        }
        assert_eq!(once_only(&identified, "GET", "/v1/withdrawals"), None, "a signed read may come again");
        let store = ledger_store::memory::MemoryStore::default();
        first_receipt(&store, &signature, now).await.unwrap();
        let replay = first_receipt(&store, &signature, now + chrono::Duration::minutes(29)).await.unwrap_err();
        assert!(replay.message.contains("already received"), "{}", replay.message);

        // A key the server never issued, or a secret of another master key, is refused.
        let other = Credentials::new(b"other-master".to_vec(), None);
        other.sync(&book);
        assert_eq!(other.authenticate(&parts(&h, "POST"), now).unwrap_err().message, "signature does not match");
    }
}
