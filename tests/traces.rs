//! One trace from the portal to the email: the W3C trace context a message
//! carries (`traceparent`, `tracestate` AMQP headers) is continued by the
//! intake, kept on the outbox row, relayed with its event, kept on the
//! notification and continued by the email's sending; a message without
//! one starts a new trace, its correlation id untouched; an HTTP request
//! continues its caller's trace. The last test exports over OTLP from the
//! `sportello` binary run as four processes, to a receiver in the test.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message as _;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::mail::{sink, wait_for_mail};
use crate::support::*;
use sportello::broker;
use sportello::broker::names::{EVENTS_EXCHANGE, INTAKE_EXCHANGE, INTAKE_REQUESTS_QUEUE};
use sportello::broker::publisher::{OutgoingMessage, Publisher};
use sportello::http::{self as api, ApiState};
use sportello::workers::WorkerKind;

const BINARY: &str = env!("CARGO_BIN_EXE_sportello");

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

/// One exported span, as the test reads it.
#[derive(Debug, Clone)]
struct Exported {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    attributes: HashMap<String, String>,
    /// The exporting process (its `process.pid` resource attribute).
    process: String,
    /// The (trace id, span id) of each span it links (a batch's messages).
    links: Vec<(String, String)>,
}

fn text_of(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(n)) => n.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
            (kv.key.clone(), text_of(value))
        })
        .collect()
}

/// An OTLP/HTTP receiver: `POST /v1/traces`, protobuf bodies, kept decoded.
struct Receiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<Exported>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    fn start() -> Receiver {
        let spans: Arc<Mutex<Vec<Exported>>> = Arc::default();
        let kept = spans.clone();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            let kept = kept.clone();
            App::new().route(
                "/v1/traces",
                web::post().to(move |body: web::Bytes| {
                    let kept = kept.clone();
                    async move {
                        let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                            return HttpResponse::BadRequest().finish();
                        };
                        let mut kept = kept.lock().unwrap();
                        for resource_spans in request.resource_spans {
                            let resource = resource_spans
                                .resource
                                .map(|r| attributes(&r.attributes))
                                .unwrap_or_default();
                            let process = resource.get("process.pid").cloned().unwrap_or_default();
                            for scope in resource_spans.scope_spans {
                                for span in scope.spans {
                                    kept.push(Exported {
                                        trace_id: hex::encode(&span.trace_id),
                                        span_id: hex::encode(&span.span_id),
                                        parent_span_id: hex::encode(&span.parent_span_id),
                                        name: span.name.clone(),
                                        attributes: attributes(&span.attributes),
                                        process: process.clone(),
                                        links: span
                                            .links
                                            .iter()
                                            .map(|l| {
                                                (hex::encode(&l.trace_id), hex::encode(&l.span_id))
                                            })
                                            .collect(),
                                    });
                                }
                            }
                        }
                        HttpResponse::Ok()
                            .content_type("application/x-protobuf")
                            .finish()
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Receiver {
            endpoint,
            spans,
            handle,
        }
    }

    fn of_trace(&self, trace_id: &str) -> Vec<Exported> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

/// The first span of `spans` that `matches`, a child of `parent`.
fn child_of<'a>(
    spans: &'a [Exported],
    parent: &str,
    matches: impl Fn(&Exported) -> bool,
) -> Option<&'a Exported> {
    spans
        .iter()
        .find(|s| s.parent_span_id == parent && matches(s))
}

/// intake → ticket → relay → notify → send, each the parent of the next.
fn chain<'a>(spans: &'a [Exported], root: &str) -> Result<Vec<&'a Exported>, String> {
    let attribute = |s: &Exported, key: &str| s.attributes.get(key).cloned().unwrap_or_default();
    let intake = child_of(spans, root, |s| {
        attribute(s, "messaging.destination.name") == INTAKE_REQUESTS_QUEUE
            && !s.attributes.contains_key("messaging.batch.message_count")
    })
    .ok_or("no intake span under the integrator's")?;
    let ticket = child_of(spans, &intake.span_id, |s| s.name == "ticket opened")
        .ok_or("no ticket span under the intake's")?;
    let relay = child_of(spans, &ticket.span_id, |s| {
        attribute(s, "messaging.operation.type") == "send"
    })
    .ok_or("no relay span under the ticket's")?;
    let notify = child_of(spans, &relay.span_id, |s| s.name == "plan")
        .ok_or("no notify span under the relay's")?;
    let send = child_of(spans, &notify.span_id, |s| {
        s.name == "send" && attribute(s, "outcome") == "sent"
    })
    .ok_or("no sent email's span under the notify's")?;
    Ok(vec![intake, ticket, relay, notify, send])
}

