//! Booking over the broker, as a channel sees it: queries and commands
//! published with `reply_to` (RabbitMQ's direct reply-to) and answered with
//! their correlation id; a repeated command answers the same; refusals say
//! why (and are dead-lettered when nobody waits for them); a confirmed phone
//! appointment becomes a call for the office's agents at its time, and the
//! agent's outcome decides what follows.

use std::time::Duration;

use crate::support::*;
use chrono::{DateTime, Datelike, Utc};
use serde_json::{json, Value};
use sportello::agent::{self, AgentSession};
use sportello::appointments::{commands, BookingSettings};
use sportello::broker::names;
use sportello::domain::booking::admit_command;
use sportello::workers::WorkerKind;
use uuid::Uuid;

const CITIZEN: &str = "RSSMRA85T10A562S";
const OTHER_CITIZEN: &str = "BNCGVN70A41F205O";
const WAIT: Duration = Duration::from_secs(20);

fn envelope(
    channel: &str,
    principal: Value,
    message_type: &str,
    key: &str,
    payload: Value,
) -> Value {
    json!({
        "message_id": Uuid::now_v7(),
        "type": message_type,
        "schema_version": 1,
        "channel": channel,
        "occurred_at": Utc::now(),
        "correlation_id": format!("corr-{key}"),
        "idempotency_key": format!("key-{key}"),
        "principal": principal,
        "payload": payload
    })
}

fn agent_for(citizen: &str) -> Value {
    json!({"kind": "contact_center_agent", "agent_id": "CC-0042", "on_behalf_of": citizen})
}

/// The first weekday at least two days ahead with a phone calendar at
/// Crema's pension desk (Monday to Friday, 14:00 to 16:00 in the calendar).
fn bookable_day() -> chrono::NaiveDate {
    let mut day = Utc::now().date_naive() + chrono::Duration::days(2);
    while day.weekday().number_from_monday() > 5 {
        day += chrono::Duration::days(1);
    }
    day
}

async fn first_free_phone_slot(requester: &mut Requester, key: &str) -> (Value, DateTime<Utc>) {
    let day = bookable_day();
    let answer = requester
        .ask(&envelope(
            "contact_center",
            agent_for(CITIZEN),
            "appointment.availability_requested",
            key,
            json!({"office_aoo": "1901", "desk": "conto_assicurativo", "mode": "phone",
                   "from": day, "to": day + chrono::Duration::days(7)}),
        ))
        .await;
    let first = answer["payload"]["slots"][0].clone();
    assert!(first.is_object(), "no free phone slot: {answer}");
    let starts_at = first["starts_at"].as_str().unwrap().parse().unwrap();
    (answer, starts_at)
}

fn hold(principal: Value, key: &str, starts_at: DateTime<Utc>) -> Value {
    envelope(
        "contact_center",
        principal,
        "appointment.hold_requested",
        key,
        json!({"office_aoo": "1901", "desk": "conto_assicurativo", "mode": "phone",
               "starts_at": starts_at, "phone": "+393331234567",
               "notes": "Pensione: chiarimenti sul ricalcolo."}),
    )
}

