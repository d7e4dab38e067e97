//! Benefit applications (*domande di prestazione*): what is checked before
//! any I/O. The benefits, the credentials each service needs, the windows
//! and the Cassetto's menu are data (`workers/config/applications.json`);
//! this module reads them and applies them.
//!
//! One application per citizen and benefit is the database's rule (a
//! unique key); here an application is only compared with an earlier one
//! ([`fingerprint`]) to tell a resubmission (the F5) from a different one.

pub mod benefits;
pub mod catalogue;
pub mod policy;
pub mod window;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use benefits::{Benefit, Category, FieldError};
use catalogue::Service;
use policy::{Credential, PrincipalKind};
use sportello_contract::applications::ApplicationSubmitted;
use sportello_contract::{Envelope, Identification, Principal, RequestSubmitted};
use window::{check_window, WindowRefusal};

/// The whole policy file.
#[derive(Debug, Clone, Deserialize)]
pub struct ApplicationRules {
    pub benefits: Vec<Benefit>,
    /// Every service of the menu, with who sees it and the credentials it needs.
    pub services: Vec<Service>,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("the applications policy is not valid JSON for its format: {0}")]
    Format(#[from] serde_json::Error),
    #[error("the applications policy is inconsistent: {0}")]
    Inconsistent(String),
}

impl ApplicationRules {
    /// The policy shipped with the build, parsed once per process.
    pub fn shipped() -> Result<&'static ApplicationRules, String> {
        static RULES: std::sync::OnceLock<Result<ApplicationRules, String>> =
            std::sync::OnceLock::new();
        RULES
            .get_or_init(|| {
                ApplicationRules::parse(include_str!("../../../config/applications.json"))
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn parse(raw: &str) -> Result<ApplicationRules, RulesError> {
        let rules: ApplicationRules = serde_json::from_str(raw)?;
        rules.check()?;
        Ok(rules)
    }

    /// Ids are unique, and every benefit has its submission service (the
    /// credentials it accepts are stated, never assumed).
    fn check(&self) -> Result<(), RulesError> {
        let inconsistent = |m: String| Err(RulesError::Inconsistent(m));
        for (i, benefit) in self.benefits.iter().enumerate() {
            if self.benefits[..i].iter().any(|b| b.id == benefit.id) {
                return inconsistent(format!("benefit `{}` appears twice", benefit.id));
            }
            if self.service(&submission_service(&benefit.id)).is_none() {
                return inconsistent(format!(
                    "benefit `{}` has no service `{}` saying which credentials may submit it",
                    benefit.id,
                    submission_service(&benefit.id)
                ));
            }
            for (j, category) in benefit.categories.iter().enumerate() {
                if benefit.categories[..j].iter().any(|c| c.id == category.id) {
                    return inconsistent(format!(
                        "category `{}` appears twice in `{}`",
                        category.id, benefit.id
                    ));
                }
            }
        }
        for (i, service) in self.services.iter().enumerate() {
            if self.services[..i].iter().any(|s| s.id == service.id) {
                return inconsistent(format!("service `{}` appears twice", service.id));
            }
        }
        Ok(())
    }

    pub fn benefit(&self, id: &str) -> Option<&Benefit> {
        self.benefits.iter().find(|b| b.id == id)
    }

    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }
}

/// The service that submits applications for a benefit.
pub fn submission_service(benefit: &str) -> String {
    format!("application.{benefit}")
}

/// The service that reads one's own applications.
pub const CONSULTATION_SERVICE: &str = "applications.consult";

/// Why an application is refused before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplicationRefusal {
    #[error("unknown benefit `{0}`")]
    UnknownBenefit(String),
    #[error("benefit `{benefit}` has no category `{category}`")]
    UnknownCategory { benefit: String, category: String },
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("IBAN `{iban}` is not valid: {reason}")]
    Iban { iban: String, reason: &'static str },
    #[error(
        "the applicant {applicant} is not among the declared holders of account {iban}: the benefit is paid only to an account the applicant holds"
    )]
    HolderMismatch { applicant: String, iban: String },
    #[error(
        "the applicant {applicant} is not the citizen this {principal} may apply for ({subject})"
    )]
    NotTheSubject {
        applicant: String,
        principal: &'static str,
        subject: String,
    },
    #[error("{0}")]
    Credential(String),
    #[error(transparent)]
    Window(#[from] WindowRefusal),
    #[error("occurred_at {0} is in the future")]
    FromTheFuture(DateTime<Utc>),
}

