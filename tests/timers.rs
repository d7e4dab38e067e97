//! Durable timers and cron jobs survive restarts and fire late ones.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use chrono::Utc;
use sportello::broker::names::EVENTS_EXCHANGE;
use sportello::domain::cron::{CronJob, CronTask};
use sportello::runtime::{RunningWorkers, Worker};
use sportello::store::timers::{self, TimerRequest};
use sportello::workers::outbox_relay::OutboxRelay;
use sportello::workers::timers::{TimerWorker, CRON_KIND_PREFIX};
use sportello::workers::WorkerKind;

const WAIT: Duration = Duration::from_secs(20);

fn timer(kind: &str, key: &str, in_ms: i64) -> TimerRequest {
    TimerRequest {
        kind: kind.into(),
        key: key.into(),
        fire_at: Utc::now() + chrono::Duration::milliseconds(in_ms),
        data: serde_json::json!({ "room_id": key }),
        correlation_id: format!("corr-{key}"),
    }
}

async fn state_of(env: &TestEnv, kind: &str, key: &str) -> String {
    sqlx::query_scalar("SELECT state::text FROM timers WHERE kind = $1 AND key = $2")
        .bind(kind)
        .bind(key)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[actix_rt::test]
async fn a_timer_scheduled_before_a_restart_fires_after_it() {
    let env = TestEnv::new().await;
    let mut fired = env
        .probe(EVENTS_EXCHANGE, "timer.fired.documents.window")
        .await;
    let workers = env.start(&[WorkerKind::Timers, WorkerKind::OutboxRelay]);
    let mut conn = env.pool.acquire().await.unwrap();
    let id = timers::schedule(&mut conn, &timer("documents.window", "room-1", 1500))
        .await
        .unwrap();
    // Scheduling again is a no-op that names the same timer.
    assert_eq!(
        timers::schedule(&mut conn, &timer("documents.window", "room-1", 99_000))
            .await
            .unwrap(),
        id
    );
    assert!(workers.shutdown(WAIT).await);

    // Down while it comes due.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        state_of(&env, "documents.window", "room-1").await,
        "scheduled"
    );

    let workers = env.start(&[WorkerKind::Timers, WorkerKind::OutboxRelay]);
    let event = fired
        .next_json(WAIT)
        .await
        .expect("timer.fired after restart");
    assert_eq!(event["payload"]["timer_id"], id.to_string());
    assert_eq!(event["payload"]["data"]["room_id"], "room-1");
    assert_eq!(event["correlation_id"], "corr-room-1");
    sportello::contract::schemas::catalogue()
        .validate(&event)
        .unwrap();
    assert_eq!(state_of(&env, "documents.window", "room-1").await, "fired");
    // Exactly once into the outbox.
    assert!(fired.next(Duration::from_millis(800)).await.is_none());
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn a_cancelled_timer_never_fires() {
    let env = TestEnv::new().await;
    let mut fired = env.probe(EVENTS_EXCHANGE, "timer.fired.#").await;
    let workers = env.start(&[WorkerKind::Timers, WorkerKind::OutboxRelay]);
    let mut conn = env.pool.acquire().await.unwrap();
    timers::schedule(&mut conn, &timer("appointment.hold", "slot-7", 800))
        .await
        .unwrap();
    assert!(timers::cancel(&mut conn, "appointment.hold", "slot-7")
        .await
        .unwrap());
    assert!(!timers::cancel(&mut conn, "appointment.hold", "slot-7")
        .await
        .unwrap());
    timers::schedule(&mut conn, &timer("appointment.hold", "slot-8", 800))
        .await
        .unwrap();
    let event = fired.next_json(WAIT).await.expect("the other timer fires");
    assert_eq!(event["payload"]["key"], "slot-8");
    assert!(fired.next(Duration::from_millis(1000)).await.is_none());
    assert_eq!(
        state_of(&env, "appointment.hold", "slot-7").await,
        "cancelled"
    );
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn cron_jobs_fire_once_per_occurrence_even_with_two_timer_workers() {
    let env = TestEnv::new().await;
    let mut fired = env
        .probe(EVENTS_EXCHANGE, "timer.fired.cron.heartbeat")
        .await;
    let job = CronJob::new("heartbeat", "* * * * * *").unwrap();
    let workers: Vec<Arc<dyn Worker>> = vec![
        Arc::new(TimerWorker::new(env.settings.clone(), vec![job.clone()])),
        Arc::new(TimerWorker::new(env.settings.clone(), vec![job])),
        Arc::new(OutboxRelay::new(env.settings.clone())),
    ];
    let running = RunningWorkers::start(workers);
    let mut keys = Vec::new();
    for _ in 0..3 {
        let event = fired.next_json(WAIT).await.expect("cron occurrence");
        keys.push(event["payload"]["key"].as_str().unwrap().to_owned());
    }
    assert!(running.shutdown(WAIT).await);
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(unique, keys, "an occurrence fired twice");
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timers WHERE kind = 'cron.heartbeat' AND state = 'scheduled'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(pending, 1, "exactly one next occurrence is kept scheduled");
    env.cleanup().await;
}

#[actix_rt::test]
async fn a_cron_task_that_fails_is_retried_later_without_stalling_other_timers() {
    let env = TestEnv::new().await;
    // Producing the daily register will fail: inserts into it are refused.
    sqlx::query(
        "CREATE TRIGGER refuse_for_test BEFORE INSERT ON daily_registers
         FOR EACH ROW EXECUTE FUNCTION forbid_change()",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let job = CronJob::new("register-test", "0 30 0 * * *")
        .unwrap()
        .with_task(CronTask::ProduceDailyRegisters);
    let kind = format!("{CRON_KIND_PREFIX}{}", job.name);
    let due = Utc::now() - chrono::Duration::seconds(1);
    let mut conn = env.pool.acquire().await.unwrap();
    timers::schedule(
        &mut conn,
        &TimerRequest {
            kind: kind.clone(),
            key: job.occurrence_key(due),
            fire_at: due,
            data: serde_json::json!({ "job": job.name }),
            correlation_id: "cron-register-test".into(),
        },
    )
    .await
    .unwrap();
    timers::schedule(&mut conn, &timer("appointment.hold", "slot-9", 0))
        .await
        .unwrap();

    let mut fired = env.probe(EVENTS_EXCHANGE, "timer.fired.#").await;
    let running = RunningWorkers::start(vec![
        Arc::new(TimerWorker::new(env.settings.clone(), vec![job.clone()])) as Arc<dyn Worker>,
        Arc::new(OutboxRelay::new(env.settings.clone())),
    ]);
    let event = fired.next_json(WAIT).await.expect("the other timer fires");
    assert_eq!(event["payload"]["key"], "slot-9");
    assert!(
        fired.next(Duration::from_millis(1000)).await.is_none(),
        "the failed occurrence did not fire"
    );
    assert!(running.shutdown(WAIT).await);

    // The occurrence is put back, due again later, and still the only one.
    let pending: Vec<(String, chrono::DateTime<Utc>)> =
        sqlx::query_as("SELECT key, fire_at FROM timers WHERE kind = $1 AND state = 'scheduled'")
            .bind(&kind)
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].0, job.occurrence_key(due));
    assert!(pending[0].1 > Utc::now() + chrono::Duration::seconds(30));
    let registers: i64 = sqlx::query_scalar("SELECT count(*) FROM daily_registers")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(registers, 0);
    drop(conn);
    env.cleanup().await;
}

#[actix_rt::test]
async fn the_retention_job_forgets_only_messages_and_outcomes_older_than_the_retention_old_sessions_and_old_recoveries(
) {
    let env = TestEnv::new_with(|settings| settings.inbox_retention_days = 30).await;
    for (key, days_ago) in [("old-1", 45), ("old-2", 31), ("recent", 29), ("today", 0)] {
        sqlx::query(
            "INSERT INTO inbox (message_id, message_type, idempotency_scope, idempotency_key,
                                payload_sha256, received_at)
             VALUES ($1, 'request.submitted', 'citizen:RSSMRA85T10A562S', $2, 'x',
                     now() - make_interval(days => $3))",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(key)
        .bind(days_ago)
        .execute(&env.pool)
        .await
        .unwrap();
        // A booking command's kept outcome, as old: forgotten with it.
        sqlx::query(
            "INSERT INTO appointment_command_outcomes
                 (message_id, idempotency_scope, idempotency_key, outcome, recorded_at)
             VALUES ($1, 'agent:CC-1', $2, '{}', now() - make_interval(days => $3))",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(key)
        .bind(days_ago)
        .execute(&env.pool)
        .await
        .unwrap();
    }
    // Staff sessions: one expired a month ago, one still open.
    for (key, expires) in [
        ("old-session", "now() - interval '30 days'"),
        ("live", "now() + interval '1 hour'"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO staff_sessions (key_sha256, principal, expires_at) VALUES ($1, '{{}}', {expires})"
        ))
        .bind(key)
        .execute(&env.pool)
        .await
        .unwrap();
    }
    // PIN recoveries: one whose link expired over a month ago, one of today.
    sqlx::query(
        "INSERT INTO pin_credentials (tax_code, state, surname, name, birth_date, sex,
             birthplace_code, birth_municipality, birth_province, residence, channel,
             requested_at, issued_at, updated_at)
         VALUES ('RSSMRA85T10A562S', 'revoked', 'Rossi', 'Mario', '1985-12-10', 'M', 'A562',
                 'San Giuliano Terme', 'PI', '{}', 'web', now(), now(), now())",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    for (first_to, expired) in [
        ("email:old@example.it", "now() - interval '31 days'"),
        ("email:recent@example.it", "now() - interval '1 hour'"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO pin_recoveries (id, tax_code, secret_hash, first_to, second_to,
                 requested_at, expires_at)
             VALUES ($1, 'RSSMRA85T10A562S', '\\x00', $2, 'sms:+393331234567',
                     {expired} - interval '30 minutes', {expired})"
        ))
        .bind(uuid::Uuid::now_v7())
        .bind(first_to)
        .execute(&env.pool)
        .await
        .unwrap();
    }
    // The system's job, with an occurrence come due.
    let job = sportello::workers::cron_jobs(&env.settings)
        .into_iter()
        .find(|job| job.name == sportello::workers::RETENTION_JOB)
        .expect("the retention job is registered");
    let due = Utc::now() - chrono::Duration::seconds(1);
    let mut conn = env.pool.acquire().await.unwrap();
    timers::schedule(
        &mut conn,
        &TimerRequest {
            kind: format!("{CRON_KIND_PREFIX}{}", job.name),
            key: job.occurrence_key(due),
            fire_at: due,
            data: serde_json::json!({ "job": job.name }),
            correlation_id: "cron-retention".into(),
        },
    )
    .await
    .unwrap();
    drop(conn);
    let keys = || async {
        sqlx::query_scalar::<_, String>("SELECT idempotency_key FROM inbox ORDER BY 1")
            .fetch_all(&env.pool)
            .await
            .unwrap()
    };
    let running = env.start(&[WorkerKind::Timers]);
    assert!(
        eventually(WAIT, || async { keys().await.len() == 2 }).await,
        "left: {:?}",
        keys().await
    );
    assert!(running.shutdown(WAIT).await);
    assert_eq!(keys().await, ["recent", "today"]);
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM appointment_command_outcomes ORDER BY 1")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(outcomes, ["recent", "today"]);
    let sessions: Vec<String> = sqlx::query_scalar("SELECT key_sha256 FROM staff_sessions")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(sessions, ["live"]);
    let recoveries: Vec<String> = sqlx::query_scalar("SELECT first_to FROM pin_recoveries")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(recoveries, ["email:recent@example.it"]);
    env.cleanup().await;
}
