//! One span per HTTP request, continuing the caller's W3C trace context
//! (`traceparent`, `tracestate` request headers) or starting a trace; its
//! own `traceparent` goes back on the answer, so a caller without a
//! tracer can quote the trace of a request to an operator. What the
//! request writes (an outbox row, a published message) continues it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::store::trace_context::{TraceContext, TRACEPARENT, TRACESTATE};

pub async fn continue_trace(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let parent = TraceContext::parent(
        header(TRACEPARENT).as_deref(),
        header(TRACESTATE).as_deref(),
    );
    // The route's pattern, never the path: paths carry ids and tax codes.
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let span = tracing::info_span!(
        "http request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        "http.request.method" = %method,
        "http.route" = %route,
        "http.response.status_code" = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    let trace = TraceContext::of(&span);
    let mut response = next.call(request).instrument(span.clone()).await?;
    span.record("http.response.status_code", response.status().as_u16());
    if let Some(value) = trace.and_then(|t| HeaderValue::from_str(&t.traceparent).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(TRACEPARENT), value);
    }
    Ok(response)
}
