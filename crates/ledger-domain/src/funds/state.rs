//! The fund tree of one distributor as its events leave it.

use std::collections::{BTreeMap, BTreeSet};

use ledger_core::{Currency, Money};
use rust_decimal::Decimal;

use super::postings::account;
use super::{Counterparty, CounterpartyType, FundsEvent};

/// Where money sits in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Holder {
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

    pub(super) fn allocations_of<'a>(
        &'a self,
        customer_id: &'a str,
        currency: Currency,
    ) -> impl Iterator<Item = (&'a str, Decimal)> + 'a {
        self.customer_allocated
            .iter()
            .filter(move |((c, _, cur), _)| c == customer_id && *cur == currency)
            .map(|((_, allocator, _), amount)| (allocator.as_str(), *amount))
    }

    pub(super) fn held_by(&self, holder: &Holder, currency: Currency) -> Decimal {
        match holder {
            Holder::Pool => self.pool(currency).amount,
            Holder::Reseller(r) => self.reseller_unspent(r, currency).amount,
            Holder::Customer { customer_id, allocator } => {
                self.customer_allocated_from(customer_id, allocator, currency).amount
            }
        }
    }

    pub(super) fn add(&mut self, holder: &Holder, currency: Currency, delta: Decimal) {
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
pub(super) fn operator_holder(distributor_id: &str, operator: &str) -> Holder {
    if operator == distributor_id {
        Holder::Pool
    } else {
        Holder::Reseller(operator.to_string())
    }
}

/// Who receives in an allocation (and gives in a reclaim).
pub(super) fn counterparty_holder(counterparty: &Counterparty, operator: &str) -> Holder {
    match counterparty.kind {
        CounterpartyType::Reseller => Holder::Reseller(counterparty.id.clone()),
        CounterpartyType::Customer => {
            Holder::Customer { customer_id: counterparty.id.clone(), allocator: operator.to_string() }
        }
    }
}

pub(super) fn evolve(mut state: FundsState, event: &FundsEvent) -> FundsState {
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
            if let (FundsEvent::FundsUnbindReclaimed { .. }, Some((unbind_id, _))) = (event, record_id.rsplit_once('-'))
            {
                state.unbinds.insert(unbind_id.to_string());
            }
        }
        FundsEvent::AllocatedBalanceDrawnDown { partner_id, record_id, customer_id, drawn, drawn_from, .. } => {
            state.distributor_id.get_or_insert_with(|| partner_id.clone());
            state.drawdowns.insert(record_id.clone());
            for draw in drawn_from {
                let holder =
                    Holder::Customer { customer_id: customer_id.clone(), allocator: draw.allocator_partner_id.clone() };
                state.add(&holder, draw.amount.currency, -draw.amount.amount);
            }
            *state.drawn.entry(drawn.currency).or_default() += drawn.amount;
        }
    }
    state
}
