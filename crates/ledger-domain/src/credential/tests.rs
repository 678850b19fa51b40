use super::*;
use crate::decider::harness::given;
use crate::partner::tests::t;

const NOW: &str = "2026-09-01T02:00:00Z";

fn issue(id: &str, role: CredentialRole, partner: Option<&str>, expires_at: Option<&str>) -> CredentialCommand {
    CredentialCommand::Issue(IssueCredential {
        credential_id: id.into(),
        role,
        partner_id: partner.map(str::to_string),
        token_sha256: format!("sha-of-{id}"),
        access_key: format!("AK-{id}"),
        expires_at: expires_at.map(t),
        name: None,
    })
}

fn issued(id: &str, role: CredentialRole, partner: Option<&str>, expires_at: Option<&str>) -> CredentialEvent {
    CredentialEvent::CredentialIssued {
        credential_id: id.into(),
        role,
        partner_id: partner.map(str::to_string),
        token_sha256: format!("sha-of-{id}"),
        access_key: format!("AK-{id}"),
        expires_at: expires_at.map(t),
        name: None,
    }
}

fn revoke(id: &str) -> CredentialCommand {
    CredentialCommand::Revoke(RevokeCredential { credential_id: id.into() })
}

#[test]
fn a_credential_is_issued_with_its_role_and_expiry() {
    given::<Credentials>([])
        .at(t(NOW))
        .when(issue("c1", CredentialRole::Partner, Some("P1"), Some("2027-01-01T00:00:00Z")))
        .then([issued("c1", CredentialRole::Partner, Some("P1"), Some("2027-01-01T00:00:00Z"))]);
    given::<Credentials>([]).at(t(NOW)).when(issue("c2", CredentialRole::Auditor, None, None)).then([issued(
        "c2",
        CredentialRole::Auditor,
        None,
        None,
    )]);
}

#[test]
fn a_partner_credential_names_a_partner_and_no_other_does() {
    given::<Credentials>([])
        .at(t(NOW))
        .when(issue("c1", CredentialRole::Partner, None, None))
        .then_error("INVALID_FIELD");
    given::<Credentials>([])
        .at(t(NOW))
        .when(issue("c1", CredentialRole::Admin, Some("P1"), None))
        .then_error("INVALID_FIELD");
    given::<Credentials>([])
        .at(t(NOW))
        .when(issue("c1", CredentialRole::Partner, Some(".."), None))
        .then_error("INVALID_FIELD");
}

#[test]
fn an_expiry_lies_ahead() {
    for past in [NOW, "2026-08-31T00:00:00Z"] {
        given::<Credentials>([])
            .at(t(NOW))
            .when(issue("c1", CredentialRole::Auditor, None, Some(past)))
            .then_error("INVALID_FIELD");
    }
}

#[test]
fn ids_and_secrets_are_never_reused() {
    let history = [issued("c1", CredentialRole::Auditor, None, None)];
    given::<Credentials>(history.clone())
        .at(t(NOW))
        .when(issue("c1", CredentialRole::Auditor, None, None))
        .then_error("ALREADY_EXISTS");
    let mut same_key = IssueCredential {
        credential_id: "c2".into(),
        role: CredentialRole::Auditor,
        partner_id: None,
        token_sha256: "fresh".into(),
        access_key: "AK-c1".into(),
        expires_at: None,
        name: None,
    };
    given::<Credentials>(history.clone())
        .at(t(NOW))
        .when(CredentialCommand::Issue(same_key.clone()))
        .then_error("INVALID_FIELD");
    same_key.access_key = "AK-fresh".into();
    same_key.token_sha256 = "sha-of-c1".into();
    given::<Credentials>(history).at(t(NOW)).when(CredentialCommand::Issue(same_key)).then_error("INVALID_FIELD");
}

