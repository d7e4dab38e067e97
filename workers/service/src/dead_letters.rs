//! `sportello dead-letters`: the integrator's error-queue tools, as
//! MassTransit's and NServiceBus's are. Dead letters are *collected* once
//! from the broker's `sportello.dead-letter` queue into PostgreSQL (each
//! acked after its row committed, so none is lost and none is read again);
//! from then on listing (with the total, pages and a stable order), showing,
//! replaying and discarding work on the kept copy and never touch a broker
//! message, so no delivery count rises however often one looks.
//!
//! Replaying publishes the message again, with its own message id, type and
//! correlation id, to the exchange and routing key it was first sent with
//! (the intake for a channel's message), once: the row records when, and a
//! second replay is refused. Discarding only records when; nothing is deleted.

use chrono::{DateTime, Utc};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::broker::dead_letter::{broker_death_reason, header_str};
use crate::broker::names::*;
use crate::broker::publisher::Publisher;
use crate::store::dead_letters::{self as store, DeadLetter, NewDeadLetter};

/// Most letters collected in one call (the rest wait for the next).
const MAX_COLLECT: usize = 100_000;
pub const DEFAULT_PER_PAGE: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("no dead letter #{0}")]
    NotFound(i64),
    #[error("dead letter #{id} was already replayed at {at}; it is replayed once")]
    AlreadyReplayed { id: i64, at: DateTime<Utc> },
    #[error("dead letter #{id} was discarded at {at}")]
    Discarded { id: i64, at: DateTime<Utc> },
    #[error("page must be 1 or more, and per page between 1 and 500")]
    Paging,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm the replay of #{0}")]
    NotConfirmed(i64),
}

/// Moves every dead letter waiting in the broker's queue into the table;
/// returns how many were new.
pub async fn collect(amqp_url: &str, pool: &PgPool) -> Result<usize, DeadLetterError> {
    let connection = crate::broker::connect(amqp_url, "sportello-dead-letters").await?;
    let channel = connection.create_channel().await?;
    let mut kept = 0;
    for _ in 0..MAX_COLLECT {
        let Some(message) = channel
            .basic_get(DEAD_LETTER_QUEUE.into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = &message.delivery;
        let letter = from_delivery(
            delivery.properties.headers().as_ref(),
            &Properties {
                message_id: delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|v| v.as_str()),
                message_type: delivery.properties.kind().as_ref().map(|v| v.as_str()),
                correlation_id: delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|v| v.as_str()),
            },
            delivery.routing_key.as_str(),
            &delivery.data,
        );
        if store::keep(pool, &letter).await? {
            kept += 1;
        }
        channel
            .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
            .await?;
    }
    let _ = channel.close(200, "collected".into()).await;
    crate::broker::close_quietly(&connection, "collected").await;
    Ok(kept)
}

/// The AMQP properties a dead letter is listed by.
pub struct Properties<'a> {
    pub message_id: Option<&'a str>,
    pub message_type: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
}

/// A dead-lettered message as kept: listed under the id its sender gave it
/// (the header the dead-lettering recorded, else the property).
pub fn from_delivery(
    headers: Option<&FieldTable>,
    properties: &Properties<'_>,
    routing_key: &str,
    body: &[u8],
) -> NewDeadLetter {
    let header = |name: &str| header_str(headers, name);
    let message_id = header(ORIGINAL_MESSAGE_ID_HEADER)
        .or_else(|| properties.message_id.map(str::to_owned))
        .unwrap_or_default();
    let routing_key = header(ORIGINAL_ROUTING_KEY_HEADER).unwrap_or_else(|| routing_key.into());
    let queue = header(ORIGINAL_QUEUE_HEADER).unwrap_or_default();
    let exchange = header(ORIGINAL_EXCHANGE_HEADER).unwrap_or_default();
    let reason = header(REASON_HEADER)
        .or_else(|| broker_death_reason(headers))
        .unwrap_or_else(|| "unknown".into());
    let failed_at_raw = header(FAILED_AT_HEADER).unwrap_or_default();
    let failed_at = DateTime::parse_from_rfc3339(&failed_at_raw)
        .ok()
        .map(|at| at.with_timezone(&Utc));
    let fingerprint = hex::encode(
        Sha256::new()
            .chain_update(queue.as_bytes())
            .chain_update([0])
            .chain_update(routing_key.as_bytes())
            .chain_update([0])
            .chain_update(failed_at_raw.as_bytes())
            .chain_update([0])
            .chain_update(reason.as_bytes())
            .chain_update([0])
            .chain_update(message_id.as_bytes())
            .chain_update([0])
            .chain_update(body)
            .finalize(),
    );
    NewDeadLetter {
        message_id,
        message_type: properties.message_type.unwrap_or_default().to_owned(),
        correlation_id: properties.correlation_id.unwrap_or_default().to_owned(),
        exchange,
        routing_key,
        queue,
        reason,
        failed_at,
        headers: headers.map(table_json).unwrap_or(serde_json::Value::Null),
        body: body.to_vec(),
        fingerprint,
    }
}

