//! A PIN request as the seed's form has it, judged field by field: every
//! refusal names the field (`contacts.mobile`, `residence.postal_code`).

use chrono::{Datelike, NaiveDate};

use super::tax_code::{self, Personal, Sex};
use crate::sms::normalize_phone;
use sportello_contract::pin::{ContactsBody, PinRequestBody, ResidenceBody};
use sportello_contract::CodiceFiscale;

pub use sportello_contract::pin::PinRequestBody as RawPinRequest;

/// One refused field and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's name in the request (`contacts.mobile`).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Where the first half is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstHalfMedium {
    Sms,
    Email,
    Pec,
}

impl FirstHalfMedium {
    pub fn as_str(self) -> &'static str {
        match self {
            FirstHalfMedium::Sms => "sms",
            FirstHalfMedium::Email => "email",
            FirstHalfMedium::Pec => "pec",
        }
    }
}

/// *Residenza*.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Residence {
    Italy {
        address: String,
        street_number: String,
        postal_code: String,
        municipality: String,
        province: String,
    },
    Abroad {
        country: String,
        address: String,
        city: String,
    },
}

impl Residence {
    /// The lines of a postal address.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Residence::Italy {
                address,
                street_number,
                postal_code,
                municipality,
                province,
            } => vec![
                format!("{address} {street_number}"),
                format!("{postal_code} {municipality} ({province})"),
            ],
            Residence::Abroad {
                country,
                address,
                city,
            } => vec![address.clone(), format!("{city} - {country}")],
        }
    }
}

