//! The application layer's own duties, over the in-memory store: routing a line to the
//! customer's partner, `record_id` unique across the whole ledger, the resale drawdown,
//! the rebate credit of a cloud-account payment happening once, and no overdraw when
//! many callers race for the same pool (for real: threads, SQLite, a barrier).

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use ledger_app::funds::{Adjust, AdjustmentDirection};
use ledger_app::incentives::{ConsumptionInput, LineOutcome};
use ledger_app::{AppError, CommandContext, Executor, Ledger, Outcome};
use ledger_core::{Actor, CommandMeta, Currency, Money, Role};
use ledger_domain::customer::{AssociateCustomer, AssociationType};
use ledger_domain::funds::Counterparty;
use ledger_domain::partner::{PartnerKind, RegisterPartner};
use ledger_store::memory::MemoryStore;
use ledger_store::EventStore;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn register(id: &str, name: &str, kind: PartnerKind) -> RegisterPartner {
    RegisterPartner { partner_id: id.into(), name: name.into(), kind, parent_id: None, parent_kind: None, level: None }
}

fn ctx(now: DateTime<Utc>) -> CommandContext {
    CommandContext {
        meta: CommandMeta::new(Actor { principal: "test".into(), role: Role::Admin }),
        now,
        idempotency: None,
    }
}

fn cny(s: &str) -> Money {
    Money::parse_positive(s, "CNY").unwrap()
}

fn adjust(direction: AdjustmentDirection, operator: &str, counterparty: Counterparty, amount: Money) -> Adjust {
    Adjust { direction, operator: operator.into(), counterparty, amount, remark: None }
}

fn associate(
    customer: &str,
    partner: &str,
    association_type: AssociationType,
    effective_at: Option<DateTime<Utc>>,
) -> AssociateCustomer {
    AssociateCustomer { customer_id: customer.into(), partner_id: partner.into(), association_type, effective_at }
}

async fn ledger_with_partners() -> (Ledger, Arc<dyn EventStore>) {
    partners_on(Arc::new(MemoryStore::new())).await
}

async fn partners_on(store: Arc<dyn EventStore>) -> (Ledger, Arc<dyn EventStore>) {
    let ledger = Ledger::new(Arc::new(Executor::new(store.clone())));
    let c = ctx(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap());
    ledger.register_partner(&c, register("D1", "Dist", PartnerKind::Distributor)).await.unwrap();
    ledger.register_partner(&c, register("S1", "Solutions", PartnerKind::SolutionProvider)).await.unwrap();
    ledger.associate_customer(&c, associate("C1", "D1", AssociationType::Resale, None)).await.unwrap();
    ledger.associate_customer(&c, associate("C2", "S1", AssociationType::Referral, None)).await.unwrap();
    (ledger, store)
}

fn line(record_id: &str, customer: &str, amount: &str) -> ConsumptionInput {
    ConsumptionInput {
        record_id: record_id.into(),
        customer_id: customer.into(),
        product: "ECS".into(),
        amount: cny(amount),
        consumed_at: at("2026-07-10T02:00:00Z"),
        settled_at: at("2026-07-11T02:00:00Z"),
    }
}

#[tokio::test]
async fn a_record_id_is_unique_across_partners() {
    let (ledger, store) = ledger_with_partners().await;
    let c = ctx(at("2026-07-12T00:00:00Z"));
    let first = ledger.record_consumption(&c, line("R1", "C1", "100.00")).await.unwrap();
    assert!(matches!(first, LineOutcome::Stored { ref partner_id, .. } if partner_id == "D1"));
    let head = *store.head().borrow();
    // The same line again: a no-op.
    let again = ledger.record_consumption(&c, line("R1", "C1", "100.00")).await.unwrap();
    assert_eq!(again, LineOutcome::Duplicate { partner_id: "D1".into() });
    // The same id for another partner's customer: a conflict, nothing stored.
    let other = ledger.record_consumption(&c, line("R1", "C2", "100.00")).await.unwrap_err();
    assert_eq!(other.code(), "DUPLICATE_RECORD_CONFLICT");
    let changed = ledger.record_consumption(&c, line("R1", "C1", "100.01")).await.unwrap_err();
    assert_eq!(changed.code(), "DUPLICATE_RECORD_CONFLICT");
    assert_eq!(*store.head().borrow(), head, "nothing stored by the repeats");
    // A customer with no association.
    let none = ledger.record_consumption(&c, line("R2", "C404", "1.00")).await.unwrap_err();
    assert_eq!(none.code(), "NO_ASSOCIATION");
}

