//! Video-room operations (*Sportello telematico*): open a room from a
//! verified link, send and redeem the SMS code, let the operator in, apply
//! the operator's controls, keep the chat, close the document window when
//! its timer fires. Each checks who asks, applies `domain::video`, and
//! writes one transaction (with its timer and outbox rows). The gateway
//! (`crate::gateway`) is the HTTP/WebSocket shell around these.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::appointments::completion::{self, CompletedBy};
use crate::contract::{Authentication, CodiceFiscale, Event, Principal};
use crate::domain::appointment::{AppointmentState, Mode};
use crate::domain::notification::SendOutcome;
use crate::domain::video::code::{self, Attempt, Code, TooManyCodes};
use crate::domain::video::link::JoinToken;
use crate::domain::video::room::{
    self, Control, ControlRefusal, Landing, RoomState, Schedule, ScheduleRefusal, Window,
};
use crate::domain::video::Role;
use crate::notifications::sms::SmsProvider;
use crate::store::appointments::{self as appointments, AppointmentRecord};
use crate::store::outbox::{self, OutboxMessage};
use crate::store::timers::{self, TimerRequest};
use crate::store::video::{self as store, Room};

/// The durable timer closing a room's document window (key: appointment id).
pub const WINDOW_TIMER_KIND: &str = "video.window";

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// No such appointment, or not a confirmed video appointment.
    #[error("no video room for this link")]
    NoRoom,
    #[error("{0}")]
    Closed(#[from] ScheduleRefusal),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooManyCodes(#[from] TooManyCodes),
    #[error("wrong code; {remaining} attempts left")]
    WrongCode { remaining: i16 },
    #[error("no valid code: ask for a new one")]
    NoCode,
    #[error("the SMS could not be sent: {0}")]
    Sms(String),
    #[error("{0}")]
    Control(#[from] ControlRefusal),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the appointment could not be completed: {0}")]
    Completion(String),
    #[error("event encoding: {0}")]
    Encoding(#[from] serde_json::Error),
}

/// A room opened through a verified link.
#[derive(Debug, Clone)]
pub struct Opened {
    pub token: JoinToken,
    pub appointment: AppointmentRecord,
    pub room: Room,
    /// What the link opens onto now: the call, or the window's page.
    pub landing: Landing,
}

/// The correlation id of everything done in an appointment's room.
pub fn correlation_id(appointment_id: Uuid) -> String {
    format!("video-{}", appointment_id.simple())
}

impl Opened {
    pub fn correlation_id(&self) -> String {
        correlation_id(self.appointment.id)
    }

    pub fn schedule(&self) -> Schedule {
        Schedule {
            starts_at: self.appointment.starts_at,
            ends_at: self.appointment.ends_at,
        }
    }

    /// The citizen as the documents module knows them. The link reached
    /// them in their authenticated notification centre and the SMS code
    /// proved the appointment's phone.
    pub fn citizen(&self) -> Result<Principal, VideoError> {
        let tax_code = CodiceFiscale::parse(&self.appointment.subject_tax_code)
            .map_err(|_| VideoError::NoRoom)?;
        Ok(Principal::Citizen {
            tax_code,
            authentication: Authentication::Spid { level: 2 },
        })
    }
}

/// The room the verified `token` names, if its link may open at `now`:
/// a confirmed video appointment, from shortly before its slot to its end
/// (or its document window's end).
pub async fn open(
    pool: &PgPool,
    token: JoinToken,
    now: DateTime<Utc>,
) -> Result<Opened, VideoError> {
    let mut conn = pool.acquire().await?;
    let appointment = appointments::get(&mut conn, token.appointment_id)
        .await?
        .filter(|a| {
            a.mode == Mode::Video
                && matches!(
                    a.state,
                    AppointmentState::Confirmed | AppointmentState::Done
                )
        })
        .ok_or(VideoError::NoRoom)?;
    let room = store::ensure(&mut conn, &appointment).await?;
    let schedule = Schedule {
        starts_at: appointment.starts_at,
        ends_at: appointment.ends_at,
    };
    let landing = schedule.landing(&room.state, now)?;
    Ok(Opened {
        token,
        appointment,
        room,
        landing,
    })
}

/// Why an authentic link past its expiry opens nothing: its room's
/// document window closed (and when), else simply over. Reads only: an
/// expired link makes no room.
pub async fn expired(pool: &PgPool, token: JoinToken, now: DateTime<Utc>) -> VideoError {
    let room = match pool.acquire().await {
        Ok(mut conn) => store::get(&mut conn, token.appointment_id).await,
        Err(error) => Err(error),
    };
    match room {
        Ok(Some(room)) => VideoError::Closed(room::over(&room.state, now)),
        Ok(None) => VideoError::Closed(ScheduleRefusal::Over),
        Err(error) => VideoError::Database(error),
    }
}

/// Sends a new one-time code to the appointment's phone (rate limited).
pub async fn send_code(
    pool: &PgPool,
    sms: Option<&SmsProvider>,
    key: &[u8],
    opened: &Opened,
    correlation_id: &str,
) -> Result<(), VideoError> {
    let id = opened.appointment.id;
    let fresh = Code::generate();
    let now = Utc::now();
    let mut tx = pool.begin().await?;
    store::lock(&mut tx, id).await?.ok_or(VideoError::NoRoom)?;
    code::may_issue(&store::recent_code_issues(&mut tx, id).await?, now)?;
    store::insert_code(
        &mut tx,
        id,
        &fresh.digest(key, id),
        now,
        now + code::CODE_VALIDITY,
    )
    .await?;
    tx.commit().await?;
    let Some(sms) = sms else {
        tracing::error!(appointment_id = %id, "no SMS provider configured: the code cannot be sent");
        return Err(VideoError::Sms("no SMS provider configured".into()));
    };
    let reference = Uuid::now_v7().to_string();
    match sms
        .send_text(
            &opened.appointment.phone,
            &code::sms_text(&fresh),
            &reference,
            correlation_id,
        )
        .await
    {
        SendOutcome::Sent { .. } => {
            tracing::info!(appointment_id = %id, correlation_id, "video room code sent");
            Ok(())
        }
        SendOutcome::Transient(reason) | SendOutcome::Permanent(reason) => {
            tracing::warn!(appointment_id = %id, %reason, "video room code not sent");
            Err(VideoError::Sms(reason))
        }
    }
}

/// Checks a typed code; the right one gives the citizen a pass (its key).
pub async fn redeem_code(
    pool: &PgPool,
    key: &[u8],
    opened: &Opened,
    typed: &Code,
) -> Result<String, VideoError> {
    let id = opened.appointment.id;
    let citizen = opened.citizen()?;
    let mut tx = pool.begin().await?;
    let current = store::lock_current_code(&mut tx, id).await?;
    let verdict = code::attempt(
        current.as_ref().map(|(_, issued)| issued),
        &typed.digest(key, id),
        Utc::now(),
    );
    if let (Some((code_id, _)), false) = (&current, verdict == Attempt::NoCode) {
        store::record_attempt(&mut tx, *code_id, verdict == Attempt::Accepted).await?;
    }
    let outcome = match verdict {
        Attempt::Accepted => Ok(store::open_pass(
            &mut tx,
            id,
            Role::Citizen,
            &citizen,
            opened.token.expires_at,
        )
        .await?),
        Attempt::Wrong { remaining } => Err(VideoError::WrongCode { remaining }),
        Attempt::Exhausted | Attempt::NoCode => Err(VideoError::NoCode),
    };
    tx.commit().await?;
    tracing::info!(appointment_id = %id, accepted = outcome.is_ok(), "video room code tried");
    outcome
}

/// The operator's pass: an operator of the appointment's office only.
pub async fn operator_pass(
    pool: &PgPool,
    opened: &Opened,
    principal: &Principal,
) -> Result<String, VideoError> {
    match principal {
        Principal::Operator { office, .. } if *office == opened.appointment.office_aoo => {}
        Principal::Operator { .. } => {
            return Err(VideoError::Forbidden(
                "this appointment belongs to another office".into(),
            ))
        }
        _ => {
            return Err(VideoError::Forbidden(
                "only an operator may open this link".into(),
            ))
        }
    }
    let mut conn = pool.acquire().await?;
    Ok(store::open_pass(
        &mut conn,
        opened.appointment.id,
        Role::Operator,
        principal,
        opened.token.expires_at,
    )
    .await?)
}

/// Applies an operator's control; granting the window schedules its timer
/// and announces it (`documents.window_opened`) in the same transaction.
/// Ending the call (with or without the window) makes the appointment done
/// (`appointment.completed`), in that transaction too.
pub async fn control(
    pool: &PgPool,
    id: Uuid,
    role: Role,
    operator_id: &str,
    control: Control,
    citizen_link: &str,
    correlation_id: &str,
) -> Result<RoomState, VideoError> {
    let now = Utc::now();
    let mut tx = pool.begin().await?;
    let room = store::lock(&mut tx, id).await?.ok_or(VideoError::NoRoom)?;
    let next = room::control(&room.state, role, control, now)?;
    store::save(&mut tx, id, &next, Some(operator_id)).await?;
    if room.state.ended_at.is_none() && next.ended_at.is_some() {
        // The call took place: the appointment is done, with its event.
        match completion::complete_in(
            &mut tx,
            id,
            CompletedBy::VideoCallEnded,
            operator_id,
            correlation_id,
            now,
        )
        .await
        {
            Ok(_) => {}
            Err(error) => match completion::is_state_refusal(&error) {
                Some(refusal) => tracing::warn!(appointment_id = %id, %refusal,
                    "the call ended but the appointment is not confirmed: left as it is"),
                None => return Err(VideoError::Completion(error.to_string())),
            },
        }
    }
    if let (Window::None, Window::Open { closes_at }) = (room.state.window, next.window) {
        timers::schedule(
            &mut tx,
            &TimerRequest {
                kind: WINDOW_TIMER_KIND.into(),
                key: id.to_string(),
                fire_at: closes_at,
                data: json!({ "appointment_id": id, "case_id": room.case_id }),
                correlation_id: correlation_id.to_owned(),
            },
        )
        .await?;
        let event = Event {
            message_id: Uuid::now_v7(),
            message_type: "documents.window_opened".into(),
            schema_version: 1,
            occurred_at: now,
            correlation_id: correlation_id.to_owned(),
            causation_id: None,
            payload: json!({
                "case_id": room.case_id,
                "opened_at": now,
                "closes_at": closes_at,
                "missing": null,
                "link": citizen_link,
            }),
        };
        outbox::enqueue(&mut tx, &[OutboxMessage::event(&event, None)?]).await?;
    }
    tx.commit().await?;
    tracing::info!(appointment_id = %id, ?control, operator_id, correlation_id, "video room control");
    Ok(next)
}

/// The window's timer fired: the window closes (`documents.window_closed`,
/// reason `expired`); runs in the timer's transaction.
pub async fn expire_window(
    conn: &mut PgConnection,
    id: Uuid,
    fired_at: DateTime<Utc>,
    correlation_id: &str,
) -> Result<(), sqlx::Error> {
    let Some(room) = store::lock(&mut *conn, id).await? else {
        return Ok(());
    };
    let Some(next) = room::expire_window(&room.state, fired_at) else {
        return Ok(());
    };
    store::save(&mut *conn, id, &next, None).await?;
    let event = Event {
        message_id: Uuid::now_v7(),
        message_type: "documents.window_closed".into(),
        schema_version: 1,
        occurred_at: fired_at,
        correlation_id: correlation_id.to_owned(),
        causation_id: None,
        payload: json!({ "case_id": room.case_id, "closed_at": fired_at, "reason": "expired" }),
    };
    let message =
        OutboxMessage::event(&event, None).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    outbox::enqueue(conn, &[message]).await?;
    tracing::info!(appointment_id = %id, "video room document window closed");
    Ok(())
}

/// The room's current state (for a check just before an act).
pub async fn state(pool: &PgPool, id: Uuid) -> Result<Room, VideoError> {
    let mut conn = pool.acquire().await?;
    store::get(&mut conn, id).await?.ok_or(VideoError::NoRoom)
}

/// What happened when a connection asked for its role's seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seating {
    Seated,
    /// Seated; the previous holder (on that gateway) must be disconnected.
    Replaced {
        connection_id: Uuid,
        gateway_id: String,
    },
    Occupied,
}

/// A room never holds more than two participants: takes `role`'s seat for
/// `connection_id` under the room's lock.
pub async fn take_seat(
    pool: &PgPool,
    id: Uuid,
    role: Role,
    connection_id: Uuid,
    gateway_id: &str,
    replace: bool,
) -> Result<Seating, VideoError> {
    let mut tx = pool.begin().await?;
    store::lock(&mut tx, id).await?.ok_or(VideoError::NoRoom)?;
    let holder = store::seat(&mut tx, id, role).await?;
    let seating = match room::seat(holder.as_ref().map(|h| h.seen_at), replace, Utc::now()) {
        room::SeatVerdict::Occupied => Seating::Occupied,
        room::SeatVerdict::Taken => Seating::Seated,
        room::SeatVerdict::Replaces => match holder {
            Some(h) => Seating::Replaced {
                connection_id: h.connection_id,
                gateway_id: h.gateway_id,
            },
            None => Seating::Seated,
        },
    };
    if seating != Seating::Occupied {
        store::sit(&mut tx, id, role, connection_id, gateway_id).await?;
    }
    tx.commit().await?;
    Ok(seating)
}
