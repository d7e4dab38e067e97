//! Appointments in PostgreSQL: calendars and closures (reference data), the
//! slot capacity rows whose CHECK makes a double booking impossible, and the
//! appointments themselves.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use sportello_domain::appointment::{
    calendar, AppointmentState, CalendarRule, CancelledBy, Closure, Conversation, Mode, Seat,
    HOLD_TIMER_KIND,
};

/// One slot of one desk and mode: the key of its capacity row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotKey {
    pub office_aoo: String,
    pub desk_kind: String,
    pub mode: Mode,
    pub starts_at: DateTime<Utc>,
}

/// The names of an office and one of its desks, as citizens read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskNames {
    pub office_name: String,
    pub desk_name: String,
    /// Every topic the desk handles is a Cassetto topic (`ambiti.cassetto`):
    /// a booking there comes from its conversation.
    pub cassetto_topics_only: bool,
}

/// `None` when the office has no such desk; `office_exists` tells which.
pub async fn desk(
    conn: &mut PgConnection,
    office_aoo: &str,
    desk_kind: &str,
) -> Result<Option<DeskNames>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT o.name AS office_name, d.name AS desk_name,
                coalesce((SELECT bool_and(a.cassetto) FROM ambiti a WHERE a.desk_kind = d.kind),
                         false) AS cassetto_topics_only
         FROM desks d JOIN offices o ON o.aoo = d.office_aoo
         WHERE d.office_aoo = $1 AND d.kind = $2",
    )
    .bind(office_aoo)
    .bind(desk_kind)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(DeskNames {
            office_name: row.try_get("office_name")?,
            desk_name: row.try_get("desk_name")?,
            cassetto_topics_only: row.try_get("cassetto_topics_only")?,
        })
    })
    .transpose()
}

/// The calendar rows of one desk and mode (all validity periods).
pub async fn calendar(
    conn: &mut PgConnection,
    office_aoo: &str,
    desk_kind: &str,
    mode: Mode,
) -> Result<Vec<CalendarRule>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT weekday, opens, closes, slot_minutes, capacity, valid_from, valid_to
         FROM calendars WHERE office_aoo = $1 AND desk_kind = $2 AND mode = $3
         ORDER BY id",
    )
    .bind(office_aoo)
    .bind(desk_kind)
    .bind(mode.as_str())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let small = |name: &str| -> Result<u32, sqlx::Error> {
                let value: i16 = row.try_get(name)?;
                u32::try_from(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
            };
            Ok(CalendarRule {
                weekday: small("weekday")?,
                opens: row.try_get("opens")?,
                closes: row.try_get("closes")?,
                slot_minutes: small("slot_minutes")?,
                capacity: small("capacity")?,
                valid_from: row.try_get("valid_from")?,
                valid_to: row.try_get("valid_to")?,
            })
        })
        .collect()
}

/// The office's own closures between two local dates (both included).
pub async fn closures(
    conn: &mut PgConnection,
    office_aoo: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Closure>, sqlx::Error> {
    let rows: Vec<(NaiveDate, String)> = sqlx::query_as(
        "SELECT day, reason FROM office_closures
         WHERE office_aoo = $1 AND day BETWEEN $2 AND $3 ORDER BY day",
    )
    .bind(office_aoo)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(day, reason)| Closure { day, reason })
        .collect())
}

/// Seats taken per booked slot in `[from, to)`, not counting holds that
/// lapsed and wait for their timer: `(starts_at, capacity, taken)`.
pub async fn taken_seats(
    conn: &mut PgConnection,
    office_aoo: &str,
    desk_kind: &str,
    mode: Mode,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, i32, i32)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.starts_at, s.capacity::int, (s.taken - coalesce(l.lapsed, 0))::int
         FROM appointment_slots s
         LEFT JOIN (SELECT starts_at, count(*) AS lapsed FROM appointments
                    WHERE office_aoo = $1 AND desk_kind = $2 AND mode = $3
                      AND state = 'held' AND hold_expires_at <= now()
                      AND starts_at >= $4 AND starts_at < $5
                    GROUP BY starts_at) l USING (starts_at)
         WHERE s.office_aoo = $1 AND s.desk_kind = $2 AND s.mode = $3
           AND s.starts_at >= $4 AND s.starts_at < $5",
    )
    .bind(office_aoo)
    .bind(desk_kind)
    .bind(mode.as_str())
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// Takes one seat of the slot, creating its row with `capacity` at the first
/// booking. Concurrent callers wait on the row's lock; `false` when the slot
/// is full. The table's CHECK refuses `taken > capacity` whatever the caller.
pub async fn take_seat(
    conn: &mut PgConnection,
    slot: &SlotKey,
    capacity: u32,
) -> Result<bool, sqlx::Error> {
    let capacity = i16::try_from(capacity).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let taken: Option<i16> = sqlx::query_scalar(
        "INSERT INTO appointment_slots AS s (office_aoo, desk_kind, mode, starts_at, capacity, taken)
         VALUES ($1, $2, $3, $4, $5, 1)
         ON CONFLICT (office_aoo, desk_kind, mode, starts_at)
             DO UPDATE SET taken = s.taken + 1 WHERE s.taken < s.capacity
         RETURNING taken",
    )
    .bind(&slot.office_aoo)
    .bind(&slot.desk_kind)
    .bind(slot.mode.as_str())
    .bind(slot.starts_at)
    .bind(capacity)
    .fetch_optional(conn)
    .await?;
    Ok(taken.is_some())
}