#[actix_rt::test]
async fn a_channel_books_over_the_broker_and_every_answer_is_the_same_when_repeated() {
    let env = TestEnv::new().await;
    let _workers = env.start(&[WorkerKind::Appointments, WorkerKind::OutboxRelay]);
    let mut requester = Requester::open(&env, "contact_center").await;

    let (availability, starts_at) = first_free_phone_slot(&mut requester, "avail-1").await;
    assert_eq!(availability["type"], "appointment.availability");
    assert_eq!(availability["payload"]["error"], Value::Null);

    // Prenota, then the very same message again, then a resend (new id,
    // same key): one appointment, the same answer three times.
    let first = hold(agent_for(CITIZEN), "hold-1", starts_at);
    let held = requester.ask(&first).await;
    assert_eq!(held["type"], "appointment.command_outcome");
    assert_eq!(held["payload"]["outcome"], "held", "{held}");
    let appointment_id = held["payload"]["appointment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(held["payload"]["hold_expires_at"].is_string());
    assert_eq!(requester.ask(&first).await["payload"], held["payload"]);
    let mut resend = first.clone();
    resend["message_id"] = json!(Uuid::now_v7());
    assert_eq!(requester.ask(&resend).await["payload"], held["payload"]);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);

    // The slot (capacity 1) is taken now: another citizen is told so, with
    // the next free slots.
    let taken = requester
        .ask(&hold(agent_for(OTHER_CITIZEN), "hold-2", starts_at))
        .await;
    assert_eq!(taken["payload"]["outcome"], "refused");
    assert_eq!(taken["payload"]["refusal"]["code"], "slot_taken");
    assert!(taken["payload"]["refusal"]["alternatives"][0]["starts_at"].is_string());

    // Another citizen's agent cannot confirm or cancel it.
    let confirm_other = envelope(
        "contact_center",
        agent_for(OTHER_CITIZEN),
        "appointment.confirm_requested",
        "confirm-other",
        json!({"appointment_id": appointment_id}),
    );
    let refused = requester.ask(&confirm_other).await;
    assert_eq!(
        refused["payload"]["refusal"]["code"], "forbidden",
        "{refused}"
    );

    // Conferma: the receipt, and appointment.confirmed for notifications.
    let mut announced = env
        .probe(names::EVENTS_EXCHANGE, "appointment.confirmed")
        .await;
    let confirm = envelope(
        "contact_center",
        agent_for(CITIZEN),
        "appointment.confirm_requested",
        "confirm-1",
        json!({"appointment_id": appointment_id}),
    );
    let confirmed = requester.ask(&confirm).await;
    assert_eq!(confirmed["payload"]["outcome"], "confirmed", "{confirmed}");
    assert_eq!(confirmed["payload"]["state"], "confirmed");
    assert_eq!(
        confirmed["payload"]["receipt"]["mode"], "phone",
        "{confirmed}"
    );
    let event = announced
        .next_json(WAIT)
        .await
        .expect("appointment.confirmed");
    assert_eq!(event["payload"]["appointment_id"], appointment_id.as_str());
    assert_eq!(event["payload"]["mode"], "phone");
    // Confirming again answers the same and announces nothing more.
    let again = requester.ask(&confirm).await;
    assert_eq!(again["payload"], confirmed["payload"]);
    assert!(announced.next(Duration::from_millis(500)).await.is_none());

    // A refused command nobody waits for is dead-lettered with its reason.
    let mut dead_letters = env.probe(names::DEAD_LETTER_EXCHANGE, "#").await;
    requester
        .publish(
            &envelope(
                "contact_center",
                agent_for(OTHER_CITIZEN),
                "appointment.cancel_requested",
                "cancel-other",
                json!({"appointment_id": appointment_id}),
            ),
            None,
        )
        .await;
    let dead = dead_letters.next(WAIT).await.expect("dead-lettered");
    let reason = header(&dead, names::REASON_HEADER).unwrap();
    assert!(reason.contains("forbidden"), "{reason}");
    assert_eq!(
        sqlx::query_scalar::<_, String>("SELECT state FROM appointments WHERE id = $1::uuid")
            .bind(&appointment_id)
            .fetch_one(&env.pool)
            .await
            .unwrap(),
        "confirmed"
    );

    // An unknown desk: the query's answer says so.
    let unknown = requester
        .ask(&envelope(
            "contact_center",
            agent_for(CITIZEN),
            "appointment.availability_requested",
            "avail-unknown",
            json!({"office_aoo": "1901", "desk": "nessuno", "mode": "phone",
                   "from": bookable_day(), "to": bookable_day()}),
        ))
        .await;
    assert_eq!(unknown["payload"]["error"]["code"], "unknown_desk");
    env.cleanup().await;
}

/// Makes the pending call-back timers due now (time passing, in a test).
async fn calls_due_now(env: &TestEnv) {
    sqlx::query(
        "UPDATE timers SET fire_at = now() WHERE kind = 'appointment.callback' AND state = 'scheduled'",
    )
    .execute(&env.pool)
    .await
    .unwrap();
}

