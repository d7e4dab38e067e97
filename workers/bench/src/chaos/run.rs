//! One scenario: a vhost and a database of its own, intake and relay as
//! child processes, the requests published with confirms while a node is
//! lost and brought back, then the audit's figures.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use sqlx::PgPool;
use tokio::process::{Child, Command};
use uuid::Uuid;

use super::faults::{busiest, node_number, Fault};
use super::{ClusterChaos, Report};
use crate::bench::{bench_suffix, request_bodies, BenchBroker, ScratchDatabase, ScratchVhost};
use sportello::app;
use sportello::broker::management::Management;
use sportello::broker::names::{
    DEAD_LETTER_QUEUE, EVENTS_EXCHANGE, INTAKE_EXCHANGE, INTAKE_REQUESTS_QUEUE,
};
use sportello::broker::publisher::OutgoingMessage;
use sportello::broker::resend::{self, Resending};
use sportello::broker::{self, nodes};
use sportello::config::Settings;

/// The quorum queue collecting every `ticket.opened` of the scenario.
const PROBE_QUEUE: &str = "chaos.ticket-opened";
/// Longest a scenario may take to settle.
const DRAIN_PATIENCE: Duration = Duration::from_secs(1800);
/// With nothing left anywhere and no new ticket for this long, what is
/// missing is lost.
const QUIET_ENOUGH: Duration = Duration::from_secs(60);
/// The longest the fault waits for the publisher: to reach a third before
/// hurting the node, two thirds before healing it.
const FAULT_PATIENCE: Duration = Duration::from_secs(120);

pub async fn scenario(chaos: &ClusterChaos, fault: Option<Fault>) -> anyhow::Result<Report> {
    let suffix = format!("chaos-{}", bench_suffix());
    let broker = BenchBroker {
        management_url: chaos.management_urls.clone(),
        amqp_url: chaos.amqp_urls.clone(),
    };
    let vhost = ScratchVhost::create(&broker, &suffix).await?;
    let database =
        ScratchDatabase::create(&chaos.database.database_url, &suffix.replace('-', "_")).await?;
    let outcome = measure(chaos, fault, &vhost, &database.url).await;
    let removed_vhost = vhost.remove().await;
    let removed_database = database.remove().await;
    let report = outcome?;
    removed_vhost?;
    removed_database?;
    Ok(report)
}

/// The nodes' URLs starting with node `first` (0-based), as AMQP_URLS: each
/// process is placed on a node of its own, the others its fallbacks.
fn placed(urls: &[String], first: usize) -> String {
    nodes::attempt_order(urls.len(), first % urls.len().max(1))
        .map(|index| urls[index].as_str())
        .collect::<Vec<_>>()
        .join(",")
}

