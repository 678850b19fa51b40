//! The operator's reference data (docs/API.md, Vendor operator): partners and their
//! certifications, customers and their association type, incentive policies.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ledger_app::registry::{EndCustomerAssociation, SwitchCustomerAssociation};
use ledger_core::{Currency, Month, Rate, Role};
use ledger_domain::customer::{self, AssociateCustomer, AssociationType, Customer, CustomerState};
use ledger_domain::partner::{
    self, BankAccount, CertifyBusinessInfo, CertifyRealName, ChangeLevel, Partner, PartnerCommand, PartnerKind,
    PartnerLevel, PartnerState, RegisterPartner,
};
use ledger_domain::policy::{self, Policies, PolicyCommand, ProductRate, PublishPolicy};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{answered_at, written, Caller, JsonBody};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterPartnerBody {
    partner_id: String,
    name: String,
    kind: PartnerKind,
    parent_id: Option<String>,
    level: Option<PartnerLevel>,
}

pub async fn register_partner(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<RegisterPartnerBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin])?;
    let ctx = state.context(&caller);
    let RegisterPartnerBody { partner_id, name, kind, parent_id, level } = body.value;
    let command = RegisterPartner { partner_id: partner_id.clone(), name, kind, parent_id, parent_kind: None, level };
    let outcome = state.ledger.register_partner(&ctx, command).await?;
    partner_answer(&state, &outcome, &partner_id).await
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Certification {
    RealName { legal_name: String },
    BusinessInfo { bank_account: BankAccountInput, tax_id: String },
}

/// A bank account as a request gives it: unknown fields are refused here as in every body
/// (the domain's `BankAccount` is also the stored shape, which stays lenient).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankAccountInput {
    holder_name: String,
    number: String,
    bank: String,
}

impl From<BankAccountInput> for BankAccount {
    fn from(b: BankAccountInput) -> BankAccount {
        BankAccount { holder_name: b.holder_name, number: b.number, bank: b.bank }
    }
}

pub async fn certify_partner(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(partner_id): Path<String>,
    body: JsonBody<Certification>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin])?;
    let ctx = state.context(&caller);
    let command = match body.value {
        Certification::RealName { legal_name } => PartnerCommand::CertifyRealName(CertifyRealName { legal_name }),
        Certification::BusinessInfo { bank_account, tax_id } => {
            PartnerCommand::CertifyBusinessInfo(CertifyBusinessInfo { bank_account: bank_account.into(), tax_id })
        }
    };
    let outcome = state.ledger.change_partner(&ctx, &partner_id, command).await?;
    partner_answer(&state, &outcome, &partner_id).await
}

/// A partner as the operator sees it. The bank account number is masked: the full number
/// is in the audit log for those entitled to it.
pub fn partner_view(state: &PartnerState) -> Value {
    let Some(p) = &state.profile else { return Value::Null };
    json!({
        "partner_id": p.partner_id,
        "name": p.name,
        "kind": p.kind,
        "parent_id": p.parent_id,
        "level": p.level,
        "legal_name": p.legal_name,
        "certifications": {
            "real_name": p.legal_name.is_some(),
            "business_info": p.business_info.is_some(),
        },
    })
}

