//! `GET /submissions`: what became of a message a channel published.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::problem::{BadRequest, NotFound};
use super::{ApiError, ApiState, Caller};
use crate::submissions::{self, Asked, SubmissionError};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FateQuery {
    /// The envelope's `message_id`.
    message_id: Option<Uuid>,
    /// The envelope's `idempotency_key`, as the caller sent it (keys are
    /// the caller's own: another's key finds nothing); with `type`.
    idempotency_key: Option<String>,
    /// The envelope's `type`, with `idempotency_key`: keys are scoped by
    /// publisher and message type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    message_type: Option<String>,
}

#[utoipa::path(
    get,
    path = "/submissions",
    operation_id = "submission_fate",
    tag = "submissions",
    description = "What became of a message the caller published (a request, an application, a message on a ticket, a delegation, a PIN request, a booking command), by `message_id`, or by `idempotency_key` with `type`: `queued` (not processed yet, or never received: the two read the same), `applied` (with `ticket_id`, `application_id`, `signature` where it made them), `duplicate_of` (a resend of an earlier message, named), or `refused` with `refusal.code` (stable), `refusal.message` (plain Italian, for the citizen) and `refusal.reason` (English, for developers). Readable by the message's publisher and by the citizen it concerns; anyone else gets 404, as for an id never seen by them.",
    params(FateQuery),
    responses(
        (status = 200, description = "The message's fate", body = serde_json::Value, example = json!({
            "message_id": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a29aa01",
            "state": "refused",
            "refusal": {
                "code": "no_delegation",
                "message": "La richiesta non è stata accettata: non risulta una delega attiva per questa persona o posizione.",
                "reason": "rejected: no active delegation for matricola 1234567890 (aziende_uniemens)"
            }
        })),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    ),
    security(("bearer" = []))
)]
pub async fn fate(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<FateQuery>,
) -> Result<HttpResponse, ApiError> {
    let asked = match query.into_inner() {
        FateQuery {
            message_id: Some(id),
            idempotency_key: None,
            message_type: None,
        } => Asked::MessageId(id),
        FateQuery {
            message_id: None,
            idempotency_key: Some(key),
            message_type: Some(message_type),
        } => Asked::IdempotencyKey { message_type, key },
        _ => {
            return Err(SubmissionError::Invalid(
                "name either message_id, or idempotency_key with type".into(),
            )
            .into())
        }
    };
    let view = submissions::fate(&state.pool, &caller.principal, &asked).await?;
    Ok(HttpResponse::Ok().json(view))
}
