//! Stopping an actix-web server with the process: shared by the API and the
//! metrics workers (it sits here, below both, so neither imports the other).

use std::net::TcpListener;

use actix_web::dev::Server;
use tokio_util::sync::CancellationToken;

use super::WorkerError;

/// Listens on `address`, or says which address could not be had.
pub fn listen(address: &str) -> Result<TcpListener, WorkerError> {
    TcpListener::bind(address)
        .map_err(|e| WorkerError::Other(format!("cannot listen on {address}: {e}")))
}

/// Runs `server` until `shutdown`, then stops it gracefully: requests in
/// flight finish, no new ones are accepted.
pub async fn serve_until(server: Server, shutdown: &CancellationToken) {
    let handle = server.handle();
    let running = actix_rt::spawn(server);
    shutdown.cancelled().await;
    handle.stop(true).await;
    let _ = running.await;
}
