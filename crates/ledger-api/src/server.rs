//! The router and the server's life: start (load credentials, run projections in process),
//! serve, and shut down gracefully (in-flight requests finish, projections stop at a batch
//! boundary, the store's writer drains its queue).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use ledger_app::{CommandContext, Ledger};
use ledger_store::EventStore;
use serde_json::{json, Value};

use crate::auth::Credentials;
use crate::error::ApiError;
use crate::http::Caller;
use crate::{http, metrics};

pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub ledger: Arc<Ledger>,
    pub credentials: Arc<Credentials>,
    /// The position every projection has applied, and what reads wait for.
    pub progress: ledger_projections::runner::Progress,
    /// Read connections to the projections.
    pub reads: ledger_projections::ReadPool,
    pub metrics: metrics::Metrics,
    /// Connections, header and body time, body memory.
    pub limits: crate::limits::Limits,
    /// Which stored credentials the lookup tables hold (crate::nodes).
    pub credentials_synced: crate::nodes::CredentialsSynced,
    /// The public half of the key anchoring the chain (`ledger anchor`), when one is set:
    /// the key `GET /v1/audit/verify?anchors=stored` checks with unless the auditor names one.
    pub anchor_key: Option<ledger_domain::anchors::PublicKey>,
}

impl AppState {
    /// Makes the lookup tables those of the stored credentials; answers how many there are.
    pub async fn load_credentials(&self) -> Result<usize, ApiError> {
        let book = self.ledger.credentials().await?;
        self.credentials.sync(&book);
        Ok(book.by_id.len())
    }

    pub fn context(&self, caller: &Caller) -> CommandContext {
        CommandContext { meta: caller.meta(), now: chrono::Utc::now(), idempotency: caller.idempotency() }
    }
}

/// One endpoint: what the router serves and what `/openapi.json` documents, from the same
/// table so the two cannot drift.
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    /// Roles that may call it (`public` for none needed).
    pub roles: &'static str,
    pub summary: &'static str,
    handler: MethodRouter<Arc<AppState>>,
}

fn ep(
    method: &'static str,
    path: &'static str,
    roles: &'static str,
    summary: &'static str,
    handler: MethodRouter<Arc<AppState>>,
) -> Endpoint {
    Endpoint { method, path, roles, summary, handler }
}

