//! `sportello-bench`: Sportello's benchmarks and chaos drills.
//!
//! # Layout
//!
//! - [`bench`]: one module per benchmark (`sportello-bench intake |
//!   registrations | notifications | appointments | gateway | clickday`),
//!   each on a database and vhost of its own, printing its figure beside the
//!   limit it is measured against; `cpu` counts CPU per component.
//! - [`chaos`]: `sportello-bench chaos cluster`, a broker node lost
//!   mid-stream and the audit that nothing was lost or doubled.
//!
//! The workers under test run as child processes of the `sportello` binary
//! found beside this one (`SPORTELLO_BINARY` names another), as they run in
//! production. It lives in a crate of its own so that a change to a bench
//! rebuilds neither the service nor its tests.

mod bench;
mod chaos;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sportello-bench",
    version,
    about = "Sportello's benchmarks and chaos drills"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Bench(bench::BenchCommand),
    /// Failure drills against a broker cluster (scripts/cluster.sh).
    Chaos {
        #[command(subcommand)]
        which: chaos::ChaosCommand,
    },
}

/// The `sportello` binary the benches run their workers with: beside this
/// one (both are built by `cargo build --bins`), unless `SPORTELLO_BINARY`
/// names another.
pub(crate) fn sportello_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SPORTELLO_BINARY") {
        return Ok(PathBuf::from(path));
    }
    let this = std::env::current_exe()?;
    let beside = this.with_file_name("sportello");
    anyhow::ensure!(
        beside.is_file(),
        "no `sportello` binary beside {} (build both with `cargo build --bins`, or set SPORTELLO_BINARY)",
        this.display()
    );
    Ok(beside)
}

fn main() -> ExitCode {
    let _telemetry = sportello::telemetry::init();
    let cli = Cli::parse();
    let system = actix_rt::System::new();
    let result: anyhow::Result<()> = system.block_on(async move {
        match cli.command {
            Command::Bench(which) => bench::run(which).await,
            Command::Chaos { which } => chaos::run(which).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sportello-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
