//! Partners, customers and policies: the reference facts other commands look up.

use ledger_core::Currency;
use ledger_domain::customer::{
    self, AssociateCustomer, AssociationType, Customer, CustomerCommand, CustomerEvent, CustomerState, EndAssociation,
    SwitchAssociationType,
};
use ledger_domain::funds::{self, Funds, FundsCommand, FundsEvent, UnbindReclaim};
use ledger_domain::partner::{self, Partner, PartnerCommand, PartnerEvent, PartnerState, RegisterPartner};
use ledger_domain::policy::{self, Policies, PolicyBook, PolicyCommand, PolicyEvent, PublishPolicy};
use ledger_domain::DomainError;

use crate::{AppError, CommandContext, Ledger, Outcome};

/// What ending an association did: the end, and the unbind reclaim records it caused.
#[derive(Debug, Clone)]
pub struct EndedAssociation {
    pub ended: Outcome<CustomerEvent>,
    pub reclaimed: Vec<ledger_domain::funds::AdjustmentRecord>,
    /// The position a read must wait for to see both.
    pub position: Option<u64>,
}

impl Ledger {
    /// A registered partner's state, `NOT_FOUND` otherwise.
    pub async fn partner(&self, partner_id: &str) -> Result<PartnerState, AppError> {
        let (state, _) = self.exec.load::<Partner>(&partner::stream_id(partner_id)).await?;
        if state.profile.is_none() {
            return Err(DomainError::NotFound { what: "partner", id: partner_id.to_string() }.into());
        }
        Ok(state)
    }

    /// Registers a partner; `parent_kind` is looked up here (whatever the caller set).
    pub async fn register_partner(
        &self,
        ctx: &CommandContext,
        mut command: RegisterPartner,
    ) -> Result<Outcome<PartnerEvent>, AppError> {
        ledger_core::ids::validate_id("partner_id", &command.partner_id)?;
        command.parent_kind = match &command.parent_id {
            Some(parent) => {
                ledger_core::ids::validate_id("parent_id", parent)?;
                let (p, _) = self.exec.load::<Partner>(&partner::stream_id(parent)).await?;
                p.profile.map(|p| p.kind)
            }
            None => None,
        };
        let stream = partner::stream_id(&command.partner_id);
        self.exec.execute::<Partner>(&stream, PartnerCommand::RegisterPartner(command), ctx).await
    }

    /// Certifications and level changes of an existing partner.
    pub async fn change_partner(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        command: PartnerCommand,
    ) -> Result<Outcome<PartnerEvent>, AppError> {
        ledger_core::ids::validate_id("partner_id", partner_id)?;
        self.partner(partner_id).await?;
        self.exec.execute::<Partner>(&partner::stream_id(partner_id), command, ctx).await
    }

    pub async fn customer(&self, customer_id: &str) -> Result<CustomerState, AppError> {
        ledger_core::ids::validate_id("customer_id", customer_id)?;
        let (state, _) = self.exec.load::<Customer>(&customer::stream_id(customer_id)).await?;
        if state.customer_id.is_none() {
            return Err(DomainError::NotFound { what: "customer", id: customer_id.to_string() }.into());
        }
        Ok(state)
    }

