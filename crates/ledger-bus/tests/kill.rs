//! A relay process killed with SIGKILL mid-stream, restarted, killed again: every event
//! still arrives, and the consumer's dedupe by event id makes the at-least-once delivery
//! exactly once.
//!
//! The relay runs as `ledger relay` would (`RelayArgs::run` on the store's SQLite file),
//! in a child process: this test binary re-invoking itself on the ignored test
//! `relay_child`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ledger_bus::checkpoint::read_checkpoint;
use ledger_bus::cli::RelayArgs;
use ledger_bus::sample;
use ledger_store::sqlite::SqliteStore;
use ledger_store::EventStore;

const ENV_DATA: &str = "LEDGER_BUS_CHILD_DATA";
const ENV_BROKERS: &str = "LEDGER_BUS_CHILD_BROKERS";
const ENV_SCHEMAS: &str = "LEDGER_BUS_CHILD_SCHEMAS";
const ENV_UNTIL_CAUGHT_UP: &str = "LEDGER_BUS_CHILD_UNTIL_CAUGHT_UP";
/// Kill rounds before the last relay runs to the end.
const KILLS: usize = 3;
/// Events appended before the first relay and between two relays.
const EVENTS_PER_ROUND: u64 = 5_000;
/// A relay is killed once its checkpoint has moved this far in its run.
const KILL_AFTER: u64 = 200;

#[test]
#[ignore = "the relay process of a_relay_killed_mid_stream_loses_nothing (run by it)"]
fn relay_child() {
    let Ok(data) = std::env::var(ENV_DATA) else {
        // Run by hand (`--run-ignored`): it is only a child process, nothing to check alone.
        eprintln!("skipped: relay_child runs only as the child of a_relay_killed_mid_stream_loses_nothing");
        return;
    };
    let args = RelayArgs {
        data: PathBuf::from(data),
        store: None,
        brokers: std::env::var(ENV_BROKERS).expect("brokers"),
        schemas: Some(PathBuf::from(std::env::var(ENV_SCHEMAS).expect("schemas"))),
        // Until caught up: the last run, at full speed. Before: small batches, so that the
        // run lasts long enough to be killed in the middle.
        kafka_config: match std::env::var(ENV_UNTIL_CAUGHT_UP) {
            Ok(_) => vec![],
            Err(_) => vec![("batch.num.messages".into(), "2".into()), ("linger.ms".into(), "1".into())],
        },
        until_caught_up: std::env::var(ENV_UNTIL_CAUGHT_UP).is_ok(),
    };
    tokio::runtime::Runtime::new().unwrap().block_on(args.run()).unwrap();
}

fn spawn_relay(data: &Path, brokers: &str, schemas: &Path, until_caught_up: bool) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["relay_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ENV_DATA, data)
        .env(ENV_BROKERS, brokers)
        .env(ENV_SCHEMAS, schemas);
    if until_caught_up {
        cmd.env(ENV_UNTIL_CAUGHT_UP, "1");
    }
    cmd.spawn().expect("spawn the relay process")
}

#[test]
fn a_relay_killed_mid_stream_loses_nothing() {
    init_logs();
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    // Slow brokers, so a relay is still sending when it is killed.
    for broker in 1..=3 {
        cluster.broker_round_trip_time(broker, Duration::from_millis(20)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    for (ty, v, schema) in sample::schemas() {
        std::fs::write(schemas.join(format!("{ty}.v{v}.json")), schema.to_string()).unwrap();
    }
    let rt = runtime();
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(&data).unwrap());
    let mut head = rt.block_on(sample::append_bulk(store.clone(), EVENTS_PER_ROUND, 40, 10)).unwrap();

    let mut killed_at = Vec::new();
    for _ in 0..KILLS {
        let before = read_checkpoint(&data).unwrap();
        let mut child = spawn_relay(&data, &brokers, &schemas, false);
        // Kill it once its checkpoint has moved a little: it is in the middle of the stream.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = read_checkpoint(&data).unwrap();
            if now >= (before + KILL_AFTER).min(head) {
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "the relay process exited by itself");
            assert!(Instant::now() < deadline, "the relay made no progress in time");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let at = read_checkpoint(&data).unwrap();
        killed_at.push((at, head));
        // The log grows while no relay runs.
        head = rt.block_on(sample::append_bulk(store.clone(), EVENTS_PER_ROUND, 40, 10)).unwrap();
    }
    eprintln!("killed at (checkpoint, head): {killed_at:?}");
    assert!(killed_at.iter().any(|(at, head)| at < head), "at least one kill came before the end of the log");

    for broker in 1..=3 {
        cluster.broker_round_trip_time(broker, Duration::ZERO).unwrap();
    }
    let mut last = spawn_relay(&data, &brokers, &schemas, true);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = last.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            last.kill().unwrap();
            panic!("the last relay did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the last relay failed: {status}");
    assert_eq!(read_checkpoint(&data).unwrap(), head);

    rt.block_on(async {
        let events = all_events(&*store).await;
        let expected = published(&events).len() as u64;
        let in_topics = messages_in_topics(&brokers);
        eprintln!(
            "{expected} events published as {in_topics} messages ({} sent again after a kill)",
            in_topics - expected
        );
        assert!(in_topics >= expected);
        let (stats, view) = consume(&brokers, "after-kills", &dir.path().join("view.db"), |v, _| {
            v.applied_count().unwrap() >= expected
        })
        .await;
        assert_eq!(stats.applied, expected);
        assert_exactly_once_in_partner_order(&view.applied_events().unwrap(), &events);
        assert_eq!(view_paid_totals(&view), expected_paid_totals(&events));
    });
}
