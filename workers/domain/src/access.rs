//! Who may act on a case: its citizen, an intermediary holding an active
//! delegation (*delega*) for it, or an operator of its competent office.
//! Everyone else is refused.

use chrono::{DateTime, Utc};

use super::document::Side;
use sportello_contract::{CodiceFiscale, Identification, Principal};

/// The parties of a case (*pratica*) that access depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseParties {
    pub citizen_tax_code: String,
    pub matricola: Option<String>,
    /// The scheme (*gestione*) of the position the case is about.
    pub gestione: String,
    pub office_aoo: String,
}

/// A delegation as stored: for one scheme (*gestione*) of the citizen's;
/// `matricola` narrows it to one contribution position of that scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub citizen_tax_code: String,
    pub gestione: String,
    pub matricola: Option<String>,
    pub valid_from: DateTime<Utc>,
    pub valid_to: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Delegation {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.valid_from <= now
            && now < self.valid_to
            && self.revoked_at.is_none_or(|revoked| now < revoked)
    }

    pub fn covers(&self, case: &CaseParties, now: DateTime<Utc>) -> bool {
        let position_matches = match &self.matricola {
            None => true,
            Some(matricola) => case.matricola.as_ref() == Some(matricola),
        };
        self.is_active(now)
            && self.citizen_tax_code == case.citizen_tax_code
            && self.gestione == case.gestione
            && position_matches
    }
}

/// The side `principal` acts on for `case`, or `None`: no access at all.
/// `delegations` are the intermediary's own (ignored for anyone else).
pub fn side_on_case(
    principal: &Principal,
    case: &CaseParties,
    delegations: &[Delegation],
    now: DateTime<Utc>,
) -> Option<Side> {
    match principal {
        Principal::Citizen { tax_code, .. } => {
            (tax_code.as_str() == case.citizen_tax_code).then_some(Side::Citizen)
        }
        Principal::Intermediary { .. } => delegations
            .iter()
            .any(|d| d.covers(case, now))
            .then_some(Side::Citizen),
        Principal::Operator { office, .. } => (*office == case.office_aoo).then_some(Side::Office),
        // Agents answer and open requests; they do not handle documents.
        Principal::ContactCenterAgent { .. } => None,
    }
}

/// Why a contact-centre agent may not read a citizen's tickets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentReadRefusal {
    #[error("the agent's token does not say how the caller was identified (`identified_by`)")]
    NotIdentified,
    #[error(
        "a caller identified by {0} cannot have their tickets read: the simplified PIN serves listed applications only"
    )]
    TooWeak(&'static str),
    #[error("this ticket belongs to another citizen than the one the agent acts for")]
    AnotherCitizen,
}

/// A contact-centre agent reading the tickets of the caller they act for
/// (their token's `on_behalf_of`), and how that caller was identified: each
/// such read goes to the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRead {
    pub agent_id: String,
    pub citizen: CodiceFiscale,
    pub identified_by: Identification,
}

/// `None` for anyone but an agent; for an agent, the read it may make (of
/// its caller's tickets only) or why it may make none.
pub fn agent_read(principal: &Principal) -> Option<Result<AgentRead, AgentReadRefusal>> {
    let Principal::ContactCenterAgent {
        agent_id,
        on_behalf_of,
        identified_by,
        pin_verification_id: None,
    } = principal
    else {
        return None;
    };
    Some(match identified_by {
        None => Err(AgentReadRefusal::NotIdentified),
        Some(method @ Identification::PinSimplified) => {
            Err(AgentReadRefusal::TooWeak(method.as_str()))
        }
        Some(method) => Ok(AgentRead {
            agent_id: agent_id.clone(),
            citizen: on_behalf_of.clone(),
            identified_by: *method,
        }),
    })
}

