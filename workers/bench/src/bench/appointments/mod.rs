//! `sportello-bench appointments`: booking over the broker, as channels do
//! it (command with `reply_to`, answer by correlation id), against
//! `--consumers` appointments workers competing on the commands queue.
//!
//! Per round, two phases:
//! - **contended**: `--clients` citizens at once ask for `--slots` slots of
//!   the seeded calendar (Crema, in person, two seats each); the winners then
//!   confirm. Holds/s, the hold latency (publish → answer), winners against
//!   the seats, confirmations/s.
//! - **plentiful**: every client holds then confirms a seat at a desk the
//!   bench adds to its own database (every day 07:00–21:00, 5-minute slots,
//!   100 seats each): confirmed bookings/s.
//!
//! After each phase the database is asked for double bookings (live
//! appointments above their slot's capacity): there must be none.

pub(super) mod client;
mod phases;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

use super::{bench_suffix, median, BenchBroker, BenchDatabase, ScratchDatabase, ScratchVhost};
use client::Requester;
use phases::{Contended, Plentiful};
use sportello::app;
use sportello::broker;
use sportello::broker::names::APPOINTMENT_COMMANDS_QUEUE;
use sportello::config::Settings;
use sportello::runtime::RunningWorkers;
use sportello::workers::WorkerKind;

/// Targets on the 2-core development machine (issue 12).
const HOLD_P99_LIMIT: Duration = Duration::from_millis(50);
const CONFIRMED_PER_SECOND_TARGET: f64 = 1_000.0;

#[derive(Debug, clap::Args)]
pub struct AppointmentsBench {
    /// Concurrent clients, each booking for a citizen of its own.
    #[arg(long, default_value_t = 1_000)]
    pub clients: usize,
    /// Slots the clients contend for in the first phase.
    #[arg(long, default_value_t = 4)]
    pub slots: usize,
    /// Appointments workers consuming the commands queue (each applies two
    /// batches at once, up to `--batch-size` commands per transaction).
    #[arg(long, default_value_t = 2)]
    pub consumers: usize,
    /// Most commands a worker applies in one transaction
    /// (`APPOINTMENT_BATCH_SIZE`).
    #[arg(long, default_value_t = 64)]
    pub batch_size: u16,
    /// Broker connections the clients share (each a channel with its own
    /// direct reply-to consumer).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Rounds of (contended, plentiful); the medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[command(flatten)]
    pub broker: BenchBroker,
    #[command(flatten)]
    pub database: BenchDatabase,
}

struct Round {
    contended: Contended,
    plentiful: Plentiful,
}

pub async fn run(bench: AppointmentsBench) -> anyhow::Result<()> {
    let suffix = bench_suffix();
    let vhost = ScratchVhost::create(&bench.broker, &suffix).await?;
    let database = ScratchDatabase::create(&bench.database.database_url, &suffix).await?;
    let outcome = measure(&bench, &vhost.amqp_url, &database.url).await;
    vhost.remove().await?;
    database.remove().await?;
    let rounds = outcome?;
    report(&bench, &rounds)
}

async fn measure(
    bench: &AppointmentsBench,
    amqp_url: &str,
    database_url: &str,
) -> anyhow::Result<Vec<Round>> {
    let settings = Arc::new(Settings {
        amqp_url: amqp_url.to_owned(),
        database_url: database_url.to_owned(),
        database_pool_size: 4,
        handler_max_attempts: 5,
        shutdown_grace_seconds: 30,
        appointment_batch_size: bench.batch_size.max(1),
        ..Settings::local_defaults()
    });
    let pool = app::migrate(&settings).await?;
    app::declare_topology(&settings).await?;
    phases::add_plentiful_desk(&pool).await?;
    let mut kinds = vec![WorkerKind::Appointments; bench.consumers.max(1)];
    kinds.push(WorkerKind::OutboxRelay);
    let workers = RunningWorkers::start(app::build_workers(&settings, &kinds));
    let measured = async {
        wait_for_consumers(amqp_url, bench.consumers.max(1)).await?;
        let mut requesters = Vec::with_capacity(bench.connections.max(1));
        for n in 0..bench.connections.max(1) {
            requesters.push(Requester::open(amqp_url, &format!("bench-client-{n}")).await?);
        }
        let mut rounds = Vec::with_capacity(bench.rounds);
        for round in 0..bench.rounds.max(1) {
            let contended = phases::contended(bench, &pool, &requesters, round).await?;
            let plentiful = phases::plentiful(bench, &pool, &requesters, round).await?;
            println!(
                "round {}: {} | {}",
                round + 1,
                contended.line(),
                plentiful.line()
            );
            rounds.push(Round {
                contended,
                plentiful,
            });
        }
        for requester in requesters {
            requester.close().await?;
        }
        anyhow::Ok(rounds)
    }
    .await;
    workers.shutdown(Duration::from_secs(10)).await;
    pool.close().await;
    measured
}

