//! # ledger-api
//!
//! The HTTP contract of API.md. It owns authentication (tokens, AK/SK signing), who may see
//! what, and the mapping of errors to status codes; every rule lives in the domain and every
//! read in the projections.

pub mod auth;
pub mod error;
pub mod signing;

pub use error::ApiError;
