//! The room's documents panel, through the documents module with the
//! room's participants as principals: "Inviati" (the citizen's uploads),
//! "Ricevuti" (the operator's), "Protocollati" (registrations and their
//! receipts). The citizen may use it only while the operator enabled it, or
//! during the document window after the call; never after.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{authenticate, GatewayState, Problem};
use crate::contract::Principal;
use crate::documents::{self, DocumentError};
use crate::domain::document::DocumentState;
use crate::domain::refusal::Code;
use crate::domain::video::room::{self, Act};
use crate::domain::video::Role;
use crate::http::documents::{attachment, read_upload, receipt_download, views};
use crate::http::ApiError;
use crate::video::Opened;

/// The caller, if the room lets them use the panel now.
async fn panel(
    state: &GatewayState,
    request: &HttpRequest,
    token: &str,
) -> Result<(Opened, Role, Principal), Problem> {
    let (opened, role, principal) = authenticate(state, request, token).await?;
    if let Err(refusal) = room::may(&opened.room.state, role, Act::Documents, Utc::now()) {
        return Err(Problem::new(
            actix_web::http::StatusCode::FORBIDDEN,
            Code::DocumentsOff,
            &refusal.to_string(),
        ));
    }
    Ok((opened, role, principal))
}

fn api(error: DocumentError) -> actix_web::Error {
    ApiError::from(error).into()
}

pub async fn list(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let (opened, _, principal) = panel(&state, &request, &path).await?;
    let documents = documents::list(&state.pool, &principal, opened.room.case_id)
        .await
        .map_err(api)?;
    // "Protocollati": one entry per registration, with its receipt.
    let mut registrations: Vec<serde_json::Value> = Vec::new();
    let mut conn = state.pool.acquire().await.map_err(|e| api(e.into()))?;
    let mut seen = std::collections::HashSet::new();
    for document in documents
        .iter()
        .filter(|d| d.state == DocumentState::Registered)
    {
        let Some(id) = document.registration_id.filter(|id| seen.insert(*id)) else {
            continue;
        };
        if let Some(registration) = crate::store::protocol::registration(&mut conn, id)
            .await
            .map_err(|e| api(e.into()))?
        {
            registrations.push(json!({
                "id": registration.id,
                "signature": registration.signature,
                "registered_at": registration.registered_at,
                "files": documents.iter().filter(|d| d.registration_id == Some(id))
                    .map(|d| d.file_name.clone()).collect::<Vec<_>>(),
            }));
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "documents": views(documents),
        "registrations": registrations,
    })))
}

pub async fn upload(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
    multipart: Multipart,
) -> Result<HttpResponse, actix_web::Error> {
    let (opened, _, principal) = panel(&state, &request, &path).await?;
    let upload = read_upload(multipart, state.max_document_bytes).await?;
    let documents = documents::upload(
        &state.pool,
        state.blobs.as_ref(),
        state.max_document_bytes,
        &principal,
        opened.room.case_id,
        upload,
        &opened.correlation_id(),
    )
    .await
    .map_err(api)?;
    Ok(HttpResponse::Created().json(views(documents)))
}

/// A document of this room's case only.
async fn of_room(
    state: &GatewayState,
    opened: &Opened,
    document_id: Uuid,
) -> Result<(), actix_web::Error> {
    let mut conn = state.pool.acquire().await.map_err(|e| api(e.into()))?;
    match crate::store::documents::document(&mut conn, document_id)
        .await
        .map_err(|e| api(e.into()))?
    {
        Some(document) if document.case_id == opened.room.case_id => Ok(()),
        _ => Err(api(DocumentError::NotFound("document"))),
    }
}

pub async fn download(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<(String, Uuid)>,
) -> Result<HttpResponse, actix_web::Error> {
    let (token, document_id) = path.into_inner();
    let (opened, _, principal) = panel(&state, &request, &token).await?;
    of_room(&state, &opened, document_id).await?;
    let (document, bytes) =
        documents::download(&state.pool, state.blobs.as_ref(), &principal, document_id)
            .await
            .map_err(api)?;
    Ok(HttpResponse::Ok()
        .content_type(document.media_type.as_str())
        .insert_header(attachment(&document.file_name))
        .body(bytes))
}

pub async fn delete(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<(String, Uuid)>,
) -> Result<HttpResponse, actix_web::Error> {
    let (token, document_id) = path.into_inner();
    let (opened, _, principal) = panel(&state, &request, &token).await?;
    of_room(&state, &opened, document_id).await?;
    let document = documents::delete(
        &state.pool,
        &principal,
        document_id,
        &opened.correlation_id(),
    )
    .await
    .map_err(api)?;
    Ok(HttpResponse::Ok().json(
        json!({ "id": document.id, "state": document.state, "label": document.state.label() }),
    ))
}

#[derive(Deserialize)]
pub struct RegistrationBody {
    document_ids: Vec<Uuid>,
}

/// The operator sends the citizen's documents for registration.
pub async fn register(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<RegistrationBody>,
) -> Result<HttpResponse, actix_web::Error> {
    let (opened, role, principal) = panel(&state, &request, &path).await?;
    if role != Role::Operator {
        return Err(Problem::new(
            actix_web::http::StatusCode::FORBIDDEN,
            Code::Forbidden,
            "only the operator registers documents",
        )
        .into());
    }
    let request_id = documents::send_for_registration(
        &state.pool,
        &principal,
        opened.room.case_id,
        &body.document_ids,
        &format!(
            "Videochiamata - {} - {}",
            opened.appointment.desk_name, opened.appointment.notes
        ),
        None,
        &opened.correlation_id(),
    )
    .await
    .map_err(api)?
    .request_id;
    Ok(HttpResponse::Accepted().json(json!({ "request_id": request_id })))
}

pub async fn receipt(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<(String, Uuid)>,
) -> Result<HttpResponse, actix_web::Error> {
    let (token, registration_id) = path.into_inner();
    let (_, _, principal) = panel(&state, &request, &token).await?;
    let receipt = documents::receipt(&state.pool, &principal, registration_id)
        .await
        .map_err(api)?;
    Ok(receipt_download(receipt))
}
