//! What may be asked of a policy book.

use ledger_core::{Currency, Month};

use super::ProductRate;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyCommand {
    PublishPolicy(PublishPolicy),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishPolicy {
    pub currency: Currency,
    pub effective_month: Month,
    pub rates: Vec<ProductRate>,
    pub settlement_grace_days: Option<u32>,
}
