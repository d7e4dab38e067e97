//! Stopping an actix-web server with the process: shared by the API and the
//! metrics workers (it sits here, below both, so neither imports the other).

use actix_web::dev::Server;
use tokio_util::sync::CancellationToken;

/// Runs `server` until `shutdown`, then stops it gracefully: requests in
/// flight finish, no new ones are accepted.
pub async fn serve_until(server: Server, shutdown: &CancellationToken) {
    let handle = server.handle();
    let running = actix_rt::spawn(server);
    shutdown.cancelled().await;
    handle.stop(true).await;
    let _ = running.await;
}
