//! Contact-centre agents read the tickets of the caller they act for (their
//! token's `on_behalf_of`), only when the token says how the caller was
//! identified; every such read is in an audit trail the offices' operators
//! page through, each office the reads of its own tickets.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sportello::contract::{CodiceFiscale, Identification, Principal};
use uuid::Uuid;

const CITIZEN: &str = "RSSMRA85T10A562S";
const OTHER_CITIZEN: &str = "BNCGVN70A41F205O";

fn agent(citizen: &str, identified_by: Option<Identification>) -> Principal {
    Principal::ContactCenterAgent {
        agent_id: "CC-0042".into(),
        on_behalf_of: CodiceFiscale::parse(citizen).unwrap(),
        identified_by,
        pin_verification_id: None,
    }
}

async fn audit_rows(api: &Api) -> Vec<(String, String, String, String, Vec<Uuid>, String)> {
    sqlx::query_as(
        "SELECT agent_id, citizen_tax_code, identified_by, what, ticket_ids, correlation_id
         FROM agent_reads ORDER BY id",
    )
    .fetch_all(&api.env.pool)
    .await
    .unwrap()
}

#[actix_rt::test]
async fn an_identified_agent_reads_its_callers_tickets_and_every_read_is_audited() {
    let api = Api::start().await;
    let crema = json!({"province": "CR", "municipality": "Crema"});
    let mine = submit_and_wait(
        &api.env,
        &request_v2(
            citizen_json(CITIZEN),
            "a1",
            "uniemens",
            "4901234567",
            "Denuncia",
            crema.clone(),
        ),
    )
    .await;
    let theirs = submit_and_wait(
        &api.env,
        &request_v2(
            citizen_json(OTHER_CITIZEN),
            "a2",
            "uniemens",
            "4909999999",
            "Altro",
            crema,
        ),
    )
    .await;
    let by_pin = agent(CITIZEN, Some(Identification::Pin));

    // The caller's tickets, list and detail, as the caller sees them.
    let response = api
        .client
        .get(format!("{}/tickets?q=denuncia", api.base))
        .bearer_auth(
            api.keys
                .issue(&by_pin, chrono::Duration::minutes(10))
                .unwrap(),
        )
        .header("x-correlation-id", "call-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    let ids: Vec<&str> = page["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine.to_string()]);
    let (status, detail) = api.get(&format!("/tickets/{mine}"), &by_pin).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["viewer"], "citizen");
    assert_eq!(detail["routing_note"], Value::Null, "the citizen's view");
    let rows = audit_rows(&api).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (
            &rows[0].0[..],
            &rows[0].1[..],
            &rows[0].2[..],
            &rows[0].3[..]
        ),
        ("CC-0042", CITIZEN, "pin", "ticket_search")
    );
    assert_eq!(rows[0].4, [mine]);
    assert_eq!(rows[0].5, "call-0001");
    assert_eq!(
        (&rows[1].3[..], &rows[1].4[..]),
        ("ticket_detail", &[mine][..])
    );

    // Another citizen's ticket: refused, and nothing recorded.
    let (status, body) = api.get(&format!("/tickets/{theirs}"), &by_pin).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("another citizen"),
        "{body}"
    );
    // Without an identification method, or with only half a PIN: refused.
    for weak in [None, Some(Identification::PinSimplified)] {
        let who = agent(CITIZEN, weak);
        let (status, body) = api.get("/tickets", &who).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, _) = api.get(&format!("/tickets/{mine}"), &who).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (_, body) = api.get("/tickets", &agent(CITIZEN, None)).await;
    assert!(
        body["message"].as_str().unwrap().contains("identified_by"),
        "{body}"
    );
    // Documents stay the citizen's and the office's.
    let (status, _) = api.get(&format!("/cases/{mine}/documents"), &by_pin).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(audit_rows(&api).await.len(), 2, "refusals read nothing");

    // The audit trail: Crema's operators see both reads of their ticket.
    let (status, audit) = api.get("/agent-reads", &operator("1901")).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let reads = audit["reads"].as_array().unwrap();
    assert_eq!(reads.len(), 2, "{audit}");
    assert_eq!(reads[0]["what"], "ticket_detail", "newest first");
    assert_eq!(reads[1]["identified_by"], "pin");
    assert_eq!(reads[1]["correlation_id"], "call-0001");
    assert_eq!(reads[1]["ticket_ids"], json!([mine]));
    let (_, first) = api.get("/agent-reads?per_page=1", &operator("1901")).await;
    assert_eq!(first["reads"].as_array().unwrap().len(), 1);
    assert_eq!(first["has_more"], true);
    let (_, second) = api
        .get("/agent-reads?per_page=1&page=2", &operator("1901"))
        .await;
    assert_eq!(second["reads"][0]["what"], "ticket_search");
    assert_eq!(second["has_more"], false);
    let (_, filtered) = api
        .get(
            &format!("/agent-reads?citizen={OTHER_CITIZEN}"),
            &operator("1901"),
        )
        .await;
    assert_eq!(filtered["reads"], json!([]));
    assert_eq!(
        api.get("/agent-reads?citizen=nonsense", &operator("1901"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // Another office sees none of them; nobody but operators may look.
    let (status, other_office) = api.get("/agent-reads", &operator("1900")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(other_office["reads"], json!([]));
    for who in [citizen(CITIZEN), intermediary(), by_pin.clone()] {
        assert_eq!(api.get("/agent-reads", &who).await.0, StatusCode::FORBIDDEN);
    }
    // The trail cannot be rewritten.
    let rewrite = sqlx::query("DELETE FROM agent_reads")
        .execute(&api.env.pool)
        .await;
    assert!(rewrite.is_err(), "append-only");

    api.stop().await;
}
