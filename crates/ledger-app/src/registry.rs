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

/// A change of a customer's association type, as its partner asks it (`acting_partner`), or
/// the operator on the partner's behalf (`None`); the partner now is looked up here.
#[derive(Debug, Clone)]
pub struct SwitchCustomerAssociation {
    pub customer_id: String,
    pub acting_partner: Option<String>,
    pub association_type: AssociationType,
    pub effective_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The end of a customer's association, asked as [`SwitchCustomerAssociation`] is.
#[derive(Debug, Clone)]
pub struct EndCustomerAssociation {
    pub customer_id: String,
    pub acting_partner: Option<String>,
    pub effective_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What ending an association did: the end, and the unbind reclaim records it caused.
#[derive(Debug, Clone)]
pub struct EndedAssociation {
    /// Its `appended` spans the end and the reclaim (one append).
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

    /// Associates a customer with a partner, in force from `effective_at` (default now).
    /// Only a customer's first association may be back-dated, so that billing can bring the
    /// consumption of months before the customer was entered here (the domain checks it).
    pub async fn associate_customer(
        &self,
        ctx: &CommandContext,
        command: AssociateCustomer,
    ) -> Result<Outcome<CustomerEvent>, AppError> {
        ledger_core::ids::validate_id("customer_id", &command.customer_id)?;
        ledger_core::ids::validate_id("partner_id", &command.partner_id)?;
        self.partner(&command.partner_id).await?;
        let stream = customer::stream_id(&command.customer_id);
        self.exec.execute::<Customer>(&stream, CustomerCommand::AssociateCustomer(command), ctx).await
    }

    /// A switch of the association type by the customer's partner (or by the operator on
    /// its behalf: `acting_partner` is then the customer's current partner).
    pub async fn switch_association_type(
        &self,
        ctx: &CommandContext,
        command: SwitchCustomerAssociation,
    ) -> Result<Outcome<CustomerEvent>, AppError> {
        let SwitchCustomerAssociation { customer_id, acting_partner, association_type, effective_at } = command;
        let partner_id = self.current_partner(&customer_id, acting_partner.as_deref()).await?;
        let command = CustomerCommand::SwitchAssociationType(SwitchAssociationType {
            partner_id,
            association_type,
            effective_at,
        });
        self.exec.execute::<Customer>(&customer::stream_id(&customer_id), command, ctx).await
    }

    /// Ends the customer's association (docs/DOMAIN.md: a partner may switch or end it, at most
    /// once in 3 months), by its partner or by the operator on its behalf, and returns what
    /// the customer holds unspent from allocations to its allocators (§3 "Unbind reclaim").
    ///
    /// The end (the customer's stream) and the unbind reclaim (the fund tree's stream) are
    /// one append to both streams: both are stored or neither, under the request's id, so
    /// a retry answers both as the first call stored them.
    pub async fn end_association(
        &self,
        ctx: &CommandContext,
        command: EndCustomerAssociation,
    ) -> Result<EndedAssociation, AppError> {
        let EndCustomerAssociation { customer_id, acting_partner, effective_at } = command;
        let stream = customer::stream_id(&customer_id);
        if let Some(replayed) = self.exec.replay::<CustomerEvent>(ctx).await? {
            return self.ended(replayed, vec![]).await;
        }
        let partner_id = self.current_partner(&customer_id, acting_partner.as_deref()).await?;
        let end = CustomerCommand::EndAssociation(EndAssociation { partner_id: partner_id.clone(), effective_at });
        let Some(distributor_id) = self.fund_tree_of(&partner_id).await? else {
            // A solution provider's customer holds no allocations: the end alone.
            return self.ended(self.exec.execute::<Customer>(&stream, end, ctx).await?, vec![]).await;
        };
        let reclaim = FundsCommand::UnbindReclaim(UnbindReclaim {
            distributor_id: distributor_id.clone(),
            customer_id,
            unbind_id: format!("UNB-{}", uuid::Uuid::now_v7().simple()),
            actor: ctx.meta.actor.principal.clone(),
        });
        let tree = funds::stream_id(&distributor_id);
        let (ended, reclaimed) =
            self.exec.execute_two::<Customer, Funds>((&stream, end), (&tree, reclaim), ctx).await?;
        self.ended(ended, reclaimed).await
    }

    /// The answer of an end: for a replay, the reclaim records are read back from the
    /// append the first call stored.
    async fn ended(
        &self,
        ended: Outcome<CustomerEvent>,
        reclaimed: Vec<FundsEvent>,
    ) -> Result<EndedAssociation, AppError> {
        let reclaimed = match &ended {
            Outcome::Replayed { appended } => self.appended_events::<Funds>(appended).await?,
            _ => reclaimed,
        };
        let reclaimed = reclaimed.iter().filter_map(FundsEvent::adjustment_record).collect();
        Ok(EndedAssociation { position: ended.position(), ended, reclaimed })
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
