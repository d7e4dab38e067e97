//! Configuration: every setting is a flag and an environment variable with a
//! local default, so `sportello up` works on a developer machine unchanged.

use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// RabbitMQ URL; its vhost is where the topology is declared.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://sportello-app:sportello-app-dev@127.0.0.1:5672/sportello"
    )]
    pub amqp_url: String,

    /// PostgreSQL URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://sportello:sportello@127.0.0.1:5432/sportello"
    )]
    pub database_url: String,

    /// Connections in this process's database pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 10)]
    pub database_pool_size: u32,

    /// Intake consumers (channels on one connection) in this process; they
    /// compete with each other and with other processes' consumers.
    #[arg(long, env = "INTAKE_CONSUMERS", default_value_t = 1)]
    pub intake_consumers: usize,

    /// Most messages applied in one database transaction.
    #[arg(long, env = "INTAKE_BATCH_SIZE", default_value_t = 500)]
    pub intake_batch_size: usize,

    /// Unacknowledged messages the broker may push to one consumer.
    #[arg(long, env = "INTAKE_PREFETCH", default_value_t = 1000)]
    pub intake_prefetch: u16,

    /// Deliveries of a message whose handler keeps failing before it is
    /// dead-lettered with the failure as reason (below the queue's broker-side
    /// x-delivery-limit, which remains the backstop for crashing processes).
    #[arg(long, env = "HANDLER_MAX_ATTEMPTS", default_value_t = 5)]
    pub handler_max_attempts: u64,

    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDRESS", default_value = "127.0.0.1:8080")]
    pub http_address: String,

    /// Shared key the identity provider signs tokens (JWT, HS256) with.
    /// The default is for development only.
    #[arg(
        long,
        env = "JWT_SECRET",
        default_value = "sportello-dev-secret-change-me",
        hide_env_values = true
    )]
    pub jwt_secret: String,

    /// Issuer (`iss`) the tokens must carry.
    #[arg(long, env = "JWT_ISSUER", default_value = "sportello-dev-idp")]
    pub jwt_issuer: String,

    /// Directory of the content-addressed document store.
    #[arg(long, env = "DOCUMENT_STORE_DIR", default_value = "./data/documents")]
    pub document_store_dir: String,

    /// Largest document accepted, in bytes.
    #[arg(long, env = "DOCUMENT_MAX_BYTES", default_value_t = 3 * 1024 * 1024)]
    pub document_max_bytes: usize,

    /// How long a graceful shutdown waits for in-flight work.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
}

impl Settings {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

#[derive(clap::Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    settings: Settings,
}

impl Settings {
    /// Every setting at its default (or its environment variable): a base
    /// for tests and benchmarks, which override what they own.
    pub fn local_defaults() -> Settings {
        use clap::Parser;
        DefaultsOnly::parse_from(["sportello"]).settings
    }
}
