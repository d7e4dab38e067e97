//! Handlers of the PIN (seed 003): request, sign-in, first use, recovery,
//! conversion to *dispositivo*. The request, sign-in, first use and
//! recovery need no token (the citizen has no credential yet, or lost it);
//! a contact-centre agent requesting for a caller sends theirs. No PIN is
//! ever in a path or a query string (the access log writes paths): they
//! travel in JSON bodies only.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::caller::{correlation_id, optional_caller};
use super::documents::{pdf_download, read_upload};
use super::endpoint::{api, Endpoint};
use super::problem::{Conflict, Forbidden, Unprocessable};
use super::{ApiError, ApiState, Caller};
use crate::contract::pin::PinRequestBody;
use crate::contract::{Channel, Principal};
use crate::pin::limits::Step;
use crate::pin::reissue::{HalvesView, ReissueBody, Reissued};
use crate::pin::verification::Verified;
use crate::pin::{self, conversion, recovery, Issued, PinError, SignedIn};

/// One attempt from the client address's bucket (`PIN_ADDRESS_PER_MINUTE`,
/// `PIN_ADDRESS_BURST`), before anything is hashed; over it, 429.
fn admit(state: &ApiState, http: &HttpRequest, step: Step) -> Result<(), ApiError> {
    let address = super::client::of(http);
    state.pin.limits.admit(step, address).map_err(|wait| {
        let retry_after = crate::domain::pin::limits::retry_after_seconds(wait);
        tracing::info!(step = step.as_str(), %address, retry_after, "PIN attempt over the address limit");
        ApiError::TooManyRequests {
            message: format!(
                "too many PIN attempts from this address: try again in {retry_after} seconds"
            ),
            retry_after,
        }
    })
}

pub(super) fn endpoints() -> Vec<Endpoint> {
    use actix_web::http::Method as M;
    vec![
        api("/pin/requests", M::POST, request),
        api("/pin/sign-in", M::POST, sign_in),
        api("/pin/first-use", M::POST, first_use),
        api("/pin/agent-verifications", M::POST, agent_verification),
        api("/pin/recovery", M::POST, recovery_request),
        api("/pin/recovery/confirmation", M::POST, recovery_confirm),
        api("/pin/conversion/form.pdf", M::GET, conversion_form),
        api("/pin/conversion", M::POST, conversion_submit),
        api("/pin/revocation", M::POST, revoke),
        api("/pin/deliveries", M::GET, deliveries),
        api("/pin/reissues", M::POST, reissue),
    ]
}

#[utoipa::path(
    post,
    path = "/pin/requests",
    operation_id = "request_pin",
    tag = "pin",
    description = "*Richiesta PIN* (web, or the contact centre with an agent's token acting for the same tax code): personal data consistent with the tax code, residence in Italy or abroad, at least one of home phone and mobile and one of email and PEC (phones with their international prefix). A 16-character initial PIN is issued: the first 8 characters go by SMS, email or PEC (`first_half_to`), the second 8 by post to the residence. Refused fields are listed by name in `fields`. A tax code that already has a PIN is refused (409).",
    request_body = PinRequestBody,
    responses(
        (status = 201, description = "Issued", body = Issued, example = json!({"tax_code": "RSSMRA85T10A562S", "state": "issued", "first_half_to": "sms:*********4567", "second_half_to": "post"})),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
    security((), ("bearer" = []))
)]
pub async fn request(
    state: web::Data<ApiState>,
    http: HttpRequest,
    body: web::Json<PinRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let channel = match optional_caller(&http).await? {
        None => Channel::Web,
        Some(Caller {
            principal: Principal::ContactCenterAgent { on_behalf_of, .. },
            ..
        }) => {
            if body
                .tax_code
                .as_deref()
                .map(str::trim)
                .map(str::to_ascii_uppercase)
                != Some(on_behalf_of.to_string())
            {
                return Err(PinError::Forbidden(
                    "an agent requests a PIN only for the caller it acts for (on_behalf_of)".into(),
                )
                .into());
            }
            Channel::ContactCenter
        }
        Some(_) => return Err(PinError::Forbidden(
            "a PIN is requested by the citizen (no token) or by a contact-centre agent for them"
                .into(),
        )
        .into()),
    };
    let issued = pin::request(
        &state.pool,
        &state.pin,
        &body,
        channel,
        &correlation_id(&http),
    )
    .await?;
    Ok(HttpResponse::Created().json(issued))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    tax_code: String,
    /// 8 characters: the first half of a new PIN (simplified access) or
    /// the citizen's own PIN. 16: refused, first use comes first.
    pin: String,
}

