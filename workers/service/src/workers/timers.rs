//! Timer worker: fires due durable timers as `timer.fired` events (through the
//! outbox, in the transaction that marks them fired), runs the in-process
//! action of a cron job (or expires an unconfirmed appointment hold) in that
//! same transaction, and keeps every cron job scheduled one occurrence ahead.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::appointments::callbacks::CALLBACK_TIMER_KIND;
use crate::config::Settings;
use crate::contract::{Event, TimerFired};
use crate::domain::appointment::HOLD_TIMER_KIND;
use crate::domain::cron::{CronJob, CronTask};
use crate::domain::protocol;
use crate::runtime::{Worker, WorkerError};
use crate::store;
use crate::store::outbox::{self, OutboxMessage};
use crate::store::timers::{self, DueTimer, TimerRequest};
use crate::store::trace_context::TraceContext;

const BATCH: i64 = 500;
/// When a cron job's failed action is tried again.
const TASK_RETRY: chrono::Duration = chrono::Duration::minutes(1);
/// Longest sleep between looks at the table, whatever the next timer says.
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// Most inbox rows one retention occurrence forgets: every five minutes,
/// this keeps up with over five million messages a day, while each occurrence
/// stays short (it shares its transaction with the other due timers).
const INBOX_PURGE_LIMIT: i64 = 20_000;
pub const CRON_KIND_PREFIX: &str = "cron.";

pub struct TimerWorker {
    settings: Arc<Settings>,
    cron_jobs: Vec<CronJob>,
}

impl TimerWorker {
    pub fn new(settings: Arc<Settings>, cron_jobs: Vec<CronJob>) -> Self {
        Self {
            settings,
            cron_jobs,
        }
    }
}

impl Worker for TimerWorker {
    fn name(&self) -> String {
        "timers".into()
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        Box::pin(
            self.tick(shutdown)
                .instrument(tracing::info_span!("timers")),
        )
    }
}

impl TimerWorker {
    async fn tick(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), WorkerError> {
        // A pool of this run's own: its connections live on this worker's thread.
        let pool = store::connect_lazy(&self.settings.database_url, 2)?;
        match self.fire_until(&pool, &shutdown).await {
            Err(error) => Err(error.explained(&pool).await),
            done => done,
        }
    }

