//! The video-room gateway (`sportello worker gateway`): the citizen's and
//! the operator's pages, the SMS code, the room's WebSocket (WebRTC
//! signalling, chat, controls) and its documents panel. Media flows browser
//! to browser; the gateway never sees it. Run as many processes as needed
//! with no sticky routing: signalling between them goes through RabbitMQ
//! (`relay.rs`), seats and state through PostgreSQL.
//!
//! Layout: `relay.rs` (the broker relay), `signalling.rs` (the WebSocket),
//! `pages.rs` (HTML: welcome, code, operator sign-in, room, the window's
//! page, closed pages; the scripts), `documents.rs` (the documents panel's
//! JSON). The favicon is `http::assets`, shared with the API server. Rules live in
//! `domain::video`, operations in `crate::video`.

mod documents;
mod pages;
pub mod relay;
pub mod signalling;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{dev::Server, web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::appointments::BookingSettings;
use crate::auth::Verifier;
use crate::config::Settings;
use crate::contract::Principal;
use crate::documents::storage::{BlobStore, LocalBlobStore};
use crate::domain::cron::TIME_ZONE;
use crate::domain::refusal::Code;
use crate::domain::video::link::{LinkRefusal, LinkSigner};
use crate::domain::video::rate::RateLimit;
use crate::domain::video::room::ScheduleRefusal;
use crate::domain::video::{turn, Role};
use crate::notifications::sms::{SmsProvider, SmsProviderConfig};
use crate::runtime::{Worker, WorkerError};
use crate::video::{self, Opened, VideoError};
use relay::Relay;

/// The browser's pass to a room: HttpOnly, SameSite=Strict, scoped to the
/// link's own path.
pub const PASS_COOKIE: &str = "sportello_stanza";

/// What every gateway handler can reach.
pub struct GatewayState {
    pub pool: PgPool,
    pub relay: Arc<Relay>,
    pub links: LinkSigner,
    /// Builds links (the citizen's, for the window's notification).
    pub links_settings: BookingSettings,
    /// Key of the codes' HMAC (the link key).
    code_key: Vec<u8>,
    sms: Option<SmsProvider>,
    pub blobs: Arc<dyn BlobStore>,
    pub max_document_bytes: usize,
    pub max_frame_bytes: usize,
    /// How fast one WebSocket may send (a token bucket per connection).
    pub message_rate: RateLimit,
    stun_urls: Vec<String>,
    turn_urls: Vec<String>,
    turn_secret: String,
    keys: Verifier,
    always_secure_cookie: bool,
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl GatewayState {
    pub async fn new(
        settings: &Settings,
        pool: PgPool,
        gateway_id: &str,
    ) -> Result<Self, relay::RelayError> {
        let relay = Relay::start(
            &settings.broker_addresses_for(crate::broker::users::BrokerUser::Gateway),
            gateway_id,
        )
        .await?;
        crate::metrics::metrics()
            .gateway_rooms_limit
            .set(i64::from(settings.gateway_max_rooms));
        let sms = settings.sms_provider_url.as_ref().and_then(|url| {
            SmsProvider::new(SmsProviderConfig {
                url: url.clone(),
                user: settings.sms_provider_user.clone(),
                password: settings.sms_provider_password.clone(),
                sender: settings.sms_sender.clone(),
                max_parts: settings.sms_max_parts,
                timeout: Duration::from_secs(10),
            })
            .map_err(|error| tracing::error!(%error, "SMS provider client"))
            .ok()
        });
        Ok(Self {
            pool,
            relay,
            links: LinkSigner::new(&settings.video_link_secret),
            links_settings: BookingSettings::from_settings(settings),
            code_key: settings.video_link_secret.as_bytes().to_vec(),
            sms,
            blobs: Arc::new(LocalBlobStore::new(&settings.document_store_dir)),
            max_document_bytes: settings.document_max_bytes,
            max_frame_bytes: settings.gateway_max_frame_bytes,
            message_rate: RateLimit {
                per_second: settings.gateway_messages_per_second,
                burst: settings.gateway_message_burst,
            },
            stun_urls: list(&settings.stun_urls),
            turn_urls: list(&settings.turn_urls),
            turn_secret: settings.turn_secret.clone(),
            keys: Verifier::from_settings(settings),
            always_secure_cookie: settings.always_secure_cookie(),
        })
    }

    /// `RTCPeerConnection`'s `iceServers`: STUN as configured, TURN with
    /// credentials valid for an hour.
    pub fn ice_servers(&self, room: Uuid, role: Role) -> Value {
        let mut servers = Vec::new();
        if !self.stun_urls.is_empty() {
            servers.push(json!({ "urls": self.stun_urls }));
        }
        if !self.turn_urls.is_empty() {
            let user = format!("{}-{}", room.simple(), role.as_str());
            let credential = turn::credential(&self.turn_secret, &user, Utc::now());
            servers.push(json!({
                "urls": self.turn_urls,
                "username": credential.username,
                "credential": credential.credential,
            }));
        }
        Value::Array(servers)
    }
}

/// A refusal as JSON (`{"error", "message"}`), for the WebSocket upgrade
/// and the documents panel. Its `message` reaches the page in Italian
/// (`http::wording`): the code's sentence, or `italian` when it says more.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Problem {
    pub status: StatusCode,
    pub code: Code,
    /// The technical English, kept as `detail`.
    pub message: String,
    /// A sentence for the participant more specific than the code's.
    pub italian: Option<String>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, code: Code, message: &str) -> Self {
        Self {
            status,
            code,
            message: message.to_owned(),
            italian: None,
        }
    }

