//! Logging and tracing: `tracing` with `RUST_LOG` filtering (JSON lines when
//! `LOG_FORMAT=json`), and OpenTelemetry spans, whose W3C trace context
//! every published message and HTTP answer carries (`broker::trace`,
//! `http::trace`). The spans are exported over OTLP (HTTP, protobuf) only
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set;
//! otherwise they exist only to give the trace ids that are passed on.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
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
            logs.fmt_fields(log_fields())
                .with_filter(env_filter())
                .boxed()
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

/// The fields of a text log line: a span's OpenTelemetry attributes
/// (`otel.*`, `messaging.*`, `http.*`) are for the trace, not for every
/// line logged inside it; its correlation id and ids stay.
fn log_fields() -> LogFields {
    LogFields
}

struct LogFields;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for LogFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = LogVisitor {
            writer,
            seen: false,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct LogVisitor<'writer> {
    writer: tracing_subscriber::fmt::format::Writer<'writer>,
    /// Whether a field was written: the next one is spaced from it.
    seen: bool,
    result: std::fmt::Result,
}

impl tracing::field::Visit for LogVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let name = field.name();
        let for_the_trace = ["otel.", "messaging.", "http."]
            .iter()
            .any(|prefix| name.starts_with(prefix));
        if self.result.is_err() || for_the_trace {
            return;
        }
        let space = if self.seen { " " } else { "" };
        self.seen = true;
        self.result = if name == "message" {
            write!(self.writer, "{space}{value:?}")
        } else {
            write!(self.writer, "{space}{name}={value:?}")
        };
    }
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

/// The provider, exporting when an OTLP endpoint is set (then also its
/// address, to log). The standard `OTEL_*` settings are read by the SDK:
/// `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_HEADERS`,
/// `..._TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`.
fn tracer_provider() -> Result<(SdkTracerProvider, Option<String>), String> {
    let mut resource = Resource::builder()
        .with_attribute(KeyValue::new("process.pid", i64::from(std::process::id())));
    if setting("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("sportello");
    }
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    let disabled = setting("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || setting("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    let endpoint = setting("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| setting("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let Some(endpoint) = endpoint.filter(|_| !disabled) else {
        return Ok((builder.build(), None));
    };
    if let Some(protocol) = setting("OTEL_EXPORTER_OTLP_PROTOCOL").filter(|p| p != "http/protobuf")
    {
        return Err(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/protobuf is built in"
        ));
    }
    // The endpoint, headers and timeout are read from the environment.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(ExportClient::new()?)
        .build()
        .map_err(|e| e.to_string())?;
    Ok((
        builder.with_batch_exporter(exporter).build(),
        Some(endpoint),
    ))
}

/// A setting, unless unset or empty.
fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The exporter's HTTP client: the service's reqwest, driven by a runtime
/// of its own, because the SDK's batch processor exports from a plain
/// thread of its own (no runtime there, and none of the workers' may be
/// borrowed: they stop before the last spans are flushed).
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl ExportClient {
    fn new() -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("the exporter's runtime: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("the exporter's HTTP client: {e}"))?;
        Ok(Self { client, runtime })
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body);
        // On the batch processor's thread, outside any runtime: blocking
        // on this client's own is allowed there.
        self.runtime.block_on(async move {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            let mut answer = Response::builder().status(status).body(body)?;
            *answer.headers_mut() = headers;
            Ok(answer)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// What a log line says, inside a span with OpenTelemetry attributes.
    #[test]
    fn a_log_line_keeps_the_correlation_id_not_the_spans_attributes() {
        let written: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(false)
            .fmt_fields(super::log_fields())
            .with_writer(move || Writer(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "plan",
                otel.kind = "consumer",
                "messaging.system" = "rabbitmq",
                correlation_id = %"corr-1",
            );
            span.in_scope(|| tracing::info!(ticket = 7, "event planned"));
        });
        let line = String::from_utf8_lossy(&written.lock().unwrap()).into_owned();
        assert!(line.contains("plan{correlation_id=corr-1}"), "{line}");
        assert!(
            line.trim_end().ends_with("event planned ticket=7"),
            "{line}"
        );
        assert!(
            !line.contains("otel") && !line.contains("rabbitmq"),
            "{line}"
        );
    }

    struct Writer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
