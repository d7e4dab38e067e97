//! Probes for orchestrators and load balancers.
//!
//! `GET /health/live`: the process runs and serves HTTP (no I/O).
//! `GET /health/ready`: the database answers with every migration applied,
//! and the broker accepts this process's user with every exchange and queue
//! of the topology declared. A ready answer carries warnings the operator
//! should act on while the process works on (autovacuum off, a churned
//! table full of dead tuples: `domain::vacuum`). The verdict is cached for `FRESH`, and a check
//! is bounded by `CHECK_TIMEOUT`, so probes answer in milliseconds and a
//! probe storm costs one check per `FRESH`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use sqlx::PgPool;

use super::ApiState;
use crate::broker::{self, topology};
use crate::store::outage::{self, Reachability};

/// How long a verdict is reused.
const FRESH: Duration = Duration::from_secs(2);
/// Longest one check may take (database and broker together).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest the vacuum statistics may take, within `CHECK_TIMEOUT`.
const WARNINGS_TIMEOUT: Duration = Duration::from_millis(500);

/// The last verdict: `Ok` with its warnings, or what is not ready.
type Verdict = Result<Vec<String>, Vec<String>>;

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
        let (database, broker) = futures::join!(database_ready(pool), self.topology_declared());
        let problems: Vec<String> = [database, broker]
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if problems.is_empty() {
            // Only a database that answers is asked how it vacuums, and
            // briefly: a warning is never worth an unready verdict.
            Ok(
                tokio::time::timeout(WARNINGS_TIMEOUT, database_warnings(pool))
                    .await
                    .unwrap_or_default(),
            )
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
        crate::broker::close_quietly(&connection, "readiness checked").await;
        result
    }
}

/// The database answers with every migration applied. A slow answer may be
/// the pool retrying a refused connection until its timeout: then the
/// problem says why the server cannot be reached (`store::outage`), not
/// only that it did not answer in time.
async fn database_ready(pool: &PgPool) -> Result<(), String> {
    let applied = migrations_applied(pool);
    tokio::pin!(applied);
    tokio::select! {
        result = &mut applied => return result,
        _ = tokio::time::sleep(Duration::from_millis(300)) => {}
    }
    tokio::select! {
        result = &mut applied => result,
        found = outage::diagnose(pool) => match found {
            Reachability::Unreachable(cause) => Err(format!("database unreachable: {cause}")),
            Reachability::Reachable => applied.await,
        },
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

/// What the operator should fix in PostgreSQL's vacuuming (never a reason
/// to be unready: the database works, it only grows). Statistics that
/// cannot be read give no warning.
async fn database_warnings(pool: &PgPool) -> Vec<String> {
    match crate::store::vacuum::warnings(pool).await {
        Ok(warnings) => warnings.iter().map(ToString::to_string).collect(),
        Err(error) => {
            tracing::debug!(%error, "vacuum statistics not read");
            Vec::new()
        }
    }
}

/// `GET /health`: the first probe, kept as it was (plain `ok`).
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    security(()),
    responses((status = 200, description = "The process serves", body = String, content_type = "text/plain", example = json!("ok")))
)]
pub(super) async fn plain() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// A probe's answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Probe {
    /// `live`, `ready` or `not_ready`.
    status: String,
    /// What is not ready (503 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    problems: Option<Vec<String>>,
    /// What the operator should fix while the process works on, e.g.
    /// PostgreSQL's autovacuum off (200 only; absent when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    warnings: Option<Vec<String>>,
}

/// `GET /health/live`
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    description = "200 while the process serves (no I/O).",
    security(()),
    responses((status = 200, description = "Live", body = Probe, example = json!({"status": "live"})))
)]
pub(super) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Probe {
        status: "live".into(),
        problems: None,
        warnings: None,
    })
}

/// `GET /health/ready`: 200, or 503 with what is not ready.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    description = "200 when the database answers with every migration applied and the broker accepts this process's user with the whole topology declared; the verdict is cached 2 s. A ready answer may carry `warnings` to act on while the process works on: PostgreSQL's autovacuum off, or a table Sportello churns (outbox, timers, inbox) holding far more dead tuples than live ones.",
    security(()),
    responses(
        (status = 200, description = "Ready, with warnings if any", body = Probe, example = json!({"status": "ready", "warnings": ["PostgreSQL autovacuum is off: the outbox, timers and inbox keep every deleted row until vacuumed (set autovacuum = on)"]})),
        (status = 503, description = "Not ready, and why", body = Probe, example = json!({"status": "not_ready", "problems": ["database unreachable: connection refused: nothing listens there (is PostgreSQL running?)"]}))
    )
)]
pub(super) async fn ready(state: web::Data<ApiState>) -> HttpResponse {
    match state.readiness.verdict(&state.pool).await {
        Ok(warnings) => HttpResponse::Ok().json(Probe {
            status: "ready".into(),
            problems: None,
            warnings: (!warnings.is_empty()).then_some(warnings),
        }),
        Err(problems) => {
            tracing::warn!(?problems, "not ready");
            HttpResponse::ServiceUnavailable().json(Probe {
                status: "not_ready".into(),
                problems: Some(problems),
                warnings: None,
            })
        }
    }
}
