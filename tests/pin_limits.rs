//! Issue 27: the PIN against address-wide guessing (a token bucket per
//! client address behind a trusted proxy, 429 with Retry-After) and the
//! agent's verification of the caller's half (an unverified
//! `identified_by: pin_simplified` refused, a wrong half counted, a right
//! one recorded and then accepted).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sportello::contract::{CodiceFiscale, Identification, Principal};
use sportello::domain::pin::secret::HALF_ALPHABET;
use sportello::workers::WorkerKind;

use crate::support::api::Api;
use crate::support::*;

/// `count` valid tax codes (the check character computed), all different.
fn tax_codes(count: usize) -> Vec<String> {
    const ODD: [u32; 36] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3,
        6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
    ];
    let value = |c: u8| -> usize {
        if c.is_ascii_digit() {
            usize::from(c - b'0')
        } else {
            usize::from(c - b'A') + 10
        }
    };
    (0..count)
        .map(|n| {
            let body = format!("RSSMRA{:02}A01H{:03}", 50 + n / 1000, n % 1000);
            let sum: u32 = body
                .bytes()
                .enumerate()
                .map(|(i, c)| {
                    let v = value(c);
                    if i % 2 == 0 {
                        ODD[v]
                    } else {
                        (if c.is_ascii_digit() { v } else { v - 10 }) as u32
                    }
                })
                .sum();
            format!("{body}{}", char::from(b'A' + (sum % 26) as u8))
        })
        .collect()
}

async fn sign_in_from(
    api: &Api,
    address: &str,
    tax_code: &str,
) -> (StatusCode, Option<String>, Value) {
    let response = api
        .client
        .post(format!("{}/pin/sign-in", api.base))
        .header("x-forwarded-for", address)
        .json(&json!({"tax_code": tax_code, "pin": "ABCD2345"}))
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        response.status(),
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[actix_rt::test]
async fn one_address_guessing_across_a_thousand_tax_codes_is_stopped_and_others_go_on() {
    let env = TestEnv::new_with(|settings| {
        settings.trusted_proxies =
            sportello::domain::client_address::TrustedProxies::parse("127.0.0.1").unwrap();
        settings.pin_address_per_minute = 1;
        settings.pin_address_burst = 5;
    })
    .await;
    let api = Api::start_with(env, &[]);
    let codes = tax_codes(1000);
    let mut statuses = Vec::new();
    for code in &codes {
        let (status, retry_after, body) = sign_in_from(&api, "198.51.100.7", code).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
            assert!(seconds >= 1, "{seconds}");
            assert_eq!(body["error"], "too_many_requests", "{body}");
            assert!(
                body["message"].as_str().unwrap().contains("Riprova tra"),
                "{body}"
            );
            assert!(
                body["detail"].as_str().unwrap().contains("try again in"),
                "{body}"
            );
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{code}: {body}");
        }
        statuses.push(status);
    }
    let let_through = statuses
        .iter()
        .filter(|s| **s != StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        let_through <= 6,
        "the burst, and at most one refill: {let_through}"
    );
    // Another address behind the same proxy is unaffected.
    let (status, _, body) = sign_in_from(&api, "203.0.113.9", &codes[0]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A forged first hop does not make a new client: the rightmost untrusted one is it.
    let (status, _, _) = sign_in_from(&api, "192.0.2.1, 198.51.100.7", &codes[1]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let metrics = sportello::metrics::metrics().encode();
    assert!(
        metrics.contains("sportello_pin_rate_limited_total{step=\"sign_in\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("sportello_pin_failures_last_minute"));
    assert!(metrics.contains("sportello_pin_failure_ceiling_exceeded"));
    api.stop().await;
}

fn agent(identified_by: Option<Identification>) -> Principal {
    Principal::ContactCenterAgent {
        agent_id: "CC0042".into(),
        on_behalf_of: CodiceFiscale::parse("RSSMRA85T10A562S").unwrap(),
        identified_by,
        pin_verification_id: None,
    }
}

#[actix_rt::test]
async fn an_agents_simplified_pin_claim_is_refused_until_the_half_is_verified() {
    let api = Api::start_with(TestEnv::new().await, &[WorkerKind::Intake]);
    let simplified = agent(Some(Identification::PinSimplified));
    // Unverified: refused, naming what to do.
    let (status, body) = api.get("/applications", &simplified).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "pin_verification_required", "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("/pin/agent-verifications"));
    // Other identifications work as before.
    let (status, body) = api
        .get("/applications", &agent(Some(Identification::Cie)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A bad half is refused by its shape; an unknown tax code like a wrong half.
    let (status, body) = api
        .post(
            "/pin/agent-verifications",
            &simplified,
            json!({"pin": "ABC"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api
        .post(
            "/pin/agent-verifications",
            &simplified,
            json!({"pin": "ABCD2345"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Only agents verify.
    let citizen = Principal::Citizen {
        tax_code: CodiceFiscale::parse("RSSMRA85T10A562S").unwrap(),
        authentication: sportello::contract::Authentication::Cie,
    };
    let (status, _) = api
        .post(
            "/pin/agent-verifications",
            &citizen,
            json!({"pin": "ABCD2345"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A verification id that is not one, or unknown: refused.
    for header in ["nope", "0193a1c2-7f0e-7b6a-9d2e-5c4b3a29aa02"] {
        let token = api
            .keys
            .issue(&simplified, chrono::Duration::minutes(5))
            .unwrap();
        let response = api
            .client
            .request(Method::GET, format!("{}/applications", api.base))
            .bearer_auth(token)
            .header("x-pin-verification", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}");
    }
    assert!(HALF_ALPHABET.len() == 31);
    api.stop().await;
}
