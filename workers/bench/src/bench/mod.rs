//! Benchmarks, each on a database (and vhost) of its own, removed afterwards.
//!
//! `sportello-bench intake`: end-to-end intake throughput against the bare
//! broker rate, on the same broker in the same run.
//!
//! `sportello-bench registrations`: protocol registrations per second, and
//! the ceiling that one AOO's counter row puts on them.
//!
//! `sportello-bench notifications`: emails per second to the SMTP server
//! (with and without pooling), and notifications per second from event to
//! sent.
//!
//! `sportello-bench gateway`: 1,000 video rooms (2,000 WebSockets) on a
//! gateway process; relay latency p50/p99 and its resident memory.
//!
//! `sportello-bench appointments`: booking over the broker against two
//! appointments workers: contended holds (latency, winners against seats),
//! confirmed bookings/s with seats to spare, and the double bookings the
//! database holds (none).

mod appointments;
mod clickday;
mod cpu;
mod gateway;
mod intake;
mod notifications;
mod registrations;

pub use appointments::AppointmentsBench;
pub use clickday::ClickDayBench;
pub use gateway::GatewayBench;
pub use intake::IntakeBench;
pub use notifications::NotificationsBench;
pub use registrations::RegistrationsBench;

use lapin::types::FieldTable;
use serde_json::json;
use uuid::Uuid;

use sportello::broker::management::Management;
use sportello::broker::publisher::{OutgoingMessage, Publisher};
use sportello::store;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Requests/s through intake -> routed, registered ticket -> event, versus
    /// bare publish+consume.
    Intake(IntakeBench),
    /// Protocol registrations/s: one AOO (batched, serial, unbatched) and
    /// spread over several AOOs, with the single-counter ceiling.
    Registrations(RegistrationsBench),
    /// Emails/s to the SMTP server (pool of 1 vs pooled), and notifications/s
    /// from `ticket.opened` to the email accepted by the server.
    Notifications(NotificationsBench),
    /// Booking over the broker: contended holds/s and latency, winners
    /// against seats, confirmed bookings/s, double bookings (must be 0).
    Appointments(AppointmentsBench),
    /// Video gateway: 1,000 rooms (2,000 WebSockets) on a child gateway
    /// process, relay latency p50/p99 and its resident memory.
    Gateway(GatewayBench),
    /// The opening day: a burst of a million applications, drained and audited.
    Clickday(ClickDayBench),
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

/// The broker a bench creates its vhost on.
/// How the measured intake worker runs (its defaults are the worker's).
#[derive(Debug, clap::Args)]
pub struct IntakeShape {
    /// Intake consumers.
    #[arg(long, default_value_t = 2)]
    pub consumers: usize,
    /// Most messages per database transaction.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Prefetch of each intake consumer.
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u16,
}

#[derive(Debug, clap::Args)]
pub struct BenchBroker {
    /// The management API (a cluster's nodes: comma separated).
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
}

/// A vhost created for one bench run, deleted by `remove`.
pub(crate) struct ScratchVhost {
    pub(crate) management: Management,
    pub(crate) name: String,
    /// `amqp_url` of the bench's user, in this vhost (a cluster's nodes:
    /// one URL per node, comma separated).
    pub(crate) amqp_url: String,
    /// The broker's nodes (`host:port`), for the provisioned users' URLs.
    hosts: Vec<String>,
    /// The password of this run's users of the definitions, once provisioned.
    users_password: Option<String>,
}

impl ScratchVhost {
    pub(crate) async fn create(broker: &BenchBroker, suffix: &str) -> anyhow::Result<Self> {
        let name = format!("sportello-bench-{suffix}");
        let management = Management::new(&broker.management_url)?;
        management.create_vhost(&name).await?;
        let user = broker
            .amqp_url
            .split("://")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .unwrap_or("guest")
            .to_owned();
        management
            .set_permissions(&name, &user, ".*", ".*", ".*")
            .await?;
        let amqp_url = sportello::broker::nodes::split(&broker.amqp_url)
            .iter()
            .map(|url| format!("{}/{name}", url.trim_end_matches('/')))
            .collect::<Vec<_>>()
            .join(",");
        let hosts = sportello::broker::nodes::split(&broker.amqp_url)
            .iter()
            .map(|url| {
                let rest = url.split_once("://").map_or(*url, |(_, rest)| rest);
                let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                host.trim_end_matches('/').to_owned()
            })
            .collect();
        Ok(Self {
            management,
            name,
            amqp_url,
            hosts,
            users_password: None,
        })
    }

    /// Provisions the users of `broker-config/definitions.json` in this vhost
    /// with their permissions (named `<vhost>-<user>`, a password of this
    /// run's), so the bench's workers run as their production users.
    pub(crate) async fn provision_users(&mut self) -> anyhow::Result<()> {
        let password = uuid::Uuid::new_v4().simple().to_string();
        let definitions = sportello::broker::topology::Definitions::embedded()?;
        self.management
            .provision(&self.name, &definitions, &format!("{}-", self.name), |_| {
                password.clone()
            })
            .await?;
        self.users_password = Some(password);
        Ok(())
    }

    /// The AMQP URL (one per node, comma separated) of a definitions user
    /// provisioned by `provision_users`.
    pub(crate) fn user_url(&self, user: &str) -> anyhow::Result<String> {
        let password = self
            .users_password
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("the vhost's users are not provisioned"))?;
        Ok(self
            .hosts
            .iter()
            .map(|host| {
                format!(
                    "amqp://{}-{user}:{password}@{host}/{}",
                    self.name, self.name
                )
            })
            .collect::<Vec<_>>()
            .join(","))
    }

    pub(crate) async fn remove(self) -> anyhow::Result<()> {
        self.management.delete_vhost(&self.name).await?;
        if self.users_password.is_some() {
            for user in sportello::broker::topology::Definitions::embedded()?.users {
                let name = user["name"].as_str().unwrap_or_default();
                self.management
                    .delete_user(&format!("{}-{name}", self.name))
                    .await?;
            }
        }
        Ok(())
    }
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Intake(bench) => intake::run(bench).await,
        BenchCommand::Registrations(bench) => registrations::run(bench).await,
        BenchCommand::Notifications(bench) => notifications::run(bench).await,
        BenchCommand::Appointments(bench) => appointments::run(bench).await,
        BenchCommand::Gateway(bench) => gateway::run(bench).await,
        BenchCommand::Clickday(bench) => clickday::run(bench).await,
    }
}

/// A database created for one bench run, dropped by `remove`.
pub(crate) struct ScratchDatabase {
    admin: sqlx::PgPool,
    name: String,
    pub(crate) url: String,
}

impl ScratchDatabase {
    pub(crate) async fn create(admin_url: &str, suffix: &str) -> anyhow::Result<Self> {
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

    pub(crate) async fn remove(self) -> anyhow::Result<()> {
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await?;
        self.admin.close().await;
        Ok(())
    }
}

/// A memory figure of a process from `/proc/<pid>/status` (Linux), in KiB:
/// `VmRSS` (resident now) or `VmHWM` (its peak).
pub(crate) fn process_memory_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

pub(crate) fn bench_suffix() -> String {
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
pub(crate) fn request_bodies(round: usize, count: usize) -> Vec<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_process_memory_figure_is_read_from_proc() {
        let own = std::process::id();
        assert!(super::process_memory_kib(own, "VmRSS").is_some_and(|kib| kib > 0));
        assert!(super::process_memory_kib(own, "VmHWM").is_some_and(|kib| kib > 0));
        assert_eq!(super::process_memory_kib(own, "NoSuchField"), None);
    }
}