#[tokio::test]
async fn resale_consumption_draws_down_what_the_customer_was_allocated() {
    let (ledger, _) = ledger_with_partners().await;
    let c = ctx(at("2026-07-01T00:00:00Z"));
    ledger.credit_funds(&c, "D1", cny("1000.00")).await.unwrap();
    ledger
        .adjust(&c, adjust(AdjustmentDirection::Allocate, "D1", Counterparty::customer("C1"), cny("300.00")))
        .await
        .unwrap();
    let c = ctx(at("2026-07-12T00:00:00Z"));
    ledger.record_consumption(&c, line("R1", "C1", "120.00")).await.unwrap();
    // A repeat of the line does not draw twice.
    ledger.record_consumption(&c, line("R1", "C1", "120.00")).await.unwrap();
    let funds = ledger.funds("D1").await.unwrap();
    assert_eq!(funds.customer_allocated("C1", Currency::CNY), cny("180.00"));
    assert_eq!(funds.pool(Currency::CNY), cny("700.00"));
}

/// A store that counts appends to one stream in flight at once, and can hold the next two
/// appends to it until both have arrived (to force a lost race).
struct Watched {
    inner: Arc<dyn EventStore>,
    stream: String,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    gate: tokio::sync::Barrier,
    seats: AtomicUsize,
}

impl Watched {
    fn new(inner: Arc<dyn EventStore>, stream: &str) -> Watched {
        Watched {
            inner,
            stream: stream.into(),
            in_flight: 0.into(),
            most_in_flight: 0.into(),
            gate: tokio::sync::Barrier::new(2),
            seats: 0.into(),
        }
    }

    fn hold_next_two(&self) {
        self.seats.store(2, SeqCst);
    }
}

#[async_trait::async_trait]
impl EventStore for Watched {
    async fn append(
        &self,
        req: ledger_store::AppendRequest,
    ) -> Result<ledger_store::Appended, ledger_store::StoreError> {
        if req.stream != self.stream {
            return self.inner.append(req).await;
        }
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most_in_flight.fetch_max(now, SeqCst);
        if self.seats.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {
            self.gate.wait().await;
        }
        // Give any other task on this stream the chance to overlap.
        tokio::task::yield_now().await;
        let result = self.inner.append(req).await;
        self.in_flight.fetch_sub(1, SeqCst);
        result
    }
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<ledger_core::RecordedEvent>, ledger_store::StoreError> {
        self.inner.read_stream(stream, from_version, limit).await
    }
    async fn read_all(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<ledger_core::RecordedEvent>, ledger_store::StoreError> {
        self.inner.read_all(from, limit).await
    }
    async fn idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<([u8; 32], ledger_store::Appended)>, ledger_store::StoreError> {
        self.inner.idempotency_key(key).await
    }
    async fn stream_version(&self, stream: &str) -> Result<u64, ledger_store::StoreError> {
        self.inner.stream_version(stream).await
    }
    fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.head()
    }
}

