//! The topic contract: one JSON Schema per (event type, schema version), compiled once.
//!
//! The set is loaded from a directory of `{Type}.v{N}.json` files (the repository's
//! `schemas/`), or built from an in-memory list so a binary can embed its schemas. The relay
//! produces nothing that its schema does not accept.

use std::collections::HashMap;
use std::path::Path;

use thiserror::Error;

/// Most schema files one set may hold (a sanity bound on a mistyped directory).
pub const MAX_SCHEMAS: usize = 10_000;

#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("cannot read schema directory {dir}: {reason}")]
    Directory { dir: String, reason: String },
    #[error("schema file {file}: {reason}")]
    File { file: String, reason: String },
    #[error("schema of {event_type} v{version} does not compile: {reason}")]
    Compile { event_type: String, version: u32, reason: String },
    #[error("schema of {event_type} v{version} is given twice")]
    Duplicate { event_type: String, version: u32 },
    #[error("more than {MAX_SCHEMAS} schemas")]
    TooMany,
}

/// Why a payload may not be produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PayloadError {
    #[error("no schema for {event_type} v{version}")]
    NoSchema { event_type: String, version: u32 },
    #[error("payload is not valid against {event_type} v{version}: {reason}")]
    Invalid { event_type: String, version: u32, reason: String },
}

/// Compiled schemas by (event type, schema version).
#[derive(Default)]
pub struct SchemaSet {
    /// Type → version → validator (nested so a lookup by `&str` allocates nothing).
    validators: HashMap<String, HashMap<u32, jsonschema::Validator>>,
    count: usize,
}

impl std::fmt::Debug for SchemaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> =
            self.validators.iter().flat_map(|(t, versions)| versions.keys().map(move |v| (t, v))).collect();
        keys.sort();
        f.debug_struct("SchemaSet").field("schemas", &keys).finish()
    }
}

/// Splits `Type.vN.json` into `("Type", N)`.
pub fn parse_file_name(name: &str) -> Option<(String, u32)> {
    let stem = name.strip_suffix(".json")?;
    let (ty, version) = stem.rsplit_once(".v")?;
    let version: u32 = version.parse().ok()?;
    let valid_type = !ty.is_empty() && ty.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (valid_type && version >= 1).then(|| (ty.to_string(), version))
}

impl SchemaSet {
    /// Compiles every `(type, version, schema)` of `schemas`.
    pub fn from_list(
        schemas: impl IntoIterator<Item = (String, u32, serde_json::Value)>,
    ) -> Result<SchemaSet, SchemaError> {
        let mut set = SchemaSet::default();
        for (event_type, version, schema) in schemas {
            if set.count >= MAX_SCHEMAS {
                return Err(SchemaError::TooMany);
            }
            let validator = jsonschema::validator_for(&schema).map_err(|e| SchemaError::Compile {
                event_type: event_type.clone(),
                version,
                reason: e.to_string(),
            })?;
            let versions = set.validators.entry(event_type.clone()).or_default();
            if versions.insert(version, validator).is_some() {
                return Err(SchemaError::Duplicate { event_type, version });
            }
            set.count += 1;
        }
        Ok(set)
    }

    /// Loads every `{Type}.v{N}.json` file of `dir`; other files are ignored.
    pub fn load_dir(dir: &Path) -> Result<SchemaSet, SchemaError> {
        let dir_err =
            |e: std::io::Error| SchemaError::Directory { dir: dir.display().to_string(), reason: e.to_string() };
        let mut list = Vec::new();
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).map_err(dir_err)?.collect::<Result<_, _>>().map_err(dir_err)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((event_type, version)) = parse_file_name(&name) else { continue };
            let file = entry.path().display().to_string();
            let text = std::fs::read_to_string(entry.path())
                .map_err(|e| SchemaError::File { file: file.clone(), reason: e.to_string() })?;
            let schema: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| SchemaError::File { file, reason: e.to_string() })?;
            list.push((event_type, version, schema));
        }
        SchemaSet::from_list(list)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn contains(&self, event_type: &str, version: u32) -> bool {
        self.validators.get(event_type).is_some_and(|v| v.contains_key(&version))
    }

    /// Checks `payload` against the schema of (`event_type`, `version`).
    pub fn check(&self, event_type: &str, version: u32, payload: &serde_json::Value) -> Result<(), PayloadError> {
        let validator = match self.validators.get(event_type).and_then(|v| v.get(&version)) {
            Some(v) => v,
            None => return Err(PayloadError::NoSchema { event_type: event_type.to_string(), version }),
        };
        if validator.is_valid(payload) {
            return Ok(());
        }
        validator.validate(payload).map_err(|e| PayloadError::Invalid {
            event_type: event_type.to_string(),
            version,
            reason: format!("{} (at '{}')", e, e.instance_path),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn consumption_schema() -> serde_json::Value {
        json!({
            "type": "object",
            "required": ["partner_id", "amount"],
            "properties": {
                "partner_id": {"type": "string", "minLength": 1},
                "amount": {"type": "object", "required": ["amount", "currency"]}
            }
        })
    }

    #[test]
    fn file_names_give_type_and_version() {
        assert_eq!(parse_file_name("ConsumptionRecorded.v1.json"), Some(("ConsumptionRecorded".into(), 1)));
        assert_eq!(parse_file_name("A.v12.json"), Some(("A".into(), 12)));
        assert_eq!(parse_file_name("A.v0.json"), None);
        assert_eq!(parse_file_name("A.json"), None);
        assert_eq!(parse_file_name("README.md"), None);
        assert_eq!(parse_file_name("../x.v1.json"), None);
    }

    #[test]
    fn a_payload_is_checked_against_its_type_and_version() {
        let set = SchemaSet::from_list([("ConsumptionRecorded".to_string(), 1, consumption_schema())]).unwrap();
        let good = json!({"partner_id": "P1", "amount": {"amount": "1.00", "currency": "CNY"}});
        assert!(set.check("ConsumptionRecorded", 1, &good).is_ok());
        let bad = json!({"partner_id": "", "amount": {"amount": "1.00", "currency": "CNY"}});
        let err = set.check("ConsumptionRecorded", 1, &bad).unwrap_err();
        assert!(matches!(err, PayloadError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("/partner_id"), "{err}");
        assert_eq!(
            set.check("ConsumptionRecorded", 2, &good),
            Err(PayloadError::NoSchema { event_type: "ConsumptionRecorded".into(), version: 2 })
        );
    }

    #[test]
    fn a_directory_of_schema_files_loads_and_a_broken_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ConsumptionRecorded.v1.json"), consumption_schema().to_string()).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let set = SchemaSet::load_dir(dir.path()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.contains("ConsumptionRecorded", 1));

        std::fs::write(dir.path().join("Broken.v1.json"), "{").unwrap();
        let err = SchemaSet::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("Broken.v1.json"), "{err}");
    }

    #[test]
    fn a_schema_that_does_not_compile_is_refused() {
        let err = SchemaSet::from_list([("X".to_string(), 1, json!({"type": 12}))]).unwrap_err();
        assert!(matches!(err, SchemaError::Compile { .. }), "{err}");
    }
}
