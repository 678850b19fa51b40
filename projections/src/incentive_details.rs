//! Incentive details (`GET /v1/incentive-details?month=`, the partner's "why"): one row per
//! consumption line and per refund clawback, the domain's [`IncentiveDetail`] created by
//! [`IncentiveDetail::of`] and changed by [`IncentiveDetail::apply`]. The reasons and the
//! month's sum are the domain's ([`IncentiveDetail::reason`], [`counted_sum`]), so the
//! entries counted in a month add up to what `incentive_months` says it accrued.

use std::collections::HashMap;
use std::sync::LazyLock;

use ledger_core::{Currency, Money, Month, RecordedEvent};
use ledger_domain::incentives::details::{DetailEntry, IncentiveDetail};
use ledger_domain::incentives::{ConsumptionLine, IncentiveEvent, Incentives};
use ledger_domain::{split_stream, Decider, EventFamily};

use crate::codec::{self, decimal, enum_of, parsed, to_text};
use crate::runner::Projection;
use crate::sql::{params, upsert_rows, Db, Dialect, Param, Row as SqlRow};
use crate::ProjectionError;

pub use ledger_domain::incentives::details::counted_sum;

/// Rows are queued as the batch's events are applied and written by [`Projection::flush`]
/// in multi-row statements (one statement per row cost more than the row's insert); a
/// refund changes its line in the queue when the line is there, else reads it back.
#[derive(Default)]
pub struct IncentiveDetails {
    queued: Vec<Queued>,
    /// The queued lines by partner and record id, for refunds: filled up to `indexed`
    /// only when a refund comes (most batches have none).
    lines: HashMap<(String, String), usize>,
    indexed: usize,
}

struct Queued {
    partner: String,
    detail: IncentiveDetail,
    position: u64,
}

/// A line is keyed by the month it is counted in (most reads are of that month, so the
/// key serves them), and a refund finds its line there (`original_incentive_month`). Only
/// the lines counted in another month than their consumption month (rollover) need the
/// second index: the rest are found by the key under both months.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS incentive_details (
    partner_id TEXT NOT NULL,
    incentive_month TEXT NOT NULL,
    entry TEXT NOT NULL,            -- consumption | refund
    entry_id TEXT NOT NULL,         -- the record id of a line, the refund id of a refund
    record_id TEXT NOT NULL,
    customer_id TEXT,
    product TEXT,
    consumption_month TEXT,
    amount TEXT NOT NULL,           -- exact
    currency TEXT NOT NULL,
    rate TEXT,
    incentive TEXT NOT NULL,        -- exact, full precision
    refunded TEXT NOT NULL,         -- exact
    line_reason TEXT,
    position INTEGER NOT NULL,
    PRIMARY KEY (partner_id, incentive_month, entry, entry_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS incentive_details_rollover ON incentive_details (partner_id, consumption_month)
    WHERE consumption_month <> incentive_month;
";

/// The columns a row is read back from.
const COLUMNS: &str = "entry, record_id, entry_id, customer_id, product, consumption_month, incentive_month, amount, \
                       currency, rate, incentive, refunded, line_reason, position";

/// The columns a row is written with, in the order of [`Written`].
const WRITTEN: &str = "partner_id, incentive_month, entry, entry_id, record_id, customer_id, product, \
                       consumption_month, amount, currency, rate, incentive, refunded, line_reason, position";
const KEY: &str = "partner_id, incentive_month, entry, entry_id";

/// Rows per statement, largest first: a batch's rows go in as many of the largest as fit,
/// the rest in smaller ones (a few statement texts, each prepared once).
const ROWS_PER_STATEMENT: [usize; 4] = [128, 32, 8, 1];

static STATEMENTS: LazyLock<Vec<String>> =
    LazyLock::new(|| ROWS_PER_STATEMENT.iter().map(|&n| upsert_rows("incentive_details", WRITTEN, KEY, n)).collect());

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
        // A line (most of the log) in the current version reads straight as the line, no
        // detour through the event enum.
        if e.event_type == "ConsumptionRecorded" && e.schema_version == IncentiveEvent::schema_version(&e.event_type) {
            let line: ConsumptionLine = serde_json::from_str(&e.data).map_err(|err| codec::undecodable(e, err))?;
            self.queue(partner, IncentiveDetail::of_line(line), e.position);
            return Ok(());
        }
        let event: IncentiveEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| codec::undecodable(e, err))?;
        if let IncentiveEvent::ConsumptionRefunded { record_id, original_incentive_month, .. } = &event {
            if let Some(at) = self.queued_line(partner, record_id) {
                self.queued[at].detail.apply(&event);
            } else if let Some((mut line, position)) =
                load(tx, partner, *original_incentive_month, DetailEntry::Consumption, record_id)?
            {
                line.apply(&event);
                self.queue(partner, line, position);
            }
        }
        if let Some(detail) = IncentiveDetail::of(&event) {
            self.queue(partner, detail, e.position);
        }
        Ok(())
    }

    fn flush(&mut self, tx: &dyn Db) -> Result<(), ProjectionError> {
        self.write_queued(tx)
    }

    fn reset_cache(&mut self) {
        self.queued.clear();
        self.lines.clear();
        self.indexed = 0;
    }
}

