//! Consumption, incentive months, opportunities and quarterly payments (docs/DOMAIN.md §2, §5):
//! the facts each command needs (the customer's association, the policies, the
//! certification gate) are looked up here; the rules are the domain's.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::{Currency, Money, Month, Quarter};
use ledger_domain::customer::{self, AssociationType, Customer};
use ledger_domain::funds::{self, DrawDown, Funds, FundsCommand};
use ledger_domain::incentives::{
    self, AcceptOpportunity, ApplyForMonth, ApplyForOpportunity, ApprovePayment, CloseMonth, ConfirmInvoiceReceived,
    ConsumptionLine, FinalizeMonth, FinalizeOpportunity, IncentiveCommand, IncentiveEvent, Incentives, IncentivesState,
    IssueInvoiceList, LineAssociation, MarkOpportunityDelivered, PayQuarterlyPayment, PaymentMethod, PaymentStatus,
    RecordConsumption, RefundConsumption, RejectPayment, RequestQuarterlyPayment, ReviewMonth, ReviewOpportunity,
    ShareOpportunity,
};
use ledger_domain::partner::certification_gate;
use ledger_domain::policy::PolicyBook;
use ledger_domain::rebate::{CreditRebate, Rebate, RebateCommand};
use ledger_domain::{Decider, DomainError};
use ledger_store::{IdempotencyKey, StoreError};

use crate::executor::{ItemOutcome, PairedItem};
use crate::{fingerprint, AppError, CommandContext, Ledger, Outcome};

/// The vendor's mailing address and public mailbox printed on every invoice list (seed:
/// 发票邮寄地址 and 公共邮箱); configurable with `LEDGER_INVOICE_ADDRESS` / `LEDGER_INVOICE_MAILBOX`.
pub const DEFAULT_INVOICE_ADDRESS: &str = "Partner Settlement, Finance Dept., 1 Cloud Avenue, Hangzhou 310000";
pub const DEFAULT_INVOICE_MAILBOX: &str = "partner-invoices@vendor.example";

/// One consumption line as billing reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumptionInput {
    pub record_id: String,
    pub customer_id: String,
    pub product: String,
    pub amount: Money,
    pub consumed_at: DateTime<Utc>,
    pub settled_at: DateTime<Utc>,
}

/// The store's key of a consumption line (`consumption:{record_id}`) and the digest of
/// what billing sent for it.
fn line_key(line: &ConsumptionInput) -> IdempotencyKey {
    IdempotencyKey {
        key: format!("consumption:{}", line.record_id),
        fingerprint: fingerprint(&[
            line.customer_id.as_bytes(),
            line.product.as_bytes(),
            line.amount.amount.normalize().to_string().as_bytes(),
            line.amount.currency.as_str().as_bytes(),
            line.consumed_at.timestamp_micros().to_string().as_bytes(),
            line.settled_at.timestamp_micros().to_string().as_bytes(),
        ]),
    }
}

/// A line of a batch on its way to its partner's stream.
struct RoutedLine {
    /// Its place in the batch.
    index: usize,
    partner_id: String,
    key: IdempotencyKey,
    command: IncentiveCommand,
    /// A resale customer's drawdown (§3: its consumption draws down what it was allocated):
    /// the fund tree's stream and the command, stored with the line or not at all.
    drawdown: Option<(String, FundsCommand)>,
    /// Whether its key may be kept already, so it must be looked up before deciding. A
    /// new line is not looked up: the store refuses an append naming a kept key, and
    /// only then are the keys of that append looked up (billing sends new lines).
    look_up: bool,
}

/// What became of one line of a billing batch.
#[derive(Debug, Clone, PartialEq)]
pub enum LineOutcome {
    Stored {
        partner_id: String,
        position: u64,
    },
    /// The same line was stored before: nothing changed.
    Duplicate {
        partner_id: String,
    },
}

impl Ledger {
    pub async fn incentives(&self, partner_id: &str) -> Result<std::sync::Arc<IncentivesState>, AppError> {
        Ok(self.exec.load_shared::<Incentives>(&incentives::stream_id(partner_id)).await?.0)
    }

