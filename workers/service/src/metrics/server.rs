//! `GET /metrics` on `METRICS_ADDRESS`, and what is sampled when it is
//! scraped rather than counted where it happens.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::metrics;
use crate::config::Settings;
use crate::runtime::{Worker, WorkerError};

/// Serves `GET /metrics` on `METRICS_ADDRESS`; a worker like the others, so
/// it is supervised and stops with the process.
pub struct MetricsWorker {
    settings: Arc<Settings>,
}

impl MetricsWorker {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }
}

/// Samples what is read rather than counted: the document store's disk and
/// the database's reachability, as of this scrape.
fn sample(settings: &Settings) {
    let m = metrics();
    m.database_unreachable
        .set(crate::store::outage::unreachable_servers() as i64);
    match disk_space(&settings.document_store_dir) {
        Ok((free, size)) => {
            m.document_store_free_bytes.set(free);
            m.document_store_size_bytes.set(size);
        }
        // A process that keeps no documents may have no such folder: both
        // 0, which no ratio alerts on.
        Err(_) => {
            m.document_store_free_bytes.set(0);
            m.document_store_size_bytes.set(0);
        }
    }
}

/// Bytes available to unprivileged users and the size of the file system
/// holding `path`.
pub fn disk_space(path: &str) -> std::io::Result<(i64, i64)> {
    let stat = rustix::fs::statvfs(path)?;
    let bytes =
        |blocks: u64| i64::try_from(blocks.saturating_mul(stat.f_frsize)).unwrap_or(i64::MAX);
    Ok((bytes(stat.f_bavail), bytes(stat.f_blocks)))
}

async fn exposition(settings: web::Data<Arc<Settings>>) -> HttpResponse {
    sample(&settings);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics().encode())
}

impl Worker for MetricsWorker {
    fn name(&self) -> String {
        "metrics".into()
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        let address = self.settings.metrics_address.clone();
        let settings = web::Data::new(self.settings.clone());
        Box::pin(
            async move {
                let listener = match TcpListener::bind(&address) {
                    Ok(listener) => listener,
                    Err(error) => {
                        // Another process of this host has the port: metrics
                        // are not worth restarting over; the other workers run.
                        tracing::warn!(%address, %error, "metrics not served (set METRICS_ADDRESS per process)");
                        shutdown.cancelled().await;
                        return Ok(());
                    }
                };
                tracing::info!(%address, "metrics listening");
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(settings.clone())
                        .route("/metrics", web::get().to(exposition))
                })
                .workers(1)
                        .shutdown_timeout(2)
                        .listen(listener)
                        .map_err(|e| WorkerError::Other(e.to_string()))?
                        .disable_signals()
                        .run();
                crate::runtime::http_server::serve_until(server, &shutdown).await;
                Ok(())
            }
            .instrument(tracing::info_span!("metrics")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_space_of_a_folder_is_its_file_systems_and_a_missing_folder_has_none() {
        let (free, size) = disk_space(".").expect("the current folder's file system");
        assert!(size > 0 && free <= size, "free {free} of {size}");
        assert!(disk_space("/no/such/folder/of/documents").is_err());
    }
}
