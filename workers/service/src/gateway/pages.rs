//! The citizen's and the operator's pages, in Italian: welcome and the SMS
//! code (citizen), sign-in with the identity provider's token (operator),
//! the room (device check, waiting room, call, chat, documents, session
//! information), and a clear page when a link opens nothing (invalid, not
//! yet, expired).

use std::sync::LazyLock;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::{context, Environment, UndefinedBehavior, Value};
use serde::Deserialize;

use super::{link_refusal, open_link, GatewayState, PASS_COOKIE};
use crate::contract::Principal;
use crate::domain::cron::TIME_ZONE;
use crate::domain::video::code::Code;
use crate::domain::video::Role;
use crate::http::cross_origin;
use crate::video::{self, Opened, VideoError};

/// Pages run only our own script (and its WebSocket to us); never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'unsafe-inline'; connect-src 'self'; media-src 'self' blob: mediastream:; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    for (name, source) in [
        ("base.html", include_str!("../../templates/video/base.html")),
        (
            "benvenuto.html",
            include_str!("../../templates/video/benvenuto.html"),
        ),
        (
            "codice.html",
            include_str!("../../templates/video/codice.html"),
        ),
        (
            "operatore_accesso.html",
            include_str!("../../templates/video/operatore_accesso.html"),
        ),
        (
            "chiusa.html",
            include_str!("../../templates/video/chiusa.html"),
        ),
        (
            "stanza.html",
            include_str!("../../templates/video/stanza.html"),
        ),
    ] {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, name, "video template does not parse");
        }
    }
    env
});

const SCRIPT: &str = include_str!("../../templates/video/stanza.js");

/// `same-origin`: the link's token (in the path) never leaves for another
/// site, and our own forms keep their `Origin` (with `no-referrer` browsers
/// send `Origin: null`, which the cross-site check refuses).
fn render(status: StatusCode, name: &str, context: Value) -> HttpResponse {
    match TEMPLATES.get_template(name).and_then(|t| t.render(context)) {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
            .insert_header((header::REFERRER_POLICY, "same-origin"))
            .body(html),
        Err(error) => {
            tracing::error!(%error, name, "video page not rendered");
            HttpResponse::InternalServerError().body("Errore interno")
        }
    }
}

fn closed_page(error: &VideoError) -> HttpResponse {
    let (status, _, message) = link_refusal(error);
    let heading = match status {
        StatusCode::GONE => "Collegamento scaduto",
        StatusCode::FORBIDDEN => "Stanza non ancora aperta",
        StatusCode::NOT_FOUND => "Collegamento non valido",
        _ => "Servizio non disponibile",
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(%error, "video room unavailable");
    }
    render(
        status,
        "chiusa.html",
        context! { heading, message, desk => "" },
    )
}

/// What every page of a room shows about the appointment.
fn about(opened: &Opened, token: &str) -> Value {
    let a = &opened.appointment;
    let starts = a.starts_at.with_timezone(&TIME_ZONE);
    let ends = a.ends_at.with_timezone(&TIME_ZONE);
    let phone_tail: String = a
        .phone
        .chars()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    context! {
        token,
        room => a.id.to_string(),
        desk => a.desk_name,
        office => a.office_name,
        reason => a.notes,
        date => starts.format("%d/%m/%Y").to_string(),
        starts => starts.format("%H:%M").to_string(),
        ends => ends.format("%H:%M").to_string(),
        phone_tail,
        citizen => a.subject_tax_code,
        citizen_name => a.citizen_name.clone().unwrap_or_default(),
        operator_id => opened.room.operator_id.clone().unwrap_or_else(|| "-".into()),
    }
}

fn cross_origin_refused() -> HttpResponse {
    render(
        StatusCode::FORBIDDEN,
        "chiusa.html",
        context! { heading => "Richiesta rifiutata", message => "Il modulo non proviene da questa pagina.", desk => "" },
    )
}

/// What every form of a link's pages checks first: posted from this site,
/// through a valid link of `role`. Otherwise the page to answer with.
async fn form_link(
    state: &GatewayState,
    request: &HttpRequest,
    token: &str,
    role: Role,
) -> Result<Opened, HttpResponse> {
    if cross_origin(request) {
        return Err(cross_origin_refused());
    }
    match open_link(state, token).await {
        Ok(opened) if opened.token.role == role => Ok(opened),
        Ok(_) => Err(closed_page(&VideoError::NoRoom)),
        Err(error) => Err(closed_page(&error)),
    }
}

pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(SCRIPT)
}

