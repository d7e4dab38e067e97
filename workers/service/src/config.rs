//! Configuration: every setting is a flag and an environment variable with a
//! local default, so `sportello up` works on a developer machine unchanged.
//! Secret settings also read `<NAME>_FILE` (see `secrets`), never show their
//! values in `--help`, and `SPORTELLO_ENV=production` refuses the
//! development defaults (see `production`).

use std::time::Duration;

use crate::broker::users::BrokerUser;

// The development values of the settings below live here, with the
// settings: production mode (`production`) refuses each of them.

/// The shared key of development tokens: public in this repository, so
/// production never accepts it.
pub const DEVELOPMENT_SECRET: &str = "sportello-dev-secret-change-me";

/// The development `PIN_SECRET`: public in this repository, refused in
/// production.
pub const DEVELOPMENT_PIN_SECRET: &str = "sportello-dev-pin-secret-change-me";

/// coturn's development `static-auth-secret` (docker-compose.yml).
pub const DEVELOPMENT_TURN_SECRET: &str = "sportello-development-turn-secret";

/// The app's broker user on the local development broker (the password is
/// the repository's; production mode refuses it).
pub const DEVELOPMENT_AMQP_URL: &str =
    "amqp://sportello-app:sportello-app-dev@127.0.0.1:5672/sportello";

/// Clock difference tolerated between the identity provider and us when
/// `exp`, `nbf` and `iat` are checked (`JWT_LEEWAY_SECONDS`).
pub const DEFAULT_LEEWAY_SECONDS: u64 = 5;
/// The most `JWT_LEEWAY_SECONDS` may be: beyond it an expired token lives on.
pub const MAX_LEEWAY_SECONDS: u64 = 30;

fn parse_trusted_proxies(
    raw: &str,
) -> Result<crate::domain::client_address::TrustedProxies, String> {
    crate::domain::client_address::TrustedProxies::parse(raw).map_err(|e| e.to_string())
}

/// An `https://` URL with a host (a public base URL, a JWKS address).
pub fn is_https(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.scheme() == "https" && u.host().is_some())
}

