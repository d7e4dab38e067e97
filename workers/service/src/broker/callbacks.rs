//! The phone call-back queues: one quorum queue per office and desk,
//! `sportello.callbacks.<aoo>.<desk kind>`, bound to the call-backs exchange
//! with routing key `<aoo>.<desk kind>`.
//!
//! Offices and desks are data, so these queues are declared from the
//! calendars (by the appointments worker at start, and again before a call
//! is published), not listed in `definitions.json`. A call for a desk whose
//! queue is missing is not lost: the exchange's alternate exchange keeps it
//! in `sportello.callbacks.unrouted`.

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};

use super::names::{callback_queue, CALLBACKS_EXCHANGE, DEAD_LETTER_EXCHANGE};

/// Deliveries of one call before the broker gives up on it (agents that
/// crash while holding it): generous, since every agent that disconnects
/// mid-call hands it back.
const CALL_DELIVERY_LIMIT: i64 = 50;

/// The routing key of an office's desk on the call-backs exchange.
pub fn routing_key(office_aoo: &str, desk_kind: &str) -> String {
    format!("{office_aoo}.{desk_kind}")
}

/// Declares (idempotently) the call-back queue of one office's desk.
pub async fn declare_queue(
    channel: &lapin::Channel,
    office_aoo: &str,
    desk_kind: &str,
) -> Result<String, lapin::Error> {
    let queue = callback_queue(office_aoo, desk_kind);
    let mut arguments = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    arguments.insert("x-queue-type".into(), text("quorum"));
    arguments.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(CALL_DELIVERY_LIMIT),
    );
    arguments.insert("x-dead-letter-exchange".into(), text(DEAD_LETTER_EXCHANGE));
    arguments.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    arguments.insert("x-overflow".into(), text("reject-publish"));
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            CALLBACKS_EXCHANGE.into(),
            routing_key(office_aoo, desk_kind).as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(queue)
}
