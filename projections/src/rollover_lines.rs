//! Rollover lines: the consumption lines counted in another month than the one they were
//! consumed in, one row each, so `GET /v1/rollover?month=` reads the rows of that month.
//!
//! Rows are keyed by partner, incentive month and record id (record ids are unique in the
//! ledger); the rows of a batch are written in key order when it ends.
//!
//! The row is the domain's [`RolloverLine::of`] of the recorded line (its amount and
//! incentive as recorded: a refund claws back in a month of its own and changes no line, as
//! in the aggregate), kept when [`RolloverLine::is_rollover`]; the report out of the rows is
//! the domain's [`RolloverReport::of`] (the aggregate keeps no lines: this read model is
//! where the report lives).

use ledger_core::{Currency, Money, Month, RecordedEvent};
use ledger_domain::incentives::{ConsumptionLine, IncentiveEvent, Incentives, RolloverLine, RolloverReport};
use ledger_domain::{split_stream, stream_family, Decider, EventFamily};

use crate::codec::{self, decimal, parsed};
use crate::runner::Projection;
use crate::sql::{params, upsert, Db};
use crate::ProjectionError;

/// Rows of the batch being applied, written in key order by [`Projection::flush`].
#[derive(Default)]
pub struct RolloverLines {
    pending: Vec<(String, RolloverLine, u64)>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rollover_lines (
    partner_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    product TEXT NOT NULL,
    consumption_month TEXT NOT NULL,
    incentive_month TEXT NOT NULL,
    amount TEXT NOT NULL,           -- exact
    currency TEXT NOT NULL,
    incentive TEXT NOT NULL,        -- exact, full precision
    position INTEGER NOT NULL,
    PRIMARY KEY (partner_id, incentive_month, record_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollover_lines_consumed ON rollover_lines (partner_id, consumption_month);
";

/// Whether a stored line is surely counted in its own consumption month, read off the text
/// without parsing it (most lines are, and need nothing more). The stored payload is
/// canonical JSON, where a key is written `"key":"value"`; a string value cannot hold that
/// pattern (its quotes are escaped). Anything else (a key not found) answers `false`, and
/// the line is decoded and asked.
fn same_months(data: &str) -> bool {
    let value = |key: &str| {
        let at = data.find(key)? + key.len();
        data.get(at..)?.split('"').next()
    };
    match (value("\"consumption_month\":\""), value("\"incentive_month\":\"")) {
        (Some(consumed), Some(counted)) => consumed == counted,
        _ => false,
    }
}

impl Projection for RolloverLines {
    fn name(&self) -> &'static str {
        "rollover_lines"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rollover_lines"]
    }

    fn apply(&mut self, _tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if e.event_type != "ConsumptionRecorded" || stream_family(&e.stream) != Incentives::FAMILY {
            return Ok(());
        }
        if same_months(&e.data) {
            return Ok(());
        }
        // The current version of the payload reads as the line itself (no detour through
        // the event enum); an older one is decoded and upcast.
        let recorded = if e.schema_version == IncentiveEvent::schema_version(&e.event_type) {
            serde_json::from_str::<ConsumptionLine>(&e.data).map_err(|err| codec::undecodable(e, err))?
        } else {
            let event: IncentiveEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
                .map_err(|err| codec::undecodable(e, err))?;
            ConsumptionLine::recorded(&event).ok_or_else(|| codec::undecodable(e, "not a consumption line"))?
        };
        let line = RolloverLine::of(&recorded);
        if !line.is_rollover() {
            return Ok(());
        }
        let (Incentives::FAMILY, partner) = split_stream(&e.stream) else { return Ok(()) };
        self.pending.push((partner.to_string(), line, e.position));
        Ok(())
    }

    fn flush(&mut self, tx: &dyn Db) -> Result<(), ProjectionError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // In key order: neighbouring rows land on the same pages.
        self.pending.sort_by(|a, b| {
            (&a.0, a.1.incentive_month, &a.1.record_id).cmp(&(&b.0, b.1.incentive_month, &b.1.record_id))
        });
        let sql = upsert(
            "rollover_lines",
            "partner_id, record_id, customer_id, product, consumption_month, incentive_month, amount, currency, \
             incentive, position",
            "partner_id, incentive_month, record_id",
        );
        for (partner, line, position) in self.pending.drain(..) {
            tx.write(
                &sql,
                params![
                    partner,
                    line.record_id,
                    line.customer_id,
                    line.product,
                    line.consumption_month.to_string(),
                    line.incentive_month.to_string(),
                    line.amount.amount.to_string(),
                    line.amount.currency.as_str(),
                    line.incentive.amount.to_string(),
                    position as i64,
                ],
            )?;
        }
        Ok(())
    }

    fn reset_cache(&mut self) {
        self.pending.clear();
    }
}

/// The rollover report of `partner` for `month` in `currency` (docs/API.md's shape).
pub fn report(
    conn: &dyn Db,
    partner: &str,
    month: Month,
    currency: Currency,
) -> Result<RolloverReport, ProjectionError> {
    let lines = conn.query_map(
        "SELECT record_id, customer_id, product, consumption_month, incentive_month, amount, currency, incentive \
         FROM rollover_lines WHERE partner_id = ?1 AND (incentive_month = ?2 OR consumption_month = ?2) \
         ORDER BY record_id",
        params![partner, month.to_string()],
        |r| {
            let (record_id, customer_id, product, consumed, counted, amount, cur, incentive): (
                String,
                String,
                String,
                String,
                String,
                String,
                String,
                String,
            ) = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?);
            let cur: Currency = parsed("currency", &cur)?;
            Ok(RolloverLine {
                record_id,
                customer_id,
                product,
                consumption_month: parsed("consumption_month", &consumed)?,
                incentive_month: parsed("incentive_month", &counted)?,
                amount: Money::new(decimal("amount", &amount)?, cur),
                incentive: Money::new(decimal("incentive", &incentive)?, cur),
            })
        },
    )?;
    Ok(RolloverReport::of(month, currency, lines))
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::incentive_months::tests::{cny, line, month, refund, STREAM};
    use crate::testkit::Kit;

