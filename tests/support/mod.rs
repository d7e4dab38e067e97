//! Test harness: every test gets its own RabbitMQ vhost (with the channel
//! users and permissions of `broker-config/definitions.json`) and its own
//! PostgreSQL database, so tests run in parallel against the real services.
#![allow(dead_code)]

pub mod api;
pub mod browser;
pub mod fixtures;
pub mod gateway;
pub mod identity_provider;
pub mod logs;
pub mod mail;
pub mod requester;
pub mod sms_provider;
pub mod sms_sink;

#[allow(unused_imports)]
pub use api::Api;
#[allow(unused_imports)]
pub use requester::Requester;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, Consumer};
use serde_json::{json, Value};
use sportello::broker::management::Management;
use sportello::broker::publisher::{OutgoingMessage, PublishError, Publisher};
use sportello::broker::topology::Definitions;
use sportello::broker::{self, names};
use sportello::config::Settings;
use sportello::contract::{Authentication, CodiceFiscale, Principal};
use sportello::runtime::RunningWorkers;
use sportello::workers::WorkerKind;
use sportello::{app, store};
use sqlx::PgPool;
use uuid::Uuid;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub struct TestEnv {
    pub id: String,
    pub vhost: String,
    pub database: String,
    pub management: Management,
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    amqp_base: String,
    admin_database_url: String,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        TestEnv::new_with(|_| {}).await
    }

    /// A fresh environment whose settings `adjust` changes first.
    pub async fn new_with(adjust: impl FnOnce(&mut Settings)) -> TestEnv {
        logs::init();
        let id = test_id();
        let vhost = format!("test-{id}");
        let database = format!("test_{id}");
        let management = Management::new(&env_or(
            "RABBITMQ_MANAGEMENT_URL",
            "http://guest:guest@127.0.0.1:15672",
        ))
        .unwrap();
        let definitions = Definitions::embedded().unwrap();
        let prefix = format!("{id}-");
        management
            .provision(&vhost, &definitions, &prefix, |user| format!("{user}-pw"))
            .await
            .expect("provision test vhost (is the rabbitmq_management plugin enabled?)");
        let amqp_base = env_or("TEST_AMQP_BASE", "amqp://127.0.0.1:5672");
        let admin_database_url = env_or(
            "TEST_DATABASE_URL",
            "postgres://sportello:sportello@127.0.0.1:5432/postgres",
        );
        SWEPT
            .get_or_init(|| sweep_stale(&management, &admin_database_url))
            .await;
        let database_url = format!(
            "{}/{database}",
            admin_database_url.rsplit_once('/').unwrap().0
        );
        let mut settings = Settings {
            // The operators' user: it declares the topology below. Every
            // worker kind connects as its own user, derived from this one
            // (`broker::users`: `<id>-sportello-intake`, ...).
            amqp_url: user_url(&amqp_base, &id, &vhost, "sportello-app"),
            // The gateway's own user, named as production names it.
            gateway_amqp_url: Some(user_url(&amqp_base, &id, &vhost, "sportello-gateway")),
            database_url,
            database_pool_size: 5,
            intake_consumers: 2,
            intake_batch_size: 100,
            intake_prefetch: 200,
            handler_max_attempts: 3,
            shutdown_grace_seconds: 10,
            // Tests get their own store; HTTP tests bind their own port.
            document_store_dir: std::env::temp_dir()
                .join(format!("sportello-test-{id}"))
                .to_string_lossy()
                .into_owned(),
            ..Settings::local_defaults()
        };
        adjust(&mut settings);
        let settings = Arc::new(settings);
        let pool = app::migrate(&settings)
            .await
            .expect("migrate test database");
        app::declare_topology(&settings)
            .await
            .expect("declare topology");
        TestEnv {
            id,
            vhost,
            database,
            management,
            pool,
            settings,
            amqp_base,
            admin_database_url,
        }
    }

    /// AMQP URL of one of the definitions' users in this test's vhost.
    pub fn user_url(&self, user: &str) -> String {
        user_url(&self.amqp_base, &self.id, &self.vhost, user)
    }

    pub fn channel_url(&self, channel: &str) -> String {
        self.user_url(&format!("channel-{channel}"))
    }

    pub fn start(&self, kinds: &[WorkerKind]) -> RunningWorkers {
        RunningWorkers::start(app::build_workers(&self.settings, kinds))
    }

    /// Publishes `body` as `channel`'s broker user, with a confirm.
    pub async fn publish(
        &self,
        channel: &str,
        routing_key: &str,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let connection = broker::connect(&self.channel_url(channel), "test-publisher").await?;
        let publisher = Publisher::open(&connection).await?;
        let result = publish_on(&publisher, routing_key, body).await;
        let _ = connection.close(200, "done".into()).await;
        result
    }

    /// A fresh queue bound to `exchange` with `routing_key`, to watch what flows.
    pub async fn probe(&self, exchange: &str, routing_key: &str) -> Probe {
        let connection = broker::connect(&self.user_url("sportello-app"), "test-probe")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let queue = format!("sportello.test-probe.{}", Uuid::new_v4().simple());
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "probe".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Probe {
            _connection: connection,
            consumer,
        }
    }

    /// Tickets in this test's database; 0 while it is unreachable.
    pub async fn ticket_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM tickets")
            .fetch_one(&self.pool)
            .await
            .unwrap_or(0)
    }

    /// Whether the server of the test's database runs with autovacuum off
    /// (this box's does).
    pub async fn autovacuum_is_off(&self) -> bool {
        let setting: String = sqlx::query_scalar("SHOW autovacuum")
            .fetch_one(&self.pool)
            .await
            .unwrap();
        setting == "off"
    }

    pub fn admin_database_url(&self) -> String {
        self.admin_database_url.clone()
    }

    pub async fn cleanup(self) {
        let _ = std::fs::remove_dir_all(&self.settings.document_store_dir);
        self.pool.close().await;
        let _ = self.management.delete_vhost(&self.vhost).await;
        for user in Definitions::embedded().unwrap().users {
            let name = user["name"].as_str().unwrap_or_default();
            let _ = self
                .management
                .delete_user(&format!("{}-{name}", self.id))
                .await;
        }
        if let Ok(admin) = store::connect(&self.admin_database_url, 1).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            ))
            .execute(&admin)
            .await;
        }
    }
}

