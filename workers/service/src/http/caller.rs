//! The authenticated caller: the principal of a valid bearer token.

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;

use super::{ApiError, ApiState};
use crate::contract::Principal;

/// Who is asking, and the correlation id their request carries (or a new one).
pub struct Caller {
    pub principal: Principal,
    pub correlation_id: String,
}

pub const CORRELATION_HEADER: &str = "x-correlation-id";

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move { authenticate(&request).await })
    }
}

async fn authenticate(request: &HttpRequest) -> Result<Caller, ApiError> {
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
    Ok(Caller {
        principal,
        correlation_id: correlation_id(request),
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
