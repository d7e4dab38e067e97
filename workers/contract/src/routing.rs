//! Where a request comes from and how it reached its office, as messages
//! carry them (the rules that decide live in the domain's `routing`).

use serde::{Deserialize, Serialize};

/// Where a person or a contribution position is, as the channel sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Province code (*sigla*), e.g. `CR`.
    pub province: String,
    pub municipality: Option<String>,
    /// CAP.
    pub postal_code: Option<String>,
}

/// How a ticket reached its office: a routing rule, the triage default, or
/// an operator's reassignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutedBy {
    Rule,
    Triage,
    Reassigned,
}

impl RoutedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            RoutedBy::Rule => "rule",
            RoutedBy::Triage => "triage",
            RoutedBy::Reassigned => "reassigned",
        }
    }
}
