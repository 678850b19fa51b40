//! docs/DOMAIN.md §3: credits, allocation and reclaim with their limits, and drawdown.

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;
use ledger_core::Money;
use rust_decimal::Decimal;

use super::command::{Adjustment, CreditFunds, DrawDown, FundsCommand, UnbindReclaim};
use super::state::{counterparty_holder, operator_holder};
use super::{
    AdjustmentKind, AdjustmentRecord, Counterparty, CounterpartyType, Draw, FundsEvent, FundsState, MAX_ACTOR_CHARS,
    MAX_REMARK_CHARS,
};
use crate::guard::{external_amount, invalid, non_blank, optional_text, stream_owner_state};
use crate::DomainError;

pub(super) fn decide(
    state: &FundsState,
    command: FundsCommand,
    now: DateTime<Utc>,
) -> Result<Vec<FundsEvent>, DomainError> {
    match command {
        FundsCommand::CreditFunds(c) => credit(state, &c, now),
        FundsCommand::Allocate(adjustment) => allocate(state, &adjustment, now),
        FundsCommand::Reclaim(adjustment) => reclaim(state, &adjustment, now),
        FundsCommand::DrawDown(c) => draw_down(state, &c),
        FundsCommand::UnbindReclaim(c) => unbind_reclaim(state, &c, now),
    }
}

fn credit(state: &FundsState, c: &CreditFunds, now: DateTime<Utc>) -> Result<Vec<FundsEvent>, DomainError> {
    let CreditFunds { distributor_id, credit_id, amount } = c.clone();
    validate_id("distributor_id", &distributor_id)?;
    validate_id("credit_id", &credit_id)?;
    external_amount(&amount)?;
    same_distributor(state, &distributor_id)?;
    match state.credits.get(&credit_id) {
        Some(earlier) if *earlier == amount => Ok(vec![]),
        Some(_) => Err(DomainError::AlreadyExists { what: "credit", id: credit_id }),
        None => Ok(vec![FundsEvent::FundsCredited { partner_id: distributor_id, credit_id, amount, credited_at: now }]),
    }
}

/// §3: "A distributor allocates from its pool to one of its customers or to one of its
/// resellers; a reseller allocates from what it received to its own customers."
/// "Allocation may not exceed the allocator's available pool."
fn allocate(state: &FundsState, adj: &Adjustment, now: DateTime<Utc>) -> Result<Vec<FundsEvent>, DomainError> {
    validate_adjustment(state, adj)?;
    check_counterparty(state, adj, AdjustmentKind::Allocate)?;
    let giver = operator_holder(&adj.distributor_id, &adj.operator_partner_id);
    ensure_covers(state.held_by(&giver, adj.amount.currency), adj.amount)?;
    let Adjustment { record_id, distributor_id, operator_partner_id, counterparty, amount, remark, actor, .. } =
        adj.clone();
    Ok(vec![FundsEvent::FundsAllocated {
        partner_id: distributor_id,
        record_id,
        operator_partner_id,
        counterparty,
        amount,
        occurred_at: now,
        remark,
        actor,
    }])
}

/// §3: "Reclaim moves money back, and may not exceed what the counterparty holds unspent
/// from allocations (INSUFFICIENT_BALANCE, nothing changes)." What the operator may take
/// back is what *it* gave and is still unspent: for a reseller, its unspent received
/// funds; for a customer, the part of its allocated balance this operator allocated.
fn reclaim(state: &FundsState, adj: &Adjustment, now: DateTime<Utc>) -> Result<Vec<FundsEvent>, DomainError> {
    validate_adjustment(state, adj)?;
    check_counterparty(state, adj, AdjustmentKind::Reclaim)?;
    let holder = counterparty_holder(&adj.counterparty, &adj.operator_partner_id);
    ensure_covers(state.held_by(&holder, adj.amount.currency), adj.amount)?;
    let Adjustment { record_id, distributor_id, operator_partner_id, counterparty, amount, remark, actor, .. } =
        adj.clone();
    Ok(vec![FundsEvent::FundsReclaimed {
        partner_id: distributor_id,
        record_id,
        operator_partner_id,
        counterparty,
        amount,
        occurred_at: now,
        remark,
        actor,
    }])
}

/// §3 "Unbind reclaim": "whatever the customer still holds unspent from allocations goes
/// back to whoever allocated it". One record per allocator and currency, in allocator
/// order; nothing held is nothing recorded. The same unbind again is a no-op.
fn unbind_reclaim(state: &FundsState, c: &UnbindReclaim, now: DateTime<Utc>) -> Result<Vec<FundsEvent>, DomainError> {
    let UnbindReclaim { distributor_id, customer_id, unbind_id, actor } = c.clone();
    validate_id("distributor_id", &distributor_id)?;
    validate_id("customer_id", &customer_id)?;
    validate_id("unbind_id", &unbind_id)?;
    crate::guard::non_blank("actor", &actor, MAX_ACTOR_CHARS)?;
    same_distributor(state, &distributor_id)?;
    if state.unbinds.contains(&unbind_id) {
        return Ok(vec![]);
    }
    let held = state
        .customer_allocated
        .iter()
        .filter(|((c, _, _), amount)| *c == customer_id && **amount > Decimal::ZERO)
        .map(|((_, allocator, currency), amount)| (allocator.clone(), Money::new(*amount, *currency)));
    Ok(held
        .enumerate()
        .map(|(n, (allocator, amount))| FundsEvent::FundsUnbindReclaimed {
            partner_id: distributor_id.clone(),
            record_id: format!("{unbind_id}-{}", n + 1),
            operator_partner_id: allocator,
            counterparty: Counterparty::customer(customer_id.clone()),
            amount,
            occurred_at: now,
            remark: Some("association ended".into()),
            actor: actor.clone(),
        })
        .collect())
}

