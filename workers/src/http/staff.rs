//! Staff pages (*quesiti di sede*), server-rendered in Italian: the office's
//! queue with the history filters, a ticket's detail with its conversation
//! and attachments, and the forms that take it in charge, comment, close or
//! reassign it. The operator signs in by pasting their identity-provider token,
//! kept in an HttpOnly, SameSite=Strict cookie scoped to `/ufficio`.
//! Handlers only translate: rules live in `domain::ticket`, access and
//! transactions in `tickets`.

use std::sync::LazyLock;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use minijinja::{context, Environment, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ApiState;
use crate::contract::Principal;
use crate::documents;
use crate::domain::ticket::{Outcome, TicketAction, TicketState, Visibility};
use crate::tickets::{self, SearchQuery, TicketError};
use crate::timers::cron::TIME_ZONE;

const SESSION_COOKIE: &str = "sportello_sessione";
const LOGIN: &str = "/ufficio/accesso";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../../templates/staff/base.html")),
        (
            "accesso.html",
            include_str!("../../templates/staff/accesso.html"),
        ),
        (
            "errore.html",
            include_str!("../../templates/staff/errore.html"),
        ),
        ("coda.html", include_str!("../../templates/staff/coda.html")),
        (
            "quesito.html",
            include_str!("../../templates/staff/quesito.html"),
        ),
    ] {
        // Embedded at build time and rendered by the tests: a failure is a
        // build defect, not bad input.
        env.add_template(name, source)
            .expect("staff templates must parse");
    }
    env
});

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(LOGIN, web::get().to(login_page))
        .route(LOGIN, web::post().to(login))
        .route("/ufficio/uscita", web::post().to(logout))
        .route("/ufficio", web::get().to(queue))
        .route("/ufficio/quesiti/{ticket_id}", web::get().to(detail))
        .route("/ufficio/quesiti/{ticket_id}/{action}", web::post().to(act))
        .route("/ufficio/documenti/{document_id}", web::get().to(download));
}

fn render(status: StatusCode, template: &str, values: Value) -> HttpResponse {
    match TEMPLATES
        .get_template(template)
        .and_then(|t| t.render(values))
    {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html),
        Err(error) => {
            tracing::error!(%error, template, "staff page failed to render");
            HttpResponse::InternalServerError().body("Errore interno")
        }
    }
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// The operator shown in the page header.
#[derive(Serialize)]
struct OperatorView {
    id: String,
    office: String,
}

/// Why a staff request cannot go on.
enum Refusal {
    /// No valid session: sign in first.
    SignIn,
    /// Signed in, but not an operator.
    NotAnOperator,
}

fn operator_of(
    state: &ApiState,
    request: &HttpRequest,
) -> Result<(Principal, OperatorView), Refusal> {
    let cookie = request.cookie(SESSION_COOKIE).ok_or(Refusal::SignIn)?;
    let principal = state
        .keys
        .verify(cookie.value())
        .map_err(|_| Refusal::SignIn)?;
    match &principal {
        Principal::Operator {
            operator_id,
            office,
            ..
        } => {
            let view = OperatorView {
                id: operator_id.clone(),
                office: office.clone(),
            };
            Ok((principal, view))
        }
        _ => Err(Refusal::NotAnOperator),
    }
}

fn refused(refusal: Refusal) -> HttpResponse {
    match refusal {
        Refusal::SignIn => redirect(LOGIN),
        Refusal::NotAnOperator => render(
            StatusCode::FORBIDDEN,
            "errore.html",
            context! { error => "Accesso riservato agli operatori di sede." },
        ),
    }
}

/// Forms are only accepted from our own pages: the cookie is SameSite=Strict,
/// and a browser's `Origin` must name this host.
fn same_origin(request: &HttpRequest) -> bool {
    let Some(origin) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return true;
    };
    let host = request.connection_info().host().to_owned();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest == host)
}

