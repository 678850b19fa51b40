//! # Incentives (stream `incentives-{partner_id}`)
//!
//! One partner's incentive ledger (docs/DOMAIN.md §2 and §5): the consumption lines billing feeds
//! for its customers and their refunds, the incentive months they accrue into (per month ×
//! currency), the project opportunities shared with it, and its quarterly payment
//! applications. Everything that guards a month's or a payment's state lives in this one
//! stream, so a rule is checked against the very version the append expects: forfeiting the
//! `open` months of a quarter and `ALREADY_REQUESTED` are atomic with the request.
//!
//! Facts from other streams come in the commands, resolved by the application layer: the
//! customer's association at `consumed_at` (which routes the line to this stream), the
//! policy book of the line's currency, the settlement grace days of a month being closed,
//! and the outcome of [`crate::partner::certification_gate`] for every application.
//!
//! ## The rules, where they live
//! - [`lines`]: consumption lines (duplicates, month rollover, rates, rounding once per
//!   month) and refunds (clawback in the original month while it accrues, else later).
//! - [`months`]: the month lifecycle `accruing → open | closed_empty → under_review →
//!   passed → finalized → paid` (or `forfeited`), rejection back to `open`.
//! - [`opportunities`]: share, deliver, accept, apply (core tag, delivered, from the day
//!   after the delivery end date in CST, `OFFERING_IN_USE`), review, finalize.
//! - [`payments`]: [`eligibility`] with its seven blockers in docs/DOMAIN.md's order, and the
//!   payment lifecycle `requested → approved | rejected → invoice_list_issued →
//!   invoice_received → paid`.
//!
//! ## Choices where docs/DOMAIN.md is silent (ours)
//! - **A line (or refund clawback) whose incentive month no longer accrues** when it
//!   arrives — the month is closed (any status but `accruing`), or a non-rejected quarterly
//!   payment exists for that month's quarter and currency — is counted in the next month
//!   that still accrues. It carries its consumption month, the month it is counted in
//!   (`incentive_month`) and the month the rollover rule named (`deferred_from`). A month
//!   whose quarter has a live payment is sealed even if it was never closed, so money can
//!   never land in a quarter that can no longer be paid.
//! - **The rate** of a line comes from the policy of the month it is counted in; a refund
//!   claws back at the rate of the line it refunds (it takes back what that line earned).
//!   A month without any policy lists no product: its lines earn 0 (`PRODUCT_NOT_ELIGIBLE`).
//! - **A refund's month** when the original no longer accrues is the month of the refund's
//!   `settled_at` (a refund has no consumption time; the rollover rule applied to it gives
//!   that month), deferred like a line if that month no longer accrues.
//! - `refund_id` is unique in the stream like `record_id`: the same refund again is a no-op,
//!   with different content `DUPLICATE_RECORD_CONFLICT`. Global uniqueness of `record_id`
//!   across partners is the application's index; within a partner it is enforced here.
//! - **"Has accruals"** (blocker `MONTH_NOT_CLOSED`) means at least one line or refund is
//!   counted in the month. A month may be closed with nothing in it (`closed_empty`).
//! - **Close** is refused with `INVALID_STATE` before the cut-off. A month total may be
//!   negative (refunds landing in a month with little consumption); it follows the same
//!   lifecycle, and a negative final amount reverses the finalization posting.
//! - **Finalize**: without an amount the final amount is the accrued one. With one, it is
//!   an amount from outside (> 0, ≤ 2 dp, the month's currency); when it differs from the
//!   accrued a reason is required and the event carries the adjustment `final − accrued`.
//! - **Order of checks** for an application: the thing exists, then the certification gate,
//!   then its state, then the rule of the thing (core tag, delivery, day after, offering).
//! - **Opportunities** have the statuses `shared → accepted → under_review → passed →
//!   finalized → paid` (a rejected review returns to `accepted`). Delivery is complete once
//!   the opportunity has a delivery end date (given when shared or by "deliver"); a date
//!   once set is not changed. An opportunity's currency is that of its final amount.
//! - **`NO_APPROVED_INCENTIVE`** holds when no month of Q has passed review *and* no
//!   opportunity was finalized within Q: the seed speaks of monthly incentives only, but
//!   opportunity incentives "are paid with the quarter of their finalization", which would
//!   be impossible for a partner with opportunities and no monthly incentive.
//! - **`ALREADY_REQUESTED`** lists the months of the live payment (included and excluded).
//! - **A payment is keyed by (partner, quarter, currency)**: the HTTP request names only the
//!   quarter and the application defaults the currency to CNY. `payment_id` is chosen by the
//!   application and unique in the stream (`ALREADY_EXISTS`).
//! - **The invoice list** is derived from the payment (one line per included month and
//!   opportunity, with its amount); the command brings the vendor's mailing address and
//!   mailbox. Only a `requested` payment can be approved or rejected.
//! - An included month keeps the status `finalized` until its payment is paid (docs/API.md has no
//!   status "included"); the month view tells which payment holds it.
//!
//! ## Postings
//! Finalization (a month's or an opportunity's final amount):
//! `vendor:incentive_expense → partner:{P}:incentive_payable`. A paid quarterly payment:
//! `partner:{P}:incentive_payable → vendor:bank_payout` (bank transfer) or
//! `→ vendor:rebate_clearing` (cloud account credit; [`rebate_credit_for`] tells the
//! application to credit the rebate account, which posts the other side).

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::ids::{validate_id, validate_text};
use ledger_core::{CoreError, Currency, Money, Month, Quarter, Rate};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::guard::stream_owner;
pub(crate) use crate::guard::{external_amount, invalid};
use crate::policy::PolicyBook;
use crate::postings::{transfer, Posting};
use crate::{Decider, DomainError, EventFamily};

