//! A channel's request/reply client: publishes on the intake exchange as a
//! channel's user and waits on RabbitMQ's direct reply-to for the answer
//! carrying its correlation id (booking queries and commands, PIN checks).

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};
use serde_json::Value;
use sportello::broker::{self, names};
use uuid::Uuid;

use super::{bytes, TestEnv};

const WAIT: Duration = Duration::from_secs(20);

/// A channel's connection that asks and waits for answers on direct reply-to.
pub struct Requester {
    _connection: Connection,
    channel: Channel,
    replies: Consumer,
}

impl Requester {
    pub async fn open(env: &TestEnv, channel_name: &str) -> Requester {
        let connection = broker::connect(&env.channel_url(channel_name), "test-requester")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let replies = channel
            .basic_consume(
                "amq.rabbitmq.reply-to".into(),
                "requester".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Requester {
            _connection: connection,
            channel,
            replies,
        }
    }

    /// Publishes `message` (its routing key from its channel and type),
    /// asking for an answer when `reply` is set.
    pub async fn publish(&self, message: &Value, reply: Option<&str>) {
        let routing_key = format!(
            "{}.{}",
            message["channel"].as_str().unwrap(),
            message["type"].as_str().unwrap()
        );
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(correlation_id) = reply {
            properties = properties
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id(correlation_id.into());
        }
        self.channel
            .basic_publish(
                names::INTAKE_EXCHANGE.into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &bytes(message),
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Sends `message` and waits for the answer carrying its correlation id.
    pub async fn ask(&mut self, message: &Value) -> Value {
        let correlation_id = Uuid::new_v4().to_string();
        self.publish(message, Some(&correlation_id)).await;
        loop {
            let delivery = tokio::time::timeout(WAIT, self.replies.next())
                .await
                .expect("an answer in time")
                .unwrap()
                .unwrap();
            let matches = delivery
                .properties
                .correlation_id()
                .as_ref()
                .is_some_and(|id| id.as_str() == correlation_id);
            if matches {
                return serde_json::from_slice(&delivery.data).unwrap();
            }
        }
    }

    /// Publishes every message at once and collects the answers by correlation id.
    pub async fn ask_all(&mut self, messages: &[Value]) -> Vec<Value> {
        let ids: Vec<String> = messages
            .iter()
            .map(|_| Uuid::new_v4().to_string())
            .collect();
        for (message, id) in messages.iter().zip(&ids) {
            self.publish(message, Some(id)).await;
        }
        let mut answers = std::collections::HashMap::new();
        while answers.len() < ids.len() {
            let delivery = tokio::time::timeout(Duration::from_secs(60), self.replies.next())
                .await
                .expect("every answer in time")
                .unwrap()
                .unwrap();
            let id = delivery
                .properties
                .correlation_id()
                .as_ref()
                .unwrap()
                .to_string();
            answers.insert(id, serde_json::from_slice::<Value>(&delivery.data).unwrap());
        }
        ids.iter().map(|id| answers.remove(id).unwrap()).collect()
    }
}
