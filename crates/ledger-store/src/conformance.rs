//! The one conformance suite every backend runs. Each case takes a fresh, empty store.
//! A backend's test file calls [`crate::conformance_suite!`] with an expression that makes
//! one; see `tests/memory.rs` and `tests/sqlite.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use ledger_core::envelope::{Actor, ChainVerifier, CommandMeta, NewEvent, Role};
use serde_json::json;

use crate::{subscribe_all, AppendRequest, EventKey, EventStore, ExpectedVersion, IdempotencyKey, StoreError};

pub type Store = Arc<dyn EventStore>;

pub fn event(n: u64) -> NewEvent {
    NewEvent::new("TestHappened", 1, Utc::now(), &json!({"n": n, "note": "conformance"})).expect("serialises")
}

pub fn request(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream: stream.to_string(),
        expected,
        events,
        meta: CommandMeta::new(Actor { principal: "conformance".into(), role: Role::System }),
        idempotency: None,
        event_keys: vec![],
    }
}

pub async fn append_n(store: &Store, stream: &str, n: u64) {
    for i in 0..n {
        store.append(request(stream, ExpectedVersion::Any, vec![event(i)])).await.expect("append");
    }
}

/// Saves snapshots of two streams, an older one after a newer (as a slow writer would), into
/// a store whose log is empty; [`assert_newest_snapshots`] checks them, after a reopen.
pub async fn save_snapshots_out_of_order(store: &Store) {
    assert_eq!(store.load_snapshot("acct").await.unwrap(), None);
    store.save_snapshot("acct", 10, "ten".into()).await.unwrap();
    store.save_snapshot("acct", 20, "twenty".into()).await.unwrap();
    store.save_snapshot("acct", 15, "late and older".into()).await.unwrap();
    store.save_snapshot("other", 3, "three".into()).await.unwrap();
    assert_eq!(*store.head().borrow(), 0, "nothing in the log");
    assert!(store.read_all(1, 10).await.unwrap().is_empty());
}

/// The newest snapshot of each stream [`save_snapshots_out_of_order`] saved.
pub async fn assert_newest_snapshots(store: &Store) {
    assert_eq!(store.load_snapshot("acct").await.unwrap(), Some((20, "twenty".into())));
    assert_eq!(store.load_snapshot("other").await.unwrap(), Some((3, "three".into())));
}

async fn verify_chain(store: &Store) -> u64 {
    let mut verifier = ChainVerifier::default();
    let mut from = 1;
    loop {
        let batch = store.read_all(from, 500).await.expect("read_all");
        if batch.is_empty() {
            return verifier.checked();
        }
        for e in &batch {
            verifier.check(e).expect("the hash chain holds");
        }
        from = batch.last().expect("non-empty").position + 1;
    }
}

