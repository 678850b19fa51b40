//! The lab point applications' events.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::EventFamily;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum LabPointsEvent {
    LabPointsApplied {
        partner_id: String,
        application_id: String,
        #[schemars(extend("enum" = [10, 20, 50, 100, 250, 500]))]
        points: u32,
        applied_at: DateTime<Utc>,
    },
    LabPointsGranted {
        partner_id: String,
        application_id: String,
        #[schemars(extend("enum" = [10, 20, 50, 100, 250, 500]))]
        points: u32,
        comment: Option<String>,
        granted_at: DateTime<Utc>,
    },
    LabPointsRejected {
        partner_id: String,
        application_id: String,
        comment: Option<String>,
        rejected_at: DateTime<Utc>,
    },
    /// A rejected application edited and submitted again: pending, for `points`.
    LabPointsResubmitted {
        partner_id: String,
        application_id: String,
        #[schemars(extend("enum" = [10, 20, 50, 100, 250, 500]))]
        points: u32,
        resubmitted_at: DateTime<Utc>,
    },
}

impl EventFamily for LabPointsEvent {}

impl LabPointsEvent {
    pub fn partner_id(&self) -> &str {
        match self {
            LabPointsEvent::LabPointsApplied { partner_id, .. }
            | LabPointsEvent::LabPointsGranted { partner_id, .. }
            | LabPointsEvent::LabPointsRejected { partner_id, .. }
            | LabPointsEvent::LabPointsResubmitted { partner_id, .. } => partner_id,
        }
    }
}

/// One example of every event, for the JSON Schema catalogue.
pub fn examples() -> Vec<LabPointsEvent> {
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("a valid timestamp") };
    vec![
        LabPointsEvent::LabPointsApplied {
            partner_id: "P1".into(),
            application_id: "LP-0001".into(),
            points: 100,
            applied_at: at("2026-03-02T02:00:00Z"),
        },
        LabPointsEvent::LabPointsRejected {
            partner_id: "P1".into(),
            application_id: "LP-0001".into(),
            comment: Some("100 points exceed this quarter's plan; apply for 50".into()),
            rejected_at: at("2026-03-03T02:00:00Z"),
        },
        LabPointsEvent::LabPointsResubmitted {
            partner_id: "P1".into(),
            application_id: "LP-0001".into(),
            points: 50,
            resubmitted_at: at("2026-03-04T02:00:00Z"),
        },
        LabPointsEvent::LabPointsGranted {
            partner_id: "P1".into(),
            application_id: "LP-0001".into(),
            points: 50,
            comment: None,
            granted_at: at("2026-03-05T02:00:00Z"),
        },
    ]
}
