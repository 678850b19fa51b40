//! # Coupons (stream `coupons-{partner_id}`): quota, cash coupons, use and reclaim, docs/DOMAIN.md §4
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

//!
//! ## The rules, where they live
//! - [`decide`]: quota grants (idempotent by id), issue (resale customers of this partner
//!   only, within the quota, expiring in the future), use (partial, idempotent by usage
//!   id, not expired, not reclaimed), reclaim in batches with [`reclaim_outcomes`].
//! - [`state`]: quota per currency, the coupons, and a coupon's status at a time.
//! - [`postings`]: coupon source → quota → customer's coupons → redeemed.

mod command;
mod decide;
mod event;
pub mod postings;
mod state;
#[cfg(test)]
mod tests;

pub use command::{AnswerCouponIssue, CouponCommand, GrantQuota, IssueCoupon, ReclaimCoupons, ReclaimItem, UseCoupon};
pub use decide::{reclaim_outcomes, reclaim_results};
pub use event::{examples, CouponEvent, IssueResult, ReclaimResult};
pub use postings::{postings, VENDOR_COUPON_REDEEMED, VENDOR_COUPON_SOURCE};
pub use state::{coupon_view, quota_balances, Coupon, CouponStatus, CouponView, CouponsState, QuotaGrant, Usage};

use chrono::{DateTime, Utc};

use crate::{Decider, DomainError};

/// Most coupons one reclaim call may name.
pub const MAX_RECLAIM_BATCH: usize = 100;

pub fn stream_id(partner_id: &str) -> String {
    format!("{}-{partner_id}", Coupons::FAMILY)
}

pub struct Coupons;

impl Decider for Coupons {
    const FAMILY: &'static str = "coupons";

    type State = CouponsState;
    type Command = CouponCommand;
    type Event = CouponEvent;

    fn decide(
        state: &CouponsState,
        command: CouponCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<CouponEvent>, DomainError> {
        decide::decide(state, command, now)
    }

    fn evolve(state: CouponsState, event: &CouponEvent) -> CouponsState {
        state::evolve(state, event)
    }
}
