//! *Quesito*: the back-office ticket a request opens, its lifecycle and who
//! may change it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use sportello_contract::ticket::{ChangeKind, Outcome, Visibility};

use super::routing::{ticket_subject, Location, RoutingDecision};
use sportello_contract::{
    Channel, CodiceFiscale, Contact, Envelope, Event, Principal, RequestSubmitted, TicketChanged,
    TicketOpened,
};

/// The state the citizen sees is always this back-office state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// *aperta*
    Aperta,
    /// *in carico*: an operator of the office took it in charge.
    InCarico,
    /// *chiusa*: closed with an outcome (*esito*).
    Chiusa,
}

impl TicketState {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Aperta => "aperta",
            TicketState::InCarico => "in_carico",
            TicketState::Chiusa => "chiusa",
        }
    }

    /// As the citizen and the staff pages show it.
    pub fn label(self) -> &'static str {
        match self {
            TicketState::Aperta => "aperta",
            TicketState::InCarico => "in carico",
            TicketState::Chiusa => "chiusa",
        }
    }

    pub fn parse(raw: &str) -> Option<TicketState> {
        [
            TicketState::Aperta,
            TicketState::InCarico,
            TicketState::Chiusa,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

/// What an operator does to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketAction {
    TakeInCharge {
        comment: Option<String>,
    },
    Comment {
        text: String,
        visibility: Visibility,
    },
    Close {
        outcome: Outcome,
        comment: String,
    },
    /// To another office, with the reason (an internal note).
    Reassign {
        to_office: String,
        reason: String,
    },
}

impl TicketAction {
    /// The history entry this action writes.
    pub fn kind(&self) -> ChangeKind {
        match self {
            TicketAction::TakeInCharge { .. } => ChangeKind::TakenInCharge,
            TicketAction::Comment { .. } => ChangeKind::Commented,
            TicketAction::Close { .. } => ChangeKind::Closed,
            TicketAction::Reassign { .. } => ChangeKind::Reassigned,
        }
    }
}

/// Why the citizen's side may not write on a ticket now, if it may not: a
/// closed ticket's conversation is over (a new request opens a new one).
pub fn refuse_citizen_message(state: TicketState) -> Option<&'static str> {
    (state == TicketState::Chiusa)
        .then_some("the ticket is closed: a new request opens a new ticket")
}

/// What a decision needs to know about the ticket as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub state: TicketState,
    pub office_aoo: String,
}

/// The operator acting: `office` is their office's AOO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: String,
    pub office: String,
}

/// One accepted change, ready to store as a history entry and apply to the ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub from_state: TicketState,
    pub to_state: TicketState,
    pub visibility: Visibility,
    pub comment: Option<String>,
    pub outcome: Option<Outcome>,
    /// Set on reassignment: the office it leaves and the one it goes to.
    pub from_office: Option<String>,
    pub to_office: Option<String>,
    /// The operator the ticket is assigned to afterwards (`None`: nobody).
    pub assigned_operator: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("the ticket belongs to office {ticket_office}; operators of office {operator_office} cannot act on it")]
    NotYourOffice {
        ticket_office: String,
        operator_office: String,
    },
    #[error("a ticket that is {state} cannot be {action}")]
    IllegalTransition {
        state: &'static str,
        action: &'static str,
    },
    #[error("{0} needs a comment")]
    MissingComment(&'static str),
    #[error("comments are at most {MAX_COMMENT_CHARS} characters")]
    CommentTooLong,
    #[error("the ticket is already at office {0}")]
    SameOffice(String),
}

pub const MAX_COMMENT_CHARS: usize = 4000;

