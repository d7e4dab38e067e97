//! Where the deliveries of a citizen's PIN halves stand (the rules
//! `pin-first-half`, `pin-recovery-first-half`, `pin-recovery-second-half`),
//! and the centre's line of a half that finally failed. Only states,
//! attempts and masked addresses: the body holds the marker, the seal is
//! elsewhere (`pins`) and gone once a delivery is over.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// The notification rules that carry a half.
pub const HALF_RULES: [&str; 3] = [
    "pin-first-half",
    "pin-recovery-first-half",
    "pin-recovery-second-half",
];

/// One half's delivery.
#[derive(Debug, Clone)]
pub struct HalfDeliveryRow {
    pub delivery_id: Uuid,
    pub rule: String,
    pub medium: String,
    pub address: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Queued: when the next attempt is due.
    pub due_at: DateTime<Utc>,
}

/// The half deliveries of `tax_code` since `since` (the current PIN's
/// request), newest first.
pub async fn of_citizen(
    conn: &mut PgConnection,
    tax_code: &str,
    since: DateTime<Utc>,
) -> Result<Vec<HalfDeliveryRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, n.rule, d.medium, d.address, d.state, d.attempts, d.last_error,
                d.created_at, d.sent_at, d.due_at
           FROM deliveries d JOIN notifications n ON n.id = d.notification_id
          WHERE n.tax_code = $1 AND n.rule = ANY($2) AND n.created_at >= $3
          ORDER BY d.created_at DESC",
    )
    .bind(tax_code)
    .bind(&HALF_RULES[..])
    .bind(since)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HalfDeliveryRow {
                delivery_id: r.try_get("id")?,
                rule: r.try_get("rule")?,
                medium: r.try_get("medium")?,
                address: r.try_get("address")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
                sent_at: r.try_get("sent_at")?,
                due_at: r.try_get("due_at")?,
            })
        })
        .collect()
}

/// The notifications of these deliveries that finally failed and carried a
/// half: their centre line says so, unread again. Returns the tax codes
/// touched (for their events), once each.
pub async fn mark_failed(
    conn: &mut PgConnection,
    delivery_ids: &[Uuid],
    title: &str,
    body: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE notifications n
            SET title = $3, body = $4, read_at = NULL
           FROM deliveries d
          WHERE d.notification_id = n.id AND d.id = ANY($1) AND d.state = 'failed'
            AND n.rule = ANY($2) AND n.title <> $3
      RETURNING n.tax_code",
    )
    .bind(delivery_ids)
    .bind(&HALF_RULES[..])
    .bind(title)
    .bind(body)
    .fetch_all(conn)
    .await
}

/// A second half's letter, as far as Sportello knows it: queued, or handed
/// to the postal service (what happens then is the post's).
#[derive(Debug, Clone)]
pub struct LetterRow {
    pub id: Uuid,
    pub queued_at: DateTime<Utc>,
    pub taken_at: Option<DateTime<Utc>>,
}

/// The letters of `tax_code` queued since `since` (the current PIN's).
pub async fn letters_of_citizen(
    conn: &mut PgConnection,
    tax_code: &str,
    since: DateTime<Utc>,
) -> Result<Vec<LetterRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, queued_at, taken_at FROM pin_postal_letters
          WHERE tax_code = $1 AND queued_at >= $2 ORDER BY queued_at DESC",
    )
    .bind(tax_code)
    .bind(since)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LetterRow {
                id: r.try_get("id")?,
                queued_at: r.try_get("queued_at")?,
                taken_at: r.try_get("taken_at")?,
            })
        })
        .collect()
}
