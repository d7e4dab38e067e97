//! Documents of a case: upload, list, download, delete, send for registration,
//! complete a registration, receipts and annulments. Each operation checks who
//! is asking (domain::access), applies the state machine (domain::document),
//! and writes state, transitions and events in one transaction.

pub mod receipt;
mod registration;
pub mod storage;

use registration::authorize_registration;
pub use registration::{
    complete_registration, send_for_registration, signatures, RegistrationOutcome, RegistrationSent,
};

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::contract::{
    DocumentStateChanged, DocumentsRegistered, DocumentsRegistrationRequested, Event, Principal,
};
use crate::domain::access::side_on_case;
use crate::domain::admission::Idempotency;
use crate::domain::content::{check_content, named_for};
use crate::domain::document::{
    self, sanitize_file_name, Action, Direction, DocumentState, IllegalTransition, Side,
};
use crate::domain::protocol::{Aoo, RegisteredFile};
use crate::store::documents::{self as store, Document, Transition};
use crate::store::inbox::{self, InboxOutcome};
use crate::store::outbox::{self, OutboxMessage};
use crate::store::protocol::{self as register, AnnulOutcome, RegisterError, RegistrationRequest};
use storage::BlobStore;

pub use store::RecordedTransition;

/// Most files in one upload.
pub const MAX_FILES_PER_UPLOAD: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(String),
    /// The upload or request itself is unacceptable; the message says why.
    #[error("{0}")]
    Refused(String),
    #[error("the file `{name}` is larger than the {limit} bytes allowed")]
    TooLarge { name: String, limit: usize },
    #[error("{0}")]
    IllegalTransition(#[from] IllegalTransition),
    #[error("the document was deleted")]
    Gone,
    #[error("document storage failed: {0}")]
    Storage(#[from] std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("the year changed while registering; retry")]
    YearChanged,
    #[error(transparent)]
    Registration(#[from] RegistrationRefusal),
}

/// Why a request for registration is refused before any document is
/// touched; typed so that each page can say it in its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationRefusal {
    #[error("name at least one document to register")]
    NoDocuments,
    #[error("the registration needs a subject")]
    NoSubject,
    #[error("a request key is 1 to 200 characters")]
    BadKey,
    #[error("this request key was used for another registration request")]
    KeyReused,
}

/// Longest request key (a form's one-time key, session-bound).
const MAX_REQUEST_KEY: usize = 200;

impl From<RegisterError> for DocumentError {
    fn from(error: RegisterError) -> Self {
        match error {
            RegisterError::Database(e) => DocumentError::Database(e),
            RegisterError::YearChanged => DocumentError::YearChanged,
            RegisterError::Inconsistent(reason) => {
                DocumentError::Database(sqlx::Error::Decode(reason.into()))
            }
        }
    }
}

/// A file as received, before any check.
pub struct IncomingFile {
    pub declared_name: String,
    pub bytes: Vec<u8>,
}

pub struct Upload {
    pub files: Vec<IncomingFile>,
    /// The citizen's declaration that the files conform to the originals.
    pub conformity_asserted: bool,
}

/// The actor as recorded in transitions and events.
fn actor_json(principal: &Principal) -> serde_json::Value {
    serde_json::to_value(principal)
        .unwrap_or_else(|_| serde_json::json!({ "kind": principal.kind() }))
}

const REGISTRATION_WORKER: &str = "registration-worker";

fn system_actor() -> serde_json::Value {
    serde_json::json!({ "kind": "system", "worker": REGISTRATION_WORKER })
}

/// The side the principal acts on for the case; refusals say why.
async fn authorize(
    conn: &mut PgConnection,
    principal: &Principal,
    case_id: Uuid,
) -> Result<Side, DocumentError> {
    let case = store::case_parties(conn, case_id)
        .await?
        .ok_or(DocumentError::NotFound("case"))?;
    let delegations = match principal {
        Principal::Intermediary { tax_code, .. } => {
            store::delegations_of(conn, tax_code.as_str(), &case.citizen_tax_code).await?
        }
        _ => Vec::new(),
    };
    side_on_case(principal, &case, &delegations, Utc::now()).ok_or_else(|| {
        DocumentError::Forbidden(match principal {
            Principal::Intermediary { .. } => {
                "no active delegation from this case's citizen covers you".into()
            }
            Principal::Operator { .. } => "this case belongs to another office".into(),
            _ => "this case is not yours".into(),
        })
    })
}

fn state_changed(
    document: &Document,
    from: Option<DocumentState>,
    to: DocumentState,
    actor: &serde_json::Value,
    at: DateTime<Utc>,
    correlation_id: &str,
    causation_id: Option<Uuid>,
) -> Result<OutboxMessage, DocumentError> {
    let event = Event {
        message_id: Uuid::now_v7(),
        message_type: "document.state_changed".into(),
        schema_version: 1,
        occurred_at: at,
        correlation_id: correlation_id.to_owned(),
        causation_id,
        payload: DocumentStateChanged {
            document_id: document.id,
            case_id: document.case_id,
            direction: document.direction.as_str().into(),
            file_name: document.file_name.clone(),
            from: from.map(|s| s.as_str().to_owned()),
            to: to.as_str().into(),
            actor: actor.clone(),
            at,
        },
    };
    Ok(OutboxMessage::event(&event, Some(to.as_str()))?)
}

/// Checks every file, stores the bytes, and records the documents as uploaded.
pub async fn upload(
    pool: &PgPool,
    blobs: &dyn BlobStore,
    max_bytes: usize,
    principal: &Principal,
    case_id: Uuid,
    upload: Upload,
    correlation_id: &str,
) -> Result<Vec<Document>, DocumentError> {
    let side = authorize(&mut *pool.acquire().await?, principal, case_id).await?;
    if upload.files.is_empty() {
        return Err(DocumentError::Refused(
            "the upload contains no file (multipart field `file`)".into(),
        ));
    }
    if upload.files.len() > MAX_FILES_PER_UPLOAD {
        return Err(DocumentError::Refused(format!(
            "at most {MAX_FILES_PER_UPLOAD} files per upload"
        )));
    }
    if side == Side::Citizen && !upload.conformity_asserted {
        return Err(DocumentError::Refused(
            "declare that the files conform to the originals (field `conformity` = true)".into(),
        ));
    }
    let now = Utc::now();
    let actor = actor_json(principal);
    let mut documents = Vec::with_capacity(upload.files.len());
    // Check everything before storing anything.
    let mut checked = Vec::with_capacity(upload.files.len());
    for file in upload.files {
        let name = sanitize_file_name(&file.declared_name)
            .map_err(|e| DocumentError::Refused(e.to_string()))?;
        if file.bytes.len() > max_bytes {
            return Err(DocumentError::TooLarge {
                name,
                limit: max_bytes,
            });
        }
        if file.bytes.is_empty() {
            return Err(DocumentError::Refused(format!(
                "the file `{name}` is empty"
            )));
        }
        let kind = check_content(&file.bytes).map_err(|error| {
            DocumentError::Refused(format!(
                "`{name}`: {error} (the type is read from the content, not the name)"
            ))
        })?;
        checked.push((named_for(&name, kind), kind, file.bytes));
    }
    let direction = match side {
        Side::Office | Side::System => Direction::ToCitizen,
        Side::Citizen => Direction::FromCitizen,
    };
    for (name, kind, bytes) in checked {
        let file = StoredFile {
            file_name: name,
            media_type: kind.media_type(),
            size: bytes.len(),
            sha256: blobs.put(bytes).await?,
        };
        documents.push(Document {
            conformity_asserted: upload.conformity_asserted,
            ..file.new_document(case_id, direction, &actor, now)
        });
    }
    let mut tx = pool.begin().await?;
    let events = record_uploads(&mut tx, &documents, &actor, now, correlation_id).await?;
    outbox::enqueue(&mut tx, &events).await?;
    tx.commit().await?;
    tracing::info!(%case_id, count = documents.len(), correlation_id, "documents uploaded");
    Ok(documents)
}

/// A file already checked (kind by content, size, name) and in the blob store.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub file_name: String,
    pub media_type: &'static str,
    pub sha256: String,
    pub size: usize,
}

