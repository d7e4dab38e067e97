//! Each process serves Prometheus metrics: intake outcomes, relayed events
//! and HTTP requests are counted. One test in its own binary: the counters
//! are the process's.

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use sportello::metrics::MetricsWorker;
use sportello::runtime::{RunningWorkers, Worker};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// The value of the sample `series` (name with labels) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[actix_rt::test]
async fn a_process_counts_intake_outcomes_events_and_http_requests() {
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env = TestEnv::new_with(|settings| settings.metrics_address = address.to_string()).await;
    let serving = RunningWorkers::start(vec![
        Arc::new(MetricsWorker::new(env.settings.clone())) as Arc<dyn Worker>
    ]);
    let api = Api::start_with(
        env,
        &[
            sportello::workers::WorkerKind::Intake,
            sportello::workers::WorkerKind::OutboxRelay,
        ],
    );

    let valid = request("web", "metrics-0001");
    api.env
        .publish("web", "web.request.submitted", &bytes(&valid))
        .await
        .unwrap();
    // The same message again: applied once, then found applied.
    api.env
        .publish("web", "web.request.submitted", &bytes(&valid))
        .await
        .unwrap();
    api.env
        .publish("web", "web.request.submitted", b"{not json")
        .await
        .unwrap();
    let (status, _) = api.get("/tickets", &citizen("RSSMRA85T10A562S")).await;
    assert_eq!(status, reqwest::StatusCode::OK);

    let scrape = || async {
        reqwest::get(format!("http://{address}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let expected = [
        ("sportello_intake_messages_total{outcome=\"applied\"}", 1.0),
        (
            "sportello_intake_messages_total{outcome=\"duplicate\"}",
            1.0,
        ),
        (
            "sportello_intake_messages_total{outcome=\"dead_lettered\"}",
            1.0,
        ),
        ("sportello_events_relayed_total", 1.0),
        (
            "sportello_http_requests_total{route=\"/tickets\",status=\"200\"}",
            1.0,
        ),
    ];
    let all_counted = || async {
        let text = scrape().await;
        expected
            .iter()
            .all(|(series, value)| sample(&text, series) == Some(*value))
    };
    assert!(eventually(WAIT, all_counted).await, "{}", scrape().await);
    let text = scrape().await;
    assert!(
        text.contains("# TYPE sportello_intake_batch_seconds histogram"),
        "{text}"
    );
    // No ids or tax codes in any label.
    assert!(!text.contains("RSSMRA85T10A562S"), "{text}");

    assert!(serving.shutdown(WAIT).await);
    api.stop().await;
}
