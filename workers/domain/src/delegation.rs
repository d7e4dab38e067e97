//! *Deleghe* granted and revoked by messages (seed 002): who may publish
//! them, on which channel, and what a grant or a revocation changes. An
//! intermediary acts on a citizen's positions of one scheme (*gestione*)
//! only under an active delegation for that scheme (`access.rs`).
//!
//! Who may publish (anyone else is dead-lettered with the reason):
//! - `delegation.granted`: the citizen themselves on `web`, `app` or
//!   `cassetto` (authenticated as for a request: SPID level 2 or more, CIE,
//!   CNS, eIDAS, a whole PIN), or an operator at the `desk` registering the
//!   citizen's signed paper delega (`on_behalf_of` the citizen);
//! - `delegation.revoked`: the same, or the intermediary renouncing a
//!   delegation granted to them (on `web`, `app`, `cassetto`).
//!
//! Contact-centre agents do neither: a delega is not given over the phone.

use chrono::{DateTime, Utc};

use super::access::Delegation;
use super::admission::{check_access, Rejection};
use sportello_contract::{Channel, DelegationGranted, DelegationRevoked, Envelope, Principal};

/// The scheme of seed 002's first release (*Aziende UniEmens*): the one
/// open to delegations from the start, and the scheme of every request,
/// case and delegation that does not name one (all that existed before
/// schemes were recorded).
pub const FIRST_GESTIONE: &str = "aziende_uniemens";

pub const GRANTED: &str = "delegation.granted";
pub const REVOKED: &str = "delegation.revoked";

/// Whether the principal may publish this grant on this channel.
pub fn check_grant(envelope: &Envelope<DelegationGranted>) -> Result<(), Rejection> {
    let payload = &envelope.payload;
    check_publisher(
        envelope.channel,
        &envelope.principal,
        GRANTED,
        |principal| own_citizen(principal, &payload.citizen_tax_code),
    )?;
    check_desk_citizen(&envelope.principal, &payload.citizen_tax_code)?;
    if payload.citizen_tax_code == payload.intermediary_tax_code {
        return Err(Rejection::Delegation(
            "a citizen cannot delegate themselves".into(),
        ));
    }
    let from = payload.valid_from.unwrap_or(envelope.occurred_at);
    if payload.valid_to <= from {
        return Err(Rejection::Delegation(
            "valid_to must come after valid_from (or after the message's occurred_at)".into(),
        ));
    }
    Ok(())
}

/// Whether the principal may publish this revocation on this channel.
pub fn check_revoke(envelope: &Envelope<DelegationRevoked>) -> Result<(), Rejection> {
    let payload = &envelope.payload;
    check_publisher(
        envelope.channel,
        &envelope.principal,
        REVOKED,
        |principal| {
            own_citizen(principal, &payload.citizen_tax_code).or_else(|refusal| match principal {
                // Renouncing: the intermediary gives back what was granted to them.
                Principal::Intermediary { tax_code, .. }
                    if *tax_code == payload.intermediary_tax_code =>
                {
                    Ok(())
                }
                _ => Err(refusal),
            })
        },
    )?;
    check_desk_citizen(&envelope.principal, &payload.citizen_tax_code)
}

/// The citizen of the delegation themselves.
fn own_citizen(
    principal: &Principal,
    citizen: &sportello_contract::CodiceFiscale,
) -> Result<(), Rejection> {
    match principal {
        Principal::Citizen { tax_code, .. } if tax_code == citizen => Ok(()),
        Principal::Citizen { .. } => Err(Rejection::Delegation(
            "a citizen grants and revokes only their own delegations".into(),
        )),
        _ => Err(Rejection::Delegation(
            "only the delegating citizen (or the intermediary, to renounce) may publish this"
                .into(),
        )),
    }
}

/// Channel and principal: citizens' and intermediaries' channels with
/// `people` deciding who among them; the desk's operators for the citizen
/// at the desk.
fn check_publisher(
    channel: Channel,
    principal: &Principal,
    message_type: &'static str,
    people: impl Fn(&Principal) -> Result<(), Rejection>,
) -> Result<(), Rejection> {
    match (channel, principal) {
        (
            Channel::Web | Channel::App | Channel::Cassetto,
            Principal::Citizen { .. } | Principal::Intermediary { .. },
        ) => {
            check_access(principal, message_type)?;
            people(principal)
        }
        (Channel::Desk, Principal::Operator { on_behalf_of, .. }) => match on_behalf_of {
            Some(_) => check_access(principal, message_type),
            None => Err(Rejection::MissingSubject(message_type)),
        },
        (channel, principal) => Err(Rejection::PrincipalNotAllowed {
            principal: principal.kind(),
            channel: channel.as_str(),
            message_type,
        }),
    }
}

