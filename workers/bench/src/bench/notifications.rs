//! `sportello-bench notifications`: what the email path sustains.
//!
//! 1. Emails/s straight through `EmailSender` to the SMTP server: with a new
//!    connection per email, then with pools of several sizes (as many
//!    emails in flight as connections, like the email sender).
//! 2. Notifications/s from event to sent: the requests are first turned into
//!    tickets with the notify worker stopped, so their `ticket.opened`
//!    events wait in the notifications queue; then the notify worker and the
//!    email sender start and the clock runs until every email is accepted by
//!    the SMTP server.
//!
//! Without `--smtp-url` it starts `scripts/smtp_sink.py` (aiosmtpd; with
//! `--keep-mail` it writes every message to a file) on a free port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use uuid::Uuid;

use super::{
    bench_suffix, median, publish_confirmed, request_bodies, BenchBroker, BenchDatabase,
    ScratchDatabase, ScratchVhost,
};
use sportello::app;
use sportello::broker::names::{INTAKE_EXCHANGE, INTAKE_REQUESTS_QUEUE, NOTIFICATION_EVENTS_QUEUE};
use sportello::broker::publisher::Publisher;
use sportello::broker::{self};
use sportello::config::Settings;
use sportello::domain::notification::SendOutcome;
use sportello::notifications::email::EmailSender;
use sportello::runtime::RunningWorkers;
use sportello::store::notifications::ClaimedDelivery;
use sportello::workers::WorkerKind;

#[derive(Debug, clap::Args)]
pub struct NotificationsBench {
    /// Emails sent straight to the SMTP server, per pool size.
    #[arg(long, default_value_t = 2_000)]
    pub emails: usize,
    /// Notifications through the whole path, per round.
    #[arg(long, default_value_t = 5_000)]
    pub notifications: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Pool sizes of the direct runs (each with as many emails in flight).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32])]
    pub pool_sizes: Vec<u32>,
    /// SMTP_POOL_SIZE of the sender in the whole-path runs.
    #[arg(long, default_value_t = 32)]
    pub pool_size: u32,
    /// The SMTP server; by default a local aiosmtpd sink started for the run.
    #[arg(long)]
    pub smtp_url: Option<String>,
    /// The sink started when `--smtp-url` is not given.
    #[arg(long, default_value = "scripts/smtp_sink.py")]
    pub sink_script: String,
    /// Have the sink write every message to a file, as in the tests
    /// (by default it accepts and discards them).
    #[arg(long)]
    pub keep_mail: bool,
    /// EMAIL_RATE_PER_SECOND of the sender in the whole-path runs; high, so
    /// the measure is of the path and not of the configured limit.
    #[arg(long, default_value_t = 100_000)]
    pub email_rate: u32,
    #[command(flatten)]
    pub broker: BenchBroker,
    #[command(flatten)]
    pub database: BenchDatabase,
}

const FROM: &str = "INPS <noreply@notifiche.inps.example>";

/// How the direct runs reach the server.
#[derive(Debug, Clone, Copy)]
enum Connections {
    /// A new SMTP connection (and session) per email.
    PerEmail,
    /// A pool of this many, with as many emails in flight.
    Pool(u32),
}

impl std::fmt::Display for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connections::PerEmail => write!(
                f,
                "new connection per email, {PER_EMAIL_CONCURRENCY} at once"
            ),
            Connections::Pool(size) => write!(f, "pool of {size}"),
        }
    }
}

const PER_EMAIL_CONCURRENCY: usize = 8;

pub async fn run(bench: NotificationsBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        bench.emails > 0
            && bench.notifications > 0
            && bench.rounds > 0
            && bench.pool_size > 0
            && bench.pool_sizes.iter().all(|&p| p > 0),
        "--emails, --notifications, --rounds and the pool sizes must be at least 1"
    );
    let mut sink = None;
    let smtp_url = match &bench.smtp_url {
        Some(url) => url.clone(),
        None => {
            let (child, url, dir) = start_sink(&bench.sink_script, bench.keep_mail)?;
            sink = Some((child, dir));
            url
        }
    };
    let runs: Vec<Connections> = std::iter::once(Connections::PerEmail)
        .chain(bench.pool_sizes.iter().map(|&p| Connections::Pool(p)))
        .collect();
    let outcome = measure(&bench, &smtp_url, &runs).await;
    if let Some((mut child, dir)) = sink {
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(dir);
    }
    let (direct, path) = outcome?;
    println!(
        "SMTP server: {smtp_url}; medians of {} rounds",
        bench.rounds
    );
    for (i, connections) in runs.iter().enumerate() {
        let rates = direct.iter().map(|round| round[i]).collect();
        println!(
            "emails straight to SMTP, {:<42} {:>6.0} emails/s ({} emails)",
            connections.to_string(),
            median(rates),
            bench.emails
        );
    }
    println!(
        "event -> email sent, {:<46} {:>6.0} notifications/s ({} notifications; plan: rule, facts, render, store; claim, send, record)",
        format!("pool of {}", bench.pool_size),
        median(path),
        bench.notifications
    );
    Ok(())
}

async fn measure(
    bench: &NotificationsBench,
    smtp_url: &str,
    runs: &[Connections],
) -> anyhow::Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let (mut direct, mut path) = (Vec::new(), Vec::new());
    for round in 0..bench.rounds {
        let mut rates = Vec::new();
        for &connections in runs {
            rates.push(direct_rate(smtp_url, connections, bench.emails).await?);
        }
        path.push(whole_path_rate(bench, smtp_url, round).await?);
        let shown: Vec<String> = runs
            .iter()
            .zip(&rates)
            .map(|(c, r)| format!("{c}: {r:.0}/s"))
            .collect();
        println!(
            "round {}: {}; event -> sent {:.0}/s",
            round + 1,
            shown.join(", "),
            path[round]
        );
        direct.push(rates);
    }
    Ok((direct, path))
}

