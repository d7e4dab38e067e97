//! Handlers of the appointments API: availability, *Prenota* (hold, with an
//! `Idempotency-Key` making a resend the same hold), *Conferma*, *Cancella
//! prenotazione*, "Gestione appuntamenti" and receipts (JSON and PDF).

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::documents::pdf_download;
use super::endpoint::{api, Endpoint};
use super::problem::{Conflict, Forbidden, NotFound, Problem, Unprocessable};
use super::tickets::IDEMPOTENCY_HEADER;
use super::{ApiError, ApiState, Caller};
use crate::appointments::{
    self, receipt, Answer, AppointmentError, Availability, HoldRequest, Outcome,
};
use crate::domain::appointment::{calendar, DeskKind, Mode};
use crate::store::appointments::AppointmentRecord;

pub(super) fn endpoints() -> Vec<Endpoint> {
    use actix_web::http::Method as M;
    vec![
        api(
            "/offices/{aoo}/desks/{kind}/availability",
            M::GET,
            availability,
        ),
        api("/appointments", M::GET, list),
        api("/appointments", M::POST, hold),
        api("/appointments/{id}", M::GET, detail),
        api("/appointments/{id}/confirm", M::POST, confirm),
        api("/appointments/{id}/cancel", M::POST, cancel),
        api("/appointments/{id}/receipt", M::GET, receipt_json),
        api("/appointments/{id}/receipt.pdf", M::GET, receipt_pdf),
    ]
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// `in_person`, `phone` or `video`.
    mode: String,
    /// First local date (`YYYY-MM-DD`, Europe/Rome); default: today.
    from: Option<String>,
    /// Last local date; default: 13 days after `from`; at most 31 days.
    to: Option<String>,
}

/// An example appointment.
macro_rules! appointment_example {
    () => {
        serde_json::json!({
            "id": "0193a1e0-5555-7000-8000-000000000005",
            "subject_tax_code": "RSSMRA85T10A562S",
            "citizen_name": "Mario Rossi",
            "matricola": null,
            "gestione": "aziende_uniemens",
            "channel": "web",
            "office_aoo": "1901",
            "office_name": "Crema",
            "desk_kind": "multiservizi",
            "desk_name": "Multiservizi",
            "mode": "video",
            "starts_at": "2026-12-02T08:10:00Z",
            "ends_at": "2026-12-02T08:30:00Z",
            "state": "confirmed",
            "hold_expires_at": "2026-11-29T09:10:00Z",
            "phone": "+393331234567",
            "notes": "Ricostruzione della posizione contributiva",
            "ticket_id": null,
            "cancelled_by": null,
            "cancel_reason": null,
            "created_at": "2026-11-29T09:00:00Z",
            "updated_at": "2026-11-29T09:02:00Z",
            "confirmed_at": "2026-11-29T09:02:00Z",
            "cancelled_at": null,
            "booked_by": {"kind": "citizen"}
        })
    };
}

/// An example receipt.
macro_rules! receipt_example {
    () => {
        serde_json::json!({
            "appointment_id": "0193a1e0-5555-7000-8000-000000000005",
            "state": "confirmed",
            "mode": "video",
            "mode_label": "Videochiamata",
            "office_aoo": "1901",
            "office_name": "Crema",
            "desk": "Multiservizi",
            "date": "02/12/2026",
            "time": "09:10",
            "ends": "09:30",
            "starts_at": "2026-12-02T08:10:00Z",
            "ends_at": "2026-12-02T08:30:00Z",
            "subject_tax_code": "RSSMRA85T10A562S",
            "phone": "+393331234567",
            "video_link": "https://video.sportello.example/rooms/0193a1e0-5555-7000-8000-000000000005"
        })
    };
}

/// The answer to *Prenota*.
#[derive(Serialize, ToSchema)]
pub struct HoldAnswer {
    /// Always `held`.
    outcome: &'static str,
    /// The same `Idempotency-Key` was used before: this is the first hold.
    repeated: bool,
    appointment_id: Uuid,
    hold_expires_at: DateTime<Utc>,
    appointment: AppointmentRecord,
}

/// The answer to *Conferma*.
#[derive(Serialize, ToSchema)]
pub struct ConfirmAnswer {
    outcome: Outcome,
    appointment: AppointmentRecord,
    receipt: receipt::Receipt,
}

/// "Gestione appuntamenti".
#[derive(Serialize, ToSchema)]
pub struct AppointmentList {
    appointments: Vec<AppointmentRecord>,
}

fn date(raw: Option<&str>, field: &str) -> Result<Option<NaiveDate>, AppointmentError> {
    raw.map(|raw| {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
            AppointmentError::Invalid(format!("{field} must be a date YYYY-MM-DD, not `{raw}`"))
        })
    })
    .transpose()
}

