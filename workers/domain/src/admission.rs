//! What every admission shares, the intake's and the booking commands':
//! why a message is refused ([`Rejection`], the dead letter's reason), the
//! routing key a channel must use, the access policy's rule, and the
//! identity that makes a message idempotent.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::access_policy::{AccessPolicy, CommandRefusal};
use super::application::ApplicationRefusal;
use super::pin::verification::{needs_verification, VerificationRefusal};
use super::refusal::Code;
use super::submission::{inbox_scope, Refusal};
use sportello_contract::schemas::ContractViolation;
use sportello_contract::{Channel, Envelope, Principal};

#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Contract(#[from] ContractViolation),
    #[error("message does not fit its schema type: {0}")]
    Decode(String),
    #[error(
        "routing key `{routing_key}` does not match channel `{channel}` and type `{message_type}`"
    )]
    RoutingKeyMismatch {
        routing_key: String,
        channel: &'static str,
        message_type: String,
    },
    #[error("a {principal} may not publish {message_type} on the {channel} channel")]
    PrincipalNotAllowed {
        principal: &'static str,
        channel: &'static str,
        message_type: &'static str,
    },
    #[error("an agent's simplified-PIN identification is not verified: {0}")]
    PinVerification(VerificationRefusal),
    #[error("{message_type} refused by the access policy: {refusal}")]
    Access {
        message_type: &'static str,
        refusal: CommandRefusal,
    },
    #[error("{0} needs the citizen it concerns (on_behalf_of)")]
    MissingSubject(&'static str),
    #[error("message type {0} is not accepted on the intake queue")]
    NotAnIntakeMessage(String),
    #[error("attachment {index} ({file_name}): {reason}")]
    Attachment {
        index: usize,
        file_name: String,
        reason: String,
    },
    #[error(
        "an intermediary's request must name the contribution position (matricola) it acts for"
    )]
    IntermediaryWithoutPosition,
    #[error(
        "intermediary holds no active delegation (delega) for position {matricola} of scheme {gestione}"
    )]
    NoDelegation { matricola: String, gestione: String },
    #[error("{0}")]
    Delegation(String),
    #[error("intermediary holds no active delegation (delega) from {0} to act for them")]
    NoPersonalDelegation(String),
    #[error(transparent)]
    Application(#[from] ApplicationRefusal),
    #[error("{0}")]
    Policy(String),
    #[error("the PIN request is refused: {0}")]
    PinRequest(String),
}

impl Rejection {
    /// A stable code for programs, as a refusal answered on `reply_to`
    /// carries it (the message says the rest).
    pub fn code(&self) -> &'static str {
        self.refusal_code().as_str()
    }

    pub fn refusal_code(&self) -> Code {
        match self {
            Rejection::Contract(_) | Rejection::Decode(_) => Code::InvalidMessage,
            Rejection::RoutingKeyMismatch { .. } => Code::RoutingKeyMismatch,
            Rejection::NotAnIntakeMessage(_) => Code::UnknownMessageType,
            Rejection::PrincipalNotAllowed { .. } | Rejection::Access { .. } => Code::Forbidden,
            Rejection::PinVerification(_) => Code::PinVerificationRequired,
            Rejection::MissingSubject(_) | Rejection::IntermediaryWithoutPosition => {
                Code::MissingSubject
            }
            Rejection::NoDelegation { .. }
            | Rejection::NoPersonalDelegation(_)
            | Rejection::Delegation(_) => Code::NoDelegation,
            Rejection::Attachment { .. } => Code::InvalidAttachment,
            Rejection::Application(_) => Code::ApplicationRefused,
            Rejection::Policy(_) => Code::PolicyUnavailable,
            Rejection::PinRequest(_) => Code::PinRequestRefused,
        }
    }
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Refusal {
        Refusal::new(rejection.refusal_code(), rejection.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub message_id: Uuid,
    pub message_type: &'static str,
    /// Who acted: keys are unique per actor, never across actors.
    pub scope: String,
    pub key: String,
    /// SHA-256 of the payload, so a re-used key with different content is caught.
    pub payload_sha256: String,
}

pub(crate) fn check_routing_key(
    routing_key: &str,
    channel: Channel,
    message_type: &str,
) -> Result<(), Rejection> {
    let expected = format!("{}.{}", channel.as_str(), message_type);
    if routing_key == expected {
        Ok(())
    } else {
        Err(Rejection::RoutingKeyMismatch {
            routing_key: routing_key.to_owned(),
            channel: channel.as_str(),
            message_type: message_type.to_owned(),
        })
    }
}

/// The access policy's rule for a broker command (`access_policy`), the
/// same data the HTTP routes are checked against: SPID level 1 and the
/// simplified PIN open no request, an agent's claimed identification must
/// qualify, and a command the data does not list is refused.
pub(crate) fn check_access(
    principal: &Principal,
    message_type: &'static str,
) -> Result<(), Rejection> {
    let policy = AccessPolicy::shipped().map_err(Rejection::Policy)?;
    policy
        .admits_command(message_type, principal)
        .map_err(|refusal| Rejection::Access {
            message_type,
            refusal,
        })?;
    // Where the policy admits it, an agent's simplified-PIN claim names
    // Sportello's verification of the half; the intake checks the
    // verification itself when it applies.
    if let Principal::ContactCenterAgent {
        pin_verification_id: None,
        ..
    } = principal
    {
        if needs_verification(principal) {
            return Err(Rejection::PinVerification(VerificationRefusal::Missing));
        }
    }
    Ok(())
}

pub(crate) fn idempotency_of<P: serde::Serialize>(
    envelope: &Envelope<P>,
    message_type: &'static str,
) -> Result<Idempotency, Rejection> {
    let payload =
        serde_json::to_vec(&envelope.payload).map_err(|e| Rejection::Decode(e.to_string()))?;
    Ok(Idempotency {
        message_id: envelope.message_id,
        message_type,
        scope: inbox_scope(message_type, &envelope.principal.actor_key()),
        key: envelope.idempotency_key.clone(),
        payload_sha256: hex::encode(Sha256::digest(&payload)),
    })
}
