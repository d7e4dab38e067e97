//! Deleghe by scheme (seed 002), granted and revoked by messages: an
//! intermediary reads and acts on a citizen's positions of the schemes it
//! holds an active delegation for, nothing else; each message is applied
//! once, emits its event, and a publisher who may not send it is
//! dead-lettered with the reason.

use std::time::Duration;

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sportello::broker::names::{DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);
const CITIZEN: &str = "RSSMRA85T10A562S";
const OTHER_CITIZEN: &str = "BNCGVN70A41F205O";
const INTERMEDIARY: &str = "FRRLCU75C41D969A";
const POSITION: &str = "4901234567";

fn crema() -> Value {
    json!({"province": "CR", "municipality": "Crema"})
}

fn intermediary_json() -> Value {
    json!({"kind": "intermediary", "tax_code": INTERMEDIARY, "authentication": {"method": "CNS"}})
}

/// A `delegation.granted` or `.revoked` envelope from `channel` by `principal`.
fn delegation_message(kind: &str, channel: &str, principal: Value, payload: Value) -> Value {
    let key = Uuid::now_v7();
    json!({
        "message_id": Uuid::now_v7(),
        "type": format!("delegation.{kind}"),
        "schema_version": 1,
        "channel": channel,
        "occurred_at": chrono::Utc::now(),
        "correlation_id": format!("corr-{key}"),
        "idempotency_key": format!("delega-{key}"),
        "principal": principal,
        "payload": payload,
    })
}

fn grant_by_citizen(gestione: &str) -> Value {
    delegation_message(
        "granted",
        "cassetto",
        citizen_json(CITIZEN),
        json!({
            "citizen_tax_code": CITIZEN,
            "intermediary_tax_code": INTERMEDIARY,
            "gestione": gestione,
            "matricola": POSITION,
            "valid_to": chrono::Utc::now() + chrono::Duration::days(365),
        }),
    )
}

fn revoke_by_citizen(gestione: &str) -> Value {
    delegation_message(
        "revoked",
        "cassetto",
        citizen_json(CITIZEN),
        json!({"citizen_tax_code": CITIZEN, "intermediary_tax_code": INTERMEDIARY,
               "gestione": gestione, "reason": "Ho cambiato consulente."}),
    )
}

async fn publish(api: &Api, message: &Value) {
    let channel = message["channel"].as_str().unwrap();
    let kind = message["type"].as_str().unwrap();
    api.env
        .publish(channel, &format!("{channel}.{kind}"), &bytes(message))
        .await
        .unwrap();
}

