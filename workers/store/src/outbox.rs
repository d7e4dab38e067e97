//! The transactional outbox: events are written with the state change that
//! caused them and relayed to the broker afterwards (see `workers::outbox_relay`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use sportello_contract::names::EVENTS_EXCHANGE;
use sportello_contract::Event;

use crate::trace_context::TraceContext;

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub message_id: Uuid,
    pub exchange: String,
    pub routing_key: String,
    pub message_type: String,
    pub correlation_id: String,
    /// The serialized event, published as is.
    pub body: Vec<u8>,
    /// The trace the relayed event continues; `None` on writing: the span
    /// the writer is in (`enqueue`). A batch's writer names each message's.
    pub trace: Option<TraceContext>,
}

impl OutboxMessage {
    /// An event for the events exchange, routed by its type (and an optional suffix).
    pub fn event<P: Serialize>(
        event: &Event<P>,
        routing_suffix: Option<&str>,
    ) -> Result<Self, serde_json::Error> {
        let routing_key = match routing_suffix {
            Some(suffix) => format!("{}.{}", event.message_type, suffix),
            None => event.message_type.clone(),
        };
        Ok(Self {
            message_id: event.message_id,
            exchange: EVENTS_EXCHANGE.to_owned(),
            routing_key,
            message_type: event.message_type.clone(),
            correlation_id: event.correlation_id.clone(),
            body: serde_json::to_vec(event)?,
            trace: None,
        })
    }
}

/// A row waiting to be relayed.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub id: i64,
    pub message: OutboxMessage,
    /// When the row was written: the relay's lag is the oldest one's age.
    pub created_at: DateTime<Utc>,
}

pub async fn enqueue(
    conn: &mut PgConnection,
    messages: &[OutboxMessage],
) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&OutboxMessage) -> &str| -> Vec<&str> { messages.iter().map(f).collect() };
    let ids: Vec<Uuid> = messages.iter().map(|m| m.message_id).collect();
    let bodies: Vec<&[u8]> = messages.iter().map(|m| m.body.as_slice()).collect();
    // Rows that name no trace continue the writer's: its transaction caused them.
    let current = TraceContext::current();
    let traces: Vec<Option<&TraceContext>> = messages
        .iter()
        .map(|m| m.trace.as_ref().or(current.as_ref()))
        .collect();
    let traceparents: Vec<Option<&str>> = traces
        .iter()
        .map(|t| t.map(|t| t.traceparent.as_str()))
        .collect();
    let tracestates: Vec<Option<&str>> = traces
        .iter()
        .map(|t| t.map(|t| t.tracestate.as_str()))
        .collect();
    sqlx::query(
        "INSERT INTO outbox (message_id, exchange, routing_key, message_type, correlation_id, body,
                             traceparent, tracestate)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[],
                              $7::text[], $8::text[])",
    )
    .bind(&ids)
    .bind(text(|m| &m.exchange))
    .bind(text(|m| &m.routing_key))
    .bind(text(|m| &m.message_type))
    .bind(text(|m| &m.correlation_id))
    .bind(&bodies)
    .bind(&traceparents)
    .bind(&tracestates)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the oldest pending rows out of the outbox, within the caller's
/// transaction: commit only after the broker confirmed them, so a failure
/// rolls the rows back for the next try. Other relays skip locked rows, so
/// relays can run side by side.
pub async fn take(conn: &mut PgConnection, limit: i64) -> Result<Vec<PendingMessage>, sqlx::Error> {
    let rows = sqlx::query(
        "DELETE FROM outbox
         WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, message_id, exchange, routing_key, message_type, correlation_id, body,
                   created_at, traceparent, tracestate",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    let mut pending = rows
        .into_iter()
        .map(|row| {
            let traceparent: Option<String> = row.try_get("traceparent")?;
            let tracestate: Option<String> = row.try_get("tracestate")?;
            Ok(PendingMessage {
                id: row.try_get("id")?,
                message: OutboxMessage {
                    message_id: row.try_get("message_id")?,
                    exchange: row.try_get("exchange")?,
                    routing_key: row.try_get("routing_key")?,
                    message_type: row.try_get("message_type")?,
                    correlation_id: row.try_get("correlation_id")?,
                    body: row.try_get("body")?,
                    trace: traceparent.map(|traceparent| TraceContext {
                        traceparent,
                        tracestate: tracestate.unwrap_or_default(),
                    }),
                },
                created_at: row.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // DELETE ... RETURNING does not promise an order; events leave in the
    // order they were written.
    pending.sort_by_key(|p| p.id);
    Ok(pending)
}

pub const NOTIFY_CHANNEL: &str = "sportello_outbox";
