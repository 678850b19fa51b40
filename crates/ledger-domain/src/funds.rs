//! # Funds (stream `funds-{distributor_id}`): allocation and reclaim, DOMAIN.md §3
//!
//! One stream holds the whole tree of one distributor, per currency:
//! - the distributor's **fund pool** (`partner:{D}:fund_pool`), credited by the vendor;
//! - what each of its resellers **received and holds unspent** (`partner:{R}:fund_received`);
//! - what each customer (of the distributor or of one of its resellers) **holds allocated**
//!   (`customer:{C}:allocated`), kept apart by who allocated it.
//!
//! So every limit (the allocator's available funds, what a counterparty holds unspent) is
//! checked against the same stream version the append expects.
//!
//! Every allocation and reclaim event *is* the adjustment record (调账记录) of §3
//! ([`FundsEvent::adjustment_record`]); [`visible_to`] says who may list it. The
//! consumption of a resale customer draws its allocated balance down first
//! ([`FundsCommand::DrawDown`]).
//!
//! Facts from other streams (a customer's partner, a reseller's distributor, at `now`) are
//! resolved by the application layer and passed in the command.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use ledger_core::ids::{validate_id, validate_text};
use ledger_core::money::{MAX_AMOUNT, MONEY_SCALE};
use ledger_core::{CoreError, Currency, Money};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::postings::{self, Posting};
use crate::{Decider, DomainError, EventFamily};

/// Longest remark on an adjustment record.
pub const MAX_REMARK_CHARS: usize = 500;
/// Longest acting-user name on an adjustment record.
pub const MAX_ACTOR_CHARS: usize = 128;

pub fn stream_id(distributor_id: &str) -> String {
    format!("funds-{distributor_id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CounterpartyType {
    Customer,
    Reseller,
}

/// The other side of an allocation or reclaim: API.md `counterparty: {type, id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Counterparty {
    #[serde(rename = "type")]
    pub kind: CounterpartyType,
    pub id: String,
}

impl Counterparty {
    pub fn customer(id: impl Into<String>) -> Self {
        Counterparty { kind: CounterpartyType::Customer, id: id.into() }
    }

    pub fn reseller(id: impl Into<String>) -> Self {
        Counterparty { kind: CounterpartyType::Reseller, id: id.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    Allocate,
    Reclaim,
    /// 解绑回收: what a customer held unspent went back to its allocators when its
    /// association ended (§3 "Unbind reclaim").
    UnbindReclaim,
}

/// 调账记录, API.md "Adjustment record", plus the distributor whose tree it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AdjustmentRecord {
    pub record_id: String,
    pub kind: AdjustmentKind,
    pub distributor_id: String,
    pub operator_partner_id: String,
    pub counterparty: Counterparty,
    pub amount: Money,
    pub occurred_at: DateTime<Utc>,
    pub remark: Option<String>,
    pub actor: String,
}

/// One allocator's share of a drawdown (a customer may hold funds from its distributor
/// and, after moving within the tree, from a reseller too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Draw {
    pub allocator_partner_id: String,
    pub amount: Money,
}

/// `partner_id` is always the distributor that owns the stream (the Kafka key keeps one
/// tree in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum FundsEvent {
    /// The vendor credits the distributor's pool.
    FundsCredited { partner_id: String, credit_id: String, amount: Money, credited_at: DateTime<Utc> },
    /// 拨款: an adjustment record of kind `allocate`.
    FundsAllocated {
        partner_id: String,
        record_id: String,
        operator_partner_id: String,
        counterparty: Counterparty,
        amount: Money,
        occurred_at: DateTime<Utc>,
        remark: Option<String>,
        actor: String,
    },
    /// 回收: an adjustment record of kind `reclaim`.
    FundsReclaimed {
        partner_id: String,
        record_id: String,
        operator_partner_id: String,
        counterparty: Counterparty,
        amount: Money,
        occurred_at: DateTime<Utc>,
        remark: Option<String>,
        actor: String,
    },
    /// 解绑回收: an adjustment record of kind `unbind_reclaim`. The customer's association
    /// with its partner ended, and what it held unspent from `operator_partner_id` (the
    /// allocator) went back to it.
    FundsUnbindReclaimed {
        partner_id: String,
        record_id: String,
        operator_partner_id: String,
        counterparty: Counterparty,
        amount: Money,
        occurred_at: DateTime<Utc>,
        remark: Option<String>,
        actor: String,
    },
    /// A resale customer's consumption line drew down its allocated balance.
    AllocatedBalanceDrawnDown {
        partner_id: String,
        /// The consumption line's `record_id`.
        record_id: String,
        customer_id: String,
        consumption: Money,
        /// min(allocated, consumption); the sum of `drawn_from`.
        drawn: Money,
        drawn_from: Vec<Draw>,
        consumed_at: DateTime<Utc>,
    },
}