fn allocate_30(ledger: &Arc<Ledger>) -> impl std::future::Future<Output = Result<(), AppError>> {
    let ledger = ledger.clone();
    async move {
        let c = ctx(at("2026-07-02T00:00:00Z"));
        ledger
            .adjust(&c, adjust(AdjustmentDirection::Allocate, "D1", Counterparty::customer("C1"), cny("30.00")))
            .await
            .map(drop)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_allocations_never_overdraw_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn EventStore> = Arc::new(ledger_store::sqlite::SqliteStore::open(dir.path()).unwrap());
    let watched = Arc::new(Watched::new(sqlite, "funds-D1"));
    let (ledger, _) = partners_on(watched.clone()).await;
    let ledger = Arc::new(ledger);
    ledger.credit_funds(&ctx(at("2026-07-01T00:00:00Z")), "D1", cny("1000.00")).await.unwrap();
    // 40 callers released at once each allocate 30.00: 33 fit in the pool (990.00). Within
    // one process they queue on the stream: each decides on the state its predecessor left,
    // so exactly 33 are stored, 7 refused, and no caller sees a conflict.
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (allocate, barrier) = (allocate_30(&ledger), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                allocate.await
            })
        })
        .collect();
    let (mut stored, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => stored += 1,
            Err(e) => {
                assert_eq!(e.code(), "INSUFFICIENT_BALANCE", "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!((stored, refused), (33, 7));
    let most = watched.most_in_flight.load(SeqCst);
    assert_eq!(most, 1, "two appends of one stream were in flight at once");
    assert_eq!(ledger.exec.conflicts_retried(), 0, "commands queued rather than fought");
    let funds = ledger.funds("D1").await.unwrap();
    assert_eq!(funds.pool(Currency::CNY), cny("10.00"));
    assert_eq!(funds.customer_allocated("C1", Currency::CNY), cny("990.00"));
}

/// Two processes (two executors over one store) decide on the same version: one append
/// loses, is decided again on the new state, and is refused rather than overdrawing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_race_between_processes_is_decided_again() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn EventStore> = Arc::new(ledger_store::sqlite::SqliteStore::open(dir.path()).unwrap());
    let watched = Arc::new(Watched::new(sqlite.clone(), "funds-D1"));
    let (first, _) = partners_on(watched.clone()).await;
    let second = Ledger::new(Arc::new(Executor::new(watched.clone())));
    let (first, second) = (Arc::new(first), Arc::new(second));
    first.credit_funds(&ctx(at("2026-07-01T00:00:00Z")), "D1", cny("1000.00")).await.unwrap();
    // Both allocations' appends wait for each other: both decided on the same version.
    watched.hold_next_two();
    let allocate = |ledger: &Arc<Ledger>| {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            let c = ctx(at("2026-07-02T00:00:00Z"));
            ledger
                .adjust(&c, adjust(AdjustmentDirection::Allocate, "D1", Counterparty::customer("C1"), cny("600.00")))
                .await
                .map(drop)
        })
    };
    let (a, b) = (allocate(&first), allocate(&second));
    let results = [a.await.unwrap(), b.await.unwrap()];
    let codes: Vec<_> = results.iter().map(|r| r.as_ref().err().map(|e| e.code().to_string())).collect();
    assert!(codes.contains(&None), "one allocation is stored: {codes:?}");
    assert!(codes.contains(&Some("INSUFFICIENT_BALANCE".into())), "the other is refused: {codes:?}");
    assert_eq!(first.exec.conflicts_retried() + second.exec.conflicts_retried(), 1, "exactly one lost race");
    let funds = Ledger::new(Arc::new(Executor::new(sqlite))).funds("D1").await.unwrap();
    assert_eq!(funds.pool(Currency::CNY), cny("400.00"));
    assert_eq!(funds.customer_allocated("C1", Currency::CNY), cny("600.00"));
}

