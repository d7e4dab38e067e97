//! `sportello`: one binary for every role. See `sportello --help`.
//! Benchmarks and chaos drills are `sportello-bench` (workers/bench).

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sportello::config::Settings;
use sportello::workers::WorkerKind;
use sportello::{app, publish, telemetry};

#[derive(Parser)]
#[command(
    name = "sportello",
    version,
    about = "Citizen-services workflow workers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations, declare the broker topology and run every worker.
    Up {
        #[command(flatten)]
        settings: Settings,
    },
    /// Run one kind of worker (scale out by running more of these).
    Worker {
        #[arg(value_enum)]
        kind: WorkerKind,
        #[command(flatten)]
        settings: Settings,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        settings: Settings,
    },
    /// Declare exchanges, queues and bindings in the AMQP URL's vhost and exit
    /// (as AMQP_URL's user: the workers' own users may not declare them).
    DeclareTopology {
        #[command(flatten)]
        settings: Settings,
    },
    /// The postal service takes the queued PIN letters (second halves):
    /// each is written as <id>.pdf and <id>.json into DIR, then its sealed
    /// half is deleted (`--limit` letters at most).
    PinLetters {
        /// The folder the postal service collects.
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 500)]
        limit: i64,
        #[command(flatten)]
        settings: Settings,
    },
    /// Validate a JSON message and publish it with a publisher confirm.
    Publish {
        /// File with the message; `-` reads standard input.
        file: String,
        /// The channel's own broker credentials, e.g.
        /// amqp://channel-web:channel-web-dev@127.0.0.1:5672/sportello
        #[arg(long, env = "AMQP_URL", hide_env_values = true)]
        amqp_url: Option<String>,
        /// A cluster's nodes, comma separated (wins over AMQP_URL): the
        /// first that answers is used, the next if it is lost.
        #[arg(long, env = "AMQP_URLS", hide_env_values = true)]
        amqp_urls: Option<String>,
    },
    /// The dead letters, collected from the broker into the database once:
    /// list (total, pages, oldest first), show, replay (once) or discard.
    DeadLetters {
        #[command(subcommand)]
        action: Option<DeadLetterCommand>,
        #[arg(
            long,
            env = "AMQP_URL",
            default_value = sportello::config::DEVELOPMENT_AMQP_URL,
            hide_default_value = true,
            hide_env_values = true
        )]
        amqp_url: String,
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://sportello:sportello@127.0.0.1:5432/sportello",
            hide_default_value = true,
            hide_env_values = true
        )]
        database_url: String,
    },
    /// A contact-centre agent's terminal: take phone call-backs of one
    /// office's desk one at a time and record each outcome.
    Agent {
        /// The office (AOO), e.g. 1901.
        #[arg(long)]
        office: String,
        /// The desk's kind, e.g. conto_assicurativo.
        #[arg(long)]
        desk: String,
        /// The agent's id, as the contact centre knows it.
        #[arg(long, default_value = "CC-0001")]
        agent_id: String,
        /// Minutes to answer before the call goes back to the queue.
        #[arg(long, default_value_t = 15)]
        answer_within_minutes: u64,
        /// Stop after this many calls.
        #[arg(long)]
        calls: Option<usize>,
        /// The contact centre's broker user.
        #[arg(
            long,
            env = "AGENT_AMQP_URL",
            default_value = "amqp://channel-contact_center:channel-contact_center-dev@127.0.0.1:5672/sportello",
            hide_default_value = true,
            hide_env_values = true
        )]
        amqp_url: String,
    },
    /// Print the events Sportello emits as they flow (one line each:
    /// routing key, then the event). Leaves nothing behind.
    Events {
        /// Topic pattern of the events to show, e.g. `ticket.*`.
        #[arg(long, default_value = "#")]
        binding: String,
        /// Stop after this many events (fail if fewer arrive in time).
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout_seconds: Option<u64>,
        #[arg(
            long,
            env = "AMQP_URL",
            default_value = sportello::config::DEVELOPMENT_AMQP_URL,
            hide_default_value = true,
            hide_env_values = true
        )]
        amqp_url: String,
    },
    /// The protocol register (*protocollo*).
    Register {
        #[command(subcommand)]
        which: RegisterCommand,
    },
    /// Issue a signed token for local development and tests (in production
    /// the identity provider issues them). Prints the token.
    Token {
        #[arg(value_enum)]
        kind: sportello::auth::DevelopmentPrincipal,
        /// Tax code (citizen, intermediary), operator id (operator) or agent id (agent).
        id: String,
        /// The operator's office (AOO), e.g. 0040.
        #[arg(long)]
        office: Option<String>,
        /// The caller an agent acts for (tax code).
        #[arg(long = "for")]
        on_behalf_of: Option<String>,
        /// How the agent identified the caller: spid, cie, cns, pin, pin_simplified.
        #[arg(long)]
        identified_by: Option<String>,
        #[arg(long, default_value_t = 60)]
        valid_minutes: i64,
        #[arg(
            long,
            env = "JWT_SECRET",
            default_value = sportello::auth::DEVELOPMENT_SECRET,
            hide_default_value = true,
            hide_env_values = true
        )]
        jwt_secret: String,
        #[arg(long, env = "JWT_ISSUER", default_value = "sportello-dev-idp")]
        jwt_issuer: String,
    },
}

