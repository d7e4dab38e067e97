//! Video rooms in PostgreSQL: the room (its state and case), the one-time
//! codes, the passes browsers hold, the two seats, and the chat.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::keys::{digest, new_key};
use crate::appointments::AppointmentRecord;
use crate::documents::{self as documents, NewCase};
use sportello_contract::Principal;
use sportello_domain::video::code::IssuedCode;
use sportello_domain::video::room::{RoomState, Window};
use sportello_domain::video::Role;

/// A room as stored.
#[derive(Debug, Clone)]
pub struct Room {
    pub appointment_id: Uuid,
    pub case_id: Uuid,
    pub state: RoomState,
    pub operator_id: Option<String>,
}

fn decode(row: &PgRow) -> Result<Room, sqlx::Error> {
    let closes_at: Option<DateTime<Utc>> = row.try_get("window_closes_at")?;
    let closed_at: Option<DateTime<Utc>> = row.try_get("window_closed_at")?;
    let window = match (closes_at, closed_at) {
        (Some(closes_at), Some(closed_at)) => Window::Closed {
            closes_at,
            closed_at,
        },
        (Some(closes_at), None) => Window::Open { closes_at },
        (None, None) => Window::None,
        // A CHECK forbids it (closed implies a deadline).
        (None, Some(_)) => {
            return Err(sqlx::Error::Protocol(
                "a video room's window closed without a deadline".into(),
            ))
        }
    };
    Ok(Room {
        appointment_id: row.try_get("appointment_id")?,
        case_id: row.try_get("case_id")?,
        operator_id: row.try_get("operator_id")?,
        state: RoomState {
            admitted: row.try_get("admitted")?,
            chat_enabled: row.try_get("chat_enabled")?,
            documents_enabled: row.try_get("documents_enabled")?,
            ended_at: row.try_get("ended_at")?,
            window,
        },
    })
}

const COLUMNS: &str = "appointment_id, case_id, admitted, chat_enabled, documents_enabled,
     operator_id, ended_at, window_closes_at, window_closed_at";

/// The room of a video appointment, made (with its case, whose id is the
/// appointment's) the first time it is asked for.
pub async fn ensure(
    conn: &mut PgConnection,
    appointment: &AppointmentRecord,
) -> Result<Room, sqlx::Error> {
    if let Some(room) = get(&mut *conn, appointment.id).await? {
        return Ok(room);
    }
    documents::insert_case(
        &mut *conn,
        &NewCase {
            id: appointment.id,
            citizen_tax_code: appointment.subject_tax_code.clone(),
            matricola: appointment.matricola.clone(),
            office_aoo: appointment.office_aoo.clone(),
            subject: format!("Videochiamata - {}", appointment.desk_name),
        },
    )
    .await?;
    sqlx::query(
        "INSERT INTO video_rooms (appointment_id, case_id) VALUES ($1, $1)
         ON CONFLICT (appointment_id) DO NOTHING",
    )
    .bind(appointment.id)
    .execute(&mut *conn)
    .await?;
    get(conn, appointment.id)
        .await?
        .ok_or_else(|| sqlx::Error::Protocol("the room just made is gone".into()))
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<Room>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM video_rooms WHERE appointment_id = $1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(decode).transpose()
}

/// The room, locked to the end of the transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Room>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM video_rooms WHERE appointment_id = $1 FOR UPDATE");
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.as_ref().map(decode).transpose()
}

