//! The access policy at the HTTP door (`domain::access_policy`, the data in
//! `workers/config/access.json`). Before any handler runs, the request's
//! route is looked up, its token verified and its principal admitted or
//! refused (401, 403 `principal_not_allowed` or `credential_required`).
//! Handlers then check what the policy cannot: whether this ticket is this
//! caller's.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpMessage;

use super::caller::{self, Admitted};
use super::ApiError;
use crate::domain::access_policy::{AccessPolicy, Rule};

/// A route with no entry in the policy is refused (500, logged): no route
/// is ever open because somebody forgot it. A method the route does not
/// serve passes on, to be answered 405 with `Allow`.
pub(super) async fn enforce(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Refusals are responses, not errors, so that the edge still puts its
    // headers on them (`no-store`, `nosniff`).
    let refuse = |request: ServiceRequest, error: ApiError| Ok(request.error_response(error));
    let Some(pattern) = request.match_pattern() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let policy = match AccessPolicy::shipped() {
        Ok(policy) => policy,
        Err(error) => return refuse(request, ApiError::Internal(error)),
    };
    match policy.route(request.method().as_str(), &pattern) {
        Some(Rule::Principals(admission)) => {
            let caller = match caller::authenticate(request.request()).await {
                Ok(caller) => caller,
                Err(error) => return refuse(request, error),
            };
            if let Err(refusal) = admission.admits(&caller.principal) {
                tracing::info!(
                    route = %pattern,
                    principal = caller.principal.kind(),
                    %refusal,
                    "refused by the access policy"
                );
                return refuse(request, ApiError::Access(refusal));
            }
            request.extensions_mut().insert(Admitted(caller.principal));
        }
        Some(Rule::Public | Rule::StaffSession) => {}
        None if policy.routes().any(|(_, path)| path == pattern) => {}
        None => {
            let error = ApiError::Internal(format!(
                "{} {pattern} has no access policy (workers/config/access.json)",
                request.method()
            ));
            return refuse(request, error);
        }
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}
