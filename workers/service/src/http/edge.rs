//! Rules every request meets at the HTTP boundary, before and after its
//! handler, whatever the route:
//!
//! - **Text never carries NUL.** A query string, or a JSON or form body,
//!   holding U+0000 (`%00`, `\u0000`) is refused with 400 and a message:
//!   PostgreSQL cannot store it, and no tax code, subject or comment has one.
//! - **Bodies arrive in time.** Each piece of a body must arrive within the
//!   idle limit and the whole body within `HTTP_BODY_TIMEOUT_SECONDS`; a
//!   stalled body is answered 408 and its connection closed.
//! - **Text bodies are bounded.** JSON and form bodies over
//!   [`TEXT_BODY_LIMIT`] are refused with 413 before anything reads them.
//! - **Responses are neither cached nor sniffed.** Unless a handler chose
//!   otherwise, `Cache-Control: no-store`; always `X-Content-Type-Options:
//!   nosniff`.
//! - **Refusals speak JSON.** An unknown route is a JSON 404; a known path
//!   asked with another method a JSON 405 with `Allow`. Their words are a
//!   citizen's Italian where the reader may be one (`wording`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures::{Stream, StreamExt};
use serde_json::json;

use super::{ApiError, ApiState};
use crate::domain::refusal::Code;

/// Largest JSON or form body (the JSON extractor's limit too).
pub const TEXT_BODY_LIMIT: usize = 64 * 1024;
/// Longest pause between two pieces of a body.
const MAX_IDLE: Duration = Duration::from_secs(15);
const NUL_REFUSED: &str = "text must not contain NUL characters (U+0000)";

/// How long a body may take, from `ApiState` (the whole body; each piece
/// within the smaller of this and [`MAX_IDLE`]).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// The middleware (`actix_web::middleware::from_fn`).
pub async fn guard(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if urlencoded_has_nul(request.query_string().as_bytes()) {
        return Ok(refuse(request, StatusCode::BAD_REQUEST, NUL_REFUSED));
    }
    let total = request
        .app_data::<web::Data<ApiState>>()
        .map(|state| state.body_timeout.0)
        .unwrap_or(Duration::from_secs(60));
    let deadline = tokio::time::Instant::now() + total;
    let idle = total.min(MAX_IDLE);
    let stalled = Rc::new(Cell::new(false));
    let payload = request.take_payload();
    if is_websocket_upgrade(request.request()) {
        // A WebSocket's "body" is the connection itself, open as long as a
        // call lasts and silent while a citizen waits: its frames have their
        // own limits (size, rate) in the gateway, never a body's deadline.
        request.set_payload(payload);
    } else {
        let timed = timed(payload, idle, deadline, stalled.clone());
        match text_kind(request.request()) {
            Some(kind) => match read_bounded(timed, TEXT_BODY_LIMIT).await {
                Ok(body) => {
                    let has_nul = match kind {
                        TextKind::Json => json_has_nul(&body),
                        TextKind::Form => urlencoded_has_nul(&body),
                    };
                    if has_nul {
                        return Ok(refuse(request, StatusCode::BAD_REQUEST, NUL_REFUSED));
                    }
                    request.set_payload(Payload::from(body));
                }
                Err(BodyError::TooLarge) => {
                    let message = format!("the body is larger than {TEXT_BODY_LIMIT} bytes");
                    return Ok(refuse(request, StatusCode::PAYLOAD_TOO_LARGE, &message));
                }
                Err(BodyError::TimedOut) => return Ok(too_slow(request)),
                Err(BodyError::Broken(error)) => {
                    let message = format!("the body could not be read: {error}");
                    return Ok(refuse(request, StatusCode::BAD_REQUEST, &message));
                }
            },
            None => request.set_payload(Payload::Stream {
                payload: Box::pin(timed),
            }),
        }
    }
    let mut response = next.call(request).await?.map_into_boxed_body();
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && is_empty(&response) {
        let allow = response.headers().get(header::ALLOW).cloned();
        let (request, _) = response.into_parts();
        let mut refusal = problem(StatusCode::METHOD_NOT_ALLOWED, Code::MethodNotAllowed, {
            let allowed = allow
                .as_ref()
                .and_then(|a| a.to_str().ok())
                .unwrap_or_default();
            &format!("this path answers only {allowed}")
        });
        if let Some(allow) = allow {
            refusal.headers_mut().insert(header::ALLOW, allow);
        }
        response = ServiceResponse::new(request, refusal);
    }
    // Whatever the handler made of it (a multipart error, say), a body
    // that stopped arriving is a 408.
    if stalled.get() {
        let (request, _) = response.into_parts();
        return Ok(secured(too_slow(ServiceRequest::from_request(request))));
    }
    Ok(secured(response))
}

