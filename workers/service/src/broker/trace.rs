//! The trace context in AMQP headers, as the OpenTelemetry messaging
//! conventions carry it: `traceparent` and `tracestate` (W3C Trace
//! Context). Every message Sportello publishes carries its sender's span
//! (`Publisher` sets it); every consumer's span for a message continues it.
//! A message without one (an integrator's) starts a new trace; its
//! envelope's `correlation_id` is not touched either way.

use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use crate::store::trace_context::{TraceContext, TRACEPARENT, TRACESTATE};

/// The context a message's headers carry, if well formed.
pub fn carried(headers: Option<&FieldTable>) -> Option<TraceContext> {
    let text = |name: &str| match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    };
    let parent = TraceContext::parent(text(TRACEPARENT).as_deref(), text(TRACESTATE).as_deref());
    TraceContext::of_context(&parent)
}

/// Puts `trace` in `headers`, replacing what they had.
pub fn set(headers: &mut FieldTable, trace: &TraceContext) {
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert(TRACEPARENT.into(), text(&trace.traceparent));
    if trace.tracestate.is_empty() {
        // FieldTable has no remove: keep every other header.
        let kept: std::collections::BTreeMap<_, _> = headers
            .inner()
            .iter()
            .filter(|(name, _)| name.as_str() != TRACESTATE)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        *headers = kept.into();
    } else {
        headers.insert(TRACESTATE.into(), text(&trace.tracestate));
    }
}

/// The context a message sent now carries: the sender's span's, or, from
/// outside any span (a command-line tool), a new trace's: every message
/// Sportello publishes carries one.
pub fn for_sending() -> Option<TraceContext> {
    TraceContext::current().or_else(|| {
        let span = tracing::info_span!("send", otel.kind = "producer");
        let _ = span.set_parent(opentelemetry::Context::new());
        TraceContext::of(&span)
    })
}

/// Sets [`for_sending`]'s context in `headers`, unless they name one.
pub fn set_for_sending(headers: &mut FieldTable) {
    if is_set(headers) {
        return;
    }
    if let Some(trace) = for_sending() {
        set(headers, &trace);
    }
}

/// Whether `headers` already name a trace (a relayed event's, a copy's).
pub fn is_set(headers: &FieldTable) -> bool {
    headers.inner().contains_key(TRACEPARENT)
}

/// Makes `span`, a consumer's span for one delivery, continue the trace
/// the delivery carries, or start a new one: never the worker's own
/// long-lived span. Call before the span is entered.
pub fn continue_delivery(span: &Span, delivery: &Delivery) {
    continue_headers(span, delivery.properties.headers().as_ref());
}

pub fn continue_headers(span: &Span, headers: Option<&FieldTable>) {
    let parent = match carried(headers) {
        Some(trace) => trace.as_parent(),
        None => opentelemetry::Context::new(),
    };
    // A span the filters disabled has no context to continue: nothing to do.
    let _ = span.set_parent(parent);
}

/// Makes `span`, a batch's span, a new trace linked to each message's own.
pub fn link_batch<'a>(span: &Span, traces: impl IntoIterator<Item = &'a TraceContext>) {
    let _ = span.set_parent(opentelemetry::Context::new());
    for trace in traces {
        if let Some(context) = trace.span_context() {
            span.add_link(context);
        }
    }
}

/// A consumer's span for one delivery from `queue`, continuing the trace
/// it carries (or starting one), under the correlation id its properties
/// carry.
pub fn process_span(queue: &str, delivery: &Delivery) -> Span {
    let property = |value: Option<&lapin::types::ShortString>| {
        value.map(|v| v.as_str().to_owned()).unwrap_or_default()
    };
    process_span_as(
        queue,
        delivery,
        &property(delivery.properties.message_id().as_ref()),
        &property(delivery.properties.correlation_id().as_ref()),
    )
}

/// [`process_span`] under the ids the caller read (the intake's: the
/// envelope's own, which the sender knows it by).
pub fn process_span_as(
    queue: &str,
    delivery: &Delivery,
    message_id: &str,
    correlation_id: &str,
) -> Span {
    let span = tracing::info_span!(
        "process message",
        otel.name = %format!("{queue} process"),
        otel.kind = "consumer",
        "messaging.system" = "rabbitmq",
        "messaging.operation.type" = "process",
        "messaging.destination.name" = queue,
        "messaging.rabbitmq.destination.routing_key" = %delivery.routing_key,
        "messaging.message.id" = %message_id,
        %correlation_id,
    );
    continue_delivery(&span, delivery);
    span
}

/// A consumer's span for a batch from `queue`, whose messages' spans are
/// `spans`: a trace of its own, linked to each of theirs.
pub fn batch_span(queue: &str, spans: &[Span]) -> Span {
    let span = tracing::info_span!(
        "process batch",
        otel.name = %format!("{queue} process"),
        otel.kind = "consumer",
        "messaging.system" = "rabbitmq",
        "messaging.operation.type" = "process",
        "messaging.destination.name" = queue,
        "messaging.batch.message_count" = spans.len(),
    );
    let traces: Vec<TraceContext> = spans.iter().filter_map(TraceContext::of).collect();
    link_batch(&span, &traces);
    span
}
