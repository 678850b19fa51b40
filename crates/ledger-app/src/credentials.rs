//! Credentials go through the executor like every other write: an issue or a revocation is
//! decided against every credential, keyed by the request's `X-Request-Id`, and a partner
//! credential is issued only for a partner that exists.

use ledger_domain::credential::{self, CredentialBook, CredentialCommand, CredentialEvent, Credentials};
use ledger_domain::credential::{IssueCredential, RevokeCredential};

use crate::{AppError, CommandContext, Ledger, Outcome};

impl Ledger {
    pub async fn issue_credential(
        &self,
        ctx: &CommandContext,
        command: IssueCredential,
    ) -> Result<Outcome<CredentialEvent>, AppError> {
        if let Some(partner_id) = &command.partner_id {
            ledger_core::ids::validate_id("partner_id", partner_id)?;
            self.partner(partner_id).await?;
        }
        self.exec.execute::<Credentials>(credential::STREAM, CredentialCommand::Issue(command), ctx).await
    }

    pub async fn revoke_credential(
        &self,
        ctx: &CommandContext,
        credential_id: &str,
    ) -> Result<Outcome<CredentialEvent>, AppError> {
        let command = CredentialCommand::Revoke(RevokeCredential { credential_id: credential_id.to_string() });
        self.exec.execute::<Credentials>(credential::STREAM, command, ctx).await
    }

    /// Every credential issued, revoked ones included.
    pub async fn credentials(&self) -> Result<CredentialBook, AppError> {
        Ok(self.exec.load::<Credentials>(credential::STREAM).await?.0)
    }
}