impl Residence {
    /// Where the residence is, as routing reads it (the office competent
    /// for the citizen). Residents abroad have no territorial office: `EE`
    /// matches no rule, so triage takes them.
    pub fn location(&self) -> sportello_contract::routing::Location {
        match self {
            Residence::Italy {
                postal_code,
                municipality,
                province,
                ..
            } => sportello_contract::routing::Location {
                province: province.clone(),
                municipality: Some(municipality.clone()),
                postal_code: Some(postal_code.clone()),
            },
            Residence::Abroad { .. } => sportello_contract::routing::Location {
                province: "EE".into(),
                municipality: None,
                postal_code: None,
            },
        }
    }
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRequest {
    pub tax_code: CodiceFiscale,
    pub surname: String,
    pub name: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub birthplace_code: String,
    pub birth_municipality: String,
    pub birth_province: String,
    pub residence: Residence,
    pub home_phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub pec: Option<String>,
    pub first_half_to: FirstHalfMedium,
}

impl PinRequest {
    /// The address the first half goes to.
    pub fn first_half_address(&self) -> Option<&str> {
        match self.first_half_to {
            FirstHalfMedium::Sms => self.mobile.as_deref(),
            FirstHalfMedium::Email => self.email.as_deref(),
            FirstHalfMedium::Pec => self.pec.as_deref(),
        }
    }
}

struct Judge {
    errors: Vec<FieldError>,
}

impl Judge {
    fn refuse(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// A required text, trimmed, 1..=max characters, printable.
    fn text(&mut self, field: &str, raw: &Option<String>, max: usize) -> Option<String> {
        match raw.as_deref().map(str::trim) {
            None | Some("") => {
                self.refuse(field, "required");
                None
            }
            Some(value) if value.chars().count() > max => {
                self.refuse(field, format!("at most {max} characters"));
                None
            }
            Some(value) if value.chars().any(char::is_control) => {
                self.refuse(field, "control characters are not allowed");
                None
            }
            Some(value) => Some(value.to_owned()),
        }
    }

    fn optional_text(&mut self, raw: &Option<String>) -> Option<String> {
        raw.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    fn phone(&mut self, field: &str, raw: &Option<String>) -> Option<String> {
        let value = self.optional_text(raw)?;
        if !(value.starts_with('+') || value.starts_with("00")) {
            self.refuse(
                field,
                "a phone number must start with its international prefix (+39 for Italy)",
            );
            return None;
        }
        match normalize_phone(&value) {
            Ok(phone) => Some(phone),
            Err(_) => {
                self.refuse(field, "not a phone number with 8 to 15 digits");
                None
            }
        }
    }

    fn email(&mut self, field: &str, raw: &Option<String>) -> Option<String> {
        let value = self.optional_text(raw)?;
        let ok = value.len() <= 254
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if ok {
            Some(value.to_lowercase())
        } else {
            self.refuse(field, "not an email address");
            None
        }
    }

    fn province(
        &mut self,
        field: &str,
        raw: &Option<String>,
        abroad_allowed: bool,
    ) -> Option<String> {
        let value = self.text(field, raw, 2)?.to_ascii_uppercase();
        if value.len() != 2 || !value.chars().all(|c| c.is_ascii_uppercase()) {
            self.refuse(field, "a province is its two-letter code (e.g. BA)");
            return None;
        }
        if value == "EE" && !abroad_allowed {
            self.refuse(field, "EE (abroad) is not a province of residence in Italy");
            return None;
        }
        Some(value)
    }

    fn residence(&mut self, raw: &Option<ResidenceBody>) -> Option<Residence> {
        let Some(raw) = raw else {
            self.refuse("residence", "required");
            return None;
        };
        let country = self
            .text("residence.country", &raw.country, 2)?
            .to_ascii_uppercase();
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
            self.refuse(
                "residence.country",
                "an ISO 3166 two-letter country code (IT for Italy)",
            );
            return None;
        }
        let address = self.text("residence.address", &raw.address, 120);
        if country == "IT" {
            let street_number = self.text("residence.street_number", &raw.street_number, 10);
            let postal_code = self.text("residence.postal_code", &raw.postal_code, 5);
            if let Some(cap) = &postal_code {
                if cap.len() != 5 || !cap.chars().all(|c| c.is_ascii_digit()) {
                    self.refuse("residence.postal_code", "a CAP is five digits");
                }
            }
            let municipality = self.text("residence.municipality", &raw.municipality, 80);
            let province = self.province("residence.province", &raw.province, false);
            Some(Residence::Italy {
                address: address?,
                street_number: street_number?,
                postal_code: postal_code
                    .filter(|c| c.len() == 5 && c.chars().all(|c| c.is_ascii_digit()))?,
                municipality: municipality?,
                province: province?,
            })
        } else {
            let city = self.text("residence.city", &raw.city, 80);
            Some(Residence::Abroad {
                country,
                address: address?,
                city: city?,
            })
        }
    }
}

/// Judges a request: the typed request, or every refused field.
pub fn judge(raw: &PinRequestBody) -> Result<PinRequest, Vec<FieldError>> {
    let mut judge = Judge { errors: Vec::new() };
    let tax_code = match judge.text("tax_code", &raw.tax_code, 16) {
        Some(code) => match CodiceFiscale::parse(&code) {
            Ok(code) => Some(code),
            Err(e) => {
                judge.refuse("tax_code", e.to_string());
                None
            }
        },
        None => None,
    };
    let surname = judge.text("surname", &raw.surname, 80);
    let name = judge.text("name", &raw.name, 80);
    let birth_date = judge
        .text("birth_date", &raw.birth_date, 10)
        .and_then(|raw| match NaiveDate::parse_from_str(&raw, "%Y-%m-%d") {
            Ok(date) if date < chrono::Utc::now().date_naive() && date.year() >= 1900 => Some(date),
            Ok(_) => {
                judge.refuse("birth_date", "a birth date in the past, from 1900");
                None
            }
            Err(_) => {
                judge.refuse("birth_date", "a date as YYYY-MM-DD");
                None
            }
        });
    let sex = judge
        .text("sex", &raw.sex, 1)
        .and_then(|raw| match raw.as_str() {
            "M" | "m" => Some(Sex::M),
            "F" | "f" => Some(Sex::F),
            _ => {
                judge.refuse("sex", "M or F");
                None
            }
        });
    let birthplace_code = judge
        .text("birthplace_code", &raw.birthplace_code, 4)
        .map(|c| c.to_ascii_uppercase())
        .and_then(|code| {
            let mut chars = code.chars();
            let ok = code.len() == 4
                && chars.next().is_some_and(|c| c.is_ascii_uppercase())
                && chars.all(|c| c.is_ascii_digit());
            if ok {
                Some(code)
            } else {
                judge.refuse(
                    "birthplace_code",
                    "a codice catastale: a letter and three digits (A562, Z404)",
                );
                None
            }
        });
    let birth_municipality = judge.text("birth_municipality", &raw.birth_municipality, 80);
    let birth_province = judge.province("birth_province", &raw.birth_province, true);
    if let (Some(code), Some(province)) = (&birthplace_code, &birth_province) {
        if code.starts_with('Z') != (province == "EE") {
            judge.refuse(
                "birth_province",
                "EE (abroad) goes with a country's code (Z…), a province with a municipality's",
            );
        }
    }
    let residence = judge.residence(&raw.residence);
    let contacts = raw.contacts.clone().unwrap_or_default();
    let ContactsBody {
        home_phone,
        mobile,
        email,
        pec,
    } = &contacts;
    let home_phone = judge.phone("contacts.home_phone", home_phone);
    let mobile = judge.phone("contacts.mobile", mobile);
    let email = judge.email("contacts.email", email);
    let pec = judge.email("contacts.pec", pec);
    let phones_given = contacts
        .home_phone
        .as_deref()
        .is_some_and(|p| !p.trim().is_empty())
        || contacts
            .mobile
            .as_deref()
            .is_some_and(|p| !p.trim().is_empty());
    if !phones_given {
        judge.refuse(
            "contacts.mobile",
            "give at least one of home phone and mobile",
        );
    }
    let mails_given = contacts
        .email
        .as_deref()
        .is_some_and(|p| !p.trim().is_empty())
        || contacts
            .pec
            .as_deref()
            .is_some_and(|p| !p.trim().is_empty());
    if !mails_given {
        judge.refuse("contacts.email", "give at least one of email and PEC");
    }
    let first_half_to = match raw.first_half_to.as_deref().map(str::trim) {
        None | Some("") => mobile
            .as_ref()
            .map(|_| FirstHalfMedium::Sms)
            .or(email.as_ref().map(|_| FirstHalfMedium::Email))
            .or(pec.as_ref().map(|_| FirstHalfMedium::Pec)),
        Some("sms") if mobile.is_some() => Some(FirstHalfMedium::Sms),
        Some("email") if email.is_some() => Some(FirstHalfMedium::Email),
        Some("pec") if pec.is_some() => Some(FirstHalfMedium::Pec),
        Some("sms" | "email" | "pec") => {
            judge.refuse("first_half_to", "the chosen contact is not given");
            None
        }
        Some(_) => {
            judge.refuse("first_half_to", "sms, email or pec");
            None
        }
    };
    if let (Some(code), Some(surname), Some(name), Some(birth_date), Some(sex), Some(place)) = (
        &tax_code,
        &surname,
        &name,
        birth_date,
        sex,
        &birthplace_code,
    ) {
        let personal = Personal {
            surname,
            name,
            birth_date,
            sex,
            birthplace_code: place,
        };
        if let Err(mismatch) = tax_code::check(code, &personal) {
            judge.refuse(
                mismatch.field(),
                format!("does not match the tax code {code}"),
            );
        }
    }
    if !judge.errors.is_empty() {
        return Err(judge.errors);
    }
    // Every field above is Some when no error was recorded.
    match (
        tax_code,
        surname,
        name,
        birth_date,
        sex,
        birthplace_code,
        birth_municipality,
        birth_province,
        residence,
        first_half_to,
    ) {
        (
            Some(tax_code),
            Some(surname),
            Some(name),
            Some(birth_date),
            Some(sex),
            Some(birthplace_code),
            Some(birth_municipality),
            Some(birth_province),
            Some(residence),
            Some(first_half_to),
        ) => Ok(PinRequest {
            tax_code,
            surname,
            name,
            birth_date,
            sex,
            birthplace_code,
            birth_municipality,
            birth_province,
            residence,
            home_phone,
            mobile,
            email,
            pec,
            first_half_to,
        }),
        _ => Err(vec![FieldError::new("request", "incomplete")]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sportello_contract::pin::{ContactsBody, ResidenceBody};

    pub fn valid() -> PinRequestBody {
        PinRequestBody {
            tax_code: Some("RSSMRA85T10A562S".into()),
            surname: Some("Rossi".into()),
            name: Some("Mario".into()),
            birth_date: Some("1985-12-10".into()),
            sex: Some("M".into()),
            birthplace_code: Some("A562".into()),
            birth_municipality: Some("San Giovanni Rotondo".into()),
            birth_province: Some("FG".into()),
            residence: Some(ResidenceBody {
                country: Some("IT".into()),
                address: Some("Via Roma".into()),
                street_number: Some("1".into()),
                postal_code: Some("70121".into()),
                municipality: Some("Bari".into()),
                province: Some("BA".into()),
                city: None,
            }),
            contacts: Some(ContactsBody {
                home_phone: None,
                mobile: Some("+39 333 1234567".into()),
                email: Some("Mario.Rossi@example.it".into()),
                pec: None,
            }),
            first_half_to: None,
        }
    }

    fn fields(raw: &PinRequestBody) -> Vec<String> {
        judge(raw)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_complete_request_is_accepted_and_normalised() {
        let request = judge(&valid()).unwrap();
        assert_eq!(request.mobile.as_deref(), Some("+393331234567"));
        assert_eq!(request.email.as_deref(), Some("mario.rossi@example.it"));
        assert_eq!(request.first_half_to, FirstHalfMedium::Sms);
        assert_eq!(request.first_half_address(), Some("+393331234567"));
    }

    #[test]
    fn a_residence_abroad_needs_country_address_and_city() {
        let mut raw = valid();
        raw.residence = Some(ResidenceBody {
            country: Some("DE".into()),
            address: Some("Hauptstraße 5".into()),
            city: None,
            ..Default::default()
        });
        assert_eq!(fields(&raw), ["residence.city"]);
        raw.residence.as_mut().unwrap().city = Some("Berlin".into());
        assert!(matches!(
            judge(&raw).unwrap().residence,
            Residence::Abroad { .. }
        ));
    }

    #[test]
    fn contacts_need_a_phone_and_a_mailbox_with_prefixes() {
        let mut raw = valid();
        raw.contacts = Some(ContactsBody::default());
        assert_eq!(fields(&raw), ["contacts.mobile", "contacts.email"]);
        let mut raw = valid();
        raw.contacts.as_mut().unwrap().mobile = Some("3331234567".into());
        assert_eq!(fields(&raw)[0], "contacts.mobile");
        let mut raw = valid();
        raw.contacts.as_mut().unwrap().email = Some("not-an-address".into());
        assert_eq!(fields(&raw), ["contacts.email"]);
        let mut raw = valid();
        raw.first_half_to = Some("pec".into());
        assert_eq!(fields(&raw), ["first_half_to"]);
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut raw = valid();
        raw.surname = Some("Verdi".into());
        assert_eq!(fields(&raw), ["surname"]);
        let mut raw = valid();
        raw.sex = Some("F".into());
        assert_eq!(fields(&raw), ["sex"]);
        let mut raw = valid();
        raw.birth_date = Some("10/12/1985".into());
        assert_eq!(fields(&raw), ["birth_date"]);
        let mut raw = valid();
        raw.tax_code = Some("RSSMRA85T10A562T".into());
        assert_eq!(fields(&raw), ["tax_code"]);
        let mut raw = valid();
        raw.residence.as_mut().unwrap().postal_code = Some("7012".into());
        assert_eq!(fields(&raw), ["residence.postal_code"]);
        let mut raw = valid();
        raw.birth_province = Some("EE".into());
        assert_eq!(fields(&raw), ["birth_province"]);
        let mut raw = valid();
        raw.name = None;
        assert_eq!(fields(&raw), ["name"]);
    }
}
