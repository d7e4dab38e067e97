//! `sportello publish`: the integrator's helper. It checks a message exactly
//! as the intake worker will (schema, tax codes, channel rules) and publishes
//! it with a publisher confirm, so a mistake is caught before it is sent.

use lapin::types::FieldTable;
use uuid::Uuid;

use crate::broker::names::INTAKE_EXCHANGE;
use crate::broker::publisher::{OutgoingMessage, PublishError, Publisher};
use crate::broker::{self};
use crate::domain::intake::{admit, Rejection};

#[derive(Debug, thiserror::Error)]
pub enum PublishCommandError {
    #[error("message refused before publishing: {0}")]
    Invalid(#[from] Rejection),
    #[error("cannot connect to the broker: {0}")]
    Connect(#[from] lapin::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// What was published.
#[derive(Debug)]
pub struct Published {
    pub message_id: Uuid,
    pub routing_key: String,
}

/// The routing key a message must be published with: `<channel>.<type>`.
pub fn routing_key_of(raw: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(raw).ok()?;
    Some(format!(
        "{}.{}",
        value["channel"].as_str()?,
        value["type"].as_str()?
    ))
}

pub async fn publish(amqp_url: &str, raw: &[u8]) -> Result<Published, PublishCommandError> {
    let routing_key = routing_key_of(raw).unwrap_or_default();
    let admitted = admit(&routing_key, raw)?;
    let connection = broker::connect(amqp_url, "sportello-publish").await?;
    let publisher = Publisher::open(&connection).await?;
    let message = OutgoingMessage {
        exchange: INTAKE_EXCHANGE.into(),
        routing_key: routing_key.clone(),
        message_id: admitted.idempotency.message_id,
        message_type: admitted.idempotency.message_type.to_owned(),
        correlation_id: admitted.message.correlation_id().to_owned(),
        body: raw.to_vec(),
        headers: FieldTable::default(),
        mandatory: true,
    };
    publisher.send(&message).await?.wait().await?;
    connection.close(200, "published".into()).await?;
    Ok(Published {
        message_id: admitted.idempotency.message_id,
        routing_key,
    })
}