impl AgentRead {
    /// Whether the case is the caller's.
    pub fn covers(&self, case: &CaseParties) -> Result<(), AgentReadRefusal> {
        if self.citizen.as_str() == case.citizen_tax_code {
            Ok(())
        } else {
            Err(AgentReadRefusal::AnotherCitizen)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use sportello_contract::Authentication;

    const CITIZEN: &str = "RSSMRA85T10A562S";
    const OTHER: &str = "BNCGVN70A41F205O";

    fn case() -> CaseParties {
        CaseParties {
            citizen_tax_code: CITIZEN.into(),
            matricola: Some("4900123456".into()),
            gestione: "aziende_uniemens".into(),
            office_aoo: "0040".into(),
        }
    }

    fn person(tax_code: &str, intermediary: bool) -> Principal {
        let tax_code = CodiceFiscale::parse(tax_code).unwrap();
        let authentication = Authentication::Spid { level: 2 };
        if intermediary {
            Principal::Intermediary {
                tax_code,
                authentication,
            }
        } else {
            Principal::Citizen {
                tax_code,
                authentication,
            }
        }
    }

    fn delegation(matricola: Option<&str>, from_days: i64, to_days: i64) -> Delegation {
        let now = Utc::now();
        Delegation {
            citizen_tax_code: CITIZEN.into(),
            gestione: "aziende_uniemens".into(),
            matricola: matricola.map(Into::into),
            valid_from: now + Duration::days(from_days),
            valid_to: now + Duration::days(to_days),
            revoked_at: None,
        }
    }

    #[test]
    fn only_the_case_citizen_is_the_citizen() {
        let now = Utc::now();
        assert_eq!(
            side_on_case(&person(CITIZEN, false), &case(), &[], now),
            Some(Side::Citizen)
        );
        assert_eq!(side_on_case(&person(OTHER, false), &case(), &[], now), None);
    }

    #[test]
    fn intermediaries_need_an_active_matching_delegation() {
        let now = Utc::now();
        let agent = person(OTHER, true);
        assert_eq!(side_on_case(&agent, &case(), &[], now), None);
        assert_eq!(
            side_on_case(&agent, &case(), &[delegation(None, -1, 1)], now),
            Some(Side::Citizen)
        );
        assert_eq!(
            side_on_case(
                &agent,
                &case(),
                &[delegation(Some("4900123456"), -1, 1)],
                now
            ),
            Some(Side::Citizen)
        );
        assert_eq!(
            side_on_case(
                &agent,
                &case(),
                &[delegation(Some("1111111111"), -1, 1)],
                now
            ),
            None
        );
        assert_eq!(
            side_on_case(&agent, &case(), &[delegation(None, -10, -1)], now),
            None,
            "expired"
        );
        assert_eq!(
            side_on_case(&agent, &case(), &[delegation(None, 1, 10)], now),
            None,
            "not yet valid"
        );
        let mut other_scheme = delegation(Some("4900123456"), -1, 1);
        other_scheme.gestione = "artigiani".into();
        assert_eq!(
            side_on_case(&agent, &case(), &[other_scheme], now),
            None,
            "a delegation for another scheme (gestione)"
        );
        let mut revoked = delegation(None, -1, 1);
        revoked.revoked_at = Some(now - Duration::hours(1));
        assert_eq!(
            side_on_case(&agent, &case(), &[revoked], now),
            None,
            "revoked"
        );
    }

    #[test]
    fn an_agent_reads_only_its_identified_callers_cases() {
        let agent = |identified_by| Principal::ContactCenterAgent {
            pin_verification_id: None,
            agent_id: "CC-0042".into(),
            on_behalf_of: CodiceFiscale::parse(CITIZEN).unwrap(),
            identified_by,
        };
        assert_eq!(agent_read(&person(CITIZEN, false)), None);
        assert_eq!(
            agent_read(&agent(None)),
            Some(Err(AgentReadRefusal::NotIdentified))
        );
        assert_eq!(
            agent_read(&agent(Some(Identification::PinSimplified))),
            Some(Err(AgentReadRefusal::TooWeak("pin_simplified")))
        );
        let read = agent_read(&agent(Some(Identification::Pin)))
            .unwrap()
            .unwrap();
        assert_eq!(read.covers(&case()), Ok(()));
        let mut other = case();
        other.citizen_tax_code = OTHER.into();
        assert_eq!(read.covers(&other), Err(AgentReadRefusal::AnotherCitizen));
        // Documents stay the citizen's and the office's.
        assert_eq!(
            side_on_case(&agent(Some(Identification::Spid)), &case(), &[], Utc::now()),
            None
        );
    }

    #[test]
    fn operators_act_only_for_their_own_office() {
        let now = Utc::now();
        let operator = |office: &str| Principal::Operator {
            operator_id: "E0013609".into(),
            office: office.into(),
            on_behalf_of: None,
        };
        assert_eq!(
            side_on_case(&operator("0040"), &case(), &[], now),
            Some(Side::Office)
        );
        assert_eq!(side_on_case(&operator("0041"), &case(), &[], now), None);
    }
}
