//! Back-office tickets end to end: requests registered and routed (rules,
//! triage, attachments), intermediaries' delegations, who sees what over the
//! API (each refusal), the lifecycle with its history and events, search.

use std::time::Duration;

use crate::support::*;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sportello::auth::TokenKeys;
use sportello::broker::names::{DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE};
use sportello::contract::{CodiceFiscale, Principal};
use sportello::domain::access::Delegation;
use sportello::store::documents as documents_store;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);
const CITIZEN: &str = "RSSMRA85T10A562S";
const OTHER_CITIZEN: &str = "BNCGVN70A41F205O";
const INTERMEDIARY: &str = "FRRLCU75C41D969A";
const PDF: &[u8] = crate::support::fixtures::PDF;

fn agent() -> Principal {
    Principal::ContactCenterAgent {
        agent_id: "CC-0042".into(),
        on_behalf_of: CodiceFiscale::parse(CITIZEN).unwrap(),
        identified_by: None,
        pin_verification_id: None,
    }
}

fn crema() -> Value {
    json!({"province": "CR", "municipality": "Crema"})
}

/// Tickets' helpers on the shared test API.
trait TicketsApi {
    async fn submit(&self, request: &Value) -> Uuid;
    async fn ids(&self, query: &str, who: &Principal) -> Vec<String>;
}

impl TicketsApi for Api {
    async fn submit(&self, request: &Value) -> Uuid {
        submit_and_wait(&self.env, request).await
    }

