//! Incentive months (docs/API.md's incentive month): one row per partner × month × currency,
//! the domain's [`IncentiveMonth`] with its full-precision sums as exact decimal text and
//! `position`, the global position of the last event that changed the row.
//!
//! No rule lives here: each incentive event is decoded, the months it changes are the
//! domain's [`months_touched`], and each is changed by the domain's
//! [`IncentiveMonth::apply`], the very code the aggregate's evolve runs. Lines and refunds
//! (most of the log) are read as the domain's [`Counted`] only, and counted by
//! [`IncentiveMonth::count`], which `apply` runs for them. The view (rounded once, docs/API.md's
//! fields) is [`IncentiveMonth::view`].
//!
//! Rows are kept in memory (the log is mostly consumption lines, a few hundred per month
//! row) and each row a batch changed is written once, by [`Projection::flush`] in the
//! batch's transaction; the rows stay cached for the next batch (they equal the tables once
//! it commits) up to [`MAX_CACHED_ROWS`], and are dropped by `reset_cache` when a batch
//! fails. A rejected or paid payment names no months: the rows it holds are found by their
//! `payment_id` in the table, after the rows changed so far in the batch are written.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use ledger_core::{Currency, Month, RecordedEvent};
use ledger_domain::incentives::{
    months_touched, Counted, IncentiveEvent, IncentiveMonth, Incentives, MonthView, MonthsTouched,
};
use ledger_domain::{split_stream, Decider, EventFamily};

use crate::codec::{self, decimal, enum_of, from_json, json, parsed, to_text};
use crate::runner::Projection;
use crate::sql::{params, upsert, Db, Row as SqlRow};
use crate::ProjectionError;

/// The event types that change a month ([`months_touched`] names none for the others).
pub const EVENT_TYPES: &[&str] = &[
    "ConsumptionRecorded",
    "ConsumptionRefunded",
    "IncentiveMonthClosed",
    "IncentiveMonthApplied",
    "IncentiveMonthReviewed",
    "IncentiveMonthFinalized",
    "QuarterlyPaymentRequested",
    "QuarterlyPaymentRejected",
    "QuarterlyPaymentPaid",
];

/// Lines and refunds: [`Counted`] is all the months read of them.
const LINE_TYPES: &[&str] = &["ConsumptionRecorded", "ConsumptionRefunded"];

/// Rows kept between batches; past this the cache is dropped after a flush.
pub const MAX_CACHED_ROWS: usize = 200_000;

type Key = (Month, Currency);

struct Row {
    month: IncentiveMonth,
    position: u64,
    dirty: bool,
}

/// The rows of one partner kept in memory.
type PartnerRows = HashMap<Key, Row>;

#[derive(Default)]
pub struct IncentiveMonths {
    rows: HashMap<String, PartnerRows>,
    cached: usize,
    dirty: Vec<(String, Key)>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS incentive_months (
    partner_id TEXT NOT NULL,
    month TEXT NOT NULL,            -- 2026-07
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    incentive_sum TEXT NOT NULL,    -- exact, full precision
    entries INTEGER NOT NULL,
    rollover_in TEXT NOT NULL,      -- exact, full precision
    rollover_out TEXT NOT NULL,     -- exact, full precision
    final_amount TEXT,              -- money as JSON
    payment_id TEXT,
    position INTEGER NOT NULL,
    PRIMARY KEY (partner_id, month, currency)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS incentive_months_payment ON incentive_months (partner_id, payment_id)
    WHERE payment_id IS NOT NULL;
";

const COLUMNS: &str = "partner_id, month, currency, status, incentive_sum, entries, rollover_in, rollover_out, \
                       final_amount, payment_id, position";

impl IncentiveMonths {
    /// Runs `change` on the row of `partner`'s `key` (loaded, or new), and marks the row
    /// changed at `position` when it changed.
    fn change(
        &mut self,
        tx: &dyn Db,
        partner: &str,
        key: Key,
        position: u64,
        change: impl FnOnce(&mut IncentiveMonth),
    ) -> Result<(), ProjectionError> {
        if !self.rows.contains_key(partner) {
            self.rows.insert(partner.to_string(), HashMap::new());
        }
        let rows = self.rows.get_mut(partner).expect("inserted above");
        let row = match rows.entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let (month, currency) = *v.key();
                let stored = tx.query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM incentive_months WHERE partner_id = ?1 AND month = ?2 AND currency = ?3"
                    ),
                    params![partner, month.to_string(), currency.as_str()],
                    read_row,
                )?;
                self.cached += 1;
                v.insert(match stored {
                    Some(r) => {
                        let (_, month, position) = r;
                        Row { month, position, dirty: false }
                    }
                    None => Row { month: IncentiveMonth::new(month, currency), position: 0, dirty: false },
                })
            }
        };
        let before = row.month.clone();
        change(&mut row.month);
        if row.month != before || row.position == 0 {
            row.position = position;
            if !row.dirty {
                row.dirty = true;
                self.dirty.push((partner.to_string(), key));
            }
        }
        Ok(())
    }
}

