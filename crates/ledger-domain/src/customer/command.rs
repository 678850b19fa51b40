//! What may be asked of a customer stream: one struct per command.

use chrono::{DateTime, Utc};

use super::AssociationType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerCommand {
    AssociateCustomer(AssociateCustomer),
    SwitchAssociationType(SwitchAssociationType),
    EndAssociation(EndAssociation),
}

/// The application layer checks that `partner_id` is a registered partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociateCustomer {
    pub customer_id: String,
    pub partner_id: String,
    pub association_type: AssociationType,
    pub effective_at: Option<DateTime<Utc>>,
}

/// `partner_id` is the partner acting (its own customer only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchAssociationType {
    pub partner_id: String,
    pub association_type: AssociationType,
    pub effective_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndAssociation {
    pub partner_id: String,
    pub effective_at: Option<DateTime<Utc>>,
}