/// `count` emails through `EmailSender`, pooled or a connection each.
async fn direct_rate(
    smtp_url: &str,
    connections: Connections,
    count: usize,
) -> anyhow::Result<f64> {
    let deliveries: Vec<ClaimedDelivery> = (0..count)
        .map(|i| ClaimedDelivery {
            id: Uuid::now_v7(),
            address: "bench@example.it".into(),
            subject: Some(format!("Richiesta protocollata: prova {i}")),
            text_body: "Gentile utente,\n\nla tua richiesta è stata protocollata.\n".into(),
            html_body: Some(
                "<p>Gentile utente,</p><p>la tua richiesta è stata protocollata.</p>".into(),
            ),
            attempt: 1,
            correlation_id: format!("bench-{i}"),
            trace: None,
        })
        .collect();
    let timeout = Duration::from_secs(30);
    let started = Instant::now();
    let outcomes: Vec<SendOutcome> = match connections {
        Connections::Pool(size) => {
            let sender = EmailSender::new(smtp_url, FROM, size, timeout)?;
            futures::stream::iter(&deliveries)
                .map(|delivery| sender.send(delivery))
                .buffer_unordered(size as usize)
                .collect()
                .await
        }
        Connections::PerEmail => {
            futures::stream::iter(&deliveries)
                .map(|delivery| async move {
                    // A transport of its own: connect, EHLO, send, QUIT.
                    match EmailSender::new(smtp_url, FROM, 1, timeout) {
                        Ok(sender) => sender.send(delivery).await,
                        Err(e) => SendOutcome::Permanent(e.to_string()),
                    }
                })
                .buffer_unordered(PER_EMAIL_CONCURRENCY)
                .collect()
                .await
        }
    };
    let elapsed = started.elapsed();
    if let Some(failure) = outcomes
        .iter()
        .find(|o| !matches!(o, SendOutcome::Sent { .. }))
    {
        anyhow::bail!("the SMTP server refused a bench email: {failure:?}");
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// Requests -> tickets (notify stopped), then events -> emails sent, timed.
async fn whole_path_rate(
    bench: &NotificationsBench,
    smtp_url: &str,
    round: usize,
) -> anyhow::Result<f64> {
    let suffix = bench_suffix();
    let vhost = ScratchVhost::create(&bench.broker, &suffix).await?;
    let database = ScratchDatabase::create(&bench.database.database_url, &suffix).await?;
    let settings = Arc::new(Settings {
        amqp_url: vhost.amqp_url.clone(),
        database_url: database.url.clone(),
        smtp_url: smtp_url.to_owned(),
        smtp_pool_size: bench.pool_size,
        email_rate_per_second: bench.email_rate,
        ..Settings::local_defaults()
    });
    let outcome = timed_path(&settings, bench.notifications, round).await;
    vhost.remove().await?;
    database.remove().await?;
    outcome
}

async fn timed_path(settings: &Arc<Settings>, count: usize, round: usize) -> anyhow::Result<f64> {
    let pool = app::migrate(settings).await?;
    app::declare_topology(settings).await?;
    let connection = broker::connect(&settings.broker_addresses(), "bench-publisher").await?;
    let channel = connection.create_channel().await?;
    let depth = |queue: &'static str| {
        let channel = channel.clone();
        async move {
            let declared = channel
                .queue_declare(
                    queue.into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok::<usize, lapin::Error>(declared.message_count() as usize)
        }
    };

    // Tickets first; their events queue up for the notify worker.
    let intake = RunningWorkers::start(app::build_workers(
        settings,
        &[WorkerKind::Intake, WorkerKind::OutboxRelay],
    ));
    let publisher = Publisher::open(&connection).await?;
    let bodies = request_bodies(round, count);
    publish_confirmed(
        &publisher,
        INTAKE_EXCHANGE,
        "web.request.submitted",
        &bodies,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while depth(NOTIFICATION_EVENTS_QUEUE).await? < count || depth(INTAKE_REQUESTS_QUEUE).await? > 0
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "intake did not finish in 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    intake.shutdown(Duration::from_secs(10)).await;

    let started = Instant::now();
    let notify = RunningWorkers::start(app::build_workers(
        settings,
        &[WorkerKind::Notify, WorkerKind::EmailSender],
    ));
    loop {
        let (sent, failed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE state = 'failed')
               FROM deliveries",
        )
        .fetch_one(&pool)
        .await?;
        anyhow::ensure!(failed == 0, "{failed} bench emails failed");
        if sent as usize >= count {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "notifications did not finish in 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    notify.shutdown(Duration::from_secs(10)).await;
    connection.close(200, "done".into()).await?;
    pool.close().await;
    Ok(rate)
}

/// Starts the aiosmtpd sink on a free port; its URL and mail directory.
fn start_sink(
    script: &str,
    keep_mail: bool,
) -> anyhow::Result<(Child, String, std::path::PathBuf)> {
    let dir = std::env::temp_dir().join(format!("sportello-bench-mail-{}", bench_suffix()));
    let mut command = Command::new("/usr/bin/python3");
    command.args([script, "--port", "0", "--exit-with-parent"]);
    if keep_mail {
        command.arg("--maildir").arg(&dir);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {script} (python3-aiosmtpd): {e}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout from the sink"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow::anyhow!("the SMTP sink said {line:?}"))?
        .to_owned();
    Ok((child, format!("smtp://127.0.0.1:{port}"), dir))
}
