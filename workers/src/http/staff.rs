//! Staff pages (*quesiti di sede*), server-rendered in Italian: the office's
//! queue with the search filters, a ticket's detail with its history and
//! attachments, and the forms that take it in charge, comment, close or
//! reassign it.
//!
//! The operator signs in by pasting the token their identity provider signed.
//! That opens a server-side session (`store::staff_sessions`) lasting as long
//! as the token, at most `MAX_SESSION`; the browser gets only the session's
//! random key, in an HttpOnly, SameSite=Strict cookie scoped to `/ufficio`.
//! Signing out ends the session for good. Besides the SameSite cookie, a POST
//! whose `Origin` names another site is refused.
//!
//! Handlers only translate between HTTP and `tickets`: the lifecycle rules
//! live in `domain::ticket`, access checks and transactions in `tickets`.
//! Statuses follow the JSON API's mapping (`http::error`); messages are
//! rewritten in Italian here, since the service's are for integrators.

use std::sync::LazyLock;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use minijinja::{context, Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApiError, ApiState};
use crate::contract::Principal;
use crate::documents::{self, DocumentError};
use crate::domain::ticket::{
    ChangeKind, LifecycleError, Outcome, TicketAction, TicketState, Visibility, MAX_COMMENT_CHARS,
};
use crate::store::staff_sessions;
use crate::tickets::{self, FilterError, SearchQuery, TicketDetail, TicketError};
use crate::timers::cron::TIME_ZONE;

const SESSION_COOKIE: &str = "sportello_sessione";
const SCOPE: &str = "/ufficio";
const LOGIN: &str = "/ufficio/accesso";
const NOT_AN_OPERATOR: &str = "Accesso riservato agli operatori di sede.";
const UNAVAILABLE: &str = "Il servizio non ha potuto completare la richiesta; riprova più tardi.";
/// However long the identity provider's token lasts, a staff session ends
/// after a working day.
const MAX_SESSION: chrono::Duration = chrono::Duration::hours(10);

/// Our pages need nothing but their own inline style and their own forms;
/// they are never framed (no clickjacking of the action buttons).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The templates, parsed once. `*.html` names switch on HTML auto-escaping;
/// a misspelt variable fails rendering (and the unit test) instead of
/// silently printing nothing.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
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
        if let Err(error) = env.add_template(name, source) {
            // Embedded at build time: only a defect of this crate gets here,
            // and rendering that template then answers 500 and logs it.
            tracing::error!(%error, name, "staff template does not parse");
        }
    }
    env
});

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(LOGIN, web::get().to(login_page))
        .route(LOGIN, web::post().to(login))
        .route("/ufficio/uscita", web::post().to(logout))
        .route(SCOPE, web::get().to(queue))
        .route("/ufficio/quesiti/{ticket_id}", web::get().to(detail))
        .route("/ufficio/quesiti/{ticket_id}/{action}", web::post().to(act))
        .route("/ufficio/documenti/{document_id}", web::get().to(download));
}

// ---------------------------------------------------------------------------
// Rendering

fn render(status: StatusCode, template: &str, values: Value) -> HttpResponse {
    match TEMPLATES
        .get_template(template)
        .and_then(|t| t.render(values))
    {
        Ok(html) => secured(HttpResponse::build(status))
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                template,
                "staff page failed to render"
            );
            secured(HttpResponse::InternalServerError())
                .content_type("text/plain; charset=utf-8")
                .body("Errore interno")
        }
    }
}

/// Headers every staff response carries: pages show personal data, so no
/// cache keeps them.
fn secured(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"));
    builder
}

fn redirect(to: &str) -> HttpResponse {
    secured(HttpResponse::SeeOther())
        .insert_header((header::LOCATION, to))
        .finish()
}

/// A page with only a message and the way back to the queue.
fn error_page(status: StatusCode, operator: Option<&OperatorView>, message: &str) -> HttpResponse {
    render(
        status,
        "errore.html",
        context! { operator, error => message },
    )
}

