//! The worker kinds. Each is a thin loop around domain functions and stores,
//! run under supervision by `runtime`.

pub mod appointments;
pub mod batch;
pub mod delivery;
pub mod intake;
pub mod notify;
pub mod outbox_relay;
pub mod pin_checks;
pub mod registration;
pub mod settle;
pub mod timers;

use std::sync::Arc;

use crate::broker::publisher::Publisher;
use crate::broker::users::BrokerUser;
use crate::config::Settings;
use crate::domain::notification::Medium;
use crate::runtime::{Worker, WorkerError};

/// What a worker that talks to the broker starts with: its own connection
/// (named for the management UI, as its kind's broker user) and a confirmed
/// publisher. The topology is not declared here: the workers' users may not
/// configure it (`broker::users`); `sportello declare-topology` (or `up`, or
/// the definitions' import) has made it, and a missing queue fails the
/// worker (NOT_FOUND) until it exists.
pub(crate) async fn connect_publisher(
    amqp_url: &str,
    name: &str,
) -> Result<(lapin::Connection, Publisher), WorkerError> {
    let connection = crate::broker::connect(amqp_url, name).await?;
    let publisher = Publisher::open(&connection).await?;
    Ok((connection, publisher))
}

/// Kinds that `sportello worker NAME` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkerKind {
    /// Consumes channel messages (competing consumers; scale out freely).
    Intake,
    /// Publishes committed events from the outbox (safe to run several).
    OutboxRelay,
    /// Fires durable timers and cron jobs (safe to run several).
    Timers,
    /// Assigns protocol numbers to documents sent for registration
    /// (competing consumers; the register itself serialises numbering).
    Registration,
    /// Plans notifications from events (competing consumers; scale out freely).
    Notify,
    /// Sends queued emails over SMTP (safe to run several; each has its own
    /// connection pool and rate limit).
    EmailSender,
    /// Sends queued SMS through the provider (idem).
    SmsSender,
    /// The HTTP API (documents, registrations); run several behind a balancer.
    Api,
    /// Booking over the broker: commands, availability queries, call-back
    /// queues (competing consumers; scale out freely).
    Appointments,
    /// The video-room gateway (pages, SMS code, WebSocket signalling);
    /// run several with no sticky routing: they relay through the broker.
    Gateway,
    /// Agents' checks of a caller's PIN half over the broker
    /// (request/reply; competing consumers, scale out freely).
    PinChecks,
}

impl WorkerKind {
    pub const ALL: [WorkerKind; 11] = [
        WorkerKind::Intake,
        WorkerKind::OutboxRelay,
        WorkerKind::Timers,
        WorkerKind::Registration,
        WorkerKind::Notify,
        WorkerKind::EmailSender,
        WorkerKind::SmsSender,
        WorkerKind::Api,
        WorkerKind::Appointments,
        WorkerKind::Gateway,
        WorkerKind::PinChecks,
    ];

    /// The broker user this kind connects as; `None`: it never connects to
    /// the broker (timers and senders work on the database alone).
    pub fn broker_user(self) -> Option<BrokerUser> {
        match self {
            WorkerKind::Intake => Some(BrokerUser::Intake),
            WorkerKind::OutboxRelay => Some(BrokerUser::OutboxRelay),
            WorkerKind::Registration => Some(BrokerUser::Registration),
            WorkerKind::Notify => Some(BrokerUser::Notify),
            WorkerKind::Appointments => Some(BrokerUser::Appointments),
            WorkerKind::Api => Some(BrokerUser::Api),
            WorkerKind::Gateway => Some(BrokerUser::Gateway),
            WorkerKind::PinChecks => Some(BrokerUser::PinChecks),
            WorkerKind::Timers | WorkerKind::EmailSender | WorkerKind::SmsSender => None,
        }
    }

    /// The workers of this kind one process runs. Each opens its own
    /// database pool when it starts, on its own thread.
    pub fn build(self, settings: &Arc<Settings>) -> Arc<dyn Worker> {
        match self {
            WorkerKind::Intake => Arc::new(intake::IntakeWorker::new(settings.clone())),
            WorkerKind::OutboxRelay => Arc::new(outbox_relay::OutboxRelay::new(settings.clone())),
            WorkerKind::Timers => Arc::new(timers::TimerWorker::new(
                settings.clone(),
                cron_jobs(settings),
            )),
            WorkerKind::Registration => {
                Arc::new(registration::RegistrationWorker::new(settings.clone()))
            }
            WorkerKind::Notify => Arc::new(notify::NotifyWorker::new(settings.clone())),
            WorkerKind::EmailSender => Arc::new(delivery::DeliveryWorker::new(
                settings.clone(),
                Medium::Email,
            )),
            WorkerKind::SmsSender => {
                Arc::new(delivery::DeliveryWorker::new(settings.clone(), Medium::Sms))
            }
            WorkerKind::Api => Arc::new(crate::http::ApiWorker::new(settings.clone())),
            WorkerKind::Appointments => {
                Arc::new(appointments::AppointmentsWorker::new(settings.clone()))
            }
            WorkerKind::Gateway => Arc::new(crate::gateway::GatewayWorker::new(settings.clone())),
            WorkerKind::PinChecks => Arc::new(pin_checks::PinChecksWorker::new(settings.clone())),
        }
    }
}

/// The *registro giornaliero* job: at 00:30 Europe/Rome every day, the
/// previous day's daily protocol register (and any missing before it).
pub const DAILY_REGISTER_JOB: &str = "daily-protocol-register";

/// Every five minutes, housekeeping: the inbox forgets (a bounded number of)
/// messages older than `INBOX_RETENTION_DAYS`, and the kept outcomes of
/// booking commands as old; long-expired staff sessions go.
pub const RETENTION_JOB: &str = "retention";

/// Cron jobs of the system; each fires `timer.fired.cron.<name>`, and runs
/// its task (if any) in the transaction that fires it.
pub fn cron_jobs(settings: &Settings) -> Vec<crate::domain::cron::CronJob> {
    use crate::domain::cron::{CronJob, CronTask};
    vec![
        CronJob::new(DAILY_REGISTER_JOB, "30 0 * * *")
            .expect("the daily register's cron expression is valid")
            .with_task(CronTask::ProduceDailyRegisters),
        CronJob::new(RETENTION_JOB, "*/5 * * * *")
            .expect("the retention's cron expression is valid")
            .with_task(CronTask::Retention {
                inbox_keep_days: settings.inbox_retention_days,
            }),
    ]
}
