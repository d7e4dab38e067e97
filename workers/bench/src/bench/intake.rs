//! `sportello-bench intake`: the full intake pipeline against the bare broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use super::{
    bench_suffix, median, publish_confirmed, request_bodies, BenchBroker, BenchDatabase,
    IntakeShape, ScratchDatabase, ScratchVhost,
};
use sportello::app;
use sportello::broker::names::{INTAKE_EXCHANGE, INTAKE_REQUESTS_QUEUE};
use sportello::broker::publisher::Publisher;
use sportello::broker::topology::{self, Definitions};
use sportello::broker::{self};
use sportello::config::Settings;
use sportello::runtime::RunningWorkers;
use sportello::workers::WorkerKind;

#[derive(Debug, clap::Args)]
pub struct IntakeBench {
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Rounds of (bare, pipeline); the medians are reported, since a shared
    /// 2-core machine is noisy.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[command(flatten)]
    pub intake: IntakeShape,
    #[command(flatten)]
    pub broker: BenchBroker,
    #[command(flatten)]
    pub database: BenchDatabase,
}

pub async fn run(bench: IntakeBench) -> anyhow::Result<()> {
    let suffix = bench_suffix();
    let vhost = ScratchVhost::create(&bench.broker, &suffix).await?;
    let database = ScratchDatabase::create(&bench.database.database_url, &suffix).await?;
    let outcome = measure(&bench, &vhost.amqp_url, &database.url).await;
    vhost.remove().await?;
    database.remove().await?;
    let rounds = outcome?;
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
    println!("intake pipeline:     {pipeline:>10.0} tickets/s (median; validate -> inbox, route, register (protocol number), ticket + history + outbox commit -> ack -> event relayed)");
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
        intake_consumers: bench.intake.consumers,
        intake_batch_size: bench.intake.batch_size,
        intake_prefetch: bench.intake.prefetch,
        handler_max_attempts: 5,
        shutdown_grace_seconds: 30,
        ..Settings::local_defaults()
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
    let connection = broker::connect(&settings.broker_addresses(), "bench-publisher").await?;
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