/// §2: "The line's partner is the customer's partner at `consumed_at`": a customer that
/// moved from S1 to D1 on July 1st sends June's line to S1 and July's to D1.
#[tokio::test]
async fn a_line_goes_to_the_customers_partner_at_its_consumption_time() {
    use ledger_domain::customer::{self, Customer, CustomerCommand, EndAssociation};
    let (ledger, _) = ledger_with_partners().await;
    let c = ctx(at("2026-06-01T00:00:00Z"));
    ledger
        .associate_customer(&c, associate("C9", "S1", AssociationType::Referral, Some(at("2026-01-01T00:00:00Z"))))
        .await
        .unwrap();
    let end = CustomerCommand::EndAssociation(EndAssociation {
        partner_id: "S1".into(),
        effective_at: Some(at("2026-06-30T16:00:00Z")),
    });
    ledger.exec.execute::<Customer>(&customer::stream_id("C9"), end, &c).await.unwrap();
    ledger
        .associate_customer(&c, associate("C9", "D1", AssociationType::Resale, Some(at("2026-06-30T16:00:01Z"))))
        .await
        .unwrap();
    let c = ctx(at("2026-07-12T00:00:00Z"));
    let mut june = line("R-JUNE", "C9", "10.00");
    june.consumed_at = at("2026-06-30T15:59:59Z");
    let july = line("R-JULY", "C9", "10.00");
    let to = |o: LineOutcome| match o {
        LineOutcome::Stored { partner_id, .. } | LineOutcome::Duplicate { partner_id } => partner_id,
    };
    assert_eq!(to(ledger.record_consumption(&c, june).await.unwrap()), "S1");
    assert_eq!(to(ledger.record_consumption(&c, july).await.unwrap()), "D1");
}

/// §2: a month closes only after its cut-off, the end of the month plus the policy's
/// `settlement_grace_days`: the application must pass the policy's grace days, not 0.
#[tokio::test]
async fn closing_a_month_waits_for_the_policys_grace_days() {
    use ledger_core::{Month, Rate};
    use ledger_domain::policy::{PolicyCommand, ProductRate, PublishPolicy};
    let (ledger, _) = ledger_with_partners().await;
    let july: Month = "2026-07".parse().unwrap();
    let publish = PolicyCommand::PublishPolicy(PublishPolicy {
        currency: Currency::CNY,
        effective_month: july,
        rates: vec![ProductRate { product: "ECS".into(), rate: Rate::parse("0.05").unwrap() }],
        settlement_grace_days: Some(3),
    });
    ledger.publish_policy(&ctx(at("2026-06-01T00:00:00Z")), publish).await.unwrap();
    ledger.record_consumption(&ctx(at("2026-07-12T00:00:00Z")), line("R1", "C1", "100.00")).await.unwrap();
    // July ends 2026-07-31T16:00Z (CST); with 3 grace days the cut-off is 2026-08-03T16:00Z.
    let early = ledger.close_month(&ctx(at("2026-08-03T15:00:00Z")), "D1", july).await.unwrap_err();
    assert_eq!(early.code(), "INVALID_STATE");
    ledger.close_month(&ctx(at("2026-08-03T16:00:00Z")), "D1", july).await.unwrap();
    let state = ledger.incentives("D1").await.unwrap();
    assert_eq!(state.month_status(july, Currency::CNY), ledger_domain::incentives::MonthStatus::Open);
}

