//! Process runtime: starts the chosen workers, each supervised in its own
//! arbiter (thread), and shuts them down gracefully.

pub mod http_server;
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
        let drained = tokio::time::timeout(grace, self.all_stopped.recv())
            .await
            .is_ok();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::future::BoxFuture;

    /// Panics on its first run, fails on its second, then behaves.
    struct Flaky {
        runs: AtomicUsize,
    }

    impl Worker for Flaky {
        fn name(&self) -> String {
            "flaky".into()
        }

        fn run(
            self: Arc<Self>,
            shutdown: CancellationToken,
        ) -> BoxFuture<'static, Result<(), WorkerError>> {
            Box::pin(async move {
                match self.runs.fetch_add(1, Ordering::SeqCst) {
                    0 => panic!("handler bug"),
                    1 => Err(WorkerError::Other("database went away".into())),
                    _ => {
                        shutdown.cancelled().await;
                        Ok(())
                    }
                }
            })
        }
    }

    #[actix_rt::test]
    async fn a_failing_worker_is_restarted_and_the_others_keep_running() {
        let flaky = Arc::new(Flaky {
            runs: AtomicUsize::new(0),
        });
        let steady = Arc::new(Flaky {
            runs: AtomicUsize::new(2),
        });
        let workers = RunningWorkers::start(vec![flaky.clone(), steady.clone()]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while flaky.runs.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            flaky.runs.load(Ordering::SeqCst),
            3,
            "restarted after a panic and an error"
        );
        assert_eq!(
            steady.runs.load(Ordering::SeqCst),
            3,
            "the healthy worker ran once, undisturbed"
        );
        assert!(
            workers.shutdown(Duration::from_secs(5)).await,
            "both drained on shutdown"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        use supervisor::restart_backoff;
        assert_eq!(restart_backoff(0), Duration::ZERO);
        assert_eq!(restart_backoff(1), Duration::from_millis(500));
        assert_eq!(restart_backoff(2), Duration::from_secs(1));
        assert_eq!(restart_backoff(20), Duration::from_secs(30));
    }
}
