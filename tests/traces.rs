//! One trace from the portal to the email: the W3C trace context a message
//! carries (`traceparent`, `tracestate` AMQP headers) is continued by the
//! intake, kept on the outbox row, relayed with its event, kept on the
//! notification and continued by the email's sending; a message without
//! one starts a new trace, its correlation id untouched; an HTTP request
//! continues its caller's trace.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;
use sportello::broker;
use sportello::broker::names::{EVENTS_EXCHANGE, INTAKE_EXCHANGE};
use sportello::broker::publisher::{OutgoingMessage, Publisher};
use sportello::http::{self as api, ApiState};
use sportello::workers::WorkerKind;

/// A trace id and span id of the integrator's own tracer.
fn integrators_context() -> (String, String) {
    (
        Uuid::new_v4().simple().to_string(),
        Uuid::new_v4().simple().to_string()[..16].to_owned(),
    )
}

fn traceparent(trace_id: &str, span_id: &str) -> String {
    format!("00-{trace_id}-{span_id}-01")
}

/// (trace id, parent span id) of a `traceparent` value.
fn parts(traceparent: &str) -> (String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    (fields[1].to_owned(), fields[2].to_owned())
}

/// Publishes `request` on the Cassetto channel with these AMQP headers, or
/// with none at all (`None`: as an integrator without a tracer would).
async fn publish_with(env: &TestEnv, request: &Value, headers: Option<FieldTable>) {
    let connection = broker::connect(&env.channel_url("cassetto"), "test-traces")
        .await
        .unwrap();
    let publisher = Publisher::open(&connection).await.unwrap();
    let body = bytes(request);
    match headers {
        Some(headers) => {
            let message = OutgoingMessage {
                exchange: INTAKE_EXCHANGE.into(),
                routing_key: "cassetto.request.submitted".into(),
                message_id: Uuid::now_v7(),
                message_type: "request.submitted".into(),
                correlation_id: request["correlation_id"].as_str().unwrap().into(),
                body,
                headers,
                mandatory: true,
            };
            publisher
                .send(&message)
                .await
                .unwrap()
                .wait()
                .await
                .unwrap();
        }
        // Not through `Publisher::send`, which gives every message a trace.
        None => {
            let confirm = publisher
                .channel()
                .basic_publish(
                    INTAKE_EXCHANGE.into(),
                    "cassetto.request.submitted".into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_content_type("application/json".into()),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(confirm.is_ack());
        }
    }
    let _ = connection.close(200, "done".into()).await;
}

fn trace_headers(traceparent: &str, tracestate: &str) -> FieldTable {
    let mut headers = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert("traceparent".into(), text(traceparent));
    headers.insert("tracestate".into(), text(tracestate));
    headers
}

fn request_of(key: &str) -> Value {
    request_v2(
        citizen_json("RSSMRA85T10A562S"),
        key,
        "uniemens",
        "4901234567",
        "Denuncia di marzo",
        json!({"province": "CR", "municipality": "Crema"}),
    )
}

#[actix_rt::test]
async fn an_event_continues_the_trace_of_its_request_and_a_request_without_one_starts_its_own() {
    let env = TestEnv::new().await;
    let workers = env.start(&[WorkerKind::Intake, WorkerKind::OutboxRelay]);
    let mut opened = env.probe(EVENTS_EXCHANGE, "ticket.opened").await;
    let traced = request_of(&format!("traced-{}", env.id));
    let untraced = request_of(&format!("untraced-{}", env.id));
    let (trace_id, span_id) = integrators_context();
    publish_with(
        &env,
        &traced,
        Some(trace_headers(
            &traceparent(&trace_id, &span_id),
            "inps=portale",
        )),
    )
    .await;
    publish_with(&env, &untraced, None).await;

    let mut events = HashMap::new();
    for _ in 0..2 {
        let delivery = opened
            .next(Duration::from_secs(20))
            .await
            .expect("a ticket.opened event");
        let event: Value = serde_json::from_slice(&delivery.data).unwrap();
        let correlation_id = event["correlation_id"].as_str().unwrap().to_owned();
        events.insert(
            correlation_id,
            (
                header(&delivery, "traceparent"),
                header(&delivery, "tracestate"),
            ),
        );
    }
    // The correlation ids are the envelopes' own, trace or no trace.
    let correlation = |request: &Value| request["correlation_id"].as_str().unwrap().to_owned();
    let (continued, state) = events
        .get(&correlation(&traced))
        .cloned()
        .expect("the traced request's event, under its correlation id");
    let (event_trace, event_parent) = parts(&continued.expect("a traceparent"));
    assert_eq!(
        event_trace, trace_id,
        "the event continues the request's trace"
    );
    assert_ne!(event_parent, span_id, "from Sportello's own spans");
    assert_eq!(
        state.as_deref(),
        Some("inps=portale"),
        "tracestate is passed on"
    );
    let (started, _) = events
        .get(&correlation(&untraced))
        .cloned()
        .expect("the untraced request's event, under its correlation id");
    let (new_trace, _) = parts(&started.expect("a traceparent: a new trace"));
    assert_ne!(new_trace, trace_id);
    assert_ne!(new_trace, "0".repeat(32));

    workers.shutdown(Duration::from_secs(5)).await;
    env.cleanup().await;
}

#[actix_rt::test]
async fn an_http_answer_carries_the_trace_its_request_continued() {
    let env = TestEnv::new().await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = api::serve(ApiState::new(&env.settings, env.pool.clone()), listener).unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    let client = reqwest::Client::new();
    let (trace_id, span_id) = integrators_context();
    let answer = client
        .get(format!("{base}/health/live"))
        .header("traceparent", traceparent(&trace_id, &span_id))
        .send()
        .await
        .unwrap();
    let continued = answer
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a traceparent on the answer");
    let (answer_trace, answer_span) = parts(&continued);
    assert_eq!(answer_trace, trace_id);
    assert_ne!(answer_span, span_id);
    let fresh = client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .unwrap();
    let started = fresh
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a traceparent on an answer to a request without one");
    assert_ne!(parts(&started).0, trace_id);
    handle.stop(true).await;
    env.cleanup().await;
}
