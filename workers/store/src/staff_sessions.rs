//! Staff sessions (`/ufficio`): opened by a sign-in with the identity
//! provider's token, ended by signing out or by their expiry.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::keys::{digest, new_key};
use sportello_contract::Principal;

/// Expired sessions are kept this long (who was signed in when), then purged.
const KEEP_EXPIRED_DAYS: i32 = 7;

/// Opens a session for `principal` until `expires_at` and returns its key,
/// the only copy of which goes to the browser.
pub async fn open(
    pool: &PgPool,
    principal: &Principal,
    expires_at: DateTime<Utc>,
) -> Result<String, sqlx::Error> {
    let key = new_key();
    let principal =
        serde_json::to_value(principal).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO staff_sessions (key_sha256, principal, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(digest(&key))
    .bind(principal)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(key)
}

/// Who holds the session `key`, if it is open and unexpired.
pub async fn principal(pool: &PgPool, key: &str) -> Result<Option<Principal>, sqlx::Error> {
    let principal: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT principal FROM staff_sessions
         WHERE key_sha256 = $1 AND ended_at IS NULL AND now() < expires_at",
    )
    .bind(digest(key))
    .fetch_optional(pool)
    .await?;
    principal
        .map(|p| serde_json::from_value(p).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// Forgets sessions expired more than `KEEP_EXPIRED_DAYS` ago (cron job
/// `retention`); returns how many.
pub async fn purge_expired(conn: &mut sqlx::PgConnection) -> Result<u64, sqlx::Error> {
    let purged = sqlx::query(
        "DELETE FROM staff_sessions WHERE expires_at < now() - make_interval(days => $1)",
    )
    .bind(KEEP_EXPIRED_DAYS)
    .execute(conn)
    .await?;
    Ok(purged.rows_affected())
}

/// Ends the session `key` (signing out); ending it again changes nothing.
pub async fn end(pool: &PgPool, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE staff_sessions SET ended_at = now() WHERE key_sha256 = $1 AND ended_at IS NULL",
    )
    .bind(digest(key))
    .execute(pool)
    .await?;
    Ok(())
}
