//! Who may do what, as data: the credential each service requires and the
//! kinds of principal the submission windows (`window`) name.

use serde::{Deserialize, Serialize};

use sportello_contract::{Authentication, PinKind};

/// A credential as the access policy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// SPID level 2 or higher.
    Spid2,
    Cie,
    Cns,
    Eidas,
    /// *PIN dispositivo*.
    PinDispositivo,
    /// *PIN ordinario*: consultation only.
    PinOrdinary,
    /// The first half of a new PIN (*PIN semplificato*).
    PinSimplified,
}

impl Credential {
    /// The credential an authentication counts as (SPID level 1 counts as none).
    pub fn of(authentication: &Authentication) -> Option<Credential> {
        match authentication {
            Authentication::Spid { level } if *level >= 2 => Some(Credential::Spid2),
            Authentication::Spid { .. } => None,
            Authentication::Cie => Some(Credential::Cie),
            Authentication::Cns => Some(Credential::Cns),
            Authentication::Eidas => Some(Credential::Eidas),
            Authentication::Pin { pin_kind } => Some(match pin_kind {
                PinKind::Dispositivo => Credential::PinDispositivo,
                PinKind::Ordinary => Credential::PinOrdinary,
                PinKind::Simplified => Credential::PinSimplified,
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Credential::Spid2 => "spid2",
            Credential::Cie => "cie",
            Credential::Cns => "cns",
            Credential::Eidas => "eidas",
            Credential::PinDispositivo => "pin_dispositivo",
            Credential::PinOrdinary => "pin_ordinary",
            Credential::PinSimplified => "pin_simplified",
        }
    }
}

/// The kinds of principal a window or a service names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    Citizen,
    Intermediary,
    ContactCenterAgent,
    Operator,
}

impl PrincipalKind {
    pub fn parse(kind: &str) -> Option<PrincipalKind> {
        match kind {
            "citizen" => Some(PrincipalKind::Citizen),
            "intermediary" => Some(PrincipalKind::Intermediary),
            "contact_center_agent" => Some(PrincipalKind::ContactCenterAgent),
            "operator" => Some(PrincipalKind::Operator),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Citizen => "citizen",
            PrincipalKind::Intermediary => "intermediary",
            PrincipalKind::ContactCenterAgent => "contact_center_agent",
            PrincipalKind::Operator => "operator",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn credentials_as_the_policy_names_them() {
        assert_eq!(Credential::of(&Authentication::Spid { level: 1 }), None);
        assert_eq!(
            Credential::of(&Authentication::Spid { level: 3 }),
            Some(Credential::Spid2)
        );
        assert_eq!(
            Credential::of(&Authentication::Pin {
                pin_kind: PinKind::Simplified
            }),
            Some(Credential::PinSimplified)
        );
    }
}
