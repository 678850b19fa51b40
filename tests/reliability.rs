//! Reliability suite (issue 17), through the real binary: hostile input over every write
//! route, races through HTTP, and a crash loop. Each test prints its figures for
//! RELIABILITY.md (`cargo nextest run -p ledger-cli -E 'binary(reliability)' --no-capture`).

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

/// The head of the log, from `/healthz`.
fn head(s: &Server) -> u64 {
    let (status, h) = s.call("GET", "/healthz", None, None);
    assert_eq!(status, 200, "{h}");
    h["head_position"].as_u64().unwrap()
}

/// A request that may fail in transport (a killed server): `None` then.
fn try_send(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Value)> {
    let mut req = ureq::request(method, &format!("{base}{path}")).set("X-Auth-Token", token);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let status = resp.status();
    let text = resp.into_string().ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// A small deterministic generator (xorshift), so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// Values no field should take: wrong types, huge, negative and over-precise amounts,
/// control characters, dot segments, deep nesting.
fn hostile_values() -> Vec<Value> {
    // Deeper than the JSON parser's limit (128); deeper still goes as raw bytes below.
    let deep = (0..300).fold(json!(1), |v, _| json!([v]));
    vec![
        json!(null),
        json!(true),
        json!(-1),
        json!(1e308),
        json!(u64::MAX),
        json!("-1.00"),
        json!("0.001"),
        json!("1e3"),
        json!("99999999999999999999999999999.99"),
        json!("NaN"),
        json!(""),
        json!("   "),
        json!(".."),
        json!("P\u{0}1"),
        json!("a\u{202e}b\nc"),
        json!("x".repeat(100_000)),
        json!([1, 2, 3]),
        json!({"amount": "1.00", "currency": "XXX"}),
        json!(vec![json!("x"); 20_000]),
        deep,
    ]
}

/// A body that is almost right for most write routes, one field of which is then spoiled.
fn plausible() -> Value {
    json!({
        "partner_id": "HOS", "customer_id": "HOS-C1", "name": "Hostile Ltd", "kind": "distributor",
        "amount": "1.00", "currency": "CNY", "counterparty": {"type": "customer", "id": "HOS-C1"},
        "association_type": "resale", "points": 10, "quarter": "2026Q3", "coupon_id": "HOS-CP",
        "expires_at": "2099-01-01T00:00:00Z", "records": [], "role": "auditor", "decision": "pass",
        "effective_month": "2026-07", "rates": [{"product": "ecs", "rate": "0.05"}], "level": "core",
        "refund_id": "HOS-RF", "settled_at": "2026-07-11T02:00:00Z", "method": "bank_transfer",
        "bank_account": {"holder_name": "H", "number": "1", "bank": "B"}, "legal_name": "H",
        "opportunity_id": "HOS-OP", "offering": "x", "core_tag": true, "coupon_ids": ["HOS-CP"],
    })
}

/// Raw bodies no JSON parser should be fooled by, with the content type they are sent as.
fn hostile_raw() -> Vec<(Option<&'static str>, Vec<u8>)> {
    let json = Some("application/json");
    vec![
        (json, b"{\"amount\": \"1.00\", \"amount\": \"-5.00\", \"currency\": \"CNY\"}".to_vec()),
        (json, b"{\"partner_id\": \"HOS\"".to_vec()),
        (json, b"\xff\xfe{\"a\": 1}".to_vec()),
        (json, format!("{}{}", "{\"a\":".repeat(5_000), "}".repeat(5_000)).into_bytes()),
        (json, b"".to_vec()),
        (Some("text/plain"), plausible().to_string().into_bytes()),
        (Some("application/x-www-form-urlencoded"), b"partner_id=HOS&amount=1.00".to_vec()),
        (Some("application/json; charset=utf-16"), plausible().to_string().into_bytes()),
        (None, plausible().to_string().into_bytes()),
    ]
}

/// Every write route of `/openapi.json` with its path parameters filled in.
fn write_routes(s: &Server) -> Vec<(String, String)> {
    let (status, doc) = s.call("GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    let mut routes = vec![];
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ["post", "put"] {
            if ops.get(method).is_some() {
                let filled = path
                    .replace("{month}", "2026-07")
                    .replace("{action}", "approve")
                    .replace("{id}", "HOS")
                    .replace("{stream}", "funds-HOS");
                routes.push((method.to_uppercase(), filled));
            }
        }
    }
    routes
}

/// Generated hostile requests against every write route, as the operator and as a partner:
/// no answer is a 5xx, and no refused request stores anything (the log's head is unchanged).
#[test]
fn hostile_input_on_every_write_route_gets_no_5xx_and_stores_nothing_when_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let partner = certified_partner(&s, "HOS", "distributor", None);
    associate(&s, "HOS-C1", "HOS", "resale");
    created(&s, "POST", "/v1/partners/HOS/funds", ADMIN_TOKEN, Some(json!({"amount": "100.00", "currency": "CNY"})));
    let routes = write_routes(&s);
    assert!(routes.len() >= 30, "{routes:?}");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let values = hostile_values();
    let fields: Vec<String> = plausible().as_object().unwrap().keys().cloned().collect();
    let (mut tried, mut refused, mut accepted) = (0u64, 0u64, 0u64);
    for (method, path) in &routes {
        for token in [ADMIN_TOKEN, partner.as_str()] {
            let mut bodies: Vec<(Option<&str>, Vec<u8>)> = hostile_raw();
            for _ in 0..30 {
                let mut body = plausible();
                body[rng.pick(&fields).as_str()] = rng.pick(&values).clone();
                bodies.push((Some("application/json"), body.to_string().into_bytes()));
            }
            bodies.push((Some("application/json"), rng.pick(&values).to_string().into_bytes()));
            for (content_type, body) in bodies {
                let before = head(&s);
                let headers: Vec<(&str, &str)> = content_type.map(|c| vec![("Content-Type", c)]).unwrap_or_default();
                let (status, answer) = s.send_raw(method, path, Some(token), &headers, &body);
                tried += 1;
                let shown = String::from_utf8_lossy(&body[..body.len().min(160)]).to_string();
                assert!(status < 500, "{method} {path} {shown}: {status} {answer}");
                if status >= 400 {
                    refused += 1;
                    assert!(answer["error_code"].is_string(), "{method} {path} {shown}: {answer}");
                    assert_eq!(head(&s), before, "{method} {path} {shown} was refused ({answer}) but stored");
                } else {
                    accepted += 1;
                }
            }
        }
    }
    println!(
        "hostile input: {} write routes, {tried} requests, {refused} refused (no 5xx, nothing stored), {accepted} accepted",
        routes.len()
    );
}

