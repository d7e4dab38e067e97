//! Booking commands that arrive over the broker, applied with the same
//! operations as the HTTP API, answered with an `appointment.command_outcome`.
//! A refusal is an outcome too: it is kept, so a repeated command answers it
//! again, and nothing the refused command tried is written.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use super::receipt::Receipt;
use super::{callbacks, AppointmentError, BookingSettings, HoldRequest};
use crate::contract::appointments::{CommandOutcome, CommandResult, FreeSlot, Refusal};
use crate::domain::booking::BookingCommand;

/// The refusal `error` gives the sender of `command_type`.
pub fn refused(command_type: &str, error: &AppointmentError) -> CommandOutcome {
    let alternatives = match error {
        AppointmentError::SlotTaken { alternatives } => {
            alternatives.iter().map(FreeSlot::from).collect()
        }
        _ => Vec::new(),
    };
    CommandOutcome::refused(
        command_type,
        Refusal {
            code: error.code().to_owned(),
            message: error.to_string(),
            alternatives,
        },
    )
}

/// Applies `command` in a savepoint of `conn`'s transaction: its effects and
/// its outcome, or (refused) only its outcome. A database failure is an
/// `Err`, for the caller to retry.
pub async fn apply_in(
    conn: &mut PgConnection,
    settings: &BookingSettings,
    command: &BookingCommand,
    now: DateTime<Utc>,
) -> Result<CommandOutcome, AppointmentError> {
    let mut savepoint = conn.begin().await?;
    match attempt(&mut savepoint, settings, command, now).await {
        Ok(outcome) => {
            savepoint.commit().await?;
            Ok(outcome)
        }
        Err(error) if error.is_refusal() => {
            savepoint.rollback().await?;
            Ok(refused(command.message_type(), &error))
        }
        Err(error) => Err(error),
    }
}

async fn attempt(
    conn: &mut PgConnection,
    settings: &BookingSettings,
    command: &BookingCommand,
    now: DateTime<Utc>,
) -> Result<CommandOutcome, AppointmentError> {
    let outcome =
        |result, appointment: &crate::store::appointments::AppointmentRecord| CommandOutcome {
            command_type: command.message_type().to_owned(),
            outcome: result,
            appointment_id: Some(appointment.id),
            state: Some(appointment.state.as_str().to_owned()),
            hold_expires_at: None,
            receipt: None,
            refusal: None,
        };
    match command {
        BookingCommand::Hold(envelope) => {
            let payload = &envelope.payload;
            let request = HoldRequest {
                office: payload.office_aoo.clone(),
                desk: payload.desk.clone(),
                mode: payload.mode.clone(),
                starts_at: payload.starts_at,
                phone: payload.phone.clone(),
                notes: payload.notes.clone(),
                ticket_id: payload.ticket_id,
                on_behalf_of: payload.for_tax_code.as_ref().map(|t| t.to_string()),
                matricola: None,
                channel: Some(envelope.channel),
            };
            let hold = super::hold_in(
                conn,
                settings,
                &envelope.principal,
                &request,
                Some(&envelope.idempotency_key),
                &envelope.correlation_id,
                now,
            )
            .await?;
            Ok(CommandOutcome {
                hold_expires_at: Some(hold.appointment.hold_expires_at),
                ..outcome(CommandResult::Held, &hold.appointment)
            })
        }
        BookingCommand::Confirm(envelope) => {
            let answer = super::confirm_in(
                conn,
                settings,
                &envelope.principal,
                envelope.payload.appointment_id,
                &envelope.correlation_id,
                now,
            )
            .await?;
            let receipt = Receipt::of(settings, &answer.appointment);
            Ok(CommandOutcome {
                receipt: Some(serde_json::to_value(receipt)?),
                ..outcome(CommandResult::Confirmed, &answer.appointment)
            })
        }
        BookingCommand::Cancel(envelope) => {
            let answer = super::cancel_in(
                conn,
                &envelope.principal,
                envelope.payload.appointment_id,
                envelope.payload.reason.as_deref(),
                &envelope.correlation_id,
                now,
            )
            .await?;
            Ok(outcome(CommandResult::Cancelled, &answer.appointment))
        }
        BookingCommand::CallbackOutcome(envelope) => {
            let appointment = callbacks::record_outcome_in(conn, envelope, now).await?;
            Ok(outcome(CommandResult::Recorded, &appointment))
        }
    }
}