    /// Records one consumption line: a billing batch of one.
    pub async fn record_consumption(
        &self,
        ctx: &CommandContext,
        line: ConsumptionInput,
    ) -> Result<LineOutcome, AppError> {
        self.record_consumption_batch(ctx, vec![line]).await?.pop().expect("one answer per line")
    }

    /// Records a billing batch: one answer per line, in order. The lines are decided together,
    /// against one state of each stream they touch, and stored in one append to all those
    /// streams (one transaction; several when the batch holds more events than an append
    /// may carry). A resale customer's line carries its drawdown (§3) in the same append:
    /// both are stored or neither, and a drawdown refused answers its line with its code.
    /// A line stored without its drawdown by an older version (which appended the drawdown
    /// after the line) is completed when billing sends it again: the line is a duplicate,
    /// and the drawdown, idempotent by record_id, is decided on its own. `record_id` is unique
    /// across the whole ledger: the store keeps the key `consumption:{record_id}` for the
    /// line's event, so a line sent again with the same content is a duplicate and with
    /// other content `DUPLICATE_RECORD_CONFLICT`, whatever partner it would land with. A
    /// line a rule refuses is answered with its error; the batch never answers a
    /// concurrency conflict (it is decided again). Only a store failure fails the batch.
    pub async fn record_consumption_batch(
        &self,
        ctx: &CommandContext,
        lines: Vec<ConsumptionInput>,
    ) -> Result<Vec<Result<LineOutcome, AppError>>, AppError> {
        let mut answers: Vec<Option<Result<LineOutcome, AppError>>> = vec![None; lines.len()];
        let mut pending = self.route_lines(ctx, &lines, &mut answers).await?;
        while !pending.is_empty() {
            // A record id goes once per round: a repeat within the batch waits for the next
            // round, where it meets the first as kept (or decides alone if that was refused).
            let mut seen = std::collections::HashSet::new();
            let (round, mut later): (Vec<RoutedLine>, Vec<RoutedLine>) =
                pending.into_iter().partition(|r| seen.insert(r.key.key.clone()));
            later.iter_mut().for_each(|r| r.look_up = true);
            pending = later;
            // The state keeps no lines: a line already kept is found by its key and comes
            // along in the command, and the decider answers it (duplicate or
            // DUPLICATE_RECORD_CONFLICT).
            let keys: Vec<String> = round.iter().filter(|r| r.look_up).map(|r| r.key.key.clone()).collect();
            let mut kept = self.exec.store().idempotency_keys(&keys).await?.into_iter();
            let mut routed = Vec::with_capacity(round.len());
            for mut r in round {
                let kept = if r.look_up { kept.next().expect("one answer per key") } else { None };
                if let Some((_, appended)) = kept {
                    let Some((_, recorded)) = self.line_at(appended.first_position).await? else {
                        let reason = format!("the key {} names no consumption line", r.key.key);
                        let position = appended.first_position;
                        answers[r.index] = Some(Err(StoreError::Corrupt { position, reason }.into()));
                        continue;
                    };
                    if let IncentiveCommand::RecordConsumption(line) = &mut r.command {
                        line.recorded = Some(recorded);
                    }
                }
                routed.push(r);
            }
            // The whole round is one append to every stream it touches (several when it
            // carries more than an append may): each line with its drawdown, both or neither.
            let items: Vec<PairedItem<IncentiveCommand, FundsCommand>> = routed
                .iter()
                .map(|r| PairedItem {
                    stream: incentives::stream_id(&r.partner_id),
                    command: r.command.clone(),
                    key: Some((r.key.key.clone(), r.key.fingerprint)),
                    second: r.drawdown.clone(),
                })
                .collect();
            let outcomes = self.exec.execute_paired::<Incentives, Funds>(&items, ctx).await?;
            for (r, outcome) in routed.into_iter().zip(outcomes) {
                let partner_id = r.partner_id.clone();
                answers[r.index] = Some(match outcome {
                    // One of the lines of its append was kept meanwhile (sent before, or by a
                    // racing batch): its key is looked up and it is decided again.
                    None => {
                        pending.push(RoutedLine { look_up: true, ..r });
                        continue;
                    }
                    Some(ItemOutcome::Stored { position }) => Ok(LineOutcome::Stored { partner_id, position }),
                    Some(ItemOutcome::Unchanged) => Ok(LineOutcome::Duplicate { partner_id }),
                    Some(ItemOutcome::Refused(e)) => Err(e.into()),
                });
            }
            // Keep the batch's order for the next round (repeats after their first).
            pending.sort_by_key(|r| r.index);
        }
        Ok(answers.into_iter().map(|a| a.expect("every line is answered")).collect())
    }