pub mod details;
pub mod lines;
pub mod months;
pub mod opportunities;
pub mod payments;
mod state;

#[cfg(test)]
mod properties;
#[cfg(test)]
pub(crate) mod testkit;

pub use payments::{eligibility, Eligibility};
pub use state::{
    months_touched, payment_of, ConsumptionLine, Counted, IncentiveMonth, IncentivesState, MonthView, MonthsTouched,
    Opportunity, PaymentView, QuarterlyPayment, Refund, RolloverLine, RolloverReport,
};

/// Longest review comment, finalization reason, rejection reason.
pub const MAX_COMMENT_CHARS: usize = 1_000;
/// Longest vendor mailing address on an invoice list.
pub const MAX_ADDRESS_CHARS: usize = 500;
/// Longest vendor mailbox (an e-mail address) on an invoice list.
pub const MAX_MAILBOX_CHARS: usize = 254;
/// How many months past the one the rollover rule names a late line may be pushed before
/// the decider gives up (a sealed month is only ever followed by at most a quarter of sealed
/// months, so this is far beyond anything reachable).
pub const MAX_DEFERRAL_MONTHS: u32 = 240;

pub fn stream_id(partner_id: &str) -> String {
    format!("{}-{partner_id}", Incentives::FAMILY)
}

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
    /// The request, atomic with its effects: the included months keep `finalized` and are
    /// held by this payment, the excluded months become `forfeited`.
    QuarterlyPaymentRequested {
        partner_id: String,
        payment_id: String,
        quarter: Quarter,
        currency: Currency,
        included_months: Vec<IncludedMonth>,
        excluded_months: Vec<Month>,
        included_opportunities: Vec<IncludedOpportunity>,
        payable: Money,
        requested_at: DateTime<Utc>,
    },
    QuarterlyPaymentApproved {
        partner_id: String,
        payment_id: String,
        quarter: Quarter,
        approved_at: DateTime<Utc>,
    },
    /// Releases the included months and opportunities; forfeited months stay forfeited.
    QuarterlyPaymentRejected {
        partner_id: String,
        payment_id: String,
        quarter: Quarter,
        reason: Option<String>,
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
    /// The included months and opportunities become `paid`.
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

impl EventFamily for IncentiveEvent {}

#[derive(Debug, Clone, PartialEq)]
pub enum IncentiveCommand {
    /// A billing line. `partner_id` is the customer's partner at `consumed_at` and
    /// `association_type` the type then in force (both resolved by the application);
    /// `policies` is the policy book of the line's currency.
    RecordConsumption {
        partner_id: String,
        record_id: String,
        customer_id: String,
        association_type: LineAssociation,
        product: String,
        amount: Money,
        consumed_at: DateTime<Utc>,
        settled_at: DateTime<Utc>,
        policies: PolicyBook,
    },
    RefundConsumption {
        refund_id: String,
        record_id: String,
        amount: Money,
        settled_at: DateTime<Utc>,
    },
    /// `settlement_grace_days` of the month's policy (`PolicyBook::settlement_grace_days`).
    CloseMonth {
        partner_id: String,
        month: Month,
        currency: Currency,
        settlement_grace_days: u32,
    },
    /// `certification` is the outcome of `partner::certification_gate`.
    ApplyForMonth {
        month: Month,
        currency: Currency,
        certification: Result<(), DomainError>,
    },
    ReviewMonth {
        month: Month,
        currency: Currency,
        decision: ReviewDecision,
        comment: Option<String>,
    },
    FinalizeMonth {
        month: Month,
        currency: Currency,
        amount: Option<Money>,
        reason: Option<String>,
    },
    ShareOpportunity {
        partner_id: String,
        opportunity_id: String,
        offering: String,
        core_tag: bool,
        delivery_end_date: Option<NaiveDate>,
    },
    MarkOpportunityDelivered {
        opportunity_id: String,
        delivery_end_date: NaiveDate,
    },
    AcceptOpportunity {
        opportunity_id: String,
    },
    ApplyForOpportunity {
        opportunity_id: String,
        certification: Result<(), DomainError>,
    },
    ReviewOpportunity {
        opportunity_id: String,
        decision: ReviewDecision,
        comment: Option<String>,
    },
    FinalizeOpportunity {
        opportunity_id: String,
        amount: Money,
        reason: Option<String>,
    },
    RequestQuarterlyPayment {
        payment_id: String,
        quarter: Quarter,
        currency: Currency,
        certification: Result<(), DomainError>,
    },
    ApprovePayment {
        payment_id: String,
    },
    RejectPayment {
        payment_id: String,
        reason: Option<String>,
    },
    IssueInvoiceList {
        payment_id: String,
        mailing_address: String,
        mailbox: String,
    },
    ConfirmInvoiceReceived {
        payment_id: String,
    },
    PayQuarterlyPayment {
        payment_id: String,
        method: PaymentMethod,
    },
}

pub struct Incentives;

impl Decider for Incentives {
    const FAMILY: &'static str = "incentives";

    type State = IncentivesState;
    type Command = IncentiveCommand;
    type Event = IncentiveEvent;

    fn decide(
        state: &IncentivesState,
        command: IncentiveCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<IncentiveEvent>, DomainError> {
        use IncentiveCommand as C;
        match command {
            C::RecordConsumption {
                partner_id,
                record_id,
                customer_id,
                association_type,
                product,
                amount,
                consumed_at,
                settled_at,
                policies,
            } => lines::record(
                state,
                lines::NewLine {
                    partner_id,
                    record_id,
                    customer_id,
                    association_type,
                    product,
                    amount,
                    consumed_at,
                    settled_at,
                },
                &policies,
            ),
            C::RefundConsumption { refund_id, record_id, amount, settled_at } => {
                lines::refund(state, refund_id, record_id, amount, settled_at)
            }
            C::CloseMonth { partner_id, month, currency, settlement_grace_days } => {
                months::close(state, partner_id, month, currency, settlement_grace_days, now)
            }
            C::ApplyForMonth { month, currency, certification } => {
                months::apply(state, month, currency, certification, now)
            }
            C::ReviewMonth { month, currency, decision, comment } => {
                months::review(state, month, currency, decision, comment, now)
            }
            C::FinalizeMonth { month, currency, amount, reason } => {
                months::finalize(state, month, currency, amount, reason, now)
            }
            C::ShareOpportunity { partner_id, opportunity_id, offering, core_tag, delivery_end_date } => {
                opportunities::share(state, partner_id, opportunity_id, offering, core_tag, delivery_end_date, now)
            }
            C::MarkOpportunityDelivered { opportunity_id, delivery_end_date } => {
                opportunities::deliver(state, opportunity_id, delivery_end_date, now)
            }
            C::AcceptOpportunity { opportunity_id } => opportunities::accept(state, opportunity_id, now),
            C::ApplyForOpportunity { opportunity_id, certification } => {
                opportunities::apply(state, opportunity_id, certification, now)
            }
            C::ReviewOpportunity { opportunity_id, decision, comment } => {
                opportunities::review(state, opportunity_id, decision, comment, now)
            }
            C::FinalizeOpportunity { opportunity_id, amount, reason } => {
                opportunities::finalize(state, opportunity_id, amount, reason, now)
            }
            C::RequestQuarterlyPayment { payment_id, quarter, currency, certification } => {
                payments::request(state, payment_id, quarter, currency, &certification, now)
            }
            C::ApprovePayment { payment_id } => payments::approve(state, payment_id, now),
            C::RejectPayment { payment_id, reason } => payments::reject(state, payment_id, reason, now),
            C::IssueInvoiceList { payment_id, mailing_address, mailbox } => {
                payments::issue_invoice_list(state, payment_id, mailing_address, mailbox, now)
            }
            C::ConfirmInvoiceReceived { payment_id } => payments::confirm_invoice_received(state, payment_id, now),
            C::PayQuarterlyPayment { payment_id, method } => payments::pay(state, payment_id, method, now),
        }
    }

    fn evolve(mut state: IncentivesState, event: &IncentiveEvent) -> IncentivesState {
        state.apply(event);
        state
    }
}

/// How an event moves money (the chart of accounts of `crate::postings`).
pub fn postings(event: &IncentiveEvent) -> Vec<Posting> {
    match event {
        IncentiveEvent::IncentiveMonthFinalized { partner_id, final_amount, .. }
        | IncentiveEvent::OpportunityFinalized { partner_id, final_amount, .. } => transfer(
            "vendor:incentive_expense",
            incentive_payable(partner_id),
            final_amount.amount,
            final_amount.currency,
        ),
        IncentiveEvent::QuarterlyPaymentPaid { partner_id, method, amount, .. } => {
            let to = match method {
                PaymentMethod::BankTransfer => "vendor:bank_payout",
                PaymentMethod::CloudAccountCredit => "vendor:rebate_clearing",
            };
            transfer(incentive_payable(partner_id), to, amount.amount, amount.currency)
        }
        _ => vec![],
    }
}

/// The account holding what the vendor owes the partner in incentives.
pub fn incentive_payable(partner_id: &str) -> String {
    format!("partner:{partner_id}:incentive_payable")
}

/// When a quarterly payment is paid to the cloud account, the rebate aggregate must credit
/// the partner's rebate balance with this amount (keyed by the payment, for idempotency).
pub fn rebate_credit_for(event: &IncentiveEvent) -> Option<(String, Money)> {
    match event {
        IncentiveEvent::QuarterlyPaymentPaid {
            payment_id, method: PaymentMethod::CloudAccountCredit, amount, ..
        } => Some((payment_id.clone(), *amount)),
        _ => None,
    }
}

/// The partner the stream belongs to, once it has any event.
fn stream_partner(state: &IncentivesState) -> Result<&str, DomainError> {
    state.partner_id.as_deref().ok_or_else(|| DomainError::NotFound { what: "incentive stream", id: String::new() })
}

/// A command that names its partner must name the stream's.
fn check_partner(state: &IncentivesState, partner_id: &str) -> Result<(), DomainError> {
    validate_id("partner_id", partner_id)?;
    stream_owner("partner_id", state.partner_id.as_ref(), partner_id)
}

fn same_currency(expected: Currency, got: Currency) -> Result<(), DomainError> {
    if expected == got {
        Ok(())
    } else {
        Err(CoreError::CurrencyMismatch(expected.to_string(), got.to_string()).into())
    }
}

fn optional_text(field: &'static str, value: &Option<String>, max: usize) -> Result<(), DomainError> {
    if let Some(v) = value {
        validate_text(field, v, max)?;
    }
    Ok(())
}

fn invalid_state(message: String) -> DomainError {
    DomainError::InvalidState(message)
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
            payable: cny("340.00"),
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
            amount: cny("340.00"),
            included_months: vec![month("2026-08")],
            included_opportunities: vec!["O-1".into()],
            paid_at: at("2026-10-15T01:00:00Z"),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postings::is_balanced;

    #[test]
    fn examples_cover_every_event_type_and_round_trip_through_the_envelope() {
        let mut types = std::collections::BTreeSet::new();
        for e in examples() {
            let (ty, v, data) = crate::encode(&e);
            assert_eq!(crate::decode::<IncentiveEvent>(&ty, v, &data.to_string()).unwrap(), e);
            assert!(data["partner_id"].is_string(), "{ty} carries partner_id");
            types.insert(ty);
        }
        assert_eq!(types.len(), 18, "{types:?}");
    }

    #[test]
    fn money_and_months_are_strings_in_events() {
        let (_, _, data) = crate::encode(&examples()[0]);
        assert_eq!(data["amount"]["amount"], "1000.00");
        assert_eq!(data["incentive"], "50.0000");
        assert_eq!(data["rate"], "0.05");
        assert_eq!(data["incentive_month"], "2026-08");
        let (_, _, data) = crate::encode(&examples()[1]);
        assert_eq!(data["reason"], "PRODUCT_NOT_ELIGIBLE");
        assert_eq!(data["association_type"], "referral");
    }

    #[test]
    fn every_example_posts_balanced_entries() {
        for e in examples() {
            assert!(is_balanced(&postings(&e)), "{e:?}");
        }
    }

    #[test]
    fn finalization_and_payment_post_to_the_chart_of_accounts() {
        let ex = examples();
        let finalized = ex.iter().find(|e| matches!(e, IncentiveEvent::IncentiveMonthFinalized { .. })).unwrap();
        let p = postings(finalized);
        assert_eq!(p[0], Posting::debit("partner:P-1:incentive_payable", Decimal::new(4000, 2), Currency::CNY));
        assert_eq!(p[1], Posting::credit("vendor:incentive_expense", Decimal::new(4000, 2), Currency::CNY));
        let paid = ex.iter().find(|e| matches!(e, IncentiveEvent::QuarterlyPaymentPaid { .. })).unwrap();
        let p = postings(paid);
        assert_eq!(p[0], Posting::debit("vendor:rebate_clearing", Decimal::new(34000, 2), Currency::CNY));
        assert_eq!(p[1], Posting::credit("partner:P-1:incentive_payable", Decimal::new(34000, 2), Currency::CNY));
        assert_eq!(
            rebate_credit_for(paid),
            Some(("QP-1".to_string(), Money::new(Decimal::new(34000, 2), Currency::CNY)))
        );
        let mut by_bank = paid.clone();
        if let IncentiveEvent::QuarterlyPaymentPaid { method, .. } = &mut by_bank {
            *method = PaymentMethod::BankTransfer;
        }
        assert_eq!(postings(&by_bank)[0].account, "vendor:bank_payout");
        assert_eq!(rebate_credit_for(&by_bank), None);
        assert!(ex.iter().filter(|e| rebate_credit_for(e).is_some()).count() == 1);
    }

    #[test]
    fn a_negative_final_amount_reverses_the_finalization_posting() {
        let e = IncentiveEvent::IncentiveMonthFinalized {
            partner_id: "P".into(),
            month: "2026-08".parse().unwrap(),
            currency: Currency::CNY,
            accrued: Money::new(Decimal::new(-150, 2), Currency::CNY),
            final_amount: Money::new(Decimal::new(-150, 2), Currency::CNY),
            adjustment: None,
            finalized_at: Utc::now(),
        };
        let p = postings(&e);
        assert_eq!(p[0], Posting::debit("vendor:incentive_expense", Decimal::new(150, 2), Currency::CNY));
        assert!(is_balanced(&p));
    }

    #[test]
    fn every_example_validates_against_the_strict_schema_of_its_type() {
        // What `schema::families()` will generate once the family is registered there.
        let family = crate::schema::family::<IncentiveEvent>("incentives", examples());
        assert_eq!(family.schemas.len(), 18);
        for example in &family.examples {
            assert!(example.round_trips, "{}", example.event);
            let schema = family.schemas.iter().find(|s| s.event_type == example.event_type).unwrap();
            let validator = jsonschema::draft202012::new(&schema.schema).unwrap();
            let errors: Vec<String> = validator.iter_errors(&example.payload).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", example.event_type);
            let mut extra = example.payload.clone();
            extra["unexpected"] = serde_json::json!(1);
            assert!(!validator.is_valid(&extra), "{} is closed", example.event_type);
        }
    }
}