async fn agent_answers(env: &TestEnv, script: &str) -> usize {
    let url = env.channel_url("contact_center");
    let session = AgentSession {
        amqp_url: &url,
        office: "1901",
        desk: "conto_assicurativo",
        agent_id: "CC-0042",
        answer_within: Duration::from_secs(20),
        calls: Some(1),
    };
    let mut input = tokio::io::BufReader::new(script.as_bytes());
    let mut output = Vec::new();
    tokio::time::timeout(WAIT, agent::work(session, &mut input, &mut output))
        .await
        .expect("a call reached the agent")
        .unwrap()
}

#[actix_rt::test]
async fn a_phone_appointment_becomes_a_call_at_its_time_and_no_answer_calls_again() {
    let env = TestEnv::new().await;
    let _workers = env.start(&[
        WorkerKind::Appointments,
        WorkerKind::OutboxRelay,
        WorkerKind::Timers,
    ]);
    let mut completed = env
        .probe(names::EVENTS_EXCHANGE, "appointment.completed")
        .await;
    let mut requester = Requester::open(&env, "contact_center").await;
    let (_, starts_at) = first_free_phone_slot(&mut requester, "avail-call").await;
    // The agent also gives the caller's name (optional in v1).
    let mut request = hold(agent_for(CITIZEN), "hold-call", starts_at);
    request["payload"]["citizen_name"] = json!("Mario Rossi");
    let held = requester.ask(&request).await;
    let appointment_id = held["payload"]["appointment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let name: Option<String> =
        sqlx::query_scalar("SELECT citizen_name FROM appointments WHERE id = $1::uuid")
            .bind(&appointment_id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(name.as_deref(), Some("Mario Rossi"));
    let confirmed = requester
        .ask(&envelope(
            "contact_center",
            agent_for(CITIZEN),
            "appointment.confirm_requested",
            "confirm-call",
            json!({"appointment_id": appointment_id}),
        ))
        .await;
    assert_eq!(confirmed["payload"]["outcome"], "confirmed");

    // Its time comes: the call is on the desk's queue; nobody answers.
    calls_due_now(&env).await;
    assert_eq!(agent_answers(&env, "n\nSquilla a vuoto.\n").await, 1);
    let retried = eventually(WAIT, || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM timers WHERE kind = 'appointment.callback'
             AND key = $1 AND state = 'scheduled'",
        )
        .bind(format!("{appointment_id}:2"))
        .fetch_one(&env.pool)
        .await
        .is_ok_and(|n| n == 1)
    })
    .await;
    assert!(retried, "no second call scheduled after no answer");
    let (outcome, agent_id): (String, String) = sqlx::query_as(
        "SELECT outcome, agent FROM appointment_calls WHERE appointment_id = $1::uuid AND attempt = 1",
    )
    .bind(&appointment_id)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        (outcome.as_str(), agent_id.as_str()),
        ("no_answer", "CC-0042")
    );

    // The second call is answered: the appointment took place.
    calls_due_now(&env).await;
    assert_eq!(agent_answers(&env, "f\n\n").await, 1);
    let done = eventually(WAIT, || async {
        sqlx::query_scalar::<_, String>("SELECT state FROM appointments WHERE id = $1::uuid")
            .bind(&appointment_id)
            .fetch_one(&env.pool)
            .await
            .is_ok_and(|state| state == "done")
    })
    .await;
    assert!(done, "the answered call did not close the appointment");
    // Announced once, as the answered call-back.
    let event = completed
        .next_json(WAIT)
        .await
        .expect("appointment.completed");
    assert_eq!(event["payload"]["appointment_id"], appointment_id.as_str());
    assert_eq!(event["payload"]["completed_by"], "callback_answered");
    assert_eq!(event["payload"]["actor_id"], "CC-0042");
    assert!(completed.next_json(Duration::from_secs(1)).await.is_none());
    env.cleanup().await;
}

