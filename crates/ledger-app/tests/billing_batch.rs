//! A billing batch is one append per partner stream (issue 11): the lines of a partner are
//! decided together, each answered on its own, each idempotent by its `record_id`, and a
//! batch never answers a concurrency conflict.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use ledger_app::incentives::{ConsumptionInput, LineOutcome};
use ledger_app::{CommandContext, Executor, Ledger};
use ledger_core::RecordedEvent;
use ledger_core::{Actor, CommandMeta, Money, Role};
use ledger_domain::customer::{AssociateCustomer, AssociationType};
use ledger_domain::partner::{PartnerKind, RegisterPartner};
use ledger_store::memory::MemoryStore;
use ledger_store::sqlite::SqliteStore;
use ledger_store::{AppendRequest, Appended, EventStore, StoreError};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ctx(now: DateTime<Utc>) -> CommandContext {
    CommandContext {
        meta: CommandMeta::new(Actor { principal: "billing".into(), role: Role::Admin }),
        now,
        idempotency: None,
    }
}

fn line(record_id: &str, customer: &str, amount: &str) -> ConsumptionInput {
    ConsumptionInput {
        record_id: record_id.into(),
        customer_id: customer.into(),
        product: "ECS".into(),
        amount: Money::parse_positive(amount, "CNY").unwrap(),
        consumed_at: at("2026-07-10T02:00:00Z"),
        settled_at: at("2026-07-11T02:00:00Z"),
    }
}

/// `partners` solution providers `P{i}`, each with customers `C{i}-0` and `C{i}-1`.
async fn ledger_with(store: Arc<dyn EventStore>, partners: usize) -> Ledger {
    let ledger = Ledger::new(Arc::new(Executor::new(store)));
    let c = ctx(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap());
    for p in 0..partners {
        let kind = PartnerKind::SolutionProvider;
        let register = RegisterPartner {
            partner_id: format!("P{p}"),
            name: format!("Partner {p}"),
            kind,
            parent_id: None,
            parent_kind: None,
            level: None,
        };
        ledger.register_partner(&c, register).await.unwrap();
        for k in 0..2 {
            ledger
                .associate_customer(
                    &c,
                    AssociateCustomer {
                        customer_id: format!("C{p}-{k}"),
                        partner_id: format!("P{p}"),
                        association_type: AssociationType::Referral,
                        effective_at: None,
                    },
                )
                .await
                .unwrap();
        }
    }
    ledger
}

/// A memory store that counts the appends each stream received.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    appends: Mutex<BTreeMap<String, usize>>,
    /// Events handed out by `read_stream`.
    read: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl EventStore for Counting {
    async fn append(&self, req: AppendRequest) -> Result<Appended, StoreError> {
        let stream = req.stream.clone();
        let appended = self.inner.append(req).await?;
        *self.appends.lock().unwrap().entry(stream).or_default() += 1;
        Ok(appended)
    }
    async fn read_stream(&self, stream: &str, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_stream(stream, from, limit).await?;
        self.read.fetch_add(events.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(events)
    }
    async fn load_snapshot(&self, stream: &str) -> Result<Option<(u64, String)>, StoreError> {
        self.inner.load_snapshot(stream).await
    }
    async fn save_snapshot(&self, stream: &str, version: u64, text: String) -> Result<(), StoreError> {
        self.inner.save_snapshot(stream, version, text).await
    }
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit).await
    }
    async fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        self.inner.idempotency_key(key).await
    }
    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        self.inner.stream_version(stream).await
    }
    fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.head()
    }
}

