//! The quota's and the coupons' events.

use chrono::{DateTime, Utc};
use ledger_core::{Currency, Money};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::EventFamily;

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
    /// The answer an issue batch (CreatePartnerCoupons) sent under `request_id` was given,
    /// customer by customer, after its coupons: a retry under that id answers exactly this,
    /// never a decision against a later state. Moves no money.
    CouponIssueAnswered {
        partner_id: String,
        request_id: String,
        results: Vec<IssueResult>,
        answered_at: DateTime<Utc>,
    },
}

impl EventFamily for CouponEvent {}

/// One customer's answer in an issue batch: the coupon issued, or the error code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IssueResult {
    pub customer_id: String,
    pub coupon_id: Option<String>,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
}

/// One item's answer in a reclaim batch (docs/API.md `results`): the amount reclaimed, or
/// the error code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReclaimResult {
    pub coupon_id: String,
    pub reclaimed: Option<Money>,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
}

impl ReclaimResult {
    pub(super) fn of(coupon_id: String, outcome: Result<Money, crate::DomainError>) -> ReclaimResult {
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

impl CouponEvent {
    /// The coupon the event is about (`None` for a quota grant).
    pub fn coupon_id(&self) -> Option<&str> {
        match self {
            CouponEvent::CouponQuotaGranted { .. } => None,
            CouponEvent::CouponIssued { coupon_id, .. }
            | CouponEvent::CouponUsed { coupon_id, .. }
            | CouponEvent::CouponReclaimed { coupon_id, .. } => Some(coupon_id),
            CouponEvent::CouponReclaimAnswered { .. } | CouponEvent::CouponIssueAnswered { .. } => None,
        }
    }

    pub fn partner_id(&self) -> &str {
        match self {
            CouponEvent::CouponQuotaGranted { partner_id, .. }
            | CouponEvent::CouponIssued { partner_id, .. }
            | CouponEvent::CouponUsed { partner_id, .. }
            | CouponEvent::CouponReclaimed { partner_id, .. }
            | CouponEvent::CouponReclaimAnswered { partner_id, .. }
            | CouponEvent::CouponIssueAnswered { partner_id, .. } => partner_id,
        }
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
        CouponEvent::CouponIssueAnswered {
            partner_id: "P1".into(),
            request_id: "issue-0001".into(),
            results: vec![
                IssueResult {
                    customer_id: "C1".into(),
                    coupon_id: Some("CP-1".into()),
                    error_code: None,
                    error_msg: None,
                },
                IssueResult {
                    customer_id: "C9".into(),
                    coupon_id: None,
                    error_code: Some("NOT_RESALE_CUSTOMER".into()),
                    error_msg: Some("customer C9 is not a resale customer".into()),
                },
            ],
            answered_at: at("2026-07-02T02:00:00Z"),
        },
    ]
}
