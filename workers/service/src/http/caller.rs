//! The authenticated caller: the principal of a valid bearer token.

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpMessage, HttpRequest};
use futures::future::LocalBoxFuture;

use super::{ApiError, ApiState};
use crate::contract::Principal;

/// Who is asking, and the correlation id their request carries (or a new one).
pub struct Caller {
    pub principal: Principal,
    pub correlation_id: String,
    /// The agent's verification of the caller's PIN half, when its token
    /// claims `identified_by: pin_simplified` (checked, never just believed).
    pub pin_verification: Option<uuid::Uuid>,
}

/// The principal the access policy admitted (`access::enforce`), kept on
/// the request so that its token is not verified a second time.
#[derive(Clone)]
pub(super) struct Admitted(pub Principal);

pub const CORRELATION_HEADER: &str = "x-correlation-id";

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let mut caller = authenticate(&request).await?;
            caller.pin_verification = verified(&request, &caller.principal).await?;
            Ok(caller)
        })
    }
}

/// An agent's `identified_by: pin_simplified` needs the id of a
/// verification made for this agent and caller (`X-Pin-Verification`).
async fn verified(
    request: &HttpRequest,
    principal: &Principal,
) -> Result<Option<uuid::Uuid>, ApiError> {
    if !crate::domain::pin::verification::needs_verification(principal) {
        return Ok(None);
    }
    let state = request
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| ApiError::Internal("API state missing".into()))?;
    // The header, else the principal's own field (as on the broker).
    let from_token = match principal {
        Principal::ContactCenterAgent {
            pin_verification_id: Some(id),
            ..
        } => Some(id.to_string()),
        _ => None,
    };
    let raw = request
        .headers()
        .get(crate::domain::pin::verification::VERIFICATION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or(from_token);
    let mut conn = state
        .pool
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    crate::pin::verification::required(&mut conn, principal, raw.as_deref(), chrono::Utc::now())
        .await
        .map_err(|e| match e {
            crate::pin::verification::VerifiedError::Refused(refusal) => refusal.into(),
            crate::pin::verification::VerifiedError::Database(e) => {
                ApiError::Internal(e.to_string())
            }
        })
}

/// The caller without the simplified-PIN verification: only for the route
/// that makes one.
pub(super) async fn unverified(request: &HttpRequest) -> Result<Caller, ApiError> {
    authenticate(request).await
}

/// The caller of a valid bearer token: the principal the access policy
/// already admitted, or the token verified here.
pub(super) async fn authenticate(request: &HttpRequest) -> Result<Caller, ApiError> {
    let admitted = request
        .extensions()
        .get::<Admitted>()
        .map(|admitted| admitted.0.clone());
    if let Some(principal) = admitted {
        return Ok(Caller {
            principal,
            correlation_id: correlation_id(request),
            pin_verification: None,
        });
    }
    let state = request
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| ApiError::Internal("API state missing".into()))?;
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthenticated(
            "send `Authorization: Bearer <token>`".into(),
        ))?;
    let principal = state
        .keys
        .verify(token.trim())
        .await
        .map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
    // Refusals from here on are worded for this reader (`wording`).
    request
        .extensions_mut()
        .insert(super::wording::Known(super::wording::Reader::of(
            &principal,
        )));
    Ok(Caller {
        principal,
        correlation_id: correlation_id(request),
        pin_verification: None,
    })
}

/// The caller when the request carries a bearer token (then it must be
/// valid), `None` when it carries none.
pub(super) async fn optional_caller(request: &HttpRequest) -> Result<Option<Caller>, ApiError> {
    if request.headers().get(header::AUTHORIZATION).is_none() {
        return Ok(None);
    }
    authenticate(request).await.map(Some)
}

/// The request's `X-Correlation-Id` (at most 128 bytes), or a new one.
pub(super) fn correlation_id(request: &HttpRequest) -> String {
    request
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty() && value.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}
