//! The conformance suite on KurrentDB (EventStoreDB), when a server is given in
//! `EVENTSTORE_URL` (e.g. `esdb://localhost:2113?tls=false`). Each test writes its own log
//! stream (`ledger-test-<uuid>`), deleted at the end. Without a server (the variable unset
//! when the tests were built, see `build.rs`) every test is reported as ignored with the
//! reason; the store's logic still runs the whole suite against a simulated log in
//! `src/kurrent.rs`'s unit tests.

use std::sync::Arc;

use ledger_core::envelope::ChainVerifier;
use ledger_store::conformance::{self, event, request, Store};
use ledger_store::kurrent::KurrentStore;
use ledger_store::{open_store, ExpectedVersion};

/// The server the tests were built for: they are ignored unless `EVENTSTORE_URL` was set.
fn server() -> Option<String> {
    let url = std::env::var("EVENTSTORE_URL").expect("EVENTSTORE_URL, set when these tests were built, is set now");
    Some(url)
}

/// A fresh log stream, deleted when the test ends.
struct Log {
    url: String,
    stream: String,
}

impl Log {
    fn fresh(url: &str) -> Log {
        Log { url: url.to_string(), stream: format!("ledger-test-{}", uuid::Uuid::now_v7().simple()) }
    }

    async fn open(&self) -> Store {
        Arc::new(KurrentStore::connect_with_log(&self.url, &self.stream).await.expect("KurrentDB at EVENTSTORE_URL"))
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.stream.clone());
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let settings: kurrentdb::ClientSettings = url.parse().map_err(|e| format!("{e}"))?;
                let client = kurrentdb::Client::new(settings).map_err(|e| e.to_string())?;
                let options = kurrentdb::DeleteStreamOptions::default();
                client.delete_stream(stream.as_str(), &options).await.map(|_| ()).map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("could not delete log stream {}: {deleted:?}", self.stream);
        }
    }
}

async fn make() -> Option<(Store, Log)> {
    let log = Log::fresh(&server()?);
    Some((log.open().await, log))
}

ledger_store::conformance_suite!(
    make,
    cfg_attr(not(kurrentdb_server), ignore = "EVENTSTORE_URL is not set: no KurrentDB server to run against")
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kurrentdb_server), ignore = "EVENTSTORE_URL is not set: no KurrentDB server to run against")]
async fn reopening_rebuilds_versions_keys_and_the_chain_tip_from_the_log() {
    let Some(url) = server() else { return };
    let log = Log::fresh(&url);
    {
        let store = log.open().await;
        conformance::append_n(&store, "acct", 5).await;
        let mut r = request("keyed", ExpectedVersion::Any, vec![event(9)]);
        r.idempotency = Some(ledger_store::IdempotencyKey { key: "k".into(), fingerprint: [1; 32] });
        store.append(r).await.unwrap();
    }
    let store = log.open().await;
    assert_eq!(*store.head().borrow(), 6);
    assert_eq!(store.stream_version("acct").await.unwrap(), 5);
    assert!(store.idempotency_key("k").await.unwrap().is_some());
    let next = store.append(request("acct", ExpectedVersion::Exact(5), vec![event(6)])).await.unwrap();
    assert_eq!(next.first_position, 7);
    let mut verifier = ChainVerifier::default();
    store.read_all(1, 100).await.unwrap().iter().for_each(|e| verifier.check(e).unwrap());
    assert_eq!(verifier.checked(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kurrentdb_server), ignore = "EVENTSTORE_URL is not set: no KurrentDB server to run against")]
async fn two_clients_on_one_log_keep_one_order() {
    let Some(url) = server() else { return };
    let log = Log::fresh(&url);
    let (a, b) = (log.open().await, log.open().await);
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let store = if t % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                for i in 0..20 {
                    store
                        .append(request(&format!("acct-{}", t % 2), ExpectedVersion::Any, vec![event(i)]))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut verifier = ChainVerifier::default();
    a.read_all(1, 1_000).await.unwrap().iter().for_each(|e| verifier.check(e).unwrap());
    assert_eq!(verifier.checked(), 160);
    let mut head = b.head();
    tokio::time::timeout(std::time::Duration::from_secs(10), head.wait_for(|h| *h == 160)).await.unwrap().unwrap();
    assert_eq!(b.stream_version("acct-0").await.unwrap(), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kurrentdb_server), ignore = "EVENTSTORE_URL is not set: no KurrentDB server to run against")]
async fn open_store_picks_kurrentdb_for_an_esdb_url() {
    let Some(url) = server() else { return };
    // open_store uses the default log stream: only check that it connects and reads.
    let store = open_store(&url).await.unwrap();
    let head = *store.head().borrow();
    assert_eq!(store.read_all(head + 1, 10).await.unwrap().len(), 0);
}
