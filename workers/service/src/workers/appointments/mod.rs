//! Appointments worker: booking over the broker. It consumes the booking
//! commands in batches (commands.rs: one transaction per batch, a
//! savepoint per command) and the availability queries (read only, one at
//! a time through `settle`), answers each on its `reply_to`, and keeps a
//! call-back queue declared for every desk with a phone calendar.
//!
//! A command's answer is sent after its transaction committed and before
//! the ack: a crash in between redelivers the command, which finds its
//! outcome kept and answers it again. A refused command with nobody to
//! answer is dead-lettered with the reason, so no refusal is silent; one
//! refused at admission is dead-lettered and, when it has a `reply_to`,
//! answered with the same reason.

mod commands;

pub use commands::BATCHES_AT_ONCE;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use lapin::message::Delivery;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use crate::appointments::{self, AppointmentError, BookingSettings};
use crate::broker::names::APPOINTMENT_QUERIES_QUEUE;
use crate::broker::publisher::Publisher;
use crate::broker::replies::{self, ReplyTo};
use crate::broker::users::BrokerUser;
use crate::config::Settings;
use crate::contract::appointments::{Availability, AvailabilityRequested, FreeSlot, Refusal};
use crate::contract::Envelope;
use crate::domain::admission::Rejection;
use crate::domain::appointment::Mode;
use crate::domain::booking::{admit_query, refused_query, RefusedMessage};
use crate::runtime::{Worker, WorkerError};
use crate::store::{self, booking_commands};
use crate::workers::settle::{consume_each, Consuming, Failure, Handler};

/// Availability queries answered at once by one worker.
const QUERIES_AT_ONCE: usize = 8;
/// How often the call-back queues are declared again (a desk may have got
/// a phone calendar since).
const DECLARE_EVERY: Duration = Duration::from_secs(60);

pub struct AppointmentsWorker {
    settings: Arc<Settings>,
}

impl AppointmentsWorker {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }
}

impl Worker for AppointmentsWorker {
    fn name(&self) -> String {
        "appointments".into()
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        Box::pin(
            self.serve(shutdown)
                .instrument(tracing::info_span!("appointments")),
        )
    }
}

impl AppointmentsWorker {
    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let settings = &self.settings;
        let connections = commands::BATCHES_AT_ONCE + QUERIES_AT_ONCE + 2;
        let pool = store::connect_lazy(&settings.database_url, connections as u32)?;
        // As the kind's own user: it answers on `reply_to` and declares the
        // call-back queues, and may do nothing else (`broker::users`).
        let addresses = settings.broker_addresses_for(BrokerUser::Appointments);
        let (connection, replies) =
            super::connect_publisher(&addresses, "sportello-appointments-replies").await?;
        let booking = BookingSettings::from_settings(settings);
        let commands = commands::Consumer {
            amqp_url: &addresses,
            pool: &pool,
            booking: &booking,
            replies: &replies,
            batch_size: usize::from(settings.appointment_batch_size),
            max_attempts: settings.handler_max_attempts,
        };
        let queries = Queries {
            pool: pool.clone(),
            replies: &replies,
        };
        let consuming = Consuming {
            amqp_url: &addresses,
            name: "appointments-queries",
            queue: APPOINTMENT_QUERIES_QUEUE,
            concurrency: QUERIES_AT_ONCE,
            prefetch: u16::try_from(QUERIES_AT_ONCE * 2).unwrap_or(u16::MAX),
            max_attempts: settings.handler_max_attempts,
        };
        // Before any command is answered: an agent told of a confirmed phone
        // appointment finds its desk's queue.
        let declaring = connection.create_channel().await?;
        declare_call_queues(&pool, &declaring).await?;
        let result = tokio::try_join!(
            commands.run(&shutdown),
            consume_each(consuming, &queries, &shutdown),
            keep_call_queues_declared(&pool, &declaring, &shutdown),
        );
        crate::broker::close_quietly(&connection, "shutdown").await;
        pool.close().await;
        result.map(|_| ())
    }
}

/// Declares the call-back queue of every desk with a phone calendar.
async fn declare_call_queues(pool: &PgPool, channel: &lapin::Channel) -> Result<(), WorkerError> {
    let desks = {
        let mut conn = pool.acquire().await?;
        booking_commands::phone_desks(&mut conn).await?
    };
    for (office, desk) in &desks {
        crate::broker::callbacks::declare_queue(channel, office, desk).await?;
    }
    Ok(())
}

/// Declares the call-back queues again every `DECLARE_EVERY` (a desk may
/// have got a phone calendar since), until shutdown.
async fn keep_call_queues_declared(
    pool: &PgPool,
    channel: &lapin::Channel,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(DECLARE_EVERY) => {}
        }
        declare_call_queues(pool, channel).await?;
    }
}

