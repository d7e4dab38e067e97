//! The agent's check of a caller's PIN half over the broker
//! (`pin.verification_requested`): what is admitted before the half is
//! compared (`verification` judges what a check is worth afterwards).

use sportello_contract::pin::PinVerificationRequested;
use sportello_contract::{Envelope, Principal};

/// `pin.verification_requested`: the broker's door to the agent's check.
pub const VERIFICATION_REQUESTED: &str = "pin.verification_requested";

/// Why a check request over the broker is not even tried. Its words never
/// repeat the message: the message carries a PIN half.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckRequestRefusal {
    #[error("the message is not a valid pin.verification_requested v1 (details are not given: it carries a PIN half)")]
    Malformed,
    #[error("{0}")]
    Refused(String),
}

/// Admits a `pin.verification_requested` published with `routing_key`: its
/// schema, its routing key, an agent on the contact centre's channel, and
/// the access policy.
pub fn admit_check_request(
    routing_key: &str,
    body: &[u8],
) -> Result<Envelope<PinVerificationRequested>, CheckRequestRefusal> {
    let value = sportello_contract::schemas::catalogue()
        .validate_bytes(body)
        .map_err(|_| CheckRequestRefusal::Malformed)?;
    if value["type"] != VERIFICATION_REQUESTED {
        return Err(CheckRequestRefusal::Refused(format!(
            "only {VERIFICATION_REQUESTED} is answered here"
        )));
    }
    let envelope: Envelope<PinVerificationRequested> =
        serde_json::from_value(value).map_err(|_| CheckRequestRefusal::Malformed)?;
    let refused = |rejection: crate::admission::Rejection| {
        CheckRequestRefusal::Refused(rejection.to_string())
    };
    crate::admission::check_routing_key(routing_key, envelope.channel, VERIFICATION_REQUESTED)
        .map_err(refused)?;
    if !matches!(
        (&envelope.channel, &envelope.principal),
        (
            sportello_contract::Channel::ContactCenter,
            Principal::ContactCenterAgent { .. }
        )
    ) {
        return Err(CheckRequestRefusal::Refused(
            "only a contact-centre agent, on its channel, checks a caller's PIN half".into(),
        ));
    }
    // The policy alone: the check is what verifies a simplified-PIN claim,
    // so it cannot ask for a verification already.
    crate::access_policy::AccessPolicy::shipped()
        .map_err(CheckRequestRefusal::Refused)?
        .admits_command(VERIFICATION_REQUESTED, &envelope.principal)
        .map_err(|refusal| CheckRequestRefusal::Refused(refusal.to_string()))?;
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_request_is_admitted_from_an_agent_and_refused_without_echoing_the_half() {
        let example = sportello_contract::schemas::SCHEMA_FILES
            .iter()
            .find(|f| f.message_type == VERIFICATION_REQUESTED)
            .unwrap()
            .example;
        let admitted = admit_check_request(
            "contact_center.pin.verification_requested",
            example.as_bytes(),
        )
        .unwrap();
        assert_eq!(admitted.payload.pin, "Ab3dE5gH");
        assert!(!format!("{:?}", admitted.payload).contains("Ab3dE5gH"));

        let mut long: serde_json::Value = serde_json::from_str(example).unwrap();
        long["payload"]["pin"] = serde_json::json!("Ab3dE5gH".repeat(10));
        let refusal = admit_check_request(
            "contact_center.pin.verification_requested",
            long.to_string().as_bytes(),
        )
        .unwrap_err();
        assert_eq!(refusal, CheckRequestRefusal::Malformed);
        assert!(!refusal.to_string().contains("Ab3dE5gH"));

        let mut citizen: serde_json::Value = serde_json::from_str(example).unwrap();
        citizen["channel"] = serde_json::json!("web");
        citizen["principal"] = serde_json::json!({"kind": "citizen", "tax_code": "RSSMRA85T10A562S", "authentication": {"method": "CIE"}});
        assert!(matches!(
            admit_check_request(
                "web.pin.verification_requested",
                citizen.to_string().as_bytes()
            ),
            Err(CheckRequestRefusal::Refused(_))
        ));
    }

    #[test]
    fn an_agent_claiming_the_simplified_pin_may_ask_for_the_check_itself() {
        let example = sportello_contract::schemas::SCHEMA_FILES
            .iter()
            .find(|f| f.message_type == VERIFICATION_REQUESTED)
            .unwrap()
            .example;
        let mut claiming: serde_json::Value = serde_json::from_str(example).unwrap();
        claiming["principal"]["identified_by"] = serde_json::json!("pin_simplified");
        assert!(admit_check_request(
            "contact_center.pin.verification_requested",
            claiming.to_string().as_bytes()
        )
        .is_ok());
    }
}
