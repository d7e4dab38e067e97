//! `sportello-bench clickday`: the opening day of seed 004 as a burst. A
//! million applications (resubmissions and invalid ones among them) are
//! published as fast as the broker confirms them, drained by intake and
//! relay worker *processes*, then audited: one application per (citizen,
//! benefit), none lost, none twice, gapless protocol numbers, every invalid
//! one dead-lettered. Twice: plain, and with the intake process killed
//! (SIGKILL) and restarted mid-burst.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};
use uuid::Uuid;

use super::appointments::client::citizen;
use super::cpu::CpuSample;
use super::{
    bench_suffix, publish_confirmed, BenchBroker, BenchDatabase, IntakeShape, ScratchDatabase,
    ScratchVhost,
};
use sportello::app;
use sportello::broker::dead_letter::header_str;
use sportello::broker::management::Management;
use sportello::broker::names::{
    DEAD_LETTER_QUEUE, INTAKE_EXCHANGE, INTAKE_REQUESTS_QUEUE, REASON_HEADER,
};
use sportello::broker::publisher::Publisher;
use sportello::broker::{self};
use sportello::config::Settings;

#[derive(Debug, clap::Args)]
pub struct ClickDayBench {
    /// Messages in the burst.
    #[arg(long, default_value_t = 1_000_000)]
    pub applications: usize,
    /// Share of the burst that resends an application already in it (the F5).
    #[arg(long, default_value_t = 0.10)]
    pub resubmissions: f64,
    /// Share that is invalid (a wrong IBAN check digit): dead-lettered.
    #[arg(long, default_value_t = 0.03)]
    pub invalid: f64,
    #[command(flatten)]
    pub intake: IntakeShape,
    /// Only the plain run (no SIGKILL run).
    #[arg(long)]
    pub plain_only: bool,
    #[command(flatten)]
    pub broker: BenchBroker,
    #[command(flatten)]
    pub database: BenchDatabase,
}

/// What one burst is made of, decided by position so the audit knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A new (citizen, benefit) pair: the `n`-th.
    Fresh(usize),
    /// The `n`-th pair again, as its first message had it.
    Resubmission(usize),
    Invalid(usize),
}

const BENEFITS: [(&str, &str); 2] = [
    ("covid19_indemnity", "seasonal_tourism_spa"),
    ("babysitting_bonus", "private_sector_parents"),
];

/// The burst's plan: every `1/resubmissions`-th message resends the pair
/// made just before, every `1/invalid`-th is invalid, the rest are new
/// pairs (each citizen applies for both benefits).
fn plan(count: usize, resubmissions: f64, invalid: f64) -> Vec<Kind> {
    let every = |share: f64| {
        if share > 0.0 {
            (1.0 / share).round().max(2.0) as usize
        } else {
            usize::MAX
        }
    };
    let (resend_every, invalid_every) = (every(resubmissions), every(invalid));
    let mut pairs = 0usize;
    (0..count)
        .map(|i| {
            if i % invalid_every == invalid_every - 1 {
                Kind::Invalid(i)
            } else if i % resend_every == resend_every - 1 && pairs > 0 {
                Kind::Resubmission(pairs - 1)
            } else {
                pairs += 1;
                Kind::Fresh(pairs - 1)
            }
        })
        .collect()
}

/// Where the burst's citizens live: each routes to its own office, so the
/// burst is registered under seven protocol counters, as a national one
/// would be under a hundred.
const PLACES: [(&str, &str); 7] = [
    ("CR", "Crema"),
    ("CR", "Cremona"),
    ("LO", "Lodi"),
    ("LO", "Codogno"),
    ("GE", "Sestri Levante"),
    ("RC", "Reggio Calabria"),
    ("CS", "Cosenza"),
];

