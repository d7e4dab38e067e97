//! Benefit applications: one row per citizen and benefit, beside the ticket
//! that is its back-office case (state and esito live on the ticket).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// An application about to be stored (its ticket is in the same transaction).
#[derive(Debug, Clone)]
pub struct NewApplication {
    pub id: Uuid,
    pub citizen_tax_code: String,
    pub benefit: String,
    pub category: String,
    pub ticket_id: Uuid,
    pub message_id: Uuid,
    pub fingerprint: String,
    pub applicant: serde_json::Value,
    pub fields: serde_json::Value,
    pub iban: String,
    pub holders: serde_json::Value,
    pub channel: String,
    pub submitted_by: serde_json::Value,
    pub credential: Option<String>,
    /// An agent's verification of the applicant's PIN half, when it
    /// submitted on the simplified PIN.
    pub pin_verification_id: Option<Uuid>,
    pub submitted_at: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
}

/// What an earlier application of a citizen for a benefit looks like.
#[derive(Debug, Clone)]
pub struct Existing {
    pub id: Uuid,
    pub citizen_tax_code: String,
    pub benefit: String,
    pub fingerprint: String,
    pub signature: String,
}

impl sqlx::FromRow<'_, sqlx::postgres::PgRow> for Existing {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            id: row.try_get("id")?,
            citizen_tax_code: row.try_get("citizen_tax_code")?,
            benefit: row.try_get("benefit")?,
            fingerprint: row.try_get("fingerprint")?,
            signature: row.try_get("signature")?,
        })
    }
}

/// The applications already made for these (citizen, benefit) pairs, with
/// their protocol signature.
pub async fn existing(
    conn: &mut sqlx::PgConnection,
    pairs: &[(String, String)],
) -> Result<Vec<Existing>, sqlx::Error> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let (citizens, benefits): (Vec<String>, Vec<String>) = pairs.iter().cloned().unzip();
    sqlx::query_as(
        "SELECT a.id, a.citizen_tax_code, a.benefit, a.fingerprint, r.signature
         FROM applications a
         JOIN UNNEST($1::text[], $2::text[]) AS p(citizen, benefit)
           ON a.citizen_tax_code = p.citizen AND a.benefit = p.benefit
         JOIN tickets t ON t.id = a.ticket_id
         JOIN registrations r ON r.id = t.registration_id",
    )
    .bind(&citizens)
    .bind(&benefits)
    .fetch_all(conn)
    .await
}

/// Which of these (intermediary, citizen) pairs hold an active delegation
/// for the person (not limited to one position).
pub async fn represented(
    conn: &mut sqlx::PgConnection,
    pairs: &[(String, String)],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let (intermediaries, citizens): (Vec<String>, Vec<String>) = pairs.iter().cloned().unzip();
    sqlx::query_as(
        "SELECT DISTINCT d.intermediary_tax_code, d.citizen_tax_code
         FROM delegations d
         JOIN UNNEST($1::text[], $2::text[]) AS p(intermediary, citizen)
           ON d.intermediary_tax_code = p.intermediary AND d.citizen_tax_code = p.citizen
         WHERE d.matricola IS NULL AND d.valid_from <= now() AND now() < d.valid_to
           AND (d.revoked_at IS NULL OR now() < d.revoked_at)",
    )
    .bind(&intermediaries)
    .bind(&citizens)
    .fetch_all(conn)
    .await
}