#[utoipa::path(
    post,
    path = "/pin/sign-in",
    operation_id = "pin_sign_in",
    tag = "pin",
    description = "Sign-in with the tax code and the PIN: the first half alone gives a `simplified` token (a PIN requested and never used), the citizen's own PIN an `ordinary` or `dispositivo` one. The token is signed by Sportello (`kid` `sportello-pin`) and lives 30 minutes. Wrong attempts are counted per tax code across processes: after `PIN_MAX_FAILURES` in a row the PIN locks (`pin_locked`, 423, with `locked_until`) for `PIN_LOCK_MINUTES`, doubling with each lock in a row; it unlocks by itself then, or by recovery.",
    request_body = SignInBody,
    responses(
        (status = 200, description = "Signed in", body = SignedIn, example = json!({"access_token": "eyJ…", "token_type": "Bearer", "expires_in": 1800, "pin_kind": "simplified"})),
        (status = 401, response = super::problem::Unauthenticated),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 423, response = super::problem::Locked),
    ),
    security(())
)]
pub async fn sign_in(
    state: web::Data<ApiState>,
    http: HttpRequest,
    body: web::Json<SignInBody>,
) -> Result<HttpResponse, ApiError> {
    admit(&state, &http, Step::SignIn)?;
    let signed = pin::sign_in(
        &state.pool,
        &state.pin,
        &body.tax_code,
        &body.pin,
        &correlation_id(&http),
    )
    .await?;
    Ok(HttpResponse::Ok().json(signed))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FirstUseBody {
    tax_code: String,
    /// All 16 characters of the initial PIN.
    pin: String,
    /// The new PIN: 8 letters and digits, at least one of each.
    new_pin: String,
}

#[utoipa::path(
    post,
    path = "/pin/first-use",
    operation_id = "pin_first_use",
    tag = "pin",
    description = "First use (*primo accesso*): the 16-character initial PIN is replaced by the citizen's 8-character PIN; answers a token like a sign-in. Wrong attempts count toward the lock like a sign-in's.",
    request_body = FirstUseBody,
    responses(
        (status = 200, description = "PIN replaced; signed in", body = SignedIn, example = json!({"access_token": "eyJ…", "token_type": "Bearer", "expires_in": 1800, "pin_kind": "ordinary"})),
        (status = 401, response = super::problem::Unauthenticated),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 423, response = super::problem::Locked),
    ),
    security(())
)]
pub async fn first_use(
    state: web::Data<ApiState>,
    http: HttpRequest,
    body: web::Json<FirstUseBody>,
) -> Result<HttpResponse, ApiError> {
    admit(&state, &http, Step::FirstUse)?;
    let signed = pin::first_use(
        &state.pool,
        &state.pin,
        &body.tax_code,
        &body.pin,
        &body.new_pin,
        &correlation_id(&http),
    )
    .await?;
    Ok(HttpResponse::Ok().json(signed))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentVerificationBody {
    /// The 8 characters the caller reads out: the first half of their PIN.
    pin: String,
}

#[utoipa::path(
    post,
    path = "/pin/agent-verifications",
    operation_id = "pin_agent_verification",
    tag = "pin",
    description = "A contact-centre agent checks the first half of the PIN that the caller (its token's `on_behalf_of`) reads out, against its stored hash. Wrong halves count toward the PIN's lock like a sign-in (423 once locked), and attempts are limited per client address (429 with `Retry-After`). A match is recorded and answers a `verification_id`, valid 15 minutes: an agent whose token claims `identified_by: pin_simplified` sends it as `X-Pin-Verification` on every other request for this caller, or is refused 403 `pin_verification_required`. Only a PIN requested and never used has a simplified half (409 otherwise).",
    request_body = AgentVerificationBody,
    responses(
        (status = 201, description = "Verified", body = Verified, example = json!({"verification_id": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a29aa02", "tax_code": "RSSMRA85T10A562S", "verified_at": "2026-12-07T09:00:00Z", "expires_at": "2026-12-07T09:15:00Z"})),
        (status = 401, response = super::problem::Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 423, response = super::problem::Locked),
    ),
    security(("bearer" = []))
)]
pub async fn agent_verification(
    state: web::Data<ApiState>,
    http: HttpRequest,
    body: web::Json<AgentVerificationBody>,
) -> Result<HttpResponse, ApiError> {
    let caller = super::caller::unverified(&http).await?;
    admit(&state, &http, Step::AgentCheck)?;
    let verified = pin::verification::verify_half(
        &state.pool,
        &state.pin,
        &caller.principal,
        &body.pin,
        &caller.correlation_id,
    )
    .await?;
    Ok(HttpResponse::Created().json(verified))
}

#[utoipa::path(
    post,
    path = "/pin/recovery",
    operation_id = "pin_recovery",
    tag = "pin",
    description = "*Hai smarrito il PIN?*: the tax code and at least two of mobile, email and PEC as on record. If they match, an email to the address on record carries the link to confirm (valid 24 hours). Only for a PIN whose first use was completed (409 otherwise: revoke and request a new one).",
    request_body = recovery::RecoveryRequest,
    responses(
        (status = 202, description = "The confirmation email is on its way", body = serde_json::Value, example = json!({"message": "ti abbiamo inviato una email per confermare il ripristino"})),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
    security(())
)]
pub async fn recovery_request(
    state: web::Data<ApiState>,
    http: HttpRequest,
    body: web::Json<recovery::RecoveryRequest>,
) -> Result<HttpResponse, ApiError> {
    admit(&state, &http, Step::Recovery)?;
    let requested = recovery::request(&state.pool, &state.pin, &body, &correlation_id(&http)).await;
    if matches!(requested, Err(PinError::ContactsMismatch)) {
        state.pin.limits.failed(Step::Recovery);
    }
    requested?;
    Ok(HttpResponse::Accepted()
        .json(json!({"message": "ti abbiamo inviato una email per confermare il ripristino"})))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmationBody {
    /// The `token` of the link in the email.
    token: String,
}

#[utoipa::path(
    post,
    path = "/pin/recovery/confirmation",
    operation_id = "pin_recovery_confirmation",
    tag = "pin",
    description = "Confirms a recovery with the link's token: a new 16-character PIN is issued, the first half on one contact given and the second on the other; it is replaced at first use. Also lifts a lock. A link works once.",
    request_body = ConfirmationBody,
    responses(
        (status = 200, description = "New PIN sent", body = serde_json::Value, example = json!({"state": "issued", "message": "il nuovo PIN è stato inviato, metà su un recapito e metà sull'altro"})),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
    security(())
)]
pub async fn recovery_confirm(
    state: web::Data<ApiState>,
    http: HttpRequest,
    body: web::Json<ConfirmationBody>,
) -> Result<HttpResponse, ApiError> {
    recovery::confirm(&state.pool, &state.pin, &body.token, &correlation_id(&http)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "state": "issued",
        "message": "il nuovo PIN è stato inviato, metà su un recapito e metà sull'altro"
    })))
}

