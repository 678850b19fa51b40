//! # Coupons (stream `coupons-{partner_id}`): quota, cash coupons, use and reclaim, DOMAIN.md §4
//!
//! The vendor grants a partner a coupon quota per currency (`partner:{P}:coupon_quota`).
//! The partner issues cash coupons to its **resale** customers within that quota; billing
//! reports their use (partial use allowed); the partner may reclaim the unused, unexpired
//! balance of a resale customer's coupon, which returns to the quota. The coupons of one
//! partner and its quota live in one stream, so the quota check and the append share one
//! expected version.
//!
//! A coupon's status at time `t` ([`coupon_view`]): `reclaimed` once reclaimed, else
//! `used_up` when nothing remains, else `expired` from `expires_at` on, else `active`.
//! Expiry is computed, not recorded: an expired coupon's unused balance stays on
//! `customer:{C}:coupons` (it was never used and never returned).
//!
//! Facts from other streams (the customer's partner and association type at `now`) are
//! resolved by the application layer and passed in the command.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::{CoreError, Currency, Money};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::customer::{Association, AssociationType};
use crate::funds::validate_amount;
use crate::postings::{self, Posting};
use crate::{Decider, DomainError, EventFamily};

/// Most coupons one reclaim call may name.
pub const MAX_RECLAIM_BATCH: usize = 100;

pub const VENDOR_COUPON_SOURCE: &str = "vendor:coupon_source";
pub const VENDOR_COUPON_REDEEMED: &str = "vendor:coupon_redeemed";

pub fn stream_id(partner_id: &str) -> String {
    format!("coupons-{partner_id}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum CouponEvent {
    /// The vendor adds to the partner's quota.
    CouponQuotaGranted { partner_id: String, grant_id: String, amount: Money, granted_at: DateTime<Utc> },
    /// A cash coupon out of the quota.
    CouponIssued {
        partner_id: String,
        coupon_id: String,
        customer_id: String,
        amount: Money,
        expires_at: DateTime<Utc>,
        issued_at: DateTime<Utc>,
    },
    /// Billing used part (or all) of a coupon.
    CouponUsed {
        partner_id: String,
        coupon_id: String,
        customer_id: String,
        usage_id: String,
        amount: Money,
        used_at: DateTime<Utc>,
    },
    /// The unused balance (`amount`) went back to the quota.
    CouponReclaimed {
        partner_id: String,
        coupon_id: String,
        customer_id: String,
        amount: Money,
        reclaimed_at: DateTime<Utc>,
    },
    /// The answer a reclaim batch sent under `request_id` was given, item by item, in the
    /// same append as its reclaims: a retry under that id answers exactly this, never a
    /// decision against a later state. Moves no money.
    CouponReclaimAnswered {
        partner_id: String,
        request_id: String,
        results: Vec<ReclaimResult>,
        answered_at: DateTime<Utc>,
    },
}

/// One item's answer in a reclaim batch (API.md `results`): the amount reclaimed, or the
/// error code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReclaimResult {
    pub coupon_id: String,
    pub reclaimed: Option<Money>,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
}

impl ReclaimResult {
    fn of(coupon_id: String, outcome: Result<Money, DomainError>) -> ReclaimResult {
        match outcome {
            Ok(amount) => ReclaimResult { coupon_id, reclaimed: Some(amount), error_code: None, error_msg: None },
            Err(e) => ReclaimResult {
                coupon_id,
                reclaimed: None,
                error_code: Some(e.code().to_string()),
                error_msg: Some(e.to_string()),
            },
        }
    }
}

impl EventFamily for CouponEvent {}