    async fn ids(&self, query: &str, who: &Principal) -> Vec<String> {
        let (status, page) = self.get(&format!("/tickets{query}"), who).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[actix_rt::test]
async fn requests_are_registered_and_routed_to_the_competent_office_or_triage() {
    let api = Api::start().await;
    let mut opened = api.env.probe(EVENTS_EXCHANGE, "ticket.opened").await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;

    let mut with_attachment = request_v2(
        citizen_json(CITIZEN),
        "k1",
        "uniemens",
        "4901234567",
        "Denuncia di marzo",
        crema(),
    );
    with_attachment["payload"]["attachments"] = json!([{
        "file_name": "quietanza.pdf",
        "content_base64": base64::engine::general_purpose::STANDARD.encode(PDF)
    }]);
    let crema_ticket = api.submit(&with_attachment).await;
    let milano_nord = api
        .submit(&request_v2(
            citizen_json(CITIZEN),
            "k2",
            "pensioni",
            "4901234567",
            "Pensione",
            json!({"province": "MI", "municipality": "Milano", "postal_code": "20125"}),
        ))
        .await;
    let unrouted = api
        .submit(&request_v2(
            citizen_json(CITIZEN),
            "k3",
            "versamenti",
            "4901234567",
            "F24",
            json!({"province": "MI", "municipality": "Milano", "postal_code": "20121"}),
        ))
        .await;
    let v1 = api.submit(&request("cassetto", "idempotency-k4")).await;

    let row = |id: Uuid| {
        let pool = api.env.pool.clone();
        async move {
            sqlx::query_as::<_, (String, Option<String>, String, Option<String>, String, String)>(
                "SELECT t.office_aoo, t.desk_kind, t.routed_by, t.routing_note, t.subject, r.signature
                 FROM tickets t JOIN registrations r ON r.id = t.registration_id WHERE t.id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (office, desk, routed_by, note, subject, signature) = row(crema_ticket).await;
    assert_eq!(
        (office.as_str(), desk.as_deref(), routed_by.as_str(), note),
        ("1901", Some("aziende"), "rule", None)
    );
    assert_eq!(
        subject, "UniEmens - Denuncia di marzo",
        "the subject carries the ambito"
    );
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Rome)
        .format("%d/%m/%Y");
    assert_eq!(signature, format!("INPS.1901.{today}.0000001"));
    let (_, detail) = api
        .get(&format!("/tickets/{crema_ticket}"), &citizen(CITIZEN))
        .await;
    assert_eq!(
        detail["attachments"][0]["uploaded_by"],
        json!({"kind": "citizen"}),
        "who uploaded, by kind only: {detail}"
    );
    let (_, detail) = api
        .get(&format!("/tickets/{crema_ticket}"), &operator("1901"))
        .await;
    assert_eq!(detail["attachments"][0]["uploaded_by"]["tax_code"], CITIZEN);
    let (office, desk, ..) = row(milano_nord).await;
    assert_eq!(
        (office.as_str(), desk.as_deref()),
        ("4902", Some("pensioni"))
    );
    for id in [unrouted, v1] {
        let (office, _, routed_by, note, ..) = row(id).await;
        assert_eq!((office.as_str(), routed_by.as_str()), ("0001", "triage"));
        assert!(note.is_some(), "triage says why");
    }

    // The attachment: a registered document of the ticket, stored compressed,
    // listed in the registration with its digest.
    let documents = documents_store::documents_of_case(
        &mut api.env.pool.acquire().await.unwrap(),
        crema_ticket,
    )
    .await
    .unwrap();
    assert_eq!(documents.len(), 1);
    assert_eq!(
        (
            documents[0].file_name.as_str(),
            documents[0].media_type.as_str()
        ),
        ("quietanza.pdf", "application/pdf")
    );
    assert_eq!(documents[0].state.as_str(), "registered");
    let digest = &documents[0].sha256;
    let stored = std::path::Path::new(&api.env.settings.document_store_dir)
        .join(&digest[..2])
        .join(format!("{digest}.gz"));
    assert_eq!(&std::fs::read(stored).unwrap()[..2], &[0x1f, 0x8b]);
    let files: Value = sqlx::query_scalar("SELECT r.files FROM registrations r JOIN tickets t ON t.registration_id = r.id WHERE t.id = $1")
        .bind(crema_ticket)
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(files[0]["sha256"], json!(digest));

    // ticket.opened v2 carries registration and routing.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = opened.next_json(WAIT).await.expect("ticket.opened");
        assert_eq!(event["schema_version"], 2);
        seen.push(event);
    }
    let event = seen
        .iter()
        .find(|e| e["payload"]["ticket_id"] == json!(crema_ticket))
        .unwrap();
    assert_eq!(event["payload"]["signature"], json!(signature));
    assert_eq!(event["payload"]["office_aoo"], "1901");
    assert_eq!(event["payload"]["attachments"], 1);

    // An attachment that is not what its name says is refused with the reason.
    let mut disguised = request_v2(
        citizen_json(CITIZEN),
        "k5",
        "uniemens",
        "4901234567",
        "Foto",
        crema(),
    );
    disguised["payload"]["attachments"] = json!([{
        "file_name": "documento.pdf",
        "content_base64": base64::engine::general_purpose::STANDARD.encode(b"MZ\x90\x00 an executable")
    }]);
    api.env
        .publish("cassetto", "cassetto.request.submitted", &bytes(&disguised))
        .await
        .unwrap();
    let letter = dead.next(WAIT).await.expect("dead letter");
    let reason = header(&letter, "x-sportello-reason").unwrap_or_default();
    assert!(reason.contains("not a PDF, P7M, JPEG or PNG"), "{reason}");
    api.stop().await;
}

#[actix_rt::test]
async fn an_intermediary_opens_a_request_only_under_an_active_delegation() {
    let api = Api::start().await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let principal = json!({"kind": "intermediary", "tax_code": INTERMEDIARY, "authentication": {"method": "CNS"}});
    let request = request_v2(principal, "i1", "uniemens", "4907654321", "Delega", crema());
    api.env
        .publish("cassetto", "cassetto.request.submitted", &bytes(&request))
        .await
        .unwrap();
    let letter = dead.next(WAIT).await.expect("dead letter");
    let reason = header(&letter, "x-sportello-reason").unwrap_or_default();
    assert!(reason.contains("no active delegation"), "{reason}");
    assert_eq!(api.env.ticket_count().await, 0);

    // With a delegation the same message is accepted: the refusal left no inbox row.
    let now = chrono::Utc::now();
    documents_store::insert_delegation(
        &mut api.env.pool.acquire().await.unwrap(),
        INTERMEDIARY,
        &Delegation {
            citizen_tax_code: OTHER_CITIZEN.into(),
            gestione: "aziende_uniemens".into(),
            matricola: Some("4907654321".into()),
            valid_from: now - chrono::Duration::days(1),
            valid_to: now + chrono::Duration::days(30),
            revoked_at: None,
        },
    )
    .await
    .unwrap();
    let ticket = api.submit(&request).await;
    let subject: String = sqlx::query_scalar("SELECT subject_tax_code FROM tickets WHERE id = $1")
        .bind(ticket)
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(
        subject, OTHER_CITIZEN,
        "the ticket is the delegating citizen's"
    );

    // Revoked afterwards: a redelivery of the applied message is a duplicate
    // (acknowledged, nothing dead-lettered), a new request is refused.
    sqlx::query("UPDATE delegations SET revoked_at = now() WHERE intermediary_tax_code = $1")
        .bind(INTERMEDIARY)
        .execute(&api.env.pool)
        .await
        .unwrap();
    api.env
        .publish("cassetto", "cassetto.request.submitted", &bytes(&request))
        .await
        .unwrap();
    let principal = json!({"kind": "intermediary", "tax_code": INTERMEDIARY, "authentication": {"method": "CNS"}});
    let after = request_v2(principal, "i2", "uniemens", "4907654321", "Dopo", crema());
    api.env
        .publish("cassetto", "cassetto.request.submitted", &bytes(&after))
        .await
        .unwrap();
    let letter = dead
        .next(WAIT)
        .await
        .expect("the new request is dead-lettered");
    let body: serde_json::Value = serde_json::from_slice(&letter.data).unwrap();
    assert_eq!(
        body["idempotency_key"], after["idempotency_key"],
        "only the new request"
    );
    assert!(dead.next(Duration::from_millis(500)).await.is_none());
    assert_eq!(api.env.ticket_count().await, 1);
    api.stop().await;
}

#[actix_rt::test]
async fn each_principal_sees_only_what_it_may_and_every_other_access_is_refused() {
    let api = Api::start().await;
    let mine = api
        .submit(&request_v2(
            citizen_json(CITIZEN),
            "a1",
            "uniemens",
            "4901234567",
            "Mia",
            crema(),
        ))
        .await;
    let theirs = api
        .submit(&request_v2(
            citizen_json(OTHER_CITIZEN),
            "b1",
            "uniemens",
            "4907777777",
            "Altrui",
            json!({"province": "CR", "municipality": "Cremona"}),
        ))
        .await;
    let (mine_s, theirs_s) = (mine.to_string(), theirs.to_string());

    // Citizens: their own only.
    assert_eq!(api.ids("", &citizen(CITIZEN)).await, vec![mine_s.clone()]);
    assert_eq!(
        api.get(&format!("/tickets/{mine}"), &citizen(CITIZEN))
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = api
        .get(&format!("/tickets/{theirs}"), &citizen(CITIZEN))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    // Operators: their office's only (1901 Crema, 1900 Cremona).
    assert_eq!(api.ids("", &operator("1901")).await, vec![mine_s.clone()]);
    assert_eq!(api.ids("", &operator("1900")).await, vec![theirs_s.clone()]);
    assert_eq!(
        api.get(&format!("/tickets/{mine}"), &operator("1900"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = api
        .post(
            &format!("/tickets/{mine}/take-in-charge"),
            &operator("1900"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another office cannot act");

    // Intermediaries: only positions under an active delegation.
    assert!(api.ids("", &intermediary()).await.is_empty());
    assert_eq!(
        api.get(&format!("/tickets/{mine}"), &intermediary())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let now = chrono::Utc::now();
    let delegation = |matricola: &str, from: i64, to: i64| Delegation {
        citizen_tax_code: CITIZEN.into(),
        gestione: "aziende_uniemens".into(),
        matricola: Some(matricola.into()),
        valid_from: now + chrono::Duration::days(from),
        valid_to: now + chrono::Duration::days(to),
        revoked_at: None,
    };
    let mut conn = api.env.pool.acquire().await.unwrap();
    documents_store::insert_delegation(&mut conn, INTERMEDIARY, &delegation("4901234567", -10, -1))
        .await
        .unwrap();
    documents_store::insert_delegation(&mut conn, INTERMEDIARY, &delegation("4909999999", -1, 10))
        .await
        .unwrap();
    assert!(
        api.ids("", &intermediary()).await.is_empty(),
        "expired or other position"
    );
    assert_eq!(
        api.get(&format!("/tickets/{mine}"), &intermediary())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let active = documents_store::insert_delegation(
        &mut conn,
        INTERMEDIARY,
        &delegation("4901234567", -1, 10),
    )
    .await
    .unwrap();
    assert_eq!(api.ids("", &intermediary()).await, vec![mine_s.clone()]);
    let (status, seen) = api.get(&format!("/tickets/{mine}"), &intermediary()).await;
    assert_eq!(status, StatusCode::OK);
    // The citizen's contact stays with the citizen and the office; internal
    // routing and tracing stay with the office.
    for hidden in [
        "contact_email",
        "contact_phone",
        "correlation_id",
        "routed_by",
    ] {
        assert!(
            seen[hidden].is_null(),
            "{hidden} shown to an intermediary: {seen}"
        );
    }
    let (_, own) = api
        .get(&format!("/tickets/{mine}"), &citizen(CITIZEN))
        .await;
    assert_eq!(own["contact_email"], "mario.rossi@example.it");
    assert!(
        own["correlation_id"].is_null() && own["routed_by"].is_null(),
        "{own}"
    );
    let (_, staff) = api
        .get(&format!("/tickets/{mine}"), &operator("1901"))
        .await;
    assert_eq!(staff["contact_email"], "mario.rossi@example.it");
    assert_eq!(staff["routed_by"], "rule");
    assert_eq!(staff["correlation_id"], "corr-a1");
    assert_eq!(
        api.get(&format!("/tickets/{theirs}"), &intermediary())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    sqlx::query("UPDATE delegations SET revoked_at = now() WHERE id = $1")
        .bind(active)
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(api.ids("", &intermediary()).await.is_empty(), "revoked");
    assert_eq!(
        api.get(&format!("/tickets/{mine}"), &intermediary())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    drop(conn);

    // Agents, citizens acting, anonymous and forged callers.
    assert_eq!(api.get("/tickets", &agent()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        api.get(&format!("/tickets/{mine}"), &agent()).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = api
        .post(
            &format!("/tickets/{mine}/take-in-charge"),
            &citizen(CITIZEN),
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "citizens do not take tickets in charge"
    );
    assert_eq!(
        api.call(Method::GET, "/tickets", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let forged = TokenKeys::new("not-the-secret", &api.env.settings.jwt_issuer)
        .issue(&operator("1901"), chrono::Duration::minutes(5))
        .unwrap();
    let status = api
        .client
        .get(format!("{}/tickets", api.base))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.get(&format!("/tickets/{}", Uuid::now_v7()), &citizen(CITIZEN))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    api.stop().await;
}

#[actix_rt::test]
async fn the_lifecycle_is_kept_in_the_history_and_emitted_as_events() {
    let api = Api::start().await;
    let mut changed = api.env.probe(EVENTS_EXCHANGE, "ticket.changed.#").await;
    let id = api
        .submit(&request_v2(
            citizen_json(CITIZEN),
            "l1",
            "uniemens",
            "4901234567",
            "Ciclo",
            crema(),
        ))
        .await;
    let op = operator("1901");
    let path = |action: &str| format!("/tickets/{id}/{action}");

    // Closing before taking in charge is illegal.
    let (status, body) = api
        .post(
            &path("close"),
            &op,
            json!({"outcome": "evasa", "comment": "Fatto"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("illegal_transition"))
    );

    let (status, body) = api
        .post(
            &path("take-in-charge"),
            &op,
            json!({"comment": "Presa in carico"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ticket"]["state"], "in_carico");
    let (_, seen) = api.get("/tickets", &citizen(CITIZEN)).await;
    assert_eq!(seen["tickets"][0]["id"], json!(id));
    assert_eq!(
        seen["tickets"][0]["assigned_operator"],
        Value::Null,
        "which employee is staff-only: {seen}"
    );
    let (_, staff_view) = api.get("/tickets", &op).await;
    assert_eq!(staff_view["tickets"][0]["assigned_operator"], "E19010001");
    assert_eq!(
        api.post(&path("take-in-charge"), &op, json!({})).await.0,
        StatusCode::CONFLICT,
        "twice"
    );

    // The same action key twice is applied once.
    let note = || {
        api.client
            .post(format!("{}{}", api.base, path("comments")))
            .bearer_auth(api.keys.issue(&op, chrono::Duration::minutes(5)).unwrap())
            .header("Idempotency-Key", "form-123")
            .json(&json!({"text": "Verificare il versamento", "visibility": "internal"}))
            .send()
    };
    let first: Value = note().await.unwrap().json().await.unwrap();
    let second: Value = note().await.unwrap().json().await.unwrap();
    assert_eq!(
        (first["outcome"].as_str(), second["outcome"].as_str()),
        (Some("applied"), Some("already_applied"))
    );
    // The same key for another action, or by another operator, is refused.
    let reuse = |who: Principal, action: &'static str, body: Value| {
        api.client
            .post(format!("{}{}", api.base, path(action)))
            .bearer_auth(api.keys.issue(&who, chrono::Duration::minutes(5)).unwrap())
            .header("Idempotency-Key", "form-123")
            .json(&body)
            .send()
    };
    let other_action = reuse(
        op.clone(),
        "close",
        json!({"outcome": "evasa", "comment": "x"}),
    )
    .await
    .unwrap();
    assert_eq!(other_action.status(), StatusCode::BAD_REQUEST);
    let colleague = Principal::Operator {
        operator_id: "E19010002".into(),
        office: "1901".into(),
        on_behalf_of: None,
    };
    let other_operator = reuse(
        colleague,
        "comments",
        json!({"text": "Verificare il versamento", "visibility": "internal"}),
    )
    .await
    .unwrap();
    assert_eq!(other_operator.status(), StatusCode::BAD_REQUEST);
    let (status, body) = api
        .post(
            &path("comments"),
            &op,
            json!({"text": "  ", "visibility": "public"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = api
        .post(
            &path("comments"),
            &op,
            json!({"text": "x", "visibility": "segreta"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .post(
            &path("close"),
            &op,
            json!({"outcome": "forse", "comment": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = api
        .post(
            &path("close"),
            &op,
            json!({"outcome": "evasa", "comment": "Versamento abbinato"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["ticket"]["state"].as_str(),
            body["ticket"]["outcome"].as_str()
        ),
        (Some("chiusa"), Some("evasa"))
    );
    let (status, _) = api
        .post(
            &path("comments"),
            &op,
            json!({"text": "dopo", "visibility": "public"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a closed ticket takes no comments"
    );

    // Staff see every entry; the citizen the public ones, without who did it.
    let (_, staff) = api.get(&format!("/tickets/{id}"), &op).await;
    let kinds: Vec<&str> = staff["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "taken_in_charge", "commented", "closed"]);
    let (_, mine) = api.get(&format!("/tickets/{id}"), &citizen(CITIZEN)).await;
    let history = mine["history"].as_array().unwrap();
    assert_eq!(history.len(), 3, "no internal note: {mine}");
    assert!(history
        .iter()
        .all(|h| h["actor"].get("operator_id").is_none()));
    assert_eq!(
        mine["state"], "chiusa",
        "the citizen sees the back-office state"
    );

    // Events: one per change, internal notes without their text.
    let mut events = Vec::new();
    while events.len() < 3 {
        events.push(changed.next_json(WAIT).await.expect("ticket.changed"));
    }
    let changes: Vec<&str> = events
        .iter()
        .map(|e| e["payload"]["change"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["taken_in_charge", "commented", "closed"]);
    assert_eq!(events[1]["payload"]["comment"], Value::Null);
    assert_eq!(events[2]["payload"]["outcome"], "evasa");
    assert!(
        changed.next(Duration::from_millis(500)).await.is_none(),
        "the repeated note emitted nothing"
    );
    api.stop().await;
}

#[actix_rt::test]
async fn reassignment_moves_a_ticket_to_another_office() {
    let api = Api::start().await;
    let id = api
        .submit(&request_v2(
            citizen_json(CITIZEN),
            "r1",
            "uniemens",
            "4901234567",
            "Triage",
            json!({"province": "ZZ"}),
        ))
        .await;
    let triage = operator("0001");
    let (status, body) = api
        .post(
            &format!("/tickets/{id}/reassign"),
            &triage,
            json!({"office": "9999", "reason": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_office"))
    );
    let reassign = || {
        api.client
            .post(format!("{}/tickets/{id}/reassign", api.base))
            .bearer_auth(
                api.keys
                    .issue(&triage, chrono::Duration::minutes(5))
                    .unwrap(),
            )
            .header("Idempotency-Key", "reassign-1")
            .json(&json!({"office": "1900", "reason": "Residente a Cremona"}))
            .send()
    };
    let response = reassign().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ticket"], Value::Null, "triage no longer sees it");
    // Resent (the answer was lost): a repeat, not a refusal from the new office.
    let again: Value = reassign().await.unwrap().json().await.unwrap();
    assert_eq!(again["outcome"], "already_applied", "{again}");
    assert_eq!(
        api.get(&format!("/tickets/{id}"), &triage).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, ticket) = api.get(&format!("/tickets/{id}"), &operator("1900")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (ticket["office_aoo"].as_str(), ticket["desk_kind"].as_str()),
        (Some("1900"), Some("aziende"))
    );
    assert_eq!(ticket["routed_by"], "reassigned");
    let last = ticket["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (
            last["kind"].as_str(),
            last["from_office"].as_str(),
            last["to_office"].as_str()
        ),
        (Some("reassigned"), Some("0001"), Some("1900"))
    );
    api.stop().await;
}

#[actix_rt::test]
async fn history_search_filters_and_pages() {
    let api = Api::start().await;
    let mut ids = Vec::new();
    for (key, matricola, subject) in [
        ("s1", "4901111111", "Denuncia mensile di marzo"),
        ("s2", "4901111111", "Versamento F24 non abbinato"),
        ("s3", "4902222222", "Certificato di regolarità"),
    ] {
        ids.push(
            api.submit(&request_v2(
                citizen_json(CITIZEN),
                key,
                "uniemens",
                matricola,
                subject,
                crema(),
            ))
            .await
            .to_string(),
        );
    }
    let me = citizen(CITIZEN);
    let mut by_matricola = api.ids("?matricola=4901111111", &me).await;
    by_matricola.sort();
    assert_eq!(by_matricola, vec![ids[0].clone(), ids[1].clone()]);
    assert_eq!(
        api.ids("?q=versamento", &me).await,
        vec![ids[1].clone()],
        "Italian stemming: versamento ~ Versamento"
    );
    assert_eq!(
        api.ids("?q=denunce", &me).await,
        vec![ids[0].clone()],
        "plural finds singular"
    );
    let (status, _) = api
        .post(
            &format!("/tickets/{}/take-in-charge", ids[2]),
            &operator("1901"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.ids("?state=in_carico", &me).await, vec![ids[2].clone()]);
    assert_eq!(api.ids("?state=aperta", &me).await.len(), 2);
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Rome)
        .date_naive();
    let tomorrow = today.succ_opt().unwrap();
    assert_eq!(
        api.ids(&format!("?opened_from={today}&opened_to={today}"), &me)
            .await
            .len(),
        3
    );
    assert!(api
        .ids(&format!("?opened_from={tomorrow}"), &me)
        .await
        .is_empty());
    assert_eq!(
        api.ids(&format!("?updated_from={today}&state=in_carico"), &me)
            .await,
        vec![ids[2].clone()]
    );

    // Last updated first, two per page.
    let (_, first) = api.get("/tickets?per_page=2", &me).await;
    assert_eq!(first["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["tickets"][0]["id"], json!(ids[2]));
    let (_, second) = api.get("/tickets?per_page=2&page=2", &me).await;
    assert_eq!(
        (
            second["tickets"].as_array().unwrap().len(),
            second["has_more"].as_bool()
        ),
        (1, Some(false))
    );

    for bad in [
        "?state=persa",
        "?opened_from=29-02-2026",
        "?opened_from=-5000-01-01",
        &format!("?q={}", "parola+".repeat(40)),
        "?updated_to=99999-01-01T00:00:00Z",
        "?per_page=500",
        "?page=0",
        "?page=abc",
    ] {
        let (status, body) = api.get(&format!("/tickets{bad}"), &me).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    api.stop().await;
}

/// A `request.message_added` by `principal` (JSON) on `ticket`.
fn message_added(principal: Value, key: &str, ticket: Uuid, text: &str) -> Value {
    json!({
        "message_id": Uuid::now_v7(),
        "type": "request.message_added",
        "schema_version": 1,
        "channel": "cassetto",
        "occurred_at": chrono::Utc::now(),
        "correlation_id": format!("corr-{key}"),
        "idempotency_key": format!("idempotency-{key}"),
        "principal": principal,
        "payload": {"ticket_id": ticket, "text": text}
    })
}

#[actix_rt::test]
async fn the_citizens_side_writes_on_open_tickets_and_every_other_writer_is_refused() {
    let api = Api::start().await;
    let mut added = api.env.probe(EVENTS_EXCHANGE, "ticket.message_added").await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let ticket = api
        .submit(&request_v2(
            citizen_json(CITIZEN),
            "w1",
            "uniemens",
            "4901234567",
            "Denuncia di aprile",
            crema(),
        ))
        .await;
    let publish = |message: Value| {
        let env = &api.env;
        async move {
            env.publish(
                "cassetto",
                "cassetto.request.message_added",
                &bytes(&message),
            )
            .await
            .unwrap()
        }
    };
    let history = |who: Principal| {
        let api = &api;
        async move {
            let (status, detail) = api.get(&format!("/tickets/{ticket}"), &who).await;
            assert_eq!(status, StatusCode::OK, "{detail}");
            detail["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|entry| entry["kind"] == "citizen_message")
                .map(|entry| entry["comment"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };

    // The citizen writes; a redelivery changes nothing.
    let reply = message_added(
        citizen_json(CITIZEN),
        "m1",
        ticket,
        "Allego la quietanza 0012345678.",
    );
    publish(reply.clone()).await;
    let event = added.next_json(WAIT).await.expect("ticket.message_added");
    sportello::contract::schemas::catalogue()
        .validate(&event)
        .unwrap();
    assert_eq!(event["payload"]["ticket_id"], ticket.to_string());
    assert_eq!(event["payload"]["author"], "citizen");
    assert_eq!(event["payload"]["office_aoo"], "1901");
    assert!(
        event["payload"].get("text").is_none(),
        "the text stays in the ticket"
    );
    publish(reply).await;

    // Refused, each with its reason: another citizen, an intermediary without
    // a delegation, a ticket that does not exist; an agent's channel at admission.
    let refusals = [
        (
            message_added(citizen_json(OTHER_CITIZEN), "x1", ticket, "Non mio"),
            "not yours",
        ),
        (
            message_added(
                json!({"kind": "intermediary", "tax_code": INTERMEDIARY, "authentication": {"method": "CNS"}}),
                "x2",
                ticket,
                "Senza delega",
            ),
            "no active delegation",
        ),
        (
            message_added(
                citizen_json(CITIZEN),
                "x3",
                Uuid::now_v7(),
                "Quale quesito?",
            ),
            "not found",
        ),
    ];
    for (message, reason) in &refusals {
        publish(message.clone()).await;
        let letter = dead.next(WAIT).await.expect("dead letter");
        let why = header(&letter, "x-sportello-reason").unwrap_or_default();
        assert!(why.contains(reason), "{why}");
    }
    let mut agent_message = message_added(
        json!({"kind": "contact_center_agent", "agent_id": "CC-0042", "on_behalf_of": CITIZEN}),
        "x4",
        ticket,
        "Dal contact center",
    );
    agent_message["channel"] = json!("contact_center");
    api.env
        .publish(
            "contact_center",
            "contact_center.request.message_added",
            &bytes(&agent_message),
        )
        .await
        .unwrap();
    let letter = dead.next(WAIT).await.expect("dead letter");
    let why = header(&letter, "x-sportello-reason").unwrap_or_default();
    assert!(
        why.contains("may not publish request.message_added"),
        "{why}"
    );

    // Both sides read the conversation; once, despite the redelivery.
    assert_eq!(
        history(citizen(CITIZEN)).await,
        ["Allego la quietanza 0012345678."]
    );
    assert_eq!(
        history(operator("1901")).await,
        ["Allego la quietanza 0012345678."]
    );

    // An intermediary with a delegation for the position writes, with a file:
    // a document of the ticket, uploaded, for the office to register.
    let now = chrono::Utc::now();
    documents_store::insert_delegation(
        &mut api.env.pool.acquire().await.unwrap(),
        INTERMEDIARY,
        &Delegation {
            citizen_tax_code: CITIZEN.into(),
            gestione: "aziende_uniemens".into(),
            matricola: Some("4901234567".into()),
            valid_from: now - chrono::Duration::days(1),
            valid_to: now + chrono::Duration::days(30),
            revoked_at: None,
        },
    )
    .await
    .unwrap();
    let mut with_file = message_added(
        json!({"kind": "intermediary", "tax_code": INTERMEDIARY, "authentication": {"method": "CNS"}}),
        "m3",
        ticket,
        "Trasmetto la ricevuta.",
    );
    with_file["payload"]["attachments"] = json!([{
        "file_name": "ricevuta.pdf",
        "content_base64": base64::engine::general_purpose::STANDARD.encode(PDF)
    }]);
    publish(with_file.clone()).await;
    let event = added.next_json(WAIT).await.expect("ticket.message_added");
    assert_eq!(
        (
            &event["payload"]["author"],
            &event["payload"]["attachments"]
        ),
        (&json!("intermediary"), &json!(1))
    );
    let (status, documents) = api
        .get(&format!("/cases/{ticket}/documents"), &citizen(CITIZEN))
        .await;
    assert_eq!(status, StatusCode::OK, "{documents}");
    let file = documents
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["file_name"] == "ricevuta.pdf")
        .expect("the message's file");
    assert_eq!(file["state"], "uploaded");

    // Redelivered after the inbox forgot it: still kept once.
    sqlx::query("DELETE FROM inbox")
        .execute(&api.env.pool)
        .await
        .unwrap();
    publish(with_file).await;
    assert!(
        added.next(Duration::from_millis(1500)).await.is_none(),
        "kept once"
    );
    assert_eq!(history(operator("1901")).await.len(), 2);

    // A closed ticket takes no more messages.
    let op = operator("1901");
    api.post(&format!("/tickets/{ticket}/take-in-charge"), &op, json!({}))
        .await;
    let (status, body) = api
        .post(
            &format!("/tickets/{ticket}/close"),
            &op,
            json!({"outcome": "evasa", "comment": "Abbinato"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    publish(message_added(citizen_json(CITIZEN), "m2", ticket, "Grazie")).await;
    let letter = dead.next(WAIT).await.expect("dead letter");
    let why = header(&letter, "x-sportello-reason").unwrap_or_default();
    assert!(why.contains("closed"), "{why}");
    assert_eq!(history(citizen(CITIZEN)).await.len(), 2);
    api.stop().await;
}
