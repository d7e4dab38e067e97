//! The institute's PIN (issue 17, seed 003) against the real broker,
//! database, SMTP sink and fake SMS provider: request with the halves split
//! (SMS/email and the postal queue), simplified access, first use, sign-in,
//! the lock, recovery, conversion to dispositivo; every refusal; and that
//! no PIN, not even a half, is in a log, an event, a dead letter, a metric
//! or a stored delivery.

use std::time::Duration;

use crate::support::api::Api;
use crate::support::mail::{readable, sink, wait_for_mail};
use crate::support::sms_provider::SmsGateway;
use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sportello::broker::names::{DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, REASON_HEADER};
use sportello::contract::{Authentication, CodiceFiscale, Identification, PinKind, Principal};
use sportello::domain::pin::secret::HALF_ALPHABET;
use sportello::pin::crypto::PinKeys;
use sportello::workers::WorkerKind;

const TAX_CODE: &str = "RSSMRA85T10A562S";

/// The API with every worker the PIN needs (the agents' checks over the
/// broker too), SMS to a fake provider, email to the sink.
async fn start() -> (Api, SmsGateway) {
    let sms = SmsGateway::start();
    let url = sms.url.clone();
    let env = TestEnv::new_with(|settings| {
        settings.sms_provider_url = Some(url);
        settings.sms_provider_user = crate::support::sms_provider::USER.into();
        settings.sms_provider_password = crate::support::sms_provider::PASSWORD.into();
        settings.smtp_url = sink().url.clone();
        settings.pin_max_failures = 5;
    })
    .await;
    let api = Api::start_with(
        env,
        &[
            WorkerKind::Intake,
            WorkerKind::OutboxRelay,
            WorkerKind::Notify,
            WorkerKind::EmailSender,
            WorkerKind::SmsSender,
            WorkerKind::PinChecks,
        ],
    );
    (api, sms)
}

fn unique_mail(label: &str) -> String {
    format!("{label}-{}@example.it", uuid::Uuid::new_v4().simple())
}

fn request_body(email: &str) -> Value {
    json!({
        "tax_code": TAX_CODE,
        "surname": "Rossi",
        "name": "Mario",
        "birth_date": "1985-12-10",
        "sex": "M",
        "birthplace_code": "A562",
        "birth_municipality": "San Giovanni Rotondo",
        "birth_province": "FG",
        "residence": {
            "country": "IT", "address": "Via Mazzini", "street_number": "12",
            "postal_code": "26013", "municipality": "Crema", "province": "CR"
        },
        "contacts": {"mobile": "+39 333 1234567", "email": email}
    })
}

async fn anonymous(api: &Api, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    api.call(method, path, None, Some(body)).await
}

