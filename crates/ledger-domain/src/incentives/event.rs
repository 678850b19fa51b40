//! The incentive ledger's events and the vocabulary they carry (statuses, decisions,
//! payment methods, the months and opportunities a payment includes).

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::{Currency, Money, Month, Quarter, Rate};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::DecodeError;
use crate::EventFamily;

/// Schema version of `QuarterlyPaymentRequested`: 2 added the months carried in
/// (`carried_months`, `carried_deduction`).
pub const PAYMENT_REQUESTED_VERSION: u32 = 2;
/// Schema version of `QuarterlyPaymentRejected`: 2 added the forfeited months it restores
/// (`restored_months`).
pub const PAYMENT_REJECTED_VERSION: u32 = 2;

/// The customer's association type in force at `consumed_at`, as the line records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineAssociation {
    /// 代售.
    Resale,
    /// 推荐.
    Referral,
}

impl From<crate::customer::AssociationType> for LineAssociation {
    fn from(t: crate::customer::AssociationType) -> Self {
        match t {
            crate::customer::AssociationType::Resale => LineAssociation::Resale,
            crate::customer::AssociationType::Referral => LineAssociation::Referral,
        }
    }
}

/// Why a kept line earns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LineReason {
    /// The policy of the line's incentive month does not list the product.
    ProductNotEligible,
}

/// docs/API.md's month statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MonthStatus {
    Accruing,
    Open,
    UnderReview,
    ClosedEmpty,
    Passed,
    Finalized,
    Forfeited,
    Paid,
}

/// Preliminary review (初审) outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Pass,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpportunityStatus {
    Shared,
    Accepted,
    UnderReview,
    Passed,
    Finalized,
    Paid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Requested,
    Approved,
    Rejected,
    InvoiceListIssued,
    InvoiceReceived,
    Paid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// To the certified bank account.
    BankTransfer,
    /// 激励返点返云账户: credited to the partner's rebate balance (§6).
    CloudAccountCredit,
}

/// The explicit difference between a month's final and accrued amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Adjustment {
    /// `final − accrued`, signed.
    pub amount: Money,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IncludedMonth {
    pub month: Month,
    /// The month's final amount.
    pub amount: Money,
}

/// A month a rejected payment had forfeited, and the status it returns to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RestoredMonth {
    pub month: Month,
    pub currency: Currency,
    pub status: MonthStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IncludedOpportunity {
    pub opportunity_id: String,
    pub amount: Money,
}

