//! Handlers of documents and registrations.

use actix_multipart::Multipart;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpResponse};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{Conflict, Forbidden, Gone, NotFound, TooLarge, Unprocessable};
use super::{ApiError, ApiState, Caller};
use crate::documents::{self, DocumentError, IncomingFile, Upload, MAX_FILES_PER_UPLOAD};
use crate::store::documents::Document;
use crate::store::documents::RecordedTransition;
use crate::store::protocol::AnnulOutcome;

/// A document as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct DocumentView {
    #[serde(flatten)]
    document: Document,
    /// The state's label as the citizen's area shows it (*Protocollato*,
    /// green; none while not sent for registration).
    label: Option<crate::domain::document::Label>,
}

pub(crate) fn views(documents: Vec<Document>) -> Vec<DocumentView> {
    documents.into_iter().map(DocumentView::of).collect()
}

impl DocumentView {
    fn of(document: Document) -> Self {
        DocumentView {
            label: document.state.label(),
            document,
        }
    }
}

/// An example document as listed.
macro_rules! document_example {
    () => {
        serde_json::json!({
            "id": "0193a1d0-1111-7000-8000-000000000001",
            "case_id": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a291808",
            "direction": "from_citizen",
            "file_name": "ricevuta.pdf",
            "media_type": "application/pdf",
            "size_bytes": 48213,
            "sha256": "9f2c4e0b1a7d3c5e8f6a2b4d0c1e3f5a7b9d2c4e6f8a0b1c3d5e7f9a1b2c3d4e",
            "state": "registered",
            "conformity_asserted": true,
            "uploaded_by": {"kind": "citizen"},
            "uploaded_at": "2026-11-29T09:30:00Z",
            "registration_id": "0193a1d0-2222-7000-8000-000000000002",
            "label": {"text": "Protocollato", "colour": "green"}
        })
    };
}

/// The multipart form of an upload, as `read_upload` reads it (for the
/// description only).
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct UploadForm {
    /// One or more files: PDF, P7M, JPEG or PNG by content, each at most
    /// `DOCUMENT_MAX_BYTES`.
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
    /// `true` or `false` (any case): the files conform to the originals;
    /// required `true` from the citizen's side.
    conformity: Option<bool>,
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

#[utoipa::path(
    post,
    path = "/cases/{case_id}/documents",
    tag = "documents",
    description = "Upload files to a case: the citizen, a delegated intermediary, an operator of the case's office. Each file is checked by what it is (parsed as PDF, P7M, JPEG or PNG); its name gets the detected kind's extension.",
    params(("case_id" = Uuid, Path, description = "The case")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The stored documents", body = Vec<DocumentView>, example = json!([document_example!()])),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge),
        (status = 422, response = Unprocessable),
    )
)]
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
    Ok(HttpResponse::Created().json(views(documents)))
}

#[utoipa::path(
    get,
    path = "/cases/{case_id}/documents",
    operation_id = "list_documents",
    tag = "documents",
    description = "Documents \"Inviati\" (`from_citizen`) and \"Ricevuti\" (`to_citizen`) with state and label.",
    params(("case_id" = Uuid, Path, description = "The case")),
    responses(
        (status = 200, description = "The case's documents", body = Vec<DocumentView>, example = json!([document_example!()])),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn list(
    state: web::Data<ApiState>,
    caller: Caller,
    case_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let documents = documents::list(&state.pool, &caller.principal, *case_id).await?;
    Ok(HttpResponse::Ok().json(views(documents)))
}

#[utoipa::path(
    get,
    path = "/documents/{document_id}/content",
    tag = "documents",
    description = "The file, as an attachment named with its detected kind's extension.",
    params(("document_id" = Uuid, Path, description = "The document")),
    responses(
        (status = 200, description = "The file (its media type: application/pdf, application/pkcs7-mime, image/jpeg, image/png)", content_type = "application/octet-stream"),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
    )
)]
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

/// A PDF the browser saves as `file_name`.
pub(crate) fn pdf_download(file_name: &str, pdf: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header(attachment(file_name))
        .body(pdf)
}

