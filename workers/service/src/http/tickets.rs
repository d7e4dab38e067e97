//! Handlers of the tickets API: history search, detail, and the operators'
//! actions. An `Idempotency-Key` header makes a resent action a no-op.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{Conflict, Forbidden, NotFound, Unprocessable};
use super::{ApiError, ApiState, Caller};
use crate::domain::ticket::{Outcome, TicketAction, Visibility};
use crate::store::tickets::Office;
use crate::tickets::{self, ActOutcome, Page, SearchQuery, TicketDetail, TicketError};

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// An example ticket as the office sees it (the citizen sees no operator
/// ids, routing or correlation id).
macro_rules! ticket_example {
    () => {
        serde_json::json!({
            "id": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a291808",
            "subject": "Versamenti - F24 di ottobre non abbinato",
            "ambito": "versamenti",
            "matricola": "4901234567",
            "state": "in_carico",
            "outcome": null,
            "office_aoo": "1901",
            "office_name": "Crema",
            "signature": "INPS.1901.29/11/2026.0000042",
            "assigned_operator": "E0013609",
            "opened_at": "2026-11-29T09:12:03Z",
            "updated_at": "2026-11-29T10:40:00Z",
            "body": "Il versamento F24 di ottobre non risulta abbinato alla posizione.",
            "channel": "cassetto",
            "subject_tax_code": "RSSMRA85T10A562S",
            "desk_kind": "multiservizi",
            "desk_name": "Multiservizi",
            "routed_by": "province CR",
            "routing_note": null,
            "contact_email": "mario.rossi@example.it",
            "contact_phone": null,
            "correlation_id": "cassetto-7f3d2a92",
            "history": [{
                "kind": "taken_in_charge",
                "from_state": "aperta",
                "to_state": "in_carico",
                "visibility": "public",
                "comment": "Verifichiamo il versamento.",
                "outcome": null,
                "from_office": null,
                "to_office": null,
                "actor": {"kind": "operator", "operator_id": "E0013609", "office": "1901"},
                "at": "2026-11-29T10:40:00Z"
            }],
            "attachments": [],
            "viewer": "office"
        })
    };
}

#[utoipa::path(
    get,
    path = "/tickets",
    operation_id = "search_tickets",
    tag = "tickets",
    description = "History search: a citizen's own tickets, an intermediary's positions under an active delegation, an operator's office. Last updated first.",
    params(SearchQuery),
    responses(
        (status = 200, description = "A page of tickets", body = Page, example = json!({
            "tickets": [{
                "id": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a291808",
                "subject": "Versamenti - F24 di ottobre non abbinato",
                "ambito": "versamenti",
                "matricola": "4901234567",
                "state": "aperta",
                "outcome": null,
                "office_aoo": "1901",
                "office_name": "Crema",
                "signature": "INPS.1901.29/11/2026.0000042",
                "assigned_operator": null,
                "opened_at": "2026-11-29T09:12:03Z",
                "updated_at": "2026-11-29T09:12:03Z"
            }],
            "page": 1,
            "per_page": 20,
            "has_more": false
        })),
        (status = 403, response = Forbidden),
    )
)]
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

#[utoipa::path(
    get,
    path = "/tickets/{ticket_id}",
    operation_id = "ticket_detail",
    tag = "tickets",
    description = "The ticket with its whole conversation and attachments; citizens see public entries only, without operator ids, routing or correlation id.",
    params(("ticket_id" = Uuid, Path, description = "The ticket")),
    responses(
        (status = 200, description = "The ticket", body = TicketDetail, example = json!(ticket_example!())),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
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
#[utoipa::path(
    get,
    path = "/agent-reads",
    tag = "tickets",
    description = "Operators only: the reads contact-centre agents made of tickets of the operator's office (who, for whom, how the citizen was identified, what, when), newest first, paged.",
    params(tickets::agent_reads::AuditQuery),
    responses(
        (status = 200, description = "A page of the audit trail", body = serde_json::Value),
        (status = 403, description = "Not an operator", body = super::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn agent_reads(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<tickets::agent_reads::AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = tickets::agent_reads::audit(&state.pool, &caller.principal, &query).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(
    get,
    path = "/offices",
    tag = "tickets",
    description = "The offices (AOO and name), triage first.",
    responses(
        (status = 200, description = "Offices", body = Vec<Office>, example = json!([
            {"aoo": "0001", "name": "Smistamento centrale", "is_triage": true},
            {"aoo": "1901", "name": "Crema", "is_triage": false}
        ])),
    )
)]
pub async fn offices(
    state: web::Data<ApiState>,
    _caller: Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(tickets::offices(&state.pool).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"comment": "Verifichiamo il versamento."}))]
pub struct TakeInCharge {
    comment: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "Serve la quietanza del versamento.", "visibility": "public"}))]
