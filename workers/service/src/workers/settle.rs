//! The consumers that handle one message per transaction (registration,
//! notify): `consume_each` runs the queue and settles each message with its
//! `Handler`: read (or dead-lettered at once), then attempted until settled:
//! retried while the database is away (the message stays unacked),
//! dead-lettered at once when it can never succeed, and dead-lettered after
//! `HANDLER_MAX_ATTEMPTS` crashes, counting earlier deliveries.

use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use crate::broker::dead_letter;
use crate::runtime::WorkerError;

/// What to do with one delivery after trying it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Ack,
    DeadLetter(String),
}

/// Why one attempt did not settle the message.
#[derive(Debug)]
pub enum Failure {
    /// Worth waiting for (the database is away): try again after a backoff.
    Transient(String),
    /// Can never succeed: dead-letter with this reason.
    Refused(String),
    /// Unexpected: retried, dead-lettered once it has crashed too often.
    Crashed(String),
    /// Try again at once (e.g. the year changed under a registration).
    Again,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LAST_BACKOFF: Duration = Duration::from_secs(10);

/// Reads the delivery with `handler`, then attempts it until it is settled.
async fn settle<H: Handler>(
    handler: &H,
    delivery: &Delivery,
    max_attempts: u64,
    shutdown: &CancellationToken,
) -> Result<Verdict, WorkerError> {
    let (message, span) = match handler.read(delivery) {
        Ok(read) => read,
        Err(reason) => return Ok(Verdict::DeadLetter(reason)),
    };
    crate::broker::trace::continue_delivery(&span, delivery);
    let mut backoff = FIRST_BACKOFF;
    let mut crashes = dead_letter::previous_deliveries(delivery);
    loop {
        match handler.attempt(&message).instrument(span.clone()).await {
            Ok(()) => return Ok(Verdict::Ack),
            Err(Failure::Again) => continue,
            Err(Failure::Refused(reason)) => return Ok(Verdict::DeadLetter(reason)),
            Err(Failure::Transient(error)) => {
                tracing::warn!(parent: &span, %error, retry_in = ?backoff, "database unavailable; holding the message");
            }
            Err(Failure::Crashed(error)) => {
                crashes += 1;
                if crashes >= max_attempts {
                    return Ok(Verdict::DeadLetter(format!(
                        "failed {crashes} times, last: {error}"
                    )));
                }
                tracing::warn!(parent: &span, %error, "handling failed; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => {
                return Err(WorkerError::Other(
                    "stopped while a message was pending; it will be redelivered".into(),
                ));
            }
        }
        backoff = (backoff * 2).min(LAST_BACKOFF);
    }
}

/// What a queue consumed by `consume_each` does with one message.
pub trait Handler: Sync {
    type Message: Sync;

    /// The message in a delivery (its body, and for commands its routing key
    /// and reply-to), with the span its attempts run in (not yet entered: it
    /// is made to continue the delivery's trace); `Err(reason)` dead-letters
    /// it at once.
    fn read(&self, delivery: &Delivery) -> Result<(Self::Message, Span), String>;

    /// One attempt to apply the message (one transaction).
    fn attempt<'a>(
        &'a self,
        message: &'a Self::Message,
    ) -> impl Future<Output = Result<(), Failure>> + Send + 'a;
}

/// Where and how `consume_each` consumes.
pub struct Consuming<'a> {
    pub amqp_url: &'a str,
    /// Names the connection and the consumer tag.
    pub name: &'a str,
    pub queue: &'a str,
    /// Messages handled at once.
    pub concurrency: usize,
    /// Unacknowledged messages the broker sends ahead.
    pub prefetch: u16,
    /// Crashes of one message before it is dead-lettered.
    pub max_attempts: u64,
}

/// Consumes `queue` until shutdown: each message is handled, dead-lettered
/// with its reason when the handler says so (waiting for the broker's
/// confirm), then acked. In-flight messages finish, or stay unacked for
/// redelivery, when shutdown stops the stream.
pub async fn consume_each(
    consuming: Consuming<'_>,
    handler: &impl Handler,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    let Consuming {
        amqp_url,
        name,
        queue,
        concurrency,
        prefetch,
        max_attempts,
    } = consuming;
    let (connection, publisher) = super::connect_publisher(amqp_url, name).await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!("{name}-{}", uuid::Uuid::new_v4());
    let consumer = channel
        .basic_consume(
            queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue, concurrency, "consuming");
    consumer
        .take_until(shutdown.cancelled())
        .map_err(WorkerError::from)
        .try_for_each_concurrent(concurrency.max(1), |delivery| {
            let publisher = &publisher;
            async move {
                let verdict = settle(handler, &delivery, max_attempts, shutdown).await?;
                if let Verdict::DeadLetter(reason) = verdict {
                    tracing::warn!(%reason, "message dead-lettered");
                    dead_letter::send(publisher, &delivery, queue, &reason).await?;
                }
                delivery.acker.ack(BasicAckOptions::default()).await?;
                Ok(())
            }
        })
        .await?;
    if !shutdown.is_cancelled() {
        return Err(WorkerError::ConsumerCancelled);
    }
    channel
        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await?;
    connection.close(200, "shutdown".into()).await?;
    Ok(())
}
