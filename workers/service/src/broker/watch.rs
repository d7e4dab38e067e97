//! `sportello events`: watch what flows on the events exchange, for people
//! (the README's tour, an operator chasing a message), not for programs:
//! integrators bind queues of their own.
//!
//! The watcher's queue is exclusive and auto-deleted, so it leaves nothing
//! behind and never competes with the system's own consumers: every event is
//! copied to it by the exchange, not taken from anyone.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions};
use lapin::types::FieldTable;

use super::names::EVENTS_EXCHANGE;

/// What to watch and for how long.
pub struct Watch<'a> {
    pub amqp_url: &'a str,
    /// Topic pattern, e.g. `#` (everything) or `ticket.*`.
    pub binding: &'a str,
    /// Stop after this many events; `None`: until `within` ends or Ctrl-C.
    pub count: Option<usize>,
    /// Stop after this long; `None`: no limit.
    pub within: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("only {seen} event(s) arrived within {within:?}")]
    TooFew { seen: usize, within: Duration },
}

/// Prints one line per event, `<routing key> <body>`, as they arrive. With a
/// `count`, fewer events than that before `within` ends is an error, so a
/// script can wait for an event.
pub async fn watch(watch: Watch<'_>) -> Result<(), WatchError> {
    let connection = super::connect(watch.amqp_url, "sportello-events-watch").await?;
    let channel = connection.create_channel().await?;
    let queue = format!("sportello.watch.{}", uuid::Uuid::new_v4().simple());
    super::declare_private_queue(&channel, &queue).await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            EVENTS_EXCHANGE.into(),
            watch.binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "watch".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    eprintln!("watching {EVENTS_EXCHANGE} ({})", watch.binding);
    let deadline = watch
        .within
        .map(|within| tokio::time::Instant::now() + within);
    let mut seen = 0;
    while watch.count.is_none_or(|count| seen < count) {
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => consumer.next().await,
        };
        let Some(delivery) = next else { break };
        let delivery = delivery?;
        println!(
            "{} {}",
            delivery.routing_key,
            String::from_utf8_lossy(&delivery.data)
        );
        seen += 1;
    }
    super::close_quietly(&connection, "watched").await;
    match (watch.count, watch.within) {
        (Some(count), Some(within)) if seen < count => Err(WatchError::TooFew { seen, within }),
        _ => Ok(()),
    }
}
