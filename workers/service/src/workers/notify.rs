//! Notify worker: consumes the events the notification rules bind, plans
//! their notifications (`notifications::plan`) in one transaction per event,
//! then acks. A redelivered event finds its notifications and plans nothing
//! again; an event that can never be planned is dead-lettered with the reason.

use std::sync::Arc;

use futures::future::BoxFuture;
use lapin::message::Delivery;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use crate::broker::names::NOTIFICATION_EVENTS_QUEUE;
use crate::config::Settings;
use crate::contract::schemas::catalogue;
use crate::domain::notification::Rules;
use crate::notifications::{self, templates, PlanError, Planned};
use crate::runtime::{Worker, WorkerError};
use crate::store;
use crate::workers::settle::{consume_each, Consuming, Failure, Handler};

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
        let concurrency = self.settings.notify_concurrency.max(1);
        let planning = Planning {
            rules: load_rules()?,
            pool: store::connect_lazy(&self.settings.database_url, concurrency as u32)?,
        };
        let consuming = Consuming {
            amqp_url: &self
                .settings
                .broker_addresses_for(crate::broker::users::BrokerUser::Notify),
            name: "notify",
            queue: NOTIFICATION_EVENTS_QUEUE,
            concurrency,
            prefetch: u16::try_from(concurrency * 2).unwrap_or(u16::MAX),
            max_attempts: self.settings.handler_max_attempts,
        };
        let result = consume_each(consuming, &planning, &shutdown).await;
        planning.pool.close().await;
        result
    }
}

/// The notify handler: one event, one transaction.
struct Planning {
    rules: Rules,
    pool: PgPool,
}

impl Handler for Planning {
    type Message = serde_json::Value;

    fn read(&self, delivery: &Delivery) -> Result<(serde_json::Value, Span), String> {
        let event = catalogue()
            .validate_bytes(&delivery.data)
            .map_err(|error| format!("rejected: {error}"))?;
        let span = tracing::info_span!(
            "plan",
            event_id = %event["message_id"],
            event_type = %event["type"],
            correlation_id = %event["correlation_id"],
        );
        Ok((event, span))
    }

    async fn attempt(&self, event: &serde_json::Value) -> Result<(), Failure> {
        match plan(&self.pool, &self.rules, event).await {
            Ok(planned) => {
                tracing::debug!(?planned, "event planned");
                Ok(())
            }
            Err(PlanError::Database(error)) if store::is_transient(&error) => Err(
                Failure::Transient(store::outage::explain(&self.pool, &error).await),
            ),
            Err(error @ (PlanError::Invalid(_) | PlanError::Render(_))) => {
                Err(Failure::Refused(format!("cannot notify: {error}")))
            }
            Err(error) => Err(Failure::Crashed(error.to_string())),
        }
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