impl IncentiveDetails {
    fn queue(&mut self, partner: &str, detail: IncentiveDetail, position: u64) {
        self.queued.push(Queued { partner: partner.to_string(), detail, position });
    }

    /// Where `partner`'s line `record_id` is in the queue, if it is.
    fn queued_line(&mut self, partner: &str, record_id: &str) -> Option<usize> {
        for (at, q) in self.queued.iter().enumerate().skip(self.indexed) {
            if q.detail.entry == DetailEntry::Consumption {
                self.lines.insert((q.partner.clone(), q.detail.record_id.clone()), at);
            }
        }
        self.indexed = self.queued.len();
        self.lines.get(&(partner.to_string(), record_id.to_string())).copied()
    }

    fn write_queued(&mut self, tx: &dyn Db) -> Result<(), ProjectionError> {
        self.lines.clear();
        self.indexed = 0;
        if self.queued.is_empty() {
            return Ok(());
        }
        // In key order (neighbouring rows land on the same pages), and a key once: a
        // statement may not change one row twice (PostgreSQL refuses it), and the row
        // queued last is the row as it stands.
        let mut rows = std::mem::take(&mut self.queued);
        rows.sort_by(|a, b| key(a).cmp(&key(b)));
        let rows: Vec<Written<'_>> = rows
            .iter()
            .enumerate()
            .filter(|(i, q)| rows.get(i + 1).is_none_or(|next| key(next) != key(q)))
            .map(|(_, q)| Written::of(q))
            .collect();
        let mut rest = &rows[..];
        for (&n, sql) in ROWS_PER_STATEMENT.iter().zip(STATEMENTS.iter()) {
            while rest.len() >= n {
                let (these, after) = rest.split_at(n);
                let params: Vec<&dyn Param> = these.iter().flat_map(Written::params).collect();
                tx.write(sql, &params)?;
                rest = after;
            }
        }
        Ok(())
    }
}

fn key(q: &Queued) -> (&str, Month, &str, &str) {
    (&q.partner, q.detail.incentive_month, entry_text(q.detail.entry), entry_id(&q.detail))
}

fn entry_id(d: &IncentiveDetail) -> &str {
    d.refund_id.as_deref().unwrap_or(&d.record_id)
}

/// How an entry kind is stored: its API name.
fn entry_text(entry: DetailEntry) -> &'static str {
    static TEXT: LazyLock<[String; 2]> =
        LazyLock::new(|| [to_text(&DetailEntry::Consumption), to_text(&DetailEntry::Refund)]);
    &TEXT[usize::from(entry == DetailEntry::Refund)]
}

/// One row's values, as written (the order of [`WRITTEN`]).
struct Written<'a> {
    partner: &'a str,
    incentive_month: String,
    entry: &'static str,
    entry_id: &'a str,
    record_id: &'a str,
    customer_id: &'a Option<String>,
    product: &'a Option<String>,
    consumption_month: Option<String>,
    amount: String,
    currency: &'a str,
    rate: Option<String>,
    incentive: String,
    refunded: String,
    line_reason: Option<String>,
    position: i64,
}

impl<'a> Written<'a> {
    fn of(q: &'a Queued) -> Written<'a> {
        let d = &q.detail;
        Written {
            partner: &q.partner,
            incentive_month: d.incentive_month.to_string(),
            entry: entry_text(d.entry),
            entry_id: entry_id(d),
            record_id: &d.record_id,
            customer_id: &d.customer_id,
            product: &d.product,
            consumption_month: d.consumption_month.map(|m| m.to_string()),
            amount: d.amount.amount.to_string(),
            currency: d.amount.currency.as_str(),
            rate: d.rate.map(|r| r.value().to_string()),
            incentive: d.incentive.amount.to_string(),
            refunded: d.refunded.amount.to_string(),
            line_reason: d.line_reason.map(|r| to_text(&r)),
            position: q.position as i64,
        }
    }

    fn params(&self) -> [&dyn Param; 15] {
        [
            &self.partner,
            &self.incentive_month,
            &self.entry,
            &self.entry_id,
            &self.record_id,
            self.customer_id,
            self.product,
            &self.consumption_month,
            &self.amount,
            &self.currency,
            &self.rate,
            &self.incentive,
            &self.refunded,
            &self.line_reason,
            &self.position,
        ]
    }
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
    incentive_month: Month,
    entry: DetailEntry,
    id: &str,
) -> Result<Option<(IncentiveDetail, u64)>, ProjectionError> {
    let found = conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM incentive_details \
             WHERE partner_id = ?1 AND incentive_month = ?2 AND entry = ?3 AND entry_id = ?4"
        ),
        params![partner, incentive_month.to_string(), entry_text(entry), id],
        row,
    )?;
    found.map(detail).transpose()
}