fn body(kind: Kind, position: usize) -> Vec<u8> {
    let (pair, iban) = match kind {
        Kind::Fresh(pair) | Kind::Resubmission(pair) => (pair, "IT60X0542811101000000123456"),
        // A wrong check digit: refused at admission.
        Kind::Invalid(n) => (n, "IT61X0542811101000000123456"),
    };
    let citizen_index = pair / BENEFITS.len();
    let (province, municipality) = PLACES[citizen_index % PLACES.len()];
    let tax_code = citizen(citizen_index)
        .map(|c| c.to_string())
        .unwrap_or_default();
    let (benefit, category) = BENEFITS[pair % BENEFITS.len()];
    let fields = if benefit == "covid19_indemnity" {
        json!({"employer_tax_code": "01234567897", "contract_end_date": "2019-10-31",
               "not_employed_on_2020_03_17": true})
    } else {
        json!({"child_tax_code": "RSSMRA85T10A562S", "child_birth_date": "2012-05-10", "amount_eur": 600})
    };
    let message: Value = json!({
        "message_id": Uuid::now_v7(),
        "type": "application.submitted",
        "schema_version": 1,
        "channel": "web",
        // 17:05 in Rome on the opening day: inside the citizens' window.
        "occurred_at": "2020-04-01T15:05:00Z",
        "correlation_id": format!("clickday-{position}"),
        "idempotency_key": format!("clickday-{position:08}"),
        "principal": {"kind": "citizen", "tax_code": tax_code,
                      "authentication": {"method": "SPID", "level": 2}},
        "payload": {
            "benefit": benefit, "category": category,
            "applicant": {"tax_code": tax_code, "surname": "Bianchi", "name": "Mario"},
            "fields": fields,
            "payment": {"iban": iban, "holders": [{"tax_code": tax_code, "name": "Mario Bianchi"}]},
            "location": {"province": province, "municipality": municipality}
        }
    });
    serde_json::to_vec(&message).unwrap_or_default()
}

pub async fn run(bench: ClickDayBench) -> anyhow::Result<()> {
    let kinds = plan(bench.applications, bench.resubmissions, bench.invalid);
    let pairs = kinds.iter().filter(|k| matches!(k, Kind::Fresh(_))).count();
    let invalid = kinds
        .iter()
        .filter(|k| matches!(k, Kind::Invalid(_)))
        .count();
    println!(
        "burst: {} messages, {} distinct (citizen, benefit) pairs from {} citizens, {} resubmissions, {} invalid",
        kinds.len(),
        pairs,
        pairs.div_ceil(BENEFITS.len()),
        kinds.len() - pairs - invalid,
        invalid
    );
    let mut runs = vec![false];
    if !bench.plain_only {
        runs.push(true);
    }
    for kill in runs {
        let suffix = bench_suffix();
        let vhost = ScratchVhost::create(&bench.broker, &suffix).await?;
        let database = ScratchDatabase::create(&bench.database.database_url, &suffix).await?;
        let expected = Expected { pairs, invalid };
        let outcome = burst(&bench, &kinds, expected, kill, &vhost, &database.url).await;
        vhost.remove().await?;
        database.remove().await?;
        let report = outcome?;
        report.print(if kill {
            "intake killed (SIGKILL) and restarted mid-burst"
        } else {
            "plain"
        });
        report.audit(pairs, invalid)?;
    }
    Ok(())
}

struct Report {
    published: usize,
    publish_seconds: f64,
    drain_seconds: f64,
    applications: i64,
    duplicated: i64,
    tickets: i64,
    gaps: i64,
    dead_lettered: u32,
    /// Each distinct reason the dead letters give, with how many give it.
    dead_letter_reasons: BTreeMap<String, usize>,
    pending_events: i64,
    left_in_queue: u32,
    worker_peak_kib: u64,
    broker_peak_bytes: u64,
    kills: usize,
    /// Where the CPU went from the first publish to the drain.
    cpu: Vec<String>,
}

