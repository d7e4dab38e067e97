//! Process assembly: prepare the database and the broker, start workers, stop
//! them on a signal. `main.rs` only parses the command line and calls these.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::broker::{self, topology};
use crate::config::Settings;
use crate::runtime::{self, RunningWorkers, Worker};
use crate::store;
use crate::workers::WorkerKind;

/// How long start-up waits for PostgreSQL and RabbitMQ to accept connections
/// (containers starting side by side).
const STARTUP_PATIENCE: Duration = Duration::from_secs(90);

/// How long a worker process's start-up looks for vacuum warnings.
const HEALTH_PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Refused(#[from] crate::production::Refused),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker topology: {0}")]
    Topology(#[from] topology::TopologyError),
}

async fn patiently<T, E: std::fmt::Display, F, Fut>(what: &str, mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + STARTUP_PATIENCE;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, "{what} not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Creates the database if needed (waiting for the server), and applies
/// pending migrations.
pub async fn migrate(settings: &Settings) -> Result<PgPool, StartupError> {
    use sqlx::migrate::MigrateDatabase;
    let url = settings.database_url.as_str();
    if !patiently("database", || sqlx::Postgres::database_exists(url)).await? {
        sqlx::Postgres::create_database(url).await?;
        tracing::info!("database created");
    }
    let pool = patiently("database", || {
        store::connect(&settings.database_url, settings.database_pool_size)
    })
    .await?;
    store::migrate(&pool).await?;
    tracing::info!("database migrated");
    Ok(pool)
}

/// Declares exchanges, queues and bindings in the AMQP URL's vhost.
pub async fn declare_topology(settings: &Settings) -> Result<(), StartupError> {
    let addresses = settings.broker_addresses();
    let connection = patiently("broker", || {
        broker::connect(&addresses, "sportello-topology")
    })
    .await?;
    let channel = connection.create_channel().await?;
    topology::declare(&channel, &topology::Definitions::embedded()?).await?;
    connection.close(200, "topology declared".into()).await?;
    tracing::info!("broker topology declared");
    Ok(())
}

/// Logs what PostgreSQL's vacuuming needs from the operator (autovacuum
/// off, a churned table full of dead tuples), once at start; `/health/ready`
/// carries the same warnings.
pub async fn warn_database_health(pool: &PgPool) {
    match store::vacuum::warnings(pool).await {
        Ok(warnings) => {
            for warning in warnings {
                tracing::warn!(%warning, "database health");
            }
        }
        Err(error) => tracing::debug!(%error, "vacuum statistics not read"),
    }
}

pub fn build_workers(settings: &Arc<Settings>, kinds: &[WorkerKind]) -> Vec<Arc<dyn Worker>> {
    kinds.iter().map(|kind| kind.build(settings)).collect()
}

/// Runs the given worker kinds until SIGINT/SIGTERM, then drains them.
/// Must run inside an actix `System`.
pub async fn run(
    settings: Settings,
    kinds: &[WorkerKind],
    prepare: bool,
) -> Result<(), StartupError> {
    let users: Vec<_> = kinds.iter().filter_map(|kind| kind.broker_user()).collect();
    crate::production::check_running(&settings, &users, prepare)?;
    let settings = Arc::new(settings);
    if settings.is_production() {
        tracing::info!("production mode: settings checked");
    }
    if prepare {
        let pool = migrate(&settings).await?;
        warn_database_health(&pool).await;
        pool.close().await;
        declare_topology(&settings).await?;
    } else if let Ok(pool) = store::connect_lazy(&settings.database_url, 1) {
        // Beside the workers, never before them: an unreachable database
        // is theirs to report (`store::outage`), this waits for nothing.
        actix_rt::spawn(async move {
            let _ = tokio::time::timeout(HEALTH_PATIENCE, warn_database_health(&pool)).await;
            pool.close().await;
        });
    }
    let mut workers = build_workers(&settings, kinds);
    if !settings.metrics_address.is_empty() {
        workers.push(Arc::new(crate::metrics::MetricsWorker::new(
            settings.clone(),
        )));
    }
    let workers = RunningWorkers::start(workers);
    runtime::termination_signal().await;
    tracing::info!("shutting down: draining in-flight work");
    if workers.shutdown(settings.shutdown_grace()).await {
        tracing::info!("all workers stopped");
    } else {
        tracing::warn!("grace period over; unacknowledged messages will be redelivered");
    }
    Ok(())
}
