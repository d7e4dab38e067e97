//! The forms of a ticket's page: take in charge, comment, close, reassign.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use super::errors::{not_found, Failure, FormAction};
use super::render::redirect;
use super::session::{cross_origin, cross_origin_refused, form_key, session};
use super::ticket::detail_page;
use super::{ApiState, SCOPE};
use crate::domain::ticket::{Outcome, TicketAction, Visibility};
use crate::tickets::{self, TicketError};

/// Every action form posts some of these; each action reads its own.
#[derive(Deserialize)]
pub(super) struct ActionForm {
    action_key: Option<String>,
    comment: Option<String>,
    text: Option<String>,
    visibility: Option<String>,
    outcome: Option<String>,
    office: Option<String>,
    reason: Option<String>,
}

impl ActionForm {
    /// The service's action; it validates comments and offices itself.
    fn into_action(self, action: FormAction) -> Result<TicketAction, TicketError> {
        match action {
            FormAction::TakeInCharge => Ok(TicketAction::TakeInCharge {
                comment: self.comment,
            }),
            FormAction::Comment => {
                let raw = self.visibility.unwrap_or_default();
                let visibility = Visibility::parse(&raw).ok_or_else(|| {
                    TicketError::Invalid(format!("visibilità «{raw}» sconosciuta"))
                })?;
                Ok(TicketAction::Comment {
                    text: self.text.unwrap_or_default(),
                    visibility,
                })
            }
            FormAction::Close => {
                let raw = self.outcome.unwrap_or_default();
                let outcome = Outcome::parse(&raw)
                    .ok_or_else(|| TicketError::Invalid(format!("esito «{raw}» sconosciuto")))?;
                Ok(TicketAction::Close {
                    outcome,
                    comment: self.comment.unwrap_or_default(),
                })
            }
            FormAction::Reassign => Ok(TicketAction::Reassign {
                to_office: self.office.unwrap_or_default(),
                reason: self.reason.unwrap_or_default(),
            }),
        }
    }
}

pub(super) async fn act(
    state: web::Data<ApiState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    if cross_origin(&request) {
        return cross_origin_refused();
    }
    let session = match session(&state, &request).await {
        Ok(session) => session,
        Err(refusal) => return refusal.response(),
    };
    let (id, action) = path.into_inner();
    let (Ok(id), Some(action)) = (id.parse::<Uuid>(), FormAction::from_path(&action)) else {
        return not_found(Some(&session.operator), "Quesito o operazione");
    };
    let form = form.into_inner();
    let key = form_key(&request, form.action_key.as_deref());
    let to_office = form.office.clone().unwrap_or_default();
    let applied = match form.into_action(action) {
        Ok(change) => {
            tickets::act(
                &state.pool,
                &session.principal,
                id,
                change,
                key.as_deref(),
                &crate::http::caller::correlation_id(&request),
            )
            .await
        }
        Err(error) => Err(error),
    };
    match applied {
        // The ticket now belongs to another office: back to the queue.
        Ok(_) if action == FormAction::Reassign => {
            let notice = serde_urlencoded::to_string([("riassegnato", to_office.as_str())])
                .unwrap_or_default();
            redirect(&format!("{SCOPE}?{notice}"))
        }
        Ok(_) => redirect(&format!("/ufficio/quesiti/{id}")),
        Err(error) => {
            detail_page(&state, session, id, Some(Failure::of(error, Some(action)))).await
        }
    }
}
