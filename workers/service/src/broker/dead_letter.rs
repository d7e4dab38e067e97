//! Dead-lettering with a reason. Rejecting a message would dead-letter it too,
//! but without saying why; so the consumer republishes it to the dead-letter
//! exchange with the reason in a header, and acks the original only after the
//! broker confirmed the copy.

use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable, LongString};
use uuid::Uuid;

use super::names::*;
use super::publisher::{OutgoingMessage, PublishError, Publisher};

/// Longest reason kept in the header: enough to act on, never the whole payload.
const MAX_REASON_LEN: usize = 2000;

/// `code`, when the refusal has one, is the stable code a channel reads
/// back as the message's fate (`GET /submissions`).
pub fn dead_letter_copy(
    delivery: &Delivery,
    queue: &str,
    code: Option<&str>,
    reason: &str,
) -> OutgoingMessage {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    let mut reason = reason.to_owned();
    if reason.len() > MAX_REASON_LEN {
        let mut cut = MAX_REASON_LEN;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert(REASON_HEADER.into(), text(&reason));
    if let Some(code) = code {
        headers.insert(REASON_CODE_HEADER.into(), text(code));
    }
    headers.insert(ORIGINAL_QUEUE_HEADER.into(), text(queue));
    headers.insert(
        ORIGINAL_EXCHANGE_HEADER.into(),
        text(delivery.exchange.as_str()),
    );
    headers.insert(
        ORIGINAL_ROUTING_KEY_HEADER.into(),
        text(delivery.routing_key.as_str()),
    );
    headers.insert(
        FAILED_AT_HEADER.into(),
        text(&chrono::Utc::now().to_rfc3339()),
    );
    let property = |value: Option<&lapin::types::ShortString>| {
        value.map(|v| v.as_str().to_owned()).unwrap_or_default()
    };
    let sent_id = property(delivery.properties.message_id().as_ref());
    if !sent_id.is_empty() {
        headers.insert(ORIGINAL_MESSAGE_ID_HEADER.into(), text(&sent_id));
    }
    OutgoingMessage {
        exchange: DEAD_LETTER_EXCHANGE.to_owned(),
        routing_key: delivery.routing_key.as_str().to_owned(),
        message_id: property(delivery.properties.message_id().as_ref())
            .parse()
            .unwrap_or_else(|_| Uuid::now_v7()),
        message_type: property(delivery.properties.kind().as_ref()),
        correlation_id: property(delivery.properties.correlation_id().as_ref()),
        body: delivery.data.clone(),
        headers,
        mandatory: true,
    }
}

/// Dead-letters `delivery` and waits for the broker's confirm. The caller
/// acks the original afterwards.
pub async fn send(
    publisher: &Publisher,
    delivery: &Delivery,
    queue: &str,
    reason: &str,
) -> Result<(), PublishError> {
    publisher
        .send(&dead_letter_copy(delivery, queue, None, reason))
        .await?
        .wait()
        .await
}

/// How many times the broker has delivered this message before (quorum queues).
pub fn previous_deliveries(delivery: &Delivery) -> u64 {
    header_u64(
        delivery.properties.headers().as_ref(),
        DELIVERY_COUNT_HEADER,
    )
    .unwrap_or(0)
}

pub fn header_str(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn header_u64(headers: Option<&FieldTable>, name: &str) -> Option<u64> {
    match headers?.inner().get(name)? {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        _ => None,
    }
}

/// The reason the broker itself recorded (`x-death`), e.g. `delivery_limit`.
pub fn broker_death_reason(headers: Option<&FieldTable>) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = headers?.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    header_str(Some(first), "reason").map(|reason| format!("broker: {reason}"))
}