/// Gives one seat back (a cancellation, an expired hold).
pub async fn release_seat(conn: &mut PgConnection, slot: &SlotKey) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE appointment_slots SET taken = taken - 1
         WHERE office_aoo = $1 AND desk_kind = $2 AND mode = $3 AND starts_at = $4",
    )
    .bind(&slot.office_aoo)
    .bind(&slot.desk_kind)
    .bind(slot.mode.as_str())
    .bind(slot.starts_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Expires the slot's holds that lapsed before their timer fired and gives
/// their seats back; returns how many. Their timers later find them expired.
/// Holds a firing timer has locked are skipped (it releases them): the
/// caller holds the slot's row, which the timer needs next.
pub async fn expire_lapsed_holds(
    conn: &mut PgConnection,
    slot: &SlotKey,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "WITH lapsed AS (
             UPDATE appointments SET state = 'expired', updated_at = now()
             WHERE id IN (SELECT id FROM appointments
                          WHERE office_aoo = $1 AND desk_kind = $2 AND mode = $3
                            AND starts_at = $4 AND state = 'held' AND hold_expires_at <= now()
                          FOR UPDATE SKIP LOCKED)
             RETURNING id),
         released AS (
             UPDATE appointment_slots SET taken = taken - (SELECT count(*) FROM lapsed)
             WHERE office_aoo = $1 AND desk_kind = $2 AND mode = $3 AND starts_at = $4
               AND EXISTS (SELECT 1 FROM lapsed))
         SELECT count(*) FROM lapsed",
    )
    .bind(&slot.office_aoo)
    .bind(&slot.desk_kind)
    .bind(slot.mode.as_str())
    .bind(slot.starts_at)
    .fetch_one(conn)
    .await
}

/// A new hold (*Prenota*), written after its seat was taken.
#[derive(Debug, Clone)]
pub struct NewAppointment<'a> {
    pub id: Uuid,
    pub subject_tax_code: &'a str,
    pub matricola: Option<&'a str>,
    pub gestione: &'a str,
    pub booked_by: serde_json::Value,
    pub booked_by_key: String,
    pub channel: &'a str,
    pub slot: &'a SlotKey,
    pub ends_at: DateTime<Utc>,
    pub hold_expires_at: DateTime<Utc>,
    pub phone: &'a str,
    pub notes: &'a str,
    pub citizen_name: Option<&'a str>,
    pub ticket_id: Option<Uuid>,
    pub idempotency_key: Option<&'a str>,
    pub request_sha256: &'a str,
    pub correlation_id: &'a str,
    pub at: DateTime<Utc>,
}

