//! Notifications, deliveries and their attempts; citizens' contacts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use sportello_contract::Contact;
use sportello_domain::notification::{KnownContacts, Medium, NextStep, Tab};

use crate::trace_context::TraceContext;

/// The citizen a notification is for, the contact given with the request,
/// and what its template may show.
#[derive(Debug, Clone)]
pub struct SubjectFacts {
    pub tax_code: String,
    pub contact: Contact,
    /// Template data, under the subject kind's name (`ticket`, `case`).
    pub data: Value,
}

/// A ticket as its notifications show it.
pub async fn ticket_facts(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<SubjectFacts>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT t.subject_tax_code, t.contact_email, t.contact_phone, t.subject, t.ambito,
                t.matricola, t.state::text AS state, t.outcome, t.opened_at, t.office_aoo,
                o.name AS office_name, r.signature
           FROM tickets t
           JOIN offices o ON o.aoo = t.office_aoo
           LEFT JOIN registrations r ON r.id = t.registration_id
          WHERE t.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(SubjectFacts {
        tax_code: row.try_get("subject_tax_code")?,
        contact: Contact {
            email: row.try_get("contact_email")?,
            phone: row.try_get("contact_phone")?,
        },
        data: json!({
            "id": id,
            "subject": row.try_get::<String, _>("subject")?,
            "ambito": row.try_get::<String, _>("ambito")?,
            "matricola": row.try_get::<Option<String>, _>("matricola")?,
            "state": row.try_get::<String, _>("state")?,
            "outcome": row.try_get::<Option<String>, _>("outcome")?,
            "opened_at": row.try_get::<DateTime<Utc>, _>("opened_at")?,
            "signature": row.try_get::<Option<String>, _>("signature")?,
            "office": {
                "aoo": row.try_get::<String, _>("office_aoo")?,
                "name": row.try_get::<String, _>("office_name")?,
            },
        }),
    }))
}

/// A case (*pratica*) as its notifications show it; a ticket's case also
/// brings the contact given on the request.
pub async fn case_facts(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<SubjectFacts>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT c.citizen_tax_code, c.subject, c.matricola, c.office_aoo, o.name AS office_name,
                t.contact_email, t.contact_phone
           FROM cases c
           LEFT JOIN offices o ON o.aoo = c.office_aoo
           LEFT JOIN tickets t ON t.id = c.id
          WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let aoo: String = row.try_get("office_aoo")?;
    let office_name: Option<String> = row.try_get("office_name")?;
    Ok(Some(SubjectFacts {
        tax_code: row.try_get("citizen_tax_code")?,
        contact: Contact {
            email: row.try_get("contact_email")?,
            phone: row.try_get("contact_phone")?,
        },
        data: json!({
            "id": id,
            "subject": row.try_get::<String, _>("subject")?,
            "matricola": row.try_get::<Option<String>, _>("matricola")?,
            "office": {"name": office_name.unwrap_or_else(|| format!("Struttura {aoo}")), "aoo": aoo},
        }),
    }))
}

pub async fn known_contacts(
    conn: &mut PgConnection,
    tax_code: &str,
) -> Result<KnownContacts, sqlx::Error> {
    let row = sqlx::query(
        "SELECT email, phone, email_enabled, sms_enabled FROM citizen_contacts WHERE tax_code = $1",
    )
    .bind(tax_code)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => KnownContacts::default(),
        Some(row) => KnownContacts {
            email: row.try_get("email")?,
            phone: row.try_get("phone")?,
            email_enabled: row.try_get("email_enabled")?,
            sms_enabled: row.try_get("sms_enabled")?,
        },
    })
}

