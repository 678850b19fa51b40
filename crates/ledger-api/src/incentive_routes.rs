//! Consumption, incentive months, the rollover report, opportunities and quarterly
//! payments (docs/API.md).
//!
//! Reads come from the read models in `projections/` and wait for `?min_position=`:
//! `GET /v1/incentive-months` from `incentive_months`, `GET /v1/rollover` from
//! `rollover_lines`, `GET /v1/quarterly-payments/{id}` from `quarterly_payments` (rows the
//! projections build with the domain's own per-month and per-payment code, so they cannot
//! tell another story than the stream). Eligibility is the exception: it depends on the
//! time of the request and is the very check a payment request runs, so it is computed by
//! the domain from the partner's incentive stream state, the state the next decision is
//! made on. A write answers from the stream state it left (a retry under its request id,
//! from the same state).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use ledger_app::billing::BatchReceipt;
use ledger_app::incentives::{
    ApplyOpportunity, ConsumptionInput, InvoiceList, LineOutcome, OpportunityStep, PaymentStep,
};
use ledger_core::{Currency, Money, Month, Quarter, Role};
use ledger_domain::billing::{BatchLine, LineStatus};
use ledger_domain::incentives::{
    self, AcceptOpportunity, ApprovePayment, ConfirmInvoiceReceived, FinalizeMonth, FinalizeOpportunity, Incentives,
    MarkOpportunityDelivered, PayQuarterlyPayment, PaymentMethod, RefundConsumption, RejectPayment, ReviewDecision,
    ReviewMonth, ReviewOpportunity, ShareOpportunity,
};
use ledger_projections::{incentive_details, incentive_months, quarterly_payments, rollover_lines};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit_routes::check_limit;
use crate::error::ApiError;
use crate::http::{wait_for_position, written, Caller, JsonBody, Query};
use crate::scope::{owner_of, IdKind};
use crate::AppState;

/// Most lines one billing call may carry.
pub const MAX_CONSUMPTION_BATCH: usize = 1000;

type Written = Result<(StatusCode, Json<Value>), ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumptionBatch {
    records: Vec<ConsumptionRecord>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumptionRecord {
    record_id: String,
    customer_id: String,
    product: String,
    amount: String,
    currency: String,
    consumed_at: DateTime<Utc>,
    settled_at: DateTime<Utc>,
}

/// Billing's feed: each line is stored, found a duplicate, or rejected with its code; one
/// bad line does not stop the others. Under an `X-Request-Id` the answer is kept, so a
/// retried batch gets it back (200) and another batch under the same id is refused whole.
pub async fn record_consumption(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<ConsumptionBatch>,
) -> Result<(StatusCode, Json<BatchAnswer>), ApiError> {
    caller.require(&[Role::Admin])?;
    let records = body.value.records;
    if records.is_empty() || records.len() > MAX_CONSUMPTION_BATCH {
        return Err(ApiError::invalid("records", format!("must hold 1 to {MAX_CONSUMPTION_BATCH} lines")));
    }
    let ctx = state.context(&caller);
    if let Some(receipt) = state.ledger.billing_receipt(&ctx).await? {
        return Ok((StatusCode::OK, batch_answer(receipt)));
    }
    // Lines whose amount does not parse are answered here; the others go to the ledger
    // as one batch.
    let mut parsed: Vec<Result<usize, ApiError>> = Vec::with_capacity(records.len());
    let mut inputs = vec![];
    let record_ids: Vec<String> = records.iter().map(|r| r.record_id.clone()).collect();
    for r in records {
        parsed.push(match Money::parse_positive(&r.amount, &r.currency) {
            Err(e) => Err(ApiError::from(e)),
            Ok(amount) => {
                inputs.push(ConsumptionInput {
                    record_id: r.record_id,
                    customer_id: r.customer_id,
                    product: r.product,
                    amount,
                    consumed_at: r.consumed_at,
                    settled_at: r.settled_at,
                });
                Ok(inputs.len() - 1)
            }
        });
    }
    let mut decided =
        state.ledger.record_consumption_batch(&ctx, inputs).await?.into_iter().map(Some).collect::<Vec<_>>();
    let mut lines = Vec::with_capacity(parsed.len());
    let mut position = None;
    for (record_id, parsed) in record_ids.into_iter().zip(parsed) {
        let outcome = parsed.and_then(|i| decided[i].take().expect("one answer per line").map_err(ApiError::from));
        let line = |status, error: Option<ApiError>| BatchLine {
            record_id: record_id.clone(),
            status,
            error_code: error.as_ref().map(|e| e.code.to_string()),
            error_msg: error.map(|e| e.message),
        };
        lines.push(match outcome {
            Ok(LineOutcome::Stored { position: p, .. }) => {
                position = Some(position.unwrap_or(0).max(p));
                line(LineStatus::Stored, None)
            }
            Ok(LineOutcome::Duplicate { .. }) => line(LineStatus::Duplicate, None),
            Err(e) if e.status.is_server_error() => return Err(e),
            Err(e) => line(LineStatus::Rejected, Some(e)),
        });
    }
    let stored_any = position.is_some();
    let position = position.unwrap_or(*state.store.head().borrow());
    let receipt = state.ledger.keep_billing_receipt(&ctx, BatchReceipt { lines, position }).await?;
    let status = if stored_any { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, batch_answer(receipt)))
}

