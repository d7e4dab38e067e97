//! New requests (`request.submitted`): who they are about (delegations for
//! intermediaries), the inbox, routing, the ticket with its case, history and
//! attachment documents, then the protocol numbers (last: the offices'
//! counter locks are held to the commit), then `ticket.opened`.

use chrono::Utc;
use uuid::Uuid;

use super::applications::{self, Standing};
use super::{classify, ApplyFailure, Item, ItemOutcome};
use crate::contract::{CodiceFiscale, Envelope, Principal, RequestSubmitted};
use crate::documents::StoredFile;
use crate::domain::delegation::FIRST_GESTIONE;
use crate::domain::document::{Direction, DocumentState};
use crate::domain::intake::{IntakeMessage, Rejection};
use crate::domain::protocol::{Aoo, RegisteredFile};
use crate::domain::refusal::Code;
use crate::domain::submission::Refusal;
use crate::domain::ticket::{open_ticket, opened_event, NewTicket, TicketRegistration};
use crate::store::applications as store_applications;
use crate::store::delegations as delegations_store;
use crate::store::documents::{self, Document};
use crate::store::inbox::{self, InboxOutcome};
use crate::store::outbox::{self, OutboxMessage};
use crate::store::protocol::{self as register, RegisterError, RegistrationRequest};
use crate::store::tickets;
use crate::store::trace_context::TraceContext;

/// The scheme a request is about: the one it names, else the first
/// release's.
fn gestione_of(request: &RequestSubmitted) -> &str {
    request.gestione.as_deref().unwrap_or(FIRST_GESTIONE)
}