pub async fn save(
    conn: &mut PgConnection,
    id: Uuid,
    state: &RoomState,
    operator_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    let (closes_at, closed_at) = match state.window {
        Window::None => (None, None),
        Window::Open { closes_at } => (Some(closes_at), None),
        Window::Closed {
            closes_at,
            closed_at,
        } => (Some(closes_at), Some(closed_at)),
    };
    sqlx::query(
        "UPDATE video_rooms SET admitted = $2, chat_enabled = $3, documents_enabled = $4,
             ended_at = $5, window_closes_at = coalesce($6, window_closes_at),
             window_closed_at = $7, operator_id = coalesce($8, operator_id), updated_at = now()
         WHERE appointment_id = $1",
    )
    .bind(id)
    .bind(state.admitted)
    .bind(state.chat_enabled)
    .bind(state.documents_enabled)
    .bind(state.ended_at)
    .bind(closes_at)
    .bind(closed_at)
    .bind(operator_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// When the appointment's codes were issued in the last hour.
pub async fn recent_code_issues(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Vec<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT issued_at FROM video_codes
         WHERE appointment_id = $1 AND issued_at > now() - interval '1 hour'",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// A new code: the previous ones stop working.
pub async fn insert_code(
    conn: &mut PgConnection,
    id: Uuid,
    digest: &[u8],
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE video_codes SET used_at = $2 WHERE appointment_id = $1 AND used_at IS NULL",
    )
    .bind(id)
    .bind(issued_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO video_codes (appointment_id, code_hmac, issued_at, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(digest)
    .bind(issued_at)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The latest code, locked (attempts are counted under the lock).
pub async fn lock_current_code(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(i64, IssuedCode)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, code_hmac, expires_at, attempts, used_at IS NOT NULL AS used
         FROM video_codes WHERE appointment_id = $1
         ORDER BY issued_at DESC, id DESC LIMIT 1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok((
            row.try_get("id")?,
            IssuedCode {
                digest: row.try_get("code_hmac")?,
                expires_at: row.try_get("expires_at")?,
                attempts: row.try_get("attempts")?,
                used: row.try_get("used")?,
            },
        ))
    })
    .transpose()
}

/// Counts an attempt; a right one spends the code.
pub async fn record_attempt(
    conn: &mut PgConnection,
    code_id: i64,
    accepted: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE video_codes SET attempts = least(attempts + 1, 5),
             used_at = CASE WHEN $2 THEN now() ELSE used_at END
         WHERE id = $1",
    )
    .bind(code_id)
    .bind(accepted)
    .execute(conn)
    .await?;
    Ok(())
}

/// A pass for `role` in the room until `expires_at`; returns its key, whose
/// only copy goes to the browser.
pub async fn open_pass(
    conn: &mut PgConnection,
    id: Uuid,
    role: Role,
    principal: &Principal,
    expires_at: DateTime<Utc>,
) -> Result<String, sqlx::Error> {
    let key = new_key();
    let principal =
        serde_json::to_value(principal).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO video_passes (key_sha256, appointment_id, role, principal, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(digest(&key))
    .bind(id)
    .bind(role.as_str())
    .bind(principal)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(key)
}

/// Who holds the pass `key` for this room and role, if it is unexpired.
pub async fn pass(
    pool: &PgPool,
    key: &str,
    id: Uuid,
    role: Role,
) -> Result<Option<Principal>, sqlx::Error> {
    let principal: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT principal FROM video_passes
         WHERE key_sha256 = $1 AND appointment_id = $2 AND role = $3 AND now() < expires_at",
    )
    .bind(digest(key))
    .bind(id)
    .bind(role.as_str())
    .fetch_optional(pool)
    .await?;
    principal
        .map(|p| serde_json::from_value(p).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// A seat's holder: its connection, the gateway serving it, its heartbeat.
#[derive(Debug, Clone)]
pub struct SeatHolder {
    pub connection_id: Uuid,
    pub gateway_id: String,
    pub seen_at: DateTime<Utc>,
}

/// The seat of `role`, locked (the room row must be locked first).
pub async fn seat(
    conn: &mut PgConnection,
    id: Uuid,
    role: Role,
) -> Result<Option<SeatHolder>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT connection_id, gateway_id, seen_at FROM video_seats
         WHERE appointment_id = $1 AND role = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(role.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(SeatHolder {
            connection_id: row.try_get("connection_id")?,
            gateway_id: row.try_get("gateway_id")?,
            seen_at: row.try_get("seen_at")?,
        })
    })
    .transpose()
}

pub async fn sit(
    conn: &mut PgConnection,
    id: Uuid,
    role: Role,
    connection_id: Uuid,
    gateway_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO video_seats (appointment_id, role, connection_id, gateway_id, seated_at, seen_at)
         VALUES ($1, $2, $3, $4, now(), now())
         ON CONFLICT (appointment_id, role) DO UPDATE SET connection_id = $3, gateway_id = $4,
             seated_at = now(), seen_at = now()",
    )
    .bind(id)
    .bind(role.as_str())
    .bind(connection_id)
    .bind(gateway_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The connection leaves its seat (if it still holds it).
pub async fn leave(pool: &PgPool, connection_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM video_seats WHERE connection_id = $1")
        .bind(connection_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The gateway's connections are alive.
pub async fn heartbeat(pool: &PgPool, connections: &[Uuid]) -> Result<(), sqlx::Error> {
    if connections.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE video_seats SET seen_at = now() WHERE connection_id = ANY($1)")
        .bind(connections)
        .execute(pool)
        .await?;
    Ok(())
}

/// Who is in the room now (roles with a live seat).
pub async fn seated_roles(pool: &PgPool, id: Uuid) -> Result<Vec<Role>, sqlx::Error> {
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT role FROM video_seats WHERE appointment_id = $1
         AND seen_at > now() - interval '30 seconds'",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(roles.iter().filter_map(|r| Role::parse(r)).collect())
}

/// One chat message as kept.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChatMessage {
    pub id: i64,
    pub author_role: Role,
    pub author_id: String,
    pub body: String,
    pub sent_at: DateTime<Utc>,
}

pub async fn insert_chat(
    pool: &PgPool,
    room: &Room,
    role: Role,
    author_id: &str,
    body: &str,
) -> Result<ChatMessage, sqlx::Error> {
    let (id, sent_at): (i64, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO video_chat_messages (appointment_id, case_id, author_role, author_id, body)
         VALUES ($1, $2, $3, $4, $5) RETURNING id, sent_at",
    )
    .bind(room.appointment_id)
    .bind(room.case_id)
    .bind(role.as_str())
    .bind(author_id)
    .bind(body)
    .fetch_one(pool)
    .await?;
    Ok(ChatMessage {
        id,
        author_role: role,
        author_id: author_id.to_owned(),
        body: body.to_owned(),
        sent_at,
    })
}

pub async fn chat(pool: &PgPool, id: Uuid) -> Result<Vec<ChatMessage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, author_role, author_id, body, sent_at FROM video_chat_messages
         WHERE appointment_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let role: String = row.try_get("author_role")?;
            Ok(ChatMessage {
                id: row.try_get("id")?,
                author_role: Role::parse(&role)
                    .ok_or_else(|| sqlx::Error::Decode(format!("role {role}").into()))?,
                author_id: row.try_get("author_id")?,
                body: row.try_get("body")?,
                sent_at: row.try_get("sent_at")?,
            })
        })
        .collect()
}
