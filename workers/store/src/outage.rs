//! Why PostgreSQL cannot be reached. sqlx's pool retries a refused or
//! not-yet-ready connection until its acquire timeout and then reports only
//! "pool timed out": the cause is lost, and an outage logs thousands of lines
//! that never say why. A worker that meets a connection failure asks
//! [`explain`]: one direct connection attempt (bounded by `PROBE_TIMEOUT`,
//! at most one per server every `PROBE_EVERY`, shared by every caller of the
//! process) tells the cause, and each change of state (lost with its cause,
//! a new cause, back again) is logged once, not per message. A pool that
//! connects again reports the recovery itself (`connected`, from the pool's
//! `after_connect`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};

/// Longest a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Probes of one server are at least this far apart; callers in between get
/// the last verdict.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// What the process last found out about one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reachability {
    Reachable,
    /// With the cause, in words an operator acts on.
    Unreachable(String),
}

impl fmt::Display for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reachability::Reachable => f.write_str("reachable"),
            Reachability::Unreachable(cause) => write!(f, "unreachable: {cause}"),
        }
    }
}

/// A change worth one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Lost(String),
    CauseChanged(String),
    Restored,
}

/// The change from `before` to `now`, if any: the same state, or the same
/// cause, says nothing new.
pub fn change(before: &Reachability, now: &Reachability) -> Option<Change> {
    match (before, now) {
        (Reachability::Reachable, Reachability::Reachable) => None,
        (Reachability::Reachable, Reachability::Unreachable(cause)) => {
            Some(Change::Lost(cause.clone()))
        }
        (Reachability::Unreachable(_), Reachability::Reachable) => Some(Change::Restored),
        (Reachability::Unreachable(old), Reachability::Unreachable(new)) if old == new => None,
        (Reachability::Unreachable(_), Reachability::Unreachable(new)) => {
            Some(Change::CauseChanged(new.clone()))
        }
    }
}

/// Whether `error` means no connection could be had or kept (rather than a
/// statement failing on a working connection).
pub fn is_connection_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        // 08: connection exception; 57P01-03: shutting down, starting up;
        // 53300: too many connections.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }),
        _ => false,
    }
}

/// Why a connection attempt failed, for an operator.
pub fn cause_of(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "connection refused: nothing listens there (is PostgreSQL running?)".into()
            }
            std::io::ErrorKind::TimedOut => "the connection attempt timed out".into(),
            _ => format!("network: {io}"),
        },
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("the server said: {} (SQLSTATE {code})", db.message()),
            None => format!("the server said: {}", db.message()),
        },
        other => other.to_string(),
    }
}

struct Server {
    state: Reachability,
    since: Instant,
    probed_at: Option<Instant>,
}

static SERVERS: LazyLock<Mutex<HashMap<String, Server>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// How logs name a server: host, port and database, never credentials.
pub fn server_name(options: &PgConnectOptions) -> String {
    let place = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    format!("{place}/{}", options.get_database().unwrap_or("-"))
}

/// Records what was found about `server` and logs a change once.
fn record(server: &str, now: Reachability) {
    let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let entry = servers.entry(server.to_owned()).or_insert_with(|| Server {
        state: Reachability::Reachable,
        since: Instant::now(),
        probed_at: None,
    });
    let Some(change) = change(&entry.state, &now) else {
        return;
    };
    let after = entry.since.elapsed();
    entry.state = now;
    entry.since = Instant::now();
    match change {
        Change::Lost(cause) => tracing::warn!(%server, %cause, "PostgreSQL unreachable"),
        Change::CauseChanged(cause) => {
            tracing::warn!(%server, %cause, unreachable_for = ?after, "PostgreSQL still unreachable, now for another cause")
        }
        Change::Restored => {
            tracing::info!(%server, unreachable_for = ?after, "PostgreSQL reachable again")
        }
    }
}

/// A pool made a new connection to `server`: if it was taken for
/// unreachable, it is back.
pub fn connected(server: &str) {
    let unreachable = SERVERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(server)
        .is_some_and(|s| s.state != Reachability::Reachable);
    if unreachable {
        record(server, Reachability::Reachable);
    }
}