fn correlation_id(request: &HttpRequest) -> String {
    request
        .headers()
        .get(super::caller::CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

fn status_of(error: &TicketError) -> StatusCode {
    match error {
        TicketError::NotFound => StatusCode::NOT_FOUND,
        TicketError::Forbidden(_) => StatusCode::FORBIDDEN,
        TicketError::Invalid(_) => StatusCode::BAD_REQUEST,
        TicketError::Lifecycle(crate::domain::ticket::LifecycleError::IllegalTransition {
            ..
        }) => StatusCode::CONFLICT,
        TicketError::Lifecycle(_) | TicketError::UnknownOffice(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        TicketError::Database(_) | TicketError::Encoding(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What the page says about an error: internal details stay in the log.
fn message_of(error: &TicketError) -> String {
    let status = status_of(error);
    if status.is_server_error() {
        tracing::error!(%error, "staff request failed");
        "Il servizio non ha potuto completare la richiesta; riprova più tardi.".into()
    } else {
        error.to_string()
    }
}

fn error_page(operator: &OperatorView, error: &TicketError) -> HttpResponse {
    render(
        status_of(error),
        "errore.html",
        context! { operator, error => message_of(error) },
    )
}

fn when(at: DateTime<Utc>) -> String {
    at.with_timezone(&TIME_ZONE)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

async fn login_page() -> HttpResponse {
    render(StatusCode::OK, "accesso.html", context! {})
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    state: web::Data<ApiState>,
    request: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    if !same_origin(&request) {
        return render(
            StatusCode::FORBIDDEN,
            "accesso.html",
            context! { error => "Richiesta non valida." },
        );
    }
    let token = form.token.trim();
    match state.keys.verify(token) {
        Ok(Principal::Operator { .. }) => {
            let cookie = Cookie::build(SESSION_COOKIE, token.to_owned())
                .path("/ufficio")
                .http_only(true)
                .same_site(SameSite::Strict)
                .finish();
            HttpResponse::SeeOther()
                .cookie(cookie)
                .insert_header((header::LOCATION, "/ufficio"))
                .finish()
        }
        Ok(_) => render(
            StatusCode::FORBIDDEN,
            "accesso.html",
            context! { error => "Accesso riservato agli operatori di sede." },
        ),
        Err(error) => render(
            StatusCode::UNAUTHORIZED,
            "accesso.html",
            context! { error => format!("Token non valido: {error}") },
        ),
    }
}

async fn logout() -> HttpResponse {
    let mut cookie = Cookie::build(SESSION_COOKIE, "").path("/ufficio").finish();
    cookie.make_removal();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, LOGIN))
        .finish()
}

#[derive(Serialize)]
struct Row {
    id: Uuid,
    signature: String,
    subject: String,
    matricola: String,
    state: &'static str,
    opened_at: String,
    updated_at: String,
    assigned_operator: String,
}

/// A notice carried by a redirect, e.g. after a reassignment.
#[derive(Deserialize)]
struct Notice {
    messaggio: Option<String>,
}

async fn queue(
    state: web::Data<ApiState>,
    request: HttpRequest,
    search: web::Query<SearchQuery>,
    notice: web::Query<Notice>,
) -> HttpResponse {
    let (principal, operator) = match operator_of(&state, &request) {
        Ok(found) => found,
        Err(refusal) => return refused(refusal),
    };
    let search = search.into_inner();
    let states: Vec<(&str, &str)> = [
        TicketState::Aperta,
        TicketState::InCarico,
        TicketState::Chiusa,
    ]
    .into_iter()
    .map(|s| (s.as_str(), s.label()))
    .collect();
    let page = match tickets::search(&state.pool, &principal, &search).await {
        Ok(page) => page,
        Err(error) => {
            return render(
                status_of(&error),
                "coda.html",
                context! { operator, states, query => search, tickets => Vec::<Row>::new(), page => 1,
                error => message_of(&error) },
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
            .map(|q| format!("/ufficio?{q}"))
            .ok()
    };
    let previous_page = (page.page > 1).then(|| link(page.page - 1)).flatten();
    let next_page = page.has_more.then(|| link(page.page + 1)).flatten();
    render(
        StatusCode::OK,
        "coda.html",
        context! { operator, states, query => search, tickets => rows, page => page.page,
        previous_page, next_page, message => notice.into_inner().messaggio },
    )
}

#[derive(Serialize)]
struct HistoryRow {
    at: String,
    what: &'static str,
    who: String,
    comment: String,
    internal: bool,
    outcome: Option<String>,
}

fn change_label(kind: &str) -> &'static str {
    match kind {
        "opened" => "aperto",
        "taken_in_charge" => "preso in carico",
        "commented" => "commento",
        "reassigned" => "riassegnato",
        "closed" => "chiuso",
        _ => "modifica",
    }
}

/// The detail page of a ticket, with `error` shown above it.
async fn detail_page(
    state: &ApiState,
    principal: &Principal,
    operator: OperatorView,
    id: Uuid,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    let detail = match tickets::detail(&state.pool, principal, id).await {
        Ok(detail) => detail,
        Err(e) => return error_page(&operator, &e),
    };
    let offices = match tickets::offices(&state.pool).await {
        Ok(offices) => offices,
        Err(e) => return error_page(&operator, &e),
    };
    let t = &detail.ticket;
    let history: Vec<HistoryRow> = detail
        .history
        .iter()
        .map(|h| HistoryRow {
            at: when(h.at),
            what: change_label(&h.kind),
            who: h
                .actor
                .get("operator_id")
                .and_then(|v| v.as_str())
                .map(|id| format!("operatore {id}"))
                .unwrap_or_else(|| "cittadino".into()),
            comment: match (&h.comment, &h.to_office) {
                (Some(c), Some(office)) if h.kind == "reassigned" => {
                    format!("a sede {office}: {c}")
                }
                (c, _) => c.clone().unwrap_or_default(),
            },
            internal: h.visibility == "internal",
            outcome: h.outcome.clone(),
        })
        .collect();
    let attachments: Vec<Value> = detail
        .attachments
        .iter()
        .map(|a| {
            context! { id => a.id, file_name => a.file_name.clone(), media_type => a.media_type.clone(),
                       size => a.size_bytes }
        })
        .collect();
    let contact = [t.contact_email.clone(), t.contact_phone.clone()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    let state_now = t.summary.state;
    let view = context! {
        id => t.summary.id,
        subject => t.summary.subject.clone(),
        signature => t.summary.signature.clone().unwrap_or_default(),
        state => state_now.label(),
        outcome => t.summary.outcome.clone(),
        office => format!("{} - {}", t.summary.office_aoo, t.summary.office_name),
        desk => t.desk_name.clone().unwrap_or_else(|| "coda generale della sede".into()),
        ambito => t.summary.ambito.clone(),
        matricola => t.summary.matricola.clone().unwrap_or_default(),
        subject_tax_code => t.subject_tax_code.clone(),
        channel => t.channel.clone(),
        contact,
        assigned_operator => t.summary.assigned_operator.clone().unwrap_or_default(),
        routing_note => t.routing_note.clone(),
        body => t.body.clone(),
    };
    render(
        status,
        "quesito.html",
        context! {
            operator, t => view, history, attachments, offices, error,
            outcomes => Outcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            action_key => Uuid::new_v4(),
            can_take => state_now == TicketState::Aperta,
            can_comment => state_now != TicketState::Chiusa,
            can_close => state_now == TicketState::InCarico,
        },
    )
}

async fn detail(
    state: web::Data<ApiState>,
    request: HttpRequest,
    path: web::Path<Uuid>,
) -> HttpResponse {
    match operator_of(&state, &request) {
        Ok((principal, operator)) => {
            detail_page(
                &state,
                &principal,
                operator,
                path.into_inner(),
                StatusCode::OK,
                None,
            )
            .await
        }
        Err(refusal) => refused(refusal),
    }
}

/// Every action form posts these; each action reads its own fields.
#[derive(Deserialize)]
struct ActionForm {
    action_key: Option<String>,
    comment: Option<String>,
    text: Option<String>,
    visibility: Option<String>,
    outcome: Option<String>,
    office: Option<String>,
    reason: Option<String>,
}

fn action_from(name: &str, form: ActionForm) -> Result<TicketAction, TicketError> {
    let missing = |field: &str| TicketError::Invalid(format!("manca il campo `{field}`"));
    match name {
        "presa-in-carico" => Ok(TicketAction::TakeInCharge {
            comment: form.comment,
        }),
        "commento" => {
            let raw = form.visibility.unwrap_or_default();
            let visibility = Visibility::parse(&raw)
                .ok_or_else(|| TicketError::Invalid(format!("visibilità `{raw}` non valida")))?;
            Ok(TicketAction::Comment {
                text: form.text.ok_or_else(|| missing("text"))?,
                visibility,
            })
        }
        "chiusura" => {
            let raw = form.outcome.unwrap_or_default();
            let outcome = Outcome::parse(&raw)
                .ok_or_else(|| TicketError::Invalid(format!("esito `{raw}` non valido")))?;
            Ok(TicketAction::Close {
                outcome,
                comment: form.comment.unwrap_or_default(),
            })
        }
        "riassegnazione" => Ok(TicketAction::Reassign {
            to_office: form.office.ok_or_else(|| missing("office"))?,
            reason: form.reason.unwrap_or_default(),
        }),
        other => Err(TicketError::Invalid(format!(
            "azione `{other}` sconosciuta"
        ))),
    }
}

async fn act(
    state: web::Data<ApiState>,
    request: HttpRequest,
    path: web::Path<(Uuid, String)>,
    form: web::Form<ActionForm>,
) -> HttpResponse {
    let (principal, operator) = match operator_of(&state, &request) {
        Ok(found) => found,
        Err(refusal) => return refused(refusal),
    };
    if !same_origin(&request) {
        return error_page(
            &operator,
            &TicketError::Forbidden("richiesta da un'origine diversa".into()),
        );
    }
    let (id, name) = path.into_inner();
    let form = form.into_inner();
    let key = form.action_key.clone().filter(|k| !k.is_empty());
    let reassigning = name == "riassegnazione";
    let outcome = match action_from(&name, form) {
        Ok(action) => {
            tickets::act(
                &state.pool,
                &principal,
                id,
                action,
                key.as_deref(),
                &correlation_id(&request),
            )
            .await
        }
        Err(error) => Err(error),
    };
    match outcome {
        // The ticket now belongs to another office: back to the queue.
        Ok(_) if reassigning => redirect("/ufficio?messaggio=Quesito+riassegnato"),
        Ok(_) => redirect(&format!("/ufficio/quesiti/{id}")),
        Err(error) => {
            let status = status_of(&error);
            detail_page(
                &state,
                &principal,
                operator,
                id,
                status,
                Some(message_of(&error)),
            )
            .await
        }
    }
}

async fn download(
    state: web::Data<ApiState>,
    request: HttpRequest,
    path: web::Path<Uuid>,
) -> HttpResponse {
    let (principal, operator) = match operator_of(&state, &request) {
        Ok(found) => found,
        Err(refusal) => return refused(refusal),
    };
    match documents::download(
        &state.pool,
        state.blobs.as_ref(),
        &principal,
        path.into_inner(),
    )
    .await
    {
        Ok((document, bytes)) => HttpResponse::Ok()
            .content_type(document.media_type.as_str())
            .insert_header(super::documents::attachment(&document.file_name))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(bytes),
        Err(error) => {
            let status = actix_web::ResponseError::status_code(&super::ApiError::from(error));
            render(
                status,
                "errore.html",
                context! { operator, error => "Documento non disponibile." },
            )
        }
    }
}
