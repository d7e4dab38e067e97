//! *Smistamento*: which office (and which of its desks) a request goes to.
//!
//! The rules are data (tables `routing_rules`, `ambiti`, `desks`), loaded by
//! the caller; this module only decides. A request no rule routes goes to the
//! triage office, never nowhere.

pub use sportello_contract::routing::{Location, RoutedBy};

/// A row of `routing_rules`: territory -> office. `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingRule {
    pub province: String,
    /// Lower case.
    pub municipality: Option<String>,
    pub postal_code: Option<String>,
    pub office_aoo: String,
}

/// An ambito and the kind of desk that handles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambito {
    pub code: String,
    pub label: String,
    pub desk_kind: String,
}

/// The reference data routing decides on.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    pub rules: Vec<RoutingRule>,
    pub ambiti: Vec<Ambito>,
    /// (office AOO, desk kind) pairs that exist.
    pub desks: Vec<(String, String)>,
    pub triage_office: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingDecision {
    pub office_aoo: String,
    /// `None`: the office's general queue (it has no desk for this matter).
    pub desk_kind: Option<String>,
    pub routed_by: RoutedBy,
    /// Why it went to triage, for the triage operators.
    pub note: Option<String>,
    /// Label of the ambito, or its code when unknown; the ticket subject starts with it.
    pub ambito_label: String,
}

/// Desk used when an office has none of the ambito's kind.
const FALLBACK_DESK: &str = "multiservizi";

impl RoutingTable {
    /// Routes by the position's location first (the office competent for the
    /// position), then by the person's; the most specific rule wins.
    pub fn route(
        &self,
        ambito: &str,
        position: Option<&Location>,
        person: Option<&Location>,
    ) -> RoutingDecision {
        let known_ambito = self.ambiti.iter().find(|a| a.code == ambito);
        let ambito_label = known_ambito.map_or_else(|| ambito.to_owned(), |a| a.label.clone());
        let triage = |note: String| RoutingDecision {
            office_aoo: self.triage_office.clone(),
            desk_kind: None,
            routed_by: RoutedBy::Triage,
            note: Some(note),
            ambito_label: ambito_label.clone(),
        };
        let Some(ambito) = known_ambito else {
            return triage(format!("ambito `{ambito}` is not in the reference data"));
        };
        let office = [position, person]
            .into_iter()
            .flatten()
            .find_map(|location| self.office_for(location));
        let Some(office) = office else {
            let where_ = [position, person]
                .into_iter()
                .flatten()
                .map(describe)
                .collect::<Vec<_>>();
            return triage(if where_.is_empty() {
                "the request carries no location".into()
            } else {
                format!("no routing rule for {}", where_.join(" nor "))
            });
        };
        let desk_kind = self.desk_at(&office, &ambito.code);
        RoutingDecision {
            office_aoo: office,
            desk_kind,
            routed_by: RoutedBy::Rule,
            note: None,
            ambito_label,
        }
    }

    /// The office's desk for the ambito's kind of matter, else its
    /// multiservizi desk, else none (the office's general queue).
    pub fn desk_at(&self, office: &str, ambito: &str) -> Option<String> {
        let kind = self
            .ambiti
            .iter()
            .find(|a| a.code == ambito)?
            .desk_kind
            .as_str();
        let has_desk = |kind: &str| self.desks.iter().any(|(o, k)| o == office && k == kind);
        [kind, FALLBACK_DESK]
            .into_iter()
            .find(|kind| has_desk(kind))
            .map(str::to_owned)
    }

    fn office_for(&self, location: &Location) -> Option<String> {
        let province = location.province.trim().to_uppercase();
        let municipality = location.municipality.as_deref().map(normalize_municipality);
        let postal_code = location.postal_code.as_deref().map(str::trim);
        self.rules
            .iter()
            .filter(|rule| {
                rule.province == province
                    && rule
                        .municipality
                        .as_deref()
                        .is_none_or(|m| Some(m) == municipality.as_deref())
                    && rule
                        .postal_code
                        .as_deref()
                        .is_none_or(|c| Some(c) == postal_code)
            })
            .max_by_key(|rule| specificity(rule))
            .map(|rule| rule.office_aoo.clone())
    }
}

fn specificity(rule: &RoutingRule) -> u8 {
    u8::from(rule.postal_code.is_some()) * 2 + u8::from(rule.municipality.is_some())
}

