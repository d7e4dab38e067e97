//! Signalling between gateway processes through RabbitMQ, so participants
//! connected to different processes (no sticky routing) still reach each
//! other. Every message for a room is published to the topic exchange
//! `sportello.gateway` with routing key `room.<appointment id>`; each
//! process has an exclusive, auto-delete queue bound to the rooms it has
//! connections in, and hands what arrives to its local connections (never
//! back to the sender). A process serving both participants gets its own
//! messages through the broker too: one path, the same order.
//!
//! The gateway connects as its own broker user (`sportello-gateway`,
//! GATEWAY_AMQP_URL): it may declare and read only its private queues
//! `sportello.gateway.<32 hex>`, bind them to and publish on
//! `sportello.gateway` with routing keys `room.<32 hex>`, and nothing else
//! (no intake, no events).

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueBindOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Mutex};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::video::Role;

pub const GATEWAY_EXCHANGE: &str = "sportello.gateway";

fn routing_key(room: Uuid) -> String {
    format!("room.{}", room.simple())
}

/// What a local connection is told to do.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Send this JSON text to the browser.
    Text(String),
    /// Another connection took this one's seat by choice: say so and close.
    Replaced,
}

/// One relayed message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Relayed {
    pub room: Uuid,
    /// The sending connection (not delivered back to it); nil for the server.
    pub from: Uuid,
    /// Only connections of this role receive it.
    #[serde(default)]
    pub to_role: Option<Role>,
    /// This connection (wherever it is) is replaced and must close.
    #[serde(default)]
    pub replace: Option<Uuid>,
    /// The message for the browsers.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

struct Local {
    connection_id: Uuid,
    role: Role,
    sender: mpsc::UnboundedSender<Outbound>,
}

/// This process's end of the relay.
pub struct Relay {
    pub gateway_id: String,
    channel: lapin::Channel,
    queue: String,
    rooms: Mutex<HashMap<Uuid, Vec<Local>>>,
    _connection: lapin::Connection,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
}

impl Relay {
    /// Connects, declares this process's queue and starts handing out what
    /// arrives. The relay stops working when the connection drops; the
    /// gateway worker then fails and its supervisor restarts it.
    pub async fn start(amqp_url: &str, gateway_id: &str) -> Result<Arc<Relay>, RelayError> {
        let connection =
            crate::broker::connect(amqp_url, &format!("sportello-gateway-{gateway_id}")).await?;
        let channel = connection.create_channel().await?;
        // The exchange belongs to the topology (definitions.json): checked,
        // never declared, so the gateway's broker user needs no right to
        // configure (or delete) it.
        channel
            .exchange_declare(
                GATEWAY_EXCHANGE.into(),
                lapin::ExchangeKind::Topic,
                lapin::options::ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let queue = format!("sportello.gateway.{gateway_id}");
        crate::broker::declare_private_queue(&channel, &queue).await?;
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "gateway".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let relay = Arc::new(Relay {
            gateway_id: gateway_id.to_owned(),
            channel,
            queue,
            rooms: Mutex::new(HashMap::new()),
            _connection: connection,
        });
        let weak = Arc::downgrade(&relay);
        actix_rt::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                let Some(relay) = weak.upgrade() else { break };
                match delivery {
                    Ok(delivery) => match serde_json::from_slice::<Relayed>(&delivery.data) {
                        Ok(message) => {
                            let span = crate::broker::trace::process_span(&relay.queue, &delivery);
                            relay.hand_out(message).instrument(span).await
                        }
                        Err(error) => tracing::warn!(%error, "unreadable relayed message dropped"),
                    },
                    Err(error) => {
                        tracing::error!(%error, "gateway relay consumer failed");
                        break;
                    }
                }
            }
        });
        Ok(relay)
    }

    /// Whether the broker connection is still up.
    pub fn is_connected(&self) -> bool {
        self._connection.status().connected()
    }

    /// A local connection joins `room`: the queue is bound to it first.
    pub async fn join(
        &self,
        room: Uuid,
        connection_id: Uuid,
        role: Role,
        sender: mpsc::UnboundedSender<Outbound>,
    ) -> Result<(), RelayError> {
        let mut rooms = self.rooms.lock().await;
        let locals = rooms.entry(room).or_default();
        if locals.is_empty() {
            self.channel
                .queue_bind(
                    self.queue.as_str().into(),
                    GATEWAY_EXCHANGE.into(),
                    routing_key(room).as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        locals.push(Local {
            connection_id,
            role,
            sender,
        });
        crate::metrics::metrics()
            .gateway_rooms
            .set(rooms.len() as i64);
        Ok(())
    }

    /// A local connection leaves; the last one unbinds the room.
    pub async fn leave(&self, room: Uuid, connection_id: Uuid) {
        let mut rooms = self.rooms.lock().await;
        let Some(locals) = rooms.get_mut(&room) else {
            return;
        };
        locals.retain(|l| l.connection_id != connection_id);
        if locals.is_empty() {
            rooms.remove(&room);
            crate::metrics::metrics()
                .gateway_rooms
                .set(rooms.len() as i64);
            if let Err(error) = self
                .channel
                .queue_unbind(
                    self.queue.as_str().into(),
                    GATEWAY_EXCHANGE.into(),
                    routing_key(room).as_str().into(),
                    FieldTable::default(),
                )
                .await
            {
                tracing::warn!(%error, %room, "could not unbind a room from the relay");
            }
        }
    }

    /// Local connections (for the seats' heartbeat).
    pub async fn connections(&self) -> Vec<Uuid> {
        self.rooms
            .lock()
            .await
            .values()
            .flat_map(|locals| locals.iter().map(|l| l.connection_id))
            .collect()
    }

    pub async fn publish(&self, message: &Relayed) -> Result<(), RelayError> {
        let body = serde_json::to_vec(message)?;
        let mut headers = FieldTable::default();
        crate::broker::trace::set_for_sending(&mut headers);
        self.channel
            .basic_publish(
                GATEWAY_EXCHANGE.into(),
                routing_key(message.room).as_str().into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_headers(headers),
            )
            .await?;
        Ok(())
    }

    async fn hand_out(&self, message: Relayed) {
        let rooms = self.rooms.lock().await;
        let Some(locals) = rooms.get(&message.room) else {
            return;
        };
        for local in locals {
            if Some(local.connection_id) == message.replace {
                let _ = local.sender.send(Outbound::Replaced);
                continue;
            }
            if local.connection_id == message.from
                || message.to_role.is_some_and(|role| role != local.role)
            {
                continue;
            }
            if let Some(body) = &message.body {
                let _ = local.sender.send(Outbound::Text(body.to_string()));
            }
        }
    }
}