/// Waits until `consumers` workers consume the commands queue, so the
/// first round does not time their start-up.
async fn wait_for_consumers(amqp_url: &str, consumers: usize) -> anyhow::Result<()> {
    let connection = broker::connect(amqp_url, "bench-watch").await?;
    let channel = connection.create_channel().await?;
    let started = Instant::now();
    loop {
        let queue = channel
            .queue_declare(
                APPOINTMENT_COMMANDS_QUEUE.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        if queue.consumer_count() as usize >= consumers {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("the appointments workers did not start consuming in a minute");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    connection.close(200, "done".into()).await?;
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

fn report(bench: &AppointmentsBench, rounds: &[Round]) -> anyhow::Result<()> {
    let of = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let holds = of(|r| r.contended.holds_per_second);
    let p50 = of(|r| ms(r.contended.latency.p50));
    let p99 = of(|r| ms(r.contended.latency.p99));
    let confirmations = of(|r| r.contended.confirmations_per_second);
    let confirmed = of(|r| r.plentiful.confirmed_per_second);
    let plentiful_p99 = of(|r| ms(r.plentiful.latency.p99));
    let double_bookings: u64 = rounds
        .iter()
        .map(|r| r.contended.double_bookings + r.plentiful.double_bookings)
        .sum();
    let winners_over_seats = rounds
        .iter()
        .filter(|r| r.contended.winners > r.contended.seats)
        .count();
    let limit = ms(HOLD_P99_LIMIT);
    println!(
        "clients per round:   {} ({} appointments consumers, {} batches at once each of up to {} commands; {} client connections)",
        bench.clients, bench.consumers, sportello::workers::appointments::BATCHES_AT_ONCE, bench.batch_size, bench.connections
    );
    println!("contended holds:     {holds:>10.0} holds/s (median; {} slots, the losers answered \"slot taken\" with alternatives)", bench.slots);
    println!("hold latency:        p50 {p50:.0} ms, p99 {p99:.0} ms (median; publish -> answer); limit p99 {limit:.0} ms, ratio {:.1}", p99 / limit);
    println!(
        "  queueing floor:    {:.0} ms: the last of {} simultaneous holds waits for the others at {holds:.0} holds/s (clients / holds/s)",
        1_000.0 * bench.clients as f64 / holds,
        bench.clients
    );
    for (n, round) in rounds.iter().enumerate() {
        println!(
            "winners, round {}:    {} of {} seats",
            n + 1,
            round.contended.winners,
            round.contended.seats
        );
    }
    println!("confirmations:       {confirmations:>10.0} confirmations/s (median; the winners confirming at once)");
    println!("plentiful:           {confirmed:>10.0} confirmed bookings/s (median; hold + confirm per client, hold p99 {plentiful_p99:.0} ms); target {CONFIRMED_PER_SECOND_TARGET:.0}/s, ratio {:.2}", confirmed / CONFIRMED_PER_SECOND_TARGET);
    println!("double bookings:     {double_bookings:>10} (slots whose live appointments exceed their capacity, all rounds; must be 0)");
    if let Some(last) = rounds.last() {
        println!("CPU, plentiful phase of the last round:");
        for line in &last.plentiful.cpu {
            println!("  {line}");
        }
    }
    if double_bookings > 0 || winners_over_seats > 0 {
        anyhow::bail!("double bookings found: the capacity guarantee failed");
    }
    Ok(())
}
