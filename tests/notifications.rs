//! Notifications end to end: ticket events become notifications in the
//! citizen's centre and emails (to the aiosmtpd sink) and SMS (to a stand-in
//! gateway with the provider's HTTP interface); failures are retried or not
//! as they deserve, nothing is sent twice, and every access is checked.

use std::time::Duration;

use crate::support::mail::{delivered_to, readable, sink, wait_for_mail};
use crate::support::sms_provider::{self, SmsGateway};
use crate::support::*;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sportello::broker::names::{DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE};
use sportello::contract::{CodiceFiscale, Principal};
use sportello::domain::notification::{days_left, days_left_label, Medium};
use sportello::store;
use sportello::workers::WorkerKind;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const CITIZEN: &str = "RSSMRA85T10A562S";
const OTHER_CITIZEN: &str = "BNCGVN70A41F205O";

/// Every worker a notification passes through, with fast retries, the SMTP
/// sink and this test's SMS gateway.
async fn start(gateway: &SmsGateway) -> Api {
    let sms_url = gateway.url.clone();
    let env = TestEnv::new_with(|settings| {
        settings.smtp_url = sink().url.clone();
        settings.sms_provider_url = Some(sms_url);
        settings.sms_provider_user = sms_provider::USER.into();
        settings.sms_provider_password = sms_provider::PASSWORD.into();
        settings.notify_retry_base_ms = 100;
        settings.notify_retry_cap_seconds = 1;
        settings.notify_max_attempts = 4;
    })
    .await;
    Api::start_with(
        env,
        &[
            WorkerKind::Intake,
            WorkerKind::OutboxRelay,
            WorkerKind::Notify,
            WorkerKind::EmailSender,
            WorkerKind::SmsSender,
            WorkerKind::Timers,
        ],
    )
}

/// A mailbox no other test uses; `tag` scripts the sink (`tempfail2`, `permfail`).
fn mailbox(tag: &str) -> String {
    format!("{tag}.{}@example.it", Uuid::new_v4().simple())
}

fn request_with_contact(key: &str, contact: Value) -> Value {
    let mut request = request_v2(
        citizen_json(CITIZEN),
        key,
        "uniemens",
        "4901234567",
        "Denuncia di marzo",
        json!({"province": "CR", "municipality": "Crema"}),
    );
    request["payload"]["contact"] = contact;
    request
}

async fn delivery_states(api: &Api, ticket: Uuid) -> Vec<(String, String, i32)> {
    sqlx::query_as(
        "SELECT d.medium, d.state, d.attempts FROM deliveries d
           JOIN notifications n ON n.id = d.notification_id
          WHERE n.subject_id = $1 ORDER BY n.created_at, d.medium",
    )
    .bind(ticket)
    .fetch_all(&api.env.pool)
    .await
    .unwrap()
}

