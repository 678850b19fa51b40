//! The conformance suite on PostgreSQL, plus what only a shared durable store can show:
//! reopening keeps everything, two processes on one database keep one order and one chain,
//! and a writer killed with SIGKILL loses nothing it acknowledged and leaves nothing
//! half-written.
//!
//! The server is `LEDGER_TEST_POSTGRES` or `postgres://postgres@127.0.0.1:5432/test`. Each
//! test works in its own fresh schema (`ledger_test_<uuid>`), dropped at the end, so tests
//! can run in parallel, one process each.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ledger_core::envelope::ChainVerifier;
use ledger_store::conformance::{self, event, request, Store};
use ledger_store::postgres::PostgresStore;
use ledger_store::{open_store, subscribe_all, ExpectedVersion, IdempotencyKey};

fn url() -> String {
    std::env::var("LEDGER_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh schema, dropped (with everything in it) when the test ends.
struct Schema {
    name: String,
}

impl Schema {
    fn fresh() -> Schema {
        Schema { name: format!("ledger_test_{}", uuid::Uuid::now_v7().simple()) }
    }

    async fn open(&self) -> Store {
        let store = PostgresStore::connect_in_schema(&url(), &self.name)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {} (set LEDGER_TEST_POSTGRES): {e}", url()));
        Arc::new(store)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (url(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop schema {}: {dropped:?}", self.name);
        }
    }
}

async fn make() -> Option<(Store, Schema)> {
    let schema = Schema::fresh();
    Some((schema.open().await, schema))
}

ledger_store::conformance_suite!(make);
ledger_store::conformance_suite!(@cases allow(unused), make; a_lease_has_one_holder_until_it_expires);

fn keyed(stream: &str, n: u64) -> ledger_store::AppendRequest {
    let mut r = request(stream, ExpectedVersion::Any, vec![event(n)]);
    r.idempotency = Some(IdempotencyKey { key: "k".into(), fingerprint: [1; 32] });
    r
}

async fn verify_chain(store: &Store) -> u64 {
    let mut verifier = ChainVerifier::default();
    store.read_all(1, 10_000).await.unwrap().iter().for_each(|e| verifier.check(e).unwrap());
    verifier.checked()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_the_log_versions_keys_and_chain_tip() {
    let schema = Schema::fresh();
    {
        let store = schema.open().await;
        conformance::append_n(&store, "acct", 5).await;
        store.append(keyed("keyed", 9)).await.unwrap();
    }
    let store = schema.open().await;
    assert_eq!(*store.head().borrow(), 6);
    assert_eq!(store.stream_version("acct").await.unwrap(), 5);
    let err = store.append(request("acct", ExpectedVersion::Exact(4), vec![event(1)])).await;
    assert_eq!(err.unwrap_err().code(), "CONCURRENCY_CONFLICT");
    assert!(store.append(keyed("keyed", 9)).await.unwrap().replayed);
    let next = store.append(request("acct", ExpectedVersion::Exact(5), vec![event(6)])).await;
    assert_eq!(next.unwrap().first_position, 7);
    assert_eq!(verify_chain(&store).await, 7);
}

/// Two stores on one schema stand for two ledger processes sharing one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_database_keep_one_order_and_one_chain() {
    let schema = Schema::fresh();
    let (a, b) = (schema.open().await, schema.open().await);
    let mut follower = subscribe_all(b.clone(), 1);
    let writers: Vec<_> = (0..16u64)
        .map(|t| {
            let store = if t % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                for i in 0..25 {
                    let events = vec![event(t * 1000 + i), event(t * 1000 + i + 500)];
                    store.append(request(&format!("acct-{}", t % 4), ExpectedVersion::Any, events)).await.unwrap();
                }
            })
        })
        .collect();
    // B's subscription sees A's appends too (NOTIFY), in order, without gaps.
    for expected in 1..=800u64 {
        let e = tokio::time::timeout(Duration::from_secs(20), follower.next()).await.expect("keeps up").unwrap();
        assert_eq!(e.position, expected);
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(verify_chain(&a).await, 800);
    for s in 0..4 {
        let versions: Vec<u64> =
            a.read_stream(&format!("acct-{s}"), 1, 1_000).await.unwrap().iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=200).collect::<Vec<_>>());
    }
    let (ra, rb) = tokio::join!(
        a.append(request("acct-0", ExpectedVersion::Exact(200), vec![event(1)])),
        b.append(request("acct-0", ExpectedVersion::Exact(200), vec![event(2)])),
    );
    assert_eq!(ra.is_ok() as u8 + rb.is_ok() as u8, 1, "{ra:?} {rb:?}");
    let (ka, kb) = tokio::join!(a.append(keyed("acct-9", 1)), b.append(keyed("acct-9", 1)));
    assert_eq!(ka.unwrap().replayed as u8 + kb.unwrap().replayed as u8, 1);
    assert_eq!(b.stream_version("acct-9").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_store_picks_postgres_for_a_postgres_url() {
    let schema = Schema::fresh();
    let store = open_store(&format!("{}?schema={}", url(), schema.name)).await.unwrap();
    conformance::append_n(&store, "acct", 3).await;
    let same = schema.open().await;
    assert_eq!(same.stream_version("acct").await.unwrap(), 3);
}

const CRASH_CHILD: &str = "LEDGER_TEST_POSTGRES_CRASH_SCHEMA";
const CRASH_TEST: &str = "a_writer_killed_with_sigkill_loses_nothing_it_acknowledged";
/// Events per append in the crash test: a half-written append would show up as fewer.
const CRASH_APPEND_EVENTS: usize = 3;

/// In the child process: append from several tasks and print each acknowledgement, until
/// the parent kills the process.
async fn crash_child(schema: &str) -> ! {
    let store: Store = Arc::new(PostgresStore::connect_in_schema(&url(), schema).await.unwrap());
    for w in 0..8u64 {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let events = (0..CRASH_APPEND_EVENTS as u64).map(|k| event(i * 10 + k)).collect();
                let a = store.append(request(&format!("crash-{w}"), ExpectedVersion::Any, events)).await.unwrap();
                println!("ack {} {}", a.first_position, a.last_position);
            }
        });
    }
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_with_sigkill_loses_nothing_it_acknowledged() {
    if let Ok(schema) = std::env::var(CRASH_CHILD) {
        crash_child(&schema).await;
    }
    let schema = Schema::fresh();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CRASH_TEST, "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD, &schema.name)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (acks_tx, acks) = std::sync::mpsc::channel::<(u64, u64)>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut parts = line.strip_prefix("ack ").into_iter().flat_map(|rest| rest.split(' '));
            if let (Some(first), Some(last)) = (parts.next(), parts.next()) {
                let _ = acks_tx.send((first.parse().unwrap(), last.parse().unwrap()));
            }
        }
    });
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 300 {
        match acks.recv_timeout(Duration::from_secs(60)) {
            Ok(ack) => acknowledged.push(ack),
            Err(e) => {
                let _ = child.kill();
                panic!("the child stopped acknowledging after {} appends: {e}", acknowledged.len());
            }
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-append
    child.wait().unwrap();
    reader.join().unwrap();
    acknowledged.extend(acks.try_iter()); // printed before the kill

    let store = schema.open().await;
    let all = store.read_all(1, 10_000).await.unwrap();
    let mut verifier = ChainVerifier::default();
    all.iter().for_each(|e| verifier.check(e).expect("gap-free, and the chain holds"));
    assert_eq!(*store.head().borrow(), all.len() as u64);
    for (first, last) in &acknowledged {
        let appended = &all[*first as usize - 1..*last as usize];
        assert_eq!(appended.len(), CRASH_APPEND_EVENTS, "acknowledged append {first}..{last} is all there");
        assert!(appended.iter().all(|e| e.correlation_id == appended[0].correlation_id));
    }
    let mut per_append: HashMap<uuid::Uuid, usize> = HashMap::new();
    all.iter().for_each(|e| *per_append.entry(e.correlation_id).or_default() += 1);
    assert!(per_append.values().all(|n| *n == CRASH_APPEND_EVENTS), "no append is half-written");
    let next = store.append(request("after", ExpectedVersion::NoStream, vec![event(1)])).await.unwrap();
    assert_eq!(next.first_position, all.len() as u64 + 1);
    println!("{} appends acknowledged before SIGKILL, {} events stored", acknowledged.len(), all.len());
}

/// A stored event id is refused by the table's UNIQUE constraint rather than looked up per
/// group; the group it was in is then redone, so only that append fails. The group is made
/// by holding the writers' advisory lock from another connection while the appends queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_event_id_fails_only_its_own_append_in_a_group() {
    let schema = Schema::fresh();
    let store = schema.open().await;
    let stored = event(1);
    store.append(request("acct", ExpectedVersion::Any, vec![stored.clone()])).await.unwrap();

    let (holder, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    // The store's lock key: "LEDG" in the high 32 bits, the `events` table's oid below.
    let key = format!("(({}::bigint << 32) | '\"{}\".events'::regclass::oid::bigint)", 0x4c45_4447, schema.name);
    holder.batch_execute(&format!("SELECT pg_advisory_lock{key}")).await.unwrap();
    // The first append takes a group of its own and waits for the lock; the rest queue
    // behind it and form the next group.
    let send = |stream: String, e| {
        let store = store.clone();
        tokio::spawn(async move { store.append(request(&stream, ExpectedVersion::Any, vec![e])).await })
    };
    let mut appends = vec![send("first".into(), event(2))];
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..20u64 {
        appends.push(send(format!("s-{i}"), if i == 7 { stored.clone() } else { event(100 + i) }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    holder.batch_execute(&format!("SELECT pg_advisory_unlock{key}")).await.unwrap();

    let mut refused = vec![];
    for (i, a) in appends.into_iter().enumerate() {
        if let Err(e) = a.await.unwrap() {
            refused.push((i, e.code()));
        }
    }
    assert_eq!(refused, vec![(8, "DUPLICATE_EVENT_ID")]);
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 21);
    assert_eq!(verify_chain(&store).await, 21);
}

/// A writer remembers the versions it read and wrote while nobody else appends; another
/// process's append (the tip moved) makes it read them again, so a stale expected version is
/// still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_known_to_one_process_is_read_again_after_another_appends() {
    let schema = Schema::fresh();
    let (a, b) = (schema.open().await, schema.open().await);
    a.append(request("acct", ExpectedVersion::Exact(0), vec![event(1)])).await.unwrap();
    a.append(request("acct", ExpectedVersion::Exact(1), vec![event(2)])).await.unwrap();
    b.append(request("acct", ExpectedVersion::Exact(2), vec![event(3)])).await.unwrap();
    let stale = a.append(request("acct", ExpectedVersion::Exact(2), vec![event(4)])).await;
    assert_eq!(stale.unwrap_err().code(), "CONCURRENCY_CONFLICT");
    let next = a.append(request("acct", ExpectedVersion::Exact(3), vec![event(4)])).await.unwrap();
    assert_eq!((next.stream_version, next.first_position), (4, 4));
    // Another stream's append by B moves the tip too.
    b.append(request("other", ExpectedVersion::Any, vec![event(5)])).await.unwrap();
    b.append(request("acct", ExpectedVersion::Exact(4), vec![event(6)])).await.unwrap();
    let stale = a.append(request("acct", ExpectedVersion::Exact(4), vec![event(7)])).await;
    assert_eq!(stale.unwrap_err().code(), "CONCURRENCY_CONFLICT");
    assert_eq!(verify_chain(&a).await, 6);
}

/// A group of streams the writer knows, without keys, is decided on what it remembers and
/// written without reading (a small group by one INSERT, a larger one by COPY) with a check
/// that the log still ends where the writer left it. After another process appended (to
/// another stream here) that check fails, nothing is written, and the group is decided
/// again on what is stored: the append goes after the other process's event, the chain
/// holds. Both sizes: one event, and a group of five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_decided_on_remembered_versions_is_decided_again_after_another_appends() {
    for n in [1, 5u64] {
        let events = |k: u64| (0..n).map(|i| event(k * 100 + i)).collect::<Vec<_>>();
        let schema = Schema::fresh();
        let (a, b) = (schema.open().await, schema.open().await);
        a.append(request("acct", ExpectedVersion::Exact(0), events(1))).await.unwrap();
        a.append(request("acct", ExpectedVersion::Exact(n), events(2))).await.unwrap();
        b.append(request("other", ExpectedVersion::Any, vec![event(3)])).await.unwrap();
        let next = a.append(request("acct", ExpectedVersion::Exact(2 * n), events(4))).await.unwrap();
        assert_eq!((next.first_position, next.stream_version), (2 * n + 2, 3 * n), "{n} events");
        // And again on what it now remembers (the tip it left is still the log's end).
        let next = a.append(request("acct", ExpectedVersion::Exact(3 * n), events(5))).await.unwrap();
        assert_eq!((next.first_position, next.stream_version), (3 * n + 2, 4 * n), "{n} events");
        let stale = a.append(request("acct", ExpectedVersion::Exact(3 * n), events(6))).await;
        assert_eq!(stale.unwrap_err().code(), "CONCURRENCY_CONFLICT");
        assert_eq!(verify_chain(&b).await, 4 * n + 1);
        let versions: Vec<u64> = b.read_stream("acct", 1, 100).await.unwrap().iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=4 * n).collect::<Vec<_>>());
    }
}

