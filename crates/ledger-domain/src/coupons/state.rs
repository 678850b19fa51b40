//! A partner's quota and coupons as their events leave them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ledger_core::{Currency, Money};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::postings::{coupons_account, quota_account};
use super::CouponEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponStatus {
    Active,
    UsedUp,
    Expired,
    Reclaimed,
}

/// docs/API.md "Coupon".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CouponView {
    pub coupon_id: String,
    pub customer_id: String,
    pub amount: Money,
    pub remaining: Money,
    pub status: CouponStatus,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    pub coupon_id: String,
    pub customer_id: String,
    pub amount: Money,
    /// Unused and not reclaimed.
    pub remaining: Decimal,
    pub expires_at: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub reclaimed_at: Option<DateTime<Utc>>,
}

impl Coupon {
    /// Expired from `expires_at` on.
    pub fn is_expired_at(&self, t: DateTime<Utc>) -> bool {
        t >= self.expires_at
    }

    /// The coupon a `CouponIssued` event creates (`None` for any other event).
    pub fn issued(event: &CouponEvent) -> Option<Coupon> {
        let CouponEvent::CouponIssued { coupon_id, customer_id, amount, expires_at, issued_at, .. } = event else {
            return None;
        };
        Some(Coupon {
            coupon_id: coupon_id.clone(),
            customer_id: customer_id.clone(),
            amount: *amount,
            remaining: amount.amount,
            expires_at: *expires_at,
            issued_at: *issued_at,
            reclaimed_at: None,
        })
    }

    /// The part of a use or a reclaim that concerns this coupon: the aggregate's evolve
    /// and the read model of coupons both run it.
    pub fn apply(&mut self, event: &CouponEvent) {
        match event {
            CouponEvent::CouponUsed { coupon_id, amount, .. } if *coupon_id == self.coupon_id => {
                self.remaining -= amount.amount;
            }
            CouponEvent::CouponReclaimed { coupon_id, amount, reclaimed_at, .. } if *coupon_id == self.coupon_id => {
                self.remaining -= amount.amount;
                self.reclaimed_at = Some(*reclaimed_at);
            }
            _ => {}
        }
    }

    /// docs/API.md "Coupon" at time `at` (the status depends on it: expiry is computed).
    pub fn view(&self, at: DateTime<Utc>) -> CouponView {
        CouponView {
            coupon_id: self.coupon_id.clone(),
            customer_id: self.customer_id.clone(),
            amount: self.amount,
            remaining: Money::new(self.remaining, self.amount.currency),
            status: self.status_at(at),
            expires_at: self.expires_at,
        }
    }

    pub fn status_at(&self, t: DateTime<Utc>) -> CouponStatus {
        if self.reclaimed_at.is_some() {
            CouponStatus::Reclaimed
        } else if self.remaining <= Decimal::ZERO {
            CouponStatus::UsedUp
        } else if self.is_expired_at(t) {
            CouponStatus::Expired
        } else {
            CouponStatus::Active
        }
    }
}

/// One grant of coupon quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaGrant {
    pub grant_id: String,
    pub amount: Money,
    pub granted_at: DateTime<Utc>,
}

