use super::*;
use crate::decider::harness::given;
use crate::partner::tests::t;

pub fn associated(customer: &str, partner: &str, ty: AssociationType, at: &str) -> CustomerEvent {
    CustomerEvent::CustomerAssociated {
        customer_id: customer.into(),
        partner_id: partner.into(),
        association_type: ty,
        effective_at: t(at),
    }
}

fn switched(to: AssociationType, at: &str) -> CustomerEvent {
    let from = if to == AssociationType::Resale { AssociationType::Referral } else { AssociationType::Resale };
    CustomerEvent::AssociationTypeSwitched {
        customer_id: "C1".into(),
        partner_id: "P1".into(),
        from,
        to,
        effective_at: t(at),
    }
}

fn switch(partner: &str, to: AssociationType) -> CustomerCommand {
    CustomerCommand::SwitchAssociationType(SwitchAssociationType {
        partner_id: partner.into(),
        association_type: to,
        effective_at: None,
    })
}

const JAN: &str = "2026-01-10T02:00:00Z";

#[test]
fn a_customer_is_associated_to_one_partner() {
    given::<Customer>([])
        .at(t(JAN))
        .when(CustomerCommand::AssociateCustomer(AssociateCustomer {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            association_type: AssociationType::Resale,
            effective_at: None,
        }))
        .then([associated("C1", "P1", AssociationType::Resale, JAN)]);
    given::<Customer>([associated("C1", "P1", AssociationType::Resale, JAN)])
        .at(t("2026-02-01T00:00:00Z"))
        .when(CustomerCommand::AssociateCustomer(AssociateCustomer {
            customer_id: "C1".into(),
            partner_id: "P2".into(),
            association_type: AssociationType::Resale,
            effective_at: None,
        }))
        .then_error("INVALID_STATE");
    given::<Customer>([])
        .when(CustomerCommand::AssociateCustomer(AssociateCustomer {
            customer_id: "C/1".into(),
            partner_id: "P1".into(),
            association_type: AssociationType::Resale,
            effective_at: None,
        }))
        .then_error("INVALID_FIELD");
}

#[test]
fn the_type_in_force_is_the_one_at_the_time_asked() {
    let state = Customer::replay(&[
        associated("C1", "P1", AssociationType::Resale, JAN),
        switched(AssociationType::Referral, "2026-05-01T00:00:00Z"),
    ]);
    assert_eq!(state.association_at(t("2026-01-10T01:59:59Z")), None);
    assert_eq!(state.association_at(t(JAN)).unwrap().association_type, AssociationType::Resale);
    assert_eq!(state.association_at(t("2026-04-30T23:59:59Z")).unwrap().association_type, AssociationType::Resale);
    assert_eq!(state.association_at(t("2026-05-01T00:00:00Z")).unwrap().association_type, AssociationType::Referral);
}

