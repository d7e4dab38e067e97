//! Notify worker: consumes the events the notification rules bind, plans
//! their notifications (`notifications::plan`) in one transaction per event,
//! then acks. A redelivered event finds its notifications and plans nothing
//! again; an event that can never be planned is dead-lettered with the reason.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::names::NOTIFICATION_EVENTS_QUEUE;
use crate::broker::publisher::Publisher;
use crate::broker::topology::{self, Definitions};
use crate::broker::{self, dead_letter};
use crate::config::Settings;
use crate::contract::schemas::catalogue;
use crate::domain::notification::Rules;
use crate::notifications::{self, templates, PlanError, Planned};
use crate::runtime::{Worker, WorkerError};
use crate::store;
use crate::workers::settle::{settle, Failure, Verdict};

pub struct NotifyWorker {
    settings: Arc<Settings>,
}

impl NotifyWorker {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }
}

impl Worker for NotifyWorker {
    fn name(&self) -> String {
        "notify".into()
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        Box::pin(
            self.consume(shutdown)
                .instrument(tracing::info_span!("notify")),
        )
    }
}

/// The shipped rules, each checked against its template.
pub fn load_rules() -> Result<Rules, WorkerError> {
    let rules = Rules::embedded().map_err(|e| WorkerError::Other(e.to_string()))?;
    for rule in &rules.rules {
        if let Some(missing) = rule.templates().find(|t| !templates::exists(t)) {
            return Err(WorkerError::Other(format!(
                "notification rule {:?} names template {missing:?}, which does not exist",
                rule.id
            )));
        }
    }
    Ok(rules)
}

impl NotifyWorker {
    async fn consume(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let rules = load_rules()?;
        let connection = broker::connect(&self.settings.amqp_url, &self.name()).await?;
        let channel = connection.create_channel().await?;
        topology::declare(&channel, &Definitions::embedded()?).await?;
        let concurrency = self.settings.notify_concurrency.max(1);
        channel
            .basic_qos(concurrency as u16 * 2, BasicQosOptions::default())
            .await?;
        let publisher = Publisher::open(&connection).await?;
        let pool = store::connect_lazy(&self.settings.database_url, concurrency as u32)?;
        let tag = format!("notify-{}", uuid::Uuid::new_v4());
        let consumer = channel
            .basic_consume(
                NOTIFICATION_EVENTS_QUEUE.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = NOTIFICATION_EVENTS_QUEUE, concurrency, "consuming");
        // In-flight events finish (or are left unacked for redelivery) when
        // shutdown stops the stream.
        let result = consumer
            .take_until(shutdown.cancelled())
            .map_err(WorkerError::from)
            .try_for_each_concurrent(concurrency, |delivery| {
                let (this, pool, rules, publisher, shutdown) =
                    (&self, &pool, &rules, &publisher, &shutdown);
                async move {
                    match this.handle(pool, rules, &delivery, shutdown).await? {
                        Verdict::Ack => {}
                        Verdict::DeadLetter(reason) => {
                            tracing::warn!(%reason, "event dead-lettered");
                            dead_letter::send(
                                publisher,
                                &delivery,
                                NOTIFICATION_EVENTS_QUEUE,
                                &reason,
                            )
                            .await?;
                        }
                    }
                    delivery.acker.ack(BasicAckOptions::default()).await?;
                    Ok(())
                }
            })
            .await;
        result?;
        if !shutdown.is_cancelled() {
            return Err(WorkerError::ConsumerCancelled);
        }
        channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        pool.close().await;
        connection.close(200, "shutdown".into()).await?;
        Ok(())
    }

    /// Retries while the database is away (the event stays unacked); gives
    /// up only on events that can never be planned.
    async fn handle(
        &self,
        pool: &PgPool,
        rules: &Rules,
        delivery: &Delivery,
        shutdown: &CancellationToken,
    ) -> Result<Verdict, WorkerError> {
        let event = match catalogue().validate_bytes(&delivery.data) {
            Ok(event) => event,
            Err(error) => return Ok(Verdict::DeadLetter(format!("rejected: {error}"))),
        };
        let span = tracing::info_span!(
            "plan",
            event_id = %event["message_id"],
            event_type = %event["type"],
            correlation_id = %event["correlation_id"],
        );
        settle(
            delivery,
            self.settings.handler_max_attempts,
            shutdown,
            &span,
            || async {
                match plan(pool, rules, &event).await {
                    Ok(planned) => {
                        tracing::debug!(?planned, "event planned");
                        Ok(())
                    }
                    Err(PlanError::Database(error)) if store::is_transient(&error) => {
                        Err(Failure::Transient(error.to_string()))
                    }
                    Err(error @ (PlanError::Invalid(_) | PlanError::Render(_))) => {
                        Err(Failure::Refused(format!("cannot notify: {error}")))
                    }
                    Err(error) => Err(Failure::Crashed(error.to_string())),
                }
            },
        )
        .await
    }
}

async fn plan(
    pool: &PgPool,
    rules: &Rules,
    event: &serde_json::Value,
) -> Result<Planned, PlanError> {
    let mut tx = pool.begin().await?;
    let planned = notifications::plan(&mut tx, rules, event).await?;
    tx.commit().await?;
    Ok(planned)
}
