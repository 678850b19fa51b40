//! Coupon quota, cash coupons, their use and reclaim (docs/DOMAIN.md §4).

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::Money;
use ledger_domain::coupons::{
    self, AnswerCouponIssue, CouponCommand, CouponEvent, Coupons, CouponsState, GrantQuota, IssueCoupon, IssueResult,
    ReclaimCoupons, ReclaimItem, ReclaimResult, UseCoupon,
};
use ledger_domain::DomainError;

use crate::{AppError, CommandContext, Ledger, Outcome};

/// Coupons of one amount to several customers out of one quota grant (the vendor's
/// CreatePartnerCoupons); the amount takes the grant's currency.
#[derive(Debug, Clone)]
pub struct IssueCoupons {
    pub partner_id: String,
    pub quota_id: String,
    pub customer_ids: Vec<String>,
    pub amount: rust_decimal::Decimal,
    pub expires_at: DateTime<Utc>,
}

impl Ledger {
    pub async fn coupons(&self, partner_id: &str) -> Result<std::sync::Arc<CouponsState>, AppError> {
        Ok(self.exec.load_shared::<Coupons>(&coupons::stream_id(partner_id)).await?.0)
    }

    /// Adds to a partner's coupon quota; answers the grant's id (its `quota_id`).
    pub async fn grant_coupon_quota(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        amount: Money,
    ) -> Result<(String, Outcome<CouponEvent>), AppError> {
        self.partner(partner_id).await?;
        let grant_id = format!("CQ-{}", uuid::Uuid::now_v7().simple());
        let command = CouponCommand::GrantQuota(GrantQuota {
            partner_id: partner_id.to_string(),
            grant_id: grant_id.clone(),
            amount,
        });
        let outcome = self.exec.execute::<Coupons>(&coupons::stream_id(partner_id), command, ctx).await?;
        let grant_id = self.created_id(&outcome, "grant_id").await?.unwrap_or(grant_id);
        Ok((grant_id, outcome))
    }

