//! Payloads of the messages channels publish, and of the events Sportello emits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Channel, CodiceFiscale};

/// `request.submitted` v1: a request that opens a back-office ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSubmitted {
    /// Area of the request (UniEmens, versamenti, ...).
    pub ambito: String,
    /// Contribution position.
    pub matricola: Option<String>,
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub contact: Contact,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// The envelope of every event Sportello emits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event<P> {
    pub message_id: Uuid,
    #[serde(rename = "type")]
    pub message_type: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: String,
    /// The message that caused this event.
    pub causation_id: Option<Uuid>,
    pub payload: P,
}

/// `ticket.opened` v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketOpened {
    pub ticket_id: Uuid,
    pub channel: Channel,
    pub ambito: String,
    pub matricola: Option<String>,
    pub subject: String,
    pub subject_tax_code: CodiceFiscale,
    pub state: String,
    pub opened_at: DateTime<Utc>,
}

/// `timer.fired` v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerFired {
    pub timer_id: Uuid,
    pub kind: String,
    pub key: String,
    pub fire_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    pub data: serde_json::Value,
}
