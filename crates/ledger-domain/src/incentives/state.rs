//! The state of one partner's incentive stream, how each event changes it (total: a stored
//! event is a fact and is never refused), and the views the application layer reads.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::{round_money, Currency, Money, Month, Quarter, Rate};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{
    IncentiveEvent, IncludedMonth, IncludedOpportunity, InvoiceList, LineAssociation, LineReason, MonthStatus,
    OpportunityStatus, PaymentMethod, PaymentStatus, ReviewDecision,
};

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumptionLine {
    pub record_id: String,
    pub customer_id: String,
    pub association_type: LineAssociation,
    pub product: String,
    pub amount: Money,
    pub consumed_at: DateTime<Utc>,
    pub settled_at: DateTime<Utc>,
    pub consumption_month: Month,
    pub incentive_month: Month,
    pub deferred_from: Option<Month>,
    pub rate: Option<Rate>,
    pub incentive: Decimal,
    pub reason: Option<LineReason>,
    /// Sum of the refunds of this line.
    pub refunded: Decimal,
}

impl ConsumptionLine {
    /// What may still be refunded.
    pub fn unrefunded(&self) -> Decimal {
        self.amount.amount - self.refunded
    }

    pub fn is_rollover(&self) -> bool {
        self.incentive_month != self.consumption_month
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    pub refund_id: String,
    pub record_id: String,
    pub amount: Money,
    pub settled_at: DateTime<Utc>,
    pub incentive_month: Month,
    /// The clawback (≤ 0).
    pub incentive: Decimal,
}

/// One incentive month of one currency.
#[derive(Debug, Clone, PartialEq)]
pub struct IncentiveMonth {
    pub month: Month,
    pub currency: Currency,
    pub status: MonthStatus,
    /// Sum of the incentives (lines and clawbacks) counted here, full precision.
    pub incentive_sum: Decimal,
    /// How many lines and refunds are counted here.
    pub entries: u32,
    /// Incentive of lines counted here from earlier consumption months, full precision.
    pub rollover_in: Decimal,
    /// Incentive of lines consumed in this month but counted later, full precision.
    pub rollover_out: Decimal,
    pub final_amount: Option<Money>,
    /// The non-rejected quarterly payment that includes the month.
    pub payment_id: Option<String>,
}

impl IncentiveMonth {
    fn new(month: Month, currency: Currency) -> Self {
        IncentiveMonth {
            month,
            currency,
            status: MonthStatus::Accruing,
            incentive_sum: Decimal::ZERO,
            entries: 0,
            rollover_in: Decimal::ZERO,
            rollover_out: Decimal::ZERO,
            final_amount: None,
            payment_id: None,
        }
    }

    /// The month total: the sum of its lines rounded once, half away from zero.
    pub fn accrued(&self) -> Money {
        Money::new(round_money(self.incentive_sum), self.currency)
    }

