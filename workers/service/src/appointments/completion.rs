//! The meeting took place: a confirmed appointment becomes *svolto* (done)
//! and `appointment.completed` tells the channels, in the transaction of
//! what completed it (the operator ending the video call; a call-back
//! answered). Completing it again changes nothing and says nothing.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::AppointmentError;
use crate::contract::{AppointmentCompleted, CodiceFiscale, Event};
use crate::domain::appointment::{self, AppointmentState, StateRefusal};
use crate::store::appointments::{self as store, AppointmentRecord};
use crate::store::outbox::{self, OutboxMessage};

/// How the appointment was seen to take place (`appointment.completed`'s `by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletedBy {
    /// The operator ended the video call.
    VideoCallEnded,
    /// The call-back was answered.
    CallbackAnswered,
}

impl CompletedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            CompletedBy::VideoCallEnded => "video_call_ended",
            CompletedBy::CallbackAnswered => "callback_answered",
        }
    }
}

/// Locks the appointment and, if confirmed, makes it done with its event;
/// already done: unchanged. A cancelled or never-confirmed one is refused
/// (`StateRefusal`) and left as it is.
pub async fn complete_in(
    conn: &mut PgConnection,
    id: Uuid,
    by: CompletedBy,
    actor_id: &str,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<AppointmentRecord, AppointmentError> {
    let current = store::lock(conn, id)
        .await?
        .ok_or(AppointmentError::NotFound)?;
    if !appointment::complete(current.state)? {
        return Ok(current);
    }
    let done = store::set_state(conn, id, AppointmentState::Done, None, now).await?;
    let event = Event {
        message_id: Uuid::now_v7(),
        message_type: "appointment.completed".into(),
        schema_version: 1,
        occurred_at: now,
        correlation_id: correlation_id.into(),
        causation_id: None,
        payload: AppointmentCompleted {
            appointment_id: id,
            subject_tax_code: CodiceFiscale::parse(&done.subject_tax_code)
                .map_err(|e| AppointmentError::Invalid(format!("stored appointment: {e}")))?,
            office_aoo: done.office_aoo.clone(),
            desk_kind: done.desk_kind.clone(),
            mode: done.mode.as_str().into(),
            starts_at: done.starts_at,
            ends_at: done.ends_at,
            completed_at: now,
            completed_by: by.as_str().into(),
            actor_id: actor_id.into(),
        },
    };
    outbox::enqueue(conn, &[OutboxMessage::event(&event, None)?]).await?;
    tracing::info!(appointment_id = %id, by = by.as_str(), actor_id, correlation_id,
        "appointment done");
    Ok(done)
}

/// Whether a refusal only says the appointment did not take place (it was
/// cancelled meanwhile, say): logged by callers, never a failure of theirs.
pub fn is_state_refusal(error: &AppointmentError) -> Option<StateRefusal> {
    match error {
        AppointmentError::State(refusal) => Some(*refusal),
        _ => None,
    }
}
