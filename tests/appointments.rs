//! Appointments end to end: availability, the two-phase booking (hold,
//! confirm, cancel) with receipts and events, a hold expiring through its
//! timer, every refusal of bad input, nobody reaching another person's
//! appointment, and no double booking under 200 concurrent attempts over
//! two API instances.

use std::net::TcpListener;
use std::time::Duration;

use crate::support::*;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sportello::broker::names::EVENTS_EXCHANGE;
use sportello::contract::{CodiceFiscale, Principal};
use sportello::domain::access::Delegation;
use sportello::domain::appointment::calendar::{holiday, rome_instant};
use sportello::http::{self, ApiState};
use sportello::store;
use sportello::store::documents as documents_store;
use sportello::workers::WorkerKind;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);
const CITIZEN: &str = "RSSMRA85T10A562S";
const OTHER_CITIZEN: &str = "BNCGVN70A41F205O";
const INTERMEDIARY: &str = "FRRLCU75C41D969A";

/// The next day on `weekday` (ISO) at least two days ahead on which
/// `office` is open (no national holiday, none of its closures).
async fn open_day(api: &Api, office: &str, weekday: u32) -> NaiveDate {
    let mut day = Utc::now().date_naive() + chrono::Duration::days(2);
    loop {
        if day.weekday().number_from_monday() == weekday && holiday(day).is_none() {
            let closed: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM office_closures WHERE office_aoo = $1 AND day = $2)",
            )
            .bind(office)
            .bind(day)
            .fetch_one(&api.env.pool)
            .await
            .unwrap();
            if !closed {
                return day;
            }
        }
        day += chrono::Duration::days(1);
    }
}

fn at(day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    rome_instant(day.and_hms_opt(hour, minute, 0).unwrap()).unwrap()
}

fn booking(office: &str, desk: &str, mode: &str, starts_at: DateTime<Utc>) -> Value {
    json!({
        "office": office,
        "desk": desk,
        "mode": mode,
        "starts_at": starts_at,
        "phone": "333 123 4567",
        "notes": "Domanda di NASpI: documenti mancanti",
    })
}

fn agent(id: &str, citizen: &str) -> Principal {
    Principal::ContactCenterAgent {
        agent_id: id.into(),
        on_behalf_of: CodiceFiscale::parse(citizen).unwrap(),
        identified_by: None,
        pin_verification_id: None,
    }
}

async fn post_with_key(api: &Api, who: &Principal, key: &str, body: Value) -> (StatusCode, Value) {
    let response = api
        .client
        .post(format!("{}/appointments", api.base))
        .bearer_auth(api.keys.issue(who, chrono::Duration::minutes(10)).unwrap())
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn free_times(api: &Api, path: &str, who: &Principal) -> Vec<String> {
    let (status, body) = api.get(path, who).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["time"].as_str().unwrap().to_owned())
        .collect()
}

