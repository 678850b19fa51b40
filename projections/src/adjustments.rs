//! Adjustment records (调账记录, docs/DOMAIN.md §3): every allocation and reclaim, listed with
//! filters and paging. Who may see a record is the domain's rule (`funds::visible_to`),
//! applied to every candidate row, so the read side cannot widen it.

use chrono::{DateTime, Utc};
use ledger_core::RecordedEvent;
use ledger_domain::funds::{visible_to, AdjustmentKind, AdjustmentRecord, CounterpartyType, Funds, FundsEvent};
use ledger_domain::{stream_family, Decider};

use crate::codec::to_text;
use crate::runner::Projection;
use crate::sql::{params, Db};
use crate::ProjectionError;

pub struct Adjustments;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS adjustment_records (
    position INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL,
    distributor_id TEXT NOT NULL,
    operator_partner_id TEXT NOT NULL,
    counterparty_type TEXT NOT NULL,
    counterparty_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    record TEXT NOT NULL            -- the record as JSON, docs/API.md's shape
);
CREATE INDEX IF NOT EXISTS adjustment_records_tree ON adjustment_records (distributor_id, occurred_at);
";

impl Projection for Adjustments {
    fn name(&self) -> &'static str {
        "adjustments"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["adjustment_records"]
    }

    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if stream_family(&e.stream) != Funds::FAMILY
            || !matches!(e.event_type.as_str(), "FundsAllocated" | "FundsReclaimed" | "FundsUnbindReclaimed")
        {
            return Ok(());
        }
        let event: FundsEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| ProjectionError::Decode { position: e.position, reason: err.to_string() })?;
        let Some(r) = event.adjustment_record() else { return Ok(()) };
        tx.write(
            "INSERT INTO adjustment_records (position, record_id, distributor_id, operator_partner_id, \
             counterparty_type, counterparty_id, kind, occurred_at, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
            e.position as i64,
            r.record_id,
            r.distributor_id,
            r.operator_partner_id,
            serde_json::to_value(r.counterparty.kind).expect("serialises").as_str().unwrap_or_default(),
            r.counterparty.id,
            kind_str(r.kind),
            r.occurred_at.timestamp_micros(),
            serde_json::to_string(&r).expect("serialises"),
            ],
        )?;
        Ok(())
    }
}

fn kind_str(k: AdjustmentKind) -> &'static str {
    match k {
        AdjustmentKind::Allocate => "allocate",
        AdjustmentKind::Reclaim => "reclaim",
        AdjustmentKind::UnbindReclaim => "unbind_reclaim",
    }
}

/// Filters of `GET /v1/adjustment-records` and of the vendor's adjust-records query;
/// `None` is no filter.
#[derive(Debug, Clone, Default)]
pub struct AdjustmentFilter {
    pub kind: Option<AdjustmentKind>,
    pub counterparty_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The record's id (the vendor's `trans_id`).
    pub record_id: Option<String>,
    pub counterparty_type: Option<CounterpartyType>,
    /// Only the records this partner made.
    pub operator_partner_id: Option<String>,
}

/// The records `viewer` may see (its distributor `viewer_parent` when it is a reseller),
/// newest first, one page of them, and how many there are in all. `viewer` `None` is an
/// admin or auditor: everything.
pub fn list(
    conn: &dyn Db,
    viewer: Option<(&str, Option<&str>)>,
    filter: &AdjustmentFilter,
    offset: usize,
    limit: usize,
) -> Result<(Vec<AdjustmentRecord>, usize), ProjectionError> {
    let tree = viewer.map(|(v, parent)| parent.unwrap_or(v).to_string());
    let rows = conn.query_map(
        "SELECT record FROM adjustment_records WHERE (CAST(?1 AS TEXT) IS NULL OR distributor_id = ?1) \
         AND (CAST(?2 AS TEXT) IS NULL OR kind = ?2) AND (CAST(?3 AS TEXT) IS NULL OR counterparty_id = ?3) \
         AND occurred_at >= ?4 AND occurred_at <= ?5 AND (CAST(?6 AS TEXT) IS NULL OR record_id = ?6) \
         AND (CAST(?7 AS TEXT) IS NULL OR counterparty_type = ?7) AND (CAST(?8 AS TEXT) IS NULL OR operator_partner_id = ?8) \
         ORDER BY position DESC",
        params![
            tree,
            filter.kind.map(kind_str),
            filter.counterparty_id,
            filter.from.map_or(i64::MIN, |t| t.timestamp_micros()),
            filter.to.map_or(i64::MAX, |t| t.timestamp_micros()),
            filter.record_id,
            filter.counterparty_type.map(|t| to_text(&t)),
            filter.operator_partner_id,
        ],
        |r| r.get::<String>(0),
    )?;
    let mut visible = vec![];
    for row in rows {
        let record: AdjustmentRecord =
            serde_json::from_str(&row).map_err(|e| ProjectionError::Decode { position: 0, reason: e.to_string() })?;
        if viewer.is_none_or(|(v, parent)| visible_to(&record, v, parent)) {
            visible.push(record);
        }
    }
    let total = visible.len();
    Ok((visible.into_iter().skip(offset).take(limit).collect(), total))
}