/// Every entry listed in `partner`'s detail of `month` in `currency` (counted there, or
/// consumed there and counted later), in log order: those counted there by the key, those
/// counted elsewhere by the rollover index (the two sets are disjoint).
pub fn of_month(
    conn: &dyn Db,
    partner: &str,
    month: Month,
    currency: Currency,
) -> Result<Vec<IncentiveDetail>, ProjectionError> {
    conn.query_map(&of_month_sql(conn.dialect()), params![partner, month.to_string(), currency.as_str()], |r| {
        detail(row(r)?).map(|(d, _)| d)
    })
}

fn of_month_sql(dialect: Dialect) -> String {
    // Without statistics SQLite would rather scan all the partner's rows by the key than
    // use the partial index: it is named (PostgreSQL chooses by its statistics).
    let rollover = if dialect == Dialect::Sqlite { " INDEXED BY incentive_details_rollover" } else { "" };
    format!(
        "SELECT {COLUMNS} FROM incentive_details WHERE partner_id = ?1 AND incentive_month = ?2 AND currency = ?3 \
         UNION ALL \
         SELECT {COLUMNS} FROM incentive_details{rollover} WHERE partner_id = ?1 AND consumption_month = ?2 \
         AND consumption_month <> incentive_month AND currency = ?3 \
         ORDER BY position, entry, entry_id"
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

    #[test]
    fn a_months_detail_is_read_by_the_key_and_the_rollover_index_not_by_a_scan_of_the_partner() {
        let kit = Kit::new();
        let conn = kit.conn();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", of_month_sql(Dialect::Sqlite)))
            .unwrap()
            .query_map(rusqlite::params!["P1", "2026-07", "CNY"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .filter(|step| step.starts_with("SEARCH") || step.starts_with("SCAN"))
            .collect();
        assert_eq!(
            plan,
            [
                "SEARCH incentive_details USING PRIMARY KEY (partner_id=? AND incentive_month=?)",
                "SEARCH incentive_details USING INDEX incentive_details_rollover (partner_id=? AND consumption_month=?)",
            ]
        );
    }

    #[test]
    fn lines_and_their_refunds_in_one_batch_read_as_when_applied_one_by_one() {
        // Lines and refunds of them, one of them counted a month after its consumption (its
        // refund finds it under the month it is counted in).
        let events = vec![
            line("R1", "2026-07", "2026-07", "100.00"),
            line("R2", "2026-07", "2026-08", "80.00"),
            refund("RF1", "R1", "2026-07", "2026-07", "10.00"),
            refund("RF2", "R2", "2026-08", "2026-09", "30.00"),
            refund("RF3", "R1", "2026-07", "2026-08", "5.00"),
            line("R3", "2026-08", "2026-08", "40.00"),
        ];
        let mut one_batch = Kit::new();
        one_batch.push(STREAM, &events);
        let mut one_by_one = Kit::new();
        for e in &events {
            one_by_one.push(STREAM, std::slice::from_ref(e));
        }
        let read = |kit: &Kit, m: &str| of_month(&kit.conn(), "P1", month(m), Currency::CNY).unwrap();
        for m in ["2026-07", "2026-08", "2026-09"] {
            assert_eq!(read(&one_batch, m), read(&one_by_one, m), "{m}");
        }
        let july = read(&one_batch, "2026-07");
        let ids: Vec<_> = july.iter().map(|d| (entry_id(d), d.refunded.amount.to_string())).collect();
        assert_eq!(ids, [("R1", "15.00".into()), ("R2", "30.00".into()), ("RF1", "10.00".into())]);
        let august: Vec<_> = read(&one_batch, "2026-08").iter().map(|d| entry_id(d).to_string()).collect();
        assert_eq!(august, ["R2", "RF3", "R3"]);
    }
}