/// A test's id: when it was made (seconds since the epoch, hex) and 8
/// random hex digits. Its database is `test_<id>`, its vhost `test-<id>`, its
/// users `<id>-<user>`.
fn test_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{now:010x}{}", &Uuid::new_v4().simple().to_string()[..8])
}

/// Whether `id` is a test id made more than two hours ago: no test runs
/// that long, so its owner panicked before cleaning up.
fn is_stale(id: &str) -> bool {
    let made = id
        .get(..10)
        .filter(|_| id.len() == 18 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    made.is_some_and(|made| made + 2 * 3600 < now)
}

/// Once per test binary: what earlier runs left behind.
static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Drops the databases, vhosts and users of tests that panicked before their
/// cleanup (best effort: a failure here fails no test).
async fn sweep_stale(management: &Management, admin_database_url: &str) {
    if let Ok(admin) = store::connect(admin_database_url, 1).await {
        let databases: Vec<String> =
            // Only databases nobody is connected to: a test suspended for
            // hours (a debugger) keeps its own.
            sqlx::query_scalar(
                "SELECT datname FROM pg_stat_database
                 WHERE datname LIKE 'test\\_%' AND numbackends = 0",
            )
                .fetch_all(&admin)
                .await
                .unwrap_or_default();
        for database in databases {
            if database.strip_prefix("test_").is_some_and(is_stale) {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                ))
                .execute(&admin)
                .await;
            }
        }
        admin.close().await;
    }
    for vhost in management.vhost_names().await.unwrap_or_default() {
        if vhost.strip_prefix("test-").is_some_and(is_stale) {
            let _ = management.delete_vhost(&vhost).await;
        }
    }
    for user in management.user_names().await.unwrap_or_default() {
        if user.split_once('-').is_some_and(|(id, _)| is_stale(id)) {
            let _ = management.delete_user(&user).await;
        }
    }
}

fn user_url(amqp_base: &str, id: &str, vhost: &str, user: &str) -> String {
    let (scheme, host) = amqp_base.split_once("://").unwrap();
    format!("{scheme}://{id}-{user}:{user}-pw@{host}/{vhost}")
}

pub async fn publish_on(
    publisher: &Publisher,
    routing_key: &str,
    body: &[u8],
) -> Result<(), PublishError> {
    let message = OutgoingMessage {
        exchange: names::INTAKE_EXCHANGE.into(),
        routing_key: routing_key.into(),
        message_id: Uuid::now_v7(),
        message_type: "request.submitted".into(),
        correlation_id: "test".into(),
        body: body.to_vec(),
        headers: FieldTable::default(),
        mandatory: false,
    };
    publisher.send(&message).await?.wait().await
}

/// Publishes one persistent message as the app's own user (events, commands).
pub async fn publish_as_app(env: &TestEnv, exchange: &str, routing_key: &str, body: &[u8]) {
    let connection = broker::connect(&env.user_url("sportello-app"), "test-app-publisher")
        .await
        .unwrap();
    let publisher = Publisher::open(&connection).await.unwrap();
    let message = OutgoingMessage {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        message_id: Uuid::now_v7(),
        message_type: routing_key.into(),
        correlation_id: "test".into(),
        body: body.to_vec(),
        headers: FieldTable::default(),
        mandatory: true,
    };
    publisher
        .send(&message)
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let _ = connection.close(200, "done".into()).await;
}

