//! Durable timers in PostgreSQL: schedule at an instant, cancel, and claim the
//! due ones. Firing (turning a due timer into an event) is the timer worker's job.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct TimerRequest {
    /// What the timer is for; becomes the routing-key suffix of `timer.fired`.
    pub kind: String,
    /// Natural key within the kind, e.g. an appointment id.
    pub key: String,
    pub fire_at: DateTime<Utc>,
    pub data: serde_json::Value,
    pub correlation_id: String,
}

#[derive(Debug, Clone)]
pub struct DueTimer {
    pub id: Uuid,
    pub kind: String,
    pub key: String,
    pub fire_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    pub data: serde_json::Value,
    pub correlation_id: String,
}

pub const NOTIFY_CHANNEL: &str = "sportello_timers";

/// Schedules a timer, idempotently: the same kind and key give the same timer.
/// A cancelled timer scheduled again is re-armed with the new instant.
pub async fn schedule(
    conn: &mut PgConnection,
    request: &TimerRequest,
) -> Result<Uuid, sqlx::Error> {
    match upsert(&mut *conn, request, false).await? {
        Some(id) => Ok(id),
        // Already scheduled (or fired): the existing timer is the answer.
        None => {
            sqlx::query_scalar("SELECT id FROM timers WHERE kind = $1 AND key = $2")
                .bind(&request.kind)
                .bind(&request.key)
                .fetch_one(conn)
                .await
        }
    }
}

/// Schedules the timer, or moves it: whatever its state (scheduled, fired,
/// cancelled), it fires at the new instant with the new data. For timers
/// that follow something that can move, like an appointment's reminder.
pub async fn rearm(conn: &mut PgConnection, request: &TimerRequest) -> Result<Uuid, sqlx::Error> {
    upsert(conn, request, true)
        .await?
        .ok_or_else(|| sqlx::Error::Protocol("re-arming a timer returned no row".into()))
}

/// Inserts the timer, or re-arms the existing one when it is cancelled (or
/// in any state, with `any_state`); `None` when it was left as it was.
async fn upsert(
    conn: &mut PgConnection,
    request: &TimerRequest,
    any_state: bool,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO timers (id, kind, key, fire_at, payload, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (kind, key) DO UPDATE
             SET state = 'scheduled', fire_at = EXCLUDED.fire_at, payload = EXCLUDED.payload,
                 correlation_id = EXCLUDED.correlation_id, fired_at = NULL, cancelled_at = NULL
             WHERE $7 OR timers.state = 'cancelled'
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(&request.kind)
    .bind(&request.key)
    .bind(request.fire_at)
    .bind(&request.data)
    .bind(&request.correlation_id)
    .bind(any_state)
    .fetch_optional(conn)
    .await
}

/// Cancels a timer that has not fired yet. Returns whether it was cancelled.
pub async fn cancel(conn: &mut PgConnection, kind: &str, key: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE timers SET state = 'cancelled', cancelled_at = now()
         WHERE kind = $1 AND key = $2 AND state = 'scheduled'",
    )
    .bind(kind)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Marks up to `limit` due timers as fired and returns them. Run it in the
/// transaction that also writes their events, so a timer fires exactly when
/// its event is committed; concurrent timer workers skip each other's rows.
pub async fn take_due(conn: &mut PgConnection, limit: i64) -> Result<Vec<DueTimer>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE timers SET state = 'fired', fired_at = now()
         WHERE id IN (SELECT id FROM timers
                      WHERE state = 'scheduled' AND fire_at <= now()
                      ORDER BY fire_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, kind, key, fire_at, fired_at, payload, correlation_id",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(DueTimer {
                id: row.try_get("id")?,
                kind: row.try_get("kind")?,
                key: row.try_get("key")?,
                fire_at: row.try_get("fire_at")?,
                fired_at: row.try_get("fired_at")?,
                data: row.try_get("payload")?,
                correlation_id: row.try_get("correlation_id")?,
            })
        })
        .collect()
}

/// Puts back a timer that `take_due` took in this transaction, due again at
/// `at`: its work failed, so it has not fired.
pub async fn retry_at(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE timers SET state = 'scheduled', fired_at = NULL, fire_at = $2
         WHERE id = $1 AND state = 'fired'",
    )
    .bind(id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// When the next scheduled timer is due, if any.
pub async fn next_due(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let row = sqlx::query("SELECT min(fire_at) FROM timers WHERE state = 'scheduled'")
        .fetch_one(conn)
        .await?;
    row.try_get(0)
}

/// Whether a cron job already has a pending occurrence.
pub async fn has_pending(
    conn: &mut PgConnection,
    kind: &str,
    key_prefix: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM timers
                        WHERE kind = $1 AND state = 'scheduled' AND starts_with(key, $2))",
    )
    .bind(kind)
    .bind(key_prefix)
    .fetch_one(conn)
    .await
}