/// Decides whether `operator` may do `action` to the ticket, and what changes.
///
/// aperta -> in carico -> chiusa (with an esito and a comment). Comments
/// while not closed. Reassignment to another office while not closed puts
/// the ticket back to aperta, unassigned, for the new office to take.
pub fn decide(
    ticket: &TicketFacts,
    operator: &Operator,
    action: TicketAction,
) -> Result<Change, LifecycleError> {
    if operator.office != ticket.office_aoo {
        return Err(LifecycleError::NotYourOffice {
            ticket_office: ticket.office_aoo.clone(),
            operator_office: operator.office.clone(),
        });
    }
    let state = ticket.state;
    let illegal = |action| LifecycleError::IllegalTransition {
        state: state.label(),
        action,
    };
    let change = |kind, to_state, visibility, comment| Change {
        kind,
        from_state: state,
        to_state,
        visibility,
        comment,
        outcome: None,
        from_office: None,
        to_office: None,
        assigned_operator: None,
    };
    match action {
        TicketAction::TakeInCharge { comment } => {
            if state != TicketState::Aperta {
                return Err(illegal("taken in charge"));
            }
            Ok(Change {
                assigned_operator: Some(operator.id.clone()),
                ..change(
                    ChangeKind::TakenInCharge,
                    TicketState::InCarico,
                    Visibility::Public,
                    optional_comment(comment)?,
                )
            })
        }
        TicketAction::Comment { text, visibility } => {
            if state == TicketState::Chiusa {
                return Err(illegal("commented"));
            }
            let text = required_comment(text, "a comment")?;
            Ok(change(ChangeKind::Commented, state, visibility, Some(text)))
        }
        TicketAction::Close { outcome, comment } => {
            if state != TicketState::InCarico {
                return Err(illegal("closed (take it in charge first)"));
            }
            let comment = required_comment(comment, "closing")?;
            Ok(Change {
                outcome: Some(outcome),
                ..change(
                    ChangeKind::Closed,
                    TicketState::Chiusa,
                    Visibility::Public,
                    Some(comment),
                )
            })
        }
        TicketAction::Reassign { to_office, reason } => {
            if state == TicketState::Chiusa {
                return Err(illegal("reassigned"));
            }
            if to_office == ticket.office_aoo {
                return Err(LifecycleError::SameOffice(to_office));
            }
            let reason = required_comment(reason, "reassignment")?;
            Ok(Change {
                from_office: Some(ticket.office_aoo.clone()),
                to_office: Some(to_office),
                ..change(
                    ChangeKind::Reassigned,
                    TicketState::Aperta,
                    Visibility::Internal,
                    Some(reason),
                )
            })
        }
    }
}

fn optional_comment(comment: Option<String>) -> Result<Option<String>, LifecycleError> {
    match comment.map(|c| c.trim().to_owned()) {
        Some(c) if c.is_empty() => Ok(None),
        Some(c) if c.chars().count() > MAX_COMMENT_CHARS => Err(LifecycleError::CommentTooLong),
        other => Ok(other),
    }
}

fn required_comment(comment: String, what: &'static str) -> Result<String, LifecycleError> {
    optional_comment(Some(comment))?.ok_or(LifecycleError::MissingComment(what))
}

/// A ticket about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    pub id: Uuid,
    pub request_message_id: Uuid,
    pub channel: Channel,
    pub ambito: String,
    pub matricola: Option<String>,
    /// The position's scheme (*gestione*): who may act on it under a delega.
    pub gestione: String,
    /// With the ambito context in front.
    pub subject: String,
    pub body: String,
    pub subject_tax_code: CodiceFiscale,
    pub submitted_by: Principal,
    pub contact: Contact,
    pub correlation_id: String,
    pub opened_at: DateTime<Utc>,
    pub routing: RoutingDecision,
    /// Where the routing looked: the position's location, else the person's.
    pub location: Option<Location>,
}

/// The registration a new ticket got from the protocol register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRegistration {
    pub id: Uuid,
    /// *Segnatura*.
    pub signature: String,
}

/// Opens a ticket from an admitted request about `subject_tax_code`, routed
/// by `routing`.
pub fn open_ticket(
    request: &Envelope<RequestSubmitted>,
    subject_tax_code: CodiceFiscale,
    routing: RoutingDecision,
    now: DateTime<Utc>,
) -> NewTicket {
    let payload = &request.payload;
    NewTicket {
        id: Uuid::now_v7(),
        request_message_id: request.message_id,
        channel: request.channel,
        ambito: payload.ambito.clone(),
        matricola: payload.matricola.clone(),
        gestione: payload
            .gestione
            .clone()
            .unwrap_or_else(|| super::delegation::FIRST_GESTIONE.to_owned()),
        subject: ticket_subject(&routing.ambito_label, &payload.subject),
        body: payload.text.clone(),
        subject_tax_code,
        submitted_by: request.principal.clone(),
        contact: payload.contact.clone(),
        correlation_id: request.correlation_id.clone(),
        opened_at: now,
        routing,
        location: payload
            .position_location
            .clone()
            .or_else(|| payload.location.clone()),
    }
}