/// Stores the rows in one statement (a batch of the intake worker).
pub async fn insert(
    conn: &mut sqlx::PgConnection,
    rows: &[NewApplication],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut query: sqlx::QueryBuilder<sqlx::Postgres> = sqlx::QueryBuilder::new(
        "INSERT INTO applications (id, citizen_tax_code, benefit, category, ticket_id,
            message_id, fingerprint, applicant, fields, iban, holders, channel,
            submitted_by, credential, pin_verification_id, submitted_at, registered_at) ",
    );
    query.push_values(rows, |mut values, row| {
        values
            .push_bind(row.id)
            .push_bind(&row.citizen_tax_code)
            .push_bind(&row.benefit)
            .push_bind(&row.category)
            .push_bind(row.ticket_id)
            .push_bind(row.message_id)
            .push_bind(&row.fingerprint)
            .push_bind(&row.applicant)
            .push_bind(&row.fields)
            .push_bind(&row.iban)
            .push_bind(&row.holders)
            .push_bind(&row.channel)
            .push_bind(&row.submitted_by)
            .push_bind(&row.credential)
            .push_bind(row.pin_verification_id)
            .push_bind(row.submitted_at)
            .push_bind(row.registered_at);
    });
    query.build().execute(conn).await?;
    Ok(())
}

/// An application as its applicant and the office read it.
#[derive(Debug, Clone, Serialize)]
pub struct ApplicationView {
    pub id: Uuid,
    pub citizen_tax_code: String,
    pub benefit: String,
    pub category: String,
    pub ticket_id: Uuid,
    pub message_id: Uuid,
    pub applicant: serde_json::Value,
    pub fields: serde_json::Value,
    pub iban: String,
    pub holders: serde_json::Value,
    pub channel: String,
    pub credential: Option<String>,
    pub submitted_at: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
    /// *Segnatura* of its registration (the receipt's protocol number).
    pub signature: String,
    pub office_aoo: String,
    pub ticket_state: String,
    /// The ticket's esito once closed.
    pub outcome: Option<String>,
    pub outcome_at: Option<DateTime<Utc>>,
}

impl sqlx::FromRow<'_, sqlx::postgres::PgRow> for ApplicationView {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            id: row.try_get("id")?,
            citizen_tax_code: row.try_get("citizen_tax_code")?,
            benefit: row.try_get("benefit")?,
            category: row.try_get("category")?,
            ticket_id: row.try_get("ticket_id")?,
            message_id: row.try_get("message_id")?,
            applicant: row.try_get("applicant")?,
            fields: row.try_get("fields")?,
            iban: row.try_get("iban")?,
            holders: row.try_get("holders")?,
            channel: row.try_get("channel")?,
            credential: row.try_get("credential")?,
            submitted_at: row.try_get("submitted_at")?,
            registered_at: row.try_get("registered_at")?,
            signature: row.try_get("signature")?,
            office_aoo: row.try_get("office_aoo")?,
            ticket_state: row.try_get("ticket_state")?,
            outcome: row.try_get("outcome")?,
            outcome_at: row.try_get("outcome_at")?,
        })
    }
}

const VIEW: &str =
    "SELECT a.id, a.citizen_tax_code, a.benefit, a.category, a.ticket_id, a.message_id,
        a.applicant, a.fields, a.iban, a.holders, a.channel, a.credential, a.submitted_at,
        a.registered_at, r.signature, t.office_aoo, t.state::text AS ticket_state,
        t.outcome, CASE WHEN t.state = 'chiusa' THEN t.updated_at END AS outcome_at
     FROM applications a
     JOIN tickets t ON t.id = a.ticket_id
     JOIN registrations r ON r.id = t.registration_id";

pub async fn of_citizen(
    pool: &sqlx::PgPool,
    citizen: &str,
) -> Result<Vec<ApplicationView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{VIEW} WHERE a.citizen_tax_code = $1 ORDER BY a.submitted_at DESC LIMIT 200"
    ))
    .bind(citizen)
    .fetch_all(pool)
    .await
}

pub async fn by_id(pool: &sqlx::PgPool, id: Uuid) -> Result<Option<ApplicationView>, sqlx::Error> {
    sqlx::query_as(&format!("{VIEW} WHERE a.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn by_message(
    pool: &sqlx::PgPool,
    message_id: Uuid,
) -> Result<Option<ApplicationView>, sqlx::Error> {
    sqlx::query_as(&format!("{VIEW} WHERE a.message_id = $1"))
        .bind(message_id)
        .fetch_optional(pool)
        .await
}
