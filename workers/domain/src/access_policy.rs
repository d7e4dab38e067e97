//! The access policy: which principals, holding which credential, may use
//! each HTTP route and each broker command. One table of data
//! (`workers/config/access.json`) for both doors, so that the API cannot
//! admit what the broker refuses, nor the other way round.
//!
//! A policy names the kinds of principal it admits and the credentials they
//! must hold; it may take both from a service of the menu
//! (`applications.json`, [`Service`]), so `GET /catalogue` and the handlers
//! read the same row. Operators are institute staff, signed in through the
//! institute's own identity provider: the credential list is not theirs to
//! meet. A contact-centre agent meets it with the identification of the
//! caller (`identified_by`).
//!
//! The policy is a floor, not the whole check: a handler still decides
//! whether this citizen's ticket is this caller's to read.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::application::catalogue::Service;
use super::application::policy::{Credential, PrincipalKind};
use super::application::{submitting_credential, ApplicationRules};
use super::refusal::Code;
use sportello_contract::{Authentication, Principal};

/// The rule of one route or command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// No token needed. A token that is sent must still be valid, and the
    /// handler may give it a meaning (an agent requesting a PIN for a caller).
    Public,
    /// The operators' pages: the staff session (a cookie) is the check.
    StaffSession,
    /// A token whose principal this admits.
    Principals(Admission),
}

/// Who a [`Rule::Principals`] admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The policy's name in the data, for refusals and the docs.
    pub policy: String,
    pub profiles: Vec<PrincipalKind>,
    /// `None`: any credential, even SPID level 1.
    pub credentials: Option<Vec<Credential>>,
    pub agents: AgentIdentification,
}

/// Whether a contact-centre agent must have identified the caller first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentIdentification {
    /// The caller's identification (`identified_by`) must be one of the
    /// policy's credentials.
    #[default]
    Required,
    /// The agent may act before identifying the caller (a booking taken on
    /// the phone); an identification it does claim must still qualify.
    Optional,
}

/// Why a principal is refused: the 403's body and the dead letter's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefusal {
    #[error("a {principal} may not use this ({policy}); it is for: {allowed}")]
    Profile {
        principal: &'static str,
        policy: String,
        allowed: String,
    },
    #[error("this ({policy}) needs one of these credentials: {accepted}; the caller has {held}")]
    Credential {
        policy: String,
        /// The credential presented, as the policy names it (`spid1`, `none`).
        held: &'static str,
        accepted: String,
    },
}

impl AccessRefusal {
    /// The machine-readable code of the refusal.
    pub fn code(&self) -> Code {
        match self {
            AccessRefusal::Profile { .. } => Code::PrincipalNotAllowed,
            AccessRefusal::Credential { .. } => Code::CredentialRequired,
        }
    }

    /// The credentials that would be accepted (empty for a profile refusal).
    pub fn accepted(&self) -> Vec<&str> {
        match self {
            AccessRefusal::Credential { accepted, .. } => accepted.split(", ").collect(),
            AccessRefusal::Profile { .. } => Vec::new(),
        }
    }
}

impl Rule {
    /// Whether `principal` may go through. `Public` and `StaffSession` admit
    /// everyone here: their check lives elsewhere.
    pub fn admits(&self, principal: &Principal) -> Result<(), AccessRefusal> {
        match self {
            Rule::Public | Rule::StaffSession => Ok(()),
            Rule::Principals(admission) => admission.admits(principal),
        }
    }
}

