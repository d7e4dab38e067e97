//! A broker of several nodes (a RabbitMQ cluster): connecting to the first
//! node that answers.
//!
//! A broker address is one AMQP URL or several separated by commas
//! (`AMQP_URLS`). Each process remembers, per address list, the node that
//! answered last and tries it first; when it refuses or does not answer
//! within `CONNECT_TIMEOUT` the next one is tried, round the list. A worker
//! whose connection is lost fails and is restarted by its supervisor with
//! backoff (`runtime::supervisor`), so "reconnect to the next node with
//! backoff" is that restart meeting a dead node first. Quorum queues keep
//! their messages and consumers across the change of leader; publishers
//! resend what was not confirmed (`broker::resend`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

/// How long one node may take to accept a connection before the next is
/// tried (a node cut off by the network answers nothing at all).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The AMQP URLs of `addresses`: one URL, or several separated by commas,
/// blanks around them ignored. A comma inside a password is written `%2C`.
pub fn split(addresses: &str) -> Vec<&str> {
    addresses
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// One URL as a broker address: a comma of its own is percent-encoded
/// (AMQP URLs are percent-decoded), so it is never read as a separator.
pub fn single(url: &str) -> String {
    url.replace(',', "%2C")
}

/// The order in which to try `count` nodes, starting with `preferred`.
pub fn attempt_order(count: usize, preferred: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |offset| (preferred + offset) % count.max(1))
}

/// The node of each address list that answered last, in this process.
fn preferred() -> &'static Mutex<HashMap<String, usize>> {
    static PREFERRED: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    PREFERRED.get_or_init(Default::default)
}

fn remembered(addresses: &str) -> usize {
    preferred()
        .lock()
        .map(|map| map.get(addresses).copied().unwrap_or(0))
        .unwrap_or(0)
}

fn remember(addresses: &str, index: usize) {
    if let Ok(mut map) = preferred().lock() {
        map.insert(addresses.to_owned(), index);
    }
}

/// Opens a connection to the first node of `addresses` that answers, the
/// one that answered last tried first. The error is the last node's.
pub async fn connect(addresses: &str, name: &str) -> Result<Connection, lapin::Error> {
    let connected = connect_to_any(addresses, name).await;
    // Where the event happens: every worker's (re)connection passes here.
    crate::metrics::metrics()
        .broker_unreachable
        .set(i64::from(connected.is_err()));
    connected
}

async fn connect_to_any(addresses: &str, name: &str) -> Result<Connection, lapin::Error> {
    let urls = split(addresses);
    if urls.len() <= 1 {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        return Connection::connect(urls.first().copied().unwrap_or(addresses), properties).await;
    }
    let mut last_error = None;
    for index in attempt_order(urls.len(), remembered(addresses)) {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(urls[index], properties),
        );
        let error = match attempt.await {
            Ok(Ok(connection)) => {
                remember(addresses, index);
                tracing::debug!(
                    connection = name,
                    node = index + 1,
                    "connected to the broker"
                );
                return Ok(connection);
            }
            Ok(Err(error)) => error,
            Err(_) => lapin::Error::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {CONNECT_TIMEOUT:?}"),
            )),
        };
        tracing::warn!(connection = name, node = index + 1, %error, "broker node unavailable; trying the next");
        last_error = Some(error);
    }
    Err(last_error.unwrap_or_else(|| {
        lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no broker address",
        ))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_list_is_split_on_commas_and_a_single_url_keeps_its_comma() {
        assert_eq!(
            split("amqp://a:1@n1:5672/v, amqp://a:1@n2:5672/v,,"),
            ["amqp://a:1@n1:5672/v", "amqp://a:1@n2:5672/v"]
        );
        let url = single("amqp://app:pa,ss@n1/v");
        assert_eq!(split(&url), ["amqp://app:pa%2Css@n1/v"]);
    }

    #[test]
    fn nodes_are_tried_from_the_one_that_answered_last_round_the_list() {
        assert_eq!(attempt_order(3, 0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(attempt_order(3, 2).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(attempt_order(1, 0).collect::<Vec<_>>(), [0]);
    }

    #[tokio::test]
    async fn a_node_that_refuses_is_skipped() {
        // Port 1 refuses at once: every node down is the last node's error.
        let error = connect("amqp://127.0.0.1:1/v,amqp://127.0.0.1:1/w", "test")
            .await
            .unwrap_err();
        assert!(
            matches!(error.kind(), lapin::ErrorKind::IOError(_)),
            "{error}"
        );
    }
}