    /// Checks each line and resolves what its command needs (the customer's association at
    /// `consumed_at`, the policy book of its currency), each customer and currency once per
    /// batch. A line that fails here is answered at once.
    async fn route_lines(
        &self,
        ctx: &CommandContext,
        lines: &[ConsumptionInput],
        answers: &mut [Option<Result<LineOutcome, AppError>>],
    ) -> Result<Vec<RoutedLine>, AppError> {
        let mut customers: Vec<&str> = lines.iter().map(|l| l.customer_id.as_str()).collect();
        customers.sort_unstable();
        customers.dedup();
        // The valid ids' streams in one load (one look at their versions, reads of those
        // that moved).
        let checked: Vec<Result<(), AppError>> =
            customers.iter().map(|c| validate_id("customer_id", c).map_err(AppError::from)).collect();
        let streams: Vec<String> =
            customers.iter().zip(&checked).filter(|(_, ok)| ok.is_ok()).map(|(c, _)| customer::stream_id(c)).collect();
        let mut loaded = self.exec.load_many_shared::<Customer>(&streams).await?.into_iter();
        let customers: HashMap<&str, Result<_, AppError>> = customers
            .into_iter()
            .zip(checked)
            .map(|(c, ok)| (c, ok.map(|()| loaded.next().expect("one state per valid id").0)))
            .collect();
        let mut books: HashMap<Currency, Arc<PolicyBook>> = HashMap::new();
        // The fund tree of each resale partner (`None`: a solution provider has none).
        let mut trees: HashMap<String, Option<String>> = HashMap::new();
        let mut routed = Vec::with_capacity(lines.len());
        for (index, line) in lines.iter().enumerate() {
            let checked = (|| {
                validate_id("record_id", &line.record_id)?;
                if line.settled_at < line.consumed_at {
                    return Err(ledger_domain::guard::invalid("settled_at", "must not be before consumed_at").into());
                }
                let history = customers[line.customer_id.as_str()].as_ref().map_err(Clone::clone)?;
                history
                    .association_at(line.consumed_at)
                    .cloned()
                    .ok_or_else(|| DomainError::NoAssociation { customer_id: line.customer_id.clone() }.into())
            })();
            let association = match checked {
                Ok(a) => a,
                Err(e) => {
                    answers[index] = Some(Err(e));
                    continue;
                }
            };
            let currency = line.amount.currency;
            if let std::collections::hash_map::Entry::Vacant(slot) = books.entry(currency) {
                slot.insert(Arc::new(self.policies(currency).await?));
            }
            let partner_id = association.partner_id.clone();
            let drawdown = if association.association_type == AssociationType::Resale {
                let tree = match trees.get(&partner_id) {
                    Some(tree) => tree.clone(),
                    None => {
                        let tree = self.fund_tree_of(&partner_id).await?;
                        trees.insert(partner_id.clone(), tree.clone());
                        tree
                    }
                };
                // Its time is the ledger's (`ctx.now`), as it always was: idempotent by
                // record_id, the drawdown of a retried line is the one first stored.
                tree.map(|distributor_id| {
                    let command = FundsCommand::DrawDown(DrawDown {
                        record_id: line.record_id.clone(),
                        customer_id: line.customer_id.clone(),
                        amount: line.amount,
                        consumed_at: ctx.now,
                    });
                    (funds::stream_id(&distributor_id), command)
                })
            } else {
                None
            };
            routed.push(RoutedLine {
                index,
                key: line_key(line),
                drawdown,
                command: IncentiveCommand::RecordConsumption(RecordConsumption {
                    partner_id: partner_id.clone(),
                    record_id: line.record_id.clone(),
                    customer_id: line.customer_id.clone(),
                    association_type: LineAssociation::from(association.association_type),
                    product: line.product.clone(),
                    amount: line.amount,
                    consumed_at: line.consumed_at,
                    settled_at: line.settled_at,
                    policies: books[&currency].clone(),
                    recorded: None,
                }),
                partner_id,
                look_up: false,
            });
        }
        Ok(routed)
    }

