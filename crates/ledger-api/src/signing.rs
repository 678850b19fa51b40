//! AK/SK request signing in the cloud-API style (docs/API.md, Authentication):
//!
//! ```text
//! Authorization: SDK-HMAC-SHA256 Access=<ak>, SignedHeaders=<h1;h2>, Signature=<hex>
//! X-Sdk-Date: YYYYMMDDTHHMMSSZ
//!
//! canonical request = METHOD \n path-with-trailing-slash \n sorted-query \n
//!                     lower(name):trim(value) \n for each signed header \n
//!                     signed;headers \n hex(SHA-256(body))
//! string to sign    = "SDK-HMAC-SHA256" \n X-Sdk-Date \n hex(SHA-256(canonical request))
//! signature         = hex(HMAC-SHA256(secret key, string to sign))
//! ```
//!
//! Secret keys are never stored: each is derived from the server's master key and the
//! access key (`HMAC-SHA256(master, "ledger-sk:" ‖ ak)`), so the server can recompute it
//! to check a signature, and a copy of the ledger's data alone reveals none.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// How far a request's `X-Sdk-Date` may be from the server's clock.
pub const DATE_WINDOW: TimeDelta = TimeDelta::minutes(15);
const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SigningError {
    #[error("Authorization is not of the form `SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...`")]
    Malformed,
    #[error("X-Sdk-Date is missing or not YYYYMMDDTHHMMSSZ")]
    BadDate,
    #[error("X-Sdk-Date is more than 15 minutes from the server's time")]
    OutsideWindow,
    #[error("signed header {0} is missing from the request")]
    MissingSignedHeader(String),
    #[error("the signed headers must include x-sdk-date")]
    DateNotSigned,
    #[error("signature does not match")]
    Mismatch,
}

/// The parts of an `Authorization: SDK-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAuthorization {
    pub access_key: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(value: &str) -> Result<SignedAuthorization, SigningError> {
    let rest = value.strip_prefix(ALGORITHM).ok_or(SigningError::Malformed)?;
    let rest = rest.strip_prefix(' ').ok_or(SigningError::Malformed)?;
    let (mut access, mut headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SigningError::Malformed)?;
        match k {
            "Access" => access = Some(v.to_string()),
            "SignedHeaders" => headers = Some(v.split(';').map(|h| h.trim().to_ascii_lowercase()).collect::<Vec<_>>()),
            "Signature" => signature = Some(v.to_ascii_lowercase()),
            _ => return Err(SigningError::Malformed),
        }
    }
    match (access, headers, signature) {
        (Some(a), Some(h), Some(s)) if !a.is_empty() && !h.is_empty() && s.len() == 64 => {
            Ok(SignedAuthorization { access_key: a, signed_headers: h, signature: s })
        }
        _ => Err(SigningError::Malformed),
    }
}

/// A request as the signature sees it.
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Header lookup by lower-case name.
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub body: &'a [u8],
}

pub fn canonical_request(req: &RequestParts<'_>, signed_headers: &[String]) -> Result<String, SigningError> {
    let mut path = req.path.to_string();
    if !path.ends_with('/') {
        path.push('/');
    }
    let mut query: Vec<(&str, &str)> =
        req.query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).collect();
    query.sort();
    let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut names: Vec<&String> = signed_headers.iter().collect();
    names.sort();
    let mut headers = String::new();
    for name in &names {
        let value = (req.header)(name).ok_or_else(|| SigningError::MissingSignedHeader(name.to_string()))?;
        headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let signed = names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(";");
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        path,
        query,
        headers,
        signed,
        hex::encode(Sha256::digest(req.body))
    ))
}

