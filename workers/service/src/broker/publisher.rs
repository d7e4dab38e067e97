//! Publishing with publisher confirms: a message counts as sent only once the
//! broker has confirmed it.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use lapin::{Confirmation, PublisherConfirm};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: Uuid,
    pub message_type: String,
    pub correlation_id: String,
    pub body: Vec<u8>,
    /// AMQP headers; `traceparent`/`tracestate` are the sender's span's
    /// unless they name a trace already (`broker::trace`).
    pub headers: FieldTable,
    /// Unroutable is an error (dead letters must land somewhere); events
    /// nobody listens to yet are not.
    pub mandatory: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker error while publishing: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("broker refused message {0} (nack)")]
    Nacked(Uuid),
    #[error("broker could not route message {0}")]
    Unroutable(Uuid),
    #[error("message could not be encoded: {0}")]
    Encode(String),
    /// No confirm within `CONFIRM_PATIENCE`: not sent, as far as the sender
    /// knows; it is sent again under the same message id.
    #[error("broker did not confirm message {0} in time")]
    Unconfirmed(Uuid),
}

impl PublishError {
    /// Whether sending again (same message id, maybe another node) may
    /// succeed: the connection went away, the broker nacked or did not
    /// confirm. Unroutable and unencodable messages stay so.
    pub fn is_worth_resending(&self) -> bool {
        match self {
            PublishError::Nacked(_) | PublishError::Unconfirmed(_) => true,
            // A refusal (access, a missing exchange) stays a refusal; a node
            // closing its connections (320, stop_app) or failing (541) is a
            // node lost, like I/O errors, heartbeats and closed channels.
            PublishError::Amqp(error) => match error.kind() {
                lapin::ErrorKind::ProtocolError(amqp) => matches!(amqp.get_id(), 320 | 541),
                _ => true,
            },
            PublishError::Unroutable(_) | PublishError::Encode(_) => false,
        }
    }
}

/// How long a confirm may take before the message counts as not sent. A
/// quorum queue electing a new leader confirms within seconds.
pub const CONFIRM_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// A channel in confirm mode.
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub async fn open(connection: &Connection) -> Result<Self, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self { channel })
    }

    /// Sends without waiting for the confirm; await the returned handle.
    /// A send the connection does not take within `CONFIRM_PATIENCE` (a
    /// broker channel blocked on a queue whose leader is gone) is
    /// `Unconfirmed`: not sent.
    pub async fn send(&self, message: &OutgoingMessage) -> Result<PendingConfirm, PublishError> {
        self.send_within(message, CONFIRM_PATIENCE).await
    }

    pub async fn send_within(
        &self,
        message: &OutgoingMessage,
        patience: std::time::Duration,
    ) -> Result<PendingConfirm, PublishError> {
        tokio::time::timeout(patience, self.send_now(message))
            .await
            .map_err(|_| PublishError::Unconfirmed(message.message_id))?
    }

    async fn send_now(&self, message: &OutgoingMessage) -> Result<PendingConfirm, PublishError> {
        // Every message carries a trace: the one its headers name (a relayed
        // event's, a dead letter's original), else the sender's span.
        let mut headers = message.headers.clone();
        super::trace::set_for_sending(&mut headers);
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message.message_id.to_string().into())
            .with_type(message.message_type.as_str().into())
            .with_correlation_id(message.correlation_id.as_str().into())
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
            .with_headers(headers);
        let confirm = self
            .channel
            .basic_publish(
                message.exchange.as_str().into(),
                message.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: message.mandatory,
                    ..Default::default()
                },
                &message.body,
                properties,
            )
            .await?;
        Ok(PendingConfirm {
            message_id: message.message_id,
            confirm,
        })
    }

    /// Publishes every message and waits until the broker confirmed them all.
    pub async fn publish_all(&self, messages: &[OutgoingMessage]) -> Result<(), PublishError> {
        // Handing every frame to the connection before waiting for any lets
        // the I/O loop write them in a few syscalls instead of one per message.
        // Each send queues its frame on first poll, so the order is kept.
        let sends = futures::future::join_all(messages.iter().map(|m| self.send(m))).await;
        let mut confirms = Vec::with_capacity(sends.len());
        for send in sends {
            confirms.push(send?.wait());
        }
        for outcome in futures::future::join_all(confirms).await {
            outcome?;
        }
        Ok(())
    }

    /// Sends and, while the broker nacks (a bounded queue is full: back-
    /// pressure, `x-overflow: reject-publish`), sends the same message (same
    /// message id) again after a growing pause, until it is confirmed or
    /// `backoff` gives up. Returns how many attempts it took.
    pub async fn send_until_accepted(
        &self,
        message: &OutgoingMessage,
        backoff: &NackBackoff,
    ) -> Result<u32, PublishError> {
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            match self.send(message).await?.wait().await {
                Err(PublishError::Nacked(id)) => match backoff.pause(attempt, started.elapsed()) {
                    Some(pause) => {
                        tracing::debug!(message_id = %id, attempt, ?pause, "nacked (queue full); sending again");
                        tokio::time::sleep(pause).await;
                        attempt += 1;
                    }
                    None => return Err(PublishError::Nacked(id)),
                },
                Err(other) => return Err(other),
                Ok(()) => return Ok(attempt),
            }
        }
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

/// Pauses between attempts after nacks: doubling from `first` up to `max`,
/// giving up once `give_up_after` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackBackoff {
    pub first: std::time::Duration,
    pub max: std::time::Duration,
    pub give_up_after: std::time::Duration,
}

impl Default for NackBackoff {
    fn default() -> Self {
        NackBackoff {
            first: std::time::Duration::from_millis(50),
            max: std::time::Duration::from_secs(5),
            give_up_after: std::time::Duration::from_secs(300),
        }
    }
}

impl NackBackoff {
    /// The pause after the `attempt`-th nack, or `None` to give up.
    pub fn pause(&self, attempt: u32, elapsed: std::time::Duration) -> Option<std::time::Duration> {
        if elapsed >= self.give_up_after {
            return None;
        }
        let doubled = self
            .first
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
        Some(doubled.min(self.max))
    }
}

pub struct PendingConfirm {
    message_id: Uuid,
    confirm: PublisherConfirm,
}

impl PendingConfirm {
    /// The broker's answer, or `Unconfirmed` after `CONFIRM_PATIENCE`: a
    /// confirm lost with its node must not hang the sender.
    pub async fn wait(self) -> Result<(), PublishError> {
        self.wait_within(CONFIRM_PATIENCE).await
    }

    pub fn message_id(&self) -> Uuid {
        self.message_id
    }

    pub async fn wait_within(self, patience: std::time::Duration) -> Result<(), PublishError> {
        let answer = tokio::time::timeout(patience, self.confirm)
            .await
            .map_err(|_| PublishError::Unconfirmed(self.message_id))?;
        match answer? {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable(self.message_id)),
            Confirmation::Nack(_) => Err(PublishError::Nacked(self.message_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NackBackoff;
    use std::time::Duration;

    #[test]
    fn nacks_back_off_doubling_to_a_ceiling_then_give_up() {
        let backoff = NackBackoff {
            first: Duration::from_millis(50),
            max: Duration::from_millis(300),
            give_up_after: Duration::from_secs(10),
        };
        let pauses: Vec<_> = (1..=5)
            .map(|n| backoff.pause(n, Duration::ZERO).unwrap().as_millis())
            .collect();
        assert_eq!(pauses, [50, 100, 200, 300, 300]);
        assert_eq!(backoff.pause(99, Duration::from_secs(10)), None);
    }
}
