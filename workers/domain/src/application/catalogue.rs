//! The Cassetto's menu (seed 002: "created dynamically from the user's
//! profile and the type of the contribution position"): every service is a
//! row of data naming who sees it and which credentials may use it.

use serde::{Deserialize, Serialize};

use super::policy::{Credential, PrincipalKind};

/// One service of the menu.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Service {
    pub id: String,
    pub label: String,
    /// Menu group (e.g. "Domande", "Posizione contributiva").
    pub group: String,
    /// Where the channel opens it (a path of the channel's own).
    pub path: String,
    /// The kinds of principal that see it.
    pub profiles: Vec<PrincipalKind>,
    /// The types of contribution position it is about; empty: any, or none.
    #[serde(default)]
    pub position_types: Vec<String>,
    /// The credentials that may use it.
    pub credentials: Vec<Credential>,
    /// Why the credentials are these, where the seeds disagree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A service as one user sees it in the menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MenuEntry<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub group: &'a str,
    pub path: &'a str,
    /// False when the user's credential is not enough: the entry is shown
    /// with the credentials that would open it, so the citizen knows what to get.
    pub available: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<&'static str>,
}

impl Service {
    /// Whether `credential` may use the service; if not, why.
    pub fn admits(&self, credential: Option<Credential>) -> Result<(), String> {
        match credential {
            Some(c) if self.credentials.contains(&c) => Ok(()),
            Some(c) => Err(format!(
                "the credential `{}` is not accepted for `{}`; accepted: {}",
                c.as_str(),
                self.id,
                self.accepted()
            )),
            None => Err(format!(
                "`{}` needs one of these credentials: {}",
                self.id,
                self.accepted()
            )),
        }
    }

    fn accepted(&self) -> String {
        self.credentials
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The menu of a user: the services their profile sees for the position
/// type they are working on (none: the services about no position), in
/// the order of the data.
pub fn menu<'a>(
    services: &'a [Service],
    profile: PrincipalKind,
    position_type: Option<&str>,
    credential: Option<Credential>,
) -> Vec<MenuEntry<'a>> {
    services
        .iter()
        .filter(|s| s.profiles.contains(&profile))
        .filter(|s| match position_type {
            Some(kind) => s.position_types.is_empty() || s.position_types.iter().any(|t| t == kind),
            None => s.position_types.is_empty(),
        })
        .map(|s| {
            let available = s.admits(credential).is_ok();
            MenuEntry {
                id: &s.id,
                label: &s.label,
                group: &s.group,
                path: &s.path,
                available,
                requires: if available {
                    Vec::new()
                } else {
                    s.credentials.iter().map(|c| c.as_str()).collect()
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(
        id: &str,
        profiles: Vec<PrincipalKind>,
        positions: &[&str],
        credentials: Vec<Credential>,
    ) -> Service {
        Service {
            id: id.into(),
            label: id.into(),
            group: "g".into(),
            path: format!("/{id}"),
            profiles,
            position_types: positions.iter().map(|s| s.to_string()).collect(),
            credentials,
            note: None,
        }
    }

    #[test]
    fn the_menu_follows_profile_position_and_credential() {
        use Credential::*;
        use PrincipalKind::*;
        let services = vec![
            service("apply", vec![Citizen], &[], vec![Spid2, PinSimplified]),
            service(
                "uniemens",
                vec![Citizen, Intermediary],
                &["azienda_uniemens"],
                vec![Spid2],
            ),
            service(
                "artigiani",
                vec![Citizen],
                &["artigiano"],
                vec![Spid2, PinOrdinary],
            ),
        ];
        let ids =
            |entries: Vec<MenuEntry>| entries.iter().map(|e| e.id.to_owned()).collect::<Vec<_>>();
        assert_eq!(ids(menu(&services, Citizen, None, Some(Spid2))), ["apply"]);
        assert_eq!(
            ids(menu(&services, Citizen, Some("artigiano"), Some(Spid2))),
            ["apply", "artigiani"]
        );
        assert_eq!(
            ids(menu(
                &services,
                Intermediary,
                Some("azienda_uniemens"),
                Some(Spid2)
            )),
            ["uniemens"]
        );
        let ordinary = menu(&services, Citizen, Some("artigiano"), Some(PinOrdinary));
        assert!(!ordinary[0].available);
        assert_eq!(ordinary[0].requires, ["spid2", "pin_simplified"]);
        assert!(ordinary[1].available);
    }
}
