//! The words of a refusal, for whoever reads it. A portal shows a refusal's
//! `message` as it is, so when the reader is a citizen `message` becomes
//! plain Italian chosen by the stable code (`domain::refusal`), with the
//! specifics that help (fields, times, credentials), and the English it
//! replaced moves to `detail`. Operators, agents and intermediaries, and
//! the programs they write, keep the English; every reader keeps `error`.
//!
//! One middleware rewrites every JSON refusal, whoever built it (a
//! handler's `ApiError`, the access policy, the edge, an extractor), so no
//! refusal can slip through in English because it was made elsewhere.
//! `ResponseError::error_response` does not see the request; the reader is
//! known only here, after the response is made.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};
use serde_json::Value;

use crate::contract::Principal;
use crate::domain::access_policy::{AccessPolicy, Rule};
use crate::domain::application::policy::PrincipalKind;
use crate::domain::refusal::{self, Code, Specifics};

/// Refusal bodies are small; a larger one is left as it is rather than
/// held in memory.
const LARGEST_REFUSAL: usize = 64 * 1024;

/// Who reads a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    /// A citizen, through a portal or a page: Italian.
    Citizen,
    /// Operators, agents, intermediaries and their programs: English.
    Professional,
}

impl Reader {
    pub(crate) fn of(principal: &Principal) -> Reader {
        match principal {
            Principal::Citizen { .. } => Reader::Citizen,
            _ => Reader::Professional,
        }
    }
}

/// The reader, once a token said who calls (`caller::authenticate`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Known(pub Reader);

/// An Italian sentence more specific than the code's, chosen by whoever
/// refused (the gateway's "the window closed on ..."), kept on the response.
#[derive(Debug, Clone)]
pub(crate) struct Worded(pub String);

/// The API's middleware: Italian for a citizen.
pub(super) async fn for_citizens(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(request).await?.map_into_boxed_body();
    if reader(response.request()) == Reader::Professional {
        return Ok(response);
    }
    Ok(reword(response).await)
}

/// The gateway's middleware: its pages are a citizen's and an operator's
/// of the same room, both in Italian.
pub(crate) async fn always(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let response = next.call(request).await?.map_into_boxed_body();
    Ok(reword(response).await)
}

/// Whose words: the token's principal if one was verified, else the
/// route's: a route only professionals may use is theirs; a public route, a
/// citizen's route or an unknown path may be a citizen's.
fn reader(request: &HttpRequest) -> Reader {
    if let Some(Known(reader)) = request.extensions().get::<Known>() {
        return *reader;
    }
    let Some(pattern) = request.match_pattern() else {
        return Reader::Citizen;
    };
    let rule = AccessPolicy::shipped()
        .ok()
        .and_then(|policy| policy.route(request.method().as_str(), &pattern));
    match rule {
        Some(Rule::Principals(admission))
            if !admission.profiles.contains(&PrincipalKind::Citizen) =>
        {
            Reader::Professional
        }
        Some(Rule::StaffSession) => Reader::Professional,
        _ => Reader::Citizen,
    }
}

/// A JSON refusal with its `message` in Italian and the English in
/// `detail`; any other response as it was.
async fn reword(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || !is_json(response.headers()) {
        return response;
    }
    let worded = response
        .response()
        .extensions()
        .get::<Worded>()
        .map(|worded| worded.0.clone());
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let bytes = match actix_web::body::to_bytes_limited(body, LARGEST_REFUSAL).await {
        Ok(Ok(bytes)) => bytes,
        // Unreadable or too large: not a refusal body of ours. Its bytes are
        // gone, so the citizen gets the generic sentence.
        _ => {
            tracing::warn!(%status, "refusal body not reworded");
            let generic = serde_json::json!({
                "error": Code::Internal.as_str(),
                "message": Code::Internal.italian(),
            });
            return ServiceResponse::new(request, head.set_body(BoxBody::new(generic.to_string())));
        }
    };
    let body = match serde_json::from_slice::<Value>(&bytes) {
        // A refusal names its code; another body (the readiness probe's
        // list of problems) is not a refusal and is left as it is.
        Ok(Value::Object(mut problem)) if problem.contains_key("error") => {
            let italian = worded.unwrap_or_else(|| in_italian(status, &problem, retry_after));
            let english = problem
                .get("message")
                .and_then(Value::as_str)
                .filter(|english| !english.is_empty() && *english != italian)
                .map(str::to_owned);
            if let Some(english) = english {
                problem.insert("detail".into(), Value::String(english));
            }
            problem.insert("message".into(), Value::String(italian));
            Value::Object(problem).to_string().into()
        }
        _ => bytes,
    };
    ServiceResponse::new(request, head.set_body(BoxBody::new(body)))
}

/// The sentence for a refusal body: its code's, with its specifics. A code
/// we do not know (none of ours) still reads as Italian, by its status.
fn in_italian(
    status: actix_web::http::StatusCode,
    problem: &serde_json::Map<String, Value>,
    retry_after: Option<u64>,
) -> String {
    let code = problem
        .get("error")
        .and_then(Value::as_str)
        .and_then(Code::parse)
        .unwrap_or(if status.is_server_error() {
            Code::Internal
        } else {
            Code::BadRequest
        });
    let instant = |name: &str| {
        problem
            .get(name)
            .and_then(Value::as_str)
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            .map(|at| at.with_timezone(&chrono::Utc))
    };
    let strings = |name: &str, inner: Option<&str>| -> Vec<String> {
        problem
            .get(name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| match inner {
                Some(key) => item.get(key).and_then(Value::as_str),
                None => item.as_str(),
            })
            .map(str::to_owned)
            .collect()
    };
    let specifics = Specifics {
        fields: strings("fields", Some("field")),
        locked_until: instant("locked_until"),
        possible_from: instant("possible_from"),
        requires: strings("requires", None),
        retry_after,
        alternatives: problem
            .get("alternatives")
            .and_then(Value::as_array)
            .is_some_and(|slots| !slots.is_empty()),
    };
    refusal::for_citizen(code, &specifics)
}

fn is_json(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;

    fn problem(body: Value) -> serde_json::Map<String, Value> {
        match body {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    #[test]
    fn a_refusal_reads_its_codes_italian_with_its_specifics() {
        let body = problem(serde_json::json!({
            "error": "invalid",
            "message": "birth_date: not a date",
            "fields": [{"field": "birth_date", "message": "not a date"}],
        }));
        let text = in_italian(StatusCode::UNPROCESSABLE_ENTITY, &body, None);
        assert!(text.starts_with(Code::Invalid.italian()), "{text}");
        assert!(text.contains("birth_date"), "{text}");
        let body =
            problem(serde_json::json!({"error": "too_many_requests", "message": "slow down"}));
        let text = in_italian(StatusCode::TOO_MANY_REQUESTS, &body, Some(30));
        assert!(text.ends_with("Riprova tra 30 secondi."), "{text}");
    }

    #[test]
    fn an_unknown_code_still_reads_as_italian() {
        let body = problem(serde_json::json!({"error": "teapot", "message": "short and stout"}));
        assert_eq!(
            in_italian(StatusCode::IM_A_TEAPOT, &body, None),
            Code::BadRequest.italian()
        );
        assert_eq!(
            in_italian(StatusCode::BAD_GATEWAY, &problem(Value::Null), None),
            Code::Internal.italian()
        );
    }
}
