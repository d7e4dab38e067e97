//! The versioned JSON Schemas of every message, embedded at build time from `schemas/`.
//!
//! The catalogue is the single list of message types the system knows; a test
//! checks that every schema file is listed here and that every example validates.

use std::collections::HashMap;
use std::sync::LazyLock;

use jsonschema::{Registry, Validator};
use serde_json::Value;

/// A schema file: message type, version, its JSON text, and a valid example.
pub struct SchemaFile {
    pub message_type: &'static str,
    pub version: u32,
    pub schema: &'static str,
    pub example: &'static str,
}

macro_rules! schema_file {
    ($type:literal, $version:literal) => {
        SchemaFile {
            message_type: $type,
            version: $version,
            schema: include_str!(concat!("../../../schemas/", $type, "/v", $version, ".json")),
            example: include_str!(concat!(
                "../../../schemas/",
                $type,
                "/v",
                $version,
                ".example.json"
            )),
        }
    };
}

pub const COMMON_SCHEMA_ID: &str = "https://sportello.example/schemas/common/v1.json";
const COMMON_SCHEMA: &str = include_str!("../../../schemas/common/v1.json");

pub const SCHEMA_FILES: &[SchemaFile] = &[
    schema_file!("request.submitted", 1),
    schema_file!("request.submitted", 2),
    schema_file!("request.message_added", 1),
    schema_file!("document.state_changed", 1),
    schema_file!("documents.registration_requested", 1),
    schema_file!("documents.registered", 1),
    schema_file!("ticket.opened", 1),
    schema_file!("ticket.opened", 2),
    schema_file!("ticket.changed", 1),
    schema_file!("ticket.message_added", 1),
    schema_file!("timer.fired", 1),
    schema_file!("appointment.confirmed", 1),
    schema_file!("appointment.cancelled", 1),
    schema_file!("appointment.completed", 1),
    schema_file!("appointment.availability_requested", 1),
    schema_file!("appointment.availability", 1),
    schema_file!("appointment.hold_requested", 1),
    schema_file!("appointment.confirm_requested", 1),
    schema_file!("appointment.cancel_requested", 1),
    schema_file!("appointment.command_outcome", 1),
    schema_file!("appointment.callback_due", 1),
    schema_file!("application.submitted", 1),
    schema_file!("appointment.callback_outcome", 1),
    schema_file!("documents.window_opened", 1),
    schema_file!("documents.window_closed", 1),
    schema_file!("delegation.granted", 1),
    schema_file!("delegation.revoked", 1),
    schema_file!("pin.changed", 1),
    schema_file!("pin.requested", 1),
    schema_file!("pin.verification_requested", 1),
    schema_file!("pin.verification_outcome", 1),
];

#[derive(Debug, thiserror::Error)]
pub enum ContractViolation {
    #[error("message is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("message has no string `type` and integer `schema_version`")]
    MissingTypeOrVersion,
    #[error("unknown message type {message_type} version {version}")]
    UnknownType { message_type: String, version: u64 },
    #[error("message does not match schema {message_type} v{version}: {details}")]
    SchemaMismatch {
        message_type: String,
        version: u64,
        details: String,
    },
}

pub struct SchemaCatalogue {
    validators: HashMap<(&'static str, u32), Validator>,
}

static CATALOGUE: LazyLock<SchemaCatalogue> = LazyLock::new(|| {
    // The schemas are compiled into the binary and covered by tests, so a
    // failure here is a build defect, not bad input.
    SchemaCatalogue::build().expect("embedded JSON Schemas must compile")
});

/// The process-wide catalogue, compiled once.
pub fn catalogue() -> &'static SchemaCatalogue {
    &CATALOGUE
}

impl SchemaCatalogue {
    fn build() -> anyhow::Result<Self> {
        let common: Value = serde_json::from_str(COMMON_SCHEMA)?;
        let registry = Registry::new().add(COMMON_SCHEMA_ID, common)?.prepare()?;
        let mut validators = HashMap::new();
        for file in SCHEMA_FILES {
            let schema: Value = serde_json::from_str(file.schema)?;
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .with_registry(&registry)
                .build(&schema)
                .map_err(|e| {
                    anyhow::anyhow!("schema {} v{}: {e}", file.message_type, file.version)
                })?;
            validators.insert((file.message_type, file.version), validator);
        }
        Ok(Self { validators })
    }

    /// Parses raw bytes and checks them against the schema their own `type` and
    /// `schema_version` name.
    pub fn validate_bytes(&self, raw: &[u8]) -> Result<Value, ContractViolation> {
        let value: Value = serde_json::from_slice(raw)
            .map_err(|e| ContractViolation::MalformedJson(e.to_string()))?;
        self.validate(&value)?;
        Ok(value)
    }