/// How many servers this process takes for unreachable now (for the
/// metrics; 0 until a failure is met).
pub fn unreachable_servers() -> usize {
    SERVERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|s| s.state != Reachability::Reachable)
        .count()
}

/// What is known of the pool's server now: probed unless a probe of it is
/// recent (then its verdict).
pub async fn diagnose(pool: &PgPool) -> Reachability {
    let options = pool.connect_options();
    let server = server_name(&options);
    {
        let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
        let entry = servers.entry(server.clone()).or_insert_with(|| Server {
            state: Reachability::Reachable,
            since: Instant::now(),
            probed_at: None,
        });
        if entry.probed_at.is_some_and(|at| at.elapsed() < PROBE_EVERY) {
            return entry.state.clone();
        }
        entry.probed_at = Some(Instant::now());
    }
    let found = probe(&options).await;
    record(&server, found.clone());
    found
}

async fn probe(options: &PgConnectOptions) -> Reachability {
    match tokio::time::timeout(PROBE_TIMEOUT, options.connect()).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Reachability::Reachable
        }
        Ok(Err(error)) => Reachability::Unreachable(cause_of(&error)),
        Err(_) => Reachability::Unreachable(format!(
            "no answer within {PROBE_TIMEOUT:?} (the network or the server is stalled)"
        )),
    }
}

/// `error`'s text, and for a connection failure why the pool's server
/// cannot be reached (or that it answers, when only the pool was short).
pub async fn explain(pool: &PgPool, error: &sqlx::Error) -> String {
    if !is_connection_failure(error) {
        return error.to_string();
    }
    let server = server_name(&pool.connect_options());
    match diagnose(pool).await {
        Reachability::Unreachable(cause) => {
            format!("{error}: PostgreSQL at {server} is unreachable: {cause}")
        }
        Reachability::Reachable => format!(
            "{error} (PostgreSQL at {server} accepts connections: the pool's were all busy or one broke)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_of_state_or_cause_is_news() {
        let up = Reachability::Reachable;
        let refused = Reachability::Unreachable("connection refused".into());
        let starting = Reachability::Unreachable("starting up".into());
        assert_eq!(change(&up, &up), None);
        assert_eq!(
            change(&up, &refused),
            Some(Change::Lost("connection refused".into()))
        );
        assert_eq!(change(&refused, &refused.clone()), None);
        assert_eq!(
            change(&refused, &starting),
            Some(Change::CauseChanged("starting up".into()))
        );
        assert_eq!(change(&starting, &up), Some(Change::Restored));
    }

    #[test]
    fn connection_failures_are_told_from_statement_failures() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_connection_failure(&refused));
        assert!(is_connection_failure(&sqlx::Error::PoolTimedOut));
        assert!(!is_connection_failure(&sqlx::Error::RowNotFound));
        assert!(cause_of(&refused).contains("connection refused"));
    }

    #[test]
    fn a_server_is_named_without_its_credentials() {
        let options: PgConnectOptions = "postgres://sportello:secret@db.example:6543/sportello"
            .parse()
            .unwrap();
        let name = server_name(&options);
        assert_eq!(name, "db.example:6543/sportello");
        assert!(!name.contains("secret"));
    }

    #[tokio::test]
    async fn a_closed_port_is_explained_once_as_refused() {
        // Nothing listens on a port just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(300))
            .connect_lazy(&format!("postgres://u:p@127.0.0.1:{port}/x"))
            .unwrap();
        let error = pool.acquire().await.unwrap_err();
        assert!(matches!(error, sqlx::Error::PoolTimedOut), "{error}");
        let explained = explain(&pool, &error).await;
        assert!(explained.contains("pool timed out"), "{explained}");
        assert!(
            explained.contains(&format!(
                "127.0.0.1:{port}/x is unreachable: connection refused"
            )),
            "{explained}"
        );
        // The verdict is reused within PROBE_EVERY: no second probe.
        let at = SERVERS.lock().unwrap()[&format!("127.0.0.1:{port}/x")].probed_at;
        assert!(matches!(
            diagnose(&pool).await,
            Reachability::Unreachable(_)
        ));
        assert_eq!(
            SERVERS.lock().unwrap()[&format!("127.0.0.1:{port}/x")].probed_at,
            at
        );
    }
}
