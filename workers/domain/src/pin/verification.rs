//! A contact-centre agent checking the first half a caller reads out
//! (seed 004: the contact centre acts for a citizen who gives only the
//! first half of a new PIN). A token's `identified_by: pin_simplified` is
//! only the agent's word; a verification is Sportello's: the half matched
//! its stored hash, for this agent and this caller, a short while ago.
//! Anything the agent then does on the simplified PIN names it.

use chrono::{DateTime, Duration, Utc};
use sportello_contract::{Identification, Principal};
use uuid::Uuid;

use super::{Check, CredentialState, SignInRefusal};

/// How long a verification serves the call it was made for.
pub const VERIFICATION_MINUTES: i64 = 15;

/// The header that carries a verification on the HTTP API.
pub const VERIFICATION_HEADER: &str = "x-pin-verification";

/// A verification as it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub id: Uuid,
    pub agent_id: String,
    pub tax_code: String,
    pub verified_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Verification {
    pub fn new(id: Uuid, agent_id: &str, tax_code: &str, now: DateTime<Utc>) -> Self {
        Self {
            id,
            agent_id: agent_id.to_owned(),
            tax_code: tax_code.to_owned(),
            verified_at: now,
            expires_at: now + Duration::minutes(VERIFICATION_MINUTES),
        }
    }
}

/// Why an agent's simplified-PIN identification is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationRefusal {
    #[error("the token says the caller was identified by the first half of the PIN (`identified_by: pin_simplified`), which Sportello must verify: check the half the caller reads out with POST /pin/agent-verifications, then send its `verification_id` in the X-Pin-Verification header (on the broker: the principal's `pin_verification_id`)")]
    Missing,
    #[error("the PIN verification id is not a UUID: send the `verification_id` POST /pin/agent-verifications answered")]
    Malformed,
    #[error("no PIN verification has this id: check the caller's half again with POST /pin/agent-verifications")]
    Unknown,
    #[error("the PIN verification expired at {0} (they last {VERIFICATION_MINUTES} minutes): check the caller's half again with POST /pin/agent-verifications")]
    Expired(DateTime<Utc>),
    #[error(
        "the PIN verification was made by another agent or for another caller than this token's"
    )]
    NotThisCall,
    #[error("the PIN verification was made at {0}, after the agent acted: check the caller's half before acting on it")]
    AfterTheAct(DateTime<Utc>),
}

/// How far an agent's clock may run behind Sportello's.
const CLOCK_SKEW_SECONDS: i64 = 60;

/// Whether `principal` is an agent claiming the simplified PIN: the one
/// identification that needs a verification.
pub fn needs_verification(principal: &Principal) -> bool {
    matches!(
        principal,
        Principal::ContactCenterAgent {
            identified_by: Some(Identification::PinSimplified),
            ..
        }
    )
}

/// Whether `found` (looked up by the id the agent sent) verifies this
/// agent's call at `now` (when the agent acted).
pub fn judge(
    principal: &Principal,
    found: Option<&Verification>,
    now: DateTime<Utc>,
) -> Result<(), VerificationRefusal> {
    let Principal::ContactCenterAgent {
        agent_id,
        on_behalf_of,
        ..
    } = principal
    else {
        return Err(VerificationRefusal::NotThisCall);
    };
    let found = found.ok_or(VerificationRefusal::Unknown)?;
    if found.agent_id != *agent_id || found.tax_code != on_behalf_of.as_str() {
        return Err(VerificationRefusal::NotThisCall);
    }
    if found.expires_at <= now {
        return Err(VerificationRefusal::Expired(found.expires_at));
    }
    // A command that waited in a queue is judged when the agent acted: the
    // half must have been checked by then.
    if now + Duration::seconds(CLOCK_SKEW_SECONDS) < found.verified_at {
        return Err(VerificationRefusal::AfterTheAct(found.verified_at));
    }
    Ok(())
}

/// Parses the id an agent sent.
pub fn parse_id(raw: &str) -> Result<Uuid, VerificationRefusal> {
    Uuid::parse_str(raw.trim()).map_err(|_| VerificationRefusal::Malformed)
}

/// What an agent's check compares the half with: only the first half of a
/// PIN requested and never used. Refused before any hash is compared, so
/// a refusal costs no attempt.
pub fn agent_check(state: CredentialState, ever_activated: bool) -> Result<Check, SignInRefusal> {
    match state {
        CredentialState::Revoked => Err(SignInRefusal::Revoked),
        CredentialState::Issued if !ever_activated => Ok(Check::FirstHalf),
        _ => Err(SignInRefusal::NotSimplified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sportello_contract::CodiceFiscale;

    fn agent(identified_by: Option<Identification>) -> Principal {
        Principal::ContactCenterAgent {
            agent_id: "CC0042".into(),
            on_behalf_of: CodiceFiscale::parse("RSSMRA85T10A562S").unwrap(),
            identified_by,
            pin_verification_id: None,
        }
    }

    #[test]
    fn only_the_simplified_pin_claim_needs_a_verification() {
        assert!(needs_verification(&agent(Some(
            Identification::PinSimplified
        ))));
        for other in [
            None,
            Some(Identification::Spid),
            Some(Identification::Cie),
            Some(Identification::Cns),
            Some(Identification::Pin),
        ] {
            assert!(!needs_verification(&agent(other)));
        }
    }

    #[test]
    fn a_verification_serves_its_agent_and_caller_until_it_expires() {
        let now = Utc::now();
        let principal = agent(Some(Identification::PinSimplified));
        let verified = Verification::new(Uuid::now_v7(), "CC0042", "RSSMRA85T10A562S", now);
        assert_eq!(judge(&principal, Some(&verified), now), Ok(()));
        assert!(
            matches!(
                judge(&principal, Some(&verified), now - Duration::minutes(5)),
                Err(VerificationRefusal::AfterTheAct(_))
            ),
            "an act before the check is not covered by it"
        );
        assert_eq!(
            judge(&principal, None, now),
            Err(VerificationRefusal::Unknown)
        );
        let later = now + Duration::minutes(VERIFICATION_MINUTES);
        assert_eq!(
            judge(&principal, Some(&verified), later),
            Err(VerificationRefusal::Expired(verified.expires_at))
        );
        let other_agent = Verification {
            agent_id: "CC0099".into(),
            ..verified.clone()
        };
        assert_eq!(
            judge(&principal, Some(&other_agent), now),
            Err(VerificationRefusal::NotThisCall)
        );
        let other_caller = Verification {
            tax_code: "BNCGVN70A41F205O".into(),
            ..verified
        };
        assert_eq!(
            judge(&principal, Some(&other_caller), now),
            Err(VerificationRefusal::NotThisCall)
        );
        assert_eq!(parse_id("nope"), Err(VerificationRefusal::Malformed));
        assert!(VerificationRefusal::Missing
            .to_string()
            .contains("POST /pin/agent-verifications"));
    }

    #[test]
    fn an_agent_checks_only_the_first_half_of_an_unused_pin() {
        use CredentialState::*;
        assert_eq!(agent_check(Issued, false), Ok(Check::FirstHalf));
        assert_eq!(agent_check(Issued, true), Err(SignInRefusal::NotSimplified));
        assert_eq!(agent_check(Active, true), Err(SignInRefusal::NotSimplified));
        assert_eq!(agent_check(Revoked, false), Err(SignInRefusal::Revoked));
    }
}
