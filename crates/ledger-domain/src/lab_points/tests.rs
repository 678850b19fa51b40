use super::*;
use crate::decider::harness::given;
use crate::partner::tests::t;
use proptest::prelude::*;

const P: &str = "P1";
const NOW: &str = "2026-03-02T02:00:00Z";

fn applied(id: &str, points: u32) -> LabPointsEvent {
    LabPointsEvent::LabPointsApplied { partner_id: P.into(), application_id: id.into(), points, applied_at: t(NOW) }
}

fn rejected(id: &str) -> LabPointsEvent {
    LabPointsEvent::LabPointsRejected {
        partner_id: P.into(),
        application_id: id.into(),
        comment: Some("too many".into()),
        rejected_at: t(NOW),
    }
}

fn granted(id: &str, points: u32) -> LabPointsEvent {
    LabPointsEvent::LabPointsGranted {
        partner_id: P.into(),
        application_id: id.into(),
        points,
        comment: None,
        granted_at: t(NOW),
    }
}

fn apply(id: &str, points: u32) -> LabPointsCommand {
    LabPointsCommand::ApplyForLabPoints(ApplyForLabPoints { partner_id: P.into(), application_id: id.into(), points })
}

fn grant(id: &str) -> LabPointsCommand {
    LabPointsCommand::GrantLabPoints(GrantLabPoints { application_id: id.into(), comment: None })
}

fn reject(id: &str) -> LabPointsCommand {
    LabPointsCommand::RejectLabPoints(RejectLabPoints { application_id: id.into(), comment: Some("too many".into()) })
}

fn resubmit(id: &str, points: u32) -> LabPointsCommand {
    LabPointsCommand::ResubmitLabPoints(ResubmitLabPoints { application_id: id.into(), points })
}

#[test]
fn a_partner_applies_in_one_of_the_seed_denominations() {
    // Seed: "请按照10点、20点、50点、100点、250点、500点进行申请".
    for points in DENOMINATIONS {
        given::<LabPoints>([]).at(t(NOW)).when(apply("LP1", points)).then([applied("LP1", points)]);
    }
    for points in [0, 1, 15, 30, 200, 1000, u32::MAX] {
        given::<LabPoints>([]).when(apply("LP1", points)).then_error("INVALID_LAB_POINTS");
    }
}

#[test]
fn ids_are_checked_used_once_and_a_stream_serves_one_partner() {
    given::<LabPoints>([]).when(apply("LP 1", 10)).then_error("INVALID_FIELD");
    given::<LabPoints>([])
        .when(LabPointsCommand::ApplyForLabPoints(ApplyForLabPoints {
            partner_id: "".into(),
            application_id: "LP1".into(),
            points: 10,
        }))
        .then_error("INVALID_FIELD");
    given::<LabPoints>([applied("LP1", 10)])
        .when(LabPointsCommand::ApplyForLabPoints(ApplyForLabPoints {
            partner_id: "P2".into(),
            application_id: "LP2".into(),
            points: 10,
        }))
        .then_error("INVALID_FIELD");
    given::<LabPoints>([applied("LP1", 10)]).when(apply("LP1", 20)).then_error("ALREADY_EXISTS");
    given::<LabPoints>([]).when(grant("LP9")).then_error("NOT_FOUND");
    given::<LabPoints>([]).when(resubmit("LP9", 10)).then_error("NOT_FOUND");
}

#[test]
fn the_operator_grants_with_an_optional_comment_and_the_points_join_the_balance() {
    given::<LabPoints>([applied("LP1", 250)])
        .at(t(NOW))
        .when(LabPointsCommand::GrantLabPoints(GrantLabPoints {
            application_id: "LP1".into(),
            comment: Some("enjoy".into()),
        }))
        .then([LabPointsEvent::LabPointsGranted {
            partner_id: P.into(),
            application_id: "LP1".into(),
            points: 250,
            comment: Some("enjoy".into()),
            granted_at: t(NOW),
        }]);
    let state = LabPoints::replay(&[applied("LP1", 250), granted("LP1", 250), applied("LP2", 20), granted("LP2", 20)]);
    assert_eq!(balance(&state), LabPointsBalance { partner_id: P.into(), unit: "LAB_POINT", points: 270 });
    assert_eq!(
        serde_json::to_value(balance(&state)).unwrap(),
        serde_json::json!({"partner_id": "P1", "unit": "LAB_POINT", "points": 270})
    );
    assert_eq!(state.application("LP2").unwrap().status, ApplicationStatus::Granted);
}

#[test]
fn a_rejected_application_adds_nothing_and_keeps_the_comment() {
    given::<LabPoints>([applied("LP1", 500)]).at(t(NOW)).when(reject("LP1")).then([rejected("LP1")]);
    let state = LabPoints::replay(&[applied("LP1", 500), rejected("LP1")]);
    assert_eq!(balance(&state).points, 0);
    let a = state.application("LP1").unwrap();
    assert_eq!((a.status, a.comment.as_deref()), (ApplicationStatus::Rejected, Some("too many")));
}

