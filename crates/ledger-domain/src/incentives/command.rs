//! What may be asked of a partner's incentive ledger: one struct per command. Facts from
//! other streams (the association at `consumed_at`, the policy book, the grace days, the
//! certification outcome) are resolved by the application layer and carried here.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::{Currency, Money, Month, Quarter};

use super::{ConsumptionLine, LineAssociation, PaymentMethod, ReviewDecision};
use crate::policy::PolicyBook;
use crate::DomainError;

#[derive(Debug, Clone, PartialEq)]
pub enum IncentiveCommand {
    RecordConsumption(RecordConsumption),
    RefundConsumption(RefundConsumption),
    CloseMonth(CloseMonth),
    ApplyForMonth(ApplyForMonth),
    ReviewMonth(ReviewMonth),
    FinalizeMonth(FinalizeMonth),
    ShareOpportunity(ShareOpportunity),
    MarkOpportunityDelivered(MarkOpportunityDelivered),
    AcceptOpportunity(AcceptOpportunity),
    ApplyForOpportunity(ApplyForOpportunity),
    ReviewOpportunity(ReviewOpportunity),
    FinalizeOpportunity(FinalizeOpportunity),
    RequestQuarterlyPayment(RequestQuarterlyPayment),
    ApprovePayment(ApprovePayment),
    RejectPayment(RejectPayment),
    IssueInvoiceList(IssueInvoiceList),
    ConfirmInvoiceReceived(ConfirmInvoiceReceived),
    PayQuarterlyPayment(PayQuarterlyPayment),
}

/// A billing line. `partner_id` is the customer's partner at `consumed_at` and
/// `association_type` the type then in force (both resolved by the application);
/// `policies` is the policy book of the line's currency (shared: a batch's lines carry one
/// book); `recorded` is the line the ledger already keeps under `record_id` (in any
/// partner's stream), which the application looks up by the store's key of the record
/// (the state keeps no lines).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordConsumption {
    pub partner_id: String,
    pub record_id: String,
    pub customer_id: String,
    pub association_type: LineAssociation,
    pub product: String,
    pub amount: Money,
    pub consumed_at: DateTime<Utc>,
    pub settled_at: DateTime<Utc>,
    pub policies: Arc<PolicyBook>,
    pub recorded: Option<ConsumptionLine>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefundConsumption {
    pub refund_id: String,
    pub record_id: String,
    pub amount: Money,
    pub settled_at: DateTime<Utc>,
    /// The refunded line as this stream recorded it: the state keeps no lines (README "How
    /// the ledger is cut"), so the application reads it back by the store's key of its
    /// record id. `None`: no such line in this stream.
    pub line: Option<ConsumptionLine>,
}

/// `settlement_grace_days` of the month's policy (`PolicyBook::settlement_grace_days`).
#[derive(Debug, Clone, PartialEq)]
pub struct CloseMonth {
    pub partner_id: String,
    pub month: Month,
    pub currency: Currency,
    pub settlement_grace_days: u32,
}

/// `certification` is the outcome of `partner::certification_gate`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyForMonth {
    pub month: Month,
    pub currency: Currency,
    pub certification: Result<(), DomainError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewMonth {
    pub month: Month,
    pub currency: Currency,
    pub decision: ReviewDecision,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FinalizeMonth {
    pub month: Month,
    pub currency: Currency,
    pub amount: Option<Money>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShareOpportunity {
    pub partner_id: String,
    pub opportunity_id: String,
    pub offering: String,
    pub core_tag: bool,
    pub delivery_end_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MarkOpportunityDelivered {
    pub opportunity_id: String,
    pub delivery_end_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AcceptOpportunity {
    pub opportunity_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApplyForOpportunity {
    pub opportunity_id: String,
    pub certification: Result<(), DomainError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewOpportunity {
    pub opportunity_id: String,
    pub decision: ReviewDecision,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FinalizeOpportunity {
    pub opportunity_id: String,
    pub amount: Money,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestQuarterlyPayment {
    pub payment_id: String,
    pub quarter: Quarter,
    pub currency: Currency,
    pub certification: Result<(), DomainError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApprovePayment {
    pub payment_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RejectPayment {
    pub payment_id: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IssueInvoiceList {
    pub payment_id: String,
    pub mailing_address: String,
    pub mailbox: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmInvoiceReceived {
    pub payment_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PayQuarterlyPayment {
    pub payment_id: String,
    pub method: PaymentMethod,
}