impl Projection for IncentiveMonths {
    fn name(&self) -> &'static str {
        "incentive_months"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["incentive_months"]
    }

    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let (Incentives::FAMILY, partner) = split_stream(&e.stream) else { return Ok(()) };
        if !EVENT_TYPES.contains(&e.event_type.as_str()) {
            return Ok(());
        }
        // Lines and refunds, most of the log: only what the months count is read.
        if LINE_TYPES.contains(&e.event_type.as_str())
            && e.schema_version == IncentiveEvent::schema_version(&e.event_type)
        {
            let counted: Counted = serde_json::from_str(&e.data).map_err(|err| codec::undecodable(e, err))?;
            for key in counted.months() {
                self.change(tx, partner, key, e.position, |m| m.count(&counted))?;
            }
            return Ok(());
        }
        let event: IncentiveEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| codec::undecodable(e, err))?;
        let keys = match months_touched(&event) {
            MonthsTouched::None => vec![],
            MonthsTouched::Keys(keys) => keys,
            MonthsTouched::HeldBy(payment_id) => self.held_by(tx, partner, payment_id)?,
            MonthsTouched::Released { payment_id, restored } => {
                let mut keys = self.held_by(tx, partner, payment_id)?;
                keys.extend(restored);
                keys
            }
        };
        for key in keys {
            self.change(tx, partner, key, e.position, |m| m.apply(&event))?;
        }
        Ok(())
    }

    fn flush(&mut self, tx: &dyn Db) -> Result<(), ProjectionError> {
        if !self.dirty.is_empty() {
            let sql = upsert("incentive_months", COLUMNS, "partner_id, month, currency");
            for (partner, key) in self.dirty.drain(..) {
                let Some(row) = self.rows.get_mut(&partner).and_then(|rows| rows.get_mut(&key)) else { continue };
                row.dirty = false;
                let m = &row.month;
                tx.write(
                    &sql,
                    params![
                        partner,
                        m.month.to_string(),
                        m.currency.as_str(),
                        to_text(&m.status),
                        m.incentive_sum.to_string(),
                        m.entries,
                        m.rollover_in.to_string(),
                        m.rollover_out.to_string(),
                        m.final_amount.as_ref().map(json),
                        m.payment_id,
                        row.position as i64,
                    ],
                )?;
            }
        }
        if self.cached > MAX_CACHED_ROWS {
            self.rows.clear();
            self.cached = 0;
        }
        Ok(())
    }

    fn reset_cache(&mut self) {
        self.rows.clear();
        self.cached = 0;
        self.dirty.clear();
    }
}

impl IncentiveMonths {
    /// The rows held by `payment_id`: what this batch changed so far is written first, then
    /// the table is asked.
    fn held_by(&mut self, tx: &dyn Db, partner: &str, payment_id: &str) -> Result<Vec<Key>, ProjectionError> {
        self.flush(tx)?;

        tx.query_map(
            "SELECT month, currency FROM incentive_months WHERE partner_id = ?1 AND payment_id = ?2",
            params![partner, payment_id],
            |r| {
                Ok((
                    parsed::<Month>("month", &r.get::<String>(0)?)?,
                    parsed::<Currency>("currency", &r.get::<String>(1)?)?,
                ))
            },
        )
    }
}

type Stored = Result<(String, IncentiveMonth, u64), ProjectionError>;

fn read_row(r: &SqlRow<'_>) -> Stored {
    let partner: String = r.get(0)?;
    let (month, currency, status, sum, entries, rin, rout): (String, String, String, String, u32, String, String) =
        (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?);
    let final_amount: Option<String> = r.get(8)?;
    let payment_id: Option<String> = r.get(9)?;
    let position: i64 = r.get(10)?;
    (|| {
        Ok((
            partner,
            IncentiveMonth {
                month: parsed("month", &month)?,
                currency: parsed("currency", &currency)?,
                status: enum_of("month status", &status)?,
                incentive_sum: decimal("incentive_sum", &sum)?,
                entries,
                rollover_in: decimal("rollover_in", &rin)?,
                rollover_out: decimal("rollover_out", &rout)?,
                final_amount: final_amount.as_deref().map(|f| from_json("final amount", f)).transpose()?,
                payment_id,
            },
            position as u64,
        ))
    })()
}

