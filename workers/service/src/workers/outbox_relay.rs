//! Outbox relay: publishes committed events to the broker with confirms and
//! deletes them only after the broker confirmed. A crash in between means the
//! events go out again (at-least-once); consumers dedupe on `message_id`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::publisher::{OutgoingMessage, Publisher};
use crate::broker::trace::{self, TraceContext};
use crate::broker::users::BrokerUser;
use crate::config::Settings;
use crate::runtime::{Worker, WorkerError};
use crate::store;
use crate::store::outbox::{self, PendingMessage};
use tracing_opentelemetry::OpenTelemetrySpanExt;

const BATCH: i64 = 1000;
/// Even without a notification, look again this often (a missed NOTIFY while
/// the listener reconnects must not strand events).
const POLL: Duration = Duration::from_secs(2);

pub struct OutboxRelay {
    settings: Arc<Settings>,
}

impl OutboxRelay {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }
}

impl Worker for OutboxRelay {
    fn name(&self) -> String {
        "outbox-relay".into()
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        Box::pin(
            self.relay(shutdown)
                .instrument(tracing::info_span!("outbox_relay")),
        )
    }
}

impl OutboxRelay {
    async fn relay(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let (connection, publisher) = super::connect_publisher(
            &self.settings.broker_addresses_for(BrokerUser::OutboxRelay),
            &self.name(),
        )
        .await?;
        // A pool of this run's own: its connections live on this worker's thread.
        let pool = store::connect_lazy(&self.settings.database_url, 2)?;
        if let Err(error) = relay_until(&pool, &publisher, &shutdown).await {
            return Err(error.explained(&pool).await);
        }
        connection.close(200, "shutdown".into()).await?;
        Ok(())
    }
}

/// Relays what the outbox holds, then whatever is notified, until shutdown.
async fn relay_until(
    pool: &PgPool,
    publisher: &Publisher,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(outbox::NOTIFY_CHANNEL).await?;
    loop {
        // Drain everything pending before waiting.
        while relay_batch(pool, publisher).await? == BATCH as usize {
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
    Ok(())
}

/// Relays one batch; returns how many events went out.
pub async fn relay_batch(pool: &PgPool, publisher: &Publisher) -> Result<usize, WorkerError> {
    let mut tx = pool.begin().await?;
    let pending = outbox::take(&mut tx, BATCH).await?;
    // Before the publish: a relay the broker holds up shows its lag growing
    // with each retry (the rows roll back and are taken again, older).
    let oldest = pending.iter().map(|p| p.created_at).min();
    let lag = oldest.map_or(0.0, |at| {
        (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
    });
    crate::metrics::metrics().outbox_relay_lag_seconds.set(lag);
    if pending.is_empty() {
        return Ok(0);
    }
    // One span per event, continuing the trace of the transaction that
    // wrote it (a row with none starts a new one), held until confirmed.
    let (messages, spans): (Vec<OutgoingMessage>, Vec<tracing::Span>) =
        pending.into_iter().map(to_outgoing).unzip();
    publisher.publish_all(&messages).await?;
    tx.commit().await?;
    drop(spans);
    crate::metrics::metrics()
        .events_relayed
        .inc_by(messages.len() as u64);
    tracing::debug!(count = messages.len(), "events relayed");
    Ok(messages.len())
}

fn to_outgoing(pending: PendingMessage) -> (OutgoingMessage, tracing::Span) {
    let message = pending.message;
    let span = tracing::info_span!(
        "relay",
        otel.name = %format!("{} publish", message.exchange),
        otel.kind = "producer",
        "messaging.system" = "rabbitmq",
        "messaging.operation.type" = "send",
        "messaging.destination.name" = %message.exchange,
        "messaging.rabbitmq.destination.routing_key" = %message.routing_key,
        "messaging.message.id" = %message.message_id,
        correlation_id = %message.correlation_id,
    );
    let parent = match &message.trace {
        Some(trace) => trace.as_parent(),
        None => opentelemetry::Context::new(),
    };
    let _ = span.set_parent(parent);
    let mut headers = lapin::types::FieldTable::default();
    if let Some(trace) = TraceContext::of(&span) {
        trace::set(&mut headers, &trace);
    }
    let outgoing = OutgoingMessage {
        exchange: message.exchange,
        routing_key: message.routing_key,
        message_id: message.message_id,
        message_type: message.message_type,
        correlation_id: message.correlation_id,
        body: message.body,
        headers,
        mandatory: false,
    };
    (outgoing, span)
}