/// A registration's receipt, saved under a name made of its signature.
pub(crate) fn receipt_download(receipt: documents::Receipt) -> HttpResponse {
    let file_name = format!(
        "ricevuta-{}.pdf",
        receipt.signature.replace(['/', '.'], "-")
    );
    pdf_download(&file_name, receipt.pdf)
}

pub(crate) fn attachment(file_name: &str) -> ContentDisposition {
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(file_name.to_owned())],
    }
}

#[utoipa::path(
    get,
    path = "/documents/{document_id}/history",
    operation_id = "document_history",
    tag = "documents",
    description = "Every transition with who (by kind only, on the citizen's side) and when.",
    params(("document_id" = Uuid, Path, description = "The document")),
    responses(
        (status = 200, description = "Transitions, oldest first", body = Vec<RecordedTransition>, example = json!([
            {"from": null, "to": "uploaded", "actor": {"kind": "citizen"}, "at": "2026-11-29T09:30:00Z"},
            {"from": "uploaded", "to": "registration_in_progress", "actor": {"kind": "operator"}, "at": "2026-11-29T10:00:00Z"}
        ])),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn history(
    state: web::Data<ApiState>,
    caller: Caller,
    document_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .json(documents::history(&state.pool, &caller.principal, *document_id).await?))
}

#[utoipa::path(
    delete,
    path = "/documents/{document_id}",
    operation_id = "delete_document",
    tag = "documents",
    description = "The side that sent it deletes it, only while *uploaded*.",
    params(("document_id" = Uuid, Path, description = "The document")),
    responses(
        (status = 200, description = "The document, now deleted", body = DocumentView, example = json!(document_example!())),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
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
    Ok(HttpResponse::Ok().json(DocumentView::of(document)))
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"document_ids": ["0193a1d0-1111-7000-8000-000000000001"], "subject": "Documenti della videochiamata"}))]
pub struct RegistrationBody {
    document_ids: Vec<Uuid>,
    subject: String,
}

/// Sent for registration: the registration worker assigns the number.
#[derive(Serialize, ToSchema)]
pub struct RegistrationAccepted {
    request_id: Uuid,
}

#[derive(Serialize, ToSchema)]
pub struct Annulled {
    annulled: bool,
}

#[utoipa::path(
    post,
    path = "/cases/{case_id}/registrations",
    tag = "documents",
    description = "An operator of the case's office sends documents for registration (protocollazione); the registration worker assigns the number and emits `documents.registered`.",
    params(("case_id" = Uuid, Path, description = "The case (a ticket's id, or a video call's case)")),
    request_body(content = RegistrationBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted", body = RegistrationAccepted, example = json!({"request_id": "0193a1d0-3333-7000-8000-000000000003"})),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    )
)]
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
        None,
        &caller.correlation_id,
    )
    .await?
    .request_id;
    // Accepted: the registration worker assigns the number.
    Ok(HttpResponse::Accepted().json(RegistrationAccepted { request_id }))
}

#[utoipa::path(
    get,
    path = "/registrations/{registration_id}/receipt.pdf",
    operation_id = "registration_receipt_pdf",
    tag = "documents",
    description = "The registration receipt: the signature (e.g. `INPS.0040.29/05/2025.0001632`) and the files' SHA-256.",
    params(("registration_id" = Uuid, Path, description = "The registration")),
    responses(
        (status = 200, description = "The receipt", content_type = "application/pdf"),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    )
)]
pub async fn receipt(
    state: web::Data<ApiState>,
    caller: Caller,
    registration_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let receipt = documents::receipt(&state.pool, &caller.principal, *registration_id).await?;
    Ok(receipt_download(receipt))
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"reason": "Registrato per errore"}))]
pub struct AnnulmentBody {
    reason: String,
}

#[utoipa::path(
    post,
    path = "/registrations/{registration_id}/annulment",
    tag = "documents",
    description = "An operator of the registering office annuls a registration (a new record; the registration stays).",
    params(("registration_id" = Uuid, Path, description = "The registration")),
    request_body(content = AnnulmentBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Annulled", body = Annulled, example = json!({"annulled": true})),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
    )
)]
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
        AnnulOutcome::Annulled => Ok(HttpResponse::Created().json(Annulled { annulled: true })),
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
