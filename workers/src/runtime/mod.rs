//! Process runtime: starts the chosen workers, each supervised in its own
//! arbiter (thread), and shuts them down gracefully.

pub mod supervisor;

use std::sync::Arc;

use actix::{Arbiter, Supervisor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use supervisor::{Worker, WorkerActor, WorkerError};

/// Workers started in this process.
pub struct RunningWorkers {
    shutdown: CancellationToken,
    addresses: Vec<actix::Addr<WorkerActor>>,
    arbiters: Vec<Arbiter>,
    all_stopped: mpsc::Receiver<()>,
}

impl RunningWorkers {
    /// Must be called inside an actix `System`.
    pub fn start(workers: Vec<Arc<dyn Worker>>) -> Self {
        let shutdown = CancellationToken::new();
        let (alive, all_stopped) = mpsc::channel(1);
        let mut addresses = Vec::new();
        let mut arbiters = Vec::new();
        for worker in workers {
            let arbiter = Arbiter::new();
            let token = shutdown.clone();
            let alive = alive.clone();
            tracing::info!(worker = %worker.name(), "starting worker");
            let address = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
                WorkerActor::new(worker, token, alive)
            });
            addresses.push(address);
            arbiters.push(arbiter);
        }
        Self {
            shutdown,
            addresses,
            arbiters,
            all_stopped,
        }
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Asks every worker to finish its in-flight work and waits up to `grace`.
    /// Returns whether all of them stopped in time.
    pub async fn shutdown(mut self, grace: std::time::Duration) -> bool {
        self.shutdown.cancel();
        // Without addresses the supervisors stop instead of restarting.
        self.addresses.clear();
        let drained = tokio::time::timeout(grace, self.all_stopped.recv()).await.is_ok();
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        drained
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn termination_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