async fn measure(
    chaos: &ClusterChaos,
    fault: Option<Fault>,
    vhost: &ScratchVhost,
    database_url: &str,
) -> anyhow::Result<Report> {
    let urls: Vec<String> = nodes::split(&vhost.amqp_url)
        .into_iter()
        .map(str::to_owned)
        .collect();
    // Node 1: this process (topology, so the queues' leaders, and the
    // publisher); node 2: the intake; node 3: the relay.
    let settings = Settings {
        amqp_urls: Some(placed(&urls, 0)),
        database_url: database_url.to_owned(),
        intake_consumers: chaos.intake.consumers,
        intake_batch_size: chaos.intake.batch_size,
        intake_prefetch: chaos.intake.prefetch,
        ..Settings::local_defaults()
    };
    let pool = app::migrate(&settings).await?;
    app::declare_topology(&settings).await?;
    declare_probe(&settings.broker_addresses()).await?;
    let management = &vhost.management;
    let members = management
        .queue_members(&vhost.name, INTAKE_REQUESTS_QUEUE)
        .await?;
    if members.members.len() < urls.len() {
        anyhow::bail!(
            "{INTAKE_REQUESTS_QUEUE} has {} member(s) on {} node(s): is every node of the cluster up?",
            members.members.len(),
            urls.len()
        );
    }

    let logs = std::env::temp_dir().join(format!("sportello-{}", vhost.name));
    std::fs::create_dir_all(&logs)?;
    let mut children = Vec::new();
    for k in 0..chaos.intake_processes.max(1) {
        children.push(spawn("intake", &placed(&urls, 1 + k), &settings, &logs, k)?);
    }
    children.push(spawn(
        "outbox-relay",
        &placed(&urls, 2),
        &settings,
        &logs,
        0,
    )?);

    // The workers connected and consuming before the first publish, so the
    // fault meets them where they were placed.
    let wanted = (chaos.intake_processes.max(1) * chaos.intake.consumers.max(1)) as u64;
    let ready_by = Instant::now() + Duration::from_secs(120);
    loop {
        let consumers = management
            .queue_members(&vhost.name, INTAKE_REQUESTS_QUEUE)
            .await?
            .consumers
            .unwrap_or(0);
        let connections = management.connection_nodes(&vhost.name).await?.len();
        if consumers >= wanted && connections > chaos.intake_processes.max(1) {
            break;
        }
        if Instant::now() > ready_by {
            anyhow::bail!("the workers did not start (logs: {})", logs.display());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let messages = requests(chaos.requests);
    let ids: Vec<Uuid> = messages.iter().map(|m| m.message_id).collect();
    let progress = AtomicUsize::new(0);
    let published = AtomicBool::new(false);
    let healed = AtomicBool::new(fault.is_none());
    let started = Instant::now();

    let publishing = async {
        let sent = resend::send_all(
            &settings.broker_addresses(),
            "chaos-publisher",
            &messages,
            Resending::default(),
            &progress,
        )
        .await;
        published.store(true, Ordering::SeqCst);
        sent
    };
    let hurting = async {
        let hit = inflict(
            chaos,
            fault,
            management,
            &vhost.name,
            &progress,
            &published,
            started,
        )
        .await;
        healed.store(true, Ordering::SeqCst);
        hit
    };
    let addresses = settings.broker_addresses();
    let watching = watch(&pool, &addresses, messages.len(), &published, &healed);
    let (sent, hit, watched) = tokio::join!(publishing, hurting, watching);
    for child in &mut children {
        let _ = child.kill().await;
    }
    let sent = sent?;
    let node = hit?;
    let (elapsed, longest_stall) = watched?;
    let elapsed = elapsed.unwrap_or_else(|| started.elapsed());

    let (events, event_deliveries) = drain_probe(&settings.broker_addresses()).await?;
    let (tickets, requests_with_ticket, outbox_left): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tickets),
                (SELECT count(DISTINCT request_message_id) FROM tickets
                  WHERE request_message_id = ANY($1)),
                (SELECT count(*) FROM outbox)",
    )
    .bind(&ids)
    .fetch_one(&pool)
    .await?;
    let protocol_gaps = protocol_gaps(&pool).await?;
    let left_in_intake = depth(&settings.broker_addresses(), INTAKE_REQUESTS_QUEUE).await?;
    let dead_lettered = depth(&settings.broker_addresses(), DEAD_LETTER_QUEUE).await?;
    pool.close().await;
    let report = Report {
        fault,
        node,
        intake_processes: chaos.intake_processes.max(1),
        nodes: urls.len(),
        published: sent.confirmed,
        resent: sent.resent,
        nacked: sent.nacked,
        publisher_reconnects: sent.reconnects,
        tickets,
        requests_with_ticket,
        events,
        event_deliveries,
        protocol_gaps,
        left_in_intake,
        dead_lettered,
        outbox_left,
        elapsed,
        longest_stall,
        longest_confirm_wait: sent.longest_wait,
    };
    // The workers' logs are kept for a failed audit only.
    if report.audit().is_ok() {
        let _ = std::fs::remove_dir_all(&logs);
    } else {
        println!("workers' logs: {}", logs.display());
    }
    Ok(report)
}