pub struct Comment {
    text: String,
    /// `public` (the citizen sees it) or `internal`.
    #[schema(pattern = "^(public|internal)$")]
    visibility: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"outcome": "accolta", "comment": "Versamento abbinato."}))]
pub struct Close {
    /// *Esito*: `accolta`, `respinta` or `evasa`.
    #[schema(pattern = "^(accolta|respinta|evasa)$")]
    outcome: String,
    comment: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"office": "1900", "reason": "Posizione di competenza di Cremona"}))]
pub struct Reassign {
    /// The new office's AOO.
    office: String,
    reason: String,
}

#[utoipa::path(
    post,
    path = "/tickets/{ticket_id}/take-in-charge",
    tag = "tickets",
    description = "*aperta* → *in carico*, with an optional comment. Only operators of the ticket's office. The same `Idempotency-Key` on the same ticket is applied once (`already_applied` the second time).",
    params(
        ("ticket_id" = Uuid, Path, description = "The ticket"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a resent action a no-op"),
    ),
    request_body(content = TakeInCharge, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or already applied); the ticket as the operator now sees it (null after a reassignment)", body = ActionAnswer, example = json!({"outcome": "applied", "ticket": ticket_example!()})),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    )
)]
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

#[utoipa::path(
    post,
    path = "/tickets/{ticket_id}/comments",
    tag = "tickets",
    description = "A comment, public (the citizen reads it) or internal. Only operators of the ticket's office. The same `Idempotency-Key` on the same ticket is applied once (`already_applied` the second time).",
    params(
        ("ticket_id" = Uuid, Path, description = "The ticket"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a resent action a no-op"),
    ),
    request_body(content = Comment, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or already applied); the ticket as the operator now sees it (null after a reassignment)", body = ActionAnswer, example = json!({"outcome": "applied", "ticket": ticket_example!()})),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    )
)]
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

#[utoipa::path(
    post,
    path = "/tickets/{ticket_id}/close",
    tag = "tickets",
    description = "*in carico* → *chiusa* with an esito and a public comment. Only operators of the ticket's office. The same `Idempotency-Key` on the same ticket is applied once (`already_applied` the second time).",
    params(
        ("ticket_id" = Uuid, Path, description = "The ticket"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a resent action a no-op"),
    ),
    request_body(content = Close, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or already applied); the ticket as the operator now sees it (null after a reassignment)", body = ActionAnswer, example = json!({"outcome": "applied", "ticket": ticket_example!()})),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    )
)]
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

#[utoipa::path(
    post,
    path = "/tickets/{ticket_id}/reassign",
    tag = "tickets",
    description = "To another office, back to *aperta* there. Only operators of the ticket's office. The same `Idempotency-Key` on the same ticket is applied once (`already_applied` the second time).",
    params(
        ("ticket_id" = Uuid, Path, description = "The ticket"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a resent action a no-op"),
    ),
    request_body(content = Reassign, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or already applied); the ticket as the operator now sees it (null after a reassignment)", body = ActionAnswer, example = json!({"outcome": "applied", "ticket": ticket_example!()})),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    )
)]
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

/// What an operator's action did, and the ticket after it.
#[derive(Serialize, ToSchema)]
pub struct ActionAnswer {
    outcome: ActOutcome,
    /// `null` when the operator may no longer see it (reassigned away).
    ticket: Option<TicketDetail>,
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
    Ok(HttpResponse::Ok().json(ActionAnswer { outcome, ticket }))
}