/// docs/API.md's answer to a billing batch.
fn batch_answer(receipt: BatchReceipt) -> Json<BatchAnswer> {
    Json(BatchAnswer(receipt))
}

/// The answer written straight from the receipt, in the bytes a `json!` value of it gave
/// (keys in order, a rejected line's code and message even when null), without a `Value`
/// per line (it was 5% of the server's time for 1,000-line batches).
pub struct BatchAnswer(BatchReceipt);

impl serde::Serialize for BatchAnswer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Line<'a>(&'a BatchLine);
        impl serde::Serialize for Line<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let l = self.0;
                let rejected = l.status == LineStatus::Rejected;
                let mut m = s.serialize_map(Some(if rejected { 4 } else { 2 }))?;
                if rejected {
                    m.serialize_entry("error_code", &l.error_code)?;
                    m.serialize_entry("error_msg", &l.error_msg)?;
                }
                m.serialize_entry("record_id", &l.record_id)?;
                m.serialize_entry("status", &l.status)?;
                m.end()
            }
        }
        struct Lines<'a>(&'a [BatchLine]);
        impl serde::Serialize for Lines<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(Line))
            }
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("position", &self.0.position)?;
        m.serialize_entry("results", &Lines(&self.0.lines))?;
        m.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    refund_id: String,
    amount: String,
    currency: Option<String>,
    settled_at: DateTime<Utc>,
}

