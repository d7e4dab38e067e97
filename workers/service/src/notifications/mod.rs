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
use crate::domain::notification::{
    choose_addresses, reminder_key, reminder_time, Medium, Rule, Rules, REMINDER_TIMER_KIND,
};
use crate::store::notifications::{self as store, NewDelivery, NewNotification, SubjectFacts};
use crate::store::timers::{self, TimerRequest};

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

/// Plans the notifications of `event` (the whole event envelope as JSON):
/// those of the rules it matches, or the reminder it is the timer of.
pub async fn plan(
    conn: &mut PgConnection,
    rules: &Rules,
    event: &Value,
) -> Result<Planned, PlanError> {
    if is_reminder(event) {
        return plan_reminder(conn, rules, event).await;
    }
    let incoming = Incoming::of(event)?;
    let mut planned = Planned::default();
    for rule in rules.matching(event) {
        let subject = subject_id(rule, event)?;
        // A deadline of a subject replaces the subject's earlier one of the
        // same rule (an appointment moved).
        let replaces = rule.due_at.is_some() && subject.is_some();
        let withdrawable = replaces || !rules.withdrawing(&rule.id).is_empty();
        let superseded = match subject {
            Some(subject) if withdrawable || !rule.withdraws.is_empty() => {
                superseded(conn, rules, &rule.id, subject).await?
            }
            _ => false,
        };
        let created = plan_rule(conn, rule, &incoming, subject, superseded).await?;
        planned.count(created);
        if created && !superseded {
            schedule_reminder(conn, rule, &incoming, subject).await?;
            if let Some(subject) = subject.filter(|_| replaces) {
                let own = std::slice::from_ref(&rule.id);
                store::withdraw(conn, subject, own, incoming.id).await?;
            }
        }
        if let Some(subject) = subject.filter(|_| !rule.withdraws.is_empty()) {
            withdraw(conn, rule, &incoming, subject).await?;
        }
    }
    Ok(planned)
}

impl Planned {
    fn count(&mut self, created: bool) {
        if created {
            self.created += 1;
        } else {
            self.repeated += 1;
        }
    }
}

/// What every rule reads of the event.
struct Incoming<'a> {
    event: &'a Value,
    id: Uuid,
    correlation_id: String,
}

impl<'a> Incoming<'a> {
    fn of(event: &'a Value) -> Result<Self, PlanError> {
        Ok(Incoming {
            event,
            id: field(event, "/message_id")?,
            correlation_id: field(event, "/correlation_id")?,
        })
    }
}

/// Whether a rule withdrawing `rule_id`'s notifications already notified
/// about `subject`. The subject is locked first, so that a withdrawal and
/// what it withdraws are planned one after the other even when their events
/// arrive together.
async fn superseded(
    conn: &mut PgConnection,
    rules: &Rules,
    rule_id: &str,
    subject: Uuid,
) -> Result<bool, PlanError> {
    store::lock_subject(conn, subject).await?;
    Ok(store::has_notification(conn, subject, &rules.withdrawing(rule_id)).await?)
}

/// What `rule` withdraws about the subject: pending reminders are
/// cancelled, deadlines leave "Scadenze".
async fn withdraw(
    conn: &mut PgConnection,
    rule: &Rule,
    incoming: &Incoming<'_>,
    subject: Uuid,
) -> Result<(), PlanError> {
    for withdrawn in &rule.withdraws {
        let key = reminder_key(withdrawn, subject);
        if timers::cancel(conn, REMINDER_TIMER_KIND, &key).await? {
            tracing::info!(rule = %rule.id, %key, "reminder cancelled");
        }
    }
    store::withdraw(conn, subject, &rule.withdraws, incoming.id).await?;
    Ok(())
}

