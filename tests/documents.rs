//! Documents over HTTP: who may upload, list, download and delete; every
//! upload refusal; the registration state machine through the registration
//! worker; receipts; annulment.

use std::time::Duration;

use crate::support::*;
use chrono::Utc;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sportello::auth::TokenKeys;
use sportello::contract::Principal;
use sportello::domain::access::Delegation;
use sportello::store::documents::{self as store, NewCase};
use sportello::workers::WorkerKind;
use uuid::Uuid;

const CITIZEN: &str = "RSSMRA85T10A562S";
const OTHER_CITIZEN: &str = "BNCGVN70A41F205O";
const INTERMEDIARY: &str = "FRRLCU75C41D969A";
const PDF: &[u8] = crate::support::fixtures::PDF;
const PNG: &[u8] = crate::support::fixtures::PNG;

/// The shared test API, and one case of CITIZEN handled by office 0040.
struct CaseApi {
    api: Api,
    case_id: Uuid,
}

impl std::ops::Deref for CaseApi {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl CaseApi {
    async fn start() -> CaseApi {
        let api = Api::start_with(TestEnv::new().await, &[]);
        let case_id = Uuid::now_v7();
        store::insert_case(
            &mut api.env.pool.acquire().await.unwrap(),
            &NewCase {
                id: case_id,
                citizen_tax_code: CITIZEN.into(),
                matricola: Some("4900123456".into()),
                office_aoo: "0040".into(),
                subject: "Videochiamata del 24/11".into(),
            },
        )
        .await
        .unwrap();
        CaseApi { api, case_id }
    }

    fn token(&self, principal: &Principal) -> String {
        self.keys
            .issue(principal, chrono::Duration::minutes(10))
            .unwrap()
    }

    async fn upload(
        &self,
        who: &Principal,
        files: &[(&str, &[u8])],
        conformity: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut form = Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                Part::bytes(bytes.to_vec())
                    .file_name(name.to_string())
                    .mime_str("application/pdf")
                    .unwrap(),
            );
        }
        if let Some(value) = conformity {
            form = form.text("conformity", value.to_owned());
        }
        let response = self
            .client
            .post(format!("{}/cases/{}/documents", self.base, self.case_id))
            .bearer_auth(self.token(who))
            .multipart(form)
            .send()
            .await
            .unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &Principal,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token(who));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn get_bytes(&self, path: &str, who: &Principal) -> (StatusCode, Vec<u8>) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token(who))
            .send()
            .await
            .unwrap();
        (response.status(), response.bytes().await.unwrap().to_vec())
    }

    async fn list(&self, who: &Principal) -> (StatusCode, Value) {
        self.call(
            reqwest::Method::GET,
            &format!("/cases/{}/documents", self.case_id),
            who,
            None,
        )
        .await
    }

    async fn stop(self) {
        self.api.stop().await;
    }
}

