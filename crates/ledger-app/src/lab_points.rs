//! Cloud lab points (docs/DOMAIN.md §7).

use ledger_domain::lab_points::{self, ApplyForLabPoints, LabPoints, LabPointsCommand, LabPointsEvent, LabPointsState};

use crate::{AppError, CommandContext, Ledger, Outcome};

impl Ledger {
    pub async fn lab_points(&self, partner_id: &str) -> Result<std::sync::Arc<LabPointsState>, AppError> {
        Ok(self.exec.load_shared::<LabPoints>(&lab_points::stream_id(partner_id)).await?.0)
    }

    pub async fn apply_lab_points(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        points: u32,
    ) -> Result<(String, Outcome<LabPointsEvent>), AppError> {
        self.partner(partner_id).await?;
        let application_id = format!("LP-{}", uuid::Uuid::now_v7().simple());
        let command = LabPointsCommand::ApplyForLabPoints(ApplyForLabPoints {
            partner_id: partner_id.to_string(),
            application_id: application_id.clone(),
            points,
        });
        let outcome = self.exec.execute::<LabPoints>(&lab_points::stream_id(partner_id), command, ctx).await?;
        let application_id = self.created_id(&outcome, "application_id").await?.unwrap_or(application_id);
        Ok((application_id, outcome))
    }

    pub async fn lab_points_step(
        &self,
        ctx: &CommandContext,
        partner_id: &str,
        command: LabPointsCommand,
    ) -> Result<Outcome<LabPointsEvent>, AppError> {
        self.exec.execute::<LabPoints>(&lab_points::stream_id(partner_id), command, ctx).await
    }
}