/// docs/DOMAIN.md §5: a step is all-or-nothing. Closing a month closes every currency the
/// partner has lines in, in one append: while one currency may not close yet (its policy's
/// grace days run longer), none is closed; under a request id both are.
#[tokio::test]
async fn closing_a_month_in_two_currencies_is_one_step() {
    use ledger_core::{Month, Rate};
    use ledger_domain::policy::{PolicyCommand, ProductRate, PublishPolicy};
    let (ledger, store) = ledger_with_partners().await;
    let july: Month = "2026-07".parse().unwrap();
    for (currency, grace) in [(Currency::CNY, 0), (Currency::USD, 3)] {
        let publish = PolicyCommand::PublishPolicy(PublishPolicy {
            currency,
            effective_month: july,
            rates: vec![ProductRate { product: "ECS".into(), rate: Rate::parse("0.05").unwrap() }],
            settlement_grace_days: Some(grace),
        });
        ledger.publish_policy(&ctx(at("2026-06-01T00:00:00Z")), publish).await.unwrap();
    }
    let c = ctx(at("2026-07-12T00:00:00Z"));
    ledger.record_consumption(&c, line("R1", "C1", "100.00")).await.unwrap();
    let mut usd = line("R2", "C1", "100.00");
    usd.amount = Money::parse_positive("100.00", "USD").unwrap();
    ledger.record_consumption(&c, usd).await.unwrap();

    let head = *store.head().borrow();
    let early = ledger.close_month(&ctx(at("2026-08-02T00:00:00Z")), "D1", july).await.unwrap_err();
    assert_eq!(early.code(), "INVALID_STATE");
    assert_eq!(*store.head().borrow(), head, "CNY was not closed alone");
    let state = ledger.incentives("D1").await.unwrap();
    assert_eq!(state.month_status(july, Currency::CNY), ledger_domain::incentives::MonthStatus::Accruing);

    let mut keyed = ctx(at("2026-08-04T00:00:00Z"));
    keyed.meta.request_id = Some("close-1".into());
    keyed.idempotency = Some(ledger_store::IdempotencyKey { key: "req:close-1".into(), fingerprint: [7; 32] });
    let closed = ledger.close_month(&keyed, "D1", july).await.unwrap();
    let Outcome::Stored { events, appended } = &closed else { panic!("{closed:?}") };
    assert_eq!((events.len(), appended.last_position - appended.first_position), (2, 1), "one append");
    let state = ledger.incentives("D1").await.unwrap();
    for currency in [Currency::CNY, Currency::USD] {
        assert_eq!(state.month_status(july, currency), ledger_domain::incentives::MonthStatus::Open, "{currency}");
    }
    // The retry replays the step.
    assert!(matches!(ledger.close_month(&keyed, "D1", july).await.unwrap(), Outcome::Replayed { .. }));
}

#[tokio::test]
async fn a_billing_batch_keeps_one_answer_per_request_id_even_when_twins_race() {
    use ledger_app::billing::BatchReceipt;
    use ledger_domain::billing::{BatchLine, LineStatus};
    use ledger_store::IdempotencyKey;

    let (ledger, store) = ledger_with_partners().await;
    let keyed = |fingerprint: u8| {
        let mut c = ctx(at("2026-07-12T00:00:00Z"));
        c.meta.request_id = Some("b-1".into());
        c.idempotency = Some(IdempotencyKey { key: "req:billing:b-1".into(), fingerprint: [fingerprint; 32] });
        c
    };
    let answer = |status| BatchReceipt {
        lines: vec![BatchLine { record_id: "R1".into(), status, error_code: None, error_msg: None }],
        position: 9,
    };
    assert_eq!(ledger.billing_receipt(&keyed(1)).await.unwrap(), None, "nothing kept yet");
    // Twin A stored the line; twin B, a moment later, found it a duplicate. The first
    // receipt kept is the answer both give.
    let a = ledger.keep_billing_receipt(&keyed(1), answer(LineStatus::Stored)).await.unwrap();
    let head = *store.head().borrow();
    let b = ledger.keep_billing_receipt(&keyed(1), answer(LineStatus::Duplicate)).await.unwrap();
    assert_eq!((a.clone(), b), (answer(LineStatus::Stored), answer(LineStatus::Stored)));
    assert_eq!(*store.head().borrow(), head, "one receipt per request id");
    assert_eq!(ledger.billing_receipt(&keyed(1)).await.unwrap(), Some(a));
    // The same id for another request.
    assert_eq!(ledger.billing_receipt(&keyed(2)).await.unwrap_err().code(), "IDEMPOTENCY_CONFLICT");
    // Without a request id nothing is kept.
    let plain = ctx(at("2026-07-12T00:00:00Z"));
    ledger.keep_billing_receipt(&plain, answer(LineStatus::Stored)).await.unwrap();
    assert_eq!(*store.head().borrow(), head);
}