async fn appointment_state(api: &Api, id: &str) -> String {
    sqlx::query_scalar("SELECT state FROM appointments WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&api.env.pool)
        .await
        .unwrap()
}

#[actix_rt::test]
async fn a_video_call_is_held_confirmed_with_its_receipt_notified_and_cancelled() {
    let api = Api::start_with(
        TestEnv::new().await,
        &[WorkerKind::OutboxRelay, WorkerKind::Notify],
    );
    let mut confirmed = api.env.probe(EVENTS_EXCHANGE, "appointment.*").await;
    let me = citizen(CITIZEN);
    // Crema, indennità e ammortizzatori sociali: video calls on Wednesdays.
    let wednesday = open_day(&api, "1901", 3).await;
    let path = format!(
        "/offices/1901/desks/ammortizzatori/availability?mode=video&from={wednesday}&to={wednesday}"
    );
    let times = free_times(&api, &path, &me).await;
    assert_eq!(times.len(), 24, "20-minute slots 08:30-16:30: {times:?}");
    assert_eq!((times[0].as_str(), times[23].as_str()), ("08:30", "16:10"));
    let thursday_path = path.replace(
        &wednesday.to_string(),
        &(wednesday + chrono::Duration::days(1)).to_string(),
    );
    assert!(
        free_times(&api, &thursday_path, &me).await.is_empty(),
        "video on Wednesdays only"
    );

    // Prenota, resent with the same key: one hold.
    let mut body = booking("1901", "ammortizzatori", "video", at(wednesday, 9, 10));
    // The name the citizen's channel knows, kept as declared (spaces tidied).
    body["citizen_name"] = json!("  Mario   Rossi ");
    let (status, held) = post_with_key(&api, &me, "prenota-1", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    assert_eq!(held["appointment"]["citizen_name"], "Mario Rossi");
    assert_eq!(held["outcome"], "held");
    let id = held["appointment_id"].as_str().unwrap().to_owned();
    let expires: DateTime<Utc> = held["hold_expires_at"].as_str().unwrap().parse().unwrap();
    let minutes = (expires - Utc::now()).num_seconds();
    assert!((540..=600).contains(&minutes), "ten minutes: {minutes}s");
    assert_eq!(held["appointment"]["phone"], "+393331234567");
    let (status, again) = post_with_key(&api, &me, "prenota-1", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["appointment_id"], id.as_str());
    assert_eq!(again["repeated"], true);
    let mut changed = body.clone();
    changed["notes"] = json!("altro");
    let (status, refused) = post_with_key(&api, &me, "prenota-1", changed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"], "idempotency_key_reused");
    assert!(!free_times(&api, &path, &me)
        .await
        .contains(&"09:10".to_owned()));
    let (status, early) = api.get(&format!("/appointments/{id}/receipt"), &me).await;
    assert_eq!(
        (status, early["error"].as_str()),
        (StatusCode::CONFLICT, Some("not_confirmed"))
    );

    // Conferma, twice: the same outcome, one event.
    let confirm = format!("/appointments/{id}/confirm");
    let (status, answer) = api.post(&confirm, &me, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "confirmed");
    // The citizen's signed link to the room (issue 13).
    let link = answer["receipt"]["video_link"].as_str().unwrap().to_owned();
    let token = link
        .strip_prefix("https://video.sportello.example/stanza/")
        .expect("a room link");
    let signer =
        sportello::domain::video::link::LinkSigner::new(&api.env.settings.video_link_secret);
    let opened = signer.verify(token, chrono::Utc::now()).unwrap();
    assert_eq!(opened.appointment_id.to_string(), id);
    assert_eq!(opened.role, sportello::domain::video::Role::Citizen);
    assert_eq!(answer["receipt"]["mode_label"], "Videochiamata");
    assert_eq!(answer["receipt"]["time"], "09:10");
    let (_, answer) = api.post(&confirm, &me, json!({})).await;
    assert_eq!(answer["outcome"], "already_confirmed");
    let event = confirmed
        .next_json(WAIT)
        .await
        .expect("appointment.confirmed");
    sportello::contract::schemas::catalogue()
        .validate(&event)
        .unwrap();
    assert_eq!(event["type"], "appointment.confirmed");
    assert_eq!(event["payload"]["video_link"], link.as_str());
    assert_eq!(
        event["payload"]["desk"],
        "indennità e ammortizzatori sociali"
    );
    // The notify worker turned it into the citizen's deadline.
    assert!(
        eventually(WAIT, || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM notifications WHERE subject_id = $1::uuid AND rule = 'appointment-confirmed'",
            )
            .bind(&id)
            .fetch_one(&api.env.pool)
            .await
            .unwrap()
                == 1
        })
        .await,
        "appointment.confirmed reached the notification centre"
    );

    // Receipts, history.
    let (status, receipt) = api.get(&format!("/appointments/{id}/receipt"), &me).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["office_name"], "Agenzia territoriale di Crema");
    assert_eq!(receipt["date"], wednesday.format("%d/%m/%Y").to_string());
    let pdf = api
        .client
        .get(format!("{}/appointments/{id}/receipt.pdf", api.base))
        .bearer_auth(api.keys.issue(&me, chrono::Duration::minutes(5)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), StatusCode::OK);
    let bytes = pdf.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    assert!(String::from_utf8_lossy(&bytes).contains("Videochiamata"));
    let (_, history) = api.get("/appointments", &me).await;
    let listed = history["appointments"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "confirmed");
    assert_eq!(listed[0]["booked_by"], json!({"kind": "citizen"}));

    // Cancella prenotazione: the slot is free again; confirm after cancel refused.
    let cancel = format!("/appointments/{id}/cancel");
    let (status, answer) = api.post(&cancel, &me, json!({"reason": "impegno"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "cancelled");
    assert_eq!(answer["appointment"]["cancelled_by"], "citizen");
    let (_, answer) = api.post(&cancel, &me, json!({})).await;
    assert_eq!(answer["outcome"], "already_cancelled");
    let (status, refused) = api.post(&confirm, &me, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"], "illegal_transition");
    let event = confirmed
        .next_json(WAIT)
        .await
        .expect("appointment.cancelled");
    sportello::contract::schemas::catalogue()
        .validate(&event)
        .unwrap();
    assert_eq!(event["type"], "appointment.cancelled");
    assert_eq!(event["payload"]["cancelled_by"], "citizen");
    assert!(free_times(&api, &path, &me)
        .await
        .contains(&"09:10".to_owned()));
    assert!(
        confirmed
            .next_json(Duration::from_millis(500))
            .await
            .is_none(),
        "one event each"
    );
    api.stop().await;
}

#[actix_rt::test]
async fn an_unconfirmed_hold_expires_through_its_timer_and_frees_the_slot() {
    let api = Api::start_with(TestEnv::new().await, &[WorkerKind::Timers]);
    // Cremona, conto assicurativo: phone call-backs, one operator.
    let monday = open_day(&api, "1900", 1).await;
    let body = booking("1900", "conto_assicurativo", "phone", at(monday, 14, 15));
    let (status, held) = api
        .post("/appointments", &citizen(CITIZEN), body.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    let id = held["appointment_id"].as_str().unwrap().to_owned();

    // Taken: the loser is offered the next free slots.
    let other = citizen(OTHER_CITIZEN);
    let (status, taken) = api.post("/appointments", &other, body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");
    assert_eq!(taken["error"], "slot_taken");
    let alternatives = taken["alternatives"].as_array().unwrap();
    assert_eq!(alternatives.len(), 5);
    assert_eq!(alternatives[0]["time"], "14:30");

    // Time passes: the hold's timer fires and the slot is free again.
    sqlx::query("UPDATE appointments SET hold_expires_at = now() WHERE id = $1::uuid")
        .bind(&id)
        .execute(&api.env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE timers SET fire_at = now() WHERE kind = 'appointment.hold' AND key = $1")
        .bind(&id)
        .execute(&api.env.pool)
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || async {
            appointment_state(&api, &id).await == "expired"
        })
        .await,
        "the timer expired the hold"
    );
    let taken: i16 = sqlx::query_scalar(
        "SELECT taken FROM appointment_slots WHERE office_aoo = '1900' AND mode = 'phone' AND starts_at = $1",
    )
    .bind(at(monday, 14, 15))
    .fetch_one(&api.env.pool)
    .await
    .unwrap();
    assert_eq!(taken, 0, "released exactly once");
    let (status, refused) = api
        .post(
            &format!("/appointments/{id}/confirm"),
            &citizen(CITIZEN),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::GONE, "{refused}");
    assert_eq!(refused["error"], "hold_expired");
    let (status, held) = api.post("/appointments", &other, body).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    api.stop().await;
}

#[actix_rt::test]
async fn bad_input_is_refused_with_its_reason_and_nothing_written() {
    let api = Api::start().await;
    let me = citizen(CITIZEN);
    let monday = open_day(&api, "1900", 1).await;
    let ok = booking("1900", "pensioni", "in_person", at(monday, 9, 0));
    let mut cases: Vec<(Value, StatusCode, &str, &str)> = Vec::new();
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    cases.push((
        with("office", json!("9999")),
        StatusCode::NOT_FOUND,
        "unknown_office",
        "9999",
    ));
    cases.push((
        with("desk", json!("astrologia")),
        StatusCode::NOT_FOUND,
        "unknown_desk",
        "astrologia",
    ));
    cases.push((
        with("citizen_name", json!("12345")),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "not a citizen's name",
    ));
    cases.push((
        with("citizen_name", json!("M".repeat(121))),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "at most 120 characters",
    ));
    cases.push((
        with("mode", json!("piccione")),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "mode",
    ));
    let yesterday = at(Utc::now().date_naive() - chrono::Duration::days(1), 9, 0);
    cases.push((
        with("starts_at", json!(yesterday)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "slot_unavailable",
        "past",
    ));
    cases.push((
        with("starts_at", json!(at(monday, 15, 0))),
        StatusCode::UNPROCESSABLE_ENTITY,
        "slot_unavailable",
        "outside the opening hours",
    ));
    cases.push((
        with("starts_at", json!(at(monday, 9, 10))),
        StatusCode::UNPROCESSABLE_ENTITY,
        "slot_unavailable",
        "every 30 minutes",
    ));
    let far = at(Utc::now().date_naive() + chrono::Duration::days(400), 9, 0);
    cases.push((
        with("starts_at", json!(far)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "slot_unavailable",
        "days ahead",
    ));
    cases.push((
        with("phone", json!("")),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "phone",
    ));
    cases.push((
        with("phone", json!("chiamami")),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "phone",
    ));
    cases.push((
        with("notes", json!("  ")),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "notes",
    ));
    // The next weekday national holiday, and the next weekday closure.
    let mut day = Utc::now().date_naive() + chrono::Duration::days(1);
    while holiday(day).is_none() || day.weekday().number_from_monday() > 5 {
        day += chrono::Duration::days(1);
    }
    cases.push((
        with("starts_at", json!(at(day, 9, 0))),
        StatusCode::UNPROCESSABLE_ENTITY,
        "slot_unavailable",
        holiday(day).unwrap(),
    ));
    let (office, closure): (String, NaiveDate) = sqlx::query_as(
        "SELECT c.office_aoo, c.day FROM office_closures c
         JOIN desks d ON d.office_aoo = c.office_aoo AND d.kind = 'pensioni'
         WHERE c.day > current_date + 1 AND extract(isodow FROM c.day) < 6
         ORDER BY c.day LIMIT 1",
    )
    .fetch_one(&api.env.pool)
    .await
    .unwrap();
    let mut closed = with("starts_at", json!(at(closure, 9, 0)));
    closed["office"] = json!(office);
    cases.push((
        closed,
        StatusCode::UNPROCESSABLE_ENTITY,
        "slot_unavailable",
        "closed",
    ));
    for (body, status, code, words) in cases {
        let (got, refusal) = api.post("/appointments", &me, body.clone()).await;
        assert_eq!(
            (got, refusal["error"].as_str()),
            (status, Some(code)),
            "{body} -> {refusal}"
        );
        // A citizen reads Italian; the reason's English is the detail.
        assert!(refusal["message"].as_str().is_some(), "{refusal}");
        let message = refusal["detail"]
            .as_str()
            .or(refusal["message"].as_str())
            .unwrap();
        assert!(message.contains(words), "{message:?} should say {words:?}");
    }
    let (status, _) = api
        .call(
            Method::POST,
            "/appointments",
            Some(&me),
            Some(json!({"office": "1900"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "missing fields");
    let (status, refusal) = api
        .get(
            "/offices/1900/desks/aziende/availability?mode=in_person&from=2026-01-10&to=2026-03-10",
            &me,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refusal}");
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments")
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    let seats: i64 = sqlx::query_scalar("SELECT coalesce(sum(taken), 0) FROM appointment_slots")
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!((written, seats), (0, 0), "nothing half-written");
    api.stop().await;
}

#[actix_rt::test]
async fn a_cassetto_conversation_allows_booking_after_n_days_or_once_rejected() {
    let api = Api::start().await;
    let me = citizen(CITIZEN);
    let ticket = submit_and_wait(
        &api.env,
        &request_v2(
            citizen_json(CITIZEN),
            "cassetto-1",
            "ammortizzatori_sociali",
            "4901234567",
            "NASpI",
            json!({"province": "CR", "municipality": "Crema"}),
        ),
    )
    .await;
    let tuesday = open_day(&api, "1901", 2).await;
    let mut body = booking("1901", "ammortizzatori", "in_person", at(tuesday, 10, 0));
    body["ticket_id"] = json!(ticket);
    let (status, refusal) = api.post("/appointments", &me, body.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refusal}");
    assert_eq!(refusal["error"], "not_yet_eligible");
    let possible_from: DateTime<Utc> = refusal["possible_from"].as_str().unwrap().parse().unwrap();
    let days = (possible_from - Utc::now()).num_hours();
    assert!(
        (7 * 24 - 1..=7 * 24).contains(&days),
        "7 days for ammortizzatori: {days}h"
    );
    // Someone else's conversation is not a way in.
    let (status, _) = api
        .post("/appointments", &citizen(OTHER_CITIZEN), body.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The office rejects the request: booking is possible at once.
    let operator = operator("1901");
    let (status, taken) = api
        .post(
            &format!("/tickets/{ticket}/take-in-charge"),
            &operator,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    let (status, closed) = api
        .post(
            &format!("/tickets/{ticket}/close"),
            &operator,
            json!({"outcome": "respinta", "comment": "Requisiti non soddisfatti"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    let (status, held) = api.post("/appointments", &me, body).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    assert_eq!(held["appointment"]["channel"], "cassetto");
    assert_eq!(held["appointment"]["ticket_id"], json!(ticket));
    api.stop().await;
}

#[actix_rt::test]
async fn nobody_reaches_another_persons_appointment() {
    // Three bookings for one citizen at one desk and day: not what this
    // test is about.
    let env = TestEnv::new_with(|settings| settings.appointment_limit_per_desk_day = 3).await;
    let api = Api::start_with(env, &[WorkerKind::Intake, WorkerKind::OutboxRelay]);
    let me = citizen(CITIZEN);
    let thursday = open_day(&api, "1900", 4).await;
    let (status, held) = api
        .post(
            "/appointments",
            &me,
            booking("1900", "pensioni", "in_person", at(thursday, 8, 30)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    let id = held["appointment_id"].as_str().unwrap().to_owned();
    let paths = [
        (Method::GET, format!("/appointments/{id}")),
        (Method::POST, format!("/appointments/{id}/confirm")),
        (Method::POST, format!("/appointments/{id}/cancel")),
        (Method::GET, format!("/appointments/{id}/receipt")),
    ];
    let strangers = [
        citizen(OTHER_CITIZEN),
        intermediary(),
        operator("1901"),
        agent("CC-0042", CITIZEN),
    ];
    for who in &strangers {
        for (method, path) in &paths {
            let body = (*method == Method::POST).then(|| json!({}));
            let (status, refusal) = api.call(method.clone(), path, Some(who), body).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{} {path}: {refusal}",
                who.kind()
            );
        }
        let (_, list) = api.get("/appointments", who).await;
        assert_eq!(list["appointments"], json!([]), "{}", who.kind());
    }
    let (status, _) = api
        .get(&format!("/appointments/{}", Uuid::now_v7()), &me)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An intermediary books for a citizen only under an active delegation.
    let on_behalf = |start: DateTime<Utc>| {
        let mut body = booking("1900", "pensioni", "in_person", start);
        body["on_behalf_of"] = json!(CITIZEN);
        body
    };
    let (status, refusal) = api
        .post(
            "/appointments",
            &intermediary(),
            on_behalf(at(thursday, 9, 0)),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refusal}");
    let mut conn = api.env.pool.acquire().await.unwrap();
    documents_store::insert_delegation(
        &mut conn,
        INTERMEDIARY,
        &Delegation {
            citizen_tax_code: CITIZEN.into(),
            gestione: "aziende_uniemens".into(),
            matricola: None,
            valid_from: Utc::now() - chrono::Duration::days(1),
            valid_to: Utc::now() + chrono::Duration::days(30),
            revoked_at: None,
        },
    )
    .await
    .unwrap();
    let (status, by_intermediary) = api
        .post(
            "/appointments",
            &intermediary(),
            on_behalf(at(thursday, 9, 0)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{by_intermediary}");
    let (status, _) = api
        .get(&format!("/appointments/{id}"), &intermediary())
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the delegation covers the citizen's appointments"
    );
    let (_, list) = api.get("/appointments", &intermediary()).await;
    assert_eq!(list["appointments"].as_array().unwrap().len(), 2);

    // A contact-centre agent reaches what they booked, another agent does not.
    let (status, by_agent) = api
        .post(
            "/appointments",
            &agent("CC-0042", CITIZEN),
            booking("1900", "pensioni", "in_person", at(thursday, 9, 30)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{by_agent}");
    assert_eq!(by_agent["appointment"]["channel"], "contact_center");
    let agent_id = by_agent["appointment_id"].as_str().unwrap();
    let (status, _) = api
        .post(
            &format!("/appointments/{agent_id}/confirm"),
            &agent("CC-0042", CITIZEN),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .get(
            &format!("/appointments/{agent_id}"),
            &agent("CC-0099", CITIZEN),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The office's operators read and cancel their office's appointments.
    let office = operator("1900");
    let (_, list) = api.get("/appointments", &office).await;
    assert_eq!(list["appointments"].as_array().unwrap().len(), 3);
    let (status, cancelled) = api
        .post(
            &format!("/appointments/{agent_id}/cancel"),
            &office,
            json!({"reason": "sede chiusa per sciopero"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["appointment"]["cancelled_by"], "office");
    // A front-desk operator books only at their office.
    let mut elsewhere = booking("1901", "aziende", "in_person", at(thursday, 9, 0));
    elsewhere["on_behalf_of"] = json!(CITIZEN);
    let (status, _) = api.post("/appointments", &office, elsewhere).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    api.stop().await;
}

/// A second API instance on the same database, with its own pool.
async fn second_instance(api: &Api) -> (String, actix_web::dev::ServerHandle) {
    let pool = store::connect(&api.env.settings.database_url, 10)
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = http::serve(ApiState::new(&api.env.settings, pool), listener).unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    (base, handle)
}

/// `attempts` citizens (from `first`) hold the same slot at once.
async fn contend(
    api: &Api,
    bases: &[String],
    body: Value,
    first: usize,
    attempts: usize,
) -> (usize, usize) {
    let requests = (0..attempts).map(|i| {
        let token = api
            .keys
            .issue(
                &citizen(&citizen_number(first + i)),
                chrono::Duration::minutes(10),
            )
            .unwrap();
        let url = format!("{}/appointments", bases[i % bases.len()]);
        let request = api.client.post(url).bearer_auth(&token).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    });
    let answers = futures::future::join_all(requests).await;
    let mut won = 0;
    let mut lost = 0;
    for (status, answer) in answers {
        match status {
            StatusCode::CREATED => won += 1,
            StatusCode::CONFLICT => {
                assert_eq!(answer["error"], "slot_taken", "{answer}");
                assert!(
                    !answer["alternatives"].as_array().unwrap().is_empty(),
                    "{answer}"
                );
                lost += 1;
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    (won, lost)
}

#[actix_rt::test]
async fn two_hundred_concurrent_holds_on_two_instances_never_double_book() {
    let api = Api::start_with(TestEnv::new().await, &[]);
    let (second, handle) = second_instance(&api).await;
    let bases = [api.base.clone(), second];
    // Capacity 1: Lodi's video calls; capacity 3: a calendar change as data.
    let tuesday = open_day(&api, "2600", 2).await;
    let one = booking("2600", "conto_assicurativo", "video", at(tuesday, 10, 30));
    sqlx::query("UPDATE calendars SET capacity = 3 WHERE office_aoo = '2600' AND desk_kind = 'pensioni' AND mode = 'in_person'")
        .execute(&api.env.pool)
        .await
        .unwrap();
    let three = booking("2600", "pensioni", "in_person", at(tuesday, 11, 0));
    for (race, (body, capacity)) in [(one, 1), (three, 3)].into_iter().enumerate() {
        let (won, lost) = contend(&api, &bases, body.clone(), race * 200, 200).await;
        assert_eq!((won, lost), (capacity, 200 - capacity));
        let starts_at: DateTime<Utc> = body["starts_at"].as_str().unwrap().parse().unwrap();
        let (held, taken): (i64, i16) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM appointments WHERE starts_at = $1 AND state = 'held'),
                    (SELECT taken FROM appointment_slots WHERE starts_at = $1)",
        )
        .bind(starts_at)
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
        assert_eq!((held, i64::from(taken)), (capacity as i64, capacity as i64));
    }
    handle.stop(true).await;
    api.stop().await;
}

#[actix_rt::test]
async fn prenota_pressed_again_and_again_under_one_key_holds_one_slot() {
    let api = Api::start_with(TestEnv::new().await, &[]);
    let friday = open_day(&api, "3400", 5).await;
    let body = booking("3400", "pensioni", "in_person", at(friday, 10, 0));
    let me = citizen(CITIZEN);
    let presses = (0..20).map(|_| post_with_key(&api, &me, "f5", body.clone()));
    let answers = futures::future::join_all(presses).await;
    let mut ids: Vec<String> = answers
        .iter()
        .map(|(status, answer)| {
            assert!(status.is_success(), "{status}: {answer}");
            answer["appointment_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    ids.dedup();
    assert_eq!((ids.len(), created), (1, 1), "one hold, announced once");
    let (holds, taken): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM appointments),
                (SELECT coalesce(sum(taken), 0) FROM appointment_slots)",
    )
    .fetch_one(&api.env.pool)
    .await
    .unwrap();
    assert_eq!((holds, taken), (1, 1));
    api.stop().await;
}

#[actix_rt::test]
async fn a_scheme_opens_to_booking_by_data_alone_and_an_intermediary_books_under_its_delega() {
    let api = Api::start().await;
    let wednesday = open_day(&api, "1900", 3).await;
    let mut body = booking("1900", "pensioni", "in_person", at(wednesday, 9, 0));
    body["on_behalf_of"] = json!(CITIZEN);
    body["gestione"] = json!("artigiani");
    let delegation = |gestione: &str| Delegation {
        citizen_tax_code: CITIZEN.into(),
        gestione: gestione.into(),
        matricola: None,
        valid_from: Utc::now() - chrono::Duration::days(1),
        valid_to: Utc::now() + chrono::Duration::days(30),
        revoked_at: None,
    };
    let mut conn = api.env.pool.acquire().await.unwrap();
    documents_store::insert_delegation(&mut conn, INTERMEDIARY, &delegation("aziende_uniemens"))
        .await
        .unwrap();

    // Artigiani is not open to booking in the first release.
    let (status, refusal) = api
        .post("/appointments", &intermediary(), body.clone())
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refusal}");
    assert_eq!(refusal["error"], "scheme_not_open");
    let mut unknown = body.clone();
    unknown["gestione"] = json!("astrologi");
    let (status, refusal) = api.post("/appointments", &intermediary(), unknown).await;
    assert_eq!(
        (status, refusal["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid"))
    );

    // Opened by data, with no change of code: a UniEmens delega does not
    // cover an Artigiani position, an Artigiani one does.
    sqlx::query(
        "UPDATE gestioni SET open_to_booking = true, open_to_delegations = true
         WHERE code IN ('artigiani', 'commercianti')",
    )
    .execute(&api.env.pool)
    .await
    .unwrap();
    let (status, refusal) = api
        .post("/appointments", &intermediary(), body.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refusal}");
    documents_store::insert_delegation(&mut conn, INTERMEDIARY, &delegation("artigiani"))
        .await
        .unwrap();
    let (status, held) = api.post("/appointments", &intermediary(), body).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    assert_eq!(held["appointment"]["gestione"], "artigiani");
    let id = held["appointment_id"].as_str().unwrap();
    let (status, _) = api
        .get(&format!("/appointments/{id}"), &intermediary())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = api.get("/appointments", &intermediary()).await;
    assert_eq!(list["appointments"].as_array().unwrap().len(), 1, "{list}");

    // Without a scheme, a booking is a UniEmens one, as before.
    let mut uniemens = booking(
        "1900",
        "conto_assicurativo",
        "in_person",
        at(wednesday, 9, 30),
    );
    uniemens["on_behalf_of"] = json!(CITIZEN);
    let (status, held) = api.post("/appointments", &intermediary(), uniemens).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    assert_eq!(held["appointment"]["gestione"], "aziende_uniemens");
    api.stop().await;
}
