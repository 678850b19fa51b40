//! The rebate account's events, their schema versions and upcasters.

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::{Currency, Money};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::REBATE_CREDITED_VERSION;
use crate::event::DecodeError;
use crate::partner::BankAccount;
use crate::EventFamily;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum RebateEvent {
    /// A quarterly payment paid by `cloud_account_credit` (激励返点返云账户). Schema version 2:
    /// version 1 stored the amount as a bare string with the currency beside it.
    RebateCredited {
        partner_id: String,
        /// The quarterly payment that was paid to the rebate account.
        source_id: String,
        amount: Money,
        credited_at: DateTime<Utc>,
    },
    WithdrawalRequested {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        bank_account: BankAccount,
        requested_at: DateTime<Utc>,
    },
    WithdrawalApproved {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        /// Approval business date (CST) + 7 working days.
        expected_arrival_date: NaiveDate,
        approved_at: DateTime<Utc>,
    },
    WithdrawalRejected {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        reason: Option<String>,
        rejected_at: DateTime<Utc>,
    },
    WithdrawalPaid {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        paid_at: DateTime<Utc>,
    },
    /// The bank returned the transfer: the amount is withdrawable again.
    WithdrawalFailed {
        partner_id: String,
        withdrawal_id: String,
        amount: Money,
        reason: Option<String>,
        failed_at: DateTime<Utc>,
    },
}

impl EventFamily for RebateEvent {
    fn schema_version(event_type: &str) -> u32 {
        match event_type {
            "RebateCredited" => REBATE_CREDITED_VERSION,
            _ => 1,
        }
    }

    fn upcast(event_type: &str, version: u32, payload: Value) -> Result<Value, DecodeError> {
        match (event_type, version) {
            ("RebateCredited", 1) => legacy::rebate_credited_v1_to_v2(payload),
            _ => Err(DecodeError::UnknownVersion { event_type: event_type.to_string(), version }),
        }
    }
}

/// Older schema versions and their upcasters.
pub mod legacy {
    use super::*;

    /// `RebateCredited` schema version 1: the amount as a bare decimal string with the
    /// currency beside it, as the quarterly payment row it was copied from. Version 2 carries
    /// one `Money` object like every other money event, so consumers read every amount the
    /// same way.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RebateCreditedV1 {
        pub partner_id: String,
        pub source_id: String,
        pub amount: Decimal,
        pub currency: Currency,
        pub credited_at: DateTime<Utc>,
    }

    pub fn rebate_credited_v1_to_v2(payload: Value) -> Result<Value, DecodeError> {
        let v1: RebateCreditedV1 = serde_json::from_value(payload).map_err(|e| DecodeError::Payload(e.to_string()))?;
        let current = RebateEvent::RebateCredited {
            partner_id: v1.partner_id,
            source_id: v1.source_id,
            amount: Money::new(v1.amount, v1.currency),
            credited_at: v1.credited_at,
        };
        Ok(crate::encode(&current).2)
    }

    /// A payload as version 1 stored it, and the event it must decode to.
    pub fn rebate_credited_v1_example() -> (Value, RebateEvent) {
        let payload = serde_json::json!({
            "partner_id": "P1",
            "source_id": "QP-P1-2026Q2",
            "amount": "1200.50",
            "currency": "CNY",
            "credited_at": "2026-07-20T02:00:00Z",
        });
        let event = RebateEvent::RebateCredited {
            partner_id: "P1".into(),
            source_id: "QP-P1-2026Q2".into(),
            amount: Money::new(Decimal::new(120050, 2), Currency::CNY),
            credited_at: "2026-07-20T02:00:00Z".parse().expect("a valid timestamp"),
        };
        (payload, event)
    }
}

impl RebateEvent {
    /// The withdrawal the event is about (`None` for a credit).
    pub fn withdrawal_id(&self) -> Option<&str> {
        match self {
            RebateEvent::RebateCredited { .. } => None,
            RebateEvent::WithdrawalRequested { withdrawal_id, .. }
            | RebateEvent::WithdrawalApproved { withdrawal_id, .. }
            | RebateEvent::WithdrawalRejected { withdrawal_id, .. }
            | RebateEvent::WithdrawalPaid { withdrawal_id, .. }
            | RebateEvent::WithdrawalFailed { withdrawal_id, .. } => Some(withdrawal_id),
        }
    }

    pub fn partner_id(&self) -> &str {
        match self {
            RebateEvent::RebateCredited { partner_id, .. }
            | RebateEvent::WithdrawalRequested { partner_id, .. }
            | RebateEvent::WithdrawalApproved { partner_id, .. }
            | RebateEvent::WithdrawalRejected { partner_id, .. }
            | RebateEvent::WithdrawalPaid { partner_id, .. }
            | RebateEvent::WithdrawalFailed { partner_id, .. } => partner_id,
        }
    }
}

/// One example of every event, for the JSON Schema catalogue.
pub fn examples() -> Vec<RebateEvent> {
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("a valid timestamp") };
    let cny = |cents: i64| Money::new(Decimal::new(cents, 2), Currency::CNY);
    let p = || "P1".to_string();
    let w = || "W-0001".to_string();
    vec![
        RebateEvent::RebateCredited {
            partner_id: p(),
            source_id: "QP-P1-2026Q2".into(),
            amount: cny(120050),
            credited_at: at("2026-07-20T02:00:00Z"),
        },
        RebateEvent::WithdrawalRequested {
            partner_id: p(),
            withdrawal_id: w(),
            amount: cny(100000),
            bank_account: BankAccount {
                holder_name: "银河科技有限公司".into(),
                number: "6222000011112222".into(),
                bank: "ICBC".into(),
            },
            requested_at: at("2026-09-29T03:00:00Z"),
        },
        RebateEvent::WithdrawalApproved {
            partner_id: p(),
            withdrawal_id: w(),
            amount: cny(100000),
            expected_arrival_date: NaiveDate::from_ymd_opt(2026, 10, 15).expect("a valid date"),
            approved_at: at("2026-09-30T03:00:00Z"),
        },
        RebateEvent::WithdrawalRejected {
            partner_id: p(),
            withdrawal_id: "W-0002".into(),
            amount: cny(5000),
            reason: Some("bank account under review".into()),
            rejected_at: at("2026-09-30T04:00:00Z"),
        },
        RebateEvent::WithdrawalPaid {
            partner_id: p(),
            withdrawal_id: w(),
            amount: cny(100000),
            paid_at: at("2026-10-14T06:00:00Z"),
        },
        RebateEvent::WithdrawalFailed {
            partner_id: p(),
            withdrawal_id: "W-0003".into(),
            amount: cny(2000),
            reason: None,
            failed_at: at("2026-10-16T06:00:00Z"),
        },
    ]
}
