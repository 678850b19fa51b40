//! What may be asked of a fund tree: one struct per command.

use chrono::{DateTime, Utc};
use ledger_core::Money;

use super::Counterparty;

/// An allocation or reclaim as the operator asks for it (docs/API.md `POST /v1/allocations`,
/// `/v1/reclaims`), with the facts the application layer resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// From the app (unique per stream).
    pub record_id: String,
    /// The stream's distributor: the operator itself, or the operator's distributor when
    /// the operator is a reseller. The app routes a reseller only to its own distributor's
    /// stream, so an operator other than `distributor_id` is one of its resellers.
    pub distributor_id: String,
    pub operator_partner_id: String,
    pub counterparty: Counterparty,
    pub amount: Money,
    pub remark: Option<String>,
    pub actor: String,
    /// Resolved by the app at `now`: for a customer counterparty, the customer's partner;
    /// for a reseller counterparty, the reseller's distributor. `None` when there is none
    /// (no association, no such reseller).
    pub counterparty_parent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FundsCommand {
    CreditFunds(CreditFunds),
    Allocate(Adjustment),
    Reclaim(Adjustment),
    DrawDown(DrawDown),
    UnbindReclaim(UnbindReclaim),
}

/// §3 "Unbind reclaim": the association of `customer_id` ended; `unbind_id` names that end
/// (the same unbind again is a no-op). Everything the customer holds unspent in this tree
/// goes back to whoever allocated it, one record per allocator and currency, ids
/// `{unbind_id}-{n}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnbindReclaim {
    pub distributor_id: String,
    pub customer_id: String,
    pub unbind_id: String,
    pub actor: String,
}

/// The vendor credits `distributor_id`'s pool. The same `credit_id` with the same
/// amount again is a no-op; with another amount it is refused (`ALREADY_EXISTS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditFunds {
    pub distributor_id: String,
    pub credit_id: String,
    pub amount: Money,
}

/// The consumption line `record_id` of a resale customer (the app sends only those)
/// draws min(allocated, amount) from the customer's allocated balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawDown {
    pub record_id: String,
    pub customer_id: String,
    pub amount: Money,
    pub consumed_at: DateTime<Utc>,
}
