//! The HTTP service's plumbing through the real binary: authentication (401), roles (403),
//! credentials, the auditor's endpoints, and bad requests (400/413/415), each answered in
//! docs/API.md's error shape and storing nothing.

mod support;

use serde_json::json;
use support::{Server, ADMIN_TOKEN};

#[test]
fn credentials_roles_and_the_auditors_view() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    let (status, body) = server.call("GET", "/v1/events", None, None);
    assert_eq!((status, body["error_code"].as_str()), (401, Some("UNAUTHENTICATED")));
    let (status, _) = server.call("GET", "/v1/events", Some("wrong"), None);
    assert_eq!(status, 401);

    let (status, auditor) = server.call("POST", "/v1/credentials", Some(ADMIN_TOKEN), Some(json!({"role": "auditor"})));
    assert_eq!(status, 201, "{auditor}");
    let auditor_token = auditor["token"].as_str().unwrap().to_string();
    assert!(auditor["secret_key"].as_str().unwrap().len() == 64);
    // A partner credential names a partner that exists.
    let for_p1 = json!({"role": "partner", "partner_id": "P1"});
    let (status, body) = server.call("POST", "/v1/credentials", Some(ADMIN_TOKEN), Some(for_p1.clone()));
    assert_eq!((status, body["error_code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    let p1 = json!({"partner_id": "P1", "name": "P One", "kind": "distributor"});
    let (status, body) = server.call("POST", "/v1/partners", Some(ADMIN_TOKEN), Some(p1));
    assert_eq!(status, 201, "{body}");
    let (status, partner) = server.call("POST", "/v1/credentials", Some(ADMIN_TOKEN), Some(for_p1));
    assert_eq!(status, 201, "{partner}");
    let partner_token = partner["token"].as_str().unwrap().to_string();

    // Only an admin issues credentials; a partner never reads the global log.
    let (status, body) = server.call("POST", "/v1/credentials", Some(&auditor_token), Some(json!({"role": "admin"})));
    assert_eq!((status, body["error_code"].as_str()), (403, Some("FORBIDDEN")));
    let (status, _) = server.call("GET", "/v1/events", Some(&partner_token), None);
    assert_eq!(status, 403);

    // The log holds the two credentials (and the partner), hashed: no token or secret
    // appears in it.
    let (status, log) = server.call("GET", "/v1/events?from_position=1&limit=10", Some(&auditor_token), None);
    assert_eq!(status, 200);
    assert_eq!(log["total"], 3);
    let text = log.to_string();
    assert!(!text.contains(&auditor_token) && !text.contains(partner["secret_key"].as_str().unwrap()));
    assert_eq!(log["items"][0]["type"], "CredentialIssued");
    assert_eq!(log["items"][1]["prev_hash"], log["items"][0]["hash"]);
    let (status, stream) = server.call("GET", "/v1/streams/credentials/events", Some(&auditor_token), None);
    assert_eq!((status, stream["total"].as_u64()), (200, Some(2)));
    let (status, _) = server.call("GET", "/v1/streams/nope/events", Some(&auditor_token), None);
    assert_eq!(status, 404);
    let (status, verdict) = server.call("GET", "/v1/audit/verify", Some(&auditor_token), None);
    assert_eq!((status, verdict["ok"].as_bool(), verdict["checked"].as_u64()), (200, Some(true), Some(3)));

    // Credentials survive a restart.
    assert!(server.stop().success());
    let server = Server::start(dir.path());
    let (status, _) = server.call("GET", "/v1/audit/verify", Some(&auditor_token), None);
    assert_eq!(status, 200);
}

/// docs/API.md, Authentication: an issue honours `X-Request-Id` (a retry answers the same
/// credential, secrets included, and mints none), a credential may expire, is listed without
/// secrets, and a revoked one is refused at once and after a restart.
#[test]
fn credentials_are_idempotent_listed_expire_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let rid = |id: &'static str| [("X-Request-Id", id)];
    let auditor = json!({"role": "auditor"});
    let (status, first) = server.send("POST", "/v1/credentials", Some(ADMIN_TOKEN), &rid("c-1"), Some(&auditor));
    assert_eq!(status, 201, "{first}");
    let before = server.events_total();
    let (status, again) = server.send("POST", "/v1/credentials", Some(ADMIN_TOKEN), &rid("c-1"), Some(&auditor));
    assert_eq!((status, &again), (200, &first), "a retry answers the first credential");
    assert_eq!(server.events_total(), before, "and mints none");
    let admin = json!({"role": "admin"});
    let (status, body) = server.send("POST", "/v1/credentials", Some(ADMIN_TOKEN), &rid("c-1"), Some(&admin));
    assert_eq!((status, body["error_code"].as_str()), (409, Some("IDEMPOTENCY_CONFLICT")), "{body}");
    let token = first["token"].as_str().unwrap().to_string();
    let (status, _) = server.call("GET", "/v1/events?limit=1", Some(&token), None);
    assert_eq!(status, 200);

    // An expiry lies ahead; a credential with one is listed with it.
    let past = json!({"role": "auditor", "expires_at": "2020-01-01T00:00:00Z"});
    let (status, body) = server.call("POST", "/v1/credentials", Some(ADMIN_TOKEN), Some(past));
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_FIELD")), "{body}");
    let later = json!({"role": "auditor", "expires_at": "2099-01-01T00:00:00Z"});
    let (status, expiring) = server.call("POST", "/v1/credentials", Some(ADMIN_TOKEN), Some(later));
    assert_eq!((status, expiring["expires_at"].as_str()), (201, Some("2099-01-01T00:00:00.000000Z")), "{expiring}");

    // The list shows both, no secret.
    let (status, list) = server.call("GET", "/v1/credentials", Some(ADMIN_TOKEN), None);
    assert_eq!((status, list["total"].as_u64()), (200, Some(2)), "{list}");
    assert!(!list.to_string().contains(&token) && !list.to_string().contains(first["secret_key"].as_str().unwrap()));
    let (status, _) = server.call("GET", "/v1/credentials", Some(&token), None);
    assert_eq!(status, 403);

    // Revoked: refused at once, listed as such, and a second revocation changes nothing.
    let id = first["credential_id"].as_str().unwrap();
    let (status, revoked) = server.call("POST", &format!("/v1/credentials/{id}/revoke"), Some(ADMIN_TOKEN), None);
    assert_eq!(status, 201, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (status, body) = server.call("GET", "/v1/events?limit=1", Some(&token), None);
    assert_eq!((status, body["error_code"].as_str()), (401, Some("UNAUTHENTICATED")));
    let (status, again) = server.call("POST", &format!("/v1/credentials/{id}/revoke"), Some(ADMIN_TOKEN), None);
    assert_eq!((status, &again["revoked_at"]), (200, &revoked["revoked_at"]));
    let (status, body) = server.call("POST", "/v1/credentials/cred-nope/revoke", Some(ADMIN_TOKEN), None);
    assert_eq!((status, body["error_code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    let (_, list) = server.call("GET", "/v1/credentials", Some(ADMIN_TOKEN), None);
    let listed = list["items"].as_array().unwrap().iter().find(|c| c["credential_id"] == id).unwrap().clone();
    assert_eq!((&listed["live"], &listed["revoked_at"]), (&json!(false), &revoked["revoked_at"]));

    assert!(server.stop().success());
    let server = Server::start(dir.path());
    let (status, _) = server.call("GET", "/v1/events?limit=1", Some(&token), None);
    assert_eq!(status, 401, "revoked after a restart too");
    let (status, _) = server.call("GET", "/v1/events?limit=1", Some(expiring["token"].as_str().unwrap()), None);
    assert_eq!(status, 200);
}

#[test]
fn bad_requests_get_api_errors_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let post_raw = |content_type: &str, body: &[u8]| {
        support::read(
            ureq::post(&server.url("/v1/credentials"))
                .set("X-Auth-Token", ADMIN_TOKEN)
                .set("Content-Type", content_type)
                .set("X-Request-Id", "r-1")
                .send_bytes(body),
        )
    };
    let (status, body) = post_raw("text/plain", br#"{"role":"auditor"}"#);
    assert_eq!((status, body["error_code"].as_str()), (415, Some("UNSUPPORTED_MEDIA_TYPE")));
    assert_eq!(body["request_id"], "r-1");
    let (status, body) = post_raw("application/json", b"{not json");
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_FIELD")));
    let (status, body) = post_raw("application/json", br#"{"role": 7}"#);
    assert_eq!(status, 400);
    assert!(body["error_msg"].as_str().unwrap().contains("role"), "{body}");
    let (status, _) = post_raw("application/json", br#"{"role":"auditor","extra":1}"#);
    assert_eq!(status, 400);
    let (status, _) = post_raw("application/json", br#"{"role":"emperor"}"#);
    assert_eq!(status, 400);
    let (status, _) = post_raw("application/json", br#"{"role":"partner","partner_id":"P 1"}"#);
    assert_eq!(status, 400);
    // Just over the limit: a much larger body can break the client's write before the 413 is read.
    let big = vec![b' '; 1024 * 1024 + 16];
    let (status, body) = post_raw("application/json", &big);
    assert_eq!((status, body["error_code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")));
    let (status, _) = server.call("GET", "/v1/events?limit=5000", Some(ADMIN_TOKEN), None);
    assert_eq!(status, 400);
    let (status, _) = server.call("GET", "/v1/nowhere", Some(ADMIN_TOKEN), None);
    assert_eq!(status, 404);
    let (_, log) = server.call("GET", "/v1/events", Some(ADMIN_TOKEN), None);
    assert_eq!(log["total"], 0, "nothing was stored");
}