/// Dates as the offices read them: Rome's wall clock.
fn when(at: DateTime<Utc>) -> String {
    at.with_timezone(&TIME_ZONE)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

fn size_label(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} byte"),
        b if b < 1024 * 1024 => format!("{:.1} kB", b as f64 / 1024.0).replace('.', ","),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)).replace('.', ","),
    }
}

// ---------------------------------------------------------------------------
// Session and request checks

/// The operator shown in the page header.
#[derive(Serialize)]
struct OperatorView {
    id: String,
    office: String,
}

/// A signed-in operator.
struct Session {
    principal: Principal,
    operator: OperatorView,
}

/// Why a request has no operator's session.
enum Refusal {
    /// No cookie, or a session that is not open (any more): sign in.
    SignIn,
    /// A valid token, but not an operator's.
    NotAnOperator,
    /// The sessions could not be read.
    Unavailable,
}

impl Refusal {
    fn response(self) -> HttpResponse {
        match self {
            Refusal::SignIn => redirect(LOGIN),
            Refusal::NotAnOperator => error_page(StatusCode::FORBIDDEN, None, NOT_AN_OPERATOR),
            Refusal::Unavailable => error_page(StatusCode::SERVICE_UNAVAILABLE, None, UNAVAILABLE),
        }
    }
}

/// The operator of the session cookie's open session.
async fn session(state: &ApiState, request: &HttpRequest) -> Result<Session, Refusal> {
    let key = request.cookie(SESSION_COOKIE).ok_or(Refusal::SignIn)?;
    let principal = staff_sessions::principal(&state.pool, key.value())
        .await
        .map_err(|error| {
            tracing::error!(%error, "staff sessions unavailable");
            Refusal::Unavailable
        })?
        .ok_or(Refusal::SignIn)?;
    let operator = match &principal {
        Principal::Operator {
            operator_id,
            office,
            ..
        } => OperatorView {
            id: operator_id.clone(),
            office: office.clone(),
        },
        _ => return Err(Refusal::NotAnOperator),
    };
    Ok(Session {
        principal,
        operator,
    })
}

/// Whether a POST may come from another site: only when its `Origin` is
/// present and names a host other than ours. (Browsers send `Origin` on
/// every form POST; tools that send none are not a cross-site threat.)
fn cross_origin(request: &HttpRequest) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return false;
    };
    let host = request.connection_info().host().to_ascii_lowercase();
    !origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(&host))
}

fn cross_origin_refused() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        None,
        "Richiesta rifiutata: il modulo non proviene dalle pagine di Sportello.",
    )
}

// ---------------------------------------------------------------------------
// Errors

/// What the staff pages try to do to a ticket, as the form's URL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FormAction {
    TakeInCharge,
    Comment,
    Close,
    Reassign,
}

impl FormAction {
    fn from_path(segment: &str) -> Option<FormAction> {
        match segment {
            "presa-in-carico" => Some(FormAction::TakeInCharge),
            "commento" => Some(FormAction::Comment),
            "chiusura" => Some(FormAction::Close),
            "riassegnazione" => Some(FormAction::Reassign),
            _ => None,
        }
    }

    /// "Un quesito … non può essere <participle>".
    fn participle(self) -> &'static str {
        match self {
            FormAction::TakeInCharge => "preso in carico",
            FormAction::Comment => "commentato",
            FormAction::Close => "chiuso",
            FormAction::Reassign => "riassegnato",
        }
    }
}

/// A refused or failed ticket operation as a page shows it.
struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    /// The status is the JSON API's for the same error; the message is Italian,
    /// and server-side details stay in the log.
    fn of(error: TicketError, attempted: Option<FormAction>) -> Failure {
        let message = italian(&error, attempted);
        let error = ApiError::from(error);
        let status = error.status_code();
        if status.is_server_error() {
            tracing::error!(%error, "staff request failed");
            return Failure {
                status,
                message: UNAVAILABLE.into(),
            };
        }
        Failure { status, message }
    }
}

