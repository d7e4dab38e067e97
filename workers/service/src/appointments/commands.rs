//! Booking commands that arrive over the broker, applied with the same
//! operations as the HTTP API, answered with an `appointment.command_outcome`.
//! A refusal is an outcome too: it is kept, so a repeated command answers it
//! again, and nothing the refused command tried is written.
//!
//! Commands are applied in batches (`apply_batch`): one transaction, one
//! savepoint per command, so a refusal undoes only its own command.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use super::lookups::Lookups;
use super::receipt::Receipt;
use super::{callbacks, AppointmentError, BookingSettings, HoldRequest};
use crate::contract::appointments::{CommandOutcome, CommandResult, FreeSlot, Refusal};
use crate::domain::booking::{
    application_order, hold_subject, repeats, AdmittedCommand, BookingCommand,
};
use crate::store::booking_commands;
use crate::store::inbox::{self, InboxOutcome};

/// Applies a batch of admitted commands in the caller's transaction and
/// returns each one's outcome, in the batch's order. The inbox tells which
/// are new: those are applied in `application_order`, each in its savepoint,
/// and their outcomes (refusals included) kept with one insert; a repeat
/// answers the outcome kept before, or the one this very batch decided. A
/// database failure is an `Err`: roll the whole transaction back and retry.
pub async fn apply_batch(
    conn: &mut PgConnection,
    settings: &BookingSettings,
    batch: &[&AdmittedCommand],
    now: DateTime<Utc>,
) -> Result<Vec<CommandOutcome>, AppointmentError> {
    let identities: Vec<_> = batch.iter().map(|c| &c.idempotency).collect();
    let seen = inbox::record(conn, &identities).await?;
    if seen.len() != batch.len() {
        return Err(AppointmentError::Invalid(
            "the inbox answered for another number of commands".into(),
        ));
    }
    let new: Vec<usize> = (0..batch.len())
        .filter(|&position| seen[position] == InboxOutcome::New)
        .collect();
    let new_commands: Vec<&BookingCommand> = new.iter().map(|&p| &batch[p].command).collect();
    lock_citizens(conn, &new_commands).await?;
    let mut outcomes: Vec<Option<CommandOutcome>> = vec![None; batch.len()];
    let mut lookups = Lookups::default();
    for index in application_order(&new_commands) {
        let position = new[index];
        let outcome = apply_in(conn, settings, &mut lookups, &batch[position].command, now).await?;
        outcomes[position] = Some(outcome);
    }
    let kept: Vec<_> = new
        .iter()
        .filter_map(|&p| Some((&batch[p].idempotency, outcomes[p].as_ref()?)))
        .collect();
    booking_commands::record_outcomes(conn, &kept).await?;
    for (position, seen) in seen.iter().enumerate() {
        let command = batch[position];
        let command_type = command.command.message_type();
        let outcome = match seen {
            InboxOutcome::New => continue,
            InboxOutcome::Duplicate => {
                let decided_now = new
                    .iter()
                    .find(|&&p| repeats(&batch[p].idempotency, &command.idempotency))
                    .and_then(|&p| outcomes[p].clone());
                match decided_now {
                    Some(outcome) => outcome,
                    None => booking_commands::stored_outcome(conn, &command.idempotency)
                        .await?
                        // Applied before outcomes were kept, or purged since: say so.
                        .unwrap_or_else(|| already_applied(command_type)),
                }
            }
            InboxOutcome::KeyReused => refused(command_type, &AppointmentError::KeyReused),
            reused @ InboxOutcome::MessageIdReused => CommandOutcome::refused(
                command_type,
                Refusal {
                    code: "message_id_reused".into(),
                    message: reused.refusal(&command.idempotency).unwrap_or_default(),
                    alternatives: Vec::new(),
                },
            ),
        };
        outcomes[position] = Some(outcome);
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.ok_or_else(|| AppointmentError::Invalid("a command without outcome".into()))
        })
        .collect()
}

/// Takes the lock of every citizen the batch's holds are for, in one order,
/// before any slot row: each hold takes its citizen's lock again (the
/// booking limits), and two batches taking them as they go could deadlock
/// on a citizen and a slot.
async fn lock_citizens(
    conn: &mut PgConnection,
    commands: &[&BookingCommand],
) -> Result<(), AppointmentError> {
    let mut citizens: Vec<&str> = commands
        .iter()
        .filter_map(|command| match command {
            BookingCommand::Hold(envelope) => hold_subject(envelope).map(|c| c.as_str()),
            _ => None,
        })
        .collect();
    citizens.sort_unstable();
    citizens.dedup();
    for citizen in citizens {
        crate::store::appointments::lock_citizen(conn, citizen).await?;
    }
    Ok(())
}

/// The answer to a repeat whose outcome is no longer kept.
fn already_applied(command_type: &str) -> CommandOutcome {
    CommandOutcome::refused(
        command_type,
        Refusal {
            code: "already_applied".into(),
            message: "this command was applied before; its outcome is no longer kept".into(),
            alternatives: Vec::new(),
        },
    )
}

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
            code: error.code().as_str().to_owned(),
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
    lookups: &mut Lookups,
    command: &BookingCommand,
    now: DateTime<Utc>,
) -> Result<CommandOutcome, AppointmentError> {
    let mut savepoint = conn.begin().await?;
    match attempt(&mut savepoint, settings, lookups, command, now).await {
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
    lookups: &mut Lookups,
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
                gestione: payload.gestione.clone(),
                channel: Some(envelope.channel),
                citizen_name: payload.citizen_name.clone(),
            };
            let hold = super::hold_in(
                conn,
                settings,
                lookups,
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
