//! The HTTP API (actix-web): documents of a case, registrations and their
//! receipts, tickets, notifications, appointments; and the staff pages.
//! Every request passes the access policy first (`access`, the data in
//! `workers/config/access.json`). Handlers are thin: they take the caller, read the request, call
//! the operations, and map their errors to statuses. Every route is in one
//! table (`routes`), described for integrators in `/openapi.json`
//! (`openapi`). Each request has its span, continuing the caller's trace
//! (`trace`).

mod access;
mod applications;
mod appointments;
pub(crate) mod assets;
mod caller;
pub mod client;
pub(crate) mod documents;
pub mod edge;
mod endpoint;
mod error;
mod health;
mod notifications;
pub mod openapi;
mod pin;
mod problem;
mod routes;
mod staff;
mod submissions;
mod tickets;
mod trace;
pub(crate) mod wording;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{dev::Server, web, App, HttpServer};
use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::Verifier;
use crate::broker::users::BrokerUser;
use crate::config::Settings;
use crate::documents::storage::{BlobStore, LocalBlobStore};
use crate::runtime::{Worker, WorkerError};
use crate::store;

pub use caller::Caller;
pub use error::ApiError;
pub(crate) use staff::{cross_origin, needs_secure_cookie};

/// What every handler can reach.
pub struct ApiState {
    pub pool: PgPool,
    /// Hold duration and video links of appointment bookings.
    pub booking: crate::appointments::BookingSettings,
    pub blobs: Arc<dyn BlobStore>,
    pub keys: Verifier,
    pub max_document_bytes: usize,
    /// The staff session cookie is `Secure` whatever the request looks like.
    pub always_secure_cookie: bool,
    pub readiness: health::Readiness,
    /// Call-backs taken on the staff page "Richiamate", held per session.
    pub(crate) held_calls: Arc<staff::HeldCalls>,
    /// How long a request body may take (`HTTP_BODY_TIMEOUT_SECONDS`).
    pub body_timeout: edge::BodyTimeout,
    /// The PIN's keys and lock policy.
    pub pin: Arc<crate::pin::PinService>,
    /// Whose forwarding headers are believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: crate::domain::client_address::TrustedProxies,
}

impl ApiState {
    pub fn new(settings: &Settings, pool: PgPool) -> Self {
        Self {
            pool,
            booking: crate::appointments::BookingSettings::from_settings(settings),
            blobs: Arc::new(LocalBlobStore::new(&settings.document_store_dir)),
            keys: Verifier::from_settings(settings),
            max_document_bytes: settings.document_max_bytes,
            always_secure_cookie: settings.always_secure_cookie(),
            readiness: health::Readiness::new(&settings.broker_addresses_for(BrokerUser::Api)),
            held_calls: Arc::new(staff::HeldCalls::new(
                &settings.broker_addresses_for(BrokerUser::Api),
                std::time::Duration::from_secs(settings.staff_call_answer_seconds),
            )),
            body_timeout: edge::BodyTimeout(std::time::Duration::from_secs(
                settings.http_body_timeout_seconds,
            )),
            pin: Arc::new(crate::pin::PinService::from_settings(settings)),
            trusted_proxies: settings.trusted_proxies.clone(),
        }
    }
}

pub use endpoint::Surface;
pub use routes::mounted;

/// Starts serving on `listener` (port 0 in tests); the returned server runs
/// until stopped through its handle.
pub fn serve(state: ApiState, listener: TcpListener) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(edge::TEXT_BODY_LIMIT)
                    .error_handler(error::json_error),
            )
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .default_service(web::to(edge::not_found))
            // Innermost: the policy sees a request the edge has let in.
            .wrap(actix_web::middleware::from_fn(access::enforce))
            .wrap(actix_web::middleware::from_fn(edge::guard))
            // Outside the edge, so that its refusals are worded too.
            .wrap(actix_web::middleware::from_fn(wording::for_citizens))
            .wrap(tracing_actix())
            .wrap(actix_web::middleware::from_fn(count_request))
            // Outermost: everything the request does is in its span.
            .wrap(actix_web::middleware::from_fn(trace::continue_trace))
            .configure(routes::mount)
    })
    .listen(listener)?
    .shutdown_timeout(10)
    .run();
    Ok(server)
}

/// Counts and times every request by its route's pattern and status.
async fn count_request(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.call(request).await?;
    let metrics = crate::metrics::metrics();
    metrics
        .http_request_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&crate::metrics::HttpLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    Ok(response)
}

/// The access log: method, path (ids only, never the query string, which
/// carries tax codes, positions and search words), status, time.
fn tracing_actix() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new(ACCESS_LOG_FORMAT)
        .custom_request_replace("method", |request| request.method().to_string())
        .custom_request_replace("client", |request| {
            client::of(request.request()).to_string()
        })
}

/// `%U` is the path alone; `%r` (the request line) and `%q` would carry
/// the query string.
/// `client` is the address behind trusted proxies (`http::client`).
const ACCESS_LOG_FORMAT: &str =
    "%{client}xi %{method}xi %U %s %Dms correlation=%{x-correlation-id}i";

/// The API as a supervised worker of `sportello up` / `sportello worker api`.
pub struct ApiWorker {
    settings: Arc<Settings>,
}

impl ApiWorker {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }
}

impl Worker for ApiWorker {
    fn name(&self) -> String {
        "api".into()
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        Box::pin(
            async move {
                let pool = store::connect_lazy(
                    &self.settings.database_url,
                    self.settings.database_pool_size,
                )?;
                let listener = crate::runtime::http_server::listen(&self.settings.http_address)?;
                tracing::info!(address = %self.settings.http_address, "HTTP API listening");
                let server = serve(ApiState::new(&self.settings, pool), listener)
                    .map_err(|e| WorkerError::Other(e.to_string()))?;
                crate::runtime::http_server::serve_until(server, &shutdown).await;
                Ok(())
            }
            .instrument(tracing::info_span!("api")),
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_access_log_writes_no_query_string() {
        let format = super::ACCESS_LOG_FORMAT;
        assert!(format.contains("%U"), "{format}");
        for query_bearing in ["%r", "%q", "%{QUERY_STRING}"] {
            assert!(!format.contains(query_bearing), "{format}");
        }
    }
}
