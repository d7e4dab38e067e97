//! RabbitMQ: connection, topology, confirmed publishing, dead-lettering,
//! the trace context in headers.

pub mod callbacks;
pub mod dead_letter;
pub mod management;
pub use sportello_contract::names;
pub mod nodes;
pub mod publisher;
pub mod replies;
pub mod resend;
pub mod topology;
pub mod trace;
pub mod users;
pub mod watch;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection};

/// Opens a connection named after the process role, so operators can tell
/// connections apart in the management UI. `addresses` is one AMQP URL or a
/// cluster's, comma separated: the first node that answers is used
/// (`nodes::connect`).
pub async fn connect(addresses: &str, name: &str) -> Result<Connection, lapin::Error> {
    nodes::connect(addresses, name).await
}

/// How long a close may wait for the broker's close-ok.
const CLOSE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Closes `connection` without waiting past [`CLOSE_PATIENCE`]: the close
/// of a connection whose node was just killed can wait for an answer that
/// never comes, and whoever closes it has nothing left to learn from it.
pub async fn close_quietly(connection: &Connection, reason: &str) {
    let closing = connection.close(200, reason.into());
    if tokio::time::timeout(CLOSE_PATIENCE, closing).await.is_err() {
        tracing::debug!(
            reason,
            "the broker did not answer the close; leaving the connection"
        );
    }
}

/// Declares `name` as this connection's own queue: exclusive, deleted with
/// the connection (a watcher's, a gateway process's), never shared.
pub async fn declare_private_queue(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}
