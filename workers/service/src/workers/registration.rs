//! Registration worker: consumes `documents.registration_requested`, assigns
//! the protocol number and turns the documents green, in one transaction,
//! then acks. A redelivered request finds its registration and changes
//! nothing; a request that can never succeed is dead-lettered with the reason.

use std::sync::Arc;

use futures::future::BoxFuture;
use lapin::message::Delivery;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use crate::broker::names::REGISTRATION_REQUESTS_QUEUE;
use crate::config::Settings;
use crate::contract::schemas::catalogue;
use crate::contract::{DocumentsRegistrationRequested, Event};
use crate::documents::{self, DocumentError, RegistrationOutcome};
use crate::runtime::{Worker, WorkerError};
use crate::store;
use crate::workers::settle::{consume_each, Consuming, Failure, Handler};

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
        let registering = Registering {
            pool: store::connect_lazy(&self.settings.database_url, 2)?,
        };
        let consuming = Consuming {
            amqp_url: &self
                .settings
                .broker_addresses_for(crate::broker::users::BrokerUser::Registration),
            name: "registration",
            queue: REGISTRATION_REQUESTS_QUEUE,
            concurrency: 1,
            prefetch: PREFETCH,
            max_attempts: self.settings.handler_max_attempts,
        };
        let result = consume_each(consuming, &registering, &shutdown).await;
        registering.pool.close().await;
        result
    }
}

/// The registration handler: one request, one transaction.
struct Registering {
    pool: PgPool,
}

impl Handler for Registering {
    type Message = Event<DocumentsRegistrationRequested>;

    fn read(&self, delivery: &Delivery) -> Result<(Self::Message, Span), String> {
        let request = parse(&delivery.data)?;
        let span = tracing::info_span!("register", message_id = %request.message_id, correlation_id = %request.correlation_id);
        Ok((request, span))
    }

    async fn attempt(&self, request: &Self::Message) -> Result<(), Failure> {
        match register(&self.pool, request).await {
            Ok(outcome) => {
                tracing::info!(?outcome, "registration request settled");
                Ok(())
            }
            Err(DocumentError::Database(error)) if store::is_transient(&error) => Err(
                Failure::Transient(store::outage::explain(&self.pool, &error).await),
            ),
            Err(DocumentError::YearChanged) => Err(Failure::Again),
            Err(
                error @ (DocumentError::Refused(_)
                | DocumentError::Registration(_)
                | DocumentError::NotFound(_)
                | DocumentError::IllegalTransition(_)
                | DocumentError::Forbidden(_)
                | DocumentError::Gone),
            ) => Err(Failure::Refused(format!("refused: {error}"))),
            Err(error) => Err(Failure::Crashed(error.to_string())),
        }
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
