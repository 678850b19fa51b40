//! The fund tree's events; an allocation or reclaim event is the adjustment record.

use chrono::{DateTime, Utc};
use ledger_core::{Currency, Money};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::EventFamily;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CounterpartyType {
    Customer,
    Reseller,
}

/// The other side of an allocation or reclaim: docs/API.md `counterparty: {type, id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Counterparty {
    #[serde(rename = "type")]
    pub kind: CounterpartyType,
    pub id: String,
}

impl Counterparty {
    pub fn customer(id: impl Into<String>) -> Self {
        Counterparty { kind: CounterpartyType::Customer, id: id.into() }
    }

    pub fn reseller(id: impl Into<String>) -> Self {
        Counterparty { kind: CounterpartyType::Reseller, id: id.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    Allocate,
    Reclaim,
    /// 解绑回收: what a customer held unspent went back to its allocators when its
    /// association ended (§3 "Unbind reclaim").
    UnbindReclaim,
}

/// 调账记录, docs/API.md "Adjustment record", plus the distributor whose tree it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AdjustmentRecord {
    pub record_id: String,
    pub kind: AdjustmentKind,
    pub distributor_id: String,
    pub operator_partner_id: String,
    pub counterparty: Counterparty,
    pub amount: Money,
    pub occurred_at: DateTime<Utc>,
    pub remark: Option<String>,
    pub actor: String,
}

/// One allocator's share of a drawdown (a customer may hold funds from its distributor
/// and, after moving within the tree, from a reseller too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Draw {
    pub allocator_partner_id: String,
    pub amount: Money,
}

/// `partner_id` is always the distributor that owns the stream (the Kafka key keeps one
/// tree in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum FundsEvent {
    /// The vendor credits the distributor's pool.
    FundsCredited { partner_id: String, credit_id: String, amount: Money, credited_at: DateTime<Utc> },
    /// 拨款: an adjustment record of kind `allocate`.
    FundsAllocated {
        partner_id: String,
        record_id: String,
        operator_partner_id: String,
        counterparty: Counterparty,
        amount: Money,
        occurred_at: DateTime<Utc>,
        remark: Option<String>,
        actor: String,
    },
    /// 回收: an adjustment record of kind `reclaim`.
    FundsReclaimed {
        partner_id: String,
        record_id: String,
        operator_partner_id: String,
        counterparty: Counterparty,
        amount: Money,
        occurred_at: DateTime<Utc>,
        remark: Option<String>,
        actor: String,
    },
    /// 解绑回收: an adjustment record of kind `unbind_reclaim`. The customer's association
    /// with its partner ended, and what it held unspent from `operator_partner_id` (the
    /// allocator) went back to it.
    FundsUnbindReclaimed {
        partner_id: String,
        record_id: String,
        operator_partner_id: String,
        counterparty: Counterparty,
        amount: Money,
        occurred_at: DateTime<Utc>,
        remark: Option<String>,
        actor: String,
    },
    /// A resale customer's consumption line drew down its allocated balance.
    AllocatedBalanceDrawnDown {
        partner_id: String,
        /// The consumption line's `record_id`.
        record_id: String,
        customer_id: String,
        consumption: Money,
        /// min(allocated, consumption); the sum of `drawn_from`.
        drawn: Money,
        drawn_from: Vec<Draw>,
        consumed_at: DateTime<Utc>,
    },
}

impl EventFamily for FundsEvent {}

impl FundsEvent {
    /// The adjustment record an allocation or reclaim is; `None` for other events.
    pub fn adjustment_record(&self) -> Option<AdjustmentRecord> {
        let kind = match self {
            FundsEvent::FundsAllocated { .. } => AdjustmentKind::Allocate,
            FundsEvent::FundsReclaimed { .. } => AdjustmentKind::Reclaim,
            FundsEvent::FundsUnbindReclaimed { .. } => AdjustmentKind::UnbindReclaim,
            _ => return None,
        };
        match self {
            FundsEvent::FundsAllocated {
                partner_id,
                record_id,
                operator_partner_id,
                counterparty,
                amount,
                occurred_at,
                remark,
                actor,
            }
            | FundsEvent::FundsReclaimed {
                partner_id,
                record_id,
                operator_partner_id,
                counterparty,
                amount,
                occurred_at,
                remark,
                actor,
            }
            | FundsEvent::FundsUnbindReclaimed {
                partner_id,
                record_id,
                operator_partner_id,
                counterparty,
                amount,
                occurred_at,
                remark,
                actor,
            } => Some(AdjustmentRecord {
                record_id: record_id.clone(),
                kind,
                distributor_id: partner_id.clone(),
                operator_partner_id: operator_partner_id.clone(),
                counterparty: counterparty.clone(),
                amount: *amount,
                occurred_at: *occurred_at,
                remark: remark.clone(),
                actor: actor.clone(),
            }),
            _ => None,
        }
    }
}

/// At least one example of every event variant (JSON Schema generation and checks).
pub fn examples() -> Vec<FundsEvent> {
    let at = DateTime::parse_from_rfc3339("2026-07-01T02:00:00Z").expect("valid time").with_timezone(&Utc);
    let cny = |s: &str| Money::new(s.parse().expect("valid amount"), Currency::CNY);
    vec![
        FundsEvent::FundsCredited {
            partner_id: "D1".into(),
            credit_id: "CR-1".into(),
            amount: cny("1000.00"),
            credited_at: at,
        },
        FundsEvent::FundsAllocated {
            partner_id: "D1".into(),
            record_id: "ADJ-1".into(),
            operator_partner_id: "D1".into(),
            counterparty: Counterparty::reseller("R1"),
            amount: cny("300.00"),
            occurred_at: at,
            remark: Some("Q3 budget".into()),
            actor: "alice".into(),
        },
        FundsEvent::FundsAllocated {
            partner_id: "D1".into(),
            record_id: "ADJ-2".into(),
            operator_partner_id: "R1".into(),
            counterparty: Counterparty::customer("C1"),
            amount: cny("100.00"),
            occurred_at: at,
            remark: None,
            actor: "bob".into(),
        },
        FundsEvent::FundsReclaimed {
            partner_id: "D1".into(),
            record_id: "ADJ-3".into(),
            operator_partner_id: "D1".into(),
            counterparty: Counterparty::reseller("R1"),
            amount: cny("50.00"),
            occurred_at: at,
            remark: Some("unused".into()),
            actor: "alice".into(),
        },
        FundsEvent::FundsUnbindReclaimed {
            partner_id: "D1".into(),
            record_id: "UNB-42-1".into(),
            operator_partner_id: "R1".into(),
            counterparty: Counterparty::customer("C1"),
            amount: cny("20.00"),
            occurred_at: at,
            remark: Some("association ended".into()),
            actor: "alice".into(),
        },
        FundsEvent::AllocatedBalanceDrawnDown {
            partner_id: "D1".into(),
            record_id: "CONS-1".into(),
            customer_id: "C1".into(),
            consumption: cny("120.00"),
            drawn: cny("100.00"),
            drawn_from: vec![Draw { allocator_partner_id: "R1".into(), amount: cny("100.00") }],
            consumed_at: at,
        },
    ]
}
