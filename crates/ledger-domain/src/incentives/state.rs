//! The state of one partner's incentive stream, how each event changes it (total: a stored
//! event is a fact and is never refused), and the views the application layer reads.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use ledger_core::{round_money, Currency, Money, Month, Quarter, Rate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{
    IncentiveEvent, IncludedMonth, IncludedOpportunity, InvoiceList, LineAssociation, LineReason, MonthStatus,
    OpportunityStatus, PaymentMethod, PaymentStatus, ReviewDecision,
};

/// A recorded line. It also reads straight from a `ConsumptionRecorded` payload (the line's
/// fields are the event's; `partner_id` is skipped, `refunded` starts at 0): a read model
/// of lines needs no detour through the event enum. [`ConsumptionLine::recorded`] is the
/// same line from the decoded event (a test keeps the two equal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default)]
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

    /// The line a `ConsumptionRecorded` event stores (`None` for any other event).
    pub fn recorded(event: &IncentiveEvent) -> Option<ConsumptionLine> {
        let IncentiveEvent::ConsumptionRecorded {
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
        } = event
        else {
            return None;
        };
        Some(ConsumptionLine {
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
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// A month nothing has been counted in yet.
    pub fn new(month: Month, currency: Currency) -> Self {
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

    /// The part of `event` that concerns this month (its `month` and `currency`): the
    /// aggregate's evolve runs it on every month [`months_touched`] names, and so does the
    /// read model of incentive months, row by row. Total, like evolve: an event that does
    /// not concern the month leaves it as it is.
    pub fn apply(&mut self, event: &IncentiveEvent) {
        use IncentiveEvent as E;
        let here = |month: &Month, currency: &Currency| *month == self.month && *currency == self.currency;
        match event {
            E::ConsumptionRecorded { .. } | E::ConsumptionRefunded { .. } => {
                if let Some(c) = Counted::of(event) {
                    self.count(&c);
                }
            }
            E::IncentiveMonthClosed { month, currency, status, .. } => {
                if here(month, currency) {
                    self.status = *status;
                }
            }
            E::IncentiveMonthApplied { month, currency, .. } => {
                if here(month, currency) {
                    self.status = MonthStatus::UnderReview;
                }
            }
            E::IncentiveMonthReviewed { month, currency, decision, .. } => {
                if here(month, currency) {
                    self.status = match decision {
                        ReviewDecision::Pass => MonthStatus::Passed,
                        ReviewDecision::Reject => MonthStatus::Open,
                    };
                }
            }
            E::IncentiveMonthFinalized { month, currency, final_amount, .. } => {
                if here(month, currency) {
                    self.status = MonthStatus::Finalized;
                    self.final_amount = Some(*final_amount);
                }
            }
            E::QuarterlyPaymentRequested {
                payment_id,
                currency,
                included_months,
                carried_months,
                excluded_months,
                ..
            } => {
                if *currency == self.currency {
                    if included_months.iter().chain(carried_months).any(|m| m.month == self.month) {
                        self.payment_id = Some(payment_id.clone());
                    }
                    if excluded_months.contains(&self.month) {
                        self.status = MonthStatus::Forfeited;
                    }
                }
            }
            // A rejected payment lets go of the months it holds: they are finalized and may
            // be requested again; the months it forfeited return to the status they had.
            E::QuarterlyPaymentRejected { payment_id, restored_months, .. } => {
                if self.payment_id.as_ref() == Some(payment_id) {
                    self.payment_id = None;
                }
                let restored = restored_months.iter().find(|r| here(&r.month, &r.currency));
                if let Some(r) = restored.filter(|_| self.status == MonthStatus::Forfeited) {
                    self.status = r.status;
                }
            }
            // A paid payment's included months are paid (they are held by it: a month is held
            // from its payment's request until a rejection, and a rejected payment is never
            // paid).
            E::QuarterlyPaymentPaid { payment_id, included_months, .. } => {
                if self.payment_id.as_ref() == Some(payment_id) && included_months.contains(&self.month) {
                    self.status = MonthStatus::Paid;
                }
            }
            E::OpportunityShared { .. }
            | E::OpportunityDelivered { .. }
            | E::OpportunityAccepted { .. }
            | E::OpportunityApplied { .. }
            | E::OpportunityReviewed { .. }
            | E::OpportunityFinalized { .. }
            | E::QuarterlyPaymentApproved { .. }
            | E::InvoiceListIssued { .. }
            | E::InvoiceReceived { .. } => {}
        }
    }

    /// Counts a line or a refund: in its incentive month, and for a line counted later than
    /// it was consumed, as rollover in that month and out of its consumption month.
    pub fn count(&mut self, c: &Counted) {
        if c.incentive_month == self.month && c.amount.currency == self.currency {
            self.incentive_sum += c.incentive;
            self.entries += 1;
        }
        if let Some(consumed) = c.consumption_month.filter(|m| *m < c.incentive_month) {
            if c.incentive_month == self.month && c.amount.currency == self.currency {
                self.rollover_in += c.incentive;
            }
            if consumed == self.month && c.amount.currency == self.currency {
                self.rollover_out += c.incentive;
            }
        }
    }

    /// docs/API.md's incentive month (without `position`, which is the reader's).
    pub fn view(&self, partner_id: &str) -> MonthView {
        MonthView {
            partner_id: partner_id.to_string(),
            month: self.month,
            currency: self.currency,
            status: self.status,
            accrued: self.accrued(),
            final_amount: self.final_amount,
            rollover_in: Money::new(round_money(self.rollover_in), self.currency),
            rollover_out: Money::new(round_money(self.rollover_out), self.currency),
            payment_id: self.payment_id.clone(),
        }
    }
}

/// What the months count of a consumption line or a refund: the fields of
/// `ConsumptionRecorded` and `ConsumptionRefunded` that [`IncentiveMonth::count`] reads. It
/// deserialises straight from either payload (the other fields are skipped), so a read model
/// of the months needs not decode whole lines, which are most of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Counted {
    /// The line's consumption month; `None` for a refund (counted where it lands).
    #[serde(default)]
    pub consumption_month: Option<Month>,
    pub incentive_month: Month,
    pub amount: Money,
    pub incentive: Decimal,
}

impl Counted {
    /// The count of a line or a refund (`None` for any other event).
    pub fn of(event: &IncentiveEvent) -> Option<Counted> {
        match event {
            IncentiveEvent::ConsumptionRecorded { amount, consumption_month, incentive_month, incentive, .. } => {
                Some(Counted {
                    consumption_month: Some(*consumption_month),
                    incentive_month: *incentive_month,
                    amount: *amount,
                    incentive: *incentive,
                })
            }
            IncentiveEvent::ConsumptionRefunded { amount, incentive_month, incentive, .. } => Some(Counted {
                consumption_month: None,
                incentive_month: *incentive_month,
                amount: *amount,
                incentive: *incentive,
            }),
            _ => None,
        }
    }

    /// The months it changes: where it is counted, and the consumption month of a line
    /// counted later.
    pub fn months(&self) -> Vec<(Month, Currency)> {
        let mut keys = vec![(self.incentive_month, self.amount.currency)];
        if let Some(consumed) = self.consumption_month.filter(|m| *m < self.incentive_month) {
            keys.push((consumed, self.amount.currency));
        }
        keys
    }
}

/// The months an event changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonthsTouched<'a> {
    None,
    /// These months (of these currencies), created when missing.
    Keys(Vec<(Month, Currency)>),
    /// The months held by this payment (their `payment_id`); they exist already, and are
    /// among the payment's included or carried months.
    HeldBy(&'a str),
    /// A rejection: the months held by the payment, and these months it had forfeited.
    Released {
        payment_id: &'a str,
        restored: Vec<(Month, Currency)>,
    },
}

/// Which months `event` changes: [`IncentiveMonth::apply`] is run on each of them.
pub fn months_touched(event: &IncentiveEvent) -> MonthsTouched<'_> {
    use IncentiveEvent as E;
    match event {
        E::ConsumptionRecorded { .. } | E::ConsumptionRefunded { .. } => {
            MonthsTouched::Keys(Counted::of(event).map(|c| c.months()).unwrap_or_default())
        }
        E::IncentiveMonthClosed { month, currency, .. }
        | E::IncentiveMonthApplied { month, currency, .. }
        | E::IncentiveMonthReviewed { month, currency, .. }
        | E::IncentiveMonthFinalized { month, currency, .. } => MonthsTouched::Keys(vec![(*month, *currency)]),
        E::QuarterlyPaymentRequested { currency, included_months, carried_months, excluded_months, .. } => {
            MonthsTouched::Keys(
                included_months
                    .iter()
                    .chain(carried_months)
                    .map(|m| m.month)
                    .chain(excluded_months.iter().copied())
                    .map(|m| (m, *currency))
                    .collect(),
            )
        }
        E::QuarterlyPaymentRejected { payment_id, restored_months, .. } => MonthsTouched::Released {
            payment_id,
            restored: restored_months.iter().map(|r| (r.month, r.currency)).collect(),
        },
        E::QuarterlyPaymentPaid { payment_id, .. } => MonthsTouched::HeldBy(payment_id),
        _ => MonthsTouched::None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarterlyPayment {
    pub payment_id: String,
    pub quarter: Quarter,
    pub currency: Currency,
    pub status: PaymentStatus,
    pub included_months: Vec<IncludedMonth>,
    pub excluded_months: Vec<Month>,
    pub included_opportunities: Vec<IncludedOpportunity>,
    /// Earlier quarters' months settled by this payment (docs/DOMAIN.md §5).
    pub carried_months: Vec<IncludedMonth>,
    /// `−Σ carried_months`, deducted from the payable.
    pub carried_deduction: Money,
    pub payable: Money,
    pub method: Option<PaymentMethod>,
    pub invoice_list: Option<InvoiceList>,
}

impl QuarterlyPayment {
    /// A payment that is not rejected keeps its quarter requested (`ALREADY_REQUESTED`).
    pub fn is_live(&self) -> bool {
        self.status != PaymentStatus::Rejected
    }

    /// The payment a `QuarterlyPaymentRequested` event creates (`None` for any other).
    pub fn requested(event: &IncentiveEvent) -> Option<QuarterlyPayment> {
        let IncentiveEvent::QuarterlyPaymentRequested {
            payment_id,
            quarter,
            currency,
            included_months,
            excluded_months,
            included_opportunities,
            carried_months,
            carried_deduction,
            payable,
            ..
        } = event
        else {
            return None;
        };
        Some(QuarterlyPayment {
            payment_id: payment_id.clone(),
            quarter: *quarter,
            currency: *currency,
            status: PaymentStatus::Requested,
            included_months: included_months.clone(),
            excluded_months: excluded_months.clone(),
            included_opportunities: included_opportunities.clone(),
            carried_months: carried_months.clone(),
            carried_deduction: *carried_deduction,
            payable: *payable,
            method: None,
            invoice_list: None,
        })
    }

    /// The part of `event` that concerns this payment after its request: the aggregate's
    /// evolve and the read model of quarterly payments both run it.
    pub fn apply(&mut self, event: &IncentiveEvent) {
        use IncentiveEvent as E;
        if payment_of(event) != Some(self.payment_id.as_str()) {
            return;
        }
        match event {
            E::QuarterlyPaymentApproved { .. } => self.status = PaymentStatus::Approved,
            E::QuarterlyPaymentRejected { .. } => self.status = PaymentStatus::Rejected,
            E::InvoiceListIssued { invoice_list, .. } => {
                self.status = PaymentStatus::InvoiceListIssued;
                self.invoice_list = Some(invoice_list.clone());
            }
            E::InvoiceReceived { .. } => self.status = PaymentStatus::InvoiceReceived,
            E::QuarterlyPaymentPaid { method, .. } => {
                self.status = PaymentStatus::Paid;
                self.method = Some(*method);
            }
            _ => {}
        }
    }

    /// docs/API.md's quarterly payment (without `position`, which is the reader's).
    pub fn view(&self, partner_id: &str) -> PaymentView {
        PaymentView {
            payment_id: self.payment_id.clone(),
            partner_id: partner_id.to_string(),
            quarter: self.quarter,
            currency: self.currency,
            status: self.status,
            included_months: self.included_months.clone(),
            excluded_months: self.excluded_months.clone(),
            included_opportunities: self.included_opportunities.clone(),
            carried_months: self.carried_months.clone(),
            carried_deduction: self.carried_deduction,
            payable: self.payable,
            method: self.method,
            invoice_list: self.invoice_list.clone(),
        }
    }
}

/// The payment a payment event names (`None` for the other events).
pub fn payment_of(event: &IncentiveEvent) -> Option<&str> {
    use IncentiveEvent as E;
    match event {
        E::QuarterlyPaymentRequested { payment_id, .. }
        | E::QuarterlyPaymentApproved { payment_id, .. }
        | E::QuarterlyPaymentRejected { payment_id, .. }
        | E::InvoiceListIssued { payment_id, .. }
        | E::InvoiceReceived { payment_id, .. }
        | E::QuarterlyPaymentPaid { payment_id, .. } => Some(payment_id),
        _ => None,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncentivesState {
    pub partner_id: Option<String>,
    /// Every refund of the stream (rare beside lines): a refund id stays unique, and a
    /// line's unrefunded remainder is its amount less these. Lines themselves are not kept
    /// (README "How the ledger is cut"): a command that needs one brings it.
    pub refunds: BTreeMap<String, Refund>,
    pub months: BTreeMap<(Month, Currency), IncentiveMonth>,
    pub opportunities: BTreeMap<String, Opportunity>,
    pub payments: BTreeMap<String, QuarterlyPayment>,
}

/// docs/API.md's incentive month.
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

/// docs/API.md's rollover line.
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

impl RolloverLine {
    /// What the report shows of a line: its amount and incentive as recorded (a refund
    /// claws back in a month of its own and leaves the line as it was).
    pub fn of(l: &ConsumptionLine) -> RolloverLine {
        RolloverLine {
            record_id: l.record_id.clone(),
            customer_id: l.customer_id.clone(),
            product: l.product.clone(),
            consumption_month: l.consumption_month,
            incentive_month: l.incentive_month,
            amount: l.amount,
            incentive: Money::new(l.incentive, l.amount.currency),
        }
    }

    pub fn is_rollover(&self) -> bool {
        self.incentive_month != self.consumption_month
    }
}

impl RolloverReport {
    /// The report of `month` in `currency` out of `lines` (in the order given, record id
    /// order in the aggregate): lines counted in `month` from earlier consumption months,
    /// and lines consumed in `month` but counted later. Lines of other months or
    /// currencies are left out.
    pub fn of(month: Month, currency: Currency, lines: impl IntoIterator<Item = RolloverLine>) -> RolloverReport {
        let mut report = RolloverReport { month, counted_here_from_earlier: vec![], counted_later: vec![] };
        for l in lines.into_iter().filter(|l| l.amount.currency == currency) {
            if l.incentive_month == month && l.consumption_month < month {
                report.counted_here_from_earlier.push(l);
            } else if l.consumption_month == month && l.incentive_month > month {
                report.counted_later.push(l);
            }
        }
        report
    }
}

/// docs/API.md's quarterly payment.
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
    /// Earlier quarters' months this payment settles, and the deduction they make.
    pub carried_months: Vec<IncludedMonth>,
    pub carried_deduction: Money,
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
        Some(self.month(month, currency)?.view(self.partner_id.as_deref().unwrap_or_default()))
    }

    /// Every month of a year this stream knows, in month then currency order.
    pub fn months_of_year(&self, year: i32) -> Vec<MonthView> {
        self.months.keys().filter(|(m, _)| m.year() == year).filter_map(|(m, c)| self.month_view(*m, *c)).collect()
    }

    pub fn payment_view(&self, payment_id: &str) -> Option<PaymentView> {
        Some(self.payments.get(payment_id)?.view(self.partner_id.as_deref().unwrap_or_default()))
    }

    fn month_mut(&mut self, month: Month, currency: Currency) -> &mut IncentiveMonth {
        self.months.entry((month, currency)).or_insert_with(|| IncentiveMonth::new(month, currency))
    }

    fn set_opportunity_status(&mut self, opportunity_id: &str, status: OpportunityStatus) {
        self.assert_known_opportunity(opportunity_id);
        if let Some(o) = self.opportunities.get_mut(opportunity_id) {
            o.status = status;
        }
    }

    /// decide moves only an opportunity it shared, so a stored step always names a known
    /// one: an unknown id here is a corrupted stream, not a fact to skip quietly.
    fn assert_known_opportunity(&self, opportunity_id: &str) {
        debug_assert!(self.opportunities.contains_key(opportunity_id), "unknown opportunity {opportunity_id}");
    }

    /// Applies one event. The months' part is [`IncentiveMonth::apply`] on every month
    /// [`months_touched`] names, the payments' part [`QuarterlyPayment::apply`].
    pub(super) fn apply(&mut self, event: &IncentiveEvent) {
        use IncentiveEvent as E;
        if self.partner_id.is_none() {
            self.partner_id = Some(event.partner_id().to_string());
        }
        match months_touched(event) {
            MonthsTouched::None => {}
            MonthsTouched::Keys(keys) => {
                for (month, currency) in keys {
                    self.month_mut(month, currency).apply(event);
                }
            }
            MonthsTouched::HeldBy(payment_id) => {
                for m in self.months.values_mut().filter(|m| m.payment_id.as_deref() == Some(payment_id)) {
                    m.apply(event);
                }
            }
            MonthsTouched::Released { payment_id, restored } => {
                let touched = |m: &&mut IncentiveMonth| {
                    m.payment_id.as_deref() == Some(payment_id) || restored.contains(&(m.month, m.currency))
                };
                for m in self.months.values_mut().filter(touched) {
                    m.apply(event);
                }
            }
        }
        if let Some(payment) = QuarterlyPayment::requested(event) {
            self.payments.insert(payment.payment_id.clone(), payment);
        } else if let Some(id) = payment_of(event) {
            // decide steps only a payment it requested, so the id is always known.
            debug_assert!(self.payments.contains_key(id), "unknown quarterly payment {id}");
            if let Some(p) = self.payments.get_mut(id) {
                p.apply(event);
            }
        }
        match event {
            // A line counts in its months (above) and is not kept: what a write loads is
            // the months, payments, opportunities and refunds, not the partner's lines
            // (README "How the ledger is cut").
            E::ConsumptionRefunded { refund_id, record_id, amount, settled_at, incentive_month, incentive, .. } => {
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
                self.assert_known_opportunity(opportunity_id);
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
                self.assert_known_opportunity(opportunity_id);
                if let Some(o) = self.opportunities.get_mut(opportunity_id) {
                    o.status = OpportunityStatus::Finalized;
                    o.final_amount = Some(*final_amount);
                    o.finalized_quarter = Some(*quarter);
                }
            }
            E::QuarterlyPaymentRequested { payment_id, included_opportunities, .. } => {
                for o in included_opportunities {
                    self.assert_known_opportunity(&o.opportunity_id);
                    if let Some(opp) = self.opportunities.get_mut(&o.opportunity_id) {
                        opp.payment_id = Some(payment_id.clone());
                    }
                }
            }
            // A rejected payment lets go of its opportunities (and, above, its months).
            E::QuarterlyPaymentRejected { payment_id, .. } => {
                for o in self.opportunities.values_mut() {
                    if o.payment_id.as_deref() == Some(payment_id) {
                        o.payment_id = None;
                    }
                }
            }
            E::QuarterlyPaymentPaid { included_opportunities, .. } => {
                for o in included_opportunities {
                    self.set_opportunity_status(o, OpportunityStatus::Paid);
                }
            }
            _ => {}
        }
    }
}

impl IncentiveEvent {
    /// The partner whose stream holds the event.
    pub fn partner_id(&self) -> &str {
        use IncentiveEvent as E;
        match self {
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
        }
    }
}

/// The aggregate's evolve: every fact applies (a stored event is never refused).
pub(super) fn evolve(mut state: IncentivesState, event: &IncentiveEvent) -> IncentivesState {
    state.apply(event);
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read models read lines and counts straight from the stored payloads: they must be
    /// what the decoded events give.
    #[test]
    fn lines_and_counts_read_from_payloads_equal_those_of_the_decoded_events() {
        let mut lines = 0;
        let mut counts = 0;
        for e in super::super::examples() {
            let (_, _, payload) = crate::encode(&e);
            let text = payload.to_string();
            if let Some(line) = ConsumptionLine::recorded(&e) {
                assert_eq!(serde_json::from_str::<ConsumptionLine>(&text).unwrap(), line);
                lines += 1;
            }
            if let Some(c) = Counted::of(&e) {
                assert_eq!(serde_json::from_str::<Counted>(&text).unwrap(), c);
                counts += 1;
            }
        }
        assert_eq!((lines, counts), (2, 3));
    }
}