async fn with_token(
    api: &Api,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = api
        .client
        .request(method, format!("{}{path}", api.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// The 8 characters after `marker` in `text`.
fn half_after(text: &str, marker: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in {text:?}"))
        + marker.len();
    let half: String = text[start..].chars().take(8).collect();
    assert!(half.bytes().all(|b| HALF_ALPHABET.contains(&b)), "{half:?}");
    half
}

async fn wait_for_sms(sms: &SmsGateway, to: &str, count: usize) -> Vec<String> {
    assert!(
        eventually(Duration::from_secs(20), || async {
            sms.delivered_to(to).len() >= count
        })
        .await,
        "{count} SMS to {to}"
    );
    sms.delivered_to(to).into_iter().map(|s| s.text).collect()
}

/// The second half, as the postal service prints it.
async fn take_letter(api: &Api) -> (String, Vec<u8>) {
    let keys = PinKeys::new(&api.env.settings.pin_secret);
    let mut pdfs = Vec::new();
    let outcome = sportello::pin::postal::take(&api.env.pool, &keys, 10, |letters| {
        pdfs = letters
            .into_iter()
            .map(|l| (l.recipient, l.address, l.pdf))
            .collect::<Vec<_>>();
        async { Ok::<(), ()>(()) }
    })
    .await
    .unwrap();
    assert_eq!(outcome, Ok(1));
    let (recipient, address, pdf) = pdfs.pop().unwrap();
    assert_eq!(recipient, "Mario Rossi");
    assert_eq!(address, ["Via Mazzini 12", "26013 Crema (CR)"]);
    let text = String::from_utf8_lossy(&pdf).into_owned();
    (half_after(&text, "Seconda parte del PIN: "), pdf)
}

/// Requests a PIN and returns its two halves (SMS, letter).
async fn issued_pin(api: &Api, sms: &SmsGateway, email: &str) -> (String, String) {
    let before = sms.delivered_to("+393331234567").len();
    let (status, body) = anonymous(api, Method::POST, "/pin/requests", request_body(email)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["first_half_to"], "sms:*********4567");
    assert_eq!(body["second_half_to"], "post");
    let texts = wait_for_sms(sms, "+393331234567", before + 1).await;
    let first = half_after(texts.last().unwrap(), "PIN è ");
    let (second, _) = take_letter(api).await;
    (first, second)
}

async fn sign_in(api: &Api, pin: &str) -> (StatusCode, Value) {
    anonymous(
        api,
        Method::POST,
        "/pin/sign-in",
        json!({"tax_code": TAX_CODE, "pin": pin}),
    )
    .await
}

async fn first_use(api: &Api, initial: &str, new_pin: &str) -> (StatusCode, Value) {
    anonymous(
        api,
        Method::POST,
        "/pin/first-use",
        json!({"tax_code": TAX_CODE, "pin": initial, "new_pin": new_pin}),
    )
    .await
}

/// Every place a PIN must never be: captured logs, events on the broker,
/// dead letters, metrics, and the database's kept bodies.
async fn assert_nowhere(api: &Api, events: &[Vec<u8>], dead: &[Vec<u8>], secrets: &[&str]) {
    let logs = crate::support::logs::captured();
    assert!(logs.contains("PIN requested"), "the logs were captured");
    let metrics = sportello::metrics::metrics().encode();
    let pool = &api.env.pool;
    let text = |sql: &'static str| async move {
        sqlx::query_scalar::<_, Option<String>>(sql)
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n")
    };
    let stored = [
        text("SELECT text_body FROM deliveries").await,
        text("SELECT coalesce(html_body, '') || coalesce(last_error, '') FROM deliveries").await,
        text("SELECT title || body FROM notifications").await,
        text("SELECT detail FROM delivery_attempts").await,
        text("SELECT convert_from(body, 'UTF8') FROM outbox").await,
        text("SELECT concat_ws(' ', first_half_hash, initial_hash, pin_hash) FROM pin_credentials")
            .await,
    ]
    .join("\n");
    assert!(stored.contains("[[PIN]]"), "deliveries keep the marker");
    for secret in secrets {
        assert!(!logs.contains(secret), "a PIN secret is in the logs");
        assert!(!metrics.contains(secret), "a PIN secret is in the metrics");
        assert!(!stored.contains(secret), "a PIN secret is stored in clear");
        for event in events.iter().chain(dead) {
            assert!(
                !String::from_utf8_lossy(event).contains(secret),
                "a PIN secret is in a message"
            );
        }
    }
}

async fn drain(probe: &mut Probe) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    while let Some(delivery) = probe.next(Duration::from_millis(500)).await {
        all.push(delivery.data);
    }
    all
}

#[actix_rt::test]
async fn a_pin_is_requested_split_used_first_and_signed_in_with_no_half_anywhere() {
    // Held to the end: assert_nowhere greps every log line at debug.
    let _logs = crate::support::logs::capture();
    let (api, sms) = start().await;
    let mut events = api.env.probe(EVENTS_EXCHANGE, "#").await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let email = unique_mail("richiesta");
    let (first, second) = issued_pin(&api, &sms, &email).await;
    assert_ne!(first, second);

    // The seals are gone once sent and taken.
    let pool = &api.env.pool;
    assert!(
        eventually(Duration::from_secs(10), || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pin_sealed_halves")
                .fetch_one(pool)
                .await
                .unwrap()
                == 0
        })
        .await,
        "the first half's seal is deleted once the SMS is sent"
    );
    let letters: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pin_postal_letters WHERE sealed IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(letters, 0, "the letter's seal is deleted once taken");

    // The first half alone: the simplified access, for the listed services only.
    let (status, body) = sign_in(&api, &first.to_lowercase()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pin_kind"], "simplified");
    let simplified = body["access_token"].as_str().unwrap().to_owned();
    let (status, menu) = with_token(&api, Method::GET, "/catalogue", &simplified, None).await;
    assert_eq!(status, StatusCode::OK, "{menu}");
    let tickets = menu["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "tickets")
        .unwrap();
    assert_eq!(tickets["available"], false, "{tickets}");

    // All 16 characters: first use comes first.
    let initial = format!("{first}{second}");
    let (status, body) = sign_in(&api, &initial).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("first_use_required"))
    );
    // First use: refusals for the new PIN, then the new PIN.
    let (status, body) = first_use(&api, &initial, "abcdefgh").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["fields"][0]["field"], "new_pin");
    let (status, body) = first_use(&api, &first, "Nuovo123").await;
    assert_eq!(
        (status, body["fields"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("pin"))
    );
    let (status, body) = first_use(&api, &initial, "Nuovo123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pin_kind"], "ordinary");
    let (status, body) = first_use(&api, &initial, "Nuovo456").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("initial_pin_replaced"))
    );

    // Afterwards: the own PIN signs in; the first half no longer does.
    let (status, body) = sign_in(&api, "Nuovo123").await;
    assert_eq!(
        (status, body["pin_kind"].as_str()),
        (StatusCode::OK, Some("ordinary")),
        "{body}"
    );
    let ordinary = body["access_token"].as_str().unwrap().to_owned();
    let (status, _) = with_token(&api, Method::GET, "/tickets", &ordinary, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = sign_in(&api, &first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("wrong_pin"))
    );
    // Case matters for the chosen PIN.
    let (status, _) = sign_in(&api, "nuovo123").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A second request for the same tax code is refused.
    let (status, body) = anonymous(&api, Method::POST, "/pin/requests", request_body(&email)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("pin_already_issued"))
    );

    // The audit trail: every step an event, none with a secret.
    let events = drain(&mut events).await;
    let steps: Vec<String> = events
        .iter()
        .filter_map(|e| serde_json::from_slice::<Value>(e).ok())
        .filter(|e| e["type"] == "pin.changed")
        .map(|e| e["payload"]["step"].as_str().unwrap().to_owned())
        .collect();
    for step in [
        "requested",
        "first_half_queued",
        "second_half_queued",
        "simplified_sign_in",
        "first_use_completed",
        "signed_in",
        "sign_in_failed",
    ] {
        assert!(steps.iter().any(|s| s == step), "{step} in {steps:?}");
    }
    let dead = drain(&mut dead).await;
    assert_nowhere(
        &api,
        &events,
        &dead,
        &[&first, &second, &initial, "Nuovo123"],
    )
    .await;
    api.stop().await;
}

