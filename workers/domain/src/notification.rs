//! Notification rules as data, and the decisions around a delivery: which
//! addresses to use, whether and when to retry, what the centre shows.
//!
//! A rule says: on this event (optionally only when some payload fields have
//! given values), notify the citizen the event is about, with this template,
//! in this tab of the notification centre, by these media. A new kind of
//! notification is a rule plus a template; no code.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sms::normalize_phone;
use crate::cron::TIME_ZONE;
use sportello_contract::Contact;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Medium {
    Email,
    Sms,
}

impl Medium {
    pub fn as_str(self) -> &'static str {
        match self {
            Medium::Email => "email",
            Medium::Sms => "sms",
        }
    }
}

/// The tabs of the notification centre (seed 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tab {
    /// Avvisi e messaggi.
    Messages,
    /// Scadenze: deadlines and upcoming appointments, with the days left.
    Deadlines,
    /// Appuntamenti.
    Appointments,
}

impl Tab {
    pub const ALL: [Tab; 3] = [Tab::Messages, Tab::Deadlines, Tab::Appointments];

    pub fn as_str(self) -> &'static str {
        match self {
            Tab::Messages => "messages",
            Tab::Deadlines => "deadlines",
            Tab::Appointments => "appointments",
        }
    }

    pub fn parse(raw: &str) -> Option<Tab> {
        Tab::ALL.into_iter().find(|tab| tab.as_str() == raw)
    }

    /// The label the citizen sees.
    pub fn label(self) -> &'static str {
        match self {
            Tab::Messages => "Avvisi e messaggi",
            Tab::Deadlines => "Scadenze",
            Tab::Appointments => "Appuntamenti",
        }
    }
}

/// Subjects the planner looks up (citizen, contact given on the request,
/// data for the templates).
pub const LOOKED_UP_SUBJECTS: [&str; 2] = ["ticket", "case"];
/// Subjects named by their event alone: their rules say who the citizen is.
pub const EVENT_ONLY_SUBJECTS: [&str; 1] = ["appointment"];

/// Timer kind of reminders; fires as `timer.fired.notification.reminder`.
pub const REMINDER_TIMER_KIND: &str = "notification.reminder";

/// What a notification is about; the planner looks it up to find the
/// citizen, the contact given on the request and the template's data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubjectRef {
    /// `ticket`, `case` (looked up) or `appointment` (from the event).
    pub kind: String,
    /// JSON pointer into the event to the subject's id.
    pub id: String,
}

/// One notification rule (see `workers/config/notification-rules.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub description: String,
    /// Event type (`type` of the event envelope).
    pub event: String,
    /// Routing key the notifications queue binds for it.
    pub routing_key: String,
    /// JSON pointer -> required value; all must match.
    #[serde(default)]
    pub when: BTreeMap<String, Value>,
    /// Folder of `templates/notifications`.
    pub template: String,
    pub tab: Tab,
    pub subject: Option<SubjectRef>,
    /// JSON pointer to the citizen's tax code, when the subject does not say.
    pub recipient: Option<String>,
    /// JSON pointer to a contact (`{email, phone}`) given with the event.
    pub contact: Option<String>,
    /// JSON pointer to the office responsible for the subject, when the
    /// subject is not looked up (its operators read the delivery log).
    pub office: Option<String>,
    /// JSON pointers to the fields the rule's templates cannot do without:
    /// an event lacking one is dead-lettered, naming it. Every other field a
    /// rule or template reads is optional: absent, it is left out (no
    /// deadline, no link, a sentence less), never a dead letter.
    #[serde(default)]
    pub requires: Vec<String>,
    /// JSON pointer to the deadline or the appointment's start.
    pub due_at: Option<String>,
    /// JSON pointer to a link (e.g. the video room).
    pub link: Option<String>,
    #[serde(default)]
    pub link_on_due_day: bool,
    pub media: Vec<Medium>,
    /// A second notification some hours before `due_at` (*promemoria*).
    pub reminder: Option<Reminder>,
    /// Rules whose notifications about the same subject this one withdraws
    /// (an appointment cancelled): their pending reminder is cancelled and
    /// their deadline leaves "Scadenze".
    #[serde(default)]
    pub withdraws: Vec<String>,
}