/// Every endpoint of docs/API.md this server serves.
pub fn endpoints() -> Vec<Endpoint> {
    use crate::{
        audit_routes as audit, coupons_routes as coupons, credentials_routes as creds, funds_routes as funds,
        incentive_routes as inc, lab_points_routes as lab_points, rebate_routes as rebate, registry_routes as reg,
        statement_routes as stmt, vendor,
    };
    vec![
        ep("get", "/healthz", "public", "Liveness, head and applied positions", get(healthz)),
        ep("get", "/metrics", "public", "Prometheus metrics", get(metrics::metrics)),
        ep("get", "/openapi.json", "public", "This document", get(openapi)),
        ep("post", "/v1/credentials", "admin", "Issue a token and an AK/SK pair", post(creds::issue)),
        ep("get", "/v1/credentials", "admin", "Every credential, without secrets", get(creds::list)),
        ep("post", "/v1/credentials/{id}/revoke", "admin", "End a credential at once", post(creds::revoke)),
        ep("post", "/v1/partners", "admin", "Register a partner", post(reg::register_partner)),
        ep(
            "get",
            "/v1/partners/{id}",
            "admin, auditor, partner (own)",
            "A partner and its certifications",
            get(reg::get_partner),
        ),
        ep(
            "post",
            "/v1/partners/{id}/certifications",
            "admin",
            "Record a real-name or business-information certification",
            post(reg::certify_partner),
        ),
        ep("post", "/v1/customers", "admin", "Associate a customer with a partner", post(reg::associate_customer)),
        ep(
            "post",
            "/v1/customers/{id}/association-type",
            "admin, partner (own customer)",
            "Switch the association type",
            post(reg::switch_association_type),
        ),
        ep(
            "post",
            "/v1/customers/{id}/end-association",
            "admin, partner (own customer)",
            "End the customer's association (counts as a switch)",
            post(reg::end_association),
        ),
        ep("post", "/v1/policies", "admin", "Publish an incentive policy version", post(reg::publish_policy)),
        ep(
            "get",
            "/v1/policies",
            "partner, admin, auditor",
            "The policy in force for a month (?month=&currency=)",
            get(reg::policy_in_force),
        ),
        ep("post", "/v1/partners/{id}/level", "admin", "Change a partner's level", post(reg::change_level)),
        ep("post", "/v1/partners/{id}/funds", "admin", "Credit a distributor's fund pool", post(funds::credit_funds)),
        ep(
            "post",
            "/v1/partners/{id}/coupon-quota",
            "admin",
            "Add to a partner's coupon quota",
            post(coupons::grant_coupon_quota),
        ),
        ep(
            "post",
            "/v1/consumption",
            "admin (billing)",
            "Record consumption lines, item by item",
            post(inc::record_consumption),
        ),
        ep(
            "post",
            "/v1/consumption/{id}/refunds",
            "admin (billing)",
            "Refund part of a consumption line",
            post(inc::refund_consumption),
        ),
        ep(
            "get",
            "/v1/incentive-months",
            "partner, admin, auditor",
            "Incentive months with status, accrued, final, rollover",
            get(inc::list_months),
        ),
        ep(
            "post",
            "/v1/incentive-months/{id}/apply",
            "partner",
            "Apply for a month's incentive (certification gate)",
            post(inc::apply_for_month),
        ),
        ep(
            "post",
            "/v1/incentive-months/{id}/{month}/close",
            "admin",
            "Close a month after its cut-off",
            post(inc::close_month),
        ),
        ep(
            "post",
            "/v1/incentive-months/{id}/{month}/review",
            "admin",
            "Preliminary review: pass or reject",
            post(inc::review_month),
        ),
        ep(
            "post",
            "/v1/incentive-months/{id}/{month}/finalize",
            "admin",
            "Finalize with the final amount",
            post(inc::finalize_month),
        ),
        ep("get", "/v1/rollover", "partner, admin, auditor", "The month-rollover report", get(inc::rollover)),
        ep(
            "get",
            "/v1/incentive-details",
            "partner, admin, auditor",
            "Every line of a month with what it earned and why (?month=)",
            get(inc::incentive_details),
        ),
        ep("post", "/v1/opportunities", "admin", "Share an opportunity with a partner", post(inc::share_opportunity)),
        ep(
            "post",
            "/v1/opportunities/{id}/{action}",
            "deliver/review/finalize: admin; accept/apply: partner",
            "Opportunity lifecycle",
            post(inc::opportunity_step),
        ),
        ep(
            "get",
            "/v1/quarterly-payments/eligibility",
            "partner, admin, auditor",
            "Eligibility with every blocker and the payable amount",
            get(inc::eligibility),
        ),
        ep("post", "/v1/quarterly-payments", "partner", "Request the quarterly payment", post(inc::request_payment)),
        ep(
            "get",
            "/v1/quarterly-payments",
            "partner, admin, auditor",
            "A partner's payment applications, with their invoice lists",
            get(inc::list_payments),
        ),
        ep(
            "get",
            "/v1/quarterly-payments/{id}",
            "partner (own), admin, auditor",
            "A quarterly payment with its invoice list",
            get(inc::get_payment),
        ),
        ep(
            "post",
            "/v1/quarterly-payments/{id}/{action}",
            "admin",
            "approve, reject, invoice-list, invoice-received, pay",
            post(inc::payment_step),
        ),
        ep("post", "/v1/allocations", "partner", "Allocate funds to a customer or reseller", post(funds::allocate)),
        ep("post", "/v1/reclaims", "partner", "Reclaim unspent allocated funds", post(funds::reclaim)),
        ep(
            "get",
            "/v1/adjustment-records",
            "partner, admin, auditor",
            "Adjustment records with filters and paging",
            get(funds::adjustment_records),
        ),
        ep("post", "/v1/coupons", "partner", "Issue a cash coupon to a resale customer", post(coupons::issue_coupon)),
        ep("get", "/v1/coupons", "partner, admin, auditor", "A partner's coupons", get(coupons::list_coupons)),
        ep("get", "/v1/coupons/{id}", "partner (own), admin, auditor", "One coupon", get(coupons::get_coupon)),
        ep("post", "/v1/coupons/{id}/usage", "admin (billing)", "Report coupon use", post(coupons::use_coupon)),
        ep(
            "post",
            "/v2/promotions/benefits/partner-coupons/reclaim",
            "partner",
            "Reclaim coupons, item by item",
            post(coupons::reclaim_coupons),
        ),
        ep(
            "get",
            "/v1/withdrawals/withdrawable",
            "partner, admin, auditor",
            "Withdrawable rebate balance",
            get(rebate::withdrawable),
        ),
        ep("post", "/v1/withdrawals", "partner", "Request a rebate withdrawal", post(rebate::request_withdrawal)),
        ep(
            "get",
            "/v1/withdrawals/{id}",
            "partner (own), admin, auditor",
            "One withdrawal",
            get(rebate::get_withdrawal),
        ),
        ep(
            "post",
            "/v1/withdrawals/{id}/{action}",
            "admin",
            "approve, reject, paid, failed",
            post(rebate::withdrawal_step),
        ),
        ep("post", "/v1/lab-points", "partner", "Apply for cloud lab points", post(lab_points::apply_lab_points)),
        ep(
            "get",
            "/v1/lab-points",
            "partner, admin, auditor",
            "Lab point applications and balance",
            get(lab_points::list_lab_points),
        ),
        ep(
            "put",
            "/v1/lab-points/{id}",
            "partner",
            "Edit and resubmit a rejected application",
            axum::routing::put(lab_points::resubmit_lab_points),
        ),
        ep("post", "/v1/lab-points/{id}/{action}", "admin", "grant or reject", post(lab_points::lab_points_step)),
        ep(
            "get",
            "/v1/trial-balance",
            "auditor, admin",
            "Debits = credits per currency, as of a time",
            get(stmt::trial_balance),
        ),
        ep(
            "get",
            "/v1/balances",
            "partner, admin, auditor",
            "Every balance of a partner as of a time",
            get(stmt::balances),
        ),
        ep(
            "get",
            "/v1/statements/{month}",
            "partner, admin, auditor",
            "Monthly statement per account (JSON or CSV)",
            get(stmt::statement),
        ),
        ep(
            "post",
            "/v2/promotions/benefits/partner-coupons",
            "partner",
            "CreatePartnerCoupons: issue coupons out of a quota grant",
            post(vendor::coupons::create_coupons),
        ),
        ep(
            "get",
            "/v2/promotions/benefits/partner-coupons",
            "partner",
            "ListIssuedPartnerCoupons: the coupons issued",
            get(vendor::coupons::list_issued),
        ),
        ep(
            "post",
            "/v2/partners/coupon-quotas/query",
            "partner",
            "ListQuotaCoupons: the quota grants and what is left of them",
            post(vendor::coupons::list_quotas),
        ),
        ep(
            "post",
            "/v2/partners/indirect-partners/query",
            "partner (distributor)",
            "ListIndirectPartners: the distributor's resellers",
            post(vendor::partner::list_resellers),
        ),
        ep(
            "get",
            "/v3/accounts/partner-accounts/adjust-records",
            "partner",
            "ListPartnerAdjustRecords: adjustment records in the vendor's shape",
            get(vendor::funds::adjust_records),
        ),
        ep(
            "post",
            "/v2/accounts/partner-accounts/adjust-amount",
            "partner",
            "UpdateCustomerAccountAmount: allocate to a customer",
            post(vendor::funds::allocate_to_customer),
        ),
        ep(
            "post",
            "/v2/accounts/partner-accounts/reclaim",
            "partner",
            "ReclaimToPartnerAccount: reclaim from a customer",
            post(vendor::funds::reclaim_from_customer),
        ),
        ep(
            "post",
            "/v2/accounts/partner-accounts/indirect-partner-adjust",
            "partner (distributor)",
            "UpdateIndirectPartnerAccount: allocate to a reseller",
            post(vendor::funds::allocate_to_reseller),
        ),
        ep(
            "post",
            "/v2/accounts/partner-accounts/indirect-partner-reclaim",
            "partner (distributor)",
            "ReclaimIndirectPartnerAccount: reclaim from a reseller",
            post(vendor::funds::reclaim_from_reseller),
        ),
        ep(
            "get",
            "/v2/accounts/partner-accounts/balances",
            "partner",
            "ListPartnerBalances: what the partner may allocate",
            get(vendor::funds::balances),
        ),
        ep("get", "/v1/events", "auditor, admin", "The global log in order", get(audit::events)),
        ep("get", "/v1/streams/{stream}/events", "auditor, admin", "One stream's history", get(audit::stream_events)),
        ep(
            "get",
            "/v1/audit/verify",
            "auditor, admin",
            "Walk the hash chain (?anchors=stored: and check it against the signed anchors)",
            get(audit::verify),
        ),
        ep("get", "/v1/audit/anchors", "auditor, admin", "The signed anchors of the hash chain", get(audit::anchors)),
    ]
}

pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    for e in endpoints() {
        router = router.route(e.path, e.handler);
    }
    router
        .fallback(|| async { ApiError::not_found("route") })
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::record))
        .layer(axum::middleware::from_fn_with_state(state.clone(), http::authenticate))
        .layer(axum::extract::DefaultBodyLimit::max(http::MAX_BODY_BYTES))
        .with_state(state)
}

/// The OpenAPI document, built from [`endpoints`].
pub fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for e in endpoints() {
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": e.summary,
            "description": format!("Roles: {}.", e.roles),
            "parameters": params,
            "responses": {
                "200": {"description": "OK (a read, or a write replayed by its X-Request-Id)"},
                "201": {"description": "Created: the write stored events; `position` is its last event's"},
                "400": {"description": "Bad input", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "UNAUTHENTICATED"},
                "403": {"description": "FORBIDDEN: not yours"},
                "404": {"description": "NOT_FOUND"},
                "409": {"description": "A business rule (docs/DOMAIN.md codes), CONCURRENCY_CONFLICT or IDEMPOTENCY_CONFLICT"},
            },
        });
        if e.roles != "public" {
            op["security"] = json!([{"token": []}, {"bearer": []}, {"aksk": []}]);
        }
        paths.entry(e.path.to_string()).or_insert_with(|| json!({}))[e.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "ledger", "version": env!("CARGO_PKG_VERSION"), "description": "Partner incentive and settlement ledger (docs/API.md)"},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "aksk": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "SDK-HMAC-SHA256 Access=<ak>, SignedHeaders=<h1;h2>, Signature=<hex> with X-Sdk-Date"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error_code", "error_msg", "request_id"], "properties": {
                    "error_code": {"type": "string"}, "error_msg": {"type": "string"}, "request_id": {"type": ["string", "null"]}, "details": {}
                }},
                "Money": {"type": "object", "required": ["amount", "currency"], "properties": {
                    "amount": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]{1,2})?$"}, "currency": {"enum": ["CNY", "USD"]}
                }},
            },
        },
    })
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

async fn healthz(State(state): State<Arc<AppState>>) -> Json<Value> {
    let head = *state.store.head().borrow();
    let applied = state.progress.applied();
    Json(json!({"status": "ok", "head_position": head, "applied_position": applied}))
}

/// Serves until ctrl-c or SIGTERM under the state's limits, then lets in-flight requests
/// finish.
pub async fn serve(state: Arc<AppState>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_with(state, Router::new(), listener).await
}

/// Like [`serve`], with more routes beside the API's (the console's pages): they share the
/// server's limits and shutdown; the API's routes keep their own authentication.
pub async fn serve_with(
    state: Arc<AppState>,
    beside: Router,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "ledger serving");
    let limits = state.limits.config.clone();
    crate::limits::serve_limited(beside.merge(router(state)), listener, &limits, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
