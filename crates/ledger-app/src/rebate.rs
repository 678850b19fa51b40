//! Rebate credits and withdrawals (docs/DOMAIN.md §6).

use ledger_core::{Currency, Money};
use ledger_domain::partner::BankAccount;
use ledger_domain::rebate::{self, CreditRebate, Rebate, RebateCommand, RebateEvent, RebateState, RequestWithdrawal};

use crate::{AppError, CommandContext, Ledger, Outcome};

impl Ledger {
    pub async fn rebate(&self, partner_id: &str) -> Result<std::sync::Arc<RebateState>, AppError> {
        Ok(self.exec.load_shared::<Rebate>(&rebate::stream_id(partner_id)).await?.0)
    }

    /// Credits a quarterly payment paid by `cloud_account_credit`; a repeat of the same
    /// payment is a no-op.
    pub async fn credit_rebate(
        &self,
        ctx: &CommandContext,
        command: CreditRebate,
    ) -> Result<Outcome<RebateEvent>, AppError> {
        let stream = rebate::stream_id(&command.partner_id);
        // Its own step of the process: the request id of the payment call must not replay it.
        let ctx = CommandContext { idempotency: None, ..ctx.clone() };
        self.exec.execute::<Rebate>(&stream, RebateCommand::CreditRebate(command), &ctx).await
    }

    /// The global position of the credit of `source_id`, once stored.
    pub(crate) async fn credit_position(&self, partner_id: &str, source_id: &str) -> Result<Option<u64>, AppError> {
        let stream = rebate::stream_id(partner_id);
        let mut from = 1;
        loop {
            let batch = self.exec.store().read_stream(&stream, from, ledger_store::MAX_READ_BATCH).await?;
            let Some(last) = batch.last().map(|e| e.version) else { return Ok(None) };
            for e in &batch {
                if let Ok(RebateEvent::RebateCredited { source_id: s, .. }) =
                    ledger_domain::decode::<RebateEvent>(&e.event_type, e.schema_version, &e.data)
                {
                    if s == source_id {
                        return Ok(Some(e.position));
                    }
                }
            }
            from = last + 1;
        }
    }

    pub async fn withdrawable(&self, partner_id: &str, currency: Currency) -> Result<Money, AppError> {
        let state = self.rebate(partner_id).await?;
        Ok(rebate::withdrawable(&state, currency))
    }

    pub async fn request_withdrawal(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        amount: Money,
        bank_account: BankAccount,
    ) -> Result<(String, Outcome<RebateEvent>), AppError> {
        let legal_name = self.partner(partner_id).await?.legal_name().map(str::to_string);
        let withdrawal_id = format!("W-{}", uuid::Uuid::now_v7().simple());
        let command = RebateCommand::RequestWithdrawal(RequestWithdrawal {
            partner_id: partner_id.to_string(),
            withdrawal_id: withdrawal_id.clone(),
            amount,
            bank_account,
            legal_name,
        });
        let outcome = self.exec.execute::<Rebate>(&rebate::stream_id(partner_id), command, ctx).await?;
        let withdrawal_id = self.created_id(&outcome, "withdrawal_id").await?.unwrap_or(withdrawal_id);
        Ok((withdrawal_id, outcome))
    }

    /// An operator's step on a withdrawal (approve with [`Ledger::calendar`], reject, paid,
    /// failed), built by the caller.
    pub async fn withdrawal_step(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        command: RebateCommand,
    ) -> Result<Outcome<RebateEvent>, AppError> {
        self.exec.execute::<Rebate>(&rebate::stream_id(partner_id), command, ctx).await
    }
}