/// A reminder scheduled, as a durable timer, when its rule's notification
/// is planned; planned like its rule, with its own template and tab.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reminder {
    pub template: String,
    pub tab: Tab,
    pub hours_before: u32,
}

/// The reminder of `rule_id` about `subject_id`: one pending at a time.
pub fn reminder_key(rule_id: &str, subject_id: uuid::Uuid) -> String {
    format!("{rule_id}/{subject_id}")
}

/// When to remind of `due_at`; `None` when that moment has passed already
/// (an appointment booked for within the next day gets no reminder).
pub fn reminder_time(
    due_at: DateTime<Utc>,
    hours_before: u32,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let at = due_at - chrono::Duration::hours(i64::from(hours_before));
    (at > now).then_some(at)
}

impl Rule {
    /// The first field the rule requires that `event` lacks (absent or null).
    pub fn missing_field(&self, event: &Value) -> Option<&str> {
        self.requires
            .iter()
            .find(|pointer| event.pointer(pointer).is_none_or(Value::is_null))
            .map(String::as_str)
    }

    pub fn matches(&self, event: &Value) -> bool {
        event.get("type").and_then(Value::as_str) == Some(self.event.as_str())
            && self
                .when
                .iter()
                .all(|(pointer, expected)| event.pointer(pointer) == Some(expected))
    }

    /// The rule its reminder is planned with: the same recipient, subject,
    /// contact, due date and link; the reminder's template and tab.
    pub fn reminder_rule(&self) -> Option<Rule> {
        let reminder = self.reminder.as_ref()?;
        Some(Rule {
            id: format!("{}.reminder", self.id),
            template: reminder.template.clone(),
            tab: reminder.tab,
            reminder: None,
            withdraws: Vec::new(),
            ..self.clone()
        })
    }

    /// Every template the rule renders.
    pub fn templates(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.template.as_str())
            .chain(self.reminder.as_ref().map(|r| r.template.as_str()))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("notification rules are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("notification rule {0:?} appears twice")]
    Duplicate(String),
    #[error("notification rule {rule:?}: {problem}")]
    Invalid { rule: String, problem: String },
}

impl Rules {
    /// The rules shipped with this build.
    pub fn embedded() -> Result<Rules, RulesError> {
        Rules::parse(include_str!("../../config/notification-rules.json"))
    }

    pub fn parse(json: &str) -> Result<Rules, RulesError> {
        let rules: Rules = serde_json::from_str(json)?;
        let mut seen = std::collections::BTreeSet::new();
        for rule in &rules.rules {
            if !seen.insert(rule.id.as_str()) {
                return Err(RulesError::Duplicate(rule.id.clone()));
            }
            let invalid = |problem: &str| RulesError::Invalid {
                rule: rule.id.clone(),
                problem: problem.to_owned(),
            };
            if rule.subject.is_none() && rule.recipient.is_none() {
                return Err(invalid("needs a subject or a recipient"));
            }
            if rule.media.is_empty() {
                return Err(invalid("needs at least one medium"));
            }
            let mut media = rule.media.clone();
            media.sort();
            media.dedup();
            if media.len() != rule.media.len() {
                return Err(invalid("names a medium twice"));
            }
            if let Some(subject) = &rule.subject {
                let kind = subject.kind.as_str();
                if EVENT_ONLY_SUBJECTS.contains(&kind) {
                    if rule.recipient.is_none() {
                        return Err(invalid("an appointment subject needs a recipient"));
                    }
                } else if !LOOKED_UP_SUBJECTS.contains(&kind) {
                    return Err(invalid("subject kind must be ticket, case or appointment"));
                }
            }
            if rule.reminder.is_some() && (rule.due_at.is_none() || rule.subject.is_none()) {
                return Err(invalid("a reminder needs due_at and a subject"));
            }
            if !rule.withdraws.is_empty() && rule.subject.is_none() {
                return Err(invalid("withdrawing needs a subject"));
            }
            if rule.link_on_due_day && rule.due_at.is_none() {
                return Err(invalid("link_on_due_day needs due_at"));
            }
            if let Some(pointer) = rule.requires.iter().find(|p| !p.starts_with('/')) {
                return Err(invalid(&format!(
                    "requires {pointer:?}, which is not a JSON pointer"
                )));
            }
            if !rule.routing_key.starts_with(&rule.event) {
                return Err(invalid("routing_key must start with the event type"));
            }
        }
        for rule in &rules.rules {
            for withdrawn in &rule.withdraws {
                let same_subject = rules.rules.iter().any(|r| {
                    &r.id == withdrawn
                        && r.subject.as_ref().map(|s| &s.kind)
                            == rule.subject.as_ref().map(|s| &s.kind)
                });
                if !same_subject {
                    return Err(RulesError::Invalid {
                        rule: rule.id.clone(),
                        problem: format!(
                            "withdraws {withdrawn:?}, no rule about the same kind of subject"
                        ),
                    });
                }
            }
        }
        Ok(rules)
    }

