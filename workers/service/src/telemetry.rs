//! Logging and tracing: `tracing` with `RUST_LOG` filtering (JSON lines when
//! `LOG_FORMAT=json`), and OpenTelemetry spans, whose W3C trace context
//! every published message and HTTP answer carries (`broker::trace`,
//! `http::trace`).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

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

/// The spans OpenTelemetry sees: Sportello's at info, whatever `RUST_LOG`
/// says (a quiet log must not break the traces it passes on), and not the
/// exporter's own HTTP stack (its spans would be exported in turn).
fn trace_filter() -> EnvFilter {
    capped(EnvFilter::new(
        "info,sqlx=warn,lapin=warn,h2=off,hyper=off,hyper_util=off,reqwest=off,\
         opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,opentelemetry_http=off",
    ))
}

/// Ends the export: what is still buffered is sent (`shutdown`).
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Flushes and stops the exporter; call once, as the process ends.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("sportello: exporting the last spans failed: {error}");
        }
    }
}

pub fn init() -> Telemetry {
    let (provider, export) = match tracer_provider() {
        Ok(built) => built,
        Err(error) => {
            // A wrong endpoint must not stop the service: trace ids are
            // still passed on, nothing is exported.
            eprintln!("sportello: OTLP export is off: {error}");
            (SdkTracerProvider::builder().build(), None)
        }
    };
    let logs = tracing_subscriber::fmt::layer().with_target(false);
    let logs: Box<dyn Layer<Registry> + Send + Sync> =
        if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
            logs.json().with_filter(env_filter()).boxed()
        } else {
            logs.with_filter(env_filter()).boxed()
        };
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("sportello"))
        .with_filter(trace_filter());
    // try_init: a second initialisation keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    if let Some(endpoint) = export {
        tracing::info!(%endpoint, "exporting traces over OTLP");
    }
    Telemetry { provider }
}

/// The OpenTelemetry layer without export, for a process that sets up its
/// own subscriber (the system tests): spans get trace ids to pass on.
pub fn context_layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(SdkTracerProvider::builder().build().tracer("sportello"))
        .with_filter(trace_filter())
}

/// The provider: it makes the trace ids that are passed on.
fn tracer_provider() -> Result<(SdkTracerProvider, Option<String>), String> {
    let mut resource = Resource::builder()
        .with_attribute(KeyValue::new("process.pid", i64::from(std::process::id())));
    if setting("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("sportello");
    }
    Ok((
        SdkTracerProvider::builder()
            .with_resource(resource.build())
            .build(),
        None,
    ))
}

/// A setting, unless unset or empty.
fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
