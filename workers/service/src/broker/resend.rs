//! Publishing that outlives a broker node: a message counts as sent only
//! once confirmed; a nack, a lost connection or a confirm that never comes
//! means "not sent", and the message is sent again, under the same message
//! id, on a new connection to the next node that answers
//! (`nodes::connect`). The intake's inbox makes such a resend a no-op when
//! the first copy did arrive.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::publisher::{OutgoingMessage, PendingConfirm, PublishError, Publisher};

/// How `send_all` paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Resending {
    /// Messages sent but not yet confirmed, at most.
    pub window: usize,
    /// How long a confirm may take before its message counts as not sent.
    pub confirm_patience: Duration,
    /// Give up after this long without a single confirm.
    pub give_up_after: Duration,
}

impl Default for Resending {
    fn default() -> Self {
        Resending {
            window: 1_000,
            // Shorter than a worker's patience: a sender that knows it will
            // resend loses less time to a channel stuck on a lost leader.
            confirm_patience: Duration::from_secs(10),
            give_up_after: Duration::from_secs(300),
        }
    }
}

/// What sending took.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Sent {
    pub confirmed: usize,
    /// Sends of a message already sent once (after a nack or a lost confirm).
    pub resent: usize,
    /// Nacks received (a full queue, a queue without a leader for a moment).
    pub nacked: usize,
    /// Connections opened after the first (a node lost, or its channel).
    pub reconnects: usize,
    /// The longest time without any confirm while messages were pending.
    pub longest_wait: Duration,
}

/// The pause before reconnecting after `failures` failures in a row:
/// 100 ms doubling up to 5 s.
pub fn reconnect_pause(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.saturating_sub(1).min(6)))
        .min(Duration::from_secs(5))
}

/// Sends every message and returns once each was confirmed, resending as
/// needed; `progress` counts confirmed messages as they come (for a watcher
/// on another task). Fails when no node answers the first connection, on an
/// error no resend can fix (unroutable), or after `give_up_after` without
/// progress.
pub async fn send_all(
    addresses: &str,
    name: &str,
    messages: &[OutgoingMessage],
    options: Resending,
    progress: &AtomicUsize,
) -> Result<Sent, PublishError> {
    let mut sent = Sent::default();
    let mut todo: VecDeque<usize> = (0..messages.len()).collect();
    let mut ever_sent = vec![false; messages.len()];
    let mut failures = 0u32;
    let mut nacks_in_a_row = 0u32;
    let mut resend_after = Instant::now();
    let mut last_progress = Instant::now();
    let mut connections = 0usize;
    while !todo.is_empty() {
        if last_progress.elapsed() > options.give_up_after {
            return Err(PublishError::Unconfirmed(messages[todo[0]].message_id));
        }
        let connection = match super::connect(addresses, name).await {
            Ok(connection) => connection,
            // A broker never reached is a wrong address, not a lost node.
            Err(error) if connections == 0 => return Err(PublishError::Amqp(error)),
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, failures, "no broker node answers; trying again");
                tokio::time::sleep(reconnect_pause(failures)).await;
                continue;
            }
        };
        connections += 1;
        let opened = tokio::time::timeout(options.confirm_patience, Publisher::open(&connection));
        let publisher = match opened.await {
            Ok(Ok(publisher)) => publisher,
            Ok(Err(error)) if connections == 1 => return Err(PublishError::Amqp(error)),
            Err(_) => {
                failures += 1;
                tracing::warn!("no confirmed channel in time; reconnecting");
                continue;
            }
            Ok(Err(error)) => {
                failures += 1;
                tracing::warn!(%error, "cannot open a confirmed channel; reconnecting");
                tokio::time::sleep(reconnect_pause(failures)).await;
                continue;
            }
        };
        tracing::debug!(pending = todo.len(), connection = connections, "sending");
        let mut in_flight: VecDeque<(usize, PendingConfirm)> = VecDeque::new();
        let broken = 'round: loop {
            // After a nack, nothing new goes out before `resend_after`; the
            // confirms already on their way are still collected meanwhile.
            while in_flight.len() < options.window.max(1) && Instant::now() >= resend_after {
                let Some(index) = todo.pop_front() else { break };
                if std::mem::replace(&mut ever_sent[index], true) {
                    sent.resent += 1;
                }
                match publisher
                    .send_within(&messages[index], options.confirm_patience)
                    .await
                {
                    Ok(pending) => in_flight.push_back((index, pending)),
                    Err(error) => {
                        todo.push_front(index);
                        break 'round Some(error);
                    }
                }
            }
            let Some((index, pending)) = in_flight.pop_front() else {
                if todo.is_empty() {
                    break None;
                }
                tokio::time::sleep_until(resend_after.into()).await;
                continue;
            };
            let waited = Instant::now();
            let outcome = pending.wait_within(options.confirm_patience).await;
            sent.longest_wait = sent.longest_wait.max(waited.elapsed());
            match outcome {
                Ok(()) => {
                    sent.confirmed += 1;
                    progress.fetch_add(1, Ordering::Relaxed);
                    last_progress = Instant::now();
                    failures = 0;
                    nacks_in_a_row = 0;
                }
                // Back-pressure (a full queue) or a queue without a leader
                // for the moment: the same message again, a little later.
                // Nacks and nothing confirmed for a whole patience: the
                // channel may be stuck on a leader that is gone (RabbitMQ
                // 3.10 keeps nacking there); a new connection asks afresh.
                Err(error @ PublishError::Nacked(_))
                    if last_progress.elapsed() > options.confirm_patience =>
                {
                    todo.push_front(index);
                    break 'round Some(error);
                }
                Err(PublishError::Nacked(id)) => {
                    todo.push_back(index);
                    nacks_in_a_row += 1;
                    sent.nacked += 1;
                    let pause = reconnect_pause(nacks_in_a_row).min(Duration::from_secs(1));
                    resend_after = Instant::now() + pause;
                    tracing::debug!(message_id = %id, ?pause, "nacked; sending it again");
                }
                Err(error) if error.is_worth_resending() => {
                    todo.push_front(index);
                    break Some(error);
                }
                Err(error) => return Err(error),
            }
        };
        match broken {
            None if todo.is_empty() => {
                super::close_quietly(&connection, "sent").await;
            }
            None => {}
            Some(error) => {
                // Whatever is still unconfirmed was not sent, in order.
                for (index, _) in in_flight.into_iter().rev() {
                    todo.push_front(index);
                }
                failures += 1;
                tracing::warn!(%error, pending = todo.len(), "lost the broker node; resending what was not confirmed");
                super::close_quietly(&connection, "reconnecting").await;
                tokio::time::sleep(reconnect_pause(failures)).await;
            }
        }
    }
    sent.reconnects = connections.saturating_sub(1);
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::reconnect_pause;
    use std::time::Duration;

    #[test]
    fn reconnecting_backs_off_doubling_to_five_seconds() {
        let pauses: Vec<_> = [1, 2, 3, 7, 30]
            .iter()
            .map(|&n| reconnect_pause(n).as_millis())
            .collect();
        assert_eq!(pauses, [100, 200, 400, 5000, 5000]);
        assert_eq!(reconnect_pause(0), Duration::from_millis(100));
    }
}