pub async fn appends_land_in_order_with_versions_and_positions(store: Store) {
    let a = store.append(request("acct-a", ExpectedVersion::NoStream, vec![event(1), event(2)])).await.unwrap();
    assert_eq!((a.first_position, a.last_position, a.stream_version, a.replayed), (1, 2, 2, false));
    let b = store.append(request("acct-b", ExpectedVersion::NoStream, vec![event(3)])).await.unwrap();
    assert_eq!((b.first_position, b.stream_version), (3, 1));
    let c = store.append(request("acct-a", ExpectedVersion::Exact(2), vec![event(4)])).await.unwrap();
    assert_eq!((c.first_position, c.stream_version), (4, 3));

    let all = store.read_all(1, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(all.iter().map(|e| e.stream.as_str()).collect::<Vec<_>>(), ["acct-a", "acct-a", "acct-b", "acct-a"]);
    let a_events = store.read_stream("acct-a", 1, 100).await.unwrap();
    assert_eq!(a_events.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(a_events[2].data, r#"{"n":4,"note":"conformance"}"#);
    assert_eq!(store.read_stream("acct-a", 3, 100).await.unwrap().len(), 1);
    assert_eq!(store.read_all(2, 2).await.unwrap().iter().map(|e| e.position).collect::<Vec<_>>(), [2, 3]);
    assert!(store.read_stream("nope", 1, 10).await.unwrap().is_empty());
    assert_eq!(store.stream_version("acct-a").await.unwrap(), 3);
    assert_eq!(store.stream_version("nope").await.unwrap(), 0);
    let asked = ["nope".to_string(), "acct-a".to_string(), "acct-a".to_string()];
    assert_eq!(
        store.stream_versions(&asked).await.unwrap(),
        vec![0, 3, 3],
        "several streams' versions, in the order asked"
    );
    assert_eq!(store.stream_versions(&[]).await.unwrap(), Vec::<u64>::new());
    assert_eq!(*store.head().borrow(), 4);
}

pub async fn the_envelope_round_trips(store: Store) {
    let mut meta = CommandMeta::new(Actor { principal: "ops-7".into(), role: Role::Admin });
    meta.causation_id = Some(uuid::Uuid::now_v7());
    meta.request_id = Some("req-42".into());
    let e = event(1);
    let sent = e.clone();
    store
        .append(AppendRequest {
            stream: "acct-x".into(),
            expected: ExpectedVersion::Any,
            events: vec![e],
            meta: meta.clone(),
            idempotency: None,
            event_keys: vec![],
        })
        .await
        .unwrap();
    let got = &store.read_all(1, 1).await.unwrap()[0];
    assert_eq!(got.event_id, sent.event_id);
    assert_eq!(got.event_type, "TestHappened");
    assert_eq!(got.schema_version, 1);
    assert_eq!(got.occurred_at, sent.occurred_at);
    assert_eq!(got.actor, meta.actor);
    assert_eq!(got.correlation_id, meta.correlation_id);
    assert_eq!(got.causation_id, meta.causation_id);
    assert_eq!(got.request_id.as_deref(), Some("req-42"));
    assert_eq!(got.data, sent.data);
    assert_eq!(got.compute_hash(), got.hash);
}

pub async fn a_wrong_expected_version_is_refused_and_stores_nothing(store: Store) {
    store.append(request("acct", ExpectedVersion::NoStream, vec![event(1)])).await.unwrap();
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Exact(0), ExpectedVersion::Exact(2)] {
        let err = store.append(request("acct", expected, vec![event(2)])).await.unwrap_err();
        assert_eq!(err.code(), "CONCURRENCY_CONFLICT", "{expected:?}");
        assert!(matches!(err, StoreError::ConcurrencyConflict { actual: 1, .. }), "{err:?}");
    }
    let err = store.append(request("fresh", ExpectedVersion::Exact(1), vec![event(3)])).await.unwrap_err();
    assert_eq!(err.code(), "CONCURRENCY_CONFLICT");
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 1);
    store.append(request("acct", ExpectedVersion::Any, vec![event(4)])).await.unwrap();
    assert_eq!(store.stream_version("acct").await.unwrap(), 2);
}

pub async fn racing_appenders_for_one_version_have_exactly_one_winner(store: Store) {
    store.append(request("contested", ExpectedVersion::NoStream, vec![event(0)])).await.unwrap();
    let racers = 32;
    let tasks: Vec<_> = (0..racers)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.append(request("contested", ExpectedVersion::Exact(1), vec![event(i), event(i + 100)])).await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(a) => {
                wins += 1;
                assert_eq!(a.stream_version, 3);
            }
            Err(e) => assert_eq!(e.code(), "CONCURRENCY_CONFLICT"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 3);
}

pub async fn an_idempotency_key_answers_with_the_first_result(store: Store) {
    let key = |fp: u8| Some(IdempotencyKey { key: "req-1".into(), fingerprint: [fp; 32] });
    let mut first = request("acct", ExpectedVersion::NoStream, vec![event(1), event(2)]);
    first.idempotency = key(1);
    let a = store.append(first).await.unwrap();
    assert!(!a.replayed);
    store.append(request("acct", ExpectedVersion::Any, vec![event(3)])).await.unwrap();

    // The same request again, with fresh event ids and a now-stale expected version.
    let mut again = request("acct", ExpectedVersion::NoStream, vec![event(1), event(2)]);
    again.idempotency = key(1);
    let b = store.append(again).await.unwrap();
    assert!(b.replayed);
    assert_eq!((b.first_position, b.last_position, b.stream_version), (a.first_position, a.last_position, 2));

    let (fingerprint, stored) = store.idempotency_key("req-1").await.unwrap().expect("the key is kept");
    assert_eq!((fingerprint, stored.first_position, stored.last_position), ([1; 32], 1, 2));
    assert!(store.idempotency_key("req-unknown").await.unwrap().is_none());

    let mut other = request("acct", ExpectedVersion::Any, vec![event(9)]);
    other.idempotency = key(2);
    assert_eq!(store.append(other).await.unwrap_err().code(), "IDEMPOTENCY_CONFLICT");
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 3);
}

