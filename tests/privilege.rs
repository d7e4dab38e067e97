//! Least privilege, proved against the real broker: every worker kind runs
//! as a `sportello worker KIND` process of its own with only its own broker
//! user (`<KIND>_AMQP_URL`, as in production; AMQP_URL names a user that does
//! not exist, so a kind that used it would fail), in this test's vhost with
//! the permissions of `broker-config/definitions.json`. Each kind does its
//! work; the broker refuses (ACCESS_REFUSED) what lies outside its
//! permissions; timers and the senders never connect at all.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::json;
use sportello::broker::names::{
    APPOINTMENT_COMMANDS_QUEUE, APPOINTMENT_QUERIES_QUEUE, CALLBACKS_EXCHANGE,
    DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, INTAKE_EXCHANGE,
    INTAKE_REQUESTS_QUEUE, NOTIFICATION_EVENTS_QUEUE, PIN_AGENT_CHECKS_QUEUE,
    REGISTRATION_REQUESTS_QUEUE,
};
use sportello::broker::publisher::{OutgoingMessage, PublishError, Publisher};
use sportello::broker::users::BrokerUser;
use sportello::broker::{self, callbacks};
use sportello::workers::WorkerKind;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn free_address() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// A `sportello worker KIND` process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

/// `kind` in a process of its own. Its broker URL is its own user's; the
/// app's AMQP_URL names nobody (or, `app_url`, the app user, for kinds that
/// must not connect at all).
fn spawn(env: &TestEnv, kind: WorkerKind, app_url: &str, extra: &[(&str, String)]) -> Process {
    let name = clap::ValueEnum::to_possible_value(&kind)
        .map(|value| value.get_name().to_owned())
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sportello"));
    command
        .args(["worker", &name])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AMQP_URL", app_url)
        .env("DATABASE_URL", &env.settings.database_url)
        .env("DATABASE_POOL_SIZE", "4")
        .env("DOCUMENT_STORE_DIR", &env.settings.document_store_dir)
        .env("METRICS_ADDRESS", "")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(user) = kind.broker_user() {
        command.env(user.setting(), env.user_url(user.name()));
    }
    command.envs(extra.iter().map(|(k, v)| (k, v)));
    Process(
        command
            .spawn()
            .unwrap_or_else(|e| panic!("start sportello worker {name}: {e}")),
    )
}

/// An AMQP URL of a user the broker does not know, in this test's vhost.
fn nobody(env: &TestEnv) -> String {
    env.user_url("nobody")
}

/// The test's name of one definitions user: `<id>-<user>`.
fn test_user(env: &TestEnv, user: BrokerUser) -> String {
    format!("{}-{}", env.id, user.name())
}

/// Waits until `queue` has a consumer of `user`.
async fn consumed_by(env: &TestEnv, queue_prefix: &str, user: &str) -> bool {
    eventually(WAIT, || async {
        env.management
            .consumers(&env.vhost)
            .await
            .unwrap_or_default()
            .iter()
            .any(|(queue, by)| queue.starts_with(queue_prefix) && by == user)
    })
    .await
}

/// Publishes one message as the user of `url`, waiting for the confirm.
async fn publish_as(url: &str, exchange: &str, routing_key: &str) -> Result<(), PublishError> {
    let connection = broker::connect(url, "test-privilege").await?;
    let publisher = Publisher::open(&connection).await?;
    let message = OutgoingMessage {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        message_id: Uuid::now_v7(),
        message_type: "test".into(),
        correlation_id: "test".into(),
        body: b"{}".to_vec(),
        headers: FieldTable::default(),
        mandatory: false,
    };
    let result = match publisher.send(&message).await {
        Ok(pending) => pending.wait().await,
        Err(error) => Err(error),
    };
    let _ = connection.close(200, "done".into()).await;
    result
}

/// Consumes `queue` as the user of `url`.
async fn consume_as(url: &str, queue: &str) -> Result<(), lapin::Error> {
    let connection = broker::connect(url, "test-privilege").await?;
    let channel = connection.create_channel().await?;
    let result = channel
        .basic_consume(
            queue.into(),
            "test-privilege".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map(|_| ());
    let _ = connection.close(200, "done".into()).await;
    result
}

/// Declares a durable queue `queue` as the user of `url`.
async fn declare_as(url: &str, queue: &str) -> Result<(), lapin::Error> {
    let connection = broker::connect(url, "test-privilege").await?;
    let channel = connection.create_channel().await?;
    let result = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|_| ());
    let _ = connection.close(200, "done".into()).await;
    result
}

fn refused(result: Result<(), impl std::fmt::Display>, who: BrokerUser, what: &str) {
    match result {
        Ok(()) => panic!("{} could {what}", who.name()),
        Err(error) => assert!(
            error.to_string().contains("ACCESS_REFUSED"),
            "{}: {what}: {error}",
            who.name()
        ),
    }
}