/// The refusal's technical English: `detail` for a citizen (whose `message`
/// is Italian), `message` for the office.
fn message(body: &Value) -> String {
    body["detail"]
        .as_str()
        .or(body["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[actix_rt::test]
async fn both_sides_of_the_case_see_the_documents_and_nobody_else() {
    let api = CaseApi::start().await;
    let (status, body) = api
        .upload(
            &citizen(CITIZEN),
            &[("carta identità.pdf", PDF), ("foto.png", PNG)],
            Some("true"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body[0]["file_name"], "carta identità.pdf");
    assert_eq!(body[0]["direction"], "from_citizen");
    assert_eq!(body[0]["state"], "uploaded");
    assert_eq!(body[0]["label"], Value::Null);
    assert_eq!(
        body[1]["media_type"], "image/png",
        "recognised by content, not the declared type"
    );
    let document = body[0]["id"].as_str().unwrap().to_owned();

    // The office answers with a document of its own ("Ricevuti" for the citizen).
    let (status, body) = api
        .upload(&operator("0040"), &[("esito.pdf", PDF)], None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body[0]["direction"], "to_citizen");

    for who in [citizen(CITIZEN), operator("0040")] {
        let (status, listed) = api.list(&who).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed.as_array().unwrap().len(), 3);
        let (status, bytes) = api
            .get_bytes(&format!("/documents/{document}/content"), &who)
            .await;
        assert_eq!((status, bytes.as_slice()), (StatusCode::OK, PDF));
    }
    // Which employee sent it is the office's to know.
    let from_office = |listed: &Value| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["direction"] == "to_citizen")
            .unwrap()["uploaded_by"]
            .clone()
    };
    let (_, listed) = api.list(&citizen(CITIZEN)).await;
    assert_eq!(from_office(&listed), json!({"kind": "operator"}));
    let (_, listed) = api.list(&operator("0040")).await;
    assert_eq!(from_office(&listed)["operator_id"], "E00400001");

    // Refused: another citizen, another office, an intermediary without delegation.
    for (who, why) in [
        (citizen(OTHER_CITIZEN), "not yours"),
        (operator("0041"), "another office"),
        (intermediary(), "no active delegation"),
    ] {
        let (status, body) = api.list(&who).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(message(&body).contains(why), "{body}");
        let (status, _) = api
            .get_bytes(&format!("/documents/{document}/content"), &who)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = api.upload(&who, &[("x.pdf", PDF)], Some("true")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // No token, or a forged one.
    let response = api
        .client
        .get(format!("{}/cases/{}/documents", api.base, api.case_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let forged = TokenKeys::new("not-the-key", &api.env.settings.jwt_issuer)
        .issue(&citizen(CITIZEN), chrono::Duration::minutes(5))
        .unwrap();
    let response = api
        .client
        .get(format!("{}/cases/{}/documents", api.base, api.case_id))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // With an active delegation the intermediary acts for the citizen; once
    // it is revoked, no longer.
    let now = Utc::now();
    let mut delegation = Delegation {
        citizen_tax_code: CITIZEN.into(),
        gestione: "aziende_uniemens".into(),
        matricola: None,
        valid_from: now - chrono::Duration::days(1),
        valid_to: now + chrono::Duration::days(30),
        revoked_at: None,
    };
    let id = store::insert_delegation(
        &mut api.env.pool.acquire().await.unwrap(),
        INTERMEDIARY,
        &delegation,
    )
    .await
    .unwrap();
    let (status, body) = api
        .upload(&intermediary(), &[("delega.pdf", PDF)], Some("true"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The citizen removes it: the answer says an intermediary uploaded it,
    // not which one.
    let uploaded = body[0]["id"].as_str().unwrap().to_owned();
    let (status, deleted) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/documents/{uploaded}"),
            &citizen(CITIZEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["uploaded_by"], json!({"kind": "intermediary"}));
    sqlx::query("UPDATE delegations SET revoked_at = now() WHERE id = $1")
        .bind(id)
        .execute(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(api.list(&intermediary()).await.0, StatusCode::FORBIDDEN);
    // A delegation for another position does not cover this case.
    delegation.matricola = Some("1111111111".into());
    store::insert_delegation(
        &mut api.env.pool.acquire().await.unwrap(),
        INTERMEDIARY,
        &delegation,
    )
    .await
    .unwrap();
    assert_eq!(api.list(&intermediary()).await.0, StatusCode::FORBIDDEN);
    api.stop().await;
}

#[actix_rt::test]
async fn each_upload_refusal_says_why_and_stores_nothing() {
    let api = CaseApi::start().await;
    let me = citizen(CITIZEN);
    let executable: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff";
    let (status, body) = api
        .upload(&me, &[("ricevuta.pdf", executable)], Some("true"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        message(&body).contains("not a PDF, P7M, JPEG or PNG"),
        "{body}"
    );

    let mut oversized = PDF.to_vec();
    oversized.resize(api.env.settings.document_max_bytes + 1, b' ');
    let (status, body) = api
        .upload(&me, &[("grande.pdf", &oversized)], Some("true"))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message(&body).contains("larger than"), "{body}");

    for conformity in [None, Some("false")] {
        let (status, body) = api.upload(&me, &[("carta.pdf", PDF)], conformity).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(message(&body).contains("conform"), "{body}");
    }

    let (status, body) = api
        .upload(&me, &[("../../etc/passwd.pdf", PDF)], Some("true"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(message(&body).contains("path"), "{body}");

    let (status, body) = api.upload(&me, &[], Some("true")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // One bad file refuses the whole upload.
    let (status, _) = api
        .upload(
            &me,
            &[("buono.pdf", PDF), ("cattivo.pdf", executable)],
            Some("true"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, body) = api
        .upload(&citizen(OTHER_CITIZEN), &[("carta.pdf", PDF)], Some("true"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (_, listed) = api.list(&me).await;
    assert_eq!(listed, json!([]));
    api.stop().await;
}

#[actix_rt::test]
async fn documents_are_registered_by_the_worker_and_illegal_transitions_are_refused() {
    let api = CaseApi::start().await;
    let workers = api
        .env
        .start(&[WorkerKind::Registration, WorkerKind::OutboxRelay]);
    let mut registered_events = api
        .env
        .probe("sportello.events", "documents.registered")
        .await;
    let me = citizen(CITIZEN);
    let office = operator("0040");
    let (_, body) = api
        .upload(
            &me,
            &[
                ("a.pdf", PDF),
                ("b.png", PNG),
                ("c.pdf", crate::support::fixtures::OTHER_PDF),
            ],
            Some("true"),
        )
        .await;
    let ids: Vec<String> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let registrations = format!("/cases/{}/registrations", api.case_id);
    let send = |who: &Principal, documents: &[&String]| {
        let body = json!({"document_ids": documents, "subject": "Documenti della videochiamata"});
        let who = who.clone();
        let api = &api;
        let path = registrations.clone();
        async move {
            api.call(reqwest::Method::POST, &path, &who, Some(body))
                .await
        }
    };

    // The citizen cannot send for registration; the operator can.
    let (status, body) = send(&me, &[&ids[0]]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The citizen deletes c.pdf while it is only uploaded.
    let (status, body) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/documents/{}", ids[2]),
            &me,
            None,
        )
        .await;
    assert_eq!(
        (
            status,
            body["label"]["text"].as_str(),
            body["label"]["colour"].as_str()
        ),
        (StatusCode::OK, Some("Eliminato"), Some("red")),
        "{body}"
    );
    // Deleting twice, or sending a deleted document, is illegal.
    let (status, body) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/documents/{}", ids[2]),
            &me,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        message(&body).contains("deleted cannot be deleted"),
        "{body}"
    );
    let (status, _) = send(&office, &[&ids[2]]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = api
        .get_bytes(&format!("/documents/{}/content", ids[2]), &me)
        .await;
    assert_eq!(status, StatusCode::GONE);

    let (status, body) = send(&office, &[&ids[0], &ids[1]]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let event = registered_events
        .next_json(Duration::from_secs(20))
        .await
        .expect("documents.registered");
    let signature = event["payload"]["signature"].as_str().unwrap().to_owned();
    assert!(
        signature.starts_with("INPS.0040.") && signature.ends_with(".0000001"),
        "{signature}"
    );
    let (_, listed) = api.list(&me).await;
    let states: Vec<(&str, Option<&str>)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["state"].as_str().unwrap(), d["label"]["text"].as_str()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("registered", Some("Protocollato")),
            ("registered", Some("Protocollato")),
            ("deleted", Some("Eliminato"))
        ]
    );

    // Registered documents can be neither deleted nor registered again.
    let (status, body) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/documents/{}", ids[0]),
            &me,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = send(&office, &[&ids[0]]).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Every transition is kept with who and when.
    let (_, history) = api
        .call(
            reqwest::Method::GET,
            &format!("/documents/{}/history", ids[0]),
            &me,
            None,
        )
        .await;
    let steps: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["to"].as_str().unwrap(),
                t["actor"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("uploaded", "citizen"),
            ("registration_in_progress", "operator"),
            ("registered", "system")
        ]
    );
    // The citizen side sees who by kind only; the office sees the employee.
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["actor"].as_object().is_some_and(|actor| actor.len() == 1)),
        "{history}"
    );
    let (_, office_history) = api
        .call(
            reqwest::Method::GET,
            &format!("/documents/{}/history", ids[0]),
            &office,
            None,
        )
        .await;
    assert!(
        office_history[1]["actor"]["operator_id"].is_string(),
        "{office_history}"
    );

    // The receipt: the citizen and the office may download it, nobody else.
    let registration = event["payload"]["registration_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let receipt = format!("/registrations/{registration}/receipt.pdf");
    let (status, pdf) = api.get_bytes(&receipt, &me).await;
    assert_eq!(status, StatusCode::OK);
    assert!(pdf.starts_with(b"%PDF-"));
    let text = String::from_utf8_lossy(&pdf);
    assert!(text.contains(&signature), "the receipt shows the signature");
    assert!(
        text.contains("a.pdf") && text.contains("b.png"),
        "and the files"
    );
    assert_eq!(api.get_bytes(&receipt, &office).await.0, StatusCode::OK);
    assert_eq!(
        api.get_bytes(&receipt, &citizen(OTHER_CITIZEN)).await.0,
        StatusCode::FORBIDDEN
    );

    // Annulment: refused to the citizen and to another office; recorded once.
    let annul = format!("/registrations/{registration}/annulment");
    let reason = json!({"reason": "documento illeggibile"});
    for who in [me.clone(), operator("0041")] {
        let (status, body) = api
            .call(reqwest::Method::POST, &annul, &who, Some(reason.clone()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &annul,
            &office,
            Some(json!({"reason": " "})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api
        .call(reqwest::Method::POST, &annul, &office, Some(reason.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api
        .call(reqwest::Method::POST, &annul, &office, Some(reason.clone()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, pdf) = api.get_bytes(&receipt, &me).await;
    assert!(String::from_utf8_lossy(&pdf).contains("ANNULLATA: documento illeggibile"));

    workers.shutdown(Duration::from_secs(10)).await;
    api.stop().await;
}

#[actix_rt::test]
async fn a_redelivered_registration_request_registers_once_and_a_bad_one_is_dead_lettered() {
    let api = CaseApi::start().await;
    let (_, body) = api
        .upload(&citizen(CITIZEN), &[("a.pdf", PDF)], Some("true"))
        .await;
    let id: Uuid = body[0]["id"].as_str().unwrap().parse().unwrap();
    // The request as the API writes it, taken from the outbox before any relay runs.
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            &format!("/cases/{}/registrations", api.case_id),
            &operator("0040"),
            Some(json!({"document_ids": [id], "subject": "Documenti"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let request: Vec<u8> = sqlx::query_scalar(
        "SELECT body FROM outbox WHERE message_type = 'documents.registration_requested'",
    )
    .fetch_one(&api.env.pool)
    .await
    .unwrap();

    // The relay publishes it, then (at-least-once) the same body arrives again.
    let workers = api
        .env
        .start(&[WorkerKind::Registration, WorkerKind::OutboxRelay]);
    let pool = api.env.pool.clone();
    let registered = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM registrations")
            .fetch_one(&pool)
            .await
            .unwrap()
            == 1
    };
    assert!(eventually(Duration::from_secs(20), registered).await);
    let mut dead = api.env.probe("sportello.dead-letter", "#").await;
    publish_as_app(
        &api.env,
        "sportello.events",
        "documents.registration_requested",
        &request,
    )
    .await;
    // A request naming a document that does not exist can never succeed.
    let mut bogus: Value = serde_json::from_slice(&request).unwrap();
    bogus["message_id"] = json!(Uuid::now_v7());
    bogus["payload"]["document_ids"] = json!([Uuid::now_v7()]);
    publish_as_app(
        &api.env,
        "sportello.events",
        "documents.registration_requested",
        &bytes(&bogus),
    )
    .await;
    let dead_lettered = dead
        .next(Duration::from_secs(20))
        .await
        .expect("the bogus request is dead-lettered");
    let reason = header(&dead_lettered, "x-sportello-reason").unwrap_or_default();
    assert!(reason.contains("not of its case"), "{reason}");

    let numbers: Vec<i64> = sqlx::query_scalar("SELECT number FROM registrations")
        .fetch_all(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(numbers, vec![1], "the redelivery registered nothing new");
    let transitions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM document_transitions WHERE document_id = $1")
            .bind(id)
            .fetch_one(&api.env.pool)
            .await
            .unwrap();
    assert_eq!(transitions, 3);
    workers.shutdown(Duration::from_secs(10)).await;
    api.stop().await;
}

/// Kills the worker processes however the test ends.
struct Processes(Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[actix_rt::test]
async fn four_registration_worker_processes_one_killed_mid_run_leave_no_gap() {
    const REQUESTS: usize = 300;
    let api = CaseApi::start().await;
    let office = operator("0040");
    // Documents uploaded and sent for registration one by one, as operators would.
    let now = Utc::now();
    let documents: Vec<store::Document> = (0..REQUESTS)
        .map(|i| store::Document {
            id: Uuid::now_v7(),
            case_id: api.case_id,
            direction: sportello::domain::document::Direction::ToCitizen,
            file_name: format!("esito-{i}.pdf"),
            media_type: "application/pdf".into(),
            size_bytes: PDF.len() as i64,
            sha256: sportello::documents::storage::sha256_hex(PDF),
            state: sportello::domain::document::DocumentState::Uploaded,
            conformity_asserted: false,
            uploaded_by: json!({"kind": "operator"}),
            uploaded_at: now,
            registration_id: None,
        })
        .collect();
    store::insert_documents(&mut api.env.pool.acquire().await.unwrap(), &documents)
        .await
        .unwrap();
    for document in &documents {
        sportello::documents::send_for_registration(
            &api.env.pool,
            &office,
            api.case_id,
            &[document.id],
            "Esito",
            None,
            "load",
        )
        .await
        .unwrap();
    }

    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sportello"))
            .args(["worker", "registration"])
            .env("AMQP_URL", api.env.user_url("sportello-app"))
            .env("DATABASE_URL", &api.env.settings.database_url)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut processes = Processes((0..4).map(|_| spawn()).collect());
    let relay = api.env.start(&[WorkerKind::OutboxRelay]);
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM registrations")
            .fetch_one(&api.env.pool)
            .await
            .unwrap_or(0)
    };
    assert!(
        eventually(Duration::from_secs(60), || async {
            count().await >= (REQUESTS / 4) as i64
        })
        .await
    );
    // SIGKILL: no graceful anything; its open transaction dies with its connection
    // and its unacked requests go back to the queue.
    let victim = &mut processes.0[0];
    victim.kill().unwrap();
    victim.wait().unwrap();
    let at_kill = count().await;
    eprintln!("killed one worker after {at_kill} of {REQUESTS} registrations");
    assert!(at_kill < REQUESTS as i64, "the kill happened mid-run");
    assert!(
        eventually(Duration::from_secs(120), || async {
            count().await == REQUESTS as i64
        })
        .await,
        "every request registered by the survivors"
    );
    let numbers: Vec<i64> = sqlx::query_scalar("SELECT number FROM registrations ORDER BY number")
        .fetch_all(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(
        numbers,
        (1..=REQUESTS as i64).collect::<Vec<_>>(),
        "unique, increasing, gapless"
    );
    let in_progress: i64 =
        sqlx::query_scalar("SELECT count(*) FROM documents WHERE state <> 'registered'")
            .fetch_one(&api.env.pool)
            .await
            .unwrap();
    assert_eq!(in_progress, 0);
    drop(processes);
    relay.shutdown(Duration::from_secs(10)).await;
    api.stop().await;
}