impl StoredFile {
    /// The file as a new document of `case_id`, *uploaded* by `uploaded_by`,
    /// not registered, conformity not declared.
    pub fn new_document(
        &self,
        case_id: Uuid,
        direction: Direction,
        uploaded_by: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Document {
        Document {
            id: Uuid::now_v7(),
            case_id,
            direction,
            file_name: self.file_name.clone(),
            media_type: self.media_type.to_owned(),
            size_bytes: self.size as i64,
            sha256: self.sha256.clone(),
            state: DocumentState::Uploaded,
            conformity_asserted: false,
            uploaded_by: uploaded_by.clone(),
            uploaded_at: at,
            registration_id: None,
        }
    }
}

/// Files a citizen's message brought to the case, uploaded in the caller's
/// transaction like any upload (their registration is the office's call).
pub(crate) async fn attach_to_case(
    tx: &mut PgConnection,
    case_id: Uuid,
    files: &[StoredFile],
    actor: &serde_json::Value,
    at: DateTime<Utc>,
    correlation_id: &str,
) -> Result<Vec<OutboxMessage>, DocumentError> {
    let documents: Vec<Document> = files
        .iter()
        .map(|file| file.new_document(case_id, Direction::FromCitizen, actor, at))
        .collect();
    record_uploads(tx, &documents, actor, at, correlation_id).await
}

/// Stores new documents in state *uploaded* with their first transition;
/// returns their `document.state_changed` events.
async fn record_uploads(
    tx: &mut PgConnection,
    documents: &[Document],
    actor: &serde_json::Value,
    at: DateTime<Utc>,
    correlation_id: &str,
) -> Result<Vec<OutboxMessage>, DocumentError> {
    store::insert_documents(tx, documents).await?;
    let mut transitions = Vec::with_capacity(documents.len());
    let mut events = Vec::with_capacity(documents.len());
    for d in documents {
        transitions.push(Transition {
            document_id: d.id,
            from: None,
            to: DocumentState::Uploaded,
            actor: actor.clone(),
            at,
            correlation_id: correlation_id.into(),
        });
        events.push(state_changed(
            d,
            None,
            DocumentState::Uploaded,
            actor,
            at,
            correlation_id,
            None,
        )?);
    }
    store::record_transitions(tx, &transitions, None).await?;
    Ok(events)
}

/// Both sides of a case see every document of it, with its state.
pub async fn list(
    pool: &PgPool,
    principal: &Principal,
    case_id: Uuid,
) -> Result<Vec<Document>, DocumentError> {
    let mut conn = pool.acquire().await?;
    let side = authorize(&mut conn, principal, case_id).await?;
    let mut documents = store::documents_of_case(&mut conn, case_id).await?;
    redact_uploaders(&mut documents, side);
    Ok(documents)
}

/// The citizen's side sees who uploaded by kind only: an operator's or an
/// agent's id, an intermediary's tax code are not theirs to see.
pub fn redact_uploaders(documents: &mut [Document], side: Side) {
    if side == Side::Office {
        return;
    }
    for document in documents {
        document.uploaded_by = kind_only(&document.uploaded_by);
    }
}

/// An actor as the citizen side sees it: what kind (citizen, operator,
/// system...), not which employee or which intermediary.
pub(crate) fn kind_only(actor: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "kind": actor.get("kind").cloned().unwrap_or_default() })
}

