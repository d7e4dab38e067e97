//! The access policy (`workers/config/access.json`) against what is served:
//! every route the server mounts has an entry, and every route of
//! `/openapi.json` answers every kind of credential as the policy says:
//! refused before its handler (403 `principal_not_allowed` or
//! `credential_required` with what would be accepted), or let through to
//! the handler. The broker's commands are checked against the same data.

use std::time::Duration;

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sportello::broker::names::{DEAD_LETTER_EXCHANGE, REASON_HEADER};
use sportello::contract::{Authentication, CodiceFiscale, Identification, PinKind, Principal};
use sportello::domain::access_policy::{AccessPolicy, Rule};
use sportello::workers::WorkerKind;

const CITIZEN: &str = "RSSMRA85T10A562S";
const WAIT: Duration = Duration::from_secs(20);

/// Every kind of credential a caller can hold, by a name for the failures.
fn every_credential() -> Vec<(&'static str, Principal)> {
    let tax_code = || CodiceFiscale::parse(CITIZEN).unwrap();
    let as_citizen = |authentication| Principal::Citizen {
        tax_code: tax_code(),
        authentication,
    };
    let agent = |identified_by| Principal::ContactCenterAgent {
        pin_verification_id: None,
        agent_id: "CC-0042".into(),
        on_behalf_of: tax_code(),
        identified_by,
    };
    vec![
        ("spid1", as_citizen(Authentication::Spid { level: 1 })),
        ("spid2", as_citizen(Authentication::Spid { level: 2 })),
        ("spid3", as_citizen(Authentication::Spid { level: 3 })),
        ("cie", as_citizen(Authentication::Cie)),
        ("cns", as_citizen(Authentication::Cns)),
        ("eidas", as_citizen(Authentication::Eidas)),
        (
            "pin_ordinary",
            as_citizen(Authentication::Pin {
                pin_kind: PinKind::Ordinary,
            }),
        ),
        (
            "pin_dispositivo",
            as_citizen(Authentication::Pin {
                pin_kind: PinKind::Dispositivo,
            }),
        ),
        (
            "pin_simplified",
            as_citizen(Authentication::Pin {
                pin_kind: PinKind::Simplified,
            }),
        ),
        ("agent, caller not identified", agent(None)),
        (
            "agent, caller identified by CIE",
            agent(Some(Identification::Cie)),
        ),
        ("intermediary", intermediary()),
        ("operator", operator("1900")),
    ]
}

