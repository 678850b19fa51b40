//! Durability: a process appending from eight tasks is killed with SIGKILL, three times at
//! different moments. After each kill the store reopens, and every append the process had
//! acknowledged is there, whole (all its events, one correlation id), with a gap-free log
//! and an intact hash chain.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use ledger_core::envelope::ChainVerifier;
use ledger_store::sqlite::SqliteStore;
use ledger_store::EventStore;

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
async fn every_acknowledged_append_survives_sigkill_whole() {
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