/// What each kind's user must not do: a publish and a consume outside its
/// permissions, and (for all) declaring or deleting a piece of the topology.
async fn assert_refusals(env: &TestEnv, user: BrokerUser) {
    let url = env.user_url(user.name());
    let (publish, consume) = match user {
        BrokerUser::Intake => (
            (EVENTS_EXCHANGE, "ticket.opened"),
            NOTIFICATION_EVENTS_QUEUE,
        ),
        BrokerUser::OutboxRelay => ((DEAD_LETTER_EXCHANGE, "forged"), INTAKE_REQUESTS_QUEUE),
        BrokerUser::Registration => ((EVENTS_EXCHANGE, "ticket.opened"), INTAKE_REQUESTS_QUEUE),
        BrokerUser::Notify => (
            (INTAKE_EXCHANGE, "web.request.submitted"),
            REGISTRATION_REQUESTS_QUEUE,
        ),
        BrokerUser::Appointments => ((EVENTS_EXCHANGE, "ticket.opened"), DEAD_LETTER_QUEUE),
        BrokerUser::Api => (
            (INTAKE_EXCHANGE, "web.request.submitted"),
            APPOINTMENT_COMMANDS_QUEUE,
        ),
        BrokerUser::Gateway => ((EVENTS_EXCHANGE, "ticket.opened"), INTAKE_REQUESTS_QUEUE),
        BrokerUser::PinChecks => ((EVENTS_EXCHANGE, "ticket.opened"), INTAKE_REQUESTS_QUEUE),
    };
    // What it may publish goes through (so the refusals below are the
    // permissions', not a broken user).
    let allowed = match user {
        BrokerUser::OutboxRelay => Some((EVENTS_EXCHANGE, "test.allowed".to_owned())),
        BrokerUser::Gateway => Some((
            "sportello.gateway",
            format!("room.{}", Uuid::now_v7().simple()),
        )),
        BrokerUser::Api => None,
        // Its answers go through the default exchange.
        BrokerUser::PinChecks => Some(("", PIN_AGENT_CHECKS_QUEUE.to_owned())),
        _ => Some((DEAD_LETTER_EXCHANGE, "test.allowed".to_owned())),
    };
    if let Some((exchange, key)) = allowed {
        publish_as(&url, exchange, &key)
            .await
            .unwrap_or_else(|e| panic!("{} may publish on {exchange}: {e}", user.name()));
    }
    refused(
        publish_as(&url, publish.0, publish.1).await,
        user,
        &format!("publish on {}", publish.0),
    );
    refused(
        consume_as(&url, consume).await,
        user,
        &format!("consume {consume}"),
    );
    refused(
        declare_as(&url, "sportello.stolen").await,
        user,
        "declare a queue of its choosing",
    );
}

