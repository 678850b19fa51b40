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
    PartnerCommand::RegisterPartner(RegisterPartner {
        partner_id: id.into(),
        name: format!("{id} Ltd"),
        kind,
        parent_id: parent.map(|(p, _)| p.to_string()),
        parent_kind: parent.and_then(|(_, k)| k),
        level: None,
    })
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
        .when(PartnerCommand::RegisterPartner(RegisterPartner {
            partner_id: "P1".into(),
            name: "  ".into(),
            kind: PartnerKind::Distributor,
            parent_id: None,
            parent_kind: None,
            level: None,
        }))
        .then_error("INVALID_FIELD");
}

#[test]
fn certifications_need_a_registered_partner_and_valid_fields() {
    given::<Partner>([])
        .when(PartnerCommand::CertifyRealName(CertifyRealName { legal_name: "X".into() }))
        .then_error("NOT_FOUND");
    given::<Partner>([registered_event("P1", PartnerKind::Distributor)])
        .when(PartnerCommand::CertifyRealName(CertifyRealName { legal_name: "a\nb".into() }))
        .then_error("INVALID_FIELD");
    let mut b = bank();
    b.number = String::new();
    given::<Partner>([registered_event("P1", PartnerKind::Distributor)])
        .when(PartnerCommand::CertifyBusinessInfo(CertifyBusinessInfo { bank_account: b, tax_id: "T".into() }))
        .then_error("INVALID_FIELD");
    given::<Partner>([registered_event("P1", PartnerKind::Distributor)])
        .at(t("2026-01-03T00:00:00Z"))
        .when(PartnerCommand::CertifyBusinessInfo(CertifyBusinessInfo {
            bank_account: bank(),
            tax_id: "91310000TAX".into(),
        }))
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
        .when(PartnerCommand::ChangeLevel(ChangeLevel { level: PartnerLevel::Core }))
        .then([PartnerEvent::PartnerLevelChanged {
            partner_id: "P1".into(),
            from: PartnerLevel::Standard,
            to: PartnerLevel::Core,
            changed_at: t(NOW),
        }]);
    given::<Partner>([registered_event("P1", PartnerKind::Distributor)])
        .when(PartnerCommand::ChangeLevel(ChangeLevel { level: PartnerLevel::Standard }))
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
