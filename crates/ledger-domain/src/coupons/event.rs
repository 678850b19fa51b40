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
}

impl EventFamily for CouponEvent {}

impl CouponEvent {
    /// The coupon the event is about (`None` for a quota grant).
    pub fn coupon_id(&self) -> Option<&str> {
        match self {
            CouponEvent::CouponQuotaGranted { .. } => None,
            CouponEvent::CouponIssued { coupon_id, .. }
            | CouponEvent::CouponUsed { coupon_id, .. }
            | CouponEvent::CouponReclaimed { coupon_id, .. } => Some(coupon_id),
        }
    }

    pub fn partner_id(&self) -> &str {
        match self {
            CouponEvent::CouponQuotaGranted { partner_id, .. }
            | CouponEvent::CouponIssued { partner_id, .. }
            | CouponEvent::CouponUsed { partner_id, .. }
            | CouponEvent::CouponReclaimed { partner_id, .. } => partner_id,
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
    ]
}
