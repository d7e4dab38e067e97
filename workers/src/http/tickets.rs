//! Handlers of the tickets API: history search, detail, and the operators'
//! actions. An `Idempotency-Key` header makes a resent action a no-op.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{ApiError, ApiState, Caller};
use crate::domain::ticket::{Outcome, TicketAction, Visibility};
use crate::tickets::{self, SearchQuery, TicketError};

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

pub async fn search(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = tickets::search(
        &state.pool,
        &caller.principal,
        &query,
        &caller.correlation_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn detail(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let detail = tickets::detail(
        &state.pool,
        &caller.principal,
        path.into_inner(),
        &caller.correlation_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// The audit trail of contact-centre agents' reads, for the office's operators.
pub async fn agent_reads(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<tickets::agent_reads::AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = tickets::agent_reads::audit(&state.pool, &caller.principal, &query).await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn offices(
    state: web::Data<ApiState>,
    _caller: Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(tickets::offices(&state.pool).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeInCharge {
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comment {
    text: String,
    /// `public` (the citizen sees it) or `internal`.
    visibility: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Close {
    /// *Esito*: `accolta`, `respinta` or `evasa`.
    outcome: String,
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reassign {
    office: String,
    reason: String,
}

pub async fn take_in_charge(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<TakeInCharge>,
) -> Result<HttpResponse, ApiError> {
    let action = TicketAction::TakeInCharge {
        comment: body.into_inner().comment,
    };
    act(&state, &caller, &request, path.into_inner(), action).await
}

pub async fn comment(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<Comment>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let visibility = Visibility::parse(&body.visibility).ok_or_else(|| {
        TicketError::Invalid(format!(
            "visibility must be public or internal, not `{}`",
            body.visibility
        ))
    })?;
    let action = TicketAction::Comment {
        text: body.text,
        visibility,
    };
    act(&state, &caller, &request, path.into_inner(), action).await
}

pub async fn close(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<Close>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let outcome = Outcome::parse(&body.outcome).ok_or_else(|| {
        TicketError::Invalid(format!(
            "outcome must be accolta, respinta or evasa, not `{}`",
            body.outcome
        ))
    })?;
    let action = TicketAction::Close {
        outcome,
        comment: body.comment,
    };
    act(&state, &caller, &request, path.into_inner(), action).await
}

pub async fn reassign(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<Reassign>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let action = TicketAction::Reassign {
        to_office: body.office,
        reason: body.reason,
    };
    act(&state, &caller, &request, path.into_inner(), action).await
}

async fn act(
    state: &ApiState,
    caller: &Caller,
    request: &HttpRequest,
    id: Uuid,
    action: TicketAction,
) -> Result<HttpResponse, ApiError> {
    let key = request
        .headers()
        .get(IDEMPOTENCY_HEADER)
        .map(|value| {
            value
                .to_str()
                .map_err(|_| ApiError::BadRequest("Idempotency-Key must be ASCII".into()))
        })
        .transpose()?;
    let outcome = tickets::act(
        &state.pool,
        &caller.principal,
        id,
        action,
        key,
        &caller.correlation_id,
    )
    .await?;
    // After a reassignment the ticket is no longer the operator's to see.
    let ticket =
        match tickets::detail(&state.pool, &caller.principal, id, &caller.correlation_id).await {
            Ok(detail) => Some(detail),
            Err(TicketError::Forbidden(_)) => None,
            Err(error) => return Err(error.into()),
        };
    Ok(HttpResponse::Ok().json(json!({ "outcome": outcome, "ticket": ticket })))
}
