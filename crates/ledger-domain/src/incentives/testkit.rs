//! Fixtures for the incentive tests: commands with sensible defaults and a scenario that
//! runs commands through the decider, so histories are built the way production builds them.

use ledger_core::{Currency, Money, Month, Quarter, Rate};
use rust_decimal::Decimal;

use super::command::*;
use super::{
    ConsumptionLine, IncentiveCommand, IncentiveEvent, Incentives, IncentivesState, LineAssociation, PaymentMethod,
    ReviewDecision,
};
use crate::policy::{tests::published, Policies, PolicyBook};
use crate::{Decider, DomainError};

pub use crate::partner::tests::t;

pub const P: &str = "P1";

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

pub fn cny(s: &str) -> Money {
    Money::new(dec(s), Currency::CNY)
}

pub fn month(s: &str) -> Month {
    s.parse().unwrap()
}

pub fn quarter(s: &str) -> Quarter {
    s.parse().unwrap()
}

pub fn rate_of(s: &str) -> Rate {
    Rate::parse(s).unwrap()
}

/// One policy version: effective month, `(product, rate)` pairs, grace days.
pub type Version<'a> = (&'a str, &'a [(&'a str, &'a str)], u32);

/// A CNY policy book from its versions.
pub fn book_with(versions: &[Version]) -> PolicyBook {
    let events: Vec<_> = versions.iter().map(|(m, rates, grace)| published(m, rates, *grace)).collect();
    Policies::replay(&events)
}

/// `ecs` earns 5 %, `obs` 10 %, from January 2026, no grace days.
pub fn book() -> PolicyBook {
    book_with(&[("2026-01", &[("ecs", "0.05"), ("obs", "0.1")], 0)])
}

pub fn record_in(
    book: &PolicyBook,
    id: &str,
    amount: &str,
    product: &str,
    consumed: &str,
    settled: &str,
) -> IncentiveCommand {
    IncentiveCommand::RecordConsumption(RecordConsumption {
        partner_id: P.into(),
        record_id: id.into(),
        customer_id: "C1".into(),
        association_type: LineAssociation::Resale,
        product: product.into(),
        amount: cny(amount),
        consumed_at: t(consumed),
        settled_at: t(settled),
        policies: std::sync::Arc::new(book.clone()),
        recorded: None,
    })
}

pub fn record(id: &str, amount: &str, product: &str, consumed: &str, settled: &str) -> IncentiveCommand {
    record_in(&book(), id, amount, product, consumed, settled)
}

/// An `ecs` line consumed and settled in July 2026.
pub fn line(id: &str, amount: &str) -> IncentiveCommand {
    record(id, amount, "ecs", "2026-07-10T02:00:00Z", "2026-07-11T02:00:00Z")
}

/// An `ecs` line consumed and settled in `m` (the 10th and 11th).
pub fn line_in(id: &str, amount: &str, m: &str) -> IncentiveCommand {
    record(id, amount, "ecs", &format!("{m}-10T02:00:00Z"), &format!("{m}-11T02:00:00Z"))
}

pub fn refund_cmd(id: &str, record_id: &str, amount: &str, settled: &str) -> IncentiveCommand {
    IncentiveCommand::RefundConsumption(RefundConsumption {
        refund_id: id.into(),
        record_id: record_id.into(),
        amount: cny(amount),
        settled_at: t(settled),
        line: None,
    })
}

/// What the application adds to a command before deciding it: the line kept under the
/// command's record id, read from the history (the state keeps no lines).
pub fn looked_up(history: &[IncentiveEvent], command: IncentiveCommand) -> IncentiveCommand {
    let find = |id: &str| history.iter().filter_map(ConsumptionLine::recorded).find(|l| l.record_id == id);
    match command {
        IncentiveCommand::RecordConsumption(mut line) => {
            line.recorded = find(&line.record_id);
            IncentiveCommand::RecordConsumption(line)
        }
        IncentiveCommand::RefundConsumption(mut refund) => {
            refund.line = find(&refund.record_id);
            IncentiveCommand::RefundConsumption(refund)
        }
        other => other,
    }
}

pub fn close(m: &str) -> IncentiveCommand {
    IncentiveCommand::CloseMonth(CloseMonth {
        partner_id: P.into(),
        month: month(m),
        currency: Currency::CNY,
        settlement_grace_days: 0,
    })
}

pub fn certified() -> Result<(), DomainError> {
    Ok(())
}

pub fn uncertified() -> Result<(), DomainError> {
    Err(DomainError::CertificationIncomplete { missing: "business_info".into() })
}

pub fn apply(m: &str) -> IncentiveCommand {
    IncentiveCommand::ApplyForMonth(ApplyForMonth {
        month: month(m),
        currency: Currency::CNY,
        certification: certified(),
    })
}

pub fn pass(m: &str) -> IncentiveCommand {
    IncentiveCommand::ReviewMonth(ReviewMonth {
        month: month(m),
        currency: Currency::CNY,
        decision: ReviewDecision::Pass,
        comment: None,
    })
}

pub fn reject(m: &str) -> IncentiveCommand {
    IncentiveCommand::ReviewMonth(ReviewMonth {
        month: month(m),
        currency: Currency::CNY,
        decision: ReviewDecision::Reject,
        comment: Some("missing contract".into()),
    })
}

pub fn finalize(m: &str) -> IncentiveCommand {
    IncentiveCommand::FinalizeMonth(FinalizeMonth {
        month: month(m),
        currency: Currency::CNY,
        amount: None,
        reason: None,
    })
}

pub fn request(payment_id: &str, q: &str) -> IncentiveCommand {
    IncentiveCommand::RequestQuarterlyPayment(RequestQuarterlyPayment {
        payment_id: payment_id.into(),
        quarter: quarter(q),
        currency: Currency::CNY,
        certification: certified(),
    })
}

pub fn pay(payment_id: &str, method: PaymentMethod) -> IncentiveCommand {
    IncentiveCommand::PayQuarterlyPayment(PayQuarterlyPayment { payment_id: payment_id.into(), method })
}

/// Commands run one after the other through the decider; every one must succeed.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    pub events: Vec<IncentiveEvent>,
    pub state: IncentivesState,
}

pub fn scenario() -> Scenario {
    Scenario::default()
}

impl Scenario {
    #[track_caller]
    pub fn at(mut self, now: &str, command: IncentiveCommand) -> Self {
        let command = looked_up(&self.events, command);
        let events = Incentives::decide(&self.state, command.clone(), t(now))
            .unwrap_or_else(|e| panic!("{command:?} at {now}: {e:?}"));
        for e in &events {
            self.state = Incentives::evolve(self.state, e);
        }
        self.events.extend(events);
        self
    }

    /// The month goes through close, apply, pass and finalize (accrued = final).
    #[track_caller]
    pub fn finalized(self, m: &str, at: &str) -> Self {
        self.at(at, close(m)).at(at, apply(m)).at(at, pass(m)).at(at, finalize(m))
    }
}

/// July 2026 finalized at 50.00 and a payment `QP1` of 2026Q3 requested on August 10
/// (August and September untouched).
pub fn requested_quarter_scenario() -> Scenario {
    scenario()
        .at("2026-07-20T00:00:00Z", line("R1", "1000.00"))
        .finalized("2026-07", "2026-08-01T00:00:00Z")
        .at("2026-08-10T00:00:00Z", request("QP1", "2026Q3"))
}
