//! docs/DOMAIN.md §4: quota, issue to resale customers, use, reclaim.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::{CoreError, Money};
use rust_decimal::Decimal;

use super::command::{AnswerCouponIssue, CouponCommand, GrantQuota, IssueCoupon, ReclaimItem, UseCoupon};
use super::{CouponEvent, CouponsState, ReclaimResult, MAX_RECLAIM_BATCH};
use crate::customer::AssociationType;
use crate::guard::{external_amount, fact_time, invalid, stream_owner_state};
use crate::DomainError;

pub(super) fn decide(
    state: &CouponsState,
    command: CouponCommand,
    now: DateTime<Utc>,
) -> Result<Vec<CouponEvent>, DomainError> {
    match command {
        CouponCommand::GrantQuota(c) => grant_quota(state, &c, now),
        CouponCommand::IssueCoupon(c) => issue(state, &c, now),
        CouponCommand::UseCoupon(c) => use_coupon(state, &c, now),
        CouponCommand::ReclaimCoupons(c) => reclaim(state, &c.items, c.request_id, now),
        CouponCommand::AnswerCouponIssue(c) => answer_issue(state, &c, now),
    }
}

fn answer_issue(
    state: &CouponsState,
    c: &AnswerCouponIssue,
    now: DateTime<Utc>,
) -> Result<Vec<CouponEvent>, DomainError> {
    validate_id("request_id", &c.request_id)?;
    if c.results.is_empty() {
        return Err(invalid("results", "an issue batch answers at least one customer"));
    }
    let partner_id = state.partner_id.clone().ok_or_else(|| invalid("partner_id", "has no coupon quota"))?;
    Ok(vec![CouponEvent::CouponIssueAnswered {
        partner_id,
        request_id: c.request_id.clone(),
        results: c.results.clone(),
        answered_at: now,
    }])
}

fn grant_quota(state: &CouponsState, c: &GrantQuota, now: DateTime<Utc>) -> Result<Vec<CouponEvent>, DomainError> {
    let GrantQuota { partner_id, grant_id, amount } = c.clone();
    validate_id("partner_id", &partner_id)?;
    validate_id("grant_id", &grant_id)?;
    external_amount(&amount)?;
    same_partner(state, &partner_id)?;
    match state.grants.get(&grant_id) {
        Some(earlier) if *earlier == amount => Ok(vec![]),
        Some(_) => Err(DomainError::AlreadyExists { what: "coupon quota grant", id: grant_id }),
        None => Ok(vec![CouponEvent::CouponQuotaGranted { partner_id, grant_id, amount, granted_at: now }]),
    }
}

/// §4: "A partner issues cash coupons (amount, currency, expiry) to its customers, only to
/// customers whose association type is `resale` at issue time, and only within its
/// remaining quota."
fn issue(state: &CouponsState, cmd: &IssueCoupon, now: DateTime<Utc>) -> Result<Vec<CouponEvent>, DomainError> {
    let cmd = cmd.clone();
    validate_id("partner_id", &cmd.partner_id)?;
    validate_id("coupon_id", &cmd.coupon_id)?;
    validate_id("customer_id", &cmd.customer_id)?;
    external_amount(&cmd.amount)?;
    same_partner(state, &cmd.partner_id)?;
    if state.coupons.contains_key(&cmd.coupon_id) {
        return Err(DomainError::AlreadyExists { what: "coupon", id: cmd.coupon_id });
    }
    if cmd.expires_at <= now {
        return Err(invalid("expires_at", "must be in the future"));
    }
    match &cmd.association {
        Some(a) if a.partner_id == cmd.partner_id => {
            if a.association_type != AssociationType::Resale {
                return Err(DomainError::NotResaleCustomer { customer_id: cmd.customer_id });
            }
        }
        _ => return Err(DomainError::NotYourCustomer { customer_id: cmd.customer_id }),
    }
    let quota = state.quota(cmd.amount.currency);
    if cmd.amount.amount > quota.amount {
        return Err(DomainError::InsufficientBalance {
            requested: cmd.amount.to_string(),
            available: quota.to_string(),
        });
    }
    Ok(vec![CouponEvent::CouponIssued {
        partner_id: cmd.partner_id,
        coupon_id: cmd.coupon_id,
        customer_id: cmd.customer_id,
        amount: cmd.amount,
        expires_at: cmd.expires_at,
        issued_at: now,
    }])
}

