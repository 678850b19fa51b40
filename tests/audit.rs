//! `ledger audit verify` and `ledger events` through the real binary: an untouched log
//! verifies; one changed byte, a deleted event or a forged link (an edited event with its
//! hash recomputed) is caught at its position.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use ledger_store::conformance::{append_n, Store};
use ledger_store::sqlite::SqliteStore;
use ledger_store::EventStore;

fn ledger(args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ledger")).args(args).arg("--data").arg(dir).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap())
}

fn verify(dir: &Path) -> (i32, serde_json::Value) {
    let (code, out) = ledger(&["audit", "verify", "--json"], dir);
    (code, serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("json: {out}")))
}

async fn store_with_50_events() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store: Store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    append_n(&store, "acct-1", 25).await;
    append_n(&store, "acct-2", 25).await;
    dir
}

fn tamper(dir: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("ledger.db")).unwrap();
    assert_eq!(conn.execute(sql, []).unwrap(), 1, "{sql}");
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let dir = store_with_50_events().await;
    let (code, v) = verify(dir.path());
    assert_eq!(code, 0);
    assert_eq!(v["ok"], true);
    assert_eq!(v["checked"], 50);
    let (code, text) = ledger(&["audit", "verify"], dir.path());
    assert_eq!(code, 0);
    assert!(text.contains("holds over 50 events"), "{text}");
}

#[tokio::test]
async fn one_changed_byte_is_caught_at_its_position() {
    let dir = store_with_50_events().await;
    tamper(dir.path(), "UPDATE events SET data = replace(data, '\"n\":7', '\"n\":8') WHERE position = 33");
    let (code, v) = verify(dir.path());
    assert_eq!(code, 1);
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad_position"], 33);
    assert_eq!(v["checked"], 32);
}

#[tokio::test]
async fn a_deleted_event_and_a_forged_link_are_caught() {
    let dir = store_with_50_events().await;
    tamper(dir.path(), "DELETE FROM events WHERE position = 20");
    assert_eq!(verify(dir.path()).1["first_bad_position"], 20);

    let dir = store_with_50_events().await;
    // An edited event whose own hash is recomputed verifies by itself; the chain catches it
    // at the next position, whose prev_hash still names the original.
    tamper(dir.path(), "UPDATE events SET actor_principal = 'mallory' WHERE position = 10");
    let forged = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let edited = store.read_all(10, 1).await.unwrap().remove(0);
        assert_eq!(edited.actor.principal, "mallory");
        assert_ne!(edited.compute_hash(), edited.hash, "the edit alone breaks the event's own hash");
        edited.compute_hash()
    };
    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    conn.execute("UPDATE events SET hash = ?1 WHERE position = 10", [&forged.0[..]]).unwrap();
    drop(conn);
    let (code, v) = verify(dir.path());
    assert_eq!(
        (code, &v["first_bad_position"], &v["checked"]),
        (1, &serde_json::json!(11), &serde_json::json!(10)),
        "{v}"
    );
    assert!(v["reason"].as_str().unwrap().contains("prev_hash"), "{v}");
}

#[tokio::test]
async fn events_prints_the_log_from_a_position() {
    let dir = store_with_50_events().await;
    let (code, out) = ledger(&["events", "--from", "49"], dir.path());
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["position"], 49);
    assert_eq!(lines[1]["stream"], "acct-2");
    assert_eq!(lines[1]["data"]["n"], 24);
    let (code, _) = ledger(&["events"], &dir.path().join("missing"));
    assert_ne!(code, 0);
}

/// Every command's error is one clear line (issue 17, item 8), and `bench replay --dir`
/// makes its directory and replays exactly the number of events asked.
#[test]
fn a_failing_command_says_why_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-store-here");
    let out = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["audit", "verify", "--data"])
        .arg(&missing)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("ledger: error: ") && stderr.contains("no ledger store"), "{stderr}");

    let bench_dir = dir.path().join("made").join("by-bench");
    let out = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["bench", "replay", "--events", "1000", "--dir"])
        .arg(&bench_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(bench_dir.is_dir());
    assert!(stderr.contains("1000 events replayed in "), "{stderr}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().any(|l| l.starts_with("| 1000 |")), "{table}");
}