/// A search filter the queue cannot use, said with the form's own labels.
fn italian_filter(error: &FilterError) -> String {
    let label = |field: &str| match field {
        "matricola" => "Matricola",
        "q" => "Oggetto",
        "opened_from" => "Aperti dal",
        "opened_to" => "Aperti al",
        "updated_from" => "Aggiornati dal",
        "updated_to" => "Aggiornati al",
        _ => "Filtro",
    };
    match error {
        FilterError::State(raw) => {
            format!("Stato «{raw}» sconosciuto: scegli aperta, in carico o chiusa.")
        }
        FilterError::TooLong { field } => format!(
            "«{}»: al massimo {} caratteri.",
            label(field),
            tickets::MAX_SEARCH_TEXT
        ),
        FilterError::Date { field, raw } => format!(
            "«{}»: «{raw}» non è una data valida (AAAA-MM-GG).",
            label(field)
        ),
        FilterError::OutOfRange { field } | FilterError::NoSuchLocalTime { field } => {
            format!("«{}»: data fuori dall'intervallo consentito.", label(field))
        }
        FilterError::Page => format!("Pagina fuori intervallo (da 1 a {}).", tickets::MAX_PAGE),
        FilterError::PerPage => format!(
            "Quesiti per pagina fuori intervallo (da 1 a {}).",
            tickets::MAX_PAGE_SIZE
        ),
    }
}

fn italian(error: &TicketError, attempted: Option<FormAction>) -> String {
    match error {
        TicketError::NotFound => "Quesito non trovato.".into(),
        // The session is always an operator's: refusals mean another office.
        TicketError::Forbidden(_)
        | TicketError::Lifecycle(LifecycleError::NotYourOffice { .. }) => {
            "Il quesito è di un'altra sede: solo i suoi operatori possono consultarlo e lavorarlo."
                .into()
        }
        TicketError::Invalid(detail) => format!("Dati non validi: {detail}."),
        TicketError::Filter(filter) => italian_filter(filter),
        TicketError::Lifecycle(LifecycleError::IllegalTransition { state, .. }) => {
            match attempted {
                Some(action) => format!(
                    "Un quesito in stato «{state}» non può essere {}.",
                    action.participle()
                ),
                None => format!("Operazione non consentita su un quesito in stato «{state}»."),
            }
        }
        TicketError::Lifecycle(LifecycleError::MissingComment(_)) => {
            "Il commento è obbligatorio per questa operazione.".into()
        }
        TicketError::Lifecycle(LifecycleError::CommentTooLong) => {
            format!("Il commento può avere al massimo {MAX_COMMENT_CHARS} caratteri.")
        }
        TicketError::Lifecycle(LifecycleError::SameOffice(office)) => {
            format!("Il quesito è già della sede {office}.")
        }
        TicketError::UnknownOffice(office) => format!("La sede «{office}» non esiste."),
        TicketError::Database(_) | TicketError::Encoding(_) => UNAVAILABLE.into(),
    }
}

// ---------------------------------------------------------------------------
// Sign-in

async fn login_page(state: web::Data<ApiState>, request: HttpRequest) -> HttpResponse {
    // Already signed in: straight to the queue.
    if session(&state, &request).await.is_ok() {
        return redirect(SCOPE);
    }
    render(StatusCode::OK, "accesso.html", context! {})
}