/// The document, if the principal may see its case.
async fn visible_document(
    conn: &mut PgConnection,
    principal: &Principal,
    document_id: Uuid,
) -> Result<(Document, Side), DocumentError> {
    let document = store::document(conn, document_id)
        .await?
        .ok_or(DocumentError::NotFound("document"))?;
    let side = authorize(conn, principal, document.case_id).await?;
    Ok((document, side))
}

pub async fn download(
    pool: &PgPool,
    blobs: &dyn BlobStore,
    principal: &Principal,
    document_id: Uuid,
) -> Result<(Document, Vec<u8>), DocumentError> {
    let (document, _) =
        visible_document(&mut *pool.acquire().await?, principal, document_id).await?;
    if document.state == DocumentState::Deleted {
        return Err(DocumentError::Gone);
    }
    let bytes = blobs.get(&document.sha256).await?;
    Ok((document, bytes))
}

pub async fn history(
    pool: &PgPool,
    principal: &Principal,
    document_id: Uuid,
) -> Result<Vec<RecordedTransition>, DocumentError> {
    let mut conn = pool.acquire().await?;
    let (_, side) = visible_document(&mut conn, principal, document_id).await?;
    let mut history = store::history(&mut conn, document_id).await?;
    if side != Side::Office {
        for transition in &mut history {
            transition.actor = kind_only(&transition.actor);
        }
    }
    Ok(history)
}

