//! Booking over the broker: the commands and queries channels publish about
//! appointments, and what Sportello answers or hands to contact-centre agents.
//! Schemas in `schemas/appointment.*`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::CodiceFiscale;

/// `appointment.availability_requested` v1: a request/reply query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityRequested {
    pub office_aoo: String,
    pub desk: String,
    pub mode: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// `appointment.hold_requested` v1 (*Prenota*).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequested {
    pub office_aoo: String,
    pub desk: String,
    pub mode: String,
    pub starts_at: DateTime<Utc>,
    pub phone: String,
    pub notes: String,
    /// Booking from a Cassetto conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<Uuid>,
    /// An intermediary's delegating citizen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_tax_code: Option<CodiceFiscale>,
    /// The scheme (gestione) of the position it is about (optional, added
    /// to v1 compatibly: absent, the conversation's, else `aziende_uniemens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gestione: Option<String>,
    /// The citizen's name, as the channel knows it (optional, added to v1
    /// compatibly: messages without it are as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citizen_name: Option<String>,
}

/// `appointment.confirm_requested` v1 (*Conferma*).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmRequested {
    pub appointment_id: Uuid,
}

/// `appointment.cancel_requested` v1 (*Cancella prenotazione*).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequested {
    pub appointment_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What came of a phone call-back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackResult {
    Done,
    /// Nobody answered: the call goes back to the queue later.
    NoAnswer,
    /// A new appointment was booked instead.
    Rescheduled,
}

impl CallbackResult {
    /// As the schema (and the `appointment_calls` table) spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackResult::Done => "done",
            CallbackResult::NoAnswer => "no_answer",
            CallbackResult::Rescheduled => "rescheduled",
        }
    }
}

/// `appointment.callback_outcome` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackOutcome {
    pub appointment_id: Uuid,
    pub call_id: Uuid,
    pub outcome: CallbackResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A free slot, as availability answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeSlot {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Places left.
    pub free: u32,
}

/// Why a query or command got no positive answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable, for programs: `slot_taken`, `unknown_office`, ...
    pub code: String,
    /// For people.
    pub message: String,
    /// With `slot_taken`: the next free slots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<FreeSlot>,
}

/// `appointment.availability` v1: the reply to an availability query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub office_aoo: String,
    pub desk: String,
    pub mode: String,
    pub slots: Vec<FreeSlot>,
    pub error: Option<Refusal>,
}

/// The outcome kinds of `appointment.command_outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandResult {
    Held,
    Confirmed,
    Cancelled,
    /// A call-back outcome was recorded.
    Recorded,
    Refused,
}

/// `appointment.command_outcome` v1: the reply to a booking command; kept,
/// so a repeated command answers the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub command_type: String,
    pub outcome: CommandResult,
    pub appointment_id: Option<Uuid>,
    pub state: Option<String>,
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub receipt: Option<serde_json::Value>,
    pub refusal: Option<Refusal>,
}

impl CommandOutcome {
    /// The answer to a refused `command_type`.
    pub fn refused(command_type: &str, refusal: Refusal) -> CommandOutcome {
        CommandOutcome {
            command_type: command_type.to_owned(),
            outcome: CommandResult::Refused,
            appointment_id: None,
            state: None,
            hold_expires_at: None,
            receipt: None,
            refusal: Some(refusal),
        }
    }
}

/// `appointment.callback_due` v1: a call for the office's agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackDue {
    pub call_id: Uuid,
    pub appointment_id: Uuid,
    pub office_aoo: String,
    pub desk: String,
    pub desk_name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub citizen_tax_code: CodiceFiscale,
    pub phone: String,
    pub notes: String,
    /// 1 for the first call; more after `no_answer`.
    pub attempt: u32,
}
