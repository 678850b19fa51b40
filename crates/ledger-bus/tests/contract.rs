//! The relay and the repository's topic contract agree: every schema file of `schemas/`
//! compiles, and every example event of every domain family routes to a topic with a key
//! and passes its schema, so the relay would publish it.

use std::path::Path;

use ledger_bus::routing::{key_for, topic_for};
use ledger_bus::schema::{parse_file_name, SchemaSet};

fn repo_schemas() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas"))
}

/// The stream a family's events live in (as the domain's `stream_id` functions name them).
/// `None` for a family that is never published, with the stream it lives in.
fn stream_of(family: &str, payload: &serde_json::Value) -> Result<String, &'static str> {
    let partner = payload["partner_id"].as_str().unwrap_or("P1");
    Ok(match family {
        "billing" => return Err(ledger_domain::billing::STREAM),
        "credential" => return Err(ledger_domain::credential::STREAM),
        "partner" => format!("partner-{partner}"),
        "customer" => format!("customer-{}", payload["customer_id"].as_str().unwrap_or("C1")),
        "policy" => "policies-CNY".to_string(),
        "rebate" => format!("rebate-{partner}"),
        "lab_points" => format!("lab-points-{partner}"),
        "incentives" => format!("incentives-{partner}"),
        "funds" => format!("funds-{partner}"),
        "coupons" => format!("coupons-{partner}"),
        "anchors" => ledger_domain::anchors::stream_id(),
        other => panic!("family {other} has no route in this test: add it here and in routing.rs"),
    })
}

#[test]
fn every_schema_file_of_the_repository_compiles() {
    let files = std::fs::read_dir(repo_schemas())
        .unwrap()
        .filter_map(|e| parse_file_name(&e.unwrap().file_name().to_string_lossy()))
        .count();
    let set = SchemaSet::load_dir(repo_schemas()).unwrap();
    assert!(files > 0);
    assert_eq!(set.len(), files);
}

#[test]
fn every_domain_example_would_be_published() {
    let set = SchemaSet::load_dir(repo_schemas()).unwrap();
    let examples = ledger_domain::schema::examples_all();
    assert!(!examples.is_empty());
    for e in examples {
        let stream = match stream_of(e.family, &e.payload) {
            Ok(stream) => stream,
            Err(withheld) => {
                // Withheld on purpose (billing receipts, credentials): the relay must say
                // so, not fail.
                assert_eq!(topic_for(withheld, &e.event_type), Some(None), "{}", e.event_type);
                continue;
            }
        };
        let topic = topic_for(&stream, &e.event_type);
        assert!(matches!(topic, Some(Some(_))), "{} on {stream} has no topic", e.event_type);
        let key = key_for(&stream, &e.payload).unwrap();
        if let Some(partner) = e.payload.get("partner_id").and_then(|p| p.as_str()) {
            assert_eq!(key, partner);
        }
        set.check(&e.event_type, e.version, &e.payload).unwrap_or_else(|err| panic!("{}: {err}", e.event));
    }
}