/// One action applied to some documents, and its context.
struct Change<'a> {
    action: Action,
    side: Side,
    actor: &'a serde_json::Value,
    correlation_id: &'a str,
    causation_id: Option<Uuid>,
    registration_id: Option<Uuid>,
}

/// Applies the change to the locked documents and records it all.
async fn apply_transition(
    tx: &mut PgConnection,
    documents: &[Document],
    change: Change<'_>,
) -> Result<Vec<OutboxMessage>, DocumentError> {
    let Change {
        action,
        side,
        actor,
        correlation_id,
        causation_id,
        registration_id,
    } = change;
    let now = Utc::now();
    let mut transitions = Vec::with_capacity(documents.len());
    let mut events = Vec::with_capacity(documents.len());
    for d in documents {
        let to = document::transition(d.state, d.direction, action, side)?;
        transitions.push(Transition {
            document_id: d.id,
            from: Some(d.state),
            to,
            actor: actor.clone(),
            at: now,
            correlation_id: correlation_id.into(),
        });
        events.push(state_changed(
            d,
            Some(d.state),
            to,
            actor,
            now,
            correlation_id,
            causation_id,
        )?);
    }
    store::record_transitions(tx, &transitions, registration_id).await?;
    Ok(events)
}

pub async fn delete(
    pool: &PgPool,
    principal: &Principal,
    document_id: Uuid,
    correlation_id: &str,
) -> Result<Document, DocumentError> {
    let mut tx = pool.begin().await?;
    let (_, side) = visible_document(&mut tx, principal, document_id).await?;
    let documents = store::lock_documents(&mut tx, &[document_id]).await?;
    let actor = actor_json(principal);
    let change = Change {
        action: Action::Delete,
        side,
        actor: &actor,
        correlation_id,
        causation_id: None,
        registration_id: None,
    };
    let events = apply_transition(&mut tx, &documents, change).await?;
    outbox::enqueue(&mut tx, &events).await?;
    let mut deleted = store::document(&mut tx, document_id)
        .await?
        .ok_or(DocumentError::NotFound("document"))?;
    tx.commit().await?;
    redact_uploaders(std::slice::from_mut(&mut deleted), side);
    Ok(deleted)
}

#[derive(Debug, Serialize)]
pub struct Receipt {
    pub signature: String,
    pub pdf: Vec<u8>,
}

pub async fn receipt(
    pool: &PgPool,
    principal: &Principal,
    registration_id: Uuid,
) -> Result<Receipt, DocumentError> {
    let mut conn = pool.acquire().await?;
    let (registration, _) = authorize_registration(&mut conn, principal, registration_id).await?;
    let annulment = register::annulment_reason(&mut conn, registration_id).await?;
    Ok(Receipt {
        pdf: receipt::receipt_pdf(&registration, annulment.as_deref()),
        signature: registration.signature,
    })
}

/// Annulment by an operator of the registering office; the registration
/// itself stays as it was.
pub async fn annul(
    pool: &PgPool,
    principal: &Principal,
    registration_id: Uuid,
    reason: &str,
) -> Result<AnnulOutcome, DocumentError> {
    if reason.trim().is_empty() {
        return Err(DocumentError::Refused("an annulment needs a reason".into()));
    }
    let mut tx = pool.begin().await?;
    let (registration, side) = authorize_registration(&mut tx, principal, registration_id).await?;
    let own_unit =
        matches!(principal, Principal::Operator { office, .. } if *office == registration.aoo);
    if side != Side::Office || !own_unit {
        return Err(DocumentError::Forbidden(
            "only an operator of the registering office can annul a registration".into(),
        ));
    }
    let outcome = register::annul(
        &mut tx,
        registration_id,
        reason.trim(),
        &actor_json(principal),
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}
