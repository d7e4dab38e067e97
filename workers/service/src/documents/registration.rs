//! Sending a case's documents for protocol registration (*protocollazione*)
//! and completing it: one operation for the API, the video room and the
//! staff pages; the registration worker numbers them afterwards.

use super::*;

/// A request for registration as the operator sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationSent {
    /// The `documents.registration_requested` message: the registration's
    /// `request_id` once the worker numbers it.
    pub request_id: Uuid,
    /// The same request key was used before: nothing changed this time.
    pub repeated: bool,
}

/// The operator sends documents of the case to the protocol register: they
/// turn orange, and the registration worker receives the request.
/// `request_key` (a staff form's one-time key) makes a resent request a
/// no-op: it is kept in the inbox, scoped by the operator, with the request's
/// digest, so the same key for other documents or another subject is refused.
pub async fn send_for_registration(
    pool: &PgPool,
    principal: &Principal,
    case_id: Uuid,
    document_ids: &[Uuid],
    subject: &str,
    request_key: Option<&str>,
    correlation_id: &str,
) -> Result<RegistrationSent, DocumentError> {
    if document_ids.is_empty() {
        return Err(RegistrationRefusal::NoDocuments.into());
    }
    let subject = subject.trim();
    if subject.is_empty() {
        return Err(RegistrationRefusal::NoSubject.into());
    }
    if request_key.is_some_and(|k| k.is_empty() || k.len() > MAX_REQUEST_KEY) {
        return Err(RegistrationRefusal::BadKey.into());
    }
    let mut tx = pool.begin().await?;
    let side = authorize(&mut tx, principal, case_id).await?;
    let (Side::Office, Principal::Operator { office, .. }) = (side, principal) else {
        return Err(DocumentError::Forbidden(
            "only an operator of the case's office can send documents for registration".into(),
        ));
    };
    let aoo = Aoo::parse(office).map_err(|e| DocumentError::Refused(e.to_string()))?;
    let mut ids = document_ids.to_vec();
    ids.sort();
    ids.dedup();
    let request_id = Uuid::now_v7();
    if let Some(key) = request_key {
        // Before the documents are locked: a concurrent resend waits here on
        // the first one's row and then finds it, rather than failing on the
        // documents it already turned orange.
        if let Some(first) =
            first_request(&mut tx, principal, key, request_id, case_id, &ids, subject).await?
        {
            return Ok(RegistrationSent {
                request_id: first,
                repeated: true,
            });
        }
    }
    let documents = store::lock_documents(&mut tx, &ids).await?;
    if documents.len() != ids.len() || documents.iter().any(|d| d.case_id != case_id) {
        return Err(DocumentError::NotFound("document of this case"));
    }
    let actor = actor_json(principal);
    let change = Change {
        action: Action::SendForRegistration,
        side,
        actor: &actor,
        correlation_id,
        causation_id: None,
        registration_id: None,
    };
    let mut messages = apply_transition(&mut tx, &documents, change).await?;
    let request = Event {
        message_id: request_id,
        message_type: "documents.registration_requested".into(),
        schema_version: 1,
        occurred_at: Utc::now(),
        correlation_id: correlation_id.into(),
        causation_id: None,
        payload: DocumentsRegistrationRequested {
            case_id,
            aoo: aoo.to_string(),
            subject: subject.into(),
            document_ids: ids,
            requested_by: actor,
        },
    };
    messages.push(OutboxMessage::event(&request, None)?);
    outbox::enqueue(&mut tx, &messages).await?;
    tx.commit().await?;
    tracing::info!(%case_id, %request_id, correlation_id, "documents sent for registration");
    Ok(RegistrationSent {
        request_id,
        repeated: false,
    })
}

/// Records the request key in the inbox (in the request's transaction, so a
/// refused request leaves the key unused) and returns the first request's id
/// when the key was used before for this very request.
async fn first_request(
    tx: &mut PgConnection,
    principal: &Principal,
    key: &str,
    request_id: Uuid,
    case_id: Uuid,
    ids: &[Uuid],
    subject: &str,
) -> Result<Option<Uuid>, DocumentError> {
    use sha2::{Digest, Sha256};
    let content = serde_json::to_vec(&serde_json::json!({
        "case_id": case_id, "document_ids": ids, "subject": subject,
    }))?;
    let idempotency = Idempotency {
        message_id: request_id,
        message_type: "documents.registration_requested",
        scope: principal.actor_key(),
        key: key.to_owned(),
        payload_sha256: hex::encode(Sha256::digest(&content)),
    };
    match inbox::record(tx, &[&idempotency]).await?.first() {
        Some(InboxOutcome::New) => Ok(None),
        Some(InboxOutcome::Duplicate) => inbox::message_under_key(tx, &idempotency.scope, key)
            .await?
            // Purged between the two reads: the key is no longer known.
            .map(Some)
            .ok_or(DocumentError::Registration(RegistrationRefusal::KeyReused)),
        _ => Err(RegistrationRefusal::KeyReused.into()),
    }
}

