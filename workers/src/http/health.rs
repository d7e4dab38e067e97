//! Probes for orchestrators and load balancers.
//!
//! `GET /health/live`: the process runs and serves HTTP (no I/O).
//! `GET /health/ready`: the database answers with every migration applied,
//! and the broker accepts this process's user with every exchange and queue
//! of the topology declared. The verdict is cached for `FRESH`, and a check
//! is bounded by `CHECK_TIMEOUT`, so probes answer in milliseconds and a
//! probe storm costs one check per `FRESH`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::json;
use sqlx::PgPool;

use super::ApiState;
use crate::broker::{self, topology};

/// How long a verdict is reused.
const FRESH: Duration = Duration::from_secs(2);
/// Longest one check may take (database and broker together).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The last verdict: `Ok` or what is not ready.
type Verdict = Result<(), Vec<String>>;

pub struct Readiness {
    amqp_url: String,
    last: Mutex<Option<(Instant, Verdict)>>,
    /// One check at a time; probes arriving meanwhile get the last verdict.
    checking: tokio::sync::Mutex<()>,
}

impl Readiness {
    pub fn new(amqp_url: &str) -> Self {
        Self {
            amqp_url: amqp_url.to_owned(),
            last: Mutex::new(None),
            checking: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, fresh_only: bool) -> Option<Verdict> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref()
            .filter(|(at, _)| !fresh_only || at.elapsed() < FRESH)
            .map(|(_, verdict)| verdict.clone())
    }

    async fn verdict(&self, pool: &PgPool) -> Verdict {
        if let Some(verdict) = self.cached(true) {
            return verdict;
        }
        let Ok(_one) = self.checking.try_lock() else {
            // Another probe is checking: answer with what we knew.
            return self
                .cached(false)
                .unwrap_or_else(|| Err(vec!["first check in progress".into()]));
        };
        let verdict = match tokio::time::timeout(CHECK_TIMEOUT, self.check(pool)).await {
            Ok(verdict) => verdict,
            Err(_) => Err(vec![format!(
                "database or broker did not answer within {CHECK_TIMEOUT:?}"
            )]),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), verdict.clone()));
        verdict
    }

    async fn check(&self, pool: &PgPool) -> Verdict {
        let (database, broker) = futures::join!(migrations_applied(pool), self.topology_declared());
        let problems: Vec<String> = [database, broker]
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    async fn topology_declared(&self) -> Result<(), String> {
        let definitions =
            topology::Definitions::embedded().map_err(|e| format!("broker definitions: {e}"))?;
        let connection = broker::connect(&self.amqp_url, "sportello-readiness")
            .await
            .map_err(|e| format!("broker unreachable: {e}"))?;
        let result = async {
            let channel = connection
                .create_channel()
                .await
                .map_err(|e| format!("broker: {e}"))?;
            let passive = ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            };
            // A failed passive declaration closes the channel: report the
            // first missing object.
            for exchange in &definitions.exchanges {
                channel
                    .exchange_declare(
                        exchange.name.as_str().into(),
                        lapin::ExchangeKind::Topic,
                        passive,
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|_| format!("exchange {} not declared", exchange.name))?;
            }
            for queue in &definitions.queues {
                channel
                    .queue_declare(
                        queue.name.as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|_| format!("queue {} not declared", queue.name))?;
            }
            Ok(())
        }
        .await;
        let _ = connection.close(200, "readiness checked".into()).await;
        result
    }
}

async fn migrations_applied(pool: &PgPool) -> Result<(), String> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(|e| format!("database: {e}"))?;
    let pending = crate::store::MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .count();
    match pending {
        0 => Ok(()),
        n => Err(format!("{n} database migration(s) not applied")),
    }
}

/// `GET /health/live`
pub(super) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "live"}))
}

/// `GET /health/ready`: 200, or 503 with what is not ready.
pub(super) async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    match state.readiness.verdict(&state.pool).await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Err(problems) => {
            tracing::warn!(?problems, "not ready");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "not_ready", "problems": problems}))
        }
    }
}
