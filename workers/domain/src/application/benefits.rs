//! The benefits citizens apply for (*prestazioni*), their categories and the
//! fields each category asks, as data (`workers/config/applications.json`):
//! adding a benefit, a category or a field is an edit of that file, not code.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::window::{OpeningDays, SubmissionWindow};
use sportello_contract::CodiceFiscale;

/// One benefit (*prestazione*), e.g. the COVID-19 indemnity.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Benefit {
    pub id: String,
    pub label: String,
    /// The ambito its back-office case is routed by (`ambiti` reference data).
    pub ambito: String,
    /// The opening days: applications are accepted from `from` to `until`
    /// (local dates, both included; no `until`: open-ended).
    pub opening: OpeningDays,
    /// When, on an opening day, each channel and kind of principal may submit.
    pub windows: Vec<SubmissionWindow>,
    pub categories: Vec<Category>,
}

/// A category of applicants (e.g. seasonal tourism workers) and what it must declare.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Category {
    pub id: String,
    pub label: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Field {
    pub name: String,
    pub label: String,
    #[serde(flatten)]
    pub kind: FieldKind,
    #[serde(default = "required_by_default")]
    pub required: bool,
}

fn required_by_default() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FieldKind {
    Text {
        #[serde(default = "default_max_length")]
        max_length: usize,
    },
    Integer {
        #[serde(default)]
        min: Option<i64>,
        #[serde(default)]
        max: Option<i64>,
    },
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// A codice fiscale (checked like every other).
    TaxCode,
    /// An Italian *partita IVA*: 11 digits with the Luhn-style check digit.
    VatNumber,
    /// One of `values`.
    Choice {
        values: Vec<String>,
    },
}

fn default_max_length() -> usize {
    200
}

/// Why an application's fields are refused: each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("field `{0}` is required for this category")]
    Missing(String),
    #[error("field `{0}` is not asked by this category")]
    Unknown(String),
    #[error("field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

impl Category {
    /// Checks the declared fields against the category's: every required
    /// one present, none unknown, each of its kind.
    pub fn check_fields(&self, fields: &BTreeMap<String, Value>) -> Result<(), FieldError> {
        if let Some(unknown) = fields
            .keys()
            .find(|name| !self.fields.iter().any(|f| &f.name == *name))
        {
            return Err(FieldError::Unknown(unknown.clone()));
        }
        for field in &self.fields {
            match fields.get(&field.name) {
                None | Some(Value::Null) if field.required => {
                    return Err(FieldError::Missing(field.name.clone()))
                }
                None | Some(Value::Null) => {}
                Some(value) => field
                    .kind
                    .check(value)
                    .map_err(|reason| FieldError::Invalid {
                        field: field.name.clone(),
                        reason,
                    })?,
            }
        }
        Ok(())
    }
}

impl FieldKind {
    fn check(&self, value: &Value) -> Result<(), String> {
        match self {
            FieldKind::Text { max_length } => match value.as_str() {
                Some(text) if text.trim().is_empty() => Err("must not be empty".into()),
                Some(text) if text.chars().count() > *max_length => {
                    Err(format!("at most {max_length} characters"))
                }
                Some(_) => Ok(()),
                None => Err("must be text".into()),
            },
            FieldKind::Integer { min, max } => {
                let number = value.as_i64().ok_or("must be a whole number")?;
                if min.is_some_and(|min| number < min) {
                    return Err(format!("must be at least {}", min.unwrap_or_default()));
                }
                if max.is_some_and(|max| number > max) {
                    return Err(format!("must be at most {}", max.unwrap_or_default()));
                }
                Ok(())
            }
            FieldKind::Boolean => value
                .as_bool()
                .map(|_| ())
                .ok_or_else(|| "must be true or false".into()),
            FieldKind::Date => value
                .as_str()
                .and_then(|raw| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok())
                .map(|_| ())
                .ok_or_else(|| "must be a date YYYY-MM-DD".into()),
            FieldKind::TaxCode => value
                .as_str()
                .ok_or_else(|| "must be a codice fiscale".to_owned())
                .and_then(|raw| {
                    CodiceFiscale::parse(raw)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }),
            FieldKind::VatNumber => value
                .as_str()
                .ok_or_else(|| "must be a partita IVA".to_owned())
                .and_then(check_vat_number),
            FieldKind::Choice { values } => match value.as_str() {
                Some(choice) if values.iter().any(|v| v == choice) => Ok(()),
                _ => Err(format!("must be one of: {}", values.join(", "))),
            },
        }
    }
}

