use ledger_core::envelope::{Actor, ChainHash, CommandMeta, NewEvent, RecordedEvent, Role};
use serde_json::json;

use super::verify::{read_anchor, AnchorVerifier};
use super::*;
use crate::decider::harness::given;
use crate::partner::tests::t;

const NOW: &str = "2026-08-01T02:00:00Z";

fn key(n: u8) -> AnchorKey {
    AnchorKey::from_seed([n; 32])
}

fn hash(n: u8) -> ChainHash {
    ChainHash([n; 32])
}

fn head(position: u64, key: &AnchorKey) -> AnchorCommand {
    AnchorCommand::AnchorHead(AnchorHead { head_position: position, head_hash: hash(position as u8), key: key.clone() })
}

fn rotate(position: u64, key: &AnchorKey, new_key: &AnchorKey) -> AnchorCommand {
    AnchorCommand::RotateAnchorKey(RotateAnchorKey {
        head_position: position,
        head_hash: hash(position as u8),
        key: key.clone(),
        new_key: new_key.clone(),
    })
}

fn decided(history: &[AnchorEvent], command: AnchorCommand) -> AnchorEvent {
    let mut events = given::<Anchors>(history.to_vec()).at(t(NOW)).when(command).events();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

#[test]
fn an_anchor_signs_position_hash_and_time_with_the_key_it_names() {
    let k = key(1);
    let a = decided(&[], head(5, &k));
    let AnchorEvent::ChainAnchored { head_position, head_hash, signed_at, public_key, signature } = &a else {
        panic!("{a:?}")
    };
    assert_eq!((*head_position, head_hash.as_str(), *signed_at), (5, hash(5).to_string().as_str(), t(NOW)));
    assert_eq!(public_key, &k.public_hex());
    let pk: PublicKey = public_key.parse().unwrap();
    pk.verify(&a.statement(), signature).unwrap();
    // The statement is the documented text, so any Ed25519 tool can check it.
    let text = String::from_utf8(a.statement().bytes()).unwrap();
    assert_eq!(
        text,
        format!(
            "ledger-anchor/v1\nposition 5\nhash {}\nsigned_at 2026-08-01T02:00:00.000000Z\nkey {}\nnew_key \n",
            hash(5),
            k.public_hex()
        )
    );
    // Any changed field breaks the signature.
    let mut other = a.statement();
    other.head_position = 6;
    assert!(pk.verify(&other, signature).is_err());
    let other_hash = hash(6).to_string();
    let mut other = a.statement();
    other.head_hash = &other_hash;
    assert!(pk.verify(&other, signature).is_err());
    assert!(key(2).public().verify(&a.statement(), signature).is_err());
}

#[test]
fn anchors_move_forward_along_the_log() {
    let k = key(1);
    let first = decided(&[], head(5, &k));
    given::<Anchors>([first.clone()]).at(t(NOW)).when(head(5, &k)).then_error("INVALID_STATE");
    given::<Anchors>([first.clone()]).at(t(NOW)).when(head(4, &k)).then_error("INVALID_STATE");
    given::<Anchors>([]).at(t(NOW)).when(head(0, &k)).then_error("INVALID_FIELD");
    let second = decided(std::slice::from_ref(&first), head(6, &k));
    let state = Anchors::replay(&[first, second]);
    assert_eq!((state.last_head_position, state.anchors), (6, 2));
}

#[test]
fn only_the_current_key_signs_and_a_new_key_comes_by_rotation() {
    let (old, new) = (key(1), key(2));
    let first = decided(&[], head(5, &old));
    given::<Anchors>([first.clone()]).at(t(NOW)).when(head(6, &new)).then_error("INVALID_STATE");
    // A rotation needs an anchor before it, the current key, and a different new key.
    given::<Anchors>([]).at(t(NOW)).when(rotate(5, &old, &new)).then_error("INVALID_STATE");
    given::<Anchors>([first.clone()]).at(t(NOW)).when(rotate(6, &new, &key(3))).then_error("INVALID_STATE");
    given::<Anchors>([first.clone()]).at(t(NOW)).when(rotate(6, &old, &old)).then_error("INVALID_FIELD");

    let rotation = decided(std::slice::from_ref(&first), rotate(6, &old, &new));
    let AnchorEvent::AnchorKeyRotated { signature, new_key_signature, .. } = &rotation else { panic!() };
    old.public().verify(&rotation.statement(), signature).unwrap();
    new.public().verify(&rotation.statement(), new_key_signature).unwrap();
    let history = [first, rotation];
    assert_eq!(Anchors::replay(&history).current_key, Some(new.public_hex()));
    assert_eq!(Anchors::replay(&history).keys, vec![old.public_hex(), new.public_hex()]);
    given::<Anchors>(history.clone()).at(t(NOW)).when(head(7, &old)).then_error("INVALID_STATE");
    decided(&history, head(7, &new));
}

#[test]
fn a_key_reads_back_from_its_hex_and_bad_keys_are_refused() {
    let k = key(9);
    assert_eq!(AnchorKey::from_hex(&format!("{}\n", k.secret_hex())).unwrap().public_hex(), k.public_hex());
    assert!(AnchorKey::from_hex("abcd").is_err());
    assert!(AnchorKey::from_hex("zz").is_err());
    assert_eq!(k.public_hex().parse::<PublicKey>().unwrap(), k.public());
    assert!("00".parse::<PublicKey>().is_err());
    assert!(!format!("{k:?}").contains(&k.secret_hex()), "Debug never shows the secret");
}

/// A chained log of `n` events.
fn log(n: u64) -> Vec<RecordedEvent> {
    let meta = CommandMeta::new(Actor { principal: "ops".into(), role: Role::Admin });
    let mut prev = ChainHash::ZERO;
    (1..=n)
        .map(|p| {
            let ev = NewEvent::new("FundsCredited", 1, t(NOW), &json!({"n": p})).unwrap();
            let e = RecordedEvent::seal(ev, &meta, "funds-D1", p, p, t(NOW), prev);
            prev = e.hash;
            e
        })
        .collect()
}

fn anchor_at(events: &[RecordedEvent], position: u64, k: &AnchorKey) -> AnchorEvent {
    decide::anchored(k, position, events[position as usize - 1].hash, t(NOW))
}

fn verify(events: &[RecordedEvent], anchors: Vec<AnchorEvent>, trusted: &[PublicKey]) -> Verdict {
    let mut v = AnchorVerifier::new(anchors, trusted);
    for e in events {
        if v.check(e).is_err() {
            break;
        }
    }
    v.finish()
}

/// Rewrites the events from `from` on (new content) and hashes them again consistently,
/// as an insider with write access to the store could.
fn rewrite_tail(events: &mut [RecordedEvent], from: u64) {
    for i in (from as usize - 1)..events.len() {
        if i == from as usize - 1 {
            events[i].data = r#"{"n":"rewritten"}"#.into();
        }
        events[i].prev_hash = if i == 0 { ChainHash::ZERO } else { events[i - 1].hash };
        events[i].hash = events[i].compute_hash();
    }
}

#[test]
fn an_untouched_log_agrees_with_its_anchors() {
    let k = key(1);
    let events = log(30);
    let anchors = vec![anchor_at(&events, 10, &k), anchor_at(&events, 20, &k), anchor_at(&events, 30, &k)];
    let verdict = verify(&events, anchors, &[k.public()]);
    assert_eq!(verdict.first_bad, None);
    assert_eq!((verdict.checked, verdict.anchors, verdict.anchored_through), (30, 3, 30));
}

#[test]
fn a_rewritten_tail_hashed_again_disagrees_at_the_first_anchor_it_crosses() {
    let k = key(1);
    let original = log(30);
    let anchors = vec![anchor_at(&original, 10, &k), anchor_at(&original, 20, &k), anchor_at(&original, 30, &k)];
    let mut events = original.clone();
    rewrite_tail(&mut events, 20);
    // The chain alone holds: every hash was computed again.
    let mut chain = ledger_core::envelope::ChainVerifier::default();
    assert!(events.iter().all(|e| chain.check(e).is_ok()));
    let verdict = verify(&events, anchors.clone(), &[k.public()]);
    let bad = verdict.first_bad.unwrap();
    assert_eq!(bad.position, 20, "{}", bad.reason);
    assert!(bad.reason.contains("rewritten after position 10"), "{}", bad.reason);
    assert_eq!(verdict.anchored_through, 10);

    // Between two anchors, the rewrite shows at the next one and the verdict bounds it.
    let mut events = original;
    rewrite_tail(&mut events, 15);
    let bad = verify(&events, anchors, &[k.public()]).first_bad.unwrap();
    assert_eq!(bad.position, 20);
    assert!(bad.reason.contains("after position 10"), "{}", bad.reason);
}

#[test]
fn a_log_shorter_than_an_anchor_is_reported_at_its_first_missing_position() {
    let k = key(1);
    let events = log(30);
    let anchors = vec![anchor_at(&events, 10, &k), anchor_at(&events, 30, &k)];
    let verdict = verify(&events[..24], anchors, &[k.public()]);
    let bad = verdict.first_bad.unwrap();
    assert_eq!(bad.position, 25, "{}", bad.reason);
    assert!(bad.reason.contains("dropped"), "{}", bad.reason);
}

#[test]
fn an_anchor_signed_with_another_key_or_altered_is_forged() {
    let (k, intruder) = (key(1), key(7));
    let events = log(30);
    let anchors = vec![anchor_at(&events, 10, &k), anchor_at(&events, 20, &intruder), anchor_at(&events, 30, &k)];
    let bad = verify(&events, anchors, &[k.public()]).first_bad.unwrap();
    assert_eq!(bad.position, 20, "{}", bad.reason);
    assert!(bad.reason.contains(&intruder.public_hex()), "{}", bad.reason);

    // The intruder's anchors alone: the first is not signed by a trusted key.
    let anchors = vec![anchor_at(&events, 10, &intruder)];
    assert_eq!(verify(&events, anchors, &[k.public()]).first_bad.unwrap().position, 10);

    // A real anchor whose hash was changed afterwards.
    let AnchorEvent::ChainAnchored { head_position, signed_at, public_key, signature, .. } = anchor_at(&events, 20, &k)
    else {
        panic!()
    };
    let altered = AnchorEvent::ChainAnchored {
        head_position,
        head_hash: events[3].hash.to_string(),
        signed_at,
        public_key,
        signature,
    };
    let bad = verify(&events, vec![anchor_at(&events, 10, &k), altered], &[k.public()]).first_bad.unwrap();
    assert_eq!(bad.position, 20);
    assert!(bad.reason.contains("forged"), "{}", bad.reason);
}

#[test]
fn after_a_rotation_old_anchors_verify_and_the_old_key_signs_no_more() {
    let (old, new) = (key(1), key(2));
    let events = log(30);
    let rotation = decide::rotated(&old, &new, 20, events[19].hash, t(NOW));
    let anchors = vec![anchor_at(&events, 10, &old), rotation.clone(), anchor_at(&events, 30, &new)];
    // Trusting the first key, or only the newest: both verify the whole sequence.
    for trusted in [old.public(), new.public()] {
        let verdict = verify(&events, anchors.clone(), &[trusted]);
        assert_eq!(verdict.first_bad, None, "trusting {trusted}");
        assert_eq!(verdict.anchors, 3);
    }
    // The old key after the rotation is not the anchor key any more.
    let late_old = vec![anchor_at(&events, 10, &old), rotation.clone(), anchor_at(&events, 30, &old)];
    assert_eq!(verify(&events, late_old, &[old.public()]).first_bad.unwrap().position, 30);
    // A rotation the new key did not sign carries no trust.
    let AnchorEvent::AnchorKeyRotated {
        head_position,
        head_hash,
        signed_at,
        public_key,
        new_public_key,
        signature,
        ..
    } = rotation
    else {
        panic!()
    };
    let one_sided = AnchorEvent::AnchorKeyRotated {
        new_key_signature: signature.clone(),
        head_position,
        head_hash,
        signed_at,
        public_key,
        new_public_key,
        signature,
    };
    let anchors = vec![anchor_at(&events, 10, &old), one_sided, anchor_at(&events, 30, &new)];
    assert_eq!(verify(&events, anchors, &[old.public()]).first_bad.unwrap().position, 20);
}

#[test]
fn anchors_read_from_a_recorded_event_or_a_payload_line() {
    let k = key(1);
    let events = log(3);
    let anchor = anchor_at(&events, 3, &k);
    let (ty, version, payload) = crate::encode(&anchor);
    let mut line = payload.clone();
    line["type"] = json!(ty);
    line["position"] = json!(4);
    assert_eq!(read_anchor(&line).unwrap(), Some(anchor.clone()));
    let meta = CommandMeta::new(Actor::system("anchorer"));
    let ev = NewEvent::new(&ty, version, t(NOW), &payload).unwrap();
    let recorded = RecordedEvent::seal(ev, &meta, &stream_id(), 1, 4, t(NOW), events[2].hash);
    assert_eq!(read_anchor(&serde_json::to_value(&recorded).unwrap()).unwrap(), Some(anchor));
    assert_eq!(read_anchor(&serde_json::to_value(&events[0]).unwrap()).unwrap(), None, "another type");
    assert!(read_anchor(&json!({"type": "ChainAnchored", "head_position": 1})).is_err());
    assert!(read_anchor(&json!([1])).is_err());
}
