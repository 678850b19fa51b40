//! The rebate account in double entry.

use super::RebateEvent;
use crate::postings::{self, Posting};

pub fn rebate_account(partner_id: &str) -> String {
    format!("partner:{partner_id}:rebate")
}

pub fn rebate_held_account(partner_id: &str) -> String {
    format!("partner:{partner_id}:rebate_held")
}

pub const REBATE_CLEARING: &str = "vendor:rebate_clearing";
pub const BANK_PAYOUT: &str = "vendor:bank_payout";

/// How each event moves money: credit `vendor:rebate_clearing` → `partner:{P}:rebate`; a
/// request holds `rebate` → `rebate_held`; rejection or failure moves it back; payment
/// `rebate_held` → `vendor:bank_payout`. Approval moves nothing.
pub fn postings(event: &RebateEvent) -> Vec<Posting> {
    let p = event.partner_id();
    match event {
        RebateEvent::RebateCredited { amount, .. } => {
            postings::transfer(REBATE_CLEARING, rebate_account(p), amount.amount, amount.currency)
        }
        RebateEvent::WithdrawalRequested { amount, .. } => {
            postings::transfer(rebate_account(p), rebate_held_account(p), amount.amount, amount.currency)
        }
        RebateEvent::WithdrawalApproved { .. } => vec![],
        RebateEvent::WithdrawalRejected { amount, .. } | RebateEvent::WithdrawalFailed { amount, .. } => {
            postings::transfer(rebate_held_account(p), rebate_account(p), amount.amount, amount.currency)
        }
        RebateEvent::WithdrawalPaid { amount, .. } => {
            postings::transfer(rebate_held_account(p), BANK_PAYOUT, amount.amount, amount.currency)
        }
    }
}
