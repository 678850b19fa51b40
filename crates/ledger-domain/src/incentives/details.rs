//! The partner's "why" (seed FAQ: why the incentive detail differs from the consumption):
//! every consumption line and refund clawback of a month, with what it earned and, where it
//! earned nothing here or is counted elsewhere, the reason. The entries counted in a month
//! add up to that month's accrued amount (before its one rounding), by construction: they
//! are the very `incentive` values [`super::IncentiveMonth::apply`] sums.

use ledger_core::{Money, Month, Rate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{ConsumptionLine, IncentiveEvent, LineReason};

/// Whether an entry is a consumption line or the clawback of a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetailEntry {
    Consumption,
    Refund,
}

/// Why an entry earned nothing in the month read, or what else the reader must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DetailReason {
    /// The policy of the month it is counted in does not list the product.
    ProductNotEligible,
    /// Consumed in the month read but counted in `counted_in` (month rollover).
    CountedInOtherMonth,
    /// A consumption line of which part or all was refunded (`refunded`), or the clawback
    /// of such a refund.
    Refunded,
}

/// One entry of `GET /v1/incentive-details` as it stands after the events so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncentiveDetail {
    pub entry: DetailEntry,
    pub record_id: String,
    /// Set for a refund.
    pub refund_id: Option<String>,
    pub customer_id: Option<String>,
    pub product: Option<String>,
    /// The consumption month of a line (`None` for a refund).
    pub consumption_month: Option<Month>,
    /// Where its incentive is counted.
    pub incentive_month: Month,
    /// The consumption amount of a line, the refunded amount of a refund.
    pub amount: Money,
    pub rate: Option<Rate>,
    /// What it adds to its incentive month, full precision (negative for a clawback).
    pub incentive: Money,
    /// What was refunded of a line so far.
    pub refunded: Money,
    pub line_reason: Option<LineReason>,
}

impl IncentiveDetail {
    /// The entry a line or a refund creates (`None` for other events).
    pub fn of(event: &IncentiveEvent) -> Option<IncentiveDetail> {
        match event {
            IncentiveEvent::ConsumptionRecorded { .. } => {
                ConsumptionLine::recorded(event).map(IncentiveDetail::of_line)
            }
            IncentiveEvent::ConsumptionRefunded {
                refund_id,
                record_id,
                amount,
                incentive_month,
                rate,
                incentive,
                ..
            } => Some(IncentiveDetail {
                entry: DetailEntry::Refund,
                record_id: record_id.clone(),
                refund_id: Some(refund_id.clone()),
                customer_id: None,
                product: None,
                consumption_month: None,
                incentive_month: *incentive_month,
                amount: *amount,
                rate: *rate,
                incentive: Money::new(*incentive, amount.currency),
                refunded: *amount,
                line_reason: None,
            }),
            _ => None,
        }
    }

    /// The entry of a recorded line (a read model reads the line straight from its
    /// `ConsumptionRecorded` payload, see [`ConsumptionLine`]).
    pub fn of_line(line: ConsumptionLine) -> IncentiveDetail {
        IncentiveDetail {
            entry: DetailEntry::Consumption,
            refund_id: None,
            consumption_month: Some(line.consumption_month),
            incentive_month: line.incentive_month,
            rate: line.rate,
            incentive: Money::new(line.incentive, line.amount.currency),
            refunded: Money::new(line.refunded, line.amount.currency),
            line_reason: line.reason,
            amount: line.amount,
            record_id: line.record_id,
            customer_id: Some(line.customer_id),
            product: Some(line.product),
        }
    }

    /// A refund of this line adds to what was refunded of it.
    pub fn apply(&mut self, event: &IncentiveEvent) {
        if let IncentiveEvent::ConsumptionRefunded { record_id, amount, .. } = event {
            if self.entry == DetailEntry::Consumption && *record_id == self.record_id {
                self.refunded = Money::new(self.refunded.amount + amount.amount, self.refunded.currency);
            }
        }
    }

    /// Whether its incentive is part of `month`'s accrued amount.
    pub fn counted_in(&self, month: Month) -> bool {
        self.incentive_month == month
    }

    /// Why it reads as it does in `month` (`None`: it earned its amount × rate there).
    pub fn reason(&self, month: Month) -> Option<DetailReason> {
        if !self.counted_in(month) {
            return Some(DetailReason::CountedInOtherMonth);
        }
        if self.line_reason == Some(LineReason::ProductNotEligible) {
            return Some(DetailReason::ProductNotEligible);
        }
        if self.entry == DetailEntry::Refund || !self.refunded.amount.is_zero() {
            return Some(DetailReason::Refunded);
        }
        None
    }

    /// Whether it belongs in `month`'s detail: counted there, or consumed there and
    /// counted later.
    pub fn listed_in(&self, month: Month) -> bool {
        self.counted_in(month) || self.consumption_month == Some(month)
    }
}

/// The sum of what the entries counted in `month` add to it, full precision: the month's
/// `incentive_sum`, which its accrued amount rounds once.
pub fn counted_sum<'a>(details: impl IntoIterator<Item = &'a IncentiveDetail>, month: Month) -> Decimal {
    details.into_iter().filter(|d| d.counted_in(month)).map(|d| d.incentive.amount).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incentives::testkit::*;
    use crate::incentives::IncentiveMonth;
    use ledger_core::Currency;

    #[test]
    fn the_entries_counted_in_a_month_add_up_to_its_accrued_amount_and_say_why() {
        let events = scenario()
            .at("2026-07-20T00:00:00Z", record("R1", "100.00", "ecs", "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z"))
            .at("2026-07-20T00:00:00Z", record("R2", "50.00", "gpu", "2026-07-12T02:00:00Z", "2026-07-12T03:00:00Z"))
            // Consumed in July, settled after July's cut-off: counted in August.
            .at("2026-08-06T00:00:00Z", record("R3", "80.00", "obs", "2026-07-30T02:00:00Z", "2026-08-05T02:00:00Z"))
            .at("2026-08-06T00:00:00Z", refund_cmd("RF1", "R1", "10.00", "2026-07-20T02:00:00Z"))
            .events;
        let (july, august) = (month("2026-07"), month("2026-08"));
        let mut details: Vec<IncentiveDetail> = vec![];
        for e in &events {
            details.iter_mut().for_each(|d| d.apply(e));
            details.extend(IncentiveDetail::of(e));
        }
        for m in [july, august] {
            let mut im = IncentiveMonth::new(m, Currency::CNY);
            events.iter().for_each(|e| im.apply(e));
            assert_eq!(counted_sum(&details, m), im.incentive_sum, "{m}");
        }
        let reasons: Vec<(&str, Option<DetailReason>)> = details
            .iter()
            .filter(|d| d.listed_in(july))
            .map(|d| (d.refund_id.as_deref().unwrap_or(&d.record_id), d.reason(july)))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("R1", Some(DetailReason::Refunded)),
                ("R2", Some(DetailReason::ProductNotEligible)),
                ("R3", Some(DetailReason::CountedInOtherMonth)),
                ("RF1", Some(DetailReason::Refunded)),
            ]
        );
        assert_eq!(details[0].refunded, cny("10.00"));
        assert_eq!(counted_sum(&details, july), dec("4.50"), "5 % of 100 less 5 % of the 10 refunded");
        assert_eq!(
            details.iter().filter(|d| d.listed_in(august)).map(|d| d.reason(august)).collect::<Vec<_>>(),
            [None]
        );
    }
}