/// The check behind a group decided on remembered versions covers the event it chains to,
/// not only the positions after it: here the log was cut back under the writer (its last
/// event deleted by hand) and another process wrote a different event at that position.
/// The group is decided again on what is stored: chained to that event, at the stream's
/// stored version. Both sizes: one event (INSERT), and a group of five (COPY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_decided_on_remembered_versions_checks_the_event_it_chains_to() {
    for n in [1, 5u64] {
        let schema = Schema::fresh();
        let a = schema.open().await;
        a.append(request("acct", ExpectedVersion::Exact(0), vec![event(1)])).await.unwrap();
        a.append(request("acct", ExpectedVersion::Exact(1), vec![event(2)])).await.unwrap();
        let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute(&format!("DELETE FROM \"{}\".events WHERE position = 2", schema.name)).await.unwrap();
        let b = schema.open().await;
        assert_eq!(b.append(request("other", ExpectedVersion::Any, vec![event(3)])).await.unwrap().first_position, 2);
        let events = (0..n).map(|i| event(400 + i)).collect();
        let next = a.append(request("acct", ExpectedVersion::Any, events)).await.unwrap();
        assert_eq!((next.first_position, next.stream_version), (3, 1 + n), "{n} events");
        assert_eq!(verify_chain(&b).await, 2 + n);
    }
}