pub async fn get_partner(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(partner_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.partner_scope(Some(&partner_id))?;
    let partner = state.ledger.partner(&partner_id).await?;
    Ok(Json(partner_view(&partner)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssociateCustomerBody {
    customer_id: String,
    partner_id: String,
    association_type: AssociationType,
    /// Added to docs/API.md's body: when the (first) association takes effect, default now.
    effective_at: Option<DateTime<Utc>>,
}

pub async fn associate_customer(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<AssociateCustomerBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin])?;
    let ctx = state.context(&caller);
    let AssociateCustomerBody { customer_id, partner_id, association_type, effective_at } = body.value;
    let command = AssociateCustomer { customer_id: customer_id.clone(), partner_id, association_type, effective_at };
    let outcome = state.ledger.associate_customer(&ctx, command).await?;
    Ok(written(&outcome, customer_answer(&state, &outcome, &customer_id, ctx.now).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchType {
    association_type: AssociationType,
    effective_at: Option<DateTime<Utc>>,
}

/// The operator's route (docs/API.md); a partner may call it for its own customer (seed: the
/// partner may switch the type).
pub async fn switch_association_type(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(customer_id): Path<String>,
    body: JsonBody<SwitchType>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin, Role::Partner])?;
    let ctx = state.context(&caller);
    let acting = acting_partner(&caller);
    let SwitchType { association_type, effective_at } = body.value;
    let command = SwitchCustomerAssociation {
        customer_id: customer_id.clone(),
        acting_partner: acting,
        association_type,
        effective_at,
    };
    let outcome =
        state.ledger.switch_association_type(&ctx, command).await.map_err(|e| hide_foreign(&caller, e.into()))?;
    Ok(written(&outcome, customer_answer(&state, &outcome, &customer_id, ctx.now).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndAssociationBody {
    effective_at: Option<DateTime<Utc>>,
}

/// Added to docs/API.md (docs/DOMAIN.md: a partner may end the association): the operator's route,
/// and a partner's for its own customer. Ending counts as a switch (once in 3 months).
pub async fn end_association(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(customer_id): Path<String>,
    body: JsonBody<EndAssociationBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin, Role::Partner])?;
    let ctx = state.context(&caller);
    let acting = acting_partner(&caller);
    let command = EndCustomerAssociation {
        customer_id: customer_id.clone(),
        acting_partner: acting,
        effective_at: body.value.effective_at,
    };
    let ended = state.ledger.end_association(&ctx, command).await.map_err(|e| hide_foreign(&caller, e.into()))?;
    let mut answer = customer_answer(&state, &ended.ended, &customer_id, ctx.now).await?;
    // docs/DOMAIN.md §3 "Unbind reclaim": what went back to the allocators with the end.
    answer["unbind_reclaims"] = serde_json::to_value(&ended.reclaimed).expect("serialises");
    let (status, Json(mut answer)) = written(&ended.ended, answer);
    answer["position"] = json!(ended.position);
    Ok((status, Json(answer)))
}

/// A partner as the write left it (a retry under the request id answers the same).
async fn partner_answer<E>(
    state: &AppState,
    outcome: &ledger_app::Outcome<E>,
    partner_id: &str,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let partner = state.ledger.state_after::<Partner, _>(&partner::stream_id(partner_id), outcome).await?;
    Ok(written(outcome, partner_view(&partner)))
}

/// A customer as the write left it, its association in force at the time of the write (a
/// retry under the request id answers the same).
async fn customer_answer<E>(
    state: &AppState,
    outcome: &ledger_app::Outcome<E>,
    customer_id: &str,
    now: DateTime<Utc>,
) -> Result<Value, ApiError> {
    let customer = state.ledger.state_after::<Customer, _>(&customer::stream_id(customer_id), outcome).await?;
    Ok(customer_view(&customer, answered_at(state, outcome, now).await?))
}

/// The partner a partner's call acts for; the operator acts on the customer's behalf.
fn acting_partner(caller: &Caller) -> Option<String> {
    match caller.principal.role {
        Role::Partner => caller.principal.partner_id.clone(),
        _ => None,
    }
}

/// For a partner, another partner's customer and a missing one look the same: 403.
fn hide_foreign(caller: &Caller, e: ApiError) -> ApiError {
    match (caller.principal.role, e.code.as_str()) {
        (Role::Partner, "NOT_YOUR_CUSTOMER" | "NOT_FOUND") => ApiError::forbidden(),
        _ => e,
    }
}

pub fn customer_view(state: &CustomerState, now: DateTime<Utc>) -> Value {
    let current = state.association_at(now);
    json!({
        "customer_id": state.customer_id,
        "partner_id": current.map(|a| &a.partner_id),
        "association_type": current.map(|a| a.association_type),
        "timeline": state.timeline.iter().map(|c| json!({
            "effective_at": ledger_core::envelope::format_time(c.effective_at),
            "partner_id": c.association.as_ref().map(|a| &a.partner_id),
            "association_type": c.association.as_ref().map(|a| a.association_type),
        })).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishPolicyBody {
    effective_month: String,
    currency: String,
    rates: Vec<RateInput>,
    settlement_grace_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateInput {
    product: String,
    rate: String,
}

pub async fn publish_policy(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<PublishPolicyBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin])?;
    let ctx = state.context(&caller);
    let req = body.value;
    let effective_month: Month = req.effective_month.parse()?;
    let currency: Currency = req.currency.parse()?;
    let rates = req
        .rates
        .into_iter()
        .map(|r| Ok(ProductRate { product: r.product, rate: Rate::parse(&r.rate)? }))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let command = PolicyCommand::PublishPolicy(PublishPolicy {
        currency,
        effective_month,
        rates: rates.clone(),
        settlement_grace_days: req.settlement_grace_days,
    });
    let outcome = state.ledger.publish_policy(&ctx, command).await?;
    let book = state.ledger.state_after::<Policies, _>(&policy::stream_id(currency), &outcome).await?;
    let grace = book.versions.get(&effective_month).map(|p| p.settlement_grace_days);
    Ok(written(
        &outcome,
        json!({
            "effective_month": effective_month,
            "currency": currency,
            "rates": rates,
            "settlement_grace_days": grace,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyQuery {
    month: String,
    currency: Option<String>,
    min_position: Option<u64>,
}

/// `GET /v1/policies?month=`: the policy in force for a month (the version effective at
/// or before it), readable by partners so they can see what a product earns. From the
/// policy stream, the book a line's rate is decided on.
pub async fn policy_in_force(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    crate::http::Query(q): crate::http::Query<PolicyQuery>,
) -> Result<Json<Value>, ApiError> {
    let month: Month = q.month.parse()?;
    let currency: Currency = q.currency.as_deref().unwrap_or("CNY").parse()?;
    crate::http::wait_for_position(&state, q.min_position).await?;
    let book = state.ledger.policies(currency).await?;
    let policy = book.policy_for(month).ok_or_else(|| ApiError::not_found("policy in force for that month"))?;
    let rates: Vec<Value> =
        policy.rates.iter().map(|(product, rate)| json!({"product": product, "rate": rate})).collect();
    Ok(Json(json!({
        "month": month,
        "currency": currency,
        "effective_month": policy.effective_month,
        "rates": rates,
        "settlement_grace_days": policy.settlement_grace_days,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelBody {
    level: PartnerLevel,
}

/// `POST /v1/partners/{id}/level` (admin): the level decided elsewhere (docs/DOMAIN.md, out of
/// scope: level upgrades), recorded here.
pub async fn change_level(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(partner_id): Path<String>,
    body: JsonBody<LevelBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&[Role::Admin])?;
    let ctx = state.context(&caller);
    let command = PartnerCommand::ChangeLevel(ChangeLevel { level: body.value.level });
    let outcome = state.ledger.change_partner(&ctx, &partner_id, command).await?;
    partner_answer(&state, &outcome, &partner_id).await
}