    pub fn bad_request(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Code::BadRequest, message)
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "gateway failure");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "service temporarily unavailable",
        )
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status)
            .insert_header(("cache-control", "no-store"))
            .json(json!({ "error": self.code.as_str(), "message": self.message }));
        if let Some(italian) = &self.italian {
            response
                .extensions_mut()
                .insert(crate::http::wording::Worded(italian.clone()));
        }
        response
    }
}

/// An instant as the pages say it: "10/12/2026 alle 10:15", Rome's clock.
pub(crate) fn italian_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&TIME_ZONE)
        .format("%d/%m/%Y alle %H:%M")
        .to_string()
}

/// Why a link opens nothing, as a status, a code and the Italian sentence
/// the pages show.
pub(crate) fn link_refusal(error: &VideoError) -> (StatusCode, Code, String) {
    match error {
        VideoError::NoRoom => (
            StatusCode::NOT_FOUND,
            Code::InvalidLink,
            "Il collegamento non è valido: usa quello del Centro notifiche.".into(),
        ),
        VideoError::Closed(ScheduleRefusal::NotYet(_)) => (
            StatusCode::FORBIDDEN,
            Code::NotYet,
            "La stanza apre 15 minuti prima dell'appuntamento: torna più tardi.".into(),
        ),
        VideoError::Closed(ScheduleRefusal::Over) => (
            StatusCode::GONE,
            Code::Expired,
            "Il collegamento è scaduto: questa videochiamata è terminata e la pagina non è più disponibile.".into(),
        ),
        VideoError::Closed(ScheduleRefusal::WindowClosed(at)) => (
            StatusCode::GONE,
            Code::Expired,
            format!(
                "La finestra di 72 ore per inviare i documenti si è chiusa il {}: \
                 da questa pagina non è più possibile inviarli.",
                italian_time(*at)
            ),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Unavailable,
            "Il servizio non è al momento disponibile: riprova tra poco.".into(),
        ),
    }
}

/// The room a link opens now, or why not. An authentic link past its own
/// expiry still says why it is over (the window closed on ...).
pub(crate) async fn open_link(state: &GatewayState, token: &str) -> Result<Opened, VideoError> {
    let now = Utc::now();
    match state.links.verify(token, now) {
        Ok(verified) => video::open(&state.pool, verified, now).await,
        Err(LinkRefusal::Expired(expired)) => {
            tracing::info!("video link refused: expired");
            Err(video::expired(&state.pool, expired, now).await)
        }
        Err(refusal) => {
            tracing::info!(%refusal, "video link refused");
            Err(VideoError::NoRoom)
        }
    }
}