pub async fn concurrent_requests_with_one_key_store_once(store: Store) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut r = request("acct", ExpectedVersion::Any, vec![event(i)]);
                r.idempotency = Some(IdempotencyKey { key: "same".into(), fingerprint: [7; 32] });
                store.append(r).await.unwrap()
            })
        })
        .collect();
    let mut results = vec![];
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| !r.replayed).count(), 1);
    assert!(results.iter().all(|r| r.first_position == 1));
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 1);
}

pub async fn invalid_appends_are_refused_whole(store: Store) {
    let mut bad_json = event(1);
    bad_json.data = "not json".into();
    let mut dup = event(2);
    let dup2 = dup.clone();
    dup.data = r#"{"n":2}"#.into();
    for req in [
        request("acct", ExpectedVersion::Any, vec![]),
        request("acct", ExpectedVersion::Any, vec![event(0), bad_json]),
        request("", ExpectedVersion::Any, vec![event(0)]),
        request("acct", ExpectedVersion::Any, vec![dup, dup2]),
    ] {
        assert_eq!(store.append(req).await.unwrap_err().code(), "INVALID_FIELD");
    }
    let once = event(5);
    store.append(request("acct", ExpectedVersion::Any, vec![once.clone()])).await.unwrap();
    let err = store.append(request("acct", ExpectedVersion::Any, vec![event(6), once])).await.unwrap_err();
    assert_eq!(err.code(), "DUPLICATE_EVENT_ID");
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 1);
}

pub async fn many_appenders_leave_a_gap_free_log_and_a_valid_chain(store: Store) {
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let stream = format!("acct-{}", t % 8);
                    let n = if i % 5 == 0 { 3 } else { 1 };
                    let events = (0..n).map(|k| event(t * 1000 + i * 10 + k)).collect();
                    store.append(request(&stream, ExpectedVersion::Any, events)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let expected_total = 64 * (16 + 4 * 3);
    let all = store.read_all(1, 10_000).await.unwrap();
    assert_eq!(all.len(), expected_total);
    assert!(all.iter().enumerate().all(|(i, e)| e.position == i as u64 + 1));
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for e in &all {
        let v = versions.entry(e.stream.as_str()).or_default();
        *v += 1;
        assert_eq!(e.version, *v, "stream versions are gap-free");
    }
    assert_eq!(verify_chain(&store).await, expected_total as u64);
}

pub async fn a_subscription_catches_up_then_follows_without_gaps_or_doubles(store: Store) {
    append_n(&store, "early", 1_500).await;
    let mut sub = subscribe_all(store.clone(), 1);
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move { append_n(&store, &format!("live-{w}"), 100).await })
        })
        .collect();
    let total = 1_500 + 8 * 100;
    let mut seen = HashSet::new();
    for expected in 1..=total {
        let e = tokio::time::timeout(std::time::Duration::from_secs(20), sub.next())
            .await
            .expect("the subscription keeps up")
            .unwrap();
        assert_eq!(e.position, expected as u64);
        assert!(seen.insert(e.event_id));
    }
    for w in writers {
        w.await.unwrap();
    }
    // Resuming after a checkpoint delivers exactly the rest, in order, then waits for and
    // delivers what is appended next.
    let mut resumed = subscribe_all(store.clone(), 2_001);
    let mut delivered = Vec::new();
    for _ in 2_001..=total {
        let e = tokio::time::timeout(std::time::Duration::from_secs(20), resumed.next())
            .await
            .expect("the resumed subscription catches up")
            .unwrap();
        delivered.push(e.position);
    }
    assert_eq!(delivered, (2_001..=total as u64).collect::<Vec<_>>());
    let more = tokio::time::timeout(std::time::Duration::from_millis(200), resumed.next()).await;
    assert!(more.is_err(), "nothing past the head is delivered: {more:?}");
    append_n(&store, "after", 1).await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(20), resumed.next()).await.unwrap().unwrap();
    assert_eq!(next.position, total as u64 + 1);
}

