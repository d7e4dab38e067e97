//! The notification templates (Italian), embedded at build time from
//! `workers/service/templates/notifications/<template>/`:
//! `title.txt` (centre title and email subject), `message.txt` (centre text
//! and the email's text part), `message.html` (the email's HTML part, escaped
//! automatically) and `sms.txt`.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use serde::Serialize;

use crate::domain::cron::TIME_ZONE;

/// One notification, rendered for every medium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub title: String,
    pub text: String,
    pub html: String,
    pub sms: String,
}

#[derive(Debug, thiserror::Error)]
#[error("template {template}/{part}: {source}")]
pub struct RenderError {
    template: String,
    part: &'static str,
    source: Error,
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A field the event does not carry is an error, not an empty string in
    // front of a citizen.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_keep_trailing_newline(false);
    env.add_filter("data_ora", date_time);
    env.add_filter("data", date);
    env.add_filter("ora", time);
    env.add_filter("esito", outcome_label);
    env.add_filter("modalita", mode_label);
    minijinja_embed::load_templates!(&mut env, "notifications");
    env
});

pub fn render(template: &str, context: &serde_json::Value) -> Result<Rendered, RenderError> {
    let part = |part: &'static str, file: &str| -> Result<String, RenderError> {
        let fail = |source| RenderError {
            template: template.to_owned(),
            part,
            source,
        };
        TEMPLATES
            .get_template(&format!("{template}/{file}"))
            .and_then(|t| t.render(context))
            .map(|text| text.trim().to_owned())
            .map_err(fail)
    };
    Ok(Rendered {
        title: part("title", "title.txt")?,
        text: part("text", "message.txt")?,
        html: part("html", "message.html")?,
        sms: part("sms", "sms.txt")?,
    })
}

/// Whether `template` exists (rules are checked against this at start).
pub fn exists(template: &str) -> bool {
    ["title.txt", "message.txt", "message.html", "sms.txt"]
        .iter()
        .all(|file| {
            TEMPLATES
                .get_template(&format!("{template}/{file}"))
                .is_ok()
        })
}

fn parse_instant(value: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("not a time: {e}")))
}

/// `29/05/2025 alle 10:20`, Europe/Rome.
fn date_time(value: String) -> Result<String, Error> {
    Ok(parse_instant(&value)?
        .with_timezone(&TIME_ZONE)
        .format("%d/%m/%Y alle %H:%M")
        .to_string())
}

/// `29/05/2025`, Europe/Rome.
fn date(value: String) -> Result<String, Error> {
    Ok(parse_instant(&value)?
        .with_timezone(&TIME_ZONE)
        .format("%d/%m/%Y")
        .to_string())
}

/// `10:20`, Europe/Rome.
fn time(value: String) -> Result<String, Error> {
    Ok(parse_instant(&value)?
        .with_timezone(&TIME_ZONE)
        .format("%H:%M")
        .to_string())
}

/// `accolta` and `respinta` read as they are; `evasa` needs a word more.
fn outcome_label(value: String) -> String {
    match value.as_str() {
        "evasa" => "evasa (richiesta trattata)".to_owned(),
        _ => value,
    }
}

