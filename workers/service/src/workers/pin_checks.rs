//! The agents' checks of a caller's PIN half over the broker
//! (`pin.verification_requested` on `sportello.pin.agent-checks`), answered
//! on `reply_to` with a `pin.verification_outcome`: the same check as
//! `POST /pin/agent-verifications` (`pin::verification::verify_half`),
//! limited per agent instead of per address.
//!
//! The message carries a secret, so this consumer differs from the others:
//! it never dead-letters, never logs a body, and acks every delivery once
//! answered (or at once, without `reply_to`). The queue is not durable and
//! its messages expire: a check lost with a broker node is asked again by
//! the agent, whose client waits for its answer anyway.

use std::sync::Arc;

use chrono::Utc;
use futures::future::BoxFuture;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::names::PIN_AGENT_CHECKS_QUEUE;
use crate::broker::publisher::Publisher;
use crate::broker::replies::{self, ReplyTo};
use crate::broker::topology::{field_table, Definitions};
use crate::broker::users::BrokerUser;
use crate::config::Settings;
use crate::contract::pin::PinVerificationOutcome;
use crate::contract::Principal;
use crate::domain::pin::agent_check::{admit_check_request, CheckRequestRefusal};
use crate::domain::pin::SignInRefusal;
use crate::pin::limits::{Client, Step};
use crate::pin::{PinError, PinService};
use crate::runtime::{Worker, WorkerError};
use crate::store;

/// Checks in flight at once (each is an argon2 comparison).
const CHECKS_AT_ONCE: usize = 4;

pub struct PinChecksWorker {
    settings: Arc<Settings>,
}

impl PinChecksWorker {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }
}

impl Worker for PinChecksWorker {
    fn name(&self) -> String {
        "pin-checks".into()
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        Box::pin(
            self.serve(shutdown)
                .instrument(tracing::info_span!("pin_checks")),
        )
    }
}

impl PinChecksWorker {
    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let settings = &self.settings;
        let pool = store::connect_lazy(&settings.database_url, CHECKS_AT_ONCE as u32 + 1)?;
        let addresses = settings.broker_addresses_for(BrokerUser::PinChecks);
        let (connection, replies) =
            super::connect_publisher(&addresses, "sportello-pin-checks").await?;
        let channel = connection.create_channel().await?;
        declare_own_queue(&channel).await?;
        channel
            .basic_qos(CHECKS_AT_ONCE as u16, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                PIN_AGENT_CHECKS_QUEUE.into(),
                "sportello-pin-checks".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let service = PinService::from_settings(settings);
        let checks = Checks {
            pool: &pool,
            service: &service,
            replies: &replies,
        };
        let result = consumer
            .take_until(shutdown.cancelled())
            .map(|delivery| async {
                let delivery = delivery?;
                // The answer continues the asking agent's trace.
                let span = crate::broker::trace::process_span(PIN_AGENT_CHECKS_QUEUE, &delivery);
                checks.answer(&delivery).instrument(span).await;
                delivery.ack(BasicAckOptions::default()).await?;
                Ok::<(), WorkerError>(())
            })
            .buffer_unordered(CHECKS_AT_ONCE)
            .fold(Ok(()), |acc: Result<(), WorkerError>, next| async move {
                acc.and(next)
            })
            .await;
        crate::broker::close_quietly(&connection, "shutdown").await;
        pool.close().await;
        result
    }
}