#[test]
fn a_line_for_a_customer_with_no_association_is_refused() {
    let state = Customer::replay(&[associated("C1", "P1", AssociationType::Resale, JAN)]);
    assert_eq!(state.partner_for_consumption("C1", t("2026-03-01T00:00:00Z")), Ok("P1".to_string()));
    let err = state.partner_for_consumption("C1", t("2026-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(err.code(), "NO_ASSOCIATION");
    let ended = Customer::replay(&[
        associated("C1", "P1", AssociationType::Resale, JAN),
        CustomerEvent::AssociationEnded {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            effective_at: t("2026-02-01T00:00:00Z"),
        },
    ]);
    assert_eq!(ended.partner_for_consumption("C1", t("2026-02-02T00:00:00Z")).unwrap_err().code(), "NO_ASSOCIATION");
    assert_eq!(ended.partner_for_consumption("C1", t("2026-01-31T00:00:00Z")), Ok("P1".to_string()));
}

#[test]
fn the_first_switch_is_allowed_and_records_both_types() {
    given::<Customer>([associated("C1", "P1", AssociationType::Resale, JAN)])
        .at(t("2026-01-11T00:00:00Z"))
        .when(switch("P1", AssociationType::Referral))
        .then([switched(AssociationType::Referral, "2026-01-11T00:00:00Z")]);
}

#[test]
fn a_second_switch_within_three_calendar_months_is_too_frequent() {
    // Switched 2026-01-31 10:00 CST; the next is allowed from 2026-04-30 10:00 CST.
    let history = [
        associated("C1", "P1", AssociationType::Resale, JAN),
        switched(AssociationType::Referral, "2026-01-31T02:00:00Z"),
    ];
    given::<Customer>(history.clone())
        .at(t("2026-04-30T01:59:59Z"))
        .when(switch("P1", AssociationType::Resale))
        .then_error("SWITCH_TOO_FREQUENT");
    given::<Customer>(history.clone())
        .at(t("2026-04-30T02:00:00Z"))
        .when(switch("P1", AssociationType::Resale))
        .then([switched(AssociationType::Resale, "2026-04-30T02:00:00Z")]);
    // Ending counts as a switch too.
    given::<Customer>(history)
        .at(t("2026-03-01T00:00:00Z"))
        .when(CustomerCommand::EndAssociation(EndAssociation { partner_id: "P1".into(), effective_at: None }))
        .then_error("SWITCH_TOO_FREQUENT");
}

#[test]
fn three_months_are_calendar_months_in_china_standard_time() {
    // 2026-11-30 20:00 UTC is 2026-12-01 04:00 CST: three months on is 2027-03-01 04:00 CST.
    assert_eq!(next_switch_allowed_from(t("2026-11-30T20:00:00Z")), t("2027-02-28T20:00:00Z"));
    // Clamped to the end of a shorter month.
    assert_eq!(next_switch_allowed_from(t("2026-11-30T04:00:00Z")), t("2027-02-28T04:00:00Z"));
}

#[test]
fn only_the_associated_partner_may_switch_or_end() {
    given::<Customer>([associated("C1", "P1", AssociationType::Resale, JAN)])
        .at(t("2026-02-01T00:00:00Z"))
        .when(switch("P2", AssociationType::Referral))
        .then_error("NOT_YOUR_CUSTOMER");
    given::<Customer>([]).when(switch("P1", AssociationType::Referral)).then_error("NOT_FOUND");
    given::<Customer>([associated("C1", "P1", AssociationType::Resale, JAN)])
        .at(t("2026-02-01T00:00:00Z"))
        .when(switch("P1", AssociationType::Resale))
        .then_error("INVALID_STATE");
}

#[test]
fn after_an_end_there_is_nothing_to_switch_and_another_partner_may_associate() {
    let history = [
        associated("C1", "P1", AssociationType::Resale, JAN),
        CustomerEvent::AssociationEnded {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            effective_at: t("2026-02-01T00:00:00Z"),
        },
    ];
    given::<Customer>(history.clone())
        .at(t("2026-09-01T00:00:00Z"))
        .when(switch("P1", AssociationType::Referral))
        .then_error("NO_ASSOCIATION");
    given::<Customer>(history)
        .at(t("2026-02-02T00:00:00Z"))
        .when(CustomerCommand::AssociateCustomer(AssociateCustomer {
            customer_id: "C1".into(),
            partner_id: "P2".into(),
            association_type: AssociationType::Referral,
            effective_at: None,
        }))
        .then([associated("C1", "P2", AssociationType::Referral, "2026-02-02T00:00:00Z")]);
}

#[test]
fn changes_only_move_forward_in_time() {
    let history = [associated("C1", "P1", AssociationType::Resale, JAN)];
    given::<Customer>(history.clone())
        .at(t("2026-03-01T00:00:00Z"))
        .when(CustomerCommand::SwitchAssociationType(SwitchAssociationType {
            partner_id: "P1".into(),
            association_type: AssociationType::Referral,
            effective_at: Some(t("2026-02-01T00:00:00Z")),
        }))
        .then_error("INVALID_FIELD");
    given::<Customer>(history)
        .at(t("2026-03-01T00:00:00Z"))
        .when(CustomerCommand::SwitchAssociationType(SwitchAssociationType {
            partner_id: "P1".into(),
            association_type: AssociationType::Referral,
            effective_at: Some(t("2026-01-01T00:00:00Z")),
        }))
        .then_error("INVALID_FIELD");
    // The first association may be back-dated (consumption from before it was entered).
    given::<Customer>([])
        .at(t("2026-03-01T00:00:00Z"))
        .when(CustomerCommand::AssociateCustomer(AssociateCustomer {
            customer_id: "C1".into(),
            partner_id: "P1".into(),
            association_type: AssociationType::Resale,
            effective_at: Some(t(JAN)),
        }))
        .then([associated("C1", "P1", AssociationType::Resale, JAN)]);
}
