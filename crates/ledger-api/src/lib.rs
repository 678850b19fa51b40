//! # ledger-api
//!
//! The HTTP contract of docs/API.md. It owns authentication (tokens, AK/SK signing), who may see
//! what, and the mapping of errors to status codes; every rule lives in the domain and every
//! read in the projections.

pub mod audit_routes;
pub mod auth;
pub mod coupons_routes;
pub mod credentials_routes;
pub mod error;
pub mod funds_routes;
pub mod http;
pub mod incentive_routes;
pub mod lab_points_routes;
pub mod limits;
pub mod metrics;
pub mod nodes;
pub mod rebate_routes;
pub mod registry_routes;
pub mod scope;
pub mod server;
pub mod signing;
pub mod statement_routes;
pub mod vendor;

pub use error::ApiError;
pub use server::{router, serve, serve_with, AppState};
