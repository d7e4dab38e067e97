//! Delivery workers, one per medium: claim the due deliveries (committed
//! claims, so senders in other processes skip them), send them through the
//! pooled transport within the provider's rate limit, and record each
//! outcome with its log row. Transient failures come back later with
//! exponential backoff; permanent ones are failed at once.
//!
//! A sender wakes on the planner's `pg_notify` after commit, or every
//! `POLL` for retries that became due.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::Settings;
use crate::domain::notification::{Medium, NextStep, RetryPolicy, SendOutcome};
use crate::notifications::email::EmailSender;
use crate::notifications::sms::{SmsProvider, SmsProviderConfig};
use crate::runtime::{Worker, WorkerError};
use crate::store;
use crate::store::notifications::{self as deliveries, AttemptResult, ClaimedDelivery};

/// Deliveries claimed at once, per send slot: few, so that a claim is sent
/// and recorded well within its lease even when every send times out.
const CLAIM_PER_SLOT: usize = 2;
// How long a claim lasts is NOTIFY_IN_DOUBT_SECONDS: longer than two sends
// in a row can take (each SMTP command times out at 30 s, an SMS request at
// 15 s), so only a dead sender's claims expire.
/// Retries that became due are found at least this often.
const POLL: Duration = Duration::from_millis(500);

pub struct DeliveryWorker {
    settings: Arc<Settings>,
    medium: Medium,
}

impl DeliveryWorker {
    pub fn new(settings: Arc<Settings>, medium: Medium) -> Self {
        Self { settings, medium }
    }
}

impl Worker for DeliveryWorker {
    fn name(&self) -> String {
        format!("{}-sender", self.medium.as_str())
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        let span = tracing::info_span!("delivery", medium = self.medium.as_str());
        Box::pin(self.send_loop(shutdown).instrument(span))
    }
}

/// The way out for one medium.
enum Transport {
    Email(EmailSender),
    Sms(SmsProvider),
}

impl Transport {
    async fn send(&self, delivery: &ClaimedDelivery) -> SendOutcome {
        match self {
            Transport::Email(sender) => sender.send(delivery).await,
            Transport::Sms(provider) => provider.send(delivery).await,
        }
    }

    fn medium(&self) -> &'static str {
        match self {
            Transport::Email(_) => "email",
            Transport::Sms(_) => "sms",
        }
    }
}

impl DeliveryWorker {
    /// `None` when the medium is not configured (no SMS provider): its
    /// deliveries stay queued until one is.
    fn transport(&self) -> Result<Option<(Transport, u32, usize)>, WorkerError> {
        let s = &self.settings;
        let other = |e: &dyn std::fmt::Display| WorkerError::Other(e.to_string());
        Ok(match self.medium {
            Medium::Email => Some((
                Transport::Email(
                    EmailSender::new(
                        &s.smtp_url,
                        &s.mail_from,
                        s.smtp_pool_size,
                        Duration::from_secs(30),
                    )
                    .map_err(|e| other(&e))?,
                ),
                s.email_rate_per_second,
                s.smtp_pool_size as usize,
            )),
            Medium::Sms => match &s.sms_provider_url {
                None => None,
                Some(url) => Some((
                    Transport::Sms(
                        SmsProvider::new(SmsProviderConfig {
                            url: url.clone(),
                            user: s.sms_provider_user.clone(),
                            password: s.sms_provider_password.clone(),
                            sender: s.sms_sender.clone(),
                            max_parts: s.sms_max_parts,
                            timeout: Duration::from_secs(15),
                        })
                        .map_err(|e| other(&e))?,
                    ),
                    s.sms_rate_per_second,
                    16,
                )),
            },
        })
    }

    async fn send_loop(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let Some((transport, rate, concurrency)) = self.transport()? else {
            tracing::warn!("no provider configured; deliveries of this medium stay queued");
            shutdown.cancelled().await;
            return Ok(());
        };
        let limiter = RateLimiter::direct(Quota::per_second(
            NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN),
        ));
        let pool = store::connect_lazy(&self.settings.database_url, 2)?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener
            .listen(deliveries::wake_channel(self.medium))
            .await?;
        let policy = self.settings.retry_policy();
        // PIN halves and recovery links wait sealed: opened just before sending.
        let pin_keys = crate::pin::crypto::PinKeys::new(&self.settings.pin_secret);
        tracing::info!(rate, concurrency, "sending");
        while !shutdown.is_cancelled() {
            let lease = self.settings.notify_in_doubt();
            let (claimed, secrets) = {
                // One transaction, committed at once (other senders skip
                // the claims): a delivery failed because its lost attempt
                // was its last ends with its seal and centre line, together.
                let mut tx = pool.begin().await?;
                let limit = (concurrency.max(1) * CLAIM_PER_SLOT) as i64;
                let claimed = deliveries::claim_due_counting(
                    &mut tx,
                    self.medium,
                    limit,
                    lease,
                    policy.max_attempts,
                )
                .await?;
                if claimed.in_doubt > 0 {
                    tracing::warn!(
                        in_doubt = claimed.in_doubt,
                        "attempts of a stopped sender are in doubt: resending them"
                    );
                    crate::metrics::metrics()
                        .deliveries_in_doubt
                        .get_or_create(&crate::metrics::MediumLabel {
                            medium: transport.medium(),
                        })
                        .inc_by(claimed.in_doubt);
                }
                crate::pin::halves::finish(&mut tx, &claimed.failed_in_doubt).await?;
                let mut deliveries = claimed.deliveries;
                let secrets =
                    crate::pin::halves::reveal(&mut tx, &pin_keys, &mut deliveries).await?;
                tx.commit().await?;
                (deliveries, secrets)
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    woken = listener.recv() => { woken?; }
                    _ = tokio::time::sleep(POLL) => {}
                }
                continue;
            }
            // Once claimed, a batch is sent and recorded even during
            // shutdown: it is short, and stopping halfway would leave
            // claims to expire and sends in doubt. Outcomes are recorded as
            // they come, not at the end of the batch.
            let mut secrets = secrets;
            let mut results = futures::stream::iter(claimed.into_iter().map(|delivery| {
                let secret = secrets
                    .iter()
                    .position(|(id, _)| *id == delivery.id)
                    .map(|at| secrets.swap_remove(at).1);
                (delivery, secret)
            }))
            .map(|(delivery, secret)| attempt(&transport, &limiter, policy, delivery, secret))
            .buffer_unordered(concurrency.max(1))
            .ready_chunks(concurrency.max(1));
            while let Some(done) = results.next().await {
                record(&pool, &done, lease).await?;
            }
        }
        // The listener holds one of the pool's connections: close waits for it.
        drop(listener);
        pool.close().await;
        Ok(())
    }
}

