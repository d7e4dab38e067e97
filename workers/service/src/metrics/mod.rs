//! Prometheus metrics of this process, served as text on `METRICS_ADDRESS`
//! (`GET /metrics`) by a worker of its own (`server.rs`), whatever other
//! workers the process runs: every process of a scaled-out deployment is
//! scraped separately. This file, the registry, uses nothing of the
//! process's, so every floor may count into it.
//!
//! Counters only go up; dashboards take rates. Labels are small fixed sets
//! (never ids or tax codes): one time series per outcome, medium or route.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

mod server;
pub use server::MetricsWorker;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub medium: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MediumLabel {
    pub medium: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    /// `sign_in`, `first_use`, `recovery`, `agent_check`.
    pub step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route's pattern (`/tickets/{ticket_id}`), not the path.
    pub route: String,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    /// Intake messages by fate: `applied`, `duplicate`, `dead_lettered`, `requeued`.
    pub intake_messages: Family<OutcomeLabel, Counter>,
    /// Time to apply one intake batch (one transaction), in seconds.
    pub intake_batch_seconds: Histogram,
    pub events_relayed: Counter,
    pub timers_fired: Counter,
    /// Delivery attempts by medium and result: `sent`, `retry`, `failed`.
    pub delivery_attempts: Family<DeliveryLabels, Counter>,
    /// Deliveries found `sending` past NOTIFY_IN_DOUBT_SECONDS (their sender
    /// stopped mid-send; the message may have left): resent, so possibly twice.
    pub deliveries_in_doubt: Family<MediumLabel, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_request_seconds: Histogram,
    /// Open video-room WebSockets on this gateway process.
    pub gateway_connections: Gauge,
    /// Room WebSockets closed for sending over their message rate.
    pub gateway_rate_limited: Counter,
    /// Wrong PIN attempts (a wrong PIN, or a tax code without one), by step.
    pub pin_failures: Family<StepLabel, Counter>,
    /// Wrong PIN attempts of the last minute in this process, every address.
    pub pin_failures_last_minute: Gauge,
    /// 1 while the last minute's wrong attempts reach
    /// PIN_FAILURES_ALERT_PER_MINUTE (alert on it), else 0.
    pub pin_failure_ceiling_exceeded: Gauge,
    /// PIN attempts refused 429 by the per-address limit, by step.
    pub pin_rate_limited: Family<StepLabel, Counter>,
    /// Age in seconds of the oldest event in the batch the relay last took
    /// out of the outbox (0 when it found the outbox empty): set before the
    /// publish, so a relay stuck on the broker shows its lag growing.
    pub outbox_relay_lag_seconds: Gauge<f64, AtomicU64>,
    /// Breaks found in the daily registers' chain by the last verification
    /// of this process (after each daily production, in the timers worker).
    pub register_chain_breaks: Gauge,
    /// The document store's file system, sampled at each scrape.
    pub document_store_free_bytes: Gauge,
    pub document_store_size_bytes: Gauge,
    /// Rooms with a WebSocket on this gateway process, and the rooms one
    /// process is sized for (GATEWAY_MAX_ROOMS).
    pub gateway_rooms: Gauge,
    pub gateway_rooms_limit: Gauge,
    /// PostgreSQL servers this process takes for unreachable (store::outage),
    /// sampled at each scrape.
    pub database_unreachable: Gauge,
    /// 1 while the last broker connection this process attempted found no
    /// node answering, else 0 (also when it never connects).
    pub broker_unreachable: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("sportello");
        // Each metric is registered under its name as it is made.
        macro_rules! registered {
            ($name:literal, $help:literal, $metric:expr) => {{
                let metric = $metric;
                registry.register($name, $help, metric.clone());
                metric
            }};
        }
        Self {
            intake_messages: registered!(
                "intake_messages",
                "Intake messages by outcome",
                Family::default()
            ),
            intake_batch_seconds: registered!(
                "intake_batch_seconds",
                "Time to apply one intake batch",
                Histogram::new(exponential_buckets(0.002, 2.0, 12))
            ),
            events_relayed: registered!(
                "events_relayed",
                "Events relayed from the outbox to the broker",
                Counter::default()
            ),
            timers_fired: registered!("timers_fired", "Durable timers fired", Counter::default()),
            delivery_attempts: registered!(
                "delivery_attempts",
                "Email/SMS delivery attempts by medium and outcome",
                Family::default()
            ),
            deliveries_in_doubt: registered!(
                "deliveries_in_doubt",
                "Deliveries whose attempt was in doubt (sender stopped mid-send), by medium",
                Family::default()
            ),
            http_requests: registered!(
                "http_requests",
                "HTTP requests by route and status",
                Family::default()
            ),
            http_request_seconds: registered!(
                "http_request_seconds",
                "HTTP request duration",
                Histogram::new(exponential_buckets(0.001, 2.0, 14))
            ),
            gateway_connections: registered!(
                "gateway_connections",
                "Open video-room WebSockets",
                Gauge::default()
            ),
            gateway_rate_limited: registered!(
                "gateway_rate_limited",
                "Video-room WebSockets closed for sending over their message rate",
                Counter::default()
            ),
            pin_failures: registered!(
                "pin_failures",
                "Wrong PIN attempts by step",
                Family::default()
            ),
            pin_failures_last_minute: registered!(
                "pin_failures_last_minute",
                "Wrong PIN attempts in the last minute, every client address",
                Gauge::default()
            ),
            pin_failure_ceiling_exceeded: registered!(
                "pin_failure_ceiling_exceeded",
                "1 while wrong PIN attempts per minute reach PIN_FAILURES_ALERT_PER_MINUTE",
                Gauge::default()
            ),
            pin_rate_limited: registered!(
                "pin_rate_limited",
                "PIN attempts refused by the per-address limit, by step",
                Family::default()
            ),
            outbox_relay_lag_seconds: registered!(
                "outbox_relay_lag_seconds",
                "Age of the oldest event in the outbox relay's last batch",
                Gauge::default()
            ),
            register_chain_breaks: registered!(
                "register_chain_breaks",
                "Breaks in the daily registers' chain at the last verification",
                Gauge::default()
            ),
            document_store_free_bytes: registered!(
                "document_store_free_bytes",
                "Bytes free (to unprivileged users) on the document store's file system",
                Gauge::default()
            ),
            document_store_size_bytes: registered!(
                "document_store_size_bytes",
                "Size of the document store's file system",
                Gauge::default()
            ),
            gateway_rooms: registered!(
                "gateway_rooms",
                "Video rooms with a WebSocket on this gateway process",
                Gauge::default()
            ),
            gateway_rooms_limit: registered!(
                "gateway_rooms_limit",
                "Video rooms one gateway process is sized for (GATEWAY_MAX_ROOMS)",
                Gauge::default()
            ),
            database_unreachable: registered!(
                "database_unreachable",
                "PostgreSQL servers this process takes for unreachable",
                Gauge::default()
            ),
            broker_unreachable: registered!(
                "broker_unreachable",
                "1 while no broker node answered this process's last connection attempt",
                Gauge::default()
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}
