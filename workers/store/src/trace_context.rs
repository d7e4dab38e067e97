//! The W3C trace context (`traceparent`, `tracestate`) of a span as the
//! strings carried in AMQP and HTTP headers and kept on outbox rows, and
//! back: the remote parent a consumer's span continues.
//!
//! Here, below the service, because the outbox keeps it: an event relayed
//! later continues the trace of the transaction that wrote it.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header names of the W3C Trace Context specification, as the
/// OpenTelemetry messaging conventions carry them in AMQP headers.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// One span's context, in its header form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `00-<trace id>-<span id>-<flags>`.
    pub traceparent: String,
    /// Vendors' state; empty when the trace carries none.
    pub tracestate: String,
}

impl TraceContext {
    /// The context of `span`, or `None` when it has none (no OpenTelemetry
    /// layer, or a span the filters disabled). Starts the span: set its
    /// parent before.
    pub fn of(span: &tracing::Span) -> Option<Self> {
        Self::of_context(&span.context())
    }

    /// The context of the span the caller is in.
    pub fn current() -> Option<Self> {
        Self::of(&tracing::Span::current())
    }

    pub fn of_context(context: &opentelemetry::Context) -> Option<Self> {
        if !context.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(context, &mut carrier);
        Some(Self {
            traceparent: carrier.remove(TRACEPARENT)?,
            tracestate: carrier.remove(TRACESTATE).unwrap_or_default(),
        })
    }

    /// The remote parent these headers name. Absent or malformed headers
    /// give an empty context: the span made under it starts a new trace.
    pub fn parent(traceparent: Option<&str>, tracestate: Option<&str>) -> opentelemetry::Context {
        let mut carrier = HashMap::new();
        if let Some(traceparent) = traceparent {
            carrier.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
        }
        if let Some(tracestate) = tracestate.filter(|s| !s.is_empty()) {
            carrier.insert(TRACESTATE.to_owned(), tracestate.to_owned());
        }
        TraceContextPropagator::new().extract_with_context(&opentelemetry::Context::new(), &carrier)
    }

    /// This context as a remote parent.
    pub fn as_parent(&self) -> opentelemetry::Context {
        Self::parent(Some(&self.traceparent), Some(&self.tracestate))
    }

    /// The span context these headers name, for a link (a batch's span
    /// links the messages it handles); `None` when malformed.
    pub fn span_context(&self) -> Option<opentelemetry::trace::SpanContext> {
        let context = self.as_parent();
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then_some(span_context)
    }
}

#[cfg(test)]
mod tests {
    use super::TraceContext;

    #[test]
    fn a_traceparent_is_read_back_as_it_was_written() {
        let written = TraceContext {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: "inps=t61rcWkgMzE".into(),
        };
        assert_eq!(
            TraceContext::of_context(&written.as_parent()),
            Some(written)
        );
    }

    #[test]
    fn no_or_a_malformed_traceparent_is_no_parent() {
        assert_eq!(
            TraceContext::of_context(&TraceContext::parent(None, None)),
            None
        );
        let broken = TraceContext::parent(Some("00-not-a-trace-01"), None);
        assert_eq!(TraceContext::of_context(&broken), None);
    }
}
