//! What booking over the broker keeps: the outcome of every applied booking
//! command (so a repeat answers the same), and the phone call-backs handed
//! to agents with their outcomes.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use sportello_contract::appointments::{CallbackResult, CommandOutcome};
use sportello_domain::intake::Idempotency;

/// Keeps the outcome of each command (named by its idempotency), in one
/// statement.
pub async fn record_outcomes(
    conn: &mut PgConnection,
    outcomes: &[(&Idempotency, &CommandOutcome)],
) -> Result<(), sqlx::Error> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = outcomes.iter().map(|(i, _)| i.message_id).collect();
    let scopes: Vec<&str> = outcomes.iter().map(|(i, _)| i.scope.as_str()).collect();
    let keys: Vec<&str> = outcomes.iter().map(|(i, _)| i.key.as_str()).collect();
    let kept = outcomes
        .iter()
        .map(|(_, outcome)| serde_json::to_value(outcome))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO appointment_command_outcomes
             (message_id, idempotency_scope, idempotency_key, outcome)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[])",
    )
    .bind(&ids)
    .bind(&scopes)
    .bind(&keys)
    .bind(&kept)
    .execute(conn)
    .await?;
    Ok(())
}

/// The outcome kept for this message, or for the actor's earlier message
/// under the same idempotency key.
pub async fn stored_outcome(
    conn: &mut PgConnection,
    idempotency: &Idempotency,
) -> Result<Option<CommandOutcome>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT outcome FROM appointment_command_outcomes
         WHERE message_id = $1 OR (idempotency_scope = $2 AND idempotency_key = $3)
         LIMIT 1",
    )
    .bind(idempotency.message_id)
    .bind(&idempotency.scope)
    .bind(&idempotency.key)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        row.try_get::<sqlx::types::Json<CommandOutcome>, _>(0)
            .map(|json| json.0)
    })
    .transpose()
}

/// Forgets up to `limit` outcomes recorded before `before`, as the inbox
/// forgets the commands they answer (the same retention): a repeat after
/// that is answered `already_applied`. Returns how many were forgotten.
pub async fn purge_outcomes(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    crate::purge_before(
        conn,
        "appointment_command_outcomes",
        "message_id",
        "recorded_at",
        before,
        limit,
    )
    .await
}

/// A call put on an office desk's queue.
pub async fn insert_call(
    conn: &mut PgConnection,
    call_id: Uuid,
    appointment_id: Uuid,
    attempt: i32,
    queued_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO appointment_calls (call_id, appointment_id, attempt, queued_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (appointment_id, attempt) DO NOTHING",
    )
    .bind(call_id)
    .bind(appointment_id)
    .bind(attempt)
    .bind(queued_at)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A call and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub call_id: Uuid,
    pub appointment_id: Uuid,
    pub attempt: i32,
    pub queued_at: DateTime<Utc>,
    pub outcome: Option<String>,
    pub agent: Option<String>,
    pub note: Option<String>,
    pub recorded_at: Option<DateTime<Utc>>,
}

fn call_from(row: &sqlx::postgres::PgRow) -> Result<Call, sqlx::Error> {
    Ok(Call {
        call_id: row.try_get("call_id")?,
        appointment_id: row.try_get("appointment_id")?,
        attempt: row.try_get("attempt")?,
        queued_at: row.try_get("queued_at")?,
        outcome: row.try_get("outcome")?,
        agent: row.try_get("agent")?,
        note: row.try_get("note")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

const CALL_COLUMNS: &str =
    "call_id, appointment_id, attempt, queued_at, outcome, agent, note, recorded_at";

/// The call, locked until the end of the transaction.
pub async fn lock_call(
    conn: &mut PgConnection,
    call_id: Uuid,
) -> Result<Option<Call>, sqlx::Error> {
    let sql = format!("SELECT {CALL_COLUMNS} FROM appointment_calls WHERE call_id = $1 FOR UPDATE");
    let row = sqlx::query(&sql).bind(call_id).fetch_optional(conn).await?;
    row.as_ref().map(call_from).transpose()
}

/// Every call of an appointment, first attempt first.
pub async fn calls_of(
    conn: &mut PgConnection,
    appointment_id: Uuid,
) -> Result<Vec<Call>, sqlx::Error> {
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM appointment_calls WHERE appointment_id = $1 ORDER BY attempt"
    );
    let rows = sqlx::query(&sql)
        .bind(appointment_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(call_from).collect()
}

/// Records what came of a call (once: only while none is recorded).
pub async fn record_call_outcome(
    conn: &mut PgConnection,
    call_id: Uuid,
    outcome: CallbackResult,
    agent: &str,
    note: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE appointment_calls SET outcome = $2, agent = $3, note = $4, recorded_at = $5
         WHERE call_id = $1 AND outcome IS NULL",
    )
    .bind(call_id)
    .bind(outcome.as_str())
    .bind(agent)
    .bind(note)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The office desks that take phone call-backs (have a phone calendar).
pub async fn phone_desks(conn: &mut PgConnection) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT DISTINCT office_aoo, desk_kind FROM calendars WHERE mode = 'phone'
         ORDER BY office_aoo, desk_kind",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// The phone desks of one office: `(kind, name)` of the desks with a phone calendar.
pub async fn office_phone_desks(
    conn: &mut PgConnection,
    office_aoo: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.kind, d.name FROM desks d
         WHERE d.office_aoo = $1
           AND EXISTS (SELECT 1 FROM calendars c WHERE c.office_aoo = d.office_aoo
                         AND c.desk_kind = d.kind AND c.mode = 'phone')
         ORDER BY d.name, d.kind",
    )
    .bind(office_aoo)
    .fetch_all(conn)
    .await
}

/// A call with its outcome, as the office's call log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    pub call: Call,
    pub desk_name: String,
    pub subject_tax_code: String,
    pub phone: String,
}

/// The office's latest recorded call outcomes, newest first, at most `limit`.
pub async fn recent_outcomes(
    conn: &mut PgConnection,
    office_aoo: &str,
    limit: i64,
) -> Result<Vec<RecordedCall>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.call_id, c.appointment_id, c.attempt, c.queued_at, c.outcome, c.agent,
                c.note, c.recorded_at, d.name AS desk_name, a.subject_tax_code, a.phone
         FROM appointment_calls c
         JOIN appointments a ON a.id = c.appointment_id
         JOIN desks d ON d.office_aoo = a.office_aoo AND d.kind = a.desk_kind
         WHERE a.office_aoo = $1 AND c.outcome IS NOT NULL
         ORDER BY c.recorded_at DESC, c.call_id DESC LIMIT $2",
    )
    .bind(office_aoo)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecordedCall {
                call: call_from(row)?,
                desk_name: row.try_get("desk_name")?,
                subject_tax_code: row.try_get("subject_tax_code")?,
                phone: row.try_get("phone")?,
            })
        })
        .collect()
}