/// Every grant with what is left of it. The quota of a currency is one balance (§4); it
/// is shown per grant by spending the grants oldest first (ours), so the balances of a
/// currency's grants add up to its quota and a grant is spent only once the older ones are.
pub fn quota_balances(state: &CouponsState) -> Vec<(QuotaGrant, Money)> {
    let mut spent: BTreeMap<Currency, Decimal> = BTreeMap::new();
    for (currency, granted) in &state.granted {
        spent.insert(*currency, granted - state.quota(*currency).amount);
    }
    state
        .quota_grants
        .iter()
        .map(|g| {
            let left_to_spend = spent.entry(g.amount.currency).or_default();
            let taken = (*left_to_spend).min(g.amount.amount).max(Decimal::ZERO);
            *left_to_spend -= taken;
            (g.clone(), Money::new(g.amount.amount - taken, g.amount.currency))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub coupon_id: String,
    pub amount: Money,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CouponsState {
    /// The partner owning the stream, from its first event.
    pub partner_id: Option<String>,
    /// `partner:{P}:coupon_quota`: granted − issued + reclaimed.
    pub quota: BTreeMap<Currency, Decimal>,
    pub coupons: BTreeMap<String, Coupon>,
    /// Grant ids seen, with their amounts (idempotency).
    pub grants: BTreeMap<String, Money>,
    /// The grants in the order they were made: a grant's id is its `quota_id` in the
    /// vendor-compatible API, which lists them with [`quota_balances`].
    pub quota_grants: Vec<QuotaGrant>,
    /// Usage ids seen (idempotency).
    pub usages: BTreeMap<String, Usage>,
    /// Totals, for conservation: quota + outstanding coupons + used = granted.
    pub granted: BTreeMap<Currency, Decimal>,
    pub used: BTreeMap<Currency, Decimal>,
}

impl CouponsState {
    pub fn quota(&self, currency: Currency) -> Money {
        Money::new(self.quota.get(&currency).copied().unwrap_or_default(), currency)
    }

    /// Every balance by account name (the chart of accounts of postings.rs), zero
    /// balances left out.
    pub fn balances(&self) -> BTreeMap<(String, Currency), Decimal> {
        let mut out: BTreeMap<(String, Currency), Decimal> = BTreeMap::new();
        let partner = self.partner_id.clone().unwrap_or_default();
        for (&currency, &amount) in &self.quota {
            *out.entry((quota_account(&partner), currency)).or_default() += amount;
        }
        for c in self.coupons.values() {
            *out.entry((coupons_account(&c.customer_id), c.amount.currency)).or_default() += c.remaining;
        }
        out.retain(|_, amount| !amount.is_zero());
        out
    }
}

/// docs/API.md "Coupon" at time `at`; `None` for an unknown coupon.
pub fn coupon_view(state: &CouponsState, coupon_id: &str, at: DateTime<Utc>) -> Option<CouponView> {
    Some(state.coupons.get(coupon_id)?.view(at))
}

pub(super) fn evolve(mut state: CouponsState, event: &CouponEvent) -> CouponsState {
    match event {
        CouponEvent::CouponQuotaGranted { partner_id, grant_id, amount, granted_at } => {
            state.partner_id.get_or_insert_with(|| partner_id.clone());
            state.grants.insert(grant_id.clone(), *amount);
            state.quota_grants.push(QuotaGrant {
                grant_id: grant_id.clone(),
                amount: *amount,
                granted_at: *granted_at,
            });
            *state.quota.entry(amount.currency).or_default() += amount.amount;
            *state.granted.entry(amount.currency).or_default() += amount.amount;
        }
        CouponEvent::CouponIssued { partner_id, amount, .. } => {
            state.partner_id.get_or_insert_with(|| partner_id.clone());
            *state.quota.entry(amount.currency).or_default() -= amount.amount;
            if let Some(c) = Coupon::issued(event) {
                state.coupons.insert(c.coupon_id.clone(), c);
            }
        }
        CouponEvent::CouponUsed { coupon_id, usage_id, amount, .. } => {
            state.usages.insert(usage_id.clone(), Usage { coupon_id: coupon_id.clone(), amount: *amount });
            // decide uses and reclaims only a coupon it holds, so a stored use or reclaim names a
            // known one.
            debug_assert!(state.coupons.contains_key(coupon_id), "unknown coupon {coupon_id}");
            if let Some(c) = state.coupons.get_mut(coupon_id) {
                c.apply(event);
            }
            *state.used.entry(amount.currency).or_default() += amount.amount;
        }
        CouponEvent::CouponReclaimed { coupon_id, amount, .. } => {
            // decide uses and reclaims only a coupon it holds, so a stored use or reclaim names a
            // known one.
            debug_assert!(state.coupons.contains_key(coupon_id), "unknown coupon {coupon_id}");
            if let Some(c) = state.coupons.get_mut(coupon_id) {
                c.apply(event);
            }
            *state.quota.entry(amount.currency).or_default() += amount.amount;
        }
        CouponEvent::CouponReclaimAnswered { .. } | CouponEvent::CouponIssueAnswered { .. } => {}
    }
    state
}