#[actix_rt::test]
async fn two_hundred_holds_per_slot_on_two_consumers_win_exactly_the_capacity() {
    let env = TestEnv::new().await;
    // Three operators on duty at Crema's in-person pension desk (a data change).
    sqlx::query(
        "UPDATE calendars SET capacity = 3
         WHERE office_aoo = '1901' AND desk_kind = 'conto_assicurativo' AND mode = 'in_person'",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    // Two competing consumers, each with its own connections and pool.
    let _workers = env.start(&[WorkerKind::Appointments, WorkerKind::Appointments]);
    let mut requester = Requester::open(&env, "contact_center").await;
    let (_, phone_slot) = first_free_phone_slot(&mut requester, "avail-race").await;
    let in_person = requester
        .ask(&envelope(
            "contact_center",
            agent_for(CITIZEN),
            "appointment.availability_requested",
            "avail-race-2",
            json!({"office_aoo": "1901", "desk": "conto_assicurativo", "mode": "in_person",
                   "from": bookable_day(), "to": bookable_day() + chrono::Duration::days(7)}),
        ))
        .await;
    let in_person_slot: DateTime<Utc> = in_person["payload"]["slots"][0]["starts_at"]
        .as_str()
        .expect("a free in-person slot")
        .parse()
        .unwrap();
    assert_eq!(in_person["payload"]["slots"][0]["free"], 3);

    for (mode, starts_at, capacity) in [("phone", phone_slot, 1), ("in_person", in_person_slot, 3)]
    {
        let holds: Vec<Value> = (0..200)
            .map(|n| {
                // Other citizens in each race: one seat per desk and day each.
                let citizen = citizen_number(n + if mode == "phone" { 0 } else { 200 });
                let mut message = hold(agent_for(&citizen), &format!("race-{mode}-{n}"), starts_at);
                message["payload"]["mode"] = json!(mode);
                message
            })
            .collect();
        let answers = requester.ask_all(&holds).await;
        let won = answers
            .iter()
            .filter(|a| a["payload"]["outcome"] == "held")
            .count();
        assert_eq!(won, capacity, "{mode}: exactly the capacity wins");
        for answer in answers.iter().filter(|a| a["payload"]["outcome"] != "held") {
            assert_eq!(
                answer["payload"]["refusal"]["code"], "slot_taken",
                "{answer}"
            );
            assert!(
                answer["payload"]["refusal"]["alternatives"][0]["starts_at"].is_string(),
                "{answer}"
            );
        }
        let (taken, live): (i16, i64) = sqlx::query_as(
            "SELECT s.taken, (SELECT count(*) FROM appointments a
                              WHERE a.office_aoo = s.office_aoo AND a.desk_kind = s.desk_kind
                                AND a.mode = s.mode AND a.starts_at = s.starts_at
                                AND a.state IN ('held', 'confirmed'))
             FROM appointment_slots s
             WHERE s.office_aoo = '1901' AND s.desk_kind = 'conto_assicurativo'
               AND s.mode = $1 AND s.starts_at = $2",
        )
        .bind(mode)
        .bind(starts_at)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        assert_eq!((taken as usize, live as usize), (capacity, capacity));
    }
    env.cleanup().await;
}

