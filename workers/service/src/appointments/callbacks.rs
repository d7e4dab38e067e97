//! Phone call-backs (*ricontatto telefonico*): a confirmed phone appointment
//! becomes, at its time, a call on its office desk's queue; what the agent
//! records decides what follows (closed, or called again later).
//!
//! Each step is one transaction: the timer's firing writes the call row and
//! its outbox message together; the agent's outcome (applied once, like
//! every booking command) updates the call and schedules the next attempt.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::AppointmentError;
use crate::broker::callbacks::routing_key;
use crate::broker::names::CALLBACKS_EXCHANGE;
use crate::contract::appointments::{CallbackDue, CallbackOutcome, CallbackResult};
use crate::contract::{CodiceFiscale, Envelope, Event, Principal};
use crate::domain::appointment::{AppointmentState, Mode};
use crate::store::appointments::{self as store, AppointmentRecord};
use crate::store::booking_commands as calls;
use crate::store::outbox::{self, OutboxMessage};
use crate::store::timers::{self, TimerRequest};

/// The timer that puts a call on the queue (key `<appointment id>:<attempt>`).
pub const CALLBACK_TIMER_KIND: &str = "appointment.callback";
/// When nobody answered and the agent said nothing else.
pub const DEFAULT_RETRY_MINUTES: u32 = 30;
/// Calls of one appointment before it is left to the office.
pub const MAX_ATTEMPTS: i32 = 5;

#[derive(Debug, Deserialize)]
struct CallTimer {
    appointment_id: Uuid,
    attempt: i32,
}

/// Schedules attempt `attempt` of the appointment's call at `at`.
pub async fn schedule_call(
    conn: &mut PgConnection,
    appointment_id: Uuid,
    attempt: i32,
    at: DateTime<Utc>,
    correlation_id: &str,
) -> Result<(), sqlx::Error> {
    timers::schedule(
        conn,
        &TimerRequest {
            kind: CALLBACK_TIMER_KIND.into(),
            key: format!("{appointment_id}:{attempt}"),
            fire_at: at,
            data: serde_json::json!({ "appointment_id": appointment_id, "attempt": attempt }),
            correlation_id: correlation_id.into(),
        },
    )
    .await?;
    Ok(())
}

/// A confirmed phone appointment gets its first call at its start.
pub async fn on_confirmed(
    conn: &mut PgConnection,
    appointment: &AppointmentRecord,
    correlation_id: &str,
) -> Result<(), sqlx::Error> {
    if appointment.mode == Mode::Phone {
        schedule_call(
            conn,
            appointment.id,
            1,
            appointment.starts_at,
            correlation_id,
        )
        .await?;
    }
    Ok(())
}