pub async fn refund_consumption(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(record_id): Path<String>,
    body: JsonBody<RefundBody>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let (partner, line) =
        state.ledger.recorded_line(&record_id).await?.ok_or_else(|| ApiError::not_found("consumption record"))?;
    let line_currency = line.amount.currency;
    let req = body.value;
    let amount = Money::parse_positive(&req.amount, req.currency.as_deref().unwrap_or(line_currency.as_str()))?;
    let ctx = state.context(&caller);
    let command = RefundConsumption {
        refund_id: req.refund_id.clone(),
        record_id: record_id.clone(),
        amount,
        settled_at: req.settled_at,
        line: None,
    };
    let outcome = state.ledger.refund_consumption(&ctx, &partner, command).await?;
    Ok(written(
        &outcome,
        json!({"refund_id": req.refund_id, "record_id": record_id, "partner_id": partner, "amount": amount}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrencyQuery {
    currency: Option<String>,
}

fn currency_or_cny(c: Option<&str>) -> Result<Currency, ApiError> {
    Ok(c.unwrap_or("CNY").parse()?)
}

async fn month_answer<E>(
    state: &AppState,
    outcome: &ledger_app::Outcome<E>,
    partner: &str,
    month: Month,
    currency: Currency,
) -> Written {
    let incentives = state.ledger.state_after::<Incentives, _>(&incentives::stream_id(partner), outcome).await?;
    let view = incentives.month_view(month, currency).ok_or_else(|| ApiError::not_found("incentive month"))?;
    Ok(written(outcome, serde_json::to_value(view).expect("serialises")))
}

/// `POST /v1/incentive-months/{partner_id}/{month}/close`: every currency of the month.
pub async fn close_month(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((partner, month)): Path<(String, String)>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let month: Month = month.parse()?;
    let ctx = state.context(&caller);
    let outcome = state.ledger.close_month(&ctx, &partner, month).await?;
    let incentives = state.ledger.state_after::<Incentives, _>(&incentives::stream_id(&partner), &outcome).await?;
    let months: Vec<Value> = incentives
        .months
        .keys()
        .filter(|(m, _)| *m == month)
        .filter_map(|(m, c)| incentives.month_view(*m, *c))
        .map(|v| serde_json::to_value(v).expect("serialises"))
        .collect();
    let stored = outcome.is_stored();
    let position = outcome.position();
    let mut answer = months.first().cloned().unwrap_or(json!({}));
    answer["months"] = json!(months);
    answer["position"] = json!(position);
    Ok((if stored { StatusCode::CREATED } else { StatusCode::OK }, Json(answer)))
}

pub async fn apply_for_month(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(month): Path<String>,
    Query(q): Query<ScopedCurrency>,
) -> Written {
    caller.require(&[Role::Partner, Role::Admin])?;
    let partner = caller.partner_scope(q.partner_id.as_deref())?;
    let month: Month = month.parse()?;
    let currency = currency_or_cny(q.currency.as_deref())?;
    let ctx = state.context(&caller);
    let outcome = state.ledger.apply_for_month(&ctx, &partner, month, currency).await?;
    month_answer(&state, &outcome, &partner, month, currency).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedCurrency {
    currency: Option<String>,
    partner_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    decision: ReviewDecision,
    comment: Option<String>,
}

pub async fn review_month(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((partner, month)): Path<(String, String)>,
    Query(q): Query<CurrencyQuery>,
    body: JsonBody<ReviewBody>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let month: Month = month.parse()?;
    let currency = currency_or_cny(q.currency.as_deref())?;
    let ctx = state.context(&caller);
    let ReviewBody { decision, comment } = body.value;
    let command = ReviewMonth { month, currency, decision, comment };
    let outcome = state.ledger.review_month(&ctx, &partner, command).await?;
    month_answer(&state, &outcome, &partner, month, currency).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizeBody {
    amount: Option<String>,
    currency: Option<String>,
    reason: Option<String>,
}

pub async fn finalize_month(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((partner, month)): Path<(String, String)>,
    Query(q): Query<CurrencyQuery>,
    body: JsonBody<FinalizeBody>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let month: Month = month.parse()?;
    let req = body.value;
    let currency = currency_or_cny(req.currency.as_deref().or(q.currency.as_deref()))?;
    // A month may be finalized at 0 (docs/DOMAIN.md §5).
    let amount = req.amount.map(|a| Money::parse_final(&a, currency.as_str())).transpose()?;
    let ctx = state.context(&caller);
    let command = FinalizeMonth { month, currency, amount, reason: req.reason };
    let outcome = state.ledger.finalize_month(&ctx, &partner, command).await?;
    month_answer(&state, &outcome, &partner, month, currency).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthsQuery {
    year: Option<i32>,
    partner_id: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
    min_position: Option<u64>,
}

pub async fn list_months(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<MonthsQuery>,
) -> Result<Json<Value>, ApiError> {
    let partner = caller.partner_scope(q.partner_id.as_deref())?;
    let limit = check_limit(&caller, q.limit)? as usize;
    let offset = q.offset.unwrap_or(0) as usize;
    wait_for_position(&state, q.min_position).await?;
    let year = q.year;
    let months = state.reads.read(move |c| incentive_months::views(c, &partner, year)).await?;
    let total = months.len();
    let items: Vec<Value> = months
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(m, position)| {
            let mut v = serde_json::to_value(m).expect("serialises");
            v["position"] = json!(position);
            v
        })
        .collect();
    Ok(Json(json!({"total": total, "items": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailsQuery {
    month: String,
    currency: Option<String>,
    partner_id: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
    min_position: Option<u64>,
}

/// `GET /v1/incentive-details?month=`: the partner's "why" (seed FAQ). Every line and
/// refund clawback listed in the month, each with what it adds to the month and, where it
/// earned nothing here or is counted elsewhere, the reason. `counted_total` is the sum of
/// the entries counted here at full precision; the month's `accrued` rounds it once.
pub async fn incentive_details(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<DetailsQuery>,
) -> Result<Json<Value>, ApiError> {
    let partner = caller.partner_scope(q.partner_id.as_deref())?;
    let month: Month = q.month.parse()?;
    let currency = currency_or_cny(q.currency.as_deref())?;
    let limit = check_limit(&caller, q.limit)? as usize;
    let offset = q.offset.unwrap_or(0) as usize;
    wait_for_position(&state, q.min_position).await?;
    let who = partner.clone();
    let (details, accrued) = state
        .reads
        .read(move |c| {
            let details = incentive_details::of_month(c, &who, month, currency)?;
            let accrued = incentive_months::views(c, &who, Some(month.year()))?
                .into_iter()
                .find(|(m, _)| m.month == month && m.currency == currency)
                .map(|(m, _)| m.accrued);
            Ok::<_, ledger_projections::ProjectionError>((details, accrued))
        })
        .await?;
    let counted_total = Money::new(incentive_details::counted_sum(&details, month), currency);
    let items: Vec<Value> = details
        .iter()
        .skip(offset)
        .take(limit)
        .map(|d| {
            let counted_here = d.counted_in(month);
            json!({
                "entry": d.entry,
                "record_id": d.record_id,
                "refund_id": d.refund_id,
                "customer_id": d.customer_id,
                "product": d.product,
                "consumption_month": d.consumption_month,
                "incentive_month": d.incentive_month,
                "amount": d.amount,
                "rate": d.rate,
                "incentive": d.incentive,
                "refunded": d.refunded,
                "counted_here": counted_here,
                "counted_in": (!counted_here).then_some(d.incentive_month),
                "reason": d.reason(month),
            })
        })
        .collect();
    Ok(Json(json!({
        "partner_id": partner,
        "month": month,
        "currency": currency,
        "accrued": accrued.unwrap_or(Money::new(rust_decimal::Decimal::ZERO, currency)),
        "counted_total": counted_total,
        "total": details.len(),
        "items": items,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsQuery {
    partner_id: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
    min_position: Option<u64>,
}

/// `GET /v1/quarterly-payments`: a partner's applications (申请记录), newest quarter first,
/// each with the link to its invoice list once one is issued.
pub async fn list_payments(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<PaymentsQuery>,
) -> Result<Json<Value>, ApiError> {
    let partner = caller.partner_scope(q.partner_id.as_deref())?;
    let limit = check_limit(&caller, q.limit)? as usize;
    let offset = q.offset.unwrap_or(0) as usize;
    wait_for_position(&state, q.min_position).await?;
    let (page, total) = state.reads.read(move |c| quarterly_payments::page_of(c, &partner, offset, limit)).await?;
    let items: Vec<Value> = page
        .into_iter()
        .map(|(view, position)| {
            let mut v = serde_json::to_value(&view).expect("serialises");
            let id = v["payment_id"].as_str().unwrap_or_default().to_string();
            v["invoice_list_url"] =
                if v["invoice_list"].is_null() { Value::Null } else { json!(format!("/v1/quarterly-payments/{id}")) };
            v["position"] = json!(position);
            v
        })
        .collect();
    Ok(Json(json!({"items": items, "total": total})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloverQuery {
    month: String,
    currency: Option<String>,
    partner_id: Option<String>,
    min_position: Option<u64>,
}

pub async fn rollover(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<RolloverQuery>,
) -> Result<Json<Value>, ApiError> {
    let partner = caller.partner_scope(q.partner_id.as_deref())?;
    let month: Month = q.month.parse()?;
    let currency = currency_or_cny(q.currency.as_deref())?;
    wait_for_position(&state, q.min_position).await?;
    let report = state.reads.read(move |c| rollover_lines::report(c, &partner, month, currency)).await?;
    Ok(Json(serde_json::to_value(report).expect("serialises")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareOpportunityBody {
    opportunity_id: String,
    partner_id: String,
    offering: String,
    core_tag: bool,
    delivery_end_date: Option<NaiveDate>,
}

fn opportunity_view(state: &ledger_domain::incentives::IncentivesState, partner: &str, id: &str) -> Value {
    match state.opportunities.get(id) {
        Some(o) => json!({
            "opportunity_id": o.opportunity_id,
            "partner_id": partner,
            "offering": o.offering,
            "core_tag": o.core_tag,
            "delivery_end_date": o.delivery_end_date,
            "status": o.status,
            "final": o.final_amount,
            "finalized_quarter": o.finalized_quarter,
            "payment_id": o.payment_id,
        }),
        None => json!({"opportunity_id": id, "partner_id": partner}),
    }
}

pub async fn share_opportunity(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<ShareOpportunityBody>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let ctx = state.context(&caller);
    let ShareOpportunityBody { opportunity_id, partner_id, offering, core_tag, delivery_end_date } = body.value;
    let command = ShareOpportunity {
        partner_id: partner_id.clone(),
        opportunity_id: opportunity_id.clone(),
        offering,
        core_tag,
        delivery_end_date,
    };
    let outcome = state.ledger.share_opportunity(&ctx, command).await?;
    let incentives = state.ledger.state_after::<Incentives, _>(&incentives::stream_id(&partner_id), &outcome).await?;
    Ok(written(&outcome, opportunity_view(&incentives, &partner_id, &opportunity_id)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OpportunityBody {
    delivery_end_date: Option<NaiveDate>,
    decision: Option<ReviewDecision>,
    comment: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
    reason: Option<String>,
}

/// `/v1/opportunities/{id}/{deliver|accept|apply|review|finalize}`.
pub async fn opportunity_step(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: Option<JsonBody<OpportunityBody>>,
) -> Written {
    let admin_only = matches!(action.as_str(), "deliver" | "review" | "finalize");
    caller.require(if admin_only { &[Role::Admin] } else { &[Role::Partner, Role::Admin] })?;
    let partner = owner_of(&state, &caller, IdKind::Opportunity, &id).await?;
    let req = body.map_or_else(OpportunityBody::default, |b| b.value);
    let opportunity_id = id.clone();
    let step = match action.as_str() {
        "deliver" => OpportunityStep::Deliver(MarkOpportunityDelivered {
            opportunity_id,
            delivery_end_date: req
                .delivery_end_date
                .ok_or_else(|| ApiError::invalid("delivery_end_date", "is required"))?,
        }),
        "accept" => OpportunityStep::Accept(AcceptOpportunity { opportunity_id }),
        "apply" => OpportunityStep::Apply(ApplyOpportunity { opportunity_id }),
        "review" => OpportunityStep::Review(ReviewOpportunity {
            opportunity_id,
            decision: req.decision.ok_or_else(|| ApiError::invalid("decision", "is required: pass or reject"))?,
            comment: req.comment,
        }),
        "finalize" => OpportunityStep::Finalize(FinalizeOpportunity {
            opportunity_id,
            amount: Money::parse_positive(
                req.amount.as_deref().ok_or_else(|| ApiError::invalid("amount", "is required"))?,
                req.currency.as_deref().unwrap_or("CNY"),
            )?,
            reason: req.reason,
        }),
        _ => return Err(ApiError::not_found("route")),
    };
    let ctx = state.context(&caller);
    let outcome = state.ledger.opportunity_step(&ctx, &partner, step).await?;
    let incentives = state.ledger.state_after::<Incentives, _>(&incentives::stream_id(&partner), &outcome).await?;
    Ok(written(&outcome, opportunity_view(&incentives, &partner, &id)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilityQuery {
    quarter: String,
    currency: Option<String>,
    at: Option<DateTime<Utc>>,
    partner_id: Option<String>,
    min_position: Option<u64>,
}

pub async fn eligibility(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<EligibilityQuery>,
) -> Result<Json<Value>, ApiError> {
    let partner = caller.partner_scope(q.partner_id.as_deref())?;
    let quarter: Quarter = q.quarter.parse()?;
    let currency = currency_or_cny(q.currency.as_deref())?;
    wait_for_position(&state, q.min_position).await?;
    let at = q.at.unwrap_or_else(Utc::now);
    let e = state.ledger.eligibility(&partner, quarter, currency, at).await?;
    let mut v = serde_json::to_value(&e).expect("serialises");
    v["partner_id"] = json!(partner);
    v["quarter"] = json!(quarter);
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    quarter: String,
    currency: Option<String>,
    partner_id: Option<String>,
}

pub async fn request_payment(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<PaymentRequest>,
) -> Written {
    caller.require(&[Role::Partner, Role::Admin])?;
    let req = body.value;
    let partner = caller.partner_scope(req.partner_id.as_deref())?;
    let quarter: Quarter = req.quarter.parse()?;
    let currency = currency_or_cny(req.currency.as_deref())?;
    let ctx = state.context(&caller);
    // A refusal carries every blocker in `details` (ApiError from PaymentBlocked).
    let (payment_id, outcome) = state.ledger.request_payment(&ctx, &partner, quarter, currency).await?;
    payment_answer(&state, &outcome, &partner, &payment_id).await
}

async fn payment_answer<E>(
    state: &AppState,
    outcome: &ledger_app::Outcome<E>,
    partner: &str,
    payment_id: &str,
) -> Written {
    let view = state
        .ledger
        .state_after::<Incentives, _>(&incentives::stream_id(partner), outcome)
        .await?
        .payment_view(payment_id)
        .ok_or_else(|| ApiError::not_found("quarterly payment"))?;
    Ok(written(outcome, serde_json::to_value(view).expect("serialises")))
}

/// `?min_position=` of a read by id.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    pub min_position: Option<u64>,
}

pub async fn get_payment(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    owner_of(&state, &caller, IdKind::Payment, &id).await?;
    wait_for_position(&state, q.min_position).await?;
    let (view, position) = state
        .reads
        .read(move |c| quarterly_payments::view(c, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("quarterly payment"))?;
    let mut v = serde_json::to_value(view).expect("serialises");
    v["position"] = json!(position);
    Ok(Json(v))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PaymentStepBody {
    method: Option<PaymentMethod>,
    reason: Option<String>,
}

/// `/v1/quarterly-payments/{id}/{approve|reject|invoice-list|invoice-received|pay}`.
pub async fn payment_step(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    body: Option<JsonBody<PaymentStepBody>>,
) -> Written {
    caller.require(&[Role::Admin])?;
    let partner = owner_of(&state, &caller, IdKind::Payment, &id).await?;
    let req = body.map_or_else(PaymentStepBody::default, |b| b.value);
    let payment_id = id.clone();
    let step = match action.as_str() {
        "approve" => PaymentStep::Approve(ApprovePayment { payment_id }),
        "reject" => PaymentStep::Reject(RejectPayment { payment_id, reason: req.reason }),
        "invoice-list" => PaymentStep::IssueInvoiceList(InvoiceList { payment_id }),
        "invoice-received" => PaymentStep::InvoiceReceived(ConfirmInvoiceReceived { payment_id }),
        "pay" => PaymentStep::Pay(PayQuarterlyPayment {
            payment_id,
            method: req
                .method
                .ok_or_else(|| ApiError::invalid("method", "is required: bank_transfer or cloud_account_credit"))?,
        }),
        _ => return Err(ApiError::not_found("route")),
    };
    let ctx = state.context(&caller);
    let outcome = state.ledger.payment_step(&ctx, &partner, step).await?;
    payment_answer(&state, &outcome, &partner, &id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer as first built: a `json!` value per line.
    fn old_batch_answer(receipt: &BatchReceipt) -> Value {
        let results: Vec<Value> = receipt
            .lines
            .iter()
            .map(|l| match l.status {
                LineStatus::Rejected => json!({
                    "record_id": l.record_id, "status": "rejected", "error_code": l.error_code, "error_msg": l.error_msg,
                }),
                status => json!({"record_id": l.record_id, "status": status}),
            })
            .collect();
        json!({"results": results, "position": receipt.position})
    }

    #[test]
    fn a_batch_is_answered_in_the_bytes_of_its_json_value() {
        let line = |id: &str, status, code: Option<&str>, msg: Option<&str>| BatchLine {
            record_id: id.into(),
            status,
            error_code: code.map(str::to_string),
            error_msg: msg.map(str::to_string),
        };
        for lines in [
            vec![],
            vec![
                line("R-1", LineStatus::Stored, None, None),
                line("R-\"2\u{1}é", LineStatus::Duplicate, None, None),
                line("R-3", LineStatus::Rejected, Some("NO_ASSOCIATION"), Some("customer \"C\" has none")),
                line("R-4", LineStatus::Rejected, None, None),
            ],
        ] {
            let receipt = BatchReceipt { lines, position: 42 };
            let old = serde_json::to_vec(&old_batch_answer(&receipt)).unwrap();
            assert_eq!(
                String::from_utf8(serde_json::to_vec(&BatchAnswer(receipt)).unwrap()).unwrap(),
                String::from_utf8(old).unwrap()
            );
        }
    }
}
