//! The operator's session: the cookie's key names a server-side session
//! (`store::staff_sessions`); a POST naming another site is refused.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};

use super::errors::{NOT_AN_OPERATOR, UNAVAILABLE};
use super::render::{error_page, redirect, OperatorView};
use super::{ApiState, LOGIN, SESSION_COOKIE};
use crate::contract::Principal;
use crate::store::staff_sessions;

/// A signed-in operator.
pub(super) struct Session {
    pub(super) principal: Principal,
    pub(super) operator: OperatorView,
}

/// Why a request has no operator's session.
pub(super) enum Refusal {
    /// No cookie, or a session that is not open (any more): sign in.
    SignIn,
    /// A valid token, but not an operator's.
    NotAnOperator,
    /// The sessions could not be read.
    Unavailable,
}

impl Refusal {
    pub(super) fn response(self) -> HttpResponse {
        match self {
            Refusal::SignIn => redirect(LOGIN),
            Refusal::NotAnOperator => error_page(StatusCode::FORBIDDEN, None, NOT_AN_OPERATOR),
            Refusal::Unavailable => error_page(StatusCode::SERVICE_UNAVAILABLE, None, UNAVAILABLE),
        }
    }
}

/// The operator of the session cookie's open session.
pub(super) async fn session(state: &ApiState, request: &HttpRequest) -> Result<Session, Refusal> {
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

/// Whether a POST comes from another site: only when its `Origin` is
/// present and names a host other than ours (browsers send `Origin` on
/// every form POST; tools that send none are not a cross-site threat). The
/// staff pages and the video gateway refuse such a form.
pub(crate) fn cross_origin(request: &HttpRequest) -> bool {
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

pub(super) fn cross_origin_refused() -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        None,
        "Richiesta rifiutata: il modulo non proviene dalle pagine di Sportello.",
    )
}

/// The one-time key a form posted (`action_key`), bound to the session that
/// rendered it: replayed from another session it is another key. `None`
/// when the form sent none.
pub(super) fn form_key(request: &HttpRequest, posted: Option<&str>) -> Option<String> {
    let session_key = request
        .cookie(SESSION_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .unwrap_or_default();
    posted
        .filter(|k| !k.is_empty())
        .map(|k| bound_key(&session_key, k))
}

/// A form's one-time key bound to the session it was rendered for: the
/// ticket's history remembers this, so a key copied into another session
/// (another operator's browser) names another action.
fn bound_key(session_key: &str, form_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(session_key.as_bytes())
        .chain_update(b":")
        .chain_update(form_key.as_bytes())
        .finalize();
    format!("staff:{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::bound_key;

    #[test]
    fn a_form_key_is_bound_to_its_session() {
        assert_eq!(bound_key("s1", "k"), bound_key("s1", "k"));
        assert_ne!(bound_key("s1", "k"), bound_key("s2", "k"));
        assert_ne!(bound_key("s1", "k"), bound_key("s1", "k2"));
    }
}