    fn ids(lines: &[RolloverLine]) -> Vec<&str> {
        lines.iter().map(|l| l.record_id.as_str()).collect()
    }

    #[test]
    fn only_a_line_whose_two_months_are_the_same_text_is_skipped_unparsed() {
        let data = |consumed: &str, counted: &str| {
            format!(
                r#"{{"amount":{{"amount":"1.00","currency":"CNY"}},"consumption_month":"{consumed}","incentive_month":"{counted}","product":"x"}}"#
            )
        };
        assert!(same_months(&data("2026-07", "2026-07")));
        assert!(!same_months(&data("2026-07", "2026-08")));
        assert!(!same_months(r#"{"incentive_month":"2026-07"}"#), "a key not found: decode and ask");
        assert!(!same_months(r#"{"product":"\"consumption_month\":\"2026-07\"","incentive_month":"2026-07"}"#));
    }

    #[test]
    fn a_line_counted_later_shows_in_both_months_and_a_refund_does_not_change_it() {
        let mut kit = Kit::new();
        let mut events = vec![
            line("R1", "2026-07", "2026-07", "100.00"),
            line("R3", "2026-07", "2026-08", "300.00"),
            line("R2", "2026-07", "2026-09", "200.00"),
            line("R4", "2026-08", "2026-09", "10.00"),
        ];
        kit.push(STREAM, &events);
        let july = report(&kit.conn(), "P1", month("2026-07"), Currency::CNY).unwrap();
        assert!(july.counted_here_from_earlier.is_empty());
        assert_eq!(ids(&july.counted_later), ["R2", "R3"], "record id order, like the aggregate");
        let august = report(&kit.conn(), "P1", month("2026-08"), Currency::CNY).unwrap();
        assert_eq!((ids(&august.counted_here_from_earlier), ids(&august.counted_later)), (vec!["R3"], vec!["R4"]));
        let r3 = &august.counted_here_from_earlier[0];
        assert_eq!((r3.amount, r3.incentive), (cny("300.00"), cny("15.0000")));
        let september = report(&kit.conn(), "P1", month("2026-09"), Currency::CNY).unwrap();
        assert_eq!(ids(&september.counted_here_from_earlier), ["R2", "R4"]);

        // A refund of a rolled-over line claws back in a month of its own: the line reads
        // as recorded, in the projection as in the aggregate.
        events.push(refund("F1", "R3", "2026-08", "2026-08", "100.00"));
        kit.push(STREAM, &events[4..]);
        let mut lines: Vec<_> = events.iter().filter_map(ConsumptionLine::recorded).collect();
        lines.sort_by(|a, b| a.record_id.cmp(&b.record_id));
        for m in ["2026-06", "2026-07", "2026-08", "2026-09"] {
            let got = report(&kit.conn(), "P1", month(m), Currency::CNY).unwrap();
            let all = lines.iter().filter(|l| l.is_rollover()).map(RolloverLine::of);
            assert_eq!(got, RolloverReport::of(month(m), Currency::CNY, all), "{m}");
        }
        assert_eq!(
            report(&kit.conn(), "P1", month("2026-08"), Currency::CNY).unwrap().counted_here_from_earlier[0],
            *r3
        );
        assert!(report(&kit.conn(), "P1", month("2026-08"), Currency::USD)
            .unwrap()
            .counted_here_from_earlier
            .is_empty());
        assert!(report(&kit.conn(), "P2", month("2026-08"), Currency::CNY).unwrap().counted_later.is_empty());
    }
}
