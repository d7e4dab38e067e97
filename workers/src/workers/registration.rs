//! Registration worker: consumes `documents.registration_requested`, assigns
//! the protocol number and turns the documents green, in one transaction,
//! then acks. A redelivered request finds its registration and changes
//! nothing; a request that can never succeed is dead-lettered with the reason.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::names::REGISTRATION_REQUESTS_QUEUE;
use crate::broker::publisher::Publisher;
use crate::broker::topology::{self, Definitions};
use crate::broker::{self, dead_letter};
use crate::config::Settings;
use crate::contract::schemas::catalogue;
use crate::contract::{DocumentsRegistrationRequested, Event};
use crate::documents::{self, DocumentError, RegistrationOutcome};
use crate::runtime::{Worker, WorkerError};
use crate::store;
use crate::workers::settle::{settle, Failure, Verdict};

/// Requests in flight per consumer: each is its own short transaction.
const PREFETCH: u16 = 20;

pub struct RegistrationWorker {
    settings: Arc<Settings>,
}

impl RegistrationWorker {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }
}

impl Worker for RegistrationWorker {
    fn name(&self) -> String {
        "registration".into()
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        Box::pin(
            self.consume(shutdown)
                .instrument(tracing::info_span!("registration")),
        )
    }
}

impl RegistrationWorker {
    async fn consume(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let connection = broker::connect(&self.settings.amqp_url, &self.name()).await?;
        let channel = connection.create_channel().await?;
        topology::declare(&channel, &Definitions::embedded()?).await?;
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await?;
        let publisher = Publisher::open(&connection).await?;
        let pool = store::connect_lazy(&self.settings.database_url, 2)?;
        let tag = format!("registration-{}", uuid::Uuid::new_v4());
        let mut consumer = channel
            .basic_consume(
                REGISTRATION_REQUESTS_QUEUE.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = REGISTRATION_REQUESTS_QUEUE, "consuming");
        loop {
            let delivery = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                next = consumer.next() => next.ok_or(WorkerError::ConsumerCancelled)??,
            };
            let verdict = self.handle(&pool, &delivery, &shutdown).await?;
            if let Verdict::DeadLetter(reason) = verdict {
                tracing::warn!(%reason, "registration request dead-lettered");
                let copy =
                    dead_letter::dead_letter_copy(&delivery, REGISTRATION_REQUESTS_QUEUE, &reason);
                publisher.send(&copy).await?.wait().await?;
            }
            delivery.acker.ack(BasicAckOptions::default()).await?;
        }
        channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        pool.close().await;
        connection.close(200, "shutdown".into()).await?;
        Ok(())
    }

    /// Retries while the database is away (the message stays unacked); gives
    /// up only on requests that can never succeed.
    async fn handle(
        &self,
        pool: &PgPool,
        delivery: &Delivery,
        shutdown: &CancellationToken,
    ) -> Result<Verdict, WorkerError> {
        let request = match parse(&delivery.data) {
            Ok(request) => request,
            Err(reason) => return Ok(Verdict::DeadLetter(reason)),
        };
        let span = tracing::info_span!("register", message_id = %request.message_id, correlation_id = %request.correlation_id);
        let max_attempts = self.settings.handler_max_attempts;
        settle(delivery, max_attempts, shutdown, &span, || async {
            match register(pool, &request).await {
                Ok(outcome) => {
                    tracing::info!(?outcome, "registration request settled");
                    Ok(())
                }
                Err(DocumentError::Database(error)) if store::is_transient(&error) => {
                    Err(Failure::Transient(error.to_string()))
                }
                Err(DocumentError::YearChanged) => Err(Failure::Again),
                Err(
                    error @ (DocumentError::Refused(_)
                    | DocumentError::NotFound(_)
                    | DocumentError::IllegalTransition(_)
                    | DocumentError::Forbidden(_)
                    | DocumentError::Gone),
                ) => Err(Failure::Refused(format!("refused: {error}"))),
                Err(error) => Err(Failure::Crashed(error.to_string())),
            }
        })
        .await
    }
}

fn parse(body: &[u8]) -> Result<Event<DocumentsRegistrationRequested>, String> {
    let value = catalogue()
        .validate_bytes(body)
        .map_err(|e| format!("rejected: {e}"))?;
    serde_json::from_value(value).map_err(|e| format!("rejected: {e}"))
}

async fn register(
    pool: &PgPool,
    request: &Event<DocumentsRegistrationRequested>,
) -> Result<RegistrationOutcome, DocumentError> {
    let mut tx = pool.begin().await?;
    let outcome = documents::complete_registration(&mut tx, request).await?;
    tx.commit().await?;
    Ok(outcome)
}
