//! A billing batch is one append to all the streams it touches (issue 11): its lines are
//! decided together, each answered on its own, each idempotent by its `record_id`, a resale
//! line stored with its drawdown or not at all, and a batch never answers a concurrency
//! conflict.

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

/// A memory store that counts the appends each stream received (an append to several
/// streams counts once for each), and can refuse any append touching a stream whose name
/// starts with `fail_on` (a process that dies before that append commits).
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    appends: Mutex<BTreeMap<String, usize>>,
    /// Appends made (an append to several streams is one).
    calls: std::sync::atomic::AtomicUsize,
    fail_on: Mutex<Option<String>>,
    /// Events handed out by `read_stream`.
    read: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl EventStore for Counting {
    async fn append(&self, req: AppendRequest) -> Result<Appended, StoreError> {
        Ok(self.append_all(vec![req]).await?.remove(0))
    }
    async fn append_all(&self, reqs: Vec<AppendRequest>) -> Result<Vec<Appended>, StoreError> {
        if let Some(prefix) = self.fail_on.lock().unwrap().as_deref() {
            if reqs.iter().any(|r| r.stream.starts_with(prefix)) {
                return Err(StoreError::Backend(format!("the process died before an append to {prefix}")));
            }
        }
        let streams: Vec<String> = reqs.iter().map(|r| r.stream.clone()).collect();
        let appended = self.inner.append_all(reqs).await?;
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for stream in streams {
            *self.appends.lock().unwrap().entry(stream).or_default() += 1;
        }
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
async fn a_batch_spanning_many_partners_is_one_append_to_all_their_streams() {
    let counting = Arc::new(Counting::default());
    let store: Arc<dyn EventStore> = counting.clone();
    let ledger = ledger_with(store.clone(), 20).await;
    let calls = counting.calls.load(std::sync::atomic::Ordering::SeqCst);
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
    assert_eq!(counting.calls.load(std::sync::atomic::Ordering::SeqCst), calls + 1, "one append for the batch");
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
    let (p0, r1) = ledger.recorded_line("R1").await.unwrap().unwrap();
    assert_eq!((p0.as_str(), r1.amount), ("P0", Money::parse_positive("10.00", "CNY").unwrap()));
    let (p1, r2) = ledger.recorded_line("R2").await.unwrap().unwrap();
    assert_eq!((p1.as_str(), r2.amount), ("P1", Money::parse_positive("20.00", "CNY").unwrap()), "the first R2");
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
    ledger.close_month(&ctx(at("2026-08-02T00:00:00Z")), "P0", july).await.unwrap();
    let state = ledger.incentives("P0").await.unwrap();
    assert_eq!(state.month(july, Currency::CNY).unwrap().entries, 50);
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
            line: None,
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

fn cny(s: &str) -> Money {
    Money::parse_positive(s, "CNY").unwrap()
}

/// A distributor `D1` with a resale customer `C1` allocated 300.00 of its 1,000.00 pool.
async fn resale_ledger(store: Arc<dyn EventStore>) -> Ledger {
    use ledger_app::funds::{Adjust, AdjustmentDirection};
    use ledger_domain::funds::Counterparty;
    let ledger = Ledger::new(Arc::new(Executor::new(store)));
    let c = ctx(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap());
    let register = RegisterPartner {
        partner_id: "D1".into(),
        name: "Dist".into(),
        kind: PartnerKind::Distributor,
        parent_id: None,
        parent_kind: None,
        level: None,
    };
    ledger.register_partner(&c, register).await.unwrap();
    let associate = AssociateCustomer {
        customer_id: "C1".into(),
        partner_id: "D1".into(),
        association_type: AssociationType::Resale,
        effective_at: None,
    };
    ledger.associate_customer(&c, associate).await.unwrap();
    ledger.credit_funds(&c, "D1", cny("1000.00")).await.unwrap();
    let allocate = Adjust {
        direction: AdjustmentDirection::Allocate,
        operator: "D1".into(),
        counterparty: Counterparty::customer("C1"),
        amount: cny("300.00"),
        remark: None,
    };
    ledger.adjust(&c, allocate).await.unwrap();
    ledger
}

/// The position of the drawdown stored for `record_id`.
async fn drawdown_of(store: &Arc<dyn EventStore>, record_id: &str) -> Option<u64> {
    let events = store.read_stream("funds-D1", 1, 1000).await.unwrap();
    events
        .iter()
        .find(|e| {
            e.event_type == "AllocatedBalanceDrawnDown" && e.data.contains(&format!("\"record_id\":\"{record_id}\""))
        })
        .map(|e| e.position)
}

/// A resale line and its drawdown are one append: a process that dies before it commits
/// leaves neither (never a line whose drawdown is missing), and billing's retry stores both,
/// once, with an answer whose position covers the drawdown (read-your-writes).
#[tokio::test]
async fn a_resale_line_is_stored_with_its_drawdown_or_not_at_all() {
    use ledger_core::Currency;
    let counting = Arc::new(Counting::default());
    let store: Arc<dyn EventStore> = counting.clone();
    let ledger = resale_ledger(store.clone()).await;
    let c = ctx(at("2026-07-12T00:00:00Z"));
    let batch = vec![line("R1", "C1", "120.00"), line("R2", "C1", "30.00")];
    *counting.fail_on.lock().unwrap() = Some("funds-".into());
    let head = *store.head().borrow();
    assert!(ledger.record_consumption_batch(&c, batch.clone()).await.is_err(), "the store failed");
    assert_eq!(*store.head().borrow(), head, "nothing stored: no line without its drawdown");
    assert_eq!(store.stream_version("incentives-D1").await.unwrap(), 0);

    *counting.fail_on.lock().unwrap() = None;
    let answers = ledger.record_consumption_batch(&c, batch.clone()).await.unwrap();
    for (record_id, answer) in ["R1", "R2"].into_iter().zip(&answers) {
        let Ok(LineOutcome::Stored { position, .. }) = answer else { panic!("{record_id}: {answer:?}") };
        let drawn = drawdown_of(&store, record_id).await.expect("drawn down");
        assert!(*position >= drawn, "{record_id}: the answer's position covers its drawdown");
    }
    let funds = ledger.funds("D1").await.unwrap();
    assert_eq!(funds.customer_allocated("C1", Currency::CNY), cny("150.00"));
    assert_eq!(counting.appends_of("incentives-D1"), 1, "both lines and both drawdowns: one append");

    // Sent again: duplicates, nothing stored, nothing drawn twice.
    let head = *store.head().borrow();
    let again = ledger.record_consumption_batch(&c, batch).await.unwrap();
    assert!(again.iter().all(|a| matches!(a, Ok(LineOutcome::Duplicate { .. }))), "{again:?}");
    assert_eq!(*store.head().borrow(), head);
    assert_eq!(ledger.funds("D1").await.unwrap().customer_allocated("C1", Currency::CNY), cny("150.00"));
}

/// An older version appended a resale line and then, in a second append, its drawdown; one
/// that died between the two left a line without its drawdown. Billing's retry of the line
/// completes it: the line is a duplicate, the drawdown is stored, once.
#[tokio::test]
async fn a_line_stored_without_its_drawdown_by_an_older_version_is_completed_by_a_retry() {
    use ledger_app::executor::to_new_event;
    use ledger_core::Currency;
    use ledger_domain::incentives::{IncentiveCommand, Incentives, LineAssociation, RecordConsumption};
    use ledger_domain::Decider;
    use ledger_store::{EventKey, ExpectedVersion};
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let ledger = resale_ledger(store.clone()).await;
    let c = ctx(at("2026-07-12T00:00:00Z"));
    let sent = line("R1", "C1", "120.00");
    let command = IncentiveCommand::RecordConsumption(RecordConsumption {
        partner_id: "D1".into(),
        record_id: sent.record_id.clone(),
        customer_id: sent.customer_id.clone(),
        association_type: LineAssociation::from(AssociationType::Resale),
        product: sent.product.clone(),
        amount: sent.amount,
        consumed_at: sent.consumed_at,
        settled_at: sent.settled_at,
        policies: Arc::new(ledger.policies(Currency::CNY).await.unwrap()),
        recorded: None,
    });
    let events = Incentives::decide(&Default::default(), command, c.now).unwrap();
    let old = AppendRequest {
        stream: "incentives-D1".into(),
        expected: ExpectedVersion::NoStream,
        events: events.iter().map(|e| to_new_event(e, c.now)).collect(),
        meta: c.meta.clone(),
        idempotency: None,
        event_keys: vec![EventKey { key: "consumption:R1".into(), fingerprint: [7; 32], event: 0 }],
    };
    store.append(old).await.unwrap();
    assert_eq!(drawdown_of(&store, "R1").await, None);

    let retried = ledger.record_consumption(&c, sent.clone()).await.unwrap();
    assert!(matches!(retried, LineOutcome::Duplicate { .. }), "{retried:?}");
    assert!(drawdown_of(&store, "R1").await.is_some(), "the drawdown is completed");
    assert_eq!(ledger.funds("D1").await.unwrap().customer_allocated("C1", Currency::CNY), cny("180.00"));
    let head = *store.head().borrow();
    ledger.record_consumption(&c, sent).await.unwrap();
    assert_eq!(*store.head().borrow(), head, "completed once");
    assert_eq!(store.stream_version("incentives-D1").await.unwrap(), 1, "the line is not stored again");
}

/// The executor's paired batch: an item whose second command is refused is answered with
/// that refusal, and neither of its halves is stored; the items beside it are.
#[tokio::test]
async fn a_refused_second_half_refuses_its_item_and_stores_neither_half() {
    use ledger_app::executor::{ItemOutcome, PairedItem};
    use ledger_core::Currency;
    use ledger_domain::funds::{DrawDown, Funds, FundsCommand};
    use ledger_domain::rebate::{CreditRebate, Rebate, RebateCommand};
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let exec = Executor::new(store.clone());
    let c = ctx(at("2026-07-12T00:00:00Z"));
    let credit = |id: &str| {
        RebateCommand::CreditRebate(CreditRebate { partner_id: "P0".into(), source_id: id.into(), amount: cny("5.00") })
    };
    let draw = |id: &str, amount: Money| {
        let command = FundsCommand::DrawDown(DrawDown {
            record_id: id.into(),
            customer_id: "C1".into(),
            amount,
            consumed_at: c.now,
        });
        Some(("funds-D1".to_string(), command))
    };
    let item = |id: &str, second| PairedItem { stream: "rebate-P0".into(), command: credit(id), key: None, second };
    let items = vec![
        item("Q1", draw("R1", cny("1.00"))),
        // Three decimal places: the drawdown refuses it.
        item("Q2", draw("R2", Money::new(rust_decimal::Decimal::new(1, 3), Currency::CNY))),
        item("Q3", None),
    ];
    let outcomes = exec.execute_paired::<Rebate, Funds>(&items, &c).await.unwrap();
    assert!(matches!(outcomes[0], Some(ItemOutcome::Stored { .. })), "{outcomes:?}");
    assert!(matches!(&outcomes[1], Some(ItemOutcome::Refused(e)) if e.code() == "INVALID_AMOUNT"), "{outcomes:?}");
    assert!(matches!(outcomes[2], Some(ItemOutcome::Stored { .. })), "{outcomes:?}");
    let credited: Vec<String> =
        store.read_stream("rebate-P0", 1, 10).await.unwrap().into_iter().map(|e| e.data).collect();
    assert_eq!(credited.len(), 2, "{credited:?}");
    assert!(credited.iter().all(|d| !d.contains("\"Q2\"")), "the refused item's credit is not stored");
}
