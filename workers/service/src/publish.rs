//! `sportello publish`: the integrator's helper. It checks a message exactly
//! as the intake worker will (schema, tax codes, channel rules) and publishes
//! it with a publisher confirm, so a mistake is caught before it is sent.

use lapin::types::FieldTable;
use uuid::Uuid;

use crate::broker::names::INTAKE_EXCHANGE;
use crate::broker::publisher::{OutgoingMessage, PublishError};
use crate::broker::resend::{self, Resending};
use crate::domain::intake::{admit, Rejection};

/// Why nothing was published. The messages carry their cause's text, so
/// the cause is not also a `source` (printed with `{:#}`, the reason would
/// read twice).
#[derive(Debug, thiserror::Error)]
pub enum PublishCommandError {
    #[error("message refused before publishing: {0}")]
    Invalid(Rejection),
    #[error("cannot connect to the broker: {0}")]
    Connect(lapin::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl From<Rejection> for PublishCommandError {
    fn from(rejection: Rejection) -> Self {
        PublishCommandError::Invalid(rejection)
    }
}

impl From<lapin::Error> for PublishCommandError {
    fn from(error: lapin::Error) -> Self {
        PublishCommandError::Connect(error)
    }
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

/// Publishes `raw` on the broker at `addresses` (one AMQP URL, or a
/// cluster's nodes comma separated).
pub async fn publish(addresses: &str, raw: &[u8]) -> Result<Published, PublishCommandError> {
    let routing_key = routing_key_of(raw).unwrap_or_default();
    let admitted = admit(&routing_key, raw)?;
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
    // A full intake queue nacks (back-pressure), a lost node takes its
    // confirms with it: either way the same message (same message id) is
    // sent again with backoff, on the next node if need be, never dropped
    // and never under a new id. The intake's inbox ignores a second copy.
    resend::send_all(
        addresses,
        "sportello-publish",
        std::slice::from_ref(&message),
        Resending {
            window: 1,
            ..Resending::default()
        },
        &std::sync::atomic::AtomicUsize::new(0),
    )
    .await?;
    Ok(Published {
        message_id: admitted.idempotency.message_id,
        routing_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refusal_is_printed_once() {
        let error = publish("amqp://127.0.0.1:1/none", b"{\"type\": 1}")
            .await
            .unwrap_err();
        let printed = format!("{:#}", anyhow::Error::from(error));
        let reason = printed
            .strip_prefix("message refused before publishing: ")
            .unwrap_or_else(|| panic!("{printed}"));
        assert!(!reason.is_empty());
        assert!(!reason.contains("refused before publishing"), "{printed}");
        assert_eq!(
            printed.matches(reason.split(':').next().unwrap()).count(),
            1,
            "{printed}"
        );
    }
}