/// The desk operator acts for the citizen at the desk: that must be the
/// delegating citizen.
fn check_desk_citizen(
    principal: &Principal,
    citizen: &sportello_contract::CodiceFiscale,
) -> Result<(), Rejection> {
    match principal {
        Principal::Operator {
            on_behalf_of: Some(at_desk),
            ..
        } if at_desk != citizen => Err(Rejection::Delegation(
            "the operator registers a delega only for the citizen at the desk (on_behalf_of)"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// What a grant does to the delegations already there for the same
/// citizen, intermediary, scheme and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantEffect {
    /// A new delegation.
    New,
    /// The active one (by index) takes the grant's validity.
    Renew(usize),
}

pub fn grant_effect(same_scope: &[Delegation], now: DateTime<Utc>) -> GrantEffect {
    same_scope
        .iter()
        .position(|d| d.is_active(now) || (d.revoked_at.is_none() && d.valid_from > now))
        .map_or(GrantEffect::New, GrantEffect::Renew)
}

/// Which delegations a revocation ends: the active (or future) ones of the
/// scheme, all of them or only the position's. Empty: nothing to revoke.
pub fn to_revoke(
    delegations: &[Delegation],
    matricola: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<usize> {
    delegations
        .iter()
        .enumerate()
        .filter(|(_, d)| d.revoked_at.is_none() && now < d.valid_to)
        .filter(|(_, d)| matricola.is_none() || d.matricola.as_deref() == matricola)
        .map(|(index, _)| index)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use sportello_contract::schemas::SCHEMA_FILES;

    fn example<P: serde::de::DeserializeOwned>(message_type: &str) -> Envelope<P> {
        let file = SCHEMA_FILES
            .iter()
            .find(|f| f.message_type == message_type)
            .unwrap();
        serde_json::from_str(file.example).unwrap()
    }

    #[test]
    fn the_citizen_or_the_desk_grants_nobody_else() {
        let grant: Envelope<DelegationGranted> = example(GRANTED);
        assert!(check_grant(&grant).is_ok());

        let mut other = grant.clone();
        other.payload.citizen_tax_code =
            sportello_contract::CodiceFiscale::parse("BNCGVN70A41F205O").unwrap();
        assert!(matches!(check_grant(&other), Err(Rejection::Delegation(_))));

        let mut by_intermediary = grant.clone();
        by_intermediary.principal = Principal::Intermediary {
            tax_code: grant.payload.intermediary_tax_code.clone(),
            authentication: sportello_contract::Authentication::Cns,
        };
        assert!(
            check_grant(&by_intermediary).is_err(),
            "nobody delegates to themselves"
        );

        let mut by_agent = grant.clone();
        by_agent.channel = Channel::ContactCenter;
        by_agent.principal = Principal::ContactCenterAgent {
            agent_id: "CC-1".into(),
            on_behalf_of: grant.payload.citizen_tax_code.clone(),
            identified_by: None,
            pin_verification_id: None,
        };
        assert!(matches!(
            check_grant(&by_agent),
            Err(Rejection::PrincipalNotAllowed { .. })
        ));

        let mut at_desk = grant.clone();
        at_desk.channel = Channel::Desk;
        at_desk.principal = Principal::Operator {
            operator_id: "E0013609".into(),
            office: "1901".into(),
            on_behalf_of: Some(grant.payload.citizen_tax_code.clone()),
        };
        assert!(check_grant(&at_desk).is_ok());

        let mut weak = grant.clone();
        weak.principal = Principal::Citizen {
            tax_code: grant.payload.citizen_tax_code.clone(),
            authentication: sportello_contract::Authentication::Spid { level: 1 },
        };
        assert!(matches!(check_grant(&weak), Err(Rejection::Access { .. })));

        let mut backwards = grant;
        backwards.payload.valid_to = backwards.occurred_at - Duration::days(1);
        assert!(check_grant(&backwards).is_err());
    }

    #[test]
    fn the_intermediary_may_renounce_but_not_revoke_anothers() {
        let revoke: Envelope<DelegationRevoked> = example(REVOKED);
        assert!(check_revoke(&revoke).is_ok());
        let mut renounce = revoke.clone();
        renounce.principal = Principal::Intermediary {
            tax_code: revoke.payload.intermediary_tax_code.clone(),
            authentication: sportello_contract::Authentication::Cie,
        };
        assert!(check_revoke(&renounce).is_ok());
        let mut stranger = renounce;
        stranger.principal = Principal::Intermediary {
            tax_code: sportello_contract::CodiceFiscale::parse("BNCGVN70A41F205O").unwrap(),
            authentication: sportello_contract::Authentication::Cie,
        };
        assert!(check_revoke(&stranger).is_err());
    }

    fn delegation(matricola: Option<&str>, from: i64, to: i64) -> Delegation {
        let now = Utc::now();
        Delegation {
            citizen_tax_code: "RSSMRA85T10A562S".into(),
            gestione: FIRST_GESTIONE.into(),
            matricola: matricola.map(Into::into),
            valid_from: now + Duration::days(from),
            valid_to: now + Duration::days(to),
            revoked_at: None,
        }
    }

    #[test]
    fn a_grant_renews_the_active_one_and_a_revocation_ends_what_is_live() {
        let now = Utc::now();
        assert_eq!(grant_effect(&[], now), GrantEffect::New);
        let expired = delegation(None, -10, -1);
        assert_eq!(
            grant_effect(std::slice::from_ref(&expired), now),
            GrantEffect::New
        );
        let active = delegation(None, -1, 10);
        assert_eq!(
            grant_effect(&[expired.clone(), active.clone()], now),
            GrantEffect::Renew(1)
        );
        let mut revoked = active.clone();
        revoked.revoked_at = Some(now - Duration::hours(1));
        assert_eq!(
            grant_effect(std::slice::from_ref(&revoked), now),
            GrantEffect::New
        );

        let position = delegation(Some("4901234567"), -1, 10);
        let all = [expired, active, revoked, position];
        assert_eq!(to_revoke(&all, None, now), [1, 3]);
        assert_eq!(to_revoke(&all, Some("4901234567"), now), [3]);
        assert!(to_revoke(&all, Some("1111111111"), now).is_empty());
    }
}
