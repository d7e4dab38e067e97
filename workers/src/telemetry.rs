//! Logging: `tracing` with `RUST_LOG` filtering; JSON lines when `LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"))
}

pub fn init() {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false);
    // try_init: a second initialisation keeps the first subscriber.
    let _ = if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Logs into the test harness's captured output, shown only for failing tests.
pub fn init_for_tests() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .with_test_writer()
        .try_init();
}
