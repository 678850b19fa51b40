//! Who is looking, in which language, and whether a form came from this console.
//!
//! Sign-in takes a ledger token (the API's own credentials) and keeps it in an `HttpOnly`,
//! `SameSite=Strict` cookie: page scripts cannot read it and other sites' pages cannot send
//! it. Every form carries a CSRF token derived from the session token (SHA-256 of a label
//! and the token): a page of another origin can neither read the cookie nor compute it. The
//! sign-in form, before there is a session, carries the value of a random `csrf` cookie
//! (double submit).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use ledger_api::auth::Principal;
use ledger_core::Role;
use sha2::{Digest, Sha256};

use crate::i18n::Lang;
use crate::Console;

pub const SESSION_COOKIE: &str = "ledger_session";
pub const LANG_COOKIE: &str = "ledger_lang";
pub const LOGIN_CSRF_COOKIE: &str = "ledger_login_csrf";

/// The signed-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub token: String,
    pub principal: Principal,
    pub csrf: String,
}

impl User {
    pub fn role(&self) -> Role {
        self.principal.role
    }

    pub fn is_partner(&self) -> bool {
        self.principal.role == Role::Partner
    }

    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }
}

/// What every page knows about its request.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub user: Option<User>,
    /// Path and query of this request (the language switch and sign-in come back to it).
    pub here: String,
    /// The value of the sign-in CSRF cookie, if the browser has one.
    pub login_csrf: Option<String>,
}

pub fn csrf_of(token: &str) -> String {
    hex::encode(Sha256::digest(format!("ledger-console-csrf:{token}").as_bytes()))
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// A cookie for the whole console, unreadable to scripts and never sent by another site.
pub fn set_cookie(name: &str, value: &str, max_age_secs: Option<i64>) -> String {
    let age = max_age_secs.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{age}")
}

/// Compares in time independent of where the strings differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, console: &Arc<Console>) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let lang = cookie(headers, LANG_COOKIE)
            .and_then(|l| Lang::parse(&l))
            .or_else(|| {
                headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).and_then(Lang::from_accept_language)
            })
            .unwrap_or(Lang::Zh);
        let session = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty());
        if session.is_some() {
            // On a shared store, a credential revoked through another node is gone here too
            // (the API's own check; its failure leaves the tables as they are).
            let _ = ledger_api::nodes::check_credentials_fresh(&console.app).await;
        }
        let user = session.and_then(|token| {
            let principal = console.app.credentials.by_token(&token, chrono::Utc::now())?;
            Some(User { csrf: csrf_of(&token), token, principal })
        });
        let here = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        Ok(Ctx { lang, user, here, login_csrf: cookie(headers, LOGIN_CSRF_COOKIE) })
    }
}

/// A submitted form: its fields in order (a name may repeat).
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The field trimmed, `None` when blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
    }

    pub fn value(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_string()
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// A fresh random value (request ids of forms, the sign-in CSRF cookie).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS provides randomness");
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; ledger_session=lt_x; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("lt_x"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn the_csrf_token_depends_on_the_session() {
        assert_ne!(csrf_of("a"), csrf_of("b"));
        assert!(same(&csrf_of("a"), &csrf_of("a")));
        assert!(!same("abc", "abd") && !same("ab", "abc"));
    }

    #[test]
    fn the_session_cookie_is_http_only_and_same_site() {
        let c = set_cookie(SESSION_COOKIE, "t", None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
    }
}
