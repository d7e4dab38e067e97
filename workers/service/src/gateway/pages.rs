//! The citizen's and the operator's pages, in Italian: welcome and the SMS
//! code (citizen), sign-in with the identity provider's token (operator),
//! the room (device check, waiting room, call, chat, documents, session
//! information), after the call the 72-hour window's page (documents only:
//! it loads no script that could ask for the camera or the microphone), and
//! a clear page when a link opens nothing (invalid, not yet, expired, the
//! window closed).

use std::sync::LazyLock;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::{context, Environment, UndefinedBehavior, Value};
use serde::Deserialize;

use super::{italian_time, link_refusal, open_link, GatewayState, PASS_COOKIE};
use crate::contract::Principal;
use crate::domain::cron::TIME_ZONE;
use crate::domain::refusal::Code as RefusalCode;
use crate::domain::video::code::Code;
use crate::domain::video::room::Landing;
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
        (
            "finestra.html",
            include_str!("../../templates/video/finestra.html"),
        ),
        (
            "documenti.html",
            include_str!("../../templates/video/documenti.html"),
        ),
        (
            "informazioni.html",
            include_str!("../../templates/video/informazioni.html"),
        ),
    ] {
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, name, "video template does not parse");
        }
    }
    env
});

/// The room's script: device check, signalling, WebRTC, chat, controls.
const ROOM_SCRIPT: &str = include_str!("../../templates/video/stanza.js");
/// The documents panel's script, shared by the room and the window's page.
const DOCUMENTS_SCRIPT: &str = include_str!("../../templates/video/documenti.js");

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
            HttpResponse::InternalServerError().body("Errore interno (codice: internal)")
        }
    }
}

