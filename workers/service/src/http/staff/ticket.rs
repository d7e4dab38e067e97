//! A ticket's detail page (*quesito*): its history, attachments and the
//! forms that work it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::{context, Value};
use serde::Serialize;
use uuid::Uuid;

use super::errors::{not_found, Failure};
use super::render::{error_page, render, size_label, when};
use super::session::{session, Session};
use super::ApiState;
use crate::documents;
use crate::domain::document::DocumentState;
use crate::domain::ticket::{ChangeKind, Outcome, TicketState, Visibility};
use crate::tickets::{self, TicketDetail, TicketError};

#[derive(Serialize)]
pub(super) struct HistoryRow {
    pub(super) at: String,
    pub(super) what: String,
    pub(super) who: String,
    pub(super) internal: bool,
    pub(super) comment: String,
    pub(super) outcome: Option<String>,
    /// Reassignments: from which office to which.
    pub(super) offices: Option<String>,
}

/// What happened, in the words of the offices.
pub(super) fn change_label(kind: &str) -> String {
    match ChangeKind::parse(kind) {
        Some(ChangeKind::Opened) => "aperta".into(),
        Some(ChangeKind::TakenInCharge) => "presa in carico".into(),
        Some(ChangeKind::Commented) => "commento".into(),
        Some(ChangeKind::Reassigned) => "riassegnazione".into(),
        Some(ChangeKind::Closed) => "chiusura".into(),
        Some(ChangeKind::CitizenMessage) => "messaggio (lato cittadino)".into(),
        None => kind.to_owned(),
    }
}

/// Who acted, from the principal stored with the history entry.
pub(super) fn actor_label(actor: &serde_json::Value) -> String {
    let field = |name: &str| actor.get(name).and_then(|v| v.as_str()).unwrap_or_default();
    match field("kind") {
        "operator" => format!(
            "operatore {} (sede {})",
            field("operator_id"),
            field("office")
        ),
        "citizen" => "cittadino".into(),
        "intermediary" => format!("intermediario {}", field("tax_code")),
        "contact_center_agent" => format!("contact center, operatore {}", field("agent_id")),
        _ => "sistema".into(),
    }
}

/// The detail page of a ticket; `failure` (an action just refused) is shown
/// above it with its status.
pub(super) async fn detail_page(
    state: &ApiState,
    session: Session,
    id: Uuid,
    failure: Option<Failure>,
) -> HttpResponse {
    let Session {
        principal,
        operator,
    } = session;
    let loaded = async {
        // Operators only: no agent read to audit, so no correlation to carry.
        let detail = tickets::detail(&state.pool, &principal, id, "").await?;
        let offices = tickets::offices(&state.pool).await?;
        Ok::<_, TicketError>((detail, offices))
    };
    let (detail, offices) = match loaded.await {
        Ok(loaded) => loaded,
        Err(error) => {
            let failure = Failure::of(error, None);
            return error_page(failure.status, Some(&operator), &failure.message);
        }
    };
    // The protocol number of each registered attachment ("Protocollato").
    let signatures = match documents::signatures(&state.pool, &principal, id).await {
        Ok(signatures) => signatures,
        Err(error) => {
            let failure = Failure::of_documents(error);
            return error_page(failure.status, Some(&operator), &failure.message);
        }
    };
    let TicketDetail {
        ticket: t,
        history,
        attachments,
        ..
    } = detail;
    let history: Vec<HistoryRow> = history
        .iter()
        .map(|h| HistoryRow {
            at: when(h.at),
            what: change_label(&h.kind),
            who: actor_label(&h.actor),
            internal: h.visibility == Visibility::Internal.as_str(),
            comment: h.comment.clone().unwrap_or_default(),
            outcome: h.outcome.clone(),
            offices: match (&h.from_office, &h.to_office) {
                (Some(from), Some(to)) if h.kind == ChangeKind::Reassigned.as_str() => {
                    Some(format!("dalla sede {from} alla sede {to}"))
                }
                _ => None,
            },
        })
        .collect();
    // Which documents to offer for registration mirrors
    // domain::document::transition, for convenience only: the service
    // decides again on the POST.
    let registrable: Vec<Value> = attachments
        .iter()
        .filter(|a| a.state == DocumentState::Uploaded)
        .map(|a| context! { id => a.id, file_name => a.file_name })
        .collect();
    let attachments: Vec<Value> = attachments
        .iter()
        .map(|a| {
            context! {
                id => a.id, file_name => a.file_name, media_type => a.media_type,
                size => size_label(a.size_bytes), label => a.state.label(),
                signature => a.registration_id.and_then(|r| signatures.get(&r)),
            }
        })
        .collect();

    let offices: Vec<_> = offices
        .into_iter()
        .filter(|o| o.aoo != operator.office)
        .collect();
    let contact = [t.contact_email.clone(), t.contact_phone.clone()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    let now = t.summary.state;
    let view = context! {
        id => t.summary.id,
        subject => t.summary.subject,
        signature => t.summary.signature.clone().unwrap_or_default(),
        state => now.label(),
        outcome => t.summary.outcome,
        office => format!("{} - {}", t.summary.office_aoo, t.summary.office_name),
        desk => t.desk_name.clone().unwrap_or_else(|| "coda generale della sede".into()),
        ambito => t.summary.ambito,
        matricola => t.summary.matricola.clone().unwrap_or_default(),
        subject_tax_code => t.subject_tax_code,
        channel => t.channel,
        contact,
        opened_at => when(t.summary.opened_at),
        updated_at => when(t.summary.updated_at),
        assigned_operator => t.summary.assigned_operator.clone().unwrap_or_default(),
        routing_note => t.routing_note,
        body => t.body,
    };
    let (status, error) = match failure {
        Some(Failure { status, message }) => (status, Some(message)),
        None => (StatusCode::OK, None),
    };
    // Which forms to offer mirrors domain::ticket::decide, for convenience
    // only: the service decides again on every POST.
    render(
        status,
        "quesito.html",
        context! {
            operator, t => view, history, attachments, registrable, offices, error,
            outcomes => Outcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            // One key per form and render: a resubmitted form is applied once,
            // while two different forms of one page stay two actions.
            keys => context! {
                take => Uuid::new_v4(), comment => Uuid::new_v4(),
                close => Uuid::new_v4(), reassign => Uuid::new_v4(),
                register => Uuid::new_v4(),
            },
            can_take => now == TicketState::Aperta,
            can_comment => now != TicketState::Chiusa,
            can_close => now == TicketState::InCarico,
            can_reassign => now != TicketState::Chiusa,
        },
    )
}

pub(super) async fn detail(
    state: web::Data<ApiState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let session = match session(&state, &request).await {
        Ok(session) => session,
        Err(refusal) => return refusal.response(),
    };
    match path.parse::<Uuid>() {
        Ok(id) => detail_page(&state, session, id, None).await,
        Err(_) => not_found(Some(&session.operator), "Quesito"),
    }
}
