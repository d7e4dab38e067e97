//! Benchmarks, each on a database (and vhost) of its own, removed afterwards.
//!
//! `sportello bench intake`: end-to-end intake throughput against the bare
//! broker rate, on the same broker in the same run.
//!
//! `sportello bench registrations`: protocol registrations per second, and
//! the ceiling that one AOO's counter row puts on them.

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
use crate::domain::protocol::{Aoo, RegisteredFile};
use crate::runtime::RunningWorkers;
use crate::store::protocol::{self as register, RegistrationRequest};
use crate::workers::WorkerKind;
use crate::{app, store};

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Requests/s through intake -> routed, registered ticket -> event, versus
    /// bare publish+consume.
    Intake(IntakeBench),
    /// Protocol registrations/s: one AOO (batched, serial, unbatched) and
    /// spread over several AOOs, with the single-counter ceiling.
    Registrations(RegistrationsBench),
}

/// Where a bench creates its database.
#[derive(Debug, clap::Args)]
pub struct BenchDatabase {
    /// A database URL of a user allowed to create databases.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://sportello:sportello@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
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
    #[command(flatten)]
    pub database: BenchDatabase,
}

#[derive(Debug, clap::Args)]
pub struct RegistrationsBench {
    /// Registrations in each batched run.
    #[arg(long, default_value_t = 20_000)]
    pub registrations: usize,
    /// Concurrent registrars, each with its own connection.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Registrations per transaction in the batched runs.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Registrations in each unbatched run (one per transaction).
    #[arg(long, default_value_t = 2_000)]
    pub unbatched_registrations: usize,
    /// AOOs the spread run registers in.
    #[arg(long, default_value_t = 4)]
    pub aoos: usize,
    /// Rounds of every run; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[command(flatten)]
    pub database: BenchDatabase,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Intake(bench) => intake(bench).await,
        BenchCommand::Registrations(bench) => registrations(bench).await,
    }
}

/// A database created for one bench run, dropped by `remove`.
struct ScratchDatabase {
    admin: sqlx::PgPool,
    name: String,
    url: String,
}

impl ScratchDatabase {
    async fn create(admin_url: &str, suffix: &str) -> anyhow::Result<Self> {
        let name = format!("sportello_bench_{suffix}");
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => anyhow::bail!("database URL must end with /<database>"),
        };
        let admin = store::connect(admin_url, 1).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        Ok(Self { admin, name, url })
    }

    async fn remove(self) -> anyhow::Result<()> {
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await?;
        self.admin.close().await;
        Ok(())
    }
}

fn bench_suffix() -> String {
    Uuid::new_v4().simple().to_string()[..8].to_owned()
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
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

/// Where the bench's citizens live: spread over the reference offices (each
/// with its own protocol counter), plus some no rule routes (triage).
const BENCH_LOCATIONS: &[(&str, &str, Option<&str>)] = &[
    ("CR", "Cremona", None),
    ("CR", "Crema", None),
    ("LO", "Lodi", None),
    ("LO", "Codogno", None),
    ("MI", "Milano", Some("20125")),
    ("MI", "Milano", Some("20133")),
    ("GE", "Genova", None),
    ("GE", "Sestri Levante", None),
    ("GE", "Genova", Some("16154")),
    ("RC", "Reggio di Calabria", None),
    ("CS", "Cosenza", None),
    ("MI", "Milano", Some("20121")),
];

/// `request.submitted` v2 messages: each is routed, registered (protocol
/// number) and opens a ticket in the pipeline.
fn request_bodies(round: usize, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let (province, municipality, postal_code) = BENCH_LOCATIONS[i % BENCH_LOCATIONS.len()];
            let mut location = json!({"province": province, "municipality": municipality});
            if let Some(code) = postal_code {
                location["postal_code"] = json!(code);
            }
            serde_json::to_vec(&json!({
                "message_id": Uuid::now_v7(),
                "type": "request.submitted",
                "schema_version": 2,
                "channel": "web",
                "occurred_at": chrono::Utc::now(),
                "correlation_id": format!("bench-{i}"),
                "idempotency_key": format!("bench-key-{round}-{i:08}"),
                "principal": {"kind": "citizen", "tax_code": "RSSMRA85T10A562S",
                              "authentication": {"method": "SPID", "level": 2}},
                "payload": {"ambito": "versamenti", "matricola": "4901234567",
                            "subject": "F24 non abbinato",
                            "text": "Il versamento F24 del 16/10 non risulta abbinato alla matricola.",
                            "contact": {"email": "mario.rossi@example.it"},
                            "location": location}
            }))
            .unwrap_or_default()
        })
        .collect()
}

