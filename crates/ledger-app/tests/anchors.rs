//! The anchoring task over the in-memory store: an anchor once N events came, one while
//! events come slower than that (the time cadence), one more on a clean shutdown, none for
//! an anchor alone; and a key that is not the current one is refused.

use std::sync::Arc;
use std::time::Duration;

use ledger_app::anchors::{Anchorer, Cadence};
use ledger_app::{CommandContext, Executor, Ledger};
use ledger_core::envelope::{Actor, CommandMeta, NewEvent};
use ledger_domain::anchors::{self, AnchorKey};
use ledger_store::memory::MemoryStore;
use ledger_store::{AppendRequest, EventStore, ExpectedVersion};

/// How long a test waits for the task; no assertion depends on it.
const PATIENCE: Duration = Duration::from_secs(60);
const NEVER: Duration = Duration::from_secs(3600 * 24);

fn setup() -> (Arc<Ledger>, Arc<dyn EventStore>) {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    (Arc::new(Ledger::new(Arc::new(Executor::new(store.clone())))), store)
}

async fn append(store: &dyn EventStore, n: u64) {
    for _ in 0..n {
        let event = NewEvent::new("Noted", 1, chrono::Utc::now(), &serde_json::json!({"n": 1})).unwrap();
        let req = AppendRequest {
            stream: "notes-1".into(),
            expected: ExpectedVersion::Any,
            events: vec![event],
            meta: CommandMeta::new(Actor::system("test")),
            idempotency: None,
            event_keys: vec![],
        };
        store.append(req).await.unwrap();
    }
}

/// (anchored head position, the anchor's own position) of every anchor.
async fn anchors_of(store: &dyn EventStore) -> Vec<(u64, u64)> {
    let events = store.read_stream(&anchors::stream_id(), 1, 1000).await.unwrap();
    events
        .iter()
        .map(|e| {
            let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            (data["head_position"].as_u64().unwrap(), e.position)
        })
        .collect()
}

async fn wait_for(store: &dyn EventStore, count: usize) -> Vec<(u64, u64)> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let a = anchors_of(store).await;
            if a.len() >= count {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the anchors came in time")
}

#[tokio::test]
async fn every_n_events_and_once_more_on_shutdown() {
    let (ledger, store) = setup();
    let key = AnchorKey::from_seed([1; 32]);
    let anchorer = Anchorer::spawn(ledger, key, Cadence { every_events: 5, every: NEVER });
    append(&*store, 4).await;
    append(&*store, 1).await;
    let first = wait_for(&*store, 1).await;
    assert!(first[0].0 >= 5, "{first:?}");
    let head_after_first = first[0].1;
    append(&*store, 2).await;
    // Two events are fewer than five and the time cadence is far: only the shutdown anchors them.
    assert_eq!(anchors_of(&*store).await.len(), 1);
    assert_eq!(anchorer.shutdown().await.unwrap(), 2);
    let all = anchors_of(&*store).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].0, head_after_first + 2, "the last anchor covers the last event");
}

#[tokio::test]
async fn events_slower_than_n_are_anchored_by_the_time_cadence() {
    let (ledger, store) = setup();
    let key = AnchorKey::from_seed([1; 32]);
    let anchorer = Anchorer::spawn(ledger, key, Cadence { every_events: 1_000, every: Duration::from_millis(100) });
    append(&*store, 3).await;
    let anchors = wait_for(&*store, 1).await;
    assert_eq!(anchors[0].0, 3);
    // The anchor alone is not anchored again, not even on shutdown.
    assert_eq!(anchorer.shutdown().await.unwrap(), 1);
    assert_eq!(anchors_of(&*store).await.len(), 1);
}

#[tokio::test]
async fn an_empty_log_is_not_anchored_and_only_the_current_key_may_anchor() {
    let (ledger, store) = setup();
    let key = AnchorKey::from_seed([1; 32]);
    let anchorer = Anchorer::spawn(ledger.clone(), key.clone(), Cadence { every_events: 1, every: NEVER });
    assert_eq!(anchorer.shutdown().await.unwrap(), 0);
    assert!(anchors_of(&*store).await.is_empty());

    append(&*store, 1).await;
    let ctx =
        CommandContext { meta: CommandMeta::new(Actor::system("test")), now: chrono::Utc::now(), idempotency: None };
    ledger.anchor_head(&ctx, &key).await.unwrap();
    let other = AnchorKey::from_seed([2; 32]);
    ledger.check_anchor_key(&key).await.unwrap();
    assert_eq!(ledger.check_anchor_key(&other).await.unwrap_err().code(), "INVALID_STATE");
    // Rotation hands the role over.
    append(&*store, 1).await;
    ledger.rotate_anchor_key(&ctx, &key, &other).await.unwrap();
    ledger.check_anchor_key(&other).await.unwrap();
    assert_eq!(ledger.check_anchor_key(&key).await.unwrap_err().code(), "INVALID_STATE");
}
