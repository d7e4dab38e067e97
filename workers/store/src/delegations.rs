//! Delegations (*deleghe*) and the schemes (*gestioni*) they are for.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use sportello_domain::access::Delegation;

/// Inserts a delegation (tests and the grant operation); returns its id.
pub async fn insert_delegation(
    conn: &mut PgConnection,
    intermediary_tax_code: &str,
    delegation: &Delegation,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    insert(conn, id, intermediary_tax_code, delegation, None, None).await?;
    Ok(id)
}

/// Inserts a delegation granted by `granted_by` with message `message_id`.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    intermediary_tax_code: &str,
    delegation: &Delegation,
    granted_by: Option<&serde_json::Value>,
    message_id: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO delegations (id, intermediary_tax_code, citizen_tax_code, gestione, matricola,
                                  valid_from, valid_to, revoked_at, granted_by, granted_by_message)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(intermediary_tax_code)
    .bind(&delegation.citizen_tax_code)
    .bind(&delegation.gestione)
    .bind(&delegation.matricola)
    .bind(delegation.valid_from)
    .bind(delegation.valid_to)
    .bind(delegation.revoked_at)
    .bind(granted_by)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(())
}

fn delegation_from_row(row: &sqlx::postgres::PgRow) -> Result<Delegation, sqlx::Error> {
    Ok(Delegation {
        citizen_tax_code: row.try_get("citizen_tax_code")?,
        gestione: row.try_get("gestione")?,
        matricola: row.try_get("matricola")?,
        valid_from: row.try_get("valid_from")?,
        valid_to: row.try_get("valid_to")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// The intermediary's delegations from this citizen, active or not (the
/// domain decides which count).
pub async fn delegations_of(
    conn: &mut PgConnection,
    intermediary_tax_code: &str,
    citizen_tax_code: &str,
) -> Result<Vec<Delegation>, sqlx::Error> {
    sqlx::query(
        "SELECT citizen_tax_code, gestione, matricola, valid_from, valid_to, revoked_at
         FROM delegations WHERE intermediary_tax_code = $1 AND citizen_tax_code = $2",
    )
    .bind(intermediary_tax_code)
    .bind(citizen_tax_code)
    .fetch_all(conn)
    .await?
    .iter()
    .map(delegation_from_row)
    .collect()
}

/// Serialises grants and revocations between one citizen and one
/// intermediary until the transaction ends (two grants of the same scope
/// applied side by side would both insert).
pub async fn lock_pair(
    conn: &mut PgConnection,
    citizen_tax_code: &str,
    intermediary_tax_code: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!(
            "delegation:{citizen_tax_code}:{intermediary_tax_code}"
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The delegations from the citizen to the intermediary for one scheme,
/// with their ids, oldest first.
pub async fn of_scheme(
    conn: &mut PgConnection,
    citizen_tax_code: &str,
    intermediary_tax_code: &str,
    gestione: &str,
) -> Result<Vec<(Uuid, Delegation)>, sqlx::Error> {
    sqlx::query(
        "SELECT id, citizen_tax_code, gestione, matricola, valid_from, valid_to, revoked_at
         FROM delegations
         WHERE citizen_tax_code = $1 AND intermediary_tax_code = $2 AND gestione = $3
         ORDER BY valid_from, id",
    )
    .bind(citizen_tax_code)
    .bind(intermediary_tax_code)
    .bind(gestione)
    .fetch_all(conn)
    .await?
    .iter()
    .map(|row| Ok((row.try_get("id")?, delegation_from_row(row)?)))
    .collect()
}

/// A renewed delegation takes the new grant's validity.
pub async fn renew(
    conn: &mut PgConnection,
    id: Uuid,
    valid_from: DateTime<Utc>,
    valid_to: DateTime<Utc>,
    granted_by: &serde_json::Value,
    message_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE delegations SET valid_from = $2, valid_to = $3, granted_by = $4,
                                granted_by_message = $5
         WHERE id = $1",
    )
    .bind(id)
    .bind(valid_from)
    .bind(valid_to)
    .bind(granted_by)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn revoke(
    conn: &mut PgConnection,
    ids: &[Uuid],
    at: DateTime<Utc>,
    revoked_by: &serde_json::Value,
    message_id: Uuid,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE delegations SET revoked_at = $2, revoked_by = $3, revoked_by_message = $4,
                                revocation_reason = $5
         WHERE id = ANY($1) AND revoked_at IS NULL",
    )
    .bind(ids)
    .bind(at)
    .bind(revoked_by)
    .bind(message_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the scheme is open to delegations; `None`: no such scheme.
pub async fn gestione_open(
    conn: &mut PgConnection,
    code: &str,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT open_to_delegations FROM gestioni WHERE code = $1")
        .bind(code)
        .fetch_optional(conn)
        .await
}

/// The codes of every scheme.
pub async fn gestioni(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT code FROM gestioni ORDER BY code")
        .fetch_all(conn)
        .await
}