/// Inserts the hold and returns it as `get` would (one round trip). A key
/// already used by the same actor fails with the unique violation
/// `appointments_idempotency` (see `is_key_conflict`).
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewAppointment<'_>,
) -> Result<AppointmentRecord, sqlx::Error> {
    let sql = format!(
        "WITH inserted AS (
             INSERT INTO appointments (id, subject_tax_code, matricola, booked_by, booked_by_key,
                 channel, office_aoo, desk_kind, mode, starts_at, ends_at, state, hold_expires_at,
                 phone, notes, ticket_id, idempotency_key, request_sha256, correlation_id,
                 created_at, updated_at, citizen_name, gestione)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'held', $12, $13, $14, $15,
                     $16, $17, $18, $19, $19, $20, $21)
             RETURNING *)
         SELECT {}",
        COLUMNS.replace("FROM appointments a", "FROM inserted a")
    );
    let row = sqlx::query(&sql)
        .bind(new.id)
        .bind(new.subject_tax_code)
        .bind(new.matricola)
        .bind(&new.booked_by)
        .bind(&new.booked_by_key)
        .bind(new.channel)
        .bind(&new.slot.office_aoo)
        .bind(&new.slot.desk_kind)
        .bind(new.slot.mode.as_str())
        .bind(new.slot.starts_at)
        .bind(new.ends_at)
        .bind(new.hold_expires_at)
        .bind(new.phone)
        .bind(new.notes)
        .bind(new.ticket_id)
        .bind(new.idempotency_key)
        .bind(new.request_sha256)
        .bind(new.correlation_id)
        .bind(new.at)
        .bind(new.citizen_name)
        .bind(new.gestione)
        .fetch_one(conn)
        .await?;
    decode(&row)
}

/// Whether the scheme is open to booking; `None` when there is no such scheme.
pub async fn gestione_bookable(
    conn: &mut PgConnection,
    gestione: &str,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT open_to_booking FROM gestioni WHERE code = $1")
        .bind(gestione)
        .fetch_optional(conn)
        .await
}

/// Serialises, until the transaction ends, the holds for one citizen, so
/// that two at once cannot both pass the booking limits. Taken before any
/// slot row (a batch takes all of its citizens first, in order).
pub async fn lock_citizen(conn: &mut PgConnection, tax_code: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("appointments:{tax_code}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// The citizen's live appointments at `now` (held and not lapsed, or
/// confirmed; not yet begun), as the booking limits count them.
pub async fn live_seats(
    conn: &mut PgConnection,
    tax_code: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Seat>, sqlx::Error> {
    let rows: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT office_aoo, desk_kind, starts_at FROM appointments
         WHERE subject_tax_code = $1 AND starts_at > $2
           AND (state = 'confirmed' OR (state = 'held' AND hold_expires_at > $2))",
    )
    .bind(tax_code)
    .bind(now)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(office_aoo, desk_kind, starts_at)| Seat {
            office_aoo,
            desk_kind,
            day: calendar::rome_date(starts_at),
        })
        .collect())
}

/// Whether `error` is a second hold under an idempotency key already used.
pub fn is_key_conflict(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.constraint() == Some("appointments_idempotency"))
}

/// An appointment with its office's and desk's names.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AppointmentRecord {
    pub id: Uuid,
    pub subject_tax_code: String,
    /// The citizen's name as the booking declared it, when it did.
    pub citizen_name: Option<String>,
    pub matricola: Option<String>,
    /// The scheme (gestione) of the position it is about.
    pub gestione: String,
    pub channel: String,
    pub office_aoo: String,
    pub office_name: String,
    /// Where the office receives (in-person appointments), when known.
    pub office_address: Option<String>,
    pub desk_kind: String,
    pub desk_name: String,
    pub mode: Mode,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub state: AppointmentState,
    pub hold_expires_at: DateTime<Utc>,
    pub phone: String,
    pub notes: String,
    pub ticket_id: Option<Uuid>,
    pub cancelled_by: Option<String>,
    pub cancel_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Who booked it (a principal's kind, and for staff the whole principal).
    pub booked_by: serde_json::Value,
    #[serde(skip)]
    pub booked_by_key: String,
    #[serde(skip)]
    pub request_sha256: String,
}

impl AppointmentRecord {
    /// Where the citizen goes: the office's address, for an in-person
    /// appointment at an office that has one.
    pub fn address_to_go(&self) -> Option<String> {
        self.office_address
            .clone()
            .filter(|_| self.mode == Mode::InPerson)
    }

    pub fn slot(&self) -> SlotKey {
        SlotKey {
            office_aoo: self.office_aoo.clone(),
            desk_kind: self.desk_kind.clone(),
            mode: self.mode,
            starts_at: self.starts_at,
        }
    }
}

const COLUMNS: &str =
    "a.id, a.subject_tax_code, a.citizen_name, a.matricola, a.gestione, a.channel, a.office_aoo,
     o.name AS office_name, o.address AS office_address, a.desk_kind, d.name AS desk_name, a.mode, a.starts_at, a.ends_at,
     a.state, a.hold_expires_at, a.phone, a.notes, a.ticket_id, a.cancelled_by,
     a.cancel_reason, a.created_at, a.updated_at, a.confirmed_at, a.cancelled_at,
     a.booked_by, a.booked_by_key, a.request_sha256
     FROM appointments a
     JOIN offices o ON o.aoo = a.office_aoo
     JOIN desks d ON d.office_aoo = a.office_aoo AND d.kind = a.desk_kind";