/// A group of four events or more goes in by COPY, its keys by the statement after it, in
/// the one transaction: the keys are kept and answer a repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_keyed_append_keeps_its_keys() {
    let schema = Schema::fresh();
    let store = schema.open().await;
    let mut r = request("acct", ExpectedVersion::NoStream, (0..6).map(event).collect());
    r.idempotency = Some(IdempotencyKey { key: "req".into(), fingerprint: [1; 32] });
    r.event_keys = vec![
        ledger_store::EventKey { key: "item-0".into(), fingerprint: [2; 32], event: 0 },
        ledger_store::EventKey { key: "item-5".into(), fingerprint: [3; 32], event: 5 },
    ];
    let first = store.append(r.clone()).await.unwrap();
    assert_eq!((first.first_position, first.last_position, first.stream_version), (1, 6, 6));
    let (fp, item) = store.idempotency_key("item-5").await.unwrap().expect("kept");
    assert_eq!((fp, item.first_position, item.last_position), ([3; 32], 6, 6));
    let again = store.append(r).await.unwrap();
    assert!(again.replayed);
    assert_eq!((again.first_position, again.last_position), (1, 6));
    assert_eq!(verify_chain(&store).await, 6);
}

/// Snapshots are kept beside the log (table `snapshots`, not in it): the newest per stream,
/// across a reopen and for every process on the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_kept_beside_the_log_newest_first() {
    let schema = Schema::fresh();
    conformance::save_snapshots_out_of_order(&schema.open().await).await;
    let (a, b) = (schema.open().await, schema.open().await);
    conformance::assert_newest_snapshots(&a).await;
    b.save_snapshot("acct", 30, "thirty".into()).await.unwrap();
    assert_eq!(a.load_snapshot("acct").await.unwrap(), Some((30, "thirty".into())));
}