/// The session cookie travels only over TLS, except to a loopback address
/// (a developer's machine): behind a TLS-terminating proxy that does not say
/// so (`X-Forwarded-Proto`), the request still looks like plain HTTP.
fn needs_secure_cookie(request: &HttpRequest) -> bool {
    let info = request.connection_info();
    if info.scheme() == "https" {
        return true;
    }
    let host = info.host();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    !matches!(name, "localhost" | "[::1]") && !name.starts_with("127.")
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(
    state: web::Data<ApiState>,
    request: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    if cross_origin(&request) {
        return cross_origin_refused();
    }
    let claims = match state.keys.verify_claims(form.token.trim()).await {
        Ok(claims) => claims,
        Err(error) => {
            tracing::info!(%error, "staff sign-in refused");
            return render(
                StatusCode::UNAUTHORIZED,
                "accesso.html",
                context! { error => "Token non valido o scaduto: richiedine uno nuovo." },
            );
        }
    };
    if !matches!(claims.principal, Principal::Operator { .. }) {
        return render(
            StatusCode::FORBIDDEN,
            "accesso.html",
            context! { error => NOT_AN_OPERATOR },
        );
    }
    // Signing in again (another operator at the same desk) ends the session
    // the browser held.
    if let Some(previous) = request.cookie(SESSION_COOKIE) {
        if let Err(error) = staff_sessions::end(&state.pool, previous.value()).await {
            tracing::error!(%error, "could not end the previous staff session");
            return error_page(StatusCode::SERVICE_UNAVAILABLE, None, UNAVAILABLE);
        }
    }
    let token_expiry = DateTime::from_timestamp(claims.exp, 0).unwrap_or_default();
    let expires_at = token_expiry.min(Utc::now() + MAX_SESSION);
    let key = match staff_sessions::open(&state.pool, &claims.principal, expires_at).await {
        Ok(key) => key,
        Err(error) => {
            tracing::error!(%error, "could not open a staff session");
            return error_page(StatusCode::SERVICE_UNAVAILABLE, None, UNAVAILABLE);
        }
    };
    let cookie = Cookie::build(SESSION_COOKIE, key)
        .path(SCOPE)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.always_secure_cookie || needs_secure_cookie(&request))
        .finish();
    secured(HttpResponse::SeeOther())
        .cookie(cookie)
        .insert_header((header::LOCATION, SCOPE))
        .finish()
}

async fn logout(state: web::Data<ApiState>, request: HttpRequest) -> HttpResponse {
    if cross_origin(&request) {
        return cross_origin_refused();
    }
    if let Some(key) = request.cookie(SESSION_COOKIE) {
        if let Err(error) = staff_sessions::end(&state.pool, key.value()).await {
            tracing::error!(%error, "could not end a staff session");
            return error_page(StatusCode::SERVICE_UNAVAILABLE, None, UNAVAILABLE);
        }
    }
    let mut cookie = Cookie::build(SESSION_COOKIE, "").path(SCOPE).finish();
    cookie.make_removal();
    secured(HttpResponse::SeeOther())
        .cookie(cookie)
        .insert_header((header::LOCATION, LOGIN))
        .finish()
}

// ---------------------------------------------------------------------------
// Queue

/// One line of the queue.
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

/// Set by the redirect after a reassignment, to say where the ticket went.
#[derive(Deserialize)]
struct Notice {
    riassegnato: Option<String>,
}

