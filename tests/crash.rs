//! Process crashes: a process appending from eight tasks is killed with SIGKILL, three times
//! at different moments. After each kill the store reopens, and every append the process had
//! acknowledged is there, whole (all its events, one correlation id), with a gap-free log
//! and an intact hash chain.
//!
//! What this proves: appends are atomic and acknowledged only after their commit. It does
//! not prove that a commit reached the disk: a killed process leaves the operating system's
//! page cache intact, so a power cut is not simulated here (RELIABILITY.md says what
//! `synchronous=FULL` promises beyond this).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use ledger_core::envelope::ChainVerifier;
use ledger_store::sqlite::SqliteStore;
use ledger_store::EventStore;

mod support;

/// One acknowledged append as the child printed it.
struct Ack {
    correlation: String,
    first: u64,
    last: u64,
}

fn run_and_kill(dir: &std::path::Path, kill_after: usize) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["soak", "--data"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the ledger binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acks = vec![];
    let parse = |line: String| {
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts[0], "acked", "{line}");
        Ack { correlation: parts[1].to_string(), first: parts[2].parse().unwrap(), last: parts[3].parse().unwrap() }
    };
    while acks.len() < kill_after {
        let line = lines.next().expect("the child keeps appending").unwrap();
        acks.push(parse(line));
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no flush, no commit runs
    child.wait().unwrap();
    // Lines already in the pipe were printed after their append was acknowledged.
    for line in lines {
        acks.push(parse(line.unwrap()));
    }
    acks
}

#[tokio::test]
async fn every_acknowledged_append_survives_a_process_kill_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = vec![];
    for kill_after in [200, 1_000, 2_500] {
        acked.extend(run_and_kill(dir.path(), kill_after));
    }

    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let head = *store.head().borrow();
    let mut all = vec![];
    let mut from = 1;
    loop {
        let batch = store.read_all(from, 5_000).await.unwrap();
        let Some(last) = batch.last() else { break };
        from = last.position + 1;
        all.extend(batch);
    }
    assert_eq!(all.len() as u64, head);
    let mut verifier = ChainVerifier::default();
    for e in &all {
        verifier.check(e).expect("the chain holds after every crash");
    }

    let mut by_correlation: HashMap<String, Vec<u64>> = HashMap::new();
    for e in &all {
        by_correlation.entry(e.correlation_id.to_string()).or_default().push(e.position);
    }
    // Nothing half-written: every append in the log has all three of its events, adjacent.
    for (c, positions) in &by_correlation {
        assert_eq!(positions.len(), 3, "append {c} is whole");
        assert_eq!(positions[2] - positions[0], 2, "append {c} is contiguous");
    }
    // Nothing acknowledged is lost.
    assert!(acked.len() >= 3_700);
    for a in &acked {
        let positions =
            by_correlation.get(&a.correlation).unwrap_or_else(|| panic!("acked append {} lost", a.correlation));
        assert_eq!((positions[0], positions[2]), (a.first, a.last));
    }
}

/// Billing batch `b`: 200 lines, `R{b*200}` on, over four customers of P1.
fn billing_batch(b: usize) -> serde_json::Value {
    let records: Vec<serde_json::Value> = (0..200)
        .map(|k| {
            let n = b * 200 + k;
            let customer = format!("C{}", n % 4);
            support::flows::line(
                &format!("R{n}"),
                &customer,
                "ecs",
                "1.00",
                "2026-07-10T02:00:00Z",
                "2026-07-11T02:00:00Z",
            )
        })
        .collect();
    serde_json::json!({ "records": records })
}

fn post(base: &str, b: usize) -> Result<ureq::Response, ureq::Error> {
    ureq::post(&format!("{base}/v1/consumption"))
        .set("X-Auth-Token", support::ADMIN_TOKEN)
        .set("X-Request-Id", &format!("batch-{b}"))
        .send_json(billing_batch(b))
}