#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// `development` (the defaults below work on a developer machine) or
    /// `production` (refuses to start with any development secret).
    #[arg(long = "env", env = "SPORTELLO_ENV", value_enum, default_value_t = Environment::Development)]
    pub environment: Environment,

    /// RabbitMQ URL; its vhost is where the topology is declared. Secret
    /// (also AMQP_URL_FILE). Default: the local development broker.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = DEVELOPMENT_AMQP_URL,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub amqp_url: String,

    /// The nodes of a RabbitMQ cluster, comma separated AMQP URLs (same
    /// user and vhost on each); when set it wins over AMQP_URL. Every
    /// connection goes to the first node that answers and, once lost, to the
    /// next (docs/operations.md, "Scaling out"). Secret (also AMQP_URLS_FILE).
    #[arg(long, env = "AMQP_URLS", hide_env_values = true)]
    pub amqp_urls: Option<String>,

    /// PostgreSQL URL. Secret (also DATABASE_URL_FILE). Default: the local
    /// development database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://sportello:sportello@127.0.0.1:5432/sportello",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Connections in this process's database pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 10)]
    pub database_pool_size: u32,

    /// Intake consumers (channels on one connection) in this process; they
    /// compete with each other and with other processes' consumers.
    #[arg(long, env = "INTAKE_CONSUMERS", default_value_t = 2)]
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

    /// How long an applied intake message is remembered (its inbox row): a
    /// redelivery or a resend with the same key within this many days
    /// changes nothing; after it, the row is purged (cron job every five minutes).
    #[arg(long, env = "INBOX_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub inbox_retention_days: u32,

    /// Address this process serves its Prometheus metrics on (`GET
    /// /metrics`); empty: none. Each process of a host needs its own.
    #[arg(long, env = "METRICS_ADDRESS", default_value = "127.0.0.1:9464")]
    pub metrics_address: String,

    /// RabbitMQ URL of the intake's own broker user (`sportello-intake`:
    /// consume the intake queue, publish dead letters). Secret (also
    /// INTAKE_AMQP_URL_FILE); unset: derived from AMQP_URL in development,
    /// refused in production (`broker::users`).
    #[arg(long, env = "INTAKE_AMQP_URL", hide_env_values = true)]
    pub intake_amqp_url: Option<String>,

    /// RabbitMQ URL of the outbox relay's own user (`sportello-outbox-relay`:
    /// publish on the events, intake and call-backs exchanges). Secret (also
    /// OUTBOX_RELAY_AMQP_URL_FILE); unset: as INTAKE_AMQP_URL.
    #[arg(long, env = "OUTBOX_RELAY_AMQP_URL", hide_env_values = true)]
    pub outbox_relay_amqp_url: Option<String>,

    /// RabbitMQ URL of the registration worker's own user
    /// (`sportello-registration`). Secret (also REGISTRATION_AMQP_URL_FILE);
    /// unset: as INTAKE_AMQP_URL.
    #[arg(long, env = "REGISTRATION_AMQP_URL", hide_env_values = true)]
    pub registration_amqp_url: Option<String>,

    /// RabbitMQ URL of the notify worker's own user (`sportello-notify`).
    /// Secret (also NOTIFY_AMQP_URL_FILE); unset: as INTAKE_AMQP_URL.
    #[arg(long, env = "NOTIFY_AMQP_URL", hide_env_values = true)]
    pub notify_amqp_url: Option<String>,

    /// RabbitMQ URL of the appointments worker's own user
    /// (`sportello-appointments`: its two queues, answers on `reply_to`, the
    /// call-back queues it declares). Secret (also APPOINTMENTS_AMQP_URL_FILE);
    /// unset: as INTAKE_AMQP_URL.
    #[arg(long, env = "APPOINTMENTS_AMQP_URL", hide_env_values = true)]
    pub appointments_amqp_url: Option<String>,

    /// RabbitMQ URL of the PIN-checks worker's own user
    /// (`sportello-pin-checks`: its queue, answers on `reply_to`). Secret
    /// (also PIN_CHECKS_AMQP_URL_FILE); unset: as INTAKE_AMQP_URL.
    #[arg(long, env = "PIN_CHECKS_AMQP_URL", hide_env_values = true)]
    pub pin_checks_amqp_url: Option<String>,

    /// RabbitMQ URL of the API's own user (`sportello-api`: readiness, and
    /// the call-backs the staff page takes). Secret (also API_AMQP_URL_FILE);
    /// unset: as INTAKE_AMQP_URL.
    #[arg(long, env = "API_AMQP_URL", hide_env_values = true)]
    pub api_amqp_url: Option<String>,

    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDRESS", default_value = "127.0.0.1:8080")]
    pub http_address: String,

    /// Longest time a request body may take to arrive, in seconds (each
    /// piece within 15 s); a stalled body is answered 408.
    #[arg(long, env = "HTTP_BODY_TIMEOUT_SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_body_timeout_seconds: u64,

    /// Shared key of development tokens (JWT, HS256), accepted only in
    /// development. Secret (also JWT_SECRET_FILE). Default: the development key.
    #[arg(
        long,
        env = "JWT_SECRET",
        default_value = DEVELOPMENT_SECRET,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub jwt_secret: String,

    /// The identity provider's published keys (JWKS): RS256 and ES256 tokens
    /// are verified with the key their `kid` names. Required in production.
    #[arg(long, env = "JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,

    /// The https:// address operators reach the staff pages at (behind the
    /// TLS proxy): with it the session cookie is always `Secure`. Required
    /// in production.
    #[arg(long, env = "PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,

    /// Clock difference tolerated when a token's `exp`, `nbf` and `iat` are
    /// checked, in seconds (at most 30).
    #[arg(long, env = "JWT_LEEWAY_SECONDS", default_value_t = DEFAULT_LEEWAY_SECONDS,
          value_parser = clap::value_parser!(u64).range(0..=MAX_LEEWAY_SECONDS))]
    pub jwt_leeway_seconds: u64,

    /// Issuer (`iss`) the tokens must carry.
    #[arg(long, env = "JWT_ISSUER", default_value = "sportello-dev-idp")]
    pub jwt_issuer: String,

    /// How long an appointment hold (*Prenota*) lives unconfirmed before it
    /// expires and its slot is free again.
    #[arg(long, env = "APPOINTMENT_HOLD_MINUTES", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub appointment_hold_minutes: u32,

    /// Live appointments (held or confirmed, not yet begun) one citizen may
    /// have at one desk of one office on one day, in any mode.
    #[arg(long, env = "APPOINTMENT_LIMIT_PER_DESK_DAY", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub appointment_limit_per_desk_day: u32,

    /// Live appointments one citizen may have in all.
    #[arg(long, env = "APPOINTMENT_LIMIT_LIVE", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub appointment_limit_live: u32,

    /// Most booking commands one appointments worker applies in one
    /// transaction (each in its own savepoint).
    #[arg(long, env = "APPOINTMENT_BATCH_SIZE", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub appointment_batch_size: u16,

    /// How long a call-back taken on the staff page "Richiamate" waits for
    /// the operator's outcome before it goes back to its queue.
    #[arg(long, env = "STAFF_CALL_ANSWER_SECONDS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub staff_call_answer_seconds: u64,

    /// Base address of the video gateway: a video appointment's rooms are
    /// `<VIDEO_BASE_URL>/stanza/<signed token>`, one link per role.
    #[arg(
        long,
        env = "VIDEO_BASE_URL",
        default_value = "https://video.sportello.example"
    )]
    pub video_base_url: String,

    /// Key signing the video rooms' join links and hashing their SMS codes.
    /// Secret (also VIDEO_LINK_SECRET_FILE); production refuses the default.
    #[arg(
        long,
        env = "VIDEO_LINK_SECRET",
        default_value = crate::domain::video::link::DEVELOPMENT_LINK_SECRET,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub video_link_secret: String,

    /// Key of the PIN (seed 003): seals PIN halves until they are sent,
    /// signs Sportello's PIN tokens (keys derived per use). Secret (also
    /// PIN_SECRET_FILE); production refuses the default.
    #[arg(
        long,
        env = "PIN_SECRET",
        default_value = DEVELOPMENT_PIN_SECRET,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub pin_secret: String,

    /// Wrong PIN attempts in a row before the PIN locks.
    #[arg(long, env = "PIN_MAX_FAILURES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub pin_max_failures: u32,

    /// How long the first lock lasts (each lock in a row doubles it, up to a day).
    #[arg(long, env = "PIN_LOCK_MINUTES", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub pin_lock_minutes: u32,

    /// Sign-ins, first uses, recoveries and agents' checks let through per
    /// client address each minute (a token bucket, refilled at this rate);
    /// over it, 429 with `Retry-After`. On top of the per-tax-code lock.
    #[arg(long, env = "PIN_ADDRESS_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub pin_address_per_minute: u32,

    /// How many PIN attempts one client address may make at once before
    /// the rate above applies (the bucket's size).
    #[arg(long, env = "PIN_ADDRESS_BURST", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub pin_address_burst: u32,

    /// Failed PIN attempts in a minute, over every address, at which
    /// `sportello_pin_failure_ceiling_exceeded` turns 1 (the alert).
    #[arg(long, env = "PIN_FAILURES_ALERT_PER_MINUTE", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub pin_failures_alert_per_minute: u32,

    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` are believed:
    /// addresses or CIDR networks, comma separated (like
    /// `127.0.0.1,10.0.0.0/8`). Empty: none, the connection's peer is the
    /// client. The rightmost address that is not a trusted proxy is the
    /// client, for the access log and the PIN's limits per address.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "",
          value_parser = parse_trusted_proxies)]
    pub trusted_proxies: crate::domain::client_address::TrustedProxies,

    /// Where the video gateway (`sportello worker gateway`) listens.
    #[arg(long, env = "GATEWAY_ADDRESS", default_value = "127.0.0.1:8090")]
    pub gateway_address: String,

    /// RabbitMQ URL of the gateway's own broker user (`sportello-gateway` in
    /// broker-config/definitions.json: its private relay queues and the
    /// `sportello.gateway` exchange, nothing else), in the same vhost as
    /// AMQP_URL; a cluster's nodes comma separated. Secret (also
    /// GATEWAY_AMQP_URL_FILE). Unset: derived from AMQP_URL in development
    /// (`broker::users`), refused in production, like every kind's URL below.
    #[arg(long, env = "GATEWAY_AMQP_URL", hide_env_values = true)]
    pub gateway_amqp_url: Option<String>,

    /// STUN servers handed to the browsers, comma separated, e.g.
    /// `stun:turn.sportello.example:3478` (empty: host candidates only).
    #[arg(long, env = "STUN_URLS", default_value = "")]
    pub stun_urls: String,

    /// TURN servers (coturn with `use-auth-secret`), comma separated, e.g.
    /// `turn:turn.sportello.example:3478?transport=udp,turns:turn.sportello.example:5349`.
    #[arg(long, env = "TURN_URLS", default_value = "")]
    pub turn_urls: String,

    /// coturn's `static-auth-secret`: short-lived TURN credentials are
    /// derived from it. Secret (also TURN_SECRET_FILE).
    #[arg(
        long,
        env = "TURN_SECRET",
        default_value = DEVELOPMENT_TURN_SECRET,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub turn_secret: String,

    /// Largest WebSocket message the gateway accepts; a larger one closes
    /// the connection with 1009 (message too big).
    #[arg(long, env = "GATEWAY_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub gateway_max_frame_bytes: usize,

    /// Messages one room WebSocket may send per second, sustained; a
    /// connection over its limit is closed with 1008 (`rate_limited`),
    /// the room and its other participant go on.
    #[arg(long, env = "GATEWAY_MESSAGES_PER_SECOND", default_value_t = crate::domain::video::rate::MESSAGES_PER_SECOND)]
    pub gateway_messages_per_second: u32,

    /// Messages one room WebSocket may send at once (the ICE candidates'
    /// burst when a call starts).
    #[arg(long, env = "GATEWAY_MESSAGE_BURST", default_value_t = crate::domain::video::rate::MESSAGE_BURST)]
    pub gateway_message_burst: u32,

    /// Video rooms one gateway process is sized for (the benchmark's 1,000
    /// rooms; docs/benchmarks.md). Not enforced: exported as
    /// `sportello_gateway_rooms_limit`, so an alert fires as the rooms near
    /// it, in time to start another gateway process.
    #[arg(long, env = "GATEWAY_MAX_ROOMS", default_value_t = 1000)]
    pub gateway_max_rooms: u32,

    /// Directory of the content-addressed document store.
    #[arg(long, env = "DOCUMENT_STORE_DIR", default_value = "./data/documents")]
    pub document_store_dir: String,

    /// Largest document accepted, in bytes.
    #[arg(long, env = "DOCUMENT_MAX_BYTES", default_value_t = 3 * 1024 * 1024)]
    pub document_max_bytes: usize,

    /// SMTP server for notification emails, as lettre reads it:
    /// `smtp://host:port` (plain, local sink), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465`.
    /// Secret (also SMTP_URL_FILE).
    #[arg(
        long,
        env = "SMTP_URL",
        default_value = "smtp://127.0.0.1:2525",
        hide_env_values = true
    )]
    pub smtp_url: String,

    /// Production accepts a plain-text SMTP_URL only with this set (a relay
    /// on the same host or a trusted network).
    #[arg(long, env = "SMTP_ALLOW_PLAINTEXT")]
    pub smtp_allow_plaintext: bool,

    /// SMTP connections kept open (and emails sent at once) per email sender.
    #[arg(long, env = "SMTP_POOL_SIZE", default_value_t = 32)]
    pub smtp_pool_size: u32,

    /// The institute's sender of notification emails.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "INPS <noreply@notifiche.inps.example>"
    )]
    pub mail_from: String,

    /// Emails per second one email sender may hand to the SMTP server.
    #[arg(long, env = "EMAIL_RATE_PER_SECOND", default_value_t = 200)]
    pub email_rate_per_second: u32,

    /// SMS provider endpoint; without it SMS deliveries wait, queued.
    /// Secret (also SMS_PROVIDER_URL_FILE).
    #[arg(long, env = "SMS_PROVIDER_URL", hide_env_values = true)]
    pub sms_provider_url: Option<String>,

    #[arg(long, env = "SMS_PROVIDER_USER", default_value = "sportello")]
    pub sms_provider_user: String,

    /// Secret (also SMS_PROVIDER_PASSWORD_FILE).
    #[arg(
        long,
        env = "SMS_PROVIDER_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub sms_provider_password: String,

    /// Sender shown on the phone.
    #[arg(long, env = "SMS_SENDER", default_value = "INPS")]
    pub sms_sender: String,

    /// SMS per second one SMS sender may hand to the provider.
    #[arg(long, env = "SMS_RATE_PER_SECOND", default_value_t = 20)]
    pub sms_rate_per_second: u32,

    /// Longest SMS sent, in parts (longer texts fail, they are not billed).
    #[arg(long, env = "SMS_MAX_PARTS", default_value_t = 3)]
    pub sms_max_parts: usize,

    /// First retry delay of a delivery that failed transiently; it doubles
    /// per attempt up to NOTIFY_RETRY_CAP_SECONDS.
    #[arg(long, env = "NOTIFY_RETRY_BASE_MS", default_value_t = 30_000)]
    pub notify_retry_base_ms: u64,

    #[arg(long, env = "NOTIFY_RETRY_CAP_SECONDS", default_value_t = 3600)]
    pub notify_retry_cap_seconds: u64,

    /// Attempts of a delivery before it is given up as failed.
    #[arg(long, env = "NOTIFY_MAX_ATTEMPTS", default_value_t = 8)]
    pub notify_max_attempts: u32,

    /// How long a delivery may stay `sending` before its attempt is in
    /// doubt (its sender died mid-send): then the attempt is logged as lost
    /// and the delivery resent with the same Message-ID or SMS reference.
    /// Longer than the slowest send (about a minute).
    #[arg(long, env = "NOTIFY_IN_DOUBT_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub notify_in_doubt_seconds: u64,

    /// Events one notify worker plans at once (each in its own transaction).
    #[arg(long, env = "NOTIFY_CONCURRENCY", default_value_t = 16)]
    pub notify_concurrency: usize,

    /// How long a graceful shutdown waits for in-flight work.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
}

