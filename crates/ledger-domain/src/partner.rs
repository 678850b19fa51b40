//! # Partner (stream `partner-{id}`)
//!
//! The facts the ledger needs about a partner (DOMAIN.md, Actors and §1): its kind and
//! level, the reseller → distributor link, and the two certifications that open the
//! incentive gate. Membership, development paths and level upgrades live elsewhere; the
//! ledger only records their outcome.

use chrono::{DateTime, Utc};
use ledger_core::ids::{validate_id, validate_text};
use ledger_core::CoreError;
use serde::{Deserialize, Serialize};

use crate::{Decider, DomainError, EventFamily};

/// Longest partner or legal name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest bank account number, bank name or tax id.
pub const MAX_ACCOUNT_FIELD_CHARS: usize = 100;

pub fn stream_id(partner_id: &str) -> String {
    format!("partner-{partner_id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartnerKind {
    /// Tier-1, 一级经销商.
    Distributor,
    /// Tier-2, 二级经销商: belongs to exactly one distributor.
    Reseller,
    SolutionProvider,
}

/// 标准/优选/领先/核心.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartnerLevel {
    #[default]
    Standard,
    Preferred,
    Leading,
    Core,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BankAccount {
    pub holder_name: String,
    pub number: String,
    pub bank: String,
}

impl BankAccount {
    pub fn validate(&self) -> Result<(), CoreError> {
        non_blank("bank_account.holder_name", &self.holder_name, MAX_NAME_CHARS)?;
        non_blank("bank_account.number", &self.number, MAX_ACCOUNT_FIELD_CHARS)?;
        non_blank("bank_account.bank", &self.bank, MAX_ACCOUNT_FIELD_CHARS)
    }
}

/// 商业信息认证: where the vendor pays, and what goes on the invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessInfo {
    pub bank_account: BankAccount,
    pub tax_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum PartnerEvent {
    PartnerRegistered {
        partner_id: String,
        name: String,
        kind: PartnerKind,
        parent_id: Option<String>,
        level: PartnerLevel,
        registered_at: DateTime<Utc>,
    },
    /// 实名认证: gives the legal name. A later one replaces the earlier (a renamed company).
    RealNameCertified {
        partner_id: String,
        legal_name: String,
        certified_at: DateTime<Utc>,
    },
    /// 商业信息认证. A later one replaces the earlier (a new bank account).
    BusinessInfoCertified {
        partner_id: String,
        bank_account: BankAccount,
        tax_id: String,
        certified_at: DateTime<Utc>,
    },
    PartnerLevelChanged {
        partner_id: String,
        from: PartnerLevel,
        to: PartnerLevel,
        changed_at: DateTime<Utc>,
    },
}

impl EventFamily for PartnerEvent {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnerCommand {
    /// `parent_kind` is looked up by the application layer: the kind of the partner
    /// `parent_id` names, `None` when there is no such partner.
    Register {
        partner_id: String,
        name: String,
        kind: PartnerKind,
        parent_id: Option<String>,
        parent_kind: Option<PartnerKind>,
        level: Option<PartnerLevel>,
    },
    CertifyRealName {
        legal_name: String,
    },
    CertifyBusinessInfo {
        bank_account: BankAccount,
        tax_id: String,
    },
    ChangeLevel {
        level: PartnerLevel,
    },
}

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

pub struct Partner;

impl Decider for Partner {
    type State = PartnerState;
    type Command = PartnerCommand;
    type Event = PartnerEvent;

    fn decide(
        state: &PartnerState,
        command: PartnerCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<PartnerEvent>, DomainError> {
        match command {
            PartnerCommand::Register { partner_id, name, kind, parent_id, parent_kind, level } => {
                validate_id("partner_id", &partner_id)?;
                non_blank("name", &name, MAX_NAME_CHARS)?;
                if state.profile.is_some() {
                    return Err(DomainError::AlreadyExists { what: "partner", id: partner_id });
                }
                match (kind, &parent_id) {
                    (PartnerKind::Reseller, None) => {
                        return Err(invalid("parent_id", "a reseller belongs to exactly one distributor"))
                    }
                    (PartnerKind::Reseller, Some(parent)) => {
                        validate_id("parent_id", parent)?;
                        if *parent == partner_id {
                            return Err(invalid("parent_id", "a reseller cannot be its own distributor"));
                        }
                        match parent_kind {
                            None => return Err(DomainError::NotFound { what: "partner", id: parent.clone() }),
                            Some(PartnerKind::Distributor) => {}
                            Some(_) => {
                                return Err(invalid("parent_id", "the parent of a reseller must be a distributor"))
                            }
                        }
                    }
                    (_, Some(_)) => return Err(invalid("parent_id", "only a reseller has a parent distributor")),
                    (_, None) => {}
                }
                Ok(vec![PartnerEvent::PartnerRegistered {
                    partner_id,
                    name,
                    kind,
                    parent_id,
                    level: level.unwrap_or_default(),
                    registered_at: now,
                }])
            }
            PartnerCommand::CertifyRealName { legal_name } => {
                let p = registered(state)?;
                non_blank("legal_name", &legal_name, MAX_NAME_CHARS)?;
                Ok(vec![PartnerEvent::RealNameCertified {
                    partner_id: p.partner_id.clone(),
                    legal_name,
                    certified_at: now,
                }])
            }
            PartnerCommand::CertifyBusinessInfo { bank_account, tax_id } => {
                let p = registered(state)?;
                bank_account.validate()?;
                non_blank("tax_id", &tax_id, MAX_ACCOUNT_FIELD_CHARS)?;
                Ok(vec![PartnerEvent::BusinessInfoCertified {
                    partner_id: p.partner_id.clone(),
                    bank_account,
                    tax_id,
                    certified_at: now,
                }])
            }
            PartnerCommand::ChangeLevel { level } => {
                let p = registered(state)?;
                if p.level == level {
                    return Err(DomainError::InvalidState(format!(
                        "partner {} is already at level {level:?}",
                        p.partner_id
                    )));
                }
                Ok(vec![PartnerEvent::PartnerLevelChanged {
                    partner_id: p.partner_id.clone(),
                    from: p.level,
                    to: level,
                    changed_at: now,
                }])
            }
        }
    }

    fn evolve(mut state: PartnerState, event: &PartnerEvent) -> PartnerState {
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
}

fn registered(state: &PartnerState) -> Result<&PartnerProfile, DomainError> {
    state.profile.as_ref().ok_or_else(|| DomainError::NotFound { what: "partner", id: String::new() })
}

fn invalid(field: &'static str, reason: &str) -> DomainError {
    DomainError::Invalid(CoreError::InvalidField { field, reason: reason.to_string() })
}

/// Free text that must say something: not empty or only spaces, bounded, no control chars.
pub(crate) fn non_blank(field: &'static str, value: &str, max: usize) -> Result<(), CoreError> {
    validate_text(field, value, max)?;
    if value.trim().is_empty() {
        return Err(CoreError::InvalidField { field, reason: "must not be empty".into() });
    }
    Ok(())
}

/// One example of every event, for the JSON Schema catalogue.
pub fn examples() -> Vec<PartnerEvent> {
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("a valid timestamp") };
    vec![
        PartnerEvent::PartnerRegistered {
            partner_id: "R1".into(),
            name: "Galaxy Reseller Ltd".into(),
            kind: PartnerKind::Reseller,
            parent_id: Some("D1".into()),
            level: PartnerLevel::Standard,
            registered_at: at("2026-01-05T02:00:00Z"),
        },
        PartnerEvent::RealNameCertified {
            partner_id: "R1".into(),
            legal_name: "银河科技有限公司".into(),
            certified_at: at("2026-01-06T02:00:00Z"),
        },
        PartnerEvent::BusinessInfoCertified {
            partner_id: "R1".into(),
            bank_account: BankAccount {
                holder_name: "银河科技有限公司".into(),
                number: "6222000011112222".into(),
                bank: "ICBC".into(),
            },
            tax_id: "91310000TAX".into(),
            certified_at: at("2026-01-07T02:00:00Z"),
        },
        PartnerEvent::PartnerLevelChanged {
            partner_id: "R1".into(),
            from: PartnerLevel::Standard,
            to: PartnerLevel::Preferred,
            changed_at: at("2026-04-01T02:00:00Z"),
        },
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decider::harness::given;

    pub fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    pub fn registered_event(id: &str, kind: PartnerKind) -> PartnerEvent {
        PartnerEvent::PartnerRegistered {
            partner_id: id.into(),
            name: format!("{id} Ltd"),
            kind,
            parent_id: None,
            level: PartnerLevel::Standard,
            registered_at: t("2026-01-01T00:00:00Z"),
        }
    }

    pub fn real_name(id: &str) -> PartnerEvent {
        PartnerEvent::RealNameCertified {
            partner_id: id.into(),
            legal_name: "银河科技有限公司".into(),
            certified_at: t("2026-01-02T00:00:00Z"),
        }
    }

    pub fn business_info(id: &str) -> PartnerEvent {
        PartnerEvent::BusinessInfoCertified {
            partner_id: id.into(),
            bank_account: bank(),
            tax_id: "91310000TAX".into(),
            certified_at: t("2026-01-03T00:00:00Z"),
        }
    }

    fn bank() -> BankAccount {
        BankAccount {
            holder_name: "银河科技有限公司".into(), number: "6222000011112222".into(), bank: "ICBC".into()
        }
    }

    /// A partner with both certifications: the gate is open.
    pub fn certified(id: &str) -> PartnerState {
        Partner::replay(&[registered_event(id, PartnerKind::Distributor), real_name(id), business_info(id)])
    }

    fn register(id: &str, kind: PartnerKind, parent: Option<(&str, Option<PartnerKind>)>) -> PartnerCommand {
        PartnerCommand::Register {
            partner_id: id.into(),
            name: format!("{id} Ltd"),
            kind,
            parent_id: parent.map(|(p, _)| p.to_string()),
            parent_kind: parent.and_then(|(_, k)| k),
            level: None,
        }
    }

    const NOW: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn a_distributor_registers_at_the_standard_level_by_default() {
        given::<Partner>([])
            .at(t(NOW))
            .when(register("P1", PartnerKind::Distributor, None))
            .then([registered_event("P1", PartnerKind::Distributor)]);
    }

    #[test]
    fn a_reseller_belongs_to_exactly_one_distributor() {
        given::<Partner>([]).at(t(NOW)).when(register("R1", PartnerKind::Reseller, None)).then_error("INVALID_FIELD");
        given::<Partner>([]).when(register("R1", PartnerKind::Reseller, Some(("X", None)))).then_error("NOT_FOUND");
        given::<Partner>([])
            .when(register("R1", PartnerKind::Reseller, Some(("S1", Some(PartnerKind::SolutionProvider)))))
            .then_error("INVALID_FIELD");
        given::<Partner>([])
            .when(register("R1", PartnerKind::Reseller, Some(("R0", Some(PartnerKind::Reseller)))))
            .then_error("INVALID_FIELD");
        let events = given::<Partner>([])
            .when(register("R1", PartnerKind::Reseller, Some(("D1", Some(PartnerKind::Distributor)))))
            .events();
        assert!(matches!(&events[0], PartnerEvent::PartnerRegistered { parent_id: Some(p), .. } if p == "D1"));
    }

    #[test]
    fn only_a_reseller_has_a_parent() {
        given::<Partner>([])
            .when(register("D2", PartnerKind::Distributor, Some(("D1", Some(PartnerKind::Distributor)))))
            .then_error("INVALID_FIELD");
    }

    #[test]
    fn a_partner_registers_once_with_valid_id_and_name() {
        given::<Partner>([registered_event("P1", PartnerKind::Distributor)])
            .when(register("P1", PartnerKind::Distributor, None))
            .then_error("ALREADY_EXISTS");
        given::<Partner>([]).when(register("P 1", PartnerKind::Distributor, None)).then_error("INVALID_FIELD");
        given::<Partner>([])
            .when(PartnerCommand::Register {
                partner_id: "P1".into(),
                name: "  ".into(),
                kind: PartnerKind::Distributor,
                parent_id: None,
                parent_kind: None,
                level: None,
            })
            .then_error("INVALID_FIELD");
    }

    #[test]
    fn certifications_need_a_registered_partner_and_valid_fields() {
        given::<Partner>([]).when(PartnerCommand::CertifyRealName { legal_name: "X".into() }).then_error("NOT_FOUND");
        given::<Partner>([registered_event("P1", PartnerKind::Distributor)])
            .when(PartnerCommand::CertifyRealName { legal_name: "a\nb".into() })
            .then_error("INVALID_FIELD");
        let mut b = bank();
        b.number = String::new();
        given::<Partner>([registered_event("P1", PartnerKind::Distributor)])
            .when(PartnerCommand::CertifyBusinessInfo { bank_account: b, tax_id: "T".into() })
            .then_error("INVALID_FIELD");
        given::<Partner>([registered_event("P1", PartnerKind::Distributor)])
            .at(t("2026-01-03T00:00:00Z"))
            .when(PartnerCommand::CertifyBusinessInfo { bank_account: bank(), tax_id: "91310000TAX".into() })
            .then([business_info("P1")]);
    }

    #[test]
    fn the_gate_opens_only_with_both_certifications() {
        // Seed: "两者都完成,才可以申请激励" (both done, then incentives may be applied for).
        let only_registered = Partner::replay(&[registered_event("P1", PartnerKind::Distributor)]);
        let err = certification_gate(&only_registered).unwrap_err();
        assert_eq!(err.code(), "CERTIFICATION_INCOMPLETE");
        assert!(err.to_string().contains("real_name, business_info"), "{err}");

        let real_only = Partner::replay(&[registered_event("P1", PartnerKind::Distributor), real_name("P1")]);
        let err = certification_gate(&real_only).unwrap_err();
        assert!(err.to_string().ends_with("business_info") && !err.to_string().contains("real_name"), "{err}");

        let business_only = Partner::replay(&[registered_event("P1", PartnerKind::Distributor), business_info("P1")]);
        let err = certification_gate(&business_only).unwrap_err();
        assert!(err.to_string().ends_with("real_name"), "{err}");

        assert_eq!(certification_gate(&certified("P1")), Ok(()));
        assert_eq!(certified("P1").legal_name(), Some("银河科技有限公司"));
        assert_eq!(certification_gate(&PartnerState::default()).unwrap_err().code(), "NOT_FOUND");
    }

    #[test]
    fn a_level_change_is_recorded_with_both_levels() {
        given::<Partner>([registered_event("P1", PartnerKind::Distributor)])
            .at(t(NOW))
            .when(PartnerCommand::ChangeLevel { level: PartnerLevel::Core })
            .then([PartnerEvent::PartnerLevelChanged {
                partner_id: "P1".into(),
                from: PartnerLevel::Standard,
                to: PartnerLevel::Core,
                changed_at: t(NOW),
            }]);
        given::<Partner>([registered_event("P1", PartnerKind::Distributor)])
            .when(PartnerCommand::ChangeLevel { level: PartnerLevel::Standard })
            .then_error("INVALID_STATE");
    }

    #[test]
    fn events_round_trip_through_the_envelope() {
        for e in [registered_event("P1", PartnerKind::Reseller), real_name("P1"), business_info("P1")] {
            let (ty, v, data) = crate::encode(&e);
            assert_eq!(crate::decode::<PartnerEvent>(&ty, v, &data.to_string()).unwrap(), e);
        }
        let (_, _, data) = crate::encode(&registered_event("P1", PartnerKind::SolutionProvider));
        assert_eq!(data["kind"], "solution_provider");
    }
}