async fn ids(api: &Api) -> Vec<String> {
    let (status, page) = api.get("/tickets", &intermediary()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn delegation_rows(api: &Api) -> Vec<(String, Option<chrono::DateTime<chrono::Utc>>)> {
    sqlx::query_as("SELECT gestione, revoked_at FROM delegations ORDER BY valid_from")
        .fetch_all(&api.env.pool)
        .await
        .unwrap()
}

#[actix_rt::test]
async fn a_delega_by_message_opens_one_scheme_once_until_it_is_revoked() {
    let api = Api::start().await;
    let mut events = api.env.probe(EVENTS_EXCHANGE, "delegation.*").await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;

    // The citizen's position number in two schemes (each scheme keeps its
    // own archive of positions).
    let uniemens = submit_and_wait(
        &api.env,
        &request_v2(
            citizen_json(CITIZEN),
            "d1",
            "uniemens",
            POSITION,
            "Denuncia",
            crema(),
        ),
    )
    .await;
    let mut artisan_request = request_v2(
        citizen_json(CITIZEN),
        "d2",
        "versamenti",
        POSITION,
        "Contributi artigiani",
        crema(),
    );
    artisan_request["payload"]["gestione"] = json!("artigiani");
    let artisan = submit_and_wait(&api.env, &artisan_request).await;
    let gestione: String = sqlx::query_scalar("SELECT gestione FROM cases WHERE id = $1")
        .bind(artisan)
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(gestione, "artigiani", "the case knows its scheme");
    assert!(ids(&api).await.is_empty(), "no delegation yet");

    // Granted by the citizen on the Cassetto, for UniEmens: effective at once.
    let grant = grant_by_citizen("aziende_uniemens");
    publish(&api, &grant).await;
    let granted = events.next_json(WAIT).await.expect("delegation.granted");
    assert_eq!(granted["type"], "delegation.granted");
    assert_eq!(granted["causation_id"], grant["message_id"]);
    assert_eq!(granted["payload"]["gestione"], "aziende_uniemens");
    assert_eq!(granted["payload"]["granted_by"], "citizen");
    assert_eq!(granted["payload"]["renewed"], false);
    sportello::contract::schemas::catalogue()
        .validate(&granted)
        .expect("the event fits its schema");

    assert_eq!(ids(&api).await, [uniemens.to_string()], "that scheme only");
    let (status, _) = api
        .get(&format!("/tickets/{uniemens}"), &intermediary())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .get(&format!("/tickets/{artisan}"), &intermediary())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = api
        .get(&format!("/cases/{artisan}/documents"), &intermediary())
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "documents of the other scheme"
    );

    // Acting: a request for the UniEmens position opens a ticket for the
    // citizen; one for the artisan position is dead-lettered.
    let acting = request_v2(
        intermediary_json(),
        "d3",
        "uniemens",
        POSITION,
        "Per conto",
        crema(),
    );
    let acted = submit_and_wait(&api.env, &acting).await;
    let subject: String = sqlx::query_scalar("SELECT subject_tax_code FROM tickets WHERE id = $1")
        .bind(acted)
        .fetch_one(&api.env.pool)
        .await
        .unwrap();
    assert_eq!(subject, CITIZEN);
    let mut other_scheme = request_v2(
        intermediary_json(),
        "d4",
        "versamenti",
        POSITION,
        "Per conto",
        crema(),
    );
    other_scheme["payload"]["gestione"] = json!("artigiani");
    publish(&api, &other_scheme).await;
    let letter = dead.next(WAIT).await.expect("dead letter");
    let reason = header(&letter, "x-sportello-reason").unwrap_or_default();
    assert!(
        reason.contains("no active delegation") && reason.contains("artigiani"),
        "{reason}"
    );

    // The same grant again (a republished duplicate) and the same key in a
    // new message: applied once, no second event.
    publish(&api, &grant).await;
    let mut resent = grant.clone();
    resent["message_id"] = json!(Uuid::now_v7());
    publish(&api, &resent).await;

    // Revoked: refused again, at once.
    let revoke = revoke_by_citizen("aziende_uniemens");
    publish(&api, &revoke).await;
    let revoked = events.next_json(WAIT).await.expect("delegation.revoked");
    assert_eq!(
        revoked["type"], "delegation.revoked",
        "no second grant event: {revoked}"
    );
    assert_eq!(
        revoked["payload"]["delegation_ids"],
        json!([granted["payload"]["delegation_id"]])
    );
    assert_eq!(revoked["payload"]["revoked_by"], "citizen");
    sportello::contract::schemas::catalogue()
        .validate(&revoked)
        .expect("the event fits its schema");
    let rows = delegation_rows(&api).await;
    assert_eq!(rows.len(), 1, "applied once: {rows:?}");
    assert!(rows[0].1.is_some());
    assert!(ids(&api).await.is_empty());
    let (status, _) = api
        .get(&format!("/tickets/{uniemens}"), &intermediary())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut after = request_v2(
        intermediary_json(),
        "d5",
        "uniemens",
        POSITION,
        "Dopo",
        crema(),
    );
    after["payload"]["text"] = json!("Dopo la revoca.");
    publish(&api, &after).await;
    let letter = dead.next(WAIT).await.expect("dead letter");
    let reason = header(&letter, "x-sportello-reason").unwrap_or_default();
    assert!(reason.contains("no active delegation"), "{reason}");

    // Revoking again: nothing to revoke, said as such; the revocation
    // itself redelivered changes nothing.
    publish(&api, &revoke).await;
    publish(&api, &revoke_by_citizen("aziende_uniemens")).await;
    let letter = dead.next(WAIT).await.expect("dead letter");
    let reason = header(&letter, "x-sportello-reason").unwrap_or_default();
    assert!(reason.contains("nothing to revoke"), "{reason}");
    assert!(
        dead.next(Duration::from_secs(2)).await.is_none(),
        "the repeated revocation is a duplicate, not a refusal"
    );
    assert!(
        events.next(Duration::from_secs(1)).await.is_none(),
        "no event for what changed nothing"
    );

    api.stop().await;
}

#[actix_rt::test]
async fn only_the_citizen_the_desk_or_the_renouncing_intermediary_may_publish_deleghe() {
    let api = Api::start().await;
    let mut events = api.env.probe(EVENTS_EXCHANGE, "delegation.*").await;
    let mut dead = api.env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let payload = |gestione: &str| {
        json!({"citizen_tax_code": CITIZEN, "intermediary_tax_code": INTERMEDIARY,
               "gestione": gestione, "matricola": POSITION,
               "valid_to": chrono::Utc::now() + chrono::Duration::days(30)})
    };
    let refused = [
        (
            // The contact centre does not take deleghe over the phone.
            delegation_message(
                "granted",
                "contact_center",
                json!({"kind": "contact_center_agent", "agent_id": "CC-0042",
                       "on_behalf_of": CITIZEN, "identified_by": "spid"}),
                payload("aziende_uniemens"),
            ),
            "may not publish delegation.granted",
        ),
        (
            delegation_message(
                "granted",
                "cassetto",
                citizen_json(OTHER_CITIZEN),
                payload("aziende_uniemens"),
            ),
            "only their own",
        ),
        (
            delegation_message(
                "granted",
                "web",
                intermediary_json(),
                payload("aziende_uniemens"),
            ),
            "only the delegating citizen",
        ),
        (
            delegation_message(
                "granted",
                "desk",
                json!({"kind": "operator", "operator_id": "E0013609", "office": "1901",
                       "on_behalf_of": OTHER_CITIZEN}),
                payload("aziende_uniemens"),
            ),
            "citizen at the desk",
        ),
        (grant_by_citizen("artigiani"), "not open to delegations"),
        (grant_by_citizen("gestione_inventata"), "unknown scheme"),
    ];
    for (message, _) in &refused {
        publish(&api, message).await;
    }
    let mut reasons = Vec::new();
    for _ in &refused {
        let letter = dead.next(WAIT).await.expect("dead letter");
        reasons.push(header(&letter, "x-sportello-reason").unwrap_or_default());
    }
    for (_, expected) in &refused {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "{expected:?} not among {reasons:?}"
        );
    }
    assert!(delegation_rows(&api).await.is_empty());

    // A signed paper delega registered at the desk, for the citizen there.
    let at_desk = delegation_message(
        "granted",
        "desk",
        json!({"kind": "operator", "operator_id": "E0013609", "office": "1901",
               "on_behalf_of": CITIZEN}),
        payload("aziende_uniemens"),
    );
    publish(&api, &at_desk).await;
    let granted = events.next_json(WAIT).await.expect("delegation.granted");
    assert_eq!(granted["payload"]["granted_by"], "operator");
    // Granted again by the citizen: the same delegation, renewed.
    publish(&api, &grant_by_citizen("aziende_uniemens")).await;
    let renewed = events.next_json(WAIT).await.expect("delegation.granted");
    assert_eq!(renewed["payload"]["renewed"], true);
    assert_eq!(
        renewed["payload"]["delegation_id"],
        granted["payload"]["delegation_id"]
    );
    // Another intermediary cannot revoke it; the intermediary renounces it.
    let stranger = delegation_message(
        "revoked",
        "web",
        json!({"kind": "intermediary", "tax_code": OTHER_CITIZEN, "authentication": {"method": "CIE"}}),
        json!({"citizen_tax_code": CITIZEN, "intermediary_tax_code": INTERMEDIARY,
               "gestione": "aziende_uniemens"}),
    );
    publish(&api, &stranger).await;
    let letter = dead.next(WAIT).await.expect("dead letter");
    let reason = header(&letter, "x-sportello-reason").unwrap_or_default();
    assert!(reason.contains("only the delegating citizen"), "{reason}");
    let renounce = delegation_message(
        "revoked",
        "web",
        intermediary_json(),
        json!({"citizen_tax_code": CITIZEN, "intermediary_tax_code": INTERMEDIARY,
               "gestione": "aziende_uniemens"}),
    );
    publish(&api, &renounce).await;
    let revoked = events.next_json(WAIT).await.expect("delegation.revoked");
    assert_eq!(revoked["payload"]["revoked_by"], "intermediary");
    let rows = delegation_rows(&api).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].1.is_some());

    api.stop().await;
}
