//! The office's queue (*coda*) with the search filters.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::errors::Failure;
use super::render::{render, when};
use super::session::{session, Session};
use super::{ApiState, SCOPE};
use crate::domain::ticket::TicketState;
use crate::tickets::{self, SearchQuery};

/// One line of the queue.
#[derive(Serialize)]
pub(super) struct Row {
    pub(super) id: Uuid,
    pub(super) signature: String,
    pub(super) subject: String,
    pub(super) matricola: String,
    pub(super) state: &'static str,
    pub(super) opened_at: String,
    pub(super) updated_at: String,
    pub(super) assigned_operator: String,
}

/// Set by the redirect after a reassignment, to say where the ticket went.
#[derive(Deserialize)]
pub(super) struct Notice {
    pub(super) riassegnato: Option<String>,
}

impl Notice {
    pub(super) fn message(&self) -> Option<String> {
        // Only an office code is echoed, never free text from the URL.
        let office = self.riassegnato.as_deref()?;
        let plausible = !office.is_empty()
            && office.len() <= 16
            && office.chars().all(|c| c.is_ascii_alphanumeric());
        Some(if plausible {
            format!("Quesito riassegnato alla sede {office}.")
        } else {
            "Quesito riassegnato.".into()
        })
    }
}

pub(super) async fn queue(state: web::Data<ApiState>, request: HttpRequest) -> HttpResponse {
    let Session {
        principal,
        operator,
    } = match session(&state, &request).await {
        Ok(session) => session,
        Err(refusal) => return refusal.response(),
    };
    let states: Vec<(&str, &str)> = [
        TicketState::Aperta,
        TicketState::InCarico,
        TicketState::Chiusa,
    ]
    .into_iter()
    .map(|s| (s.as_str(), s.label()))
    .collect();
    let message = serde_urlencoded::from_str::<Notice>(request.query_string())
        .ok()
        .and_then(|notice| notice.message());
    // Parsed here rather than by an extractor, so that a malformed query gets
    // this page with its message, like any other invalid filter.
    let parsed = serde_urlencoded::from_str::<SearchQuery>(request.query_string());
    let page = match &parsed {
        Ok(search) => tickets::search(
            &state.pool,
            &principal,
            search,
            &crate::http::caller::correlation_id(&request),
        )
        .await
        .map_err(|error| Failure::of(error, None)),
        Err(error) => Err(Failure {
            status: StatusCode::BAD_REQUEST,
            message: format!("Filtri non validi: {error}."),
        }),
    };
    let search = parsed.unwrap_or_default();
    let page = match page {
        Ok(page) => page,
        Err(failure) => {
            return render(
                failure.status,
                "coda.html",
                context! {
                    operator, states, message, query => search, tickets => Vec::<Row>::new(),
                    page => 1, error => failure.message,
                },
            )
        }
    };
    let rows: Vec<Row> = page
        .tickets
        .iter()
        .map(|t| Row {
            id: t.id,
            signature: t.signature.clone().unwrap_or_default(),
            subject: t.subject.clone(),
            matricola: t.matricola.clone().unwrap_or_default(),
            state: t.state.label(),
            opened_at: when(t.opened_at),
            updated_at: when(t.updated_at),
            assigned_operator: t.assigned_operator.clone().unwrap_or_default(),
        })
        .collect();
    let link = |page: u32| {
        let mut linked = search.clone();
        linked.page = Some(page);
        serde_urlencoded::to_string(&linked)
            .map(|q| format!("{SCOPE}?{q}"))
            .ok()
    };
    let previous_page = (page.page > 1).then(|| link(page.page - 1)).flatten();
    let next_page = page.has_more.then(|| link(page.page + 1)).flatten();
    render(
        StatusCode::OK,
        "coda.html",
        context! {
            operator, states, message, query => search, tickets => rows, page => page.page,
            previous_page, next_page,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reassignment_notice_echoes_only_an_office_code() {
        let notice = |raw: &str| {
            Notice {
                riassegnato: Some(raw.into()),
            }
            .message()
        };
        assert_eq!(
            notice("1900").as_deref(),
            Some("Quesito riassegnato alla sede 1900.")
        );
        assert_eq!(
            notice("Chiama il 899…").as_deref(),
            Some("Quesito riassegnato.")
        );
    }
}
