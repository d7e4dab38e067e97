//! `GET /submissions`: a channel (and the citizen concerned) learns what
//! became of each message it published: queued, applied with its ticket, a
//! duplicate of an earlier one, or refused with a stable code and an
//! Italian sentence; and nobody else learns anything.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::api::Api;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);
const CITIZEN: &str = "RSSMRA85T10A562S";
const CALLER: &str = "BNCGVN70A41F205O";

fn message_id(message: &Value) -> Uuid {
    message["message_id"].as_str().unwrap().parse().unwrap()
}

async fn publish(api: &Api, channel: &str, message: &Value) {
    let routing_key = format!("{channel}.{}", message["type"].as_str().unwrap());
    api.env
        .publish(channel, &routing_key, &bytes(message))
        .await
        .unwrap();
}

/// The fate of `id` as `who` sees it, once it is no longer `queued`.
async fn settled(api: &Api, id: Uuid, who: &sportello::contract::Principal) -> Value {
    let path = format!("/submissions?message_id={id}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, fate) = api.get(&path, who).await;
        assert_eq!(status, StatusCode::OK, "{fate}");
        if fate["state"] != "queued" {
            return fate;
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} still queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_refused(fate: &Value, code: &str) {
    assert_eq!(fate["state"], "refused", "{fate}");
    assert_eq!(fate["refusal"]["code"], code, "{fate}");
    let italian = sportello::domain::refusal::Code::parse(code)
        .unwrap()
        .italian();
    assert_eq!(fate["refusal"]["message"], italian, "{fate}");
    // The code's own sentence (`domain::refusal` checks each is Italian).
    assert!(
        !italian.contains(" the ") && !italian.contains(" not "),
        "{italian}"
    );
    assert!(!fate["refusal"]["reason"].as_str().unwrap().is_empty());
}

#[actix_rt::test]
async fn a_request_is_queued_then_applied_and_its_resend_is_named_a_duplicate() {
    let api = Api::start().await;
    let me = citizen(CITIZEN);
    let never = Uuid::now_v7();
    let (status, fate) = api
        .get(&format!("/submissions?message_id={never}"), &me)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fate, json!({"message_id": never, "state": "queued"}));

    let first = request("web", "fate-first");
    publish(&api, "web", &first).await;
    let fate = settled(&api, message_id(&first), &me).await;
    assert_eq!(fate["state"], "applied", "{fate}");
    let ticket: Uuid = sqlx::query_scalar("SELECT id FROM tickets WHERE request_message_id = $1")
        .bind(message_id(&first))
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(fate["ticket_id"], json!(ticket));
    assert!(
        fate["signature"].as_str().unwrap().starts_with("INPS."),
        "{fate}"
    );

    // The F5: the same content and key under a new message id.
    let mut again = first.clone();
    again["message_id"] = json!(Uuid::now_v7());
    publish(&api, "web", &again).await;
    let fate = settled(&api, message_id(&again), &me).await;
    assert_eq!(fate["state"], "duplicate_of", "{fate}");
    assert_eq!(fate["duplicate_of"], json!(message_id(&first)));

    // By the key, the one applied.
    let (status, fate) = api
        .get(
            "/submissions?type=request.submitted&idempotency_key=fate-first",
            &me,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (fate["state"].as_str(), &fate["message_id"]),
        (Some("applied"), &json!(message_id(&first)))
    );

    // Nobody else: another citizen, an operator, an intermediary. The key
    // is the caller's own, so another's finds nothing of it.
    for outsider in [citizen(CALLER), operator("1901"), intermediary()] {
        let (status, body) = api
            .get(
                &format!("/submissions?message_id={}", message_id(&first)),
                &outsider,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{outsider:?}: {body}");
        assert_eq!(body["error"], "not_found");
        let (status, fate) = api
            .get(
                "/submissions?type=request.submitted&idempotency_key=fate-first",
                &outsider,
            )
            .await;
        assert_eq!(
            (status, fate["state"].as_str()),
            (StatusCode::OK, Some("queued"))
        );
    }

    // One of the two names, not both or neither.
    for query in [
        format!("message_id={never}&type=request.submitted&idempotency_key=fate-first"),
        String::new(),
        "idempotency_key=fate-first".into(),
        "type=request.martian&idempotency_key=fate-first".into(),
        "message_id=not-a-uuid".into(),
    ] {
        let (status, body) = api.get(&format!("/submissions?{query}"), &me).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    api.stop().await;
}

#[actix_rt::test]
async fn every_refusal_class_reaches_its_publisher_with_a_code_and_an_italian_reason() {
    let api = Api::start().await;
    let me = citizen(CITIZEN);

    // Not fitting its schema: no text.
    let mut invalid = request("web", "fate-invalid");
    invalid["payload"].as_object_mut().unwrap().remove("text");
    // A principal the channel may not carry: an agent on the portal.
    let mut forbidden = request("contact_center", "fate-forbidden");
    forbidden["channel"] = json!("web");
    // An attachment that is not what it says.
    let mut attachment = request_v2(
        citizen_json(CITIZEN),
        "fate-attachment",
        "uniemens",
        "4901234567",
        "Con allegato",
        json!({"province": "CR", "municipality": "Crema"}),
    );
    attachment["payload"]["attachments"] = json!([{
        "file_name": "ricevuta.pdf",
        "content_base64": base64_of(b"not a pdf at all")
    }]);
    // An intermediary with no delega for the position.
    let no_delegation = request_v2(
        json!({"kind": "intermediary", "tax_code": "FRRLCU75C41D969A", "authentication": {"method": "CNS"}}),
        "fate-delega",
        "uniemens",
        "4901234567",
        "Senza delega",
        json!({"province": "CR", "municipality": "Crema"}),
    );
    // The key of an applied request, with other content.
    let applied = request("web", "fate-reused");
    publish(&api, "web", &applied).await;
    assert_eq!(
        settled(&api, message_id(&applied), &me).await["state"],
        "applied"
    );
    let mut reused = applied.clone();
    reused["message_id"] = json!(Uuid::now_v7());
    reused["payload"]["text"] = json!("Un altro testo.");

    // Published under another type's routing key.
    let misrouted = request("web", "fate-misrouted");
    // A scheme that does not exist.
    let mut unknown_scheme = request_v2(
        citizen_json(CITIZEN),
        "fate-scheme",
        "uniemens",
        "4901234567",
        "Gestione ignota",
        json!({"province": "CR", "municipality": "Crema"}),
    );
    unknown_scheme["payload"]["gestione"] = json!("astrologi");
    // A message on a ticket that does not exist.
    let mut on_no_ticket = request("web", "fate-no-ticket");
    on_no_ticket["type"] = json!("request.message_added");
    on_no_ticket["payload"] = json!({"ticket_id": Uuid::now_v7(), "text": "Ecco il documento."});
    // A delega for a scheme not open to deleghe.
    let delega = json!({
        "message_id": Uuid::now_v7(),
        "type": "delegation.granted",
        "schema_version": 1,
        "channel": "cassetto",
        "occurred_at": chrono::Utc::now(),
        "correlation_id": "corr-fate-delega-closed",
        "idempotency_key": "fate-delega-closed",
        "principal": citizen_json(CITIZEN),
        "payload": {
            "citizen_tax_code": CITIZEN,
            "intermediary_tax_code": "FRRLCU75C41D969A",
            "gestione": "artigiani",
            "valid_to": chrono::Utc::now() + chrono::Duration::days(365),
        }
    });

    let cases = [
        ("web", &invalid, "invalid_message", me.clone()),
        ("cassetto", &unknown_scheme, "unknown_scheme", me.clone()),
        ("web", &on_no_ticket, "message_refused", me.clone()),
        ("cassetto", &delega, "delegation_refused", me.clone()),
        ("web", &forbidden, "forbidden", agent("CC-0042")),
        ("cassetto", &attachment, "invalid_attachment", me.clone()),
        ("cassetto", &no_delegation, "no_delegation", intermediary()),
        ("web", &reused, "idempotency_key_reused", me.clone()),
    ];
    for (channel, message, _, _) in &cases {
        publish(&api, channel, message).await;
    }
    api.env
        .publish("web", "web.request.message_added", &bytes(&misrouted))
        .await
        .unwrap();
    assert_refused(
        &settled(&api, message_id(&misrouted), &me).await,
        "routing_key_mismatch",
    );
    for (_, message, code, publisher) in &cases {
        let fate = settled(&api, message_id(message), publisher).await;
        assert_refused(&fate, code);
        let key = message["idempotency_key"].as_str().unwrap();
        let kind = message["type"].as_str().unwrap();
        if *code != "idempotency_key_reused" {
            // By its key too (a reused key names the applied one instead).
            let (_, by_key) = api
                .get(
                    &format!("/submissions?type={kind}&idempotency_key={key}"),
                    publisher,
                )
                .await;
            assert_refused(&by_key, code);
            assert_eq!(by_key["message_id"], json!(message_id(message)));
        }
    }
    // The intermediary's refusal is not the citizen's to read: the citizen
    // it would concern is unknown without the delega.
    let (status, _) = api
        .get(
            &format!("/submissions?message_id={}", message_id(&no_delegation)),
            &me,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
}

#[actix_rt::test]
async fn the_citizen_an_agent_acted_for_reads_the_fate_and_another_agent_does_not() {
    let api = Api::start().await;
    let mut by_agent = request("contact_center", "fate-agent");
    by_agent["principal"]["identified_by"] = json!("spid");
    publish(&api, "contact_center", &by_agent).await;
    let fate = settled(&api, message_id(&by_agent), &agent("CC-0042")).await;
    assert_eq!(fate["state"], "applied", "{fate}");
    let fate = settled(&api, message_id(&by_agent), &citizen(CALLER)).await;
    assert_eq!(fate["state"], "applied", "{fate}");
    let (status, _) = api
        .get(
            &format!("/submissions?message_id={}", message_id(&by_agent)),
            &agent("CC-0043"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
}

/// A contact-centre agent acting for the caller, who identified with SPID.
fn agent(agent_id: &str) -> sportello::contract::Principal {
    sportello::contract::Principal::ContactCenterAgent {
        agent_id: agent_id.into(),
        on_behalf_of: sportello::contract::CodiceFiscale::parse(CALLER).unwrap(),
        identified_by: Some(sportello::contract::Identification::Spid),
        pin_verification_id: None,
    }
}

fn base64_of(raw: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(raw)
}
