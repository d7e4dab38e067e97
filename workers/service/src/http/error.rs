//! How failures look on the wire: a status and `{"error": code, "message": why}`
//! (in Italian for a citizen: `wording`).

use actix_web::{http::StatusCode, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use super::problem::Problem;
use crate::applications::ApplicationError;
use crate::appointments::AppointmentError;
use crate::documents::DocumentError;
use crate::domain::access_policy::AccessRefusal;
use crate::domain::appointment::StateRefusal;
use crate::domain::document::IllegalTransition;
use crate::domain::pin::verification::VerificationRefusal;
use crate::domain::pin::SignInRefusal;
use crate::domain::refusal::Code;
use crate::domain::ticket::LifecycleError;
use crate::notifications::centre::CentreError;
use crate::pin::PinError;
use crate::submissions::SubmissionError;
use crate::tickets::TicketError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Documents(#[from] DocumentError),
    #[error(transparent)]
    Tickets(#[from] TicketError),
    #[error(transparent)]
    Notifications(#[from] CentreError),
    #[error(transparent)]
    Appointments(#[from] AppointmentError),
    #[error(transparent)]
    Applications(#[from] ApplicationError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Submissions(#[from] SubmissionError),
    /// Over a rate limit: try again after `retry_after` seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// An agent's unverified simplified-PIN claim, or its verification refused.
    #[error(transparent)]
    Unverified(#[from] VerificationRefusal),
    /// Refused by the access policy before any handler ran.
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The stable code; every one has its citizen's Italian
    /// (`domain::refusal`), so the wording cannot miss a refusal.
    pub(crate) fn code(&self) -> Code {
        match self {
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::BadRequest(_) => Code::BadRequest,
            ApiError::Internal(_) => Code::Internal,
            ApiError::TooManyRequests { .. } => Code::TooManyRequests,
            ApiError::Unverified(_) => Code::PinVerificationRequired,
            ApiError::Access(refusal) => refusal.code(),
            ApiError::Tickets(e) => match e {
                TicketError::NotFound => Code::NotFound,
                TicketError::Forbidden(_) => Code::Forbidden,
                TicketError::Invalid(_) | TicketError::Filter(_) => Code::Invalid,
                TicketError::Lifecycle(LifecycleError::IllegalTransition { .. }) => {
                    Code::IllegalTransition
                }
                TicketError::Lifecycle(_) => Code::Invalid,
                TicketError::UnknownOffice(_) => Code::UnknownOffice,
                TicketError::Database(_) | TicketError::Encoding(_) => Code::Internal,
            },
            // One code for HTTP and the broker's refusals.
            ApiError::Appointments(e) => e.code(),
            ApiError::Applications(e) => match e {
                ApplicationError::NotFound => Code::NotFound,
                ApplicationError::Forbidden(_) => Code::Forbidden,
                ApplicationError::Invalid(_) => Code::Invalid,
                ApplicationError::Policy(_) | ApplicationError::Database(_) => Code::Internal,
            },
            // One code for HTTP and the broker's answers.
            ApiError::Pin(e) => e.code(),
            ApiError::Submissions(e) => match e {
                SubmissionError::NotFound => Code::NotFound,
                SubmissionError::Invalid(_) => Code::Invalid,
                SubmissionError::Database(_) => Code::Internal,
            },
            ApiError::Notifications(e) => match e {
                CentreError::NotFound => Code::NotFound,
                CentreError::Forbidden(_) => Code::Forbidden,
                CentreError::Invalid(_) => Code::Invalid,
                CentreError::Database(_) => Code::Internal,
            },
            ApiError::Documents(e) => match e {
                DocumentError::NotFound(_) => Code::NotFound,
                DocumentError::Forbidden(_) => Code::Forbidden,
                DocumentError::Refused(_) | DocumentError::Registration(_) => Code::Refused,
                DocumentError::TooLarge { .. } => Code::TooLarge,
                DocumentError::IllegalTransition(refusal) if is_not_yours(refusal) => {
                    Code::Forbidden
                }
                DocumentError::IllegalTransition(_) => Code::IllegalTransition,
                DocumentError::Gone => Code::Gone,
                DocumentError::YearChanged => Code::Retry,
                DocumentError::Storage(_)
                | DocumentError::Database(_)
                | DocumentError::Encoding(_) => Code::Internal,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unverified(_) | ApiError::Access(_) => StatusCode::FORBIDDEN,
            ApiError::Tickets(e) => match e {
                TicketError::NotFound => StatusCode::NOT_FOUND,
                TicketError::Forbidden(_) => StatusCode::FORBIDDEN,
                TicketError::Invalid(_) | TicketError::Filter(_) => StatusCode::BAD_REQUEST,
                TicketError::Lifecycle(LifecycleError::IllegalTransition { .. }) => {
                    StatusCode::CONFLICT
                }
                TicketError::Lifecycle(_) | TicketError::UnknownOffice(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                TicketError::Database(e) if crate::store::is_transient(e) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                TicketError::Database(_) | TicketError::Encoding(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
            ApiError::Applications(e) => match e {
                ApplicationError::NotFound => StatusCode::NOT_FOUND,
                ApplicationError::Forbidden(_) => StatusCode::FORBIDDEN,
                ApplicationError::Invalid(_) => StatusCode::BAD_REQUEST,
                ApplicationError::Database(e) if crate::store::is_transient(e) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ApplicationError::Policy(_) | ApplicationError::Database(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
            ApiError::Appointments(e) => match e {
                AppointmentError::NotFound
                | AppointmentError::UnknownOffice(_)
                | AppointmentError::UnknownDesk { .. } => StatusCode::NOT_FOUND,
                AppointmentError::Forbidden(_) => StatusCode::FORBIDDEN,
                AppointmentError::Invalid(_)
                | AppointmentError::Slot(_)
                | AppointmentError::NotYetEligible(_)
                | AppointmentError::ConversationRequired(_)
                | AppointmentError::SchemeClosed(_)
                | AppointmentError::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
                AppointmentError::SlotTaken { .. }
                | AppointmentError::LimitReached(_)
                | AppointmentError::NotConfirmed
                | AppointmentError::State(_) => match e {
                    AppointmentError::State(StateRefusal::HoldExpired) => StatusCode::GONE,
                    _ => StatusCode::CONFLICT,
                },
                AppointmentError::Database(e) if crate::store::is_transient(e) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                AppointmentError::Database(_) | AppointmentError::Encoding(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
            ApiError::Pin(e) => match e {
                PinError::Invalid(_) | PinError::ContactsMismatch | PinError::LinkInvalid => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                PinError::AlreadyIssued
                | PinError::RecoveryNotAvailable
                | PinError::Conflict(_)
                | PinError::Reissue(_) => StatusCode::CONFLICT,
                PinError::SignIn(refusal) => match refusal {
                    SignInRefusal::Unknown | SignInRefusal::Wrong { .. } => {
                        StatusCode::UNAUTHORIZED
                    }
                    SignInRefusal::Locked { .. } => StatusCode::LOCKED,
                    SignInRefusal::Revoked => StatusCode::FORBIDDEN,
                    SignInRefusal::FirstUseRequired
                    | SignInRefusal::AlreadyReplaced
                    | SignInRefusal::NotSimplified => StatusCode::CONFLICT,
                },
                PinError::Forbidden(_) => StatusCode::FORBIDDEN,
                PinError::NotFound(_) => StatusCode::NOT_FOUND,
                PinError::Database(e) if crate::store::is_transient(e) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                PinError::Refused(_)
                | PinError::Crypto(_)
                | PinError::Database(_)
                | PinError::Encoding(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Submissions(e) => match e {
                SubmissionError::NotFound => StatusCode::NOT_FOUND,
                SubmissionError::Invalid(_) => StatusCode::BAD_REQUEST,
                SubmissionError::Database(e) if crate::store::is_transient(e) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                SubmissionError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Notifications(e) => match e {
                CentreError::NotFound => StatusCode::NOT_FOUND,
                CentreError::Forbidden(_) => StatusCode::FORBIDDEN,
                CentreError::Invalid(_) => StatusCode::BAD_REQUEST,
                CentreError::Database(e) if crate::store::is_transient(e) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                CentreError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Documents(e) => match e {
                DocumentError::NotFound(_) => StatusCode::NOT_FOUND,
                DocumentError::Forbidden(_) => StatusCode::FORBIDDEN,
                DocumentError::Refused(_) | DocumentError::Registration(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                DocumentError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                DocumentError::IllegalTransition(refusal) if is_not_yours(refusal) => {
                    StatusCode::FORBIDDEN
                }
                DocumentError::IllegalTransition(_) => StatusCode::CONFLICT,
                DocumentError::Gone => StatusCode::GONE,
                DocumentError::YearChanged => StatusCode::SERVICE_UNAVAILABLE,
                DocumentError::Database(e) if crate::store::is_transient(e) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                DocumentError::Storage(_)
                | DocumentError::Database(_)
                | DocumentError::Encoding(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // Internal details go to the log, not to the caller.
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "the service could not complete the request; try again later".to_owned()
        } else {
            self.to_string()
        };
        let mut problem = Problem {
            error: self.code().as_str().to_owned(),
            detail: None,
            message,
            alternatives: None,
            possible_from: None,
            fields: None,
            locked_until: None,
            requires: None,
        };
        // What the caller can do next: other slots, or the day booking opens.
        match self {
            ApiError::Appointments(AppointmentError::SlotTaken { alternatives }) => {
                problem.alternatives = Some(alternatives.clone());
            }
            ApiError::Appointments(AppointmentError::NotYetEligible(not_yet)) => {
                problem.possible_from = Some(not_yet.possible_from);
            }
            ApiError::Pin(PinError::Invalid(fields)) => {
                problem.fields = Some(fields.clone());
            }
            ApiError::Pin(PinError::SignIn(SignInRefusal::Locked { until })) => {
                problem.locked_until = Some(*until);
            }
            ApiError::Access(refusal @ AccessRefusal::Credential { .. }) => {
                problem.requires =
                    Some(refusal.accepted().into_iter().map(str::to_owned).collect());
            }
            _ => {}
        }
        let mut response = HttpResponse::build(status);
        if let ApiError::TooManyRequests { retry_after, .. } = self {
            response.insert_header((
                actix_web::http::header::RETRY_AFTER,
                retry_after.to_string(),
            ));
        }
        response.json(problem)
    }
}

/// A transition refused because of who asks (not the document's state): a
/// matter of rights, 403, not a conflict.
fn is_not_yours(refusal: &IllegalTransition) -> bool {
    matches!(
        refusal,
        IllegalTransition::NotTheSender
            | IllegalTransition::NotAnOperator
            | IllegalTransition::NotTheRegister
    )
}

pub fn json_error(error: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    match error {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            actix_web::error::InternalError::from_response(
                "",
                HttpResponse::PayloadTooLarge().json(json!({
                    "error": Code::TooLarge.as_str(),
                    "message": format!("{error}"),
                })),
            )
            .into()
        }
        _ => ApiError::BadRequest(format!("invalid JSON body: {error}")).into(),
    }
}

pub fn path_error(error: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid path: {error}")).into()
}

pub fn query_error(
    error: actix_web::error::QueryPayloadError,
    _: &HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query string: {error}")).into()
}
