//! Ticket rows.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ticket::NewTicket;

pub async fn insert(conn: &mut PgConnection, tickets: &[NewTicket]) -> Result<(), sqlx::Error> {
    if tickets.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&NewTicket) -> Option<String>| -> Vec<Option<String>> {
        tickets.iter().map(f).collect()
    };
    let ids: Vec<Uuid> = tickets.iter().map(|t| t.id).collect();
    let requests: Vec<Uuid> = tickets.iter().map(|t| t.request_message_id).collect();
    let opened: Vec<chrono::DateTime<chrono::Utc>> = tickets.iter().map(|t| t.opened_at).collect();
    let principals: Vec<serde_json::Value> = tickets
        .iter()
        .map(|t| serde_json::to_value(&t.submitted_by).unwrap_or_default())
        .collect();
    sqlx::query(
        "INSERT INTO tickets (id, request_message_id, channel, ambito, matricola, subject, body,
                              subject_tax_code, submitted_by, contact_email, contact_phone,
                              correlation_id, opened_at, updated_at)
         SELECT id, req, channel, ambito, matricola, subject, body, tax_code, principal,
                email, phone, correlation, opened, opened
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::jsonb[], $10::text[], $11::text[], $12::text[],
                     $13::timestamptz[])
              AS t(id, req, channel, ambito, matricola, subject, body, tax_code, principal,
                   email, phone, correlation, opened)",
    )
    .bind(&ids)
    .bind(&requests)
    .bind(column(|t| Some(t.channel.as_str().to_owned())))
    .bind(column(|t| Some(t.ambito.clone())))
    .bind(column(|t| t.matricola.clone()))
    .bind(column(|t| Some(t.subject.clone())))
    .bind(column(|t| Some(t.body.clone())))
    .bind(column(|t| Some(t.subject_tax_code.to_string())))
    .bind(&principals)
    .bind(column(|t| t.contact.email.clone()))
    .bind(column(|t| t.contact.phone.clone()))
    .bind(column(|t| Some(t.correlation_id.clone())))
    .bind(&opened)
    .execute(conn)
    .await?;
    Ok(())
}