impl Counting {
    fn appends_of(&self, stream: &str) -> usize {
        self.appends.lock().unwrap().get(stream).copied().unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_spanning_many_partners_is_one_append_per_partner() {
    let counting = Arc::new(Counting::default());
    let store: Arc<dyn EventStore> = counting.clone();
    let ledger = ledger_with(store.clone(), 20).await;
    let lines: Vec<_> = (0..400).map(|i| line(&format!("R{i}"), &format!("C{}-{}", i % 20, i % 2), "10.00")).collect();
    let answers = ledger.record_consumption_batch(&ctx(at("2026-07-12T00:00:00Z")), lines).await.unwrap();
    assert_eq!(answers.len(), 400);
    for (i, a) in answers.iter().enumerate() {
        assert!(
            matches!(a, Ok(LineOutcome::Stored { partner_id, .. }) if *partner_id == format!("P{}", i % 20)),
            "{i}: {a:?}"
        );
    }
    for p in 0..20 {
        let stream = format!("incentives-P{p}");
        assert_eq!(store.stream_version(&stream).await.unwrap(), 20, "{stream}");
        assert_eq!(counting.appends_of(&stream), 1, "{stream} got its lines in one append");
    }
    // Each line's answer is the position of its own event, and its key names that event.
    for (i, a) in answers.iter().enumerate() {
        let Ok(LineOutcome::Stored { position, .. }) = a else { unreachable!() };
        let event = &store.read_all(*position, 1).await.unwrap()[0];
        assert!(event.data.contains(&format!("\"record_id\":\"R{i}\"")), "{}", event.data);
        let (_, kept) = store.idempotency_key(&format!("consumption:R{i}")).await.unwrap().unwrap();
        assert_eq!((kept.first_position, kept.last_position), (*position, *position));
    }
}

#[tokio::test]
async fn duplicates_a_changed_line_and_bad_lines_are_answered_beside_good_ones() {
    let counting = Arc::new(Counting::default());
    let store: Arc<dyn EventStore> = counting.clone();
    let ledger = ledger_with(store.clone(), 2).await;
    let c = ctx(at("2026-07-12T00:00:00Z"));
    ledger.record_consumption(&c, line("R0", "C0-0", "5.00")).await.unwrap();
    let mut bad_product = line("R6", "C0-0", "1.00");
    bad_product.product = "no such product!".into();
    let mut bad_times = line("R7", "C1-0", "1.00");
    bad_times.settled_at = at("2026-07-01T00:00:00Z");
    let batch = vec![
        line("R1", "C0-0", "10.00"),
        line("R0", "C0-0", "5.00"), // stored before: duplicate
        line("R0", "C0-1", "5.00"), // stored before with other content: conflict
        line("R2", "C1-0", "20.00"),
        line("R1", "C0-0", "10.00"), // twice in this batch: duplicate
        line("R2", "C1-0", "20.01"), // twice in this batch, changed: conflict
        line("R5", "C404", "1.00"),  // no association
        bad_product,
        bad_times,
        line("R3", "C1-1", "30.00"),
        line("R4", "C0-1", "40.00"),
    ];
    let head = *store.head().borrow();
    let answers = ledger.record_consumption_batch(&c, batch).await.unwrap();
    let codes: Vec<String> = answers
        .iter()
        .map(|a| match a {
            Ok(LineOutcome::Stored { .. }) => "stored".to_string(),
            Ok(LineOutcome::Duplicate { .. }) => "duplicate".to_string(),
            Err(e) => e.code().to_string(),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "stored",
            "duplicate",
            "DUPLICATE_RECORD_CONFLICT",
            "stored",
            "duplicate",
            "DUPLICATE_RECORD_CONFLICT",
            "NO_ASSOCIATION",
            "INVALID_FIELD",
            "INVALID_FIELD",
            "stored",
            "stored",
        ]
    );
    // The four good lines, nothing else: two partners, one append each.
    assert_eq!(*store.head().borrow(), head + 4);
    assert_eq!(counting.appends_of("incentives-P0"), 2, "R0 earlier, then R1 and R4 together");
    assert_eq!(counting.appends_of("incentives-P1"), 1);
    let p0 = ledger.incentives("P0").await.unwrap();
    assert_eq!(p0.lines["R1"].amount, Money::parse_positive("10.00", "CNY").unwrap());
    let p1 = ledger.incentives("P1").await.unwrap();
    assert_eq!(p1.lines["R2"].amount, Money::parse_positive("20.00", "CNY").unwrap());
    // The whole batch again: every line is what it was, and nothing is stored.
    let again = ledger
        .record_consumption_batch(&c, vec![line("R1", "C0-0", "10.00"), line("R3", "C1-1", "30.00")])
        .await
        .unwrap();
    assert!(again.iter().all(|a| matches!(a, Ok(LineOutcome::Duplicate { .. }))), "{again:?}");
    assert_eq!(*store.head().borrow(), head + 4);
}

#[test]
fn racing_batches_for_one_partner_store_every_line_once_and_never_answer_a_conflict() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let ledger = Arc::new(ledger_with(store.clone(), 1).await);
        // 24 racers, each with batches of 10 lines; racer r's lines overlap racer r+1's, so
        // most lines are sent twice, by batches racing each other.
        let racers: Vec<_> = (0..24)
            .map(|r| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let mut answers = vec![];
                    for b in 0..4 {
                        let lines: Vec<_> = (0..10)
                            .map(|k| {
                                let n = r * 20 + b * 10 + k;
                                line(&format!("R{n}"), if n % 2 == 0 { "C0-0" } else { "C0-1" }, "1.00")
                            })
                            .collect();
                        let c = ctx(at("2026-07-12T00:00:00Z"));
                        let got = ledger.record_consumption_batch(&c, lines.clone()).await.unwrap();
                        answers.extend(lines.into_iter().map(|l| l.record_id).zip(got));
                    }
                    answers
                })
            })
            .collect();
        let mut stored: BTreeMap<String, usize> = BTreeMap::new();
        for t in racers {
            for (record_id, answer) in t.await.unwrap() {
                match answer {
                    Ok(LineOutcome::Stored { .. }) => *stored.entry(record_id).or_default() += 1,
                    Ok(LineOutcome::Duplicate { .. }) => {}
                    Err(e) => panic!("{record_id} answered {}", e.code()),
                }
            }
        }
        let expected: HashSet<String> = (0..23 * 20 + 40).map(|n| format!("R{n}")).collect();
        assert_eq!(stored.len(), expected.len());
        assert!(stored.values().all(|n| *n == 1), "each line answered stored once");
        let events = store.read_stream("incentives-P0", 1, 10_000).await.unwrap();
        let mut ids: Vec<String> = events
            .iter()
            .map(|e| {
                serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["record_id"].as_str().unwrap().to_string()
            })
            .collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!((before, ids.into_iter().collect::<HashSet<_>>()), (expected.len(), expected));
    });
}

