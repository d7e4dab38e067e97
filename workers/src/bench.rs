//! `sportello bench intake`: end-to-end intake throughput against the bare
//! broker rate, on the same broker in the same run. Creates its own vhost and
//! database and removes them afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::json;
use uuid::Uuid;

use crate::broker::management::Management;
use crate::broker::names::{INTAKE_EXCHANGE, INTAKE_REQUESTS_QUEUE};
use crate::broker::publisher::{OutgoingMessage, Publisher};
use crate::broker::topology::{self, Definitions};
use crate::broker::{self};
use crate::config::Settings;
use crate::runtime::RunningWorkers;
use crate::workers::WorkerKind;
use crate::{app, store};

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Messages/s through intake -> ticket -> event, versus bare publish+consume.
    Intake(IntakeBench),
}

#[derive(Debug, clap::Args)]
pub struct IntakeBench {
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Rounds of (bare, pipeline); the medians are reported, since a shared
    /// 2-core machine is noisy.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Intake consumers in the measured pipeline.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Most messages per database transaction in the pipeline.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Prefetch of each intake consumer.
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u16,
    #[arg(
        long,
        env = "RABBITMQ_MANAGEMENT_URL",
        default_value = "http://guest:guest@127.0.0.1:15672"
    )]
    pub management_url: String,
    /// AMQP URL without vhost, of a user allowed to create one.
    #[arg(
        long,
        env = "BENCH_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672"
    )]
    pub amqp_url: String,
    /// A database URL of a user allowed to create databases.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://sportello:sportello@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Intake(bench) => intake(bench).await,
    }
}

const WINDOW: usize = 2_000;

/// Publishes all bodies, keeping at most WINDOW confirms outstanding.
async fn publish_confirmed(
    publisher: &Publisher,
    exchange: &str,
    routing_key: &str,
    bodies: &[Vec<u8>],
) -> anyhow::Result<()> {
    let mut pending = std::collections::VecDeque::with_capacity(WINDOW);
    for body in bodies {
        let message = OutgoingMessage {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            message_id: Uuid::now_v7(),
            message_type: "request.submitted".into(),
            correlation_id: "bench".into(),
            body: body.clone(),
            headers: FieldTable::default(),
            mandatory: false,
        };
        pending.push_back(publisher.send(&message).await?);
        if pending.len() >= WINDOW {
            if let Some(confirm) = pending.pop_front() {
                confirm.wait().await?;
            }
        }
    }
    for confirm in pending {
        confirm.wait().await?;
    }
    Ok(())
}

fn request_bodies(round: usize, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            serde_json::to_vec(&json!({
                "message_id": Uuid::now_v7(),
                "type": "request.submitted",
                "schema_version": 1,
                "channel": "web",
                "occurred_at": chrono::Utc::now(),
                "correlation_id": format!("bench-{i}"),
                "idempotency_key": format!("bench-key-{round}-{i:08}"),
                "principal": {"kind": "citizen", "tax_code": "RSSMRA85T10A562S",
                              "authentication": {"method": "SPID", "level": 2}},
                "payload": {"ambito": "versamenti", "matricola": "4901234567",
                            "subject": "Versamenti - F24 non abbinato",
                            "text": "Il versamento F24 del 16/10 non risulta abbinato alla matricola.",
                            "contact": {"email": "mario.rossi@example.it"}}
            }))
            .unwrap_or_default()
        })
        .collect()
}

async fn intake(bench: IntakeBench) -> anyhow::Result<()> {
    let suffix = &Uuid::new_v4().simple().to_string()[..8];
    let vhost = format!("sportello-bench-{suffix}");
    let database = format!("sportello_bench_{suffix}");
    let management = Management::new(&bench.management_url)?;
    management.create_vhost(&vhost).await?;
    let user = bench
        .amqp_url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap_or("guest")
        .to_owned();
    management
        .set_permissions(&vhost, &user, ".*", ".*", ".*")
        .await?;
    let admin_pool = store::connect(&bench.database_url, 1).await?;
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&admin_pool)
        .await?;

    let amqp_url = format!("{}/{vhost}", bench.amqp_url.trim_end_matches('/'));
    let database_url = match bench.database_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{database}"),
        None => anyhow::bail!("database URL must end with /<database>"),
    };
    let outcome = measure(&bench, &amqp_url, &database_url).await;

    management.delete_vhost(&vhost).await?;
    sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&admin_pool)
        .await?;
    let rounds = outcome?;
    let median = |mut rates: Vec<f64>| {
        rates.sort_by(|a, b| a.total_cmp(b));
        rates[rates.len() / 2]
    };
    for (round, (bare, pipeline)) in rounds.iter().enumerate() {
        println!(
            "round {}: bare {bare:.0} msg/s, pipeline {pipeline:.0} tickets/s, ratio {:.2}",
            round + 1,
            pipeline / bare
        );
    }
    let bare = median(rounds.iter().map(|r| r.0).collect());
    let pipeline = median(rounds.iter().map(|r| r.1).collect());
    println!("messages per round:  {}", bench.messages);
    println!("bare broker rate:    {bare:>10.0} msg/s  (median; persistent, confirmed publish + consume/ack, quorum queue)");
    println!("intake pipeline:     {pipeline:>10.0} tickets/s (median; validate -> inbox + ticket + outbox commit -> ack -> event relayed)");
    println!("ratio:               {:>10.2}", pipeline / bare);
    Ok(())
}

