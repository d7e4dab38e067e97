//! What a citizen (web) or a contact-centre agent sends to request a PIN,
//! and the events of the PIN's lifecycle. Every field is read as text and
//! judged by `domain::pin::request`, so a bad one is refused by its name
//! rather than as unparsable JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::CodiceFiscale;

/// *Richiesta PIN*: personal data (*dati anagrafici*), residence (*dati
/// residenza*), contacts (*recapiti personali*).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequestBody {
    /// *Codice fiscale*, consistent with the personal data below.
    pub tax_code: Option<String>,
    /// *Cognome*.
    pub surname: Option<String>,
    /// *Nome*.
    pub name: Option<String>,
    /// *Data di nascita*, `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// *Sesso*: `M` or `F`.
    pub sex: Option<String>,
    /// *Codice catastale* of the municipality of birth (`A562`), or
    /// `Z` + 3 digits for a country.
    pub birthplace_code: Option<String>,
    /// *Comune di nascita* (or the country, born abroad).
    pub birth_municipality: Option<String>,
    /// *Provincia di nascita*: two letters, `EE` when born abroad.
    pub birth_province: Option<String>,
    pub residence: Option<ResidenceBody>,
    pub contacts: Option<ContactsBody>,
    /// Where the first half goes: `sms`, `email` or `pec` (default: the
    /// mobile, else the email, else the PEC).
    pub first_half_to: Option<String>,
}

/// *Residenza*: in Italy (address, number, CAP, municipality, province) or
/// abroad (country, address, city).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResidenceBody {
    /// ISO 3166 alpha-2: `IT` for a residence in Italy.
    pub country: Option<String>,
    /// *Indirizzo*.
    pub address: Option<String>,
    /// *Numero civico* (Italy).
    pub street_number: Option<String>,
    /// *CAP*: five digits (Italy).
    pub postal_code: Option<String>,
    /// *Comune di residenza* (Italy).
    pub municipality: Option<String>,
    /// *Provincia di residenza*: two letters (Italy).
    pub province: Option<String>,
    /// City (abroad).
    pub city: Option<String>,
}

/// *Recapiti*: at least one of home phone and mobile, and one of email and
/// PEC; phones with their international prefix (`+39…`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactsBody {
    pub home_phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    /// *Posta elettronica certificata*.
    pub pec: Option<String>,
}

/// `pin.changed` v1: a step of a citizen's PIN lifecycle. It never
/// carries a PIN or a half of one, nor the contacts it was sent to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinChanged {
    pub tax_code: CodiceFiscale,
    /// `requested`, `first_half_queued`, `second_half_queued`,
    /// `simplified_sign_in`, `first_use_completed`, `signed_in`,
    /// `sign_in_failed`, `locked`, `recovery_requested`,
    /// `recovery_confirmed`, `conversion_requested`, `revoked`.
    pub step: String,
    /// `web` or `contact_center`; `null` where no channel applies.
    pub channel: Option<String>,
    /// `issued`, `active` or `revoked` after the step.
    pub state: String,
    /// The medium a half was queued on (`sms`, `email`, `pec`, `post`).
    pub medium: Option<String>,
    /// The conversion's back-office case.
    pub case_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

/// `pin.verification_requested`: an agent checks the half its caller reads
/// out, over the broker. `Debug` never shows the half.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinVerificationRequested {
    pub pin: String,
}

impl std::fmt::Debug for PinVerificationRequested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinVerificationRequested { pin: <secret> }")
    }
}

/// `pin.verification_outcome`: the answer on `reply_to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinVerificationOutcome {
    /// `verified` or `refused`.
    pub outcome: String,
    pub verification_id: Option<Uuid>,
    pub tax_code: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// The refusal's code, as the HTTP API's.
    pub code: Option<String>,
    pub message: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
}
