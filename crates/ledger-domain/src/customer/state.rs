//! The customer as its events leave it: the association timeline.

use chrono::{DateTime, Utc};

use super::{Association, CustomerEvent};
use crate::DomainError;

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

    pub(super) fn last_switch_by(&self, partner_id: &str) -> Option<DateTime<Utc>> {
        self.last_switch.iter().find(|(p, _)| p == partner_id).map(|(_, t)| *t)
    }
}

pub(super) fn evolve(mut state: CustomerState, event: &CustomerEvent) -> CustomerState {
    fn remember_switch(state: &mut CustomerState, partner_id: &str, at: DateTime<Utc>) {
        state.last_switch.retain(|(p, _)| p != partner_id);
        state.last_switch.push((partner_id.to_string(), at));
    }
    // decide switches or ends only an association it has seen, so a stored switch or end
    // always follows the stream's first association.
    debug_assert!(
        state.customer_id.is_some() || matches!(event, CustomerEvent::CustomerAssociated { .. }),
        "customer event before its association: {event:?}"
    );
    match event {
        CustomerEvent::CustomerAssociated { customer_id, partner_id, association_type, effective_at } => {
            state.customer_id = Some(customer_id.clone());
            state.timeline.push(AssociationChange {
                effective_at: *effective_at,
                association: Some(Association { partner_id: partner_id.clone(), association_type: *association_type }),
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