async fn intake(bench: IntakeBench) -> anyhow::Result<()> {
    let suffix = bench_suffix();
    let vhost = format!("sportello-bench-{suffix}");
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
    let database = ScratchDatabase::create(&bench.database.database_url, &suffix).await?;

    let amqp_url = format!("{}/{vhost}", bench.amqp_url.trim_end_matches('/'));
    let outcome = measure(&bench, &amqp_url, &database.url).await;

    management.delete_vhost(&vhost).await?;
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
        intake_consumers: bench.consumers,
        intake_batch_size: bench.batch_size,
        intake_prefetch: bench.prefetch,
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

/// One measured run of the registrations bench.
#[derive(Debug, Clone)]
struct RegistrationRun {
    label: String,
    registrars: usize,
    batch: usize,
    aoos: usize,
    registrations: usize,
}

#[derive(Debug, Clone)]
struct RunOutcome {
    registrations: usize,
    elapsed: Duration,
    /// Per transaction: from taking the AOO's counter row (its registration
    /// time, read under the lock) to the commit returning, i.e. how long the
    /// row stayed locked for everybody else.
    holds: Vec<Duration>,
}

impl RunOutcome {
    fn rate(&self) -> f64 {
        self.registrations as f64 / self.elapsed.as_secs_f64()
    }

    fn transaction_rate(&self) -> f64 {
        self.holds.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn mean_hold_ms(&self) -> f64 {
        let total: Duration = self.holds.iter().sum();
        total.as_secs_f64() * 1000.0 / self.holds.len().max(1) as f64
    }
}

async fn registrations(bench: RegistrationsBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        bench.workers >= 1 && bench.batch >= 1 && bench.aoos >= 1 && bench.rounds >= 1,
        "--workers, --batch, --aoos and --rounds must be at least 1"
    );
    let (w, b, a) = (bench.workers, bench.batch, bench.aoos);
    let run = |label: String, registrars, batch, aoos, registrations| RegistrationRun {
        label,
        registrars,
        batch,
        aoos,
        registrations,
    };
    // Indices used in the report below.
    const MAIN: usize = 0;
    const SERIAL_BATCHED: usize = 1;
    const SERIAL: usize = 2;
    const UNBATCHED: usize = 3;
    const SPREAD: usize = 4;
    const SPREAD_UNBATCHED: usize = 5;
    let n = bench.registrations;
    let u = bench.unbatched_registrations;
    let runs = [
        run(format!("one AOO, {w} registrars, batch {b}"), w, b, 1, n),
        run(format!("one AOO, 1 registrar, batch {b}"), 1, b, 1, n),
        run("one AOO, 1 registrar, batch 1".into(), 1, 1, 1, u),
        run(format!("one AOO, {w} registrars, batch 1"), w, 1, 1, u),
        run(format!("{a} AOOs, {w} registrars, batch {b}"), w, b, a, n),
        run(format!("{a} AOOs, {w} registrars, batch 1"), w, 1, a, u),
    ];
    let database = ScratchDatabase::create(&bench.database.database_url, &bench_suffix()).await?;
    let outcome = measure_registrations(&runs, bench.rounds, &database.url).await;
    database.remove().await?;
    let outcomes = outcome?;

    for round in 0..bench.rounds {
        let rates: Vec<String> = outcomes
            .iter()
            .map(|o| format!("{:.0}", o[round].rate()))
            .collect();
        println!("round {}: {} registrations/s", round + 1, rates.join(" | "));
    }
    let rate = |i: usize| median(outcomes[i].iter().map(RunOutcome::rate).collect());
    let tx_rate = |i: usize| {
        median(
            outcomes[i]
                .iter()
                .map(RunOutcome::transaction_rate)
                .collect(),
        )
    };
    let hold = |i: usize| median(outcomes[i].iter().map(RunOutcome::mean_hold_ms).collect());
    println!();
    println!(
        "medians of {} rounds; each run from its first transaction to its last commit, numbers checked gapless after each",
        bench.rounds
    );
    println!("counter row held = from taking the AOO's counter row (registration time, read under the lock) to the commit returning to the registrar");
    for (i, run) in runs.iter().enumerate() {
        println!(
            "{:<38} {:>8.0} registrations/s {:>7.0} tx/s   counter row held {:>5.2} ms/tx   ({} registrations)",
            format!("{}:", run.label),
            rate(i),
            tx_rate(i),
            hold(i),
            run.registrations
        );
    }
    println!();
    println!("single-counter limit (one AOO: each transaction holds its counter row until it commits, so one AOO's transactions run one at a time):");
    println!(
        "  {:<56} {:>8.0} registrations/s",
        format!(
            "ceiling, batch {b} = {b} / {:.2} ms held (serial):",
            hold(SERIAL_BATCHED)
        ),
        b as f64 * 1000.0 / hold(SERIAL_BATCHED)
    );
    println!(
        "  {:<56} {:>8.0} registrations/s   (optimistic: a batch holds the row longer than one registration)",
        format!("serial tx/s x batch = {:.0} x {b}:", tx_rate(SERIAL)),
        tx_rate(SERIAL) * b as f64
    );
    println!(
        "  {:<56} {:>8.0} registrations/s   (measured: {:.0})",
        format!(
            "ceiling, batch 1 = 1 / {:.2} ms held (serial):",
            hold(SERIAL)
        ),
        1000.0 / hold(SERIAL),
        rate(UNBATCHED)
    );
    println!(
        "  {:<56} {:>7.0}%",
        format!("{w} registrars, batch {b}: share of the batch-{b} ceiling reached:"),
        100.0 * rate(MAIN) * hold(SERIAL_BATCHED) / (b as f64 * 1000.0)
    );
    println!("separate registers scale (each AOO has its own counter row):");
    println!(
        "  {:<56} {:>8.0} vs {:.0} registrations/s ({:.2}x)",
        format!("batch {b}, {a} AOOs vs one AOO:"),
        rate(SPREAD),
        rate(MAIN),
        rate(SPREAD) / rate(MAIN)
    );
    println!(
        "  {:<56} {:>8.0} vs {:.0} registrations/s ({:.2}x)",
        format!("batch 1, {a} AOOs vs one AOO:"),
        rate(SPREAD_UNBATCHED),
        rate(UNBATCHED),
        rate(SPREAD_UNBATCHED) / rate(UNBATCHED)
    );
    Ok(())
}

/// Every run, `rounds` times; each run registers in AOOs of its own, so its
/// numbers start at 1 and can be checked gapless.
async fn measure_registrations(
    runs: &[RegistrationRun],
    rounds: usize,
    database_url: &str,
) -> anyhow::Result<Vec<Vec<RunOutcome>>> {
    let pool = store::connect(database_url, 1).await?;
    store::migrate(&pool).await?;
    let mut outcomes = vec![Vec::with_capacity(rounds); runs.len()];
    let mut next_aoo = 1;
    for _ in 0..rounds {
        for (i, run) in runs.iter().enumerate() {
            let aoos = (next_aoo..next_aoo + run.aoos)
                .map(|n| Aoo::parse(&format!("{n:04}")))
                .collect::<Result<Vec<_>, _>>()?;
            next_aoo += run.aoos;
            let outcome = registrars(database_url, &aoos, run).await?;
            check_gapless(&pool, &aoos, run.registrations).await?;
            tracing::info!(run = %run.label, rate = outcome.rate(), "registrations run");
            outcomes[i].push(outcome);
        }
    }
    pool.close().await;
    Ok(outcomes)
}

/// `run.registrars` tasks, each on its own connection, registrar i in AOO
/// i mod aoos, all starting together.
async fn registrars(
    database_url: &str,
    aoos: &[Aoo],
    run: &RegistrationRun,
) -> anyhow::Result<RunOutcome> {
    let start = Arc::new(tokio::sync::Barrier::new(run.registrars + 1));
    let mut tasks = Vec::with_capacity(run.registrars);
    for registrar in 0..run.registrars {
        let share = run.registrations / run.registrars
            + usize::from(registrar < run.registrations % run.registrars);
        let aoo = &aoos[registrar % aoos.len()];
        let requests: Vec<RegistrationRequest> = (0..share)
            .map(|i| bench_registration(aoo, registrar, i))
            .collect();
        // Connected before the start, so a failure cannot leave the barrier waiting.
        let pool = store::connect(database_url, 1).await?;
        let mut conn = pool.acquire().await?;
        let start = start.clone();
        let batch = run.batch;
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut holds = Vec::with_capacity(share / batch + 1);
            for chunk in requests.chunks(batch) {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let registered = register::register(&mut tx, chunk).await?;
                tx.commit().await?;
                let committed = chrono::Utc::now();
                if let Some(locked) = registered.iter().map(|r| r.registered_at).min() {
                    holds.push((committed - locked).to_std().unwrap_or_default());
                }
            }
            drop(conn);
            pool.close().await;
            Ok::<_, anyhow::Error>(holds)
        }));
    }
    start.wait().await;
    let started = Instant::now();
    let mut holds = Vec::new();
    for task in tasks {
        holds.extend(task.await??);
    }
    Ok(RunOutcome {
        registrations: run.registrations,
        elapsed: started.elapsed(),
        holds,
    })
}

