//! `ledger migrate`: a log copied SQLite → PostgreSQL → SQLite comes back equal event by
//! event and passes `audit verify`, with its idempotency keys; a target holding a prefix of
//! the source (an interrupted migration) is resumed; a non-empty target that is not a prefix
//! is refused, untouched; a request retried after the move answers its first answer and
//! stores nothing again.
//!
//! PostgreSQL is `LEDGER_TEST_POSTGRES` or `postgres://postgres@127.0.0.1:5432/test`, a
//! fresh schema per test (support/postgres.rs).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use ledger_store::OnceOnly;
use serde_json::json;
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

/// Everything `spec`'s store keeps for once-only requests, in its order.
fn once_only(spec: &str) -> Vec<OnceOnly> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = ledger_store::open_store(spec).await.unwrap();
        let (mut all, mut after) = (vec![], None);
        loop {
            let page = store.read_once_only(after, 50, 0).await.unwrap();
            let Some(last) = page.last() else { return all };
            after = Some((last.cursor().0, last.cursor().1.to_string()));
            all.extend(page);
        }
    })
}

fn ledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledger")).args(args).env_remove("LEDGER_STORE").output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn seed(dir: &Path, partners: &str) {
    ok(ledger(&["demo", "seed", "--partners", partners, "--months", "2", "--data", dir.to_str().unwrap()]));
}

/// The whole log of the embedded store in `dir`, one JSON event per line.
fn events(dir: &Path) -> String {
    ok(ledger(&["events", "--data", dir.to_str().unwrap()]))
}

fn migrate(from: &str, to: &str) -> Output {
    ledger(&["migrate", "--from", from, "--to", to, "--batch", "97"])
}

