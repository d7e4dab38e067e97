//! `sportello-bench registrations`: protocol registrations per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::{bench_suffix, median, BenchDatabase, ScratchDatabase};
use sportello::domain::protocol::{Aoo, RegisteredFile};
use sportello::store;
use sportello::store::protocol::{self as register, RegistrationRequest};

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

pub async fn run(bench: RegistrationsBench) -> anyhow::Result<()> {
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
        id: Uuid::now_v7(),
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