/// One line the partner must invoice (开票清单).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceLine {
    /// What is invoiced, e.g. `monthly incentive 2026-07` or `opportunity incentive O-1`.
    pub item: String,
    pub month: Option<Month>,
    pub opportunity_id: Option<String>,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InvoiceList {
    pub lines: Vec<InvoiceLine>,
    pub total: Money,
    /// Where the partner mails the invoice (发票邮寄地址).
    pub mailing_address: String,
    /// The vendor's public mailbox (公共邮箱).
    pub mailbox: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum IncentiveEvent {
    /// A billed consumption line, counted in `incentive_month`.
    ConsumptionRecorded {
        partner_id: String,
        record_id: String,
        customer_id: String,
        association_type: LineAssociation,
        product: String,
        amount: Money,
        consumed_at: DateTime<Utc>,
        settled_at: DateTime<Utc>,
        consumption_month: Month,
        /// The month the line is counted in; differs from `consumption_month` for a
        /// rollover line.
        incentive_month: Month,
        /// The month the rollover rule named, when it no longer accrued and the line was
        /// counted in the next accruing month instead (ours).
        deferred_from: Option<Month>,
        /// `None` when the product is not eligible.
        rate: Option<Rate>,
        /// `amount × rate` at full precision (never rounded here).
        incentive: Decimal,
        reason: Option<LineReason>,
    },
    /// A refund of (part of) a line; `incentive` (≤ 0) is the clawback, counted in
    /// `incentive_month`.
    ConsumptionRefunded {
        partner_id: String,
        refund_id: String,
        record_id: String,
        amount: Money,
        settled_at: DateTime<Utc>,
        original_incentive_month: Month,
        incentive_month: Month,
        rate: Option<Rate>,
        incentive: Decimal,
    },
    IncentiveMonthClosed {
        partner_id: String,
        month: Month,
        currency: Currency,
        /// The month total, rounded once.
        accrued: Money,
        /// `open`, or `closed_empty` when the total is 0.
        status: MonthStatus,
        closed_at: DateTime<Utc>,
    },
    IncentiveMonthApplied {
        partner_id: String,
        month: Month,
        currency: Currency,
        applied_at: DateTime<Utc>,
    },
    IncentiveMonthReviewed {
        partner_id: String,
        month: Month,
        currency: Currency,
        decision: ReviewDecision,
        comment: Option<String>,
        reviewed_at: DateTime<Utc>,
    },
    IncentiveMonthFinalized {
        partner_id: String,
        month: Month,
        currency: Currency,
        accrued: Money,
        final_amount: Money,
        adjustment: Option<Adjustment>,
        finalized_at: DateTime<Utc>,
    },
    OpportunityShared {
        partner_id: String,
        opportunity_id: String,
        offering: String,
        core_tag: bool,
        delivery_end_date: Option<NaiveDate>,
        shared_at: DateTime<Utc>,
    },
    OpportunityDelivered {
        partner_id: String,
        opportunity_id: String,
        delivery_end_date: NaiveDate,
        delivered_at: DateTime<Utc>,
    },
    OpportunityAccepted {
        partner_id: String,
        opportunity_id: String,
        accepted_at: DateTime<Utc>,
    },
    OpportunityApplied {
        partner_id: String,
        opportunity_id: String,
        offering: String,
        applied_at: DateTime<Utc>,
    },
    OpportunityReviewed {
        partner_id: String,
        opportunity_id: String,
        decision: ReviewDecision,
        comment: Option<String>,
        reviewed_at: DateTime<Utc>,
    },
    OpportunityFinalized {
        partner_id: String,
        opportunity_id: String,
        final_amount: Money,
        /// The quarter (CST) whose payment includes it.
        quarter: Quarter,
        reason: Option<String>,
        finalized_at: DateTime<Utc>,
    },
    /// The request, atomic with its effects: the included and carried months keep
    /// `finalized` and are held by this payment, the excluded months become `forfeited`.
    /// Schema version 2: the carried months (earlier quarters' finalized months whose total
    /// is ≤ 0, docs/DOMAIN.md §5) and the deduction they make, `−Σ carried`; `payable` is
    /// `Σ included + Σ opportunities − carried_deduction` (> 0).
    QuarterlyPaymentRequested {
        partner_id: String,
        payment_id: String,
        quarter: Quarter,
        currency: Currency,
        included_months: Vec<IncludedMonth>,
        excluded_months: Vec<Month>,
        included_opportunities: Vec<IncludedOpportunity>,
        carried_months: Vec<IncludedMonth>,
        carried_deduction: Money,
        payable: Money,
        requested_at: DateTime<Utc>,
    },
    QuarterlyPaymentApproved {
        partner_id: String,
        payment_id: String,
        quarter: Quarter,
        approved_at: DateTime<Utc>,
    },
    /// Releases the included and carried months and the opportunities, and returns the
    /// months the request forfeited to the status they had. Schema version 2 added
    /// `restored_months` (a version 1 rejection restored none: forfeited months stayed so).
    QuarterlyPaymentRejected {
        partner_id: String,
        payment_id: String,
        quarter: Quarter,
        reason: Option<String>,
        restored_months: Vec<RestoredMonth>,
        rejected_at: DateTime<Utc>,
    },
    InvoiceListIssued {
        partner_id: String,
        payment_id: String,
        quarter: Quarter,
        invoice_list: InvoiceList,
        issued_at: DateTime<Utc>,
    },
    InvoiceReceived {
        partner_id: String,
        payment_id: String,
        quarter: Quarter,
        received_at: DateTime<Utc>,
    },
    /// The months (included and carried) and opportunities listed become `paid`.
    QuarterlyPaymentPaid {
        partner_id: String,
        payment_id: String,
        quarter: Quarter,
        method: PaymentMethod,
        amount: Money,
        included_months: Vec<Month>,
        included_opportunities: Vec<String>,
        paid_at: DateTime<Utc>,
    },
}

impl EventFamily for IncentiveEvent {
    fn schema_version(event_type: &str) -> u32 {
        match event_type {
            "QuarterlyPaymentRequested" => PAYMENT_REQUESTED_VERSION,
            "QuarterlyPaymentRejected" => PAYMENT_REJECTED_VERSION,
            _ => 1,
        }
    }

    fn upcast(event_type: &str, version: u32, payload: Value) -> Result<Value, DecodeError> {
        match (event_type, version) {
            ("QuarterlyPaymentRequested", 1) => legacy::payment_requested_v1_to_v2(payload),
            ("QuarterlyPaymentRejected", 1) => legacy::payment_rejected_v1_to_v2(payload),
            _ => Err(DecodeError::UnknownVersion { event_type: event_type.to_string(), version }),
        }
    }
}

/// Older schema versions and their upcasters. The structs must never change: their schema
/// files are immutable.
pub mod legacy {
    use super::*;

    fn payload<T: serde::de::DeserializeOwned>(payload: Value) -> Result<T, DecodeError> {
        serde_json::from_value(payload).map_err(|e| DecodeError::Payload(e.to_string()))
    }

    /// `QuarterlyPaymentRequested` schema version 1: no months carried in.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct QuarterlyPaymentRequestedV1 {
        pub partner_id: String,
        pub payment_id: String,
        pub quarter: Quarter,
        pub currency: Currency,
        pub included_months: Vec<IncludedMonth>,
        pub excluded_months: Vec<Month>,
        pub included_opportunities: Vec<IncludedOpportunity>,
        pub payable: Money,
        pub requested_at: DateTime<Utc>,
    }

    /// A version 1 request carried nothing in: no carried months, a deduction of 0.
    pub fn payment_requested_v1_to_v2(v1: Value) -> Result<Value, DecodeError> {
        let v1: QuarterlyPaymentRequestedV1 = payload(v1)?;
        Ok(crate::encode(&IncentiveEvent::QuarterlyPaymentRequested {
            partner_id: v1.partner_id,
            payment_id: v1.payment_id,
            quarter: v1.quarter,
            currency: v1.currency,
            included_months: v1.included_months,
            excluded_months: v1.excluded_months,
            included_opportunities: v1.included_opportunities,
            carried_months: vec![],
            carried_deduction: Money::zero(v1.currency),
            payable: v1.payable,
            requested_at: v1.requested_at,
        })
        .2)
    }

    /// `QuarterlyPaymentRejected` schema version 1: the forfeited months stayed forfeited.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct QuarterlyPaymentRejectedV1 {
        pub partner_id: String,
        pub payment_id: String,
        pub quarter: Quarter,
        pub reason: Option<String>,
        pub rejected_at: DateTime<Utc>,
    }

    /// A version 1 rejection restored no month (the rule of its time: history stays as it
    /// happened).
    pub fn payment_rejected_v1_to_v2(v1: Value) -> Result<Value, DecodeError> {
        let v1: QuarterlyPaymentRejectedV1 = payload(v1)?;
        Ok(crate::encode(&IncentiveEvent::QuarterlyPaymentRejected {
            partner_id: v1.partner_id,
            payment_id: v1.payment_id,
            quarter: v1.quarter,
            reason: v1.reason,
            restored_months: vec![],
            rejected_at: v1.rejected_at,
        })
        .2)
    }

    /// Payloads as version 1 stored them, and the events they must decode to.
    pub fn v1_examples() -> Vec<(&'static str, Value, IncentiveEvent)> {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("example time").with_timezone(&Utc);
        let cny = |s: &str| Money::new(Decimal::from_str_exact(s).expect("example amount"), Currency::CNY);
        let q: Quarter = "2026Q3".parse().expect("example quarter");
        let july: Month = "2026-07".parse().expect("example month");
        vec![
            (
                "QuarterlyPaymentRequested",
                serde_json::json!({
                    "partner_id": "P1", "payment_id": "QP-1", "quarter": "2026Q3", "currency": "CNY",
                    "included_months": [{"month": "2026-07", "amount": {"amount": "50.00", "currency": "CNY"}}],
                    "excluded_months": ["2026-08"], "included_opportunities": [],
                    "payable": {"amount": "50.00", "currency": "CNY"}, "requested_at": "2026-10-01T01:00:00Z",
                }),
                IncentiveEvent::QuarterlyPaymentRequested {
                    partner_id: "P1".into(),
                    payment_id: "QP-1".into(),
                    quarter: q,
                    currency: Currency::CNY,
                    included_months: vec![IncludedMonth { month: july, amount: cny("50.00") }],
                    excluded_months: vec!["2026-08".parse().expect("example month")],
                    included_opportunities: vec![],
                    carried_months: vec![],
                    carried_deduction: cny("0"),
                    payable: cny("50.00"),
                    requested_at: at("2026-10-01T01:00:00Z"),
                },
            ),
            (
                "QuarterlyPaymentRejected",
                serde_json::json!({
                    "partner_id": "P1", "payment_id": "QP-1", "quarter": "2026Q3", "reason": null,
                    "rejected_at": "2026-10-02T01:00:00Z",
                }),
                IncentiveEvent::QuarterlyPaymentRejected {
                    partner_id: "P1".into(),
                    payment_id: "QP-1".into(),
                    quarter: q,
                    reason: None,
                    restored_months: vec![],
                    rejected_at: at("2026-10-02T01:00:00Z"),
                },
            ),
        ]
    }
}