fn closed_page(error: &VideoError) -> HttpResponse {
    let (status, code, message) = link_refusal(error);
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
        context! { heading, message, code => code.as_str(), desk => "" },
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
        context! { heading => "Richiesta rifiutata", message => RefusalCode::CrossOrigin.italian(), code => RefusalCode::CrossOrigin.as_str(), desk => "" },
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

fn script(source: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(source)
}

/// `GET /static/stanza.js`
pub async fn room_script() -> HttpResponse {
    script(ROOM_SCRIPT)
}

/// `GET /static/documenti.js`
pub async fn documents_script() -> HttpResponse {
    script(DOCUMENTS_SCRIPT)
}

/// `GET /stanza/<token>`: with a pass, what the link lands on (the room,
/// or after the call the window's page); otherwise the welcome page
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
    // Until when the window's page is open ("" during the call).
    let closes = match opened.landing {
        Landing::Call => String::new(),
        Landing::Window { closes_at } => italian_time(closes_at),
    };
    match (pass, role) {
        (Some(principal), _) => {
            let operator_id = match &principal {
                Principal::Operator { operator_id, .. } => Some(operator_id.clone()),
                _ => opened.room.operator_id.clone(),
            };
            let template = match opened.landing {
                Landing::Call => "stanza.html",
                Landing::Window { .. } => "finestra.html",
            };
            render(
                StatusCode::OK,
                template,
                context! { role => role.as_str(), operator_id => operator_id.unwrap_or_else(|| "-".into()), window_page => !closes.is_empty(), closes, ..page },
            )
        }
        (None, Role::Citizen) => render(
            StatusCode::OK,
            "benvenuto.html",
            context! { error => "", closes, ..page },
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
                context! { sent => false, error => format!("Hai chiesto troppi codici: puoi chiederne uno nuovo dalle {at}. Usa l'ultimo codice ricevuto."), error_code => RefusalCode::TooManyCodes.as_str(), ..page },
            )
        }
        Err(VideoError::Sms(_)) => render(
            StatusCode::SERVICE_UNAVAILABLE,
            "benvenuto.html",
            context! { error => RefusalCode::SmsFailed.italian(), error_code => RefusalCode::SmsFailed.as_str(), ..page },
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
    let wrong = |message: String, code: RefusalCode| {
        render(
            StatusCode::UNAUTHORIZED,
            "codice.html",
            context! { sent => false, error => message, error_code => code.as_str(), ..page.clone() },
        )
    };
    let Ok(code) = Code::parse(&form.code) else {
        return wrong("Il codice è di 6 cifre.".into(), RefusalCode::WrongCode);
    };
    match video::redeem_code(&state.pool, &state.code_key, &opened, &code).await {
        Ok(key) => into_room(pass_cookie(&state, &request, &path, key), &path),
        Err(VideoError::WrongCode { remaining }) => wrong(
            format!("Codice errato: restano {remaining} tentativi."),
            RefusalCode::WrongCode,
        ),
        Err(VideoError::NoCode) => wrong(RefusalCode::NoCode.italian().into(), RefusalCode::NoCode),
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
                context! { error => "Token non valido o scaduto: richiedine uno nuovo.", error_code => RefusalCode::Unauthenticated.as_str(), ..page },
            );
        }
    };
    match video::operator_pass(&state.pool, &opened, &claims.principal).await {
        Ok(key) => into_room(pass_cookie(&state, &request, &path, key), &path),
        Err(VideoError::Forbidden(_)) => render(
            StatusCode::FORBIDDEN,
            "operatore_accesso.html",
            context! { error => "Questo appuntamento è di un'altra sede, o il token non è di un operatore.", error_code => RefusalCode::Forbidden.as_str(), ..page },
        ),
        Err(error) => closed_page(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(template: &str, window_page: bool) -> String {
        TEMPLATES
            .get_template(template)
            .and_then(|t| {
                t.render(context! {
                    token => "t0k", room => "r", desk => "Conto assicurativo", office => "Roma",
                    reason => "Informazioni", date => "03/12/2026", starts => "10:00",
                    ends => "10:20", phone_tail => "567", citizen => "RSSMRA85T10A562S",
                    citizen_name => "", operator_id => "E1", role => "citizen",
                    closes => if window_page { "06/12/2026 alle 10:05" } else { "" },
                    window_page, error => "",
                })
            })
            .unwrap()
    }

    /// The window's page shows the documents panel at once and loads only
    /// its script: nothing on it can ask for the camera or the microphone.
    #[test]
    fn the_window_page_is_documents_only_the_room_keeps_its_device_check() {
        let window = page("finestra.html", true);
        assert!(window.contains(r#"<section id="documenti" aria-labelledby"#));
        assert!(window.contains(r#"data-window="true""#));
        // Auto-escaped, as every value: the browser shows 06/12/2026.
        assert!(
            window.contains("fino al 06&#x2f;12&#x2f;2026 alle 10:05"),
            "{window}"
        );
        assert!(window.contains(r#"<script src="/static/documenti.js"></script>"#));
        assert!(!window.contains("stanza.js"));
        assert!(!window.contains("id=\"verifica\"") && !window.contains("<video"));
        assert!(!DOCUMENTS_SCRIPT.contains("getUserMedia"));
        assert!(!DOCUMENTS_SCRIPT.contains("mediaDevices"));

        let room = page("stanza.html", false);
        assert!(room.contains(r#"<section id="documenti" hidden"#));
        assert!(!room.contains("data-window"));
        assert!(room.contains("id=\"verifica\""));
        let documents = room.find("/static/documenti.js").unwrap();
        assert!(documents < room.find("/static/stanza.js").unwrap());

        let welcome = page("benvenuto.html", true);
        assert!(
            welcome.contains("puoi integrare i documenti mancanti fino al 06&#x2f;12&#x2f;2026")
        );
        assert!(!page("benvenuto.html", false).contains("integrare"));
    }

    #[test]
    fn every_page_links_the_favicon_the_policy_allows() {
        for template in ["benvenuto.html", "stanza.html", "finestra.html"] {
            assert!(page(template, false).contains(r#"<link rel="icon" href="/favicon.ico""#));
        }
        assert!(CONTENT_SECURITY_POLICY
            .split(';')
            .any(|directive| directive.trim().starts_with("img-src 'self'")));
    }
}