/// *Partita IVA*: 11 digits, the last a check digit over the first ten
/// (odd positions as they are, even positions doubled with 9 subtracted
/// above 9).
fn check_vat_number(raw: &str) -> Result<(), String> {
    let digits: Vec<u32> = raw.chars().filter_map(|c| c.to_digit(10)).collect();
    if raw.len() != 11 || digits.len() != 11 {
        return Err("a partita IVA is 11 digits".into());
    }
    let sum: u32 = digits[..10]
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                d
            } else {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            }
        })
        .sum();
    if (10 - sum % 10) % 10 == digits[10] {
        Ok(())
    } else {
        Err("the partita IVA's check digit is wrong".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn category() -> Category {
        serde_json::from_value(json!({
            "id": "c", "label": "C",
            "fields": [
                {"name": "vat", "label": "P. IVA", "kind": "vat_number"},
                {"name": "days", "label": "Giornate", "kind": "integer", "min": 50},
                {"name": "kind", "label": "Gestione", "kind": "choice", "values": ["artigiani", "commercianti"]},
                {"name": "note", "label": "Note", "kind": "text", "required": false}
            ]
        }))
        .unwrap()
    }

    fn fields(value: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_complete_declaration_passes() {
        let ok = fields(json!({"vat": "01234567897", "days": 60, "kind": "artigiani"}));
        assert_eq!(category().check_fields(&ok), Ok(()));
    }

    #[test]
    fn each_refusal_names_its_field() {
        let c = category();
        assert_eq!(
            c.check_fields(&fields(json!({"days": 60, "kind": "artigiani"}))),
            Err(FieldError::Missing("vat".into()))
        );
        assert_eq!(
            c.check_fields(&fields(
                json!({"vat": "01234567897", "days": 60, "kind": "artigiani", "x": 1})
            )),
            Err(FieldError::Unknown("x".into()))
        );
        let low = c.check_fields(&fields(
            json!({"vat": "01234567897", "days": 10, "kind": "artigiani"}),
        ));
        assert!(matches!(low, Err(FieldError::Invalid { ref field, .. }) if field == "days"));
        let bad_vat = c.check_fields(&fields(
            json!({"vat": "01234567890", "days": 60, "kind": "artigiani"}),
        ));
        assert!(matches!(bad_vat, Err(FieldError::Invalid { ref field, .. }) if field == "vat"));
        let choice = c.check_fields(&fields(
            json!({"vat": "01234567897", "days": 60, "kind": "x"}),
        ));
        assert!(matches!(choice, Err(FieldError::Invalid { ref field, .. }) if field == "kind"));
    }

    #[test]
    fn opening_days_include_both_ends() {
        let days = OpeningDays {
            from: NaiveDate::from_ymd_opt(2020, 4, 1).unwrap(),
            until: Some(NaiveDate::from_ymd_opt(2020, 4, 30).unwrap()),
        };
        assert!(days.contains(NaiveDate::from_ymd_opt(2020, 4, 1).unwrap()));
        assert!(days.contains(NaiveDate::from_ymd_opt(2020, 4, 30).unwrap()));
        assert!(!days.contains(NaiveDate::from_ymd_opt(2020, 5, 1).unwrap()));
    }
}