/// A billing feed killed mid-batch (issue 11): the server is SIGKILLed while batches are in
/// flight, restarted, and the feed sends every batch again under its `X-Request-Id`. Every
/// line any answer acknowledged is in the log, and no line is there twice.
#[test]
fn billing_lines_acknowledged_before_a_sigkill_are_kept_once() {
    use serde_json::Value;
    use support::flows::{associate, register_partner};

    let dir = tempfile::tempdir().unwrap();
    let server = support::Server::start(dir.path());
    register_partner(&server, "P1", "P1 Ltd", "solution_provider", None);
    for c in 0..4 {
        associate(&server, &format!("C{c}"), "P1", "referral");
    }
    // Four feeds send batches side by side until the server dies under them.
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Value)>();
    let feeds: Vec<_> = (0..4)
        .map(|f| {
            let (base, tx) = (server.base.clone(), tx.clone());
            std::thread::spawn(move || {
                for b in (f..).step_by(4).take(50) {
                    match post(&base, b) {
                        Ok(resp) => tx.send((b, resp.into_json().unwrap())).unwrap(),
                        Err(_) => return, // the server is gone: this batch was never answered
                    }
                }
            })
        })
        .collect();
    let mut acked = vec![];
    while acked.len() < 12 {
        acked.push(rx.recv().unwrap());
    }
    drop(server); // SIGKILL, with batches in flight
    for f in feeds {
        f.join().unwrap();
    }
    drop(tx);
    acked.extend(rx);
    // A feed's unanswered batch follows its last answered one.
    let sent = acked.iter().map(|(b, _)| *b).max().unwrap() + 5;

    let server = support::Server::start(dir.path());
    for b in 0..sent {
        let (status, answer) = support::read(post(&server.base, b));
        assert!(status == 200 || status == 201, "{answer}");
        if let Some((_, first)) = acked.iter().find(|(a, _)| *a == b) {
            assert_eq!(&answer, first, "a retried batch gets its first answer");
        }
    }
    drop(server);

    let stored: Vec<String> = acked
        .iter()
        .flat_map(|(_, a)| a["results"].as_array().unwrap().iter())
        .filter(|r| r["status"] == "stored")
        .map(|r| r["record_id"].as_str().unwrap().to_string())
        .collect();
    assert!(stored.len() >= 12 * 200, "the first answers stored their lines");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let events = runtime.block_on(async {
        let store = SqliteStore::open(dir.path()).unwrap();
        store.read_stream("incentives-P1", 1, 100_000).await.unwrap()
    });
    let mut count: HashMap<String, usize> = HashMap::new();
    for e in &events {
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        *count.entry(data["record_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert!(count.values().all(|n| *n == 1), "no line twice");
    assert_eq!(count.len(), sent * 200, "every line of every batch sent, once");
    assert!(stored.iter().all(|r| count.contains_key(r)), "every acknowledged line is there");
}

/// The processes `pid` started, as Linux lists them.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return vec![] };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// Gone, or a zombie nobody reaped (its parent was killed).
fn has_ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])))
}

/// A bench killed with SIGKILL (a timeout, a closed terminal) takes the server it started
/// with it, instead of leaving it to hold its port and files.
#[cfg(target_os = "linux")]
#[test]
fn a_killed_bench_takes_its_server_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut bench = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["bench", "ingest", "--history", "6000", "--partners", "1", "--batches", "10000", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let server = loop {
        if let Some(&pid) = children_of(bench.id()).first() {
            break pid;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the bench started no server");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // Past its start-up (a server killed before it printed its address dies of the closed
    // pipe anyway): it is serving the bench's batches.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!has_ended(server), "the server serves");
    bench.kill().unwrap();
    bench.wait().unwrap();
    let killed = std::time::Instant::now();
    while !has_ended(server) {
        assert!(killed.elapsed() < std::time::Duration::from_secs(20), "the server {server} outlived its bench");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