/// Rules store municipality names lower case with single spaces.
pub fn normalize_municipality(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn describe(location: &Location) -> String {
    let mut parts = vec![location.province.clone()];
    parts.extend(location.municipality.clone());
    parts.extend(location.postal_code.clone());
    parts.join(" ")
}

/// The ticket subject carries the ambito context: "UniEmens - <subject>",
/// once: a subject that already starts with it is kept as sent.
pub fn ticket_subject(ambito_label: &str, subject: &str) -> String {
    let prefix = format!("{ambito_label} - ");
    let already = subject
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(&prefix));
    if already {
        subject.to_owned()
    } else {
        format!("{prefix}{subject}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        province: &str,
        municipality: Option<&str>,
        cap: Option<&str>,
        office: &str,
    ) -> RoutingRule {
        RoutingRule {
            province: province.into(),
            municipality: municipality.map(Into::into),
            postal_code: cap.map(Into::into),
            office_aoo: office.into(),
        }
    }

    fn table() -> RoutingTable {
        RoutingTable {
            rules: vec![
                rule("CR", None, None, "1900"),
                rule("CR", Some("crema"), None, "1901"),
                rule("GE", None, None, "3400"),
                rule("GE", Some("genova"), Some("16154"), "3402"),
                rule("GE", Some("sestri levante"), None, "3401"),
            ],
            ambiti: vec![
                Ambito {
                    code: "uniemens".into(),
                    label: "UniEmens".into(),
                    desk_kind: "aziende".into(),
                },
                Ambito {
                    code: "pensioni".into(),
                    label: "Pensioni".into(),
                    desk_kind: "pensioni".into(),
                },
            ],
            desks: vec![
                ("1900".into(), "aziende".into()),
                ("1901".into(), "aziende".into()),
                ("3400".into(), "pensioni".into()),
                ("3401".into(), "multiservizi".into()),
            ],
            triage_office: "0001".into(),
        }
    }

    fn at(province: &str, municipality: Option<&str>, cap: Option<&str>) -> Location {
        Location {
            province: province.into(),
            municipality: municipality.map(Into::into),
            postal_code: cap.map(Into::into),
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let t = table();
        assert_eq!(
            t.route("uniemens", None, Some(&at("CR", Some("Cremona"), None)))
                .office_aoo,
            "1900"
        );
        assert_eq!(
            t.route("uniemens", None, Some(&at("cr", Some("  Crema "), None)))
                .office_aoo,
            "1901"
        );
        assert_eq!(
            t.route(
                "pensioni",
                None,
                Some(&at("GE", Some("Genova"), Some("16154")))
            )
            .office_aoo,
            "3402"
        );
        assert_eq!(
            t.route(
                "pensioni",
                None,
                Some(&at("GE", Some("Genova"), Some("16121")))
            )
            .office_aoo,
            "3400"
        );
    }

    #[test]
    fn the_position_decides_before_the_person() {
        let t = table();
        let decision = t.route(
            "uniemens",
            Some(&at("CR", Some("Crema"), None)),
            Some(&at("GE", None, None)),
        );
        assert_eq!(decision.office_aoo, "1901");
        assert_eq!(decision.routed_by, RoutedBy::Rule);
        let unknown_position = t.route(
            "uniemens",
            Some(&at("ZZ", None, None)),
            Some(&at("GE", None, None)),
        );
        assert_eq!(unknown_position.office_aoo, "3400");
    }

    #[test]
    fn desks_follow_the_ambito_with_a_fallback() {
        let t = table();
        let crema = t.route("uniemens", None, Some(&at("CR", Some("Crema"), None)));
        assert_eq!(crema.desk_kind.as_deref(), Some("aziende"));
        assert_eq!(crema.ambito_label, "UniEmens");
        let sestri = t.route(
            "pensioni",
            None,
            Some(&at("GE", Some("Sestri Levante"), None)),
        );
        assert_eq!(sestri.desk_kind.as_deref(), Some("multiservizi"));
        let cremona = t.route("pensioni", None, Some(&at("CR", None, None)));
        assert_eq!(
            cremona.desk_kind, None,
            "no desk of the kind: the office's general queue"
        );
    }

    #[test]
    fn what_no_rule_routes_goes_to_triage_with_a_reason() {
        let t = table();
        let nowhere = t.route(
            "uniemens",
            None,
            Some(&at("MI", Some("Milano"), Some("20121"))),
        );
        assert_eq!(
            (nowhere.office_aoo.as_str(), nowhere.routed_by),
            ("0001", RoutedBy::Triage)
        );
        assert!(nowhere.note.unwrap().contains("MI Milano 20121"));
        let no_location = t.route("uniemens", None, None);
        assert_eq!(no_location.routed_by, RoutedBy::Triage);
        let unknown_ambito = t.route("astrologia", None, Some(&at("CR", None, None)));
        assert_eq!(unknown_ambito.routed_by, RoutedBy::Triage);
        assert_eq!(unknown_ambito.ambito_label, "astrologia");
    }

    #[test]
    fn the_ambito_is_not_repeated() {
        assert_eq!(
            ticket_subject("Versamenti", "Versamenti - F24 di ottobre"),
            "Versamenti - F24 di ottobre"
        );
        assert_eq!(
            ticket_subject("Versamenti", "versamenti - F24"),
            "versamenti - F24"
        );
        assert_eq!(
            ticket_subject("Versamenti", "Versamenti di ottobre"),
            "Versamenti - Versamenti di ottobre"
        );
    }

    #[test]
    fn subjects_carry_the_ambito() {
        assert_eq!(
            ticket_subject("UniEmens", "Denuncia di marzo"),
            "UniEmens - Denuncia di marzo"
        );
    }
}