fn table_json(table: &FieldTable) -> serde_json::Value {
    serde_json::Value::Object(
        table
            .inner()
            .iter()
            .map(|(key, value)| (key.as_str().to_owned(), value_json(value)))
            .collect(),
    )
}

fn value_json(value: &AMQPValue) -> serde_json::Value {
    use serde_json::json;
    match value {
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldArray(items) => {
            serde_json::Value::Array(items.as_slice().iter().map(value_json).collect())
        }
        AMQPValue::FieldTable(table) => table_json(table),
        other => json!(format!("{other:?}")),
    }
}

/// One page of the listing.
#[derive(Debug, Clone)]
pub struct Listing {
    pub letters: Vec<DeadLetter>,
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
    pub all: bool,
}

pub async fn list(
    pool: &PgPool,
    page: u32,
    per_page: u32,
    all: bool,
) -> Result<Listing, DeadLetterError> {
    if page == 0 || !(1..=500).contains(&per_page) {
        return Err(DeadLetterError::Paging);
    }
    let offset = i64::from(page - 1) * i64::from(per_page);
    let (letters, total) = store::page(pool, all, offset, i64::from(per_page)).await?;
    Ok(Listing {
        letters,
        total,
        page,
        per_page,
        all,
    })
}

/// The listing as the terminal shows it: a header with the total and the
/// range, one line per letter, and how to see the next page.
pub fn render_listing(listing: &Listing) -> String {
    let which = if listing.all { "" } else { " open" };
    if listing.letters.is_empty() {
        return format!(
            "{} dead letters{which}; none on page {}\n",
            listing.total, listing.page
        );
    }
    let first = i64::from(listing.page - 1) * i64::from(listing.per_page) + 1;
    let last = first + listing.letters.len() as i64 - 1;
    let mut text = format!(
        "{}{which} dead letters, {first}-{last} shown (oldest first)\n",
        listing.total
    );
    for letter in &listing.letters {
        let state = match (letter.replayed_at, letter.discarded_at) {
            (Some(_), _) => " [replayed]",
            (_, Some(_)) => " [discarded]",
            _ => "",
        };
        let message_id = if letter.message_id.is_empty() {
            "-"
        } else {
            &letter.message_id
        };
        text.push_str(&format!(
            "#{} {} {} {}{state} reason: {}\n",
            letter.id,
            letter
                .failed_at
                .unwrap_or(letter.collected_at)
                .format("%Y-%m-%dT%H:%M:%SZ"),
            message_id,
            letter.routing_key,
            letter.reason
        ));
    }
    if last < listing.total {
        text.push_str(&format!(
            "more: sportello dead-letters list --page {}{}\n",
            listing.page + 1,
            if listing.per_page == DEFAULT_PER_PAGE {
                String::new()
            } else {
                format!(" --per-page {}", listing.per_page)
            }
        ));
    }
    text.push_str("details: sportello dead-letters show ID\n");
    text
}

/// Every detail of one letter, its body pretty-printed when it is JSON.
pub async fn show(pool: &PgPool, id: i64) -> Result<String, DeadLetterError> {
    let letter = store::find(pool, id)
        .await?
        .ok_or(DeadLetterError::NotFound(id))?;
    Ok(render_letter(&letter))
}

pub fn render_letter(letter: &DeadLetter) -> String {
    let body = serde_json::from_slice::<serde_json::Value>(&letter.body)
        .ok()
        .and_then(|json| serde_json::to_string_pretty(&json).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(&letter.body).into_owned());
    let when = |at: Option<DateTime<Utc>>| at.map(|at| at.to_rfc3339()).unwrap_or("-".into());
    format!(
        "dead letter #{}\nmessage id:     {}\ntype:           {}\ncorrelation id: {}\n\
         sent to:        {} (routing key {})\nfailed in:      {}\nfailed at:      {}\n\
         collected at:   {}\nreplayed at:    {}\ndiscarded at:   {}\nreason:         {}\n\
         body:\n{body}\n",
        letter.id,
        letter.message_id,
        letter.message_type,
        letter.correlation_id,
        letter.exchange,
        letter.routing_key,
        letter.queue,
        when(letter.failed_at),
        letter.collected_at.to_rfc3339(),
        when(letter.replayed_at),
        when(letter.discarded_at),
        letter.reason,
    )
}