pub async fn save_contacts(
    conn: &mut PgConnection,
    tax_code: &str,
    contacts: &KnownContacts,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO citizen_contacts (tax_code, email, phone, email_enabled, sms_enabled, updated_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (tax_code) DO UPDATE
            SET email = EXCLUDED.email, phone = EXCLUDED.phone,
                email_enabled = EXCLUDED.email_enabled, sms_enabled = EXCLUDED.sms_enabled,
                updated_at = now()",
    )
    .bind(tax_code)
    .bind(&contacts.email)
    .bind(&contacts.phone)
    .bind(contacts.email_enabled)
    .bind(contacts.sms_enabled)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct NewNotification {
    pub id: Uuid,
    pub event_id: Uuid,
    pub rule: String,
    pub tax_code: String,
    pub tab: Tab,
    pub title: String,
    pub body: String,
    pub subject_kind: Option<String>,
    pub subject_id: Option<Uuid>,
    pub due_at: Option<DateTime<Utc>>,
    pub link: Option<String>,
    pub link_on_due_day: bool,
    pub unreachable: Option<String>,
    /// Already superseded when planned: recorded, not sent.
    pub withdrawn: bool,
    pub office_aoo: Option<String>,
    pub correlation_id: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: Uuid,
    pub medium: Medium,
    pub address: String,
    pub subject: Option<String>,
    pub text_body: String,
    pub html_body: Option<String>,
}

/// Stores a notification and its deliveries, unless this (event, rule) was
/// planned before: then nothing is written and `false` comes back.
pub async fn insert(
    conn: &mut PgConnection,
    notification: &NewNotification,
    deliveries: &[NewDelivery],
) -> Result<bool, sqlx::Error> {
    // Its deliveries continue the trace of the planning: the sender that
    // takes them is another process, later.
    let trace = TraceContext::current();
    let inserted = sqlx::query(
        "INSERT INTO notifications (id, event_id, rule, tax_code, tab, title, body, subject_kind,
                subject_id, due_at, link, link_on_due_day, unreachable, correlation_id, created_at,
                withdrawn_at, office_aoo, traceparent, tracestate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                 CASE WHEN $16 THEN $15 END, $17, $18, $19)
         ON CONFLICT (event_id, rule) DO NOTHING",
    )
    .bind(notification.id)
    .bind(notification.event_id)
    .bind(&notification.rule)
    .bind(&notification.tax_code)
    .bind(notification.tab.as_str())
    .bind(&notification.title)
    .bind(&notification.body)
    .bind(&notification.subject_kind)
    .bind(notification.subject_id)
    .bind(notification.due_at)
    .bind(&notification.link)
    .bind(notification.link_on_due_day)
    .bind(&notification.unreachable)
    .bind(&notification.correlation_id)
    .bind(notification.created_at)
    .bind(notification.withdrawn)
    .bind(&notification.office_aoo)
    .bind(trace.as_ref().map(|t| t.traceparent.as_str()))
    .bind(trace.as_ref().map(|t| t.tracestate.as_str()))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted || deliveries.is_empty() {
        return Ok(inserted);
    }
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    let media: Vec<&str> = deliveries.iter().map(|d| d.medium.as_str()).collect();
    let addresses: Vec<&str> = deliveries.iter().map(|d| d.address.as_str()).collect();
    let subjects: Vec<Option<&str>> = deliveries.iter().map(|d| d.subject.as_deref()).collect();
    let texts: Vec<&str> = deliveries.iter().map(|d| d.text_body.as_str()).collect();
    let htmls: Vec<Option<&str>> = deliveries.iter().map(|d| d.html_body.as_deref()).collect();
    sqlx::query(
        "INSERT INTO deliveries (id, notification_id, medium, address, subject, text_body,
                html_body, state, due_at, created_at)
         SELECT id, $2, medium, address, subject, text_body, html_body, 'queued', $8, $8
           FROM UNNEST($1::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
             AS d(id, medium, address, subject, text_body, html_body)",
    )
    .bind(&ids)
    .bind(notification.id)
    .bind(&media)
    .bind(&addresses)
    .bind(&subjects)
    .bind(&texts)
    .bind(&htmls)
    .bind(notification.created_at)
    .execute(&mut *conn)
    .await?;
    // Wakes the senders when the transaction commits (PostgreSQL folds
    // repeated notifications of one channel into one).
    let channels: Vec<&str> = deliveries.iter().map(|d| wake_channel(d.medium)).collect();
    sqlx::query("SELECT pg_notify(channel, '') FROM UNNEST($1::text[]) AS c(channel)")
        .bind(&channels)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// The LISTEN channel a sender of `medium` waits on.
pub fn wake_channel(medium: Medium) -> &'static str {
    match medium {
        Medium::Email => "sportello_deliveries_email",
        Medium::Sms => "sportello_deliveries_sms",
    }
}

/// A delivery a sender has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: Uuid,
    pub address: String,
    pub subject: Option<String>,
    pub text_body: String,
    pub html_body: Option<String>,
    /// Counting this one.
    pub attempt: i32,
    pub correlation_id: String,
    /// The trace of the event that planned it, continued by its sending.
    pub trace: Option<TraceContext>,
}

