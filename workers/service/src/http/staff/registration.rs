//! The protocol form of a ticket's page: an operator of its office sends the
//! chosen documents for registration with a subject. The operation is the
//! API's (`documents::send_for_registration`); the registration worker
//! numbers the documents afterwards, and the page shows them orange, then
//! green with the signature.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use uuid::Uuid;

use super::errors::{not_found, Failure};
use super::render::redirect;
use super::session::{cross_origin, cross_origin_refused, form_key, session};
use super::ticket::detail_page;
use super::ApiState;
use crate::documents;

pub(super) const REGISTRATION: &str = "/ufficio/quesiti/{ticket_id}/protocollazione";

/// The form's fields. Read by hand: the checkboxes repeat `document_ids`,
/// which the serde form decoder cannot collect.
#[derive(Debug, Default, PartialEq)]
struct RegistrationForm {
    action_key: Option<String>,
    document_ids: Vec<String>,
    subject: String,
}

impl RegistrationForm {
    fn parse(body: &[u8]) -> RegistrationForm {
        let mut form = RegistrationForm::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            match name.as_ref() {
                "action_key" => form.action_key = Some(value.into_owned()),
                "document_ids" => form.document_ids.push(value.into_owned()),
                "subject" => form.subject = value.into_owned(),
                _ => {}
            }
        }
        form
    }

    /// The chosen documents' ids; `None` if one is not an id at all (a form
    /// not rendered by these pages).
    fn ids(&self) -> Option<Vec<Uuid>> {
        self.document_ids
            .iter()
            .map(|raw| raw.parse::<Uuid>().ok())
            .collect()
    }
}

pub(super) async fn register(
    state: web::Data<ApiState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    if cross_origin(&request) {
        return cross_origin_refused();
    }
    let session = match session(&state, &request).await {
        Ok(session) => session,
        Err(refusal) => return refusal.response(),
    };
    let Ok(id) = path.parse::<Uuid>() else {
        return not_found(Some(&session.operator), "Quesito");
    };
    let form = RegistrationForm::parse(&body);
    let Some(document_ids) = form.ids() else {
        let failure = Failure {
            status: StatusCode::BAD_REQUEST,
            message: "Dati non validi: documento sconosciuto.".into(),
        };
        return detail_page(&state, session, id, Some(failure)).await;
    };
    let key = form_key(&request, form.action_key.as_deref());
    let sent = documents::send_for_registration(
        &state.pool,
        &session.principal,
        id,
        &document_ids,
        &form.subject,
        key.as_deref(),
        &crate::http::caller::correlation_id(&request),
    )
    .await;
    match sent {
        // A repeat lands on the same page: the first request is under way.
        Ok(_) => redirect(&format!("/ufficio/quesiti/{id}")),
        Err(error) => detail_page(&state, session, id, Some(Failure::of_documents(error))).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkboxes_repeat_and_are_all_kept() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let body = format!(
            "action_key=k1&document_ids={a}&document_ids={b}&subject=Denuncia+di+marzo&other=x"
        );
        let form = RegistrationForm::parse(body.as_bytes());
        assert_eq!(form.action_key.as_deref(), Some("k1"));
        assert_eq!(form.subject, "Denuncia di marzo");
        assert_eq!(form.ids(), Some(vec![a, b]));
        let bad = RegistrationForm::parse(b"document_ids=not-an-id&subject=x");
        assert_eq!(bad.ids(), None);
        assert_eq!(RegistrationForm::parse(b"").ids(), Some(Vec::new()));
    }
}