fn spawn_worker(kind: &str, vars: &[(&str, String)]) -> Child {
    Command::new(BINARY)
        .args(["worker", kind])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("OTEL_SERVICE_NAME", format!("sportello-{kind}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGTERM (a graceful stop, which flushes the last spans), then what it
/// logged; killed if it has not stopped within 15 s.
async fn stop(mut child: Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopped = eventually(Duration::from_secs(15), || {
        let exited = child.try_wait().ok().flatten().is_some();
        async move { exited }
    })
    .await;
    if !stopped {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[actix_rt::test]
async fn one_request_is_one_trace_from_the_intake_to_the_email_across_processes() {
    let env = TestEnv::new().await;
    let receiver = Receiver::start();
    let documents = std::env::temp_dir()
        .join(format!("sportello-traces-{}", env.id))
        .to_string_lossy()
        .into_owned();
    let vars = [
        ("AMQP_URL", env.user_url("sportello-app")),
        ("DATABASE_URL", env.settings.database_url.clone()),
        ("SMTP_URL", sink().url.clone()),
        ("METRICS_ADDRESS", String::new()),
        ("DOCUMENT_STORE_DIR", documents.clone()),
        ("RUST_LOG", "info".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
        // Exported within a fifth of a second, so the test waits little.
        ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
    ];
    let processes: Vec<(&str, Child)> = ["intake", "outbox-relay", "notify", "email-sender"]
        .into_iter()
        .map(|kind| (kind, spawn_worker(kind, &vars)))
        .collect();

    let address = format!("trace.{}@example.it", Uuid::new_v4().simple());
    let mut request = request_of(&format!("otlp-{}", env.id));
    request["payload"]["contact"] = json!({"email": address});
    let (trace_id, span_id) = integrators_context();
    publish_with(
        &env,
        &request,
        Some(trace_headers(&traceparent(&trace_id, &span_id), "")),
    )
    .await;
    let mail = wait_for_mail(&address, Duration::from_secs(60)).await;
    let mut found = Err("nothing exported".to_owned());
    let complete = eventually(Duration::from_secs(20), || {
        let spans = receiver.of_trace(&trace_id);
        found = chain(&spans, &span_id).map(|c| c.into_iter().cloned().collect::<Vec<_>>());
        let done = found.is_ok();
        async move { done }
    })
    .await;
    let mut logs = String::new();
    for (kind, child) in processes {
        logs.push_str(&format!("--- {kind}\n{}", stop(child).await));
    }
    assert_eq!(mail.len(), 1, "the email never arrived:\n{logs}");
    let spans = receiver.of_trace(&trace_id);
    assert!(
        complete,
        "{:?}\nspans of the trace: {spans:#?}\n{logs}",
        found.err()
    );
    let chain = found.unwrap_or_default();
    let processes: HashSet<&str> = chain.iter().map(|s| s.process.as_str()).collect();
    assert!(
        processes.len() >= 3 && !processes.contains(""),
        "spans from {processes:?}: {chain:#?}"
    );
    // The intake's batch span, in a trace of its own, links the message's.
    let message = (trace_id.clone(), chain[0].span_id.clone());
    let linked = receiver.spans.lock().unwrap().iter().any(|s| {
        s.attributes.contains_key("messaging.batch.message_count")
            && s.trace_id != trace_id
            && s.links.contains(&message)
    });
    assert!(linked, "no batch span links the message's span");
    receiver.handle.stop(true).await;
    let _ = std::fs::remove_dir_all(&documents);
    env.cleanup().await;
}