#[actix_rt::test]
async fn a_request_is_refused_field_by_field_and_only_for_its_caller() {
    let (api, _sms) = start().await;
    let email = unique_mail("rifiuti");
    let refused = |patch: Value| {
        let mut body = request_body(&email);
        for (key, value) in patch.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        body
    };
    for (patch, field) in [
        (json!({"surname": "Verdi"}), "surname"),
        (json!({"name": "Marco"}), "name"),
        (json!({"birth_date": "1985-12-11"}), "birth_date"),
        (json!({"sex": "F"}), "sex"),
        (json!({"birthplace_code": "H501"}), "birthplace_code"),
        (json!({"tax_code": "RSSMRA85T10A562X"}), "tax_code"),
        (json!({"birth_province": null}), "birth_province"),
        (
            json!({"contacts": {"mobile": "3331234567", "email": email}}),
            "contacts.mobile",
        ),
        (
            json!({"contacts": {"mobile": "+393331234567"}}),
            "contacts.email",
        ),
        (json!({"contacts": {"email": email}}), "contacts.mobile"),
        (
            json!({"contacts": {"mobile": "+393331234567", "pec": "not-a-pec"}}),
            "contacts.pec",
        ),
        (
            json!({"residence": {"country": "IT", "address": "Via Roma", "street_number": "1", "postal_code": "2601", "municipality": "Crema", "province": "CR"}}),
            "residence.postal_code",
        ),
        (
            json!({"residence": {"country": "DE", "address": "Hauptstraße 5"}}),
            "residence.city",
        ),
        (json!({"first_half_to": "pec"}), "first_half_to"),
    ] {
        let (status, body) =
            anonymous(&api, Method::POST, "/pin/requests", refused(patch.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{patch}: {body}");
        assert_eq!(body["error"], "invalid");
        let fields: Vec<&str> = body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{patch}: {fields:?}");
        assert!(body["message"].as_str().unwrap().contains(field), "{body}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM pin_credentials")
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing refused was stored");

    // The contact centre requests for its caller only; other principals not at all.
    let agent_for = |caller: &str| Principal::ContactCenterAgent {
        agent_id: "CC0042".into(),
        on_behalf_of: CodiceFiscale::parse(caller).unwrap(),
        identified_by: Some(Identification::Cie),
        pin_verification_id: None,
    };
    let (status, _) = api
        .post(
            "/pin/requests",
            &agent_for("BNCGVN70A41F205O"),
            request_body(&email),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .post("/pin/requests", &operator("1901"), request_body(&email))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = api
        .post("/pin/requests", &agent_for(TAX_CODE), request_body(&email))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let channel: String = sqlx::query_scalar("SELECT channel FROM pin_credentials")
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(channel, "contact_center");
    // First half by email, as asked.
    let mut body = request_body(&unique_mail("altro"));
    body["tax_code"] = json!("BNCGVN70A41F205O");
    body["surname"] = json!("Bianchi");
    body["name"] = json!("Gavina");
    body["birth_date"] = json!("1970-01-01");
    body["sex"] = json!("F");
    body["birthplace_code"] = json!("F205");
    body["birth_province"] = json!("MI");
    body["first_half_to"] = json!("email");
    let mailbox = body["contacts"]["email"].as_str().unwrap().to_owned();
    let (status, answer) = anonymous(&api, Method::POST, "/pin/requests", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let mail = wait_for_mail(&mailbox, Duration::from_secs(20)).await;
    assert_eq!(mail.len(), 1);
    half_after(&readable(&mail[0]), "è: ");
    api.stop().await;
}

#[actix_rt::test]
async fn repeated_wrong_pins_lock_with_a_clear_message_until_the_time_passes() {
    let (api, sms) = start().await;
    let (first, _second) = issued_pin(&api, &sms, &unique_mail("blocco")).await;
    // An unknown tax code answers like a wrong PIN.
    let (status, body) = anonymous(
        &api,
        Method::POST,
        "/pin/sign-in",
        json!({"tax_code": "BNCGVN70A41F205O", "pin": "ABCD2345"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("wrong_pin"))
    );
    let (status, body) = anonymous(
        &api,
        Method::POST,
        "/pin/sign-in",
        json!({"tax_code": TAX_CODE, "pin": "abc"}),
    )
    .await;
    assert_eq!(
        (status, body["fields"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("pin"))
    );

    // Brute force: a guess per call, in parallel as an attacker would.
    let guesses: Vec<String> = (0..12).map(|i| format!("WRNG{i:04}")).collect();
    let answers = futures::future::join_all(guesses.iter().map(|g| sign_in(&api, g))).await;
    let unauthorized = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    let locked = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::LOCKED)
        .count();
    assert_eq!(unauthorized, 4, "four wrong attempts are told wrong");
    assert_eq!(
        locked, 8,
        "the fifth locks; every attempt after it is refused unchecked"
    );
    let (status, body) = sign_in(&api, &first).await;
    assert_eq!(
        status,
        StatusCode::LOCKED,
        "the right PIN is refused while locked"
    );
    assert_eq!(body["error"], "pin_locked");
    assert!(body["locked_until"].is_string(), "{body}");
    // The citizen's Italian says what to do and until when; the English stays as detail.
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("Hai smarrito il PIN?") && message.contains("Il blocco termina il"),
        "{message}"
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("wait until then")),
        "{body}"
    );
    let (failures, locks): (i32, i32) =
        sqlx::query_as("SELECT failures, locks_in_a_row FROM pin_credentials")
            .fetch_one(&api.env.pool)
            .await
            .unwrap();
    assert_eq!((failures, locks), (0, 1));

    // Time passes (the lock's end moved into the past): the right PIN works.
    sqlx::query("UPDATE pin_credentials SET locked_until = now() - interval '1 second'")
        .execute(&api.env.pool)
        .await
        .unwrap();
    let (status, body) = sign_in(&api, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.stop().await;
}

#[actix_rt::test]
async fn a_lost_pin_is_recovered_on_two_contacts_after_an_email_confirmation() {
    // Held to the end: assert_nowhere greps every log line at debug.
    let _logs = crate::support::logs::capture();
    let (api, sms) = start().await;
    let email = unique_mail("ripristino");
    // Before first use there is nothing to recover.
    let (first, _second) = issued_pin(&api, &sms, &email).await;
    let recovery = json!({"tax_code": TAX_CODE, "mobile": "+393331234567", "email": email});
    let (status, body) = anonymous(&api, Method::POST, "/pin/recovery", recovery.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("recovery_not_available")),
        "{body}"
    );
    // The way out for a lost initial PIN: revoke (an operator at an office),
    // then request again; the halves still waiting are gone with it.
    let (status, _) = api
        .post(
            "/pin/revocation",
            &citizen("BNCGVN70A41F205O"),
            json!({"tax_code": TAX_CODE}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not someone else's PIN");
    let (status, body) = api
        .post(
            "/pin/revocation",
            &operator("1901"),
            json!({"tax_code": TAX_CODE}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = sign_in(&api, &first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("pin_revoked"))
    );
    let (status, _) = api
        .post(
            "/pin/revocation",
            &operator("1901"),
            json!({"tax_code": TAX_CODE}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing left to revoke");
    let (first, second) = issued_pin(&api, &sms, &email).await;
    let (status, _) = first_use(&api, &format!("{first}{second}"), "Nuovo123").await;
    assert_eq!(status, StatusCode::OK);

    // Refusals: one contact, a contact not on record.
    let (status, body) = anonymous(
        &api,
        Method::POST,
        "/pin/recovery",
        json!({"tax_code": TAX_CODE, "email": email}),
    )
    .await;
    assert_eq!(
        (status, body["fields"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("contacts"))
    );
    let (status, body) = anonymous(
        &api,
        Method::POST,
        "/pin/recovery",
        json!({"tax_code": TAX_CODE, "mobile": "+393339999999", "email": email}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("contacts_mismatch"))
    );

    // Lock it, then recover: recovery lifts the lock.
    for _ in 0..5 {
        sign_in(&api, "Sbagli99").await;
    }
    assert_eq!(sign_in(&api, "Nuovo123").await.0, StatusCode::LOCKED);
    let (status, body) = anonymous(&api, Method::POST, "/pin/recovery", recovery.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mail = wait_for_mail(&email, Duration::from_secs(20)).await;
    let link = readable(mail.last().unwrap());
    let start = link.find("token=").unwrap() + "token=".len();
    let token: String = link[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    assert!(
        !link.contains("[[PIN]]"),
        "the link's secret was put in: {link}"
    );

    let (status, body) = anonymous(
        &api,
        Method::POST,
        "/pin/recovery/confirmation",
        json!({"token": format!("{token}x")}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("link_invalid"))
    );
    let (status, body) = anonymous(
        &api,
        Method::POST,
        "/pin/recovery/confirmation",
        json!({"token": token}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = anonymous(
        &api,
        Method::POST,
        "/pin/recovery/confirmation",
        json!({"token": token}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a link works once"
    );

    // Half by SMS, half by email.
    let texts = wait_for_sms(&sms, "+393331234567", 3).await;
    let new_first = half_after(texts.last().unwrap(), "nuovo PIN: ");
    assert!(
        eventually(Duration::from_secs(20), || async {
            wait_for_mail(&email, Duration::from_millis(10)).await.len() >= 2
        })
        .await
    );
    let mail = wait_for_mail(&email, Duration::from_secs(1)).await;
    let new_second = half_after(&readable(mail.last().unwrap()), "nuovo PIN: ");
    // The old PIN is gone, the lock too; the new one goes through first use.
    // Until first use, no 8 characters open it: not the old PIN, not a half.
    let (status, body) = sign_in(&api, "Nuovo123").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("simplified_not_allowed"))
    );
    let (status, body) = sign_in(&api, &new_first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("simplified_not_allowed"))
    );
    let (status, body) = first_use(&api, &format!("{new_first}{new_second}"), "Ancora77").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sign_in(&api, "Ancora77").await.0, StatusCode::OK);
    // Halves by SMS and by email, and the link's secret: in no log, no
    // stored body, no metric.
    let link_secret = token.split_once('.').unwrap().1.to_owned();
    assert_nowhere(
        &api,
        &[],
        &[],
        &[&new_first, &new_second, &link_secret, "Ancora77"],
    )
    .await;
    api.stop().await;
}

fn form_part(bytes: Vec<u8>, name: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str("application/pdf")
        .unwrap()
}

#[actix_rt::test]
async fn an_ordinary_pin_becomes_dispositivo_when_the_office_approves_the_signed_form() {
    let (api, sms) = start().await;
    let email = unique_mail("conversione");
    let (first, second) = issued_pin(&api, &sms, &email).await;
    let (_, body) = sign_in(&api, &first).await;
    let simplified = body["access_token"].as_str().unwrap().to_owned();
    let (status, _) = with_token(
        &api,
        Method::GET,
        "/pin/conversion/form.pdf",
        &simplified,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the simplified PIN does not convert"
    );
    let (_, body) = first_use(&api, &format!("{first}{second}"), "Nuovo123").await;
    let ordinary = body["access_token"].as_str().unwrap().to_owned();

    // The pre-filled form.
    let response = api
        .client
        .get(format!("{}/pin/conversion/form.pdf", api.base))
        .bearer_auth(&ordinary)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let form = response.bytes().await.unwrap().to_vec();
    let text = String::from_utf8_lossy(&form);
    assert!(form.starts_with(b"%PDF-") && text.contains(TAX_CODE) && text.contains("Rossi"));

    let upload = |files: Vec<Vec<u8>>, conformity: bool| {
        let mut form = reqwest::multipart::Form::new().text("conformity", conformity.to_string());
        for (i, bytes) in files.into_iter().enumerate() {
            form = form.part("file", form_part(bytes, &format!("allegato-{i}.pdf")));
        }
        api.client
            .post(format!("{}/pin/conversion", api.base))
            .bearer_auth(&ordinary)
            .multipart(form)
            .send()
    };
    let refused = upload(vec![form.clone()], true).await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "two files are needed"
    );
    let refused = upload(vec![form.clone(), b"not a pdf".to_vec()], true)
        .await
        .unwrap();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["fields"][0]["field"], "identity_document", "{body}");
    let refused = upload(vec![form.clone(), form.clone()], false)
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "conformity is declared"
    );
    let accepted = upload(vec![form.clone(), form.clone()], true)
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let message_id: Value = accepted.json().await.unwrap();
    let message_id = uuid::Uuid::parse_str(message_id["message_id"].as_str().unwrap()).unwrap();
    let again = upload(vec![form.clone(), form.clone()], true)
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "one conversion at a time"
    );

    // The upload opened a back-office case at the residence's office, with both files.
    let pool = &api.env.pool;
    assert!(
        eventually(Duration::from_secs(20), || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM tickets WHERE request_message_id = $1",
            )
            .bind(message_id)
            .fetch_one(pool)
            .await
            .unwrap()
                == 1
        })
        .await,
        "the conversion's case is opened"
    );
    let (ticket, office, ambito): (uuid::Uuid, String, String) =
        sqlx::query_as("SELECT id, office_aoo, ambito FROM tickets WHERE request_message_id = $1")
            .bind(message_id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (office.as_str(), ambito.as_str()),
        ("1901", "pin_dispositivo")
    );
    let documents: i64 = sqlx::query_scalar("SELECT count(*) FROM documents WHERE case_id = $1")
        .bind(ticket)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(documents, 2);

    // Still ordinary while the office examines it; then approved.
    assert_eq!(sign_in(&api, "Nuovo123").await.1["pin_kind"], "ordinary");
    let office = operator("1901");
    let (status, body) = api
        .post(
            &format!("/tickets/{ticket}/take-in-charge"),
            &office,
            json!({"comment": "Verifica documento"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .post(
            &format!("/tickets/{ticket}/close"),
            &office,
            json!({"outcome": "accolta", "comment": "Documento verificato"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = sign_in(&api, "Nuovo123").await;
    assert_eq!(
        (status, body["pin_kind"].as_str()),
        (StatusCode::OK, Some("dispositivo")),
        "{body}"
    );
    // The citizen is told the outcome.
    assert!(
        eventually(Duration::from_secs(20), || async {
            sms.delivered_to("+393331234567")
                .iter()
                .any(|s| s.text.contains("accolta") || s.text.contains("chius"))
        })
        .await,
        "the outcome notification: {:?}",
        sms.delivered_to("+393331234567")
            .iter()
            .map(|s| s.text.clone())
            .collect::<Vec<_>>()
    );
    let dispositivo = Principal::Citizen {
        tax_code: CodiceFiscale::parse(TAX_CODE).unwrap(),
        authentication: Authentication::Pin {
            pin_kind: PinKind::Dispositivo,
        },
    };
    let (status, _) = api.get("/pin/conversion/form.pdf", &dispositivo).await;
    assert_eq!(status, StatusCode::CONFLICT, "already dispositivo");
    api.stop().await;
}

/// The contact centre's `pin.requested` on the intake, as in the schema's example.
fn intake_request(email: &str) -> Value {
    let file = sportello::contract::schemas::SCHEMA_FILES
        .iter()
        .find(|f| f.message_type == "pin.requested")
        .unwrap();
    let mut message: Value = serde_json::from_str(file.example).unwrap();
    message["message_id"] = json!(uuid::Uuid::now_v7());
    message["idempotency_key"] = json!(format!("cc-pin-{}", uuid::Uuid::new_v4().simple()));
    message["payload"]["contacts"]["email"] = json!(email);
    message
}

#[actix_rt::test]
async fn the_contact_centre_requests_a_pin_over_the_intake_once_with_refusals_dead_lettered() {
    let (api, sms) = start().await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let key = "contact_center.pin.requested";

    // A refused field: dead-lettered naming it, nothing issued.
    let mut refused = intake_request(&unique_mail("cc"));
    refused["payload"]["birth_date"] = json!("1985-12-11");
    refused["payload"]["contacts"]["mobile"] = json!("3331234567");
    api.env
        .publish("contact_center", key, &bytes(&refused))
        .await
        .unwrap();
    let letter = dead
        .next(Duration::from_secs(20))
        .await
        .expect("the refused request is dead-lettered");
    let reason = header(&letter, REASON_HEADER).unwrap();
    assert!(
        reason.contains("birth_date") && reason.contains("contacts.mobile"),
        "{reason}"
    );

    // The request: the first half by SMS, the second in the postal queue.
    let message = intake_request(&unique_mail("cc"));
    api.env
        .publish("contact_center", key, &bytes(&message))
        .await
        .unwrap();
    let texts = wait_for_sms(&sms, "+393331234567", 1).await;
    let first = half_after(&texts[0], "PIN è ");
    let (second, _) = take_letter(&api).await;
    let channel: String = sqlx::query_scalar("SELECT channel FROM pin_credentials")
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(channel, "contact_center");
    // Sent again (the agent's retry): applied once.
    api.env
        .publish("contact_center", key, &bytes(&message))
        .await
        .unwrap();
    // Another request for the same tax code: dead-lettered with the reason.
    api.env
        .publish(
            "contact_center",
            key,
            &bytes(&intake_request(&unique_mail("cc"))),
        )
        .await
        .unwrap();
    let letter = dead
        .next(Duration::from_secs(20))
        .await
        .expect("the second request is dead-lettered");
    let reason = header(&letter, REASON_HEADER).unwrap();
    assert!(reason.contains("already has a PIN"), "{reason}");
    assert_eq!(
        sms.delivered_to("+393331234567").len(),
        1,
        "one PIN, one SMS"
    );
    let (status, body) = first_use(&api, &format!("{first}{second}"), "Nuovo123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.stop().await;
}

#[actix_rt::test]
async fn a_half_whose_delivery_fails_is_scrubbed_and_letters_go_to_the_postal_folder() {
    let (api, sms) = start().await;
    sms.refuse("+393331234567", 400);
    let (status, body) = anonymous(
        &api,
        Method::POST,
        "/pin/requests",
        request_body(&unique_mail("fallito")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pool = &api.env.pool;
    assert!(
        eventually(Duration::from_secs(20), || async {
            sqlx::query_scalar::<_, String>("SELECT state FROM deliveries")
                .fetch_one(pool)
                .await
                .is_ok_and(|state| state == "failed")
        })
        .await,
        "the refused SMS fails"
    );
    let sealed: i64 = sqlx::query_scalar("SELECT count(*) FROM pin_sealed_halves")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        sealed, 0,
        "a failed delivery's half is deleted, never kept for later"
    );

    // The postal service's folder: a PDF and its address card per letter,
    // and nothing left to print twice.
    let dir = std::env::temp_dir().join(format!("pin-letters-{}", uuid::Uuid::new_v4().simple()));
    let keys = PinKeys::new(&api.env.settings.pin_secret);
    let taken = sportello::pin::postal::take_into_dir(pool, &keys, 10, &dir)
        .await
        .unwrap();
    assert_eq!(taken, 1);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names[0].ends_with(".json") && names[1].ends_with(".pdf"),
        "{names:?}"
    );
    let card: Value = serde_json::from_slice(&std::fs::read(dir.join(&names[0])).unwrap()).unwrap();
    assert_eq!(card["recipient"], "Mario Rossi");
    let pdf = std::fs::read(dir.join(&names[1])).unwrap();
    assert!(String::from_utf8_lossy(&pdf).contains("Seconda parte del PIN: "));
    assert_eq!(
        sportello::pin::postal::take_into_dir(pool, &keys, 10, &dir)
            .await
            .unwrap(),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
    api.stop().await;
}

/// A `pin.verification_requested` from the contact centre for `half`.
fn check_request(half: &str) -> Value {
    let key = uuid::Uuid::now_v7();
    json!({
        "message_id": key,
        "type": "pin.verification_requested",
        "schema_version": 1,
        "channel": "contact_center",
        "occurred_at": chrono::Utc::now(),
        "correlation_id": format!("cc-call-{key}"),
        "idempotency_key": format!("cc-check-{key}"),
        "principal": {"kind": "contact_center_agent", "agent_id": "CC0042", "on_behalf_of": TAX_CODE},
        "payload": {"pin": half}
    })
}

/// Seed 004 over the broker: the agent's check of the half the caller reads
/// out is answered on reply_to, counts toward the lock, and its half is
/// never dead-lettered, even when nobody waits for the answer.
#[actix_rt::test]
async fn an_agent_checks_the_callers_half_over_the_broker_and_the_half_is_never_dead_lettered() {
    let _logs = crate::support::logs::capture();
    let (api, sms) = start().await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let (first, _second) = issued_pin(&api, &sms, &unique_mail("broker-check")).await;
    let mut requester = Requester::open(&api.env, "contact_center").await;

    let answer = requester.ask(&check_request(&first)).await;
    assert_eq!(answer["type"], "pin.verification_outcome", "{answer}");
    assert_eq!(answer["payload"]["outcome"], "verified", "{answer}");
    let id: uuid::Uuid = answer["payload"]["verification_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let recorded: (String, String) =
        sqlx::query_as("SELECT agent_id, tax_code FROM pin_agent_verifications WHERE id = $1")
            .bind(id)
            .fetch_one(&api.env.pool)
            .await
            .unwrap();
    assert_eq!(recorded, ("CC0042".to_owned(), TAX_CODE.to_owned()));

    // A wrong half is refused with the HTTP API's code and counts.
    let wrong: String = first.chars().rev().collect();
    let answer = requester.ask(&check_request(&wrong)).await;
    assert_eq!(
        (
            answer["payload"]["outcome"].as_str(),
            answer["payload"]["code"].as_str()
        ),
        (Some("refused"), Some("wrong_pin")),
        "{answer}"
    );
    let failures: i32 = sqlx::query_scalar("SELECT failures FROM pin_credentials")
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(failures, 1);
    // A malformed one is refused without a word of what it carried.
    let answer = requester
        .ask(&check_request(&format!(
            "{first}{first}{first}{first}{first}{first}{first}{first}{first}"
        )))
        .await;
    assert_eq!(answer["payload"]["code"], "invalid", "{answer}");
    assert!(!answer.to_string().contains(&first), "{answer}");

    // Without reply_to: dropped, not dead-lettered.
    requester.publish(&check_request(&first), None).await;
    requester.publish(&check_request(&wrong), None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dead_letters = drain(&mut dead).await;
    assert!(dead_letters.is_empty(), "nothing is dead-lettered");
    assert_nowhere(&api, &[], &dead_letters, &[&first]).await;
    api.stop().await;
}

/// `start()`, with a delivery retry policy short enough to watch: 100 ms
/// doubling up to 1 s, 4 attempts.
async fn start_retrying() -> (Api, SmsGateway) {
    let sms = SmsGateway::start();
    let url = sms.url.clone();
    let env = TestEnv::new_with(|settings| {
        settings.sms_provider_url = Some(url);
        settings.sms_provider_user = crate::support::sms_provider::USER.into();
        settings.sms_provider_password = crate::support::sms_provider::PASSWORD.into();
        settings.smtp_url = sink().url.clone();
        settings.notify_retry_base_ms = 100;
        settings.notify_retry_cap_seconds = 1;
        settings.notify_max_attempts = 4;
    })
    .await;
    let api = Api::start_with(
        env,
        &[
            WorkerKind::Intake,
            WorkerKind::OutboxRelay,
            WorkerKind::Notify,
            WorkerKind::EmailSender,
            WorkerKind::SmsSender,
        ],
    );
    (api, sms)
}

const MOBILE: &str = "+393331234567";

fn agent(caller: &str) -> Principal {
    Principal::ContactCenterAgent {
        agent_id: "CC0042".into(),
        on_behalf_of: CodiceFiscale::parse(caller).unwrap(),
        identified_by: None,
        pin_verification_id: None,
    }
}

fn desk_operator(office: &str, on_behalf_of: Option<&str>) -> Principal {
    Principal::Operator {
        operator_id: format!("E{office}0001"),
        office: office.into(),
        on_behalf_of: on_behalf_of.map(|t| CodiceFiscale::parse(t).unwrap()),
    }
}

/// The halves the provider was asked to send to `to`, accepted or not.
fn halves_asked(sms: &SmsGateway, to: &str, marker: &str) -> Vec<String> {
    let mut halves: Vec<String> = sms
        .requests_to(to)
        .iter()
        .map(|s| half_after(&s.text, marker))
        .collect();
    halves.dedup();
    halves
}

async fn delivery_state(api: &Api) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT state, attempts FROM deliveries ORDER BY created_at")
        .fetch_all(&api.env.pool)
        .await
        .unwrap()
}

#[actix_rt::test]
async fn a_half_whose_sms_fails_is_retried_with_backoff_until_the_provider_recovers() {
    // Held to the end: assert_nowhere greps every log line at debug.
    let _logs = crate::support::logs::capture();
    let (api, sms) = start_retrying().await;
    let mut events = api.env.probe(EVENTS_EXCHANGE, "#").await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    // Three failures (5xx, and a 408: the gateway's trouble, not the
    // message's), each quoting the refused text, then the provider is back.
    sms.echo_refused_text();
    sms.fail_first(MOBILE, &[503, 500, 408]);
    let (status, body) = anonymous(
        &api,
        Method::POST,
        "/pin/requests",
        request_body(&unique_mail("ritenta")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let texts = wait_for_sms(&sms, MOBILE, 1).await;
    let first = half_after(&texts[0], "PIN è ");
    assert_eq!(
        sms.requests_to(MOBILE).len(),
        4,
        "three refusals, then sent"
    );
    assert_eq!(
        halves_asked(&sms, MOBILE, "PIN è "),
        std::slice::from_ref(&first),
        "every try carries the same half"
    );
    let pool = &api.env.pool;
    assert!(
        eventually(Duration::from_secs(10), || async {
            delivery_state(&api).await == [("sent".to_owned(), 4)]
        })
        .await,
        "{:?}",
        delivery_state(&api).await
    );
    // Backoff: each try waited at least the doubling delay after the last.
    let log: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT outcome, at FROM delivery_attempts ORDER BY attempt")
            .fetch_all(pool)
            .await
            .unwrap();
    let outcomes: Vec<&str> = log.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "retry", "sent"]);
    for (n, pair) in log.windows(2).enumerate() {
        let waited = (pair[1].1 - pair[0].1).num_milliseconds();
        let delay = 100 << n;
        assert!(
            waited >= delay,
            "try {} came {waited} ms after the last, before its {delay} ms",
            n + 2
        );
    }
    let sealed: i64 = sqlx::query_scalar("SELECT count(*) FROM pin_sealed_halves")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sealed, 0, "the seal ends with the sent delivery");

    // The agent sees it sent after four tries; the citizen's centre says sent.
    let (status, view) = api.get("/pin/deliveries", &agent(TAX_CODE)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["halves"][0]["state"], "sent", "{view}");
    assert_eq!(view["halves"][0]["attempts"], 4);
    assert_eq!(view["halves"][0]["to"], "sms:*********4567");
    assert_eq!(view["reissue"]["possible"], false);
    let (status, centre) = api.get("/notifications", &citizen(TAX_CODE)).await;
    assert_eq!(status, StatusCode::OK, "{centre}");
    assert_eq!(centre["items"][0]["title"], "PIN INPS: prima parte inviata");

    let logs = crate::support::logs::captured();
    assert!(
        logs.contains("send failed; will retry"),
        "the retries were logged"
    );
    assert!(
        logs.contains("[[PIN]]"),
        "the echoed text was logged redacted"
    );
    let (second, _) = take_letter(&api).await;
    let events = drain(&mut events).await;
    let dead = drain(&mut dead).await;
    assert_nowhere(&api, &events, &dead, &[&first, &second]).await;
    api.stop().await;
}

#[actix_rt::test]
async fn a_half_that_fails_to_the_end_is_shown_and_an_agent_has_a_new_pin_issued_once() {
    let _logs = crate::support::logs::capture();
    let (api, sms) = start_retrying().await;
    let mut events = api.env.probe(EVENTS_EXCHANGE, "#").await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    sms.echo_refused_text();
    sms.refuse(MOBILE, 503);
    let (status, body) = anonymous(
        &api,
        Method::POST,
        "/pin/requests",
        request_body(&unique_mail("perso")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        eventually(Duration::from_secs(20), || async {
            delivery_state(&api).await == [("failed".to_owned(), 4)]
        })
        .await,
        "the half is failed after its fourth try: {:?}",
        delivery_state(&api).await
    );
    assert_eq!(sms.requests_to(MOBILE).len(), 4);
    let lost = halves_asked(&sms, MOBILE, "PIN è ");
    assert_eq!(lost.len(), 1, "{lost:?}");
    let pool = &api.env.pool;
    let sealed: i64 = sqlx::query_scalar("SELECT count(*) FROM pin_sealed_halves")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sealed, 0, "a failed half is not kept for later");

    // The citizen's centre says so, in Italian, unread again.
    let (status, centre) = api.get("/notifications", &citizen(TAX_CODE)).await;
    assert_eq!(status, StatusCode::OK, "{centre}");
    let item = &centre["items"][0];
    assert_eq!(item["title"], "PIN INPS: invio non riuscito", "{centre}");
    assert!(
        item["body"].as_str().unwrap().contains("nuovo PIN"),
        "{item}"
    );
    assert!(item["read_at"].is_null(), "{item}");

    // Who may look: the caller's agent, the operators of Crema (1901, the
    // residence's office); not the citizen here, another caller's agent,
    // Cremona's operators, an operator acting for someone else, an
    // intermediary.
    let query = format!("/pin/deliveries?tax_code={TAX_CODE}");
    for (who, why) in [
        (citizen(TAX_CODE), "the citizen reads the centre"),
        (agent("BNCGVN70A41F205O"), "another caller's agent"),
        (desk_operator("1900", None), "another office"),
        (
            desk_operator("1901", Some("BNCGVN70A41F205O")),
            "an operator acting for another citizen",
        ),
        (intermediary(), "an intermediary"),
    ] {
        let (status, body) = api.get(&query, &who).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}: {body}");
        let (status, body) = api
            .post(
                "/pin/reissues",
                &who,
                json!({"tax_code": TAX_CODE, "replaces": uuid::Uuid::now_v7()}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}: {body}");
    }
    let (status, view) = api.get(&query, &desk_operator("1901", None)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let (status, view) = api.get("/pin/deliveries", &agent(TAX_CODE)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let half = &view["halves"][0];
    assert_eq!(half["state"], "failed", "{view}");
    assert_eq!(half["attempts"], 4);
    assert!(half["label"].as_str().unwrap().contains("nuovo PIN"));
    assert_eq!(view["letter"]["state"], "queued");
    assert_eq!(view["reissue"]["possible"], true, "{view}");
    let replaces = view["reissue"]["replaces"].clone();
    assert_eq!(replaces, half["delivery_id"]);

    // Naming something else than the failed half is refused.
    let (status, body) = api
        .post(
            "/pin/reissues",
            &agent(TAX_CODE),
            json!({"replaces": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "not_current_half", "{body}");

    // The provider is back; the agent has a new PIN issued, once.
    sms.recover(MOBILE);
    let (status, reissued) = api
        .post(
            "/pin/reissues",
            &agent(TAX_CODE),
            json!({"replaces": replaces}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reissued}");
    assert_eq!(reissued["repeated"], false);
    assert_eq!(reissued["first_half_to"], "sms:*********4567");
    assert_eq!(reissued["requested_by"], "CC0042");
    for who in [agent(TAX_CODE), desk_operator("1901", Some(TAX_CODE))] {
        let (status, again) = api
            .post("/pin/reissues", &who, json!({"replaces": replaces}))
            .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["repeated"], true);
        assert_eq!(again["reissue_id"], reissued["reissue_id"]);
        assert_eq!(again["requested_by"], "CC0042", "who asked first is kept");
    }
    let texts = wait_for_sms(&sms, MOBILE, 1).await;
    assert_eq!(texts.len(), 1, "one new PIN, one SMS");
    let first = half_after(&texts[0], "nuovo PIN è ");
    assert_ne!(first, lost[0]);
    let (by, kind): (String, String) =
        sqlx::query_as("SELECT requested_by, requested_by_kind FROM pin_reissues")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (by.as_str(), kind.as_str()),
        ("CC0042", "contact_center_agent")
    );
    // The old letter is withdrawn unprinted; the new one is the one taken.
    let (second, _) = take_letter(&api).await;
    let (status, view) = api.get("/pin/deliveries", &agent(TAX_CODE)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["halves"].as_array().unwrap().len(), 1, "{view}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            api.get("/pin/deliveries", &agent(TAX_CODE)).await.1["halves"][0]["state"] == "sent"
        })
        .await
    );
    assert_eq!(view["letter"]["state"], "handed_to_post", "{view}");
    assert_eq!(view["reissues"][0]["requested_by"], "CC0042");
    let (status, centre) = api.get("/notifications", &citizen(TAX_CODE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        centre["items"][0]["title"],
        "PIN INPS: nuovo PIN, prima parte inviata"
    );

    // The new PIN works; the old one is gone.
    let (status, body) = first_use(&api, &format!("{first}{second}"), "Nuovo123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .post(
            "/pin/reissues",
            &agent(TAX_CODE),
            json!({"replaces": view["halves"][0]["delivery_id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "pin_in_use", "{body}");

    let events = drain(&mut events).await;
    let steps: Vec<String> = events
        .iter()
        .filter_map(|e| serde_json::from_slice::<Value>(e).ok())
        .filter_map(|e| e["payload"]["step"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        steps.iter().filter(|s| *s == "reissued").count(),
        1,
        "{steps:?}"
    );
    let dead = drain(&mut dead).await;
    assert_nowhere(&api, &events, &dead, &[&lost[0], &first, &second]).await;
    api.stop().await;
}

#[actix_rt::test]
async fn a_half_whose_last_attempt_was_lost_with_its_sender_ends_like_a_failure() {
    let sms = SmsGateway::start();
    let url = sms.url.clone();
    let env = TestEnv::new_with(|settings| {
        settings.sms_provider_url = Some(url);
        settings.sms_provider_user = crate::support::sms_provider::USER.into();
        settings.sms_provider_password = crate::support::sms_provider::PASSWORD.into();
        settings.smtp_url = sink().url.clone();
        settings.notify_max_attempts = 4;
    })
    .await;
    // No SMS sender yet: the half waits queued.
    let api = Api::start_with(env, &[WorkerKind::OutboxRelay]);
    let (status, body) = anonymous(
        &api,
        Method::POST,
        "/pin/requests",
        request_body(&unique_mail("dubbio")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pool = &api.env.pool;
    // As a sender that died during the fourth and last try leaves it.
    sqlx::query(
        "UPDATE deliveries SET state = 'sending', attempts = 4, due_at = now() - interval '1 second'",
    )
    .execute(pool)
    .await
    .unwrap();
    let _sender = api.env.start(&[WorkerKind::SmsSender]);
    assert!(
        eventually(Duration::from_secs(20), || async {
            delivery_state(&api).await == [("failed".to_owned(), 4)]
        })
        .await,
        "{:?}",
        delivery_state(&api).await
    );
    let sealed: i64 = sqlx::query_scalar("SELECT count(*) FROM pin_sealed_halves")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sealed, 0, "the lost last attempt's seal is deleted with it");
    let (status, centre) = api.get("/notifications", &citizen(TAX_CODE)).await;
    assert_eq!(status, StatusCode::OK, "{centre}");
    assert_eq!(centre["items"][0]["title"], "PIN INPS: invio non riuscito");
    assert_eq!(sms.requests_to(MOBILE).len(), 0, "nothing is sent again");
    let (status, view) = api.get("/pin/deliveries", &agent(TAX_CODE)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["reissue"]["possible"], true, "{view}");
    api.stop().await;
}
