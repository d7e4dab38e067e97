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