#[test]
fn a_rejected_application_is_edited_and_resubmitted_then_pending_again() {
    // Seed: "若权益申请未通过,请根据审核意见进行编辑后重新提交申请".
    let history = [applied("LP1", 500), rejected("LP1")];
    given::<LabPoints>(history.clone()).at(t(NOW)).when(resubmit("LP1", 100)).then([
        LabPointsEvent::LabPointsResubmitted {
            partner_id: P.into(),
            application_id: "LP1".into(),
            points: 100,
            resubmitted_at: t(NOW),
        },
    ]);
    given::<LabPoints>(history.clone()).when(resubmit("LP1", 99)).then_error("INVALID_LAB_POINTS");

    // Pending again, for the new points: a grant grants those.
    let resubmitted = given::<LabPoints>(history.clone()).at(t(NOW)).when(resubmit("LP1", 100)).events();
    let history = [history.to_vec(), resubmitted].concat();
    assert_eq!(LabPoints::replay(&history).application("LP1").unwrap().status, ApplicationStatus::Pending);
    given::<LabPoints>(history.clone()).at(t(NOW)).when(grant("LP1")).then([granted("LP1", 100)]);
    // It may be rejected again, and resubmitted again.
    let again = [history, vec![rejected("LP1")]].concat();
    given::<LabPoints>(again).when(resubmit("LP1", 50)).events();
}

#[test]
fn each_step_needs_the_status_before_it() {
    let pending = vec![applied("LP1", 10)];
    let granted_ = vec![applied("LP1", 10), granted("LP1", 10)];
    let rejected_ = vec![applied("LP1", 10), rejected("LP1")];
    given::<LabPoints>(pending).when(resubmit("LP1", 20)).then_error("INVALID_STATE");
    for command in [grant("LP1"), reject("LP1"), resubmit("LP1", 20)] {
        given::<LabPoints>(granted_.clone()).when(command).then_error("INVALID_STATE");
    }
    for command in [grant("LP1"), reject("LP1")] {
        given::<LabPoints>(rejected_.clone()).when(command).then_error("INVALID_STATE");
    }
}

#[test]
fn a_comment_is_bounded_text() {
    let long = "x".repeat(MAX_COMMENT_CHARS + 1);
    given::<LabPoints>([applied("LP1", 10)])
        .when(LabPointsCommand::RejectLabPoints(RejectLabPoints {
            application_id: "LP1".into(),
            comment: Some(long.clone()),
        }))
        .then_error("INVALID_FIELD");
    given::<LabPoints>([applied("LP1", 10)])
        .when(LabPointsCommand::GrantLabPoints(GrantLabPoints {
            application_id: "LP1".into(),
            comment: Some("a\u{7}b".into()),
        }))
        .then_error("INVALID_FIELD");
}

#[test]
fn points_are_not_money() {
    // No currency and no amount string anywhere: an integer in its own unit.
    for e in examples() {
        let (ty, v, data) = crate::encode(&e);
        assert_eq!(crate::decode::<LabPointsEvent>(&ty, v, &data.to_string()).unwrap(), e);
        assert!(data.get("currency").is_none() && data.get("amount").is_none(), "{data}");
        if let Some(points) = data.get("points") {
            assert!(points.is_u64(), "{data}");
        }
    }
}

fn command_strategy() -> impl Strategy<Value = LabPointsCommand> {
    let id = || (0u8..5).prop_map(|i| format!("LP{i}"));
    let points = || prop_oneof![3 => proptest::sample::select(DENOMINATIONS.to_vec()), 1 => 0u32..600];
    prop_oneof![
        (id(), points()).prop_map(|(i, p)| apply(&i, p)),
        id().prop_map(|i| grant(&i)),
        id().prop_map(|i| reject(&i)),
        (id(), points()).prop_map(|(i, p)| resubmit(&i, p)),
    ]
}

proptest! {
    #[test]
    fn the_balance_is_the_sum_of_granted_points_and_replays_the_same(
        commands in proptest::collection::vec(command_strategy(), 0..50)
    ) {
        let mut events = Vec::new();
        let mut state = LabPointsState::default();
        for c in commands {
            let before = state.granted;
            if let Ok(new) = LabPoints::decide(&state, c, t(NOW)) {
                for e in new {
                    state = LabPoints::evolve(state, &e);
                    events.push(e);
                }
            }
            prop_assert!(state.granted >= before, "the balance never shrinks");
            let granted_sum: u64 = state
                .applications
                .values()
                .filter(|a| a.status == ApplicationStatus::Granted)
                .map(|a| u64::from(a.points))
                .sum();
            prop_assert_eq!(state.granted, granted_sum);
            prop_assert!(state.applications.values().all(|a| DENOMINATIONS.contains(&a.points)));
        }
        prop_assert_eq!(LabPoints::replay(&events), state);
    }
}
