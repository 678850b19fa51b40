//! The wire form of the vendor's Python SDK (`huaweicloudsdkbss` with `huaweicloudsdkcore`'s
//! signer), rebuilt here so the tests send exactly what a partner's integration sends:
//!
//! ```text
//! POST /v2/accounts/partner-accounts/adjust-amount
//! User-Agent: huaweicloud-usdk-python/3.0; ...
//! Content-Type: application/json
//! X-Domain-Id: <domain>
//! X-Sdk-Date: 20261201T201735Z
//! Host: 127.0.0.1:38389
//! Authorization: SDK-HMAC-SHA256 Access=<ak>, SignedHeaders=content-type;host;user-agent;x-domain-id;x-sdk-date, Signature=<hex>
//!
//! {"customer_id": "C1", "amount": 12.30}
//! ```
//!
//! The body is `json.dumps(..., use_decimal=True)`: `", "` and `": "` separators, amounts as
//! JSON numbers. A GET carries `Content-Type: application/json` and no body. The query is
//! sorted and percent-encoded (`quote(s, safe='~')`), the same string signed and sent.
//! The canonical request: method, the path with a trailing `/`, the query, each signed
//! header `name:value` on its line, the signed names joined by `;`, and the hex SHA-256
//! of the body; the string to sign `SDK-HMAC-SHA256\n<date>\n<hex SHA-256 of it>`.
#![allow(dead_code)]

use std::sync::atomic::{AtomicI64, Ordering};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Server, ADMIN_TOKEN};

pub const USER_AGENT: &str = "huaweicloud-usdk-python/3.0; os/Linux impl/CPython; app/ledger-e2e";

/// A partner's SDK client: its AK/SK and the domain id the SDK sends (`X-Domain-Id`,
/// accepted and ignored by the ledger).
pub struct Sdk<'a> {
    server: &'a Server,
    pub access_key: String,
    secret_key: String,
    domain_id: String,
    /// Seconds before `born` for the next `X-Sdk-Date`: every request signs a distinct date, as
    /// calls made a second apart do (a signed write acts once).
    skew: AtomicI64,
    /// The dates count back from when this SDK was made, not from each call's now: counting
    /// back from now, two calls a second apart would land on one date (and one signature).
    born: chrono::DateTime<chrono::Utc>,
}

/// Percent-encoding of Python's `urllib.parse.quote(s, safe='~')`.
pub fn quote(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl<'a> Sdk<'a> {
    /// A partner credential issued by the admin, used through its AK/SK.
    pub fn for_partner(server: &'a Server, partner_id: &str) -> Sdk<'a> {
        let (status, answer) = server.call(
            "POST",
            "/v1/credentials",
            Some(ADMIN_TOKEN),
            Some(serde_json::json!({"role": "partner", "partner_id": partner_id})),
        );
        assert_eq!(status, 201, "{answer}");
        Sdk {
            server,
            access_key: answer["access_key"].as_str().unwrap().to_string(),
            secret_key: answer["secret_key"].as_str().unwrap().to_string(),
            domain_id: format!("domain-of-{partner_id}"),
            skew: AtomicI64::new(0),
            born: chrono::Utc::now(),
        }
    }

    /// GET with query parameters (sent in the SDK's order: sorted, encoded).
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        parsed(self.send("GET", path, query, None, &[]))
    }

    /// POST with a body written as the SDK writes it.
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        parsed(self.send("POST", path, &[], Some(body), &[]))
    }

    /// GET answering the body's text as sent (to read a JSON number's own digits).
    pub fn get_text(&self, path: &str, query: &[(&str, &str)]) -> (u16, String) {
        self.send("GET", path, query, None, &[])
    }

    /// POST answering the body's text as sent.
    pub fn post_text(&self, path: &str, body: &str) -> (u16, String) {
        self.send("POST", path, &[], Some(body), &[])
    }

    /// The same signed POST twice: the same date, so the same signature (unless a second
    /// passes between the two).
    pub fn post_twice(&self, path: &str, body: &str) -> [(u16, Value); 2] {
        let first = self.post(path, body);
        self.skew.fetch_sub(1, Ordering::SeqCst);
        [first, self.post(path, body)]
    }

    /// A POST with headers of the caller's own beside the signed ones (e.g. `X-Request-Id`).
    pub fn post_with(&self, path: &str, body: &str, extra: &[(&str, &str)]) -> (u16, String) {
        self.send("POST", path, &[], Some(body), extra)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (u16, String) {
        let mut params: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        params.sort();
        let query = params.iter().map(|(k, v)| format!("{}={}", quote(k), quote(v))).collect::<Vec<_>>().join("&");
        let skew = self.skew.fetch_add(1, Ordering::SeqCst) % 600;
        let date = (self.born - chrono::TimeDelta::seconds(skew)).format("%Y%m%dT%H%M%SZ").to_string();
        let host = self.server.base.trim_start_matches("http://").to_string();
        let headers = [
            ("content-type", "application/json".to_string()),
            ("host", host),
            ("user-agent", USER_AGENT.to_string()),
            ("x-domain-id", self.domain_id.clone()),
            ("x-sdk-date", date.clone()),
        ];
        let body_bytes = body.unwrap_or("").as_bytes();
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
        let signed = signed.join(";");
        let canonical_path = if path.ends_with('/') { path.to_string() } else { format!("{path}/") };
        let canonical = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            method,
            canonical_path,
            query,
            canonical_headers,
            signed,
            hex::encode(Sha256::digest(body_bytes))
        );
        let to_sign = format!("SDK-HMAC-SHA256\n{date}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret_key.as_bytes()).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        let url = if query.is_empty() { self.server.url(path) } else { self.server.url(&format!("{path}?{query}")) };
        let mut req = ureq::request(method, &url)
            .set("User-Agent", USER_AGENT)
            .set("Accept-Encoding", "gzip, deflate")
            .set("Accept", "*/*")
            .set("Content-Type", "application/json")
            .set("X-Domain-Id", &self.domain_id)
            .set("X-Sdk-Date", &date)
            .set(
                "Authorization",
                &format!("SDK-HMAC-SHA256 Access={}, SignedHeaders={signed}, Signature={signature}", self.access_key),
            );
        for (k, v) in extra {
            req = req.set(k, v);
        }
        let resp = match body {
            Some(b) => req.send_bytes(b.as_bytes()),
            None => req.call(),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        (resp.status(), resp.into_string().unwrap())
    }
}

fn parsed((status, text): (u16, String)) -> (u16, Value) {
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The digits of every JSON number written for `field` in a compact JSON text, in order:
/// what the SDK's `json.loads(..., parse_float=Decimal)` reads, before any float.
pub fn numbers(text: &str, field: &str) -> Vec<String> {
    let key = format!("\"{field}\":");
    text.match_indices(&key)
        .filter_map(|(at, _)| {
            let rest = &text[at + key.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-').collect();
            (!digits.is_empty()).then_some(digits)
        })
        .collect()
}