/// §3: "The consumption of a resale customer draws down its allocated balance first."
/// Draws min(allocated, consumption), allocator by allocator in id order. A line already
/// drawn is a no-op; a line that finds nothing to draw records nothing.
fn draw_down(state: &FundsState, c: &DrawDown) -> Result<Vec<FundsEvent>, DomainError> {
    let DrawDown { record_id, customer_id, amount: consumption, consumed_at } = c.clone();
    validate_id("record_id", &record_id)?;
    validate_id("customer_id", &customer_id)?;
    external_amount(&consumption)?;
    if state.drawdowns.contains(&record_id) {
        return Ok(vec![]);
    }
    let currency = consumption.currency;
    let mut still_to_draw = consumption.amount;
    let mut drawn_from = Vec::new();
    for (allocator, held) in state.allocations_of(&customer_id, currency) {
        if still_to_draw.is_zero() {
            break;
        }
        let take = held.min(still_to_draw);
        if take > Decimal::ZERO {
            drawn_from.push(Draw { allocator_partner_id: allocator.to_string(), amount: Money::new(take, currency) });
            still_to_draw -= take;
        }
    }
    let (Some(distributor_id), false) = (&state.distributor_id, drawn_from.is_empty()) else {
        return Ok(vec![]);
    };
    Ok(vec![FundsEvent::AllocatedBalanceDrawnDown {
        partner_id: distributor_id.clone(),
        record_id,
        customer_id,
        drawn: Money::new(consumption.amount - still_to_draw, currency),
        consumption,
        drawn_from,
        consumed_at,
    }])
}

fn validate_adjustment(state: &FundsState, adj: &Adjustment) -> Result<(), DomainError> {
    validate_id("record_id", &adj.record_id)?;
    validate_id("distributor_id", &adj.distributor_id)?;
    validate_id("operator_partner_id", &adj.operator_partner_id)?;
    validate_id("counterparty.id", &adj.counterparty.id)?;
    external_amount(&adj.amount)?;
    optional_text("remark", &adj.remark, MAX_REMARK_CHARS)?;
    non_blank("actor", &adj.actor, MAX_ACTOR_CHARS)?;
    same_distributor(state, &adj.distributor_id)?;
    if state.record_ids.contains(&adj.record_id) {
        return Err(DomainError::AlreadyExists { what: "adjustment record", id: adj.record_id.clone() });
    }
    Ok(())
}

/// Who may allocate to (or reclaim from) whom:
/// - a reseller counterparty: only its own distributor, never a reseller (a reseller
///   allocates only to its own customers). A reseller of another distributor reads as an
///   unknown one, `NOT_FOUND` (ours: an answer must not tell a partner who another
///   distributor's resellers are);
/// - a customer counterparty, allocation: only the customer's partner at `now`
///   (`NOT_YOUR_CUSTOMER`);
/// - a customer counterparty, reclaim: the customer's partner at `now`, or an operator that
///   still has an unspent allocation with a customer who has since moved away (ours: money
///   given is the giver's to take back; otherwise it would be stranded).
fn check_counterparty(state: &FundsState, adj: &Adjustment, kind: AdjustmentKind) -> Result<(), DomainError> {
    let operator = adj.operator_partner_id.as_str();
    let parent = adj.counterparty_parent.as_deref();
    let not_yours = || DomainError::NotYourCustomer { customer_id: adj.counterparty.id.clone() };
    match adj.counterparty.kind {
        CounterpartyType::Reseller => {
            if operator != adj.distributor_id {
                return Err(invalid(
                    "counterparty.type",
                    "a reseller allocates to and reclaims from its own customers only",
                ));
            }
            match parent {
                Some(p) if p == operator => Ok(()),
                _ => Err(DomainError::NotFound { what: "reseller", id: adj.counterparty.id.clone() }),
            }
        }
        CounterpartyType::Customer => {
            let is_ours = parent == Some(operator);
            let gave_something =
                !state.customer_allocated_from(&adj.counterparty.id, operator, adj.amount.currency).is_zero();
            match kind {
                AdjustmentKind::Allocate if !is_ours => Err(not_yours()),
                AdjustmentKind::Reclaim if !is_ours && !gave_something => Err(not_yours()),
                _ => Ok(()),
            }
        }
    }
}

fn same_distributor(state: &FundsState, distributor_id: &str) -> Result<(), DomainError> {
    stream_owner_state("distributor_id", state.distributor_id.as_ref(), distributor_id)
}

fn ensure_covers(available: Decimal, requested: Money) -> Result<(), DomainError> {
    if requested.amount > available {
        return Err(DomainError::InsufficientBalance {
            requested: requested.to_string(),
            available: Money::new(available, requested.currency).to_string(),
        });
    }
    Ok(())
}

/// §3 visibility of an adjustment record to a partner (`viewer_parent` is the viewer's
/// distributor when the viewer is a reseller, `None` otherwise):
/// - the operator sees the records it made;
/// - a distributor sees every record of its tree: those it made (for its customers and
///   for its resellers) and those its resellers made for their customers (ours: the seed
///   says a distributor can see "the records a tier-1 made for its tier-2", and §Actors lets
///   a distributor see what concerns its resellers);
/// - a reseller sees those that concern it: it is the operator or the counterparty.
pub fn visible_to(record: &AdjustmentRecord, viewer_partner_id: &str, viewer_parent: Option<&str>) -> bool {
    if record.operator_partner_id == viewer_partner_id {
        return true;
    }
    match viewer_parent {
        None => record.distributor_id == viewer_partner_id,
        Some(parent) => {
            record.distributor_id == parent
                && record.counterparty.kind == CounterpartyType::Reseller
                && record.counterparty.id == viewer_partner_id
        }
    }
}