/// `request.submitted` messages, each under the message id its body carries.
fn requests(count: usize) -> Vec<OutgoingMessage> {
    request_bodies(0, count)
        .into_iter()
        .map(|body| {
            let message_id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message_id"].as_str().and_then(|id| id.parse().ok()))
                .unwrap_or_else(Uuid::now_v7);
            OutgoingMessage {
                exchange: INTAKE_EXCHANGE.into(),
                routing_key: "web.request.submitted".into(),
                message_id,
                message_type: "request.submitted".into(),
                correlation_id: "chaos".into(),
                body,
                headers: FieldTable::default(),
                mandatory: true,
            }
        })
        .collect()
}

/// A worker process of this binary, on the broker nodes `addresses`.
fn spawn(
    kind: &str,
    addresses: &str,
    settings: &Settings,
    logs: &std::path::Path,
    k: usize,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(logs.join(format!("{kind}-{k}.log")))?;
    Ok(Command::new(crate::sportello_binary()?)
        .args(["worker", kind])
        .env("AMQP_URLS", addresses)
        .env("DATABASE_URL", &settings.database_url)
        .env("INTAKE_CONSUMERS", settings.intake_consumers.to_string())
        .env("INTAKE_BATCH_SIZE", settings.intake_batch_size.to_string())
        .env("INTAKE_PREFETCH", settings.intake_prefetch.to_string())
        .env("METRICS_ADDRESS", "")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?)
}