/// Each kind that talks to the broker: started as its own user, it works,
/// its connections are that user's, and the broker refuses the rest.
#[actix_rt::test]
async fn every_worker_kind_runs_as_its_own_broker_user_and_nothing_more() {
    let env = TestEnv::new().await;
    let http = free_address();
    let gateway = free_address();
    let extra = [
        ("HTTP_ADDRESS", http.clone()),
        ("GATEWAY_ADDRESS", gateway.clone()),
        ("JWT_SECRET", env.settings.jwt_secret.clone()),
    ];
    let kinds: Vec<WorkerKind> = WorkerKind::ALL
        .into_iter()
        .filter(|kind| kind.broker_user().is_some())
        .collect();
    assert_eq!(kinds.len(), BrokerUser::ALL.len());
    let mut processes: Vec<(WorkerKind, Process)> = kinds
        .iter()
        .map(|&kind| (kind, spawn(&env, kind, &nobody(&env), &extra)))
        .collect();

    // The consumers, each on its queue as its own user.
    for (queue, user) in [
        (INTAKE_REQUESTS_QUEUE, BrokerUser::Intake),
        (REGISTRATION_REQUESTS_QUEUE, BrokerUser::Registration),
        (NOTIFICATION_EVENTS_QUEUE, BrokerUser::Notify),
        (APPOINTMENT_COMMANDS_QUEUE, BrokerUser::Appointments),
        (APPOINTMENT_QUERIES_QUEUE, BrokerUser::Appointments),
        ("sportello.gateway.", BrokerUser::Gateway),
        (PIN_AGENT_CHECKS_QUEUE, BrokerUser::PinChecks),
    ] {
        assert!(
            consumed_by(&env, queue, &test_user(&env, user)).await,
            "{queue} has no consumer of {}",
            user.name()
        );
    }
    // The appointments worker declared its desks' call-back queues (its
    // configure permission covers those alone).
    let callback_queue = sportello::broker::names::callback_queue("1901", "conto_assicurativo");
    assert!(
        env.management
            .queue_members(&env.vhost, &callback_queue)
            .await
            .is_ok(),
        "{callback_queue} not declared"
    );

    // The intake applies a request (a ticket), the relay publishes its
    // events (a `ticket.opened` reaches a probe).
    let mut opened = env.probe(EVENTS_EXCHANGE, "ticket.opened").await;
    let message = request("cassetto", "privilege-1");
    submit_and_wait(&env, &message).await;
    let event = opened.next_json(WAIT).await.expect("ticket.opened relayed");
    assert_eq!(event["causation_id"], message["message_id"], "{event}");

    // The intake dead-letters what it cannot admit (its one write).
    let mut dead = env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    env.publish("cassetto", "cassetto.request.submitted", b"not json")
        .await
        .unwrap();
    let letter = dead.next(WAIT).await.expect("dead-lettered by the intake");
    assert!(header(&letter, sportello::broker::names::REASON_HEADER).is_some());

    // The relay publishes call-backs too (the call-backs exchange).
    let mut calls = env.probe(CALLBACKS_EXCHANGE, "#").await;
    sqlx::query(
        "INSERT INTO outbox (message_id, exchange, routing_key, message_type, correlation_id, body)
         VALUES ($1, $2, $3, 'appointment.callback_due', 'privilege', '{}')",
    )
    .bind(Uuid::now_v7())
    .bind(CALLBACKS_EXCHANGE)
    .bind(callbacks::routing_key("1901", "conto_assicurativo"))
    .execute(&env.pool)
    .await
    .unwrap();
    assert!(calls.next(WAIT).await.is_some(), "call-back not relayed");

    // The API is ready: its user sees the whole topology (passively).
    let client = reqwest::Client::new();
    let ready = eventually(WAIT, || async {
        client
            .get(format!("http://{http}/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
    })
    .await;
    assert!(ready, "the API is not ready as sportello-api");

    // Every connection to the vhost is a kind's own user (or this test's
    // probes, as the app user, and its Cassetto publisher); no kind
    // connected as AMQP_URL's.
    let app_user = format!("{}-sportello-app", env.id);
    let cassetto = format!("{}-channel-cassetto", env.id);
    let connections = env.management.connection_users(&env.vhost).await.unwrap();
    // The API connects only for a readiness check (then closes) or a call
    // taken on the staff page: its ready answer above, with AMQP_URL naming
    // nobody, was its own user's.
    for user in BrokerUser::ALL
        .into_iter()
        .filter(|&u| u != BrokerUser::Api)
    {
        assert!(
            connections
                .iter()
                .any(|(_, by)| *by == test_user(&env, user)),
            "no connection of {}: {connections:?}",
            user.name()
        );
    }
    let own: Vec<String> = BrokerUser::ALL
        .iter()
        .map(|&user| test_user(&env, user))
        .chain([app_user, cassetto])
        .collect();
    assert!(
        connections.iter().all(|(_, by)| own.contains(by)),
        "{connections:?}"
    );

    // What each user may not do, the broker refuses.
    for user in BrokerUser::ALL {
        assert_refusals(&env, user).await;
    }
    // And the kinds' own objects stay theirs: the appointments worker may
    // declare call-back queues, not another desk-shaped name of the intake.
    refused(
        declare_as(
            &env.user_url("sportello-appointments"),
            INTAKE_REQUESTS_QUEUE,
        )
        .await,
        BrokerUser::Appointments,
        "declare the intake queue",
    );
    refused(
        publish_as(
            &env.user_url("sportello-intake"),
            INTAKE_EXCHANGE,
            "web.request.submitted",
        )
        .await,
        BrokerUser::Intake,
        "publish on the intake exchange",
    );

    for (kind, process) in &mut processes {
        assert!(process.running(), "{kind:?} stopped");
    }
    drop(processes);
    env.cleanup().await;
}

/// Timers and the senders work on the database alone: given the app
/// user's URL, they still never connect to the broker.
#[actix_rt::test]
async fn timers_and_senders_never_connect_to_the_broker() {
    let env = TestEnv::new().await;
    let app_url = env.user_url("sportello-app");
    let mut processes: Vec<Process> = [
        WorkerKind::Timers,
        WorkerKind::EmailSender,
        WorkerKind::SmsSender,
    ]
    .into_iter()
    .map(|kind| {
        assert_eq!(kind.broker_user(), None);
        spawn(&env, kind, &app_url, &[])
    })
    .collect();
    // The timers work: the retention cron job is scheduled in the database.
    let scheduled = eventually(WAIT, || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM timers WHERE kind LIKE 'cron.%'")
            .fetch_one(&env.pool)
            .await
            .unwrap_or(0)
            > 0
    })
    .await;
    assert!(
        scheduled,
        "the timers worker did not schedule its cron jobs"
    );
    // The management statistics lag by their interval (5 s).
    tokio::time::sleep(Duration::from_secs(7)).await;
    for process in &mut processes {
        assert!(process.running());
    }
    let connections = env.management.connection_users(&env.vhost).await.unwrap();
    assert_eq!(connections, [], "{}", json!(connections));
    drop(processes);
    env.cleanup().await;
}