    pub fn validate(&self, message: &Value) -> Result<(), ContractViolation> {
        let message_type = message.get("type").and_then(Value::as_str);
        let version = message.get("schema_version").and_then(Value::as_u64);
        let (Some(message_type), Some(version)) = (message_type, version) else {
            return Err(ContractViolation::MissingTypeOrVersion);
        };
        let unknown = || ContractViolation::UnknownType {
            message_type: message_type.to_owned(),
            version,
        };
        let version_u32 = u32::try_from(version).map_err(|_| unknown())?;
        let validator = self
            .validators
            .get(&(message_type, version_u32))
            .ok_or_else(unknown)?;
        // `masked` keeps the offending values (personal data) out of the reason.
        // A property that failed its own schema also counts as "unevaluated"
        // for the envelope's `unevaluatedProperties`: that echo is reported
        // only when it is the only error (a property truly unknown).
        let errors: Vec<_> = validator.iter_errors(message).take(50).collect();
        let is_echo = |e: &jsonschema::ValidationError<'_>| {
            matches!(
                e.kind(),
                jsonschema::error::ValidationErrorKind::UnevaluatedProperties { .. }
            )
        };
        let real: Vec<_> = errors.iter().filter(|e| !is_echo(e)).collect();
        let shown: Vec<_> = if real.is_empty() {
            errors.iter().collect()
        } else {
            real
        };
        let details: Vec<String> = shown
            .iter()
            .take(5)
            .map(|e| format!("{}: {}", e.instance_path(), e.masked()))
            .collect();
        if details.is_empty() {
            Ok(())
        } else {
            Err(ContractViolation::SchemaMismatch {
                message_type: message_type.to_owned(),
                version,
                details: details.join("; "),
            })
        }
    }

    pub fn knows(&self, message_type: &str, version: u32) -> bool {
        self.validators.contains_key(&(message_type, version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_bad_field_is_reported_without_the_unevaluated_echo() {
        let file = SCHEMA_FILES
            .iter()
            .find(|f| f.message_type == "request.submitted" && f.version == 2)
            .unwrap();
        let example: Value = serde_json::from_str(file.example).unwrap();
        let mut missing = example.clone();
        missing.as_object_mut().unwrap().remove("correlation_id");
        let mut bad_time = example.clone();
        bad_time["occurred_at"] = Value::from("ieri");
        for message in [missing, bad_time] {
            let reason = catalogue().validate(&message).unwrap_err().to_string();
            assert!(!reason.contains("nevaluated"), "{reason}");
        }
        let mut unknown = example;
        unknown["colore"] = Value::from("blu");
        let reason = catalogue().validate(&unknown).unwrap_err().to_string();
        assert!(reason.contains("colore"), "{reason}");
    }

    #[test]
    fn every_example_is_valid() {
        for file in SCHEMA_FILES {
            let example: Value = serde_json::from_str(file.example).unwrap();
            catalogue()
                .validate(&example)
                .unwrap_or_else(|e| panic!("{} v{}: {e}", file.message_type, file.version));
        }
    }

    #[test]
    fn every_schema_file_on_disk_is_in_the_catalogue() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        for entry in std::fs::read_dir(&root).unwrap() {
            let dir = entry.unwrap().path();
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            if name == "common" {
                continue;
            }
            for file in std::fs::read_dir(&dir).unwrap() {
                let file = file.unwrap().file_name().to_string_lossy().into_owned();
                if let Some(version) = file
                    .strip_prefix('v')
                    .and_then(|f| f.strip_suffix(".json"))
                    .filter(|v| !v.contains('.'))
                {
                    let version: u32 = version.parse().unwrap();
                    assert!(catalogue().knows(&name, version), "{name} v{version}");
                }
            }
        }
    }

    #[test]
    fn reports_what_is_wrong_without_echoing_values() {
        let mut example: Value = serde_json::from_str(SCHEMA_FILES[0].example).unwrap();
        example["payload"]["subject"] = Value::String(String::new());
        example["principal"]["tax_code"] = Value::String("NOT-A-TAX-CODE".into());
        let err = catalogue().validate(&example).unwrap_err().to_string();
        assert!(err.contains("/payload/subject"), "{err}");
        assert!(!err.contains("NOT-A-TAX-CODE"), "{err}");
    }

    #[test]
    fn unknown_type_and_malformed_json_are_refused() {
        assert!(matches!(
            catalogue().validate_bytes(b"{not json"),
            Err(ContractViolation::MalformedJson(_))
        ));
        assert!(matches!(
            catalogue().validate(&serde_json::json!({"type": "nope", "schema_version": 1})),
            Err(ContractViolation::UnknownType { .. })
        ));
        assert!(matches!(
            catalogue().validate(&serde_json::json!({"payload": {}})),
            Err(ContractViolation::MissingTypeOrVersion)
        ));
    }
}