/// `ticket.opened` v2: registered and routed.
pub fn opened_event(
    ticket: &NewTicket,
    registration: &TicketRegistration,
    attachments: usize,
) -> Event<TicketOpened> {
    Event {
        message_id: Uuid::now_v7(),
        message_type: "ticket.opened".into(),
        schema_version: 2,
        occurred_at: ticket.opened_at,
        correlation_id: ticket.correlation_id.clone(),
        causation_id: Some(ticket.request_message_id),
        payload: TicketOpened {
            ticket_id: ticket.id,
            channel: ticket.channel,
            ambito: ticket.ambito.clone(),
            matricola: ticket.matricola.clone(),
            subject: ticket.subject.clone(),
            subject_tax_code: ticket.subject_tax_code.clone(),
            state: TicketState::Aperta.as_str().into(),
            opened_at: ticket.opened_at,
            office_aoo: ticket.routing.office_aoo.clone(),
            desk_kind: ticket.routing.desk_kind.clone(),
            routed_by: ticket.routing.routed_by,
            registration_id: registration.id,
            signature: registration.signature.clone(),
            attachments,
            contact: ticket.contact.clone(),
        },
    }
}

/// `ticket.changed` v1. Internal notes travel without their text: events
/// reach services that talk to citizens.
/// The office holding a ticket after a change, and whether it is the
/// triage office (a reassignment elsewhere reaches the competent office).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldingOffice<'a> {
    pub aoo: &'a str,
    pub is_triage: bool,
}