#[utoipa::path(
    get,
    path = "/pin/conversion/form.pdf",
    operation_id = "pin_conversion_form",
    tag = "pin",
    description = "The pre-filled request to convert the caller's ordinary PIN into *PIN dispositivo*, to print, sign and upload with an identity document. Only a citizen signed in with an ordinary PIN.",
    responses(
        (status = 200, description = "The form", content_type = "application/pdf", body = Vec<u8>),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = []))
)]
pub async fn conversion_form(
    state: web::Data<ApiState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let pdf = conversion::form_pdf(&state.pool, &caller.principal).await?;
    Ok(pdf_download("richiesta-pin-dispositivo.pdf", pdf))
}

#[utoipa::path(
    post,
    path = "/pin/conversion",
    operation_id = "pin_conversion",
    tag = "pin",
    description = "Uploads the signed form and an identity document (multipart: two `file` parts, the form first; `conformity` = true): a back-office case is opened from them (a `request.submitted`, ambito `pin_dispositivo`, routed to the office of the residence). Its operators close it `accolta` (the PIN becomes dispositivo at the next sign-in) or `respinta`; the citizen is notified of the outcome. `message_id` finds the case once opened (`GET /tickets`).",
    request_body(content = Vec<u8>, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "The case is being opened", body = serde_json::Value, example = json!({"message_id": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a29aa01"})),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
    security(("bearer" = []))
)]
pub async fn conversion_submit(
    state: web::Data<ApiState>,
    caller: Caller,
    multipart: Multipart,
) -> Result<HttpResponse, ApiError> {
    let upload = read_upload(multipart, state.max_document_bytes).await?;
    let message_id = conversion::submit(
        &state.pool,
        &caller.principal,
        upload.files,
        upload.conformity_asserted,
        state.max_document_bytes,
        &caller.correlation_id,
    )
    .await?;
    Ok(HttpResponse::Accepted().json(json!({ "message_id": message_id })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationBody {
    tax_code: String,
}

#[utoipa::path(
    post,
    path = "/pin/revocation",
    operation_id = "pin_revocation",
    tag = "pin",
    description = "*Revoca*: the PIN of `tax_code` is revoked (an operator at an office, for a citizen who lost the initial PIN; or the citizen, signed in with another credential or the PIN). Its hashes and any half still waiting to be sent or posted are deleted; a new request can follow.",
    request_body = RevocationBody,
    responses(
        (status = 200, description = "Revoked", body = serde_json::Value, example = json!({"state": "revoked"})),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    state: web::Data<ApiState>,
    caller: Caller,
    body: web::Json<RevocationBody>,
) -> Result<HttpResponse, ApiError> {
    pin::revoke(
        &state.pool,
        &caller.principal,
        &body.tax_code,
        &caller.correlation_id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"state": "revoked"})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// The citizen; by default the one the token acts for (`on_behalf_of`).
    /// Never logged: the access log has no query string.
    tax_code: Option<String>,
}

#[utoipa::path(
    get,
    path = "/pin/deliveries",
    operation_id = "pin_deliveries",
    tag = "pin",
    description = "Where the halves of a citizen's current PIN stand, for a contact-centre agent acting for the caller (its token's `on_behalf_of`) or an operator of the office competent for the citizen's residence (triage for residents abroad); anyone else 403. Each half sent by SMS, email or PEC: masked address, `pending` (with `attempts` and `next_attempt_at` while it is retried with backoff), `sent` or `failed` (after the last try, or refused for good), and a label to read out; the letter (`queued` or `handed_to_post`); whether a new PIN may be issued now and in place of which half (`reissue.replaces`, for `POST /pin/reissues`); the reissues so far and who asked. No half is ever in it: once a half failed it is not kept anywhere.",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "The halves", body = HalvesView, example = json!({
            "tax_code": "RSSMRA85T10A562S",
            "state": "issued",
            "issued_at": "2026-12-07T09:00:00Z",
            "halves": [{
                "delivery_id": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a29aa03",
                "half": "first",
                "to": "sms:*********4567",
                "state": "failed",
                "label": "invio non riuscito dopo l'ultimo tentativo: serve un nuovo PIN",
                "attempts": 8,
                "next_attempt_at": null,
                "queued_at": "2026-12-07T09:00:00Z",
                "sent_at": null
            }],
            "letter": {"state": "queued", "queued_at": "2026-12-07T09:00:00Z", "handed_at": null},
            "reissue": {"possible": true, "replaces": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a29aa03", "reason": null},
            "reissues": []
        })),
        (status = 403, response = Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 422, response = Unprocessable),
    ),
    security(("bearer" = []))
)]
pub async fn deliveries(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let view =
        pin::reissue::deliveries(&state.pool, &caller.principal, query.tax_code.as_deref()).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(
    post,
    path = "/pin/reissues",
    operation_id = "pin_reissue",
    tag = "pin",
    description = "*Nuovo PIN*: a new 16-character PIN in place of the current one, whose half `replaces` (a `delivery_id` of `GET /pin/deliveries`) failed after its last delivery attempt. A contact-centre agent acting for the caller, or an operator of the office competent for the residence; who asked is recorded. The old PIN is superseded at once (its hashes replaced, its letter not yet posted withdrawn); the new first half goes by `first_half_to` (`sms`, `email` or `pec`; by default the medium that failed) to the contact on record, never to one in the request, and the second half by a new letter to the residence. Idempotent: naming the same half again answers the first reissue (200, `repeated: true`) and issues nothing. Refused (409) while a half is still being sent, when nothing failed, when the PIN's first use was done, and when the half named is not of the current PIN.",
    request_body = ReissueBody,
    responses(
        (status = 201, description = "A new PIN was issued", body = Reissued, example = json!({
            "reissue_id": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a29aa04",
            "tax_code": "RSSMRA85T10A562S",
            "state": "issued",
            "replaces": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a29aa03",
            "first_half_to": "sms:*********4567",
            "second_half_to": "post",
            "requested_by_kind": "contact_center_agent",
            "requested_by": "CC0042",
            "reissued_at": "2026-12-07T10:05:00Z",
            "repeated": false
        })),
        (status = 200, description = "The same half was named before: the first reissue", body = Reissued),
        (status = 403, response = Forbidden),
        (status = 404, response = super::problem::NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
    security(("bearer" = []))
)]
pub async fn reissue(
    state: web::Data<ApiState>,
    caller: Caller,
    body: web::Json<ReissueBody>,
) -> Result<HttpResponse, ApiError> {
    let reissued = pin::reissue::reissue(
        &state.pool,
        &state.pin,
        &caller.principal,
        &body,
        &caller.correlation_id,
    )
    .await?;
    Ok(if reissued.repeated {
        HttpResponse::Ok().json(reissued)
    } else {
        HttpResponse::Created().json(reissued)
    })
}
