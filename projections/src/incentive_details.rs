//! Incentive details (`GET /v1/incentive-details?month=`, the partner's "why"): one row per
//! consumption line and per refund clawback, the domain's [`IncentiveDetail`] created by
//! [`IncentiveDetail::of`] and changed by [`IncentiveDetail::apply`]. The reasons and the
//! month's sum are the domain's ([`IncentiveDetail::reason`], [`counted_sum`]), so the
//! entries counted in a month add up to what `incentive_months` says it accrued.

use ledger_core::{Currency, Money, Month, RecordedEvent};
use ledger_domain::incentives::details::{DetailEntry, IncentiveDetail};
use ledger_domain::incentives::{IncentiveEvent, Incentives};
use ledger_domain::{split_stream, Decider};

use crate::codec::{self, decimal, enum_of, parsed, to_text};
use crate::runner::Projection;
use crate::sql::{params, upsert, Db, Row as SqlRow};
use crate::ProjectionError;

pub use ledger_domain::incentives::details::counted_sum;

pub struct IncentiveDetails;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS incentive_details (
    partner_id TEXT NOT NULL,
    entry_id TEXT NOT NULL,         -- the record id of a line, the refund id of a refund
    entry TEXT NOT NULL,            -- consumption | refund
    record_id TEXT NOT NULL,
    customer_id TEXT,
    product TEXT,
    consumption_month TEXT,
    incentive_month TEXT NOT NULL,
    amount TEXT NOT NULL,           -- exact
    currency TEXT NOT NULL,
    rate TEXT,
    incentive TEXT NOT NULL,        -- exact, full precision
    refunded TEXT NOT NULL,         -- exact
    line_reason TEXT,
    position INTEGER NOT NULL,
    PRIMARY KEY (partner_id, entry, entry_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS incentive_details_counted ON incentive_details (partner_id, incentive_month);
CREATE INDEX IF NOT EXISTS incentive_details_consumed ON incentive_details (partner_id, consumption_month);
";

const COLUMNS: &str = "entry, record_id, entry_id, customer_id, product, consumption_month, incentive_month, amount, \
                       currency, rate, incentive, refunded, line_reason, position";

impl Projection for IncentiveDetails {
    fn name(&self) -> &'static str {
        "incentive_details"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["incentive_details"]
    }

    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let (Incentives::FAMILY, partner) = split_stream(&e.stream) else { return Ok(()) };
        if !matches!(e.event_type.as_str(), "ConsumptionRecorded" | "ConsumptionRefunded") {
            return Ok(());
        }
        let event: IncentiveEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| codec::undecodable(e, err))?;
        if let IncentiveEvent::ConsumptionRefunded { record_id, .. } = &event {
            if let Some((mut line, position)) = load(tx, partner, DetailEntry::Consumption, record_id)? {
                line.apply(&event);
                store(tx, partner, &line, position)?;
            }
        }
        if let Some(detail) = IncentiveDetail::of(&event) {
            store(tx, partner, &detail, e.position)?;
        }
        Ok(())
    }
}

fn entry_id(d: &IncentiveDetail) -> &str {
    d.refund_id.as_deref().unwrap_or(&d.record_id)
}

/// The statement that stores a row, written once (it runs for every line).
static STORE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    upsert("incentive_details", &format!("partner_id, {COLUMNS}"), "partner_id, entry, entry_id")
});

fn store(tx: &dyn Db, partner: &str, d: &IncentiveDetail, position: u64) -> Result<(), ProjectionError> {
    tx.write(
        &STORE,
        params![
            partner,
            to_text(&d.entry),
            d.record_id,
            entry_id(d),
            d.customer_id,
            d.product,
            d.consumption_month.map(|m| m.to_string()),
            d.incentive_month.to_string(),
            d.amount.amount.to_string(),
            d.amount.currency.as_str(),
            d.rate.map(|r| r.value().to_string()),
            d.incentive.amount.to_string(),
            d.refunded.amount.to_string(),
            d.line_reason.map(|r| to_text(&r)),
            position as i64,
        ],
    )?;
    Ok(())
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    i64,
);

