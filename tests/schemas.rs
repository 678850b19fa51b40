//! The topic contract in `schemas/`: one JSON Schema file per event type and schema version,
//! immutable once written (see `schemas/README.md`).
//!
//! - every type and version of the catalogue has its file, equal to the generated schema; a
//!   difference means the type changed without a version bump;
//! - every example event validates against its file (and a payload with an unknown or a
//!   missing field does not);
//! - every file belongs to the catalogue or is an older version of a catalogued type;
//! - an older version really upcasts: a stored `RebateCredited` v1 payload decodes into the
//!   current event.
//!
//! Missing files are written with `UPDATE_SCHEMAS=1 cargo test -p ledger-domain --test schemas`;
//! existing files are never rewritten.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ledger_domain::rebate::{self, RebateEvent};
use ledger_domain::schema::{self, EventSchema};
use serde_json::Value;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

/// With `UPDATE_SCHEMAS=1`, writes the missing files once, before any test reads them.
fn write_missing_files_if_asked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var("UPDATE_SCHEMAS").is_ok_and(|v| v == "1") {
            for entry in schema::catalog() {
                // A changed file is reported by the comparison test, never overwritten.
                let _ = check_file(&entry, true);
            }
        }
    });
}

fn read_schema_file(event_type: &str, version: u32) -> Value {
    write_missing_files_if_asked();
    let path = schemas_dir().join(schema::file_name(event_type, version));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(event_type: &str, version: u32) -> jsonschema::Validator {
    let schema = read_schema_file(event_type, version);
    jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", schema::file_name(event_type, version)))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path)).collect()
}

/// Compares one catalogue entry with its file; writes a missing file when `update`.
fn check_file(entry: &EventSchema, update: bool) -> Result<(), String> {
    let path = schemas_dir().join(entry.file_name());
    match fs::read_to_string(&path) {
        Ok(text) => {
            let stored: Value =
                serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", entry.file_name()))?;
            if stored == entry.schema {
                Ok(())
            } else {
                Err(format!(
                    "schema of {} changed: bump its schema version (EventFamily::schema_version of family {}, \
                     with an upcast from v{}) so that a new file {} is written; never edit {}",
                    entry.event_type,
                    entry.family,
                    entry.version,
                    schema::file_name(&entry.event_type, entry.version + 1),
                    entry.file_name()
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && update => {
            fs::create_dir_all(schemas_dir()).map_err(|e| e.to_string())?;
            fs::write(&path, schema::to_file_text(&entry.schema)).map_err(|e| e.to_string())?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "schemas/{} is missing: run UPDATE_SCHEMAS=1 cargo test -p ledger-domain --test schemas and commit it",
            entry.file_name()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[test]
fn every_event_type_and_version_has_its_unchanged_schema_file() {
    write_missing_files_if_asked();
    let failures: Vec<String> = schema::catalog().iter().filter_map(|entry| check_file(entry, false).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_example_validates_against_its_schema_file() {
    let examples = schema::examples_all();
    assert!(!examples.is_empty());
    let mut validators: BTreeMap<(String, u32), jsonschema::Validator> = BTreeMap::new();
    for example in &examples {
        let key = (example.event_type.clone(), example.version);
        let v = validators.entry(key).or_insert_with(|| validator(&example.event_type, example.version));
        let errs = errors(v, &example.payload);
        assert!(
            errs.is_empty(),
            "{} does not match its schema: {errs:?}\npayload: {:#}",
            example.event,
            example.payload
        );
        assert!(example.round_trips, "{} does not decode back to itself", example.event);
    }
}

#[test]
fn a_payload_with_an_unknown_or_a_missing_field_is_refused() {
    // The validation above can fail: every schema is closed and lists its required fields.
    for example in schema::examples_all() {
        let v = validator(&example.event_type, example.version);
        let mut extra = example.payload.clone();
        extra.as_object_mut().unwrap().insert("unexpected".into(), Value::Bool(true));
        assert!(!v.is_valid(&extra), "{} accepts an unknown field", example.event_type);

        let mut tagged = example.payload.clone();
        tagged.as_object_mut().unwrap().insert("type".into(), Value::String(example.event_type.clone()));
        assert!(!v.is_valid(&tagged), "{}: the stored payload has no type tag", example.event_type);

        for field in example.payload.as_object().unwrap().keys() {
            let mut missing = example.payload.clone();
            missing.as_object_mut().unwrap().remove(field);
            assert!(!v.is_valid(&missing), "{} accepts a payload without {field}", example.event_type);
        }
    }
}

#[test]
fn every_schema_file_belongs_to_the_catalogue_and_old_versions_stay() {
    write_missing_files_if_asked();
    let catalog = schema::catalog();
    let current = schema::current_versions(&catalog);
    let mut stray = Vec::new();
    for entry in fs::read_dir(schemas_dir()).expect("schemas/ exists") {
        let name = entry.expect("a directory entry").file_name().to_string_lossy().into_owned();
        if name == "README.md" {
            continue;
        }
        match schema::parse_file_name(&name) {
            Some((ty, version)) if current.get(&ty).is_some_and(|&c| version <= c) => {}
            _ => stray.push(name),
        }
    }
    assert!(stray.is_empty(), "files in schemas/ that belong to no event type and version: {stray:?}");

    // Every version up to the current one keeps its file: stored history replays through it.
    for (ty, version) in &current {
        for v in 1..=*version {
            let path = schemas_dir().join(schema::file_name(ty, v));
            assert!(path.exists(), "{} is gone: an older version's file stays", path.display());
        }
    }
}

#[test]
fn a_stored_rebate_credited_v1_payload_upcasts_to_the_current_event() {
    let (v1_payload, expected) = rebate::legacy::rebate_credited_v1_example();
    assert_eq!(rebate::REBATE_CREDITED_VERSION, 2);

    // The v1 payload is what version 1 stored, and v2 would refuse it.
    let v1 = validator("RebateCredited", 1);
    let v2 = validator("RebateCredited", 2);
    assert!(errors(&v1, &v1_payload).is_empty(), "{:?}", errors(&v1, &v1_payload));
    assert!(!v2.is_valid(&v1_payload), "v1 and v2 differ in shape");

    // decode upcasts it into today's event...
    let event: RebateEvent = ledger_domain::decode("RebateCredited", 1, &v1_payload.to_string()).unwrap();
    assert_eq!(event, expected);

    // ...which is stored as v2 from then on.
    let (ty, version, payload) = ledger_domain::encode(&event);
    assert_eq!((ty.as_str(), version), ("RebateCredited", 2));
    assert!(errors(&v2, &payload).is_empty(), "{:?}", errors(&v2, &payload));
    assert_eq!(payload["amount"], serde_json::json!({"amount": "1200.50", "currency": "CNY"}));
}

#[test]
fn stored_quarterly_payment_v1_payloads_upcast_to_the_current_events() {
    use ledger_domain::incentives::{legacy, IncentiveEvent};
    for (event_type, v1_payload, expected) in legacy::v1_examples() {
        let v1 = validator(event_type, 1);
        assert!(errors(&v1, &v1_payload).is_empty(), "{event_type}: {:?}", errors(&v1, &v1_payload));
        let event: IncentiveEvent = ledger_domain::decode(event_type, 1, &v1_payload.to_string()).unwrap();
        assert_eq!(event, expected);
        let (ty, version, payload) = ledger_domain::encode(&event);
        assert_eq!((ty.as_str(), version), (event_type, 2));
        let v2 = validator(event_type, 2);
        assert!(errors(&v2, &payload).is_empty(), "{event_type}: {:?}", errors(&v2, &payload));
        assert!(!v2.is_valid(&v1_payload), "{event_type}: v1 and v2 differ in shape");
    }
}
