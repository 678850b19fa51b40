//! The customer's events: its association with one partner over time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::EventFamily;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssociationType {
    /// 代售.
    Resale,
    /// 推荐.
    Referral,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    pub partner_id: String,
    pub association_type: AssociationType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum CustomerEvent {
    CustomerAssociated {
        customer_id: String,
        partner_id: String,
        association_type: AssociationType,
        effective_at: DateTime<Utc>,
    },
    AssociationTypeSwitched {
        customer_id: String,
        partner_id: String,
        from: AssociationType,
        to: AssociationType,
        effective_at: DateTime<Utc>,
    },
    AssociationEnded {
        customer_id: String,
        partner_id: String,
        effective_at: DateTime<Utc>,
    },
}

impl EventFamily for CustomerEvent {}

/// One example of every event, for the JSON Schema catalogue.
pub fn examples() -> Vec<CustomerEvent> {
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("a valid timestamp") };
    vec![
        CustomerEvent::CustomerAssociated {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            association_type: AssociationType::Resale,
            effective_at: at("2026-01-05T02:00:00Z"),
        },
        CustomerEvent::AssociationTypeSwitched {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            from: AssociationType::Resale,
            to: AssociationType::Referral,
            effective_at: at("2026-05-01T00:00:00Z"),
        },
        CustomerEvent::AssociationEnded {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            effective_at: at("2026-09-01T00:00:00Z"),
        },
    ]
}
