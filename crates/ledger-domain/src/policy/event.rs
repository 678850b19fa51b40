//! The policy's one event: a version published.

use chrono::{DateTime, Utc};
use ledger_core::{Currency, Month, Rate};
use serde::{Deserialize, Serialize};

use crate::EventFamily;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProductRate {
    pub product: String,
    pub rate: Rate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum PolicyEvent {
    PolicyPublished {
        currency: Currency,
        effective_month: Month,
        rates: Vec<ProductRate>,
        settlement_grace_days: u32,
        published_at: DateTime<Utc>,
    },
}

impl EventFamily for PolicyEvent {}

/// One example of every event, for the JSON Schema catalogue.
pub fn examples() -> Vec<PolicyEvent> {
    vec![PolicyEvent::PolicyPublished {
        currency: Currency::CNY,
        effective_month: Month::new(2026, 7).expect("a valid month"),
        rates: vec![
            ProductRate { product: "ecs".into(), rate: Rate::parse("0.05").expect("a valid rate") },
            ProductRate { product: "obs".into(), rate: Rate::parse("0.035").expect("a valid rate") },
        ],
        settlement_grace_days: 3,
        published_at: "2026-06-20T02:00:00Z".parse().expect("a valid timestamp"),
    }]
}
