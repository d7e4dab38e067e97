//! Handlers of the notification centre (the citizen's), the contact
//! preferences, and the operators' delivery log of a ticket.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::problem::{Forbidden, NotFound, Unprocessable};
use super::{ApiError, ApiState, Caller};
use crate::domain::notification::KnownContacts;
use crate::notifications::centre::{self, CentreItem, CentreQuery, CentreView};
use crate::store::notifications::LoggedNotification;

/// An example notification of the centre.
macro_rules! item_example {
    () => {
        serde_json::json!({
            "id": "0193a1e0-4444-7000-8000-000000000004",
            "title": "Videochiamata confermata: 02/12/2026 alle 09:10",
            "body": "Gentile utente, il tuo appuntamento in videochiamata è confermato per il 02/12/2026 alle 09:10.",
            "subject_kind": "appointment",
            "subject_id": "0193a1e0-5555-7000-8000-000000000005",
            "created_at": "2026-11-29T09:00:00Z",
            "read": false,
            "due_at": "2026-12-02T08:10:00Z",
            "days_left": 3,
            "days_left_label": "Mancano 3 giorni",
            "link": null
        })
    };
}

/// An example delivery log.
macro_rules! log_example {
    () => {
        serde_json::json!([{
            "id": "0193a1e0-6666-7000-8000-000000000006",
            "rule": "ticket-opened",
            "title": "Richiesta registrata",
            "created_at": "2026-11-29T09:12:04Z",
            "unreachable": null,
            "deliveries": [{
                "id": "0193a1e0-7777-7000-8000-000000000007",
                "medium": "email",
                "address": "mario.rossi@example.it",
                "state": "sent",
                "attempts": 1,
                "last_error": null,
                "provider_id": null,
                "sent_at": "2026-11-29T09:12:05Z",
                "log": [{"attempt": 1, "outcome": "sent", "at": "2026-11-29T09:12:05Z"}]
            }]
        }])
    };
}

#[utoipa::path(
    get,
    path = "/notifications",
    tag = "notifications",
    description = "The citizen's notification centre: one tab a page (20 items), unread counts per tab; the days left to a due date; a video call's link only on its day.",
    params(CentreQuery),
    responses(
        (status = 200, description = "The tab's page", body = CentreView, example = json!({
            "tab": "deadlines",
            "tabs": [
                {"tab": "messages", "label": "Avvisi e messaggi", "unread": 2},
                {"tab": "deadlines", "label": "Scadenze", "unread": 1},
                {"tab": "appointments", "label": "Appuntamenti", "unread": 0}
            ],
            "items": [item_example!()],
            "page": 1,
            "next_page": null
        })),
        (status = 403, response = Forbidden),
    )
)]
pub async fn centre(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<CentreQuery>,
) -> Result<HttpResponse, ApiError> {
    let view = centre::view(&state.pool, &caller.principal, &query, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(
    put,
    path = "/notifications/{notification_id}/read",
    tag = "notifications",
    description = "Mark read. The citizen's own notifications only.",
    params(("notification_id" = Uuid, Path, description = "The notification")),
    responses(
        (status = 200, description = "The notification now", body = CentreItem, example = json!(item_example!())),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn mark_read(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    mark(&state, &caller, path.into_inner(), true).await
}

#[utoipa::path(
    delete,
    path = "/notifications/{notification_id}/read",
    tag = "notifications",
    description = "Mark unread. The citizen's own notifications only.",
    params(("notification_id" = Uuid, Path, description = "The notification")),
    responses(
        (status = 200, description = "The notification now", body = CentreItem, example = json!(item_example!())),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
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

#[utoipa::path(
    get,
    path = "/me/contacts",
    tag = "notifications",
    description = "The citizen's saved contacts and preferences (phone as E.164).",
    responses(
        (status = 200, description = "Contacts", body = KnownContacts, example = json!({"email": "mario.rossi@example.it", "phone": "+393331234567", "email_enabled": true, "sms_enabled": true})),
        (status = 403, response = Forbidden),
    )
)]
pub async fn contacts(
    state: web::Data<ApiState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(centre::contacts(&state.pool, &caller.principal).await?))
}

/// The body of `PUT /me/contacts`: every field, as the settings form sends it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "mario.rossi@example.it", "phone": "333 123 4567", "email_enabled": true, "sms_enabled": false}))]
pub struct ContactsBody {
    email: Option<String>,
    phone: Option<String>,
    email_enabled: bool,
    sms_enabled: bool,
}

#[utoipa::path(
    put,
    path = "/me/contacts",
    tag = "notifications",
    description = "Replace the citizen's contacts and preferences (every field).",
    request_body(content = ContactsBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Saved (phone as E.164)", body = KnownContacts, example = json!({"email": "mario.rossi@example.it", "phone": "+393331234567", "email_enabled": true, "sms_enabled": true})),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable),
    )
)]
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

#[utoipa::path(
    get,
    path = "/tickets/{ticket_id}/notifications",
    tag = "notifications",
    description = "Delivery log for operators of the ticket's office: every notification about the ticket, its deliveries and each attempt.",
    params(("ticket_id" = Uuid, Path, description = "The ticket")),
    responses(
        (status = 200, description = "Notifications, oldest first", body = Vec<LoggedNotification>, example = json!(log_example!())),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn ticket_log(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let log = centre::ticket_log(&state.pool, &caller.principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(log))
}

#[utoipa::path(
    get,
    path = "/appointments/{appointment_id}/notifications",
    tag = "notifications",
    description = "The same delivery log for an appointment, for operators of its office.",
    params(("appointment_id" = Uuid, Path, description = "The appointment")),
    responses(
        (status = 200, description = "Notifications, oldest first", body = Vec<LoggedNotification>, example = json!(log_example!())),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn appointment_log(
    state: web::Data<ApiState>,
    caller: Caller,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let log = centre::appointment_log(&state.pool, &caller.principal, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(log))
}
