//! Outbox relay: publishes committed events to the broker with confirms and
//! deletes them only after the broker confirmed. A crash in between means the
//! events go out again (at-least-once); consumers dedupe on `message_id`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker;
use crate::broker::publisher::{OutgoingMessage, Publisher};
use crate::broker::topology::{self, Definitions};
use crate::config::Settings;
use crate::runtime::{Worker, WorkerError};
use crate::store::outbox::{self, PendingMessage};

const BATCH: i64 = 500;
/// Even without a notification, look again this often (a missed NOTIFY while
/// the listener reconnects must not strand events).
const POLL: Duration = Duration::from_secs(2);

pub struct OutboxRelay {
    settings: Arc<Settings>,
    pool: PgPool,
}

impl OutboxRelay {
    pub fn new(settings: Arc<Settings>, pool: PgPool) -> Self {
        Self { settings, pool }
    }
}

impl Worker for OutboxRelay {
    fn name(&self) -> String {
        "outbox-relay".into()
    }

    fn run(self: Arc<Self>, shutdown: CancellationToken) -> BoxFuture<'static, Result<(), WorkerError>> {
        Box::pin(self.relay(shutdown).instrument(tracing::info_span!("outbox_relay")))
    }
}

impl OutboxRelay {
    async fn relay(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let connection = broker::connect(&self.settings.amqp_url, &self.name()).await?;
        topology::declare(&connection.create_channel().await?, &Definitions::embedded()?).await?;
        let publisher = Publisher::open(&connection).await?;
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(outbox::NOTIFY_CHANNEL).await?;
        loop {
            // Drain everything pending before waiting.
            while relay_batch(&self.pool, &publisher).await? == BATCH as usize {
                if shutdown.is_cancelled() {
                    break;
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                notification = listener.recv() => { notification?; }
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        connection.close(200, "shutdown".into()).await?;
        Ok(())
    }
}

/// Relays one batch; returns how many events went out.
pub async fn relay_batch(pool: &PgPool, publisher: &Publisher) -> Result<usize, WorkerError> {
    let mut tx = pool.begin().await?;
    let pending = outbox::claim(&mut tx, BATCH).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let messages: Vec<OutgoingMessage> = pending.iter().map(to_outgoing).collect::<Result<_, _>>()?;
    publisher.publish_all(&messages).await?;
    let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
    outbox::remove(&mut tx, &ids).await?;
    tx.commit().await?;
    tracing::debug!(count = ids.len(), "events relayed");
    Ok(ids.len())
}

fn to_outgoing(pending: &PendingMessage) -> Result<OutgoingMessage, WorkerError> {
    let message = &pending.message;
    Ok(OutgoingMessage {
        exchange: message.exchange.clone(),
        routing_key: message.routing_key.clone(),
        message_id: message.message_id,
        message_type: message.message_type.clone(),
        correlation_id: message.correlation_id.clone(),
        body: serde_json::to_vec(&message.body).map_err(|e| WorkerError::Other(e.to_string()))?,
        headers: Default::default(),
        mandatory: false,
    })
}