/// The room, role and principal of a request bearing the link's token in
/// its path and the pass cookie.
pub(crate) async fn authenticate(
    state: &GatewayState,
    request: &HttpRequest,
    token: &str,
) -> Result<(Opened, Role, Principal), Problem> {
    let opened = open_link(state, token).await.map_err(|error| {
        let (status, code, message) = link_refusal(&error);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return Problem::internal(error);
        }
        Problem {
            status,
            code,
            message: message.clone(),
            italian: Some(message),
        }
    })?;
    let role = opened.token.role;
    let key = request.cookie(PASS_COOKIE).ok_or_else(|| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            Code::NoPass,
            "open the link and sign in first",
        )
    })?;
    let principal =
        crate::store::video::pass(&state.pool, key.value(), opened.appointment.id, role)
            .await
            .map_err(Problem::internal)?
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    Code::NoPass,
                    "open the link and sign in first",
                )
            })?;
    Ok((opened, role, principal))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/health/live")
            .route(web::get().to(|| async { HttpResponse::Ok().body("ok") })),
    )
    .service(web::resource("/static/stanza.js").route(web::get().to(pages::room_script)))
    .service(web::resource("/static/documenti.js").route(web::get().to(pages::documents_script)))
    .service(web::resource("/favicon.ico").route(web::get().to(crate::http::assets::favicon)))
    .service(web::resource("/stanza/{token}").route(web::get().to(pages::room)))
    .service(web::resource("/stanza/{token}/codice").route(web::post().to(pages::send_code)))
    .service(web::resource("/stanza/{token}/accesso").route(web::post().to(pages::redeem_code)))
    .service(
        web::resource("/stanza/{token}/operatore").route(web::post().to(pages::operator_sign_in)),
    )
    .service(web::resource("/stanza/{token}/ws").route(web::get().to(signalling::socket)))
    .service(
        web::resource("/stanza/{token}/documenti")
            .route(web::get().to(documents::list))
            .route(web::post().to(documents::upload)),
    )
    .service(
        web::resource("/stanza/{token}/documenti/{document_id}")
            .route(web::get().to(documents::download))
            .route(web::delete().to(documents::delete)),
    )
    .service(
        web::resource("/stanza/{token}/protocollazione").route(web::post().to(documents::register)),
    )
    .service(
        web::resource("/stanza/{token}/ricevute/{registration_id}")
            .route(web::get().to(documents::receipt)),
    );
}

/// Serves the gateway on `listener` until stopped through its handle.
pub fn serve(state: GatewayState, listener: TcpListener) -> std::io::Result<Server> {
    serve_data(web::Data::new(state), listener)
}

/// Keeps this process's seats alive while their WebSockets are open.
pub async fn heartbeat(state: web::Data<GatewayState>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                let connections = state.relay.connections().await;
                if let Err(error) = crate::store::video::heartbeat(&state.pool, &connections).await {
                    tracing::warn!(%error, "seat heartbeat failed");
                }
            }
        }
    }
}

/// A gateway process as a supervised worker.
pub struct GatewayWorker {
    settings: Arc<Settings>,
}

impl GatewayWorker {
    pub fn new(settings: Arc<Settings>) -> Self {
        Self { settings }
    }
}

impl Worker for GatewayWorker {
    fn name(&self) -> String {
        "gateway".into()
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        Box::pin(
            async move {
                let pool = crate::store::connect_lazy(
                    &self.settings.database_url,
                    self.settings.database_pool_size,
                )?;
                let gateway_id = Uuid::new_v4().simple().to_string();
                let state = GatewayState::new(&self.settings, pool, &gateway_id)
                    .await
                    .map_err(|e| WorkerError::Other(e.to_string()))?;
                let listener = crate::runtime::http_server::listen(&self.settings.gateway_address)?;
                tracing::info!(address = %self.settings.gateway_address, %gateway_id, "video gateway listening");
                let relay = state.relay.clone();
                let state = web::Data::new(state);
                let server = serve_data(state.clone(), listener)
                    .map_err(|e| WorkerError::Other(e.to_string()))?;
                let beat = actix_rt::spawn(heartbeat(state, shutdown.clone()));
                let lost = shutdown.child_token();
                let watch = {
                    let lost = lost.clone();
                    actix_rt::spawn(async move {
                        while relay.is_connected() {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                        lost.cancel();
                    })
                };
                crate::runtime::http_server::serve_until(server, &lost).await;
                beat.abort();
                watch.abort();
                if shutdown.is_cancelled() {
                    Ok(())
                } else {
                    Err(WorkerError::Other("the gateway lost its broker connection".into()))
                }
            }
            .instrument(tracing::info_span!("gateway")),
        )
    }
}

/// The access log names the route, never the path: the path carries the
/// join link's token.
fn access_log() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%{method}xi %{route}xi %s %Dms")
        .custom_request_replace("method", |request| request.method().to_string())
        .custom_request_replace("route", |request| {
            request
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned())
        })
}

/// `serve` for state already shared (the heartbeat holds it too).
pub fn serve_data(
    state: web::Data<GatewayState>,
    listener: TcpListener,
) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::FormConfig::default().limit(crate::http::edge::TEXT_BODY_LIMIT))
            .app_data(web::JsonConfig::default().limit(crate::http::edge::TEXT_BODY_LIMIT))
            .default_service(web::to(crate::http::edge::not_found))
            .wrap(actix_web::middleware::from_fn(crate::http::edge::guard))
            // Both participants read Italian, the edge's refusals included.
            .wrap(actix_web::middleware::from_fn(crate::http::wording::always))
            .wrap(access_log())
            .configure(routes)
    })
    .listen(listener)?
    .shutdown_timeout(5)
    .run();
    Ok(server)
}