/// Serialises, until the transaction ends, the planning of events about one
/// subject whose rules withdraw one another (a confirmation and a
/// cancellation planned at once).
pub async fn lock_subject(conn: &mut PgConnection, subject_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(subject_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Withdraws the notifications of `rules` about `subject_id`, except those
/// of the event `keep` (the one being planned).
pub async fn withdraw(
    conn: &mut PgConnection,
    subject_id: Uuid,
    rules: &[String],
    keep: Uuid,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE notifications SET withdrawn_at = now()
          WHERE subject_id = $1 AND rule = ANY($2) AND withdrawn_at IS NULL
            AND event_id <> $3",
    )
    .bind(subject_id)
    .bind(rules)
    .bind(keep)
    .execute(conn)
    .await?
    .rows_affected())
}

/// The office of the subject's latest notification of `kind` that names one.
pub async fn subject_office(
    conn: &mut PgConnection,
    kind: &str,
    subject_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT office_aoo FROM notifications
          WHERE subject_kind = $1 AND subject_id = $2 AND office_aoo IS NOT NULL
          ORDER BY created_at DESC LIMIT 1",
    )
    .bind(kind)
    .bind(subject_id)
    .fetch_optional(conn)
    .await
}

/// Whether `subject_id` has a notification from any of `rules`.
pub async fn has_notification(
    conn: &mut PgConnection,
    subject_id: Uuid,
    rules: &[String],
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM notifications WHERE subject_id = $1 AND rule = ANY($2))",
    )
    .bind(subject_id)
    .bind(rules)
    .fetch_one(conn)
    .await
}

/// Claims up to `limit` due deliveries of `medium` for `lease` (committed at
/// once, so other senders skip them).
///
/// A claim that expired (its lease is `NOTIFY_IN_DOUBT_SECONDS`) means its
/// sender stopped mid-attempt: whether the message left is in doubt. That attempt is
/// logged as lost and the delivery is queued again, or failed once it has had
/// `max_attempts`, so a delivery that kills its sender cannot loop forever.
/// The resend carries the same SMS `reference` (the provider drops the
/// duplicate) and the same email Message-ID; SMTP servers do not deduplicate,
/// so after such a crash an email may arrive twice.
pub async fn claim_due(
    conn: &mut PgConnection,
    medium: Medium,
    limit: i64,
    lease: Duration,
    max_attempts: u32,
) -> Result<Vec<ClaimedDelivery>, sqlx::Error> {
    Ok(claim_due_counting(conn, medium, limit, lease, max_attempts)
        .await?
        .deliveries)
}

/// What one claim found.
pub struct Claimed {
    pub deliveries: Vec<ClaimedDelivery>,
    /// Claims found expired (their attempts in doubt, now logged as lost).
    pub in_doubt: u64,
    /// Of those, the deliveries failed because that was their last attempt:
    /// their ends (a PIN half's seal, its centre line) are the caller's.
    pub failed_in_doubt: Vec<Uuid>,
}

