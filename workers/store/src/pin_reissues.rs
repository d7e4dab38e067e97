//! New PINs issued because a half never arrived (`pin_reissues`): one per
//! failed half, append-only, with who asked. No secret and no address.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// One reissue.
#[derive(Debug, Clone)]
pub struct ReissueRow {
    pub id: Uuid,
    pub tax_code: String,
    pub replaces_delivery_id: Uuid,
    /// `contact_center_agent` or `operator`.
    pub requested_by_kind: String,
    pub requested_by: String,
    pub office_aoo: Option<String>,
    /// `sms`, `email` or `pec`.
    pub first_half_to: String,
    pub first_half_delivery_id: Uuid,
    pub letter_id: Uuid,
    pub correlation_id: String,
    pub reissued_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, tax_code, replaces_delivery_id, requested_by_kind, requested_by,
     office_aoo, first_half_to, first_half_delivery_id, letter_id, correlation_id, reissued_at";

fn from_row(r: &sqlx::postgres::PgRow) -> Result<ReissueRow, sqlx::Error> {
    Ok(ReissueRow {
        id: r.try_get("id")?,
        tax_code: r.try_get("tax_code")?,
        replaces_delivery_id: r.try_get("replaces_delivery_id")?,
        requested_by_kind: r.try_get("requested_by_kind")?,
        requested_by: r.try_get("requested_by")?,
        office_aoo: r.try_get("office_aoo")?,
        first_half_to: r.try_get("first_half_to")?,
        first_half_delivery_id: r.try_get("first_half_delivery_id")?,
        letter_id: r.try_get("letter_id")?,
        correlation_id: r.try_get("correlation_id")?,
        reissued_at: r.try_get("reissued_at")?,
    })
}

pub async fn insert(conn: &mut PgConnection, row: &ReissueRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pin_reissues (id, tax_code, replaces_delivery_id, requested_by_kind,
                requested_by, office_aoo, first_half_to, first_half_delivery_id, letter_id,
                correlation_id, reissued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(row.id)
    .bind(&row.tax_code)
    .bind(row.replaces_delivery_id)
    .bind(&row.requested_by_kind)
    .bind(&row.requested_by)
    .bind(&row.office_aoo)
    .bind(&row.first_half_to)
    .bind(row.first_half_delivery_id)
    .bind(row.letter_id)
    .bind(&row.correlation_id)
    .bind(row.reissued_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The reissue that replaced this half, if one did.
pub async fn replacing(
    conn: &mut PgConnection,
    delivery_id: Uuid,
) -> Result<Option<ReissueRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM pin_reissues WHERE replaces_delivery_id = $1"
    ))
    .bind(delivery_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// A citizen's reissues, newest first.
pub async fn of_citizen(
    conn: &mut PgConnection,
    tax_code: &str,
) -> Result<Vec<ReissueRow>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM pin_reissues WHERE tax_code = $1 ORDER BY reissued_at DESC"
    ))
    .bind(tax_code)
    .fetch_all(conn)
    .await?;
    rows.iter().map(from_row).collect()
}
