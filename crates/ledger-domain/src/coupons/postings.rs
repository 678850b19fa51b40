//! Coupons in double entry.

use super::CouponEvent;
use crate::postings::{self, Posting};

pub const VENDOR_COUPON_SOURCE: &str = "vendor:coupon_source";
pub const VENDOR_COUPON_REDEEMED: &str = "vendor:coupon_redeemed";

pub(super) fn quota_account(partner_id: &str) -> String {
    format!("partner:{partner_id}:coupon_quota")
}

pub(super) fn coupons_account(customer_id: &str) -> String {
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
        CouponEvent::CouponReclaimAnswered { .. } | CouponEvent::CouponIssueAnswered { .. } => vec![],
    }
}