/// 400 allocations of 3.00 race from 16 threads for a pool of 1,000.00: exactly 333 are
/// stored, the rest refused for the balance, no caller sees a conflict. And 8 twins of one
/// request (one `X-Request-Id`) store it once and all answer the same.
#[test]
fn racing_http_writers_queue_never_overdraw_and_twins_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let d = certified_partner(&s, "RACE", "distributor", None);
    associate(&s, "RACE-C1", "RACE", "resale");
    created(&s, "POST", "/v1/partners/RACE/funds", ADMIN_TOKEN, Some(json!({"amount": "1000.00", "currency": "CNY"})));
    let alloc = json!({"counterparty": {"type": "customer", "id": "RACE-C1"}, "amount": "3.00", "currency": "CNY"});
    let barrier = std::sync::Barrier::new(16);
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (s, d, alloc, barrier) = (&s, &d, &alloc, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    (0..25).map(|_| s.call("POST", "/v1/allocations", Some(d), Some(alloc.clone()))).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let count = |status: u16, code: Option<&str>| {
        answers.iter().filter(|(st, b)| *st == status && b["error_code"].as_str() == code).count()
    };
    let (stored, short, conflicts) =
        (count(201, None), count(409, Some("INSUFFICIENT_BALANCE")), count(409, Some("CONCURRENCY_CONFLICT")));
    println!("HTTP race: 400 allocations of 3.00 from 16 threads on a 1,000.00 pool: {stored} stored, {short} refused for the balance, {conflicts} conflicts");
    assert_eq!((stored, short, conflicts), (333, 67, 0), "{:?}", answers.iter().find(|(st, _)| *st >= 500));
    let b = balances(&s, &d, "");
    assert_eq!(cents(&b["partner:RACE:fund_pool"]), 100, "one yuan left, never below zero: {b:?}");

    let before = head(&s);
    let twins: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (s, d) = (&s, &d);
                let body =
                    json!({"counterparty": {"type": "customer", "id": "RACE-C1"}, "amount": "1.00", "currency": "CNY"});
                scope
                    .spawn(move || s.send("POST", "/v1/allocations", Some(d), &[("X-Request-Id", "twin")], Some(&body)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = twins.iter().find(|(st, _)| *st == 201).expect("one twin stores").1.clone();
    assert_eq!(twins.iter().filter(|(st, _)| *st == 201).count(), 1, "{twins:?}");
    assert!(twins.iter().all(|(st, b)| (*st == 201 || *st == 200) && *b == first), "{twins:?}");
    assert_eq!(head(&s), before + 1, "the twins stored one allocation");
}

/// The crash loop: `ledger serve` is killed with SIGKILL under a mixed write load, round after
/// round. Every write it acknowledged is in the log at the position it answered, the hash
/// chain verifies, and the read models after a restart equal a rebuild from the log.
#[test]
fn sigkill_under_a_mixed_write_load_loses_no_acknowledged_write() {
    const ROUNDS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let mut next_id = 0u64;
    for round in 0..ROUNDS {
        let s = Server::start(dir.path());
        if round == 0 {
            for p in ["CR1", "CR2"] {
                certified_partner(&s, p, "distributor", None);
                associate(&s, &format!("{p}-C1"), p, "resale");
            }
            publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
        }
        let tokens: Vec<String> = ["CR1", "CR2"].iter().map(|p| s.credential("partner", Some(p))).collect();
        let stop = AtomicBool::new(false);
        let target = acked.lock().unwrap().len() + 120;
        std::thread::scope(|scope| {
            for w in 0..4 {
                let (base, acked, stop, tokens) = (s.base.clone(), acked.clone(), &stop, &tokens);
                let first_id = next_id + w as u64 * 1_000_000;
                scope.spawn(move || {
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let rid = format!("crash-{}", first_id + i);
                        let p = ["CR1", "CR2"][(i % 2) as usize];
                        let (path, token, body) = match (w + i as usize) % 3 {
                            0 => (format!("/v1/partners/{p}/funds"), ADMIN_TOKEN.to_string(), json!({"amount": "5.00", "currency": "CNY"})),
                            1 => ("/v1/allocations".to_string(), tokens[(i % 2) as usize].clone(), json!({"counterparty": {"type": "customer", "id": format!("{p}-C1")}, "amount": "0.01", "currency": "CNY"})),
                            _ => ("/v1/consumption".to_string(), ADMIN_TOKEN.to_string(), json!({"records": [line(&rid, &format!("{p}-C1"), "ecs", "2.00", "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z")]})),
                        };
                        let headers = [("X-Request-Id", rid.as_str()), ("Content-Type", "application/json")];
                        match try_send(&base, "POST", &path, &token, &headers, body.to_string().as_bytes()) {
                            Some((201, answer)) => {
                                let position = answer["position"].as_u64().expect("a stored write names its position");
                                acked.lock().unwrap().insert(rid, position);
                            }
                            Some((status, answer)) if status < 500 => {
                                assert!(status == 409 || status == 200, "{path}: {status} {answer}");
                            }
                            Some((status, answer)) => panic!("{path}: {status} {answer}"),
                            None => break, // the server was killed mid-request: not acknowledged
                        }
                    }
                });
            }
            while acked.lock().unwrap().len() < target {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            drop(s); // SIGKILL while the writers are mid-flight
            stop.store(true, Ordering::SeqCst);
        });
        next_id += 10_000_000;
    }

    // Every acknowledged write is at the position it answered, with its request id.
    let s = Server::start(dir.path());
    let total = head(&s);
    let mut by_request: HashMap<String, Vec<u64>> = HashMap::new();
    let mut from = 1;
    while from <= total {
        let (status, page) =
            s.call("GET", &format!("/v1/events?from_position={from}&limit=1000"), Some(ADMIN_TOKEN), None);
        assert_eq!(status, 200, "{page}");
        for e in page["items"].as_array().unwrap() {
            if let Some(rid) = e["request_id"].as_str() {
                by_request.entry(rid.to_string()).or_default().push(e["position"].as_u64().unwrap());
            }
            from = e["position"].as_u64().unwrap() + 1;
        }
    }
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<_> =
        acked.iter().filter(|(rid, pos)| !by_request.get(*rid).is_some_and(|p| p.contains(pos))).collect();
    let (status, verdict) = s.call("GET", "/v1/audit/verify", Some(ADMIN_TOKEN), None);
    println!(
        "crash loop: {ROUNDS} SIGKILL rounds under 4 writers; {} acknowledged writes checked, {} lost; log of {total} events, chain ok: {}",
        acked.len(),
        lost.len(),
        verdict["ok"]
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert_eq!(
        (status, verdict["ok"].as_bool(), verdict["checked"].as_u64()),
        (200, Some(true), Some(total)),
        "{verdict}"
    );

    // The read models caught up after the crashes equal a rebuild from the log.
    let auditor = s.credential("auditor", None);
    let live: Vec<Value> = ["CR1", "CR2"]
        .iter()
        .map(|p| {
            read(&s, &format!("/v1/balances?partner_id={p}&as_of=2100-01-01T00:00:00Z&min_position={total}"), &auditor)
        })
        .collect();
    let live_trial = assert_balanced(&s, &auditor, total)["currencies"].clone();
    assert!(s.stop().success());
    let rebuilt = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["projections", "rebuild", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    let s = Server::start(dir.path());
    let again: Vec<Value> = ["CR1", "CR2"]
        .iter()
        .map(|p| {
            read(&s, &format!("/v1/balances?partner_id={p}&as_of=2100-01-01T00:00:00Z&min_position={total}"), &auditor)
        })
        .collect();
    assert_eq!(live, again, "balances after the crashes equal a rebuild");
    assert_eq!(assert_balanced(&s, &auditor, total)["currencies"], live_trial);
}
