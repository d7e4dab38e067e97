//! Supervision: every worker runs inside an actix actor under a `Supervisor`.
//! When the worker's loop fails or panics, the actor stops and the supervisor
//! restarts it after a backoff; the process stays up and the other workers
//! are unaffected.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why a worker's loop ended early. Every variant leads to a restart.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("publishing: {0}")]
    Publish(#[from] crate::broker::publisher::PublishError),
    #[error("topology: {0}")]
    Topology(#[from] crate::broker::topology::TopologyError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// No connection to the database, with the cause (`store::outage`).
    #[error("database: {0}")]
    Unreachable(String),
    #[error("the broker cancelled the consumer")]
    ConsumerCancelled,
    #[error("{0}")]
    Other(String),
}

impl WorkerError {
    /// A database connection failure said with its cause (why `pool`'s
    /// server cannot be reached), instead of sqlx's bare "pool timed out".
    pub async fn explained(self, pool: &sqlx::PgPool) -> Self {
        match self {
            WorkerError::Database(error) if crate::store::outage::is_connection_failure(&error) => {
                WorkerError::Unreachable(crate::store::outage::explain(pool, &error).await)
            }
            other => other,
        }
    }
}

/// A long-running loop: consume, relay, fire timers. It returns `Ok` only when
/// `shutdown` is cancelled and its in-flight work is settled.
pub trait Worker: Send + Sync + 'static {
    fn name(&self) -> String;
    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>>;
}

pub struct WorkerActor {
    worker: Arc<dyn Worker>,
    shutdown: CancellationToken,
    consecutive_failures: u32,
    /// Dropped with the actor when it is finally stopped (not restarted); the
    /// runtime waits for all of these to know that every worker drained.
    _alive: mpsc::Sender<()>,
}

impl WorkerActor {
    pub fn new(
        worker: Arc<dyn Worker>,
        shutdown: CancellationToken,
        alive: mpsc::Sender<()>,
    ) -> Self {
        Self {
            worker,
            shutdown,
            consecutive_failures: 0,
            _alive: alive,
        }
    }
}

const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// 0, 0.5 s, 1 s, 2 s, ... capped at 30 s.
pub fn restart_backoff(consecutive_failures: u32) -> Duration {
    if consecutive_failures == 0 {
        return Duration::ZERO;
    }
    let millis = 500u64.saturating_mul(1 << (consecutive_failures - 1).min(6));
    Duration::from_millis(millis.min(30_000))
}

impl Actor for WorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.shutdown.is_cancelled() {
            ctx.stop();
            return;
        }
        let worker = self.worker.clone();
        let shutdown = self.shutdown.clone();
        let delay = restart_backoff(self.consecutive_failures);
        let run = async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => return (Ok(Ok(())), Duration::ZERO),
            }
            let started = std::time::Instant::now();
            let outcome = AssertUnwindSafe(worker.run(shutdown)).catch_unwind().await;
            (outcome, started.elapsed())
        };
        ctx.spawn(run.into_actor(self).map(|(outcome, ran_for), actor, ctx| {
            let name = actor.worker.name();
            // A worker that ran fine for a while gets a quick restart again.
            if ran_for > HEALTHY_RUN {
                actor.consecutive_failures = 0;
            }
            match outcome {
                Ok(Ok(())) => tracing::info!(worker = %name, "worker stopped"),
                Ok(Err(error)) => {
                    actor.consecutive_failures += 1;
                    tracing::warn!(worker = %name, %error, failures = actor.consecutive_failures, "worker failed; restarting");
                }
                Err(panic) => {
                    actor.consecutive_failures += 1;
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(worker = %name, panic = %message, "worker panicked; restarting");
                }
            }
            ctx.stop();
        }));
    }
}

impl Supervised for WorkerActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(worker = %self.worker.name(), "restarting worker");
    }
}