/// The queue is not durable: a broker restart or the loss of its node
/// removes it, so the worker declares it (and its binding) itself, from the
/// definitions, each time it connects; its user may configure that queue
/// alone.
async fn declare_own_queue(channel: &lapin::Channel) -> Result<(), WorkerError> {
    let definitions = Definitions::embedded()?;
    let queue = definitions
        .queues
        .iter()
        .find(|q| q.name == PIN_AGENT_CHECKS_QUEUE)
        .ok_or_else(|| {
            WorkerError::Other(format!(
                "{PIN_AGENT_CHECKS_QUEUE} is not in the definitions"
            ))
        })?;
    channel
        .queue_declare(
            queue.name.as_str().into(),
            QueueDeclareOptions {
                durable: queue.durable,
                auto_delete: queue.auto_delete,
                ..Default::default()
            },
            field_table(&queue.arguments)?,
        )
        .await?;
    for binding in definitions
        .bindings
        .iter()
        .filter(|b| b.destination == PIN_AGENT_CHECKS_QUEUE)
    {
        channel
            .queue_bind(
                binding.destination.as_str().into(),
                binding.source.as_str().into(),
                binding.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

struct Checks<'a> {
    pool: &'a PgPool,
    service: &'a PinService,
    replies: &'a Publisher,
}

impl Checks<'_> {
    /// Answers one check; nothing about it is kept if the answer cannot go.
    async fn answer(&self, delivery: &Delivery) {
        let Some(reply_to) = ReplyTo::of(delivery) else {
            tracing::warn!(
                "a PIN check without reply_to: dropped (its half is never dead-lettered)"
            );
            return;
        };
        let (outcome, correlation_id, causation) =
            match admit_check_request(delivery.routing_key.as_str(), &delivery.data) {
                Err(refusal) => {
                    let code = match refusal {
                        CheckRequestRefusal::Malformed => "invalid",
                        CheckRequestRefusal::Refused(_) => "forbidden",
                    };
                    (
                        refused(String::new(), code, refusal.to_string(), None),
                        String::new(),
                        None,
                    )
                }
                Ok(envelope) => (
                    self.check(
                        &envelope.principal,
                        &envelope.payload.pin,
                        &envelope.correlation_id,
                    )
                    .await,
                    envelope.correlation_id.clone(),
                    Some(envelope.message_id),
                ),
            };
        tracing::info!(outcome = %outcome.outcome, code = ?outcome.code, correlation_id, "PIN check answered");
        if let Err(error) = replies::send(
            self.replies,
            &reply_to,
            "pin.verification_outcome",
            &correlation_id,
            causation,
            &outcome,
        )
        .await
        {
            tracing::warn!(%error, "a PIN check's answer could not be sent; the agent asks again");
        }
    }

    async fn check(
        &self,
        principal: &Principal,
        half: &str,
        correlation_id: &str,
    ) -> PinVerificationOutcome {
        let (agent, tax_code) = match principal {
            Principal::ContactCenterAgent {
                agent_id,
                on_behalf_of,
                ..
            } => (agent_id.clone(), on_behalf_of.to_string()),
            _ => return refused(String::new(), "forbidden", "only agents check".into(), None),
        };
        if let Err(wait) = self
            .service
            .limits
            .admit(Step::AgentCheck, Client::Agent(agent))
        {
            return refused(
                tax_code,
                "too_many_requests",
                format!(
                    "too many checks by this agent: try again in {} s",
                    wait.as_secs().max(1)
                ),
                None,
            );
        }
        match crate::pin::verification::verify_half(
            self.pool,
            self.service,
            principal,
            half,
            correlation_id,
        )
        .await
        {
            Ok(verified) => PinVerificationOutcome {
                outcome: "verified".into(),
                verification_id: Some(verified.verification_id),
                tax_code: verified.tax_code,
                expires_at: Some(verified.expires_at),
                code: None,
                message: None,
                locked_until: None,
            },
            Err(PinError::Database(error)) if store::is_transient(&error) => refused(
                tax_code,
                "unavailable",
                "the check could not be made now: try again".into(),
                None,
            ),
            Err(error) => {
                let locked_until = match &error {
                    PinError::SignIn(SignInRefusal::Locked { until }) => Some(*until),
                    _ => None,
                };
                let message = if error.code() == crate::domain::refusal::Code::Internal {
                    tracing::error!(%error, "PIN check failed");
                    "the check could not be made: try again later".to_owned()
                } else {
                    error.to_string()
                };
                refused(tax_code, error.code().as_str(), message, locked_until)
            }
        }
    }
}

fn refused(
    tax_code: String,
    code: &str,
    message: String,
    locked_until: Option<chrono::DateTime<Utc>>,
) -> PinVerificationOutcome {
    PinVerificationOutcome {
        outcome: "refused".into(),
        verification_id: None,
        tax_code,
        expires_at: None,
        code: Some(code.to_owned()),
        message: Some(message),
        locked_until,
    }
}
