//! The inbox: one row per applied intake message, written in the transaction
//! of its effects. It is what makes at-least-once delivery exactly-once in effect.

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use sportello_domain::intake::Idempotency;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxOutcome {
    /// First time seen: apply its effects.
    New,
    /// Already applied (redelivery, or a resend with the same key and content).
    Duplicate,
    /// The idempotency key was already used by this actor for different content.
    KeyReused,
    /// The message id was already used by a different message (another
    /// idempotency key, or different content under the same key): message
    /// ids are unique per message, whoever sent the first.
    MessageIdReused,
}

impl InboxOutcome {
    /// Why a refused outcome was refused, in the sender's terms (the reason
    /// of a dead letter or of a command's refusal); `None` when applied or
    /// a duplicate.
    pub fn refusal(&self, idempotency: &Idempotency) -> Option<String> {
        match self {
            InboxOutcome::New | InboxOutcome::Duplicate => None,
            InboxOutcome::KeyReused => Some(format!(
                "idempotency key `{}` was already used by this principal for a different {} \
                 (other content); resend the same content, or use a new key for a new {}",
                idempotency.key, idempotency.message_type, idempotency.message_type
            )),
            InboxOutcome::MessageIdReused => Some(format!(
                "message_id {} was already used by a different message (another idempotency \
                 key or different content); a message id must be unique per message",
                idempotency.message_id
            )),
        }
    }
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
    crate::purge_before(conn, "inbox", "message_id", "received_at", before, limit).await
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

/// The message first applied under this actor's idempotency key, if any.
pub async fn message_under_key(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT message_id FROM inbox WHERE idempotency_scope = $1 AND idempotency_key = $2",
    )
    .bind(scope)
    .bind(key)
    .fetch_optional(conn)
    .await
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
            "SELECT message_id, idempotency_scope, idempotency_key, payload_sha256 FROM inbox
             WHERE message_id = $1 OR (idempotency_scope = $2 AND idempotency_key = $3)
             ORDER BY message_id = $1 DESC
             LIMIT 1",
        )
        .bind(entry.message_id)
        .bind(&entry.scope)
        .bind(&entry.key)
        .fetch_optional(&mut *conn)
        .await?;
        outcomes.push(match existing {
            Some(row) => {
                let earlier = Recorded {
                    message_id: row.get(0),
                    scope: row.get(1),
                    key: row.get(2),
                    payload_sha256: row.get(3),
                };
                let outcome = judge(entry, &earlier);
                if outcome == InboxOutcome::Duplicate && earlier.message_id != entry.message_id {
                    record_resend(&mut *conn, entry.message_id, earlier.message_id).await?;
                }
                outcome
            }
            // The conflicting row is gone again (purged in between): refused
            // as a reused key, the sender may send it anew.
            None => InboxOutcome::KeyReused,
        });
    }
    Ok(outcomes)
}

/// Keeps a resend's message id with the first one's, so that its sender
/// can learn it was a duplicate (`GET /submissions`). Resends only: the
/// first delivery of every message never comes here.
async fn record_resend(
    conn: &mut PgConnection,
    message_id: Uuid,
    original: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO duplicate_submissions (message_id, original_message_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(message_id)
    .bind(original)
    .execute(conn)
    .await?;
    Ok(())
}

/// An inbox row, as far as judging a newcomer needs it.
struct Recorded {
    message_id: Uuid,
    scope: String,
    key: String,
    payload_sha256: String,
}

/// What a message that conflicted with `earlier` is: the same message again,
/// or a different one reusing its message id or its idempotency key.
fn judge(entry: &Idempotency, earlier: &Recorded) -> InboxOutcome {
    let same_content = earlier.payload_sha256 == entry.payload_sha256;
    if earlier.message_id == entry.message_id {
        let same_key = earlier.scope == entry.scope && earlier.key == entry.key;
        if same_key && same_content {
            InboxOutcome::Duplicate
        } else {
            InboxOutcome::MessageIdReused
        }
    } else if same_content {
        // A resend: a new message id, the same key and content.
        InboxOutcome::Duplicate
    } else {
        InboxOutcome::KeyReused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(message_id: Uuid, key: &str, payload: &str) -> Idempotency {
        Idempotency {
            message_id,
            message_type: "request.submitted",
            scope: "citizen:RSSMRA85T10A562S".into(),
            key: key.into(),
            payload_sha256: payload.into(),
        }
    }

    fn recorded(entry: &Idempotency) -> Recorded {
        Recorded {
            message_id: entry.message_id,
            scope: entry.scope.clone(),
            key: entry.key.clone(),
            payload_sha256: entry.payload_sha256.clone(),
        }
    }

    #[test]
    fn a_conflict_is_told_apart_by_what_was_reused() {
        let id = Uuid::now_v7();
        let first = entry(id, "form-1", "aaa");
        let earlier = recorded(&first);
        // Redelivered, or resent under a new id: the same message.
        assert_eq!(judge(&first, &earlier), InboxOutcome::Duplicate);
        let resent = entry(Uuid::now_v7(), "form-1", "aaa");
        assert_eq!(judge(&resent, &earlier), InboxOutcome::Duplicate);
        // The same key, other content, a new id.
        let other = entry(Uuid::now_v7(), "form-1", "bbb");
        assert_eq!(judge(&other, &earlier), InboxOutcome::KeyReused);
        // The same id on a different message: another key, or other content.
        let other_key = entry(id, "form-2", "bbb");
        assert_eq!(judge(&other_key, &earlier), InboxOutcome::MessageIdReused);
        let other_content = entry(id, "form-1", "bbb");
        assert_eq!(
            judge(&other_content, &earlier),
            InboxOutcome::MessageIdReused
        );
        let mut other_actor = entry(id, "form-1", "aaa");
        other_actor.scope = "citizen:VRDLGU80A01H501X".into();
        assert_eq!(judge(&other_actor, &earlier), InboxOutcome::MessageIdReused);
    }
}
