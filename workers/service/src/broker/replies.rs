//! Answers to request/reply messages: sent to the requester's `reply_to`
//! (typically RabbitMQ's direct reply-to, `amq.rabbitmq.reply-to`) through
//! the default exchange, carrying the request's `correlation_id` property so
//! the requester can match it.
//!
//! A reply is a courtesy, not state: the requester may be gone (then the
//! broker drops it); what it says stays readable over HTTP, and a repeated
//! command is answered again from what was stored.

use lapin::message::Delivery;
use lapin::types::FieldTable;
use serde::Serialize;
use uuid::Uuid;

use super::publisher::{OutgoingMessage, PendingConfirm, PublishError, Publisher};
use crate::contract::Event;

/// Where a delivery wants its answer, if anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    pub queue: String,
    /// The request's AMQP `correlation_id` property (else the envelope's).
    pub correlation_id: Option<String>,
}

impl ReplyTo {
    pub fn of(delivery: &Delivery) -> Option<ReplyTo> {
        let queue = delivery.properties.reply_to().as_ref()?.to_string();
        if queue.is_empty() {
            return None;
        }
        Some(ReplyTo {
            queue,
            correlation_id: delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|id| id.to_string()),
        })
    }
}

/// Sends `payload` as an event of `message_type` to `reply_to`, caused by
/// the message `causation_id`, and waits for the broker's confirm.
pub async fn send<P: Serialize>(
    publisher: &Publisher,
    reply_to: &ReplyTo,
    message_type: &str,
    envelope_correlation_id: &str,
    causation_id: Option<Uuid>,
    payload: P,
) -> Result<(), PublishError> {
    publish(
        publisher,
        reply_to,
        message_type,
        envelope_correlation_id,
        causation_id,
        payload,
    )
    .await?
    .wait()
    .await
}

/// As `send`, without waiting for the confirm: a batch's answers go out in
/// a burst and their confirms are awaited together.
pub async fn publish<P: Serialize>(
    publisher: &Publisher,
    reply_to: &ReplyTo,
    message_type: &str,
    envelope_correlation_id: &str,
    causation_id: Option<Uuid>,
    payload: P,
) -> Result<PendingConfirm, PublishError> {
    let correlation_id = reply_to
        .correlation_id
        .clone()
        .unwrap_or_else(|| envelope_correlation_id.to_owned());
    let event = Event {
        message_id: Uuid::now_v7(),
        message_type: message_type.to_owned(),
        schema_version: 1,
        occurred_at: chrono::Utc::now(),
        correlation_id: correlation_id.clone(),
        causation_id,
        payload,
    };
    let body = serde_json::to_vec(&event).map_err(|e| PublishError::Encode(e.to_string()))?;
    let message = OutgoingMessage {
        // The default exchange routes by queue name.
        exchange: String::new(),
        routing_key: reply_to.queue.clone(),
        message_id: event.message_id,
        message_type: message_type.to_owned(),
        correlation_id,
        body,
        headers: FieldTable::default(),
        // A requester that left is not an error.
        mandatory: false,
    };
    publisher.send(&message).await
}
