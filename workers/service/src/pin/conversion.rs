//! From ordinary PIN to *PIN dispositivo* (seed 003): Sportello produces
//! the pre-filled request form (PDF); the citizen uploads it signed with an
//! identity document; the upload becomes a `request.submitted` on the
//! intake (written to the outbox in the upload's transaction), so it opens
//! a back-office case like any request: routed to the office of the
//! citizen's residence, registered, its two files kept as the case's
//! documents. Operators work it with the ticket actions; closing it
//! *accolta* makes the PIN *dispositivo* (read at every sign-in from the
//! case's state), *respinta* leaves it ordinary; the citizen is notified of
//! the closing by the ticket-closed rule like any request.

use base64::Engine;
use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{event, PinError};
use crate::broker::names::INTAKE_EXCHANGE;
use crate::contract::{Authentication, Channel, CodiceFiscale, PinKind, Principal};
use crate::documents::receipt::lines_pdf;
use crate::documents::IncomingFile;
use crate::domain::content::check_content;
use crate::domain::document::sanitize_file_name;
use crate::domain::pin::{CredentialState, Residence};
use crate::store::outbox::{self, OutboxMessage};
use crate::store::pins::{self as store, CredentialRow};

/// The ambito of conversion cases (see the migration's `ambiti` row).
pub const AMBITO: &str = "pin_dispositivo";

/// The citizen of an ordinary PIN token; anyone else is refused.
fn ordinary_pin_citizen(principal: &Principal) -> Result<&CodiceFiscale, PinError> {
    match principal {
        Principal::Citizen {
            tax_code,
            authentication: Authentication::Pin { pin_kind: PinKind::Ordinary },
        } => Ok(tax_code),
        Principal::Citizen {
            authentication: Authentication::Pin { pin_kind: PinKind::Dispositivo },
            ..
        } => Err(PinError::Conflict("the PIN is already dispositivo".into())),
        _ => Err(PinError::Forbidden(
            "only a citizen signed in with an ordinary PIN converts it (the simplified PIN does not)".into(),
        )),
    }
}

async fn active_credential(
    pool: &PgPool,
    tax_code: &CodiceFiscale,
) -> Result<CredentialRow, PinError> {
    let mut tx = pool.begin().await?;
    let row = store::lock_credential(&mut tx, tax_code.as_str())
        .await?
        .filter(|row| row.state == CredentialState::Active.as_str())
        .ok_or_else(|| PinError::Forbidden("no active PIN for this tax code".into()))?;
    tx.rollback().await?;
    Ok(row)
}

/// The form's lines, pre-filled from the credential.
pub fn form_lines(row: &CredentialRow) -> Vec<String> {
    let residence: Option<Residence> = serde_json::from_value(row.residence.clone()).ok();
    let mut lines = vec![
        "Richiesta di conversione del PIN ordinario in PIN dispositivo".to_owned(),
        String::new(),
        format!("Codice fiscale: {}", row.tax_code),
        format!("Cognome: {}   Nome: {}", row.surname, row.name),
        format!(
            "Nato/a il {} a {} - provincia {} - codice {}   Sesso: {}",
            row.birth_date.format("%d/%m/%Y"),
            row.birth_municipality,
            row.birth_province,
            row.birthplace_code,
            row.sex
        ),
    ];
    if let Some(residence) = residence {
        lines.push(format!("Residenza: {}", residence.lines().join(", ")));
    }
    let contact =
        |label: &str, value: &Option<String>| value.as_ref().map(|v| format!("{label}: {v}"));
    lines.extend(
        [
            contact("Cellulare", &row.mobile),
            contact("Telefono abitazione", &row.home_phone),
            contact("Email", &row.email),
            contact("PEC", &row.pec),
        ]
        .into_iter()
        .flatten(),
    );
    lines.extend([
        String::new(),
        "Il/la sottoscritto/a chiede la conversione del proprio PIN ordinario in PIN dispositivo"
            .into(),
        "e allega copia del documento di identità (carta d'identità, patente o passaporto).".into(),
        String::new(),
        "Luogo e data ____________________     Firma ______________________________".into(),
    ]);
    lines
}