pub fn changed_event(
    ticket_id: Uuid,
    subject_tax_code: &CodiceFiscale,
    office_after: HoldingOffice<'_>,
    change: &Change,
    operator: &Operator,
    correlation_id: &str,
    at: DateTime<Utc>,
) -> Event<TicketChanged> {
    Event {
        message_id: Uuid::now_v7(),
        message_type: "ticket.changed".into(),
        schema_version: 1,
        occurred_at: at,
        correlation_id: correlation_id.to_owned(),
        causation_id: None,
        payload: TicketChanged {
            ticket_id,
            subject_tax_code: subject_tax_code.clone(),
            change: change.kind,
            from_state: change.from_state.as_str().into(),
            state: change.to_state.as_str().into(),
            office_aoo: office_after.aoo.to_owned(),
            office_is_triage: office_after.is_triage,
            visibility: change.visibility,
            comment: match change.visibility {
                Visibility::Public => change.comment.clone(),
                Visibility::Internal => None,
            },
            outcome: change.outcome,
            operator_id: operator.id.clone(),
            at,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::RoutedBy;
    use sportello_contract::schemas::{catalogue, SCHEMA_FILES};
    use TicketState::*;

    fn facts(state: TicketState) -> TicketFacts {
        TicketFacts {
            state,
            office_aoo: "1900".into(),
        }
    }

    fn operator(office: &str) -> Operator {
        Operator {
            id: "E0013609".into(),
            office: office.into(),
        }
    }

    fn take() -> TicketAction {
        TicketAction::TakeInCharge { comment: None }
    }

    fn close() -> TicketAction {
        TicketAction::Close {
            outcome: Outcome::Evasa,
            comment: "Abbiamo abbinato il versamento.".into(),
        }
    }

    #[test]
    fn the_lifecycle_moves_forward() {
        let taken = decide(&facts(Aperta), &operator("1900"), take()).unwrap();
        assert_eq!((taken.from_state, taken.to_state), (Aperta, InCarico));
        assert_eq!(taken.assigned_operator.as_deref(), Some("E0013609"));
        let closed = decide(&facts(InCarico), &operator("1900"), close()).unwrap();
        assert_eq!(
            (closed.to_state, closed.outcome),
            (Chiusa, Some(Outcome::Evasa))
        );
        assert_eq!(closed.visibility, Visibility::Public);
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let op = operator("1900");
        for (state, action) in [
            (InCarico, take()),
            (Chiusa, take()),
            (Aperta, close()),
            (Chiusa, close()),
            (
                Chiusa,
                TicketAction::Comment {
                    text: "x".into(),
                    visibility: Visibility::Internal,
                },
            ),
            (
                Chiusa,
                TicketAction::Reassign {
                    to_office: "1901".into(),
                    reason: "competenza".into(),
                },
            ),
        ] {
            let refused = decide(&facts(state), &op, action.clone());
            assert!(
                matches!(refused, Err(LifecycleError::IllegalTransition { .. })),
                "{state:?} {action:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn only_the_tickets_office_acts() {
        let refused = decide(&facts(Aperta), &operator("1901"), take());
        assert!(matches!(refused, Err(LifecycleError::NotYourOffice { .. })));
    }

    #[test]
    fn closing_needs_a_comment_and_comments_have_a_limit() {
        let empty = TicketAction::Close {
            outcome: Outcome::Accolta,
            comment: "  ".into(),
        };
        assert_eq!(
            decide(&facts(InCarico), &operator("1900"), empty),
            Err(LifecycleError::MissingComment("closing"))
        );
        let long = TicketAction::Comment {
            text: "a".repeat(MAX_COMMENT_CHARS + 1),
            visibility: Visibility::Public,
        };
        assert_eq!(
            decide(&facts(Aperta), &operator("1900"), long),
            Err(LifecycleError::CommentTooLong)
        );
    }

    #[test]
    fn reassignment_reopens_for_the_new_office() {
        let change = decide(
            &facts(InCarico),
            &operator("1900"),
            TicketAction::Reassign {
                to_office: "1901".into(),
                reason: "residente a Crema".into(),
            },
        )
        .unwrap();
        assert_eq!(change.to_state, Aperta);
        assert_eq!(change.to_office.as_deref(), Some("1901"));
        assert_eq!(change.assigned_operator, None);
        assert_eq!(change.visibility, Visibility::Internal);
        let same = decide(
            &facts(Aperta),
            &operator("1900"),
            TicketAction::Reassign {
                to_office: "1900".into(),
                reason: "x".into(),
            },
        );
        assert_eq!(same, Err(LifecycleError::SameOffice("1900".into())));
    }

    #[test]
    fn events_validate_and_internal_notes_stay_internal() {
        let request: Envelope<RequestSubmitted> =
            serde_json::from_str(SCHEMA_FILES[0].example).unwrap();
        let routing = RoutingDecision {
            office_aoo: "1900".into(),
            desk_kind: Some("aziende".into()),
            routed_by: RoutedBy::Rule,
            note: None,
            ambito_label: "Versamenti".into(),
        };
        let tax_code = request.principal.subject_tax_code().unwrap().clone();
        let ticket = open_ticket(&request, tax_code.clone(), routing, Utc::now());
        assert!(ticket.subject.starts_with("Versamenti - "));
        let registration = TicketRegistration {
            id: Uuid::now_v7(),
            signature: "INPS.1900.24/11/2026.0000001".into(),
        };
        let opened = opened_event(&ticket, &registration, 0);
        catalogue()
            .validate(&serde_json::to_value(&opened).unwrap())
            .unwrap();

        let note = decide(
            &facts(Aperta),
            &operator("1900"),
            TicketAction::Comment {
                text: "verificare F24".into(),
                visibility: Visibility::Internal,
            },
        )
        .unwrap();
        let event = changed_event(
            ticket.id,
            &tax_code,
            HoldingOffice {
                aoo: "1900",
                is_triage: false,
            },
            &note,
            &operator("1900"),
            "c",
            Utc::now(),
        );
        assert_eq!(event.payload.comment, None);
        catalogue()
            .validate(&serde_json::to_value(&event).unwrap())
            .unwrap();
    }
}
