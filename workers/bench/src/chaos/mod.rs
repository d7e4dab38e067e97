//! `sportello-bench chaos cluster`: the proof that losing a broker node loses
//! nothing. Against the three-node cluster of `scripts/cluster.sh`, intake
//! and outbox relay run as child processes of this binary (as the benches
//! run them), requests are published with confirms, and mid-stream a node is
//! lost: killed (`kill -9`) or its RabbitMQ application stopped
//! (`rabbitmqctl stop_app`, the broker side of a network cut), later
//! brought back. Then the database and the queues are audited.
//!
//! The same machinery without a fault measures tickets/s, against the
//! cluster or a single node (docs/operations.md, "Scaling out").

mod faults;
mod report;
mod run;

use crate::bench::{BenchDatabase, IntakeShape};

pub use faults::Fault;
pub use report::Report;

#[derive(Debug, clap::Subcommand)]
pub enum ChaosCommand {
    /// Lose a node of the broker cluster mid-stream and audit: every
    /// confirmed request one ticket, events relayed for all, protocol
    /// numbers gapless, queues empty.
    Cluster(ClusterChaos),
}

#[derive(Debug, clap::Args)]
pub struct ClusterChaos {
    /// Requests published (with confirms) in each scenario.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Which failures, in turn, each in a vhost and database of its own:
    /// `leader` (kill -9 the node leading sportello.intake.requests),
    /// `consumers` (kill -9 the node holding the most consumers),
    /// `stop-app` (rabbitmqctl stop_app on the node holding the most
    /// connections), `none` (a throughput run), `all` (the three failures).
    #[arg(long, value_enum, default_value_t = Scenarios::All)]
    pub scenario: Scenarios,
    /// Intake processes (each with its own connection and consumers).
    #[arg(long, default_value_t = 1)]
    pub intake_processes: usize,
    #[command(flatten)]
    pub intake: IntakeShape,
    /// The nodes' AMQP URLs without vhost, comma separated (a user allowed
    /// to create vhosts); one URL measures a single node.
    #[arg(
        long,
        env = "CHAOS_AMQP_URLS",
        default_value = "amqp://guest:guest@127.0.0.1:5681,amqp://guest:guest@127.0.0.1:5682,amqp://guest:guest@127.0.0.1:5683"
    )]
    pub amqp_urls: String,
    /// The nodes' management APIs, comma separated.
    #[arg(
        long,
        env = "CHAOS_MANAGEMENT_URLS",
        default_value = "http://guest:guest@127.0.0.1:15681,http://guest:guest@127.0.0.1:15682,http://guest:guest@127.0.0.1:15683"
    )]
    pub management_urls: String,
    /// The script that kills, stops and starts the nodes.
    #[arg(long, default_value = "scripts/cluster.sh")]
    pub cluster_script: String,
    #[command(flatten)]
    pub database: BenchDatabase,
}

/// The scenarios `--scenario` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenarios {
    All,
    Leader,
    Consumers,
    StopApp,
    None,
}

impl Scenarios {
    pub fn faults(self) -> Vec<Option<Fault>> {
        match self {
            Scenarios::All => vec![
                Some(Fault::KillLeader),
                Some(Fault::KillBusiestConsumerNode),
                Some(Fault::StopApp),
            ],
            Scenarios::Leader => vec![Some(Fault::KillLeader)],
            Scenarios::Consumers => vec![Some(Fault::KillBusiestConsumerNode)],
            Scenarios::StopApp => vec![Some(Fault::StopApp)],
            Scenarios::None => vec![None],
        }
    }
}

pub async fn run(command: ChaosCommand) -> anyhow::Result<()> {
    match command {
        ChaosCommand::Cluster(chaos) => {
            let mut failed = Vec::new();
            for fault in chaos.scenario.faults() {
                let report = run::scenario(&chaos, fault).await?;
                report.print();
                if let Err(problem) = report.audit() {
                    println!("audit FAILED: {problem}");
                    failed.push(report.title());
                } else {
                    println!("audit: every confirmed request one ticket, every event relayed, numbers gapless, queues empty");
                }
            }
            if !failed.is_empty() {
                anyhow::bail!("the audit failed for: {}", failed.join(", "));
            }
            Ok(())
        }
    }
}
