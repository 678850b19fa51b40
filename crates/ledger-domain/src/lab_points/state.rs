//! A partner's lab point applications and granted balance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{LabPointsEvent, UNIT};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    Pending,
    Granted,
    Rejected,
}

/// One application as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabPointsApplication {
    pub application_id: String,
    pub partner_id: String,
    pub points: u32,
    pub status: ApplicationStatus,
    /// The operator's latest comment.
    pub comment: Option<String>,
}

/// The granted points of a partner, in their own unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabPointsBalance {
    pub partner_id: String,
    pub unit: &'static str,
    pub points: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabPointsState {
    pub partner_id: Option<String>,
    pub applications: BTreeMap<String, LabPointsApplication>,
    /// Sum of granted points.
    pub granted: u64,
}

impl LabPointsState {
    pub fn application(&self, application_id: &str) -> Option<&LabPointsApplication> {
        self.applications.get(application_id)
    }
}

pub fn balance(state: &LabPointsState) -> LabPointsBalance {
    LabPointsBalance { partner_id: state.partner_id.clone().unwrap_or_default(), unit: UNIT, points: state.granted }
}

pub(super) fn evolve(mut state: LabPointsState, event: &LabPointsEvent) -> LabPointsState {
    if state.partner_id.is_none() {
        state.partner_id = Some(event.partner_id().to_string());
    }
    match event {
        LabPointsEvent::LabPointsApplied { partner_id, application_id, points, .. } => {
            state.applications.insert(
                application_id.clone(),
                LabPointsApplication {
                    application_id: application_id.clone(),
                    partner_id: partner_id.clone(),
                    points: *points,
                    status: ApplicationStatus::Pending,
                    comment: None,
                },
            );
        }
        LabPointsEvent::LabPointsGranted { application_id, points, comment, .. } => {
            state.granted = state.granted.saturating_add(u64::from(*points));
            // decide acts only on an application it holds, so a stored decision names a known one.
            debug_assert!(state.applications.contains_key(application_id), "unknown application {application_id}");
            if let Some(a) = state.applications.get_mut(application_id) {
                a.status = ApplicationStatus::Granted;
                a.comment = comment.clone();
            }
        }
        LabPointsEvent::LabPointsRejected { application_id, comment, .. } => {
            // decide acts only on an application it holds, so a stored decision names a known one.
            debug_assert!(state.applications.contains_key(application_id), "unknown application {application_id}");
            if let Some(a) = state.applications.get_mut(application_id) {
                a.status = ApplicationStatus::Rejected;
                a.comment = comment.clone();
            }
        }
        LabPointsEvent::LabPointsResubmitted { application_id, points, .. } => {
            // decide acts only on an application it holds, so a stored decision names a known one.
            debug_assert!(state.applications.contains_key(application_id), "unknown application {application_id}");
            if let Some(a) = state.applications.get_mut(application_id) {
                a.status = ApplicationStatus::Pending;
                a.points = *points;
            }
        }
    }
    state
}