    /// The partner whose stream holds the consumption line `record_id`.
    pub async fn partner_of_record(&self, record_id: &str) -> Result<Option<String>, AppError> {
        Ok(self.recorded_line(record_id).await?.map(|(partner, _)| partner))
    }

    /// The consumption line `record_id` as recorded, and the partner whose stream holds it:
    /// the store's key of the line names its event. This is how a line cut from its
    /// partner's state (its month closed) is found again.
    pub async fn recorded_line(&self, record_id: &str) -> Result<Option<(String, ConsumptionLine)>, AppError> {
        validate_id("record_id", record_id)?;
        let Some((_, appended)) = self.exec.store().idempotency_key(&format!("consumption:{record_id}")).await? else {
            return Ok(None);
        };
        self.line_at(appended.first_position).await
    }

    /// The consumption line recorded at `position`, and its partner (`None` when the event
    /// there is not one).
    async fn line_at(&self, position: u64) -> Result<Option<(String, ConsumptionLine)>, AppError> {
        let Some(e) = self.exec.store().read_all(position, 1).await?.into_iter().next() else {
            return Ok(None);
        };
        let (Incentives::FAMILY, partner) = ledger_domain::split_stream(&e.stream) else { return Ok(None) };
        let event: IncentiveEvent = ledger_domain::decode(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| AppError::Decode { position: e.position, reason: err.to_string() })?;
        Ok(ConsumptionLine::recorded(&event).map(|line| (partner.to_string(), line)))
    }

    /// Refunds part of a stored line (`record_id` must be known: the API resolves its
    /// partner). The line as recorded (`line`) is looked up here, whatever the caller set:
    /// the partner's state keeps no lines.
    pub async fn refund_consumption(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        mut command: RefundConsumption,
    ) -> Result<Outcome<IncentiveEvent>, AppError> {
        validate_id("refund_id", &command.refund_id)?;
        command.line = match self.recorded_line(&command.record_id).await? {
            Some((partner, line)) if partner == partner_id => Some(line),
            _ => None,
        };
        let command = IncentiveCommand::RefundConsumption(command);
        self.exec.execute::<Incentives>(&incentives::stream_id(partner_id), command, ctx).await
    }

    /// Closes `month` in every currency the partner has lines in (CNY when none: the month
    /// then closes empty), all in one append: a currency that may not close yet refuses the
    /// whole step (docs/DOMAIN.md §5, all-or-nothing).
    pub async fn close_month(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        month: Month,
    ) -> Result<Outcome<IncentiveEvent>, AppError> {
        self.partner(partner_id).await?;
        let state = self.incentives(partner_id).await?;
        let mut currencies: Vec<Currency> = state.months.keys().filter(|(m, _)| *m == month).map(|(_, c)| *c).collect();
        if currencies.is_empty() {
            currencies.push(Currency::CNY);
        }
        let mut commands = vec![];
        for currency in currencies {
            let grace = self.policies(currency).await?.settlement_grace_days(month);
            commands.push(IncentiveCommand::CloseMonth(CloseMonth {
                partner_id: partner_id.to_string(),
                month,
                currency,
                settlement_grace_days: grace,
            }));
        }
        self.exec.execute_all::<Incentives>(&incentives::stream_id(partner_id), commands, ctx).await
    }

    pub async fn apply_for_month(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        month: Month,
        currency: Currency,
    ) -> Result<Outcome<IncentiveEvent>, AppError> {
        let certification = certification_gate(&self.partner(partner_id).await?);
        let command = IncentiveCommand::ApplyForMonth(ApplyForMonth { month, currency, certification });
        self.exec.execute::<Incentives>(&incentives::stream_id(partner_id), command, ctx).await
    }

