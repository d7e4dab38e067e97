//! A ticket's attachment, downloaded by an operator of its office.

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use uuid::Uuid;

use super::errors::{not_found, UNAVAILABLE};
use super::render::{error_page, secured};
use super::session::{session, Session};
use super::ApiState;
use crate::documents::{self, DocumentError};
use crate::http::ApiError;

pub(super) async fn download(
    state: web::Data<ApiState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let Session {
        principal,
        operator,
    } = match session(&state, &request).await {
        Ok(session) => session,
        Err(refusal) => return refusal.response(),
    };
    let Ok(id) = path.parse::<Uuid>() else {
        return not_found(Some(&operator), "Documento");
    };
    match documents::download(&state.pool, state.blobs.as_ref(), &principal, id).await {
        Ok((document, bytes)) => secured(HttpResponse::Ok())
            .content_type(document.media_type.as_str())
            .insert_header(crate::http::documents::attachment(&document.file_name))
            .body(bytes),
        Err(error) => {
            let message = match &error {
                DocumentError::NotFound(_) => "Documento non trovato.",
                DocumentError::Forbidden(_) => "Il documento è di un quesito di un'altra sede.",
                DocumentError::Gone => "Il documento è stato eliminato.",
                _ => UNAVAILABLE,
            };
            let error = ApiError::from(error);
            let status = error.status_code();
            if status.is_server_error() {
                tracing::error!(%error, "staff download failed");
            }
            error_page(status, Some(&operator), message)
        }
    }
}
