//! RabbitMQ: connection, topology, confirmed publishing, dead-lettering.

pub mod callbacks;
pub mod dead_letter;
pub mod management;
pub mod names;
pub mod publisher;
pub mod replies;
pub mod topology;
pub mod watch;

use lapin::{Connection, ConnectionProperties};

/// Opens a connection named after the process role, so operators can tell
/// connections apart in the management UI.
pub async fn connect(amqp_url: &str, name: &str) -> Result<Connection, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(amqp_url, properties).await
}
