//! Quarterly payments (docs/API.md's quarterly payment): one row per payment, the domain's
//! [`QuarterlyPayment`] created by [`QuarterlyPayment::requested`] and changed by
//! [`QuarterlyPayment::apply`], the code the aggregate's evolve runs; `position` is the
//! global position of the payment's last event. Payment events are few: each is applied
//! to its row straight away.

use ledger_core::RecordedEvent;
use ledger_domain::incentives::{
    payment_of, IncentiveEvent, Incentives, PaymentMethod, PaymentStatus, PaymentView, QuarterlyPayment,
};
use ledger_domain::{stream_family, Decider};

use crate::codec::{self, enum_of, from_json, json, parsed, to_text};
use crate::runner::Projection;
use crate::sql::{params, upsert, Db};
use crate::ProjectionError;

pub const EVENT_TYPES: &[&str] = &[
    "QuarterlyPaymentRequested",
    "QuarterlyPaymentApproved",
    "QuarterlyPaymentRejected",
    "InvoiceListIssued",
    "InvoiceReceived",
    "QuarterlyPaymentPaid",
];

pub struct QuarterlyPayments;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS quarterly_payments (
    payment_id TEXT NOT NULL PRIMARY KEY,
    partner_id TEXT NOT NULL,
    quarter TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    included_months TEXT NOT NULL,          -- JSON
    excluded_months TEXT NOT NULL,          -- JSON
    included_opportunities TEXT NOT NULL,   -- JSON
    carried_months TEXT NOT NULL,           -- JSON
    carried_deduction TEXT NOT NULL,        -- money as JSON
    payable TEXT NOT NULL,                  -- money as JSON
    method TEXT,
    invoice_list TEXT,                      -- JSON, once issued
    position INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS quarterly_payments_partner ON quarterly_payments (partner_id, quarter);
";

const COLUMNS: &str = "payment_id, partner_id, quarter, currency, status, included_months, excluded_months, \
                       included_opportunities, carried_months, carried_deduction, payable, method, invoice_list, \
                       position";

impl Projection for QuarterlyPayments {
    fn name(&self) -> &'static str {
        "quarterly_payments"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["quarterly_payments"]
    }

    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if stream_family(&e.stream) != Incentives::FAMILY || !EVENT_TYPES.contains(&e.event_type.as_str()) {
            return Ok(());
        }
        let event: IncentiveEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| codec::undecodable(e, err))?;
        let payment = match QuarterlyPayment::requested(&event) {
            Some(p) => p,
            None => {
                let Some(id) = payment_of(&event) else { return Ok(()) };
                let Some((_, mut p, _)) = load(tx, id)? else { return Ok(()) };
                p.apply(&event);
                p
            }
        };
        store(tx, event.partner_id(), &payment, e.position)
    }
}

fn store(tx: &dyn Db, partner: &str, p: &QuarterlyPayment, position: u64) -> Result<(), ProjectionError> {
    tx.write(
        &upsert("quarterly_payments", COLUMNS, "payment_id"),
        params![
            p.payment_id,
            partner,
            p.quarter.to_string(),
            p.currency.as_str(),
            to_text(&p.status),
            json(&p.included_months),
            json(&p.excluded_months),
            json(&p.included_opportunities),
            json(&p.carried_months),
            json(&p.carried_deduction),
            json(&p.payable),
            p.method.as_ref().map(to_text),
            p.invoice_list.as_ref().map(json),
            position as i64,
        ],
    )?;
    Ok(())
}

/// A payment's row: its partner, the payment, and the position of its last change.
pub fn load(conn: &dyn Db, payment_id: &str) -> Result<Option<(String, QuarterlyPayment, u64)>, ProjectionError> {
    let row = conn.query_row(
        &format!("SELECT {COLUMNS} FROM quarterly_payments WHERE payment_id = ?1"),
        params![payment_id],
        |r| {
            let mut cells: Vec<Option<String>> = Vec::with_capacity(13);
            for i in 0..13 {
                cells.push(r.get(i)?);
            }
            Ok((cells, r.get::<i64>(13)?))
        },
    )?;
    let Some((c, position)) = row else { return Ok(None) };
    let text = |i: usize| c[i].as_deref().unwrap_or_default();
    let payment = QuarterlyPayment {
        payment_id: text(0).to_string(),
        quarter: parsed("quarter", text(2))?,
        currency: parsed("currency", text(3))?,
        status: enum_of("payment status", text(4))?,
        included_months: from_json("included months", text(5))?,
        excluded_months: from_json("excluded months", text(6))?,
        included_opportunities: from_json("included opportunities", text(7))?,
        carried_months: from_json("carried months", text(8))?,
        carried_deduction: from_json("carried deduction", text(9))?,
        payable: from_json("payable", text(10))?,
        method: c[11].as_deref().map(|m| enum_of("payment method", m)).transpose()?,
        invoice_list: c[12].as_deref().map(|l| from_json("invoice list", l)).transpose()?,
    };
    Ok(Some((text(1).to_string(), payment, position as u64)))
}