fn row(r: &SqlRow<'_>) -> Result<Row, ProjectionError> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
    ))
}

fn detail(row: Row) -> Result<(IncentiveDetail, u64), ProjectionError> {
    let (
        entry,
        record_id,
        entry_id,
        customer_id,
        product,
        consumed,
        counted,
        amount,
        cur,
        rate,
        incentive,
        refunded,
        reason,
        position,
    ) = row;
    let entry: DetailEntry = enum_of("entry", &entry)?;
    let currency: Currency = parsed("currency", &cur)?;
    let money = |what, s: &str| Ok::<_, ProjectionError>(Money::new(decimal(what, s)?, currency));
    Ok((
        IncentiveDetail {
            entry,
            refund_id: (entry == DetailEntry::Refund).then_some(entry_id),
            record_id,
            customer_id,
            product,
            consumption_month: consumed.map(|m| parsed::<Month>("consumption_month", &m)).transpose()?,
            incentive_month: parsed("incentive_month", &counted)?,
            amount: money("amount", &amount)?,
            rate: rate.map(|r| ledger_core::Rate::parse(&r).map_err(|_| codec::corrupt("rate", &r))).transpose()?,
            incentive: money("incentive", &incentive)?,
            refunded: money("refunded", &refunded)?,
            line_reason: reason.map(|r| enum_of("line_reason", &r)).transpose()?,
        },
        position as u64,
    ))
}

fn load(
    conn: &dyn Db,
    partner: &str,
    entry: DetailEntry,
    id: &str,
) -> Result<Option<(IncentiveDetail, u64)>, ProjectionError> {
    let found = conn.query_row(
        &format!("SELECT {COLUMNS} FROM incentive_details WHERE partner_id = ?1 AND entry = ?2 AND entry_id = ?3"),
        params![partner, to_text(&entry), id],
        row,
    )?;
    found.map(detail).transpose()
}

/// Every entry listed in `partner`'s detail of `month` in `currency` (counted there, or
/// consumed there and counted later), in log order.
pub fn of_month(
    conn: &dyn Db,
    partner: &str,
    month: Month,
    currency: Currency,
) -> Result<Vec<IncentiveDetail>, ProjectionError> {
    conn.query_map(
        &format!(
            "SELECT {COLUMNS} FROM incentive_details WHERE partner_id = ?1 AND currency = ?3 \
             AND (incentive_month = ?2 OR consumption_month = ?2) ORDER BY position, entry, entry_id"
        ),
        params![partner, month.to_string(), currency.as_str()],
        |r| detail(row(r)?).map(|(d, _)| d),
    )
}

#[cfg(test)]
mod tests {
    use ledger_domain::incentives::details::DetailReason;
    use ledger_domain::incentives::Incentives;

    use super::*;
    use crate::incentive_months::tests::{line, month, refund, STREAM};
    use crate::testkit::{state, Kit};

    #[test]
    fn a_months_detail_adds_up_to_what_the_aggregate_says_it_accrued() {
        let mut kit = Kit::new();
        let events = vec![line("R1", "2026-07", "2026-07", "100.00"), line("R2", "2026-07", "2026-08", "80.00")];
        kit.push(STREAM, &events);
        let refund = refund("RF1", "R1", "2026-07", "2026-07", "10.00");
        kit.push(STREAM, std::slice::from_ref(&refund));
        let all = [events, vec![refund]].concat();
        let aggregate = state::<Incentives>(&all);
        let conn = kit.conn();
        let july = of_month(&conn, "P1", month("2026-07"), Currency::CNY).unwrap();
        let sum = counted_sum(&july, month("2026-07"));
        let accrued = aggregate.month_view(month("2026-07"), Currency::CNY).unwrap().accrued;
        assert_eq!(Money::new(ledger_core::money::round_money(sum), Currency::CNY), accrued);
        let reasons: Vec<_> = july.iter().map(|d| d.reason(month("2026-07"))).collect();
        assert_eq!(
            reasons,
            [Some(DetailReason::Refunded), Some(DetailReason::CountedInOtherMonth), Some(DetailReason::Refunded)]
        );
        assert_eq!(july[0].refunded.amount.to_string(), "10.00");
    }
}
