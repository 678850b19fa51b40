//! # Event schemas: the topic contract
//!
//! A JSON Schema (draft 2020-12) for every event type and schema version, generated from the
//! Rust types with `schemars` and kept as files in `schemas/{Type}.v{N}.json` at the
//! repository root. Each schema describes the payload exactly as [`crate::encode`] stores it
//! and the Kafka relay sends it: the event's fields *without* the `type` tag (the envelope
//! and the message headers carry type and schema version).
//!
//! The schemas are strict: every field serialisation always writes is required, and every
//! object is closed (`additionalProperties: false`). Doc comments are left out, so that
//! rewording a comment is not a contract change.
//!
//! `tests/schemas.rs` compares the generated schemas with the files (a changed schema must
//! get a new version), validates one example of every event against its file, and shows the
//! upcast of an older version.

use std::collections::{BTreeMap, BTreeSet};

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::customer::{self, CustomerEvent};
use crate::lab_points::{self, LabPointsEvent};
use crate::partner::{self, PartnerEvent};
use crate::policy::{self, PolicyEvent};
use crate::rebate::{self, RebateEvent};
use crate::EventFamily;

/// The dialect of every schema file.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// The schema of one event type at one schema version.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSchema {
    /// The aggregate module the type belongs to (`rebate`, `partner`, …).
    pub family: &'static str,
    pub event_type: String,
    pub version: u32,
    pub schema: Value,
}

impl EventSchema {
    /// `{Type}.v{N}.json`.
    pub fn file_name(&self) -> String {
        file_name(&self.event_type, self.version)
    }
}

/// One example event as it is stored: type, current schema version and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct EventExample {
    pub family: &'static str,
    pub event_type: String,
    pub version: u32,
    pub payload: Value,
    /// The event, `Debug`-printed, for failure messages.
    pub event: String,
    /// Whether [`crate::decode`] of the payload gives back the very same event.
    pub round_trips: bool,
}

/// The schemas and examples of one event enum.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: &'static str,
    pub schemas: Vec<EventSchema>,
    pub examples: Vec<EventExample>,
}

/// Every registered event family. Adding one is one line here.
pub fn families() -> Vec<Family> {
    vec![
        family::<PartnerEvent>("partner", partner::examples()),
        family::<CustomerEvent>("customer", customer::examples()),
        family::<PolicyEvent>("policy", policy::examples()),
        family::<RebateEvent>("rebate", rebate::examples())
            .with_legacy::<rebate::legacy::RebateCreditedV1>("RebateCredited", 1),
        family::<LabPointsEvent>("lab_points", lab_points::examples()),
        family::<crate::incentives::IncentiveEvent>("incentives", crate::incentives::examples())
            .with_legacy::<crate::incentives::legacy::QuarterlyPaymentRequestedV1>("QuarterlyPaymentRequested", 1)
            .with_legacy::<crate::incentives::legacy::QuarterlyPaymentRejectedV1>("QuarterlyPaymentRejected", 1),
        family::<crate::funds::FundsEvent>("funds", crate::funds::examples()),
        family::<crate::coupons::CouponEvent>("coupons", crate::coupons::examples()),
        family::<crate::billing::BillingEvent>("billing", crate::billing::examples()),
        family::<crate::credential::CredentialEvent>("credential", crate::credential::examples())
            .with_legacy::<crate::credential::legacy::CredentialIssuedV1>("CredentialIssued", 1)
            .with_legacy::<crate::credential::legacy::CredentialIssuedV2>("CredentialIssued", 2),
        family::<crate::anchors::AnchorEvent>("anchors", crate::anchors::examples()),
    ]
}

/// Every event type and schema version, older versions (kept for upcasting) included.
pub fn catalog() -> Vec<EventSchema> {
    families().into_iter().flat_map(|f| f.schemas).collect()
}

/// Every example event of every family with its (type, version, payload).
pub fn examples_all() -> Vec<EventExample> {
    families().into_iter().flat_map(|f| f.examples).collect()
}

/// The current schema version of each event type of the catalogue.
pub fn current_versions(catalog: &[EventSchema]) -> BTreeMap<String, u32> {
    let mut current: BTreeMap<String, u32> = BTreeMap::new();
    for s in catalog {
        let v = current.entry(s.event_type.clone()).or_default();
        *v = (*v).max(s.version);
    }
    current
}

pub fn file_name(event_type: &str, version: u32) -> String {
    format!("{event_type}.v{version}.json")
}

