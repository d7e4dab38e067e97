//! The OpenAPI 3.1 description of the HTTP API, served at `GET /openapi.json`
//! for integrators to read and to generate clients from. It is generated
//! from the code: each handler's `#[utoipa::path]` (method, path,
//! parameters, body, answers with examples) and the types it answers with
//! (`#[derive(utoipa::ToSchema)]`). `tests/openapi.rs` checks that every
//! API route `http::routes` mounts is described, that every example
//! validates against its schema and that every `$ref` resolves.
//!
//! Describing a new route (the pattern of every handler, e.g.
//! `tickets::detail`):
//! 1. above the handler, `#[utoipa::path(get, path = "/x/{id}", tag = "...",
//!    params(("id" = Uuid, Path, description = "...")), responses((status =
//!    200, body = Answer, example = json!(...)), (status = 403, response =
//!    Forbidden), (status = 404, response = NotFound)))` — the refusals are
//!    the reusable responses below; 400, 401 (on secured routes) and 503 are
//!    added to every operation by `CommonProblems`;
//! 2. `#[derive(utoipa::ToSchema)]` on the answer and body types;
//! 3. the handler in `paths(...)` of [`ApiDoc`].
//!
//! The staff pages (`/ufficio`, HTML for operators) are not part of the API
//! and are left out on purpose (`endpoint::Surface::StaffPages`).

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use super::problem::{
    BadRequest, Conflict, Forbidden, Gone, Locked, NotFound, Problem, TooLarge, Unauthenticated,
    Unavailable, Unprocessable,
};
use super::{
    applications, appointments, documents, health, notifications, pin, submissions, tickets,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sportello HTTP API",
        description = "Citizen services of a social-security institute: tickets (quesiti), documents of a case and their registration (protocollazione), the notification centre, appointments. Every call but the probes and this description carries `Authorization: Bearer <JWT>` (audience `sportello`) whose `principal` claim says who asks. Errors are problem bodies `{\"error\", \"message\"}`. Answers carry `Cache-Control: no-store`. The operators' HTML pages under `/ufficio` are not part of this API.",
    ),
    paths(
        document,
        health::plain,
        health::live,
        health::ready,
        documents::list,
        documents::upload,
        documents::send_for_registration,
        documents::download,
        documents::history,
        documents::delete,
        documents::receipt,
        documents::annul,
        tickets::search,
        tickets::detail,
        tickets::take_in_charge,
        tickets::comment,
        tickets::close,
        tickets::reassign,
        tickets::offices,
        tickets::agent_reads,
        notifications::ticket_log,
        notifications::appointment_log,
        notifications::centre,
        notifications::mark_read,
        notifications::mark_unread,
        notifications::contacts,
        notifications::save_contacts,
        submissions::fate,
        appointments::availability,
        appointments::list,
        appointments::hold,
        appointments::detail,
        appointments::confirm,
        appointments::cancel,
        appointments::receipt_json,
        appointments::receipt_pdf,
        applications::list,
        applications::detail,
        applications::receipt_json,
        applications::receipt_pdf,
        applications::benefits,
        applications::catalogue,
        pin::request,
        pin::sign_in,
        pin::first_use,
        pin::agent_verification,
        pin::recovery_request,
        pin::recovery_confirm,
        pin::conversion_form,
        pin::conversion_submit,
        pin::revoke,
        pin::deliveries,
        pin::reissue,
    ),
    components(
        schemas(Problem),
        responses(
            BadRequest,
            Unauthenticated,
            Forbidden,
            NotFound,
            Conflict,
            Gone,
            TooLarge,
            Unprocessable,
            Unavailable,
            Locked
        )
    ),
    modifiers(&CommonProblems),
    security(("bearer" = [])),
    tags(
        (name = "health", description = "Probes for orchestrators"),
        (name = "documents", description = "Documents of a case, their registration and receipts"),
        (name = "tickets", description = "Back-office tickets (quesiti): history search, detail, operators' actions"),
        (name = "notifications", description = "The citizen's notification centre and contacts; the operators' delivery log"),
        (name = "appointments", description = "Office calendars and two-phase booking (Prenota, Conferma, Cancella)"),
        (name = "applications", description = "Benefit applications (domande): state, receipts, benefits; the caller's menu"),
        (name = "submissions", description = "The fate of a message a channel published: queued, applied, a duplicate, or refused with its reason"),
        (name = "pin", description = "The institute's PIN: request, sign-in, first use, recovery, conversion to dispositivo; where its halves stand and a new PIN when one never arrived"),
    )
)]
pub struct ApiDoc;

/// The bearer scheme, and the refusals every operation may answer: 400
/// (NUL, malformed input), 401 (secured operations), 503.
struct CommonProblems;

impl Modify for CommonProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT of the identity provider (RS256/ES256; HS256 in development: `sportello token`), audience `sportello`, whose `principal` claim is the envelope's principal",
                    ))
                    .build(),
            ),
        );
        let reference =
            |name: &str| RefOr::<Response>::Ref(Ref::from_response_name(name.to_owned()));
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                // An empty requirement among the operation's own: no token needed.
                let open = operation
                    .security
                    .as_ref()
                    .is_some_and(|all| all.iter().any(is_empty_requirement));
                let responses = &mut operation.responses.responses;
                responses
                    .entry("400".into())
                    .or_insert_with(|| reference("BadRequest"));
                if !open {
                    responses
                        .entry("401".into())
                        .or_insert_with(|| reference("Unauthenticated"));
                }
                responses
                    .entry("503".into())
                    .or_insert_with(|| reference("Unavailable"));
            }
        }
    }
}

fn is_empty_requirement(requirement: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(requirement).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

/// The description, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"internal\", \"message\": \"{e}\"}}"))
});

/// The description as JSON (for tests and tools).
pub fn description() -> serde_json::Value {
    serde_json::from_str(&DOCUMENT).unwrap_or_default()
}

/// `GET /openapi.json`
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    security(()),
    responses((status = 200, description = "This description (OpenAPI 3.1)", content_type = "application/json"))
)]
pub(super) async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.as_str())
}