/// One rule's notification of the event; false when it existed already. A
/// `superseded` one (its subject withdrawn already) is recorded, not sent.
async fn plan_rule(
    conn: &mut PgConnection,
    rule: &Rule,
    incoming: &Incoming<'_>,
    subject: Option<Uuid>,
    superseded: bool,
) -> Result<bool, PlanError> {
    let event = incoming.event;
    if let Some(pointer) = rule.missing_field(event) {
        return Err(PlanError::Invalid(format!(
            "event has no {pointer}, which rule {} needs",
            rule.id
        )));
    }
    let facts = subject_facts(conn, rule, subject).await?;
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
    let targets = if superseded {
        &[][..]
    } else {
        &addresses.targets[..]
    };
    let deliveries: Vec<NewDelivery> = targets
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
    let notification = NewNotification {
        id: Uuid::now_v7(),
        event_id: incoming.id,
        rule: rule.id.clone(),
        tax_code,
        tab: rule.tab,
        title: rendered.title,
        body: rendered.text,
        subject_kind: rule.subject.as_ref().map(|s| s.kind.clone()),
        subject_id: subject,
        due_at: optional_pointer(event, rule.due_at.as_deref())?,
        link: optional_pointer(event, rule.link.as_deref())?,
        link_on_due_day: rule.link_on_due_day,
        unreachable: addresses.unreachable,
        withdrawn: superseded,
        office_aoo: match &rule.office {
            Some(pointer) => optional_field(event, pointer)?,
            None => facts
                .as_ref()
                .and_then(|f| f.data.pointer("/office/aoo"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        correlation_id: incoming.correlation_id.clone(),
        created_at: Utc::now(),
    };
    let created = store::insert(conn, &notification, &deliveries).await?;
    if created {
        if let Some(reason) = &notification.unreachable {
            // Routine (many tickets carry no contact) and kept with its
            // reason in the citizen's centre: not a warning.
            tracing::debug!(rule = %rule.id, event_id = %incoming.id, %reason, "notification recorded; nobody to send it to");
        }
    }
    Ok(created)
}

fn is_reminder(event: &Value) -> bool {
    event.get("type").and_then(Value::as_str) == Some("timer.fired")
        && event.pointer("/payload/kind").and_then(Value::as_str) == Some(REMINDER_TIMER_KIND)
}

/// The id of the subject the rule is about, if it names one.
fn subject_id(rule: &Rule, event: &Value) -> Result<Option<Uuid>, PlanError> {
    rule.subject
        .as_ref()
        .map(|subject| field(event, &subject.id))
        .transpose()
}

/// Schedules (or moves, for a new time) the reminder of `rule`'s
/// notification: a durable timer carrying the event, in this transaction.
async fn schedule_reminder(
    conn: &mut PgConnection,
    rule: &Rule,
    incoming: &Incoming<'_>,
    subject: Option<Uuid>,
) -> Result<(), PlanError> {
    let (Some(reminder), Some(due_pointer), Some(subject)) =
        (&rule.reminder, &rule.due_at, subject)
    else {
        return Ok(());
    };
    let key = reminder_key(&rule.id, subject);
    let Some(due_at) = optional_field::<DateTime<Utc>>(incoming.event, due_pointer)? else {
        // Nothing to remind of (a rule that needs the date requires it),
        // and an earlier date of the subject no longer holds.
        timers::cancel(conn, REMINDER_TIMER_KIND, &key).await?;
        return Ok(());
    };
    let Some(fire_at) = reminder_time(due_at, reminder.hours_before, Utc::now()) else {
        // Moved (or booked) too close to remind: any pending reminder goes.
        timers::cancel(conn, REMINDER_TIMER_KIND, &key).await?;
        tracing::debug!(rule = %rule.id, %key, "too close to remind");
        return Ok(());
    };
    let request = TimerRequest {
        kind: REMINDER_TIMER_KIND.to_owned(),
        key,
        fire_at,
        data: json!({"rule": rule.id, "event": incoming.event}),
        correlation_id: incoming.correlation_id.clone(),
    };
    // A moved appointment moves its reminder, even one that already fired.
    timers::rearm(conn, &request).await?;
    Ok(())
}

/// A reminder's timer fired: the rule's reminder, planned on the event
/// that scheduled it (unique like any notification, so a timer firing
/// twice reminds once), unless the subject was withdrawn meanwhile.
async fn plan_reminder(
    conn: &mut PgConnection,
    rules: &Rules,
    fired: &Value,
) -> Result<Planned, PlanError> {
    let rule_id: String = field(fired, "/payload/data/rule")?;
    let event: Value = field(fired, "/payload/data/event")?;
    let original = rules
        .get(&rule_id)
        .ok_or_else(|| PlanError::Invalid(format!("no rule {rule_id:?} any more")))?;
    let rule = original
        .reminder_rule()
        .ok_or_else(|| PlanError::Invalid(format!("rule {rule_id:?} has no reminder any more")))?;
    let subject = subject_id(original, &event)?
        .ok_or_else(|| PlanError::Invalid(format!("rule {rule_id:?} has no subject")))?;
    let mut planned = Planned::default();
    if superseded(conn, rules, &rule_id, subject).await? {
        tracing::info!(rule = %rule_id, %subject, "not reminding: withdrawn");
        return Ok(planned);
    }
    let incoming = Incoming::of(&event)?;
    planned.count(plan_rule(conn, &rule, &incoming, Some(subject), false).await?);
    Ok(planned)
}

async fn subject_facts(
    conn: &mut PgConnection,
    rule: &Rule,
    subject: Option<Uuid>,
) -> Result<Option<SubjectFacts>, PlanError> {
    let (Some(kind), Some(id)) = (rule.subject.as_ref().map(|s| s.kind.as_str()), subject) else {
        return Ok(None);
    };
    let facts = match kind {
        "ticket" => store::ticket_facts(conn, id).await?,
        "case" => store::case_facts(conn, id).await?,
        // Its event says all there is (the rule names the recipient).
        "appointment" => return Ok(None),
        other => {
            return Err(PlanError::Invalid(format!(
                "rule {}: no subject kind {other:?}",
                rule.id
            )))
        }
    };
    facts
        .map(Some)
        .ok_or_else(|| PlanError::Invalid(format!("{kind} {id} not found")))
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

/// The value at a rule's optional pointer: none when the rule has no such
/// pointer or the event no such field.
fn optional_pointer<T: serde::de::DeserializeOwned>(
    event: &Value,
    pointer: Option<&str>,
) -> Result<Option<T>, PlanError> {
    pointer.map_or(Ok(None), |pointer| optional_field(event, pointer))
}

fn field<T: serde::de::DeserializeOwned>(event: &Value, pointer: &str) -> Result<T, PlanError> {
    optional_field(event, pointer)?
        .ok_or_else(|| PlanError::Invalid(format!("event has no {pointer}")))
}
