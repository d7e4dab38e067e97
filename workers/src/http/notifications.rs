//! Handlers of the notification centre (the citizen's), the contact
//! preferences, and the operators' delivery log of a ticket.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::{ApiError, ApiState, Caller};
use crate::domain::notification::KnownContacts;
use crate::notifications::centre::{self, CentreQuery};

pub async fn centre(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<CentreQuery>,
) -> Result<HttpResponse, ApiError> {
    let view = centre::view(&state.pool, &caller.principal, &query, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn mark_read(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    mark(&state, &caller, path.into_inner(), true).await
}

pub async fn mark_unread(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    mark(&state, &caller, path.into_inner(), false).await
}

async fn mark(
    state: &ApiState,
    caller: &Caller,
    id: Uuid,
    read: bool,
) -> Result<HttpResponse, ApiError> {
    let item = centre::mark(&state.pool, &caller.principal, id, read, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(item))
}

pub async fn contacts(
    state: web::Data<ApiState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(centre::contacts(&state.pool, &caller.principal).await?))
}

/// The body of `PUT /me/contacts`: every field, as the settings form sends it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactsBody {
    email: Option<String>,
    phone: Option<String>,
    email_enabled: bool,
    sms_enabled: bool,
}

pub async fn save_contacts(
    state: web::Data<ApiState>,
    caller: Caller,
    body: web::Json<ContactsBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let contacts = KnownContacts {
        email: body.email,
        phone: body.phone,
        email_enabled: body.email_enabled,
        sms_enabled: body.sms_enabled,
    };
    let saved = centre::save_contacts(&state.pool, &caller.principal, contacts).await?;
    Ok(HttpResponse::Ok().json(saved))
}

pub async fn ticket_log(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let log = centre::ticket_log(&state.pool, &caller.principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(log))
}

pub async fn appointment_log(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let log = centre::appointment_log(&state.pool, &caller.principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(log))
}
