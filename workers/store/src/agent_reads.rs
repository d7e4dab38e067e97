//! The audit trail of contact-centre agents' reads (`agent_reads`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// One read about to be recorded.
#[derive(Debug, Clone)]
pub struct NewAgentRead<'a> {
    pub agent_id: &'a str,
    pub citizen_tax_code: &'a str,
    pub identified_by: &'a str,
    /// `ticket_search`, `ticket_detail`, `application_list` or `application_detail`.
    pub what: &'static str,
    pub ticket_ids: Vec<Uuid>,
    /// The office of each ticket when it was read (aligned with `ticket_ids`).
    pub offices: Vec<String>,
    pub query: Option<serde_json::Value>,
    /// The verification of the caller's PIN half, when the agent read on
    /// the simplified PIN.
    pub pin_verification_id: Option<Uuid>,
    pub correlation_id: &'a str,
}

pub async fn insert(conn: &mut PgConnection, read: &NewAgentRead<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agent_reads (agent_id, citizen_tax_code, identified_by, what, ticket_ids,
                                  offices, query, pin_verification_id, correlation_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(read.agent_id)
    .bind(read.citizen_tax_code)
    .bind(read.identified_by)
    .bind(read.what)
    .bind(&read.ticket_ids)
    .bind(&read.offices)
    .bind(&read.query)
    .bind(read.pin_verification_id)
    .bind(read.correlation_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A recorded read, as an office's operators see it: the tickets of other
/// offices the same read returned are not named.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentReadRecord {
    pub id: i64,
    pub agent_id: String,
    pub citizen_tax_code: String,
    pub identified_by: String,
    pub what: String,
    pub ticket_ids: Vec<Uuid>,
    pub query: Option<serde_json::Value>,
    pub correlation_id: String,
    pub read_at: DateTime<Utc>,
}

/// Reads that showed tickets of `office`, newest first; `limit + 1` rows are
/// read so the caller knows whether there is a next page.
pub async fn of_office(
    conn: &mut PgConnection,
    office: &str,
    citizen_tax_code: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<AgentReadRecord>, bool), sqlx::Error> {
    let mut rows = sqlx::query(
        "SELECT r.id, r.agent_id, r.citizen_tax_code, r.identified_by, r.what, r.query,
                r.correlation_id, r.read_at,
                ARRAY(SELECT u.id FROM unnest(r.ticket_ids, r.offices) AS u(id, office)
                       WHERE u.office = $1) AS office_tickets
         FROM agent_reads r
         WHERE $1 = ANY(r.offices) AND ($2::text IS NULL OR r.citizen_tax_code = $2)
         ORDER BY r.id DESC LIMIT $3 OFFSET $4",
    )
    .bind(office)
    .bind(citizen_tax_code)
    .bind(limit + 1)
    .bind(offset)
    .fetch_all(conn)
    .await?
    .iter()
    .map(|row| {
        Ok(AgentReadRecord {
            id: row.try_get("id")?,
            agent_id: row.try_get("agent_id")?,
            citizen_tax_code: row.try_get("citizen_tax_code")?,
            identified_by: row.try_get("identified_by")?,
            what: row.try_get("what")?,
            ticket_ids: row.try_get("office_tickets")?,
            query: row.try_get("query")?,
            correlation_id: row.try_get("correlation_id")?,
            read_at: row.try_get("read_at")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}