#[utoipa::path(
    get,
    path = "/offices/{aoo}/desks/{kind}/availability",
    tag = "appointments",
    description = "Free slots of an office's desk in a mode, over Rome dates (at most 31 days): the slots *Prenota* accepts, after now and at most 120 days ahead (the booking horizon), with a seat left. A range reaching past the horizon lists the slots up to it. The rules about the citizen (booking limits, Cassetto topics) are *Prenota*'s. Any authenticated caller.",
    params(
        ("aoo" = String, Path, description = "The office (AOO), e.g. `1901`"),
        ("kind" = String, Path, description = "The desk, e.g. `multiservizi`"),
        AvailabilityQuery,
    ),
    responses(
        (status = 200, description = "Free slots", body = Availability, example = json!({
            "office_aoo": "1901",
            "office_name": "Crema",
            "desk_kind": "multiservizi",
            "desk_name": "Multiservizi",
            "mode": "video",
            "from": "2026-12-01",
            "to": "2026-12-14",
            "slots": [{"starts_at": "2026-12-02T08:10:00Z", "ends_at": "2026-12-02T08:30:00Z", "date": "2026-12-02", "time": "09:10", "free": 1}]
        })),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
    )
)]
pub async fn availability(
    state: web::Data<ApiState>,
    _caller: Caller,
    path: web::Path<(String, String)>,
    query: web::Query<AvailabilityQuery>,
) -> Result<HttpResponse, ApiError> {
    let (aoo, kind) = path.into_inner();
    let invalid = |e: &dyn ToString| AppointmentError::Invalid(e.to_string());
    let mode = Mode::parse(&query.mode).map_err(|e| invalid(&e))?;
    let office = crate::domain::protocol::Aoo::parse(&aoo).map_err(|e| invalid(&e))?;
    let desk = DeskKind::parse(&kind).map_err(|e| invalid(&e))?;
    let now = Utc::now();
    let from = date(query.from.as_deref(), "from")?.unwrap_or_else(|| calendar::rome_date(now));
    let to = date(query.to.as_deref(), "to")?.unwrap_or(from + Duration::days(13));
    let mut conn = state.pool.acquire().await.map_err(AppointmentError::from)?;
    let availability = appointments::availability(
        &mut conn,
        office.as_str(),
        desk.as_str(),
        mode,
        from,
        to,
        now,
    )
    .await?;
    Ok(HttpResponse::Ok().json(availability))
}

fn idempotency_key(request: &HttpRequest) -> Result<Option<&str>, ApiError> {
    request
        .headers()
        .get(IDEMPOTENCY_HEADER)
        .map(|value| {
            value
                .to_str()
                .map_err(|_| ApiError::BadRequest("Idempotency-Key must be ASCII".into()))
        })
        .transpose()
}

#[utoipa::path(
    post,
    path = "/appointments",
    tag = "appointments",
    description = "*Prenota*: hold a slot for `APPOINTMENT_HOLD_MINUTES`. The citizen; an intermediary (`on_behalf_of`, optional `matricola`, active delega); a contact-centre agent (its token's citizen); a desk operator (own office, `on_behalf_of`). The slot is at most 120 days ahead. A citizen has at most `APPOINTMENT_LIMIT_PER_DESK_DAY` (default 1) live appointments at one desk on one day and `APPOINTMENT_LIMIT_LIVE` (default 4) in all, whoever books. A booking on a Cassetto topic (the `cassetto` channel, or a desk whose topics are all Cassetto topics, such as `aziende`) names its conversation in `ticket_id`.",
    params(("Idempotency-Key" = Option<String>, Header, description = "A resend with the same key answers the same hold (200, `repeated: true`)")),
    request_body(content = HoldRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Held", body = HoldAnswer, example = json!({
            "outcome": "held",
            "repeated": false,
            "appointment_id": "0193a1e0-5555-7000-8000-000000000005",
            "hold_expires_at": "2026-11-29T09:10:00Z",
            "appointment": appointment_example!()
        })),
        (status = 200, description = "The same Idempotency-Key again: the first hold", body = HoldAnswer),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "The slot is taken (`slot_taken`, the next free slots in `alternatives`), or the citizen's booking limits are reached (`limit_reached`)", body = Problem, example = json!({
            "error": "slot_taken",
            "message": "the slot is taken; the next free slots are in `alternatives`",
            "alternatives": [{"starts_at": "2026-12-02T08:30:00Z", "ends_at": "2026-12-02T08:50:00Z", "date": "2026-12-02", "time": "09:30", "free": 1}]
        })),
        (status = 422, description = "Refused: `invalid`, `slot_unavailable` (past, more than 120 days ahead, closed, outside the opening hours, not a slot start), `conversation_required` (a Cassetto topic without `ticket_id`), `not_yet_eligible` (with `possible_from`), `idempotency_key_reused`", body = Problem, example = json!({
            "error": "not_yet_eligible",
            "message": "an appointment can be requested from this conversation from 2026-12-04 00:00:00 UTC",
            "possible_from": "2026-12-04T00:00:00Z"
        })),
    )
)]
pub async fn hold(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    body: web::Json<HoldRequest>,
) -> Result<HttpResponse, ApiError> {
    let hold = appointments::hold(
        &state.pool,
        &state.booking,
        &caller.principal,
        &body,
        idempotency_key(&request)?,
        &caller.correlation_id,
    )
    .await?;
    let status = if hold.repeated {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(HttpResponse::build(status).json(HoldAnswer {
        outcome: "held",
        repeated: hold.repeated,
        appointment_id: hold.appointment.id,
        hold_expires_at: hold.appointment.hold_expires_at,
        appointment: hold.appointment,
    }))
}

#[utoipa::path(
    post,
    path = "/appointments/{id}/confirm",
    tag = "appointments",
    description = "*Conferma*: the citizen's side, the booking agent, the office.",
    params(("id" = Uuid, Path, description = "The appointment")),
    responses(
        (status = 200, description = "`confirmed` or `already_confirmed`, with the receipt", body = ConfirmAnswer, example = json!({
            "outcome": "confirmed",
            "appointment": appointment_example!(),
            "receipt": receipt_example!()
        })),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 410, description = "The hold expired", body = Problem, example = json!({"error": "hold_expired", "message": "the hold expired"})),
    )
)]
pub async fn confirm(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let answer = appointments::confirm(
        &state.pool,
        &state.booking,
        &caller.principal,
        path.into_inner(),
        &caller.correlation_id,
    )
    .await?;
    let receipt = receipt::Receipt::of(&state.booking, &answer.appointment);
    Ok(HttpResponse::Ok().json(ConfirmAnswer {
        outcome: answer.outcome,
        appointment: answer.appointment,
        receipt,
    }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "Non posso più venire"}))]
