//! Fund pools, allocations and reclaims (docs/DOMAIN.md §3).

use ledger_core::ids::validate_id;
use ledger_core::Money;
use ledger_domain::funds::{
    self, Adjustment, Counterparty, CounterpartyType, CreditFunds, Funds, FundsCommand, FundsEvent, FundsState,
};
use ledger_domain::guard::invalid;
use ledger_domain::partner::PartnerKind;
use ledger_domain::DomainError;

use crate::{AppError, CommandContext, Ledger, Outcome};

/// Allocate or reclaim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustmentDirection {
    Allocate,
    Reclaim,
}

/// An allocation or reclaim as its operator asks it; the fund tree, the record id, the
/// actor and whom the counterparty belongs to are added here.
#[derive(Debug, Clone)]
pub struct Adjust {
    pub direction: AdjustmentDirection,
    /// The distributor or reseller that allocates or reclaims.
    pub operator: String,
    pub counterparty: Counterparty,
    pub amount: Money,
    pub remark: Option<String>,
}

impl Ledger {
    pub async fn funds(&self, distributor_id: &str) -> Result<std::sync::Arc<FundsState>, AppError> {
        Ok(self.exec.load_shared::<Funds>(&funds::stream_id(distributor_id)).await?.0)
    }

    /// The distributor whose fund tree a partner belongs to: itself, or a reseller's parent.
    /// `None` for a solution provider (it has no fund pool).
    pub async fn fund_tree_of(&self, partner_id: &str) -> Result<Option<String>, AppError> {
        let partner = self.partner(partner_id).await?;
        let p = partner.profile.expect("partner() answers registered partners");
        Ok(match p.kind {
            PartnerKind::Distributor => Some(p.partner_id),
            PartnerKind::Reseller => p.parent_id,
            PartnerKind::SolutionProvider => None,
        })
    }

    pub async fn credit_funds(
        &self,
        ctx: &CommandContext,
        distributor_id: &str,
        amount: Money,
    ) -> Result<Outcome<FundsEvent>, AppError> {
        let partner = self.partner(distributor_id).await?;
        if partner.profile.as_ref().map(|p| p.kind) != Some(PartnerKind::Distributor) {
            return Err(invalid("partner_id", "only a distributor holds a fund pool").into());
        }
        let credit_id = format!("FC-{}", uuid::Uuid::now_v7().simple());
        let command =
            FundsCommand::CreditFunds(CreditFunds { distributor_id: distributor_id.to_string(), credit_id, amount });
        self.exec.execute::<Funds>(&funds::stream_id(distributor_id), command, ctx).await
    }

    /// An allocation or reclaim by `operator` (a distributor or a reseller). The rule "its
    /// own customers / its own resellers" is the domain's; here we find the tree and who the
    /// counterparty belongs to now.
    pub async fn adjust(
        &self,
        ctx: &CommandContext,
        command: Adjust,
    ) -> Result<(String, Outcome<FundsEvent>), AppError> {
        let Adjust { direction, operator, counterparty, amount, remark } = command;
        let operator = operator.as_str();
        validate_id("counterparty.id", &counterparty.id)?;
        let Some(distributor_id) = self.fund_tree_of(operator).await? else {
            return Err(invalid("partner_id", "a solution provider has no fund pool to allocate from").into());
        };
        let counterparty_parent = match counterparty.kind {
            CounterpartyType::Customer => self.association_at(&counterparty.id, ctx.now).await?.map(|a| a.partner_id),
            CounterpartyType::Reseller => match self.partner(&counterparty.id).await {
                Ok(p) => p.profile.filter(|p| p.kind == PartnerKind::Reseller).and_then(|p| p.parent_id),
                Err(AppError::Domain(DomainError::NotFound { .. })) => None,
                Err(e) => return Err(e),
            },
        };
        let record_id = format!("ADJ-{}", uuid::Uuid::now_v7().simple());
        let adjustment = Adjustment {
            record_id: record_id.clone(),
            distributor_id: distributor_id.clone(),
            operator_partner_id: operator.to_string(),
            counterparty,
            amount,
            remark,
            actor: ctx.meta.actor.principal.clone(),
            counterparty_parent,
        };
        let command = match direction {
            AdjustmentDirection::Allocate => FundsCommand::Allocate(adjustment),
            AdjustmentDirection::Reclaim => FundsCommand::Reclaim(adjustment),
        };
        let outcome = self.exec.execute::<Funds>(&funds::stream_id(&distributor_id), command, ctx).await?;
        let record_id = self.created_id(&outcome, "record_id").await?.unwrap_or(record_id);
        Ok((record_id, outcome))
    }
}