    /// The customer's association in force at `t`; `None` for a customer with none then
    /// or an unknown customer (the rules say which refusal that is).
    pub async fn association_at(
        &self,
        customer_id: &str,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<ledger_domain::customer::Association>, AppError> {
        ledger_core::ids::validate_id("customer_id", customer_id)?;
        let (state, _) = self.exec.load_shared::<Customer>(&customer::stream_id(customer_id)).await?;
        Ok(state.association_at(t).cloned())
    }

    pub async fn associate_customer(
        &self,
        ctx: &CommandContext,
        customer_id: String,
        partner_id: String,
        association_type: AssociationType,
    ) -> Result<Outcome<CustomerEvent>, AppError> {
        self.associate_customer_from(ctx, customer_id, partner_id, association_type, None).await
    }

    /// Like [`Ledger::associate_customer`], in force from `effective_at` (default now). Only
    /// a customer's first association may be back-dated, so that billing can bring the
    /// consumption of months before the customer was entered here (the domain checks it).
    pub async fn associate_customer_from(
        &self,
        ctx: &CommandContext,
        customer_id: String,
        partner_id: String,
        association_type: AssociationType,
        effective_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Outcome<CustomerEvent>, AppError> {
        ledger_core::ids::validate_id("customer_id", &customer_id)?;
        ledger_core::ids::validate_id("partner_id", &partner_id)?;
        self.partner(&partner_id).await?;
        let stream = customer::stream_id(&customer_id);
        let command = CustomerCommand::AssociateCustomer(AssociateCustomer {
            customer_id,
            partner_id,
            association_type,
            effective_at,
        });
        self.exec.execute::<Customer>(&stream, command, ctx).await
    }

    /// A switch of the association type by the customer's partner (or by the operator on
    /// its behalf: `acting_partner` is then the customer's current partner).
    pub async fn switch_association_type(
        &self,
        ctx: &CommandContext,
        customer_id: &str,
        acting_partner: Option<&str>,
        association_type: AssociationType,
        effective_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Outcome<CustomerEvent>, AppError> {
        let partner_id = self.current_partner(customer_id, acting_partner).await?;
        let command = CustomerCommand::SwitchAssociationType(SwitchAssociationType {
            partner_id,
            association_type,
            effective_at,
        });
        self.exec.execute::<Customer>(&customer::stream_id(customer_id), command, ctx).await
    }

    /// Ends the customer's association (docs/DOMAIN.md: a partner may switch or end it, at most
    /// once in 3 months), by its partner or by the operator on its behalf, and returns what
    /// the customer holds unspent from allocations to its allocators (§3 "Unbind reclaim").
    ///
    /// The end is appended to the customer's stream and the unbind reclaim to the fund
    /// tree's: two streams, so two appends (the store appends to one stream at a time).
    /// The reclaim is named by the end's position, so it runs once; a retry of the request
    /// (its replay) completes it when the first call stopped in between.
    pub async fn end_association(
        &self,
        ctx: &CommandContext,
        customer_id: &str,
        acting_partner: Option<&str>,
        effective_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<EndedAssociation, AppError> {
        let partner_id = match self.exec.replay::<CustomerEvent>(ctx).await? {
            // A replay acts for the partner the first call ended; its association is gone.
            Some(_) => self.ended_partner(customer_id).await?,
            None => self.current_partner(customer_id, acting_partner).await?,
        };
        let command = CustomerCommand::EndAssociation(EndAssociation { partner_id: partner_id.clone(), effective_at });
        let ended = self.exec.execute::<Customer>(&customer::stream_id(customer_id), command, ctx).await?;
        let (reclaimed, reclaim_position) = match ended.position() {
            Some(end_position) => self.unbind_reclaim(ctx, customer_id, &partner_id, end_position).await?,
            None => (vec![], None),
        };
        let position = ended.position().max(reclaim_position);
        Ok(EndedAssociation { ended, reclaimed, position })
    }

    /// The partner whose association with the customer ended last.
    async fn ended_partner(&self, customer_id: &str) -> Result<String, AppError> {
        let state = self.customer(customer_id).await?;
        let timeline = &state.timeline;
        timeline
            .iter()
            .rposition(|c| c.association.is_none())
            .and_then(|end| end.checked_sub(1))
            .and_then(|before| timeline[before].association.as_ref())
            .map(|a| a.partner_id.clone())
            .ok_or_else(|| DomainError::NoAssociation { customer_id: customer_id.to_string() }.into())
    }

    /// §3 "Unbind reclaim" in the fund tree of `partner_id`, named by the end's position.
    /// It runs when the end is recorded, whatever its effective time (in the same request
    /// as the end). Skipped when the customer is associated again (a retry long after the
    /// end must not take back what was allocated since; the allocators may still reclaim
    /// by hand).
    async fn unbind_reclaim(
        &self,
        ctx: &CommandContext,
        customer_id: &str,
        partner_id: &str,
        end_position: u64,
    ) -> Result<(Vec<ledger_domain::funds::AdjustmentRecord>, Option<u64>), AppError> {
        let Some(distributor_id) = self.fund_tree_of(partner_id).await? else { return Ok((vec![], None)) };
        if self.customer(customer_id).await?.latest().is_some() {
            return Ok((vec![], None));
        }
        let command = FundsCommand::UnbindReclaim(UnbindReclaim {
            distributor_id: distributor_id.clone(),
            customer_id: customer_id.to_string(),
            unbind_id: format!("UNB-{end_position}"),
            actor: ctx.meta.actor.principal.clone(),
        });
        // The request's key belongs to the end; this step is idempotent by its unbind id.
        let ctx = CommandContext { idempotency: None, ..ctx.clone() };
        let outcome = self.exec.execute::<Funds>(&funds::stream_id(&distributor_id), command, &ctx).await?;
        let position = outcome.position();
        let records = match outcome {
            Outcome::Stored { events, .. } => events.iter().filter_map(FundsEvent::adjustment_record).collect(),
            _ => vec![],
        };
        Ok((records, position))
    }

    /// The customer's partner now; `NOT_YOUR_CUSTOMER` when `acting_partner` is another.
    async fn current_partner(&self, customer_id: &str, acting_partner: Option<&str>) -> Result<String, AppError> {
        let state = self.customer(customer_id).await?;
        match (acting_partner, state.latest().map(|a| a.partner_id.clone())) {
            (Some(acting), Some(current)) if acting != current => {
                Err(DomainError::NotYourCustomer { customer_id: customer_id.to_string() }.into())
            }
            (_, Some(current)) => Ok(current),
            (_, None) => Err(DomainError::NoAssociation { customer_id: customer_id.to_string() }.into()),
        }
    }

    pub async fn policies(&self, currency: Currency) -> Result<PolicyBook, AppError> {
        Ok(self.exec.load::<Policies>(&policy::stream_id(currency)).await?.0)
    }

    pub async fn publish_policy(
        &self,
        ctx: &CommandContext,
        command: PolicyCommand,
    ) -> Result<Outcome<PolicyEvent>, AppError> {
        let PolicyCommand::PublishPolicy(PublishPolicy { currency, .. }) = &command;
        let stream = policy::stream_id(*currency);
        self.exec.execute::<Policies>(&stream, command, ctx).await
    }
}