    /// The rules that withdraw `rule_id`'s notifications.
    pub fn withdrawing(&self, rule_id: &str) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.withdraws.iter().any(|w| w == rule_id))
            .map(|r| r.id.clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.id == id)
    }

    pub fn matching<'a>(&'a self, event: &'a Value) -> impl Iterator<Item = &'a Rule> {
        self.rules.iter().filter(move |rule| rule.matches(event))
    }
}

/// Contacts and preferences known for a citizen (*recapiti*).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KnownContacts {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub email_enabled: bool,
    pub sms_enabled: bool,
}

impl Default for KnownContacts {
    fn default() -> Self {
        Self {
            email: None,
            phone: None,
            email_enabled: true,
            sms_enabled: true,
        }
    }
}

/// Where a notification goes, or why it goes nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    pub targets: Vec<(Medium, String)>,
    /// Set when `targets` is empty.
    pub unreachable: Option<String>,
}

/// The contact given with the request wins over the known one; a medium the
/// citizen switched off is never used; a malformed address is skipped.
pub fn choose_addresses(media: &[Medium], given: &Contact, known: &KnownContacts) -> Addresses {
    let mut targets = Vec::new();
    let mut reasons = Vec::new();
    for &medium in media {
        let (enabled, address) = match medium {
            Medium::Email => (
                known.email_enabled,
                given.email.as_ref().or(known.email.as_ref()),
            ),
            Medium::Sms => (
                known.sms_enabled,
                given.phone.as_ref().or(known.phone.as_ref()),
            ),
        };
        let name = medium.as_str();
        match (enabled, address.map(|a| a.trim()).filter(|a| !a.is_empty())) {
            (false, _) => reasons.push(format!("{name} disabled by the citizen")),
            (true, None) => reasons.push(format!("no {name} address")),
            (true, Some(address)) => match normalize_address(medium, address) {
                Ok(address) => targets.push((medium, address)),
                Err(problem) => reasons.push(problem),
            },
        }
    }
    let unreachable = targets.is_empty().then(|| reasons.join("; "));
    Addresses {
        targets,
        unreachable,
    }
}

pub fn normalize_address(medium: Medium, address: &str) -> Result<String, String> {
    match medium {
        Medium::Sms => normalize_phone(address),
        Medium::Email => {
            let trimmed = address.trim();
            trimmed
                .parse::<lettre::Address>()
                .map(|_| trimmed.to_owned())
                .map_err(|e| format!("not an email address ({e}): {address:?}"))
        }
    }
}

/// How a send attempt ended, as the retry policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent {
        provider_id: Option<String>,
    },
    /// SMTP 4xx, timeouts, connection errors, provider 5xx or 429.
    Transient(String),
    /// SMTP 5xx, provider 4xx, a rejected address: retrying cannot help.
    Permanent(String),
}

/// Exponential backoff: `base`, doubling per attempt up to `cap`, for at
/// most `max_attempts` attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    Sent { provider_id: Option<String> },
    RetryIn(Duration),
    Failed(String),
}

impl RetryPolicy {
    /// `attempts` counts the attempt just made; `jitter` in [0, 1) spreads
    /// retries of deliveries that failed together (up to +25%).
    pub fn next(&self, attempts: u32, outcome: SendOutcome, jitter: f64) -> NextStep {
        match outcome {
            SendOutcome::Sent { provider_id } => NextStep::Sent { provider_id },
            SendOutcome::Permanent(reason) => NextStep::Failed(reason),
            SendOutcome::Transient(reason) if attempts >= self.max_attempts => {
                NextStep::Failed(format!("gave up after {attempts} attempts, last: {reason}"))
            }
            SendOutcome::Transient(_) => {
                let doubling = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
                let delay = self.base.saturating_mul(doubling).min(self.cap);
                NextStep::RetryIn(delay.mul_f64(1.0 + 0.25 * jitter.clamp(0.0, 1.0)))
            }
        }
    }
}

