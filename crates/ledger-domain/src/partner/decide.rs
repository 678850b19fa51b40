//! The partner's rules: registration, certifications, level changes, and the gate.

use chrono::{DateTime, Utc};
use ledger_core::ids::validate_id;

use super::command::{CertifyBusinessInfo, CertifyRealName, ChangeLevel, PartnerCommand, RegisterPartner};
use super::{PartnerEvent, PartnerKind, PartnerProfile, PartnerState, MAX_ACCOUNT_FIELD_CHARS, MAX_NAME_CHARS};
use crate::guard::{invalid, non_blank};
use crate::DomainError;

pub(super) fn decide(
    state: &PartnerState,
    command: &PartnerCommand,
    now: DateTime<Utc>,
) -> Result<Vec<PartnerEvent>, DomainError> {
    match command {
        PartnerCommand::RegisterPartner(c) => register(state, c, now),
        PartnerCommand::CertifyRealName(c) => certify_real_name(state, c, now),
        PartnerCommand::CertifyBusinessInfo(c) => certify_business_info(state, c, now),
        PartnerCommand::ChangeLevel(c) => change_level(state, c, now),
    }
}

fn register(state: &PartnerState, c: &RegisterPartner, now: DateTime<Utc>) -> Result<Vec<PartnerEvent>, DomainError> {
    let RegisterPartner { partner_id, name, kind, parent_id, parent_kind, level } = c;
    validate_id("partner_id", partner_id)?;
    non_blank("name", name, MAX_NAME_CHARS)?;
    if state.profile.is_some() {
        return Err(DomainError::AlreadyExists { what: "partner", id: partner_id.clone() });
    }
    match (kind, parent_id) {
        (PartnerKind::Reseller, None) => {
            return Err(invalid("parent_id", "a reseller belongs to exactly one distributor"))
        }
        (PartnerKind::Reseller, Some(parent)) => {
            validate_id("parent_id", parent)?;
            if parent == partner_id {
                return Err(invalid("parent_id", "a reseller cannot be its own distributor"));
            }
            match parent_kind {
                None => return Err(DomainError::NotFound { what: "partner", id: parent.clone() }),
                Some(PartnerKind::Distributor) => {}
                Some(_) => return Err(invalid("parent_id", "the parent of a reseller must be a distributor")),
            }
        }
        (_, Some(_)) => return Err(invalid("parent_id", "only a reseller has a parent distributor")),
        (_, None) => {}
    }
    Ok(vec![PartnerEvent::PartnerRegistered {
        partner_id: partner_id.clone(),
        name: name.clone(),
        kind: *kind,
        parent_id: parent_id.clone(),
        level: level.unwrap_or_default(),
        registered_at: now,
    }])
}

fn certify_real_name(
    state: &PartnerState,
    c: &CertifyRealName,
    now: DateTime<Utc>,
) -> Result<Vec<PartnerEvent>, DomainError> {
    let p = registered(state)?;
    non_blank("legal_name", &c.legal_name, MAX_NAME_CHARS)?;
    Ok(vec![PartnerEvent::RealNameCertified {
        partner_id: p.partner_id.clone(),
        legal_name: c.legal_name.clone(),
        certified_at: now,
    }])
}

fn certify_business_info(
    state: &PartnerState,
    c: &CertifyBusinessInfo,
    now: DateTime<Utc>,
) -> Result<Vec<PartnerEvent>, DomainError> {
    let p = registered(state)?;
    c.bank_account.validate()?;
    non_blank("tax_id", &c.tax_id, MAX_ACCOUNT_FIELD_CHARS)?;
    Ok(vec![PartnerEvent::BusinessInfoCertified {
        partner_id: p.partner_id.clone(),
        bank_account: c.bank_account.clone(),
        tax_id: c.tax_id.clone(),
        certified_at: now,
    }])
}

fn change_level(state: &PartnerState, c: &ChangeLevel, now: DateTime<Utc>) -> Result<Vec<PartnerEvent>, DomainError> {
    let p = registered(state)?;
    let level = c.level;
    if p.level == level {
        return Err(DomainError::InvalidState(format!("partner {} is already at level {level:?}", p.partner_id)));
    }
    Ok(vec![PartnerEvent::PartnerLevelChanged {
        partner_id: p.partner_id.clone(),
        from: p.level,
        to: level,
        changed_at: now,
    }])
}

fn registered(state: &PartnerState) -> Result<&PartnerProfile, DomainError> {
    state.profile.as_ref().ok_or_else(|| DomainError::NotFound { what: "partner", id: String::new() })
}

/// §1: both certifications are needed before any incentive application (seed: "两者都完成,
/// 才可以申请激励"). The error says which are missing.
pub fn certification_gate(state: &PartnerState) -> Result<(), DomainError> {
    let Some(p) = &state.profile else {
        return Err(DomainError::NotFound { what: "partner", id: String::new() });
    };
    let mut missing = Vec::new();
    if p.legal_name.is_none() {
        missing.push("real_name");
    }
    if p.business_info.is_none() {
        missing.push("business_info");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DomainError::CertificationIncomplete { missing: missing.join(", ") })
    }
}
