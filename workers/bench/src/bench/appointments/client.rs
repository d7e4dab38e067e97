//! The bench's channel side: clients that publish booking commands with
//! `reply_to` (RabbitMQ's direct reply-to) and wait for the answer carrying
//! their correlation id, as the contact centre does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use uuid::Uuid;

use sportello::broker;
use sportello::broker::names::INTAKE_EXCHANGE;
use sportello::contract::CodiceFiscale;

/// How long a client waits for one answer before the run is declared failed.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    #[error("the reply consumer stopped")]
    RepliesStopped,
    #[error("unreadable answer: {0}")]
    Answer(String),
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// One connection and channel: commands are published on it and their
/// answers come back to it (direct reply-to answers the publishing channel).
pub struct Requester {
    connection: Connection,
    channel: Channel,
    waiting: Waiting,
}

/// What a command was answered, and how long the answer took.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `held`, `confirmed`, `refused`, ...
    pub outcome: String,
    pub appointment_id: Option<Uuid>,
    /// The refusal's code, when refused.
    pub refusal: Option<String>,
    pub latency: Duration,
}

impl Requester {
    pub async fn open(amqp_url: &str, name: &str) -> Result<Requester, ClientError> {
        let connection = broker::connect(amqp_url, name).await?;
        let channel = connection.create_channel().await?;
        let mut replies = channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                name.into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let waiting: Waiting = Arc::default();
        let dispatch = waiting.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = replies.next().await {
                let Some(id) = delivery.properties.correlation_id().as_ref() else {
                    continue;
                };
                let sender = dispatch.lock().ok().and_then(|mut w| w.remove(id.as_str()));
                if let Some(sender) = sender {
                    let _ = sender.send(delivery.data);
                }
            }
        });
        Ok(Requester {
            connection,
            channel,
            waiting,
        })
    }

    /// Publishes `message` (persistent, routing key `<channel>.<type>`) and
    /// waits for its answer.
    pub async fn ask(&self, message: &Value) -> Result<Answer, ClientError> {
        let routing_key = format!(
            "{}.{}",
            message["channel"].as_str().unwrap_or_default(),
            message["type"].as_str().unwrap_or_default()
        );
        let body = serde_json::to_vec(message).map_err(|e| ClientError::Answer(e.to_string()))?;
        let correlation_id = Uuid::new_v4().to_string();
        let (sender, answer) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(correlation_id.clone(), sender);
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_correlation_id(correlation_id.as_str().into());
        let started = Instant::now();
        self.channel
            .basic_publish(
                INTAKE_EXCHANGE.into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await?;
        let body = tokio::time::timeout(ANSWER_WITHIN, answer)
            .await
            .map_err(|_| ClientError::NoAnswer(ANSWER_WITHIN))?
            .map_err(|_| ClientError::RepliesStopped)?;
        let latency = started.elapsed();
        let reply: Value =
            serde_json::from_slice(&body).map_err(|e| ClientError::Answer(e.to_string()))?;
        let payload = &reply["payload"];
        let outcome = payload["outcome"]
            .as_str()
            .ok_or_else(|| ClientError::Answer(format!("no outcome in {reply}")))?;
        Ok(Answer {
            outcome: outcome.to_owned(),
            appointment_id: payload["appointment_id"]
                .as_str()
                .and_then(|id| id.parse().ok()),
            refusal: payload["refusal"]["code"].as_str().map(str::to_owned),
            latency,
        })
    }

    pub async fn close(self) -> Result<(), ClientError> {
        self.connection.close(200, "done".into()).await?;
        Ok(())
    }
}

/// The `index`-th bench citizen: a distinct, valid codice fiscale (birth
/// date and place from the index, the control character computed by
/// trying the letter `CodiceFiscale::parse` accepts).
pub fn citizen(index: usize) -> Option<CodiceFiscale> {
    const MONTHS: &[u8] = b"ABCDEHLMPRST";
    let day = 1 + index % 28;
    let month = char::from(MONTHS[(index / 28) % 12]);
    let year = 30 + (index / (28 * 12)) % 60;
    let place = (index / (28 * 12 * 60)) % 1000;
    let first_fifteen = format!("BNCMRA{year:02}{month}{day:02}H{place:03}");
    ('A'..='Z').find_map(|control| CodiceFiscale::parse(&format!("{first_fifteen}{control}")).ok())
}

/// An envelope as the contact centre sends it: an agent acting for
/// `citizen`.
pub fn command(message_type: &str, citizen: &CodiceFiscale, key: &str, payload: Value) -> Value {
    json!({
        "message_id": Uuid::now_v7(),
        "type": message_type,
        "schema_version": 1,
        "channel": "contact_center",
        "occurred_at": Utc::now(),
        "correlation_id": format!("bench-{key}"),
        "idempotency_key": format!("bench-{key}"),
        "principal": {"kind": "contact_center_agent", "agent_id": "CC-BENCH",
                      "on_behalf_of": citizen.as_str()},
        "payload": payload
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_citizens_are_valid_and_distinct() {
        let codes: std::collections::HashSet<String> = (0..20_000)
            .map(|i| citizen(i).map(|c| c.as_str().to_owned()))
            .collect::<Option<_>>()
            .expect("every index gives a valid code");
        assert_eq!(codes.len(), 20_000);
    }
}
