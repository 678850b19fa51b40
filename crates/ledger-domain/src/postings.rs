//! Double entry underneath: every money event maps to postings whose debits equal its
//! credits in each currency. The trial balance (a projection) sums them; an aggregate's
//! `postings(&event)` says how its events move money.
//!
//! Accounts are named `<owner>:<id>:<account>` for a partner's or customer's accounts
//! (`partner:P1:incentive_payable`, `customer:C9:allocated`) and `vendor:<account>` for the
//! vendor's own (`vendor:incentive_expense`, `vendor:bank`). Where one fact touches two
//! aggregates (a payment credited to the rebate account), each side posts against a
//! clearing account (`vendor:rebate_clearing`) so that every event balances on its own.

use std::collections::BTreeMap;

use ledger_core::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: String,
    pub side: Side,
    /// Always positive; the side gives the direction.
    pub amount: Decimal,
    pub currency: Currency,
}

impl Posting {
    pub fn debit(account: impl Into<String>, amount: Decimal, currency: Currency) -> Posting {
        Posting { account: account.into(), side: Side::Debit, amount, currency }
    }

    pub fn credit(account: impl Into<String>, amount: Decimal, currency: Currency) -> Posting {
        Posting { account: account.into(), side: Side::Credit, amount, currency }
    }
}

/// A transfer of `amount` from `from` to `to`: debit the receiving account, credit the
/// giving one. A negative amount is written as the reverse transfer.
pub fn transfer(from: impl Into<String>, to: impl Into<String>, amount: Decimal, currency: Currency) -> Vec<Posting> {
    let (from, to) = (from.into(), to.into());
    if amount.is_zero() {
        return vec![];
    }
    if amount.is_sign_negative() {
        return transfer(to, from, -amount, currency);
    }
    vec![Posting::debit(to, amount, currency), Posting::credit(from, amount, currency)]
}

/// Debits and credits per currency.
pub fn totals(postings: &[Posting]) -> BTreeMap<Currency, (Decimal, Decimal)> {
    let mut t: BTreeMap<Currency, (Decimal, Decimal)> = BTreeMap::new();
    for p in postings {
        let e = t.entry(p.currency).or_default();
        match p.side {
            Side::Debit => e.0 += p.amount,
            Side::Credit => e.1 += p.amount,
        }
    }
    t
}

pub fn is_balanced(postings: &[Posting]) -> bool {
    postings.iter().all(|p| p.amount > Decimal::ZERO) && totals(postings).values().all(|(d, c)| d == c)
}