/// Every month row of `partner`, in month then currency order (the aggregate's), with the
/// position of the row's last change.
pub fn of_partner(conn: &dyn Db, partner: &str) -> Result<Vec<(IncentiveMonth, u64)>, ProjectionError> {
    let mut rows = conn.query_map(
        &format!("SELECT {COLUMNS} FROM incentive_months WHERE partner_id = ?1"),
        params![partner],
        |r| read_row(r).map(|(_, m, p)| (m, p)),
    )?;
    rows.sort_by_key(|(m, _)| (m.month, m.currency));
    Ok(rows)
}

/// docs/API.md's incentive months of `partner` (of `year` when given), with their positions.
pub fn views(conn: &dyn Db, partner: &str, year: Option<i32>) -> Result<Vec<(MonthView, u64)>, ProjectionError> {
    Ok(of_partner(conn, partner)?
        .into_iter()
        .filter(|(m, _)| year.is_none_or(|y| m.month.year() == y))
        .map(|(m, position)| (m.view(partner), position))
        .collect())
}

/// Every partner with a month row (tests compare them with the streams).
pub fn partners(conn: &dyn Db) -> Result<Vec<String>, ProjectionError> {
    conn.query_map("SELECT DISTINCT partner_id FROM incentive_months ORDER BY partner_id", params![], |r| r.get(0))
}

#[cfg(test)]
pub(crate) mod tests {
    use ledger_core::{Money, Quarter, Rate};
    use ledger_domain::incentives::{
        Incentives, IncludedMonth, LineAssociation, MonthStatus, PaymentMethod, RestoredMonth,
    };
    use rust_decimal::Decimal;

    use super::*;
    use crate::testkit::{at, state, Kit};

    pub const STREAM: &str = "incentives-P1";

    pub fn month(s: &str) -> Month {
        s.parse().unwrap()
    }

    pub fn cny(s: &str) -> Money {
        Money::new(Decimal::from_str_exact(s).unwrap(), Currency::CNY)
    }

    /// A line of `amount` consumed in `consumed` and counted in `counted`, at 5%.
    pub fn line(id: &str, consumed: &str, counted: &str, amount: &str) -> IncentiveEvent {
        let amount = cny(amount);
        IncentiveEvent::ConsumptionRecorded {
            partner_id: "P1".into(),
            record_id: id.into(),
            customer_id: "C1".into(),
            association_type: LineAssociation::Resale,
            product: "ecs".into(),
            amount,
            consumed_at: month(consumed).start(),
            settled_at: month(counted).start(),
            consumption_month: month(consumed),
            incentive_month: month(counted),
            deferred_from: None,
            rate: Some(Rate::parse("0.05").unwrap()),
            incentive: amount.amount * Decimal::new(5, 2),
            reason: None,
        }
    }

    /// A refund of `amount` of line `record`, clawed back in `counted` at 5%.
    pub fn refund(id: &str, record: &str, original: &str, counted: &str, amount: &str) -> IncentiveEvent {
        let amount = cny(amount);
        IncentiveEvent::ConsumptionRefunded {
            partner_id: "P1".into(),
            refund_id: id.into(),
            record_id: record.into(),
            amount,
            settled_at: month(counted).start(),
            original_incentive_month: month(original),
            incentive_month: month(counted),
            rate: Some(Rate::parse("0.05").unwrap()),
            incentive: -amount.amount * Decimal::new(5, 2),
        }
    }

    pub fn finalized(m: &str, amount: &str) -> IncentiveEvent {
        IncentiveEvent::IncentiveMonthFinalized {
            partner_id: "P1".into(),
            month: month(m),
            currency: Currency::CNY,
            accrued: cny(amount),
            final_amount: cny(amount),
            adjustment: None,
            finalized_at: at("2026-10-01T00:00:00Z"),
        }
    }

    pub fn requested(id: &str, included: &[(&str, &str)], excluded: &[&str]) -> IncentiveEvent {
        requested_carrying(id, included, excluded, &[])
    }

