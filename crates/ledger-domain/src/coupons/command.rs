//! What may be asked of a partner's coupons: one struct per command.

use chrono::{DateTime, Utc};
use ledger_core::Money;

use crate::customer::Association;

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
    GrantQuota(GrantQuota),
    IssueCoupon(IssueCoupon),
    UseCoupon(UseCoupon),
    ReclaimCoupons(ReclaimCoupons),
    AnswerCouponIssue(AnswerCouponIssue),
}

/// The same `grant_id` with the same amount again is a no-op; with another amount it
/// is refused (`ALREADY_EXISTS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantQuota {
    pub partner_id: String,
    pub grant_id: String,
    pub amount: Money,
}

/// `association`: the customer's association at `now`, resolved by the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueCoupon {
    pub partner_id: String,
    pub coupon_id: String,
    pub customer_id: String,
    pub amount: Money,
    pub expires_at: DateTime<Utc>,
    pub association: Option<Association>,
}

/// From billing. The same `usage_id` for the same coupon and amount again is a no-op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseCoupon {
    pub coupon_id: String,
    pub usage_id: String,
    pub amount: Money,
    pub used_at: DateTime<Utc>,
}

/// One decision for the whole batch: events for the items that succeed and, when the
/// batch came with a request id, the answer it is given (`CouponReclaimAnswered`); the app
/// answers item by item with [`super::reclaim_results`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimCoupons {
    pub items: Vec<ReclaimItem>,
    pub request_id: Option<String>,
}

/// Keeps the answer an issue batch sent under `request_id` (its coupons are stored before,
/// each its own append): a retry under the id answers exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerCouponIssue {
    pub request_id: String,
    pub results: Vec<super::IssueResult>,
}
