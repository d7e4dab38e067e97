//! `application.submitted`: a benefit application (*domanda di prestazione*).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CodiceFiscale, Contact};
use crate::routing::Location;

/// `application.submitted` v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicationSubmitted {
    /// A benefit of `workers/config/applications.json`, e.g. `covid19_indemnity`.
    pub benefit: String,
    /// One of the benefit's categories, e.g. `seasonal_tourism_spa`.
    pub category: String,
    pub applicant: Applicant,
    /// The category's fields (names and kinds are data, per category).
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    pub payment: Payment,
    #[serde(default)]
    pub contact: Contact,
    /// Where the applicant lives: the competent office is chosen by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applicant {
    pub tax_code: CodiceFiscale,
    pub surname: String,
    pub name: String,
}

/// Where the benefit is paid, and who declares to hold the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub iban: String,
    /// The account's holders as declared (*intestatari*); the applicant must be one.
    pub holders: Vec<AccountHolder>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountHolder {
    pub tax_code: CodiceFiscale,
    pub name: String,
}