/// §3 "Unbind reclaim": the end and the reclaim are one append. The request's key spans
/// both streams' events, the log holds nothing else between them, and a store that
/// cannot append to two streams at once stores neither.
#[tokio::test]
async fn the_end_and_its_unbind_reclaim_are_one_append() {
    use ledger_app::registry::EndCustomerAssociation;
    use ledger_store::IdempotencyKey;
    let (ledger, store) = ledger_with_partners().await;
    let c = ctx(at("2026-07-01T00:00:00Z"));
    ledger.credit_funds(&c, "D1", cny("1000.00")).await.unwrap();
    ledger
        .adjust(&c, adjust(AdjustmentDirection::Allocate, "D1", Counterparty::customer("C1"), cny("300.00")))
        .await
        .unwrap();
    let end =
        || EndCustomerAssociation { customer_id: "C1".into(), acting_partner: Some("D1".into()), effective_at: None };
    let keyed = CommandContext {
        idempotency: Some(IdempotencyKey { key: "end-1".into(), fingerprint: [1; 32] }),
        ..ctx(at("2026-10-02T00:00:00Z"))
    };

    // A store without `append_all` (a wrapper that does not forward it): nothing is stored.
    let bare = Arc::new(Watched::new(store.clone(), "none"));
    let on_bare = Ledger::new(Arc::new(Executor::new(bare)));
    let head = *store.head().borrow();
    assert!(on_bare.end_association(&keyed, end()).await.is_err());
    assert_eq!(*store.head().borrow(), head, "neither the end nor the reclaim");
    assert!(ledger.customer("C1").await.unwrap().latest().is_some());

    let ended = ledger.end_association(&keyed, end()).await.unwrap();
    assert_eq!(ended.reclaimed.len(), 1);
    assert_eq!(ended.reclaimed[0].amount, cny("300.00"));
    let (_, kept) = store.idempotency_key("end-1").await.unwrap().expect("the request's key is kept");
    let span = store.read_all(kept.first_position, 10).await.unwrap();
    let streams: Vec<_> = span.iter().map(|e| (e.stream.as_str(), e.event_type.as_str())).collect();
    assert_eq!(streams, [("customer-C1", "AssociationEnded"), ("funds-D1", "FundsUnbindReclaimed")]);
    assert_eq!(kept.last_position, span[1].position, "the key spans both streams' events");
    assert_eq!(ended.position, Some(kept.last_position));
    // A retry answers both from the log.
    let again = ledger.end_association(&keyed, end()).await.unwrap();
    assert!(matches!(again.ended, Outcome::Replayed { .. }));
    assert_eq!(again.reclaimed, ended.reclaimed);
    assert_eq!(*store.head().borrow(), kept.last_position);
    assert_eq!(ledger.funds("D1").await.unwrap().pool(Currency::CNY), cny("1000.00"));
}

/// A write's answer is of the state its append left (`Executor::load_at`): at every version
/// of a stream, from the cache, from a snapshot not newer than the version, or from the
/// start when the only snapshot is newer.
#[tokio::test]
async fn the_state_at_a_version_is_the_fold_of_its_events_whatever_snapshot_is_kept() {
    use ledger_domain::incentives::{self, Incentives, IncentivesState};
    use ledger_domain::{decode, Decider};
    let (ledger, store) = ledger_with_partners().await;
    let c = ctx(at("2026-07-12T00:00:00Z"));
    for i in 1..=5 {
        ledger.record_consumption(&c, line(&format!("R{i}"), "C2", &format!("{i}0.00"))).await.unwrap();
    }
    let stream = incentives::stream_id("S1");
    let events = store.read_stream(&stream, 1, 100).await.unwrap();
    assert_eq!(events.len(), 5);
    let mut folded = vec![IncentivesState::default()];
    for e in &events {
        let event = decode(&e.event_type, e.schema_version, &e.data).unwrap();
        folded.push(Incentives::evolve(folded.last().unwrap().clone(), &event));
    }
    // From the cache (at 5) or the start.
    for v in 1..=5u64 {
        assert_eq!(*ledger.exec.load_at::<Incentives>(&stream, v).await.unwrap(), folded[v as usize], "version {v}");
    }
    // A snapshot at 3: used from 3 on, never for an earlier version.
    store.save_snapshot(&stream, 3, Incentives::snapshot(&folded[3]).unwrap()).await.unwrap();
    let fresh = Executor::new(store.clone());
    for v in 1..=5u64 {
        assert_eq!(*fresh.load_at::<Incentives>(&stream, v).await.unwrap(), folded[v as usize], "version {v}");
    }
}