/// Who a request is about: the citizen, the one an agent or operator acts
/// for, or for an intermediary the citizen whose active delegation covers
/// the position in its scheme. A scheme the table does not know is refused.
async fn subjects(
    conn: &mut sqlx::PgConnection,
    group: &[&Item<'_>],
) -> Result<Vec<Result<CodiceFiscale, Refusal>>, ApplyFailure> {
    let requests = group
        .iter()
        .map(|item| request_of(item))
        .collect::<Result<Vec<_>, _>>()?;
    let positions: Vec<(String, String, String)> = requests
        .iter()
        .filter_map(
            |request| match (&request.principal, &request.payload.matricola) {
                (Principal::Intermediary { tax_code, .. }, Some(matricola)) => Some((
                    tax_code.to_string(),
                    matricola.clone(),
                    gestione_of(&request.payload).to_owned(),
                )),
                _ => None,
            },
        )
        .collect();
    let delegations = tickets::delegating_citizens(&mut *conn, &positions)
        .await
        .map_err(classify)?;
    let gestioni = delegations_store::gestioni(&mut *conn)
        .await
        .map_err(classify)?;
    // An intermediary applies for a citizen under a delegation for the
    // person (one not limited to a position).
    let clients: Vec<(String, String)> = group
        .iter()
        .filter_map(|item| {
            let application = applications::application_of(item)?;
            match &application.envelope.principal {
                Principal::Intermediary { tax_code, .. } => Some((
                    tax_code.to_string(),
                    application.envelope.payload.applicant.tax_code.to_string(),
                )),
                _ => None,
            }
        })
        .collect();
    let represented = store_applications::represented(&mut *conn, &clients)
        .await
        .map_err(classify)?;
    let unverified = unverified_agents(&mut *conn, group).await?;
    group
        .iter()
        .zip(&requests)
        .zip(unverified)
        .map(|((item, request), unverified)| {
            if let Some(refusal) = unverified {
                return Ok(Err(refusal));
            }
            if let Some(application) = applications::application_of(item) {
                let applicant = &application.envelope.payload.applicant.tax_code;
                return Ok(match &request.principal {
                    Principal::Intermediary { tax_code, .. }
                        if !represented
                            .contains(&(tax_code.to_string(), applicant.to_string())) =>
                    {
                        Err(Rejection::NoPersonalDelegation(applicant.to_string()).into())
                    }
                    _ => Ok(applicant.clone()),
                });
            }
            let gestione = gestione_of(&request.payload);
            if !gestioni.iter().any(|g| g == gestione) {
                return Ok(Err(Refusal::new(
                    Code::UnknownScheme,
                    format!("unknown scheme (gestione) `{gestione}`"),
                )));
            }
            match (&request.principal, &request.payload.matricola) {
                (Principal::Intermediary { tax_code, .. }, Some(matricola)) => {
                    let citizen = delegations
                        .iter()
                        .find(|(i, m, g, _)| {
                            i == tax_code.as_str() && m == matricola && g == gestione
                        })
                        .map(|(_, _, _, citizen)| citizen);
                    match citizen {
                        Some(citizen) => CodiceFiscale::parse(citizen)
                            .map(Ok)
                            .map_err(|e| ApplyFailure::Crashed(format!("stored delegation: {e}"))),
                        None => Ok(Err(Rejection::NoDelegation {
                            matricola: matricola.clone(),
                            gestione: gestione.to_owned(),
                        }
                        .into())),
                    }
                }
                (principal, _) => Ok(principal
                    .subject_tax_code()
                    .cloned()
                    .ok_or_else(|| Rejection::MissingSubject("request.submitted").into())),
            }
        })
        .collect()
}

/// For each item, why an agent's simplified-PIN claim does not hold
/// (`None`: it holds, or there is none): its verification must exist, be
/// this agent's for this caller, and have been valid when the agent acted.
async fn unverified_agents(
    conn: &mut sqlx::PgConnection,
    group: &[&Item<'_>],
) -> Result<Vec<Option<Refusal>>, ApplyFailure> {
    let mut refusals = Vec::with_capacity(group.len());
    for item in group {
        let request = request_of(item)?;
        let raw = match &request.principal {
            Principal::ContactCenterAgent {
                pin_verification_id,
                ..
            } => pin_verification_id.map(|id| id.to_string()),
            _ => None,
        };
        let checked = crate::pin::verification::required(
            &mut *conn,
            &request.principal,
            raw.as_deref(),
            request.occurred_at,
        )
        .await;
        refusals.push(match checked {
            Ok(_) => None,
            Err(crate::pin::verification::VerifiedError::Refused(refusal)) => {
                Some(Rejection::PinVerification(refusal).into())
            }
            Err(crate::pin::verification::VerifiedError::Database(e)) => return Err(classify(e)),
        });
    }
    Ok(refusals)
}

/// The request of an item that is one (the group was split by kind).
fn request_of<'i>(item: &'i Item<'_>) -> Result<&'i Envelope<RequestSubmitted>, ApplyFailure> {
    match &item.admitted.message {
        IntakeMessage::RequestSubmitted(request) => Ok(request),
        IntakeMessage::ApplicationSubmitted(application) => Ok(&application.as_request),
        _ => Err(ApplyFailure::Crashed(
            "not a request among the requests".into(),
        )),
    }
}

fn registration_request(
    ticket: &NewTicket,
    attachments: &[StoredFile],
) -> Result<RegistrationRequest, ApplyFailure> {
    Ok(RegistrationRequest {
        id: Uuid::now_v7(),
        request_id: ticket.request_message_id,
        aoo: Aoo::parse(&ticket.routing.office_aoo)
            .map_err(|e| ApplyFailure::Crashed(e.to_string()))?,
        subject: ticket.subject.clone(),
        registered_by: serde_json::to_value(&ticket.submitted_by)
            .map_err(|e| ApplyFailure::Crashed(e.to_string()))?,
        files: attachments
            .iter()
            .map(|a| RegisteredFile {
                name: a.file_name.clone(),
                sha256: a.sha256.clone(),
                size: a.size as u64,
            })
            .collect(),
        correlation_id: ticket.correlation_id.clone(),
    })
}

fn attachment_documents(
    ticket: &NewTicket,
    registration_id: Uuid,
    attachments: &[StoredFile],
) -> Vec<Document> {
    let submitted_by = serde_json::to_value(&ticket.submitted_by).unwrap_or_default();
    attachments
        .iter()
        .map(|file| Document {
            // Registered with the request, under its number.
            state: DocumentState::Registered,
            registration_id: Some(registration_id),
            ..file.new_document(
                ticket.id,
                Direction::FromCitizen,
                &submitted_by,
                ticket.opened_at,
            )
        })
        .collect()
}

/// A ticket about to be opened.
struct Opening<'a> {
    ticket: NewTicket,
    attachments: &'a [StoredFile],
    /// The id its registration gets (the request itself goes to `register`).
    registration_id: Uuid,
    /// When the ticket is an application's back-office case.
    application: Option<&'a crate::domain::intake::AdmittedApplication>,
    /// The request's span, the ticket's span's parent.
    span: &'a tracing::Span,
}

/// New requests: delegation check (intermediaries), inbox, routing, tickets,
/// attachments, registration, events.
pub(super) async fn open_tickets(
    tx: &mut sqlx::PgConnection,
    group: &[&Item<'_>],
) -> Result<Vec<ItemOutcome>, ApplyFailure> {
    if group.is_empty() {
        return Ok(Vec::new());
    }
    let subjects = subjects(&mut *tx, group).await?;
    // Applications: a different second one is refused like a request
    // without its delegation; the same one again (the F5) is a duplicate,
    // and nothing of it is recorded.
    let standings = applications::standings(&mut *tx, group).await?;
    let mut resubmitted = Vec::new();
    let subjects: Vec<Result<CodiceFiscale, Refusal>> = subjects
        .into_iter()
        .zip(&standings)
        .zip(group)
        .map(|((subject, standing), item)| match standing {
            Some(Standing::Conflict(reason)) => {
                Err(Refusal::new(Code::ApplicationRefused, reason.clone()))
            }
            Some(Standing::Resubmitted) => {
                resubmitted.push(item.admitted.idempotency.message_id);
                Err(Refusal::new(
                    Code::ApplicationRefused,
                    "the same application again",
                ))
            }
            _ => subject,
        })
        .collect();
    // Refused on what the database knows now, but applied before (a
    // redelivery after the intermediary's delegation was revoked): that is a
    // duplicate to acknowledge, not a refusal to dead-letter.
    let refused: Vec<Uuid> = group
        .iter()
        .zip(&subjects)
        .filter(|(_, subject)| subject.is_err())
        .map(|(item, _)| item.admitted.idempotency.message_id)
        .collect();
    let applied_before = inbox::applied(&mut *tx, &refused).await.map_err(classify)?;
    let accepted: Vec<(&Item, &CodiceFiscale)> = group
        .iter()
        .copied()
        .zip(&subjects)
        .filter_map(|(item, subject)| subject.as_ref().ok().map(|s| (item, s)))
        .collect();
    let identities: Vec<_> = accepted
        .iter()
        .map(|(item, _)| &item.admitted.idempotency)
        .collect();
    let mut recorded = inbox::record(&mut *tx, &identities)
        .await
        .map_err(classify)?;
    // Applied longer ago than the inbox remembers (its rows are purged after
    // INBOX_RETENTION_DAYS): the request's registration still tells.
    let new_requests: Vec<Uuid> = accepted
        .iter()
        .zip(&recorded)
        .filter(|(_, outcome)| **outcome == InboxOutcome::New)
        .map(|((item, _), _)| item.admitted.idempotency.message_id)
        .collect();
    let registered_before = register::registered_requests(&mut *tx, &new_requests)
        .await
        .map_err(classify)?;
    for ((item, _), outcome) in accepted.iter().zip(recorded.iter_mut()) {
        if registered_before.contains(&item.admitted.idempotency.message_id) {
            *outcome = InboxOutcome::Duplicate;
        }
    }

    let routing = tickets::routing_table(&mut *tx).await.map_err(classify)?;
    let now = Utc::now();
    let mut openings = Vec::new();
    // Index-aligned with `openings`.
    let mut requests: Vec<RegistrationRequest> = Vec::new();
    for ((item, subject), outcome) in accepted.iter().zip(&recorded) {
        if *outcome != InboxOutcome::New {
            continue;
        }
        let request = request_of(item)?;
        let payload = &request.payload;
        let decision = routing.route(
            &payload.ambito,
            payload.position_location.as_ref(),
            payload.location.as_ref(),
        );
        let ticket = open_ticket(request, (*subject).clone(), decision, now);
        let registration = registration_request(&ticket, item.attachments)?;
        let registration_id = registration.id;
        requests.push(registration);
        openings.push(Opening {
            ticket,
            attachments: item.attachments,
            registration_id,
            application: applications::application_of(item),
            span: item.span,
        });
    }

    // Everything that only points at a registration goes first: taking the
    // numbers locks the offices' counters until the commit, and every other
    // registrar of those offices waits for it.
    let rows: Vec<(&NewTicket, Uuid)> = openings
        .iter()
        .map(|o| (&o.ticket, o.registration_id))
        .collect();
    tickets::insert(&mut *tx, &rows).await.map_err(classify)?;
    let application_rows = openings
        .iter()
        .filter_map(|o| {
            o.application
                .map(|application| applications::new_application(application, &o.ticket))
        })
        .collect::<Result<Vec<_>, _>>()?;
    store_applications::insert(&mut *tx, &application_rows)
        .await
        .map_err(classify)?;
    let documents: Vec<Document> = openings
        .iter()
        .flat_map(|o| attachment_documents(&o.ticket, o.registration_id, o.attachments))
        .collect();
    documents::insert_documents(&mut *tx, &documents)
        .await
        .map_err(classify)?;

    let registrations = register::register(&mut *tx, &requests)
        .await
        .map_err(|e| match e {
            RegisterError::Database(e) => classify(e),
            RegisterError::YearChanged => ApplyFailure::Transient(e.to_string()),
            RegisterError::Inconsistent(_) => ApplyFailure::Crashed(e.to_string()),
        })?;
    let mut events = Vec::with_capacity(openings.len());
    for (opening, registration) in openings.iter().zip(registrations) {
        // A request registered before was found above; one registered since
        // by a concurrent transaction would leave the ticket pointing at nothing.
        if registration.id != opening.registration_id {
            return Err(ApplyFailure::Crashed(format!(
                "request {} was already registered as {}",
                registration.request_id, registration.signature
            )));
        }
        let registration = TicketRegistration {
            id: registration.id,
            signature: registration.signature,
        };
        let ticket = &opening.ticket;
        // The ticket's own span, in the request's trace: its event (relayed
        // later, by another process) continues from here.
        let ticket_span = tracing::info_span!(
            parent: opening.span,
            "ticket opened",
            ticket_id = %ticket.id,
            office = %ticket.routing.office_aoo,
            signature = %registration.signature,
        );
        let event = opened_event(ticket, &registration, opening.attachments.len());
        let mut message =
            OutboxMessage::event(&event, None).map_err(|e| ApplyFailure::Crashed(e.to_string()))?;
        message.trace = TraceContext::of(&ticket_span);
        events.push(message);
        tracing::debug!(
            correlation_id = %ticket.correlation_id,
            ticket_id = %ticket.id,
            office = %ticket.routing.office_aoo,
            signature = %registration.signature,
            "ticket opened"
        );
    }
    outbox::enqueue(&mut *tx, &events).await.map_err(classify)?;

    let mut recorded = recorded.into_iter();
    group
        .iter()
        .zip(subjects)
        .map(|(item, subject)| match subject {
            Ok(_) => recorded
                .next()
                .map(ItemOutcome::Inbox)
                .ok_or_else(|| ApplyFailure::Crashed("inbox returned fewer outcomes".into())),
            Err(_)
                if applied_before.contains(&item.admitted.idempotency.message_id)
                    || resubmitted.contains(&item.admitted.idempotency.message_id) =>
            {
                Ok(ItemOutcome::Inbox(InboxOutcome::Duplicate))
            }
            Err(reason) => Ok(ItemOutcome::Refused(reason)),
        })
        .collect()
}