fn failure(error: AppointmentError) -> Failure {
    match error {
        AppointmentError::Database(error) if store::is_transient(&error) => {
            Failure::Transient(error.to_string())
        }
        error => Failure::Crashed(error.to_string()),
    }
}

/// What a sender is told of a message refused at admission (its dead
/// letter's reason is `rejected: ` and the same message).
fn refusal_of(rejection: &Rejection) -> Refusal {
    Refusal {
        code: rejection.code().into(),
        message: rejection.to_string(),
        alternatives: Vec::new(),
    }
}

/// An availability query and where to answer it.
struct Query {
    asked: Asked,
    reply_to: ReplyTo,
}

enum Asked {
    Admitted(Envelope<AvailabilityRequested>),
    /// Refused at admission: answered with the reason, then dead-lettered.
    Rejected {
        query: RefusedMessage,
        answer: Availability,
        reason: String,
    },
}

struct Queries<'a> {
    pool: PgPool,
    replies: &'a Publisher,
}

impl Handler for Queries<'_> {
    type Message = Query;

    fn read(&self, delivery: &Delivery) -> Result<(Query, Span), String> {
        let admitted = admit_query(delivery.routing_key.as_str(), &delivery.data);
        let reply_to = ReplyTo::of(delivery);
        let (asked, reply_to) = match (admitted, reply_to) {
            (Ok(envelope), Some(reply_to)) => (Asked::Admitted(envelope), reply_to),
            (Ok(_), None) => {
                return Err(
                    "an availability query needs reply_to: there is nobody to answer".into(),
                )
            }
            (Err(rejection), reply_to) => {
                let reason = format!("rejected: {rejection}");
                let (Some(reply_to), Some((query, [office_aoo, desk, mode]))) =
                    (reply_to, refused_query(&delivery.data))
                else {
                    return Err(reason);
                };
                let error = refusal_of(&rejection);
                let answer = Availability {
                    office_aoo,
                    desk,
                    mode,
                    slots: Vec::new(),
                    error: Some(error),
                };
                let rejected = Asked::Rejected {
                    query,
                    answer,
                    reason,
                };
                (rejected, reply_to)
            }
        };
        let (message_id, correlation_id) = match &asked {
            Asked::Admitted(envelope) => (Some(envelope.message_id), &envelope.correlation_id),
            Asked::Rejected { query, .. } => (query.message_id, &query.correlation_id),
        };
        let span = tracing::info_span!(
            "availability_query",
            message_id = ?message_id,
            correlation_id = %correlation_id,
        );
        Ok((Query { asked, reply_to }, span))
    }

    async fn attempt(&self, query: &Query) -> Result<(), Failure> {
        let envelope = match &query.asked {
            Asked::Admitted(envelope) => envelope,
            Asked::Rejected {
                query: refused,
                answer,
                reason,
            } => {
                replies::send(
                    self.replies,
                    &query.reply_to,
                    "appointment.availability",
                    &refused.correlation_id,
                    refused.message_id,
                    answer,
                )
                .await
                .map_err(|e| Failure::Transient(format!("answering: {e}")))?;
                return Err(Failure::Refused(reason.clone()));
            }
        };
        let asked = &envelope.payload;
        let (slots, error) = match self.availability(asked).await {
            Ok(slots) => (slots, None),
            Err(error) if error.is_refusal() => {
                let refusal = Refusal {
                    code: error.code().as_str().into(),
                    message: error.to_string(),
                    alternatives: Vec::new(),
                };
                (Vec::new(), Some(refusal))
            }
            Err(error) => return Err(failure(error)),
        };
        let answer = Availability {
            office_aoo: asked.office_aoo.clone(),
            desk: asked.desk.clone(),
            mode: asked.mode.clone(),
            slots,
            error,
        };
        replies::send(
            self.replies,
            &query.reply_to,
            "appointment.availability",
            &envelope.correlation_id,
            Some(envelope.message_id),
            &answer,
        )
        .await
        .map_err(|e| Failure::Transient(format!("answering: {e}")))
    }
}

impl Queries<'_> {
    async fn availability(
        &self,
        asked: &AvailabilityRequested,
    ) -> Result<Vec<FreeSlot>, AppointmentError> {
        let mode = Mode::parse(&asked.mode).map_err(|e| AppointmentError::Invalid(e.0))?;
        let mut conn = self.pool.acquire().await?;
        let availability = appointments::availability(
            &mut conn,
            &asked.office_aoo,
            &asked.desk,
            mode,
            asked.from,
            asked.to,
            Utc::now(),
        )
        .await?;
        Ok(availability.slots.iter().map(FreeSlot::from).collect())
    }
}
