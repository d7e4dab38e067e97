//! `dead_letters`: the dead letters collected from the broker, for the
//! integrator's tools (list, show, replay once, discard).

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

/// A dead letter as collected.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: i64,
    pub message_id: String,
    pub message_type: String,
    pub correlation_id: String,
    pub exchange: String,
    pub routing_key: String,
    pub queue: String,
    pub reason: String,
    pub failed_at: Option<DateTime<Utc>>,
    pub collected_at: DateTime<Utc>,
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub replayed_at: Option<DateTime<Utc>>,
    pub discarded_at: Option<DateTime<Utc>>,
}

impl sqlx::FromRow<'_, sqlx::postgres::PgRow> for DeadLetter {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            id: row.try_get("id")?,
            message_id: row.try_get("message_id")?,
            message_type: row.try_get("message_type")?,
            correlation_id: row.try_get("correlation_id")?,
            exchange: row.try_get("exchange")?,
            routing_key: row.try_get("routing_key")?,
            queue: row.try_get("queue")?,
            reason: row.try_get("reason")?,
            failed_at: row.try_get("failed_at")?,
            collected_at: row.try_get("collected_at")?,
            headers: row.try_get("headers")?,
            body: row.try_get("body")?,
            replayed_at: row.try_get("replayed_at")?,
            discarded_at: row.try_get("discarded_at")?,
        })
    }
}

/// A dead letter to keep (before it has an id).
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    pub message_id: String,
    pub message_type: String,
    pub correlation_id: String,
    pub exchange: String,
    pub routing_key: String,
    pub queue: String,
    pub reason: String,
    pub failed_at: Option<DateTime<Utc>>,
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
    pub fingerprint: String,
}

/// Keeps `letter` unless a letter with its fingerprint is kept already.
pub async fn keep(pool: &PgPool, letter: &NewDeadLetter) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO dead_letters (message_id, message_type, correlation_id, exchange, \
         routing_key, queue, reason, failed_at, headers, body, fingerprint) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (fingerprint) DO NOTHING",
    )
    .bind(&letter.message_id)
    .bind(&letter.message_type)
    .bind(&letter.correlation_id)
    .bind(&letter.exchange)
    .bind(&letter.routing_key)
    .bind(&letter.queue)
    .bind(&letter.reason)
    .bind(letter.failed_at)
    .bind(&letter.headers)
    .bind(&letter.body)
    .bind(&letter.fingerprint)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// One page of dead letters in collection order, and how many there are:
/// the open ones (neither replayed nor discarded), or all with `all`.
pub async fn page(
    pool: &PgPool,
    all: bool,
    offset: i64,
    limit: i64,
) -> Result<(Vec<DeadLetter>, i64), sqlx::Error> {
    let filter = if all {
        "TRUE"
    } else {
        "replayed_at IS NULL AND discarded_at IS NULL"
    };
    let total: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM dead_letters WHERE {filter}"))
            .fetch_one(pool)
            .await?;
    let letters = sqlx::query_as::<_, DeadLetter>(&format!(
        "SELECT * FROM dead_letters WHERE {filter} ORDER BY id OFFSET $1 LIMIT $2"
    ))
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok((letters, total))
}

pub async fn find(pool: &PgPool, id: i64) -> Result<Option<DeadLetter>, sqlx::Error> {
    sqlx::query_as::<_, DeadLetter>("SELECT * FROM dead_letters WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The letter, locked for replaying or discarding in `tx`.
pub async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
) -> Result<Option<DeadLetter>, sqlx::Error> {
    sqlx::query_as::<_, DeadLetter>("SELECT * FROM dead_letters WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

pub async fn mark_replayed(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dead_letters SET replayed_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn mark_discarded(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE dead_letters SET discarded_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