/// One coupon of a reclaim batch, with the coupon's customer's association at `now`
/// (resolved by the app from the coupon's `customer_id`; `None` when the customer has no
/// association, or the coupon is unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimItem {
    pub coupon_id: String,
    pub association: Option<Association>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CouponCommand {
    /// The same `grant_id` with the same amount again is a no-op; with another amount it
    /// is refused (`ALREADY_EXISTS`).
    GrantQuota { partner_id: String, grant_id: String, amount: Money },
    /// `association`: the customer's association at `now`, resolved by the app.
    IssueCoupon {
        partner_id: String,
        coupon_id: String,
        customer_id: String,
        amount: Money,
        expires_at: DateTime<Utc>,
        association: Option<Association>,
    },
    /// From billing. The same `usage_id` for the same coupon and amount again is a no-op.
    UseCoupon { coupon_id: String, usage_id: String, amount: Money, used_at: DateTime<Utc> },
    /// One decision for the whole batch: events for the items that succeed and, when the
    /// batch came with a request id, the answer it is given ([`CouponEvent::CouponReclaimAnswered`]);
    /// the app answers item by item with [`reclaim_results`].
    ReclaimCoupons { items: Vec<ReclaimItem>, request_id: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponStatus {
    Active,
    UsedUp,
    Expired,
    Reclaimed,
}

/// API.md "Coupon".
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

    /// API.md "Coupon" at time `at` (the status depends on it: expiry is computed).
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

/// API.md "Coupon" at time `at`; `None` for an unknown coupon.
pub fn coupon_view(state: &CouponsState, coupon_id: &str, at: DateTime<Utc>) -> Option<CouponView> {
    Some(state.coupons.get(coupon_id)?.view(at))
}

impl CouponEvent {
    /// The coupon the event is about (`None` for a quota grant).
    pub fn coupon_id(&self) -> Option<&str> {
        match self {
            CouponEvent::CouponQuotaGranted { .. } => None,
            CouponEvent::CouponIssued { coupon_id, .. }
            | CouponEvent::CouponUsed { coupon_id, .. }
            | CouponEvent::CouponReclaimed { coupon_id, .. } => Some(coupon_id),
            CouponEvent::CouponReclaimAnswered { .. } => None,
        }
    }

    pub fn partner_id(&self) -> &str {
        match self {
            CouponEvent::CouponQuotaGranted { partner_id, .. }
            | CouponEvent::CouponIssued { partner_id, .. }
            | CouponEvent::CouponUsed { partner_id, .. }
            | CouponEvent::CouponReclaimed { partner_id, .. }
            | CouponEvent::CouponReclaimAnswered { partner_id, .. } => partner_id,
        }
    }
}

/// [`reclaim_outcomes`] as the API answers them.
pub fn reclaim_results(state: &CouponsState, items: &[ReclaimItem], now: DateTime<Utc>) -> Vec<ReclaimResult> {
    reclaim_outcomes(state, items, now).into_iter().map(|(id, outcome)| ReclaimResult::of(id, outcome)).collect()
}

/// §4 reclaim, item by item: the unused balance each coupon would return, or why not.
/// "A coupon may be reclaimed only when its customer's association type is `resale` at
/// the time of the reclaim and it still has an unused, unexpired balance"; "one failed
/// item never blocks the others". The same coupon twice in one batch: the second finds
/// nothing unused left and fails `COUPON_USED_UP` (ours, as for a coupon reclaimed by an
/// earlier call), so clients see only the codes DOMAIN.md lists.
pub fn reclaim_outcomes(
    state: &CouponsState,
    items: &[ReclaimItem],
    now: DateTime<Utc>,
) -> Vec<(String, Result<Money, DomainError>)> {
    let mut reclaimed_here: BTreeSet<&str> = BTreeSet::new();
    items
        .iter()
        .map(|item| {
            let outcome = reclaimable(state, item, now, reclaimed_here.contains(item.coupon_id.as_str()));
            if outcome.is_ok() {
                reclaimed_here.insert(item.coupon_id.as_str());
            }
            (item.coupon_id.clone(), outcome)
        })
        .collect()
}

fn reclaimable(
    state: &CouponsState,
    item: &ReclaimItem,
    now: DateTime<Utc>,
    already_in_batch: bool,
) -> Result<Money, DomainError> {
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
    if already_in_batch || coupon.reclaimed_at.is_some() || coupon.remaining <= Decimal::ZERO {
        return Err(DomainError::CouponUsedUp { coupon_id });
    }
    if coupon.is_expired_at(now) {
        return Err(DomainError::CouponExpired { coupon_id });
    }
    Ok(Money::new(coupon.remaining, coupon.amount.currency))
}

fn quota_account(partner_id: &str) -> String {
    format!("partner:{partner_id}:coupon_quota")
}

fn coupons_account(customer_id: &str) -> String {
    format!("customer:{customer_id}:coupons")
}

/// Double entry of a coupon event (chart of accounts of the working agreement).
pub fn postings(event: &CouponEvent) -> Vec<Posting> {
    match event {
        CouponEvent::CouponQuotaGranted { partner_id, amount, .. } => {
            postings::transfer(VENDOR_COUPON_SOURCE, quota_account(partner_id), amount.amount, amount.currency)
        }
        CouponEvent::CouponIssued { partner_id, customer_id, amount, .. } => {
            postings::transfer(quota_account(partner_id), coupons_account(customer_id), amount.amount, amount.currency)
        }
        CouponEvent::CouponUsed { customer_id, amount, .. } => {
            postings::transfer(coupons_account(customer_id), VENDOR_COUPON_REDEEMED, amount.amount, amount.currency)
        }
        CouponEvent::CouponReclaimed { partner_id, customer_id, amount, .. } => {
            postings::transfer(coupons_account(customer_id), quota_account(partner_id), amount.amount, amount.currency)
        }
        CouponEvent::CouponReclaimAnswered { .. } => vec![],
    }
}

/// At least one example of every event variant (JSON Schema generation and checks).
pub fn examples() -> Vec<CouponEvent> {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("valid time").with_timezone(&Utc);
    let cny = |s: &str| Money::new(s.parse().expect("valid amount"), Currency::CNY);
    vec![
        CouponEvent::CouponQuotaGranted {
            partner_id: "P1".into(),
            grant_id: "G-1".into(),
            amount: cny("5000.00"),
            granted_at: at("2026-07-01T02:00:00Z"),
        },
        CouponEvent::CouponIssued {
            partner_id: "P1".into(),
            coupon_id: "CP-1".into(),
            customer_id: "C1".into(),
            amount: cny("200.00"),
            expires_at: at("2026-12-31T16:00:00Z"),
            issued_at: at("2026-07-02T02:00:00Z"),
        },
        CouponEvent::CouponUsed {
            partner_id: "P1".into(),
            coupon_id: "CP-1".into(),
            customer_id: "C1".into(),
            usage_id: "U-1".into(),
            amount: cny("80.00"),
            used_at: at("2026-07-10T02:00:00Z"),
        },
        CouponEvent::CouponReclaimed {
            partner_id: "P1".into(),
            coupon_id: "CP-1".into(),
            customer_id: "C1".into(),
            amount: cny("120.00"),
            reclaimed_at: at("2026-08-01T02:00:00Z"),
        },
        CouponEvent::CouponReclaimAnswered {
            partner_id: "P1".into(),
            request_id: "reclaim-0001".into(),
            results: vec![
                ReclaimResult {
                    coupon_id: "CP-1".into(),
                    reclaimed: Some(cny("120.00")),
                    error_code: None,
                    error_msg: None,
                },
                ReclaimResult {
                    coupon_id: "CP-9".into(),
                    reclaimed: None,
                    error_code: Some("COUPON_NOT_FOUND".into()),
                    error_msg: Some("coupon CP-9 not found".into()),
                },
            ],
            answered_at: at("2026-08-01T02:00:00Z"),
        },
    ]
}

pub struct Coupons;

impl Decider for Coupons {
    type State = CouponsState;
    type Command = CouponCommand;
    type Event = CouponEvent;

    fn decide(
        state: &CouponsState,
        command: CouponCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<CouponEvent>, DomainError> {
        match command {
            CouponCommand::GrantQuota { partner_id, grant_id, amount } => {
                grant_quota(state, partner_id, grant_id, amount, now)
            }
            CouponCommand::IssueCoupon { partner_id, coupon_id, customer_id, amount, expires_at, association } => {
                issue(state, Issue { partner_id, coupon_id, customer_id, amount, expires_at, association }, now)
            }
            CouponCommand::UseCoupon { coupon_id, usage_id, amount, used_at } => {
                use_coupon(state, coupon_id, usage_id, amount, used_at)
            }
            CouponCommand::ReclaimCoupons { items, request_id } => reclaim(state, &items, request_id, now),
        }
    }

    fn evolve(mut state: CouponsState, event: &CouponEvent) -> CouponsState {
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
                if let Some(c) = state.coupons.get_mut(coupon_id) {
                    c.apply(event);
                }
                *state.used.entry(amount.currency).or_default() += amount.amount;
            }
            CouponEvent::CouponReclaimed { coupon_id, amount, .. } => {
                if let Some(c) = state.coupons.get_mut(coupon_id) {
                    c.apply(event);
                }
                *state.quota.entry(amount.currency).or_default() += amount.amount;
            }
            CouponEvent::CouponReclaimAnswered { .. } => {}
        }
        state
    }
}

fn grant_quota(
    state: &CouponsState,
    partner_id: String,
    grant_id: String,
    amount: Money,
    now: DateTime<Utc>,
) -> Result<Vec<CouponEvent>, DomainError> {
    validate_id("partner_id", &partner_id)?;
    validate_id("grant_id", &grant_id)?;
    validate_amount(&amount)?;
    same_partner(state, &partner_id)?;
    match state.grants.get(&grant_id) {
        Some(earlier) if *earlier == amount => Ok(vec![]),
        Some(_) => Err(DomainError::AlreadyExists { what: "coupon quota grant", id: grant_id }),
        None => Ok(vec![CouponEvent::CouponQuotaGranted { partner_id, grant_id, amount, granted_at: now }]),
    }
}

struct Issue {
    partner_id: String,
    coupon_id: String,
    customer_id: String,
    amount: Money,
    expires_at: DateTime<Utc>,
    association: Option<Association>,
}

/// §4: "A partner issues cash coupons (amount, currency, expiry) to its customers, only to
/// customers whose association type is `resale` at issue time, and only within its
/// remaining quota."
fn issue(state: &CouponsState, cmd: Issue, now: DateTime<Utc>) -> Result<Vec<CouponEvent>, DomainError> {
    validate_id("partner_id", &cmd.partner_id)?;
    validate_id("coupon_id", &cmd.coupon_id)?;
    validate_id("customer_id", &cmd.customer_id)?;
    validate_amount(&cmd.amount)?;
    same_partner(state, &cmd.partner_id)?;
    if state.coupons.contains_key(&cmd.coupon_id) {
        return Err(DomainError::AlreadyExists { what: "coupon", id: cmd.coupon_id });
    }
    if cmd.expires_at <= now {
        return Err(DomainError::Invalid(CoreError::InvalidField {
            field: "expires_at",
            reason: "must be in the future".into(),
        }));
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
fn use_coupon(
    state: &CouponsState,
    coupon_id: String,
    usage_id: String,
    amount: Money,
    used_at: DateTime<Utc>,
) -> Result<Vec<CouponEvent>, DomainError> {
    validate_id("coupon_id", &coupon_id)?;
    validate_id("usage_id", &usage_id)?;
    validate_amount(&amount)?;
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
        return Err(DomainError::Invalid(CoreError::InvalidField {
            field: "used_at",
            reason: "is before the coupon was issued".into(),
        }));
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
        return Err(DomainError::Invalid(CoreError::InvalidField {
            field: "coupon_ids",
            reason: format!("must name 1 to {MAX_RECLAIM_BATCH} coupons"),
        }));
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

fn same_partner(state: &CouponsState, partner_id: &str) -> Result<(), DomainError> {
    match &state.partner_id {
        Some(owner) if owner != partner_id => {
            Err(DomainError::InvalidState(format!("this stream holds the coupons of partner {owner}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
