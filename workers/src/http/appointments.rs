//! Handlers of the appointments API: availability, *Prenota* (hold, with an
//! `Idempotency-Key` making a resend the same hold), *Conferma*, *Cancella
//! prenotazione*, "Gestione appuntamenti" and receipts (JSON and PDF).

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::tickets::IDEMPOTENCY_HEADER;
use super::{ApiError, ApiState, Caller};
use crate::appointments::{self, receipt, AppointmentError, HoldRequest};
use crate::domain::appointment::{calendar, DeskKind, Mode};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/offices/{aoo}/desks/{kind}/availability")
            .route(web::get().to(availability)),
    )
    .service(
        web::resource("/appointments")
            .route(web::get().to(list))
            .route(web::post().to(hold)),
    )
    .service(web::resource("/appointments/{id}").route(web::get().to(detail)))
    .service(web::resource("/appointments/{id}/confirm").route(web::post().to(confirm)))
    .service(web::resource("/appointments/{id}/cancel").route(web::post().to(cancel)))
    .service(web::resource("/appointments/{id}/receipt").route(web::get().to(receipt_json)))
    .service(web::resource("/appointments/{id}/receipt.pdf").route(web::get().to(receipt_pdf)));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityQuery {
    mode: String,
    /// Local dates (`YYYY-MM-DD`); default: today and the next 13 days.
    from: Option<String>,
    to: Option<String>,
}

fn date(raw: Option<&str>, field: &str) -> Result<Option<NaiveDate>, AppointmentError> {
    raw.map(|raw| {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
            AppointmentError::Invalid(format!("{field} must be a date YYYY-MM-DD, not `{raw}`"))
        })
    })
    .transpose()
}

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
    Ok(HttpResponse::build(status).json(json!({
        "outcome": "held",
        "repeated": hold.repeated,
        "appointment_id": hold.appointment.id,
        "hold_expires_at": hold.appointment.hold_expires_at,
        "appointment": hold.appointment,
    })))
}

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
    Ok(HttpResponse::Ok().json(json!({
        "outcome": answer.outcome,
        "appointment": answer.appointment,
        "receipt": receipt,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Cancel {
    reason: Option<String>,
}

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

pub async fn list(state: web::Data<ApiState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let appointments = appointments::list(&state.pool, &caller.principal).await?;
    Ok(HttpResponse::Ok().json(json!({ "appointments": appointments })))
}

pub async fn detail(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let appointment =
        appointments::detail(&state.pool, &caller.principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(appointment))
}

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
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"appuntamento-{}.pdf\"",
                receipt.appointment_id
            ),
        ))
        .body(receipt.pdf()))
}