    /// A request that also carries earlier months (their total ≤ 0) into the payment.
    pub fn requested_carrying(
        id: &str,
        included: &[(&str, &str)],
        excluded: &[&str],
        carried: &[(&str, &str)],
    ) -> IncentiveEvent {
        let months = |list: &[(&str, &str)]| -> Vec<IncludedMonth> {
            list.iter().map(|(m, a)| IncludedMonth { month: month(m), amount: cny(a) }).collect()
        };
        let (included, carried) = (months(included), months(carried));
        let deduction = -carried.iter().map(|m| m.amount.amount).sum::<Decimal>();
        let payable = included.iter().map(|m| m.amount.amount).sum::<Decimal>() - deduction;
        IncentiveEvent::QuarterlyPaymentRequested {
            partner_id: "P1".into(),
            payment_id: id.into(),
            quarter: quarter(),
            currency: Currency::CNY,
            included_months: included,
            excluded_months: excluded.iter().map(|m| month(m)).collect(),
            included_opportunities: vec![],
            carried_months: carried,
            carried_deduction: cny(&deduction.to_string()),
            payable: cny(&payable.to_string()),
            requested_at: at("2026-10-02T00:00:00Z"),
        }
    }

    pub fn quarter() -> Quarter {
        "2026Q3".parse().unwrap()
    }

    pub fn rejected(id: &str) -> IncentiveEvent {
        rejected_restoring(id, &[])
    }

    /// A rejection that returns the months its request forfeited to `open`.
    pub fn rejected_restoring(id: &str, restored: &[&str]) -> IncentiveEvent {
        IncentiveEvent::QuarterlyPaymentRejected {
            partner_id: "P1".into(),
            payment_id: id.into(),
            quarter: quarter(),
            reason: Some("wrong bank".into()),
            restored_months: restored
                .iter()
                .map(|m| RestoredMonth { month: month(m), currency: Currency::CNY, status: MonthStatus::Open })
                .collect(),
            rejected_at: at("2026-10-03T00:00:00Z"),
        }
    }

    pub fn paid(id: &str, months: &[&str], amount: &str) -> IncentiveEvent {
        IncentiveEvent::QuarterlyPaymentPaid {
            partner_id: "P1".into(),
            payment_id: id.into(),
            quarter: quarter(),
            method: PaymentMethod::BankTransfer,
            amount: cny(amount),
            included_months: months.iter().map(|m| month(m)).collect(),
            included_opportunities: vec![],
            paid_at: at("2026-10-20T00:00:00Z"),
        }
    }

    fn rows(kit: &Kit) -> Vec<(MonthView, u64)> {
        views(&kit.conn(), "P1", None).unwrap()
    }

    /// Every row equals the aggregate's month view after the same events.
    fn agrees(kit: &Kit, events: &[IncentiveEvent]) {
        let s = state::<Incentives>(events);
        let domain: Vec<MonthView> = s.months.keys().filter_map(|(m, c)| s.month_view(*m, *c)).collect();
        let rows: Vec<MonthView> = rows(kit).into_iter().map(|(v, _)| v).collect();
        assert_eq!(rows, domain);
    }

    #[test]
    fn a_rollover_line_counts_in_the_later_month_and_out_of_its_own_and_its_refund_only_where_it_lands() {
        let mut kit = Kit::new();
        let mut events = vec![line("R1", "2026-07", "2026-07", "100.00"), line("R2", "2026-07", "2026-08", "1000.10")];
        let p2 = kit.push(STREAM, &events);
        let rows1 = rows(&kit);
        let (july, august) = (&rows1[0], &rows1[1]);
        assert_eq!((july.0.month, july.0.accrued, july.0.rollover_out), (month("2026-07"), cny("5.00"), cny("50.01")));
        assert_eq!(
            (august.0.accrued, august.0.rollover_in, august.0.rollover_out),
            (cny("50.01"), cny("50.01"), cny("0"))
        );
        assert_eq!((july.1, august.1), (p2, p2), "both rows changed by the rollover line");
        agrees(&kit, &events);

        // A refund of the rolled-over line claws back where it lands (here September).
        events.push(refund("F1", "R2", "2026-08", "2026-09", "200.00"));
        let p3 = kit.push(STREAM, &events[2..]);
        let rows2 = rows(&kit);
        assert_eq!(rows2[1], rows1[1], "August (the line's month) is untouched");
        assert_eq!(rows2[0], rows1[0]);
        assert_eq!((rows2[2].0.month, rows2[2].0.accrued, rows2[2].1), (month("2026-09"), cny("-10.00"), p3));
        agrees(&kit, &events);
    }

