//! Coupons (docs/API.md's coupon): one row per coupon with its partner, the domain's [`Coupon`]
//! created by [`Coupon::issued`] and changed by [`Coupon::apply`], the code the
//! aggregate's evolve runs. The status depends on the time of the read (expiry is computed,
//! not recorded), so it is not a column: a read gives [`Coupon::view`] at its own time.

use chrono::{DateTime, Utc};
use ledger_core::{Money, RecordedEvent};
use ledger_domain::coupons::{self, Coupon, CouponEvent, CouponView};
use ledger_domain::{stream_family, Decider};

use crate::codec::{self, decimal, parsed, time, time_of};
use crate::runner::Projection;
use crate::sql::{params, upsert, Db, Row as SqlRow};
use crate::ProjectionError;

pub const EVENT_TYPES: &[&str] = &["CouponIssued", "CouponUsed", "CouponReclaimed"];

pub struct Coupons;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS coupons (
    coupon_id TEXT NOT NULL PRIMARY KEY,
    partner_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    amount TEXT NOT NULL,           -- exact
    currency TEXT NOT NULL,
    remaining TEXT NOT NULL,        -- exact
    expires_at TEXT NOT NULL,       -- RFC 3339
    issued_at TEXT NOT NULL,
    reclaimed_at TEXT,
    position INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS coupons_partner ON coupons (partner_id, coupon_id);
";

const COLUMNS: &str =
    "coupon_id, partner_id, customer_id, amount, currency, remaining, expires_at, issued_at, reclaimed_at, position";

impl Projection for Coupons {
    fn name(&self) -> &'static str {
        "coupons"
    }

    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn tables(&self) -> &'static [&'static str] {
        &["coupons"]
    }

    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        if stream_family(&e.stream) != coupons::Coupons::FAMILY || !EVENT_TYPES.contains(&e.event_type.as_str()) {
            return Ok(());
        }
        let event: CouponEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| codec::undecodable(e, err))?;
        let coupon = match Coupon::issued(&event) {
            Some(c) => c,
            None => {
                let Some(id) = event.coupon_id() else { return Ok(()) };
                let Some((_, mut c, _)) = load(tx, id)? else { return Ok(()) };
                c.apply(&event);
                c
            }
        };
        tx.write(
            &upsert("coupons", COLUMNS, "coupon_id"),
            params![
                coupon.coupon_id,
                event.partner_id(),
                coupon.customer_id,
                coupon.amount.amount.to_string(),
                coupon.amount.currency.as_str(),
                coupon.remaining.to_string(),
                time(&coupon.expires_at),
                time(&coupon.issued_at),
                coupon.reclaimed_at.as_ref().map(time),
                e.position as i64,
            ],
        )?;
        Ok(())
    }
}

fn read_row(r: &SqlRow<'_>) -> Result<(String, Coupon, u64), ProjectionError> {
    let cells: Vec<String> = (0..8).map(|i| r.get(i)).collect::<Result<_, _>>()?;
    let reclaimed_at: Option<String> = r.get(8)?;
    let position: i64 = r.get(9)?;
    {
        let currency = parsed("currency", &cells[4])?;
        Ok((
            cells[1].clone(),
            Coupon {
                coupon_id: cells[0].clone(),
                customer_id: cells[2].clone(),
                amount: Money::new(decimal("amount", &cells[3])?, currency),
                remaining: decimal("remaining", &cells[5])?,
                expires_at: time_of("expires_at", &cells[6])?,
                issued_at: time_of("issued_at", &cells[7])?,
                reclaimed_at: reclaimed_at.as_deref().map(|t| time_of("reclaimed_at", t)).transpose()?,
            },
            position as u64,
        ))
    }
}

/// A coupon's row: its partner, the coupon, and the position of its last change.
pub fn load(conn: &dyn Db, coupon_id: &str) -> Result<Option<(String, Coupon, u64)>, ProjectionError> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM coupons WHERE coupon_id = ?1"), params![coupon_id], read_row)
}

/// docs/API.md's coupon as it stands at `at`.
pub fn view(conn: &dyn Db, coupon_id: &str, at: DateTime<Utc>) -> Result<Option<CouponView>, ProjectionError> {
    Ok(load(conn, coupon_id)?.map(|(_, c, _)| c.view(at)))
}

/// One page of `partner`'s coupons in coupon id order (the aggregate's) as they stand at
/// `at`, and how many it has in all.
pub fn page(
    conn: &dyn Db,
    partner: &str,
    at: DateTime<Utc>,
    offset: usize,
    limit: usize,
) -> Result<(Vec<CouponView>, usize), ProjectionError> {
    let total: i64 = conn
        .query_row("SELECT count(*) FROM coupons WHERE partner_id = ?1", params![partner], |r| r.get(0))?
        .unwrap_or(0);
    let items = conn.query_map(
        &format!("SELECT {COLUMNS} FROM coupons WHERE partner_id = ?1 ORDER BY coupon_id LIMIT ?2 OFFSET ?3"),
        params![partner, limit as i64, offset as i64],
        |r| read_row(r).map(|(_, c, _)| c.view(at)),
    )?;
    Ok((items, total as usize))
}