/// The inverse of [`file_name`]: `RebateCredited.v2.json` → `("RebateCredited", 2)`.
pub fn parse_file_name(name: &str) -> Option<(String, u32)> {
    let stem = name.strip_suffix(".json")?;
    let (ty, version) = stem.rsplit_once(".v")?;
    let valid_type =
        ty.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && ty.chars().all(|c| c.is_ascii_alphanumeric());
    let valid_version = !version.starts_with('0') && version.bytes().all(|b| b.is_ascii_digit());
    if !valid_type || !valid_version {
        return None;
    }
    Some((ty.to_string(), version.parse().ok()?))
}

/// A schema file's text: pretty-printed with a final newline.
pub fn to_file_text(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a JSON value serialises");
    text.push('\n');
    text
}

/// The schemas and examples of the event enum `E`, one schema per variant at its current
/// schema version.
pub fn family<E: EventFamily + JsonSchema>(name: &'static str, examples: Vec<E>) -> Family {
    let root = generator_root::<E>();
    let defs = root.get("$defs").and_then(Value::as_object).cloned().unwrap_or_default();
    let schemas = variants(&root)
        .into_iter()
        .map(|(event_type, body)| {
            let version = E::schema_version(&event_type);
            let schema = finish(name, &event_type, version, body, &defs);
            EventSchema { family: name, event_type, version, schema }
        })
        .collect();
    let examples = examples
        .iter()
        .map(|event| {
            let (event_type, version, payload) = crate::encode(event);
            let round_trips =
                crate::decode::<E>(&event_type, version, &payload.to_string()).is_ok_and(|back| back == *event);
            EventExample { family: name, event_type, version, payload, event: format!("{event:?}"), round_trips }
        })
        .collect();
    Family { name, schemas, examples }
}

impl Family {
    /// Registers an older schema version of one of the family's types, generated from the
    /// struct its upcaster reads (the struct must never change: its file is immutable).
    pub fn with_legacy<T: JsonSchema>(mut self, event_type: &str, version: u32) -> Family {
        let mut root = generator_root::<T>();
        let defs = root.get("$defs").and_then(Value::as_object).cloned().unwrap_or_default();
        let body = root.as_object_mut().expect("a struct's schema is an object");
        for meta in ["$schema", "$defs", "title"] {
            body.remove(meta);
        }
        let schema = finish(self.name, event_type, version, body.clone(), &defs);
        self.schemas.push(EventSchema { family: self.name, event_type: event_type.to_string(), version, schema });
        self
    }
}