/// docs/API.md's quarterly payment with the position of its last change.
pub fn view(conn: &dyn Db, payment_id: &str) -> Result<Option<(PaymentView, u64)>, ProjectionError> {
    Ok(load(conn, payment_id)?.map(|(partner, p, position)| (p.view(&partner), position)))
}

/// One page of `partner`'s payments (its applications, 申请记录), newest quarter first,
/// with the position of each one's last change, and how many it has in all.
pub fn page_of(
    conn: &dyn Db,
    partner: &str,
    offset: usize,
    limit: usize,
) -> Result<(Vec<(PaymentView, u64)>, usize), ProjectionError> {
    let ids: Vec<String> = conn.query_map(
        "SELECT payment_id FROM quarterly_payments WHERE partner_id = ?1 ORDER BY quarter DESC, payment_id DESC",
        params![partner],
        |r| r.get(0),
    )?;
    let total = ids.len();
    let mut page = Vec::with_capacity(limit.min(total));
    for id in ids.into_iter().skip(offset).take(limit) {
        if let Some(v) = view(conn, &id)? {
            page.push(v);
        }
    }
    Ok((page, total))
}

/// A deduction carried into a payment (docs/DOMAIN.md §5), as the statement shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CarriedDeduction {
    pub payment_id: String,
    pub quarter: ledger_core::Quarter,
    /// The earlier months the payment settled, with their (≤ 0 in total) final amounts.
    pub months: Vec<ledger_domain::incentives::IncludedMonth>,
    /// `−Σ months`: what the payment paid less.
    pub amount: ledger_core::Money,
}

/// The carried deductions of `partner`'s payments in `currency` paid within `[from, to)`
/// (business time, microseconds): a paid payment's row was last changed by its
/// `QuarterlyPaymentPaid`, whose time the journal holds.
pub fn carried_deductions_paid(
    conn: &dyn Db,
    partner: &str,
    currency: ledger_core::Currency,
    from: i64,
    to: i64,
) -> Result<Vec<CarriedDeduction>, ProjectionError> {
    let rows = conn.query_map(
        "SELECT p.payment_id, p.quarter, p.carried_months, p.carried_deduction FROM quarterly_payments p \
         WHERE p.partner_id = ?1 AND p.currency = ?2 AND p.status = ?3 AND p.carried_months != '[]' \
         AND EXISTS (SELECT 1 FROM journal j WHERE j.position = p.position AND j.occurred_at >= ?4 \
                     AND j.occurred_at < ?5) \
         ORDER BY p.quarter, p.payment_id",
        params![partner, currency.as_str(), to_text(&PaymentStatus::Paid), from, to],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<String>(2)?, r.get::<String>(3)?)),
    )?;
    rows.into_iter()
        .map(|(payment_id, quarter, months, amount)| {
            Ok(CarriedDeduction {
                payment_id,
                quarter: parsed("quarter", &quarter)?,
                months: from_json("carried months", &months)?,
                amount: from_json("carried deduction", &amount)?,
            })
        })
        .collect()
}

