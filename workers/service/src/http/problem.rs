//! The refusals of the HTTP API: the [`Problem`] body every refusal answers,
//! and one reusable OpenAPI response per kind of refusal, which the
//! handlers' `#[utoipa::path]` name (`response = Forbidden`). Handlers and
//! the description (`openapi`) both use them, so they live below both.

use serde::Serialize;
use utoipa::{ToResponse, ToSchema};

/// Every refusal's body: a status and `{"error": code, "message": why}`,
/// with what the caller can do next for some codes. A citizen reads
/// `message` in Italian, with the English in `detail`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "not_found", "message": "ticket not found"}))]
pub struct Problem {
    /// A stable code for programs: `bad_request`, `unauthenticated`,
    /// `forbidden`, `not_found`, `method_not_allowed`, `invalid`,
    /// `refused`, `too_large`, `illegal_transition`, `gone`, `slot_taken`,
    /// `slot_unavailable`, `hold_expired`, `not_yet_eligible`, `limit_reached`,
    /// `conversation_required`, `internal`, ...
    pub error: String,
    /// Why, in words for people: plain Italian when the reader is a
    /// citizen (a citizen's token, or no token on a route citizens use),
    /// else English.
    pub message: String,
    /// For a citizen: the technical English the Italian `message` replaced,
    /// for the portal's logs and its support staff.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
    /// `slot_taken`: the next free slots.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub alternatives: Option<Vec<crate::appointments::FreeSlot>>,
    /// `not_yet_eligible`: when booking from this conversation opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub possible_from: Option<chrono::DateTime<chrono::Utc>>,
    /// `invalid` PIN requests: every refused field, by its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub fields: Option<Vec<crate::domain::pin::FieldError>>,
    /// `pin_locked`: until when the PIN is locked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub locked_until: Option<chrono::DateTime<chrono::Utc>>,
    /// `credential_required`: the credentials that would be accepted, as
    /// the access policy names them (`spid2`, `cie`, `pin_dispositivo`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub requires: Option<Vec<String>>,
}

/// Bad input: text holding NUL (U+0000), JSON or a query string that does
/// not parse, a path id that is not a UUID.
#[allow(dead_code)] // a description, never built
#[derive(ToResponse)]
#[response(
    description = "Bad input (NUL character, malformed JSON, query string or path)",
    example = json!({"error": "bad_request", "message": "text must not contain NUL characters (U+0000)"})
)]
pub struct BadRequest(Problem);

/// No valid bearer token.
#[allow(dead_code)] // a description, never built
#[derive(ToResponse)]
#[response(
    description = "No valid bearer token (missing, expired, not yet valid, wrong audience or issuer, too long-lived)",
    example = json!({"error": "unauthenticated", "message": "missing bearer token"})
)]
pub struct Unauthenticated(Problem);

/// The caller may not do this.
#[allow(dead_code)] // a description, never built
#[derive(ToResponse)]
#[response(
    description = "Not yours: not the case's citizen, no active delegation, another office, the other side's document (`forbidden`); or refused by the access policy before the handler: a kind of principal the route is not for (`principal_not_allowed`), or a credential it does not accept (`credential_required`, with the accepted ones in `requires`)",
    example = json!({"error": "credential_required", "message": "this (appointments) needs one of these credentials: spid2, cie, cns, eidas, pin_dispositivo; the caller has spid1", "requires": ["spid2", "cie", "cns", "eidas", "pin_dispositivo"]})
)]
pub struct Forbidden(Problem);

#[allow(dead_code)] // a description, never built
#[derive(ToResponse)]
#[response(
    description = "No such resource",
    example = json!({"error": "not_found", "message": "ticket not found"})
)]
pub struct NotFound(Problem);

#[allow(dead_code)] // a description, never built
#[derive(ToResponse)]
#[response(
    description = "Not in this state: an illegal state transition",
    example = json!({"error": "illegal_transition", "message": "a ticket is closed only from in_carico"})
)]
pub struct Conflict(Problem);

#[allow(dead_code)] // a description, never built
#[derive(ToResponse)]
#[response(
    description = "Deleted",
    example = json!({"error": "gone", "message": "the document was deleted"})
)]
pub struct Gone(Problem);

#[allow(dead_code)] // a description, never built
#[derive(ToResponse)]
#[response(
    description = "Too large: a file over DOCUMENT_MAX_BYTES, a JSON body over 64 KiB",
    example = json!({"error": "too_large", "message": "a file is larger than 3145728 bytes"})
)]
pub struct TooLarge(Problem);

#[allow(dead_code)] // a description, never built
#[derive(ToResponse)]
#[response(
    description = "Refused input: a value out of its rules",
    example = json!({"error": "invalid", "message": "visibility must be public or internal, not `secret`"})
)]
pub struct Unprocessable(Problem);

#[allow(dead_code)] // a description, never built
#[derive(ToResponse)]
#[response(
    description = "The database or the broker is unavailable: try again later",
    example = json!({"error": "internal", "message": "the service could not complete the request; try again later"})
)]
pub struct Unavailable(Problem);

#[allow(dead_code)] // a description, never built
#[derive(ToResponse)]
#[response(
    description = "The PIN is locked after repeated wrong attempts: `locked_until` says until when; recovery unlocks it",
    example = json!({"error": "pin_locked", "message": "the PIN is locked after repeated wrong attempts until 2026-11-29T10:15:00Z: wait until then, or recover it", "locked_until": "2026-11-29T10:15:00Z"})
)]
pub struct Locked(Problem);
