//! The fate of a message a channel published (*esito dell'invio*): queued,
//! applied, a duplicate of an earlier one, or refused with its reason.
//!
//! Seed 004's citizens pressed F5 because a refused application looked
//! exactly like one still waiting. A refusal is therefore a stable code of
//! [`super::refusal`] (for the channel's program, with its plain Italian for
//! the citizen), besides the English reason operators read in the dead letter.

use uuid::Uuid;

use sportello_contract::Principal;

use super::refusal::Code;

/// Why a message was refused: the code, and the English reason operators
/// read in the dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// Stable, the same in the dead letter's `x-sportello-reason-code`
    /// header and in the fate's answer; its Italian is [`Code::italian`].
    pub code: Code,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: Code, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Not processed yet, as far as Sportello knows: still in the queue, or
    /// never received (the two read the same).
    Queued,
    /// Applied once, with what it made.
    Applied(Outcome),
    /// A resend (the F5) of a message applied before: nothing new was made.
    DuplicateOf(Uuid),
    Refused(Refusal),
}

/// What an applied message made, when it made something one can look up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub ticket_id: Option<Uuid>,
    pub application_id: Option<Uuid>,
    /// The protocol signature of the request's registration (*segnatura*).
    pub signature: Option<String>,
}

/// Who may learn a message's fate: whoever published it, and the citizen
/// it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parties {
    /// The publisher's [`Principal::actor_key`].
    pub submitter: String,
    /// The tax code of the citizen it concerns, when known.
    pub subject: Option<String>,
}

/// Whether `caller` may read the fate of a message of `parties`.
pub fn may_read(caller: &Principal, parties: &Parties) -> bool {
    if caller.actor_key() == parties.submitter {
        return true;
    }
    match caller {
        Principal::Citizen { tax_code, .. } => {
            parties.subject.as_deref() == Some(tax_code.as_str())
        }
        _ => false,
    }
}

/// The inbox's scope of an idempotency key: one publisher's messages of one
/// type (the same key on a request and on a delegation are two messages).
pub fn inbox_scope(message_type: &str, submitter: &str) -> String {
    format!("{message_type}:{submitter}")
}

/// The publisher (its actor key) of an [`inbox_scope`]: message types have
/// no colon, actor keys do.
pub fn submitter_of_scope(scope: &str) -> Option<&str> {
    scope.split_once(':').map(|(_, submitter)| submitter)
}

/// Who published a message and under which ids, read from its body when it
/// is an envelope (a refused message often is; garbage is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub message_id: Uuid,
    pub message_type: String,
    pub idempotency_key: String,
    pub parties: Parties,
}

impl Submitted {
    pub fn of_body(body: &[u8]) -> Option<Submitted> {
        #[derive(serde::Deserialize)]
        struct Head {
            message_id: Uuid,
            #[serde(rename = "type")]
            message_type: String,
            idempotency_key: String,
            principal: Principal,
        }
        let head: Head = serde_json::from_slice(body).ok()?;
        Some(Submitted {
            message_id: head.message_id,
            message_type: head.message_type,
            idempotency_key: head.idempotency_key,
            parties: Parties {
                submitter: head.principal.actor_key(),
                subject: subject_of(&head.principal),
            },
        })
    }
}

/// The citizen a published message concerns, on its principal alone: an
/// intermediary's subject is known only once its delega was found.
pub fn subject_of(principal: &Principal) -> Option<String> {
    match principal {
        Principal::Intermediary { .. } => None,
        other => other.subject_tax_code().map(ToString::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sportello_contract::{Authentication, CodiceFiscale};

    const CITIZEN: &str = "RSSMRA85T10A562S";
    const OTHER: &str = "VRDLGU80A01H501Q";

    fn citizen(tax_code: &str) -> Principal {
        Principal::Citizen {
            tax_code: CodiceFiscale::parse(tax_code).unwrap(),
            authentication: Authentication::Cie,
        }
    }

    #[test]
    fn the_submitter_and_the_citizen_concerned_may_read_no_one_else() {
        let agent = Principal::ContactCenterAgent {
            agent_id: "cc-7".into(),
            on_behalf_of: CodiceFiscale::parse(CITIZEN).unwrap(),
            identified_by: None,
            pin_verification_id: None,
        };
        let parties = Parties {
            submitter: agent.actor_key(),
            subject: subject_of(&agent),
        };
        assert!(may_read(&agent, &parties));
        assert!(may_read(&citizen(CITIZEN), &parties));
        assert!(!may_read(&citizen(OTHER), &parties));
        let colleague = Principal::ContactCenterAgent {
            agent_id: "cc-8".into(),
            on_behalf_of: CodiceFiscale::parse(CITIZEN).unwrap(),
            identified_by: None,
            pin_verification_id: None,
        };
        assert!(!may_read(&colleague, &parties));
        let intermediary = Principal::Intermediary {
            tax_code: CodiceFiscale::parse(OTHER).unwrap(),
            authentication: Authentication::Cie,
        };
        assert_eq!(subject_of(&intermediary), None);
    }

    #[test]
    fn the_submitter_is_read_from_an_envelope_and_not_from_garbage() {
        let body = serde_json::json!({
            "message_id": "0193a1c2-7f0e-7b6a-9d2e-5c4b3a29aa01",
            "type": "request.submitted",
            "idempotency_key": "k-1",
            "principal": {"kind": "citizen", "tax_code": CITIZEN, "authentication": {"method": "CIE"}},
            "payload": {"anything": true}
        });
        let submitted = Submitted::of_body(body.to_string().as_bytes()).unwrap();
        assert_eq!(submitted.idempotency_key, "k-1");
        assert_eq!(submitted.message_type, "request.submitted");
        let scope = inbox_scope("request.submitted", &submitted.parties.submitter);
        assert_eq!(
            submitter_of_scope(&scope),
            Some(submitted.parties.submitter.as_str())
        );
        assert_eq!(submitted.parties.submitter, format!("citizen:{CITIZEN}"));
        assert_eq!(submitted.parties.subject.as_deref(), Some(CITIZEN));
        assert_eq!(Submitted::of_body(b"not json"), None);
        assert_eq!(Submitted::of_body(br#"{"message_id": "x"}"#), None);
    }
}