impl EventFamily for FundsEvent {}

impl FundsEvent {
    /// The adjustment record an allocation or reclaim is; `None` for other events.
    pub fn adjustment_record(&self) -> Option<AdjustmentRecord> {
        let kind = match self {
            FundsEvent::FundsAllocated { .. } => AdjustmentKind::Allocate,
            FundsEvent::FundsReclaimed { .. } => AdjustmentKind::Reclaim,
            FundsEvent::FundsUnbindReclaimed { .. } => AdjustmentKind::UnbindReclaim,
            _ => return None,
        };
        match self {
            FundsEvent::FundsAllocated {
                partner_id,
                record_id,
                operator_partner_id,
                counterparty,
                amount,
                occurred_at,
                remark,
                actor,
            }
            | FundsEvent::FundsReclaimed {
                partner_id,
                record_id,
                operator_partner_id,
                counterparty,
                amount,
                occurred_at,
                remark,
                actor,
            }
            | FundsEvent::FundsUnbindReclaimed {
                partner_id,
                record_id,
                operator_partner_id,
                counterparty,
                amount,
                occurred_at,
                remark,
                actor,
            } => Some(AdjustmentRecord {
                record_id: record_id.clone(),
                kind,
                distributor_id: partner_id.clone(),
                operator_partner_id: operator_partner_id.clone(),
                counterparty: counterparty.clone(),
                amount: *amount,
                occurred_at: *occurred_at,
                remark: remark.clone(),
                actor: actor.clone(),
            }),
            _ => None,
        }
    }
}

/// §3 visibility of an adjustment record to a partner (`viewer_parent` is the viewer's
/// distributor when the viewer is a reseller, `None` otherwise):
/// - the operator sees the records it made;
/// - a distributor sees every record of its tree: those it made (for its customers and
///   for its resellers) and those its resellers made for their customers (ours: the seed
///   says a distributor can see "the records a tier-1 made for its tier-2", and §Actors lets
///   a distributor see what concerns its resellers);
/// - a reseller sees those that concern it: it is the operator or the counterparty.
pub fn visible_to(record: &AdjustmentRecord, viewer_partner_id: &str, viewer_parent: Option<&str>) -> bool {
    if record.operator_partner_id == viewer_partner_id {
        return true;
    }
    match viewer_parent {
        None => record.distributor_id == viewer_partner_id,
        Some(parent) => {
            record.distributor_id == parent
                && record.counterparty.kind == CounterpartyType::Reseller
                && record.counterparty.id == viewer_partner_id
        }
    }
}