/// A line whose month closed is cut from its partner's state (what a write loads is the
/// open months, not the history); a refund of it, long after, still finds it through the
/// store's key of its record id and claws back at its rate within its remainder.
#[tokio::test]
async fn a_refund_of_a_line_whose_month_was_settled_long_ago() {
    use ledger_core::{Currency, Month, Rate};
    use ledger_domain::incentives::{IncentiveEvent, RefundConsumption};
    use ledger_domain::policy::{PolicyCommand, ProductRate, PublishPolicy};
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let ledger = ledger_with(store.clone(), 1).await;
    let july: Month = "2026-07".parse().unwrap();
    let publish = PolicyCommand::PublishPolicy(PublishPolicy {
        currency: Currency::CNY,
        effective_month: july,
        rates: vec![ProductRate { product: "ECS".into(), rate: Rate::parse("0.05").unwrap() }],
        settlement_grace_days: None,
    });
    ledger.publish_policy(&ctx(at("2026-06-01T00:00:00Z")), publish).await.unwrap();
    let c = ctx(at("2026-07-12T00:00:00Z"));
    let lines = (0..50).map(|i| line(&format!("R{i}"), "C0-0", "100.00")).collect();
    ledger.record_consumption_batch(&c, lines).await.unwrap();
    assert_eq!(ledger.incentives("P0").await.unwrap().lines.len(), 50);
    ledger.close_month(&ctx(at("2026-08-02T00:00:00Z")), "P0", july).await.unwrap();
    let state = ledger.incentives("P0").await.unwrap();
    assert!(state.lines.is_empty(), "July's lines left the state with July's close");
    assert_eq!(state.month(july, Currency::CNY).unwrap().accrued(), Money::parse_positive("250.00", "CNY").unwrap());

    // Eight months later: a refund of R7, then one more than what is left of it.
    let later = ctx(at("2027-03-02T00:00:00Z"));
    let cny = |s: &str| Money::parse_positive(s, "CNY").unwrap();
    let refund = |id: &str, amount: &str| {
        let refund = RefundConsumption {
            refund_id: id.into(),
            record_id: "R7".into(),
            amount: cny(amount),
            settled_at: at("2027-03-01T00:00:00Z"),
            settled_line: None,
        };
        ledger.refund_consumption(&later, "P0", refund)
    };
    let first = refund("F1", "70.00").await.unwrap();
    let ledger_app::Outcome::Stored { events, .. } = first else { panic!("{first:?}") };
    let IncentiveEvent::ConsumptionRefunded { incentive, original_incentive_month, incentive_month, .. } = &events[0]
    else {
        panic!()
    };
    assert_eq!(*incentive, rust_decimal::Decimal::new(-350, 2), "at the line's 5 %");
    assert_eq!((*original_incentive_month, incentive_month.to_string().as_str()), (july, "2027-03"));
    assert_eq!(refund("F2", "30.01").await.unwrap_err().code(), "INSUFFICIENT_BALANCE");
    assert!(refund("F2", "30.00").await.unwrap().is_stored());
    assert_eq!(refund("F3", "0.01").await.unwrap_err().code(), "INSUFFICIENT_BALANCE");
    // And the line sent again by billing is still a duplicate, changed still a conflict.
    let again = ledger.record_consumption(&later, line("R7", "C0-0", "100.00")).await.unwrap();
    assert!(matches!(again, LineOutcome::Duplicate { .. }));
    let changed = ledger.record_consumption(&later, line("R7", "C0-0", "99.00")).await.unwrap_err();
    assert_eq!(changed.code(), "DUPLICATE_RECORD_CONFLICT");
    assert!(ledger.incentives("P0").await.unwrap().lines.is_empty());
}

