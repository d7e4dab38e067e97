//! Who may act on a case: its citizen, an intermediary holding an active
//! delegation (*delega*) for it, or an operator of its competent office.
//! Everyone else is refused.

use chrono::{DateTime, Utc};

use super::document::Side;
use crate::contract::Principal;

/// The parties of a case (*pratica*) that access depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseParties {
    pub citizen_tax_code: String,
    pub matricola: Option<String>,
    pub office_aoo: String,
}

/// A delegation as stored; `matricola` narrows it to one contribution position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub citizen_tax_code: String,
    pub matricola: Option<String>,
    pub valid_from: DateTime<Utc>,
    pub valid_to: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Delegation {
    pub fn covers(&self, case: &CaseParties, now: DateTime<Utc>) -> bool {
        let active = self.valid_from <= now
            && now < self.valid_to
            && self.revoked_at.is_none_or(|revoked| now < revoked);
        let position_matches = match &self.matricola {
            None => true,
            Some(matricola) => case.matricola.as_ref() == Some(matricola),
        };
        active && self.citizen_tax_code == case.citizen_tax_code && position_matches
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Authentication, CodiceFiscale};
    use chrono::Duration;

    const CITIZEN: &str = "RSSMRA85T10A562S";
    const OTHER: &str = "BNCGVN70A41F205O";

    fn case() -> CaseParties {
        CaseParties {
            citizen_tax_code: CITIZEN.into(),
            matricola: Some("4900123456".into()),
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
        let mut revoked = delegation(None, -1, 1);
        revoked.revoked_at = Some(now - Duration::hours(1));
        assert_eq!(
            side_on_case(&agent, &case(), &[revoked], now),
            None,
            "revoked"
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