/// An allocation or reclaim as the operator asks for it (API.md `POST /v1/allocations`,
/// `/v1/reclaims`), with the facts the application layer resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// From the app (unique per stream).
    pub record_id: String,
    /// The stream's distributor: the operator itself, or the operator's distributor when
    /// the operator is a reseller. The app routes a reseller only to its own distributor's
    /// stream, so an operator other than `distributor_id` is one of its resellers.
    pub distributor_id: String,
    pub operator_partner_id: String,
    pub counterparty: Counterparty,
    pub amount: Money,
    pub remark: Option<String>,
    pub actor: String,
    /// Resolved by the app at `now`: for a customer counterparty, the customer's partner;
    /// for a reseller counterparty, the reseller's distributor. `None` when there is none
    /// (no association, no such reseller).
    pub counterparty_parent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FundsCommand {
    /// The vendor credits `distributor_id`'s pool. The same `credit_id` with the same
    /// amount again is a no-op; with another amount it is refused (`ALREADY_EXISTS`).
    CreditFunds {
        distributor_id: String,
        credit_id: String,
        amount: Money,
    },
    Allocate(Adjustment),
    Reclaim(Adjustment),
    /// §3 "Unbind reclaim": the association of `customer_id` ended; `unbind_id` names that
    /// end (the same unbind again is a no-op). Everything the customer holds unspent in
    /// this tree goes back to whoever allocated it, one record per allocator and currency,
    /// ids `{unbind_id}-{n}`.
    UnbindReclaim {
        distributor_id: String,
        customer_id: String,
        unbind_id: String,
        actor: String,
    },
    /// The consumption line `record_id` of a resale customer (the app sends only those)
    /// draws min(allocated, amount) from the customer's allocated balance.
    DrawDown {
        record_id: String,
        customer_id: String,
        amount: Money,
        consumed_at: DateTime<Utc>,
    },
}