pub struct Probe {
    _connection: Connection,
    consumer: Consumer,
}

impl Probe {
    /// The next message, or `None` after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<lapin::message::Delivery> {
        tokio::time::timeout(within, self.consumer.next())
            .await
            .ok()??
            .ok()
    }

    pub async fn next_json(&mut self, within: Duration) -> Option<Value> {
        let delivery = self.next(within).await?;
        serde_json::from_slice(&delivery.data).ok()
    }
}

/// A valid `request.submitted` from `channel` (a citizen on web/app/cassetto).
pub fn request(channel: &str, idempotency_key: &str) -> Value {
    let principal = match channel {
        "contact_center" => {
            json!({"kind": "contact_center_agent", "agent_id": "CC-0042", "on_behalf_of": "BNCGVN70A41F205O"})
        }
        "desk" => {
            json!({"kind": "operator", "operator_id": "E0013609", "office": "0040", "on_behalf_of": "BNCGVN70A41F205O"})
        }
        _ => {
            json!({"kind": "citizen", "tax_code": "RSSMRA85T10A562S", "authentication": {"method": "SPID", "level": 2}})
        }
    };
    json!({
        "message_id": Uuid::now_v7(),
        "type": "request.submitted",
        "schema_version": 1,
        "channel": channel,
        "occurred_at": chrono::Utc::now(),
        "correlation_id": format!("corr-{idempotency_key}"),
        "idempotency_key": idempotency_key,
        "principal": principal,
        "payload": {
            "ambito": "versamenti",
            "matricola": "4901234567",
            "subject": "Versamenti - F24 non abbinato",
            "text": "Il versamento F24 del 16/10 non risulta abbinato.",
            "contact": {"email": "mario.rossi@example.it"}
        }
    })
}

/// A v2 request by `principal` (JSON), about `matricola`, living at `location`.
pub fn request_v2(
    principal: Value,
    key: &str,
    ambito: &str,
    matricola: &str,
    subject: &str,
    location: Value,
) -> Value {
    json!({
        "message_id": Uuid::now_v7(),
        "type": "request.submitted",
        "schema_version": 2,
        "channel": "cassetto",
        "occurred_at": chrono::Utc::now(),
        "correlation_id": format!("corr-{key}"),
        "idempotency_key": format!("idempotency-{key}"),
        "principal": principal,
        "payload": {
            "ambito": ambito,
            "matricola": matricola,
            "subject": subject,
            "text": "Testo della richiesta.",
            "contact": {"email": "mario.rossi@example.it"},
            "location": location
        }
    })
}

pub fn citizen_json(tax_code: &str) -> Value {
    json!({"kind": "citizen", "tax_code": tax_code, "authentication": {"method": "SPID", "level": 2}})
}

/// Publishes `request` on the Cassetto channel and waits for its ticket.
pub async fn submit_and_wait(env: &TestEnv, request: &Value) -> Uuid {
    env.publish("cassetto", "cassetto.request.submitted", &bytes(request))
        .await
        .unwrap();
    let message_id: Uuid = request["message_id"].as_str().unwrap().parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM tickets WHERE request_message_id = $1")
                .bind(message_id)
                .fetch_optional(&env.pool)
                .await
                .unwrap();
        if let Some(id) = found {
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ticket for {message_id}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The test citizen principal with this tax code (SPID level 2).
pub fn citizen(tax_code: &str) -> Principal {
    Principal::Citizen {
        tax_code: CodiceFiscale::parse(tax_code).unwrap(),
        authentication: Authentication::Spid { level: 2 },
    }
}

/// The test intermediary (`FRRLCU75C41D969A`, CNS).
pub fn intermediary() -> Principal {
    Principal::Intermediary {
        tax_code: CodiceFiscale::parse("FRRLCU75C41D969A").unwrap(),
        authentication: Authentication::Cns,
    }
}

/// An operator of `office`, id `E<office>0001`.
pub fn operator(office: &str) -> Principal {
    Principal::Operator {
        operator_id: format!("E{office}0001"),
        office: office.into(),
        on_behalf_of: None,
    }
}

pub fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// Polls `condition` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A valid codice fiscale for test citizen number `n` (below 1000; its
/// control character found by trying each letter).
pub fn citizen_number(n: usize) -> String {
    let first = format!("RSSMRA85T10A{:03}", n % 1000);
    ('A'..='Z')
        .map(|check| format!("{first}{check}"))
        .find(|code| sportello::contract::CodiceFiscale::parse(code).is_ok())
        .unwrap()
}

pub fn header(delivery: &lapin::message::Delivery, name: &str) -> Option<String> {
    broker::dead_letter::header_str(delivery.properties.headers().as_ref(), name)
}