pub struct Cancel {
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/appointments/{id}/cancel",
    tag = "appointments",
    description = "*Cancella prenotazione*: the citizen's side (before the start), the office (any time). The body is optional.",
    params(("id" = Uuid, Path, description = "The appointment")),
    request_body(content = Option<Cancel>, content_type = "application/json"),
    responses(
        (status = 200, description = "`cancelled` or `already_cancelled`", body = Answer, example = json!({
            "outcome": "cancelled",
            "appointment": appointment_example!()
        })),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn cancel(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
    body: Option<web::Json<Cancel>>,
) -> Result<HttpResponse, ApiError> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let answer = appointments::cancel(
        &state.pool,
        &caller.principal,
        path.into_inner(),
        body.reason.as_deref(),
        &caller.correlation_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(answer))
}

#[utoipa::path(
    get,
    path = "/appointments",
    operation_id = "list_appointments",
    tag = "appointments",
    description = "\"Gestione appuntamenti\", latest first: the citizen's; an intermediary's delegated citizens and positions; the office's; what an agent booked for the citizen they serve.",
    responses(
        (status = 200, description = "Appointments", body = AppointmentList, example = json!({"appointments": [appointment_example!()]})),
        (status = 403, response = Forbidden),
    )
)]
pub async fn list(state: web::Data<ApiState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let appointments = appointments::list(&state.pool, &caller.principal).await?;
    Ok(HttpResponse::Ok().json(AppointmentList { appointments }))
}

#[utoipa::path(
    get,
    path = "/appointments/{id}",
    operation_id = "appointment_detail",
    tag = "appointments",
    description = "One appointment, for whoever may see it.",
    params(("id" = Uuid, Path, description = "The appointment")),
    responses(
        (status = 200, description = "The appointment", body = AppointmentRecord, example = json!(appointment_example!())),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn detail(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let appointment =
        appointments::detail(&state.pool, &caller.principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(appointment))
}

#[utoipa::path(
    get,
    path = "/appointments/{id}/receipt",
    tag = "appointments",
    description = "The receipt of a confirmed appointment: mode, office, desk, Rome date and time, the video link.",
    params(("id" = Uuid, Path, description = "The appointment")),
    responses(
        (status = 200, description = "The receipt", body = receipt::Receipt, example = json!(receipt_example!())),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "Not confirmed yet", body = Problem, example = json!({"error": "not_confirmed", "message": "the receipt is issued once the appointment is confirmed"})),
    )
)]
pub async fn receipt_json(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let receipt = receipt::receipt(
        &state.pool,
        &state.booking,
        &caller.principal,
        path.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(receipt))
}

#[utoipa::path(
    get,
    path = "/appointments/{id}/receipt.pdf",
    tag = "appointments",
    description = "The same receipt as a PDF.",
    params(("id" = Uuid, Path, description = "The appointment")),
    responses(
        (status = 200, description = "The receipt", content_type = "application/pdf"),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "Not confirmed yet", body = Problem, example = json!({"error": "not_confirmed", "message": "the receipt is issued once the appointment is confirmed"})),
    )
)]
pub async fn receipt_pdf(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let receipt = receipt::receipt(
        &state.pool,
        &state.booking,
        &caller.principal,
        path.into_inner(),
    )
    .await?;
    Ok(pdf_download(
        &format!("appuntamento-{}.pdf", receipt.appointment_id),
        receipt.pdf(),
    ))
}