impl Report {
    fn print(&self, title: &str) {
        println!("-- {title}");
        println!(
            "accepted at the broker: {:>10.0} msg/s ({} in {:.1} s)",
            self.published as f64 / self.publish_seconds,
            self.published,
            self.publish_seconds
        );
        println!(
            "processed end to end:   {:>10.0} msg/s (all {} settled and events relayed in {:.1} s)",
            self.published as f64 / self.drain_seconds,
            self.published,
            self.drain_seconds
        );
        println!("applications:           {:>10}", self.applications);
        println!("tickets (cases):        {:>10}", self.tickets);
        println!("duplicated:             {:>10}", self.duplicated);
        println!("protocol-number gaps:   {:>10}", self.gaps);
        println!("dead-lettered:          {:>10}", self.dead_lettered);
        for (reason, count) in &self.dead_letter_reasons {
            println!("  {count:>8} x {reason}");
        }
        println!("left in the queue:      {:>10}", self.left_in_queue);
        println!("events not relayed:     {:>10}", self.pending_events);
        println!("intake kills:           {:>10}", self.kills);
        println!(
            "workers' peak resident: {:>10.0} MiB (intake + relay processes)",
            self.worker_peak_kib as f64 / 1024.0
        );
        println!(
            "broker's peak memory:   {:>10.0} MiB",
            self.broker_peak_bytes as f64 / 1_048_576.0
        );
        for line in &self.cpu {
            println!("cpu: {line}");
        }
    }

    fn audit(&self, pairs: usize, invalid: usize) -> anyhow::Result<()> {
        let lost = pairs as i64 - self.applications;
        println!("lost:                   {lost:>10}");
        if lost != 0
            || self.duplicated != 0
            || self.gaps != 0
            || self.tickets != self.applications
            || self.dead_lettered as usize != invalid
            || self
                .dead_letter_reasons
                .keys()
                .any(|reason| !reason.contains(INVALID_IBAN_REASON))
            || self.left_in_queue != 0
        {
            anyhow::bail!("the audit failed (see the figures above)");
        }
        println!("audit: every application once, none lost, numbers gapless, every invalid one dead-lettered");
        Ok(())
    }
}

/// What the refusal of the burst's invalid applications says.
const INVALID_IBAN_REASON: &str = "IBAN";

