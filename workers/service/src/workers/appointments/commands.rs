//! The booking commands consumer. Per batch (up to `APPOINTMENT_BATCH_SIZE`
//! commands, or what arrives within `BATCH_LINGER`): admit each (a message
//! that is no command is dead-lettered), apply the admitted ones in one
//! transaction (`appointments::commands::apply_batch`: inbox ▸ a savepoint
//! per command ▸ outcomes kept), commit, publish every answer on its
//! `reply_to` in one burst and await the confirms together (a refusal
//! nobody waits for is dead-lettered instead), then one multiple ack. A
//! command refused at admission, or given up on after crashing, is
//! dead-lettered and, when it has a `reply_to`, answered as refused too.
//!
//! A crash after the commit and before the ack redelivers the batch: the
//! inbox knows every command, so each is answered its kept outcome again.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::appointments::{commands, AppointmentError, BookingSettings};
use crate::broker::dead_letter;
use crate::broker::names::APPOINTMENT_COMMANDS_QUEUE;
use crate::broker::publisher::Publisher;
use crate::broker::replies::{self, ReplyTo};
use crate::broker::trace;
use crate::contract::appointments::{CommandOutcome, Refusal};
use crate::domain::booking::{admit_command, refused_command, AdmittedCommand};
use crate::runtime::WorkerError;
use crate::store;
use crate::workers::batch;

/// How long a batch waits for more commands after its first one.
const BATCH_LINGER: Duration = Duration::from_millis(2);
/// Batches one worker applies at once (a channel each): while one batch
/// waits for its answers' confirms, the other uses the database.
pub const BATCHES_AT_ONCE: usize = 2;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LAST_BACKOFF: Duration = Duration::from_secs(10);

/// Where the commands are consumed from and applied to.
pub struct Consumer<'a> {
    pub amqp_url: &'a str,
    pub pool: &'a PgPool,
    pub booking: &'a BookingSettings,
    /// Answers go out on this (confirmed) channel.
    pub replies: &'a Publisher,
    pub batch_size: usize,
    /// Crashes of one command before it is dead-lettered.
    pub max_attempts: u64,
}

/// A booking command and where to answer it.
struct Command {
    admitted: AdmittedCommand,
    reply_to: Option<ReplyTo>,
    /// Its position in the batch.
    position: usize,
    previous_deliveries: u64,
}

/// What becomes of one delivery of a batch.
#[derive(Debug)]
enum Fate {
    /// Applied (or repeated): answer it, or dead-letter a refusal nobody waits for.
    Settled(CommandOutcome),
    DeadLetter(String),
    /// Failed in a way a retry might fix: back to the queue.
    Requeue,
}

/// Why a group of commands could not be applied.
enum Failure {
    /// The transaction lost a deadlock or a serialization race: again at once.
    Race,
    /// The database is away: again after a backoff.
    Transient(String),
    /// Anything else: isolate the culprit.
    Crashed(String),
}

impl From<AppointmentError> for Failure {
    fn from(error: AppointmentError) -> Self {
        match error {
            AppointmentError::Database(sqlx::Error::Database(db))
                if matches!(db.code().as_deref(), Some("40001" | "40P01")) =>
            {
                Failure::Race
            }
            AppointmentError::Database(error) if store::is_transient(&error) => {
                Failure::Transient(error.to_string())
            }
            error => Failure::Crashed(error.to_string()),
        }
    }
}

