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
//! - [`payments`]: [`eligibility`] with its eight blockers in docs/DOMAIN.md's order, and the
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
//!   an amount from outside (≥ 0, since a month may be finalized at 0; ≤ 2 dp; the month's
//!   currency); when it differs from the accrued a reason is required and the event carries
//!   the adjustment `final − accrued`.
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
//!
//! ## The files
//! `event.rs` (the events and their vocabulary), `command.rs` (one struct per command),
//! `decide.rs` (which rule file decides each command, the checks they share), the rule
//! files above, `state.rs` (the state and `evolve`), `snapshot.rs` (the state as text, kept
//! beside the log), `postings.rs`, `tests.rs`.

use chrono::{DateTime, Utc};

pub(crate) use crate::guard::{external_amount, invalid};
use crate::{Decider, DomainError};

mod command;
mod decide;
pub mod details;
mod event;
pub mod lines;
pub mod months;
pub mod opportunities;
pub mod payments;
pub mod postings;
mod snapshot;
mod state;

#[cfg(test)]
mod properties;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use crate::guard::optional_text;
pub use command::{
    AcceptOpportunity, ApplyForMonth, ApplyForOpportunity, ApprovePayment, CloseMonth, ConfirmInvoiceReceived,
    FinalizeMonth, FinalizeOpportunity, IncentiveCommand, IssueInvoiceList, MarkOpportunityDelivered,
    PayQuarterlyPayment, RecordConsumption, RefundConsumption, RejectPayment, RequestQuarterlyPayment, ReviewMonth,
    ReviewOpportunity, ShareOpportunity,
};
use decide::{check_partner, invalid_state, same_currency, stream_partner};
pub use event::*;
pub use payments::{eligibility, Eligibility};
pub use postings::{incentive_payable, postings, rebate_credit_for};
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
        decide::decide(state, command, now)
    }

    fn evolve(state: IncentivesState, event: &IncentiveEvent) -> IncentivesState {
        state::evolve(state, event)
    }

    fn snapshot(state: &IncentivesState) -> Option<String> {
        snapshot::write(state)
    }

    fn restore(text: &str) -> Option<IncentivesState> {
        snapshot::read(text)
    }
}