/// Reads the dead letters off their queue and counts them by reason (its
/// first 160 characters: the burst's refusals all read alike).
async fn dead_letter_reasons(
    channel: &lapin::Channel,
    count: u32,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut reasons = BTreeMap::new();
    if count == 0 {
        return Ok(reasons);
    }
    channel.basic_qos(1_000, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            DEAD_LETTER_QUEUE.into(),
            "bench-dead-letters".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for _ in 0..count {
        let next = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await;
        let Ok(Some(Ok(delivery))) = next else {
            break;
        };
        let reason = header_str(delivery.properties.headers().as_ref(), REASON_HEADER)
            .unwrap_or_else(|| "(no reason)".into());
        let reason: String = reason.chars().take(160).collect();
        *reasons.entry(reason).or_insert(0) += 1;
    }
    Ok(reasons)
}

/// A worker process of this binary.
fn spawn(kind: &str, settings: &Settings) -> anyhow::Result<Child> {
    Ok(Command::new(crate::sportello_binary()?)
        .args(["worker", kind])
        .env("AMQP_URL", &settings.amqp_url)
        .env("DATABASE_URL", &settings.database_url)
        .env("INTAKE_CONSUMERS", settings.intake_consumers.to_string())
        .env("INTAKE_BATCH_SIZE", settings.intake_batch_size.to_string())
        .env("INTAKE_PREFETCH", settings.intake_prefetch.to_string())
        .env("METRICS_ADDRESS", "127.0.0.1:0")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// The peak resident set of a process (KiB), 0 once it is gone.
fn resident_kib(pid: u32) -> u64 {
    super::process_memory_kib(pid, "VmHWM").unwrap_or(0)
}

/// What a burst must leave behind once drained.
#[derive(Debug, Clone, Copy)]
struct Expected {
    pairs: usize,
    invalid: usize,
}

async fn burst(
    bench: &ClickDayBench,
    kinds: &[Kind],
    expected: Expected,
    kill: bool,
    scratch: &ScratchVhost,
    database_url: &str,
) -> anyhow::Result<Report> {
    let (amqp_url, vhost) = (scratch.amqp_url.as_str(), scratch.name.as_str());
    let settings = Settings {
        amqp_url: amqp_url.to_owned(),
        database_url: database_url.to_owned(),
        intake_consumers: bench.intake.consumers,
        intake_batch_size: bench.intake.batch_size,
        intake_prefetch: bench.intake.prefetch,
        ..Settings::local_defaults()
    };
    let pool = app::migrate(&settings).await?;
    app::declare_topology(&settings).await?;
    let management = Management::new(&bench.broker.management_url)?;
    let mut intake = spawn("intake", &settings)?;
    let mut relay = spawn("outbox-relay", &settings)?;
    let mut intake_peak_before_kill = 0;
    let mut kills = 0;

    let connection = broker::connect(amqp_url, "bench-clickday").await?;
    let publisher = Publisher::open(&connection).await?;
    let cpu_before = CpuSample::take();
    let started = Instant::now();
    let mut broker_peak = 0u64;
    const CHUNK: usize = 10_000;
    for (chunk_index, chunk) in kinds.chunks(CHUNK).enumerate() {
        let bodies: Vec<Vec<u8>> = chunk
            .iter()
            .enumerate()
            .map(|(i, kind)| body(*kind, chunk_index * CHUNK + i))
            .collect();
        publish_confirmed(
            &publisher,
            INTAKE_EXCHANGE,
            "web.application.submitted",
            &bodies,
        )
        .await?;
        if chunk_index % 10 == 0 {
            broker_peak = broker_peak.max(management.memory_used().await.unwrap_or(0));
        }
        // A third of the way in: the intake process dies without a word.
        if kill && kills == 0 && (chunk_index + 1) * CHUNK >= kinds.len() / 3 {
            intake_peak_before_kill = resident_kib(intake.id());
            intake.kill()?;
            intake.wait()?;
            kills += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            intake = spawn("intake", &settings)?;
        }
    }
    let publish_seconds = started.elapsed().as_secs_f64();

    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    // Drained: every expected application and dead letter is there, nothing
    // waits in the queue, ready or unacknowledged (a prefetched tail of
    // resubmissions leaves no row behind), and every event is relayed. If
    // the counts stop moving for a minute, something was lost: stop and let
    // the audit say what.
    let mut worker_peak = 0;
    let mut polls = 0u64;
    let mut progress = ((u32::MAX, u32::MAX, i64::MIN), Instant::now());
    let mut drained_at: Option<f64> = None;
    let drain_seconds = loop {
        let waiting = channel
            .queue_declare(INTAKE_REQUESTS_QUEUE.into(), passive, FieldTable::default())
            .await?
            .message_count();
        let dead = channel
            .queue_declare(DEAD_LETTER_QUEUE.into(), passive, FieldTable::default())
            .await?
            .message_count();
        // Counting the tables costs PostgreSQL a scan of a million rows:
        // only once the queue is empty, or the bench would be measuring itself.
        let (applications, pending): (i64, i64) = if waiting == 0 {
            sqlx::query_as(
                "SELECT (SELECT count(*) FROM applications), (SELECT count(*) FROM outbox)",
            )
            .fetch_one(&pool)
            .await?
        } else {
            (-1, -1)
        };
        worker_peak = worker_peak.max(resident_kib(intake.id()) + resident_kib(relay.id()));
        let complete = applications == expected.pairs as i64 && dead as usize == expected.invalid;
        if (waiting, dead, applications) != progress.0 {
            progress = ((waiting, dead, applications), Instant::now());
        }
        let stalled = progress.1.elapsed() > Duration::from_secs(60);
        if waiting == 0 && pending == 0 && (complete || stalled) {
            // The work ended now; the management statistics confirm it
            // seconds later, which is not the pipeline's time.
            let ended = *drained_at.get_or_insert(started.elapsed().as_secs_f64());
            let unacked = management
                .queue_messages(vhost, INTAKE_REQUESTS_QUEUE)
                .await
                .unwrap_or(None);
            if unacked == Some(0) || stalled {
                break ended;
            }
        } else {
            drained_at = None;
        }
        polls += 1;
        if polls.is_multiple_of(5) {
            broker_peak = broker_peak.max(management.memory_used().await.unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    worker_peak = worker_peak.max(intake_peak_before_kill + resident_kib(relay.id()));
    for child in [&mut intake, &mut relay] {
        let _ = child.kill();
        let _ = child.wait();
    }
    // After the wait: the workers' times are now this process's children's.
    let cpu = CpuSample::take().per_message_since(&cpu_before, kinds.len());

    let (applications, duplicated, tickets, pending_events): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM applications),
                (SELECT count(*) - count(DISTINCT (citizen_tax_code, benefit)) FROM applications),
                (SELECT count(*) FROM tickets),
                (SELECT count(*) FROM outbox)",
    )
    .fetch_one(&pool)
    .await?;
    // Per office and year: as many registrations as the highest number.
    let gaps: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(max_number - registered), 0)::bigint FROM
           (SELECT max(number) AS max_number, count(*) AS registered
            FROM registrations GROUP BY aoo, year) AS per_register",
    )
    .fetch_one(&pool)
    .await?;
    let dead_lettered = channel
        .queue_declare(DEAD_LETTER_QUEUE.into(), passive, FieldTable::default())
        .await?
        .message_count();
    let left_in_queue = channel
        .queue_declare(INTAKE_REQUESTS_QUEUE.into(), passive, FieldTable::default())
        .await?
        .message_count();
    let dead_letter_reasons = dead_letter_reasons(&channel, dead_lettered).await?;
    connection.close(200, "done".into()).await?;
    pool.close().await;
    Ok(Report {
        published: kinds.len(),
        publish_seconds,
        drain_seconds,
        applications,
        duplicated,
        tickets,
        gaps,
        dead_lettered,
        dead_letter_reasons,
        pending_events,
        left_in_queue,
        worker_peak_kib: worker_peak,
        broker_peak_bytes: broker_peak,
        kills,
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_mixes_new_pairs_resubmissions_and_invalid_ones() {
        let kinds = plan(1000, 0.10, 0.03);
        let fresh = kinds.iter().filter(|k| matches!(k, Kind::Fresh(_))).count();
        let again = kinds
            .iter()
            .filter(|k| matches!(k, Kind::Resubmission(_)))
            .count();
        let invalid = kinds
            .iter()
            .filter(|k| matches!(k, Kind::Invalid(_)))
            .count();
        assert_eq!(fresh + again + invalid, 1000);
        assert!((90..=110).contains(&again), "{again}");
        assert!((25..=40).contains(&invalid), "{invalid}");
        // Every resubmission repeats a pair already sent.
        let mut seen = 0;
        for kind in kinds {
            match kind {
                Kind::Fresh(pair) => seen = seen.max(pair + 1),
                Kind::Resubmission(pair) => assert!(pair < seen),
                Kind::Invalid(_) => {}
            }
        }
    }

    #[test]
    fn every_body_is_admitted_or_refused_as_planned() {
        for (position, kind) in plan(200, 0.10, 0.03).into_iter().enumerate() {
            let admitted = sportello::domain::intake::admit(
                "web.application.submitted",
                &body(kind, position),
            );
            assert_eq!(
                admitted.is_ok(),
                !matches!(kind, Kind::Invalid(_)),
                "{kind:?}: {admitted:?}"
            );
        }
    }
}