/// A batch as the worker applies it: one transaction, one savepoint per
/// command.
async fn apply_batch(env: &TestEnv, messages: &[Value]) -> Vec<Value> {
    let admitted: Vec<_> = messages
        .iter()
        .map(|m| {
            let key = format!("contact_center.{}", m["type"].as_str().unwrap());
            admit_command(&key, &bytes(m)).unwrap()
        })
        .collect();
    let batch: Vec<_> = admitted.iter().collect();
    let settings = BookingSettings::from_settings(&env.settings);
    let mut tx = env.pool.begin().await.unwrap();
    let outcomes = commands::apply_batch(&mut tx, &settings, &batch, Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    outcomes
        .iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

/// Rows a batch may write, to see that refusals wrote nothing.
async fn written(env: &TestEnv) -> (i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM appointments),
                (SELECT coalesce(sum(taken), 0)::bigint FROM appointment_slots),
                (SELECT count(*) FROM timers WHERE kind = 'appointment.hold'),
                (SELECT count(*) FROM appointment_command_outcomes)",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

#[actix_rt::test]
async fn a_batch_answers_each_command_its_own_outcome_and_a_redelivered_batch_the_same() {
    let env = TestEnv::new().await;
    let day = bookable_day();
    let mut conn = env.pool.acquire().await.unwrap();
    let free = sportello::appointments::availability(
        &mut conn,
        "1901",
        "conto_assicurativo",
        sportello::domain::appointment::Mode::Phone,
        day,
        day + chrono::Duration::days(7),
        Utc::now(),
    )
    .await
    .unwrap();
    drop(conn);
    let (first_slot, second_slot) = (free.slots[0].starts_at, free.slots[1].starts_at);

    let winner = hold(agent_for(&citizen_number(1)), "batch-1", first_slot);
    let loser = hold(agent_for(&citizen_number(2)), "batch-2", first_slot);
    let mut unknown_office = hold(agent_for(&citizen_number(3)), "batch-3", second_slot);
    unknown_office["payload"]["office_aoo"] = json!("9999");
    let other_slot = hold(agent_for(&citizen_number(4)), "batch-4", second_slot);
    let confirm_nothing = envelope(
        "contact_center",
        agent_for(&citizen_number(5)),
        "appointment.confirm_requested",
        "batch-5",
        json!({"appointment_id": Uuid::now_v7()}),
    );
    let mut resend = other_slot.clone();
    resend["message_id"] = json!(Uuid::now_v7());
    // Arrival order: the loser first would win; the winner asked first.
    let batch = [
        winner.clone(),
        confirm_nothing,
        loser,
        unknown_office,
        other_slot,
        winner.clone(),
        resend,
    ];
    let answers = apply_batch(&env, &batch).await;
    let outcome = |n: usize| answers[n]["outcome"].as_str().unwrap().to_owned();
    let refusal = |n: usize| {
        answers[n]["refusal"]["code"]
            .as_str()
            .unwrap_or("-")
            .to_owned()
    };
    assert_eq!(outcome(0), "held", "{}", answers[0]);
    assert_eq!(refusal(1), "not_found");
    assert_eq!(refusal(2), "slot_taken");
    assert!(answers[2]["refusal"]["alternatives"][0]["starts_at"].is_string());
    assert_eq!(refusal(3), "unknown_office");
    assert_eq!(outcome(4), "held");
    // The same message twice in one batch, and a resend under the same key:
    // the answer the batch decided for the first, nothing applied twice.
    assert_eq!(answers[5], answers[0]);
    assert_eq!(answers[6], answers[4]);
    assert_ne!(answers[0]["appointment_id"], answers[4]["appointment_id"]);
    // Two holds, two seats, two expiry timers; five outcomes kept (the
    // repeats are not commands of their own).
    assert_eq!(written(&env).await, (2, 2, 2, 5));

    // The batch delivered again (a crash between commit and ack): every
    // command answers what it answered, nothing more is written.
    let again = apply_batch(&env, &batch).await;
    assert_eq!(again, answers);
    assert_eq!(written(&env).await, (2, 2, 2, 5));
    env.cleanup().await;
}

/// The refusal answered to `message`, and the reason of its dead letter
/// (`None` when it is not dead-lettered within a second: refusals of the
/// booking rules are answered and kept, not dead-lettered).
async fn refused(
    requester: &mut Requester,
    dead_letters: &mut Probe,
    message: &Value,
) -> (Value, Option<String>) {
    let started = std::time::Instant::now();
    let answer = requester.ask(message).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once, not at the client's timeout"
    );
    let dead = dead_letters.next(Duration::from_secs(1)).await;
    let reason = dead.map(|d| header(&d, names::REASON_HEADER).unwrap());
    (answer["payload"].clone(), reason)
}

#[actix_rt::test]
async fn every_refusal_is_answered_on_reply_to_with_the_reason_of_its_dead_letter() {
    let env = TestEnv::new().await;
    let _workers = env.start(&[WorkerKind::Appointments]);
    let mut web = Requester::open(&env, "web").await;
    let mut agent = Requester::open(&env, "contact_center").await;
    let mut dead_letters = env.probe(names::DEAD_LETTER_EXCHANGE, "#").await;
    let (availability, starts_at) = first_free_phone_slot(&mut agent, "avail-refusals").await;
    // Another free slot of the same desk on the same day.
    let later: DateTime<Utc> = availability["payload"]["slots"][1]["starts_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        (later - starts_at).num_minutes(),
        15,
        "the next call of the day: {availability}"
    );
    let citizen = |level: u8| {
        json!({"kind": "citizen", "tax_code": CITIZEN,
               "authentication": {"method": "SPID", "level": level}})
    };
    let web_hold = |principal: Value, key: &str| {
        let mut message = hold(principal, key, starts_at);
        message["channel"] = json!("web");
        message
    };

    // Refused at admission: answered with a code, and dead-lettered with the
    // same reason, for each class of refusal.
    let mut invalid = web_hold(citizen(2), "no-notes");
    invalid["payload"].as_object_mut().unwrap().remove("notes");
    let intermediary = json!({"kind": "intermediary", "tax_code": "FRRLCU75C41D969A",
                              "authentication": {"method": "CNS"}});
    let admission = [
        (web_hold(citizen(1), "weak"), "forbidden"),
        (invalid, "invalid_message"),
        (web_hold(agent_for(CITIZEN), "agent-on-web"), "forbidden"),
        (web_hold(intermediary, "for-nobody"), "missing_subject"),
    ];
    for (message, code) in admission {
        let (answer, reason) = refused(&mut web, &mut dead_letters, &message).await;
        assert_eq!(answer["outcome"], "refused", "{answer}");
        assert_eq!(answer["command_type"], "appointment.hold_requested");
        assert_eq!(answer["refusal"]["code"], code, "{answer}");
        let message = answer["refusal"]["message"].as_str().unwrap();
        let reason = reason.unwrap_or_else(|| panic!("{code}: dead-lettered too"));
        assert_eq!(reason, format!("rejected: {message}"));
    }

    // An availability query refused at admission: answered with the error.
    let mut weak_query = envelope(
        "web",
        citizen(1),
        "appointment.availability_requested",
        "weak-query",
        json!({"office_aoo": "1901", "desk": "conto_assicurativo", "mode": "phone",
               "from": bookable_day(), "to": bookable_day()}),
    );
    let (answer, reason) = refused(&mut web, &mut dead_letters, &weak_query).await;
    assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    assert_eq!(answer["slots"], json!([]));
    let message = answer["error"]["message"].as_str().unwrap();
    assert_eq!(reason.unwrap(), format!("rejected: {message}"));
    weak_query["payload"]["office_aoo"] = json!("not an office");
    web.publish(&weak_query, Some("garbled")).await;
    let garbled = dead_letters.next(WAIT).await.expect("dead-lettered alone");
    assert!(header(&garbled, names::REASON_HEADER)
        .unwrap()
        .starts_with("rejected: "));

    // Refused by the booking rules: answered, the outcome kept (not
    // dead-lettered, as someone heard it).
    let held = agent
        .ask(&hold(agent_for(CITIZEN), "first", starts_at))
        .await;
    assert_eq!(held["payload"]["outcome"], "held", "{held}");
    let (answer, reason) = refused(
        &mut agent,
        &mut dead_letters,
        &hold(agent_for(CITIZEN), "second-same-day", later),
    )
    .await;
    assert_eq!(answer["refusal"]["code"], "limit_reached", "{answer}");
    assert_eq!(reason, None);
    let mut companies = hold(agent_for(OTHER_CITIZEN), "companies", starts_at);
    companies["payload"]["desk"] = json!("aziende");
    let (answer, _) = refused(&mut agent, &mut dead_letters, &companies).await;
    assert_eq!(
        answer["refusal"]["code"], "conversation_required",
        "{answer}"
    );
    env.cleanup().await;
}
