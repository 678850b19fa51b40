//! Which partner an id belongs to: routes such as `POST /v1/coupons/{id}/usage` or
//! `POST /v1/withdrawals/{id}/approve` name only the thing, while its events live in its
//! partner's stream. The first event that carries an id field records the pair.
//! Consumption `record_id`s are not here: the store's idempotency key
//! `consumption:{record_id}` already points at the line (see `Ledger::partner_of_record`),
//! and the log is mostly consumption lines.

use ledger_core::RecordedEvent;
use ledger_domain::coupons::Coupons;
use ledger_domain::incentives::Incentives;
use ledger_domain::lab_points::LabPoints;
use ledger_domain::rebate::Rebate;
use ledger_domain::Decider;

use crate::runner::Projection;
use crate::sql::{params, Db};
use crate::ProjectionError;

/// The id fields worth an entry, by the family of the stream that holds them.
pub const ID_FIELDS: &[(&str, &str)] = &[
    (Incentives::FAMILY, "opportunity_id"),
    (Incentives::FAMILY, "payment_id"),
    (Coupons::FAMILY, "coupon_id"),
    (Rebate::FAMILY, "withdrawal_id"),
    (LabPoints::FAMILY, "application_id"),
];

pub struct Lookup;

#[derive(serde::Deserialize)]
struct Ids<'a> {
    #[serde(borrow)]
    partner_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    opportunity_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    payment_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    coupon_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    withdrawal_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    application_id: Option<std::borrow::Cow<'a, str>>,
}

impl Ids<'_> {
    fn get(&self, field: &str) -> Option<&str> {
        let v = match field {
            "opportunity_id" => &self.opportunity_id,
            "payment_id" => &self.payment_id,
            "coupon_id" => &self.coupon_id,
            "withdrawal_id" => &self.withdrawal_id,
            "application_id" => &self.application_id,
            _ => return None,
        };
        v.as_deref()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS lookup (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
";

impl Projection for Lookup {
    fn name(&self) -> &'static str {
        "lookup"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["lookup"]
    }

    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let family = ledger_domain::stream_family(&e.stream);
        let fields: Vec<&str> = ID_FIELDS.iter().filter(|(f, _)| *f == family).map(|(_, k)| *k).collect();
        if fields.is_empty() {
            return Ok(());
        }
        // A payload without any of the keys (a consumption line has none) needs no parsing:
        // the stored JSON spells each key it has as `"key":`.
        if !fields.iter().any(|f| has_key(&e.data, f)) {
            return Ok(());
        }
        // Only the id fields are read (borrowed, no tree of values): the log is mostly
        // consumption lines and this runs for each.
        let ids: Ids<'_> = serde_json::from_str(&e.data)
            .map_err(|err| ProjectionError::Decode { position: e.position, reason: err.to_string() })?;
        let Some(partner) = ids.partner_id.as_deref() else { return Ok(()) };
        for field in fields {
            if let Some(id) = ids.get(field) {
                tx.write(
                    "INSERT INTO lookup (kind, id, partner_id, stream) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![field, id, partner, e.stream],
                )?;
            }
        }
        Ok(())
    }
}

/// Whether the JSON text may hold the key `field` (no false negatives: a key is always
/// written `"field"`; a false positive only costs the parse that follows).
fn has_key(data: &str, field: &str) -> bool {
    data.match_indices(field).any(|(i, _)| data[..i].ends_with('"') && data[i + field.len()..].starts_with('"'))
}

/// The partner that owns `id` of `kind` (one of [`ID_FIELDS`]' names).
pub fn partner_of(conn: &dyn Db, kind: &str, id: &str) -> Result<Option<String>, ProjectionError> {
    conn.query_row("SELECT partner_id FROM lookup WHERE kind = ?1 AND id = ?2", params![kind, id], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::has_key;

    #[test]
    fn a_payload_is_parsed_only_when_it_may_hold_an_id_key() {
        assert!(has_key(r#"{"partner_id":"P1","payment_id":"QP-1"}"#, "payment_id"));
        assert!(!has_key(r#"{"partner_id":"P1","record_id":"R1"}"#, "payment_id"));
        assert!(!has_key(r#"{"note":"the payment_id_x"}"#, "payment_id"));
        // A value that looks like the key is a false positive (then parsed), never a miss.
        assert!(has_key(r#"{"note":"\"payment_id"}"#, "payment_id"));
    }
}