fn event_key(key: &str, fingerprint: u8, event: usize) -> EventKey {
    EventKey { key: key.into(), fingerprint: [fingerprint; 32], event }
}

pub async fn event_keys_name_single_events_of_one_append(store: Store) {
    let mut first = request("acct", ExpectedVersion::NoStream, vec![event(1), event(2), event(3)]);
    first.idempotency = Some(IdempotencyKey { key: "req-1".into(), fingerprint: [1; 32] });
    first.event_keys = vec![event_key("item-a", 2, 0), event_key("item-c", 3, 2)];
    let a = store.append(first.clone()).await.unwrap();
    assert_eq!((a.first_position, a.last_position, a.stream_version), (1, 3, 3));
    let (fp, item_a) = store.idempotency_key("item-a").await.unwrap().expect("kept");
    assert_eq!((fp, item_a.first_position, item_a.last_position, item_a.stream_version), ([2; 32], 1, 1, 1));
    let (fp, item_c) = store.idempotency_key("item-c").await.unwrap().expect("kept");
    assert_eq!((fp, item_c.first_position, item_c.last_position, item_c.stream_version), ([3; 32], 3, 3, 3));
    let (_, whole) = store.idempotency_key("req-1").await.unwrap().expect("kept");
    assert_eq!((whole.first_position, whole.last_position), (1, 3));
    let many = store.idempotency_keys(&["item-c".into(), "nope".into(), "item-a".into()]).await.unwrap();
    assert_eq!(many.iter().map(|k| k.map(|(_, a)| a.first_position)).collect::<Vec<_>>(), [Some(3), None, Some(1)]);

    // The same request again is its first result; its event keys do not refuse it.
    let again = store.append(first).await.unwrap();
    assert!(again.replayed);
    assert_eq!((again.first_position, again.last_position), (1, 3));

    // Another append naming a kept key is refused whole: its other key is not kept.
    let mut other = request("acct-2", ExpectedVersion::Any, vec![event(4), event(5)]);
    other.event_keys = vec![event_key("item-d", 4, 0), event_key("item-a", 2, 1)];
    let err = store.append(other).await.unwrap_err();
    assert!(matches!(&err, StoreError::IdempotencyConflict { key } if key == "item-a"), "{err:?}");
    assert!(store.idempotency_key("item-d").await.unwrap().is_none());
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 3);

    let mut twice = request("acct-2", ExpectedVersion::Any, vec![event(6), event(7)]);
    twice.event_keys = vec![event_key("item-e", 5, 0), event_key("item-e", 5, 1)];
    assert_eq!(store.append(twice).await.unwrap_err().code(), "INVALID_FIELD");
    let mut outside = request("acct-2", ExpectedVersion::Any, vec![event(8)]);
    outside.event_keys = vec![event_key("item-f", 6, 1)];
    assert_eq!(store.append(outside).await.unwrap_err().code(), "INVALID_FIELD");

    // Racing appends to different streams naming one key: exactly one stores it.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut r = request(&format!("racer-{i}"), ExpectedVersion::Any, vec![event(100 + i), event(200 + i)]);
                r.event_keys = vec![event_key(&format!("own-{i}"), 7, 0), event_key("contested", 8, 1)];
                store.append(r).await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!(e.code(), "IDEMPOTENCY_CONFLICT"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 5);
    let (_, contested) = store.idempotency_key("contested").await.unwrap().expect("kept");
    let winner = &store.read_all(contested.first_position, 1).await.unwrap()[0];
    assert_eq!(winner.version, 2, "the key names the second event of the winning append");
    assert_eq!(verify_chain(&store).await, 5);
}

