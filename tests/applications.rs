//! Benefit applications end to end: a registered back-office case per
//! application, one per citizen and benefit, each refusal with its reason,
//! state and receipt over HTTP for the applicant only, the menu, and a full
//! intake queue pushing back without losing anything.

use std::time::Duration;

use crate::support::api::Api;
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sportello::broker::names::{DEAD_LETTER_EXCHANGE, REASON_HEADER};
use sportello::contract::{Authentication, CodiceFiscale, PinKind, Principal};
use sportello::workers::WorkerKind;

const WAIT: Duration = Duration::from_secs(30);
const APPLICANT: &str = "RSSMRA85T10A562S";

/// The schema's example with its own ids (the example applies on 1 April
/// 2020 at 17:05, inside the citizens' 16:00-08:00 window).
fn application(key: &str) -> Value {
    let mut example: Value = serde_json::from_str(include_str!(
        "../schemas/application.submitted/v1.example.json"
    ))
    .unwrap();
    example["message_id"] = json!(uuid::Uuid::now_v7());
    example["idempotency_key"] = json!(key);
    example["correlation_id"] = json!(format!("corr-{key}"));
    example
}

async fn application_count(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM applications")
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[actix_rt::test]
async fn an_application_is_registered_once_and_a_resubmission_finds_it() {
    let api = Api::start().await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let first = application("domanda-0001");
    api.env
        .publish("web", "web.application.submitted", &bytes(&first))
        .await
        .unwrap();
    assert!(eventually(WAIT, || async { application_count(&api.env).await == 1 }).await);

    // The F5: the same application under a new message id and key.
    let again = application("domanda-0001-f5");
    api.env
        .publish("web", "web.application.submitted", &bytes(&again))
        .await
        .unwrap();
    // A genuinely different second application for the same benefit.
    let mut different = application("domanda-0002");
    different["payload"]["payment"]["iban"] = json!("IT42L1234512345123456789012");
    api.env
        .publish("web", "web.application.submitted", &bytes(&different))
        .await
        .unwrap();
    let letter = dead.next(WAIT).await.expect("the different one is refused");
    let reason = header(&letter, REASON_HEADER).unwrap();
    assert!(reason.contains("already applied"), "{reason}");
    assert!(
        reason.contains("INPS."),
        "names the earlier registration: {reason}"
    );
    assert_eq!(application_count(&api.env).await, 1);
    assert_eq!(api.env.ticket_count().await, 1);

    let me = citizen(APPLICANT);
    let (status, body) = api.get("/applications", &me).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = body["applications"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "registered");
    assert_eq!(listed[0]["benefit"], "covid19_indemnity");
    assert_eq!(listed[0]["iban"], "IT60X0542811101000000123456");
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    // What the channel's resubmission finds: its first message's application.
    let (_, by_message) = api
        .get(
            &format!(
                "/applications?message_id={}",
                first["message_id"].as_str().unwrap()
            ),
            &me,
        )
        .await;
    assert_eq!(by_message["applications"][0]["id"], id.as_str());

    let (status, receipt) = api.get(&format!("/applications/{id}/receipt"), &me).await;
    assert_eq!(status, StatusCode::OK);
    assert!(receipt["signature"].as_str().unwrap().starts_with("INPS."));
    assert_eq!(receipt["iban"], "IT…3456");
    let pdf = api
        .client
        .get(format!("{}/applications/{id}/receipt.pdf", api.base))
        .bearer_auth(api.keys.issue(&me, chrono::Duration::minutes(5)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), StatusCode::OK);
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-"));
    api.stop().await;
}

#[actix_rt::test]
async fn each_refusal_is_dead_lettered_with_its_reason() {
    let env = TestEnv::new().await;
    let mut dead = env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let workers = env.start(&[WorkerKind::Intake]);

    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut bad_iban = application("bad-iban");
    bad_iban["payload"]["payment"]["iban"] = json!("IT61X0542811101000000123456");
    cases.push((bad_iban, "mod 97"));
    let mut not_holder = application("not-holder");
    not_holder["payload"]["payment"]["holders"][0]["tax_code"] = json!("BNCGVN70A41F205O");
    cases.push((not_holder, "not among the declared holders"));
    let mut morning = application("in-the-morning");
    morning["occurred_at"] = json!("2020-04-02T08:30:00Z");
    cases.push((morning, "they open at 2020-04-02 16:00"));
    let mut ordinary_pin = application("ordinary-pin");
    ordinary_pin["principal"]["authentication"] = json!({"method": "PIN", "pin_kind": "ordinary"});
    cases.push((ordinary_pin, "pin_ordinary"));
    let mut unknown_category = application("astronaut-0001");
    unknown_category["payload"]["category"] = json!("astronauts");
    cases.push((unknown_category, "no category `astronauts`"));
    let mut missing_field = application("missing-field");
    missing_field["payload"]["fields"]
        .as_object_mut()
        .unwrap()
        .remove("contract_end_date");
    cases.push((missing_field, "field `contract_end_date` is required"));
    let mut someone_else = application("someone-else");
    someone_else["payload"]["applicant"]["tax_code"] = json!("BNCGVN70A41F205O");
    someone_else["payload"]["payment"]["holders"][0]["tax_code"] = json!("BNCGVN70A41F205O");
    cases.push((
        someone_else,
        "is not the citizen this citizen may apply for",
    ));

    for (message, _) in &cases {
        env.publish("web", "web.application.submitted", &bytes(message))
            .await
            .unwrap();
    }
    let mut reasons = Vec::new();
    for _ in &cases {
        let letter = dead.next(WAIT).await.expect("a dead letter per refusal");
        reasons.push(header(&letter, REASON_HEADER).unwrap());
    }
    for (_, expected) in &cases {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no reason says `{expected}`: {reasons:#?}"
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM applications")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!((stored, env.ticket_count().await), (0, 0));
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn the_office_decides_and_only_the_applicant_reads_it() {
    let api = Api::start().await;
    let message = application("decided-0001");
    api.env
        .publish("web", "web.application.submitted", &bytes(&message))
        .await
        .unwrap();
    assert!(eventually(WAIT, || async { application_count(&api.env).await == 1 }).await);
    let me = citizen(APPLICANT);
    let (_, body) = api.get("/applications", &me).await;
    let application = body["applications"][0].clone();
    let id = application["id"].as_str().unwrap().to_owned();
    let ticket = application["ticket_id"].as_str().unwrap().to_owned();
    // Crema, by the applicant's residence.
    assert_eq!(application["office_aoo"], "1901");

    // Nobody else: another citizen, an operator of another office, an agent
    // for someone else, an intermediary without a delegation.
    let stranger = citizen("BNCGVN70A41F205O");
    let agent_for_other = Principal::ContactCenterAgent {
        agent_id: "CC0001".into(),
        on_behalf_of: CodiceFiscale::parse("BNCGVN70A41F205O").unwrap(),
        identified_by: Some(sportello::contract::Identification::Spid),
        pin_verification_id: None,
    };
    for who in [
        &stranger,
        &operator("1900"),
        &agent_for_other,
        &intermediary(),
    ] {
        let (status, _) = api.get(&format!("/applications/{id}"), who).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who:?}");
        let (status, _) = api
            .get(&format!("/applications/{id}/receipt.pdf"), who)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who:?}");
    }
    let (status, _) = api
        .get(
            &format!("/applications?citizen={APPLICANT}"),
            &intermediary(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An ordinary PIN may consult.
    let with_ordinary_pin = Principal::Citizen {
        tax_code: CodiceFiscale::parse(APPLICANT).unwrap(),
        authentication: Authentication::Pin {
            pin_kind: PinKind::Ordinary,
        },
    };
    let (status, _) = api
        .get(&format!("/applications/{id}"), &with_ordinary_pin)
        .await;
    assert_eq!(status, StatusCode::OK);

    // The office works it as a ticket and rejects it.
    let office = operator("1901");
    let (status, body) = api
        .post(
            &format!("/tickets/{ticket}/take-in-charge"),
            &office,
            json!({"comment": "Istruttoria"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, detail) = api.get(&format!("/applications/{id}"), &office).await;
    assert_eq!(detail["state"], "in_review");
    let (status, body) = api
        .post(
            &format!("/tickets/{ticket}/close"),
            &office,
            json!({"outcome": "respinta", "comment": "Requisiti non soddisfatti"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, detail) = api.get(&format!("/applications/{id}"), &me).await;
    assert_eq!(
        (detail["state"].as_str(), detail["state_label"].as_str()),
        (Some("rejected"), Some("Respinta"))
    );
    api.stop().await;
}

#[actix_rt::test]
async fn the_menu_follows_profile_position_and_credential() {
    let api = Api::start().await;
    let ids = |body: &Value| -> Vec<String> {
        body["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, artisan) = api
        .get("/catalogue?position_type=artigiano", &citizen(APPLICANT))
        .await;
    assert_eq!(status, StatusCode::OK);
    let artisan_ids = ids(&artisan);
    assert!(artisan_ids.contains(&"artisans_traders_payments".to_owned()));
    assert!(!artisan_ids.contains(&"uniemens".to_owned()));
    let (_, company) = api
        .get("/catalogue?position_type=azienda_uniemens", &intermediary())
        .await;
    assert!(ids(&company).contains(&"uniemens".to_owned()));

    let simplified = Principal::Citizen {
        tax_code: CodiceFiscale::parse(APPLICANT).unwrap(),
        authentication: Authentication::Pin {
            pin_kind: PinKind::Simplified,
        },
    };
    let (_, menu) = api.get("/catalogue", &simplified).await;
    let entry = |id: &str| {
        menu["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(entry("application.covid19_indemnity")["available"], true);
    assert_eq!(entry("tickets")["available"], false);
    assert!(entry("tickets")["requires"]
        .as_array()
        .unwrap()
        .contains(&json!("spid2")));

    let (status, benefits) = api.get("/applications/benefits", &citizen(APPLICANT)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(benefits["benefits"].as_array().unwrap().len(), 2);
    api.stop().await;
}

#[actix_rt::test]
async fn a_full_intake_queue_pushes_back_and_nothing_is_lost() {
    let env = TestEnv::new().await;
    // A tiny bound, so that the broker nacks while nobody consumes.
    env.management
        .set_policy(
            &env.vhost,
            "sportello-intake-bound",
            "^sportello\\.intake\\.requests$",
            "queues",
            &json!({"max-length": 5}),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let url = env.channel_url("web");
    let publishing = tokio::spawn(async move {
        let mut published = Vec::new();
        for n in 0..20 {
            let mut message = request("web", &format!("pressure-{n:04}"));
            message["principal"]["tax_code"] = json!(APPLICANT);
            let sent = sportello::publish::publish(&url, &bytes(&message))
                .await
                .expect("published, however long the queue stays full");
            published.push(sent.message_id);
        }
        published
    });
    // Nobody consumes for a while: the publisher is pushed back, not failed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !publishing.is_finished(),
        "the bound of 5 held the publisher back"
    );
    let workers = env.start(&[WorkerKind::Intake]);
    let published = publishing.await.unwrap();
    assert_eq!(published.len(), 20);
    assert!(eventually(WAIT, || async { env.ticket_count().await == 20 }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.ticket_count().await, 20);
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

/// Backends of this test's database waiting for a lock.
async fn waiting_for_locks(env: &TestEnv) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

/// The F5 racing its original on two consumers: the resubmission's insert
/// waits on the original's uncommitted row, then finds the key taken. That
/// is the duplicate it is (acknowledged, nothing recorded twice), not a
/// refusal of its data to dead-letter.
#[actix_rt::test]
async fn a_resubmission_racing_its_original_is_a_duplicate_not_a_refusal() {
    // One message in flight per consumer: the second goes to the other one.
    let env = TestEnv::new_with(|settings| {
        settings.intake_consumers = 2;
        settings.intake_prefetch = 1;
    })
    .await;
    let mut dead = env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let workers = env.start(&[WorkerKind::Intake]);
    // Holding the protocol counters stops the original's transaction at its
    // number, after its application row is written.
    let mut counters = env.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE protocol_counters IN EXCLUSIVE MODE")
        .execute(&mut *counters)
        .await
        .unwrap();
    env.publish(
        "web",
        "web.application.submitted",
        &bytes(&application("race-original")),
    )
    .await
    .unwrap();
    assert!(eventually(WAIT, || async { waiting_for_locks(&env).await == 1 }).await);
    env.publish(
        "web",
        "web.application.submitted",
        &bytes(&application("race-resubmission")),
    )
    .await
    .unwrap();
    // The resubmission now waits on the original's row.
    assert!(eventually(WAIT, || async { waiting_for_locks(&env).await == 2 }).await);
    counters.commit().await.unwrap();

    assert!(eventually(WAIT, || async { application_count(&env).await == 1 }).await);
    assert!(
        eventually(WAIT, || async {
            env.management
                .queue_messages(&env.vhost, "sportello.intake.requests")
                .await
                .ok()
                .flatten()
                == Some(0)
        })
        .await,
        "both messages are acknowledged"
    );
    if let Some(letter) = dead.next(Duration::from_secs(2)).await {
        panic!(
            "the resubmission was dead-lettered: {:?}",
            header(&letter, REASON_HEADER)
        );
    }
    assert_eq!(env.ticket_count().await, 1);
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

/// A verification of the applicant's PIN half, made by `agent` at `at`.
async fn verification_at(
    env: &TestEnv,
    agent: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO pin_agent_verifications (id, agent_id, tax_code, verified_at, expires_at, correlation_id)
         VALUES ($1, $2, $3, $4, $5, 'test')",
    )
    .bind(id)
    .bind(agent)
    .bind(APPLICANT)
    .bind(at)
    .bind(at + chrono::Duration::minutes(15))
    .execute(&env.pool)
    .await
    .unwrap();
    id
}

/// Seed 004: the contact centre applies for a caller who gives only the
/// first half of a new PIN. The agent's `identified_by: pin_simplified` is
/// believed only with Sportello's verification of that half, which the
/// application then names; so do the agent's reads.
#[actix_rt::test]
async fn an_agent_applies_on_the_simplified_pin_only_under_a_verification_it_names() {
    let api = Api::start().await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    // A weekday noon in Rome, inside the agents' 08:00-20:00 window.
    let acted_at: chrono::DateTime<chrono::Utc> = "2020-04-01T10:00:00Z".parse().unwrap();
    let verified =
        verification_at(&api.env, "CC-0042", acted_at - chrono::Duration::minutes(2)).await;
    let someone_elses =
        verification_at(&api.env, "CC-0099", acted_at - chrono::Duration::minutes(2)).await;
    let too_late =
        verification_at(&api.env, "CC-0042", acted_at + chrono::Duration::minutes(5)).await;
    let by_agent = |key: &str, verification: Option<uuid::Uuid>| {
        let mut message = application(key);
        message["channel"] = json!("contact_center");
        message["occurred_at"] = json!(acted_at);
        message["principal"] = json!({
            "kind": "contact_center_agent", "agent_id": "CC-0042",
            "on_behalf_of": APPLICANT, "identified_by": "pin_simplified"
        });
        if let Some(id) = verification {
            message["principal"]["pin_verification_id"] = json!(id);
        }
        message
    };
    for (message, why) in [
        (by_agent("agente-senza", None), "pin_verification_id"),
        (
            by_agent("agente-ignota", Some(uuid::Uuid::now_v7())),
            "no PIN verification has this id",
        ),
        (
            by_agent("agente-altrui", Some(someone_elses)),
            "another agent",
        ),
        (
            by_agent("agente-tardi", Some(too_late)),
            "after the agent acted",
        ),
    ] {
        api.env
            .publish(
                "contact_center",
                "contact_center.application.submitted",
                &bytes(&message),
            )
            .await
            .unwrap();
        let letter = dead.next(WAIT).await.expect("a dead letter");
        let reason = header(&letter, REASON_HEADER).unwrap();
        assert!(reason.contains(why), "{why}: {reason}");
    }
    assert_eq!(application_count(&api.env).await, 0);

    api.env
        .publish(
            "contact_center",
            "contact_center.application.submitted",
            &bytes(&by_agent("agente-verificata", Some(verified))),
        )
        .await
        .unwrap();
    assert!(eventually(WAIT, || async { application_count(&api.env).await == 1 }).await);
    let named: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT pin_verification_id FROM applications")
            .fetch_one(&api.env.pool)
            .await
            .unwrap();
    assert_eq!(named, Some(verified));

    // The agent reads the caller's applications under a fresh verification,
    // and the read is recorded with it.
    let now_verified = verification_at(&api.env, "CC-0042", chrono::Utc::now()).await;
    let agent = Principal::ContactCenterAgent {
        agent_id: "CC-0042".into(),
        on_behalf_of: CodiceFiscale::parse(APPLICANT).unwrap(),
        identified_by: Some(sportello::contract::Identification::PinSimplified),
        pin_verification_id: None,
    };
    let token = api
        .keys
        .issue(&agent, chrono::Duration::minutes(10))
        .unwrap();
    let response = api
        .client
        .get(format!("{}/applications", api.base))
        .bearer_auth(&token)
        .header("X-Pin-Verification", now_verified.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["applications"].as_array().unwrap().len(), 1, "{body}");
    let (what, identified_by, under): (String, String, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT what, identified_by, pin_verification_id FROM agent_reads WHERE agent_id = 'CC-0042'",
    )
    .fetch_one(&api.env.pool)
    .await
    .unwrap();
    assert_eq!(
        (what.as_str(), identified_by.as_str(), under),
        ("application_list", "pin_simplified", Some(now_verified))
    );
    // The expired verification no longer serves a read.
    let response = api
        .client
        .get(format!("{}/applications", api.base))
        .bearer_auth(&token)
        .header("X-Pin-Verification", verified.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    api.stop().await;
}
