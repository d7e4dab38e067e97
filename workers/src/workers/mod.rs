//! The worker kinds. Each is a thin loop around domain functions and stores,
//! run under supervision by `runtime`.

pub mod intake;
pub mod outbox_relay;
pub mod timers;

use std::sync::Arc;

use crate::config::Settings;
use crate::runtime::Worker;

/// Kinds that `sportello worker NAME` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkerKind {
    /// Consumes channel messages (competing consumers; scale out freely).
    Intake,
    /// Publishes committed events from the outbox (safe to run several).
    OutboxRelay,
    /// Fires durable timers and cron jobs (safe to run several).
    Timers,
}

impl WorkerKind {
    pub const ALL: [WorkerKind; 3] = [
        WorkerKind::Intake,
        WorkerKind::OutboxRelay,
        WorkerKind::Timers,
    ];

    /// The workers of this kind one process runs. Each opens its own
    /// database pool when it starts, on its own thread.
    pub fn build(self, settings: &Arc<Settings>) -> Arc<dyn Worker> {
        match self {
            WorkerKind::Intake => Arc::new(intake::IntakeWorker::new(settings.clone())),
            WorkerKind::OutboxRelay => Arc::new(outbox_relay::OutboxRelay::new(settings.clone())),
            WorkerKind::Timers => Arc::new(timers::TimerWorker::new(settings.clone(), cron_jobs())),
        }
    }
}

/// Cron jobs of the system. Later capabilities add theirs here (e.g. the
/// daily protocol register); each fires `timer.fired.cron.<name>`.
pub fn cron_jobs() -> Vec<crate::timers::cron::CronJob> {
    Vec::new()
}