/// Publishes letter `id` again where it was first sent, once.
pub async fn replay(pool: &PgPool, amqp_url: &str, id: i64) -> Result<(), DeadLetterError> {
    let mut tx = pool.begin().await?;
    let letter = store::lock(&mut tx, id)
        .await?
        .ok_or(DeadLetterError::NotFound(id))?;
    if let Some(at) = letter.replayed_at {
        return Err(DeadLetterError::AlreadyReplayed { id, at });
    }
    if let Some(at) = letter.discarded_at {
        return Err(DeadLetterError::Discarded { id, at });
    }
    let exchange = if letter.exchange.is_empty() {
        INTAKE_EXCHANGE
    } else {
        letter.exchange.as_str()
    };
    let connection = crate::broker::connect(amqp_url, "sportello-dead-letters").await?;
    let publisher = Publisher::open(&connection).await?;
    let mut headers = FieldTable::default();
    headers.insert(
        REPLAYED_FROM_HEADER.into(),
        AMQPValue::LongString(LongString::from(id.to_string())),
    );
    // An operator's replay starts a trace of its own; its correlation id
    // still ties it to the original's.
    crate::broker::trace::set_for_sending(&mut headers);
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(letter.message_id.as_str().into())
        .with_type(letter.message_type.as_str().into())
        .with_correlation_id(letter.correlation_id.as_str().into())
        .with_headers(headers);
    let confirm = publisher
        .channel()
        .basic_publish(
            exchange.into(),
            letter.routing_key.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &letter.body,
            properties,
        )
        .await?
        .await?;
    crate::broker::close_quietly(&connection, "replayed").await;
    if !confirm.is_ack() || confirm.take_message().is_some() {
        return Err(DeadLetterError::NotConfirmed(id));
    }
    // Published and confirmed: only now recorded. Dying in between replays
    // it again next time; the intake's inbox makes that a duplicate.
    store::mark_replayed(&mut tx, id).await?;
    tx.commit().await?;
    tracing::info!(id, message_id = %letter.message_id, exchange, routing_key = %letter.routing_key, "dead letter replayed");
    Ok(())
}

/// Records that letter `id` is dealt with and is not to be replayed.
pub async fn discard(pool: &PgPool, id: i64) -> Result<(), DeadLetterError> {
    let mut tx = pool.begin().await?;
    let letter = store::lock(&mut tx, id)
        .await?
        .ok_or(DeadLetterError::NotFound(id))?;
    if let Some(at) = letter.replayed_at {
        return Err(DeadLetterError::AlreadyReplayed { id, at });
    }
    if letter.discarded_at.is_none() {
        store::mark_discarded(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(value))
    }

    #[test]
    fn a_letter_is_listed_under_what_its_sender_sent() {
        let mut headers = FieldTable::default();
        headers.insert(ORIGINAL_MESSAGE_ID_HEADER.into(), text("ordine-42"));
        headers.insert(REASON_HEADER.into(), text("schema: bad"));
        headers.insert(
            ORIGINAL_ROUTING_KEY_HEADER.into(),
            text("web.request.submitted"),
        );
        headers.insert(FAILED_AT_HEADER.into(), text("2026-11-29T10:00:00+00:00"));
        let properties = Properties {
            message_id: Some("0193-generated"),
            message_type: Some("request.submitted"),
            correlation_id: None,
        };
        let letter = from_delivery(Some(&headers), &properties, "web.request.submitted", b"{}");
        assert_eq!(letter.message_id, "ordine-42");
        assert_eq!(letter.reason, "schema: bad");
        assert!(letter.failed_at.is_some());
        let again = from_delivery(Some(&headers), &properties, "web.request.submitted", b"{}");
        assert_eq!(letter.fingerprint, again.fingerprint);
        let other = from_delivery(Some(&headers), &properties, "web.request.submitted", b"{ }");
        assert_ne!(letter.fingerprint, other.fingerprint);
    }

    fn letter(id: i64) -> DeadLetter {
        DeadLetter {
            id,
            message_id: format!("m{id}"),
            message_type: "request.submitted".into(),
            correlation_id: String::new(),
            exchange: INTAKE_EXCHANGE.into(),
            routing_key: "web.request.submitted".into(),
            queue: INTAKE_REQUESTS_QUEUE.into(),
            reason: "r".into(),
            failed_at: None,
            collected_at: Utc::now(),
            headers: serde_json::Value::Null,
            body: b"{}".to_vec(),
            replayed_at: None,
            discarded_at: None,
        }
    }

    #[test]
    fn the_listing_tells_the_total_the_range_and_the_next_page() {
        let listing = Listing {
            letters: (21..=40).map(letter).collect(),
            total: 45,
            page: 2,
            per_page: 20,
            all: false,
        };
        let text = render_listing(&listing);
        assert!(
            text.starts_with("45 open dead letters, 21-40 shown"),
            "{text}"
        );
        assert!(text.contains("#21 "), "{text}");
        assert!(
            text.contains("more: sportello dead-letters list --page 3\n"),
            "{text}"
        );
        let last = Listing {
            letters: (41..=45).map(letter).collect(),
            page: 3,
            ..listing
        };
        assert!(!render_listing(&last).contains("more:"));
    }
}
