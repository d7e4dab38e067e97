//! Notify worker: consumes the events the notification rules bind, plans
//! their notifications (`notifications::plan`) in one transaction per event,
//! then acks. A redelivered event finds its notifications and plans nothing
//! again; an event that can never be planned is dead-lettered with the reason.

use std::sync::Arc;

use std::future::Future;

use futures::future::BoxFuture;
use lapin::message::Delivery;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::names::NOTIFICATION_EVENTS_QUEUE;
use crate::config::Settings;
use crate::contract::schemas::catalogue;
use crate::domain::notification::Rules;
use crate::notifications::{self, templates, PlanError, Planned};
use crate::runtime::{Worker, WorkerError};
use crate::store;
use crate::workers::settle::{consume_each, settle, Consuming, Failure, Handler, Verdict};

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
            settings: &self.settings,
            rules: load_rules()?,
            pool: store::connect_lazy(&self.settings.database_url, concurrency as u32)?,
        };
        let consuming = Consuming {
            amqp_url: &self.settings.amqp_url,
            name: "notify",
            queue: NOTIFICATION_EVENTS_QUEUE,
            concurrency,
            prefetch: u16::try_from(concurrency * 2).unwrap_or(u16::MAX),
        };
        let result = consume_each(consuming, &planning, &shutdown).await;
        planning.pool.close().await;
        result
    }
}

/// The notify handler: one event, one transaction.
struct Planning<'a> {
    settings: &'a Settings,
    rules: Rules,
    pool: PgPool,
}

impl Handler for Planning<'_> {
    fn handle<'a>(
        &'a self,
        delivery: &'a Delivery,
        shutdown: &'a CancellationToken,
    ) -> impl Future<Output = Result<Verdict, WorkerError>> + Send + 'a {
        self.settle_event(delivery, shutdown)
    }
}

impl Planning<'_> {
    /// Retries while the database is away (the event stays unacked); gives
    /// up only on events that can never be planned.
    async fn settle_event(
        &self,
        delivery: &Delivery,
        shutdown: &CancellationToken,
    ) -> Result<Verdict, WorkerError> {
        let (pool, rules) = (&self.pool, &self.rules);
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