/// `claim_due`, also counting the attempts found in doubt.
pub async fn claim_due_counting(
    conn: &mut PgConnection,
    medium: Medium,
    limit: i64,
    lease: Duration,
    max_attempts: u32,
) -> Result<Claimed, sqlx::Error> {
    let (in_doubt, failed_in_doubt): (i64, Vec<Uuid>) = sqlx::query_as(
        "WITH expired AS (
            UPDATE deliveries d
               SET state = CASE WHEN d.attempts >= $2 THEN 'failed' ELSE 'queued' END,
                   last_error = 'attempt ' || d.attempts || ' lost: its sender stopped before recording the outcome',
                   due_at = now()
             WHERE d.id IN (SELECT id FROM deliveries
                             WHERE medium = $1 AND state = 'sending' AND due_at <= now()
                             FOR UPDATE SKIP LOCKED)
         RETURNING d.id, d.attempts, d.state
         ), logged AS (
         INSERT INTO delivery_attempts (delivery_id, attempt, outcome, detail, at)
         SELECT id, attempts, CASE WHEN state = 'failed' THEN 'failed' ELSE 'retry' END,
                'lost: the sender stopped before recording the outcome', now()
           FROM expired
         ON CONFLICT (delivery_id, attempt) DO NOTHING
         )
         SELECT count(*),
                COALESCE(array_agg(id) FILTER (WHERE state = 'failed'), '{}'::uuid[])
           FROM expired",
    )
    .bind(medium.as_str())
    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query(
        "UPDATE deliveries d
            SET state = 'sending', attempts = d.attempts + 1,
                due_at = now() + make_interval(secs => $3)
           FROM notifications n
          WHERE n.id = d.notification_id
            AND d.id IN (SELECT id FROM deliveries
                          WHERE medium = $1 AND state = 'queued' AND due_at <= now()
                          ORDER BY due_at
                          LIMIT $2
                          FOR UPDATE SKIP LOCKED)
      RETURNING d.id, d.address, d.subject, d.text_body, d.html_body, d.attempts, n.correlation_id,
                n.traceparent, n.tracestate",
    )
    .bind(medium.as_str())
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(conn)
    .await?;
    let deliveries = rows
        .iter()
        .map(|row| {
            let traceparent: Option<String> = row.try_get("traceparent")?;
            let tracestate: Option<String> = row.try_get("tracestate")?;
            Ok(ClaimedDelivery {
                id: row.try_get("id")?,
                address: row.try_get("address")?,
                subject: row.try_get("subject")?,
                text_body: row.try_get("text_body")?,
                html_body: row.try_get("html_body")?,
                attempt: row.try_get("attempts")?,
                correlation_id: row.try_get("correlation_id")?,
                trace: traceparent.map(|traceparent| TraceContext {
                    traceparent,
                    tracestate: tracestate.unwrap_or_default(),
                }),
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Claimed {
        deliveries,
        in_doubt: u64::try_from(in_doubt).unwrap_or(0),
        failed_in_doubt,
    })
}

/// How one attempt ended: the next step and, for failures, the reason.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub delivery: ClaimedDelivery,
    pub step: NextStep,
    pub detail: Option<String>,
}

/// Records how attempts ended, each with its log row, in one statement. An
/// attempt whose claim expired and was taken over by another sender (its
/// attempt number moved on) changes nothing.
pub async fn record(conn: &mut PgConnection, results: &[AttemptResult]) -> Result<(), sqlx::Error> {
    if results.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = results.iter().map(|r| r.delivery.id).collect();
    let attempts: Vec<i32> = results.iter().map(|r| r.delivery.attempt).collect();
    let details: Vec<Option<&str>> = results.iter().map(|r| r.detail.as_deref()).collect();
    let mut states = Vec::new();
    let mut outcomes = Vec::new();
    let mut delays = Vec::new();
    let mut provider_ids: Vec<Option<&str>> = Vec::new();
    for result in results {
        let (state, outcome, delay, provider) = match &result.step {
            NextStep::Sent { provider_id } => ("sent", "sent", 0.0, provider_id.as_deref()),
            NextStep::RetryIn(delay) => ("queued", "retry", delay.as_secs_f64(), None),
            NextStep::Failed(_) => ("failed", "failed", 0.0, None),
        };
        states.push(state);
        outcomes.push(outcome);
        delays.push(delay);
        provider_ids.push(provider);
    }
    sqlx::query(
        "WITH outcome AS (
            SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[],
                                 $6::float8[], $7::text[])
                AS o(id, attempt, state, outcome, detail, delay, provider_id)
         ), logged AS (
            INSERT INTO delivery_attempts (delivery_id, attempt, outcome, detail, at)
            SELECT id, attempt, outcome, detail, now() FROM outcome
            ON CONFLICT (delivery_id, attempt) DO NOTHING
            RETURNING delivery_id, attempt
         )
         UPDATE deliveries d
            SET state = o.state,
                due_at = CASE WHEN o.state = 'queued' THEN now() + make_interval(secs => o.delay)
                              ELSE d.due_at END,
                last_error = COALESCE(o.detail, d.last_error),
                provider_id = COALESCE(o.provider_id, d.provider_id),
                sent_at = CASE WHEN o.state = 'sent' THEN now() ELSE d.sent_at END
           FROM outcome o
           JOIN logged l ON l.delivery_id = o.id AND l.attempt = o.attempt
          WHERE d.id = o.id AND d.attempts = o.attempt AND d.state = 'sending'",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(&states)
    .bind(&outcomes)
    .bind(&details)
    .bind(&delays)
    .bind(&provider_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// A notification as the citizen's centre lists it.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationRow {
    pub id: Uuid,
    pub tab: String,
    pub title: String,
    pub body: String,
    pub subject_kind: Option<String>,
    pub subject_id: Option<Uuid>,
    pub due_at: Option<DateTime<Utc>>,
    pub link: Option<String>,
    pub link_on_due_day: bool,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

fn notification_from_row(row: &sqlx::postgres::PgRow) -> Result<NotificationRow, sqlx::Error> {
    Ok(NotificationRow {
        id: row.try_get("id")?,
        tab: row.try_get("tab")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        subject_kind: row.try_get("subject_kind")?,
        subject_id: row.try_get("subject_id")?,
        due_at: row.try_get("due_at")?,
        link: row.try_get("link")?,
        link_on_due_day: row.try_get("link_on_due_day")?,
        created_at: row.try_get("created_at")?,
        read_at: row.try_get("read_at")?,
    })
}

/// A withdrawn notification is no longer a deadline.
const VISIBLE: &str = "(withdrawn_at IS NULL OR tab <> 'deadlines')";

const NOTIFICATION_COLUMNS: &str = "id, tab, title, body, subject_kind, subject_id, due_at, link,
     link_on_due_day, created_at, read_at";

/// One citizen's notifications in a tab, newest first (deadlines: soonest
/// first); `limit + 1` rows so the caller knows whether more follow.
pub async fn list(
    conn: &mut PgConnection,
    tax_code: &str,
    tab: Tab,
    unread_only: bool,
    offset: i64,
    limit: i64,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    let order = match tab {
        Tab::Deadlines | Tab::Appointments => "due_at ASC NULLS LAST, created_at DESC",
        Tab::Messages => "created_at DESC",
    };
    let rows = sqlx::query(&format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications
          WHERE tax_code = $1 AND tab = $2 AND (NOT $3 OR read_at IS NULL) AND {VISIBLE}
          ORDER BY {order}, id
          OFFSET $4 LIMIT $5"
    ))
    .bind(tax_code)
    .bind(tab.as_str())
    .bind(unread_only)
    .bind(offset)
    .bind(limit + 1)
    .fetch_all(conn)
    .await?;
    rows.iter().map(notification_from_row).collect()
}

/// Unread notifications per tab of one citizen.
pub async fn unread_counts(
    conn: &mut PgConnection,
    tax_code: &str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT tab, count(*) AS unread FROM notifications
          WHERE tax_code = $1 AND read_at IS NULL AND {VISIBLE} GROUP BY tab"
    ))
    .bind(tax_code)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("tab")?, row.try_get("unread")?)))
        .collect()
}

