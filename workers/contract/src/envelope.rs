//! The envelope every channel message travels in, and the principal who sent it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::CodiceFiscale;

/// The integrator a message comes from. Each has its own broker user, which may
/// publish only routing keys that start with its own name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// MyINPS web portal.
    Web,
    /// The mobile app.
    App,
    /// Contact centre (803 164 / 06 164164).
    ContactCenter,
    /// *Cassetto previdenziale*, the contribution-records portal.
    Cassetto,
    /// The front desk of an office.
    Desk,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::Web,
        Channel::App,
        Channel::ContactCenter,
        Channel::Cassetto,
        Channel::Desk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::App => "app",
            Channel::ContactCenter => "contact_center",
            Channel::Cassetto => "cassetto",
            Channel::Desk => "desk",
        }
    }

    pub fn parse(raw: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == raw)
    }
}

/// How the identity provider authenticated the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Authentication {
    Spid {
        level: u8,
    },
    Cie,
    Cns,
    Eidas,
    /// The institute's legacy PIN.
    Pin {
        pin_kind: PinKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinKind {
    Ordinary,
    /// *PIN dispositivo*: allowed to submit applications.
    Dispositivo,
    /// The first half of a new PIN, accepted only for a listed set of applications.
    Simplified,
}

/// How a contact-centre agent identified the citizen on the phone: the
/// citizen confirmed the call with SPID, CIE or CNS on their own device, or
/// gave their PIN (whole) or, as seed 004 allows for listed services, only
/// its first half (*PIN semplificato*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identification {
    Spid,
    Cie,
    Cns,
    Pin,
    PinSimplified,
}

impl Identification {
    pub const ALL: [Identification; 5] = [
        Identification::Spid,
        Identification::Cie,
        Identification::Cns,
        Identification::Pin,
        Identification::PinSimplified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Identification::Spid => "spid",
            Identification::Cie => "cie",
            Identification::Cns => "cns",
            Identification::Pin => "pin",
            Identification::PinSimplified => "pin_simplified",
        }
    }

    pub fn parse(raw: &str) -> Option<Identification> {
        Identification::ALL.into_iter().find(|m| m.as_str() == raw)
    }
}

/// Who is acting, as the channel authenticated them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    Citizen {
        tax_code: CodiceFiscale,
        authentication: Authentication,
    },
    /// Labour consultant or patronato; may act for a position only under an active *delega*.
    Intermediary {
        tax_code: CodiceFiscale,
        authentication: Authentication,
    },
    /// A contact-centre agent acting for a citizen who identified on the phone.
    ContactCenterAgent {
        agent_id: String,
        /// The caller the agent acts for (the act-for claim).
        on_behalf_of: CodiceFiscale,
        /// How the caller was identified; required to read their tickets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identified_by: Option<Identification>,
        /// With `identified_by: pin_simplified`, over the broker: Sportello's
        /// verification of the half the caller read out
        /// (`POST /pin/agent-verifications`). Over HTTP it may come as the
        /// `X-Pin-Verification` header instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin_verification_id: Option<Uuid>,
    },
    /// Back-office or desk staff of an office (*sede*).
    Operator {
        operator_id: String,
        office: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_behalf_of: Option<CodiceFiscale>,
    },
}

impl Principal {
    /// A stable string naming the actor, used to scope idempotency keys.
    pub fn actor_key(&self) -> String {
        match self {
            Principal::Citizen { tax_code, .. } => format!("citizen:{tax_code}"),
            Principal::Intermediary { tax_code, .. } => format!("intermediary:{tax_code}"),
            Principal::ContactCenterAgent { agent_id, .. } => format!("agent:{agent_id}"),
            Principal::Operator { operator_id, .. } => format!("operator:{operator_id}"),
        }
    }

    /// The citizen the action concerns, when there is one.
    pub fn subject_tax_code(&self) -> Option<&CodiceFiscale> {
        match self {
            Principal::Citizen { tax_code, .. } | Principal::Intermediary { tax_code, .. } => {
                Some(tax_code)
            }
            Principal::ContactCenterAgent { on_behalf_of, .. } => Some(on_behalf_of),
            Principal::Operator { on_behalf_of, .. } => on_behalf_of.as_ref(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Citizen { .. } => "citizen",
            Principal::Intermediary { .. } => "intermediary",
            Principal::ContactCenterAgent { .. } => "contact_center_agent",
            Principal::Operator { .. } => "operator",
        }
    }
}

/// A message published by a channel. `P` is the payload of the message type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<P> {
    pub message_id: Uuid,
    #[serde(rename = "type")]
    pub message_type: String,
    pub schema_version: u32,
    pub channel: Channel,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: String,
    /// Same key on a resend (the citizen pressing F5) means the same request.
    pub idempotency_key: String,
    pub principal: Principal,
    pub payload: P,
}