/// The protocol signature of each registration of the case's documents, by
/// registration id, for whoever may see the case.
pub async fn signatures(
    pool: &PgPool,
    principal: &Principal,
    case_id: Uuid,
) -> Result<HashMap<Uuid, String>, DocumentError> {
    let mut conn = pool.acquire().await?;
    authorize(&mut conn, principal, case_id).await?;
    Ok(register::signatures_of_case(&mut conn, case_id).await?)
}

/// What the registration worker did with a request.
#[derive(Debug, PartialEq)]
pub enum RegistrationOutcome {
    Registered {
        signature: String,
    },
    /// A redelivery: the request was registered before; nothing changed.
    AlreadyRegistered {
        signature: String,
    },
}

/// The registration worker's step, in the caller's transaction: number,
/// documents turn green, `documents.registered` goes out. Idempotent on the
/// request's message id.
pub async fn complete_registration(
    tx: &mut PgConnection,
    request: &Event<DocumentsRegistrationRequested>,
) -> Result<RegistrationOutcome, DocumentError> {
    let payload = &request.payload;
    let aoo = Aoo::parse(&payload.aoo).map_err(|e| DocumentError::Refused(e.to_string()))?;
    let mut ids = payload.document_ids.clone();
    ids.sort();
    ids.dedup();
    let documents = store::lock_documents(tx, &ids).await?;
    if documents.len() != ids.len() || documents.iter().any(|d| d.case_id != payload.case_id) {
        return Err(DocumentError::Refused(
            "the request names documents that are not of its case".into(),
        ));
    }
    let files = documents
        .iter()
        .map(|d| RegisteredFile {
            name: d.file_name.clone(),
            sha256: d.sha256.clone(),
            size: d.size_bytes as u64,
        })
        .collect();
    let registration = register::register(
        tx,
        &[RegistrationRequest {
            id: Uuid::now_v7(),
            request_id: request.message_id,
            aoo,
            subject: payload.subject.clone(),
            registered_by: payload.requested_by.clone(),
            files,
            correlation_id: request.correlation_id.clone(),
        }],
    )
    .await?
    .remove(0);
    if documents
        .iter()
        .all(|d| d.registration_id == Some(registration.id))
    {
        return Ok(RegistrationOutcome::AlreadyRegistered {
            signature: registration.signature,
        });
    }
    let actor = system_actor();
    let change = Change {
        action: Action::CompleteRegistration,
        side: Side::System,
        actor: &actor,
        correlation_id: &request.correlation_id,
        causation_id: Some(request.message_id),
        registration_id: Some(registration.id),
    };
    let mut messages = apply_transition(tx, &documents, change).await?;
    let registered = Event {
        message_id: Uuid::now_v7(),
        message_type: "documents.registered".into(),
        schema_version: 1,
        occurred_at: registration.registered_at,
        correlation_id: request.correlation_id.clone(),
        causation_id: Some(request.message_id),
        payload: DocumentsRegistered {
            registration_id: registration.id,
            case_id: payload.case_id,
            signature: registration.signature.clone(),
            registered_at: registration.registered_at,
            document_ids: ids,
            receipt_path: format!("/registrations/{}/receipt.pdf", registration.id),
        },
    };
    messages.push(OutboxMessage::event(&registered, None)?);
    outbox::enqueue(tx, &messages).await?;
    Ok(RegistrationOutcome::Registered {
        signature: registration.signature,
    })
}

/// The case a registration of documents belongs to, if the principal may see it.
pub(super) async fn authorize_registration(
    conn: &mut PgConnection,
    principal: &Principal,
    registration_id: Uuid,
) -> Result<(register::Registration, Side), DocumentError> {
    let registration = register::registration(conn, registration_id)
        .await?
        .ok_or(DocumentError::NotFound("registration"))?;
    let case_id: Option<Uuid> =
        sqlx::query_scalar("SELECT case_id FROM documents WHERE registration_id = $1 LIMIT 1")
            .bind(registration_id)
            .fetch_optional(&mut *conn)
            .await?;
    let case_id = case_id.ok_or(DocumentError::NotFound("registration"))?;
    let side = authorize(conn, principal, case_id).await?;
    Ok((registration, side))
}