    /// Whether something is counted in the month ("has accruals").
    pub fn has_accruals(&self) -> bool {
        self.entries > 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Opportunity {
    pub opportunity_id: String,
    pub offering: String,
    pub core_tag: bool,
    pub delivery_end_date: Option<NaiveDate>,
    pub status: OpportunityStatus,
    pub final_amount: Option<Money>,
    /// The quarter of its finalization: the payment of that quarter includes it.
    pub finalized_quarter: Option<Quarter>,
    pub payment_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuarterlyPayment {
    pub payment_id: String,
    pub quarter: Quarter,
    pub currency: Currency,
    pub status: PaymentStatus,
    pub included_months: Vec<IncludedMonth>,
    pub excluded_months: Vec<Month>,
    pub included_opportunities: Vec<IncludedOpportunity>,
    pub payable: Money,
    pub method: Option<PaymentMethod>,
    pub invoice_list: Option<InvoiceList>,
}

impl QuarterlyPayment {
    /// A payment that is not rejected keeps its quarter requested (`ALREADY_REQUESTED`).
    pub fn is_live(&self) -> bool {
        self.status != PaymentStatus::Rejected
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncentivesState {
    pub partner_id: Option<String>,
    pub lines: BTreeMap<String, ConsumptionLine>,
    pub refunds: BTreeMap<String, Refund>,
    pub months: BTreeMap<(Month, Currency), IncentiveMonth>,
    pub opportunities: BTreeMap<String, Opportunity>,
    pub payments: BTreeMap<String, QuarterlyPayment>,
}

/// API.md's incentive month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthView {
    pub partner_id: String,
    pub month: Month,
    pub currency: Currency,
    pub status: MonthStatus,
    pub accrued: Money,
    #[serde(rename = "final")]
    pub final_amount: Option<Money>,
    pub rollover_in: Money,
    pub rollover_out: Money,
    /// The live quarterly payment including the month, if any.
    pub payment_id: Option<String>,
}

/// API.md's rollover line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloverLine {
    pub record_id: String,
    pub customer_id: String,
    pub product: String,
    pub consumption_month: Month,
    pub incentive_month: Month,
    pub amount: Money,
    /// Full precision, as the line carries it.
    pub incentive: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloverReport {
    pub month: Month,
    pub counted_here_from_earlier: Vec<RolloverLine>,
    pub counted_later: Vec<RolloverLine>,
}

/// API.md's quarterly payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentView {
    pub payment_id: String,
    pub partner_id: String,
    pub quarter: Quarter,
    pub currency: Currency,
    pub status: PaymentStatus,
    pub included_months: Vec<IncludedMonth>,
    pub excluded_months: Vec<Month>,
    pub included_opportunities: Vec<IncludedOpportunity>,
    pub payable: Money,
    pub method: Option<PaymentMethod>,
    pub invoice_list: Option<InvoiceList>,
}

impl IncentivesState {
    pub fn month(&self, month: Month, currency: Currency) -> Option<&IncentiveMonth> {
        self.months.get(&(month, currency))
    }

    /// A month's status; a month nothing has touched yet is `accruing`.
    pub fn month_status(&self, month: Month, currency: Currency) -> MonthStatus {
        self.month(month, currency).map_or(MonthStatus::Accruing, |m| m.status)
    }

    /// The non-rejected payment of a quarter and currency, if any.
    pub fn live_payment(&self, quarter: Quarter, currency: Currency) -> Option<&QuarterlyPayment> {
        self.payments.values().find(|p| p.quarter == quarter && p.currency == currency && p.is_live())
    }

    /// Whether a line or clawback may still be counted in the month: it is `accruing` and
    /// its quarter has no live payment (module doc).
    pub fn accepts_lines(&self, month: Month, currency: Currency) -> bool {
        self.month_status(month, currency) == MonthStatus::Accruing
            && self.live_payment(month.quarter(), currency).is_none()
    }

    pub fn month_view(&self, month: Month, currency: Currency) -> Option<MonthView> {
        let m = self.month(month, currency)?;
        Some(MonthView {
            partner_id: self.partner_id.clone().unwrap_or_default(),
            month,
            currency,
            status: m.status,
            accrued: m.accrued(),
            final_amount: m.final_amount,
            rollover_in: Money::new(round_money(m.rollover_in), currency),
            rollover_out: Money::new(round_money(m.rollover_out), currency),
            payment_id: m.payment_id.clone(),
        })
    }

    /// Every month of a year this stream knows, in month then currency order.
    pub fn months_of_year(&self, year: i32) -> Vec<MonthView> {
        self.months.keys().filter(|(m, _)| m.year() == year).filter_map(|(m, c)| self.month_view(*m, *c)).collect()
    }

    /// Lines counted in `month` from earlier consumption months, and lines consumed in
    /// `month` but counted later.
    pub fn rollover_report(&self, month: Month, currency: Currency) -> RolloverReport {
        let view = |l: &ConsumptionLine| RolloverLine {
            record_id: l.record_id.clone(),
            customer_id: l.customer_id.clone(),
            product: l.product.clone(),
            consumption_month: l.consumption_month,
            incentive_month: l.incentive_month,
            amount: l.amount,
            incentive: Money::new(l.incentive, l.amount.currency),
        };
        let of_currency = || self.lines.values().filter(|l| l.amount.currency == currency);
        RolloverReport {
            month,
            counted_here_from_earlier: of_currency()
                .filter(|l| l.incentive_month == month && l.consumption_month < month)
                .map(view)
                .collect(),
            counted_later: of_currency()
                .filter(|l| l.consumption_month == month && l.incentive_month > month)
                .map(view)
                .collect(),
        }
    }

    pub fn payment_view(&self, payment_id: &str) -> Option<PaymentView> {
        let p = self.payments.get(payment_id)?;
        Some(PaymentView {
            payment_id: p.payment_id.clone(),
            partner_id: self.partner_id.clone().unwrap_or_default(),
            quarter: p.quarter,
            currency: p.currency,
            status: p.status,
            included_months: p.included_months.clone(),
            excluded_months: p.excluded_months.clone(),
            included_opportunities: p.included_opportunities.clone(),
            payable: p.payable,
            method: p.method,
            invoice_list: p.invoice_list.clone(),
        })
    }

    fn month_mut(&mut self, month: Month, currency: Currency) -> &mut IncentiveMonth {
        self.months.entry((month, currency)).or_insert_with(|| IncentiveMonth::new(month, currency))
    }

    fn set_month_status(&mut self, month: Month, currency: Currency, status: MonthStatus) {
        self.month_mut(month, currency).status = status;
    }

    fn set_opportunity_status(&mut self, opportunity_id: &str, status: OpportunityStatus) {
        if let Some(o) = self.opportunities.get_mut(opportunity_id) {
            o.status = status;
        }
    }

    fn set_payment_status(&mut self, payment_id: &str, status: PaymentStatus) {
        if let Some(p) = self.payments.get_mut(payment_id) {
            p.status = status;
        }
    }

    /// Applies one event.
    pub(super) fn apply(&mut self, event: &IncentiveEvent) {
        use IncentiveEvent as E;
        if let Some(p) = event_partner(event) {
            if self.partner_id.is_none() {
                self.partner_id = Some(p.to_string());
            }
        }
        match event {
            E::ConsumptionRecorded {
                record_id,
                customer_id,
                association_type,
                product,
                amount,
                consumed_at,
                settled_at,
                consumption_month,
                incentive_month,
                deferred_from,
                rate,
                incentive,
                reason,
                ..
            } => {
                let currency = amount.currency;
                let counted = self.month_mut(*incentive_month, currency);
                counted.incentive_sum += *incentive;
                counted.entries += 1;
                if consumption_month < incentive_month {
                    counted.rollover_in += *incentive;
                    self.month_mut(*consumption_month, currency).rollover_out += *incentive;
                }
                self.lines.insert(
                    record_id.clone(),
                    ConsumptionLine {
                        record_id: record_id.clone(),
                        customer_id: customer_id.clone(),
                        association_type: *association_type,
                        product: product.clone(),
                        amount: *amount,
                        consumed_at: *consumed_at,
                        settled_at: *settled_at,
                        consumption_month: *consumption_month,
                        incentive_month: *incentive_month,
                        deferred_from: *deferred_from,
                        rate: *rate,
                        incentive: *incentive,
                        reason: *reason,
                        refunded: Decimal::ZERO,
                    },
                );
            }
            E::ConsumptionRefunded { refund_id, record_id, amount, settled_at, incentive_month, incentive, .. } => {
                if let Some(line) = self.lines.get_mut(record_id) {
                    line.refunded += amount.amount;
                }
                let counted = self.month_mut(*incentive_month, amount.currency);
                counted.incentive_sum += *incentive;
                counted.entries += 1;
                self.refunds.insert(
                    refund_id.clone(),
                    Refund {
                        refund_id: refund_id.clone(),
                        record_id: record_id.clone(),
                        amount: *amount,
                        settled_at: *settled_at,
                        incentive_month: *incentive_month,
                        incentive: *incentive,
                    },
                );
            }
            E::IncentiveMonthClosed { month, currency, status, .. } => {
                self.set_month_status(*month, *currency, *status)
            }
            E::IncentiveMonthApplied { month, currency, .. } => {
                self.set_month_status(*month, *currency, MonthStatus::UnderReview)
            }
            E::IncentiveMonthReviewed { month, currency, decision, .. } => {
                let status = match decision {
                    ReviewDecision::Pass => MonthStatus::Passed,
                    ReviewDecision::Reject => MonthStatus::Open,
                };
                self.set_month_status(*month, *currency, status);
            }
            E::IncentiveMonthFinalized { month, currency, final_amount, .. } => {
                let m = self.month_mut(*month, *currency);
                m.status = MonthStatus::Finalized;
                m.final_amount = Some(*final_amount);
            }
            E::OpportunityShared { opportunity_id, offering, core_tag, delivery_end_date, .. } => {
                self.opportunities.insert(
                    opportunity_id.clone(),
                    Opportunity {
                        opportunity_id: opportunity_id.clone(),
                        offering: offering.clone(),
                        core_tag: *core_tag,
                        delivery_end_date: *delivery_end_date,
                        status: OpportunityStatus::Shared,
                        final_amount: None,
                        finalized_quarter: None,
                        payment_id: None,
                    },
                );
            }
            E::OpportunityDelivered { opportunity_id, delivery_end_date, .. } => {
                if let Some(o) = self.opportunities.get_mut(opportunity_id) {
                    o.delivery_end_date = Some(*delivery_end_date);
                }
            }
            E::OpportunityAccepted { opportunity_id, .. } => {
                self.set_opportunity_status(opportunity_id, OpportunityStatus::Accepted)
            }
            E::OpportunityApplied { opportunity_id, .. } => {
                self.set_opportunity_status(opportunity_id, OpportunityStatus::UnderReview)
            }
            E::OpportunityReviewed { opportunity_id, decision, .. } => {
                let status = match decision {
                    ReviewDecision::Pass => OpportunityStatus::Passed,
                    ReviewDecision::Reject => OpportunityStatus::Accepted,
                };
                self.set_opportunity_status(opportunity_id, status);
            }
            E::OpportunityFinalized { opportunity_id, final_amount, quarter, .. } => {
                if let Some(o) = self.opportunities.get_mut(opportunity_id) {
                    o.status = OpportunityStatus::Finalized;
                    o.final_amount = Some(*final_amount);
                    o.finalized_quarter = Some(*quarter);
                }
            }
            E::QuarterlyPaymentRequested {
                payment_id,
                quarter,
                currency,
                included_months,
                excluded_months,
                included_opportunities,
                payable,
                ..
            } => {
                for m in included_months {
                    self.month_mut(m.month, *currency).payment_id = Some(payment_id.clone());
                }
                for m in excluded_months {
                    self.set_month_status(*m, *currency, MonthStatus::Forfeited);
                }
                for o in included_opportunities {
                    if let Some(opp) = self.opportunities.get_mut(&o.opportunity_id) {
                        opp.payment_id = Some(payment_id.clone());
                    }
                }
                self.payments.insert(
                    payment_id.clone(),
                    QuarterlyPayment {
                        payment_id: payment_id.clone(),
                        quarter: *quarter,
                        currency: *currency,
                        status: PaymentStatus::Requested,
                        included_months: included_months.clone(),
                        excluded_months: excluded_months.clone(),
                        included_opportunities: included_opportunities.clone(),
                        payable: *payable,
                        method: None,
                        invoice_list: None,
                    },
                );
            }
            E::QuarterlyPaymentApproved { payment_id, .. } => {
                self.set_payment_status(payment_id, PaymentStatus::Approved)
            }
            E::QuarterlyPaymentRejected { payment_id, .. } => {
                self.set_payment_status(payment_id, PaymentStatus::Rejected);
                self.release(payment_id);
            }
            E::InvoiceListIssued { payment_id, invoice_list, .. } => {
                if let Some(p) = self.payments.get_mut(payment_id) {
                    p.status = PaymentStatus::InvoiceListIssued;
                    p.invoice_list = Some(invoice_list.clone());
                }
            }
            E::InvoiceReceived { payment_id, .. } => {
                self.set_payment_status(payment_id, PaymentStatus::InvoiceReceived)
            }
            E::QuarterlyPaymentPaid { payment_id, method, included_months, included_opportunities, .. } => {
                let currency = self.payments.get(payment_id).map(|p| p.currency);
                if let Some(p) = self.payments.get_mut(payment_id) {
                    p.status = PaymentStatus::Paid;
                    p.method = Some(*method);
                }
                if let Some(currency) = currency {
                    for m in included_months {
                        self.set_month_status(*m, currency, MonthStatus::Paid);
                    }
                }
                for o in included_opportunities {
                    self.set_opportunity_status(o, OpportunityStatus::Paid);
                }
            }
        }
    }

    /// A rejected payment lets go of its months and opportunities: they are finalized and
    /// may be requested again.
    fn release(&mut self, payment_id: &str) {
        for m in self.months.values_mut() {
            if m.payment_id.as_deref() == Some(payment_id) {
                m.payment_id = None;
            }
        }
        for o in self.opportunities.values_mut() {
            if o.payment_id.as_deref() == Some(payment_id) {
                o.payment_id = None;
            }
        }
    }
}

fn event_partner(event: &IncentiveEvent) -> Option<&str> {
    use IncentiveEvent as E;
    let p = match event {
        E::ConsumptionRecorded { partner_id, .. }
        | E::ConsumptionRefunded { partner_id, .. }
        | E::IncentiveMonthClosed { partner_id, .. }
        | E::IncentiveMonthApplied { partner_id, .. }
        | E::IncentiveMonthReviewed { partner_id, .. }
        | E::IncentiveMonthFinalized { partner_id, .. }
        | E::OpportunityShared { partner_id, .. }
        | E::OpportunityDelivered { partner_id, .. }
        | E::OpportunityAccepted { partner_id, .. }
        | E::OpportunityApplied { partner_id, .. }
        | E::OpportunityReviewed { partner_id, .. }
        | E::OpportunityFinalized { partner_id, .. }
        | E::QuarterlyPaymentRequested { partner_id, .. }
        | E::QuarterlyPaymentApproved { partner_id, .. }
        | E::QuarterlyPaymentRejected { partner_id, .. }
        | E::InvoiceListIssued { partner_id, .. }
        | E::InvoiceReceived { partner_id, .. }
        | E::QuarterlyPaymentPaid { partner_id, .. } => partner_id,
    };
    Some(p.as_str())
}
