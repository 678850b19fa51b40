//! Allocations, reclaims and adjustment records through the vendor's SDK (docs/DOMAIN.md §3):
//! UpdateCustomerAccountAmount (allocate to a customer), ReclaimToPartnerAccount (reclaim
//! from a customer), UpdateIndirectPartnerAccount / ReclaimIndirectPartnerAccount (to and
//! from a reseller), ListPartnerBalances and ListPartnerAdjustRecords. Each write is the
//! same `Ledger::adjust` as `POST /v1/allocations` and `/v1/reclaims`; the record's id is
//! the vendor's `transfer_id` / `trans_id`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use ledger_app::funds::{Adjust, AdjustmentDirection};
use ledger_core::Currency;
use ledger_domain::funds::{AdjustmentKind, AdjustmentRecord, Counterparty, CounterpartyType};
use ledger_projections::adjustments::{self, AdjustmentFilter};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{acting_for, blank, catch_up, number, page, time_filter, vendor_time, Amount, MEASURE_YUAN};
use crate::error::ApiError;
use crate::http::{Caller, JsonBody, Query};
use crate::AppState;

/// The vendor's names of the adjustment kinds.
pub fn operation_type(kind: AdjustmentKind) -> &'static str {
    match kind {
        AdjustmentKind::Allocate => "SOURCE_OPERATION_BEADJUST",
        AdjustmentKind::Reclaim => "SOURCE_OPERATION_BERETRIEVE",
        AdjustmentKind::UnbindReclaim => "SOURCE_OPERATION_BEUNBIND",
    }
}

fn kind_of(name: &str) -> Result<AdjustmentKind, ApiError> {
    [AdjustmentKind::Allocate, AdjustmentKind::Reclaim, AdjustmentKind::UnbindReclaim]
        .into_iter()
        .find(|k| operation_type(*k) == name.trim())
        .ok_or_else(|| {
            ApiError::invalid(
                "operation_type",
                "must be SOURCE_OPERATION_BEADJUST, SOURCE_OPERATION_BERETRIEVE or SOURCE_OPERATION_BEUNBIND",
            )
        })
}

/// `AdjustAccountReq` and `ReclaimToPartnerAccountBalancesReq`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerAmount {
    customer_id: String,
    amount: Amount,
    indirect_partner_id: Option<String>,
}

/// `AdjustToIndirectPartnerReq` and `ReclaimIndirectPartnerAccountReq`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResellerAmount {
    indirect_partner_id: String,
    amount: Amount,
}

#[derive(Serialize)]
pub struct TransferAnswer {
    transfer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
}

#[derive(Serialize)]
pub struct TransAnswer {
    trans_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
}

async fn adjust(
    state: &AppState,
    caller: &Caller,
    direction: AdjustmentDirection,
    operator: String,
    counterparty: Counterparty,
    amount: Amount,
) -> Result<(String, Option<u64>), ApiError> {
    let ctx = state.context(caller);
    let (record_id, outcome) = state
        .ledger
        .adjust(&ctx, Adjust { direction, operator, counterparty, amount: amount.money()?, remark: None })
        .await
        .map_err(|e| caller.err(e.into()))?;
    Ok((record_id, outcome.position()))
}

/// `POST /v2/accounts/partner-accounts/adjust-amount`: allocate to a customer (with
/// `indirect_partner_id`: the reseller allocates to its customer, the distributor acting).
pub async fn allocate_to_customer(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<CustomerAmount>,
) -> Result<Json<TransferAnswer>, ApiError> {
    let req = body.value;
    let operator = acting_for(&state, &caller, req.indirect_partner_id.as_deref()).await?;
    let (transfer_id, position) = adjust(
        &state,
        &caller,
        AdjustmentDirection::Allocate,
        operator,
        Counterparty::customer(req.customer_id),
        req.amount,
    )
    .await?;
    Ok(Json(TransferAnswer { transfer_id, position }))
}

/// `POST /v2/accounts/partner-accounts/reclaim`: reclaim from a customer.
pub async fn reclaim_from_customer(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<CustomerAmount>,
) -> Result<Json<TransAnswer>, ApiError> {
    let req = body.value;
    let operator = acting_for(&state, &caller, req.indirect_partner_id.as_deref()).await?;
    let (trans_id, position) = adjust(
        &state,
        &caller,
        AdjustmentDirection::Reclaim,
        operator,
        Counterparty::customer(req.customer_id),
        req.amount,
    )
    .await?;
    Ok(Json(TransAnswer { trans_id, position }))
}

/// `POST /v2/accounts/partner-accounts/indirect-partner-adjust`: the distributor allocates
/// to one of its resellers (the domain refuses another's: `NOT_YOUR_CUSTOMER`).
pub async fn allocate_to_reseller(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<ResellerAmount>,
) -> Result<Json<TransferAnswer>, ApiError> {
    let req = body.value;
    let operator = acting_for(&state, &caller, None).await?;
    let (transfer_id, position) = adjust(
        &state,
        &caller,
        AdjustmentDirection::Allocate,
        operator,
        Counterparty::reseller(req.indirect_partner_id),
        req.amount,
    )
    .await?;
    Ok(Json(TransferAnswer { transfer_id, position }))
}