impl Admission {
    pub fn admits(&self, principal: &Principal) -> Result<(), AccessRefusal> {
        let kind = kind_of(principal);
        if !self.profiles.contains(&kind) {
            return Err(AccessRefusal::Profile {
                principal: principal.kind(),
                policy: self.policy.clone(),
                allowed: self
                    .profiles
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let Some(accepted) = &self.credentials else {
            return Ok(());
        };
        let held = match principal {
            Principal::Operator { .. } => return Ok(()),
            Principal::ContactCenterAgent {
                identified_by: None,
                ..
            } if self.agents == AgentIdentification::Optional => return Ok(()),
            principal => submitting_credential(principal),
        };
        match held {
            Some(credential) if accepted.contains(&credential) => Ok(()),
            held => Err(AccessRefusal::Credential {
                policy: self.policy.clone(),
                held: held_name(principal, held),
                accepted: accepted
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

fn kind_of(principal: &Principal) -> PrincipalKind {
    match principal {
        Principal::Citizen { .. } => PrincipalKind::Citizen,
        Principal::Intermediary { .. } => PrincipalKind::Intermediary,
        Principal::ContactCenterAgent { .. } => PrincipalKind::ContactCenterAgent,
        Principal::Operator { .. } => PrincipalKind::Operator,
    }
}

/// The credential as a refusal names it: SPID level 1 counts as none of
/// the policy's, but the caller should read what they hold.
fn held_name(principal: &Principal, held: Option<Credential>) -> &'static str {
    match (principal, held) {
        (_, Some(credential)) => credential.as_str(),
        (
            Principal::Citizen {
                authentication: Authentication::Spid { .. },
                ..
            }
            | Principal::Intermediary {
                authentication: Authentication::Spid { .. },
                ..
            },
            None,
        ) => "spid1",
        (Principal::ContactCenterAgent { .. }, None) => "none (the token has no identified_by)",
        _ => "none",
    }
}

/// One route's entry in the data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    method: String,
    path: String,
    policy: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandEntry {
    #[serde(rename = "type")]
    message_type: String,
    policy: String,
}

/// A named policy as the data writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyData {
    /// What the policy is for, for whoever reads the data.
    #[allow(dead_code)]
    about: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    staff_session: bool,
    /// A service of the menu whose profiles and credentials this takes.
    service: Option<String>,
    /// The kinds admitted (instead of the service's).
    profiles: Option<Vec<PrincipalKind>>,
    /// The credentials accepted (instead of the service's).
    credentials: Option<Vec<Credential>>,
    #[serde(default)]
    agents: AgentIdentification,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[allow(dead_code)]
    about: String,
    policies: BTreeMap<String, PolicyData>,
    routes: Vec<RouteEntry>,
    commands: Vec<CommandEntry>,
}

/// The policy of every route and command.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    routes: BTreeMap<(String, String), Rule>,
    commands: BTreeMap<String, Rule>,
}

impl AccessPolicy {
    /// The policy shipped in `workers/config/access.json`, over the menu's
    /// services; parsed once.
    pub fn shipped() -> Result<&'static AccessPolicy, String> {
        static POLICY: std::sync::OnceLock<Result<AccessPolicy, String>> =
            std::sync::OnceLock::new();
        POLICY
            .get_or_init(|| {
                let rules = ApplicationRules::shipped()?;
                AccessPolicy::parse(include_str!("../../config/access.json"), &rules.services)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Reads the data; every policy a route names must exist and make sense.
    pub fn parse(json: &str, services: &[Service]) -> Result<AccessPolicy, String> {
        let file: PolicyFile =
            serde_json::from_str(json).map_err(|e| format!("access policy: {e}"))?;
        let mut rules = BTreeMap::new();
        for (name, data) in &file.policies {
            rules.insert(name.clone(), rule_of(name, data, services)?);
        }
        let named = |policy: &str, of: &str| {
            rules
                .get(policy)
                .cloned()
                .ok_or_else(|| format!("access policy: {of} names no policy `{policy}`"))
        };
        let mut routes = BTreeMap::new();
        for entry in file.routes {
            let of = format!("{} {}", entry.method, entry.path);
            let rule = named(&entry.policy, &of)?;
            if routes
                .insert((entry.method.to_ascii_uppercase(), entry.path), rule)
                .is_some()
            {
                return Err(format!("access policy: {of} is listed twice"));
            }
        }
        let mut commands = BTreeMap::new();
        for entry in file.commands {
            let rule = named(&entry.policy, &entry.message_type)?;
            if matches!(rule, Rule::StaffSession) {
                return Err(format!(
                    "access policy: command {} cannot be a staff page",
                    entry.message_type
                ));
            }
            if commands.insert(entry.message_type.clone(), rule).is_some() {
                return Err(format!(
                    "access policy: command {} is listed twice",
                    entry.message_type
                ));
            }
        }
        Ok(AccessPolicy { routes, commands })
    }

    /// The rule of a route, by method and pattern (`/tickets/{ticket_id}`);
    /// `None`: the route has no policy, and is refused.
    pub fn route(&self, method: &str, pattern: &str) -> Option<&Rule> {
        self.routes
            .get(&(method.to_ascii_uppercase(), pattern.to_owned()))
    }

    /// The rule of a broker command by its message type.
    pub fn command(&self, message_type: &str) -> Option<&Rule> {
        self.commands.get(message_type)
    }

    /// Every route the policy lists, as (method, pattern).
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes
            .keys()
            .map(|(method, path)| (method.as_str(), path.as_str()))
    }

    /// Every command the policy lists.
    pub fn commands(&self) -> impl Iterator<Item = &str> {
        self.commands.keys().map(String::as_str)
    }

    /// Whether `principal` may send `message_type` over the broker. A
    /// command the data does not list is refused: the policy fails closed.
    pub fn admits_command(
        &self,
        message_type: &str,
        principal: &Principal,
    ) -> Result<(), CommandRefusal> {
        self.command(message_type)
            .ok_or_else(|| CommandRefusal::Unlisted(message_type.to_owned()))?
            .admits(principal)
            .map_err(CommandRefusal::Refused)
    }
}

/// Why a broker command is refused by the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    #[error("{0} has no access policy (workers/config/access.json)")]
    Unlisted(String),
    #[error(transparent)]
    Refused(AccessRefusal),
}

fn rule_of(name: &str, data: &PolicyData, services: &[Service]) -> Result<Rule, String> {
    let bad = |why: &str| Err(format!("access policy `{name}`: {why}"));
    if data.public || data.staff_session {
        if data.public && data.staff_session
            || data.service.is_some()
            || data.profiles.is_some()
            || data.credentials.is_some()
        {
            return bad("a public or staff-session policy names nobody");
        }
        return Ok(if data.public {
            Rule::Public
        } else {
            Rule::StaffSession
        });
    }
    let service = match &data.service {
        Some(id) => match services.iter().find(|s| &s.id == id) {
            Some(service) => Some(service),
            None => return bad(&format!("no service `{id}` in the menu")),
        },
        None => None,
    };
    let profiles = match (&data.profiles, service) {
        (Some(profiles), _) => profiles.clone(),
        (None, Some(service)) => service.profiles.clone(),
        (None, None) => return bad("names no profiles and no service"),
    };
    if profiles.is_empty() {
        return bad("admits no profile");
    }
    let credentials = match (&data.credentials, service) {
        (Some(_), Some(_)) => return bad("names both a service and credentials"),
        (Some(credentials), None) => Some(credentials.clone()),
        (None, Some(service)) => Some(service.credentials.clone()),
        (None, None) => None,
    };
    Ok(Rule::Principals(Admission {
        policy: name.to_owned(),
        profiles,
        credentials,
        agents: data.agents,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sportello_contract::{CodiceFiscale, Identification, PinKind};

    const CITIZEN: &str = "RSSMRA85T10A562S";

    fn citizen(authentication: Authentication) -> Principal {
        Principal::Citizen {
            tax_code: CodiceFiscale::parse(CITIZEN).unwrap(),
            authentication,
        }
    }

    fn agent(identified_by: Option<Identification>) -> Principal {
        Principal::ContactCenterAgent {
            agent_id: "CC-1".into(),
            on_behalf_of: CodiceFiscale::parse(CITIZEN).unwrap(),
            identified_by,
            pin_verification_id: None,
        }
    }

    fn operator() -> Principal {
        Principal::Operator {
            operator_id: "OP-1".into(),
            office: "1900".into(),
            on_behalf_of: None,
        }
    }

    fn policy(json: &str) -> AccessPolicy {
        AccessPolicy::parse(json, &ApplicationRules::shipped().unwrap().services).unwrap()
    }

    const SAMPLE: &str = r#"{
        "about": "a sample",
        "policies": {
            "open": {"about": "x", "public": true},
            "book": {"about": "x", "service": "appointments",
                     "profiles": ["citizen", "contact_center_agent", "operator"],
                     "agents": "optional"},
            "read": {"about": "x", "profiles": ["citizen", "contact_center_agent"],
                     "credentials": ["spid2", "pin_ordinary"]},
            "office": {"about": "x", "profiles": ["operator"]}
        },
        "routes": [
            {"method": "GET", "path": "/health", "policy": "open"},
            {"method": "POST", "path": "/appointments", "policy": "book"},
            {"method": "GET", "path": "/tickets", "policy": "read"},
            {"method": "GET", "path": "/agent-reads", "policy": "office"}
        ],
        "commands": [{"type": "appointment.hold_requested", "policy": "book"}]
    }"#;

    #[test]
    fn a_route_takes_its_rule_and_an_unlisted_one_has_none() {
        let policy = policy(SAMPLE);
        assert_eq!(policy.route("get", "/health"), Some(&Rule::Public));
        assert!(policy.route("GET", "/nowhere").is_none());
        assert!(policy.route("DELETE", "/health").is_none());
        assert_eq!(
            policy.admits_command("pin.requested", &operator()),
            Err(CommandRefusal::Unlisted("pin.requested".into()))
        );
    }

    #[test]
    fn spid_level_1_and_the_simplified_pin_do_not_book() {
        let policy = policy(SAMPLE);
        let book = policy.route("POST", "/appointments").unwrap();
        assert_eq!(
            book.admits(&citizen(Authentication::Spid { level: 2 })),
            Ok(())
        );
        assert_eq!(book.admits(&citizen(Authentication::Cie)), Ok(()));
        let refusal = book
            .admits(&citizen(Authentication::Spid { level: 1 }))
            .unwrap_err();
        assert_eq!(refusal.code(), Code::CredentialRequired);
        assert!(refusal.to_string().contains("spid1"), "{refusal}");
        assert!(refusal.accepted().contains(&"spid2"), "{refusal}");
        let refusal = book
            .admits(&citizen(Authentication::Pin {
                pin_kind: PinKind::Simplified,
            }))
            .unwrap_err();
        assert!(refusal.to_string().contains("pin_simplified"), "{refusal}");
    }

    #[test]
    fn operators_meet_no_credential_and_agents_meet_it_with_the_callers() {
        let policy = policy(SAMPLE);
        let book = policy.route("POST", "/appointments").unwrap();
        assert_eq!(book.admits(&operator()), Ok(()));
        assert_eq!(book.admits(&agent(None)), Ok(()), "optional identification");
        assert_eq!(
            book.admits(&agent(Some(Identification::PinSimplified)))
                .unwrap_err()
                .code(),
            Code::CredentialRequired,
            "a claimed identification must still qualify"
        );
        let read = policy.route("GET", "/tickets").unwrap();
        assert!(
            read.admits(&agent(None)).is_err(),
            "required identification"
        );
        assert_eq!(read.admits(&agent(Some(Identification::Spid))), Ok(()));
        assert_eq!(
            read.admits(&operator()).unwrap_err().code(),
            Code::PrincipalNotAllowed
        );
    }

    #[test]
    fn the_data_must_make_sense() {
        let services = &ApplicationRules::shipped().unwrap().services;
        let with = |policies: &str, routes: &str| {
            AccessPolicy::parse(
                &format!(
                    r#"{{"about": "x", "policies": {{{policies}}}, "routes": [{routes}], "commands": []}}"#
                ),
                services,
            )
        };
        assert!(with(r#""a": {"about": "x", "public": true}"#, "").is_ok());
        assert!(with(r#""a": {"about": "x", "service": "nowhere"}"#, "").is_err());
        assert!(with(r#""a": {"about": "x"}"#, "").is_err(), "nobody");
        assert!(with(
            r#""a": {"about": "x", "public": true, "profiles": ["citizen"]}"#,
            ""
        )
        .is_err());
        assert!(with(
            r#""a": {"about": "x", "service": "tickets", "credentials": ["cie"]}"#,
            ""
        )
        .is_err());
        assert!(with(
            r#""a": {"about": "x", "public": true}"#,
            r#"{"method": "GET", "path": "/x", "policy": "b"}"#
        )
        .is_err());
        assert!(with(
            r#""a": {"about": "x", "public": true}"#,
            r#"{"method": "GET", "path": "/x", "policy": "a"},
               {"method": "GET", "path": "/x", "policy": "a"}"#
        )
        .is_err());
    }

    #[test]
    fn the_shipped_policy_parses_and_lists_every_command() {
        let policy = AccessPolicy::shipped().unwrap();
        for command in [
            "request.submitted",
            "request.message_added",
            "pin.requested",
            "delegation.granted",
            "delegation.revoked",
            "application.submitted",
            "appointment.availability_requested",
            "appointment.hold_requested",
            "appointment.confirm_requested",
            "appointment.cancel_requested",
            "appointment.callback_outcome",
        ] {
            assert!(policy.command(command).is_some(), "{command}");
        }
    }
}
