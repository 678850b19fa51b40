//! The incentive ledger in double entry: a finalized month or opportunity is an expense
//! owed to the partner; a paid quarterly payment moves it out, to the bank or to the
//! rebate clearing account.

use ledger_core::Money;

use super::{IncentiveEvent, PaymentMethod};
use crate::postings::{transfer, Posting};

/// How an event moves money (the chart of accounts of `crate::postings`).
pub fn postings(event: &IncentiveEvent) -> Vec<Posting> {
    match event {
        IncentiveEvent::IncentiveMonthFinalized { partner_id, final_amount, .. }
        | IncentiveEvent::OpportunityFinalized { partner_id, final_amount, .. } => transfer(
            "vendor:incentive_expense",
            incentive_payable(partner_id),
            final_amount.amount,
            final_amount.currency,
        ),
        IncentiveEvent::QuarterlyPaymentPaid { partner_id, method, amount, .. } => {
            let to = match method {
                PaymentMethod::BankTransfer => "vendor:bank_payout",
                PaymentMethod::CloudAccountCredit => "vendor:rebate_clearing",
            };
            transfer(incentive_payable(partner_id), to, amount.amount, amount.currency)
        }
        _ => vec![],
    }
}

/// The account holding what the vendor owes the partner in incentives.
pub fn incentive_payable(partner_id: &str) -> String {
    format!("partner:{partner_id}:incentive_payable")
}

/// When a quarterly payment is paid to the cloud account, the rebate aggregate must credit
/// the partner's rebate balance with this amount (keyed by the payment, for idempotency).
pub fn rebate_credit_for(event: &IncentiveEvent) -> Option<(String, Money)> {
    match event {
        IncentiveEvent::QuarterlyPaymentPaid {
            payment_id, method: PaymentMethod::CloudAccountCredit, amount, ..
        } => Some((payment_id.clone(), *amount)),
        _ => None,
    }
}
