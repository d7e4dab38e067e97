//! Database health: `/health/ready` stays 200 but warns when PostgreSQL's
//! autovacuum is off (this box's server runs so) or when a table Sportello
//! churns holds far more dead tuples than live ones, and the startup log of
//! a worker says the same. The dead tuples are made in the test's own
//! database, whose outbox has autovacuum turned off so that nothing
//! reclaims them mid-test.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;
use sportello::domain::vacuum::DEAD_TUPLES_FLOOR;
use sportello::http::{self, ApiState};

fn warnings(body: &Value) -> Vec<String> {
    body["warnings"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|w| w.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn outbox_dead_tuples(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'outbox'")
        .fetch_one(&env.pool)
        .await
        .unwrap_or(0)
}

#[actix_rt::test]
async fn readiness_warns_of_autovacuum_off_and_of_a_table_full_of_dead_tuples() {
    let env = TestEnv::new().await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = http::serve(ApiState::new(&env.settings, env.pool.clone()), listener).unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    let ready = || async {
        let response = reqwest::get(format!("{base}/health/ready")).await.unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };

    // The server's setting: a warning, and still ready.
    let off = env.autovacuum_is_off().await;
    let (status, body) = ready().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    let said = warnings(&body);
    assert_eq!(
        said.iter()
            .any(|w| w.starts_with("PostgreSQL autovacuum is off")),
        off,
        "{body}"
    );
    assert!(!said.iter().any(|w| w.contains("dead tuples")), "{body}");

    // The relay's churn, without a vacuum: every relayed row stays dead.
    sqlx::query("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        .execute(&env.pool)
        .await
        .unwrap();
    let rows = DEAD_TUPLES_FLOOR + 2_000;
    // One session for both: PostgreSQL clamps a table's live count at zero
    // when statistics are flushed, so a delete counted before its insert
    // would leave the live estimate at the rows inserted.
    let mut session = env.pool.acquire().await.unwrap();
    sqlx::query(
        "INSERT INTO outbox (message_id, exchange, routing_key, message_type, correlation_id, body)
         SELECT gen_random_uuid(), 'sportello.events', 'test.churn', 'test.churn', 'churn', '{}'
         FROM generate_series(1, $1)",
    )
    .bind(rows)
    .execute(&mut *session)
    .await
    .unwrap();
    sqlx::query("DELETE FROM outbox")
        .execute(&mut *session)
        .await
        .unwrap();
    drop(session);
    // PostgreSQL flushes a session's statistics when it goes idle (within
    // a second, at most ten).
    assert!(
        eventually(Duration::from_secs(30), || async {
            outbox_dead_tuples(&env).await >= rows
        })
        .await,
        "the statistics never counted the dead tuples"
    );
    // The verdict is cached for two seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = ready().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let said = warnings(&body);

    assert!(
        said.iter()
            .any(|w| w.starts_with(&format!("table outbox holds {rows} dead tuples for 0 live"))),
        "{body}"
    );
    assert!(
        said.iter()
            .any(|w| w.starts_with("autovacuum is off for table outbox")),
        "{body}"
    );

    // A worker's startup log says the same (here: the timers').
    let mut worker = Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["worker", "timers"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &env.settings.database_url)
        .env("METRICS_ADDRESS", "")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    worker.kill().unwrap();
    let output = worker.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(log.contains("database health"), "{log}");
    assert!(log.contains("table outbox holds"), "{log}");
    assert_eq!(log.contains("PostgreSQL autovacuum is off"), off, "{log}");

    // What the operators' docs say to do: vacuum (and autovacuum on).
    sqlx::raw_sql("VACUUM outbox")
        .execute(&env.pool)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || async {
            outbox_dead_tuples(&env).await == 0
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = ready().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !warnings(&body).iter().any(|w| w.contains("dead tuples")),
        "{body}"
    );

    handle.stop(true).await;
    env.cleanup().await;
}