#[test]
fn sqlite_to_postgres_to_sqlite_is_equal_event_by_event() {
    let (a, b, schema_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    seed(a.path(), "3");
    let pg = support::postgres::store_of_new(schema_dir.path());
    let there = ok(migrate(a.path().to_str().unwrap(), &pg));
    assert!(there.contains("migrated"), "{there}");
    let back = ok(migrate(&pg, b.path().to_str().unwrap()));
    assert!(back.contains("the target's"), "{back}");
    let (original, returned) = (events(a.path()), events(b.path()));
    assert!(original.lines().count() > 100, "a real history: {}", original.lines().count());
    assert_eq!(original, returned, "equal event by event: ids, positions, times, metadata, hashes");
    let keys = once_only(a.path().to_str().unwrap());
    assert!(keys.len() > 50, "the history keeps keys (a billing line's record id, …): {}", keys.len());
    let sorted = |spec: &str| {
        let mut k = once_only(spec);
        k.sort_by(|x, y| x.cursor().cmp(&y.cursor()));
        k
    };
    let original_keys = sorted(a.path().to_str().unwrap());
    assert_eq!(sorted(&pg), original_keys, "the idempotency keys travel with the log");
    assert_eq!(sorted(b.path().to_str().unwrap()), original_keys, "and back");
    for dir in [a.path(), b.path()] {
        ok(ledger(&["audit", "verify", "--data", dir.to_str().unwrap()]));
    }
    // Migrating again into a full copy copies nothing and still verifies.
    let again = ok(migrate(a.path().to_str().unwrap(), &pg));
    assert!(again.starts_with("migrated 0 events"), "{again}");
}

#[test]
fn a_prefix_is_resumed_and_a_foreign_log_is_refused_untouched() {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    seed(a.path(), "2");
    let all = events(a.path());
    let total = all.lines().count();
    // What an interrupted migration leaves: the source's first events, whole batches.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let source = ledger_store::open_store(a.path().to_str().unwrap()).await.unwrap();
        let target = ledger_store::open_store(b.path().to_str().unwrap()).await.unwrap();
        target.import(source.read_all(1, 40).await.unwrap()).await.unwrap();
        // Events that do not continue the target are refused whole.
        let skipped = source.read_all(42, 3).await.unwrap();
        let err = target.import(skipped).await.unwrap_err();
        assert!(err.to_string().contains("does not continue the log"), "{err}");
    });
    let resumed = ok(migrate(a.path().to_str().unwrap(), b.path().to_str().unwrap()));
    assert!(resumed.starts_with(&format!("migrated {} events (40 were there already)", total - 40)), "{resumed}");
    assert_eq!(events(b.path()), all);

    // Another history: refused before anything is written.
    seed(c.path(), "1");
    let before = events(c.path());
    let out = migrate(a.path().to_str().unwrap(), c.path().to_str().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("not a prefix"), "{stderr}");
    assert_eq!(events(c.path()), before);
    // A target longer than the source, too.
    let out = migrate(c.path().to_str().unwrap(), b.path().to_str().unwrap());
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_request_retried_after_the_move_answers_its_first_answer_and_acts_once() {
    let (dir, pg_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = Server::start(dir.path());
    let rid = [("X-Request-Id", "r-before-the-move")];
    let body = json!({"partner_id": "MOVED", "name": "Moved Ltd", "kind": "distributor"});
    let (status, first) = s.send("POST", "/v1/partners", Some(ADMIN_TOKEN), &rid, Some(&body));
    assert_eq!(status, 201, "{first}");
    publish_policy(&s, "2026-07", &[("ecs", "0.05")]);
    certify(&s, "MOVED", "MOVED Legal Name Co., Ltd.");
    associate(&s, "C-MOVED", "MOVED", "resale");
    let record = line("R-MOVED-1", "C-MOVED", "ecs", "100.00", "2026-07-10T00:00:00Z", "2026-07-11T00:00:00Z");
    consume_ok(&s, vec![record.clone()]);
    let before = s.events_total();
    // The retry's answer on the embedded store, to compare with the one after the move.
    let (status, replayed) = s.send("POST", "/v1/partners", Some(ADMIN_TOKEN), &rid, Some(&body));
    assert_eq!((status, &replayed["position"]), (200, &first["position"]), "{replayed}");
    s.stop();

    let pg = support::postgres::store_of_new(pg_dir.path());
    let out = ok(migrate(dir.path().to_str().unwrap(), &pg));
    assert!(out.contains("idempotency keys"), "{out}");

    // The same requests against the server on the migrated store: the registration answers
    // its first answer, the line is a duplicate, and nothing is stored again.
    let s = Server::start(pg_dir.path());
    let (status, again) = s.send("POST", "/v1/partners", Some(ADMIN_TOKEN), &rid, Some(&body));
    assert_eq!((status, &again), (200, &replayed), "the same answer as before the move: the first append's");
    let (status, answer) = consume(&s, vec![record]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["status"], json!("duplicate"), "{answer}");
    assert_eq!(s.events_total(), before, "nothing stored twice");
    let other = json!({"partner_id": "MOVED2", "name": "Moved Ltd", "kind": "distributor"});
    let (status, answer) = s.send("POST", "/v1/partners", Some(ADMIN_TOKEN), &rid, Some(&other));
    assert_eq!((status, answer["error_code"].as_str()), (409, Some("IDEMPOTENCY_CONFLICT")), "{answer}");
}

#[test]
fn the_postgres_benchmarks_print_their_figures_beside_their_baselines() {
    let url = support::postgres::server_url();
    let out = ledger(&["bench", "migrate", "--events", "1000", "--to", &url]);
    let table = ok(out);
    assert!(table.lines().any(|l| l.starts_with("| 1000 | 1000 |")), "1000 events and their 1000 keys: {table}");
    let out = ledger(&["bench", "append", "--store", &url, "--appenders", "1,4", "--seconds", "1"]);
    let table = ok(out);
    for row in ["| 1 |", "| 4 |", "| raw batched INSERTs |"] {
        assert!(table.lines().any(|l| l.starts_with(row)), "{row}: {table}");
    }
}
