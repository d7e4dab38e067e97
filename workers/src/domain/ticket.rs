//! *Quesito*: the back-office ticket a request opens, and its states.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::contract::{
    Channel, CodiceFiscale, Contact, Envelope, Event, Principal, RequestSubmitted, TicketOpened,
};

/// The state the citizen sees is always this back-office state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "ticket_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// *aperta*
    Aperta,
    /// *in carico*: an operator took it in charge.
    InCarico,
    /// *chiusa*: closed with an outcome (*esito*).
    Chiusa,
}

impl TicketState {
    pub fn may_become(self, next: TicketState) -> bool {
        use TicketState::*;
        matches!(
            (self, next),
            (Aperta, InCarico) | (InCarico, Chiusa) | (Aperta, Chiusa)
        )
    }
}

/// A ticket about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    pub id: Uuid,
    pub request_message_id: Uuid,
    pub channel: Channel,
    pub ambito: String,
    pub matricola: Option<String>,
    pub subject: String,
    pub body: String,
    pub subject_tax_code: CodiceFiscale,
    pub submitted_by: Principal,
    pub contact: Contact,
    pub correlation_id: String,
    pub opened_at: DateTime<Utc>,
}

/// Opens a ticket from an admitted request. `None` when the request names no
/// citizen, which admission already refuses.
pub fn open_ticket(
    request: &Envelope<RequestSubmitted>,
    now: DateTime<Utc>,
) -> Option<(NewTicket, Event<TicketOpened>)> {
    let subject_tax_code = request.principal.subject_tax_code()?.clone();
    let ticket = NewTicket {
        id: Uuid::now_v7(),
        request_message_id: request.message_id,
        channel: request.channel,
        ambito: request.payload.ambito.clone(),
        matricola: request.payload.matricola.clone(),
        subject: request.payload.subject.clone(),
        body: request.payload.text.clone(),
        subject_tax_code,
        submitted_by: request.principal.clone(),
        contact: request.payload.contact.clone(),
        correlation_id: request.correlation_id.clone(),
        opened_at: now,
    };
    let event = Event {
        message_id: Uuid::now_v7(),
        message_type: "ticket.opened".into(),
        schema_version: 1,
        occurred_at: now,
        correlation_id: request.correlation_id.clone(),
        causation_id: Some(request.message_id),
        payload: TicketOpened {
            ticket_id: ticket.id,
            channel: ticket.channel,
            ambito: ticket.ambito.clone(),
            matricola: ticket.matricola.clone(),
            subject: ticket.subject.clone(),
            subject_tax_code: ticket.subject_tax_code.clone(),
            state: "aperta".into(),
            opened_at: now,
        },
    };
    Some((ticket, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::schemas::{catalogue, SCHEMA_FILES};

    #[test]
    fn opening_emits_a_schema_valid_event() {
        let request: Envelope<RequestSubmitted> =
            serde_json::from_str(SCHEMA_FILES[0].example).unwrap();
        let (ticket, event) = open_ticket(&request, Utc::now()).unwrap();
        assert_eq!(ticket.subject_tax_code.as_str(), "RSSMRA85T10A562S");
        assert_eq!(event.payload.ticket_id, ticket.id);
        assert_eq!(event.causation_id, Some(request.message_id));
        catalogue()
            .validate(&serde_json::to_value(&event).unwrap())
            .unwrap();
    }

    #[test]
    fn states_move_forward_only() {
        use TicketState::*;
        assert!(Aperta.may_become(InCarico));
        assert!(InCarico.may_become(Chiusa));
        assert!(!Chiusa.may_become(Aperta));
        assert!(!InCarico.may_become(Aperta));
    }
}