/// `POST /v2/accounts/partner-accounts/indirect-partner-reclaim`.
pub async fn reclaim_from_reseller(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: JsonBody<ResellerAmount>,
) -> Result<Json<TransAnswer>, ApiError> {
    let req = body.value;
    let operator = acting_for(&state, &caller, None).await?;
    let (trans_id, position) = adjust(
        &state,
        &caller,
        AdjustmentDirection::Reclaim,
        operator,
        Counterparty::reseller(req.indirect_partner_id),
        req.amount,
    )
    .await?;
    Ok(Json(TransAnswer { trans_id, position }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancesQuery {
    indirect_partner_id: Option<String>,
    min_position: Option<u64>,
}

/// Account type 1 (余额): the balance a partner may allocate from.
const ACCOUNT_TYPE_BALANCE: u8 = 1;

/// `AccountBalanceV2`.
#[derive(Serialize)]
pub struct AccountBalance {
    account_id: String,
    account_type: u8,
    amount: Box<RawValue>,
    currency: String,
    designated_amount: Box<RawValue>,
    measure_id: u8,
}

#[derive(Serialize)]
pub struct BalancesAnswer {
    account_balances: Vec<AccountBalance>,
}

/// `GET /v2/accounts/partner-accounts/balances`: what the partner (or, with
/// `indirect_partner_id`, its reseller) may allocate, per currency: a distributor's fund
/// pool, a reseller's received and unspent funds. Read from the fund tree's stream, the
/// state an allocation is decided on.
pub async fn balances(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<BalancesQuery>,
) -> Result<Json<BalancesAnswer>, ApiError> {
    let partner = acting_for(&state, &caller, blank(q.indirect_partner_id).as_deref()).await?;
    catch_up(&state, q.min_position).await?;
    let mut account_balances = vec![];
    if let Some(distributor) = state.ledger.fund_tree_of(&partner).await? {
        let funds = state.ledger.funds(&distributor).await?;
        for currency in [Currency::CNY, Currency::USD] {
            let (account_id, held) = if partner == distributor {
                (format!("partner:{partner}:fund_pool"), funds.pool(currency))
            } else {
                (format!("partner:{partner}:fund_received"), funds.reseller_unspent(&partner, currency))
            };
            let known = funds.credited.contains_key(&currency) || !held.is_zero();
            if known || currency == Currency::CNY {
                account_balances.push(AccountBalance {
                    account_id,
                    account_type: ACCOUNT_TYPE_BALANCE,
                    amount: number(held.amount),
                    currency: currency.as_str().to_string(),
                    designated_amount: number(rust_decimal::Decimal::ZERO),
                    measure_id: MEASURE_YUAN,
                });
            }
        }
    }
    Ok(Json(BalancesAnswer { account_balances }))
}

/// `ListPartnerAdjustRecordsRequest`: every parameter optional, blank is no filter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    customer_id: Option<String>,
    operation_type: Option<String>,
    operation_time_begin: Option<String>,
    operation_time_end: Option<String>,
    trans_id: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
    indirect_partner_id: Option<String>,
    min_position: Option<u64>,
}

/// `AdjustRecordV3`. `customer_name` and `apply_scene` are data the ledger has not got
/// (left out, as the vendor leaves out an empty field).
#[derive(Serialize)]
pub struct VendorRecord {
    customer_id: String,
    operation_type: &'static str,
    amount: String,
    currency: String,
    operation_time: String,
    measure_id: u8,
    trans_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<String>,
}

impl From<AdjustmentRecord> for VendorRecord {
    fn from(r: AdjustmentRecord) -> VendorRecord {
        VendorRecord {
            customer_id: r.counterparty.id,
            operation_type: operation_type(r.kind),
            amount: r.amount.amount.to_string(),
            currency: r.amount.currency.as_str().to_string(),
            operation_time: vendor_time(r.occurred_at),
            measure_id: MEASURE_YUAN,
            trans_id: r.record_id,
            memo: r.remark,
        }
    }
}

#[derive(Serialize)]
pub struct RecordsAnswer {
    total_count: usize,
    records: Vec<VendorRecord>,
}

/// `GET /v3/accounts/partner-accounts/adjust-records`: the records the partner made (to
/// its customers and its resellers), newest first; with `indirect_partner_id`, those its
/// reseller made for the reseller's customers. For a reseller that is not the caller's the
/// answer is empty (the vendor: 200 and no records), never another tree's records.
pub async fn adjust_records(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(q): Query<RecordsQuery>,
) -> Result<Json<RecordsAnswer>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let filter = AdjustmentFilter {
        kind: blank(q.operation_type).map(|t| kind_of(&t)).transpose()?,
        counterparty_id: blank(q.customer_id),
        from: time_filter("operation_time_begin", q.operation_time_begin)?,
        to: time_filter("operation_time_end", q.operation_time_end)?,
        record_id: blank(q.trans_id),
        counterparty_type: None,
        operator_partner_id: None,
    };
    let operator = match acting_for(&state, &caller, blank(q.indirect_partner_id.clone()).as_deref()).await {
        Ok(p) => p,
        Err(e) if e.code == "FORBIDDEN" && caller.principal.partner_id.is_some() => {
            return Ok(Json(RecordsAnswer { total_count: 0, records: vec![] }))
        }
        Err(e) => return Err(e),
    };
    let reseller_view = blank(q.indirect_partner_id).is_some_and(|r| r == operator)
        && caller.principal.partner_id.as_deref() != Some(operator.as_str());
    let filter = AdjustmentFilter {
        operator_partner_id: Some(operator.clone()),
        counterparty_type: reseller_view.then_some(CounterpartyType::Customer),
        ..filter
    };
    catch_up(&state, q.min_position).await?;
    let parent = state.ledger.partner(&operator).await?.profile.and_then(|p| p.parent_id);
    let (items, total) = state
        .reads
        .read(move |c| adjustments::list(c, Some((&operator, parent.as_deref())), &filter, offset, limit))
        .await?;
    Ok(Json(RecordsAnswer { total_count: total, records: items.into_iter().map(VendorRecord::from).collect() }))
}