/// The pre-filled form, as PDF.
pub async fn form_pdf(pool: &PgPool, principal: &Principal) -> Result<Vec<u8>, PinError> {
    let tax_code = ordinary_pin_citizen(principal)?;
    let row = active_credential(pool, tax_code).await?;
    Ok(lines_pdf("INPS - Conversione del PIN", &form_lines(&row)))
}

/// The signed form and the identity document: opens the conversion case.
/// Returns the `message_id` of the request the case is opened from.
pub async fn submit(
    pool: &PgPool,
    principal: &Principal,
    files: Vec<IncomingFile>,
    conformity_asserted: bool,
    max_bytes: usize,
    correlation_id: &str,
) -> Result<Uuid, PinError> {
    let tax_code = ordinary_pin_citizen(principal)?.clone();
    if files.len() != 2 {
        return Err(PinError::field(
            "file",
            "send two files: the signed form first, then the identity document",
        ));
    }
    if !conformity_asserted {
        return Err(PinError::field(
            "conformity",
            "declare that the files conform to the originals",
        ));
    }
    let mut attachments = Vec::new();
    for (file, field) in files.iter().zip(["signed_form", "identity_document"]) {
        if file.bytes.is_empty() || file.bytes.len() > max_bytes {
            return Err(PinError::field(
                field,
                format!("a file of 1 to {max_bytes} bytes"),
            ));
        }
        check_content(&file.bytes).map_err(|e| PinError::field(field, e))?;
        let name =
            sanitize_file_name(&file.declared_name).unwrap_or_else(|_| format!("{field}.pdf"));
        attachments.push(json!({
            "file_name": name,
            "content_base64": base64::engine::general_purpose::STANDARD.encode(&file.bytes),
        }));
    }
    let row = active_credential(pool, &tax_code).await?;
    let residence: Residence = serde_json::from_value(row.residence.clone())?;
    let location = match &residence {
        Residence::Italy {
            postal_code,
            municipality,
            province,
            ..
        } => {
            json!({"province": province, "municipality": municipality, "postal_code": postal_code})
        }
        // Residents abroad: no territorial office; triage routes the case.
        Residence::Abroad { .. } => json!({"province": "EE"}),
    };
    let now = Utc::now();
    let message_id = Uuid::now_v7();
    let mut contact = serde_json::Map::new();
    if let Some(email) = row.email.as_ref().or(row.pec.as_ref()) {
        contact.insert("email".into(), json!(email));
    }
    if let Some(mobile) = &row.mobile {
        contact.insert("phone".into(), json!(mobile));
    }
    let envelope = json!({
        "message_id": message_id,
        "type": "request.submitted",
        "schema_version": 2,
        "channel": Channel::Web.as_str(),
        "occurred_at": now,
        "correlation_id": correlation_id,
        "idempotency_key": format!("pin-conversion-{message_id}"),
        "principal": principal,
        "payload": {
            "ambito": AMBITO,
            "subject": "Conversione del PIN ordinario in PIN dispositivo",
            "text": format!(
                "Richiesta di conversione del PIN in dispositivo di {} {} ({}): modulo firmato e documento di identità allegati.",
                row.name, row.surname, row.tax_code
            ),
            "contact": contact,
            "location": location,
            "attachments": attachments,
        }
    });
    let mut tx = pool.begin().await?;
    // One conversion at a time per citizen (serialised on the credential).
    store::lock_credential(&mut tx, tax_code.as_str()).await?;
    if store::pending_conversion(&mut tx, tax_code.as_str()).await? {
        return Err(PinError::Conflict(
            "a conversion request is already being examined".into(),
        ));
    }
    store::insert_conversion(&mut tx, message_id, tax_code.as_str(), now).await?;
    let request = OutboxMessage {
        message_id,
        exchange: INTAKE_EXCHANGE.to_owned(),
        routing_key: format!("{}.request.submitted", Channel::Web.as_str()),
        message_type: "request.submitted".into(),
        correlation_id: correlation_id.to_owned(),
        body: serde_json::to_vec(&envelope)?,
        trace: None,
    };
    let changed = event(
        tax_code.as_str(),
        "conversion_requested",
        Some(Channel::Web),
        CredentialState::Active,
        None,
        Some(message_id),
        correlation_id,
        now,
    )?;
    outbox::enqueue(&mut tx, &[request, changed]).await?;
    tx.commit().await?;
    tracing::info!(%message_id, correlation_id, "PIN conversion requested");
    Ok(message_id)
}
