//! The partner as its events leave it.

use super::{BusinessInfo, PartnerEvent, PartnerKind, PartnerLevel};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerProfile {
    pub partner_id: String,
    pub name: String,
    pub kind: PartnerKind,
    pub parent_id: Option<String>,
    pub level: PartnerLevel,
    pub legal_name: Option<String>,
    pub business_info: Option<BusinessInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerState {
    pub profile: Option<PartnerProfile>,
}

impl PartnerState {
    /// The real-name-authenticated name (§1, §6), once certified.
    pub fn legal_name(&self) -> Option<&str> {
        self.profile.as_ref()?.legal_name.as_deref()
    }

    pub fn business_info(&self) -> Option<&BusinessInfo> {
        self.profile.as_ref()?.business_info.as_ref()
    }
}

pub(super) fn evolve(mut state: PartnerState, event: &PartnerEvent) -> PartnerState {
    // A stream starts with its registration (decide refuses anything before it), so every
    // later fact finds the profile it changes.
    debug_assert!(
        state.profile.is_some() || matches!(event, PartnerEvent::PartnerRegistered { .. }),
        "partner event before its registration: {event:?}"
    );
    match event {
        PartnerEvent::PartnerRegistered { partner_id, name, kind, parent_id, level, .. } => {
            state.profile = Some(PartnerProfile {
                partner_id: partner_id.clone(),
                name: name.clone(),
                kind: *kind,
                parent_id: parent_id.clone(),
                level: *level,
                legal_name: None,
                business_info: None,
            });
        }
        PartnerEvent::RealNameCertified { legal_name, .. } => {
            if let Some(p) = &mut state.profile {
                p.legal_name = Some(legal_name.clone());
            }
        }
        PartnerEvent::BusinessInfoCertified { bank_account, tax_id, .. } => {
            if let Some(p) = &mut state.profile {
                p.business_info = Some(BusinessInfo { bank_account: bank_account.clone(), tax_id: tax_id.clone() });
            }
        }
        PartnerEvent::PartnerLevelChanged { to, .. } => {
            if let Some(p) = &mut state.profile {
                p.level = *to;
            }
        }
    }
    state
}
