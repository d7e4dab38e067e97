//! Broker topology from `broker-config/definitions.json`.
//!
//! The same file is imported by operators with `rabbitmqctl import_definitions`
//! (users, permissions, vhost) and declared by `sportello declare-topology`
//! and `up` (exchanges, queues, bindings), as AMQP_URL's user, in whatever
//! vhost its URL names; never by a worker, whose own user may not
//! (`broker::users`). Declaring is idempotent: identical arguments are a
//! no-op on the broker.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::ExchangeKind;
use serde::Deserialize;
use serde_json::{Map, Value};

pub const DEFINITIONS: &str = include_str!("../../../../broker-config/definitions.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Definitions {
    pub exchanges: Vec<ExchangeDefinition>,
    pub queues: Vec<QueueDefinition>,
    pub bindings: Vec<BindingDefinition>,
    #[serde(default)]
    pub permissions: Vec<Value>,
    #[serde(default)]
    pub topic_permissions: Vec<Value>,
    #[serde(default)]
    pub users: Vec<Value>,
    /// Bounds no AMQP declaration can carry on an existing queue (the
    /// intake queue's `max-length`); applied through the management API.
    #[serde(default)]
    pub policies: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExchangeDefinition {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueDefinition {
    pub name: String,
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BindingDefinition {
    pub source: String,
    pub destination: String,
    pub destination_type: String,
    pub routing_key: String,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("broker definitions are not valid: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("unsupported argument {name} in broker definitions")]
    UnsupportedArgument { name: String },
    #[error("declaring {object}: {source}")]
    Declare {
        object: String,
        #[source]
        source: lapin::Error,
    },
}

impl Definitions {
    pub fn embedded() -> Result<Self, TopologyError> {
        Ok(serde_json::from_str(DEFINITIONS)?)
    }

    pub fn queue(&self, name: &str) -> Option<&QueueDefinition> {
        self.queues.iter().find(|q| q.name == name)
    }
}

impl QueueDefinition {
    /// `x-delivery-limit` of a quorum queue, if set.
    pub fn delivery_limit(&self) -> Option<u64> {
        self.arguments
            .get("x-delivery-limit")
            .and_then(Value::as_u64)
    }
}

/// Declares exchanges, queues and bindings on `channel`.
pub async fn declare(
    channel: &lapin::Channel,
    definitions: &Definitions,
) -> Result<(), TopologyError> {
    for exchange in &definitions.exchanges {
        let kind = match exchange.kind.as_str() {
            "topic" => ExchangeKind::Topic,
            "fanout" => ExchangeKind::Fanout,
            "direct" => ExchangeKind::Direct,
            "headers" => ExchangeKind::Headers,
            other => ExchangeKind::Custom(other.to_owned()),
        };
        let options = ExchangeDeclareOptions {
            durable: exchange.durable,
            auto_delete: exchange.auto_delete,
            internal: exchange.internal,
            ..Default::default()
        };
        channel
            .exchange_declare(
                exchange.name.as_str().into(),
                kind,
                options,
                field_table(&exchange.arguments)?,
            )
            .await
            .map_err(|source| TopologyError::Declare {
                object: format!("exchange {}", exchange.name),
                source,
            })?;
    }
    for queue in &definitions.queues {
        let options = QueueDeclareOptions {
            durable: queue.durable,
            auto_delete: queue.auto_delete,
            ..Default::default()
        };
        channel
            .queue_declare(
                queue.name.as_str().into(),
                options,
                field_table(&queue.arguments)?,
            )
            .await
            .map_err(|source| TopologyError::Declare {
                object: format!("queue {}", queue.name),
                source,
            })?;
    }
    for binding in definitions
        .bindings
        .iter()
        .filter(|b| b.destination_type == "queue")
    {
        channel
            .queue_bind(
                binding.destination.as_str().into(),
                binding.source.as_str().into(),
                binding.routing_key.as_str().into(),
                QueueBindOptions::default(),
                field_table(&binding.arguments)?,
            )
            .await
            .map_err(|source| TopologyError::Declare {
                object: format!("binding {} -> {}", binding.source, binding.destination),
                source,
            })?;
    }
    Ok(())
}

/// JSON arguments as AMQP field values (strings, integers, booleans).
pub fn field_table(arguments: &Map<String, Value>) -> Result<FieldTable, TopologyError> {
    let mut table = FieldTable::default();
    for (name, value) in arguments {
        let value = match value {
            Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            Value::Bool(b) => AMQPValue::Boolean(*b),
            Value::Number(n) if n.is_i64() => {
                AMQPValue::LongLongInt(n.as_i64().unwrap_or_default())
            }
            _ => {
                return Err(TopologyError::UnsupportedArgument { name: name.clone() });
            }
        };
        table.insert(name.as_str().into(), value);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::names::*;

    #[test]
    fn definitions_declare_every_name_the_code_uses() {
        let definitions = Definitions::embedded().unwrap();
        for exchange in [INTAKE_EXCHANGE, EVENTS_EXCHANGE, DEAD_LETTER_EXCHANGE] {
            assert!(
                definitions.exchanges.iter().any(|e| e.name == exchange),
                "{exchange}"
            );
        }
        let intake = definitions.queue(INTAKE_REQUESTS_QUEUE).unwrap();
        assert_eq!(intake.arguments["x-queue-type"], "quorum");
        assert!(intake.delivery_limit().is_some());
        assert_eq!(
            intake.arguments["x-dead-letter-exchange"],
            DEAD_LETTER_EXCHANGE
        );
        assert!(definitions.queue(DEAD_LETTER_QUEUE).is_some());
    }

    #[test]
    fn every_notification_rule_is_bound_to_the_notifications_queue() {
        let definitions = Definitions::embedded().unwrap();
        use crate::domain::notification::{Rules, REMINDER_TIMER_KIND};
        let rules = Rules::embedded().unwrap();
        let reminders = format!("timer.fired.{REMINDER_TIMER_KIND}");
        let keys = rules
            .rules
            .iter()
            .map(|rule| (rule.id.as_str(), rule.routing_key.as_str()))
            .chain(std::iter::once(("(reminders)", reminders.as_str())));
        for (rule, routing_key) in keys {
            assert!(
                definitions
                    .bindings
                    .iter()
                    .any(|b| b.source == EVENTS_EXCHANGE
                        && b.destination == NOTIFICATION_EVENTS_QUEUE
                        && b.routing_key == routing_key),
                "rule {rule:?}: add a binding {EVENTS_EXCHANGE} -> {NOTIFICATION_EVENTS_QUEUE} \
                 with routing key {routing_key:?} to broker-config/definitions.json"
            );
        }
    }

    #[test]
    fn every_channel_user_may_write_only_its_own_prefix() {
        let definitions = Definitions::embedded().unwrap();
        for channel in crate::contract::Channel::ALL {
            let user = format!("channel-{}", channel.as_str());
            let topic = definitions
                .topic_permissions
                .iter()
                .find(|p| p["user"] == user.as_str())
                .unwrap_or_else(|| panic!("{user} has no topic permission"));
            assert_eq!(topic["exchange"], INTAKE_EXCHANGE);
            assert_eq!(topic["write"], format!("^{}\\.", channel.as_str()));
        }
    }
}
