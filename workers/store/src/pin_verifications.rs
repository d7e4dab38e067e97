//! Agents' verifications of the half a caller read out: one row per match,
//! never the half (`pin_agent_verifications`, append-only).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// A verification as kept.
#[derive(Debug, Clone)]
pub struct VerificationRow {
    pub id: Uuid,
    pub agent_id: String,
    pub tax_code: String,
    pub verified_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(
    conn: &mut PgConnection,
    row: &VerificationRow,
    correlation_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pin_agent_verifications (id, agent_id, tax_code, verified_at, expires_at,
                correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(row.id)
    .bind(&row.agent_id)
    .bind(&row.tax_code)
    .bind(row.verified_at)
    .bind(row.expires_at)
    .bind(correlation_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<VerificationRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, agent_id, tax_code, verified_at, expires_at
           FROM pin_agent_verifications WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(VerificationRow {
            id: r.try_get("id")?,
            agent_id: r.try_get("agent_id")?,
            tax_code: r.try_get("tax_code")?,
            verified_at: r.try_get("verified_at")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}
