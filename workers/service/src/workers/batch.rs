//! Consuming in batches (intake, booking commands): the first delivery, then
//! whatever else arrives within a short linger, applied in one transaction;
//! afterwards the batch is settled with the broker in one multiple ack.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::Consumer;
use tokio_util::sync::CancellationToken;

use crate::runtime::WorkerError;

/// The next batch: waits for one delivery, then takes what has arrived or
/// arrives within `linger`, up to `size`. `None` once `shutdown` fires.
pub async fn gather(
    consumer: &mut Consumer,
    size: usize,
    linger: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<Delivery>>, WorkerError> {
    let first = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return Ok(None),
        next = consumer.next() => next,
    };
    let mut batch = vec![first.ok_or(WorkerError::ConsumerCancelled)??];
    // Under load one transaction then carries many messages; when idle a
    // lone message waits only the linger.
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < size.max(1) {
        // What has already arrived needs no timer.
        let next = match consumer.next().now_or_never() {
            Some(next) => next,
            None => match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        batch.push(next.ok_or(WorkerError::ConsumerCancelled)??);
    }
    Ok(Some(batch))
}

/// Settles a batch whose fate is durable: the deliveries `requeue` marks go
/// back to the queue (nack), then one multiple ack on the last of the others
/// covers them all. Every delivery of the channel up to that tag belongs to
/// this batch or to one settled before, since a channel runs one batch at a
/// time.
pub async fn acknowledge(batch: &[Delivery], requeue: &[bool]) -> Result<(), lapin::Error> {
    let mut last_settled = None;
    for (delivery, again) in batch.iter().zip(requeue) {
        if *again {
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await?;
        } else {
            last_settled = Some(delivery);
        }
    }
    if let Some(delivery) = last_settled {
        delivery
            .acker
            .ack(BasicAckOptions { multiple: true })
            .await?;
    }
    Ok(())
}