/// After a restart, a write loads a partner's snapshot and the events after it, not the
/// partner's history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_ledger_loads_a_long_stream_from_its_snapshot() {
    use ledger_app::executor::SNAPSHOT_EVERY;
    let counting = Arc::new(Counting::default());
    let store: Arc<dyn EventStore> = counting.clone();
    let ledger = ledger_with(store.clone(), 1).await;
    let c = ctx(at("2026-07-12T00:00:00Z"));
    let batches = SNAPSHOT_EVERY as usize / 1000 + 1;
    for b in 0..batches {
        let lines = (0..1000).map(|k| line(&format!("R{}", b * 1000 + k), "C0-0", "1.00")).collect();
        ledger.record_consumption_batch(&c, lines).await.unwrap();
    }
    let stream = "incentives-P0";
    let mut snapshot = None;
    for _ in 0..500 {
        snapshot = store.load_snapshot(stream).await.unwrap();
        if snapshot.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (version, _) = snapshot.expect("a snapshot is kept past SNAPSHOT_EVERY events");
    assert_eq!(version, SNAPSHOT_EVERY, "taken by the append that passed it");
    let live = ledger.incentives("P0").await.unwrap();

    // "Restart": a new ledger over the same store, with nothing cached.
    let restarted = Ledger::new(Arc::new(Executor::new(store.clone())));
    counting.read.store(0, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(restarted.incentives("P0").await.unwrap(), live);
    let read = counting.read.load(std::sync::atomic::Ordering::SeqCst) as u64;
    assert_eq!(read, batches as u64 * 1000 - SNAPSHOT_EVERY, "only the events after the snapshot");
    let next = restarted.record_consumption(&c, line("R-next", "C0-0", "1.00")).await.unwrap();
    assert!(matches!(next, LineOutcome::Stored { .. }));
}
