//! The inbox: one row per applied intake message, written in the transaction
//! of its effects. It is what makes at-least-once delivery exactly-once in effect.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::intake::Idempotency;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxOutcome {
    /// First time seen: apply its effects.
    New,
    /// Already applied (redelivery, or a resend with the same key and content).
    Duplicate,
    /// The idempotency key was already used by this actor for different content.
    KeyReused,
}

/// Forgets up to `limit` applied messages received before `before` (any of
/// them: no sort over a large backlog). After that, a resend of one of them
/// with a new message id would be applied again; a redelivery is still
/// recognised by its registration. Returns how many were forgotten.
pub async fn purge(
    conn: &mut PgConnection,
    before: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM inbox WHERE message_id IN (
             SELECT message_id FROM inbox WHERE received_at < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(deleted.rows_affected())
}

/// Which of these messages were applied before.
pub async fn applied(
    conn: &mut PgConnection,
    message_ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(Default::default());
    }
    let found: Vec<Uuid> =
        sqlx::query_scalar("SELECT message_id FROM inbox WHERE message_id = ANY($1)")
            .bind(message_ids)
            .fetch_all(conn)
            .await?;
    Ok(found.into_iter().collect())
}

/// Records a batch of messages and says, for each, whether to apply it.
pub async fn record(
    conn: &mut PgConnection,
    entries: &[&Idempotency],
) -> Result<Vec<InboxOutcome>, sqlx::Error> {
    let ids: Vec<Uuid> = entries.iter().map(|e| e.message_id).collect();
    let types: Vec<&str> = entries.iter().map(|e| e.message_type).collect();
    let scopes: Vec<&str> = entries.iter().map(|e| e.scope.as_str()).collect();
    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let hashes: Vec<&str> = entries.iter().map(|e| e.payload_sha256.as_str()).collect();
    // ON CONFLICT without a target covers both the message id and the scoped
    // key, and also a duplicate of an earlier row in this very batch.
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO inbox (message_id, message_type, idempotency_scope, idempotency_key, payload_sha256)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
         ON CONFLICT DO NOTHING
         RETURNING message_id",
    )
    .bind(&ids)
    .bind(&types)
    .bind(&scopes)
    .bind(&keys)
    .bind(&hashes)
    .fetch_all(&mut *conn)
    .await?;

    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut claimed = std::collections::HashSet::new();
    for entry in entries {
        // Two copies of one message in the same batch: the first claims the row.
        if inserted.contains(&entry.message_id) && claimed.insert(entry.message_id) {
            outcomes.push(InboxOutcome::New);
            continue;
        }
        let existing = sqlx::query(
            "SELECT payload_sha256 FROM inbox
             WHERE message_id = $1 OR (idempotency_scope = $2 AND idempotency_key = $3)
             LIMIT 1",
        )
        .bind(entry.message_id)
        .bind(&entry.scope)
        .bind(&entry.key)
        .fetch_optional(&mut *conn)
        .await?;
        let same_content = existing
            .map(|row| row.get::<String, _>(0) == entry.payload_sha256)
            .unwrap_or(false);
        outcomes.push(if same_content {
            InboxOutcome::Duplicate
        } else {
            InboxOutcome::KeyReused
        });
    }
    Ok(outcomes)
}
