//! How the one-message-at-a-time consumers (registration, notify) settle a
//! message: retried while the database is away (the message stays unacked),
//! dead-lettered at once when it can never succeed, and dead-lettered after
//! `HANDLER_MAX_ATTEMPTS` crashes, counting earlier deliveries.

use std::future::Future;
use std::time::Duration;

use lapin::message::Delivery;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use crate::broker::dead_letter;
use crate::runtime::WorkerError;

/// What to do with one delivery after trying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ack,
    DeadLetter(String),
}

/// Why one attempt did not settle the message.
#[derive(Debug)]
pub enum Failure {
    /// Worth waiting for (the database is away): try again after a backoff.
    Transient(String),
    /// Can never succeed: dead-letter with this reason.
    Refused(String),
    /// Unexpected: retried, dead-lettered once it has crashed too often.
    Crashed(String),
    /// Try again at once (e.g. the year changed under a registration).
    Again,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LAST_BACKOFF: Duration = Duration::from_secs(10);

/// Calls `attempt` until the message is settled.
pub async fn settle<F, Fut>(
    delivery: &Delivery,
    max_attempts: u64,
    shutdown: &CancellationToken,
    span: &Span,
    mut attempt: F,
) -> Result<Verdict, WorkerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut crashes = dead_letter::previous_deliveries(delivery);
    loop {
        match attempt().instrument(span.clone()).await {
            Ok(()) => return Ok(Verdict::Ack),
            Err(Failure::Again) => continue,
            Err(Failure::Refused(reason)) => return Ok(Verdict::DeadLetter(reason)),
            Err(Failure::Transient(error)) => {
                tracing::warn!(parent: span, %error, retry_in = ?backoff, "database unavailable; holding the message");
            }
            Err(Failure::Crashed(error)) => {
                crashes += 1;
                if crashes >= max_attempts {
                    return Ok(Verdict::DeadLetter(format!(
                        "failed {crashes} times, last: {error}"
                    )));
                }
                tracing::warn!(parent: span, %error, "handling failed; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => {
                return Err(WorkerError::Other(
                    "stopped while a message was pending; it will be redelivered".into(),
                ));
            }
        }
        backoff = (backoff * 2).min(LAST_BACKOFF);
    }
}
