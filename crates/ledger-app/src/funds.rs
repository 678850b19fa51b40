//! Fund pools, allocations and reclaims (docs/DOMAIN.md §3) and coupons (§4).

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::Money;
use ledger_domain::coupons::{
    self, CouponCommand, CouponEvent, Coupons, CouponsState, GrantQuota, IssueCoupon, ReclaimCoupons, ReclaimItem,
    UseCoupon,
};
use ledger_domain::funds::{
    self, Adjustment, Counterparty, CounterpartyType, CreditFunds, DrawDown, Funds, FundsCommand, FundsEvent,
    FundsState,
};
use ledger_domain::guard::invalid;
use ledger_domain::partner::PartnerKind;
use ledger_domain::DomainError;

use crate::{AppError, CommandContext, Ledger, Outcome};

/// Allocate or reclaim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustmentDirection {
    Allocate,
    Reclaim,
}

impl Ledger {
    pub async fn funds(&self, distributor_id: &str) -> Result<std::sync::Arc<FundsState>, AppError> {
        Ok(self.exec.load_shared::<Funds>(&funds::stream_id(distributor_id)).await?.0)
    }

    /// The distributor whose fund tree a partner belongs to: itself, or a reseller's parent.
    /// `None` for a solution provider (it has no fund pool).
    pub async fn fund_tree_of(&self, partner_id: &str) -> Result<Option<String>, AppError> {
        let partner = self.partner(partner_id).await?;
        let p = partner.profile.expect("partner() answers registered partners");
        Ok(match p.kind {
            PartnerKind::Distributor => Some(p.partner_id),
            PartnerKind::Reseller => p.parent_id,
            PartnerKind::SolutionProvider => None,
        })
    }

    pub async fn credit_funds(
        &self,
        ctx: &CommandContext,
        distributor_id: &str,
        amount: Money,
    ) -> Result<Outcome<FundsEvent>, AppError> {
        let partner = self.partner(distributor_id).await?;
        if partner.profile.as_ref().map(|p| p.kind) != Some(PartnerKind::Distributor) {
            return Err(invalid("partner_id", "only a distributor holds a fund pool").into());
        }
        let credit_id = format!("FC-{}", uuid::Uuid::now_v7().simple());
        let command =
            FundsCommand::CreditFunds(CreditFunds { distributor_id: distributor_id.to_string(), credit_id, amount });
        self.exec.execute::<Funds>(&funds::stream_id(distributor_id), command, ctx).await
    }

    /// An allocation or reclaim by `operator` (a distributor or a reseller). The rule "its
    /// own customers / its own resellers" is the domain's; here we find the tree and who the
    /// counterparty belongs to now.
    pub async fn adjust(
        &self,
        ctx: &CommandContext,
        direction: AdjustmentDirection,
        operator: &str,
        counterparty: Counterparty,
        amount: Money,
        remark: Option<String>,
    ) -> Result<(String, Outcome<FundsEvent>), AppError> {
        validate_id("counterparty.id", &counterparty.id)?;
        let Some(distributor_id) = self.fund_tree_of(operator).await? else {
            return Err(invalid("partner_id", "a solution provider has no fund pool to allocate from").into());
        };
        let counterparty_parent = match counterparty.kind {
            CounterpartyType::Customer => self.association_at(&counterparty.id, ctx.now).await?.map(|a| a.partner_id),
            CounterpartyType::Reseller => match self.partner(&counterparty.id).await {
                Ok(p) => p.profile.filter(|p| p.kind == PartnerKind::Reseller).and_then(|p| p.parent_id),
                Err(AppError::Domain(DomainError::NotFound { .. })) => None,
                Err(e) => return Err(e),
            },
        };
        let record_id = format!("ADJ-{}", uuid::Uuid::now_v7().simple());
        let adjustment = Adjustment {
            record_id: record_id.clone(),
            distributor_id: distributor_id.clone(),
            operator_partner_id: operator.to_string(),
            counterparty,
            amount,
            remark,
            actor: ctx.meta.actor.principal.clone(),
            counterparty_parent,
        };
        let command = match direction {
            AdjustmentDirection::Allocate => FundsCommand::Allocate(adjustment),
            AdjustmentDirection::Reclaim => FundsCommand::Reclaim(adjustment),
        };
        let outcome = self.exec.execute::<Funds>(&funds::stream_id(&distributor_id), command, ctx).await?;
        let record_id = self.created_id(&outcome, "record_id").await?.unwrap_or(record_id);
        Ok((record_id, outcome))
    }

    /// A resale customer's consumption draws down its allocated balance (§3), in the fund
    /// tree of the customer's partner; idempotent by the line's `record_id`. Answers the
    /// position of the drawdown when one was stored.
    pub(crate) async fn draw_down(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        customer_id: &str,
        record_id: &str,
        amount: Money,
    ) -> Result<Option<u64>, AppError> {
        let Some(distributor_id) = self.fund_tree_of(partner_id).await? else { return Ok(None) };
        let command = FundsCommand::DrawDown(DrawDown {
            record_id: record_id.to_string(),
            customer_id: customer_id.to_string(),
            amount,
            consumed_at: ctx.now,
        });
        let ctx = CommandContext { idempotency: None, ..ctx.clone() };
        let outcome = self.exec.execute::<Funds>(&funds::stream_id(&distributor_id), command, &ctx).await?;
        Ok(outcome.is_stored().then(|| outcome.position()).flatten())
    }

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