impl Consumer<'_> {
    /// `BATCHES_AT_ONCE` channels on one connection, each consuming batches, until
    /// shutdown.
    pub async fn run(&self, shutdown: &CancellationToken) -> Result<(), WorkerError> {
        let (connection, dead_letters) =
            super::super::connect_publisher(self.amqp_url, "appointments-commands").await?;
        let channels = (0..BATCHES_AT_ONCE)
            .map(|_| self.consume_on_channel(&connection, &dead_letters, shutdown));
        let outcome = futures::future::try_join_all(channels).await;
        crate::broker::close_quietly(&connection, "shutdown").await;
        outcome.map(|_| ())
    }

    async fn consume_on_channel(
        &self,
        connection: &lapin::Connection,
        dead_letters: &Publisher,
        shutdown: &CancellationToken,
    ) -> Result<(), WorkerError> {
        let channel = connection.create_channel().await?;
        let prefetch = u16::try_from(self.batch_size * 2).unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("appointments-commands-{}", uuid::Uuid::new_v4());
        let mut consumer = channel
            .basic_consume(
                APPOINTMENT_COMMANDS_QUEUE.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = APPOINTMENT_COMMANDS_QUEUE, consumer = %tag, batch_size = self.batch_size, "consuming");
        while let Some(deliveries) =
            batch::gather(&mut consumer, self.batch_size, BATCH_LINGER, shutdown).await?
        {
            // A span per command, continuing its sender's trace (its answer
            // carries it), in a batch span linked to them all.
            let spans: Vec<tracing::Span> = deliveries
                .iter()
                .map(|d| trace::process_span(APPOINTMENT_COMMANDS_QUEUE, d))
                .collect();
            let batch_span = trace::batch_span(APPOINTMENT_COMMANDS_QUEUE, &spans);
            self.settle(&deliveries, &spans, dead_letters, shutdown)
                .instrument(batch_span)
                .await?;
        }
        channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        channel.close(200, "shutdown".into()).await?;
        Ok(())
    }

    /// One batch: admitted, applied, answered, acked.
    async fn settle(
        &self,
        deliveries: &[Delivery],
        spans: &[tracing::Span],
        dead_letters: &Publisher,
        shutdown: &CancellationToken,
    ) -> Result<(), WorkerError> {
        let mut fates: Vec<Fate> = deliveries.iter().map(|_| Fate::Requeue).collect();
        let mut commands = Vec::with_capacity(deliveries.len());
        let mut rejected = Vec::new();
        for (position, delivery) in deliveries.iter().enumerate() {
            match admit_command(delivery.routing_key.as_str(), &delivery.data) {
                Ok(admitted) => commands.push(Command {
                    admitted,
                    reply_to: ReplyTo::of(delivery),
                    position,
                    previous_deliveries: dead_letter::previous_deliveries(delivery),
                }),
                Err(rejection) => {
                    tracing::warn!(routing_key = %delivery.routing_key, %rejection, "booking command rejected");
                    // Its sender hears why, as from any refusal; the dead
                    // letter keeps it for the operators.
                    if let (Some(reply_to), Some(refused)) =
                        (ReplyTo::of(delivery), refused_command(&delivery.data))
                    {
                        rejected.push((position, reply_to, refused, super::refusal_of(&rejection)));
                    }
                    fates[position] = Fate::DeadLetter(format!("rejected: {rejection}"));
                }
            }
        }
        for (position, fate) in self.apply(&commands, shutdown).await? {
            fates[position] = fate;
        }

        // Every answer and dead letter in one burst, then their confirms.
        let mut sends = Vec::new();
        for (position, reply_to, refused, refusal) in rejected {
            let outcome = CommandOutcome::refused(refused.message_type, refusal);
            sends.push(
                replies::publish(
                    self.replies,
                    &reply_to,
                    "appointment.command_outcome",
                    &refused.correlation_id,
                    refused.message_id,
                    &outcome,
                )
                .instrument(spans[position].clone())
                .await?,
            );
        }
        let mut unanswered = Vec::new();
        for command in &commands {
            let admitted = &command.admitted;
            let outcome = match (&fates[command.position], &command.reply_to) {
                (Fate::Settled(outcome), _) => outcome,
                // Given up on: the sender hears that too.
                // Why stays in the dead letter: it is ours, not the sender's.
                (Fate::DeadLetter(_), Some(reply_to)) => {
                    let refusal = Refusal {
                        code: "failed".into(),
                        message: "the command could not be applied and was kept for the operators; send it again later".into(),
                        alternatives: Vec::new(),
                    };
                    sends.push(
                        replies::publish(
                            self.replies,
                            reply_to,
                            "appointment.command_outcome",
                            admitted.command.correlation_id(),
                            Some(admitted.idempotency.message_id),
                            &CommandOutcome::refused(admitted.command.message_type(), refusal),
                        )
                        .instrument(spans[command.position].clone())
                        .await?,
                    );
                    continue;
                }
                _ => continue,
            };
            match (&command.reply_to, &outcome.refusal) {
                (Some(reply_to), _) => sends.push(
                    replies::publish(
                        self.replies,
                        reply_to,
                        "appointment.command_outcome",
                        admitted.command.correlation_id(),
                        Some(admitted.idempotency.message_id),
                        outcome,
                    )
                    .instrument(spans[command.position].clone())
                    .await?,
                ),
                // No refusal is silent.
                (None, Some(refusal)) => unanswered.push((
                    command.position,
                    format!("refused ({}): {}", refusal.code, refusal.message),
                )),
                (None, None) => {}
            }
        }
        for (position, reason) in unanswered {
            fates[position] = Fate::DeadLetter(reason);
        }
        for (delivery, fate) in deliveries.iter().zip(&fates) {
            if let Fate::DeadLetter(reason) = fate {
                tracing::warn!(%reason, "booking command dead-lettered");
                let copy = dead_letter::dead_letter_copy(
                    delivery,
                    APPOINTMENT_COMMANDS_QUEUE,
                    None,
                    reason,
                );
                sends.push(dead_letters.send(&copy).await?);
            }
        }
        for outcome in futures::future::join_all(sends.into_iter().map(|s| s.wait())).await {
            outcome?;
        }
        let requeue: Vec<bool> = fates.iter().map(|f| matches!(f, Fate::Requeue)).collect();
        batch::acknowledge(deliveries, &requeue).await?;
        Ok(())
    }

    /// Applies the commands, isolating any that make the transaction fail:
    /// the group is retried while the database is away, and split into
    /// single commands when it fails otherwise; a single command that keeps
    /// failing is requeued, then dead-lettered after `max_attempts`.
    async fn apply(
        &self,
        commands: &[Command],
        shutdown: &CancellationToken,
    ) -> Result<Vec<(usize, Fate)>, WorkerError> {
        let mut fates = Vec::with_capacity(commands.len());
        let mut groups: Vec<Vec<&Command>> = vec![commands.iter().collect()];
        while let Some(group) = groups.pop() {
            if group.is_empty() {
                continue;
            }
            let mut backoff = FIRST_BACKOFF;
            loop {
                let failure = match self.apply_group(&group).await {
                    Ok(outcomes) => {
                        for (command, outcome) in group.iter().zip(outcomes) {
                            log_outcome(command, &outcome);
                            fates.push((command.position, Fate::Settled(outcome)));
                        }
                        break;
                    }
                    Err(failure) => failure,
                };
                match failure {
                    Failure::Race => {
                        tracing::debug!(size = group.len(), "batch lost a lock race; again");
                    }
                    Failure::Transient(error) => {
                        tracing::warn!(%error, retry_in = ?backoff, "database unavailable; holding the batch");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.cancelled() => {
                                return Err(WorkerError::Other(
                                    "stopped while the database was unavailable; the batch returns to the queue".into(),
                                ));
                            }
                        }
                        backoff = (backoff * 2).min(LAST_BACKOFF);
                    }
                    Failure::Crashed(error) if group.len() > 1 => {
                        tracing::warn!(%error, size = group.len(), "batch failed; applying its commands one by one");
                        groups.extend(group.into_iter().map(|command| vec![command]));
                        break;
                    }
                    Failure::Crashed(error) => {
                        let command = group[0];
                        let deliveries = command.previous_deliveries + 1;
                        let fate = if deliveries >= self.max_attempts {
                            Fate::DeadLetter(format!("failed {deliveries} times, last: {error}"))
                        } else {
                            tracing::warn!(message_id = %command.admitted.idempotency.message_id, %error, deliveries, "booking command failed; requeueing");
                            Fate::Requeue
                        };
                        fates.push((command.position, fate));
                        break;
                    }
                }
            }
        }
        Ok(fates)
    }

    /// One transaction for the group.
    async fn apply_group(&self, group: &[&Command]) -> Result<Vec<CommandOutcome>, Failure> {
        let admitted: Vec<&AdmittedCommand> = group.iter().map(|c| &c.admitted).collect();
        let mut tx = match self.pool.begin().await {
            Ok(tx) => tx,
            // Say why no connection could be had, not only "pool timed out".
            Err(error) if store::is_transient(&error) => {
                return Err(Failure::Transient(
                    store::outage::explain(self.pool, &error).await,
                ))
            }
            Err(error) => return Err(AppointmentError::from(error).into()),
        };
        // What the database keeps, to the microsecond: the answer says the same.
        let now = Utc::now().trunc_subsecs(6);
        let outcomes = commands::apply_batch(&mut tx, self.booking, &admitted, now).await?;
        tx.commit().await.map_err(AppointmentError::from)?;
        Ok(outcomes)
    }
}

fn log_outcome(command: &Command, outcome: &CommandOutcome) {
    let admitted = &command.admitted;
    tracing::info!(
        message_id = %admitted.idempotency.message_id,
        command = admitted.command.message_type(),
        correlation_id = %admitted.command.correlation_id(),
        outcome = ?outcome.outcome,
        appointment_id = ?outcome.appointment_id,
        refusal = ?outcome.refusal.as_ref().map(|r| &r.code),
        "booking command settled"
    );
}
