//! The distributor's resellers through the vendor's SDK (ListIndirectPartners, 查询云经销商).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use ledger_domain::partner::PartnerKind;
use ledger_projections::partners::{self, ResellerFilter};
use serde::{Deserialize, Serialize};

use super::{acting_for, blank, catch_up, page, time_filter, vendor_time};
use crate::error::ApiError;
use crate::http::{Caller, JsonBody};
use crate::AppState;

/// `QueryIndirectPartnersReq`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResellersQuery {
    account_name: Option<String>,
    associated_on_begin: Option<String>,
    associated_on_end: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
    indirect_partner_id: Option<String>,
}

/// `IndirectPartnerInfo`, the fields the ledger has: a reseller's account name is its
/// partner id; its phone, mail and account manager are not the ledger's data.
#[derive(Serialize)]
pub struct Reseller {
    indirect_partner_id: String,
    name: String,
    account_name: String,
    associated_on: String,
}

#[derive(Serialize)]
pub struct ResellersAnswer {
    count: usize,
    indirect_partners: Vec<Reseller>,
}

/// `POST /v2/partners/indirect-partners/query`: the caller's resellers, oldest link first.
/// Only a distributor has resellers; any other partner gets an empty list.
pub async fn list_resellers(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Option<JsonBody<ResellersQuery>>,
) -> Result<Json<ResellersAnswer>, ApiError> {
    let q = body.map(|b| b.value).unwrap_or_default();
    let distributor = acting_for(&state, &caller, None).await?;
    let (offset, limit) = page(q.offset, q.limit)?;
    let filter = ResellerFilter {
        reseller_id: blank(q.indirect_partner_id),
        account_name: blank(q.account_name),
        linked_from: time_filter("associated_on_begin", q.associated_on_begin)?,
        linked_to: time_filter("associated_on_end", q.associated_on_end)?,
    };
    let kind = state.ledger.partner(&distributor).await?.profile.map(|p| p.kind);
    if kind != Some(PartnerKind::Distributor) {
        return Ok(Json(ResellersAnswer { count: 0, indirect_partners: vec![] }));
    }
    catch_up(&state, None).await?;
    let (rows, count) = state.reads.read(move |c| partners::resellers(c, &distributor, &filter, offset, limit)).await?;
    let indirect_partners = rows
        .into_iter()
        .map(|r| Reseller {
            account_name: r.partner_id.clone(),
            indirect_partner_id: r.partner_id,
            name: r.name,
            associated_on: vendor_time(r.registered_at),
        })
        .collect();
    Ok(Json(ResellersAnswer { count, indirect_partners }))
}