/// Where money sits in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holder {
    /// The distributor's pool.
    Pool,
    /// A reseller's received, unspent funds.
    Reseller(String),
    /// A customer's allocated balance, the part that `allocator` gave.
    Customer { customer_id: String, allocator: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FundsState {
    /// The distributor owning the stream, from its first event.
    pub distributor_id: Option<String>,
    /// `partner:{D}:fund_pool`.
    pub pool: BTreeMap<Currency, Decimal>,
    /// `partner:{R}:fund_received`: received − allocated onward − reclaimed by the
    /// distributor + reclaimed back from its customers.
    pub reseller_unspent: BTreeMap<(String, Currency), Decimal>,
    /// `customer:{C}:allocated`, split by allocator: (customer, allocator, currency).
    pub customer_allocated: BTreeMap<(String, String, Currency), Decimal>,
    /// Credit ids seen, with their amounts (idempotency).
    pub credits: BTreeMap<String, Money>,
    /// Adjustment record ids in use.
    pub record_ids: BTreeSet<String>,
    /// Consumption lines that drew a balance down.
    pub drawdowns: BTreeSet<String>,
    /// Unbind ids whose reclaim ran (idempotency).
    pub unbinds: BTreeSet<String>,
    /// Totals, for conservation: Σ balances = credited − drawn.
    pub credited: BTreeMap<Currency, Decimal>,
    pub drawn: BTreeMap<Currency, Decimal>,
}

impl FundsState {
    pub fn pool(&self, currency: Currency) -> Money {
        Money::new(self.pool.get(&currency).copied().unwrap_or_default(), currency)
    }

    pub fn reseller_unspent(&self, reseller_id: &str, currency: Currency) -> Money {
        Money::new(
            self.reseller_unspent.get(&(reseller_id.to_string(), currency)).copied().unwrap_or_default(),
            currency,
        )
    }

    /// The customer's whole allocated balance, whoever allocated it.
    pub fn customer_allocated(&self, customer_id: &str, currency: Currency) -> Money {
        let total = self.allocations_of(customer_id, currency).map(|(_, amount)| amount).sum();
        Money::new(total, currency)
    }

    /// The part of the customer's allocated balance that `allocator` gave.
    pub fn customer_allocated_from(&self, customer_id: &str, allocator: &str, currency: Currency) -> Money {
        let key = (customer_id.to_string(), allocator.to_string(), currency);
        Money::new(self.customer_allocated.get(&key).copied().unwrap_or_default(), currency)
    }

    /// Every balance of the tree by account name (the chart of accounts of postings.rs),
    /// zero balances left out.
    pub fn balances(&self) -> BTreeMap<(String, Currency), Decimal> {
        let mut out: BTreeMap<(String, Currency), Decimal> = BTreeMap::new();
        let distributor = self.distributor_id.clone().unwrap_or_default();
        for (&currency, &amount) in &self.pool {
            *out.entry((account(&distributor, &Holder::Pool), currency)).or_default() += amount;
        }
        for ((reseller, currency), &amount) in &self.reseller_unspent {
            *out.entry((account(&distributor, &Holder::Reseller(reseller.clone())), *currency)).or_default() += amount;
        }
        for ((customer, allocator, currency), &amount) in &self.customer_allocated {
            let holder = Holder::Customer { customer_id: customer.clone(), allocator: allocator.clone() };
            *out.entry((account(&distributor, &holder), *currency)).or_default() += amount;
        }
        out.retain(|_, amount| !amount.is_zero());
        out
    }

    fn allocations_of<'a>(
        &'a self,
        customer_id: &'a str,
        currency: Currency,
    ) -> impl Iterator<Item = (&'a str, Decimal)> + 'a {
        self.customer_allocated
            .iter()
            .filter(move |((c, _, cur), _)| c == customer_id && *cur == currency)
            .map(|((_, allocator, _), amount)| (allocator.as_str(), *amount))
    }

    fn held_by(&self, holder: &Holder, currency: Currency) -> Decimal {
        match holder {
            Holder::Pool => self.pool(currency).amount,
            Holder::Reseller(r) => self.reseller_unspent(r, currency).amount,
            Holder::Customer { customer_id, allocator } => {
                self.customer_allocated_from(customer_id, allocator, currency).amount
            }
        }
    }

    fn add(&mut self, holder: &Holder, currency: Currency, delta: Decimal) {
        match holder {
            Holder::Pool => *self.pool.entry(currency).or_default() += delta,
            Holder::Reseller(r) => *self.reseller_unspent.entry((r.clone(), currency)).or_default() += delta,
            Holder::Customer { customer_id, allocator } => {
                let key = (customer_id.clone(), allocator.clone(), currency);
                let entry = self.customer_allocated.entry(key.clone()).or_default();
                *entry += delta;
                if entry.is_zero() {
                    self.customer_allocated.remove(&key);
                }
            }
        }
    }
}

/// Who gives in an allocation (and receives in a reclaim): the distributor's pool or the
/// reseller's received funds.
fn operator_holder(distributor_id: &str, operator: &str) -> Holder {
    if operator == distributor_id {
        Holder::Pool
    } else {
        Holder::Reseller(operator.to_string())
    }
}

/// Who receives in an allocation (and gives in a reclaim).
fn counterparty_holder(counterparty: &Counterparty, operator: &str) -> Holder {
    match counterparty.kind {
        CounterpartyType::Reseller => Holder::Reseller(counterparty.id.clone()),
        CounterpartyType::Customer => {
            Holder::Customer { customer_id: counterparty.id.clone(), allocator: operator.to_string() }
        }
    }
}

fn account(distributor_id: &str, holder: &Holder) -> String {
    match holder {
        Holder::Pool => format!("partner:{distributor_id}:fund_pool"),
        Holder::Reseller(r) => format!("partner:{r}:fund_received"),
        Holder::Customer { customer_id, .. } => format!("customer:{customer_id}:allocated"),
    }
}

pub const VENDOR_FUND_SOURCE: &str = "vendor:fund_source";
pub const VENDOR_CONSUMPTION_SETTLED: &str = "vendor:consumption_settled";

/// Double entry of a funds event (chart of accounts of the working agreement).
pub fn postings(event: &FundsEvent) -> Vec<Posting> {
    match event {
        FundsEvent::FundsCredited { partner_id, amount, .. } => {
            postings::transfer(VENDOR_FUND_SOURCE, account(partner_id, &Holder::Pool), amount.amount, amount.currency)
        }
        FundsEvent::FundsAllocated { partner_id, operator_partner_id, counterparty, amount, .. } => {
            let from = account(partner_id, &operator_holder(partner_id, operator_partner_id));
            let to = account(partner_id, &counterparty_holder(counterparty, operator_partner_id));
            postings::transfer(from, to, amount.amount, amount.currency)
        }
        FundsEvent::FundsReclaimed { partner_id, operator_partner_id, counterparty, amount, .. }
        | FundsEvent::FundsUnbindReclaimed { partner_id, operator_partner_id, counterparty, amount, .. } => {
            let from = account(partner_id, &counterparty_holder(counterparty, operator_partner_id));
            let to = account(partner_id, &operator_holder(partner_id, operator_partner_id));
            postings::transfer(from, to, amount.amount, amount.currency)
        }
        FundsEvent::AllocatedBalanceDrawnDown { customer_id, drawn, .. } => postings::transfer(
            format!("customer:{customer_id}:allocated"),
            VENDOR_CONSUMPTION_SETTLED,
            drawn.amount,
            drawn.currency,
        ),
    }
}

/// At least one example of every event variant (JSON Schema generation and checks).
pub fn examples() -> Vec<FundsEvent> {
    let at = DateTime::parse_from_rfc3339("2026-07-01T02:00:00Z").expect("valid time").with_timezone(&Utc);
    let cny = |s: &str| Money::new(s.parse().expect("valid amount"), Currency::CNY);
    vec![
        FundsEvent::FundsCredited {
            partner_id: "D1".into(),
            credit_id: "CR-1".into(),
            amount: cny("1000.00"),
            credited_at: at,
        },
        FundsEvent::FundsAllocated {
            partner_id: "D1".into(),
            record_id: "ADJ-1".into(),
            operator_partner_id: "D1".into(),
            counterparty: Counterparty::reseller("R1"),
            amount: cny("300.00"),
            occurred_at: at,
            remark: Some("Q3 budget".into()),
            actor: "alice".into(),
        },
        FundsEvent::FundsAllocated {
            partner_id: "D1".into(),
            record_id: "ADJ-2".into(),
            operator_partner_id: "R1".into(),
            counterparty: Counterparty::customer("C1"),
            amount: cny("100.00"),
            occurred_at: at,
            remark: None,
            actor: "bob".into(),
        },
        FundsEvent::FundsReclaimed {
            partner_id: "D1".into(),
            record_id: "ADJ-3".into(),
            operator_partner_id: "D1".into(),
            counterparty: Counterparty::reseller("R1"),
            amount: cny("50.00"),
            occurred_at: at,
            remark: Some("unused".into()),
            actor: "alice".into(),
        },
        FundsEvent::FundsUnbindReclaimed {
            partner_id: "D1".into(),
            record_id: "UNB-42-1".into(),
            operator_partner_id: "R1".into(),
            counterparty: Counterparty::customer("C1"),
            amount: cny("20.00"),
            occurred_at: at,
            remark: Some("association ended".into()),
            actor: "alice".into(),
        },
        FundsEvent::AllocatedBalanceDrawnDown {
            partner_id: "D1".into(),
            record_id: "CONS-1".into(),
            customer_id: "C1".into(),
            consumption: cny("120.00"),
            drawn: cny("100.00"),
            drawn_from: vec![Draw { allocator_partner_id: "R1".into(), amount: cny("100.00") }],
            consumed_at: at,
        },
    ]
}

pub struct Funds;

impl Decider for Funds {
    type State = FundsState;
    type Command = FundsCommand;
    type Event = FundsEvent;

    fn decide(state: &FundsState, command: FundsCommand, now: DateTime<Utc>) -> Result<Vec<FundsEvent>, DomainError> {
        match command {
            FundsCommand::CreditFunds { distributor_id, credit_id, amount } => {
                credit(state, distributor_id, credit_id, amount, now)
            }
            FundsCommand::Allocate(adjustment) => allocate(state, adjustment, now),
            FundsCommand::Reclaim(adjustment) => reclaim(state, adjustment, now),
            FundsCommand::UnbindReclaim { distributor_id, customer_id, unbind_id, actor } => {
                unbind_reclaim(state, distributor_id, customer_id, unbind_id, actor, now)
            }
            FundsCommand::DrawDown { record_id, customer_id, amount, consumed_at } => {
                draw_down(state, record_id, customer_id, amount, consumed_at)
            }
        }
    }

    fn evolve(mut state: FundsState, event: &FundsEvent) -> FundsState {
        match event {
            FundsEvent::FundsCredited { partner_id, credit_id, amount, .. } => {
                state.distributor_id.get_or_insert_with(|| partner_id.clone());
                state.credits.insert(credit_id.clone(), *amount);
                state.add(&Holder::Pool, amount.currency, amount.amount);
                *state.credited.entry(amount.currency).or_default() += amount.amount;
            }
            FundsEvent::FundsAllocated { partner_id, record_id, operator_partner_id, counterparty, amount, .. } => {
                state.distributor_id.get_or_insert_with(|| partner_id.clone());
                state.record_ids.insert(record_id.clone());
                state.add(&operator_holder(partner_id, operator_partner_id), amount.currency, -amount.amount);
                state.add(&counterparty_holder(counterparty, operator_partner_id), amount.currency, amount.amount);
            }
            FundsEvent::FundsReclaimed { partner_id, record_id, operator_partner_id, counterparty, amount, .. }
            | FundsEvent::FundsUnbindReclaimed {
                partner_id, record_id, operator_partner_id, counterparty, amount, ..
            } => {
                state.distributor_id.get_or_insert_with(|| partner_id.clone());
                state.record_ids.insert(record_id.clone());
                state.add(&counterparty_holder(counterparty, operator_partner_id), amount.currency, -amount.amount);
                state.add(&operator_holder(partner_id, operator_partner_id), amount.currency, amount.amount);
                if let (FundsEvent::FundsUnbindReclaimed { .. }, Some((unbind_id, _))) = (event, record_id.rsplit_once('-')) {
                    state.unbinds.insert(unbind_id.to_string());
                }
            }
            FundsEvent::AllocatedBalanceDrawnDown { partner_id, record_id, customer_id, drawn, drawn_from, .. } => {
                state.distributor_id.get_or_insert_with(|| partner_id.clone());
                state.drawdowns.insert(record_id.clone());
                for draw in drawn_from {
                    let holder = Holder::Customer {
                        customer_id: customer_id.clone(),
                        allocator: draw.allocator_partner_id.clone(),
                    };
                    state.add(&holder, draw.amount.currency, -draw.amount.amount);
                }
                *state.drawn.entry(drawn.currency).or_default() += drawn.amount;
            }
        }
        state
    }
}

fn credit(
    state: &FundsState,
    distributor_id: String,
    credit_id: String,
    amount: Money,
    now: DateTime<Utc>,
) -> Result<Vec<FundsEvent>, DomainError> {
    validate_id("distributor_id", &distributor_id)?;
    validate_id("credit_id", &credit_id)?;
    validate_amount(&amount)?;
    same_distributor(state, &distributor_id)?;
    match state.credits.get(&credit_id) {
        Some(earlier) if *earlier == amount => Ok(vec![]),
        Some(_) => Err(DomainError::AlreadyExists { what: "credit", id: credit_id }),
        None => Ok(vec![FundsEvent::FundsCredited { partner_id: distributor_id, credit_id, amount, credited_at: now }]),
    }
}

/// §3: "A distributor allocates from its pool to one of its customers or to one of its
/// resellers; a reseller allocates from what it received to its own customers."
/// "Allocation may not exceed the allocator's available pool."
fn allocate(state: &FundsState, adj: Adjustment, now: DateTime<Utc>) -> Result<Vec<FundsEvent>, DomainError> {
    validate_adjustment(state, &adj)?;
    check_counterparty(state, &adj, AdjustmentKind::Allocate)?;
    let giver = operator_holder(&adj.distributor_id, &adj.operator_partner_id);
    ensure_covers(state.held_by(&giver, adj.amount.currency), adj.amount)?;
    let Adjustment { record_id, distributor_id, operator_partner_id, counterparty, amount, remark, actor, .. } = adj;
    Ok(vec![FundsEvent::FundsAllocated {
        partner_id: distributor_id,
        record_id,
        operator_partner_id,
        counterparty,
        amount,
        occurred_at: now,
        remark,
        actor,
    }])
}

/// §3: "Reclaim moves money back, and may not exceed what the counterparty holds unspent
/// from allocations (INSUFFICIENT_BALANCE, nothing changes)." What the operator may take
/// back is what *it* gave and is still unspent: for a reseller, its unspent received
/// funds; for a customer, the part of its allocated balance this operator allocated.
fn reclaim(state: &FundsState, adj: Adjustment, now: DateTime<Utc>) -> Result<Vec<FundsEvent>, DomainError> {
    validate_adjustment(state, &adj)?;
    check_counterparty(state, &adj, AdjustmentKind::Reclaim)?;
    let holder = counterparty_holder(&adj.counterparty, &adj.operator_partner_id);
    ensure_covers(state.held_by(&holder, adj.amount.currency), adj.amount)?;
    let Adjustment { record_id, distributor_id, operator_partner_id, counterparty, amount, remark, actor, .. } = adj;
    Ok(vec![FundsEvent::FundsReclaimed {
        partner_id: distributor_id,
        record_id,
        operator_partner_id,
        counterparty,
        amount,
        occurred_at: now,
        remark,
        actor,
    }])
}

/// §3 "Unbind reclaim": "whatever the customer still holds unspent from allocations goes
/// back to whoever allocated it". One record per allocator and currency, in allocator
/// order; nothing held is nothing recorded. The same unbind again is a no-op.
fn unbind_reclaim(
    state: &FundsState,
    distributor_id: String,
    customer_id: String,
    unbind_id: String,
    actor: String,
    now: DateTime<Utc>,
) -> Result<Vec<FundsEvent>, DomainError> {
    validate_id("distributor_id", &distributor_id)?;
    validate_id("customer_id", &customer_id)?;
    validate_id("unbind_id", &unbind_id)?;
    crate::partner::non_blank("actor", &actor, MAX_ACTOR_CHARS)?;
    same_distributor(state, &distributor_id)?;
    if state.unbinds.contains(&unbind_id) {
        return Ok(vec![]);
    }
    let held = state
        .customer_allocated
        .iter()
        .filter(|((c, _, _), amount)| *c == customer_id && **amount > Decimal::ZERO)
        .map(|((_, allocator, currency), amount)| (allocator.clone(), Money::new(*amount, *currency)));
    Ok(held
        .enumerate()
        .map(|(n, (allocator, amount))| FundsEvent::FundsUnbindReclaimed {
            partner_id: distributor_id.clone(),
            record_id: format!("{unbind_id}-{}", n + 1),
            operator_partner_id: allocator,
            counterparty: Counterparty::customer(customer_id.clone()),
            amount,
            occurred_at: now,
            remark: Some("association ended".into()),
            actor: actor.clone(),
        })
        .collect())
}

/// §3: "The consumption of a resale customer draws down its allocated balance first."
/// Draws min(allocated, consumption), allocator by allocator in id order. A line already
/// drawn is a no-op; a line that finds nothing to draw records nothing.
fn draw_down(
    state: &FundsState,
    record_id: String,
    customer_id: String,
    consumption: Money,
    consumed_at: DateTime<Utc>,
) -> Result<Vec<FundsEvent>, DomainError> {
    validate_id("record_id", &record_id)?;
    validate_id("customer_id", &customer_id)?;
    validate_amount(&consumption)?;
    if state.drawdowns.contains(&record_id) {
        return Ok(vec![]);
    }
    let currency = consumption.currency;
    let mut still_to_draw = consumption.amount;
    let mut drawn_from = Vec::new();
    for (allocator, held) in state.allocations_of(&customer_id, currency) {
        if still_to_draw.is_zero() {
            break;
        }
        let take = held.min(still_to_draw);
        if take > Decimal::ZERO {
            drawn_from.push(Draw { allocator_partner_id: allocator.to_string(), amount: Money::new(take, currency) });
            still_to_draw -= take;
        }
    }
    let (Some(distributor_id), false) = (&state.distributor_id, drawn_from.is_empty()) else {
        return Ok(vec![]);
    };
    Ok(vec![FundsEvent::AllocatedBalanceDrawnDown {
        partner_id: distributor_id.clone(),
        record_id,
        customer_id,
        drawn: Money::new(consumption.amount - still_to_draw, currency),
        consumption,
        drawn_from,
        consumed_at,
    }])
}

fn validate_adjustment(state: &FundsState, adj: &Adjustment) -> Result<(), DomainError> {
    validate_id("record_id", &adj.record_id)?;
    validate_id("distributor_id", &adj.distributor_id)?;
    validate_id("operator_partner_id", &adj.operator_partner_id)?;
    validate_id("counterparty.id", &adj.counterparty.id)?;
    validate_amount(&adj.amount)?;
    if let Some(remark) = &adj.remark {
        validate_text("remark", remark, MAX_REMARK_CHARS)?;
    }
    crate::partner::non_blank("actor", &adj.actor, MAX_ACTOR_CHARS)?;
    same_distributor(state, &adj.distributor_id)?;
    if state.record_ids.contains(&adj.record_id) {
        return Err(DomainError::AlreadyExists { what: "adjustment record", id: adj.record_id.clone() });
    }
    Ok(())
}

/// Who may allocate to (or reclaim from) whom:
/// - a reseller counterparty: only its own distributor, never a reseller (a reseller
///   allocates only to its own customers). A reseller of another distributor is "not
///   yours": `NOT_YOUR_CUSTOMER` (ours: the reseller is the distributor's downstream, and
///   DOMAIN.md has no separate code);
/// - a customer counterparty, allocation: only the customer's partner at `now`
///   (`NOT_YOUR_CUSTOMER`);
/// - a customer counterparty, reclaim: the customer's partner at `now`, or an operator that
///   still has an unspent allocation with a customer who has since moved away (ours: money
///   given is the giver's to take back; otherwise it would be stranded).
fn check_counterparty(state: &FundsState, adj: &Adjustment, kind: AdjustmentKind) -> Result<(), DomainError> {
    let operator = adj.operator_partner_id.as_str();
    let parent = adj.counterparty_parent.as_deref();
    let not_yours = || DomainError::NotYourCustomer { customer_id: adj.counterparty.id.clone() };
    match adj.counterparty.kind {
        CounterpartyType::Reseller => {
            if operator != adj.distributor_id {
                return Err(DomainError::Invalid(CoreError::InvalidField {
                    field: "counterparty.type",
                    reason: "a reseller allocates to and reclaims from its own customers only".into(),
                }));
            }
            match parent {
                None => Err(DomainError::NotFound { what: "reseller", id: adj.counterparty.id.clone() }),
                Some(p) if p != operator => Err(not_yours()),
                Some(_) => Ok(()),
            }
        }
        CounterpartyType::Customer => {
            let is_ours = parent == Some(operator);
            let gave_something =
                !state.customer_allocated_from(&adj.counterparty.id, operator, adj.amount.currency).is_zero();
            match kind {
                AdjustmentKind::Allocate if !is_ours => Err(not_yours()),
                AdjustmentKind::Reclaim if !is_ours && !gave_something => Err(not_yours()),
                _ => Ok(()),
            }
        }
    }
}

fn same_distributor(state: &FundsState, distributor_id: &str) -> Result<(), DomainError> {
    match &state.distributor_id {
        Some(owner) if owner != distributor_id => {
            Err(DomainError::InvalidState(format!("this stream holds the funds of distributor {owner}")))
        }
        _ => Ok(()),
    }
}

fn ensure_covers(available: Decimal, requested: Money) -> Result<(), DomainError> {
    if requested.amount > available {
        return Err(DomainError::InsufficientBalance {
            requested: requested.to_string(),
            available: Money::new(available, requested.currency).to_string(),
        });
    }
    Ok(())
}

/// An amount the decider accepts from a command: > 0, at most two decimal places, at most
/// [`MAX_AMOUNT`] (the core's `INVALID_AMOUNT` otherwise).
pub(crate) fn validate_amount(money: &Money) -> Result<(), DomainError> {
    let bad = |reason| DomainError::Invalid(CoreError::InvalidAmount { value: money.amount.to_string(), reason });
    if money.amount <= Decimal::ZERO {
        return Err(bad("must be greater than zero"));
    }
    if money.amount.normalize().scale() > MONEY_SCALE {
        return Err(bad("must have at most two decimal places"));
    }
    if money.amount > MAX_AMOUNT {
        return Err(bad("must be at most 1000000000000"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