    #[test]
    fn a_rejected_payment_lets_go_of_its_months_and_the_next_request_holds_them() {
        let mut kit = Kit::new();
        let mut events = vec![
            line("R1", "2026-07", "2026-07", "100.00"),
            line("R2", "2026-08", "2026-08", "200.00"),
            finalized("2026-07", "5.00"),
            finalized("2026-08", "10.00"),
            requested("QP-1", &[("2026-07", "5.00"), ("2026-08", "10.00")], &["2026-09"]),
        ];
        kit.push(STREAM, &events);
        let held: Vec<_> = rows(&kit).into_iter().map(|(v, _)| (v.status, v.payment_id)).collect();
        let qp1 = Some("QP-1".to_string());
        assert_eq!(
            held,
            vec![(MonthStatus::Finalized, qp1.clone()), (MonthStatus::Finalized, qp1), (MonthStatus::Forfeited, None)]
        );
        agrees(&kit, &events);

        events.push(rejected_restoring("QP-1", &["2026-09"]));
        let p = kit.push(STREAM, &events[5..]);
        let after: Vec<_> = rows(&kit).into_iter().map(|(v, at)| (v.status, v.payment_id, at)).collect();
        assert_eq!(after[0], (MonthStatus::Finalized, None, p), "released");
        assert_eq!(after[1], (MonthStatus::Finalized, None, p), "released");
        assert_eq!(after[2], (MonthStatus::Open, None, p), "the forfeited month is open again");
        agrees(&kit, &events);

        // Requested again, a line, and paid, in one batch: the rows changed so far in the
        // batch are written before the months the payment holds are looked up.
        events.push(requested("QP-2", &[("2026-07", "5.00"), ("2026-08", "10.00")], &["2026-09"]));
        events.push(line("R3", "2026-09", "2026-10", "10.00"));
        events.push(paid("QP-2", &["2026-07", "2026-08"], "15.00"));
        kit.push(STREAM, &events[6..]);
        let last: Vec<_> = rows(&kit).into_iter().map(|(v, _)| (v.month, v.status, v.payment_id)).collect();
        let qp2 = Some("QP-2".to_string());
        assert_eq!(last[0], (month("2026-07"), MonthStatus::Paid, qp2.clone()));
        assert_eq!(last[1], (month("2026-08"), MonthStatus::Paid, qp2));
        agrees(&kit, &events);
    }

    #[test]
    fn a_payment_holds_the_months_it_carries_and_pays_them() {
        let mut kit = Kit::new();
        let mut events = vec![
            line("R1", "2026-05", "2026-05", "100.00"),
            refund("F1", "R1", "2026-05", "2026-06", "60.00"),
            finalized("2026-06", "-3.00"),
            line("R2", "2026-07", "2026-07", "1000.00"),
            finalized("2026-07", "50.00"),
            requested_carrying("QP-1", &[("2026-07", "50.00")], &[], &[("2026-06", "-3.00")]),
        ];
        kit.push(STREAM, &events);
        let june = rows(&kit).into_iter().find(|(v, _)| v.month == month("2026-06")).unwrap().0;
        assert_eq!((june.status, june.payment_id.as_deref()), (MonthStatus::Finalized, Some("QP-1")));
        agrees(&kit, &events);
        events.push(paid("QP-1", &["2026-07", "2026-06"], "47.00"));
        kit.push(STREAM, &events[6..]);
        let paid_rows: Vec<_> =
            rows(&kit).into_iter().filter(|(v, _)| v.status == MonthStatus::Paid).map(|(v, _)| v.month).collect();
        assert_eq!(paid_rows, vec![month("2026-06"), month("2026-07")]);
        agrees(&kit, &events);
    }

    #[test]
    fn rows_read_back_after_the_cache_is_dropped() {
        let mut kit = Kit::new();
        let events = vec![line("R1", "2026-07", "2026-08", "0.10"), line("R2", "2026-08", "2026-08", "0.10")];
        kit.push(STREAM, &events[..1]);
        // A fresh runner (no cache) continues from the stored rows.
        let mut again = Kit::reopen(kit);
        again.push(STREAM, &events[1..]);
        let rows = rows(&again);
        assert_eq!(rows[1].0.accrued, cny("0.01"), "0.005 + 0.005 rounded once");
        agrees(&again, &events);
    }
}