/// §4: "Billing reports coupon use (partial use allowed; never more than the remaining
/// amount)." Not from `expires_at` on (`COUPON_EXPIRED`), not after a reclaim
/// (`INVALID_STATE`: the balance went back to the quota).
fn use_coupon(state: &CouponsState, c: &UseCoupon, now: DateTime<Utc>) -> Result<Vec<CouponEvent>, DomainError> {
    let UseCoupon { coupon_id, usage_id, amount, used_at } = c.clone();
    validate_id("coupon_id", &coupon_id)?;
    validate_id("usage_id", &usage_id)?;
    external_amount(&amount)?;
    fact_time("used_at", used_at, now)?;
    let coupon = state.coupons.get(&coupon_id).ok_or(DomainError::CouponNotFound { coupon_id: coupon_id.clone() })?;
    if let Some(earlier) = state.usages.get(&usage_id) {
        if earlier.coupon_id == coupon_id && earlier.amount == amount {
            return Ok(vec![]);
        }
        return Err(DomainError::AlreadyExists { what: "coupon usage", id: usage_id });
    }
    if amount.currency != coupon.amount.currency {
        return Err(CoreError::CurrencyMismatch(amount.currency.to_string(), coupon.amount.currency.to_string()).into());
    }
    if coupon.reclaimed_at.is_some() {
        return Err(DomainError::InvalidState(format!("coupon {coupon_id} was reclaimed")));
    }
    if used_at < coupon.issued_at {
        return Err(invalid("used_at", "is before the coupon was issued"));
    }
    if coupon.remaining <= Decimal::ZERO {
        return Err(DomainError::CouponUsedUp { coupon_id });
    }
    if coupon.is_expired_at(used_at) {
        return Err(DomainError::CouponExpired { coupon_id });
    }
    if amount.amount > coupon.remaining {
        return Err(DomainError::InsufficientBalance {
            requested: amount.to_string(),
            available: Money::new(coupon.remaining, amount.currency).to_string(),
        });
    }
    Ok(vec![CouponEvent::CouponUsed {
        partner_id: state.partner_id.clone().unwrap_or_default(),
        customer_id: coupon.customer_id.clone(),
        coupon_id,
        usage_id,
        amount,
        used_at,
    }])
}

fn reclaim(
    state: &CouponsState,
    items: &[ReclaimItem],
    request_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<Vec<CouponEvent>, DomainError> {
    if items.is_empty() || items.len() > MAX_RECLAIM_BATCH {
        return Err(invalid("coupon_ids", format!("must name 1 to {MAX_RECLAIM_BATCH} coupons")));
    }
    // docs/DOMAIN.md §4: a batch of distinct ids; a repeat is the caller's mistake, and
    // answering it item by item would tell two stories of one coupon.
    let mut seen = BTreeSet::new();
    if let Some(twice) = items.iter().find(|i| !seen.insert(i.coupon_id.as_str())) {
        return Err(invalid("coupon_ids", format!("coupon {} is named twice", twice.coupon_id)));
    }
    let partner_id = state.partner_id.clone().unwrap_or_default();
    let results = reclaim_results(state, items, now);
    let mut events: Vec<CouponEvent> = results
        .iter()
        .filter_map(|r| {
            let amount = r.reclaimed?;
            let customer_id = state.coupons.get(&r.coupon_id)?.customer_id.clone();
            Some(CouponEvent::CouponReclaimed {
                partner_id: partner_id.clone(),
                coupon_id: r.coupon_id.clone(),
                customer_id,
                amount,
                reclaimed_at: now,
            })
        })
        .collect();
    if let Some(request_id) = request_id {
        validate_id("request_id", &request_id)?;
        events.push(CouponEvent::CouponReclaimAnswered { partner_id, request_id, results, answered_at: now });
    }
    Ok(events)
}

/// [`reclaim_outcomes`] as the API answers them.
pub fn reclaim_results(state: &CouponsState, items: &[ReclaimItem], now: DateTime<Utc>) -> Vec<ReclaimResult> {
    reclaim_outcomes(state, items, now).into_iter().map(|(id, outcome)| ReclaimResult::of(id, outcome)).collect()
}

fn same_partner(state: &CouponsState, partner_id: &str) -> Result<(), DomainError> {
    stream_owner_state("partner_id", state.partner_id.as_ref(), partner_id)
}

/// §4 reclaim, item by item: the unused balance each coupon would return, or why not.
/// "A coupon may be reclaimed only when its customer's association type is `resale` at
/// the time of the reclaim and it still has an unused, unexpired balance"; "one failed
/// item never blocks the others". The ids are distinct ([`reclaim`] refuses a batch that
/// repeats one).
pub fn reclaim_outcomes(
    state: &CouponsState,
    items: &[ReclaimItem],
    now: DateTime<Utc>,
) -> Vec<(String, Result<Money, DomainError>)> {
    items.iter().map(|item| (item.coupon_id.clone(), reclaimable(state, item, now))).collect()
}

fn reclaimable(state: &CouponsState, item: &ReclaimItem, now: DateTime<Utc>) -> Result<Money, DomainError> {
    let coupon_id = item.coupon_id.clone();
    let coupon =
        state.coupons.get(&item.coupon_id).ok_or(DomainError::CouponNotFound { coupon_id: coupon_id.clone() })?;
    let customer_id = coupon.customer_id.clone();
    let association = item.association.as_ref().filter(|a| Some(&a.partner_id) == state.partner_id.as_ref());
    let association = association.ok_or(DomainError::NotYourCustomer { customer_id: customer_id.clone() })?;
    if association.association_type != AssociationType::Resale {
        // Seed: "只能回收代售类子客户的优惠券" (only coupons of resale sub-customers).
        return Err(DomainError::NotResaleCustomer { customer_id });
    }
    if coupon.reclaimed_at.is_some() || coupon.remaining <= Decimal::ZERO {
        return Err(DomainError::CouponUsedUp { coupon_id });
    }
    if coupon.is_expired_at(now) {
        return Err(DomainError::CouponExpired { coupon_id });
    }
    Ok(Money::new(coupon.remaining, coupon.amount.currency))
}