/// An append to several streams lands whole: consecutive positions, each stream's
/// versions, one chain.
pub async fn an_append_to_several_streams_lands_whole(store: Store) {
    store.append(request("orders", ExpectedVersion::NoStream, vec![event(0)])).await.unwrap();
    let got = store
        .append_all(vec![
            request("orders", ExpectedVersion::Exact(1), vec![event(1)]),
            request("funds", ExpectedVersion::NoStream, vec![event(2), event(3)]),
        ])
        .await
        .unwrap();
    let spans: Vec<_> = got.iter().map(|a| (a.first_position, a.last_position, a.stream_version, a.replayed)).collect();
    assert_eq!(spans, [(2, 2, 2, false), (3, 4, 2, false)]);
    let all = store.read_all(1, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| (e.stream.as_str(), e.version)).collect::<Vec<_>>(),
        [("orders", 1), ("orders", 2), ("funds", 1), ("funds", 2)]
    );
    assert_eq!(store.stream_version("funds").await.unwrap(), 2);
    assert_eq!(*store.head().borrow(), 4);
    assert_eq!(verify_chain(&store).await, 4);
}

/// One refused request refuses the whole append: its error is the answer, nothing of the
/// requests before it is stored, and racing appends to several streams never half-land.
pub async fn an_append_to_several_streams_is_all_or_nothing(store: Store) {
    store.append(request("orders", ExpectedVersion::NoStream, vec![event(0)])).await.unwrap();
    let err = store
        .append_all(vec![
            request("funds", ExpectedVersion::NoStream, vec![event(1)]),
            request("orders", ExpectedVersion::Exact(7), vec![event(2)]),
        ])
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::ConcurrencyConflict { stream, actual: 1, .. } if stream == "orders"), "{err:?}");
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 1, "nothing of the first request is stored");
    assert_eq!(store.stream_version("funds").await.unwrap(), 0);
    // An event key already kept refuses the whole append too.
    let mut keyed = request("orders", ExpectedVersion::Any, vec![event(3)]);
    keyed.event_keys = vec![EventKey { key: "line:1".into(), fingerprint: [1; 32], event: 0 }];
    store.append(keyed.clone()).await.unwrap();
    keyed.events = vec![event(4)];
    let err = store.append_all(vec![request("funds", ExpectedVersion::Any, vec![event(5)]), keyed]).await.unwrap_err();
    assert_eq!(err.code(), "IDEMPOTENCY_CONFLICT");
    assert_eq!(store.stream_version("funds").await.unwrap(), 0);

    // 16 racers each append to a stream of their own and to one contested stream at
    // version 0, the contested part last: one wins, and no loser leaves its own part.
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_all(vec![
                        request(&format!("own-{i}"), ExpectedVersion::NoStream, vec![event(i)]),
                        request("contested", ExpectedVersion::NoStream, vec![event(100 + i)]),
                    ])
                    .await
            })
        })
        .collect();
    let mut winners = vec![];
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(got) => winners.push((i, got)),
            Err(e) => assert_eq!(e.code(), "CONCURRENCY_CONFLICT"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer wins");
    for i in 0..16 {
        let own = store.stream_version(&format!("own-{i}")).await.unwrap();
        assert_eq!(own, u64::from(i == winners[0].0), "racer {i}'s own stream");
    }
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 4);
    assert_eq!(verify_chain(&store).await, 4);
}

/// The idempotency key of an append to several streams is the whole append's: a replay
/// answers its span (every stream's events) and stores nothing; another request under it is
/// refused; only the first request may carry a key.
pub async fn an_append_to_several_streams_replays_whole(store: Store) {
    let unit = |fp: u8| {
        let mut first = request("orders", ExpectedVersion::NoStream, vec![event(1)]);
        first.idempotency = Some(IdempotencyKey { key: "req-9".into(), fingerprint: [fp; 32] });
        vec![first, request("funds", ExpectedVersion::NoStream, vec![event(2), event(3)])]
    };
    let first = store.append_all(unit(1)).await.unwrap();
    assert!(first.iter().all(|a| !a.replayed));
    let again = store.append_all(unit(1)).await.unwrap();
    assert_eq!(again.len(), 2);
    for a in &again {
        assert!(a.replayed);
        assert_eq!((a.first_position, a.last_position, a.stream_version), (1, 3, 1), "the whole append's span");
    }
    let (_, kept) = store.idempotency_key("req-9").await.unwrap().expect("kept");
    assert_eq!((kept.first_position, kept.last_position), (1, 3));
    assert_eq!(store.append_all(unit(2)).await.unwrap_err().code(), "IDEMPOTENCY_CONFLICT");
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 3, "nothing stored by the repeats");

    let mut second = request("funds", ExpectedVersion::Any, vec![event(4)]);
    second.idempotency = Some(IdempotencyKey { key: "req-10".into(), fingerprint: [1; 32] });
    let refused = store.append_all(vec![request("orders", ExpectedVersion::Any, vec![event(5)]), second]).await;
    assert_eq!(refused.unwrap_err().code(), "INVALID_FIELD");
    assert_eq!(store.append_all(vec![]).await.unwrap_err().code(), "INVALID_FIELD");
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 3);
}