/// `(partner, payment id)` of every payment paid by `cloud_account_credit`: what `ledger
/// serve` checks at start for a credit a crash left missing.
pub fn paid_by_credit(conn: &dyn Db) -> Result<Vec<(String, String)>, ProjectionError> {
    let paid = to_text(&PaymentStatus::Paid);
    let method = to_text(&PaymentMethod::CloudAccountCredit);
    conn.query_map(
        "SELECT partner_id, payment_id FROM quarterly_payments WHERE status = ?1 AND method = ?2 \
         ORDER BY partner_id, payment_id",
        params![paid, method],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Every payment id of `partner` (tests compare them with the streams).
pub fn ids_of(conn: &dyn Db, partner: &str) -> Result<Vec<String>, ProjectionError> {
    conn.query_map(
        "SELECT payment_id FROM quarterly_payments WHERE partner_id = ?1 ORDER BY payment_id",
        params![partner],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use ledger_domain::incentives::{Incentives, InvoiceLine, InvoiceList, PaymentStatus};

    use super::*;
    use crate::incentive_months::tests::{cny, finalized, line, month, paid, quarter, rejected, requested, STREAM};
    use crate::testkit::{at, state, Kit};

    fn agrees(kit: &Kit, events: &[IncentiveEvent], id: &str) {
        let s = state::<Incentives>(events);
        assert_eq!(view(&kit.conn(), id).unwrap().map(|(v, _)| v), s.payment_view(id), "{id}");
    }

    #[test]
    fn a_rejected_payment_keeps_its_row_and_the_one_requested_again_goes_to_paid_with_its_invoice_list() {
        let mut kit = Kit::new();
        let mut events = vec![
            line("R1", "2026-07", "2026-07", "100.00"),
            finalized("2026-07", "5.00"),
            requested("QP-1", &[("2026-07", "5.00")], &["2026-08"]),
        ];
        let requested_at = kit.push(STREAM, &events);
        let (v, p) = view(&kit.conn(), "QP-1").unwrap().unwrap();
        assert_eq!((v.status, v.payable, p), (PaymentStatus::Requested, cny("5.00"), requested_at));
        assert_eq!(v.excluded_months, vec![month("2026-08")]);
        agrees(&kit, &events, "QP-1");

        events.push(rejected("QP-1"));
        events.push(requested("QP-2", &[("2026-07", "5.00")], &[]));
        let p = kit.push(STREAM, &events[3..]);
        let (v1, p1) = view(&kit.conn(), "QP-1").unwrap().unwrap();
        assert_eq!((v1.status, p1), (PaymentStatus::Rejected, p - 1));
        let (v2, p2) = view(&kit.conn(), "QP-2").unwrap().unwrap();
        assert_eq!((v2.status, v2.invoice_list.clone(), p2), (PaymentStatus::Requested, None, p));

        let list = InvoiceList {
            lines: vec![InvoiceLine {
                item: "monthly incentive 2026-07".into(),
                month: Some(month("2026-07")),
                opportunity_id: None,
                amount: cny("5.00"),
            }],
            total: cny("5.00"),
            mailing_address: "1 Vendor Road".into(),
            mailbox: "invoices@vendor.example".into(),
        };
        events.push(IncentiveEvent::QuarterlyPaymentApproved {
            partner_id: "P1".into(),
            payment_id: "QP-2".into(),
            quarter: quarter(),
            approved_at: at("2026-10-04T00:00:00Z"),
        });
        events.push(IncentiveEvent::InvoiceListIssued {
            partner_id: "P1".into(),
            payment_id: "QP-2".into(),
            quarter: quarter(),
            invoice_list: list.clone(),
            issued_at: at("2026-10-05T00:00:00Z"),
        });
        kit.push(STREAM, &events[5..]);
        let (v2, _) = view(&kit.conn(), "QP-2").unwrap().unwrap();
        assert_eq!((v2.status, v2.invoice_list), (PaymentStatus::InvoiceListIssued, Some(list)));
        agrees(&kit, &events, "QP-2");

        events.push(IncentiveEvent::InvoiceReceived {
            partner_id: "P1".into(),
            payment_id: "QP-2".into(),
            quarter: quarter(),
            received_at: at("2026-10-10T00:00:00Z"),
        });
        events.push(paid("QP-2", &["2026-07"], "5.00"));
        let p = kit.push(STREAM, &events[7..]);
        let (v2, p2) = view(&kit.conn(), "QP-2").unwrap().unwrap();
        assert_eq!((v2.status, v2.method.is_some(), p2), (PaymentStatus::Paid, true, p));
        assert_eq!(view(&kit.conn(), "QP-1").unwrap().unwrap().1, p1, "the rejected one did not move");
        for id in ["QP-1", "QP-2"] {
            agrees(&kit, &events, id);
        }
        assert_eq!(ids_of(&kit.conn(), "P1").unwrap(), ["QP-1", "QP-2"]);
        assert!(view(&kit.conn(), "QP-3").unwrap().is_none());
    }
}