fn decode(row: &PgRow) -> Result<AppointmentRecord, sqlx::Error> {
    let bad = |what: String| sqlx::Error::Decode(what.into());
    let mode: String = row.try_get("mode")?;
    let state: String = row.try_get("state")?;
    Ok(AppointmentRecord {
        id: row.try_get("id")?,
        subject_tax_code: row.try_get("subject_tax_code")?,
        citizen_name: row.try_get("citizen_name")?,
        matricola: row.try_get("matricola")?,
        gestione: row.try_get("gestione")?,
        channel: row.try_get("channel")?,
        office_aoo: row.try_get("office_aoo")?,
        office_name: row.try_get("office_name")?,
        office_address: row.try_get("office_address")?,
        desk_kind: row.try_get("desk_kind")?,
        desk_name: row.try_get("desk_name")?,
        mode: Mode::parse(&mode).map_err(|e| bad(e.0))?,
        starts_at: row.try_get("starts_at")?,
        ends_at: row.try_get("ends_at")?,
        state: AppointmentState::parse(&state).ok_or_else(|| bad(format!("state {state}")))?,
        hold_expires_at: row.try_get("hold_expires_at")?,
        phone: row.try_get("phone")?,
        notes: row.try_get("notes")?,
        ticket_id: row.try_get("ticket_id")?,
        cancelled_by: row.try_get("cancelled_by")?,
        cancel_reason: row.try_get("cancel_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        confirmed_at: row.try_get("confirmed_at")?,
        cancelled_at: row.try_get("cancelled_at")?,
        booked_by: row.try_get("booked_by")?,
        booked_by_key: row.try_get("booked_by_key")?,
        request_sha256: row.try_get("request_sha256")?,
    })
}

pub async fn get(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<AppointmentRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} WHERE a.id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(decode).transpose()
}

/// Locks the hold timer of an appointment, if it has one. Confirm and cancel
/// take it before the appointment, in the order the timer worker does, so
/// a hold expiring while it is confirmed or cancelled waits, never deadlocks.
pub async fn lock_hold_timer(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1 FROM timers WHERE kind = $1 AND key = $2 FOR UPDATE")
        .bind(HOLD_TIMER_KIND)
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    Ok(())
}

/// The appointment, locked until the end of the transaction.
pub async fn lock(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<AppointmentRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} WHERE a.id = $1 FOR UPDATE OF a");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(decode).transpose()
}

/// The hold an actor made under an idempotency key, if any.
pub async fn by_key(
    conn: &mut PgConnection,
    booked_by_key: &str,
    idempotency_key: &str,
) -> Result<Option<AppointmentRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} WHERE a.booked_by_key = $1 AND a.idempotency_key = $2");
    let row = sqlx::query(&sql)
        .bind(booked_by_key)
        .bind(idempotency_key)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Moves the appointment to `state` (with who cancelled and why, when
/// cancelled) and returns it as `get` would (one round trip).
pub async fn set_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: AppointmentState,
    cancelled: Option<(CancelledBy, Option<&str>)>,
    at: DateTime<Utc>,
) -> Result<AppointmentRecord, sqlx::Error> {
    let sql = format!(
        "WITH updated AS (
             UPDATE appointments SET state = $2, updated_at = $3,
                 confirmed_at = CASE WHEN $2 = 'confirmed' THEN $3 ELSE confirmed_at END,
                 cancelled_at = CASE WHEN $2 = 'cancelled' THEN $3 ELSE cancelled_at END,
                 cancelled_by = coalesce($4, cancelled_by),
                 cancel_reason = coalesce($5, cancel_reason)
             WHERE id = $1
             RETURNING *)
         SELECT {}",
        COLUMNS.replace("FROM appointments a", "FROM updated a")
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(state.as_str())
        .bind(at)
        .bind(cancelled.map(|(by, _)| by.as_str()))
        .bind(cancelled.and_then(|(_, reason)| reason))
        .fetch_one(conn)
        .await?;
    decode(&row)
}

