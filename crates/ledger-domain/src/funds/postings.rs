//! The fund tree in double entry.

use super::state::{counterparty_holder, operator_holder, Holder};
use super::FundsEvent;
use crate::postings::{self, Posting};

pub(super) fn account(distributor_id: &str, holder: &Holder) -> String {
    match holder {
        Holder::Pool => format!("partner:{distributor_id}:fund_pool"),
        Holder::Reseller(r) => format!("partner:{r}:fund_received"),
        Holder::Customer { customer_id, .. } => format!("customer:{customer_id}:allocated"),
    }
}

pub const VENDOR_FUND_SOURCE: &str = "vendor:fund_source";
pub const VENDOR_CONSUMPTION_SETTLED: &str = "vendor:consumption_settled";

/// Double entry of a funds event (the chart of accounts of `crate::postings`).
pub fn postings(event: &FundsEvent) -> Vec<Posting> {
    match event {
        FundsEvent::FundsCredited { partner_id, amount, .. } => {
            postings::transfer(VENDOR_FUND_SOURCE, account(partner_id, &Holder::Pool), amount.amount, amount.currency)
        }
        FundsEvent::FundsAllocated { partner_id, operator_partner_id, counterparty, amount, .. } => {
            let from = account(partner_id, &operator_holder(partner_id, operator_partner_id));
            let to = account(partner_id, &counterparty_holder(counterparty, operator_partner_id));
            postings::transfer(from, to, amount.amount, amount.currency)
        }
        FundsEvent::FundsReclaimed { partner_id, operator_partner_id, counterparty, amount, .. }
        | FundsEvent::FundsUnbindReclaimed { partner_id, operator_partner_id, counterparty, amount, .. } => {
            let from = account(partner_id, &counterparty_holder(counterparty, operator_partner_id));
            let to = account(partner_id, &operator_holder(partner_id, operator_partner_id));
            postings::transfer(from, to, amount.amount, amount.currency)
        }
        FundsEvent::AllocatedBalanceDrawnDown { customer_id, drawn, .. } => postings::transfer(
            format!("customer:{customer_id}:allocated"),
            VENDOR_CONSUMPTION_SETTLED,
            drawn.amount,
            drawn.currency,
        ),
    }
}