impl Notice {
    fn message(&self) -> Option<String> {
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

async fn queue(state: web::Data<ApiState>, request: HttpRequest) -> HttpResponse {
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
        Ok(search) => tickets::search(&state.pool, &principal, search)
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

// ---------------------------------------------------------------------------
// Detail

#[derive(Serialize)]
struct HistoryRow {
    at: String,
    what: String,
    who: String,
    internal: bool,
    comment: String,
    outcome: Option<String>,
    /// Reassignments: from which office to which.
    offices: Option<String>,
}

/// What happened, in the words of the offices.
fn change_label(kind: &str) -> String {
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
fn actor_label(actor: &serde_json::Value) -> String {
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
async fn detail_page(
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
        let detail = tickets::detail(&state.pool, &principal, id).await?;
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
    let attachments: Vec<Value> = attachments
        .iter()
        .map(|a| {
            context! {
                id => a.id, file_name => a.file_name, media_type => a.media_type,
                size => size_label(a.size_bytes),
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
            operator, t => view, history, attachments, offices, error,
            outcomes => Outcome::ALL.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            // One key per form and render: a resubmitted form is applied once,
            // while two different forms of one page stay two actions.
            keys => context! {
                take => Uuid::new_v4(), comment => Uuid::new_v4(),
                close => Uuid::new_v4(), reassign => Uuid::new_v4(),
            },
            can_take => now == TicketState::Aperta,
            can_comment => now != TicketState::Chiusa,
            can_close => now == TicketState::InCarico,
            can_reassign => now != TicketState::Chiusa,
        },
    )
}

fn not_found(operator: Option<&OperatorView>, what: &str) -> HttpResponse {
    error_page(
        StatusCode::NOT_FOUND,
        operator,
        &format!("{what} non trovato."),
    )
}

async fn detail(
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

// ---------------------------------------------------------------------------
// Actions

/// Every action form posts some of these; each action reads its own.
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

async fn act(
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
    let key = form.action_key.clone().filter(|k| !k.is_empty());
    let to_office = form.office.clone().unwrap_or_default();
    let applied = match form.into_action(action) {
        Ok(change) => {
            tickets::act(
                &state.pool,
                &session.principal,
                id,
                change,
                key.as_deref(),
                &super::caller::correlation_id(&request),
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

// ---------------------------------------------------------------------------
// Attachments

async fn download(
    state: web::Data<ApiState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let Session {
        principal,
        operator,
    } = match session(&state, &request).await {
        Ok(session) => session,
        Err(refusal) => return refusal.response(),
    };
    let Ok(id) = path.parse::<Uuid>() else {
        return not_found(Some(&operator), "Documento");
    };
    match documents::download(&state.pool, state.blobs.as_ref(), &principal, id).await {
        Ok((document, bytes)) => secured(HttpResponse::Ok())
            .content_type(document.media_type.as_str())
            .insert_header(super::documents::attachment(&document.file_name))
            .body(bytes),
        Err(error) => {
            let message = match &error {
                DocumentError::NotFound(_) => "Documento non trovato.",
                DocumentError::Forbidden(_) => "Il documento è di un quesito di un'altra sede.",
                DocumentError::Gone => "Il documento è stato eliminato.",
                _ => UNAVAILABLE,
            };
            let error = ApiError::from(error);
            let status = error.status_code();
            if status.is_server_error() {
                tracing::error!(%error, "staff download failed");
            }
            error_page(status, Some(&operator), message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    /// Every template renders with the values its handler gives it (a
    /// misspelt variable fails here, under SemiStrict).
    #[test]
    fn templates_render() {
        let operator = OperatorView {
            id: "E0013609".into(),
            office: "1901".into(),
        };
        let login = TEMPLATES
            .get_template("accesso.html")
            .and_then(|t| t.render(context! { error => "<b>no</b>" }))
            .unwrap();
        assert!(
            login.contains("&lt;b&gt;no&lt;") && !login.contains("<b>"),
            "auto-escaped: {login}"
        );
        TEMPLATES
            .get_template("errore.html")
            .and_then(|t| t.render(context! { operator, error => NOT_AN_OPERATOR }))
            .unwrap();
        let queue = TEMPLATES
            .get_template("coda.html")
            .and_then(|t| {
                t.render(context! {
                    operator, states => vec![("aperta", "aperta")], message => None::<String>,
                    query => SearchQuery { q: Some("\"><script>".into()), ..Default::default() },
                    tickets => vec![Row {
                        id: Uuid::nil(), signature: "INPS.1901.2026.0000001".into(),
                        subject: "UniEmens - <i>marzo</i>".into(), matricola: "4901234567".into(),
                        state: "aperta", opened_at: "01/03/2026 10:00".into(),
                        updated_at: "01/03/2026 10:00".into(), assigned_operator: String::new(),
                    }],
                    page => 1, previous_page => None::<String>, next_page => Some("/ufficio?page=2"),
                })
            })
            .unwrap();
        assert!(
            !queue.contains("<script>") && !queue.contains("<i>"),
            "{queue}"
        );
        let view = context! {
            id => Uuid::nil(), subject => "s", signature => "x", state => "in carico",
            outcome => None::<String>, office => "1901 - Crema", desk => "d", ambito => "uniemens",
            matricola => "", subject_tax_code => "RSSMRA85T10A562S", channel => "cassetto",
            contact => "", opened_at => "", updated_at => "", assigned_operator => "",
            routing_note => Some("nota"), body => "b",
        };
        let history = vec![HistoryRow {
            at: "01/03/2026 10:00".into(),
            what: "riassegnazione".into(),
            who: "operatore E1 (sede 1901)".into(),
            internal: true,
            comment: "c".into(),
            outcome: None,
            offices: Some("dalla sede 1901 alla sede 1900".into()),
        }];
        let detail = TEMPLATES
            .get_template("quesito.html")
            .and_then(|t| {
                t.render(context! {
                    operator, t => view, history, error => None::<String>,
                    attachments => vec![context! { id => Uuid::nil(), file_name => "a.pdf", media_type => "application/pdf", size => "1 byte" }],
                    offices => Vec::<Value>::new(), outcomes => vec!["evasa"],
                    keys => context! { take => "k1", comment => "k2", close => "k3", reassign => "k4" },
                    can_take => true, can_comment => true, can_close => true, can_reassign => true,
                })
            })
            .unwrap();
        assert!(
            detail.contains("nota interna") && detail.contains("alla sede 1900"),
            "{detail}"
        );
    }

    #[test]
    fn dates_are_rome_wall_clock() {
        let summer = DateTime::parse_from_rfc3339("2026-07-01T08:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(when(summer), "01/07/2026 10:05");
        let winter = DateTime::parse_from_rfc3339("2026-12-31T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(when(winter), "01/01/2027 00:30");
    }

    #[test]
    fn sizes_read_in_italian() {
        assert_eq!(size_label(12), "12 byte");
        assert_eq!(size_label(1536), "1,5 kB");
        assert_eq!(size_label(3 * 1024 * 1024), "3,0 MB");
    }

    #[test]
    fn refusals_are_italian_with_the_api_statuses() {
        let failure = Failure::of(
            TicketError::Lifecycle(LifecycleError::IllegalTransition {
                state: "chiusa",
                action: "x",
            }),
            Some(FormAction::TakeInCharge),
        );
        assert_eq!(failure.status, StatusCode::CONFLICT);
        assert_eq!(
            failure.message,
            "Un quesito in stato «chiusa» non può essere preso in carico."
        );
        let failure = Failure::of(
            TicketError::UnknownOffice("9999".into()),
            Some(FormAction::Reassign),
        );
        assert_eq!(failure.status, StatusCode::UNPROCESSABLE_ENTITY);
        let failure = Failure::of(TicketError::Forbidden("x".into()), None);
        assert_eq!(failure.status, StatusCode::FORBIDDEN);
        let failure = Failure::of(TicketError::Invalid("x".into()), None);
        assert_eq!(failure.status, StatusCode::BAD_REQUEST);
    }

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

    #[test]
    fn the_session_cookie_is_secure_except_on_a_loopback_address() {
        let to = |host: &str| {
            TestRequest::default()
                .insert_header(("host", host))
                .to_http_request()
        };
        assert!(needs_secure_cookie(&to("sportello.inps.example")));
        assert!(needs_secure_cookie(&to("10.0.0.7:8080")));
        assert!(!needs_secure_cookie(&to("127.0.0.1:8080")));
        assert!(!needs_secure_cookie(&to("localhost:8080")));
        assert!(!needs_secure_cookie(&to("[::1]:8080")));
        let forwarded = TestRequest::default()
            .insert_header(("host", "127.0.0.1:8080"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        assert!(needs_secure_cookie(&forwarded));
    }
}
