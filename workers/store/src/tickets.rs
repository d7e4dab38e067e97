//! Tickets, their history and the routing reference data in PostgreSQL.
//! Every function works inside the caller's transaction or connection.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::ticket_state::{self, DbTicketState};
use sportello_domain::routing::{Ambito, RoutingRule, RoutingTable};
use sportello_domain::ticket::{Change, NewTicket, TicketState};

/// The routing reference data, as it is now: a rule changed in the tables
/// takes effect on the next batch.
pub async fn routing_table(conn: &mut PgConnection) -> Result<RoutingTable, sqlx::Error> {
    let rules =
        sqlx::query("SELECT province, municipality, postal_code, office_aoo FROM routing_rules")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| {
                Ok(RoutingRule {
                    province: row.try_get("province")?,
                    municipality: row.try_get("municipality")?,
                    postal_code: row.try_get("postal_code")?,
                    office_aoo: row.try_get("office_aoo")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
    let ambiti = sqlx::query("SELECT code, label, desk_kind FROM ambiti")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            Ok(Ambito {
                code: row.try_get("code")?,
                label: row.try_get("label")?,
                desk_kind: row.try_get("desk_kind")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let desks: Vec<(String, String)> = sqlx::query_as("SELECT office_aoo, kind FROM desks")
        .fetch_all(&mut *conn)
        .await?;
    let triage_office: String = sqlx::query_scalar("SELECT aoo FROM offices WHERE is_triage")
        .fetch_one(&mut *conn)
        .await?;
    Ok(RoutingTable {
        rules,
        ambiti,
        desks,
        triage_office,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Office {
    pub aoo: String,
    pub name: String,
    pub is_triage: bool,
}

pub async fn offices(conn: &mut PgConnection) -> Result<Vec<Office>, sqlx::Error> {
    sqlx::query("SELECT aoo, name, is_triage FROM offices ORDER BY is_triage DESC, name")
        .fetch_all(conn)
        .await?
        .iter()
        .map(|row| {
            Ok(Office {
                aoo: row.try_get("aoo")?,
                name: row.try_get("name")?,
                is_triage: row.try_get("is_triage")?,
            })
        })
        .collect()
}

/// For each (intermediary, matricola, gestione), the citizen whose active
/// delegation for that scheme covers that position, if any.
pub async fn delegating_citizens(
    conn: &mut PgConnection,
    positions: &[(String, String, String)],
) -> Result<Vec<(String, String, String, String)>, sqlx::Error> {
    if positions.is_empty() {
        return Ok(Vec::new());
    }
    let mut intermediaries = Vec::with_capacity(positions.len());
    let mut matricole = Vec::with_capacity(positions.len());
    let mut gestioni = Vec::with_capacity(positions.len());
    for (intermediary, matricola, gestione) in positions {
        intermediaries.push(intermediary.as_str());
        matricole.push(matricola.as_str());
        gestioni.push(gestione.as_str());
    }
    sqlx::query_as(
        "SELECT DISTINCT ON (d.intermediary_tax_code, d.matricola, d.gestione)
                d.intermediary_tax_code, d.matricola, d.gestione, d.citizen_tax_code
         FROM delegations d
         JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS p(intermediary, matricola, gestione)
           ON d.intermediary_tax_code = p.intermediary AND d.matricola = p.matricola
          AND d.gestione = p.gestione
         WHERE d.valid_from <= now() AND now() < d.valid_to
           AND (d.revoked_at IS NULL OR now() < d.revoked_at)
         ORDER BY d.intermediary_tax_code, d.matricola, d.gestione, d.valid_from DESC",
    )
    .bind(&intermediaries)
    .bind(&matricole)
    .bind(&gestioni)
    .fetch_all(conn)
    .await
}

/// Stores new tickets, each with the id of its registration, together with
/// their case (for attachments) and the `opened` history entry, in one
/// statement. The registration may be written later in the transaction: the
/// reference is checked at commit.
pub async fn insert(
    conn: &mut PgConnection,
    tickets: &[(&NewTicket, Uuid)],
) -> Result<(), sqlx::Error> {
    if tickets.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&NewTicket) -> Option<String>| -> Vec<Option<String>> {
        tickets.iter().map(|(t, _)| f(t)).collect()
    };
    let ids: Vec<Uuid> = tickets.iter().map(|(t, _)| t.id).collect();
    let requests: Vec<Uuid> = tickets.iter().map(|(t, _)| t.request_message_id).collect();
    let registrations: Vec<Uuid> = tickets.iter().map(|(_, r)| *r).collect();
    let opened: Vec<DateTime<Utc>> = tickets.iter().map(|(t, _)| t.opened_at).collect();
    let principals: Vec<serde_json::Value> = tickets
        .iter()
        .map(|(t, _)| serde_json::to_value(&t.submitted_by).unwrap_or_default())
        .collect();
    // One case per ticket, same id: the documents module keeps attachments by case.
    sqlx::query(
        "WITH new_tickets AS (
             INSERT INTO tickets (id, request_message_id, channel, ambito, matricola, subject,
                                  body, subject_tax_code, submitted_by, contact_email,
                                  contact_phone, correlation_id, opened_at, updated_at,
                                  office_aoo, desk_kind, routed_by, routing_note,
                                  registration_id, province, municipality, gestione)
             SELECT id, req, channel, ambito, matricola, subject, body, tax_code, principal,
                    email, phone, correlation, opened, opened, office, desk, routed_by, note,
                    registration, province, municipality, gestione
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::text[],
                         $11::text[], $12::text[], $13::timestamptz[], $14::text[],
                         $15::text[], $16::text[], $17::text[], $18::uuid[], $19::text[],
                         $20::text[], $21::text[])
                  AS t(id, req, channel, ambito, matricola, subject, body, tax_code, principal,
                       email, phone, correlation, opened, office, desk, routed_by, note,
                       registration, province, municipality, gestione)
             RETURNING id, subject_tax_code, matricola, gestione, office_aoo, subject, opened_at,
                       submitted_by, correlation_id
         ),
         new_cases AS (
             INSERT INTO cases (id, citizen_tax_code, matricola, gestione, office_aoo, subject,
                                opened_at)
             SELECT id, subject_tax_code, matricola, gestione, office_aoo, subject, opened_at
             FROM new_tickets
         )
         INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, visibility,
                                     to_office, actor, at, correlation_id)
         SELECT id, 'opened', NULL, 'aperta', 'public', office_aoo, submitted_by, opened_at,
                correlation_id
         FROM new_tickets",
    )
    .bind(&ids)
    .bind(&requests)
    .bind(text(|t| Some(t.channel.as_str().to_owned())))
    .bind(text(|t| Some(t.ambito.clone())))
    .bind(text(|t| t.matricola.clone()))
    .bind(text(|t| Some(t.subject.clone())))
    .bind(text(|t| Some(t.body.clone())))
    .bind(text(|t| Some(t.subject_tax_code.to_string())))
    .bind(&principals)
    .bind(text(|t| t.contact.email.clone()))
    .bind(text(|t| t.contact.phone.clone()))
    .bind(text(|t| Some(t.correlation_id.clone())))
    .bind(&opened)
    .bind(text(|t| Some(t.routing.office_aoo.clone())))
    .bind(text(|t| t.routing.desk_kind.clone()))
    .bind(text(|t| Some(t.routing.routed_by.as_str().to_owned())))
    .bind(text(|t| t.routing.note.clone()))
    .bind(&registrations)
    .bind(text(|t| {
        t.location.as_ref().map(|l| l.province.to_uppercase())
    }))
    .bind(text(|t| {
        t.location.as_ref().and_then(|l| l.municipality.clone())
    }))
    .bind(text(|t| Some(t.gestione.clone())))
    .execute(conn)
    .await?;
    Ok(())
}

/// A ticket's current facts, locked until the transaction ends so that two
/// operators' changes serialise.
#[derive(Debug, Clone)]
pub struct LockedTicket {
    pub state: TicketState,
    pub office_aoo: String,
    pub ambito: String,
    pub subject_tax_code: String,
    pub matricola: Option<String>,
    pub correlation_id: String,
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<LockedTicket>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT state, office_aoo, ambito, subject_tax_code, matricola, correlation_id
         FROM tickets WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(LockedTicket {
            state: row.try_get::<DbTicketState, _>("state")?.0,
            office_aoo: row.try_get("office_aoo")?,
            ambito: row.try_get("ambito")?,
            subject_tax_code: row.try_get("subject_tax_code")?,
            matricola: row.try_get("matricola")?,
            correlation_id: row.try_get("correlation_id")?,
        })
    })
    .transpose()
}

/// Keeps a message of the citizen's side on a locked ticket, in its state
/// `state`: a public history entry keyed by the message (`intake:<id>`), and
/// the ticket counts as updated. Returns false, changing nothing, when the
/// message was kept before.
#[allow(clippy::too_many_arguments)]
pub async fn add_citizen_message(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    message_id: Uuid,
    state: TicketState,
    actor: &serde_json::Value,
    text: &str,
    at: DateTime<Utc>,
    correlation_id: &str,
) -> Result<bool, sqlx::Error> {
    let kept = sqlx::query(
        "INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, visibility, comment,
                                     actor, at, correlation_id, action_key)
         VALUES ($1, 'citizen_message', $2, $2, 'public', $3, $4, $5, $6, 'intake:' || $7)
         ON CONFLICT (ticket_id, action_key) WHERE action_key IS NOT NULL DO NOTHING",
    )
    .bind(ticket_id)
    .bind(DbTicketState(state))
    .bind(text)
    .bind(actor)
    .bind(at)
    .bind(correlation_id)
    .bind(message_id.to_string())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if kept {
        sqlx::query("UPDATE tickets SET updated_at = $2 WHERE id = $1")
            .bind(ticket_id)
            .bind(at)
            .execute(conn)
            .await?;
    }
    Ok(kept)
}

/// Whether the action with this key was already applied to the ticket.
/// The action applied to the ticket with this key, if any: its kind and
/// who did it.
pub async fn action_applied(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    action_key: &str,
) -> Result<Option<(String, serde_json::Value)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, actor FROM ticket_history WHERE ticket_id = $1 AND action_key = $2",
    )
    .bind(ticket_id)
    .bind(action_key)
    .fetch_optional(conn)
    .await
}