    /// Issues one coupon of `amount` to each of `customer_ids` out of the quota grant
    /// `quota_id` (its currency), each a command of its own, so one refused customer never
    /// blocks the others. Answers each customer's coupon id or why not, and the position of
    /// the last write. Under a request id each coupon has a key of its own and the answer is
    /// kept after them (`CouponIssueAnswered`, under the id itself): a retry answers the
    /// first answer word for word, never re-deciding a customer that failed.
    pub async fn issue_coupons(
        &self,
        ctx: &CommandContext,
        command: IssueCoupons,
    ) -> Result<(Vec<IssueResult>, Option<u64>), AppError> {
        let IssueCoupons { partner_id, quota_id, customer_ids, amount, expires_at } = command;
        let (partner_id, quota_id) = (partner_id.as_str(), quota_id.as_str());
        let stream = coupons::stream_id(partner_id);
        // A retry under the request id answers what the first call answered, word for word.
        if let Some(Outcome::Replayed { appended }) = self.exec.replay::<CouponEvent>(ctx).await? {
            return Ok((self.issue_answer(ctx, &stream, &appended).await?, Some(appended.last_position)));
        }
        let state = self.coupons(partner_id).await?;
        let currency = state
            .grants
            .get(quota_id)
            .map(|g| g.currency)
            .ok_or_else(|| DomainError::NotFound { what: "coupon quota", id: quota_id.to_string() })?;
        let amount = Money::new(amount, currency);
        let mut results = Vec::with_capacity(customer_ids.len());
        let mut position = None;
        for (i, customer_id) in customer_ids.into_iter().enumerate() {
            let ctx = CommandContext {
                idempotency: ctx.idempotency.as_ref().map(|k| ledger_store::IdempotencyKey {
                    key: format!("{}:{i}", k.key),
                    fingerprint: k.fingerprint,
                }),
                ..ctx.clone()
            };
            let coupon_id = format!("CP-{}", uuid::Uuid::now_v7().simple());
            let command = IssueCoupon {
                partner_id: partner_id.to_string(),
                coupon_id: coupon_id.clone(),
                customer_id: customer_id.clone(),
                amount,
                expires_at,
                association: None,
            };
            let issued = match self.issue_coupon(&ctx, command).await {
                Ok(outcome) => match self.created_id(&outcome, "coupon_id").await {
                    Ok(id) => Ok((id.unwrap_or(coupon_id), outcome.position())),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(AppError::Store(e)) = &issued {
                if !matches!(e, ledger_store::StoreError::IdempotencyConflict { .. }) {
                    return Err(AppError::Store(e.clone()));
                }
            }
            results.push(match issued {
                Ok((coupon_id, at)) => {
                    position = position.max(at);
                    IssueResult { customer_id, coupon_id: Some(coupon_id), error_code: None, error_msg: None }
                }
                Err(e) => IssueResult {
                    customer_id,
                    coupon_id: None,
                    error_code: Some(e.code().to_string()),
                    error_msg: Some(e.to_string()),
                },
            });
        }
        let Some(request_id) = ctx.idempotency.as_ref().and(ctx.meta.request_id.clone()) else {
            return Ok((results, position));
        };
        // The answer is kept after the coupons, under the request id itself.
        let command = CouponCommand::AnswerCouponIssue(AnswerCouponIssue { request_id, results: results.clone() });
        match self.exec.execute::<Coupons>(&stream, command, ctx).await? {
            // A twin of this request kept its answer first.
            Outcome::Replayed { appended } => {
                Ok((self.issue_answer(ctx, &stream, &appended).await?, Some(appended.last_position)))
            }
            outcome => Ok((results, outcome.position().or(position))),
        }
    }

    /// Issues one coupon; the customer's association at issue is looked up here, whatever
    /// the caller set.
    pub async fn issue_coupon(
        &self,
        ctx: &CommandContext,
        mut command: IssueCoupon,
    ) -> Result<Outcome<CouponEvent>, AppError> {
        validate_id("coupon_id", &command.coupon_id)?;
        validate_id("customer_id", &command.customer_id)?;
        command.association = self.association_at(&command.customer_id, ctx.now).await?;
        let stream = coupons::stream_id(&command.partner_id);
        self.exec.execute::<Coupons>(&stream, CouponCommand::IssueCoupon(command), ctx).await
    }

    pub async fn use_coupon(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        command: UseCoupon,
    ) -> Result<Outcome<CouponEvent>, AppError> {
        validate_id("usage_id", &command.usage_id)?;
        self.exec.execute::<Coupons>(&coupons::stream_id(partner_id), CouponCommand::UseCoupon(command), ctx).await
    }

    /// Reclaims a batch: each item's answer, and the append of those that succeeded. The
    /// answers are computed on the very state the append expects. A batch with a request id
    /// keeps its answer in the same append, so a retry under that id answers exactly what
    /// the first call was told.
    pub async fn reclaim_coupons(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        coupon_ids: Vec<String>,
    ) -> Result<(Vec<ReclaimResult>, Outcome<CouponEvent>), AppError> {
        let stream = coupons::stream_id(partner_id);
        if let Some(Outcome::Replayed { appended }) = self.exec.replay::<CouponEvent>(ctx).await? {
            return Ok((self.reclaim_answer(ctx, &stream, &appended).await?, Outcome::Replayed { appended }));
        }
        let state = self.coupons(partner_id).await?;
        let mut items = Vec::with_capacity(coupon_ids.len());
        for coupon_id in coupon_ids {
            let association = match state.coupons.get(&coupon_id) {
                Some(c) => self.association_at(&c.customer_id, ctx.now).await?,
                None => None,
            };
            items.push(ReclaimItem { coupon_id, association });
        }
        let request_id = ctx.idempotency.as_ref().and(ctx.meta.request_id.clone());
        let results = std::sync::Mutex::new(vec![]);
        let now = ctx.now;
        let outcome = self
            .exec
            .execute_with::<Coupons>(
                &stream,
                |state| {
                    *results.lock().expect("results") = coupons::reclaim_results(state, &items, now);
                    Ok(CouponCommand::ReclaimCoupons(ReclaimCoupons {
                        items: items.clone(),
                        request_id: request_id.clone(),
                    }))
                },
                ctx,
            )
            .await?;
        let results = match &outcome {
            // A twin of this request stored its answer first.
            Outcome::Replayed { appended } => self.reclaim_answer(ctx, &stream, appended).await?,
            _ => results.into_inner().expect("results"),
        };
        Ok((results, outcome))
    }

    /// The answer a batch kept under `ctx`'s request id: the first event of its append
    /// `pick` takes. A key whose append holds no such answer was used for another request:
    /// `IDEMPOTENCY_CONFLICT`.
    async fn kept_answer<T>(
        &self,
        ctx: &CommandContext,
        stream: &str,
        appended: &ledger_store::Appended,
        pick: impl Fn(CouponEvent) -> Option<T>,
    ) -> Result<T, AppError> {
        let count = (appended.last_position + 1).saturating_sub(appended.first_position) as usize;
        for e in self.exec.store().read_all(appended.first_position, count).await? {
            if e.stream != stream {
                continue;
            }
            let event: CouponEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
                .map_err(|err| AppError::Decode { position: e.position, reason: err.to_string() })?;
            if let Some(answer) = pick(event) {
                return Ok(answer);
            }
        }
        let key = ctx.idempotency.as_ref().map(|k| k.key.clone()).unwrap_or_default();
        Err(AppError::Store(ledger_store::StoreError::IdempotencyConflict { key }))
    }

    async fn issue_answer(
        &self,
        ctx: &CommandContext,
        stream: &str,
        appended: &ledger_store::Appended,
    ) -> Result<Vec<IssueResult>, AppError> {
        self.kept_answer(ctx, stream, appended, |e| match e {
            CouponEvent::CouponIssueAnswered { results, .. } => Some(results),
            _ => None,
        })
        .await
    }

    async fn reclaim_answer(
        &self,
        ctx: &CommandContext,
        stream: &str,
        appended: &ledger_store::Appended,
    ) -> Result<Vec<ReclaimResult>, AppError> {
        self.kept_answer(ctx, stream, appended, |e| match e {
            CouponEvent::CouponReclaimAnswered { results, .. } => Some(results),
            _ => None,
        })
        .await
    }
}
