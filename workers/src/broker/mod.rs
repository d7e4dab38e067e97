//! RabbitMQ: connection, topology, confirmed publishing, dead-lettering.

pub mod callbacks;
pub mod dead_letter;
pub mod management;
pub mod names;
pub mod publisher;
pub mod replies;
pub mod topology;
pub mod watch;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

/// Opens a connection named after the process role, so operators can tell
/// connections apart in the management UI.
pub async fn connect(amqp_url: &str, name: &str) -> Result<Connection, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(amqp_url, properties).await
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