/// `GET /stanza/<token>`: the room with a pass; otherwise the welcome page
/// (citizen) or the sign-in (operator).
pub async fn room(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let opened = match open_link(&state, &path).await {
        Ok(opened) => opened,
        Err(error) => return closed_page(&error),
    };
    let role = opened.token.role;
    let pass = match request.cookie(PASS_COOKIE) {
        Some(key) => {
            crate::store::video::pass(&state.pool, key.value(), opened.appointment.id, role)
                .await
                .unwrap_or_else(|error| {
                    tracing::error!(%error, "passes unavailable");
                    None
                })
        }
        None => None,
    };
    let page = about(&opened, &path);
    match (pass, role) {
        (Some(principal), _) => {
            let operator_id = match &principal {
                Principal::Operator { operator_id, .. } => Some(operator_id.clone()),
                _ => opened.room.operator_id.clone(),
            };
            render(
                StatusCode::OK,
                "stanza.html",
                context! { role => role.as_str(), operator_id => operator_id.unwrap_or_else(|| "-".into()), ..page },
            )
        }
        (None, Role::Citizen) => render(
            StatusCode::OK,
            "benvenuto.html",
            context! { error => "", ..page },
        ),
        (None, Role::Operator) => render(
            StatusCode::OK,
            "operatore_accesso.html",
            context! { error => "", ..page },
        ),
    }
}

/// `POST /stanza/<token>/codice`: a new code by SMS.
pub async fn send_code(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let opened = match form_link(&state, &request, &path, Role::Citizen).await {
        Ok(opened) => opened,
        Err(page) => return page,
    };
    let page = about(&opened, &path);
    let correlation_id = opened.correlation_id();
    match video::send_code(
        &state.pool,
        state.sms.as_ref(),
        &state.code_key,
        &opened,
        &correlation_id,
    )
    .await
    {
        Ok(()) => render(
            StatusCode::OK,
            "codice.html",
            context! { sent => true, error => "", ..page },
        ),
        Err(VideoError::TooManyCodes(too_many)) => {
            let at = too_many
                .retry_at
                .with_timezone(&TIME_ZONE)
                .format("%H:%M:%S")
                .to_string();
            render(
                StatusCode::TOO_MANY_REQUESTS,
                "codice.html",
                context! { sent => false, error => format!("Hai chiesto troppi codici: puoi chiederne uno nuovo dalle {at}. Usa l'ultimo codice ricevuto."), ..page },
            )
        }
        Err(VideoError::Sms(_)) => render(
            StatusCode::SERVICE_UNAVAILABLE,
            "benvenuto.html",
            context! { error => "Non è stato possibile inviare l'SMS: riprova tra qualche minuto.", ..page },
        ),
        Err(error) => closed_page(&error),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

fn pass_cookie(
    state: &GatewayState,
    request: &HttpRequest,
    token: &str,
    key: String,
) -> Cookie<'static> {
    Cookie::build(PASS_COOKIE, key)
        .path(format!("/stanza/{token}"))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.always_secure_cookie || crate::http::needs_secure_cookie(request))
        .finish()
}

fn into_room(cookie: Cookie<'static>, token: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, format!("/stanza/{token}")))
        .finish()
}

/// `POST /stanza/<token>/accesso`: the code; right, the browser gets a pass.
pub async fn redeem_code(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CodeForm>,
) -> HttpResponse {
    let opened = match form_link(&state, &request, &path, Role::Citizen).await {
        Ok(opened) => opened,
        Err(page) => return page,
    };
    let page = about(&opened, &path);
    let wrong = |message: String| {
        render(
            StatusCode::UNAUTHORIZED,
            "codice.html",
            context! { sent => false, error => message, ..page.clone() },
        )
    };
    let Ok(code) = Code::parse(&form.code) else {
        return wrong("Il codice è di 6 cifre.".into());
    };
    match video::redeem_code(&state.pool, &state.code_key, &opened, &code).await {
        Ok(key) => into_room(pass_cookie(&state, &request, &path, key), &path),
        Err(VideoError::WrongCode { remaining }) => {
            wrong(format!("Codice errato: restano {remaining} tentativi."))
        }
        Err(VideoError::NoCode) => wrong(
            "Il codice non è più valido (scaduto o troppi tentativi): chiedine uno nuovo.".into(),
        ),
        Err(error) => closed_page(&error),
    }
}

#[derive(Deserialize)]
pub struct OperatorForm {
    #[serde(default)]
    token: String,
}

/// `POST /stanza/<token>/operatore`: the operator signs in with the
/// identity provider's token; only an operator of the appointment's office.
pub async fn operator_sign_in(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Form<OperatorForm>,
) -> HttpResponse {
    let opened = match form_link(&state, &request, &path, Role::Operator).await {
        Ok(opened) => opened,
        Err(page) => return page,
    };
    let page = about(&opened, &path);
    let claims = match state.keys.verify_claims(form.token.trim()).await {
        Ok(claims) => claims,
        Err(error) => {
            tracing::info!(%error, "video operator sign-in refused");
            return render(
                StatusCode::UNAUTHORIZED,
                "operatore_accesso.html",
                context! { error => "Token non valido o scaduto: richiedine uno nuovo.", ..page },
            );
        }
    };
    match video::operator_pass(&state.pool, &opened, &claims.principal).await {
        Ok(key) => into_room(pass_cookie(&state, &request, &path, key), &path),
        Err(VideoError::Forbidden(_)) => render(
            StatusCode::FORBIDDEN,
            "operatore_accesso.html",
            context! { error => "Questo appuntamento è di un'altra sede, o il token non è di un operatore.", ..page },
        ),
        Err(error) => closed_page(&error),
    }
}
