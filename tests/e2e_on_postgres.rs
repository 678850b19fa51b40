//! The acceptance stories of `tests/`, run again with every server on PostgreSQL
//! (`serve --store postgres://…`, see `support/postgres.rs`): the same test functions, not
//! copies. Stories that read the embedded store's file directly are not among them.

#[path = "e2e_allocations.rs"]
mod allocations;
#[path = "e2e_bad_input.rs"]
mod bad_input;
#[path = "e2e_coupons.rs"]
mod coupons;
#[path = "e2e_customers.rs"]
mod customers;
#[path = "e2e_isolation.rs"]
mod isolation;
#[path = "e2e_money_edges.rs"]
mod money_edges;
#[path = "e2e_partner_journey.rs"]
mod partner_journey;
#[path = "e2e_partner_why.rs"]
mod partner_why;
#[path = "e2e_quarterly_blockers.rs"]
mod quarterly_blockers;
#[path = "e2e_vendor_api.rs"]
mod vendor_api;