/// Every coupon of `partner` (the domain's entity, so a caller can filter on what the
/// vendor-compatible API filters on), in coupon id order.
pub fn all_of(conn: &dyn Db, partner: &str) -> Result<Vec<Coupon>, ProjectionError> {
    conn.query_map(
        &format!("SELECT {COLUMNS} FROM coupons WHERE partner_id = ?1 ORDER BY coupon_id"),
        params![partner],
        |r| read_row(r).map(|(_, c, _)| c),
    )
}

#[cfg(test)]
mod tests {
    use ledger_domain::coupons::{coupon_view, CouponStatus, Coupons as CouponsAggregate};
    use rust_decimal::Decimal;

    use super::*;
    use crate::testkit::{at, state, Kit};

    const STREAM: &str = "coupons-P1";

    fn cny(s: &str) -> Money {
        Money::new(Decimal::from_str_exact(s).unwrap(), ledger_core::Currency::CNY)
    }

    fn issued(id: &str, amount: &str) -> CouponEvent {
        CouponEvent::CouponIssued {
            partner_id: "P1".into(),
            coupon_id: id.into(),
            customer_id: "C1".into(),
            amount: cny(amount),
            expires_at: at("2026-12-31T16:00:00.123456Z"),
            issued_at: at("2026-07-01T00:00:00Z"),
        }
    }

    fn used(id: &str, usage: &str, amount: &str) -> CouponEvent {
        CouponEvent::CouponUsed {
            partner_id: "P1".into(),
            coupon_id: id.into(),
            customer_id: "C1".into(),
            usage_id: usage.into(),
            amount: cny(amount),
            used_at: at("2026-07-10T00:00:00Z"),
        }
    }

    fn reclaimed(id: &str, amount: &str) -> CouponEvent {
        CouponEvent::CouponReclaimed {
            partner_id: "P1".into(),
            coupon_id: id.into(),
            customer_id: "C1".into(),
            amount: cny(amount),
            reclaimed_at: at("2026-07-20T00:00:00Z"),
        }
    }

    #[test]
    fn a_coupon_partly_used_then_reclaimed_reads_like_the_aggregate_at_any_time() {
        let mut kit = Kit::new();
        let events = vec![
            CouponEvent::CouponQuotaGranted {
                partner_id: "P1".into(),
                grant_id: "G1".into(),
                amount: cny("1000.00"),
                granted_at: at("2026-07-01T00:00:00Z"),
            },
            issued("K1", "100.00"),
            issued("K2", "50.00"),
            issued("K0", "10.00"),
            used("K1", "U1", "30.00"),
            used("K0", "U2", "10.00"),
        ];
        kit.push(STREAM, &events[..3]);
        kit.push(STREAM, &events[3..]);
        let now = at("2026-08-01T00:00:00Z");
        let k1 = view(&kit.conn(), "K1", now).unwrap().unwrap();
        assert_eq!((k1.remaining, k1.status), (cny("70.00"), CouponStatus::Active));
        assert_eq!(view(&kit.conn(), "K0", now).unwrap().unwrap().status, CouponStatus::UsedUp);

        let mut events = events;
        events.push(reclaimed("K1", "70.00"));
        kit.push(STREAM, &events[6..]);
        let s = state::<CouponsAggregate>(&events);
        let later = at("2027-01-01T00:00:00Z");
        for t in [now, at("2026-12-31T16:00:00.123455Z"), at("2026-12-31T16:00:00.123456Z"), later] {
            for id in ["K0", "K1", "K2", "K9"] {
                assert_eq!(view(&kit.conn(), id, t).unwrap(), coupon_view(&s, id, t), "{id} at {t}");
            }
        }
        let k1 = view(&kit.conn(), "K1", now).unwrap().unwrap();
        assert_eq!((k1.remaining, k1.status), (cny("0.00"), CouponStatus::Reclaimed));
        assert_eq!(view(&kit.conn(), "K2", later).unwrap().unwrap().status, CouponStatus::Expired);

        let (page1, total) = page(&kit.conn(), "P1", now, 1, 1).unwrap();
        assert_eq!((page1.len(), page1[0].coupon_id.as_str(), total), (1, "K1", 3), "coupon id order");
        assert_eq!(page(&kit.conn(), "P2", now, 0, 50).unwrap(), (vec![], 0));
    }
}
