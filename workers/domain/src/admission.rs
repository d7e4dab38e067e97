//! What every admission shares, the intake's and the booking commands':
//! why a message is refused ([`Rejection`], the dead letter's reason), the
//! routing key a channel must use, the authentication floor, and the
//! identity that makes a message idempotent.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::application::ApplicationRefusal;
use sportello_contract::schemas::ContractViolation;
use sportello_contract::{Authentication, Channel, Envelope, PinKind};

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
    #[error("authentication too weak for {message_type}: {reason}")]
    WeakAuthentication {
        message_type: &'static str,
        reason: &'static str,
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

/// SPID below level 2 and the simplified half-PIN are not enough to open a
/// request; the simplified PIN is reserved to a listed set of applications.
pub(crate) fn check_authentication(
    authentication: &Authentication,
    message_type: &'static str,
) -> Result<(), Rejection> {
    match authentication {
        Authentication::Spid { level } if *level < 2 => Err(Rejection::WeakAuthentication {
            message_type,
            reason: "SPID level 2 or higher is required",
        }),
        Authentication::Pin {
            pin_kind: PinKind::Simplified,
        } => Err(Rejection::WeakAuthentication {
            message_type,
            reason: "the simplified PIN is not accepted for this service",
        }),
        _ => Ok(()),
    }
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
        scope: format!("{}:{}", message_type, envelope.principal.actor_key()),
        key: envelope.idempotency_key.clone(),
        payload_sha256: hex::encode(Sha256::digest(&payload)),
    })
}
