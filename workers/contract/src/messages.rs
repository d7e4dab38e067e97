//! Payloads of the messages channels publish, and of the events Sportello emits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Channel, CodiceFiscale};
use crate::routing::{Location, RoutedBy};
use crate::ticket::{ChangeKind, Outcome, Visibility};

/// `request.submitted` v1 and v2: a request that opens a back-office ticket.
/// v2 adds the locations routing uses and up to three attachments; a v1
/// message has neither and goes to triage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSubmitted {
    /// Area of the request (UniEmens, versamenti, ...).
    pub ambito: String,
    /// Contribution position.
    pub matricola: Option<String>,
    /// The position's scheme (v2; absent: `aziende_uniemens`, see
    /// `FIRST_GESTIONE` of the domain's `delegation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gestione: Option<String>,
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub contact: Contact,
    /// Where the citizen lives (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Where the contribution position is registered (v2); decides before `location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_location: Option<Location>,
    /// At most three (v2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<InlineAttachment>,
}

/// `request.message_added` v1: the citizen's side writes again on an open
/// ticket (a reply, or something the request left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageAdded {
    pub ticket_id: Uuid,
    pub text: String,
    /// At most three, checked like a request's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<InlineAttachment>,
}

/// A file carried inside a message, base64-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineAttachment {
    pub file_name: String,
    pub content_base64: String,
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

/// `ticket.opened` v2: a ticket was opened, registered and routed.
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
    pub office_aoo: String,
    pub desk_kind: Option<String>,
    pub routed_by: RoutedBy,
    pub registration_id: Uuid,
    /// *Segnatura* of the request's registration.
    pub signature: String,
    pub attachments: usize,
    /// As given on the request, for notifications.
    pub contact: Contact,
}

/// `ticket.changed` v1: an operator changed a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketChanged {
    pub ticket_id: Uuid,
    pub subject_tax_code: CodiceFiscale,
    pub change: ChangeKind,
    pub from_state: String,
    pub state: String,
    /// The office holding the ticket after the change.
    pub office_aoo: String,
    /// Whether that office is the triage office (*Smistamento centrale*):
    /// a reassignment to any other office brings the ticket to the office
    /// competent for it, which the citizen is told.
    #[serde(default)]
    pub office_is_triage: bool,
    pub visibility: Visibility,
    /// Public comments only.
    pub comment: Option<String>,
    pub outcome: Option<Outcome>,
    pub operator_id: String,
    pub at: DateTime<Utc>,
}

/// `ticket.message_added` v1: a message of the citizen's side was kept on a
/// ticket. The text stays in the ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketMessageAdded {
    pub ticket_id: Uuid,
    pub subject_tax_code: CodiceFiscale,
    pub state: String,
    pub office_aoo: String,
    /// `citizen` or `intermediary`.
    pub author: String,
    /// Files the message brought (documents of the ticket, *uploaded*).
    pub attachments: usize,
    pub at: DateTime<Utc>,
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

/// `document.state_changed` v1: every transition of a document, with who made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentStateChanged {
    pub document_id: Uuid,
    pub case_id: Uuid,
    pub direction: String,
    pub file_name: String,
    /// Absent when the document was just uploaded.
    pub from: Option<String>,
    pub to: String,
    pub actor: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// `documents.registration_requested` v1: an operator sent documents of a
/// case to the protocol register. The registration worker consumes it; its
/// message id is the registration's idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentsRegistrationRequested {
    pub case_id: Uuid,
    pub aoo: String,
    pub subject: String,
    pub document_ids: Vec<Uuid>,
    pub requested_by: serde_json::Value,
}

/// `documents.registered` v1: the documents have a protocol number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentsRegistered {
    pub registration_id: Uuid,
    pub case_id: Uuid,
    /// *Segnatura*, e.g. `INPS.0040.29/05/2025.0001632`.
    pub signature: String,
    pub registered_at: DateTime<Utc>,
    pub document_ids: Vec<Uuid>,
    /// Path of the PDF receipt on the documents API.
    pub receipt_path: String,
}