/// A concrete path for a pattern: ids that exist nowhere, an office and a
/// desk that do (so that the handler, when reached, answers for itself).
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|segment| match segment {
            "{aoo}" => "1900".to_owned(),
            "{kind}" => "aziende".to_owned(),
            "{action}" => "presa-in-carico".to_owned(),
            s if s.starts_with('{') => uuid::Uuid::now_v7().to_string(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_policy_refusal(body: &Value) -> bool {
    matches!(
        body["error"].as_str(),
        Some("principal_not_allowed" | "credential_required")
    )
}

#[test]
fn every_mounted_route_has_a_policy_and_every_entry_a_route() {
    let policy = AccessPolicy::shipped().unwrap();
    let mounted: Vec<(String, String)> = sportello::http::mounted()
        .into_iter()
        .map(|(path, method, _)| (method.to_string(), path.to_owned()))
        .collect();
    for (method, path) in &mounted {
        assert!(
            policy.route(method, path).is_some(),
            "{method} {path} has no entry in workers/config/access.json"
        );
    }
    for (method, path) in policy.routes() {
        assert!(
            mounted.iter().any(|(m, p)| m == method && p == path),
            "workers/config/access.json lists {method} {path}, which nothing serves"
        );
    }
}

#[actix_rt::test]
async fn every_route_answers_every_credential_as_the_policy_says() {
    let api = Api::start().await;
    let policy = AccessPolicy::shipped().unwrap();
    let (status, description) = api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = description["paths"].as_object().unwrap();
    let mut checked = 0;
    for (pattern, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let rule = policy
                .route(method.as_str(), pattern)
                .unwrap_or_else(|| panic!("{method} {pattern} has no access policy"));
            let body = (method == Method::POST || method == Method::PUT).then(|| json!({}));
            let path = concrete(pattern);

            // Without a token: only a public route goes through.
            let (status, answer) = api.call(method.clone(), &path, None, body.clone()).await;
            match rule {
                Rule::Public | Rule::StaffSession => assert_ne!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {pattern} is public: {answer}"
                ),
                Rule::Principals(_) => assert_eq!(
                    (status, answer["error"].as_str()),
                    (StatusCode::UNAUTHORIZED, Some("unauthenticated")),
                    "{method} {pattern} without a token"
                ),
            }

            for (name, who) in every_credential() {
                let (status, answer) = api
                    .call(method.clone(), &path, Some(&who), body.clone())
                    .await;
                match rule.admits(&who) {
                    Err(refusal) => {
                        assert_eq!(
                            (status, answer["error"].as_str()),
                            (StatusCode::FORBIDDEN, Some(refusal.code().as_str())),
                            "{method} {pattern} as {name}: {answer}"
                        );
                        let requires: Vec<&str> = answer["requires"]
                            .as_array()
                            .map(|all| all.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        assert_eq!(requires, refusal.accepted(), "{method} {pattern} as {name}");
                    }
                    Ok(()) => assert!(
                        status != StatusCode::UNAUTHORIZED && !is_policy_refusal(&answer),
                        "{method} {pattern} as {name} reaches its handler: {status} {answer}"
                    ),
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "only {checked} checks");
    api.stop().await;
}

/// The refusals the issue found: a simplified PIN and SPID level 1 reach
/// none of the records, and are told what they would need.
#[actix_rt::test]
async fn weak_credentials_are_refused_with_what_is_needed() {
    let api = Api::start().await;
    let simplified = Principal::Citizen {
        tax_code: CodiceFiscale::parse(CITIZEN).unwrap(),
        authentication: Authentication::Pin {
            pin_kind: PinKind::Simplified,
        },
    };
    let spid1 = Principal::Citizen {
        tax_code: CodiceFiscale::parse(CITIZEN).unwrap(),
        authentication: Authentication::Spid { level: 1 },
    };
    let case = uuid::Uuid::now_v7();
    for who in [&simplified, &spid1] {
        for (method, path, body) in [
            (Method::GET, "/tickets".to_owned(), None),
            (Method::POST, "/appointments".to_owned(), Some(json!({}))),
            (Method::GET, format!("/cases/{case}/documents"), None),
            (Method::GET, "/notifications".to_owned(), None),
            (
                Method::PUT,
                "/me/contacts".to_owned(),
                Some(json!({"email": "mario.rossi@example.it"})),
            ),
        ] {
            let (status, answer) = api.call(method.clone(), &path, Some(who), body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
            assert_eq!(answer["error"], "credential_required", "{answer}");
            assert!(
                answer["requires"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("spid2")),
                "{answer}"
            );
        }
    }
    // The same simplified PIN still opens what seed 003 lists for it.
    let (status, answer) = api.get("/applications", &simplified).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    api.stop().await;
}

/// Over the broker, the same data: a booking by SPID level 1, a request by
/// a simplified PIN, and an agent claiming a simplified-PIN identification
/// for a request, each dead-lettered with the policy's reason.
#[actix_rt::test]
async fn the_broker_refuses_what_the_policy_refuses_with_the_reason() {
    let env = TestEnv::new().await;
    let mut dead = env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let workers = env.start(&[WorkerKind::Intake]);

    let mut by_simplified = request("web", "access-policy-simplified");
    by_simplified["principal"]["authentication"] =
        json!({"method": "PIN", "pin_kind": "simplified"});
    let mut by_spid1 = request("app", "access-policy-spid1");
    by_spid1["principal"]["authentication"] = json!({"method": "SPID", "level": 1});
    let mut by_agent = request("contact_center", "access-policy-agent");
    by_agent["principal"]["identified_by"] = json!("pin_simplified");
    for (message, routing_key, held) in [
        (&by_simplified, "web.request.submitted", "pin_simplified"),
        (&by_spid1, "app.request.submitted", "spid1"),
        (
            &by_agent,
            "contact_center.request.submitted",
            "pin_simplified",
        ),
    ] {
        let channel = message["channel"].as_str().unwrap();
        env.publish(channel, routing_key, &bytes(message))
            .await
            .unwrap();
        let letter = dead.next(WAIT).await.expect("a dead letter");
        let reason = header(&letter, REASON_HEADER).unwrap();
        assert!(
            reason.contains("refused by the access policy")
                && reason.contains("spid2")
                && reason.contains(&format!("the caller has {held}")),
            "{routing_key}: {reason}"
        );
    }
    assert_eq!(env.ticket_count().await, 0);
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}