/// The replay memory: a key is used once until its time passes, also between racers.
pub async fn a_key_is_used_once_until_its_time_passes(store: Store) {
    assert!(store.first_use("sig:a", 1_000, 2_000).await.unwrap());
    assert!(!store.first_use("sig:a", 1_500, 2_500).await.unwrap(), "a second use within its time");
    assert!(store.first_use("sig:b", 1_500, 2_500).await.unwrap(), "keys are apart");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.first_use("sig:contested", 1_600, 2_600).await.unwrap() })
        })
        .collect();
    let mut firsts = 0;
    for t in tasks {
        firsts += usize::from(t.await.unwrap());
    }
    assert_eq!(firsts, 1, "exactly one racer is first");
    assert_eq!(store.read_all(1, 10).await.unwrap().len(), 0, "the memory is not in the log");
}

fn lease<'a>(name: &'a str, holder: &'a str, now_micros: i64, until_micros: i64, position: u64) -> crate::Lease<'a> {
    crate::Lease { name, holder, now_micros, until_micros, position }
}

/// A lease: one holder at a time, renewed by its holder, taken over once it expires, with
/// a position that never moves back.
pub async fn a_lease_has_one_holder_until_it_expires(store: Store) {
    assert_eq!(store.lease(lease("relay", "a", 1_000, 2_000, 5)).await.unwrap(), Some(5));
    assert_eq!(store.lease(lease("relay", "b", 1_500, 2_500, 0)).await.unwrap(), None, "held by a");
    assert_eq!(store.lease(lease("relay", "a", 1_900, 3_000, 7)).await.unwrap(), Some(7), "renewed");
    assert_eq!(store.lease(lease("relay", "b", 2_999, 4_000, 0)).await.unwrap(), None, "still a's");
    assert_eq!(store.lease(lease("relay", "b", 3_000, 4_000, 2)).await.unwrap(), Some(7), "expired: b goes on from 7");
    assert_eq!(store.lease(lease("relay", "a", 3_100, 4_100, 9)).await.unwrap(), None, "a lost it");
    assert_eq!(store.lease(lease("other", "a", 3_100, 4_100, 1)).await.unwrap(), Some(1), "leases are apart");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.lease(lease("contested", &format!("n{i}"), 0, 1_000, 0)).await.unwrap() })
        })
        .collect();
    let mut holders = 0;
    for t in tasks {
        holders += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(holders, 1, "exactly one racer holds it");
}

/// Expands to one `#[tokio::test]` per case, each on a fresh store made by `$make`
/// (an expression returning `(Store, guard)`; the guard lives as long as the test).
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!($make, allow(unused));
    };
    // `$attr` goes on every case (e.g. a `cfg_attr(..., ignore = "why")`).
    ($make:expr, $attr:meta) => {
        $crate::conformance_suite!(@cases $attr, $make;
            appends_land_in_order_with_versions_and_positions,
            the_envelope_round_trips,
            a_wrong_expected_version_is_refused_and_stores_nothing,
            racing_appenders_for_one_version_have_exactly_one_winner,
            an_idempotency_key_answers_with_the_first_result,
            concurrent_requests_with_one_key_store_once,
            event_keys_name_single_events_of_one_append,
            invalid_appends_are_refused_whole,
            many_appenders_leave_a_gap_free_log_and_a_valid_chain,
            a_subscription_catches_up_then_follows_without_gaps_or_doubles,
            a_key_is_used_once_until_its_time_passes,
            an_append_to_several_streams_lands_whole,
            an_append_to_several_streams_is_all_or_nothing,
            an_append_to_several_streams_replays_whole,
        );
    };
    (@cases $attr:meta, $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[$attr]
            async fn $case() {
                #[allow(clippy::redundant_closure_call)]
                let made = ($make)().await;
                let Some((store, _guard)) = made else { return };
                $crate::conformance::$case(store).await;
            }
        )*
    };
}