async fn attempt(
    transport: &Transport,
    limiter: &DefaultDirectRateLimiter,
    policy: RetryPolicy,
    mut delivery: ClaimedDelivery,
    secret: Option<crate::pin::crypto::Revealed>,
) -> AttemptResult {
    limiter.until_ready().await;
    let span = tracing::info_span!(
        "send",
        otel.kind = "client",
        medium = transport.medium(),
        delivery_id = %delivery.id,
        attempt = delivery.attempt,
        correlation_id = %delivery.correlation_id,
        outcome = tracing::field::Empty,
    );
    // The trace of the event that planned the notification (another
    // process, maybe long ago); a delivery without one starts a new trace.
    let parent = match &delivery.trace {
        Some(trace) => trace.as_parent(),
        None => opentelemetry::Context::new(),
    };
    let _ = span.set_parent(parent);
    let outcome = match crate::pin::halves::unrevealed(&delivery) {
        // Never send the placeholder in place of a PIN.
        Some(reason) => SendOutcome::Permanent(reason.to_owned()),
        None => transport.send(&delivery).instrument(span.clone()).await,
    };
    // The secret leaves memory with the send: what is said about the
    // attempt (logs, the attempt log, the delivery's last error) never
    // holds it, even when the provider's answer echoes the message.
    let outcome = match outcome {
        SendOutcome::Transient(reason) => {
            SendOutcome::Transient(crate::pin::halves::redacted(&reason, secret.as_ref()))
        }
        SendOutcome::Permanent(reason) => {
            SendOutcome::Permanent(crate::pin::halves::redacted(&reason, secret.as_ref()))
        }
        sent => sent,
    };
    if let Some(secret) = &secret {
        delivery.text_body = crate::pin::halves::redacted(&delivery.text_body, Some(secret));
        delivery.html_body = delivery
            .html_body
            .map(|html| crate::pin::halves::redacted(&html, Some(secret)));
    }
    drop(secret);
    let detail = match &outcome {
        SendOutcome::Sent { .. } => None,
        SendOutcome::Transient(reason) | SendOutcome::Permanent(reason) => Some(reason.clone()),
    };
    let jitter: f64 = rand::rng().random();
    let step = policy.next(delivery.attempt.max(0) as u32, outcome, jitter);
    match &step {
        // The attempt log keeps every send; one info line each would flood.
        NextStep::Sent { .. } => tracing::debug!(parent: &span, "sent"),
        NextStep::RetryIn(delay) => {
            tracing::warn!(parent: &span, reason = detail.as_deref().unwrap_or(""), retry_in = ?delay, "send failed; will retry")
        }
        NextStep::Failed(reason) => tracing::warn!(parent: &span, %reason, "delivery failed"),
    }
    let counted = match &step {
        NextStep::Sent { .. } => "sent",
        NextStep::RetryIn(_) => "retry",
        NextStep::Failed(_) => "failed",
    };
    span.record("outcome", counted);
    crate::metrics::metrics()
        .delivery_attempts
        .get_or_create(&crate::metrics::DeliveryLabels {
            medium: transport.medium(),
            outcome: counted,
        })
        .inc();
    let detail = match &step {
        NextStep::Failed(reason) => Some(reason.clone()),
        _ => detail,
    };
    AttemptResult {
        delivery,
        step,
        detail,
    }
}

/// Records outcomes, holding on while the database is away: a sent email
/// must not be sent again because its outcome was lost.
async fn record(
    pool: &PgPool,
    results: &[AttemptResult],
    lease: Duration,
) -> Result<(), WorkerError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let outcome = async {
            // The outcome and the end of any sealed PIN secret commit together.
            let mut tx = pool.begin().await?;
            deliveries::record(&mut tx, results).await?;
            let ids: Vec<uuid::Uuid> = results.iter().map(|r| r.delivery.id).collect();
            crate::pin::halves::finish(&mut tx, &ids).await?;
            tx.commit().await
        }
        .await;
        match outcome {
            Ok(()) => return Ok(()),
            Err(error) if store::is_transient(&error) && backoff < lease / 4 => {
                let error = store::outage::explain(pool, &error).await;
                tracing::warn!(%error, retry_in = ?backoff, "cannot record delivery outcomes yet");
            }
            Err(error) => return Err(error.into()),
        }
        // Even during shutdown: an outcome given up here is a message sent again.
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}
