//! The HTTP API (actix-web): documents of a case, registrations and their
//! receipts, tickets; and the staff pages. Handlers are thin: they authenticate the caller, read the
//! request, call `documents`, and map its errors to statuses.

mod appointments;
mod caller;
mod documents;
mod error;
mod health;
mod notifications;
mod staff;
mod tickets;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{dev::Server, web, App, HttpResponse, HttpServer};
use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::Verifier;
use crate::config::Settings;
use crate::documents::storage::{BlobStore, LocalBlobStore};
use crate::runtime::{Worker, WorkerError};
use crate::store;

pub use caller::Caller;
pub use error::ApiError;

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
            readiness: health::Readiness::new(&settings.amqp_url),
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/health",
        web::get().to(|| async { HttpResponse::Ok().body("ok") }),
    )
    .route("/health/live", web::get().to(health::live))
    .route("/health/ready", web::get().to(health::ready))
    .service(
        web::resource("/cases/{case_id}/documents")
            .route(web::get().to(documents::list))
            .route(web::post().to(documents::upload)),
    )
    .route(
        "/cases/{case_id}/registrations",
        web::post().to(documents::send_for_registration),
    )
    .route(
        "/documents/{document_id}/content",
        web::get().to(documents::download),
    )
    .route(
        "/documents/{document_id}/history",
        web::get().to(documents::history),
    )
    .route(
        "/documents/{document_id}",
        web::delete().to(documents::delete),
    )
    .route(
        "/registrations/{registration_id}/receipt.pdf",
        web::get().to(documents::receipt),
    )
    .route(
        "/registrations/{registration_id}/annulment",
        web::post().to(documents::annul),
    )
    .route("/tickets", web::get().to(tickets::search))
    .route("/tickets/{ticket_id}", web::get().to(tickets::detail))
    .route(
        "/tickets/{ticket_id}/take-in-charge",
        web::post().to(tickets::take_in_charge),
    )
    .route(
        "/tickets/{ticket_id}/comments",
        web::post().to(tickets::comment),
    )
    .route("/tickets/{ticket_id}/close", web::post().to(tickets::close))
    .route(
        "/tickets/{ticket_id}/reassign",
        web::post().to(tickets::reassign),
    )
    .route(
        "/tickets/{ticket_id}/notifications",
        web::get().to(notifications::ticket_log),
    )
    .route(
        "/appointments/{appointment_id}/notifications",
        web::get().to(notifications::appointment_log),
    )
    .route("/offices", web::get().to(tickets::offices))
    .route("/notifications", web::get().to(notifications::centre))
    .service(
        web::resource("/notifications/{notification_id}/read")
            .route(web::put().to(notifications::mark_read))
            .route(web::delete().to(notifications::mark_unread)),
    )
    .service(
        web::resource("/me/contacts")
            .route(web::get().to(notifications::contacts))
            .route(web::put().to(notifications::save_contacts)),
    )
    .configure(appointments::routes)
    .configure(staff::routes);
}

/// Starts serving on `listener` (port 0 in tests); the returned server runs
/// until stopped through its handle.
pub fn serve(state: ApiState, listener: TcpListener) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(64 * 1024)
                    .error_handler(error::json_error),
            )
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .wrap(tracing_actix())
            .wrap(actix_web::middleware::from_fn(count_request))
            .configure(routes)
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

fn tracing_actix() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%r %s %Dms correlation=%{x-correlation-id}i")
}

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
                let listener = TcpListener::bind(&self.settings.http_address).map_err(|e| {
                    WorkerError::Other(format!(
                        "cannot listen on {}: {e}",
                        self.settings.http_address
                    ))
                })?;
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