/// An appointment's mode as the citizen reads it.
fn mode_label(value: String) -> String {
    match value.as_str() {
        "in_person" => "in presenza".to_owned(),
        "phone" => "con ricontatto telefonico".to_owned(),
        "video" => "in videochiamata".to_owned(),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notification::Rules;
    use crate::domain::sms::{measure, SmsEncoding};
    use serde_json::json;

    fn ticket() -> serde_json::Value {
        json!({
            "id": "0193a1c2-0000-7000-8000-000000000001",
            "subject": "Versamenti <2025> & F24",
            "ambito": "versamenti",
            "matricola": "1234567890",
            "state": "aperta",
            "signature": "INPS.4902.25/11/2026.0000042",
            "opened_at": "2026-11-25T09:20:00Z",
            "outcome": null,
            "office": {"aoo": "4902", "name": "Milano Nord"}
        })
    }

    /// The schema's example (a video call), in `mode`, with what that mode
    /// carries (the longest office name, for the SMS length).
    fn appointment(mode: &str) -> serde_json::Value {
        let example = include_str!("../../../../schemas/appointment.confirmed/v1.example.json");
        let event: serde_json::Value = serde_json::from_str(example).unwrap();
        let mut payload = event["payload"].clone();
        payload["mode"] = json!(mode);
        payload["office_name"] = json!("Direzione Provinciale Reggio Calabria");
        match mode {
            "in_person" => {
                payload["office_address"] = json!("Via San Giuseppe 12, 89125 Reggio Calabria");
                payload.as_object_mut().unwrap().remove("video_link");
            }
            "phone" => {
                payload["callback_phone"] = json!("+393331234567");
                payload.as_object_mut().unwrap().remove("video_link");
            }
            _ => {}
        }
        json!({"payload": payload})
    }

    fn window() -> serde_json::Value {
        let example = include_str!("../../../../schemas/documents.window_opened/v1.example.json");
        let event: serde_json::Value = serde_json::from_str(example).unwrap();
        json!({"case": {"subject": "Videochiamata", "office": {"aoo": "4902", "name": "Milano Nord"}},
               "payload": event["payload"]})
    }

    fn samples() -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("ticket_opened", json!({"ticket": ticket(), "payload": {}})),
            (
                "ticket_registered_in_triage",
                json!({"ticket": ticket(), "payload": {}}),
            ),
            ("ticket_routed", json!({"ticket": ticket(), "payload": {}})),
            (
                "ticket_closed",
                json!({"ticket": ticket(), "payload": {
                    "at": "2026-11-26T15:00:00Z", "outcome": "accolta", "comment": "Rimborso disposto."}}),
            ),
            (
                "documents_registered",
                json!({"case": {"subject": "Videochiamata", "office": {"aoo": "4902", "name": "Milano Nord"}},
                       "payload": {"document_ids": ["a", "b"], "signature": "INPS.4902.25/11/2026.0000043",
                                   "registered_at": "2026-11-25T10:00:00Z"}}),
            ),
            ("documents_window_opened", window()),
            ("documents_window_closing", window()),
            (
                "documents_window_closed",
                json!({"case": {"subject": "Videochiamata", "office": {"aoo": "4902", "name": "Milano Nord"}},
                       "payload": {"closed_at": "2026-11-28T17:05:00Z", "reason": "expired"}}),
            ),
            ("appointment_confirmed_video", appointment("video")),
            ("appointment_reminder_video", appointment("video")),
            ("appointment_confirmed_in_person", appointment("in_person")),
            ("appointment_reminder_in_person", appointment("in_person")),
            ("appointment_confirmed_phone", appointment("phone")),
            ("appointment_reminder_phone", appointment("phone")),
            (
                "appointment_cancelled",
                json!({"payload": {"starts_at": "2026-11-27T09:20:00Z", "cancelled_by": "office",
                                   "office_name": "Direzione Provinciale Reggio Calabria",
                                   "desk": "indennità e ammortizzatori sociali", "mode": "phone",
                                   "reason": "Sede chiusa per inventario."}}),
            ),
        ]
    }

    #[test]
    fn every_rule_has_its_template() {
        for rule in Rules::embedded().unwrap().rules {
            for template in rule.templates() {
                assert!(
                    exists(template),
                    "rule {:?}: no template {template:?}",
                    rule.id
                );
            }
        }
    }

    #[test]
    fn templates_render_in_italian_with_rome_times() {
        let opened = render("ticket_opened", &samples()[0].1).unwrap();
        assert_eq!(
            opened.title,
            "Richiesta protocollata: Versamenti <2025> & F24"
        );
        assert!(
            opened.text.contains("il 25/11/2026 alle 10:20"),
            "{}",
            opened.text
        );
        assert!(opened.text.contains("Milano Nord"));
        // HTML escapes what came from the citizen.
        assert!(
            opened.html.contains("Versamenti &lt;2025&gt; &amp; F24"),
            "{}",
            opened.html
        );
        let closed = render("ticket_closed", &samples()[3].1).unwrap();
        assert!(closed.text.contains("esito: accolta"));
        assert!(closed.text.contains("Rimborso disposto."));
    }

    #[test]
    fn sms_texts_fit_one_gsm7_part() {
        for (template, context) in samples() {
            let sms = render(template, &context).unwrap().sms;
            let length = measure(&sms);
            assert_eq!(length.encoding, SmsEncoding::Gsm7, "{template}: {sms}");
            assert_eq!(
                length.parts, 1,
                "{template}: {sms} ({} septets)",
                length.units
            );
        }
    }

    #[test]
    fn each_mode_says_what_the_citizen_needs() {
        let in_person =
            render("appointment_confirmed_in_person", &appointment("in_person")).unwrap();
        assert!(
            in_person.text.contains("Indirizzo: Via San Giuseppe 12"),
            "{}",
            in_person.text
        );
        assert!(in_person.html.contains("Via San Giuseppe 12"));
        let phone = render("appointment_confirmed_phone", &appointment("phone")).unwrap();
        // 09:20-09:40 UTC on 27 November is 10:20-10:40 in Rome.
        for text in [&phone.text, &phone.sms] {
            assert!(
                text.contains("27/11/2026 tra le 10:20 e le 10:40"),
                "{text}"
            );
            assert!(text.contains("+393331234567"), "{text}");
        }
        let video = render("appointment_confirmed_video", &appointment("video")).unwrap();
        assert!(video.text.contains("Scadenze"), "{}", video.text);
        // An office with no address on record: the sentence is left out.
        let mut unknown = appointment("in_person");
        unknown["payload"]
            .as_object_mut()
            .unwrap()
            .remove("office_address");
        let without = render("appointment_confirmed_in_person", &unknown).unwrap();
        assert!(!without.text.contains("Indirizzo"), "{}", without.text);
        let cancelled = render("appointment_cancelled", &samples().last().unwrap().1).unwrap();
        assert!(
            cancelled.text.contains("con ricontatto telefonico"),
            "{}",
            cancelled.text
        );
    }

    #[test]
    fn a_missing_field_is_an_error_not_a_blank() {
        let error = render("ticket_opened", &json!({"payload": {}})).unwrap_err();
        assert!(error.to_string().contains("ticket_opened/title"), "{error}");
    }
}