async fn measure(
    bench: &IntakeBench,
    amqp_url: &str,
    database_url: &str,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let settings = Arc::new(Settings {
        amqp_url: amqp_url.to_owned(),
        database_url: database_url.to_owned(),
        database_pool_size: 10,
        intake_consumers: bench.consumers,
        intake_batch_size: bench.batch_size,
        intake_prefetch: bench.prefetch,
        handler_max_attempts: 5,
        shutdown_grace_seconds: 30,
    });
    let pool = app::migrate(&settings).await?;
    app::declare_topology(&settings).await?;
    let mut rounds = Vec::with_capacity(bench.rounds);
    for round in 0..bench.rounds.max(1) {
        let bodies = request_bodies(round, bench.messages);
        let bare = bare_rate(amqp_url, &bodies).await?;
        let pipeline =
            pipeline_rate(&settings, &pool, &bodies, (round + 1) * bench.messages).await?;
        rounds.push((bare, pipeline));
    }
    pool.close().await;
    Ok(rounds)
}

/// The same messages through a queue declared like the intake queue, with
/// nothing done to them but an ack.
async fn bare_rate(amqp_url: &str, bodies: &[Vec<u8>]) -> anyhow::Result<f64> {
    let definitions = Definitions::embedded()?;
    let connection = broker::connect(amqp_url, "bench-bare").await?;
    let channel = connection.create_channel().await?;
    let intake_queue = definitions
        .queue(INTAKE_REQUESTS_QUEUE)
        .ok_or_else(|| anyhow::anyhow!("no intake queue in definitions"))?;
    channel
        .queue_declare(
            "bench.bare".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            topology::field_table(&intake_queue.arguments)?,
        )
        .await?;
    channel.basic_qos(1000, Default::default()).await?;
    let mut consumer = channel
        .basic_consume(
            "bench.bare".into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let expected = bodies.len();
    let consume = tokio::spawn(async move {
        let mut seen = 0usize;
        while seen < expected {
            let Some(first) = consumer.next().await else {
                break;
            };
            let mut last = first?;
            seen += 1;
            while let Some(Some(Ok(next))) = consumer.next().now_or_never() {
                last = next;
                seen += 1;
            }
            last.acker.ack(BasicAckOptions { multiple: true }).await?;
        }
        Ok::<usize, lapin::Error>(seen)
    });
    let publisher = Publisher::open(&connection).await?;
    let started = Instant::now();
    publish_confirmed(&publisher, "", "bench.bare", bodies).await?;
    consume.await??;
    let rate = bodies.len() as f64 / started.elapsed().as_secs_f64();
    connection.close(200, "done".into()).await?;
    Ok(rate)
}

/// The real workers, in this process, until every ticket is committed and
/// every event relayed.
async fn pipeline_rate(
    settings: &Arc<Settings>,
    pool: &sqlx::PgPool,
    bodies: &[Vec<u8>],
    tickets_expected: usize,
) -> anyhow::Result<f64> {
    let workers = RunningWorkers::start(app::build_workers(
        settings,
        &[WorkerKind::Intake, WorkerKind::OutboxRelay],
    ));
    let connection = broker::connect(&settings.amqp_url, "bench-publisher").await?;
    let publisher = Publisher::open(&connection).await?;
    let started = Instant::now();
    publish_confirmed(&publisher, INTAKE_EXCHANGE, "web.request.submitted", bodies).await?;
    let published_after = started.elapsed();
    // Cheap to ask while it runs (a count over the tickets table is not):
    // the queue's ready messages, then the tickets and the unrelayed events.
    let channel = connection.create_channel().await?;
    loop {
        let queue = channel
            .queue_declare(
                INTAKE_REQUESTS_QUEUE.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        if queue.message_count() == 0 {
            let (tickets, pending_events): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM outbox)",
            )
            .fetch_one(pool)
            .await?;
            if tickets as usize >= tickets_expected && pending_events == 0 {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(1800) {
            anyhow::bail!("pipeline did not finish in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = bodies.len() as f64 / started.elapsed().as_secs_f64();
    tracing::info!(?published_after, finished_after = ?started.elapsed(), "pipeline round");
    connection.close(200, "done".into()).await?;
    workers.shutdown(Duration::from_secs(10)).await;
    Ok(rate)
}
