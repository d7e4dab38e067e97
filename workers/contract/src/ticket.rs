//! The words of a ticket's history that its events carry: what changed,
//! who may read it, how a closed ticket ended.

use serde::{Deserialize, Serialize};

/// *Esito*: how a closed ticket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The request was granted.
    Accolta,
    /// The request was refused.
    Respinta,
    /// Answered: the information asked for was given.
    Evasa,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Accolta, Outcome::Respinta, Outcome::Evasa];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accolta => "accolta",
            Outcome::Respinta => "respinta",
            Outcome::Evasa => "evasa",
        }
    }

    pub fn parse(raw: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == raw)
    }
}

/// Who may read a history entry: public ones are part of the conversation
/// with the citizen; internal notes are for staff only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Internal,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Internal => "internal",
        }
    }

    pub fn parse(raw: &str) -> Option<Visibility> {
        match raw {
            "public" => Some(Visibility::Public),
            "internal" => Some(Visibility::Internal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Opened,
    TakenInCharge,
    Commented,
    Reassigned,
    Closed,
    /// The citizen's side wrote on the ticket (`request.message_added`).
    CitizenMessage,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Opened => "opened",
            ChangeKind::TakenInCharge => "taken_in_charge",
            ChangeKind::Commented => "commented",
            ChangeKind::Reassigned => "reassigned",
            ChangeKind::Closed => "closed",
            ChangeKind::CitizenMessage => "citizen_message",
        }
    }

    pub fn parse(raw: &str) -> Option<ChangeKind> {
        [
            ChangeKind::Opened,
            ChangeKind::TakenInCharge,
            ChangeKind::Commented,
            ChangeKind::Reassigned,
            ChangeKind::Closed,
            ChangeKind::CitizenMessage,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
    }
}