#[test]
fn revoking_ends_a_known_credential_once() {
    let history = [issued("c1", CredentialRole::Partner, Some("P1"), None)];
    let revoked = CredentialEvent::CredentialRevoked { credential_id: "c1".into(), revoked_at: t(NOW) };
    given::<Credentials>(history.clone()).at(t(NOW)).when(revoke("c1")).then([revoked.clone()]);
    given::<Credentials>([history[0].clone(), revoked]).at(t(NOW)).when(revoke("c1")).then([]);
    given::<Credentials>(history).at(t(NOW)).when(revoke("c9")).then_error("NOT_FOUND");
}

#[test]
fn a_credential_is_live_until_it_expires_or_is_revoked() {
    let book = state::evolve(
        CredentialBook::default(),
        &issued("c1", CredentialRole::Partner, Some("P1"), Some("2026-10-01T00:00:00Z")),
    );
    let c = book.get("c1").unwrap();
    assert!(c.is_live(t(NOW)));
    assert!(!c.is_live(t("2026-10-01T00:00:00Z")), "expired at its expiry");
    let book =
        state::evolve(book, &CredentialEvent::CredentialRevoked { credential_id: "c1".into(), revoked_at: t(NOW) });
    assert!(!book.get("c1").unwrap().is_live(t(NOW)));
}

#[test]
fn a_version_1_credential_reads_as_one_without_expiry() {
    let v1 = r#"{"credential_id":"c1","role":"partner","partner_id":"P1","token_sha256":"h","access_key":"AK1"}"#;
    let event: CredentialEvent = crate::decode("CredentialIssued", 1, v1).unwrap();
    assert_eq!(
        event,
        CredentialEvent::CredentialIssued {
            credential_id: "c1".into(),
            role: CredentialRole::Partner,
            partner_id: Some("P1".into()),
            token_sha256: "h".into(),
            access_key: "AK1".into(),
            expires_at: None,
            name: None,
        }
    );
}

#[test]
fn a_version_2_credential_reads_as_one_without_a_name() {
    let v2 = r#"{"credential_id":"c1","role":"auditor","partner_id":null,"token_sha256":"h","access_key":"AK1","expires_at":"2027-01-01T00:00:00Z"}"#;
    let event: CredentialEvent = crate::decode("CredentialIssued", 2, v2).unwrap();
    assert_eq!(
        event,
        CredentialEvent::CredentialIssued {
            credential_id: "c1".into(),
            role: CredentialRole::Auditor,
            partner_id: None,
            token_sha256: "h".into(),
            access_key: "AK1".into(),
            expires_at: Some(t("2027-01-01T00:00:00Z")),
            name: None,
        }
    );
}

#[test]
fn a_credential_carries_the_name_of_whom_it_was_issued_to() {
    let named = |name: &str| {
        let CredentialCommand::Issue(mut c) = issue("c1", CredentialRole::Auditor, None, None) else { unreachable!() };
        c.name = Some(name.into());
        CredentialCommand::Issue(c)
    };
    given::<Credentials>([]).at(t(NOW)).when(named("Li Wei, audit")).then([issued_named(
        "c1",
        Some("Li Wei, audit"),
        None,
    )]);
    given::<Credentials>([]).at(t(NOW)).when(named("  ")).then_error("INVALID_FIELD");
    given::<Credentials>([]).at(t(NOW)).when(named(&"x".repeat(MAX_NAME_CHARS + 1))).then_error("INVALID_FIELD");
    given::<Credentials>([]).at(t(NOW)).when(named("a\u{7}b")).then_error("INVALID_FIELD");
    let book = state::evolve(CredentialBook::default(), &issued_named("c1", Some("Li Wei"), None));
    assert_eq!(book.get("c1").unwrap().name.as_deref(), Some("Li Wei"));
}

fn issued_named(id: &str, name: Option<&str>, expires_at: Option<&str>) -> CredentialEvent {
    let CredentialEvent::CredentialIssued { credential_id, role, partner_id, token_sha256, access_key, .. } =
        issued(id, CredentialRole::Auditor, None, None)
    else {
        unreachable!()
    };
    CredentialEvent::CredentialIssued {
        credential_id,
        role,
        partner_id,
        token_sha256,
        access_key,
        expires_at: expires_at.map(t),
        name: name.map(str::to_string),
    }
}
