//! A worker process killed mid-stream loses nothing and applies nothing twice.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use sportello::broker;
use sportello::broker::publisher::Publisher;

fn spawn_worker(env: &TestEnv) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["worker", "intake"])
        .env("AMQP_URL", &env.settings.amqp_url)
        .env("DATABASE_URL", &env.settings.database_url)
        .env("INTAKE_BATCH_SIZE", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sportello worker")
}

#[actix_rt::test]
async fn killing_the_worker_before_it_acks_leads_to_redelivery_and_still_one_ticket_each() {
    const MESSAGES: i64 = 3000;
    let env = TestEnv::new().await;
    let connection = broker::connect(&env.channel_url("web"), "test-publisher")
        .await
        .unwrap();
    let publisher = Publisher::open(&connection).await.unwrap();
    for i in 0..MESSAGES {
        publish_on(
            &publisher,
            "web.request.submitted",
            &bytes(&request("web", &format!("crash-test-{i:05}"))),
        )
        .await
        .unwrap();
    }

    let mut worker = spawn_worker(&env);
    assert!(
        eventually(Duration::from_secs(30), || async {
            env.ticket_count().await > 0
        })
        .await
    );
    worker.kill().unwrap(); // SIGKILL: no chance to ack or drain
    worker.wait().unwrap();
    let at_kill = env.ticket_count().await;
    assert!(
        at_kill < MESSAGES,
        "the worker finished before it could be killed"
    );

    let mut worker = spawn_worker(&env);
    let done = eventually(Duration::from_secs(60), || async {
        env.ticket_count().await >= MESSAGES
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert!(done, "only {} tickets", env.ticket_count().await);

    let (tickets, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT request_message_id) FROM tickets")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!((tickets, distinct), (MESSAGES, MESSAGES));
    // The broker did redeliver what the killed worker held unacknowledged
    // (management statistics lag behind, more so on a loaded machine).
    assert!(
        eventually(Duration::from_secs(60), || async {
            redeliveries(&env).await > 0
        })
        .await,
        "no redelivery observed"
    );
    env.cleanup().await;
}

async fn redeliveries(env: &TestEnv) -> u64 {
    let url = std::env::var("RABBITMQ_MANAGEMENT_URL")
        .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".into());
    let host = url
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or("127.0.0.1:15672");
    let queue: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "http://{host}/api/queues/{}/sportello.intake.requests",
            env.vhost
        ))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    queue["message_stats"]["redeliver"].as_u64().unwrap_or(0)
}