/// Whose appointments a list returns ("Gestione appuntamenti").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The citizen's own.
    Citizen(String),
    /// Those of citizens (or positions) under the intermediary's active delegations.
    Intermediary(String),
    /// The office's.
    Office(String),
    /// What a contact-centre agent booked for the citizen they serve.
    BookedFor {
        booked_by_key: String,
        subject: String,
    },
}

/// Appointments in scope, latest start first, at most `limit`.
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    limit: i64,
) -> Result<Vec<AppointmentRecord>, sqlx::Error> {
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new("SELECT ");
    query.push(COLUMNS).push(" WHERE ");
    match scope {
        Scope::Citizen(tax_code) => {
            query
                .push("a.subject_tax_code = ")
                .push_bind(tax_code.clone());
        }
        Scope::Office(aoo) => {
            query.push("a.office_aoo = ").push_bind(aoo.clone());
        }
        // Mirrors domain::access::Delegation::covers.
        Scope::Intermediary(tax_code) => {
            query
                .push(
                    "EXISTS (SELECT 1 FROM delegations g
                      WHERE g.citizen_tax_code = a.subject_tax_code
                        AND g.gestione = a.gestione
                        AND (g.matricola IS NULL OR g.matricola = a.matricola)
                        AND g.valid_from <= now() AND now() < g.valid_to
                        AND (g.revoked_at IS NULL OR now() < g.revoked_at)
                        AND g.intermediary_tax_code = ",
                )
                .push_bind(tax_code.clone())
                .push(")");
        }
        Scope::BookedFor {
            booked_by_key,
            subject,
        } => {
            query
                .push("a.booked_by_key = ")
                .push_bind(booked_by_key.clone())
                .push(" AND a.subject_tax_code = ")
                .push_bind(subject.clone());
        }
    }
    query
        .push(" ORDER BY a.starts_at DESC, a.id DESC LIMIT ")
        .push_bind(limit);
    let rows = query.build().fetch_all(conn).await?;
    rows.iter().map(decode).collect()
}

/// The Cassetto conversation (ticket) a booking comes from: its citizen,
/// position and the facts of the booking rule.
#[derive(Debug, Clone)]
pub struct ConversationFacts {
    pub subject_tax_code: String,
    pub matricola: Option<String>,
    pub office_aoo: String,
    /// The scheme of the conversation's position.
    pub gestione: String,
    pub conversation: Conversation,
}

pub async fn conversation(
    conn: &mut PgConnection,
    ticket_id: Uuid,
) -> Result<Option<ConversationFacts>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT t.subject_tax_code, t.matricola, t.office_aoo, t.gestione, t.opened_at,
                t.outcome = 'respinta' AS rejected,
                coalesce(a.appointment_after_days, 10) AS after_days
         FROM tickets t LEFT JOIN ambiti a ON a.code = t.ambito
         WHERE t.id = $1",
    )
    .bind(ticket_id)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        let after_days: i32 = row.try_get("after_days")?;
        Ok(ConversationFacts {
            subject_tax_code: row.try_get("subject_tax_code")?,
            matricola: row.try_get("matricola")?,
            office_aoo: row.try_get("office_aoo")?,
            gestione: row.try_get("gestione")?,
            conversation: Conversation {
                first_message_at: row.try_get("opened_at")?,
                after_days: u32::try_from(after_days).unwrap_or(0),
                rejected: row.try_get::<Option<bool>, _>("rejected")?.unwrap_or(false),
            },
        })
    })
    .transpose()
}

/// The desks of an office, by name: `(kind, name)`.
pub async fn office_desks(
    conn: &mut PgConnection,
    office_aoo: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT kind, name FROM desks WHERE office_aoo = $1 ORDER BY name, kind")
        .bind(office_aoo)
        .fetch_all(conn)
        .await
}

/// The office's agenda: its appointments starting in `[from, to)`, of one
/// desk or all, earliest first. Scoped in SQL by the office.
pub async fn agenda(
    conn: &mut PgConnection,
    office_aoo: &str,
    desk_kind: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<AppointmentRecord>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} WHERE a.office_aoo = $1 AND ($2::text IS NULL OR a.desk_kind = $2)
           AND a.starts_at >= $3 AND a.starts_at < $4
         ORDER BY a.starts_at, d.name, a.id"
    );
    let rows = sqlx::query(&sql)
        .bind(office_aoo)
        .bind(desk_kind)
        .bind(from)
        .bind(to)
        .fetch_all(conn)
        .await?;
    rows.iter().map(decode).collect()
}
