//! Logging: `tracing` with `RUST_LOG` filtering; JSON lines when `LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

/// `RUST_LOG`, or Sportello's default, with [`capped`]'s targets held at info.
pub fn env_filter() -> EnvFilter {
    capped(
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn")),
    )
}

/// Targets held at `info` whatever `RUST_LOG` asks: lettre writes every
/// SMTP line it sends at `debug` (the AUTH exchange, and whole messages:
/// a PIN half in an email), so its debug output never reaches a log.
pub fn capped(filter: EnvFilter) -> EnvFilter {
    match "lettre=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

pub fn init() {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_target(false);
    // try_init: a second initialisation keeps the first subscriber.
    let _ = if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