/// An application that passed every check that needs no database.
#[derive(Debug, Clone)]
pub struct CheckedApplication {
    /// The IBAN in electronic form (no spaces, upper case).
    pub iban: String,
    /// The credential it was submitted with (for an agent: how the citizen
    /// identified on the phone); kept with the application.
    pub credential: Option<Credential>,
    /// Tells a resubmission of the same application from a different one.
    pub fingerprint: String,
    pub benefit_label: String,
    pub category_label: String,
    pub ambito: String,
}

/// How far ahead of the worker's clock a channel's `occurred_at` may be.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Every check an application passes before it is stored: benefit and
/// category, the category's fields, the IBAN and its holder, who may submit
/// it with which credential, and the window. The window is judged at the
/// message's `occurred_at` (when the channel accepted it), so a burst
/// queued before the window closed is not refused for waiting its turn.
pub fn check_application(
    rules: &ApplicationRules,
    envelope: &Envelope<ApplicationSubmitted>,
    now: DateTime<Utc>,
) -> Result<CheckedApplication, ApplicationRefusal> {
    let application = &envelope.payload;
    let benefit = rules
        .benefit(&application.benefit)
        .ok_or_else(|| ApplicationRefusal::UnknownBenefit(application.benefit.clone()))?;
    let category: &Category = benefit
        .categories
        .iter()
        .find(|c| c.id == application.category)
        .ok_or_else(|| ApplicationRefusal::UnknownCategory {
            benefit: benefit.id.clone(),
            category: application.category.clone(),
        })?;
    category.check_fields(&application.fields)?;
    let iban = check_iban(&application.payment.iban)?;
    let applicant = &application.applicant.tax_code;
    if !application
        .payment
        .holders
        .iter()
        .any(|holder| &holder.tax_code == applicant)
    {
        return Err(ApplicationRefusal::HolderMismatch {
            applicant: applicant.to_string(),
            iban,
        });
    }
    check_subject(&envelope.principal, applicant)?;
    let credential = submitting_credential(&envelope.principal);
    let service = submission_service(&benefit.id);
    if let Some(service) = rules.service(&service) {
        service
            .admits(credential)
            .map_err(ApplicationRefusal::Credential)?;
    }
    if envelope.occurred_at > now + CLOCK_SKEW {
        return Err(ApplicationRefusal::FromTheFuture(envelope.occurred_at));
    }
    let kind = PrincipalKind::parse(envelope.principal.kind()).ok_or_else(|| {
        ApplicationRefusal::Credential(format!("unknown principal {}", envelope.principal.kind()))
    })?;
    check_window(
        &benefit.opening,
        &benefit.windows,
        envelope.channel,
        kind,
        envelope.principal.kind(),
        envelope.occurred_at,
    )?;
    Ok(CheckedApplication {
        fingerprint: fingerprint(application, &iban),
        iban,
        credential,
        benefit_label: benefit.label.clone(),
        category_label: category.label.clone(),
        ambito: benefit.ambito.clone(),
    })
}

/// The IBAN in electronic form, checked for structure, the country's length
/// and BBAN format, and the mod-97 check digits.
pub fn check_iban(raw: &str) -> Result<String, ApplicationRefusal> {
    use iban::{IbanLike, ParseBaseIbanError, ParseIbanError};
    let shown: String = raw.chars().take(40).collect();
    let refuse = |reason| ApplicationRefusal::Iban {
        iban: shown.clone(),
        reason,
    };
    match raw.parse::<iban::Iban>() {
        Ok(account) => Ok(account.electronic_str().to_owned()),
        Err(ParseIbanError::InvalidBaseIban { source }) => Err(refuse(match source {
            ParseBaseIbanError::InvalidChecksum => "the check digits do not match (mod 97)",
            _ => "not an IBAN (two letters, two check digits, then the account)",
        })),
        Err(ParseIbanError::UnknownCountry(_)) => Err(refuse("unknown country code")),
        Err(ParseIbanError::InvalidBban(_)) => {
            Err(refuse("wrong length or format for the country's accounts"))
        }
    }
}