    async fn fire_until(
        &self,
        pool: &PgPool,
        shutdown: &CancellationToken,
    ) -> Result<(), WorkerError> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(timers::NOTIFY_CHANNEL).await?;
        self.ensure_cron_scheduled(pool).await?;
        loop {
            while self.fire_due(pool).await? == BATCH as usize {}
            let mut conn = pool.acquire().await?;
            let sleep = match timers::next_due(&mut conn).await? {
                Some(at) => (at - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            drop(conn);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                notification = listener.recv() => { notification?; }
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        Ok(())
    }

    /// Every cron job has exactly one pending occurrence; several processes
    /// doing this at once converge on the same timer (unique kind and key).
    async fn ensure_cron_scheduled(&self, pool: &PgPool) -> Result<(), WorkerError> {
        let mut tx = pool.begin().await?;
        for job in &self.cron_jobs {
            let kind = cron_kind(job);
            if !timers::has_pending(&mut tx, &kind, "").await? {
                schedule_next(&mut tx, job, Utc::now()).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn fire_due(&self, pool: &PgPool) -> Result<usize, WorkerError> {
        let mut tx = pool.begin().await?;
        let due = timers::take_due(&mut tx, BATCH).await?;
        let mut events = Vec::with_capacity(due.len());
        for timer in &due {
            let job = timer
                .kind
                .strip_prefix(CRON_KIND_PREFIX)
                .and_then(|name| self.cron_jobs.iter().find(|j| j.name == name));
            let task = match job {
                Some(job) => job.task.map(Task::Cron),
                None if timer.kind == HOLD_TIMER_KIND => Some(Task::ExpireHold),
                None if timer.kind == CALLBACK_TIMER_KIND => Some(Task::QueueCall),
                None if timer.kind == crate::video::WINDOW_TIMER_KIND => {
                    Some(Task::CloseVideoWindow)
                }
                None => None,
            };
            // Each firing is a trace of its own, not a part of the worker's
            // long-lived span: what it writes (a call-back's row, its event)
            // continues it.
            let span = tracing::info_span!(
                "timer fired",
                timer_id = %timer.id,
                kind = %timer.kind,
                correlation_id = %timer.correlation_id,
            );
            let _ = span.set_parent(opentelemetry::Context::new());
            if let Some(task) = task {
                if !run_task(&mut tx, task, timer)
                    .instrument(span.clone())
                    .await?
                {
                    continue;
                }
            }
            let mut fired = fired_event(timer)?;
            fired.trace = TraceContext::of(&span);
            events.push(fired);
            if let Some(job) = job {
                // Late after downtime: fire once, then continue from now, not
                // with a burst of every missed occurrence.
                schedule_next(&mut tx, job, timer.fire_at.max(Utc::now())).await?;
            }
            tracing::info!(timer_id = %timer.id, kind = %timer.kind, key = %timer.key,
                correlation_id = %timer.correlation_id, late_by = ?(timer.fired_at - timer.fire_at), "timer fired");
        }
        outbox::enqueue(&mut tx, &events).await?;
        tx.commit().await?;
        crate::metrics::metrics()
            .timers_fired
            .inc_by(events.len() as u64);
        Ok(due.len())
    }
}

/// What runs in the transaction that fires a timer.
#[derive(Debug, Clone, Copy)]
enum Task {
    /// A cron job's action.
    Cron(CronTask),
    /// An appointment hold's timer: expire it if still unconfirmed.
    ExpireHold,
    /// A phone appointment's call is due: put it on its desk's queue.
    QueueCall,
    /// A video room's 72-hour document window is over: close it.
    CloseVideoWindow,
}

/// Runs a timer's action (a cron job's, an appointment hold's expiry) in a
/// savepoint of the transaction that fires it: the action commits exactly
/// with the firing. A transient
/// failure (database gone) fails the whole batch, which the supervisor
/// retries; any other failure is rolled back alone and the occurrence is put
/// back, due again after `TASK_RETRY`, so a failing action cannot stall the
/// other timers. Returns whether the action was done.
async fn run_task(
    tx: &mut PgConnection,
    task: Task,
    timer: &DueTimer,
) -> Result<bool, WorkerError> {
    let mut savepoint = tx.begin().await?;
    match perform(&mut savepoint, task, timer).await {
        Ok(()) => {
            savepoint.commit().await?;
            Ok(true)
        }
        Err(error) if store::is_transient(&error) => Err(error.into()),
        Err(error) => {
            savepoint.rollback().await?;
            let retry_at = Utc::now() + TASK_RETRY;
            tracing::error!(%error, ?task, timer_id = %timer.id, kind = %timer.kind,
                key = %timer.key, %retry_at, "cron task failed; the occurrence will be retried");
            timers::retry_at(tx, timer.id, retry_at).await?;
            Ok(false)
        }
    }
}

async fn perform(conn: &mut PgConnection, task: Task, timer: &DueTimer) -> Result<(), sqlx::Error> {
    match task {
        Task::QueueCall => {
            crate::appointments::callbacks::queue_call(
                conn,
                &timer.data,
                &timer.correlation_id,
                timer.fired_at,
            )
            .await?;
        }
        Task::CloseVideoWindow => match timer.key.parse::<Uuid>() {
            Ok(id) => {
                crate::video::expire_window(conn, id, timer.fired_at, &timer.correlation_id)
                    .await?;
            }
            Err(_) => {
                tracing::error!(timer_id = %timer.id, key = %timer.key, "window timer without an appointment id");
            }
        },
        Task::ExpireHold => match timer.key.parse::<Uuid>() {
            Ok(id) => {
                crate::appointments::expire_hold(conn, id).await?;
            }
            Err(_) => {
                tracing::error!(timer_id = %timer.id, key = %timer.key, "hold timer without an appointment id");
            }
        },
        Task::Cron(CronTask::ProduceDailyRegisters) => {
            // Up to the day before the firing, not the occurrence: after
            // downtime this catches up to the last complete day.
            let yesterday = protocol::registration_date(timer.fired_at) - chrono::Duration::days(1);
            let produced = store::protocol::produce_daily_registers(conn, yesterday).await?;
            tracing::info!(until = %yesterday, produced = ?produced, "daily registers produced");
            // The chain checked once a day where it grows, as `sportello
            // register verify` does: a break is an alert, not a failed task
            // (a check that cannot run fails it, like any statement here).
            let checked = store::protocol::verify(conn).await?;
            crate::metrics::metrics()
                .register_chain_breaks
                .set(checked.breaks.len() as i64);
            for chain_break in &checked.breaks {
                tracing::error!(%chain_break, "daily register chain broken");
            }
        }
        Task::Cron(CronTask::Retention { inbox_keep_days }) => {
            let before = timer.fired_at - chrono::Duration::days(i64::from(inbox_keep_days));
            let purged = store::inbox::purge(conn, before, INBOX_PURGE_LIMIT).await?;
            let outcomes =
                store::booking_commands::purge_outcomes(conn, before, INBOX_PURGE_LIMIT).await?;
            let fates = store::submissions::purge(conn, before, INBOX_PURGE_LIMIT).await?;
            let sessions = store::staff_sessions::purge_expired(conn).await?;
            let recoveries = store::pins::purge_expired_recoveries(conn).await?;
            tracing::info!(%before, purged, outcomes, fates, sessions, recoveries,
                "inbox, booking-command outcomes, submission fates, staff sessions and PIN recoveries purged");
        }
    }
    Ok(())
}

fn cron_kind(job: &CronJob) -> String {
    format!("{CRON_KIND_PREFIX}{}", job.name)
}

async fn schedule_next(
    conn: &mut sqlx::PgConnection,
    job: &CronJob,
    after: chrono::DateTime<Utc>,
) -> Result<(), WorkerError> {
    let Some(at) = job.next_after(after) else {
        tracing::warn!(job = %job.name, "cron job has no further occurrence");
        return Ok(());
    };
    timers::schedule(
        conn,
        &TimerRequest {
            kind: cron_kind(job),
            key: job.occurrence_key(at),
            fire_at: at,
            data: serde_json::json!({ "job": job.name }),
            correlation_id: format!("cron-{}", job.name),
        },
    )
    .await?;
    Ok(())
}

fn fired_event(timer: &DueTimer) -> Result<OutboxMessage, WorkerError> {
    let event = Event {
        message_id: Uuid::now_v7(),
        message_type: "timer.fired".into(),
        schema_version: 1,
        occurred_at: timer.fired_at,
        correlation_id: timer.correlation_id.clone(),
        causation_id: None,
        payload: TimerFired {
            timer_id: timer.id,
            kind: timer.kind.clone(),
            key: timer.key.clone(),
            fire_at: timer.fire_at,
            fired_at: timer.fired_at,
            data: timer.data.clone(),
        },
    };
    OutboxMessage::event(&event, Some(&timer.kind)).map_err(|e| WorkerError::Other(e.to_string()))
}