/// At least one example of every event variant (JSON Schema generation and checks).
pub fn examples() -> Vec<IncentiveEvent> {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).expect("example time").with_timezone(&Utc);
    let month = |s: &str| s.parse::<Month>().expect("example month");
    let cny = |s: &str| Money::new(Decimal::from_str_exact(s).expect("example amount"), Currency::CNY);
    let p = || "P-1".to_string();
    let q: Quarter = "2026Q3".parse().expect("example quarter");
    let date = NaiveDate::from_ymd_opt(2026, 8, 20).expect("example date");
    vec![
        IncentiveEvent::ConsumptionRecorded {
            partner_id: p(),
            record_id: "R-1".into(),
            customer_id: "C-1".into(),
            association_type: LineAssociation::Resale,
            product: "ecs".into(),
            amount: cny("1000.00"),
            consumed_at: at("2026-07-31T10:00:00Z"),
            settled_at: at("2026-08-01T02:00:00Z"),
            consumption_month: month("2026-07"),
            incentive_month: month("2026-08"),
            deferred_from: None,
            rate: Some(Rate::parse("0.05").expect("example rate")),
            incentive: Decimal::from_str_exact("50.0000").expect("example incentive"),
            reason: None,
        },
        IncentiveEvent::ConsumptionRecorded {
            partner_id: p(),
            record_id: "R-2".into(),
            customer_id: "C-2".into(),
            association_type: LineAssociation::Referral,
            product: "unlisted".into(),
            amount: cny("10.00"),
            consumed_at: at("2026-07-02T10:00:00Z"),
            settled_at: at("2026-07-03T10:00:00Z"),
            consumption_month: month("2026-07"),
            incentive_month: month("2026-09"),
            deferred_from: Some(month("2026-07")),
            rate: None,
            incentive: Decimal::ZERO,
            reason: Some(LineReason::ProductNotEligible),
        },
        IncentiveEvent::ConsumptionRefunded {
            partner_id: p(),
            refund_id: "RF-1".into(),
            record_id: "R-1".into(),
            amount: cny("100.00"),
            settled_at: at("2026-08-10T02:00:00Z"),
            original_incentive_month: month("2026-08"),
            incentive_month: month("2026-08"),
            rate: Some(Rate::parse("0.05").expect("example rate")),
            incentive: Decimal::from_str_exact("-5.0000").expect("example incentive"),
        },
        IncentiveEvent::IncentiveMonthClosed {
            partner_id: p(),
            month: month("2026-08"),
            currency: Currency::CNY,
            accrued: cny("45.00"),
            status: MonthStatus::Open,
            closed_at: at("2026-09-01T01:00:00Z"),
        },
        IncentiveEvent::IncentiveMonthApplied {
            partner_id: p(),
            month: month("2026-08"),
            currency: Currency::CNY,
            applied_at: at("2026-09-02T01:00:00Z"),
        },
        IncentiveEvent::IncentiveMonthReviewed {
            partner_id: p(),
            month: month("2026-08"),
            currency: Currency::CNY,
            decision: ReviewDecision::Pass,
            comment: Some("ok".into()),
            reviewed_at: at("2026-09-03T01:00:00Z"),
        },
        IncentiveEvent::IncentiveMonthFinalized {
            partner_id: p(),
            month: month("2026-08"),
            currency: Currency::CNY,
            accrued: cny("45.00"),
            final_amount: cny("40.00"),
            adjustment: Some(Adjustment { amount: cny("-5.00"), reason: "disputed usage".into() }),
            finalized_at: at("2026-09-04T01:00:00Z"),
        },
        IncentiveEvent::OpportunityShared {
            partner_id: p(),
            opportunity_id: "O-1".into(),
            offering: "OFF-1".into(),
            core_tag: true,
            delivery_end_date: None,
            shared_at: at("2026-07-01T01:00:00Z"),
        },
        IncentiveEvent::OpportunityDelivered {
            partner_id: p(),
            opportunity_id: "O-1".into(),
            delivery_end_date: date,
            delivered_at: at("2026-08-20T01:00:00Z"),
        },
        IncentiveEvent::OpportunityAccepted {
            partner_id: p(),
            opportunity_id: "O-1".into(),
            accepted_at: at("2026-07-02T01:00:00Z"),
        },
        IncentiveEvent::OpportunityApplied {
            partner_id: p(),
            opportunity_id: "O-1".into(),
            offering: "OFF-1".into(),
            applied_at: at("2026-08-21T01:00:00Z"),
        },
        IncentiveEvent::OpportunityReviewed {
            partner_id: p(),
            opportunity_id: "O-1".into(),
            decision: ReviewDecision::Reject,
            comment: None,
            reviewed_at: at("2026-08-22T01:00:00Z"),
        },
        IncentiveEvent::OpportunityFinalized {
            partner_id: p(),
            opportunity_id: "O-1".into(),
            final_amount: cny("300.00"),
            quarter: q,
            reason: None,
            finalized_at: at("2026-08-25T01:00:00Z"),
        },
        IncentiveEvent::QuarterlyPaymentRequested {
            partner_id: p(),
            payment_id: "QP-1".into(),
            quarter: q,
            currency: Currency::CNY,
            included_months: vec![IncludedMonth { month: month("2026-08"), amount: cny("40.00") }],
            excluded_months: vec![month("2026-09")],
            included_opportunities: vec![IncludedOpportunity { opportunity_id: "O-1".into(), amount: cny("300.00") }],
            carried_months: vec![IncludedMonth { month: month("2026-06"), amount: cny("-3.00") }],
            carried_deduction: cny("3.00"),
            payable: cny("337.00"),
            requested_at: at("2026-10-01T01:00:00Z"),
        },
        IncentiveEvent::QuarterlyPaymentApproved {
            partner_id: p(),
            payment_id: "QP-1".into(),
            quarter: q,
            approved_at: at("2026-10-02T01:00:00Z"),
        },
        IncentiveEvent::QuarterlyPaymentRejected {
            partner_id: p(),
            payment_id: "QP-0".into(),
            quarter: q,
            reason: Some("wrong amounts".into()),
            restored_months: vec![RestoredMonth {
                month: month("2026-09"),
                currency: Currency::CNY,
                status: MonthStatus::Open,
            }],
            rejected_at: at("2026-10-01T00:30:00Z"),
        },
        IncentiveEvent::InvoiceListIssued {
            partner_id: p(),
            payment_id: "QP-1".into(),
            quarter: q,
            invoice_list: InvoiceList {
                lines: vec![InvoiceLine {
                    item: "monthly incentive 2026-08".into(),
                    month: Some(month("2026-08")),
                    opportunity_id: None,
                    amount: cny("40.00"),
                }],
                total: cny("40.00"),
                mailing_address: "1 Vendor Road, Shenzhen".into(),
                mailbox: "invoices@vendor.example".into(),
            },
            issued_at: at("2026-10-03T01:00:00Z"),
        },
        IncentiveEvent::InvoiceReceived {
            partner_id: p(),
            payment_id: "QP-1".into(),
            quarter: q,
            received_at: at("2026-10-10T01:00:00Z"),
        },
        IncentiveEvent::QuarterlyPaymentPaid {
            partner_id: p(),
            payment_id: "QP-1".into(),
            quarter: q,
            method: PaymentMethod::CloudAccountCredit,
            amount: cny("337.00"),
            included_months: vec![month("2026-06"), month("2026-08")],
            included_opportunities: vec!["O-1".into()],
            paid_at: at("2026-10-15T01:00:00Z"),
        },
    ]
}