/// Whose notification this is (for the access check before a change).
pub async fn owner(conn: &mut PgConnection, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT tax_code FROM notifications WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Marks read (keeping the first reading time) or unread again.
pub async fn set_read(
    conn: &mut PgConnection,
    id: Uuid,
    read: bool,
) -> Result<Option<NotificationRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "UPDATE notifications
            SET read_at = CASE WHEN $2 THEN COALESCE(read_at, now()) ELSE NULL END
          WHERE id = $1
      RETURNING {NOTIFICATION_COLUMNS}"
    ))
    .bind(id)
    .bind(read)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(notification_from_row).transpose()
}

/// A notification of the operators' log, with each delivery and its attempts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoggedNotification {
    pub id: Uuid,
    pub rule: String,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub unreachable: Option<String>,
    pub deliveries: Vec<LoggedDelivery>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LoggedDelivery {
    pub id: Uuid,
    pub medium: String,
    pub address: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub log: Vec<Value>,
}

/// Every notification about `subject_id` (a ticket and its case share the
/// id), oldest first.
pub async fn log_for_subject(
    conn: &mut PgConnection,
    subject_id: Uuid,
) -> Result<Vec<LoggedNotification>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT n.id, n.rule, n.title, n.created_at, n.unreachable,
                COALESCE(jsonb_agg(jsonb_build_object(
                    'id', d.id, 'medium', d.medium, 'address', d.address, 'state', d.state,
                    'attempts', d.attempts, 'last_error', d.last_error,
                    'provider_id', d.provider_id, 'sent_at', d.sent_at,
                    'log', (SELECT COALESCE(jsonb_agg(jsonb_build_object(
                                'attempt', a.attempt, 'outcome', a.outcome, 'detail', a.detail,
                                'at', a.at) ORDER BY a.attempt), '[]'::jsonb)
                              FROM delivery_attempts a WHERE a.delivery_id = d.id))
                    ORDER BY d.medium) FILTER (WHERE d.id IS NOT NULL), '[]'::jsonb) AS deliveries
           FROM notifications n
           LEFT JOIN deliveries d ON d.notification_id = n.id
          WHERE n.subject_id = $1
          GROUP BY n.id
          ORDER BY n.created_at, n.id",
    )
    .bind(subject_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let deliveries: Value = row.try_get("deliveries")?;
            Ok(LoggedNotification {
                id: row.try_get("id")?,
                rule: row.try_get("rule")?,
                title: row.try_get("title")?,
                created_at: row.try_get("created_at")?,
                unreachable: row.try_get("unreachable")?,
                deliveries: serde_json::from_value(deliveries)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            })
        })
        .collect()
}
