//! Handlers of documents and registrations.

use actix_multipart::Multipart;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpResponse};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApiError, ApiState, Caller};
use crate::documents::{self, DocumentError, IncomingFile, Upload, MAX_FILES_PER_UPLOAD};
use crate::store::documents::Document;
use crate::store::protocol::AnnulOutcome;

/// A document as the API shows it.
#[derive(Serialize)]
pub(crate) struct DocumentView<'a> {
    #[serde(flatten)]
    document: &'a Document,
    /// The state's label as the citizen's area shows it (*Protocollato*,
    /// green; none while not sent for registration).
    label: Option<crate::domain::document::Label>,
}

pub(crate) fn views(documents: &[Document]) -> Vec<DocumentView<'_>> {
    documents
        .iter()
        .map(|document| DocumentView {
            document,
            label: document.state.label(),
        })
        .collect()
}

/// Reads the multipart body: `file` parts (one or more) and `conformity`.
/// Stops reading a file as soon as it passes the limit.
pub(crate) async fn read_upload(
    mut multipart: Multipart,
    max_bytes: usize,
) -> Result<Upload, ApiError> {
    let mut upload = Upload {
        files: Vec::new(),
        conformity_asserted: false,
    };
    while let Some(field) = multipart.next().await {
        let mut field =
            field.map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                if upload.files.len() == MAX_FILES_PER_UPLOAD {
                    return Err(DocumentError::Refused(format!(
                        "at most {MAX_FILES_PER_UPLOAD} files per upload"
                    ))
                    .into());
                }
                let declared_name = field
                    .content_disposition()
                    .and_then(|cd| cd.get_filename())
                    .unwrap_or_default()
                    .to_owned();
                let mut bytes = Vec::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk
                        .map_err(|e| ApiError::BadRequest(format!("upload interrupted: {e}")))?;
                    if bytes.len() + chunk.len() > max_bytes {
                        return Err(DocumentError::TooLarge {
                            name: declared_name,
                            limit: max_bytes,
                        }
                        .into());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                upload.files.push(IncomingFile {
                    declared_name,
                    bytes,
                });
            }
            "conformity" => {
                let mut value = Vec::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk
                        .map_err(|e| ApiError::BadRequest(format!("upload interrupted: {e}")))?;
                    value.extend_from_slice(&chunk);
                    if value.len() > 16 {
                        return Err(ApiError::BadRequest(
                            "field `conformity` must be `true` or `false`".into(),
                        ));
                    }
                }
                upload.conformity_asserted = parse_boolean(&value).ok_or_else(|| {
                    ApiError::BadRequest("field `conformity` must be `true` or `false`".into())
                })?;
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected multipart field `{other}`: send `file` parts and `conformity`"
                )))
            }
        }
    }
    Ok(upload)
}

/// The one boolean rule of form fields: `true` or `false`, in any case;
/// nothing else (no `1`, `on` or `yes`).
pub(super) fn parse_boolean(raw: &[u8]) -> Option<bool> {
    let raw = raw.trim_ascii();
    if raw.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if raw.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

pub async fn upload(
    state: web::Data<ApiState>,
    caller: Caller,
    case_id: web::Path<Uuid>,
    multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    let upload = read_upload(multipart, state.max_document_bytes).await?;
    let documents = documents::upload(
        &state.pool,
        state.blobs.as_ref(),
        state.max_document_bytes,
        &caller.principal,
        *case_id,
        upload,
        &caller.correlation_id,
    )
    .await?;
    Ok(HttpResponse::Created().json(views(&documents)))
}

pub async fn list(
    state: web::Data<ApiState>,
    caller: Caller,
    case_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let documents = documents::list(&state.pool, &caller.principal, *case_id).await?;
    Ok(HttpResponse::Ok().json(views(&documents)))
}

pub async fn download(
    state: web::Data<ApiState>,
    caller: Caller,
    document_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (document, bytes) = documents::download(
        &state.pool,
        state.blobs.as_ref(),
        &caller.principal,
        *document_id,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .content_type(document.media_type.as_str())
        .insert_header(attachment(&document.file_name))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(bytes))
}

pub(crate) fn attachment(file_name: &str) -> ContentDisposition {
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(file_name.to_owned())],
    }
}

pub async fn history(
    state: web::Data<ApiState>,
    caller: Caller,
    document_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .json(documents::history(&state.pool, &caller.principal, *document_id).await?))
}

pub async fn delete(
    state: web::Data<ApiState>,
    caller: Caller,
    document_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let document = documents::delete(
        &state.pool,
        &caller.principal,
        *document_id,
        &caller.correlation_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(DocumentView {
        label: document.state.label(),
        document: &document,
    }))
}

#[derive(Deserialize)]
pub struct RegistrationBody {
    document_ids: Vec<Uuid>,
    subject: String,
}

pub async fn send_for_registration(
    state: web::Data<ApiState>,
    caller: Caller,
    case_id: web::Path<Uuid>,
    body: web::Json<RegistrationBody>,
) -> Result<HttpResponse, ApiError> {
    let request_id = documents::send_for_registration(
        &state.pool,
        &caller.principal,
        *case_id,
        &body.document_ids,
        &body.subject,
        &caller.correlation_id,
    )
    .await?;
    // Accepted: the registration worker assigns the number.
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "request_id": request_id })))
}

pub async fn receipt(
    state: web::Data<ApiState>,
    caller: Caller,
    registration_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let receipt = documents::receipt(&state.pool, &caller.principal, *registration_id).await?;
    let file_name = format!(
        "ricevuta-{}.pdf",
        receipt.signature.replace(['/', '.'], "-")
    );
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header(attachment(&file_name))
        .body(receipt.pdf))
}

#[derive(Deserialize)]
pub struct AnnulmentBody {
    reason: String,
}

pub async fn annul(
    state: web::Data<ApiState>,
    caller: Caller,
    registration_id: web::Path<Uuid>,
    body: web::Json<AnnulmentBody>,
) -> Result<HttpResponse, ApiError> {
    match documents::annul(
        &state.pool,
        &caller.principal,
        *registration_id,
        &body.reason,
    )
    .await?
    {
        AnnulOutcome::Annulled => {
            Ok(HttpResponse::Created().json(serde_json::json!({ "annulled": true })))
        }
        AnnulOutcome::AlreadyAnnulled => {
            Err(DocumentError::Refused("the registration is already annulled".into()).into())
        }
        AnnulOutcome::NotFound => Err(DocumentError::NotFound("registration").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_boolean;

    #[test]
    fn one_boolean_rule() {
        for yes in ["true", "TRUE", " True "] {
            assert_eq!(parse_boolean(yes.as_bytes()), Some(true), "{yes}");
        }
        for no in ["false", "FALSE"] {
            assert_eq!(parse_boolean(no.as_bytes()), Some(false), "{no}");
        }
        for neither in ["1", "0", "on", "yes", "", "truee"] {
            assert_eq!(parse_boolean(neither.as_bytes()), None, "{neither}");
        }
    }
}