    pub async fn review_month(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        command: ReviewMonth,
    ) -> Result<Outcome<IncentiveEvent>, AppError> {
        self.partner(partner_id).await?;
        let command = IncentiveCommand::ReviewMonth(command);
        self.exec.execute::<Incentives>(&incentives::stream_id(partner_id), command, ctx).await
    }

    pub async fn finalize_month(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        command: FinalizeMonth,
    ) -> Result<Outcome<IncentiveEvent>, AppError> {
        self.partner(partner_id).await?;
        let command = IncentiveCommand::FinalizeMonth(command);
        self.exec.execute::<Incentives>(&incentives::stream_id(partner_id), command, ctx).await
    }

    /// Shares an opportunity with `command.partner_id`.
    pub async fn share_opportunity(
        &self,
        ctx: &CommandContext,
        command: ShareOpportunity,
    ) -> Result<Outcome<IncentiveEvent>, AppError> {
        validate_id("partner_id", &command.partner_id)?;
        self.partner(&command.partner_id).await?;
        let stream = incentives::stream_id(&command.partner_id);
        self.exec.execute::<Incentives>(&stream, IncentiveCommand::ShareOpportunity(command), ctx).await
    }

    /// An opportunity's step after sharing; `Apply` adds the certification gate's outcome.
    pub async fn opportunity_step(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        step: OpportunityStep,
    ) -> Result<Outcome<IncentiveEvent>, AppError> {
        let command = match step {
            OpportunityStep::Deliver(c) => IncentiveCommand::MarkOpportunityDelivered(c),
            OpportunityStep::Accept(c) => IncentiveCommand::AcceptOpportunity(c),
            OpportunityStep::Apply(ApplyOpportunity { opportunity_id }) => {
                IncentiveCommand::ApplyForOpportunity(ApplyForOpportunity {
                    opportunity_id,
                    certification: certification_gate(&self.partner(partner_id).await?),
                })
            }
            OpportunityStep::Review(c) => IncentiveCommand::ReviewOpportunity(c),
            OpportunityStep::Finalize(c) => IncentiveCommand::FinalizeOpportunity(c),
        };
        self.exec.execute::<Incentives>(&incentives::stream_id(partner_id), command, ctx).await
    }