/// The JSON 404 of a path no route serves (the app's default service); a
/// path that is served, but not with this method, is a 405 (resources
/// answer it with `Allow` themselves; this is the net under them).
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    if request.resource_map().has_resource(request.path()) {
        return problem(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::MethodNotAllowed,
            &format!("{} is not served with {}", request.path(), request.method()),
        );
    }
    problem(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        &format!("no route serves {}", request.path()),
    )
}

fn problem(status: StatusCode, code: Code, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": code.as_str(), "message": message }))
}

fn is_empty(response: &ServiceResponse<BoxBody>) -> bool {
    matches!(
        response.response().body().size(),
        actix_web::body::BodySize::None | actix_web::body::BodySize::Sized(0)
    )
}

fn secured(mut response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

fn refuse(request: ServiceRequest, status: StatusCode, message: &str) -> ServiceResponse<BoxBody> {
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => problem(status, Code::TooLarge, message),
        _ => ApiError::BadRequest(message.to_owned()).error_response(),
    };
    secured(request.into_response(error))
}

/// 408, and the connection closed: what is left of the body is never read.
fn too_slow(request: ServiceRequest) -> ServiceResponse<BoxBody> {
    let mut response = problem(
        StatusCode::REQUEST_TIMEOUT,
        Code::Timeout,
        "the request body did not arrive in time",
    );
    response
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    secured(request.into_response(response))
}

const TIMED_OUT: &str = "request body stalled";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    Json,
    Form,
}

/// An HTTP/1.1 upgrade to the WebSocket protocol: a GET, whose handlers
/// read no body, so the header cannot lift a body's deadline elsewhere.
fn is_websocket_upgrade(request: &HttpRequest) -> bool {
    request.method() == actix_web::http::Method::GET
        && request
            .headers()
            .get(header::UPGRADE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("websocket"))
}

fn text_kind(request: &HttpRequest) -> Option<TextKind> {
    let media = request
        .headers()
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .split(';')
        .next()?
        .trim()
        .to_ascii_lowercase();
    if media == "application/json" || media.ends_with("+json") {
        Some(TextKind::Json)
    } else if media == "application/x-www-form-urlencoded" {
        Some(TextKind::Form)
    } else {
        None
    }
}

/// The body as a stream that fails (timed out, and says so in `stalled`)
/// when a piece takes longer than `idle` or the body runs past `deadline`.
fn timed(
    payload: Payload,
    idle: Duration,
    deadline: tokio::time::Instant,
    stalled: Rc<Cell<bool>>,
) -> impl Stream<Item = Result<Bytes, PayloadError>> {
    futures::stream::unfold(Some(payload), move |state| {
        let stalled = stalled.clone();
        async move {
            let mut payload = state?;
            let until = (tokio::time::Instant::now() + idle).min(deadline);
            match tokio::time::timeout_at(until, payload.next()).await {
                Ok(Some(piece)) => Some((piece, Some(payload))),
                Ok(None) => None,
                Err(_) => {
                    stalled.set(true);
                    Some((
                        Err(PayloadError::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            TIMED_OUT,
                        ))),
                        None,
                    ))
                }
            }
        }
    })
    .fuse()
}

enum BodyError {
    TooLarge,
    TimedOut,
    Broken(PayloadError),
}

async fn read_bounded(
    stream: impl Stream<Item = Result<Bytes, PayloadError>>,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|error| match &error {
            PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                BodyError::TimedOut
            }
            _ => BodyError::Broken(error),
        })?;
        if body.len() + piece.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&piece);
    }
    Ok(body.freeze())
}

/// Whether JSON text decodes to a string holding U+0000: a `\u0000` escape
/// (not an escaped backslash followed by `u0000`), or a raw NUL byte.
pub fn json_has_nul(text: &[u8]) -> bool {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            0 => return true,
            b'\\' => {
                if text.get(i + 1) == Some(&b'u') && text.get(i + 2..i + 6) == Some(b"0000") {
                    return true;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    false
}

/// Whether URL-encoded text (a query string, a form) decodes to U+0000.
pub fn urlencoded_has_nul(text: &[u8]) -> bool {
    text.contains(&0) || text.windows(3).any(|w| w == b"%00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_json_escapes_only_when_it_decodes_to_nul() {
        assert!(json_has_nul(br#"{"text":"a\u0000b"}"#));
        assert!(json_has_nul(b"{\"text\":\"a\0\"}"));
        assert!(!json_has_nul(br#"{"text":"a\\u0000b"}"#));
        assert!(json_has_nul(br#"{"text":"a\\\u0000b"}"#));
        assert!(!json_has_nul(br#"{"text":"\u00e0 \u0001"}"#));
        assert!(!json_has_nul(br#"{"text":"ends with \\"}"#));
    }

    #[test]
    fn nul_is_found_in_url_encoding() {
        assert!(urlencoded_has_nul(b"q=a%00b"));
        assert!(!urlencoded_has_nul(b"q=a%2500b"));
        assert!(!urlencoded_has_nul(b"q=%C3%A0&page=100"));
    }
}