/// `appointment.confirmed` v1: an appointment was confirmed (*Conferma*).
/// Notifications put it in the citizen's "Scadenze" and remind the day before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentConfirmed {
    pub appointment_id: Uuid,
    pub subject_tax_code: CodiceFiscale,
    pub office_aoo: String,
    pub office_name: String,
    /// The desk's name, as the citizen reads it.
    pub desk: String,
    /// `in_person`, `phone` or `video`.
    pub mode: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The video room (video appointments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_link: Option<String>,
    /// Where the office receives (in-person appointments, when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_address: Option<String>,
    /// The number the office calls (phone call-backs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_phone: Option<String>,
    pub contact: Contact,
}

/// `appointment.completed` v1: a confirmed appointment took place and is
/// now *svolto* (done): the operator ended its video call, or its call-back
/// was answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentCompleted {
    pub appointment_id: Uuid,
    pub subject_tax_code: CodiceFiscale,
    pub office_aoo: String,
    /// The desk's kind (`conto_assicurativo`).
    pub desk_kind: String,
    /// `in_person`, `phone` or `video`.
    pub mode: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    /// `video_call_ended` or `callback_answered`.
    pub completed_by: String,
    /// The operator (or contact-centre agent) who completed it.
    pub actor_id: String,
}

/// `appointment.cancelled` v1: a confirmed appointment was cancelled
/// (*Cancella prenotazione*) by the citizen's side or the office.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentCancelled {
    pub appointment_id: Uuid,
    pub subject_tax_code: CodiceFiscale,
    pub office_aoo: String,
    pub office_name: String,
    /// The desk's name, as the citizen reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desk: Option<String>,
    /// `in_person`, `phone` or `video`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    pub starts_at: DateTime<Utc>,
    /// `citizen` or `office`.
    pub cancelled_by: String,
    pub reason: Option<String>,
    pub contact: Contact,
}

/// `delegation.granted` v1 from a channel: the citizen grants an
/// intermediary a *delega* for one scheme (optionally one position of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationGranted {
    pub citizen_tax_code: CodiceFiscale,
    pub intermediary_tax_code: CodiceFiscale,
    pub gestione: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matricola: Option<String>,
    /// Absent: from when it is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: DateTime<Utc>,
}

/// `delegation.revoked` v1 from a channel: the citizen (or the office for
/// them, or the intermediary renouncing) ends the intermediary's delegations
/// for a scheme, or for one position of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationRevoked {
    pub citizen_tax_code: CodiceFiscale,
    pub intermediary_tax_code: CodiceFiscale,
    pub gestione: String,
    /// Absent: every delegation of the scheme; present: that position's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matricola: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `delegation.granted` v1 as Sportello emits it once applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelegationGrantedEvent {
    pub delegation_id: Uuid,
    pub citizen_tax_code: CodiceFiscale,
    pub intermediary_tax_code: CodiceFiscale,
    pub gestione: String,
    pub matricola: Option<String>,
    pub valid_from: DateTime<Utc>,
    pub valid_to: DateTime<Utc>,
    /// `citizen` or `operator` (a signed paper delega registered at the office).
    pub granted_by: String,
    /// True when an active delegation with the same scope was there: its
    /// validity was replaced by this grant's.
    pub renewed: bool,
}

/// `delegation.revoked` v1 as Sportello emits it once applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelegationRevokedEvent {
    pub delegation_ids: Vec<Uuid>,
    pub citizen_tax_code: CodiceFiscale,
    pub intermediary_tax_code: CodiceFiscale,
    pub gestione: String,
    pub matricola: Option<String>,
    pub revoked_at: DateTime<Utc>,
    /// `citizen`, `operator` or `intermediary` (renouncing).
    pub revoked_by: String,
    pub reason: Option<String>,
}
