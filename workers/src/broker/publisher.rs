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
}

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
    pub async fn send(&self, message: &OutgoingMessage) -> Result<PendingConfirm, PublishError> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message.message_id.to_string().into())
            .with_type(message.message_type.as_str().into())
            .with_correlation_id(message.correlation_id.as_str().into())
            .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64)
            .with_headers(message.headers.clone());
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

    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}

pub struct PendingConfirm {
    message_id: Uuid,
    confirm: PublisherConfirm,
}

impl PendingConfirm {
    pub async fn wait(self) -> Result<(), PublishError> {
        match self.confirm.await? {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable(self.message_id)),
            Confirmation::Nack(_) => Err(PublishError::Nacked(self.message_id)),
        }
    }
}