    pub async fn eligibility(
        &self,
        partner_id: &str,
        quarter: Quarter,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> Result<incentives::Eligibility, AppError> {
        let certification = certification_gate(&self.partner(partner_id).await?);
        let state = self.incentives(partner_id).await?;
        Ok(incentives::eligibility(&state, quarter, currency, at, &certification))
    }

    /// Requests the quarterly payment; answers its id. The id is new for each request, so
    /// an idempotent retry must carry the same `X-Request-Id`.
    pub async fn request_payment(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        quarter: Quarter,
        currency: Currency,
    ) -> Result<(String, Outcome<IncentiveEvent>), AppError> {
        let certification = certification_gate(&self.partner(partner_id).await?);
        let payment_id = format!("QP-{quarter}-{currency}-{}", uuid::Uuid::now_v7().simple());
        let command = IncentiveCommand::RequestQuarterlyPayment(RequestQuarterlyPayment {
            payment_id: payment_id.clone(),
            quarter,
            currency,
            certification,
        });
        let outcome = self.exec.execute::<Incentives>(&incentives::stream_id(partner_id), command, ctx).await?;
        let payment_id = self.created_id(&outcome, "payment_id").await?.unwrap_or(payment_id);
        Ok((payment_id, outcome))
    }

    /// Moves a payment along its lifecycle. Paying with `cloud_account_credit` also credits
    /// the partner's rebate account with the paid amount.
    ///
    /// All-or-nothing (docs/DOMAIN.md §5): the pay (the partner's incentive stream) and its
    /// credit (its rebate stream) are decided together and stored in one append to both
    /// streams, under the request's id: both or neither, and a refusal by either decider
    /// stores nothing. A retry under the same `X-Request-Id` answers the first call.
    ///
    /// Logs written before the two went into one append may hold a payment paid by credit
    /// whose credit a crash left missing: any pay call on it completes the credit (a retry
    /// of the first call under its id, or a call under another id, once; then a pay is
    /// refused `INVALID_STATE`), and so does the next start of `ledger serve`. The credit is
    /// idempotent by payment id.
    pub async fn payment_step(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        step: PaymentStep,
    ) -> Result<Outcome<IncentiveEvent>, AppError> {
        let command = match step {
            PaymentStep::Approve(c) => IncentiveCommand::ApprovePayment(c),
            PaymentStep::Reject(c) => IncentiveCommand::RejectPayment(c),
            PaymentStep::IssueInvoiceList(InvoiceList { payment_id }) => {
                IncentiveCommand::IssueInvoiceList(IssueInvoiceList {
                    payment_id,
                    mailing_address: std::env::var("LEDGER_INVOICE_ADDRESS")
                        .unwrap_or_else(|_| DEFAULT_INVOICE_ADDRESS.to_string()),
                    mailbox: std::env::var("LEDGER_INVOICE_MAILBOX")
                        .unwrap_or_else(|_| DEFAULT_INVOICE_MAILBOX.to_string()),
                })
            }
            PaymentStep::InvoiceReceived(c) => IncentiveCommand::ConfirmInvoiceReceived(c),
            PaymentStep::Pay(pay) => return self.pay(ctx, partner_id, pay).await,
        };
        self.exec.execute::<Incentives>(&incentives::stream_id(partner_id), command, ctx).await
    }

    /// The pay step: the paid event and, for `cloud_account_credit`, the rebate credit of
    /// the paid amount, in one append (see [`Ledger::payment_step`]).
    async fn pay(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        pay: PayQuarterlyPayment,
    ) -> Result<Outcome<IncentiveEvent>, AppError> {
        if let Some(Outcome::Replayed { appended }) = self.exec.replay::<IncentiveEvent>(ctx).await? {
            return self.replayed_pay(ctx, partner_id, appended).await;
        }
        // A log written before: paid, its credit missing. This call completes it; once
        // credited, a pay is refused `INVALID_STATE` by the decider.
        if let Some(appended) = self.complete_rebate_credit(ctx, partner_id, &pay.payment_id).await? {
            return Ok(Outcome::Replayed { appended });
        }
        let stream = incentives::stream_id(partner_id);
        let rebate_stream = ledger_domain::rebate::stream_id(partner_id);
        let credit_of = |events: &[IncentiveEvent]| {
            events.iter().find_map(incentives::rebate_credit_for).map(|(source_id, amount)| {
                RebateCommand::CreditRebate(CreditRebate { partner_id: partner_id.to_string(), source_id, amount })
            })
        };
        let command = IncentiveCommand::PayQuarterlyPayment(pay);
        let (outcome, _) =
            self.exec.execute_then::<Incentives, Rebate>((&stream, command), &rebate_stream, credit_of, ctx).await?;
        match outcome {
            // A twin of this request stored first.
            Outcome::Replayed { appended } => self.replayed_pay(ctx, partner_id, appended).await,
            outcome => Ok(outcome),
        }
    }

    /// The answer to a pay replayed by its request id: the first call's append, which holds
    /// the paid event and its credit. In a log written before they went into one append, the
    /// credit may be missing (the process died after the paid event): it is completed here,
    /// and the answer's position is then the credit's (read-your-writes).
    async fn replayed_pay(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        mut appended: ledger_store::Appended,
    ) -> Result<Outcome<IncentiveEvent>, AppError> {
        let paid = self.appended_events::<Incentives>(&appended).await?;
        if paid.is_empty() {
            // The first call completed a missing credit (its append is the credit alone): the
            // answer is the payment, in the stream's version now (a paid payment stays so).
            let (_, version) = self.exec.load_shared::<Incentives>(&incentives::stream_id(partner_id)).await?;
            return Ok(Outcome::Replayed { appended: ledger_store::Appended { stream_version: version, ..appended } });
        }
        let credits: Vec<(String, Money)> = paid.iter().filter_map(incentives::rebate_credit_for).collect();
        if credits.is_empty() {
            return Ok(Outcome::Replayed { appended });
        }
        let kept = self.appended_events::<Rebate>(&appended).await?;
        for (source_id, amount) in credits {
            let in_append = kept.iter().any(|e| {
                matches!(e, ledger_domain::rebate::RebateEvent::RebateCredited { source_id: s, .. } if *s == source_id)
            });
            if in_append {
                continue;
            }
            let credit = CreditRebate { partner_id: partner_id.to_string(), source_id: source_id.clone(), amount };
            let position = match self.credit_rebate(ctx, credit).await?.position() {
                Some(p) => Some(p),
                None => self.credit_position(partner_id, &source_id).await?,
            };
            if let Some(p) = position {
                appended.last_position = appended.last_position.max(p);
            }
        }
        Ok(Outcome::Replayed { appended })
    }

    /// Credits the rebate of `payment_id` when it is paid by `cloud_account_credit` and its
    /// credit is missing (a log written when the pay and its credit were two appends, the
    /// process dying between them); answers the credit's positions with the version of the
    /// partner's incentive stream (the payment's), `None` when there was nothing to
    /// complete. The credit is stored under `ctx`'s request id, so a retry of the
    /// completing call replays it.
    pub async fn complete_rebate_credit(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        payment_id: &str,
    ) -> Result<Option<ledger_store::Appended>, AppError> {
        let (state, version) = self.exec.load_shared::<Incentives>(&incentives::stream_id(partner_id)).await?;
        let Some(p) = state.payment_view(payment_id) else { return Ok(None) };
        if p.status != PaymentStatus::Paid || p.method != Some(PaymentMethod::CloudAccountCredit) {
            return Ok(None);
        }
        if self.rebate(partner_id).await?.credits.contains_key(payment_id) {
            return Ok(None);
        }
        // The paid event's amount is the payable (docs/DOMAIN.md §5).
        let credit =
            CreditRebate { partner_id: partner_id.to_string(), source_id: payment_id.to_string(), amount: p.payable };
        let stream = ledger_domain::rebate::stream_id(partner_id);
        let credited = match self.exec.execute::<Rebate>(&stream, RebateCommand::CreditRebate(credit), ctx).await? {
            Outcome::Stored { appended, .. } | Outcome::Replayed { appended } => Some(appended),
            // Credited meanwhile by a concurrent call.
            Outcome::Unchanged { .. } => self.credit_position(partner_id, payment_id).await?.map(|p| {
                ledger_store::Appended { first_position: p, last_position: p, stream_version: 0, replayed: true }
            }),
        };
        Ok(credited.map(|a| ledger_store::Appended { stream_version: version, replayed: true, ..a }))
    }
}

/// A step of a shared opportunity, as a caller asks it (mini-redis style: one struct per
/// step, built by the API). Each is the domain's command, except where this layer adds a
/// fact from another stream.
#[derive(Debug, Clone)]
pub enum OpportunityStep {
    Deliver(MarkOpportunityDelivered),
    Accept(AcceptOpportunity),
    Apply(ApplyOpportunity),
    Review(ReviewOpportunity),
    Finalize(FinalizeOpportunity),
}

/// Apply for a delivered opportunity's incentive (the certification gate is looked up here).
#[derive(Debug, Clone)]
pub struct ApplyOpportunity {
    pub opportunity_id: String,
}

/// A step of a quarterly payment, as a caller asks it (see [`OpportunityStep`]).
#[derive(Debug, Clone)]
pub enum PaymentStep {
    Approve(ApprovePayment),
    Reject(RejectPayment),
    IssueInvoiceList(InvoiceList),
    InvoiceReceived(ConfirmInvoiceReceived),
    Pay(PayQuarterlyPayment),
}

/// Issue a payment's invoice list (the vendor's mailing address and mailbox are added here).
#[derive(Debug, Clone)]
pub struct InvoiceList {
    pub payment_id: String,
}