#[derive(Subcommand)]
enum RegisterCommand {
    /// Check the hash chain of every daily register (*registro giornaliero*);
    /// fails when any day was edited or does not chain to the day before.
    Verify {
        #[command(flatten)]
        settings: Settings,
    },
}

/// What `sportello dead-letters` does (the default: `list`).
#[derive(Subcommand)]
enum DeadLetterCommand {
    /// The open dead letters (neither replayed nor discarded), oldest first.
    List {
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = sportello::dead_letters::DEFAULT_PER_PAGE)]
        per_page: u32,
        /// Also the replayed and discarded ones.
        #[arg(long)]
        all: bool,
    },
    /// Every detail of one dead letter, with its body.
    Show { id: i64 },
    /// Publish it again where it was first sent (the intake), once.
    Replay { id: i64 },
    /// Mark it dealt with: it is no longer listed or replayable (kept).
    Discard { id: i64 },
}

async fn dead_letters(
    action: Option<DeadLetterCommand>,
    amqp_url: &str,
    database_url: &str,
) -> anyhow::Result<()> {
    use sportello::dead_letters as tools;
    let pool = sportello::store::connect(database_url, 2).await?;
    // Whatever is waiting in the broker's queue is kept first, once.
    tools::collect(amqp_url, &pool).await?;
    match action.unwrap_or(DeadLetterCommand::List {
        page: 1,
        per_page: tools::DEFAULT_PER_PAGE,
        all: false,
    }) {
        DeadLetterCommand::List {
            page,
            per_page,
            all,
        } => print!(
            "{}",
            tools::render_listing(&tools::list(&pool, page, per_page, all).await?)
        ),
        DeadLetterCommand::Show { id } => print!("{}", tools::show(&pool, id).await?),
        DeadLetterCommand::Replay { id } => {
            tools::replay(&pool, amqp_url, id).await?;
            println!("dead letter #{id} replayed");
        }
        DeadLetterCommand::Discard { id } => {
            tools::discard(&pool, id).await?;
            println!("dead letter #{id} discarded");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Before any thread starts: secrets given as <NAME>_FILE become <NAME>.
    if let Err(error) = sportello::secrets::load_into_environment() {
        eprintln!("sportello: {error}");
        return ExitCode::FAILURE;
    }
    let telemetry = telemetry::init();
    let cli = Cli::parse();
    let system = actix::System::new();
    let result: anyhow::Result<()> = system.block_on(async move {
        match cli.command {
            Command::Up { settings } => app::run(settings, &WorkerKind::ALL, true).await?,
            Command::Worker { kind, settings } => app::run(settings, &[kind], false).await?,
            Command::Migrate { settings } => {
                app::migrate(&settings).await?;
            }
            Command::DeclareTopology { settings } => app::declare_topology(&settings).await?,
            Command::PinLetters {
                dir,
                limit,
                settings,
            } => {
                let pool = sportello::store::connect(&settings.database_url, 2).await?;
                let keys = sportello::pin::crypto::PinKeys::new(&settings.pin_secret);
                let taken =
                    sportello::pin::postal::take_into_dir(&pool, &keys, limit, &dir).await?;
                println!("{taken} letters written to {}", dir.display());
            }
            Command::Publish {
                file,
                amqp_url,
                amqp_urls,
            } => {
                let addresses = match (amqp_urls.filter(|u| !u.trim().is_empty()), amqp_url) {
                    (Some(urls), _) => urls,
                    (None, Some(url)) => sportello::broker::nodes::single(&url),
                    (None, None) => anyhow::bail!("set AMQP_URL (or AMQP_URLS, a cluster's nodes)"),
                };
                let raw = read_input(&file)?;
                let published = publish::publish(&addresses, &raw).await?;
                println!(
                    "published {} with routing key {}",
                    published.message_id, published.routing_key
                );
            }
            Command::DeadLetters {
                action,
                amqp_url,
                database_url,
            } => dead_letters(action, &amqp_url, &database_url).await?,
            Command::Agent {
                office,
                desk,
                agent_id,
                answer_within_minutes,
                calls,
                amqp_url,
            } => {
                let session = sportello::agent::AgentSession {
                    amqp_url: &amqp_url,
                    office: &office,
                    desk: &desk,
                    agent_id: &agent_id,
                    answer_within: std::time::Duration::from_secs(answer_within_minutes * 60),
                    calls,
                };
                let mut input = tokio::io::BufReader::new(tokio::io::stdin());
                let mut output = tokio::io::stdout();
                let handled = sportello::agent::work(session, &mut input, &mut output).await?;
                eprintln!("{handled} call(s) handled");
            }
            Command::Events {
                binding,
                count,
                timeout_seconds,
                amqp_url,
            } => {
                sportello::broker::watch::watch(sportello::broker::watch::Watch {
                    amqp_url: &amqp_url,
                    binding: &binding,
                    count,
                    within: timeout_seconds.map(std::time::Duration::from_secs),
                })
                .await?
            }
            Command::Register {
                which: RegisterCommand::Verify { settings },
            } => verify_register(&settings).await?,
            Command::Token {
                kind,
                id,
                office,
                on_behalf_of,
                identified_by,
                valid_minutes,
                jwt_secret,
                jwt_issuer,
            } => {
                let options = sportello::auth::DevelopmentOptions {
                    office: office.as_deref(),
                    on_behalf_of: on_behalf_of.as_deref(),
                    identified_by: identified_by.as_deref(),
                };
                let principal = kind.principal(&id, &options).map_err(anyhow::Error::msg)?;
                let keys = sportello::auth::TokenKeys::new(&jwt_secret, &jwt_issuer);
                println!(
                    "{}",
                    keys.issue(&principal, chrono::Duration::minutes(valid_minutes))?
                );
            }
        }
        Ok(())
    });
    // The last spans (the stop's own) leave before the process does.
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sportello: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// One line per day checked, one per break, then a summary; an error (so a
/// failing exit status) when the chain is broken.
async fn verify_register(settings: &Settings) -> anyhow::Result<()> {
    use sportello::domain::protocol::entry_count;
    let pool = sportello::store::connect(&settings.database_url, 1).await?;
    let mut conn = pool.acquire().await?;
    let checked = sportello::store::protocol::verify(&mut conn).await?;
    drop(conn);
    pool.close().await;
    for register in &checked.registers {
        let breaks = checked
            .breaks
            .iter()
            .filter(|b| b.day() == register.day)
            .count();
        let entries =
            entry_count(&register.content).map_or_else(|| "?".to_owned(), |n| n.to_string());
        println!(
            "{}  entries {entries:>6}  chain {}  {}",
            register.day,
            &register
                .chain_sha256
                .get(..16)
                .unwrap_or(&register.chain_sha256),
            if breaks == 0 { "ok" } else { "BROKEN" }
        );
    }
    for chain_break in &checked.breaks {
        println!("break: {chain_break}");
    }
    let span = match (checked.registers.first(), checked.registers.last()) {
        (Some(first), Some(last)) => format!(" ({} .. {})", first.day, last.day),
        _ => String::new(),
    };
    println!(
        "checked {} daily registers{span}: {} break(s)",
        checked.registers.len(),
        checked.breaks.len()
    );
    if let Some(first) = checked.breaks.first() {
        anyhow::bail!(
            "the daily register chain is broken: {} break(s), first on {}",
            checked.breaks.len(),
            first.day()
        );
    }
    Ok(())
}

fn read_input(file: &str) -> anyhow::Result<Vec<u8>> {
    let mut raw = Vec::new();
    if file == "-" {
        std::io::stdin().read_to_end(&mut raw)?;
    } else {
        raw = std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read {file}: {e}"))?;
    }
    Ok(raw)
}
