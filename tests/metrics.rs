//! Each process serves Prometheus metrics: intake outcomes, relayed events
//! and HTTP requests are counted. The counters are the process's, so the
//! intake, the outbox relay and the API run here as `sportello worker`
//! processes of their own, each scraped on its own address (the other tests
//! of this binary count in theirs). Debian's Prometheus (scripts/services.sh
//! installs it) scrapes one with deploy/prometheus/prometheus.yml.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

/// The value of the sample `series` (name with labels) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

fn free_address() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// A `sportello worker KIND` process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One worker kind in a process of its own, serving metrics on `metrics`.
fn spawn(env: &TestEnv, kind: &str, metrics: &str, extra: &[(&str, &str)]) -> Process {
    Process(
        Command::new(env!("CARGO_BIN_EXE_sportello"))
            .args(["worker", kind])
            .env("AMQP_URL", &env.settings.amqp_url)
            .env("DATABASE_URL", &env.settings.database_url)
            .env("DATABASE_POOL_SIZE", "2")
            .env("JWT_SECRET", &env.settings.jwt_secret)
            .env("JWT_ISSUER", &env.settings.jwt_issuer)
            .env("DOCUMENT_STORE_DIR", &env.settings.document_store_dir)
            .env("METRICS_ADDRESS", metrics)
            .envs(extra.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start sportello worker {kind}: {e}")),
    )
}

async fn scrape(address: &str) -> String {
    match reqwest::get(format!("http://{address}/metrics")).await {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until every `(series, value)` of `expected` is in `address`'s
/// metrics; the scrape as it last was, to show when not.
async fn counted(address: &str, expected: &[(&str, f64)]) -> Result<String, String> {
    let all_counted = || async {
        let text = scrape(address).await;
        expected
            .iter()
            .all(|(series, value)| sample(&text, series) == Some(*value))
    };
    if eventually(WAIT, all_counted).await {
        Ok(scrape(address).await)
    } else {
        Err(scrape(address).await)
    }
}

#[actix_rt::test]
async fn a_process_counts_intake_outcomes_events_and_http_requests() {
    let env = TestEnv::new().await;
    let (intake_metrics, relay_metrics, api_metrics) =
        (free_address(), free_address(), free_address());
    let api_address = free_address();
    let _intake = spawn(&env, "intake", &intake_metrics, &[]);
    let _relay = spawn(&env, "outbox-relay", &relay_metrics, &[]);
    let _api = spawn(&env, "api", &api_metrics, &[("HTTP_ADDRESS", &api_address)]);

    let valid = request("web", "metrics-0001");
    env.publish("web", "web.request.submitted", &bytes(&valid))
        .await
        .unwrap();
    // The same message again: applied once, then found applied.
    env.publish("web", "web.request.submitted", &bytes(&valid))
        .await
        .unwrap();
    env.publish("web", "web.request.submitted", b"{not json")
        .await
        .unwrap();

    let intake = counted(
        &intake_metrics,
        &[
            ("sportello_intake_messages_total{outcome=\"applied\"}", 1.0),
            (
                "sportello_intake_messages_total{outcome=\"duplicate\"}",
                1.0,
            ),
            (
                "sportello_intake_messages_total{outcome=\"dead_lettered\"}",
                1.0,
            ),
        ],
    )
    .await;
    let intake = intake.unwrap_or_else(|text| panic!("intake not counted:\n{text}"));
    assert!(
        intake.contains("# TYPE sportello_intake_batch_seconds histogram"),
        "{intake}"
    );
    let relay = counted(&relay_metrics, &[("sportello_events_relayed_total", 1.0)]).await;
    let relay = relay.unwrap_or_else(|text| panic!("relay not counted:\n{text}"));

    let keys = sportello::auth::TokenKeys::new(&env.settings.jwt_secret, &env.settings.jwt_issuer);
    let token = keys
        .issue(&citizen("RSSMRA85T10A562S"), chrono::Duration::minutes(5))
        .unwrap();
    let api_up = eventually(WAIT, || async {
        reqwest::Client::new()
            .get(format!("http://{api_address}/tickets"))
            .bearer_auth(&token)
            .send()
            .await
            .is_ok_and(|answer| answer.status() == reqwest::StatusCode::OK)
    })
    .await;
    assert!(api_up, "the API process did not answer /tickets");
    let api = counted(
        &api_metrics,
        &[(
            "sportello_http_requests_total{route=\"/tickets\",status=\"200\"}",
            1.0,
        )],
    )
    .await;
    let api = api.unwrap_or_else(|text| panic!("HTTP request not counted:\n{text}"));

    // What the alerts read (deploy/prometheus/alerts.yml): the relay's lag
    // and its broker connection, the document store's disk at each scrape.
    assert!(
        sample(&relay, "sportello_outbox_relay_lag_seconds").is_some_and(|lag| lag >= 0.0),
        "{relay}"
    );
    assert_eq!(
        sample(&relay, "sportello_broker_unreachable"),
        Some(0.0),
        "{relay}"
    );
    assert_eq!(
        sample(&relay, "sportello_database_unreachable"),
        Some(0.0),
        "{relay}"
    );
    let store_size = sample(&api, "sportello_document_store_size_bytes");
    assert!(store_size.is_some(), "{api}");

    // No ids or tax codes in any label.
    for text in [&intake, &relay, &api] {
        assert!(!text.contains("RSSMRA85T10A562S"), "{text}");
    }
    drop((_intake, _relay, _api));
    env.cleanup().await;
}

/// Prometheus in a folder of its own, killed and the folder removed when
/// dropped.
struct Prometheus {
    process: Process,
    folder: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// Debian's `prometheus` run on deploy/prometheus/ as it is (the rules too),
/// but for the targets (Sportello's on `sportello`, this machine's broker),
/// a 1 s scrape and its storage in a temporary folder.
fn start_prometheus(id: &str, sportello: &str, listen: &str) -> Prometheus {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus");
    let folder = std::env::temp_dir().join(format!("sportello-prometheus-{id}"));
    std::fs::create_dir_all(folder.join("targets")).unwrap();
    let config = std::fs::read_to_string(deploy.join("prometheus.yml")).unwrap();
    assert!(config.contains("scrape_interval: 15s"), "{config}");
    let config = config
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    std::fs::write(folder.join("prometheus.yml"), config).unwrap();
    std::fs::copy(deploy.join("alerts.yml"), folder.join("alerts.yml")).unwrap();
    std::fs::write(
        folder.join("targets/sportello.yml"),
        format!("- targets: [\"{sportello}\"]\n"),
    )
    .unwrap();
    std::fs::write(
        folder.join("targets/rabbitmq.yml"),
        "- targets: [\"127.0.0.1:15692\"]\n",
    )
    .unwrap();
    let process = Command::new("/usr/bin/prometheus")
        .arg(format!(
            "--config.file={}",
            folder.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            folder.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("start /usr/bin/prometheus (scripts/services.sh installs it): {e}")
        });
    Prometheus {
        process: Process(process),
        folder,
    }
}

/// `query`'s instant vector, as Prometheus's HTTP API answers it.
async fn query(prometheus: &str, query: &str) -> Vec<serde_json::Value> {
    let answer = reqwest::Client::new()
        .get(format!("http://{prometheus}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await;
    let Ok(answer) = answer else {
        return Vec::new();
    };
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[actix_rt::test]
async fn prometheus_scrapes_a_process_with_the_deployed_configuration() {
    let env = TestEnv::new().await;
    let (relay_metrics, listen) = (free_address(), free_address());
    let _relay = spawn(&env, "outbox-relay", &relay_metrics, &[]);
    let prometheus = start_prometheus(&env.id, &relay_metrics, &listen);

    // The relay connected to the broker, so it says the broker is reachable;
    // Prometheus has it once it scraped (a second or two after it started).
    let series = "sportello_broker_unreachable{job=\"sportello\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let found = loop {
        let found = query(&listen, series).await;
        let scraped = found.len() == 1 && found[0]["value"][1] == "0";
        if scraped || std::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let scraped = found.len() == 1 && found[0]["value"][1] == "0";
    assert!(scraped, "{series} not queried from Prometheus: {found:?}");
    assert_eq!(
        found[0]["metric"]["instance"],
        relay_metrics.as_str(),
        "{found:?}"
    );
    drop(prometheus);
    drop(_relay);
    env.cleanup().await;
}