/// The applicant is whom the principal acts for: the citizen themself, the
/// citizen an agent or an operator acts for. An intermediary's client is
/// checked against the delegations when the application is stored.
fn check_subject(
    principal: &Principal,
    applicant: &sportello_contract::CodiceFiscale,
) -> Result<(), ApplicationRefusal> {
    if matches!(principal, Principal::Intermediary { .. }) {
        return Ok(());
    }
    match principal.subject_tax_code() {
        Some(subject) if subject == applicant => Ok(()),
        subject => Err(ApplicationRefusal::NotTheSubject {
            applicant: applicant.to_string(),
            principal: principal.kind(),
            subject: subject.map_or_else(|| "nobody".to_owned(), ToString::to_string),
        }),
    }
}

/// The credential a submission counts as. An agent submits with the
/// citizen's identification on the phone (the whole PIN counts as the
/// institute's own credential, its first half as the simplified PIN); an
/// operator at the desk has seen the citizen's identity document.
pub fn submitting_credential(principal: &Principal) -> Option<Credential> {
    match principal {
        Principal::Citizen { authentication, .. }
        | Principal::Intermediary { authentication, .. } => Credential::of(authentication),
        Principal::ContactCenterAgent { identified_by, .. } => identified_by.map(|id| match id {
            Identification::Spid => Credential::Spid2,
            Identification::Cie => Credential::Cie,
            Identification::Cns => Credential::Cns,
            Identification::Pin => Credential::PinDispositivo,
            Identification::PinSimplified => Credential::PinSimplified,
        }),
        Principal::Operator { .. } => Some(Credential::Cie),
    }
}

/// What makes two submissions the same application: the benefit, the
/// category, the applicant, the fields and the account. Contacts may be
/// corrected on a resubmission without making it a different application.
pub fn fingerprint(application: &ApplicationSubmitted, iban: &str) -> String {
    let canonical = serde_json::json!({
        "benefit": application.benefit,
        "category": application.category,
        "applicant": application.applicant.tax_code,
        "fields": application.fields,
        "iban": iban,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// The back-office case an application becomes, as the request its ticket
/// is opened from: the benefit's ambito routes it, the subject names the
/// benefit and category, the text is what the operator reviews.
pub fn case_request(
    envelope: &Envelope<ApplicationSubmitted>,
    checked: &CheckedApplication,
) -> Envelope<RequestSubmitted> {
    let application = &envelope.payload;
    let mut text = format!(
        "Domanda: {}\nCategoria: {}\nRichiedente: {} {} ({})\nIBAN: {} (intestatari: {})\n",
        checked.benefit_label,
        checked.category_label,
        application.applicant.name,
        application.applicant.surname,
        application.applicant.tax_code,
        checked.iban,
        application
            .payment
            .holders
            .iter()
            .map(|h| format!("{} {}", h.name, h.tax_code))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for (name, value) in &application.fields {
        let shown = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.push_str(&format!("{name}: {shown}\n"));
    }
    Envelope {
        message_id: envelope.message_id,
        message_type: "request.submitted".into(),
        schema_version: 2,
        channel: envelope.channel,
        occurred_at: envelope.occurred_at,
        correlation_id: envelope.correlation_id.clone(),
        idempotency_key: envelope.idempotency_key.clone(),
        principal: envelope.principal.clone(),
        payload: RequestSubmitted {
            ambito: checked.ambito.clone(),
            matricola: None,
            subject: format!(
                "Domanda {} - {}",
                checked.benefit_label, checked.category_label
            )
            .chars()
            .take(200)
            .collect(),
            text,
            contact: application.contact.clone(),
            location: application.location.clone(),
            position_location: None,
            attachments: Vec::new(),
            gestione: None,
        },
    }
}

#[cfg(test)]
mod tests;
