//! Coupon quota, cash coupons, their use and reclaim (docs/DOMAIN.md §4).

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::Money;
use ledger_domain::coupons::{
    self, CouponCommand, CouponEvent, Coupons, CouponsState, GrantQuota, IssueCoupon, ReclaimCoupons, ReclaimItem,
    UseCoupon,
};
use ledger_domain::DomainError;

use crate::{AppError, CommandContext, Ledger, Outcome};

impl Ledger {
    pub async fn coupons(&self, partner_id: &str) -> Result<std::sync::Arc<CouponsState>, AppError> {
        Ok(self.exec.load_shared::<Coupons>(&coupons::stream_id(partner_id)).await?.0)
    }

    pub async fn grant_coupon_quota(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        amount: Money,
    ) -> Result<Outcome<CouponEvent>, AppError> {
        self.partner(partner_id).await?;
        let grant_id = format!("CQ-{}", uuid::Uuid::now_v7().simple());
        let command = CouponCommand::GrantQuota(GrantQuota { partner_id: partner_id.to_string(), grant_id, amount });
        self.exec.execute::<Coupons>(&coupons::stream_id(partner_id), command, ctx).await
    }

    pub async fn issue_coupon(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        coupon_id: String,
        customer_id: String,
        amount: Money,
        expires_at: DateTime<Utc>,
    ) -> Result<Outcome<CouponEvent>, AppError> {
        validate_id("coupon_id", &coupon_id)?;
        validate_id("customer_id", &customer_id)?;
        let association = self.association_at(&customer_id, ctx.now).await?;
        let command = CouponCommand::IssueCoupon(IssueCoupon {
            partner_id: partner_id.to_string(),
            coupon_id,
            customer_id,
            amount,
            expires_at,
            association,
        });
        self.exec.execute::<Coupons>(&coupons::stream_id(partner_id), command, ctx).await
    }

    pub async fn use_coupon(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        coupon_id: String,
        usage_id: String,
        amount: Money,
        used_at: DateTime<Utc>,
    ) -> Result<Outcome<CouponEvent>, AppError> {
        validate_id("usage_id", &usage_id)?;
        let command = CouponCommand::UseCoupon(UseCoupon { coupon_id, usage_id, amount, used_at });
        self.exec.execute::<Coupons>(&coupons::stream_id(partner_id), command, ctx).await
    }

    /// Reclaims a batch: each item's outcome, and the append of those that succeeded. The
    /// outcomes are computed on the very state the append expects.
    pub async fn reclaim_coupons(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        coupon_ids: Vec<String>,
    ) -> Result<(Vec<(String, Result<Money, DomainError>)>, Outcome<CouponEvent>), AppError> {
        let state = self.coupons(partner_id).await?;
        let mut items = Vec::with_capacity(coupon_ids.len());
        for coupon_id in coupon_ids {
            let association = match state.coupons.get(&coupon_id) {
                Some(c) => self.association_at(&c.customer_id, ctx.now).await?,
                None => None,
            };
            items.push(ReclaimItem { coupon_id, association });
        }
        let outcomes = std::sync::Mutex::new(vec![]);
        let now = ctx.now;
        let outcome = self
            .exec
            .execute_with::<Coupons>(
                &coupons::stream_id(partner_id),
                |state| {
                    *outcomes.lock().expect("outcomes") = coupons::reclaim_outcomes(state, &items, now);
                    Ok(CouponCommand::ReclaimCoupons(ReclaimCoupons { items: items.clone() }))
                },
                ctx,
            )
            .await?;
        let outcomes = match &outcome {
            // Replayed by its request id: the first call's answer, not today's.
            Outcome::Replayed { appended } => self.replayed_reclaims(partner_id, appended, &items, now).await?,
            _ => outcomes.into_inner().expect("outcomes"),
        };
        Ok((outcomes, outcome))
    }

    /// The item outcomes of a reclaim batch replayed by its request id: the coupons its
    /// stored events reclaimed succeed with their amounts; the other items failed then and
    /// fail now for the same reason (a failed item changed nothing).
    async fn replayed_reclaims(
        &self,
        partner_id: &str,
        appended: &ledger_store::Appended,
        items: &[ReclaimItem],
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, Result<Money, DomainError>)>, AppError> {
        let count = (appended.last_position + 1).saturating_sub(appended.first_position) as usize;
        let stream = coupons::stream_id(partner_id);
        let mut reclaimed = std::collections::BTreeMap::new();
        for e in self.exec.store().read_all(appended.first_position, count).await? {
            if e.stream != stream {
                continue;
            }
            let event: CouponEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
                .map_err(|err| AppError::Decode { position: e.position, reason: err.to_string() })?;
            if let CouponEvent::CouponReclaimed { coupon_id, amount, .. } = event {
                reclaimed.insert(coupon_id, amount);
            }
        }
        let state = self.coupons(partner_id).await?;
        Ok(coupons::reclaim_outcomes(&state, items, now)
            .into_iter()
            .map(|(coupon_id, now_outcome)| match reclaimed.remove(&coupon_id) {
                Some(amount) => (coupon_id, Ok(amount)),
                None => (coupon_id, now_outcome),
            })
            .collect())
    }
}