fn generator_root<T: JsonSchema>() -> Value {
    // The serialisation contract: what `encode` writes, so every field serde always writes
    // is required (an `Option` is written as `null`, never left out).
    let generator = SchemaSettings::draft2020_12().for_serialize().into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// Splits an internally tagged enum's schema into `(type, payload schema without the tag)`.
fn variants(root: &Value) -> Vec<(String, Map<String, Value>)> {
    let alternatives = match root.get("oneOf").and_then(Value::as_array) {
        Some(list) => list.clone(),
        None => vec![root.clone()], // an enum of one variant may be inlined
    };
    alternatives
        .into_iter()
        .map(|alt| {
            let mut body = alt.as_object().cloned().expect("a variant's schema is an object");
            let tag = body
                .get_mut("properties")
                .and_then(Value::as_object_mut)
                .and_then(|props| props.remove("type"))
                .expect("event enums are #[serde(tag = \"type\")] with struct variants");
            let event_type = tag
                .get("const")
                .or_else(|| tag.get("enum").and_then(|e| e.get(0)))
                .and_then(Value::as_str)
                .expect("the tag of a variant is one constant string")
                .to_string();
            if let Some(required) = body.get_mut("required").and_then(Value::as_array_mut) {
                required.retain(|r| r != "type");
            }
            for meta in ["$schema", "$defs", "title"] {
                body.remove(meta);
            }
            (event_type, body)
        })
        .collect()
}

/// Wraps a payload schema as a file: dialect, title, the definitions it uses, strict objects.
fn finish(family: &str, event_type: &str, version: u32, body: Map<String, Value>, defs: &Map<String, Value>) -> Value {
    let mut body = Value::Object(body);
    strip_descriptions(&mut body);
    close_objects(&mut body);
    let mut used = Map::new();
    for name in referenced_defs(&body, defs) {
        let mut def = defs[&name].clone();
        strip_descriptions(&mut def);
        close_objects(&mut def);
        used.insert(name, def);
    }
    let mut schema = json!({
        "$schema": DRAFT_2020_12,
        "title": event_type,
        "description": format!(
            "Payload of the ledger event {event_type} (family {family}), schema version {version}. \
             The envelope carries the type and the schema version; the payload has no type field."
        ),
    });
    let out = schema.as_object_mut().expect("built as an object");
    out.extend(body.as_object().expect("a payload schema is an object").clone());
    if !used.is_empty() {
        out.insert("$defs".into(), Value::Object(used));
    }
    schema
}

/// Doc comments are documentation, not contract.
fn strip_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // A string is the keyword; a field named `description` maps to a schema object.
            if map.get("description").is_some_and(Value::is_string) {
                map.remove("description");
            }
            map.values_mut().for_each(strip_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// Every object schema with named properties is closed: the events are closed structs.
fn close_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let is_object_schema =
                map.get("type") == Some(&json!("object")) && map.get("properties").is_some_and(Value::is_object);
            if is_object_schema && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// The names of the definitions `body` refers to, directly or through other definitions.
fn referenced_defs(body: &Value, defs: &Map<String, Value>) -> BTreeSet<String> {
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(name) = map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
                    out.push(name.to_string());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo = Vec::new();
    refs(body, &mut todo);
    while let Some(name) = todo.pop() {
        if seen.insert(name.clone()) {
            if let Some(def) = defs.get(&name) {
                refs(def, &mut todo);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_refuse_other_names() {
        assert_eq!(file_name("RebateCredited", 2), "RebateCredited.v2.json");
        assert_eq!(parse_file_name("RebateCredited.v2.json"), Some(("RebateCredited".into(), 2)));
        assert_eq!(parse_file_name("WithdrawalRequested.v12.json"), Some(("WithdrawalRequested".into(), 12)));
        for bad in [
            "README.md",
            "RebateCredited.json",
            "RebateCredited.v0.json",
            "RebateCredited.v01.json",
            "rebate.v1.json",
            "Re-bate.v1.json",
            "RebateCredited.v1.json.bak",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_variant_schema_has_no_tag_and_is_strict() {
        let catalog = catalog();
        let requested = catalog.iter().find(|s| s.event_type == "WithdrawalRequested").expect("registered");
        let schema = &requested.schema;
        assert_eq!(schema["$schema"], DRAFT_2020_12);
        assert_eq!(schema["title"], "WithdrawalRequested");
        assert_eq!(schema["additionalProperties"], false);
        assert!(schema["properties"].get("type").is_none(), "{schema:#}");
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        assert_eq!(required.len(), 5, "{required:?}");
        for field in ["partner_id", "withdrawal_id", "amount", "bank_account", "requested_at"] {
            assert!(required.contains(&field), "{field} is required");
        }
        // Nested closed structs are closed too, and only used definitions are carried.
        assert_eq!(schema["$defs"]["BankAccount"]["additionalProperties"], false, "{schema:#}");
        assert_eq!(schema["$defs"]["Money"]["additionalProperties"], false, "{schema:#}");
        assert!(schema["$defs"].get("WithdrawalStatus").is_none());
    }

    #[test]
    fn an_optional_field_is_required_and_nullable() {
        let catalog = catalog();
        let rejected = catalog.iter().find(|s| s.event_type == "WithdrawalRejected").expect("registered");
        assert!(rejected.schema["required"].as_array().unwrap().contains(&json!("reason")));
        assert_eq!(rejected.schema["properties"]["reason"]["type"], json!(["string", "null"]));
    }

    #[test]
    fn event_types_are_unique_across_families_and_each_has_an_example() {
        let catalog = catalog();
        let mut owner: BTreeMap<(String, u32), &str> = BTreeMap::new();
        for s in &catalog {
            if let Some(other) = owner.insert((s.event_type.clone(), s.version), s.family) {
                panic!("{} v{} is registered by {} and {}", s.event_type, s.version, other, s.family);
            }
        }
        let mut family_of: BTreeMap<&str, &str> = BTreeMap::new();
        for s in &catalog {
            let f = *family_of.entry(&s.event_type).or_insert(s.family);
            assert_eq!(f, s.family, "{} belongs to two families", s.event_type);
        }
        let examples = examples_all();
        for (ty, version) in current_versions(&catalog) {
            assert!(
                examples.iter().any(|e| e.event_type == ty && e.version == version),
                "no example of {ty} v{version}: add one to the family's examples()"
            );
        }
        assert!(examples.iter().all(|e| e.round_trips), "an example does not survive encode/decode");
    }

    #[test]
    fn the_legacy_version_sits_beside_the_current_one() {
        let catalog = catalog();
        let credited: Vec<u32> =
            catalog.iter().filter(|s| s.event_type == "RebateCredited").map(|s| s.version).collect();
        assert_eq!(credited, vec![2, 1]);
        assert_eq!(current_versions(&catalog)["RebateCredited"], 2);
        let v1 = catalog.iter().find(|s| s.event_type == "RebateCredited" && s.version == 1).unwrap();
        assert_eq!(v1.schema["properties"]["currency"]["$ref"], "#/$defs/Currency");
        assert_eq!(v1.schema["additionalProperties"], false);
    }
}