/// Whether the office is the triage office; `None` when there is no such office.
pub async fn office_is_triage(
    conn: &mut PgConnection,
    aoo: &str,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT is_triage FROM offices WHERE aoo = $1")
        .bind(aoo)
        .fetch_optional(conn)
        .await
}

pub async fn office_exists(conn: &mut PgConnection, aoo: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM offices WHERE aoo = $1)")
        .bind(aoo)
        .fetch_one(conn)
        .await
}

/// Applies a decided change and records it in the history.
pub struct AppliedChange<'a> {
    pub ticket_id: Uuid,
    pub change: &'a Change,
    /// The desk at the new office, on reassignment.
    pub new_desk: Option<String>,
    pub actor: serde_json::Value,
    pub at: DateTime<Utc>,
    pub correlation_id: &'a str,
    pub action_key: Option<&'a str>,
}

pub async fn apply(conn: &mut PgConnection, applied: AppliedChange<'_>) -> Result<(), sqlx::Error> {
    let change = applied.change;
    let reassigned = change.to_office.is_some();
    sqlx::query(
        "UPDATE tickets SET
             state = $2,
             updated_at = $3,
             outcome = COALESCE($4, outcome),
             assigned_operator = CASE WHEN $5 THEN NULL ELSE COALESCE($6, assigned_operator) END,
             office_aoo = COALESCE($7, office_aoo),
             desk_kind = CASE WHEN $5 THEN $8 ELSE desk_kind END,
             routed_by = CASE WHEN $5 THEN 'reassigned' ELSE routed_by END
         WHERE id = $1",
    )
    .bind(applied.ticket_id)
    .bind(DbTicketState(change.to_state))
    .bind(applied.at)
    .bind(change.outcome.map(|o| o.as_str()))
    .bind(reassigned)
    .bind(&change.assigned_operator)
    .bind(&change.to_office)
    .bind(&applied.new_desk)
    .execute(&mut *conn)
    .await?;
    if let Some(office) = &change.to_office {
        sqlx::query("UPDATE cases SET office_aoo = $2 WHERE id = $1")
            .bind(applied.ticket_id)
            .bind(office)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, visibility, comment,
                                     outcome, from_office, to_office, actor, at, correlation_id,
                                     action_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(applied.ticket_id)
    .bind(change.kind.as_str())
    .bind(DbTicketState(change.from_state))
    .bind(DbTicketState(change.to_state))
    .bind(change.visibility.as_str())
    .bind(&change.comment)
    .bind(change.outcome.map(|o| o.as_str()))
    .bind(&change.from_office)
    .bind(&change.to_office)
    .bind(&applied.actor)
    .bind(applied.at)
    .bind(applied.correlation_id)
    .bind(applied.action_key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whose tickets a search may return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The citizen's own (by codice fiscale).
    Citizen(String),
    /// Those covered by the intermediary's active delegations.
    Intermediary(String),
    /// The office's (by AOO).
    Office(String),
}

/// History search filters; every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFilter {
    pub matricola: Option<String>,
    /// Words of the subject (Italian full-text search).
    pub text: Option<String>,
    pub state: Option<TicketState>,
    pub opened_from: Option<DateTime<Utc>>,
    pub opened_to: Option<DateTime<Utc>>,
    pub updated_from: Option<DateTime<Utc>>,
    pub updated_to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TicketSummary {
    pub id: Uuid,
    pub subject: String,
    pub ambito: String,
    pub matricola: Option<String>,
    pub state: TicketState,
    pub outcome: Option<String>,
    pub office_aoo: String,
    pub office_name: String,
    pub signature: Option<String>,
    pub assigned_operator: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SUMMARY_COLUMNS: &str = "t.id, t.subject, t.ambito, t.matricola, t.state, t.outcome,
     t.office_aoo, o.name AS office_name, r.signature, t.assigned_operator, t.opened_at, t.updated_at";

const SUMMARY_FROM: &str = " FROM tickets t
     JOIN offices o ON o.aoo = t.office_aoo
     LEFT JOIN registrations r ON r.id = t.registration_id";

fn summary_from_row(row: &sqlx::postgres::PgRow) -> Result<TicketSummary, sqlx::Error> {
    Ok(TicketSummary {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        ambito: row.try_get("ambito")?,
        matricola: row.try_get("matricola")?,
        state: row.try_get::<DbTicketState, _>("state")?.0,
        outcome: row.try_get("outcome")?,
        office_aoo: row.try_get("office_aoo")?,
        office_name: row.try_get("office_name")?,
        signature: row.try_get("signature")?,
        assigned_operator: row.try_get("assigned_operator")?,
        opened_at: row.try_get("opened_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Tickets in scope matching the filter, last updated first; `limit + 1`
/// rows are read so the caller knows whether there is a next page.
pub async fn search(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &TicketFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<TicketSummary>, bool), sqlx::Error> {
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new("SELECT ");
    query
        .push(SUMMARY_COLUMNS)
        .push(SUMMARY_FROM)
        .push(" WHERE ");
    match scope {
        Scope::Citizen(tax_code) => {
            query
                .push("t.subject_tax_code = ")
                .push_bind(tax_code.clone());
        }
        Scope::Office(aoo) => {
            query.push("t.office_aoo = ").push_bind(aoo.clone());
        }
        // Mirrors domain::access::Delegation::covers.
        Scope::Intermediary(tax_code) => {
            query
                .push(
                    "EXISTS (SELECT 1 FROM delegations d
                      WHERE d.citizen_tax_code = t.subject_tax_code
                        AND d.gestione = t.gestione
                        AND (d.matricola IS NULL OR d.matricola = t.matricola)
                        AND d.valid_from <= now() AND now() < d.valid_to
                        AND (d.revoked_at IS NULL OR now() < d.revoked_at)
                        AND d.intermediary_tax_code = ",
                )
                .push_bind(tax_code.clone())
                .push(")");
        }
    }
    if let Some(matricola) = &filter.matricola {
        query
            .push(" AND t.matricola = ")
            .push_bind(matricola.clone());
    }
    if let Some(text) = &filter.text {
        query
            .push(" AND t.subject_search @@ websearch_to_tsquery('italian', ")
            .push_bind(text.clone())
            .push(")");
    }
    if let Some(state) = filter.state {
        query
            .push(" AND t.state = ")
            .push_bind(DbTicketState(state));
    }
    for (column, op, value) in [
        ("t.opened_at", " >= ", filter.opened_from),
        ("t.opened_at", " < ", filter.opened_to),
        ("t.updated_at", " >= ", filter.updated_from),
        ("t.updated_at", " < ", filter.updated_to),
    ] {
        if let Some(value) = value {
            query.push(" AND ").push(column).push(op).push_bind(value);
        }
    }
    query
        .push(" ORDER BY t.updated_at DESC, t.id DESC LIMIT ")
        .push_bind(limit + 1)
        .push(" OFFSET ")
        .push_bind(offset);
    let mut rows = query
        .build()
        .fetch_all(conn)
        .await?
        .iter()
        .map(summary_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// Everything about one ticket, for its detail view.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TicketRecord {
    #[serde(flatten)]
    pub summary: TicketSummary,
    pub body: String,
    pub channel: String,
    pub subject_tax_code: String,
    pub desk_kind: Option<String>,
    pub desk_name: Option<String>,
    /// Office side only (internal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routed_by: Option<String>,
    pub routing_note: Option<String>,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
    /// Office side only (internal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Who submitted the request: decides who else sees its contact.
    #[serde(skip)]
    pub submitted_by: serde_json::Value,
}

pub async fn record(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<TicketRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, t.body, t.channel, t.subject_tax_code, t.desk_kind,
                d.name AS desk_name, t.routed_by, t.routing_note, t.contact_email,
                t.contact_phone, t.correlation_id, t.submitted_by
         {SUMMARY_FROM}
         LEFT JOIN desks d ON d.office_aoo = t.office_aoo AND d.kind = t.desk_kind
         WHERE t.id = $1"
    );
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.map(|row| {
        Ok(TicketRecord {
            summary: summary_from_row(&row)?,
            body: row.try_get("body")?,
            channel: row.try_get("channel")?,
            subject_tax_code: row.try_get("subject_tax_code")?,
            desk_kind: row.try_get("desk_kind")?,
            desk_name: row.try_get("desk_name")?,
            routed_by: row.try_get("routed_by")?,
            routing_note: row.try_get("routing_note")?,
            contact_email: row.try_get("contact_email")?,
            contact_phone: row.try_get("contact_phone")?,
            correlation_id: row.try_get("correlation_id")?,
            submitted_by: row.try_get("submitted_by")?,
        })
    })
    .transpose()
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub kind: String,
    pub from_state: Option<TicketState>,
    pub to_state: TicketState,
    pub visibility: String,
    pub comment: Option<String>,
    pub outcome: Option<String>,
    pub from_office: Option<String>,
    pub to_office: Option<String>,
    pub actor: serde_json::Value,
    pub at: DateTime<Utc>,
}

pub async fn history(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    include_internal: bool,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query(
        "SELECT kind, from_state, to_state, visibility, comment, outcome, from_office, to_office,
                actor, at
         FROM ticket_history WHERE ticket_id = $1 AND ($2 OR visibility = 'public')
         ORDER BY id",
    )
    .bind(ticket_id)
    .bind(include_internal)
    .fetch_all(conn)
    .await?
    .iter()
    .map(|row| {
        Ok(HistoryEntry {
            kind: row.try_get("kind")?,
            from_state: ticket_state::optional(row.try_get("from_state")?),
            to_state: row.try_get::<DbTicketState, _>("to_state")?.0,
            visibility: row.try_get("visibility")?,
            comment: row.try_get("comment")?,
            outcome: row.try_get("outcome")?,
            from_office: row.try_get("from_office")?,
            to_office: row.try_get("to_office")?,
            actor: row.try_get("actor")?,
            at: row.try_get("at")?,
        })
    })
    .collect()
}