fn bench_registration(aoo: &Aoo, registrar: usize, i: usize) -> RegistrationRequest {
    RegistrationRequest {
        request_id: Uuid::now_v7(),
        aoo: aoo.clone(),
        subject: "Documenti inviati in videochiamata".into(),
        registered_by: json!({"kind": "operator", "operator_id": format!("E{registrar:07}"), "office": aoo}),
        files: vec![RegisteredFile {
            name: "carta-identita.pdf".into(),
            sha256: "ab".repeat(32),
            size: 123_456,
        }],
        correlation_id: format!("bench-{registrar}-{i}"),
    }
}

/// Every AOO's numbers are 1..=count in each year, and all were registered.
async fn check_gapless(pool: &sqlx::PgPool, aoos: &[Aoo], expected: usize) -> anyhow::Result<()> {
    let names: Vec<&str> = aoos.iter().map(Aoo::as_str).collect();
    let per_year: Vec<(String, i32, i64, i64)> = sqlx::query_as(
        "SELECT aoo, year, count(*), max(number) FROM registrations
         WHERE aoo = ANY($1) GROUP BY aoo, year",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    let total: i64 = per_year.iter().map(|(_, _, count, _)| count).sum();
    anyhow::ensure!(
        total as usize == expected,
        "{total} registrations stored, {expected} made"
    );
    for (aoo, year, count, max) in per_year {
        anyhow::ensure!(
            count == max,
            "AOO {aoo} {year}: {count} registrations up to number {max}: not gapless"
        );
    }
    Ok(())
}
