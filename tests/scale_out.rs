//! Several `ledger serve` nodes on one PostgreSQL database (issue 18): any node takes any
//! request, no rule breaks across nodes (each decision is appended at the stream version it
//! was made from), a write read through another node with `min_position` is seen there, a
//! credential issued on one node works on the others at once, and a captured signed write
//! acts once: not again on another node, not again after a restart.
//!
//! PostgreSQL is `LEDGER_TEST_POSTGRES` or `postgres://postgres@127.0.0.1:5432/test`; each
//! test has a schema of its own (support/postgres.rs).

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

/// `n` nodes on one fresh schema, each with its own data directory.
fn nodes(n: usize) -> (Vec<tempfile::TempDir>, Vec<Server>) {
    let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    support::postgres::use_postgres(dirs[0].path());
    for d in &dirs[1..] {
        support::postgres::share(dirs[0].path(), d.path());
    }
    let servers = dirs.iter().map(|d| Server::start(d.path())).collect();
    (dirs, servers)
}

/// Sends `count` requests made by `request(i)` at once, request `i` through node `i % n`.
fn race(
    servers: &[Server],
    count: usize,
    request: impl Fn(usize) -> (String, Option<String>, Value) + Sync,
) -> Vec<(u16, Value)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .map(|i| {
                let (s, request) = (&servers[i % servers.len()], &request);
                scope.spawn(move || {
                    let (path, token, body) = request(i);
                    s.call("POST", &path, Some(token.as_deref().unwrap_or(ADMIN_TOKEN)), Some(body))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// How many were accepted, refused for want of money (`short_code`), or lost every retry to
/// another node (`CONCURRENCY_CONFLICT`, a clean refusal); anything else fails the test.
fn tally(answers: &[(u16, Value)], short_codes: &[&str]) -> (usize, usize) {
    let (mut ok, mut short) = (0, 0);
    for (status, body) in answers {
        match (*status, body["error_code"].as_str()) {
            (201, _) => ok += 1,
            (409, Some(code)) if short_codes.contains(&code) => short += 1,
            (409, Some("CONCURRENCY_CONFLICT")) => {}
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    (ok, short)
}

/// The highest position any answer names.
fn last_position(answers: &[(u16, Value)]) -> u64 {
    answers.iter().filter_map(|(_, b)| b["position"].as_u64()).max().unwrap_or(0)
}

#[test]
fn a_shared_store_needs_the_master_key_and_a_known_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}?schema={}", support::postgres::server_url(), "ledger_e2e_never_made");
    for (store, key, says) in [
        (url.as_str(), None, "LEDGER_MASTER_KEY"),
        ("mysql://u@h/db", Some(support::postgres::MASTER_KEY), "unknown store scheme mysql"),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
        command.args(["serve", "--listen", "127.0.0.1:0", "--store", store, "--data"]).arg(dir.path());
        command.env_remove("LEDGER_MASTER_KEY").env("LEDGER_ADMIN_TOKEN", ADMIN_TOKEN);
        if let Some(k) = key {
            command.env("LEDGER_MASTER_KEY", k);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{store}: {stderr}");
        assert!(stderr.contains(says), "{store}: {stderr}");
    }
}

#[test]
fn three_nodes_on_one_database_never_overdraw_and_each_reads_the_others_writes() {
    let (_dirs, s) = nodes(3);
    publish_policy(&s[0], "2026-07", &[("ecs", "0.05")]);
    // 50.00 paid to the rebate account (20.00 held by a withdrawal), a 30.00 coupon: all
    // through node 0, the token issued there.
    let a = paid_partner(&s[0], "PAIDUP");
    let written = s[0].last_write_position();
    for node in &s[1..] {
        // The credential works at once on the other nodes; their read models wait for the write.
        let b = read(node, &format!("/v1/withdrawals/withdrawable?currency=CNY&min_position={written}"), &a.token);
        assert_eq!(cents(&b), 3000, "{b}");
    }

    // Withdrawals of 5.00 against 30.00 through three nodes at once: at most six held, and
    // if any was refused for want of money, exactly six.
    let bank = json!({"holder_name": "PAIDUP Legal Name Co., Ltd.", "number": "6222000011112222", "bank": "ICBC"});
    let answers = race(&s, 12, |_| {
        (
            "/v1/withdrawals".into(),
            Some(a.token.clone()),
            json!({"amount": "5.00", "currency": "CNY", "bank_account": bank}),
        )
    });
    let (ok, short) = tally(&answers, &["INSUFFICIENT_BALANCE"]);
    assert!(ok <= 6 && (short == 0 || ok == 6), "{answers:?}");
    let at = last_position(&answers);
    for node in &s {
        let left = read(node, &format!("/v1/withdrawals/withdrawable?currency=CNY&min_position={at}"), &a.token);
        assert_eq!(cents(&left), 3000 - 500 * ok as i64, "{left}");
    }

    // Usage of the 30.00 coupon, 10.00 at a time with distinct usage ids: never more than
    // the coupon holds.
    let answers = race(&s, 6, |i| {
        (
            format!("/v1/coupons/{}/usage", a.coupon_id),
            None,
            json!({"usage_id": format!("U-{i}"), "amount": "10.00", "used_at": chrono::Utc::now().to_rfc3339()}),
        )
    });
    let (ok, short) = tally(&answers, &["INSUFFICIENT_BALANCE", "COUPON_USED_UP"]);
    assert!(ok <= 3 && (short == 0 || ok == 3), "{answers:?}");
    let at = last_position(&answers).max(written);
    let coupon = read(&s[2], &format!("/v1/coupons/{}?min_position={at}", a.coupon_id), &a.token);
    assert_eq!(cents(&coupon["remaining"]), 3000 - 1000 * ok as i64, "{coupon}");

    // A distributor's pool of 100.00 allocated 10.00 at a time to its reseller through three
    // nodes: never below zero.
    let d1 = certified_partner(&s[1], "D1", "distributor", None);
    certified_partner(&s[2], "R1", "reseller", Some("D1"));
    created(&s[0], "POST", "/v1/partners/D1/funds", ADMIN_TOKEN, Some(json!({"amount": "100.00", "currency": "CNY"})));
    let answers = race(&s, 15, |i| {
        (
            "/v1/allocations".into(),
            Some(d1.clone()),
            json!({"counterparty": {"type": "reseller", "id": "R1"}, "amount": "10.00", "currency": "CNY", "remark": format!("r{i}")}),
        )
    });
    let (ok, short) = tally(&answers, &["INSUFFICIENT_BALANCE"]);
    assert!(ok <= 10 && (short == 0 || ok == 10), "{answers:?}");
    let at = last_position(&answers).max(s[0].last_write_position());
    let pool = balances(&s[2], &d1, &format!("min_position={at}"));
    assert_eq!(cents(&pool["partner:D1:fund_pool"]), 10000 - 1000 * ok as i64, "{pool:?}");

    // Every acknowledged write is in the one log, whichever node wrote it.
    let totals: Vec<u64> = s.iter().map(Server::events_total).collect();
    assert!(totals.iter().all(|t| *t == totals[0] && *t >= at), "{totals:?} {at}");
    assert_balanced(&s[1], ADMIN_TOKEN, at);
}

/// A signed write as a client sends it, signing only its date and content type (so the
/// same bytes reach any node behind one address).
fn signed_withdrawal(access_key: &str, secret_key: &str) -> (String, String, String) {
    use ledger_api::signing::{authorization_header, format_sdk_date, RequestParts};
    let date = format_sdk_date(chrono::Utc::now());
    let body = json!({"amount": "1.00", "currency": "CNY",
        "bank_account": {"holder_name": "SIGNED Legal Name Co., Ltd.", "number": "6222000011112222", "bank": "ICBC"}})
    .to_string();
    let header = |name: &str| match name {
        "x-sdk-date" => Some(date.clone()),
        "content-type" => Some("application/json".to_string()),
        _ => None,
    };
    let parts =
        RequestParts { method: "POST", path: "/v1/withdrawals", query: "", header: &header, body: body.as_bytes() };
    let authorization = authorization_header(access_key, secret_key, &parts, &["x-sdk-date", "content-type"]).unwrap();
    (date, authorization, body)
}

fn send_signed(s: &Server, (date, authorization, body): &(String, String, String)) -> (u16, Value) {
    support::read(
        ureq::post(&s.url("/v1/withdrawals"))
            .set("Content-Type", "application/json")
            .set("X-Sdk-Date", date)
            .set("Authorization", authorization)
            .send_bytes(body.as_bytes()),
    )
}

#[test]
fn a_captured_signed_write_acts_once_across_nodes_and_restarts() {
    let (dirs, mut s) = nodes(2);
    publish_policy(&s[0], "2026-07", &[("ecs", "0.05")]);
    let a = paid_partner(&s[0], "SIGNED");
    // The AK/SK pair is issued through node 1; the request is signed once, captured, and
    // sent again to each node.
    let (status, issued) = s[1].call(
        "POST",
        "/v1/credentials",
        Some(ADMIN_TOKEN),
        Some(json!({"role": "partner", "partner_id": "SIGNED"})),
    );
    assert_eq!(status, 201, "{issued}");
    let captured = signed_withdrawal(issued["access_key"].as_str().unwrap(), issued["secret_key"].as_str().unwrap());
    let (status, first) = send_signed(&s[0], &captured);
    assert_eq!(status, 201, "the first receipt acts: {first}");
    for node in &s {
        let (status, again) = send_signed(node, &captured);
        assert_eq!((status, again["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "{again}");
        assert!(again["error_msg"].as_str().unwrap().contains("already received"), "{again}");
    }
    // Both nodes restarted: the memory is the store's, not a process's.
    let second = s.pop().unwrap();
    second.stop();
    s.pop().unwrap().stop();
    let s: Vec<Server> = dirs.iter().map(|d| Server::start(d.path())).collect();
    for node in &s {
        let (status, again) = send_signed(node, &captured);
        assert_eq!((status, again["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "{again}");
    }
    // One withdrawal of 1.00 was held, not two: 30.00 − 1.00.
    let left = read(&s[1], &format!("/v1/withdrawals/withdrawable?currency=CNY&min_position={}", a.position), &a.token);
    assert_eq!(cents(&left), 2900, "{left}");
}

#[test]
fn a_captured_signed_write_acts_once_across_a_restart_of_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    paid_partner(&s, "SIGNED");
    let (status, issued) =
        s.call("POST", "/v1/credentials", Some(ADMIN_TOKEN), Some(json!({"role": "partner", "partner_id": "SIGNED"})));
    assert_eq!(status, 201, "{issued}");
    let captured = signed_withdrawal(issued["access_key"].as_str().unwrap(), issued["secret_key"].as_str().unwrap());
    assert_eq!(send_signed(&s, &captured).0, 201);
    assert_eq!(send_signed(&s, &captured).0, 401);
    s.stop();
    let s = Server::start(dir.path());
    let (status, again) = send_signed(&s, &captured);
    assert_eq!((status, again["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "{again}");
}

/// Messages in the ledger topics of the cluster at `brokers`.
fn messages_in_topics(brokers: &str) -> u64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).create().expect("consumer");
    let metadata = consumer.fetch_metadata(None, std::time::Duration::from_secs(10)).expect("metadata");
    let mut total = 0;
    for topic in metadata.topics().iter().filter(|t| t.name().starts_with("ledger.")) {
        for p in topic.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic.name(), p.id(), std::time::Duration::from_secs(10))
                .expect("watermarks");
            total += high as u64;
        }
    }
    total
}

/// The kafka lease's holder (`pid:…`) and position, read from the shared schema.
fn lease(dir: &std::path::Path) -> Option<(String, u64)> {
    let schema = support::postgres::schema_of(dir);
    let out = Command::new("psql")
        .args([&support::postgres::server_url(), "-At", "-c"])
        .arg(format!("SELECT holder, position FROM \"{schema}\".leases WHERE name = 'kafka-relay'"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (holder, position) = text.trim().split_once('|')?;
    Some((holder.to_string(), position.parse().ok()?))
}

/// Waits (at most a minute) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn one_node_publishes_to_kafka_and_another_takes_over_when_it_dies() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;
    let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(3).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    support::postgres::use_postgres(dirs[0].path());
    support::postgres::share(dirs[0].path(), dirs[1].path());
    let env = [("LEDGER_KAFKA_BROKERS", brokers.as_str()), ("LEDGER_KAFKA_LEASE_SECS", "1")];
    let first = Server::start_with_env(dirs[0].path(), &env);
    for i in 0..5 {
        register_partner(&first, &format!("K{i}"), "Kafka Co", "solution_provider", None);
    }
    let head = first.events_total();
    wait_for("the first node to publish", || lease(dirs[0].path()).is_some_and(|(_, p)| p >= head));
    let (holder, _) = lease(dirs[0].path()).unwrap();
    assert!(holder.starts_with(&format!("{}:", first.pid())), "{holder}");

    // A second node joins and writes: it does not publish (the topics hold each event once).
    let second = Server::start_with_env(dirs[1].path(), &env);
    for i in 5..10 {
        register_partner(&second, &format!("K{i}"), "Kafka Co", "solution_provider", None);
    }
    let head = second.events_total();
    wait_for("the holder to publish the second node's writes", || {
        lease(dirs[0].path()).is_some_and(|(_, p)| p >= head)
    });
    std::thread::sleep(std::time::Duration::from_secs(2)); // two nodes would have doubled by now
    assert_eq!(messages_in_topics(&brokers), head, "every event once");
    assert!(lease(dirs[0].path()).unwrap().0.starts_with(&format!("{}:", first.pid())));

    // The holder dies (SIGKILL): the other takes over from the shared checkpoint.
    drop(first);
    for i in 10..15 {
        register_partner(&second, &format!("K{i}"), "Kafka Co", "solution_provider", None);
    }
    let head = second.events_total();
    wait_for("the second node to take over", || {
        lease(dirs[0].path()).is_some_and(|(h, p)| h.starts_with(&format!("{}:", second.pid())) && p >= head)
    });
    assert_eq!(messages_in_topics(&brokers), head, "every event once, none lost, none sent again");
}

/// The first key of the advisory lock that elects the node applying shared read models
/// (projections/src/runner.rs, `LEAD_LOCK_CLASS`).
const PROJECTIONS_LOCK_CLASS: u32 = 0x1ed9;

/// The shared read models' schema of the store in `dir` (the default: `<store schema>_readmodels`).
fn readmodels_schema(dir: &std::path::Path) -> String {
    format!("{}_readmodels", support::postgres::schema_of(dir))
}

fn psql(sql: &str) -> String {
    let out = Command::new("psql").args([&support::postgres::server_url(), "-At", "-c", sql]).output().unwrap();
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The process id of the node that applies the shared read models of `dir`'s store now.
fn projecting_node(dir: &std::path::Path) -> Option<u32> {
    let name = psql(&format!(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid = {PROJECTIONS_LOCK_CLASS} \
         AND l.objid = hashtext('{}')::oid",
        readmodels_schema(dir)
    ));
    name.strip_prefix("ledger-projections-")?.parse().ok()
}

/// Whether process `pid` is gone (exited or a zombie waiting for its parent).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Every table of the shared read models of `dir`'s store equals the same log rebuilt from
/// position 1 into a fresh schema by `ledger projections rebuild`.
fn assert_shared_read_models_equal_a_rebuild(dir: &std::path::Path) {
    let store = support::postgres::store_of_new(dir);
    let check = format!("{}_check", support::postgres::schema_of(dir));
    let out = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["projections", "rebuild", "--store", &store, "--readmodels"])
        .arg(format!("{}?schema={check}", support::postgres::server_url()))
        .env_remove("LEDGER_STORE")
        .env_remove("LEDGER_READMODELS")
        .output()
        .unwrap();
    assert!(out.status.success(), "rebuild: {}", String::from_utf8_lossy(&out.stderr));
    let live = readmodels_schema(dir);
    let tables = [
        "journal",
        "lookup",
        "adjustment_records",
        "incentive_months",
        "rollover_lines",
        "incentive_details",
        "quarterly_payments",
        "coupons",
        "withdrawals",
        "partners",
        "checkpoints",
    ];
    let mut rows = 0;
    for t in tables {
        let dump = |schema: &str| {
            psql(&format!("SELECT string_agg(t::text, E'\\n' ORDER BY t::text) FROM \"{schema}\".{t} t"))
        };
        let (live_rows, rebuilt) = (dump(&live), dump(&check));
        assert_eq!(live_rows, rebuilt, "table {t}: the shared rows differ from a rebuild");
        rows += live_rows.lines().count();
    }
    assert!(rows > 20, "the history fills the read models: {rows} rows");
    psql(&format!("DROP SCHEMA \"{check}\" CASCADE"));
}

#[test]
fn the_node_applying_shared_read_models_dies_mid_batch_and_another_takes_over_losing_and_doubling_nothing() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    support::postgres::use_postgres(dirs[0].path());
    support::postgres::share(dirs[0].path(), dirs[1].path());
    // The first node applies the read models, and aborts after writing the rows of its
    // first batch, before their commit.
    let first = Server::start_with_env(dirs[0].path(), &[("LEDGER_CRASH_AT", "mid-projection-batch")]);
    wait_for("the first node to lead", || projecting_node(dirs[0].path()) == Some(first.pid()));
    let second = Server::start(dirs[1].path());
    assert_eq!(projecting_node(dirs[0].path()), Some(first.pid()), "one node applies at a time");

    // Writes through the second node: the first applies them, and dies mid-batch.
    publish_policy(&second, "2026-07", &[("ecs", "0.05")]);
    wait_for("the first node to die mid-batch", || dead(first.pid()));
    wait_for("the second node to take over", || projecting_node(dirs[0].path()) == Some(second.pid()));

    // The second applies everything from the stored checkpoint, and reads wait for it.
    let a = paid_partner(&second, "MIDBATCH");
    let at = second.last_write_position();
    let left = read(&second, &format!("/v1/withdrawals/withdrawable?currency=CNY&min_position={at}"), &a.token);
    assert_eq!(cents(&left), 3000, "{left}");
    assert_balanced(&second, ADMIN_TOKEN, at);
    assert_eq!(second.events_total(), at);
    assert_shared_read_models_equal_a_rebuild(dirs[0].path());
}

#[test]
fn a_node_killed_mid_load_loses_no_acknowledged_write_and_the_others_go_on() {
    let (dirs, s) = nodes(3);
    // Node 0 applies the read models, so its death also hands them over.
    wait_for("node 0 to lead", || projecting_node(dirs[0].path()) == Some(s[0].pid()));
    publish_policy(&s[1], "2026-07", &[("ecs", "0.05")]);
    let a = paid_partner(&s[1], "KILLED");
    let bank = json!({"holder_name": "KILLED Legal Name Co., Ltd.", "number": "6222000011112222", "bank": "ICBC"});

    // 45 withdrawals of 1.00 against 30.00 from 9 clients through the three nodes; node 0 is
    // killed (SIGKILL) once 10 have been answered. Its clients see connection errors; the
    // others go on.
    let answered = std::sync::atomic::AtomicUsize::new(0);
    type Answer = (usize, Result<(u16, Value), String>);
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let killer = scope.spawn(|| {
            while answered.load(std::sync::atomic::Ordering::SeqCst) < 10 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Command::new("kill").args(["-KILL", &s[0].pid().to_string()]).status().unwrap();
        });
        let clients: Vec<_> = (0..9)
            .map(|c| {
                let (node, token, bank, answered) = (&s[c % 3], &a.token, &bank, &answered);
                scope.spawn(move || {
                    (0..5)
                        .map(|_| {
                            let body = json!({"amount": "1.00", "currency": "CNY", "bank_account": bank});
                            let answer = match ureq::post(&node.url("/v1/withdrawals"))
                                .set("X-Auth-Token", token)
                                .send_json(body)
                            {
                                Ok(r) | Err(ureq::Error::Status(_, r)) => {
                                    let status = r.status();
                                    r.into_json::<Value>().map(|v| (status, v)).map_err(|e| e.to_string())
                                }
                                Err(e) => Err(e.to_string()),
                            };
                            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            (c % 3, answer)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all = clients.into_iter().flat_map(|h| h.join().unwrap()).collect();
        killer.join().unwrap();
        all
    });
    assert!(dead(s[0].pid()));
    let mut held = vec![];
    for (node, answer) in &answers {
        match answer {
            Ok((201, body)) => held.push(body["withdrawal_id"].as_str().unwrap().to_string()),
            Ok((409, body))
                if matches!(body["error_code"].as_str(), Some("INSUFFICIENT_BALANCE" | "CONCURRENCY_CONFLICT")) => {}
            // The killed node's clients: no answer, or a connection cut mid-answer.
            Err(_) if *node == 0 => {}
            other => panic!("unexpected answer from node {node}: {other:?}"),
        }
    }
    assert!(held.len() <= 30, "never more than the balance: {} held", held.len());
    let survivors_answered = answers.iter().filter(|(n, a)| *n != 0 && a.is_ok()).count();
    assert_eq!(survivors_answered, 30, "the other nodes answered every request");

    // Every acknowledged withdrawal is in the log and read on the survivors, whichever node
    // took it; the balance is what they held, never below zero.
    let at = s[1].events_total();
    for id in &held {
        for node in &s[1..] {
            let w = read(node, &format!("/v1/withdrawals/{id}?min_position={at}"), &a.token);
            assert_eq!(w["withdrawal_id"], json!(id), "{w}");
        }
    }
    // A withdrawal node 0 stored but could not answer before it died may be there too.
    let cut_short = answers.iter().filter(|(_, a)| a.is_err()).count() as i64;
    let left = cents(&read(&s[2], &format!("/v1/withdrawals/withdrawable?currency=CNY&min_position={at}"), &a.token));
    let stored = (3000 - left) / 100;
    assert!(left >= 0 && stored >= held.len() as i64 && stored <= held.len() as i64 + cut_short, "{left} {held:?}");
    assert_eq!(s[2].events_total(), at);
    assert_balanced(&s[2], ADMIN_TOKEN, at);
    assert_shared_read_models_equal_a_rebuild(dirs[0].path());
}

#[test]
fn a_credential_revoked_through_one_node_is_refused_on_the_others_at_once() {
    let (_dirs, s) = nodes(3);
    for round in 0..15 {
        let (status, issued) =
            s[0].call("POST", "/v1/credentials", Some(ADMIN_TOKEN), Some(json!({"role": "auditor"})));
        assert_eq!(status, 201, "{issued}");
        let (id, token) = (issued["credential_id"].as_str().unwrap(), issued["token"].as_str().unwrap());
        for node in &s[1..] {
            let (status, body) = node.call("GET", "/v1/events?limit=1", Some(token), None);
            assert_eq!(status, 200, "round {round}: issued on node 0, known at once here: {body}");
        }
        let (status, revoked) = s[0].call("POST", &format!("/v1/credentials/{id}/revoke"), Some(ADMIN_TOKEN), None);
        assert_eq!(status, 201, "{revoked}");
        // No pause: the revocation is acknowledged, so every node refuses from now on.
        for node in &s[1..] {
            let (status, body) = node.call("GET", "/v1/events?limit=1", Some(token), None);
            assert_eq!((status, body["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "round {round}: {body}");
        }
    }
}

/// The anchor lease's holder (`pid:…`), read from the shared schema.
fn anchor_lease_holder(dir: &std::path::Path) -> Option<String> {
    let schema = support::postgres::schema_of(dir);
    let holder = psql(&format!("SELECT holder FROM \"{schema}\".leases WHERE name = 'anchorer'"));
    (!holder.is_empty()).then_some(holder)
}

/// The head positions the stored anchors cover, in order.
fn anchored(s: &Server) -> Vec<u64> {
    let (status, list) = s.call("GET", "/v1/audit/anchors", Some(ADMIN_TOKEN), None);
    assert_eq!(status, 200, "{list}");
    list["items"].as_array().unwrap().iter().filter_map(|a| a["head_position"].as_u64()).collect()
}

#[test]
fn one_node_anchors_the_chain_and_another_takes_over_when_it_dies() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("anchor.key");
    let out =
        Command::new(env!("CARGO_BIN_EXE_ledger")).args(["anchor", "keygen", "--out"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    support::postgres::use_postgres(dirs[0].path());
    support::postgres::share(dirs[0].path(), dirs[1].path());
    let key = key.to_str().unwrap();
    // The anchor lease has a term of its own, whatever the kafka lease's.
    let env = [
        ("LEDGER_ANCHOR_KEY_FILE", key),
        ("LEDGER_ANCHOR_EVERY_EVENTS", "3"),
        ("LEDGER_ANCHOR_LEASE_SECS", "1"),
        ("LEDGER_KAFKA_LEASE_SECS", "30"),
    ];
    let first = Server::start_with_env(dirs[0].path(), &env);
    wait_for("the first node to hold the anchor lease", || {
        anchor_lease_holder(dirs[0].path()).is_some_and(|h| h.starts_with(&format!("{}:", first.pid())))
    });
    let schema = support::postgres::schema_of(dirs[0].path());
    let until: i64 =
        psql(&format!("SELECT until_micros FROM \"{schema}\".leases WHERE name = 'anchorer'")).parse().unwrap();
    let ahead = (until - chrono::Utc::now().timestamp_micros()) as f64 / 1e6;
    assert!(ahead <= 2.0, "the anchor lease runs {ahead} s ahead: its term is --anchor-lease-secs (1 s)");
    let second = Server::start_with_env(dirs[1].path(), &env);
    for i in 0..6 {
        register_partner(&second, &format!("A{i}"), "Anchor Co", "solution_provider", None);
    }
    wait_for("anchors of the second node's writes", || anchored(&second).len() >= 2);
    assert!(anchor_lease_holder(dirs[0].path()).unwrap().starts_with(&format!("{}:", first.pid())));
    let covered = anchored(&second);
    assert!(covered.windows(2).all(|w| w[0] < w[1]), "each anchor covers more: {covered:?}");

    // The holder dies (SIGKILL): the other takes the lease over and anchors what comes next.
    drop(first);
    for i in 6..12 {
        register_partner(&second, &format!("A{i}"), "Anchor Co", "solution_provider", None);
    }
    let head = second.events_total();
    wait_for("the second node to take over", || {
        anchor_lease_holder(dirs[0].path()).is_some_and(|h| h.starts_with(&format!("{}:", second.pid())))
    });
    wait_for("an anchor of the writes after the take-over", || {
        anchored(&second).last().is_some_and(|p| *p + 3 >= head)
    });
    let covered = anchored(&second);
    assert!(covered.windows(2).all(|w| w[0] < w[1]), "one anchorer at a time, each anchor covers more: {covered:?}");
}