/// Hurts a node once a third of the requests is confirmed, heals it once
/// two thirds are (or all, and at least 5 s later). Returns the node hit.
async fn inflict(
    chaos: &ClusterChaos,
    fault: Option<Fault>,
    management: &Management,
    vhost: &str,
    progress: &AtomicUsize,
    published: &AtomicBool,
    started: Instant,
) -> anyhow::Result<Option<String>> {
    let Some(fault) = fault else { return Ok(None) };
    let total = chaos.requests;
    let waiting_since = Instant::now();
    while progress.load(Ordering::Relaxed) < total / 3 && !published.load(Ordering::SeqCst) {
        if waiting_since.elapsed() > FAULT_PATIENCE {
            anyhow::bail!(
                "publishing stalled before the fault: {} of {total} confirmed in {FAULT_PATIENCE:?}",
                progress.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let node = match fault {
        Fault::KillLeader => {
            management
                .queue_members(vhost, INTAKE_REQUESTS_QUEUE)
                .await?
                .leader
        }
        Fault::KillBusiestConsumerNode => busiest(&management.consumer_nodes(vhost).await?, &[]),
        Fault::StopApp => busiest(
            &management.connection_nodes(vhost).await?,
            &management.consumer_nodes(vhost).await?,
        ),
    }
    .ok_or_else(|| anyhow::anyhow!("no node to hit for {}", fault.describe()))?;
    let number = node_number(&node).ok_or_else(|| {
        anyhow::anyhow!("{node} is not a node of scripts/cluster.sh (sportello-N@localhost)")
    })?;
    let (hurt, heal) = fault.commands(number);
    println!(
        "{:>6.1} s: {} ({node}), {} of {total} confirmed",
        started.elapsed().as_secs_f64(),
        fault.describe(),
        progress.load(Ordering::Relaxed)
    );
    script(&chaos.cluster_script, &hurt).await?;
    let hurt_at = Instant::now();
    // Healed at two thirds, or after FAULT_PATIENCE whatever the publisher
    // managed: a drill that waits for a stalled publisher never ends.
    while (progress.load(Ordering::Relaxed) < total * 2 / 3
        && !published.load(Ordering::SeqCst)
        && hurt_at.elapsed() < FAULT_PATIENCE)
        || hurt_at.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    script(&chaos.cluster_script, &heal).await?;
    println!(
        "{:>6.1} s: {node} is back ({:.1} s after), {} of {total} confirmed",
        started.elapsed().as_secs_f64(),
        hurt_at.elapsed().as_secs_f64(),
        progress.load(Ordering::Relaxed)
    );
    Ok(Some(node))
}

async fn script(path: &str, args: &[String]) -> anyhow::Result<()> {
    let output = Command::new("bash").arg(path).args(args).output().await?;
    if !output.status.success() {
        anyhow::bail!(
            "{path} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Samples the tickets until everything is settled: published, healed,
/// every request a ticket (or nothing moving for `QUIET_ENOUGH`), the intake
/// queue and the outbox empty. Returns when that was reached and the
/// longest time without a new ticket while requests were waiting.
async fn watch(
    pool: &PgPool,
    addresses: &str,
    expected: usize,
    published: &AtomicBool,
    healed: &AtomicBool,
) -> anyhow::Result<(Option<Duration>, Duration)> {
    let started = Instant::now();
    let mut last_count = 0i64;
    let mut last_change = Instant::now();
    let mut longest_stall = Duration::ZERO;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (tickets, outbox): (i64, i64) =
            sqlx::query_as("SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM outbox)")
                .fetch_one(pool)
                .await?;
        if tickets > last_count {
            last_count = tickets;
            last_change = Instant::now();
        } else if last_count > 0 && (tickets as usize) < expected {
            longest_stall = longest_stall.max(last_change.elapsed());
        }
        let settled =
            published.load(Ordering::SeqCst) && healed.load(Ordering::SeqCst) && outbox == 0;
        if settled
            && ((tickets as usize) >= expected || last_change.elapsed() > QUIET_ENOUGH)
            && depth(addresses, INTAKE_REQUESTS_QUEUE).await.ok() == Some(0)
        {
            return Ok((Some(started.elapsed()), longest_stall));
        }
        if started.elapsed() > DRAIN_PATIENCE {
            return Ok((None, longest_stall));
        }
    }
}

/// Messages ready in `queue`, asked on a connection of its own.
async fn depth(addresses: &str, queue: &str) -> anyhow::Result<u32> {
    let connection = broker::connect(addresses, "chaos-audit").await?;
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let count = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await?
        .message_count();
    sportello::broker::close_quietly(&connection, "audited").await;
    Ok(count)
}

async fn declare_probe(addresses: &str) -> anyhow::Result<()> {
    let connection = broker::connect(addresses, "chaos-probe").await?;
    let channel = connection.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            PROBE_QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await?;
    channel
        .queue_bind(
            PROBE_QUEUE.into(),
            EVENTS_EXCHANGE.into(),
            "ticket.opened".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    connection.close(200, "declared".into()).await?;
    Ok(())
}

/// Every `ticket.opened` the probe holds: distinct message ids, deliveries.
async fn drain_probe(addresses: &str) -> anyhow::Result<(usize, usize)> {
    let connection = broker::connect(addresses, "chaos-probe").await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(2_000, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            PROBE_QUEUE.into(),
            "chaos-audit".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut seen = HashSet::new();
    let mut deliveries = 0;
    while let Ok(Some(delivery)) =
        tokio::time::timeout(Duration::from_secs(3), consumer.next()).await
    {
        let delivery = delivery?;
        deliveries += 1;
        if let Some(id) = delivery.properties.message_id() {
            seen.insert(id.to_string());
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
    }
    sportello::broker::close_quietly(&connection, "drained").await;
    Ok((seen.len(), deliveries))
}

/// Per office and year: as many registrations as the highest number.
async fn protocol_gaps(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(max_number - registered), 0)::bigint FROM
           (SELECT max(number) AS max_number, count(*) AS registered
            FROM registrations GROUP BY aoo, year) AS per_register",
    )
    .fetch_one(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::placed;

    #[test]
    fn each_process_starts_on_its_own_node_and_falls_back_round_the_list() {
        let urls: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(placed(&urls, 0), "a,b,c");
        assert_eq!(placed(&urls, 1), "b,c,a");
        assert_eq!(placed(&urls, 4), "b,c,a");
        assert_eq!(placed(&urls[..1], 2), "a");
    }
}