async fn settled(api: &Api, ticket: Uuid, expected: usize) -> Vec<(String, String, i32)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let states = delivery_states(api, ticket).await;
        let done =
            states.len() == expected && states.iter().all(|(_, s, _)| s == "sent" || s == "failed");
        if done {
            return states;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries did not settle: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_ticket_opened_then_closed_reaches_the_citizen_once_by_email_sms_and_centre() {
    let gateway = SmsGateway::start();
    let api = start(&gateway).await;
    let mut opened_events = api.env.probe(EVENTS_EXCHANGE, "ticket.opened").await;
    let email = mailbox("mario");
    let phone = "+393331234567";
    let ticket = submit_and_wait(
        &api.env,
        &request_with_contact("n1", json!({"email": email, "phone": "3331234567"})),
    )
    .await;

    // Opened: an email with the signature and the office, an SMS in one part.
    let mail = wait_for_mail(&email, WAIT).await;
    assert_eq!(mail.len(), 1);
    let text = readable(&mail[0]);
    let signature: String = sqlx::query_scalar(
        "SELECT r.signature FROM tickets t JOIN registrations r ON r.id = t.registration_id WHERE t.id = $1",
    )
    .bind(ticket)
    .fetch_one(&api.env.pool)
    .await
    .unwrap();
    assert!(
        text.contains("Subject: Richiesta protocollata: UniEmens - Denuncia di marzo"),
        "{text}"
    );
    assert!(text.contains(&signature), "{text}");
    assert!(text.contains("Crema"), "the office is named: {text}");
    assert!(
        text.contains("text/html") || mail[0].contains("text/html"),
        "an HTML part too"
    );
    assert!(eventually(WAIT, || async { !gateway.delivered_to(phone).is_empty() }).await);
    let sms = gateway.delivered_to(phone);
    assert_eq!(sms.len(), 1);
    assert!(sms[0].text.contains(&signature), "{}", sms[0].text);

    // The same event delivered again (a relay resending after a lost confirm)
    // plans nothing new and sends nothing twice.
    let event = opened_events.next(WAIT).await.expect("ticket.opened event");
    publish_as_app(&api.env, EVENTS_EXCHANGE, "ticket.opened", &event.data).await;

    // Closed, with the outcome and the office's public comment.
    let op = operator("1901");
    let (status, body) = api
        .post(&format!("/tickets/{ticket}/take-in-charge"), &op, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .post(
            &format!("/tickets/{ticket}/close"),
            &op,
            json!({"outcome": "accolta", "comment": "Il versamento è stato abbinato."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(eventually(WAIT, || async { delivered_to(&email).len() >= 2 }).await);
    let closing = readable(&delivered_to(&email)[1]);
    assert!(closing.contains("Subject: Richiesta chiusa"), "{closing}");
    assert!(closing.contains("esito: accolta"), "{closing}");
    assert!(
        closing.contains("Il versamento è stato abbinato."),
        "{closing}"
    );

    let states = settled(&api, ticket, 4).await;
    assert!(
        states.iter().all(|(_, s, a)| s == "sent" && *a == 1),
        "{states:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(delivered_to(&email).len(), 2, "each email exactly once");
    assert_eq!(
        gateway.delivered_to(phone).len(),
        2,
        "each SMS exactly once"
    );
    let notifications: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE subject_id = $1")
            .bind(ticket)
            .fetch_one(&api.env.pool)
            .await
            .unwrap();
    assert_eq!(notifications, 2, "the repeated event planned nothing");

    // The centre: both in "Messaggi", newest first, unread until read.
    let me = citizen(CITIZEN);
    let (status, centre) = api.get("/notifications", &me).await;
    assert_eq!(status, StatusCode::OK, "{centre}");
    let items = centre["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{centre}");
    assert!(items[0]["title"]
        .as_str()
        .unwrap()
        .starts_with("Richiesta chiusa"));
    assert_eq!(items[0]["subject_id"], json!(ticket));
    let messages = |view: &Value| {
        view["tabs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tab"] == "messages")
            .unwrap()
            .clone()
    };
    assert_eq!(messages(&centre)["unread"], 2);
    assert_eq!(messages(&centre)["label"], "Avvisi e messaggi");
    let first = items[0]["id"].as_str().unwrap().to_owned();
    let (status, item) = mark(&api, &first, &me, true).await;
    assert_eq!(
        (status, item["read"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (_, unread) = api.get("/notifications?unread=true", &me).await;
    assert_eq!(unread["items"].as_array().unwrap().len(), 1);
    assert_eq!(messages(&unread)["unread"], 1);
    let (status, item) = mark(&api, &first, &me, false).await;
    assert_eq!(
        (status, item["read"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let (_, deadlines) = api.get("/notifications?tab=deadlines", &me).await;
    assert_eq!(deadlines["items"], json!([]));
    assert_eq!(
        api.get("/notifications?tab=spam", &me).await.0,
        StatusCode::BAD_REQUEST
    );

    // The office's delivery log shows every delivery and attempt.
    let (status, log) = api
        .get(&format!("/tickets/{ticket}/notifications"), &op)
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2);
    let deliveries = log[0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries.iter().all(|d| d["state"] == "sent"));
    assert!(deliveries
        .iter()
        .any(|d| d["medium"] == "sms" && d["address"] == phone));

    gateway.stop().await;
    api.stop().await;
}

#[actix_rt::test]
async fn temporary_failures_are_retried_until_sent_once_and_permanent_ones_are_not() {
    let gateway = SmsGateway::start();
    let api = start(&gateway).await;

    // The mail server answers 451 twice, the gateway 503 then 429: both
    // recover, and the citizen gets one message on each medium.
    let flaky_mail = mailbox("tempfail2");
    let flaky_phone = "+393330000001";
    gateway.fail_first(flaky_phone, &[503, 429]);
    let flaky = submit_and_wait(
        &api.env,
        &request_with_contact("r1", json!({"email": flaky_mail, "phone": flaky_phone})),
    )
    .await;

    // The mailbox does not exist (550), the number is refused (400): one
    // attempt each, recorded as failed with the reason.
    let dead_mail = mailbox("permfail");
    let dead_phone = "+393330000002";
    gateway.refuse(dead_phone, 400);
    let refused = submit_and_wait(
        &api.env,
        &request_with_contact("r2", json!({"email": dead_mail, "phone": dead_phone})),
    )
    .await;

    let states = settled(&api, flaky, 2).await;
    assert_eq!(
        states,
        vec![
            ("email".into(), "sent".into(), 3),
            ("sms".into(), "sent".into(), 3)
        ]
    );
    let states = settled(&api, refused, 2).await;
    assert_eq!(
        states,
        vec![
            ("email".into(), "failed".into(), 1),
            ("sms".into(), "failed".into(), 1)
        ]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(delivered_to(&flaky_mail).len(), 1);
    assert_eq!(gateway.delivered_to(flaky_phone).len(), 1);
    assert_eq!(gateway.requests_for(flaky_phone), 3);
    assert!(delivered_to(&dead_mail).is_empty());
    assert_eq!(gateway.requests_for(dead_phone), 1, "a 4xx is not retried");

    // The attempts are logged, append-only, with the reasons.
    let op = operator("1901");
    let (status, log) = api
        .get(&format!("/tickets/{flaky}/notifications"), &op)
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let email = log[0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["medium"] == "email")
        .unwrap()
        .clone();
    let outcomes: Vec<&str> = email["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "sent"], "{email}");
    let (_, log) = api
        .get(&format!("/tickets/{refused}/notifications"), &op)
        .await;
    let reasons: Vec<String> = log[0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["last_error"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("550")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("400")), "{reasons:?}");
    let rewrite = sqlx::query("UPDATE delivery_attempts SET outcome = 'sent'")
        .execute(&api.env.pool)
        .await;
    assert!(rewrite.is_err(), "the attempt log cannot be rewritten");

    gateway.stop().await;
    api.stop().await;
}

#[actix_rt::test]
async fn preferences_decide_the_media_and_a_citizen_without_contacts_still_finds_it_in_the_centre()
{
    let gateway = SmsGateway::start();
    let api = start(&gateway).await;
    let me = citizen(CITIZEN);

    // No contact in the request and none known: recorded, nobody to send to.
    let silent = submit_and_wait(&api.env, &request_with_contact("p1", json!({}))).await;
    let unreachable = eventually(WAIT, || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT unreachable FROM notifications WHERE subject_id = $1",
        )
        .bind(silent)
        .fetch_optional(&api.env.pool)
        .await
        .unwrap()
        .flatten()
        .is_some()
    })
    .await;
    assert!(unreachable, "the notification records why nothing was sent");
    assert!(delivery_states(&api, silent).await.is_empty());
    let (_, centre) = api.get("/notifications", &me).await;
    assert_eq!(centre["items"].as_array().unwrap().len(), 1, "{centre}");

    // The citizen saves an email and turns SMS off; the next request names
    // only a phone: the email goes to the saved address, no SMS is sent.
    let email = mailbox("prefs");
    let (status, saved) = api
        .put(
            "/me/contacts",
            &me,
            json!({"email": email.to_uppercase(), "phone": "3331234567", "email_enabled": true, "sms_enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["phone"], "+393331234567", "stored as E.164");
    let (_, read_back) = api.get("/me/contacts", &me).await;
    assert_eq!(read_back["sms_enabled"], false);
    let phone = "+393339999999";
    let preferred = submit_and_wait(
        &api.env,
        &request_with_contact("p2", json!({"phone": phone})),
    )
    .await;
    let states = settled(&api, preferred, 1).await;
    assert_eq!(states, vec![("email".into(), "sent".into(), 1)]);
    assert_eq!(wait_for_mail(&email, WAIT).await.len(), 1);
    assert_eq!(
        gateway.requests_for(phone),
        0,
        "SMS is off for this citizen"
    );

    // Bad contacts are refused with the reason.
    for bad in [
        json!({"email": "not-an-address", "phone": null, "email_enabled": true, "sms_enabled": true}),
        json!({"email": null, "phone": "12ab", "email_enabled": true, "sms_enabled": true}),
        json!({"email": null, "phone": null, "email_enabled": true}),
        json!({"email": null, "phone": null, "email_enabled": true, "sms_enabled": true, "fax": "1"}),
    ] {
        let (status, body) = api.put("/me/contacts", &me, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
    }

    gateway.stop().await;
    api.stop().await;
}

#[actix_rt::test]
async fn the_centre_is_the_citizens_own_and_the_delivery_log_the_offices() {
    let gateway = SmsGateway::start();
    let api = start(&gateway).await;
    let ticket = submit_and_wait(
        &api.env,
        &request_with_contact("a1", json!({"email": mailbox("access")})),
    )
    .await;
    settled(&api, ticket, 1).await;
    let (_, centre) = api.get("/notifications", &citizen(CITIZEN)).await;
    let id = centre["items"][0]["id"].as_str().unwrap().to_owned();

    // Another citizen sees an empty centre and cannot touch this one.
    let other = citizen(OTHER_CITIZEN);
    let (status, theirs) = api.get("/notifications", &other).await;
    assert_eq!(
        (status, theirs["items"].clone()),
        (StatusCode::OK, json!([]))
    );
    let (status, _) = mark(&api, &id, &other, true).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "someone else's is as good as missing"
    );
    let (status, _) = mark(&api, &Uuid::now_v7(), &citizen(CITIZEN), true).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Only citizens have a centre and preferences.
    let agent = Principal::ContactCenterAgent {
        agent_id: "CC-0042".into(),
        on_behalf_of: CodiceFiscale::parse(CITIZEN).unwrap(),
        identified_by: None,
        pin_verification_id: None,
    };
    for who in [intermediary(), agent.clone(), operator("1901")] {
        assert_eq!(
            api.get("/notifications", &who).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(api.get("/me/contacts", &who).await.0, StatusCode::FORBIDDEN);
        let (status, _) = mark(&api, &id, &who, true).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        api.call(Method::GET, "/notifications", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The delivery log: the ticket's office only.
    let log = format!("/tickets/{ticket}/notifications");
    assert_eq!(api.get(&log, &operator("1901")).await.0, StatusCode::OK);
    for who in [operator("4902"), citizen(CITIZEN), intermediary(), agent] {
        assert_eq!(
            api.get(&log, &who).await.0,
            StatusCode::FORBIDDEN,
            "{who:?}"
        );
    }
    assert_eq!(
        api.get(
            &format!("/tickets/{}/notifications", Uuid::now_v7()),
            &operator("1901")
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    gateway.stop().await;
    api.stop().await;
}

#[actix_rt::test]
async fn an_attempt_lost_with_its_sender_is_logged_retried_and_finally_given_up() {
    let env = TestEnv::new_with(|settings| settings.smtp_url = sink().url.clone()).await;
    // No email sender: this test plays one that dies mid-send.
    let workers = env.start(&[
        WorkerKind::Intake,
        WorkerKind::OutboxRelay,
        WorkerKind::Notify,
    ]);
    let ticket = submit_and_wait(
        &env,
        &request_with_contact("c1", json!({"email": mailbox("lost")})),
    )
    .await;
    let planned = eventually(WAIT, || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id
              WHERE n.subject_id = $1",
        )
        .bind(ticket)
        .fetch_one(&env.pool)
        .await
        .unwrap()
            == 1
    })
    .await;
    assert!(planned);

    let mut conn = env.pool.acquire().await.unwrap();
    let first = claim(&mut conn).await.unwrap();
    assert_eq!(first.iter().map(|d| d.attempt).collect::<Vec<_>>(), [1]);
    let second = claim(&mut conn).await.unwrap();
    assert_eq!(
        second.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        [2],
        "the lost attempt is taken again"
    );
    assert!(
        claim(&mut conn).await.unwrap().is_empty(),
        "given up after 2"
    );
    let (state, error): (String, String) =
        sqlx::query_as("SELECT state, last_error FROM deliveries WHERE id = $1")
            .bind(first[0].id)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(state, "failed");
    assert!(error.contains("lost"), "{error}");
    let log: Vec<(i32, String)> = sqlx::query_as(
        "SELECT attempt, outcome FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(first[0].id)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(log, [(1, "retry".to_owned()), (2, "failed".to_owned())]);

    drop(conn);
    workers.shutdown(Duration::from_secs(5)).await;
    env.cleanup().await;
}

/// Claims due emails with a lease that is over at once, as if the sender
/// died right after claiming; gives up after 2 attempts.
async fn claim(
    conn: &mut sqlx::PgConnection,
) -> Result<Vec<store::notifications::ClaimedDelivery>, sqlx::Error> {
    store::notifications::claim_due(conn, Medium::Email, 10, Duration::ZERO, 2).await
}

/// An `appointment.confirmed` (or `.cancelled`) event as the appointments
/// capability emits it.
fn appointment_event(kind: &str, id: Uuid, starts_at: DateTime<Utc>, email: &str) -> Value {
    let mut payload = json!({
        "appointment_id": id,
        "subject_tax_code": CITIZEN,
        "office_aoo": "1901",
        "office_name": "Agenzia territoriale di Crema",
        "starts_at": starts_at,
        "contact": {"email": email, "phone": null}
    });
    if kind == "appointment.confirmed" {
        payload["desk"] = json!("indennità e ammortizzatori sociali");
        payload["mode"] = json!("video");
        payload["ends_at"] = json!(starts_at + chrono::Duration::minutes(20));
        payload["video_link"] = json!(format!("https://sportello.example/video/rooms/{id}"));
    } else {
        payload["cancelled_by"] = json!("citizen");
    }
    json!({
        "message_id": Uuid::now_v7(),
        "type": kind,
        "schema_version": 1,
        "occurred_at": Utc::now(),
        "correlation_id": format!("appointment-{id}"),
        "causation_id": null,
        "payload": payload
    })
}

async fn emit(api: &Api, event: &Value) {
    let key = event["type"].as_str().unwrap();
    publish_as_app(&api.env, EVENTS_EXCHANGE, key, &bytes(event)).await;
}

#[actix_rt::test]
async fn an_appointment_is_in_the_deadlines_with_its_link_on_the_day_and_reminded_the_day_before_unless_cancelled(
) {
    let gateway = SmsGateway::start();
    let api = start(&gateway).await;
    let me = citizen(CITIZEN);
    let now = Utc::now();

    // Tomorrow (a few seconds past 24 hours): confirmed now, reminded in seconds.
    let (tomorrow, tomorrow_mail) = (Uuid::now_v7(), mailbox("tomorrow"));
    let starts = now + chrono::Duration::hours(24) + chrono::Duration::seconds(3);
    emit(
        &api,
        &appointment_event("appointment.confirmed", tomorrow, starts, &tomorrow_mail),
    )
    .await;
    // The same, but cancelled before its reminder is due.
    let (cancelled, cancelled_mail) = (Uuid::now_v7(), mailbox("cancelled"));
    let cancelled_starts = now + chrono::Duration::hours(24) + chrono::Duration::seconds(4);
    emit(
        &api,
        &appointment_event(
            "appointment.confirmed",
            cancelled,
            cancelled_starts,
            &cancelled_mail,
        ),
    )
    .await;
    // Soon: too close for a reminder; its link shows if it is today.
    let (soon, soon_mail) = (Uuid::now_v7(), mailbox("soon"));
    let soon_starts = now + chrono::Duration::minutes(10);
    emit(
        &api,
        &appointment_event("appointment.confirmed", soon, soon_starts, &soon_mail),
    )
    .await;

    // Cancelled before its confirmation is planned (events planned out of
    // order): the confirmation is recorded, not sent, and never reminded.
    let (stale, stale_mail) = (Uuid::now_v7(), mailbox("stale"));
    let stale_starts = now + chrono::Duration::hours(24) + chrono::Duration::seconds(2);
    emit(
        &api,
        &appointment_event("appointment.cancelled", stale, stale_starts, &stale_mail),
    )
    .await;
    assert_eq!(wait_for_mail(&stale_mail, WAIT).await.len(), 1);
    emit(
        &api,
        &appointment_event("appointment.confirmed", stale, stale_starts, &stale_mail),
    )
    .await;

    let confirmed = wait_for_mail(&tomorrow_mail, WAIT).await;
    assert_eq!(confirmed.len(), 1);
    let text = readable(&confirmed[0]);
    assert!(text.contains("Subject: Videochiamata confermata"), "{text}");
    assert!(text.contains("in videochiamata"), "{text}");
    assert!(text.contains("Agenzia territoriale di Crema"), "{text}");
    assert_eq!(wait_for_mail(&cancelled_mail, WAIT).await.len(), 1);
    emit(
        &api,
        &appointment_event(
            "appointment.cancelled",
            cancelled,
            cancelled_starts,
            &cancelled_mail,
        ),
    )
    .await;

    // The reminder of tomorrow's arrives; the cancelled one's never does.
    assert!(
        eventually(WAIT, || async { delivered_to(&tomorrow_mail).len() == 2 }).await,
        "no reminder"
    );
    let reminder = readable(&delivered_to(&tomorrow_mail)[1]);
    assert!(
        reminder.contains("Subject: Promemoria: videochiamata"),
        "{reminder}"
    );
    assert!(eventually(WAIT, || async { delivered_to(&cancelled_mail).len() == 2 }).await);
    let cancellation = readable(&delivered_to(&cancelled_mail)[1]);
    assert!(
        cancellation.contains("Subject: Appuntamento cancellato"),
        "{cancellation}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        delivered_to(&cancelled_mail).len(),
        2,
        "no reminder of a cancelled appointment"
    );
    assert_eq!(delivered_to(&tomorrow_mail).len(), 2, "one reminder");
    // Moved after its reminder went: confirmed again and reminded again.
    let moved = now + chrono::Duration::hours(24) + chrono::Duration::seconds(10);
    emit(
        &api,
        &appointment_event("appointment.confirmed", tomorrow, moved, &tomorrow_mail),
    )
    .await;
    assert!(
        eventually(WAIT, || async { delivered_to(&tomorrow_mail).len() == 4 }).await,
        "the moved appointment is confirmed and reminded"
    );
    let stale_recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE subject_id = $1 AND withdrawn_at IS NOT NULL",
    )
    .bind(stale)
    .fetch_one(&api.env.pool)
    .await
    .unwrap();
    assert_eq!(
        stale_recorded, 1,
        "the late confirmation is recorded, withdrawn"
    );
    assert_eq!(
        delivered_to(&stale_mail).len(),
        1,
        "only the cancellation was sent"
    );
    assert_eq!(
        wait_for_mail(&soon_mail, WAIT).await.len(),
        1,
        "too close to remind"
    );

    // "Scadenze": the days left, and the video link only on the day.
    let (status, deadlines) = api.get("/notifications?tab=deadlines", &me).await;
    assert_eq!(status, StatusCode::OK, "{deadlines}");
    let item = |id: Uuid| {
        deadlines["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["subject_id"] == json!(id))
            .unwrap_or_else(|| panic!("{id} not in {deadlines}"))
            .clone()
    };
    assert!(
        !deadlines["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["subject_id"] == json!(cancelled)),
        "a cancelled appointment is no deadline: {deadlines}"
    );
    let later = item(tomorrow);
    assert_eq!(
        deadlines["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["subject_id"] == json!(tomorrow))
            .count(),
        1,
        "the moved appointment replaced its earlier deadline: {deadlines}"
    );
    let due: DateTime<Utc> = later["due_at"].as_str().unwrap().parse().unwrap();
    assert!((due - moved).num_milliseconds().abs() < 1, "{later}");
    let expected = days_left(moved, Utc::now());
    assert_eq!(later["days_left"], expected, "{later}");
    assert_eq!(later["days_left_label"], days_left_label(expected));
    assert_eq!(later["link"], Value::Null, "no link before the day");
    let today = item(soon);
    if days_left(soon_starts, Utc::now()) == 0 {
        assert_eq!(today["days_left_label"], "Oggi");
        assert_eq!(
            today["link"],
            json!(format!("https://sportello.example/video/rooms/{soon}"))
        );
    }
    let (_, appointments) = api.get("/notifications?tab=appointments", &me).await;
    let titles: Vec<&str> = appointments["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    let count = |prefix: &str| titles.iter().filter(|t| t.starts_with(prefix)).count();
    assert_eq!(titles.len(), 4, "{titles:?}");
    assert_eq!(
        count("Promemoria"),
        2,
        "before and after the move: {titles:?}"
    );
    assert_eq!(count("Appuntamento cancellato"), 2, "{titles:?}");

    // The appointment's office reads its delivery log; nobody else does.
    let log = format!("/appointments/{tomorrow}/notifications");
    let (status, body) = api.get(&log, &operator("1901")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rules: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["rule"].as_str().unwrap())
        .collect();
    let reminded = ["appointment-confirmed", "appointment-confirmed.reminder"];
    assert_eq!(
        rules,
        [reminded, reminded].concat(),
        "before and after the move"
    );
    assert_eq!(body[0]["deliveries"][0]["state"], "sent");
    for who in [operator("4902"), me.clone(), intermediary()] {
        assert_eq!(
            api.get(&log, &who).await.0,
            StatusCode::FORBIDDEN,
            "{who:?}"
        );
    }
    let unknown = format!("/appointments/{}/notifications", Uuid::now_v7());
    assert_eq!(
        api.get(&unknown, &operator("1901")).await.0,
        StatusCode::NOT_FOUND
    );

    gateway.stop().await;
    api.stop().await;
}

fn window_event(kind: &str, case: Uuid, closes_at: DateTime<Utc>) -> Value {
    let payload = if kind == "documents.window_opened" {
        json!({
            "case_id": case,
            "opened_at": Utc::now(),
            "closes_at": closes_at,
            "missing": "Copia del documento di identità.",
            "link": format!("https://sportello.example/pratiche/{case}/documenti")
        })
    } else {
        json!({"case_id": case, "closed_at": Utc::now(), "reason": "completed"})
    };
    json!({
        "message_id": Uuid::now_v7(),
        "type": kind,
        "schema_version": 1,
        "occurred_at": Utc::now(),
        "correlation_id": format!("video-{case}"),
        "causation_id": null,
        "payload": payload
    })
}

#[actix_rt::test]
async fn the_document_window_after_a_video_call_is_announced_and_reminded_before_it_closes() {
    let gateway = SmsGateway::start();
    let api = start(&gateway).await;
    let (open_mail, closed_mail) = (mailbox("window"), mailbox("completed"));
    let open_case = submit_and_wait(
        &api.env,
        &request_with_contact("w1", json!({"email": open_mail})),
    )
    .await;
    let closed_case = submit_and_wait(
        &api.env,
        &request_with_contact("w2", json!({"email": closed_mail})),
    )
    .await;
    // Their "request registered" emails first.
    assert_eq!(wait_for_mail(&open_mail, WAIT).await.len(), 1);
    assert_eq!(wait_for_mail(&closed_mail, WAIT).await.len(), 1);

    // 72 hours in real life; here the 12-hour reminder is due in seconds.
    let soon =
        |seconds| Utc::now() + chrono::Duration::hours(12) + chrono::Duration::seconds(seconds);
    emit(
        &api,
        &window_event("documents.window_opened", open_case, soon(3)),
    )
    .await;
    emit(
        &api,
        &window_event("documents.window_opened", closed_case, soon(4)),
    )
    .await;
    assert!(eventually(WAIT, || async { delivered_to(&closed_mail).len() == 2 }).await);
    emit(
        &api,
        &window_event("documents.window_closed", closed_case, Utc::now()),
    )
    .await;

    assert!(
        eventually(WAIT, || async { delivered_to(&open_mail).len() == 3 }).await,
        "opened, then reminded"
    );
    let mail = delivered_to(&open_mail);
    let opened = readable(&mail[1]);
    assert!(
        opened.contains("Subject: Documenti da integrare entro il"),
        "{opened}"
    );
    assert!(
        opened.contains("Copia del documento di identità."),
        "{opened}"
    );
    assert!(
        opened.contains(&format!("/pratiche/{open_case}/documenti")),
        "{opened}"
    );
    assert!(readable(&mail[2]).contains("Subject: Promemoria: documenti da integrare"));

    assert!(eventually(WAIT, || async { delivered_to(&closed_mail).len() == 3 }).await);
    let closed = readable(&delivered_to(&closed_mail)[2]);
    assert!(closed.contains("Subject: Documenti ricevuti"), "{closed}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        delivered_to(&closed_mail).len(),
        3,
        "no reminder of a closed window"
    );
    assert_eq!(delivered_to(&open_mail).len(), 3, "one reminder");

    // In "Scadenze" with the days left and the link to the documents panel.
    let (_, deadlines) = api
        .get("/notifications?tab=deadlines", &citizen(CITIZEN))
        .await;
    let window = deadlines["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| {
            n["subject_id"] == json!(open_case)
                && n["title"].as_str().unwrap().starts_with("Documenti")
        })
        .unwrap_or_else(|| panic!("{deadlines}"))
        .clone();
    assert!(window["days_left"].as_i64().unwrap() >= 0, "{window}");
    assert_eq!(
        window["link"],
        json!(format!(
            "https://sportello.example/pratiche/{open_case}/documenti"
        ))
    );
    // The office sees the window's notifications in the ticket's log.
    let (status, log) = api
        .get(
            &format!("/tickets/{open_case}/notifications"),
            &operator("1901"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let rules: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "ticket-opened",
            "documents-window-opened",
            "documents-window-opened.reminder"
        ]
    );

    gateway.stop().await;
    api.stop().await;
}

/// Marks a notification read (`PUT`) or unread (`DELETE`) as `who`.
async fn mark(
    api: &Api,
    id: &dyn std::fmt::Display,
    who: &Principal,
    read: bool,
) -> (StatusCode, Value) {
    let method = if read { Method::PUT } else { Method::DELETE };
    api.call(
        method,
        &format!("/notifications/{id}/read"),
        Some(who),
        None,
    )
    .await
}

#[actix_rt::test]
async fn an_event_that_cannot_be_notified_is_dead_lettered_with_its_reason() {
    let env = TestEnv::new_with(|settings| settings.smtp_url = sink().url.clone()).await;
    let workers = env.start(&[WorkerKind::Notify]);
    let mut dead = env.probe(DEAD_LETTER_EXCHANGE, "#").await;

    // Not a ticket.opened at all.
    publish_as_app(
        &env,
        EVENTS_EXCHANGE,
        "ticket.opened",
        br#"{"type": "ticket.opened"}"#,
    )
    .await;
    let letter = dead.next(WAIT).await.expect("dead letter");
    let reason = header(&letter, "x-sportello-reason").unwrap_or_default();
    assert!(reason.contains("rejected"), "{reason}");

    // Well formed, about a ticket this system never opened.
    let example = include_str!("../schemas/ticket.opened/v2.example.json");
    let mut event: Value = serde_json::from_str(example).unwrap();
    event["message_id"] = json!(Uuid::now_v7());
    event["payload"]["ticket_id"] = json!(Uuid::now_v7());
    publish_as_app(&env, EVENTS_EXCHANGE, "ticket.opened", &bytes(&event)).await;
    let letter = dead.next(WAIT).await.expect("dead letter");
    let reason = header(&letter, "x-sportello-reason").unwrap_or_default();
    assert!(reason.contains("not found"), "{reason}");
    let notifications: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(notifications, 0);

    // The queue keeps flowing: a valid appointment event right after is notified.
    let mail = mailbox("after");
    let starts = Utc::now() + chrono::Duration::days(3);
    publish_as_app(
        &env,
        EVENTS_EXCHANGE,
        "appointment.confirmed",
        &bytes(&appointment_event(
            "appointment.confirmed",
            Uuid::now_v7(),
            starts,
            &mail,
        )),
    )
    .await;
    assert!(
        eventually(WAIT, || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM notifications")
                .fetch_one(&env.pool)
                .await
                .unwrap()
                == 1
        })
        .await
    );

    workers.shutdown(Duration::from_secs(5)).await;
    env.cleanup().await;
}

/// Seed 002: email and SMS when the request is registered *and routed to
/// the competent office*. A request that lands in triage is told it was
/// registered and is being routed (email and centre, no SMS, no office
/// named); the reassignment out of triage brings the routing notice (email,
/// SMS, centre), once however often its event arrives; going back to triage
/// tells nothing.
#[actix_rt::test]
async fn a_request_routed_through_triage_is_told_when_it_reaches_its_competent_office() {
    let gateway = SmsGateway::start();
    let api = start(&gateway).await;
    let mut reassigned_events = api
        .env
        .probe(EVENTS_EXCHANGE, "ticket.changed.reassigned")
        .await;
    let email = mailbox("triage");
    let phone = "+393337654321";
    // No rule routes a place the tables do not know: triage.
    let mut request =
        request_with_contact("triage-1", json!({"email": email, "phone": "3337654321"}));
    request["payload"]["location"] = json!({"province": "ZZ", "municipality": "Altrove"});
    let ticket = submit_and_wait(&api.env, &request).await;
    let office: String = sqlx::query_scalar("SELECT office_aoo FROM tickets WHERE id = $1")
        .bind(ticket)
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(office, "0001", "the request is in triage");

    let mail = wait_for_mail(&email, WAIT).await;
    assert_eq!(mail.len(), 1);
    let registered = readable(&mail[0]);
    assert!(
        registered.contains("Subject: Richiesta protocollata"),
        "{registered}"
    );
    assert!(
        registered.contains("Stiamo individuando la struttura territorialmente competente"),
        "{registered}"
    );
    assert!(
        !registered.contains("Smistamento centrale"),
        "triage is not named as if it were the competent office: {registered}"
    );
    assert_eq!(settled(&api, ticket, 1).await.len(), 1, "email only");

    // Triage reassigns it to Crema: the routing notice, by email and SMS.
    let (status, body) = api
        .post(
            &format!("/tickets/{ticket}/reassign"),
            &operator("0001"),
            json!({"office": "1901", "reason": "Posizione iscritta a Crema"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(eventually(WAIT, || async { delivered_to(&email).len() >= 2 }).await);
    let routed = readable(&delivered_to(&email)[1]);
    assert!(
        routed.contains("Subject: Richiesta assegnata alla sede competente"),
        "{routed}"
    );
    assert!(routed.contains("Agenzia territoriale di Crema"), "{routed}");
    assert!(eventually(WAIT, || async { !gateway.delivered_to(phone).is_empty() }).await);
    let sms = gateway.delivered_to(phone);
    assert_eq!(
        sms.len(),
        1,
        "no SMS for the triage landing, one for the routing"
    );
    assert!(sms[0].text.contains("sede competente"), "{}", sms[0].text);

    // The same event again (a relay resending it) plans nothing new.
    let event = reassigned_events
        .next(WAIT)
        .await
        .expect("ticket.changed.reassigned");
    let payload: Value = serde_json::from_slice(&event.data).unwrap();
    assert_eq!(payload["payload"]["office_is_triage"], json!(false));
    publish_as_app(
        &api.env,
        EVENTS_EXCHANGE,
        "ticket.changed.reassigned",
        &event.data,
    )
    .await;

    // Back to triage: nothing to tell the citizen.
    let (status, body) = api
        .post(
            &format!("/tickets/{ticket}/reassign"),
            &operator("1901"),
            json!({"office": "0001", "reason": "Non di nostra competenza"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The probe sees the republished copy first, then the new event.
    let mut back = reassigned_events.next_json(WAIT).await.expect("an event");
    if back["message_id"] == payload["message_id"] {
        back = reassigned_events
            .next_json(WAIT)
            .await
            .expect("second reassignment");
    }
    assert_eq!(back["payload"]["office_is_triage"], json!(true));

    let states = settled(&api, ticket, 3).await;
    assert!(states.iter().all(|(_, s, _)| s == "sent"), "{states:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(delivered_to(&email).len(), 2, "each email once");
    assert_eq!(gateway.delivered_to(phone).len(), 1, "the SMS once");
    let rules: Vec<String> = sqlx::query_scalar(
        "SELECT rule FROM notifications WHERE subject_id = $1 ORDER BY created_at",
    )
    .bind(ticket)
    .fetch_all(&api.env.pool)
    .await
    .unwrap();
    assert_eq!(rules, ["ticket-opened-triage", "ticket-routed"]);
    let (_, centre) = api.get("/notifications", &citizen(CITIZEN)).await;
    let titles: Vec<&str> = centre["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["subject_id"] == json!(ticket))
        .map(|item| item["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles.len(), 2, "{centre}");
    assert!(titles[0].starts_with("Richiesta assegnata alla sede competente"));

    gateway.stop().await;
    api.stop().await;
}

/// The first slot the desk offers in `mode` from two days ahead.
async fn first_free_slot(api: &Api, who: &Principal, desk: &str, mode: &str) -> DateTime<Utc> {
    let from = Utc::now().date_naive() + chrono::Duration::days(2);
    let to = from + chrono::Duration::days(14);
    let path = format!("/offices/1901/desks/{desk}/availability?mode={mode}&from={from}&to={to}");
    let (status, availability) = api.get(&path, who).await;
    assert_eq!(status, StatusCode::OK, "{availability}");
    availability["slots"][0]["starts_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no free {mode} slot at {desk}: {availability}"))
        .parse()
        .unwrap()
}

#[actix_rt::test]
async fn a_confirmed_appointment_of_every_mode_reaches_the_citizen_by_email_sms_and_scadenze() {
    let gateway = SmsGateway::start();
    let api = start(&gateway).await;
    let address: String = sqlx::query_scalar("SELECT address FROM offices WHERE aoo = '1901'")
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    // Each mode for a citizen of its own, with their saved email; the SMS
    // goes to the number given with the booking.
    let modes = [
        ("in_person", "ammortizzatori", 1),
        ("phone", "pensioni", 2),
        ("video", "conto_assicurativo", 3),
    ];
    for (mode, desk, n) in modes {
        let tax_code = citizen_number(n);
        let who = citizen(&tax_code);
        let email = mailbox(mode);
        let phone = format!("+39333100000{n}");
        let (status, saved) = api
            .put(
                "/me/contacts",
                &who,
                json!({"email": email, "email_enabled": true, "sms_enabled": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        let starts_at = first_free_slot(&api, &who, desk, mode).await;
        let body = json!({"office": "1901", "desk": desk, "mode": mode, "starts_at": starts_at,
                          "phone": phone, "notes": "Chiarimenti sulla domanda."});
        let (status, held) = api.post("/appointments", &who, body).await;
        assert_eq!(status, StatusCode::CREATED, "{mode}: {held}");
        let id = held["appointment_id"].as_str().unwrap().to_owned();
        let (status, confirmed) = api
            .post(&format!("/appointments/{id}/confirm"), &who, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{mode}: {confirmed}");

        let mail = wait_for_mail(&email, WAIT).await;
        assert_eq!(mail.len(), 1, "{mode}: one email");
        let text = readable(&mail[0]);
        assert!(
            eventually(WAIT, || async { !gateway.delivered_to(&phone).is_empty() }).await,
            "{mode}: no SMS"
        );
        let sms = gateway.delivered_to(&phone)[0].text.clone();
        let (_, deadlines) = api.get("/notifications?tab=deadlines", &who).await;
        let items = deadlines["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{mode}: in Scadenze: {deadlines}");
        assert_eq!(items[0]["subject_id"], json!(id));
        assert_eq!(
            items[0]["due_at"]
                .as_str()
                .map(|d| d.parse::<DateTime<Utc>>().unwrap()),
            Some(starts_at)
        );
        let local = starts_at.with_timezone(&sportello::domain::cron::TIME_ZONE);
        match mode {
            "in_person" => {
                assert!(
                    text.contains("Subject: Appuntamento in presenza confermato"),
                    "{text}"
                );
                assert!(text.contains(&address), "the office's address: {text}");
                assert!(sms.contains("in presenza"), "{sms}");
            }
            "phone" => {
                assert!(
                    text.contains("Subject: Ricontatto telefonico confermato"),
                    "{text}"
                );
                let window = format!("tra le {}", local.format("%H:%M"));
                for said in [&text, &sms] {
                    assert!(said.contains(&phone), "the number called: {said}");
                    assert!(said.contains(&window), "the time of the call: {said}");
                }
            }
            _ => {
                assert!(text.contains("Subject: Videochiamata confermata"), "{text}");
                assert!(text.contains("Scadenze"), "{text}");
                assert!(sms.contains("videochiamata"), "{sms}");
            }
        }
        // Nothing of it was dead-lettered.
        let rule: String =
            sqlx::query_scalar("SELECT rule FROM notifications WHERE subject_id = $1::uuid")
                .bind(&id)
                .fetch_one(&api.env.pool)
                .await
                .unwrap();
        let expected = match mode {
            "video" => "appointment-confirmed",
            "in_person" => "appointment-confirmed-in-person",
            _ => "appointment-confirmed-phone",
        };
        assert_eq!(rule, expected);
    }
    gateway.stop().await;
    api.stop().await;
}
