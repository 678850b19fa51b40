//! Withdrawals (docs/API.md's withdrawal): one row per withdrawal, the domain's [`Withdrawal`]
//! created by [`Withdrawal::requested`] and changed by [`Withdrawal::apply`], the code the
//! aggregate's evolve runs; `position` is the global position of its last event.
//!
//! What a partner may withdraw is not here: it guards the withdrawal rule, so it is read
//! from the rebate stream the rule is checked against (docs/DESIGN.md).

use ledger_core::{Money, RecordedEvent};
use ledger_domain::rebate::{Rebate, RebateEvent, Withdrawal};
use ledger_domain::{stream_family, Decider};

use crate::codec::{self, decimal, enum_of, from_json, json, parsed, to_text};
use crate::runner::Projection;
use crate::sql::{params, upsert, Db};
use crate::ProjectionError;

pub const EVENT_TYPES: &[&str] =
    &["WithdrawalRequested", "WithdrawalApproved", "WithdrawalRejected", "WithdrawalPaid", "WithdrawalFailed"];

pub struct Withdrawals;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS withdrawals (
    withdrawal_id TEXT NOT NULL PRIMARY KEY,
    partner_id TEXT NOT NULL,
    amount TEXT NOT NULL,           -- exact
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    expected_arrival_date TEXT,     -- 2026-08-12
    bank_account TEXT NOT NULL,     -- JSON
    position INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS withdrawals_partner ON withdrawals (partner_id);
";

const COLUMNS: &str =
    "withdrawal_id, partner_id, amount, currency, status, expected_arrival_date, bank_account, position";

impl Projection for Withdrawals {
    fn name(&self) -> &'static str {
        "withdrawals"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["withdrawals"]
    }

    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if stream_family(&e.stream) != Rebate::FAMILY || !EVENT_TYPES.contains(&e.event_type.as_str()) {
            return Ok(());
        }
        let event: RebateEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| codec::undecodable(e, err))?;
        let w = match Withdrawal::requested(&event) {
            Some(w) => w,
            None => {
                let Some(id) = event.withdrawal_id() else { return Ok(()) };
                let Some((mut w, _)) = load(tx, id)? else { return Ok(()) };
                w.apply(&event);
                w
            }
        };
        tx.write(
            &upsert("withdrawals", COLUMNS, "withdrawal_id"),
            params![
                w.withdrawal_id,
                w.partner_id,
                w.amount.amount.to_string(),
                w.amount.currency.as_str(),
                to_text(&w.status),
                w.expected_arrival_date.map(|d| d.to_string()),
                json(&w.bank_account),
                e.position as i64,
            ],
        )?;
        Ok(())
    }
}

/// A withdrawal's row with the position of its last change.
pub fn load(conn: &dyn Db, withdrawal_id: &str) -> Result<Option<(Withdrawal, u64)>, ProjectionError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM withdrawals WHERE withdrawal_id = ?1"),
        params![withdrawal_id],
        |r| {
            let cells: Vec<String> = (0..5).map(|i| r.get(i)).collect::<Result<_, _>>()?;
            let date: Option<String> = r.get(5)?;
            let bank: String = r.get(6)?;
            let position: i64 = r.get(7)?;
            {
                Ok((
                    Withdrawal {
                        withdrawal_id: cells[0].clone(),
                        partner_id: cells[1].clone(),
                        amount: Money::new(decimal("amount", &cells[2])?, parsed("currency", &cells[3])?),
                        status: enum_of("withdrawal status", &cells[4])?,
                        expected_arrival_date: date
                            .as_deref()
                            .map(|d| parsed("expected_arrival_date", d))
                            .transpose()?,
                        bank_account: from_json("bank account", &bank)?,
                    },
                    position as u64,
                ))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use ledger_domain::partner::BankAccount;
    use ledger_domain::rebate::{Rebate, WithdrawalStatus};
    use rust_decimal::Decimal;

    use super::*;
    use crate::testkit::{at, state, Kit};

    const STREAM: &str = "rebate-P1";

    fn cny(s: &str) -> Money {
        Money::new(Decimal::from_str_exact(s).unwrap(), ledger_core::Currency::CNY)
    }

    fn p() -> String {
        "P1".into()
    }

    #[test]
    fn a_failed_withdrawal_keeps_its_arrival_date_and_reads_like_the_aggregate() {
        let mut kit = Kit::new();
        let date = NaiveDate::from_ymd_opt(2026, 10, 20).unwrap();
        let mut events = vec![
            RebateEvent::RebateCredited {
                partner_id: p(),
                source_id: "QP-1".into(),
                amount: cny("500.00"),
                credited_at: at("2026-10-01T00:00:00Z"),
            },
            RebateEvent::WithdrawalRequested {
                partner_id: p(),
                withdrawal_id: "W1".into(),
                amount: cny("200.00"),
                bank_account: BankAccount { holder_name: "Galaxy".into(), number: "6222".into(), bank: "ICBC".into() },
                requested_at: at("2026-10-02T00:00:00Z"),
            },
        ];
        let requested_at = kit.push(STREAM, &events);
        let (w, p1) = load(&kit.conn(), "W1").unwrap().unwrap();
        assert_eq!((w.status, w.expected_arrival_date, p1), (WithdrawalStatus::Requested, None, requested_at));

        events.push(RebateEvent::WithdrawalApproved {
            partner_id: p(),
            withdrawal_id: "W1".into(),
            amount: cny("200.00"),
            expected_arrival_date: date,
            approved_at: at("2026-10-03T00:00:00Z"),
        });
        events.push(RebateEvent::WithdrawalFailed {
            partner_id: p(),
            withdrawal_id: "W1".into(),
            amount: cny("200.00"),
            reason: Some("account closed".into()),
            failed_at: at("2026-10-12T00:00:00Z"),
        });
        let failed_at = kit.push(STREAM, &events[2..]);
        let (w, position) = load(&kit.conn(), "W1").unwrap().unwrap();
        assert_eq!((w.status, w.expected_arrival_date, position), (WithdrawalStatus::Failed, Some(date), failed_at));
        let s = state::<Rebate>(&events);
        assert_eq!(Some(&w), s.withdrawal("W1"));
        assert!(load(&kit.conn(), "W2").unwrap().is_none());
    }
}
