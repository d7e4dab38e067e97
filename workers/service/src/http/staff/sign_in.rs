//! Signing in (the token the identity provider signed opens a session, the
//! browser keeps only its key) and signing out (the session ends for good).

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::Deserialize;

use super::errors::{NOT_AN_OPERATOR, UNAVAILABLE};
use super::render::{error_page, redirect, render, secured};
use super::session::{cross_origin, cross_origin_refused, session};
use super::{ApiState, LOGIN, SCOPE, SESSION_COOKIE};
use crate::contract::Principal;
use crate::store::staff_sessions;

/// However long the identity provider's token lasts, a staff session ends
/// after a working day.
const MAX_SESSION: chrono::Duration = chrono::Duration::hours(10);

pub(super) async fn login_page(state: web::Data<ApiState>, request: HttpRequest) -> HttpResponse {
    // Already signed in: straight to the queue.
    if session(&state, &request).await.is_ok() {
        return redirect(SCOPE);
    }
    render(StatusCode::OK, "accesso.html", context! {})
}

/// The session cookie travels only over TLS, except to a loopback address
/// (a developer's machine): behind a TLS-terminating proxy that does not say
/// so (`X-Forwarded-Proto`), the request still looks like plain HTTP.
pub(crate) fn needs_secure_cookie(request: &HttpRequest) -> bool {
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
pub(super) struct LoginForm {
    #[serde(default)]
    token: String,
}

pub(super) async fn login(
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
        state.held_calls.give_back(previous.value()).await;
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

pub(super) async fn logout(state: web::Data<ApiState>, request: HttpRequest) -> HttpResponse {
    if cross_origin(&request) {
        return cross_origin_refused();
    }
    if let Some(key) = request.cookie(SESSION_COOKIE) {
        // A call the operator held goes back to its queue.
        state.held_calls.give_back(key.value()).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

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
