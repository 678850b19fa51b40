//! The journal: every posting of every money event, one row each. It serves the trial
//! balance (debits = credits per currency), balances as of any past time, and monthly
//! statements. Amounts are stored as exact decimal text and summed in Rust with
//! `Decimal`, never as SQL floats.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ledger_core::{Currency, Money, Month, RecordedEvent};
use ledger_domain::postings::Side;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::runner::Projection;
use crate::sql::{params, Db};
use crate::ProjectionError;

pub struct Journal;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS journal (
    position INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL,   -- business time, microseconds since the epoch (UTC)
    owner TEXT NOT NULL,            -- 'partner:P1', 'customer:C9' or 'vendor'
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    side INTEGER NOT NULL,          -- 1 debit, 0 credit
    amount TEXT NOT NULL,           -- exact, positive
    kind TEXT NOT NULL,             -- the event type that moved the money
    PRIMARY KEY (position, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS journal_owner ON journal (owner, occurred_at);
";

impl Projection for Journal {
    fn name(&self) -> &'static str {
        "journal"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["journal"]
    }

    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let postings = ledger_domain::journal::postings_of(&e.stream, &e.event_type, e.schema_version, &e.data)
            .map_err(|err| ProjectionError::Decode { position: e.position, reason: err.to_string() })?;
        if postings.is_empty() {
            return Ok(());
        }
        if !ledger_domain::postings::is_balanced(&postings) {
            return Err(ProjectionError::Decode { position: e.position, reason: "its postings do not balance".into() });
        }
        for (seq, p) in postings.iter().enumerate() {
            tx.write(
                "INSERT INTO journal (position, seq, occurred_at, owner, account, currency, side, amount, kind) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    e.position as i64,
                    seq as i64,
                    e.occurred_at.timestamp_micros(),
                    owner_of(&p.account),
                    p.account,
                    p.currency.as_str(),
                    matches!(p.side, Side::Debit) as i64,
                    p.amount.to_string(),
                    e.event_type,
                ],
            )?;
        }
        Ok(())
    }
}

