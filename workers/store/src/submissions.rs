//! What Sportello knows of a message a channel published, for
//! `GET /submissions`: the inbox (applied), the resends it recognised
//! (`duplicate_submissions`), and the intake's refusals
//! (`submission_refusals`).

use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// An applied message, with what it made.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The inbox's scope (type and publisher), while the inbox remembers it.
    pub scope: Option<String>,
    /// The principal of the request that opened the ticket, as it came.
    pub ticket_submitted_by: Option<serde_json::Value>,
    pub ticket_id: Option<Uuid>,
    pub subject_tax_code: Option<String>,
    pub signature: Option<String>,
    pub application_id: Option<Uuid>,
}

/// The message applied under `message_id`, if any: its inbox row, or (after
/// the inbox forgot it) the ticket its request opened.
pub async fn applied(
    conn: &mut PgConnection,
    message_id: Uuid,
) -> Result<Option<Applied>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT i.idempotency_scope, t.id AS ticket_id, t.subject_tax_code, t.submitted_by,
                r.signature, a.id AS application_id
         FROM (SELECT $1::uuid AS message_id) m
         LEFT JOIN inbox i ON i.message_id = m.message_id
         LEFT JOIN tickets t ON t.request_message_id = m.message_id
         LEFT JOIN registrations r ON r.id = t.registration_id
         LEFT JOIN applications a ON a.message_id = m.message_id
         WHERE i.message_id IS NOT NULL OR t.id IS NOT NULL",
    )
    .bind(message_id)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(Applied {
            scope: row.try_get("idempotency_scope")?,
            ticket_submitted_by: row.try_get("submitted_by")?,
            ticket_id: row.try_get("ticket_id")?,
            subject_tax_code: row.try_get("subject_tax_code")?,
            signature: row.try_get("signature")?,
            application_id: row.try_get("application_id")?,
        })
    })
    .transpose()
}

/// The first message a resend repeated.
pub async fn resend_of(
    conn: &mut PgConnection,
    message_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT original_message_id FROM duplicate_submissions WHERE message_id = $1",
    )
    .bind(message_id)
    .fetch_optional(conn)
    .await
}

/// A refusal the intake kept for its publisher.
#[derive(Debug, Clone)]
pub struct Refused {
    pub message_id: Uuid,
    pub submitter: String,
    pub subject_tax_code: Option<String>,
    pub code: String,
    pub reason: String,
}

/// A refusal to keep.
#[derive(Debug, Clone)]
pub struct NewRefusal<'a> {
    pub message_id: Uuid,
    pub submitter: &'a str,
    pub message_type: &'a str,
    pub idempotency_key: &'a str,
    pub subject_tax_code: Option<&'a str>,
    pub code: &'a str,
    pub reason: &'a str,
}

/// Keeps the refusals of a batch in one statement; a message refused again
/// (a redelivery, a replay) keeps its latest reason. Another publisher's
/// message under the same id changes nothing of it.
pub async fn record_refusals(
    conn: &mut PgConnection,
    refusals: &[NewRefusal<'_>],
) -> Result<(), sqlx::Error> {
    if refusals.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = refusals.iter().map(|r| r.message_id).collect();
    let submitters: Vec<&str> = refusals.iter().map(|r| r.submitter).collect();
    let types: Vec<&str> = refusals.iter().map(|r| r.message_type).collect();
    let keys: Vec<&str> = refusals.iter().map(|r| r.idempotency_key).collect();
    let subjects: Vec<Option<&str>> = refusals.iter().map(|r| r.subject_tax_code).collect();
    let codes: Vec<&str> = refusals.iter().map(|r| r.code).collect();
    let reasons: Vec<&str> = refusals.iter().map(|r| r.reason).collect();
    sqlx::query(
        "INSERT INTO submission_refusals
             (message_id, submitter, message_type, idempotency_key, subject_tax_code, code, reason)
         SELECT DISTINCT ON (message_id) *
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[])
             AS u (message_id, submitter, message_type, idempotency_key, subject_tax_code,
                   code, reason)
         ON CONFLICT (message_id) DO UPDATE
             SET code = EXCLUDED.code, reason = EXCLUDED.reason, refused_at = now()
             WHERE submission_refusals.submitter = EXCLUDED.submitter",
    )
    .bind(&ids)
    .bind(&submitters)
    .bind(&types)
    .bind(&keys)
    .bind(&subjects)
    .bind(&codes)
    .bind(&reasons)
    .execute(conn)
    .await?;
    Ok(())
}

const REFUSED: &str =
    "SELECT message_id, submitter, subject_tax_code, code, reason FROM submission_refusals";

fn refused_of(row: &sqlx::postgres::PgRow) -> Result<Refused, sqlx::Error> {
    Ok(Refused {
        message_id: row.try_get("message_id")?,
        submitter: row.try_get("submitter")?,
        subject_tax_code: row.try_get("subject_tax_code")?,
        code: row.try_get("code")?,
        reason: row.try_get("reason")?,
    })
}

/// The refusal of `message_id`, if it was refused.
pub async fn refused(
    conn: &mut PgConnection,
    message_id: Uuid,
) -> Result<Option<Refused>, sqlx::Error> {
    let row = sqlx::query(&format!("{REFUSED} WHERE message_id = $1"))
        .bind(message_id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(refused_of).transpose()
}

/// The latest refusal of a message of this type its publisher sent under this key.
pub async fn refused_under_key(
    conn: &mut PgConnection,
    submitter: &str,
    message_type: &str,
    idempotency_key: &str,
) -> Result<Option<Refused>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "{REFUSED} WHERE submitter = $1 AND message_type = $2 AND idempotency_key = $3
         ORDER BY refused_at DESC LIMIT 1"
    ))
    .bind(submitter)
    .bind(message_type)
    .bind(idempotency_key)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(refused_of).transpose()
}

/// Forgets up to `limit` refusals and resends older than `before`, as the
/// inbox forgets what it applied.
pub async fn purge(
    conn: &mut PgConnection,
    before: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let refusals = crate::purge_before(
        &mut *conn,
        "submission_refusals",
        "message_id",
        "refused_at",
        before,
        limit,
    )
    .await?;
    let resends = crate::purge_before(
        conn,
        "duplicate_submissions",
        "message_id",
        "received_at",
        before,
        limit,
    )
    .await?;
    Ok(refusals + resends)
}
