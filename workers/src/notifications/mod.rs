//! Notifications: from a domain event to what the citizen reads in the
//! notification centre and receives by email and SMS.
//!
//! `plan` (called by the notify worker for each event) applies the rules of
//! `domain::notification`: finds the citizen and the contacts, renders the
//! templates, and stores the notification with one queued delivery per
//! medium, in the caller's transaction. The email and SMS senders
//! (`workers::delivery`) then send what is due, with retries, through
//! `email::EmailSender` and `sms::SmsProvider`. `centre` serves the citizen's
//! notification centre and the operators' delivery log.

pub mod centre;
pub mod email;
pub mod sms;
pub mod templates;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::contract::Contact;
use crate::domain::notification::{choose_addresses, Medium, Rule, Rules};
use crate::store::notifications::{self as store, NewDelivery, NewNotification, SubjectFacts};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The event cannot be planned, ever: dead-letter it with this reason.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Render(#[from] templates::RenderError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What planning one event did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planned {
    /// Notifications created now.
    pub created: usize,
    /// Rules whose notification existed already (a redelivered event).
    pub repeated: usize,
}

/// Plans the notifications of `event` (the whole event envelope as JSON).
pub async fn plan(
    conn: &mut PgConnection,
    rules: &Rules,
    event: &Value,
) -> Result<Planned, PlanError> {
    let mut planned = Planned::default();
    let event_id: Uuid = field(event, "/message_id")?;
    let correlation_id: String = field(event, "/correlation_id")?;
    for rule in rules.matching(event) {
        let notification_id = Uuid::now_v7();
        let facts = subject_facts(conn, rule, event).await?;
        let tax_code = match &rule.recipient {
            Some(pointer) => field::<String>(event, pointer)?,
            None => facts
                .as_ref()
                .map(|f| f.tax_code.clone())
                .ok_or_else(|| PlanError::Invalid("no recipient".into()))?,
        };
        let given = match &rule.contact {
            Some(pointer) => optional_field::<Contact>(event, pointer)?.unwrap_or_default(),
            None => Contact::default(),
        };
        // The subject's own contact only reaches the subject's citizen.
        let subject_contact = facts
            .as_ref()
            .filter(|_| rule.recipient.is_none())
            .map(|f| &f.contact);
        let given = merge(given, subject_contact);
        let known = store::known_contacts(conn, &tax_code).await?;
        let addresses = choose_addresses(&rule.media, &given, &known);
        let rendered = templates::render(&rule.template, &template_context(rule, event, &facts))?;
        let deliveries: Vec<NewDelivery> = addresses
            .targets
            .iter()
            .map(|(medium, address)| NewDelivery {
                id: Uuid::now_v7(),
                medium: *medium,
                address: address.clone(),
                subject: (*medium == Medium::Email).then(|| rendered.title.clone()),
                text_body: match medium {
                    Medium::Email => rendered.text.clone(),
                    Medium::Sms => rendered.sms.clone(),
                },
                html_body: (*medium == Medium::Email).then(|| rendered.html.clone()),
            })
            .collect();
        let subject = rule.subject.as_ref();
        let notification = NewNotification {
            id: notification_id,
            event_id,
            rule: rule.id.clone(),
            tax_code,
            tab: rule.tab,
            title: rendered.title,
            body: rendered.text,
            subject_kind: subject.map(|s| s.kind.clone()),
            subject_id: subject.map(|s| field(event, &s.id)).transpose()?,
            due_at: rule
                .due_at
                .as_ref()
                .map(|p| field::<DateTime<Utc>>(event, p))
                .transpose()?,
            link: rule
                .link
                .as_ref()
                .map(|p| field::<String>(event, p))
                .transpose()?,
            link_on_due_day: rule.link_on_due_day,
            unreachable: addresses.unreachable,
            correlation_id: correlation_id.clone(),
            created_at: Utc::now(),
        };
        if store::insert(conn, &notification, &deliveries).await? {
            if let Some(reason) = &notification.unreachable {
                tracing::warn!(rule = %rule.id, %event_id, %reason, "notification recorded; nobody to send it to");
            }
            planned.created += 1;
        } else {
            planned.repeated += 1;
        }
    }
    Ok(planned)
}

async fn subject_facts(
    conn: &mut PgConnection,
    rule: &Rule,
    event: &Value,
) -> Result<Option<SubjectFacts>, PlanError> {
    let Some(subject) = &rule.subject else {
        return Ok(None);
    };
    let id: Uuid = field(event, &subject.id)?;
    let facts = match subject.kind.as_str() {
        "ticket" => store::ticket_facts(conn, id).await?,
        "case" => store::case_facts(conn, id).await?,
        other => {
            return Err(PlanError::Invalid(format!(
                "rule {}: no subject kind {other:?}",
                rule.id
            )))
        }
    };
    facts
        .map(Some)
        .ok_or_else(|| PlanError::Invalid(format!("{} {id} not found", subject.kind)))
}

/// The contact given with the event first, field by field; the subject's
/// (the one given on the request) fills the gaps.
fn merge(given: Contact, subject: Option<&Contact>) -> Contact {
    let subject = subject.cloned().unwrap_or_default();
    Contact {
        email: given.email.or(subject.email),
        phone: given.phone.or(subject.phone),
    }
}

/// What templates see: the event, its payload, and the subject under its kind.
fn template_context(rule: &Rule, event: &Value, facts: &Option<SubjectFacts>) -> Value {
    let mut context = json!({
        "event": event,
        "payload": event.get("payload").cloned().unwrap_or(Value::Null),
    });
    if let (Some(subject), Some(facts)) = (&rule.subject, facts) {
        context[subject.kind.as_str()] = facts.data.clone();
    }
    context
}

fn optional_field<T: serde::de::DeserializeOwned>(
    event: &Value,
    pointer: &str,
) -> Result<Option<T>, PlanError> {
    match event.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| PlanError::Invalid(format!("event field {pointer}: {e}"))),
    }
}

fn field<T: serde::de::DeserializeOwned>(event: &Value, pointer: &str) -> Result<T, PlanError> {
    optional_field(event, pointer)?
        .ok_or_else(|| PlanError::Invalid(format!("event has no {pointer}")))
}