/// The call timer fired (in the timer worker's transaction): if the
/// appointment still stands, the call goes on its desk's queue, once.
pub async fn queue_call(
    conn: &mut PgConnection,
    data: &serde_json::Value,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let Ok(timer) = serde_json::from_value::<CallTimer>(data.clone()) else {
        tracing::error!(%data, "call-back timer without an appointment and attempt");
        return Ok(());
    };
    let Some(appointment) = store::lock(conn, timer.appointment_id).await? else {
        return Ok(());
    };
    if appointment.state != AppointmentState::Confirmed {
        tracing::info!(appointment_id = %appointment.id, state = appointment.state.as_str(),
            "call-back not queued: the appointment no longer stands");
        return Ok(());
    }
    let call_id = Uuid::now_v7();
    if !calls::insert_call(conn, call_id, appointment.id, timer.attempt, now).await? {
        return Ok(());
    }
    let Ok(citizen_tax_code) = CodiceFiscale::parse(&appointment.subject_tax_code) else {
        tracing::error!(appointment_id = %appointment.id, "stored tax code does not parse");
        return Ok(());
    };
    let event = Event {
        message_id: call_id,
        message_type: "appointment.callback_due".into(),
        schema_version: 1,
        occurred_at: now,
        correlation_id: correlation_id.into(),
        causation_id: None,
        payload: CallbackDue {
            call_id,
            appointment_id: appointment.id,
            office_aoo: appointment.office_aoo.clone(),
            desk: appointment.desk_kind.clone(),
            desk_name: appointment.desk_name.clone(),
            starts_at: appointment.starts_at,
            ends_at: appointment.ends_at,
            citizen_tax_code,
            phone: appointment.phone.clone(),
            notes: appointment.notes.clone(),
            attempt: u32::try_from(timer.attempt).unwrap_or(1),
        },
    };
    let body = serde_json::to_vec(&event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    outbox::enqueue(
        conn,
        &[OutboxMessage {
            message_id: call_id,
            exchange: CALLBACKS_EXCHANGE.into(),
            routing_key: routing_key(&appointment.office_aoo, &appointment.desk_kind),
            message_type: event.message_type.clone(),
            correlation_id: correlation_id.into(),
            body,
            trace: None,
        }],
    )
    .await?;
    tracing::info!(appointment_id = %appointment.id, %call_id, attempt = timer.attempt,
        office = %appointment.office_aoo, desk = %appointment.desk_kind, "call-back queued");
    Ok(())
}

/// The agent's outcome of a call: recorded once; `done` closes the
/// appointment, `no_answer` queues the next attempt (up to `MAX_ATTEMPTS`).
/// Only an agent serving the appointment's citizen, or an operator of its
/// office, may record it.
pub async fn record_outcome_in(
    conn: &mut PgConnection,
    envelope: &Envelope<CallbackOutcome>,
    now: DateTime<Utc>,
) -> Result<AppointmentRecord, AppointmentError> {
    let payload = &envelope.payload;
    let call = calls::lock_call(conn, payload.call_id)
        .await?
        .filter(|call| call.appointment_id == payload.appointment_id)
        .ok_or(AppointmentError::NotFound)?;
    let appointment = store::lock(conn, call.appointment_id)
        .await?
        .ok_or(AppointmentError::NotFound)?;
    let agent = match &envelope.principal {
        Principal::ContactCenterAgent {
            agent_id,
            on_behalf_of,
            ..
        } if on_behalf_of.as_str() == appointment.subject_tax_code => agent_id.clone(),
        Principal::Operator {
            operator_id,
            office,
            ..
        } if *office == appointment.office_aoo => operator_id.clone(),
        _ => {
            return Err(AppointmentError::Forbidden(
                "only an agent serving this citizen or the office records this call".into(),
            ))
        }
    };
    let recorded = calls::record_call_outcome(
        conn,
        call.call_id,
        payload.outcome,
        &agent,
        payload.note.as_deref(),
        now,
    )
    .await?;
    if !recorded {
        return Err(AppointmentError::Invalid(format!(
            "the outcome of call {} was already recorded",
            call.call_id
        )));
    }
    let appointment = match payload.outcome {
        CallbackResult::Done => {
            match super::completion::complete_in(
                conn,
                appointment.id,
                super::completion::CompletedBy::CallbackAnswered,
                &agent,
                &envelope.correlation_id,
                now,
            )
            .await
            {
                Ok(done) => done,
                // Cancelled meanwhile: the call is recorded, the state stays.
                Err(AppointmentError::State(refusal)) => {
                    tracing::warn!(appointment_id = %appointment.id, %refusal,
                        "call-back answered for an appointment that is not confirmed");
                    appointment
                }
                Err(error) => return Err(error),
            }
        }
        CallbackResult::NoAnswer if call.attempt < MAX_ATTEMPTS => {
            let minutes = payload.retry_after_minutes.unwrap_or(DEFAULT_RETRY_MINUTES);
            let at = now + Duration::minutes(i64::from(minutes));
            schedule_call(
                conn,
                appointment.id,
                call.attempt + 1,
                at,
                &envelope.correlation_id,
            )
            .await?;
            appointment
        }
        CallbackResult::NoAnswer => {
            tracing::warn!(appointment_id = %appointment.id, attempts = call.attempt,
                "no answer after the last call-back; left to the office");
            appointment
        }
        CallbackResult::Rescheduled => appointment,
    };
    tracing::info!(appointment_id = %appointment.id, call_id = %call.call_id,
        outcome = ?payload.outcome, %agent, "call-back outcome recorded");
    Ok(appointment)
}