pub fn string_to_sign(date: &str, canonical: &str) -> String {
    format!("{ALGORITHM}\n{date}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())))
}

pub fn sign(secret_key: &str, string_to_sign: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The secret key of an access key, derived from the server's master key.
pub fn derive_secret_key(master_key: &[u8], access_key: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(master_key).expect("HMAC takes any key length");
    mac.update(b"ledger-sk:");
    mac.update(access_key.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a signed request: the date window, the signed headers, and the signature
/// (compared in constant time).
pub fn verify(
    auth: &SignedAuthorization,
    req: &RequestParts<'_>,
    secret_key: &str,
    now: DateTime<Utc>,
) -> Result<(), SigningError> {
    if !auth.signed_headers.iter().any(|h| h == "x-sdk-date") {
        return Err(SigningError::DateNotSigned);
    }
    let date = (req.header)("x-sdk-date").ok_or(SigningError::BadDate)?;
    let at = NaiveDateTime::parse_from_str(&date, DATE_FORMAT).map_err(|_| SigningError::BadDate)?.and_utc();
    if (now - at).abs() > DATE_WINDOW {
        return Err(SigningError::OutsideWindow);
    }
    let canonical = canonical_request(req, &auth.signed_headers)?;
    let mut mac = HmacSha256::new_from_slice(secret_key.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign(&date, &canonical).as_bytes());
    let expected = hex::decode(&auth.signature).map_err(|_| SigningError::Malformed)?;
    mac.verify_slice(&expected).map_err(|_| SigningError::Mismatch)
}

/// Signs a request as a client would (for tests, benchmarks and the README's examples).
pub fn authorization_header(
    access_key: &str,
    secret_key: &str,
    req: &RequestParts<'_>,
    signed_headers: &[&str],
) -> Result<String, SigningError> {
    let signed: Vec<String> = signed_headers.iter().map(|h| h.to_ascii_lowercase()).collect();
    let date = (req.header)("x-sdk-date").ok_or(SigningError::BadDate)?;
    let canonical = canonical_request(req, &signed)?;
    let signature = sign(secret_key, &string_to_sign(&date, &canonical));
    let mut names = signed.clone();
    names.sort();
    Ok(format!("{ALGORITHM} Access={access_key}, SignedHeaders={}, Signature={signature}", names.join(";")))
}

pub fn format_sdk_date(t: DateTime<Utc>) -> String {
    t.format(DATE_FORMAT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(date: &str) -> impl Fn(&str) -> Option<String> + '_ {
        move |name: &str| match name {
            "x-sdk-date" => Some(date.to_string()),
            "host" => Some(" ledger.example:8080 ".to_string()),
            "content-type" => Some("application/json".to_string()),
            _ => None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-07-14T08:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_canonical_request_is_as_documented() {
        let h = headers("20260714T080000Z");
        let req = RequestParts { method: "post", path: "/v1/withdrawals", query: "b=2&a=1", header: &h, body: b"{}" };
        let c = canonical_request(&req, &["x-sdk-date".into(), "host".into()]).unwrap();
        assert_eq!(
            c,
            "POST\n/v1/withdrawals/\na=1&b=2\nhost:ledger.example:8080\nx-sdk-date:20260714T080000Z\n\nhost;x-sdk-date\n\
             44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let secret = derive_secret_key(b"master", "AK1");
        let h = headers("20260714T080000Z");
        let body = br#"{"amount":"10.00","currency":"CNY"}"#;
        let req = RequestParts { method: "POST", path: "/v1/withdrawals", query: "", header: &h, body };
        let header = authorization_header("AK1", &secret, &req, &["X-Sdk-Date", "host"]).unwrap();
        let auth = parse_authorization(&header).unwrap();
        assert_eq!(auth.access_key, "AK1");
        verify(&auth, &req, &secret, now()).unwrap();

        let tampered = RequestParts { body: br#"{"amount":"99.00","currency":"CNY"}"#, ..req };
        assert_eq!(verify(&auth, &tampered, &secret, now()), Err(SigningError::Mismatch));
        let other_path = RequestParts { path: "/v1/allocations", body, ..tampered };
        assert_eq!(verify(&auth, &other_path, &secret, now()), Err(SigningError::Mismatch));
        let req = RequestParts { method: "POST", path: "/v1/withdrawals", query: "", header: &h, body };
        let wrong_secret = derive_secret_key(b"master", "AK2");
        assert_eq!(verify(&auth, &req, &wrong_secret, now()), Err(SigningError::Mismatch));
    }

    #[test]
    fn the_date_must_be_signed_and_within_fifteen_minutes() {
        let secret = derive_secret_key(b"master", "AK1");
        let h = headers("20260714T074400Z"); // 16 minutes early
        let req = RequestParts { method: "GET", path: "/v1/balances", query: "", header: &h, body: b"" };
        let auth = parse_authorization(&authorization_header("AK1", &secret, &req, &["x-sdk-date"]).unwrap()).unwrap();
        assert_eq!(verify(&auth, &req, &secret, now()), Err(SigningError::OutsideWindow));
        let h = headers("20260714T074600Z"); // 14 minutes early
        let req = RequestParts { header: &h, ..req };
        let auth = parse_authorization(&authorization_header("AK1", &secret, &req, &["x-sdk-date"]).unwrap()).unwrap();
        verify(&auth, &req, &secret, now()).unwrap();
        let unsigned_date =
            parse_authorization(&authorization_header("AK1", &secret, &req, &["host"]).unwrap()).unwrap();
        assert_eq!(verify(&unsigned_date, &req, &secret, now()), Err(SigningError::DateNotSigned));
    }

    #[test]
    fn malformed_authorization_headers_are_refused() {
        for bad in [
            "Bearer abc",
            "SDK-HMAC-SHA256",
            "SDK-HMAC-SHA256 Access=AK1",
            "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date, Signature=zz",
            "SDK-HMAC-SHA256 Access=, SignedHeaders=x-sdk-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date, Signature=00, Extra=1",
        ] {
            assert_eq!(parse_authorization(bad), Err(SigningError::Malformed), "{bad}");
        }
    }
}
