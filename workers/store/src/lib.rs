//! Sportello's PostgreSQL: the connection pool, the migrations
//! (`migrations/` at the top of the repository, embedded by `build.rs`
//! rather than `sqlx::migrate!`, and rows mapped by hand rather than with
//! `#[derive(FromRow)]`: sqlx's proc-macro crate would build sqlx a second
//! time, for the host), and one module
//! per table family. Functions take a connection or a transaction from the
//! caller: the service decides what commits together (a state change, its
//! history, its outbox row), this crate only says it in SQL.
//!
//! # Layout
//!
//! - the spine: [`inbox`] (what was applied, by message id and idempotency
//!   key), [`outbox`] (events written with the change that caused them),
//!   [`timers`] (durable timers, claimed with `SKIP LOCKED`),
//!   [`dead_letters`] (collected from the broker);
//! - tickets and cases: [`tickets`] (routing reference data, tickets,
//!   history, search), [`protocol`] (counters, registrations, annulments,
//!   daily registers), [`documents`], [`delegations`], [`agent_reads`];
//! - [`notifications`] (contacts, notifications, deliveries, attempts);
//! - [`appointments`] (calendars, closures, slots, seats) and
//!   [`booking_commands`] (kept outcomes, call-back calls);
//! - [`video`] (rooms, codes, passes, seats, chat), [`staff_sessions`];
//! - [`applications`], [`pins`], [`pin_verifications`] (agents' checks of
//!   the caller's half), [`pin_halves`] (where each half's delivery stands)
//!   and [`pin_reissues`] (new PINs issued because a half never arrived);
//! - [`trace_context`]: a span's W3C trace context as headers and outbox
//!   columns, and back;
//! - [`outage`]: why the database cannot be reached, said once per change;
//!   [`vacuum`]: the autovacuum setting and the churned tables' dead tuples;
//! - `keys` (browser keys stored hashed) and `ticket_state` (the domain's
//!   ticket state as the `ticket_state` enum), private.

pub mod agent_reads;
pub mod applications;
pub mod appointments;
pub mod booking_commands;
pub mod dead_letters;
pub mod delegations;
pub mod documents;
pub mod inbox;
mod keys;
pub mod notifications;
pub mod outage;
pub mod outbox;
pub mod pin_halves;
pub mod pin_reissues;
pub mod pin_verifications;
pub mod pins;
pub mod protocol;
pub mod staff_sessions;
pub mod submissions;
mod ticket_state;
pub mod tickets;
pub mod timers;
pub mod trace_context;
pub mod vacuum;
pub mod video;

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// The migrations, embedded by `build.rs`: what `sqlx::migrate!` would
/// build (same versions, descriptions and checksums, so a database
/// migrated by either is up to date for the other).
pub static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| Migrator {
    migrations: embedded::MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                sql.starts_with("-- no-transaction"),
            )
        })
        .collect(),
    ignore_missing: false,
    locking: true,
    no_tx: false,
});

pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = database_url.parse()?;
    pool_options(&options, max_connections)
        .connect_with(session(options))
        .await
}

/// A pool that connects on first use, so a worker can start while the
/// database is still down and keep retrying.
pub fn connect_lazy(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = database_url.parse()?;
    Ok(pool_options(&options, max_connections).connect_lazy_with(session(options)))
}

/// Settings of every session of ours.
///
/// Statements are prepared once per connection and PostgreSQL may then keep
/// one generic plan for them; a plan chosen while a table was empty (a
/// fresh deployment, the first minutes of a click day) stays a sequential
/// scan until statistics change, and with autovacuum late or off that is
/// never: lookups by key over a growing table then cost a scan each. Our
/// statements are batched, so planning each execution costs little and
/// follows the table as it grows.
fn session(options: PgConnectOptions) -> PgConnectOptions {
    options
        .application_name("sportello")
        .options([("plan_cache_mode", "force_custom_plan")])
}

/// Every pool of the process: a new connection tells `outage` the server
/// is back, if it was taken for unreachable.
fn pool_options(options: &PgConnectOptions, max_connections: u32) -> PgPoolOptions {
    let server = outage::server_name(options);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(move |_, _| {
            outage::connected(&server);
            Box::pin(async { Ok(()) })
        })
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Whether retrying the same work later can succeed: the database or the
/// network failed, not the data. Anything else is a fault of the message.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 40: rollback (serialization, deadlock);
            // 53: insufficient resources; 57: operator intervention (shutdown).
            ["08", "40", "53", "57"]
                .iter()
                .any(|class| code.starts_with(class))
        }),
        _ => false,
    }
}

/// Deletes up to `limit` rows of `table` whose `at` column is before
/// `before` (any of them: no sort over a large backlog), by the primary
/// key `key`; what the retention job does to each table it keeps short.
/// The names are this crate's constants, never input.
pub(crate) async fn purge_before(
    conn: &mut sqlx::PgConnection,
    table: &'static str,
    key: &'static str,
    at: &'static str,
    before: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(&format!(
        "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {at} < $1 LIMIT $2)"
    ))
    .bind(before)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(deleted.rows_affected())
}
