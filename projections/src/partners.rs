//! The partner registry: one row per registered partner (kind, level, the reseller →
//! distributor link and when it was made), so a distributor can list its resellers
//! (`POST /v2/partners/indirect-partners/query`, docs/API.md's vendor-compatible API) without
//! reading every partner stream. The rules about partners stay in the `partner` stream;
//! this only copies the facts its events state.

use chrono::{DateTime, Utc};
use ledger_core::RecordedEvent;
use ledger_domain::partner::{PartnerEvent, PartnerKind, PartnerLevel};
use ledger_domain::stream_family;
use serde::Serialize;

use crate::codec::{self, enum_of, to_text};
use crate::runner::Projection;
use crate::sql::{params, upsert, Db};
use crate::ProjectionError;

pub struct Partners;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS partners (
    partner_id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    parent_id TEXT,
    level TEXT NOT NULL,
    registered_at INTEGER NOT NULL, -- microseconds since the epoch
    position INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS partners_parent ON partners (parent_id, registered_at);
";

/// A registered partner as its events state it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartnerRow {
    pub partner_id: String,
    pub name: String,
    pub kind: PartnerKind,
    pub parent_id: Option<String>,
    pub level: PartnerLevel,
    /// When it was registered, which for a reseller is when it was linked to its distributor.
    pub registered_at: DateTime<Utc>,
}

impl Projection for Partners {
    fn name(&self) -> &'static str {
        "partners"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["partners"]
    }

    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if stream_family(&e.stream) != "partner"
            || !matches!(e.event_type.as_str(), "PartnerRegistered" | "PartnerLevelChanged")
        {
            return Ok(());
        }
        let event: PartnerEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| codec::undecodable(e, err))?;
        match event {
            PartnerEvent::PartnerRegistered { partner_id, name, kind, parent_id, level, registered_at } => {
                tx.write(
                    &upsert(
                        "partners",
                        "partner_id, name, kind, parent_id, level, registered_at, position",
                        "partner_id",
                    ),
                    params![
                        partner_id,
                        name,
                        to_text(&kind),
                        parent_id,
                        to_text(&level),
                        registered_at.timestamp_micros(),
                        e.position as i64
                    ],
                )?;
            }
            PartnerEvent::PartnerLevelChanged { partner_id, to, .. } => {
                tx.write(
                    "UPDATE partners SET level = ?2, position = ?3 WHERE partner_id = ?1",
                    params![partner_id, to_text(&to), e.position as i64],
                )?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Filters of a distributor's reseller list; `None` is no filter.
#[derive(Debug, Clone, Default)]
pub struct ResellerFilter {
    pub reseller_id: Option<String>,
    /// The reseller's account name, which in the ledger is its partner id.
    pub account_name: Option<String>,
    pub linked_from: Option<DateTime<Utc>>,
    pub linked_to: Option<DateTime<Utc>>,
}

/// The resellers of `distributor_id`, oldest link first, one page of them, and how many
/// match in all.
pub fn resellers(
    conn: &dyn Db,
    distributor_id: &str,
    filter: &ResellerFilter,
    offset: usize,
    limit: usize,
) -> Result<(Vec<PartnerRow>, usize), ProjectionError> {
    let rows = conn.query_map(
        "SELECT partner_id, name, kind, parent_id, level, registered_at FROM partners \
         WHERE parent_id = ?1 AND kind = 'reseller' AND (CAST(?2 AS TEXT) IS NULL OR partner_id = ?2) AND (CAST(?3 AS TEXT) IS NULL OR partner_id = ?3) \
         ORDER BY registered_at, partner_id",
        params![distributor_id, filter.reseller_id, filter.account_name],
        |r| Ok((r.get::<String>(0)?, r.get(1)?, r.get::<String>(2)?, r.get(3)?, r.get::<String>(4)?, r.get(5)?)),
    )?;
    let mut matching = vec![];
    for row in rows {
        let (partner_id, name, kind, parent_id, level, micros): (String, String, String, Option<String>, String, i64) =
            row;
        let registered_at = DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| codec::corrupt("registered_at", &micros.to_string()))?;
        if filter.linked_from.is_some_and(|t| registered_at < t) || filter.linked_to.is_some_and(|t| registered_at > t)
        {
            continue;
        }
        matching.push(PartnerRow {
            partner_id,
            name,
            kind: enum_of("kind", &kind)?,
            parent_id,
            level: enum_of("level", &level)?,
            registered_at,
        });
    }
    let total = matching.len();
    Ok((matching.into_iter().skip(offset).take(limit).collect(), total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{at, Kit};

    fn registered(id: &str, kind: PartnerKind, parent: Option<&str>, when: &str) -> PartnerEvent {
        PartnerEvent::PartnerRegistered {
            partner_id: id.into(),
            name: format!("{id} Ltd"),
            kind,
            parent_id: parent.map(str::to_string),
            level: PartnerLevel::Standard,
            registered_at: at(when),
        }
    }

    #[test]
    fn a_distributor_lists_only_its_own_resellers_with_filters_and_paging() {
        let mut kit = Kit::new();
        kit.push("partner-D1", &[registered("D1", PartnerKind::Distributor, None, "2026-01-01T00:00:00Z")]);
        kit.push("partner-D2", &[registered("D2", PartnerKind::Distributor, None, "2026-01-01T00:00:00Z")]);
        kit.push("partner-R1", &[registered("R1", PartnerKind::Reseller, Some("D1"), "2026-02-01T00:00:00Z")]);
        kit.push("partner-R2", &[registered("R2", PartnerKind::Reseller, Some("D1"), "2026-03-01T00:00:00Z")]);
        kit.push("partner-X", &[registered("X", PartnerKind::Reseller, Some("D2"), "2026-02-15T00:00:00Z")]);
        kit.push(
            "partner-R2",
            &[PartnerEvent::PartnerLevelChanged {
                partner_id: "R2".into(),
                from: PartnerLevel::Standard,
                to: PartnerLevel::Core,
                changed_at: at("2026-04-01T00:00:00Z"),
            }],
        );
        let conn = kit.conn();
        let ids = |f: &ResellerFilter, offset, limit| {
            let (rows, total) = resellers(&conn, "D1", f, offset, limit).unwrap();
            (rows.into_iter().map(|r| (r.partner_id, r.level)).collect::<Vec<_>>(), total)
        };
        let all = ResellerFilter::default();
        assert_eq!(
            ids(&all, 0, 10),
            (vec![("R1".into(), PartnerLevel::Standard), ("R2".into(), PartnerLevel::Core)], 2)
        );
        assert_eq!(ids(&all, 1, 10), (vec![("R2".into(), PartnerLevel::Core)], 2));
        assert_eq!(ids(&all, 0, 1).0.len(), 1);
        let since_feb_10 = ResellerFilter { linked_from: Some(at("2026-02-10T00:00:00Z")), ..Default::default() };
        assert_eq!(ids(&since_feb_10, 0, 10).1, 1);
        let only_x = ResellerFilter { reseller_id: Some("X".into()), ..Default::default() };
        assert_eq!(ids(&only_x, 0, 10).1, 0, "another distributor's reseller is never listed");
        let by_name = ResellerFilter { account_name: Some("R1".into()), ..Default::default() };
        assert_eq!(ids(&by_name, 0, 10).1, 1);
    }
}