/// `partner:P1:rebate` → `partner:P1`; `vendor:bank_payout` → `vendor`.
pub fn owner_of(account: &str) -> String {
    let mut parts = account.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(id), Some(_)) => format!("{kind}:{id}"),
        (Some(kind), _, _) => kind.to_string(),
        _ => account.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurrencyTotals {
    pub currency: Currency,
    pub debits: Decimal,
    pub credits: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialBalance {
    pub balanced: bool,
    pub currencies: Vec<CurrencyTotals>,
}

/// Debits and credits per currency of every posting up to `as_of` (business time).
pub fn trial_balance(conn: &dyn Db, as_of: Option<DateTime<Utc>>) -> Result<TrialBalance, ProjectionError> {
    let until = as_of.map_or(i64::MAX, |t| t.timestamp_micros());
    let mut totals: BTreeMap<Currency, (Decimal, Decimal)> = BTreeMap::new();
    conn.each_row("SELECT currency, side, amount FROM journal WHERE occurred_at <= ?1", params![until], &mut |r| {
        let currency = parse_currency(&r.get::<String>(0)?)?;
        let amount = parse_decimal(&r.get::<String>(2)?)?;
        let t = totals.entry(currency).or_default();
        if r.get::<i64>(1)? == 1 {
            t.0 += amount;
        } else {
            t.1 += amount;
        }
        Ok(())
    })?;
    let currencies: Vec<CurrencyTotals> =
        totals.into_iter().map(|(currency, (debits, credits))| CurrencyTotals { currency, debits, credits }).collect();
    Ok(TrialBalance { balanced: currencies.iter().all(|c| c.debits == c.credits), currencies })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Balance {
    pub account: String,
    pub balance: Money,
}

/// Every balance of `owner` (e.g. `partner:P1`) as it stood at `as_of`: debits − credits.
pub fn balances(conn: &dyn Db, owner: &str, as_of: DateTime<Utc>) -> Result<Vec<Balance>, ProjectionError> {
    let mut sums: BTreeMap<(String, Currency), Decimal> = BTreeMap::new();
    conn.each_row(
        "SELECT account, currency, side, amount FROM journal WHERE owner = ?1 AND occurred_at <= ?2",
        params![owner, as_of.timestamp_micros()],
        &mut |r| {
            let key = (r.get::<String>(0)?, parse_currency(&r.get::<String>(1)?)?);
            let amount = parse_decimal(&r.get::<String>(3)?)?;
            let signed = if r.get::<i64>(2)? == 1 { amount } else { -amount };
            *sums.entry(key).or_default() += signed;
            Ok(())
        },
    )?;
    Ok(sums
        .into_iter()
        .map(|((account, currency), amount)| Balance { account, balance: Money::new(amount, currency) })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Movement {
    pub kind: String,
    /// `in` (debit: money arrives in the account) or `out`.
    pub direction: &'static str,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountStatement {
    pub account: String,
    pub opening: Money,
    pub movements: Vec<Movement>,
    pub closing: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    pub partner_id: String,
    pub month: Month,
    pub currency: Currency,
    pub accounts: Vec<AccountStatement>,
    /// The deductions carried into the payments paid this month (docs/DOMAIN.md §5): their
    /// negative months were settled there, so the payment paid that much less.
    pub carried_deductions: Vec<crate::quarterly_payments::CarriedDeduction>,
}

/// A partner's statement for a month in one currency: for each of its accounts the
/// opening balance, the movements of the month grouped by kind and direction, and the
/// closing balance (closing = opening + ins − outs, checked).
pub fn statement(
    conn: &dyn Db,
    partner_id: &str,
    month: Month,
    currency: Currency,
) -> Result<Statement, ProjectionError> {
    let owner = format!("partner:{partner_id}");
    let (start, end) = (month.start().timestamp_micros(), month.end().timestamp_micros());
    struct Acc {
        opening: Decimal,
        moves: BTreeMap<(String, &'static str), Decimal>,
    }
    let mut accounts: BTreeMap<String, Acc> = BTreeMap::new();
    conn.each_row(
        "SELECT account, occurred_at, side, amount, kind FROM journal \
         WHERE owner = ?1 AND currency = ?2 AND occurred_at < ?3 ORDER BY position, seq",
        params![owner, currency.as_str(), end],
        &mut |r| {
            let account: String = r.get(0)?;
            let at: i64 = r.get(1)?;
            let debit = r.get::<i64>(2)? == 1;
            let amount = parse_decimal(&r.get::<String>(3)?)?;
            let acc = accounts.entry(account).or_insert_with(|| Acc { opening: Decimal::ZERO, moves: BTreeMap::new() });
            if at < start {
                acc.opening += if debit { amount } else { -amount };
            } else {
                *acc.moves.entry((r.get(4)?, if debit { "in" } else { "out" })).or_default() += amount;
            }
            Ok(())
        },
    )?;
    let accounts = accounts
        .into_iter()
        .map(|(account, acc)| {
            let mut closing = acc.opening;
            let movements = acc
                .moves
                .into_iter()
                .map(|((kind, direction), amount)| {
                    closing += if direction == "in" { amount } else { -amount };
                    Movement { kind, direction, amount: Money::new(amount, currency) }
                })
                .collect();
            AccountStatement {
                account,
                opening: Money::new(acc.opening, currency),
                movements,
                closing: Money::new(closing, currency),
            }
        })
        .collect();
    let carried_deductions =
        crate::quarterly_payments::carried_deductions_paid(conn, partner_id, currency, start, end)?;
    Ok(Statement { partner_id: partner_id.to_string(), month, currency, accounts, carried_deductions })
}

fn parse_decimal(s: &str) -> Result<Decimal, ProjectionError> {
    s.parse().map_err(|_| corrupt(format!("journal amount {s:?} is not a decimal")))
}

fn parse_currency(s: &str) -> Result<Currency, ProjectionError> {
    s.parse().map_err(|_| corrupt(format!("journal currency {s:?} is unknown")))
}

fn corrupt(reason: String) -> ProjectionError {
    ProjectionError::Apply { projection: "journal", position: 0, reason }
}