/// "Manca 1 giorno", "Mancano 3 giorni", "Oggi", "Scaduta": whole Europe/Rome
/// calendar days from `now` to `due_at`.
pub fn days_left(due_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let due = due_at.with_timezone(&TIME_ZONE).date_naive();
    let today = now.with_timezone(&TIME_ZONE).date_naive();
    (due - today).num_days()
}

pub fn days_left_label(days: i64) -> String {
    match days {
        ..=-1 => "Scaduta".to_owned(),
        0 => "Oggi".to_owned(),
        1 => "Manca 1 giorno".to_owned(),
        n => format!("Mancano {n} giorni"),
    }
}

/// A link restricted to the due day (the video call) is shown only on that
/// Europe/Rome day; other links always.
pub fn link_visible(
    link_on_due_day: bool,
    due_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    match (link_on_due_day, due_at) {
        (false, _) => true,
        (true, Some(due)) => days_left(due, now) == 0,
        (true, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn rules() -> Rules {
        Rules::embedded().expect("shipped rules parse")
    }

    #[test]
    fn shipped_rules_cover_opening_closing_and_registration() {
        let rules = rules();
        let opened =
            |routed_by: &str| json!({"type": "ticket.opened", "payload": {"routed_by": routed_by}});
        let closed = json!({"type": "ticket.changed", "payload": {"change": "closed"}});
        let commented = json!({"type": "ticket.changed", "payload": {"change": "commented"}});
        let registered = json!({"type": "documents.registered", "payload": {}});
        let id = |event: &Value| {
            rules
                .matching(event)
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(id(&opened("rule")), ["ticket-opened"]);
        assert_eq!(id(&opened("triage")), ["ticket-opened-triage"]);
        let reassigned = |office_is_triage: bool| {
            json!({"type": "ticket.changed",
                   "payload": {"change": "reassigned", "office_is_triage": office_is_triage}})
        };
        assert_eq!(
            id(&reassigned(false)),
            ["ticket-routed"],
            "to the competent office"
        );
        assert!(id(&reassigned(true)).is_empty(), "back to triage");
        assert_eq!(rules.matching(&closed).count(), 1);
        assert_eq!(rules.matching(&commented).count(), 0);
        assert_eq!(rules.matching(&registered).count(), 1);
    }

    #[test]
    fn every_mode_of_a_confirmed_appointment_has_its_own_rule_and_the_cancellation_withdraws_each()
    {
        let rules = rules();
        let confirmed = |mode: &str| {
            json!({"type": "appointment.confirmed",
                   "payload": {"mode": mode, "starts_at": "2026-12-10T09:00:00Z",
                               "ends_at": "2026-12-10T09:30:00Z", "office_name": "Crema",
                               "desk": "aziende", "callback_phone": "+393331234567"}})
        };
        let cancelling = rules.get("appointment-cancelled").unwrap();
        let mut templates = Vec::new();
        for mode in ["in_person", "phone", "video"] {
            let event = confirmed(mode);
            let matched: Vec<&Rule> = rules.matching(&event).collect();
            assert_eq!(matched.len(), 1, "{mode}");
            let rule = matched[0];
            assert!(cancelling.withdraws.contains(&rule.id), "{mode}");
            assert!(rule.reminder.is_some(), "{mode} is reminded");
            assert_eq!(rule.tab, Tab::Deadlines, "{mode} is in Scadenze");
            templates.extend(rule.templates().map(str::to_owned));
            // What one mode requires, the others need not carry.
            let video = rule.missing_field(&event);
            assert_eq!(video.is_some(), mode == "video", "{mode}: {video:?}");
        }
        templates.sort();
        templates.dedup();
        assert_eq!(templates.len(), 6, "a template per mode and its reminder");
        let no_phone = json!({"type": "appointment.confirmed",
                              "payload": {"mode": "phone", "starts_at": "2026-12-10T09:00:00Z"}});
        let phone = rules.matching(&no_phone).next().unwrap();
        assert_eq!(phone.missing_field(&no_phone), Some("/payload/ends_at"));
    }

    #[test]
    fn rules_are_checked_when_loaded() {
        let rule = |extra: &str| {
            format!(
                r#"{{"rules": [{{"id": "x", "description": "d", "event": "a.b", "routing_key": "a.b",
                "template": "t", "tab": "messages", "media": ["email"] {extra}}}]}}"#
            )
        };
        assert!(matches!(
            Rules::parse(&rule("")),
            Err(RulesError::Invalid { .. })
        ));
        assert!(Rules::parse(&rule(r#", "recipient": "/payload/tax_code""#)).is_ok());
        assert!(Rules::parse(&rule(r#", "recipient": "/p", "colour": "red""#)).is_err());
        assert!(matches!(
            Rules::parse(&rule(r#", "recipient": "/p", "link_on_due_day": true"#)),
            Err(RulesError::Invalid { .. })
        ));
        let twice = rule(r#", "recipient": "/p""#).replace(r#"["email"]"#, r#"["email", "email"]"#);
        assert!(matches!(
            Rules::parse(&twice),
            Err(RulesError::Invalid { .. })
        ));
        assert!(matches!(
            Rules::parse(&rule(
                r#", "subject": {"kind": "pension", "id": "/payload/id"}"#
            )),
            Err(RulesError::Invalid { .. })
        ));
    }

    #[test]
    fn reminders_come_hours_before_unless_that_has_passed() {
        let due: DateTime<Utc> = "2026-11-27T09:20:00Z".parse().unwrap();
        let day_before: DateTime<Utc> = "2026-11-26T09:20:00Z".parse().unwrap();
        let early: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        assert_eq!(reminder_time(due, 24, early), Some(day_before));
        assert_eq!(reminder_time(due, 24, day_before), None);
        let rules = rules();
        let confirmed = rules.get("appointment-confirmed").unwrap();
        let reminder = confirmed.reminder_rule().unwrap();
        assert_eq!(reminder.id, "appointment-confirmed.reminder");
        assert_eq!(reminder.template, "appointment_reminder_video");
        assert_eq!(reminder.tab, Tab::Appointments);
        assert_eq!(
            (&reminder.due_at, &reminder.link),
            (&confirmed.due_at, &confirmed.link)
        );
        assert!(
            reminder.reminder_rule().is_none(),
            "a reminder is not reminded"
        );
        assert!(rules
            .get("ticket-opened")
            .unwrap()
            .reminder_rule()
            .is_none());
    }

    #[test]
    fn a_rule_withdraws_only_rules_about_the_same_kind_of_subject() {
        let rules = r#"{"rules": [
            {"id": "a", "description": "d", "event": "x.y", "routing_key": "x.y", "template": "t",
             "tab": "messages", "recipient": "/p", "subject": {"kind": "appointment", "id": "/i"},
             "media": ["email"], "withdraws": ["c"]},
            {"id": "b", "description": "d", "event": "x.z", "routing_key": "x.z", "template": "t",
             "tab": "messages", "recipient": "/p", "subject": {"kind": "appointment", "id": "/i"},
             "media": ["email"]}]}"#;
        let invalid = |json: &str, which: &str| matches!(Rules::parse(json), Err(RulesError::Invalid { rule, .. }) if rule == which);
        assert!(invalid(rules, "a"), "no rule c");
        let rules = rules.replace(r#"["c"]"#, r#"["b"]"#);
        assert_eq!(Rules::parse(&rules).unwrap().withdrawing("b"), ["a"]);
        assert!(invalid(
            &rules.replacen(r#""appointment""#, r#""ticket""#, 1),
            "a"
        ));
        let without_due = rules.replace(
            r#""media": ["email"]}]}"#,
            r#""media": ["email"],
             "reminder": {"template": "t", "tab": "messages", "hours_before": 24}}]}"#,
        );
        assert!(invalid(&without_due, "b"), "a reminder needs due_at");
        let with_due = without_due.replace(r#""reminder""#, r#""due_at": "/d", "reminder""#);
        assert!(Rules::parse(&with_due).is_ok());
    }

    fn contact(email: Option<&str>, phone: Option<&str>) -> Contact {
        Contact {
            email: email.map(str::to_owned),
            phone: phone.map(str::to_owned),
        }
    }

    #[test]
    fn the_request_contact_wins_and_preferences_are_respected() {
        let both = [Medium::Email, Medium::Sms];
        let known = KnownContacts {
            email: Some("known@example.it".into()),
            phone: Some("3330000000".into()),
            ..KnownContacts::default()
        };
        let given = contact(Some("given@example.it"), None);
        let chosen = choose_addresses(&both, &given, &known);
        assert_eq!(
            chosen.targets,
            vec![
                (Medium::Email, "given@example.it".to_owned()),
                (Medium::Sms, "+393330000000".to_owned())
            ]
        );
        let no_sms = KnownContacts {
            sms_enabled: false,
            ..known.clone()
        };
        let chosen = choose_addresses(&both, &given, &no_sms);
        assert_eq!(chosen.targets.len(), 1);
        assert_eq!(chosen.unreachable, None);
    }

    #[test]
    fn nobody_to_reach_is_said_with_the_reasons() {
        let chosen = choose_addresses(
            &[Medium::Email, Medium::Sms],
            &contact(Some("not an address"), None),
            &KnownContacts::default(),
        );
        assert!(chosen.targets.is_empty());
        let reason = chosen.unreachable.unwrap();
        assert!(reason.contains("not an email address"), "{reason}");
        assert!(reason.contains("no sms address"), "{reason}");
    }

    #[test]
    fn transient_failures_back_off_exponentially_then_give_up() {
        let policy = RetryPolicy {
            base: Duration::from_secs(30),
            cap: Duration::from_secs(600),
            max_attempts: 6,
        };
        let transient = || SendOutcome::Transient("451 try later".into());
        assert_eq!(
            policy.next(1, transient(), 0.0),
            NextStep::RetryIn(Duration::from_secs(30))
        );
        assert_eq!(
            policy.next(3, transient(), 0.0),
            NextStep::RetryIn(Duration::from_secs(120))
        );
        assert_eq!(
            policy.next(5, transient(), 0.0),
            NextStep::RetryIn(Duration::from_secs(480))
        );
        let capped = RetryPolicy {
            cap: Duration::from_secs(300),
            ..policy
        };
        assert_eq!(
            capped.next(5, transient(), 0.0),
            NextStep::RetryIn(Duration::from_secs(300))
        );
        assert_eq!(
            policy.next(2, transient(), 0.999),
            NextStep::RetryIn(Duration::from_secs(60).mul_f64(1.0 + 0.25 * 0.999))
        );
        assert!(
            matches!(policy.next(6, transient(), 0.0), NextStep::Failed(r) if r.contains("6 attempts"))
        );
        assert_eq!(
            policy.next(1, SendOutcome::Permanent("550 no such user".into()), 0.0),
            NextStep::Failed("550 no such user".into())
        );
    }

    #[test]
    fn days_left_counts_rome_calendar_days() {
        let rome = |y, m, d, h, min| {
            TIME_ZONE
                .with_ymd_and_hms(y, m, d, h, min, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        let now = rome(2026, 3, 28, 23, 30);
        // Across the spring DST change (29 March 2026), still one day.
        assert_eq!(days_left(rome(2026, 3, 29, 9, 0), now), 1);
        assert_eq!(days_left(rome(2026, 3, 28, 23, 45), now), 0);
        assert_eq!(days_left(rome(2026, 3, 31, 0, 10), now), 3);
        assert_eq!(days_left_label(1), "Manca 1 giorno");
        assert_eq!(days_left_label(3), "Mancano 3 giorni");
        assert_eq!(days_left_label(0), "Oggi");
        assert_eq!(days_left_label(-2), "Scaduta");
    }

    #[test]
    fn a_video_link_shows_only_on_the_day() {
        let due = Utc.with_ymd_and_hms(2026, 5, 29, 8, 20, 0).unwrap();
        let day_before = Utc.with_ymd_and_hms(2026, 5, 28, 8, 0, 0).unwrap();
        let same_day = Utc.with_ymd_and_hms(2026, 5, 29, 6, 0, 0).unwrap();
        assert!(!link_visible(true, Some(due), day_before));
        assert!(link_visible(true, Some(due), same_day));
        assert!(link_visible(false, None, day_before));
    }
}
