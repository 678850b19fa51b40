//! # Customer (stream `customer-{id}`)
//!
//! A sub-customer (子客户) and its association with one partner over time. Every change
//! has an effective time, so a rule asks "which partner, which type, at time t"
//! ([`CustomerState::association_at`]) and gets the answer that held then, not today's.
//!
//! The timeline only grows forward: a change must take effect after the previous one, and
//! a switch or an end may not be back-dated before `now` (a rule may already have looked
//! at the type in force). Only the very first association may be back-dated, so a billing
//! feed can bring consumption from before the customer was entered here.

use chrono::{DateTime, Months, TimeZone, Utc};
use ledger_core::ids::validate_id;
use ledger_core::CST;
use serde::{Deserialize, Serialize};

use crate::{Decider, DomainError, EventFamily};

/// A partner may switch (or end) the association with the same customer at most once in
/// this many calendar months (vendor docs; DOMAIN.md, Actors).
pub const MIN_MONTHS_BETWEEN_SWITCHES: u32 = 3;

pub fn stream_id(customer_id: &str) -> String {
    format!("customer-{customer_id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssociationType {
    /// 代售.
    Resale,
    /// 推荐.
    Referral,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    pub partner_id: String,
    pub association_type: AssociationType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum CustomerEvent {
    CustomerAssociated {
        customer_id: String,
        partner_id: String,
        association_type: AssociationType,
        effective_at: DateTime<Utc>,
    },
    AssociationTypeSwitched {
        customer_id: String,
        partner_id: String,
        from: AssociationType,
        to: AssociationType,
        effective_at: DateTime<Utc>,
    },
    AssociationEnded {
        customer_id: String,
        partner_id: String,
        effective_at: DateTime<Utc>,
    },
}

impl EventFamily for CustomerEvent {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerCommand {
    /// The application layer checks that `partner_id` is a registered partner.
    Associate {
        customer_id: String,
        partner_id: String,
        association_type: AssociationType,
        effective_at: Option<DateTime<Utc>>,
    },
    /// `partner_id` is the partner acting (its own customer only).
    SwitchType {
        partner_id: String,
        association_type: AssociationType,
        effective_at: Option<DateTime<Utc>>,
    },
    EndAssociation {
        partner_id: String,
        effective_at: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationChange {
    pub effective_at: DateTime<Utc>,
    /// `None` from an end on.
    pub association: Option<Association>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerState {
    pub customer_id: Option<String>,
    /// In effective-time order.
    pub timeline: Vec<AssociationChange>,
    /// When each partner last switched or ended its association with this customer.
    pub last_switch: Vec<(String, DateTime<Utc>)>,
}

impl CustomerState {
    /// The association in force at `t` (a change takes effect at its effective time).
    pub fn association_at(&self, t: DateTime<Utc>) -> Option<&Association> {
        self.timeline.iter().take_while(|c| c.effective_at <= t).last()?.association.as_ref()
    }

    /// The association after the last change, whenever it takes effect.
    pub fn latest(&self) -> Option<&Association> {
        self.timeline.last()?.association.as_ref()
    }

    /// §2: the line's partner is the customer's partner at `consumed_at`; a line for a
    /// customer with no association then is refused.
    pub fn partner_for_consumption(
        &self,
        customer_id: &str,
        consumed_at: DateTime<Utc>,
    ) -> Result<String, DomainError> {
        self.association_at(consumed_at)
            .map(|a| a.partner_id.clone())
            .ok_or_else(|| DomainError::NoAssociation { customer_id: customer_id.to_string() })
    }

    fn last_switch_by(&self, partner_id: &str) -> Option<DateTime<Utc>> {
        self.last_switch.iter().find(|(p, _)| p == partner_id).map(|(_, t)| *t)
    }
}

/// "3 months" read as 3 calendar months in China Standard Time: a switch at 2026-01-31
/// 10:00 CST allows the next from 2026-04-30 10:00 CST on (the day is clamped to the end
/// of a shorter month), not after a fixed 90 days.
pub fn next_switch_allowed_from(previous: DateTime<Utc>) -> DateTime<Utc> {
    let local = previous.with_timezone(&CST).naive_local();
    let later = local.checked_add_months(Months::new(MIN_MONTHS_BETWEEN_SWITCHES)).expect("within chrono's range");
    CST.from_local_datetime(&later).single().expect("a fixed offset has no gaps").with_timezone(&Utc)
}

pub struct Customer;

impl Decider for Customer {
    type State = CustomerState;
    type Command = CustomerCommand;
    type Event = CustomerEvent;

    fn decide(
        state: &CustomerState,
        command: CustomerCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<CustomerEvent>, DomainError> {
        match command {
            CustomerCommand::Associate { customer_id, partner_id, association_type, effective_at } => {
                validate_id("customer_id", &customer_id)?;
                validate_id("partner_id", &partner_id)?;
                if let Some(existing) = &state.customer_id {
                    if *existing != customer_id {
                        return Err(DomainError::InvalidState(format!("this stream belongs to customer {existing}")));
                    }
                }
                if let Some(current) = state.latest() {
                    return Err(DomainError::InvalidState(format!(
                        "customer {customer_id} is associated with partner {}; end that association first",
                        current.partner_id
                    )));
                }
                let first = state.timeline.is_empty();
                let effective_at = effective_at.unwrap_or(now);
                check_forward(state, effective_at, now, first)?;
                Ok(vec![CustomerEvent::CustomerAssociated { customer_id, partner_id, association_type, effective_at }])
            }
            CustomerCommand::SwitchType { partner_id, association_type, effective_at } => {
                let (customer_id, current) = current_of(state, &partner_id)?;
                if current.association_type == association_type {
                    return Err(DomainError::InvalidState(format!(
                        "customer {customer_id} is already a {association_type:?} customer"
                    )));
                }
                let effective_at = effective_at.unwrap_or(now);
                check_forward(state, effective_at, now, false)?;
                check_frequency(state, &customer_id, &partner_id, effective_at)?;
                Ok(vec![CustomerEvent::AssociationTypeSwitched {
                    customer_id,
                    partner_id,
                    from: current.association_type,
                    to: association_type,
                    effective_at,
                }])
            }
            CustomerCommand::EndAssociation { partner_id, effective_at } => {
                let (customer_id, _) = current_of(state, &partner_id)?;
                let effective_at = effective_at.unwrap_or(now);
                check_forward(state, effective_at, now, false)?;
                check_frequency(state, &customer_id, &partner_id, effective_at)?;
                Ok(vec![CustomerEvent::AssociationEnded { customer_id, partner_id, effective_at }])
            }
        }
    }

    fn evolve(mut state: CustomerState, event: &CustomerEvent) -> CustomerState {
        fn remember_switch(state: &mut CustomerState, partner_id: &str, at: DateTime<Utc>) {
            state.last_switch.retain(|(p, _)| p != partner_id);
            state.last_switch.push((partner_id.to_string(), at));
        }
        match event {
            CustomerEvent::CustomerAssociated { customer_id, partner_id, association_type, effective_at } => {
                state.customer_id = Some(customer_id.clone());
                state.timeline.push(AssociationChange {
                    effective_at: *effective_at,
                    association: Some(Association {
                        partner_id: partner_id.clone(),
                        association_type: *association_type,
                    }),
                });
            }
            CustomerEvent::AssociationTypeSwitched { partner_id, to, effective_at, .. } => {
                state.timeline.push(AssociationChange {
                    effective_at: *effective_at,
                    association: Some(Association { partner_id: partner_id.clone(), association_type: *to }),
                });
                remember_switch(&mut state, partner_id, *effective_at);
            }
            CustomerEvent::AssociationEnded { partner_id, effective_at, .. } => {
                state.timeline.push(AssociationChange { effective_at: *effective_at, association: None });
                remember_switch(&mut state, partner_id, *effective_at);
            }
        }
        state
    }
}

/// The customer's current association, which must be `partner_id`'s.
fn current_of<'a>(state: &'a CustomerState, partner_id: &str) -> Result<(String, &'a Association), DomainError> {
    validate_id("partner_id", partner_id)?;
    let customer_id = state.customer_id.clone().ok_or(DomainError::NotFound { what: "customer", id: String::new() })?;
    let current = state.latest().ok_or_else(|| DomainError::NoAssociation { customer_id: customer_id.clone() })?;
    if current.partner_id != partner_id {
        return Err(DomainError::NotYourCustomer { customer_id });
    }
    Ok((customer_id, current))
}

fn check_forward(
    state: &CustomerState,
    effective_at: DateTime<Utc>,
    now: DateTime<Utc>,
    first: bool,
) -> Result<(), DomainError> {
    if let Some(last) = state.timeline.last() {
        if effective_at <= last.effective_at {
            return Err(invalid_effective_at(format!("must be after the previous change at {}", last.effective_at)));
        }
    }
    if !first && effective_at < now {
        return Err(invalid_effective_at("a change may not take effect in the past".to_string()));
    }
    Ok(())
}

fn check_frequency(
    state: &CustomerState,
    customer_id: &str,
    partner_id: &str,
    effective_at: DateTime<Utc>,
) -> Result<(), DomainError> {
    match state.last_switch_by(partner_id) {
        Some(previous) if effective_at < next_switch_allowed_from(previous) => {
            Err(DomainError::SwitchTooFrequent { customer_id: customer_id.to_string() })
        }
        _ => Ok(()),
    }
}

fn invalid_effective_at(reason: String) -> DomainError {
    DomainError::Invalid(ledger_core::CoreError::InvalidField { field: "effective_at", reason })
}

/// One example of every event, for the JSON Schema catalogue.
pub fn examples() -> Vec<CustomerEvent> {
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("a valid timestamp") };
    vec![
        CustomerEvent::CustomerAssociated {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            association_type: AssociationType::Resale,
            effective_at: at("2026-01-05T02:00:00Z"),
        },
        CustomerEvent::AssociationTypeSwitched {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            from: AssociationType::Resale,
            to: AssociationType::Referral,
            effective_at: at("2026-05-01T00:00:00Z"),
        },
        CustomerEvent::AssociationEnded {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            effective_at: at("2026-09-01T00:00:00Z"),
        },
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decider::harness::given;
    use crate::partner::tests::t;

    pub fn associated(customer: &str, partner: &str, ty: AssociationType, at: &str) -> CustomerEvent {
        CustomerEvent::CustomerAssociated {
            customer_id: customer.into(),
            partner_id: partner.into(),
            association_type: ty,
            effective_at: t(at),
        }
    }

    fn switched(to: AssociationType, at: &str) -> CustomerEvent {
        let from = if to == AssociationType::Resale { AssociationType::Referral } else { AssociationType::Resale };
        CustomerEvent::AssociationTypeSwitched {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            from,
            to,
            effective_at: t(at),
        }
    }

    fn switch(partner: &str, to: AssociationType) -> CustomerCommand {
        CustomerCommand::SwitchType { partner_id: partner.into(), association_type: to, effective_at: None }
    }

    const JAN: &str = "2026-01-10T02:00:00Z";

    #[test]
    fn a_customer_is_associated_to_one_partner() {
        given::<Customer>([])
            .at(t(JAN))
            .when(CustomerCommand::Associate {
                customer_id: "C1".into(),
                partner_id: "P1".into(),
                association_type: AssociationType::Resale,
                effective_at: None,
            })
            .then([associated("C1", "P1", AssociationType::Resale, JAN)]);
        given::<Customer>([associated("C1", "P1", AssociationType::Resale, JAN)])
            .at(t("2026-02-01T00:00:00Z"))
            .when(CustomerCommand::Associate {
                customer_id: "C1".into(),
                partner_id: "P2".into(),
                association_type: AssociationType::Resale,
                effective_at: None,
            })
            .then_error("INVALID_STATE");
        given::<Customer>([])
            .when(CustomerCommand::Associate {
                customer_id: "C/1".into(),
                partner_id: "P1".into(),
                association_type: AssociationType::Resale,
                effective_at: None,
            })
            .then_error("INVALID_FIELD");
    }

    #[test]
    fn the_type_in_force_is_the_one_at_the_time_asked() {
        let state = Customer::replay(&[
            associated("C1", "P1", AssociationType::Resale, JAN),
            switched(AssociationType::Referral, "2026-05-01T00:00:00Z"),
        ]);
        assert_eq!(state.association_at(t("2026-01-10T01:59:59Z")), None);
        assert_eq!(state.association_at(t(JAN)).unwrap().association_type, AssociationType::Resale);
        assert_eq!(state.association_at(t("2026-04-30T23:59:59Z")).unwrap().association_type, AssociationType::Resale);
        assert_eq!(
            state.association_at(t("2026-05-01T00:00:00Z")).unwrap().association_type,
            AssociationType::Referral
        );
    }

    #[test]
    fn a_line_for_a_customer_with_no_association_is_refused() {
        let state = Customer::replay(&[associated("C1", "P1", AssociationType::Resale, JAN)]);
        assert_eq!(state.partner_for_consumption("C1", t("2026-03-01T00:00:00Z")), Ok("P1".to_string()));
        let err = state.partner_for_consumption("C1", t("2026-01-01T00:00:00Z")).unwrap_err();
        assert_eq!(err.code(), "NO_ASSOCIATION");
        let ended = Customer::replay(&[
            associated("C1", "P1", AssociationType::Resale, JAN),
            CustomerEvent::AssociationEnded {
                customer_id: "C1".into(),
                partner_id: "P1".into(),
                effective_at: t("2026-02-01T00:00:00Z"),
            },
        ]);
        assert_eq!(
            ended.partner_for_consumption("C1", t("2026-02-02T00:00:00Z")).unwrap_err().code(),
            "NO_ASSOCIATION"
        );
        assert_eq!(ended.partner_for_consumption("C1", t("2026-01-31T00:00:00Z")), Ok("P1".to_string()));
    }

    #[test]
    fn the_first_switch_is_allowed_and_records_both_types() {
        given::<Customer>([associated("C1", "P1", AssociationType::Resale, JAN)])
            .at(t("2026-01-11T00:00:00Z"))
            .when(switch("P1", AssociationType::Referral))
            .then([switched(AssociationType::Referral, "2026-01-11T00:00:00Z")]);
    }

    #[test]
    fn a_second_switch_within_three_calendar_months_is_too_frequent() {
        // Switched 2026-01-31 10:00 CST; the next is allowed from 2026-04-30 10:00 CST.
        let history = [
            associated("C1", "P1", AssociationType::Resale, JAN),
            switched(AssociationType::Referral, "2026-01-31T02:00:00Z"),
        ];
        given::<Customer>(history.clone())
            .at(t("2026-04-30T01:59:59Z"))
            .when(switch("P1", AssociationType::Resale))
            .then_error("SWITCH_TOO_FREQUENT");
        given::<Customer>(history.clone())
            .at(t("2026-04-30T02:00:00Z"))
            .when(switch("P1", AssociationType::Resale))
            .then([switched(AssociationType::Resale, "2026-04-30T02:00:00Z")]);
        // Ending counts as a switch too.
        given::<Customer>(history)
            .at(t("2026-03-01T00:00:00Z"))
            .when(CustomerCommand::EndAssociation { partner_id: "P1".into(), effective_at: None })
            .then_error("SWITCH_TOO_FREQUENT");
    }

    #[test]
    fn three_months_are_calendar_months_in_china_standard_time() {
        // 2026-11-30 20:00 UTC is 2026-12-01 04:00 CST: three months on is 2027-03-01 04:00 CST.
        assert_eq!(next_switch_allowed_from(t("2026-11-30T20:00:00Z")), t("2027-02-28T20:00:00Z"));
        // Clamped to the end of a shorter month.
        assert_eq!(next_switch_allowed_from(t("2026-11-30T04:00:00Z")), t("2027-02-28T04:00:00Z"));
    }

    #[test]
    fn only_the_associated_partner_may_switch_or_end() {
        given::<Customer>([associated("C1", "P1", AssociationType::Resale, JAN)])
            .at(t("2026-02-01T00:00:00Z"))
            .when(switch("P2", AssociationType::Referral))
            .then_error("NOT_YOUR_CUSTOMER");
        given::<Customer>([]).when(switch("P1", AssociationType::Referral)).then_error("NOT_FOUND");
        given::<Customer>([associated("C1", "P1", AssociationType::Resale, JAN)])
            .at(t("2026-02-01T00:00:00Z"))
            .when(switch("P1", AssociationType::Resale))
            .then_error("INVALID_STATE");
    }

    #[test]
    fn after_an_end_there_is_nothing_to_switch_and_another_partner_may_associate() {
        let history = [
            associated("C1", "P1", AssociationType::Resale, JAN),
            CustomerEvent::AssociationEnded {
                customer_id: "C1".into(),
                partner_id: "P1".into(),
                effective_at: t("2026-02-01T00:00:00Z"),
            },
        ];
        given::<Customer>(history.clone())
            .at(t("2026-09-01T00:00:00Z"))
            .when(switch("P1", AssociationType::Referral))
            .then_error("NO_ASSOCIATION");
        given::<Customer>(history)
            .at(t("2026-02-02T00:00:00Z"))
            .when(CustomerCommand::Associate {
                customer_id: "C1".into(),
                partner_id: "P2".into(),
                association_type: AssociationType::Referral,
                effective_at: None,
            })
            .then([associated("C1", "P2", AssociationType::Referral, "2026-02-02T00:00:00Z")]);
    }

    #[test]
    fn changes_only_move_forward_in_time() {
        let history = [associated("C1", "P1", AssociationType::Resale, JAN)];
        given::<Customer>(history.clone())
            .at(t("2026-03-01T00:00:00Z"))
            .when(CustomerCommand::SwitchType {
                partner_id: "P1".into(),
                association_type: AssociationType::Referral,
                effective_at: Some(t("2026-02-01T00:00:00Z")),
            })
            .then_error("INVALID_FIELD");
        given::<Customer>(history)
            .at(t("2026-03-01T00:00:00Z"))
            .when(CustomerCommand::SwitchType {
                partner_id: "P1".into(),
                association_type: AssociationType::Referral,
                effective_at: Some(t("2026-01-01T00:00:00Z")),
            })
            .then_error("INVALID_FIELD");
        // The first association may be back-dated (consumption from before it was entered).
        given::<Customer>([])
            .at(t("2026-03-01T00:00:00Z"))
            .when(CustomerCommand::Associate {
                customer_id: "C1".into(),
                partner_id: "P1".into(),
                association_type: AssociationType::Resale,
                effective_at: Some(t(JAN)),
            })
            .then([associated("C1", "P1", AssociationType::Resale, JAN)]);
    }
}
