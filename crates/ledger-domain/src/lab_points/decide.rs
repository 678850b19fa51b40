//! docs/DOMAIN.md §7: denominations, and the application lifecycle.

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;

use super::command::{ApplyForLabPoints, GrantLabPoints, LabPointsCommand, RejectLabPoints, ResubmitLabPoints};
use super::{
    ApplicationStatus, LabPointsApplication, LabPointsEvent, LabPointsState, DENOMINATIONS, MAX_COMMENT_CHARS,
};
use crate::guard::{optional_text, stream_owner};
use crate::DomainError;

pub(super) fn decide(
    state: &LabPointsState,
    command: LabPointsCommand,
    now: DateTime<Utc>,
) -> Result<Vec<LabPointsEvent>, DomainError> {
    match command {
        LabPointsCommand::ApplyForLabPoints(ApplyForLabPoints { partner_id, application_id, points }) => {
            validate_id("partner_id", &partner_id)?;
            validate_id("application_id", &application_id)?;
            check_points(points)?;
            stream_owner("partner_id", state.partner_id.as_ref(), &partner_id)?;
            if state.applications.contains_key(&application_id) {
                return Err(DomainError::AlreadyExists { what: "lab points application", id: application_id });
            }
            Ok(vec![LabPointsEvent::LabPointsApplied { partner_id, application_id, points, applied_at: now }])
        }
        LabPointsCommand::GrantLabPoints(GrantLabPoints { application_id, comment }) => {
            optional_text("comment", &comment, MAX_COMMENT_CHARS)?;
            let a = in_status(state, &application_id, ApplicationStatus::Pending, "granted")?;
            Ok(vec![LabPointsEvent::LabPointsGranted {
                partner_id: a.partner_id.clone(),
                application_id,
                points: a.points,
                comment,
                granted_at: now,
            }])
        }
        LabPointsCommand::RejectLabPoints(RejectLabPoints { application_id, comment }) => {
            optional_text("comment", &comment, MAX_COMMENT_CHARS)?;
            let a = in_status(state, &application_id, ApplicationStatus::Pending, "rejected")?;
            Ok(vec![LabPointsEvent::LabPointsRejected {
                partner_id: a.partner_id.clone(),
                application_id,
                comment,
                rejected_at: now,
            }])
        }
        LabPointsCommand::ResubmitLabPoints(ResubmitLabPoints { application_id, points }) => {
            check_points(points)?;
            let a = in_status(state, &application_id, ApplicationStatus::Rejected, "resubmitted")?;
            Ok(vec![LabPointsEvent::LabPointsResubmitted {
                partner_id: a.partner_id.clone(),
                application_id,
                points,
                resubmitted_at: now,
            }])
        }
    }
}

/// §7: only the seed's denominations.
fn check_points(points: u32) -> Result<(), DomainError> {
    if DENOMINATIONS.contains(&points) {
        Ok(())
    } else {
        Err(DomainError::InvalidLabPoints { points })
    }
}

fn in_status<'a>(
    state: &'a LabPointsState,
    id: &str,
    from: ApplicationStatus,
    to: &str,
) -> Result<&'a LabPointsApplication, DomainError> {
    let a = state
        .applications
        .get(id)
        .ok_or_else(|| DomainError::NotFound { what: "lab points application", id: id.into() })?;
    if a.status != from {
        return Err(DomainError::InvalidState(format!(
            "lab points application {id} is {:?}; only a {:?} one can be {to}",
            a.status, from
        )));
    }
    Ok(a)
}
