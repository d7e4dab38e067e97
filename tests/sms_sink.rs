//! The development SMS provider (`scripts/sms_sink.py`) speaks what the real
//! adapter (`notifications::sms`) speaks: driven here by the adapter itself,
//! it keeps each message once as a file, also across a restart, and refuses
//! what a real provider would.

use std::time::Duration;

use serde_json::json;
use sportello::domain::notification::SendOutcome;
use sportello::notifications::sms::{SmsProvider, SmsProviderConfig};

use crate::support::sms_sink::{self, SmsSink};

const PHONE: &str = "+393331234567";

fn provider(sink: &SmsSink, password: &str) -> SmsProvider {
    SmsProvider::new(SmsProviderConfig {
        url: sink.url.clone(),
        user: sms_sink::USER.into(),
        password: password.into(),
        sender: "INPS".into(),
        max_parts: 3,
        timeout: Duration::from_secs(5),
    })
    .expect("an HTTP client")
}

fn scratch() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sportello-sms-{}", uuid::Uuid::new_v4().simple()))
}

#[actix_rt::test]
async fn the_sink_keeps_each_reference_once_as_a_file_across_restarts() {
    let dir = scratch();
    let sink = SmsSink::start(&dir);
    let sms = provider(&sink, sms_sink::PASSWORD);

    let first = sms
        .send_text(PHONE, "Il codice è 123456.", "ref-1", "test")
        .await;
    assert_eq!(
        first,
        SendOutcome::Sent {
            provider_id: Some("sink-000001".into())
        }
    );
    // A resend under the same reference (an interrupted attempt) is the same message.
    let again = sms
        .send_text(PHONE, "Il codice è 123456.", "ref-1", "test")
        .await;
    assert_eq!(again, first);
    let kept = sink.messages_to(PHONE);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["text"], "Il codice è 123456.");
    assert_eq!(
        kept[0]["encoding"], "GSM7",
        "è is in the GSM 7-bit alphabet"
    );
    assert_eq!(kept[0]["sender"], "INPS");
    assert_eq!(kept[0]["reference"], "ref-1");
    assert!(dir.join(PHONE).join("000001.json").is_file());

    // Restarted on the same folder: the reference is still known, and
    // numbering goes on rather than overwriting.
    drop(sink);
    let sink = SmsSink::start(&dir);
    let sms = provider(&sink, sms_sink::PASSWORD);
    assert_eq!(
        sms.send_text(PHONE, "Il codice è 123456.", "ref-1", "test")
            .await,
        first
    );
    assert_eq!(
        sms.send_text(PHONE, "Promemoria", "ref-2", "test").await,
        SendOutcome::Sent {
            provider_id: Some("sink-000002".into())
        }
    );
    let texts: Vec<_> = sink
        .messages_to(PHONE)
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, [json!("Il codice è 123456."), json!("Promemoria")]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn the_sink_refuses_bad_credentials_and_malformed_submissions() {
    let dir = scratch();
    let sink = SmsSink::start(&dir);

    // The adapter waits on 401 (the configuration, not the message).
    let outcome = provider(&sink, "wrong")
        .send_text(PHONE, "Ciao", "ref-1", "test")
        .await;
    assert!(
        matches!(&outcome, SendOutcome::Transient(reason) if reason.contains("401")),
        "{outcome:?}"
    );

    let http = reqwest::Client::new();
    for body in [
        json!({"sender": "INPS", "recipient": "../../etc", "text": "x", "encoding": "GSM7", "reference": "a"}),
        json!({"sender": "INPS", "recipient": PHONE, "text": "x", "encoding": "latin1", "reference": "b"}),
        json!({"sender": "INPS", "recipient": PHONE, "text": "x", "encoding": "GSM7"}),
        json!(["not", "an", "object"]),
    ] {
        let answer = http
            .post(&sink.url)
            .basic_auth(sms_sink::USER, Some(sms_sink::PASSWORD))
            .json(&body)
            .send()
            .await
            .expect("the sink answers");
        assert_eq!(answer.status(), reqwest::StatusCode::BAD_REQUEST, "{body}");
    }
    let unknown = http
        .post(sink.url.replace("/messages", "/other"))
        .basic_auth(sms_sink::USER, Some(sms_sink::PASSWORD))
        .json(&json!({}))
        .send()
        .await
        .expect("the sink answers");
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
    // Nothing was kept, inside the folder or beside it.
    assert_eq!(std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