/// Which defaults the process accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

impl Settings {
    /// The URL setting of a kind's broker user, when it is set.
    pub fn own_broker_url(&self, user: BrokerUser) -> Option<&str> {
        let url = match user {
            BrokerUser::Intake => &self.intake_amqp_url,
            BrokerUser::OutboxRelay => &self.outbox_relay_amqp_url,
            BrokerUser::Registration => &self.registration_amqp_url,
            BrokerUser::Notify => &self.notify_amqp_url,
            BrokerUser::Appointments => &self.appointments_amqp_url,
            BrokerUser::Api => &self.api_amqp_url,
            BrokerUser::Gateway => &self.gateway_amqp_url,
            BrokerUser::PinChecks => &self.pin_checks_amqp_url,
        };
        url.as_deref().map(str::trim).filter(|url| !url.is_empty())
    }

    /// Where a kind connects, as `broker::connect` takes it: its own URL
    /// setting (a list names a cluster's nodes), else (development; production
    /// refuses it) AMQP_URLS or AMQP_URL with the kind's user
    /// (`broker::users::derived_addresses`).
    pub fn broker_addresses_for(&self, user: BrokerUser) -> String {
        match self.own_broker_url(user) {
            Some(urls) => urls.to_owned(),
            None => crate::broker::users::derived_addresses(&self.broker_addresses(), user),
        }
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// Where the broker is, as `broker::connect` takes it: AMQP_URLS when
    /// set (a cluster's nodes), else the one AMQP_URL.
    pub fn broker_addresses(&self) -> String {
        match self.amqp_urls.as_deref().map(str::trim) {
            Some(urls) if !urls.is_empty() => urls.to_owned(),
            _ => crate::broker::nodes::single(&self.amqp_url),
        }
    }

    /// Every broker URL the settings name (AMQP_URLS' or AMQP_URL), with the
    /// setting it came from: what production checks.
    pub fn broker_urls(&self) -> Vec<(&'static str, String)> {
        match self.amqp_urls.as_deref().map(str::trim) {
            Some(urls) if !urls.is_empty() => crate::broker::nodes::split(urls)
                .into_iter()
                .map(|url| ("AMQP_URLS", url.to_owned()))
                .collect(),
            _ => vec![("AMQP_URL", self.amqp_url.clone())],
        }
    }

    /// The lease of a claimed delivery (`NOTIFY_IN_DOUBT_SECONDS`).
    pub fn notify_in_doubt(&self) -> Duration {
        Duration::from_secs(self.notify_in_doubt_seconds)
    }

    /// Whether the staff session cookie is `Secure` whatever the request
    /// looks like: in production, or behind an https PUBLIC_BASE_URL.
    pub fn always_secure_cookie(&self) -> bool {
        self.is_production() || self.public_base_url.as_deref().is_some_and(is_https)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    pub fn retry_policy(&self) -> crate::domain::notification::RetryPolicy {
        crate::domain::notification::RetryPolicy {
            base: Duration::from_millis(self.notify_retry_base_ms),
            cap: Duration::from_secs(self.notify_retry_cap_seconds),
            max_attempts: self.notify_max_attempts,
        }
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
