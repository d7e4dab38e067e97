//! Where the delivery of a PIN half (or of a recovery's half) stands, as
//! the citizen's notification centre and an agent see it, and when an
//! agent may have a new PIN issued because a half never arrived.
//!
//! A half goes through the notification delivery path: a transient
//! failure is retried with backoff (`notification::RetryPolicy`), and the
//! seal is kept until the delivery is sent or finally failed. After the
//! last try the half is gone for good: a new PIN (*nuovo PIN*, a reissue)
//! is the only way on. Who may see where the halves stand, and have a new
//! PIN issued, is [`may_act_for`]; where the new first half goes is
//! [`reissue_medium`].

use sportello_contract::{CodiceFiscale, Principal};

use super::{CredentialState, FirstHalfMedium};

/// A half's delivery, from its `deliveries` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfDelivery {
    /// Queued, being sent, or waiting for its next try.
    Pending {
        attempts: u32,
    },
    Sent,
    /// The last try failed (or the provider refused it for good).
    Failed {
        attempts: u32,
    },
}

impl HalfDelivery {
    /// From a delivery's `state` (`queued`, `sending`, `sent`, `failed`).
    pub fn from_row(state: &str, attempts: i32) -> Self {
        let attempts = u32::try_from(attempts).unwrap_or(0);
        match state {
            "sent" => HalfDelivery::Sent,
            "failed" => HalfDelivery::Failed { attempts },
            _ => HalfDelivery::Pending { attempts },
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HalfDelivery::Pending { .. } => "pending",
            HalfDelivery::Sent => "sent",
            HalfDelivery::Failed { .. } => "failed",
        }
    }

    /// What an agent reads out to the caller.
    pub fn label(self) -> &'static str {
        match self {
            HalfDelivery::Pending { attempts: 0 } => "in invio",
            HalfDelivery::Pending { .. } => "invio non riuscito, nuovo tentativo in corso",
            HalfDelivery::Sent => "inviata",
            HalfDelivery::Failed { .. } => {
                "invio non riuscito dopo l'ultimo tentativo: serve un nuovo PIN"
            }
        }
    }
}

/// The notification centre's line once a half finally failed.
pub const FAILED_TITLE: &str = "PIN INPS: invio non riuscito";
pub const FAILED_BODY: &str = "Non siamo riusciti a inviarti una parte del PIN, neanche dopo più tentativi. Per motivi di sicurezza non è stata conservata: chiedi un nuovo PIN al Contact Center (803 164) o presso una sede INPS.";

/// Why a new PIN cannot be issued in place of the current one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReissueRefusal {
    #[error(
        "the delivery named is not a half of this citizen's current PIN (see GET /pin/deliveries)"
    )]
    NotCurrentHalf,
    #[error("the failed half named was sent, or is still being sent: a new PIN replaces only a half whose last delivery attempt failed")]
    NotFailed,
    #[error("there is no {0} on record for this citizen to send the new first half to")]
    NoContact(&'static str),
    #[error("this tax code has no PIN: request one (POST /pin/requests)")]
    NoPin,
    #[error("the PIN's first use was done: the citizen has their own PIN; if it is lost, recover it (POST /pin/recovery)")]
    InUse,
    #[error("no half of this PIN failed to arrive: a new PIN is issued only after a half's last delivery attempt failed")]
    NothingFailed,
    #[error("a half of this PIN is still being sent (attempt {0}): wait for it to arrive or to fail for good")]
    StillTrying(u32),
}

/// Whether an agent (or an operator) may have a new PIN issued in place of
/// the half `replaced` (`None`: not a half of the current PIN): the PIN is
/// issued and unused, that half finally failed, and none is still in flight.
pub fn reissue_allowed(
    state: Option<CredentialState>,
    halves: &[HalfDelivery],
    replaced: Option<HalfDelivery>,
) -> Result<(), ReissueRefusal> {
    match state {
        None | Some(CredentialState::Revoked) => return Err(ReissueRefusal::NoPin),
        Some(CredentialState::Active) => return Err(ReissueRefusal::InUse),
        Some(CredentialState::Issued) => {}
    }
    if let Some(attempts) = halves.iter().find_map(|h| match h {
        HalfDelivery::Pending { attempts } => Some(*attempts),
        _ => None,
    }) {
        return Err(ReissueRefusal::StillTrying(attempts));
    }
    match replaced {
        None => return Err(ReissueRefusal::NotCurrentHalf),
        Some(HalfDelivery::Failed { .. }) => {}
        Some(_) => return Err(ReissueRefusal::NotFailed),
    }
    if halves
        .iter()
        .any(|h| matches!(h, HalfDelivery::Failed { .. }))
    {
        Ok(())
    } else {
        Err(ReissueRefusal::NothingFailed)
    }
}

/// `text` with every occurrence of `secret` (ASCII case ignored) replaced
/// by `marker`: a provider's refusal may echo the message it refused, and
/// that reason is logged, kept in the attempt log and shown to operators.
pub fn redact(text: &str, secret: &str, marker: &str) -> String {
    if secret.is_empty() || !secret.is_ascii() {
        return text.to_owned();
    }
    let lower = text.to_ascii_lowercase();
    let needle = secret.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(found) = lower[from..].find(&needle) {
        let at = from + found;
        out.push_str(&text[from..at]);
        out.push_str(marker);
        from = at + needle.len();
    }
    out.push_str(&text[from..]);
    out
}

/// The contacts on record a new first half may go to (from the credential,
/// never from the request: a reissue reaches only what the citizen gave).
#[derive(Debug, Clone, Copy, Default)]
pub struct ContactsOnRecord {
    pub mobile: bool,
    pub email: bool,
    pub pec: bool,
}

/// Where a new PIN's first half goes: the medium asked for, else the one
/// whose half failed (a provider outage is the usual cause, and it passes);
/// refused when the citizen gave no such contact.
pub fn reissue_medium(
    asked: Option<FirstHalfMedium>,
    failed: FirstHalfMedium,
    contacts: ContactsOnRecord,
) -> Result<FirstHalfMedium, ReissueRefusal> {
    let medium = asked.unwrap_or(failed);
    let on_record = match medium {
        FirstHalfMedium::Sms => contacts.mobile,
        FirstHalfMedium::Email => contacts.email,
        FirstHalfMedium::Pec => contacts.pec,
    };
    if on_record {
        Ok(medium)
    } else {
        Err(ReissueRefusal::NoContact(match medium {
            FirstHalfMedium::Sms => "mobile number",
            FirstHalfMedium::Email => "email address",
            FirstHalfMedium::Pec => "PEC address",
        }))
    }
}

/// Why a principal may not see, or act on, the delivery of a citizen's
/// PIN halves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HalvesRefusal {
    #[error("a PIN's deliveries are for a contact-centre agent acting for its citizen or an operator of the office competent for the citizen's residence; the citizen reads them in the notification centre")]
    NotStaff,
    #[error("an agent sees and acts on the PIN of the caller it acts for (on_behalf_of) only")]
    NotTheCaller,
    #[error(
        "an operator acting for a citizen (on_behalf_of) sees and acts on that citizen's PIN only"
    )]
    OtherCitizen,
    #[error("only operators of the office competent for the citizen's residence (office {competent}) see and act on this PIN")]
    OtherOffice { competent: String },
}

/// Whether `principal` may see where the halves of `tax_code`'s PIN stand
/// and have a new one issued: a contact-centre agent acting for that
/// caller (no identification needed: the caller has no usable PIN, nothing
/// shown is a secret, and a new PIN goes only to the contacts on record
/// and the residence), or an operator of `competent_office` (the office of
/// the residence, triage for residents abroad), acting for no other
/// citizen.
pub fn may_act_for(
    principal: &Principal,
    tax_code: &CodiceFiscale,
    competent_office: &str,
) -> Result<(), HalvesRefusal> {
    match principal {
        Principal::ContactCenterAgent { on_behalf_of, .. } if on_behalf_of == tax_code => Ok(()),
        Principal::ContactCenterAgent { .. } => Err(HalvesRefusal::NotTheCaller),
        Principal::Operator {
            on_behalf_of: Some(other),
            ..
        } if other != tax_code => Err(HalvesRefusal::OtherCitizen),
        Principal::Operator { office, .. } if office == competent_office => Ok(()),
        Principal::Operator { .. } => Err(HalvesRefusal::OtherOffice {
            competent: competent_office.to_owned(),
        }),
        Principal::Citizen { .. } | Principal::Intermediary { .. } => Err(HalvesRefusal::NotStaff),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_rows_read_as_pending_sent_or_failed() {
        assert_eq!(
            HalfDelivery::from_row("queued", 0),
            HalfDelivery::Pending { attempts: 0 }
        );
        assert_eq!(
            HalfDelivery::from_row("sending", 2),
            HalfDelivery::Pending { attempts: 2 }
        );
        assert_eq!(HalfDelivery::from_row("sent", 3), HalfDelivery::Sent);
        assert_eq!(
            HalfDelivery::from_row("failed", 6),
            HalfDelivery::Failed { attempts: 6 }
        );
        assert!(HalfDelivery::Failed { attempts: 6 }
            .label()
            .contains("nuovo PIN"));
    }

    #[test]
    fn a_new_pin_only_after_a_half_failed_for_good() {
        use CredentialState::*;
        let failed = HalfDelivery::Failed { attempts: 6 };
        let sent = HalfDelivery::Sent;
        assert_eq!(
            reissue_allowed(Some(Issued), &[failed], Some(failed)),
            Ok(())
        );
        assert_eq!(
            reissue_allowed(Some(Issued), &[sent], Some(sent)),
            Err(ReissueRefusal::NotFailed)
        );
        assert_eq!(
            reissue_allowed(Some(Issued), &[], None),
            Err(ReissueRefusal::NotCurrentHalf)
        );
        assert_eq!(
            reissue_allowed(
                Some(Issued),
                &[failed, HalfDelivery::Pending { attempts: 2 }],
                Some(failed)
            ),
            Err(ReissueRefusal::StillTrying(2))
        );
        assert_eq!(
            reissue_allowed(Some(Active), &[failed], Some(failed)),
            Err(ReissueRefusal::InUse)
        );
        assert_eq!(
            reissue_allowed(None, &[failed], Some(failed)),
            Err(ReissueRefusal::NoPin)
        );
        assert_eq!(
            reissue_allowed(Some(Revoked), &[failed], Some(failed)),
            Err(ReissueRefusal::NoPin)
        );
    }

    #[test]
    fn a_reason_never_keeps_the_secret() {
        assert_eq!(
            redact(
                "SMS provider 400: invalid text 'la prima parte è AB12CD34.'",
                "AB12CD34",
                "[[PIN]]"
            ),
            "SMS provider 400: invalid text 'la prima parte è [[PIN]].'"
        );
        assert_eq!(
            redact("ab12cd34 and AB12CD34", "AB12CD34", "[[PIN]]"),
            "[[PIN]] and [[PIN]]"
        );
        assert_eq!(
            redact("nothing here", "AB12CD34", "[[PIN]]"),
            "nothing here"
        );
    }

    #[test]
    fn the_new_first_half_goes_to_a_contact_on_record() {
        use FirstHalfMedium::*;
        let only_mobile = ContactsOnRecord {
            mobile: true,
            ..Default::default()
        };
        assert_eq!(reissue_medium(None, Sms, only_mobile), Ok(Sms));
        assert_eq!(
            reissue_medium(Some(Email), Sms, only_mobile),
            Err(ReissueRefusal::NoContact("email address"))
        );
        let all = ContactsOnRecord {
            mobile: true,
            email: true,
            pec: true,
        };
        assert_eq!(reissue_medium(Some(Pec), Sms, all), Ok(Pec));
    }

    #[test]
    fn only_the_callers_agent_and_the_competent_office_see_the_halves() {
        use sportello_contract::{Authentication, Identification};
        let mario = CodiceFiscale::parse("RSSMRA85T10A562S").unwrap();
        let other = CodiceFiscale::parse("BNCGVN70A41F205O").unwrap();
        let agent = |caller: &CodiceFiscale| Principal::ContactCenterAgent {
            agent_id: "CC0042".into(),
            on_behalf_of: caller.clone(),
            identified_by: None::<Identification>,
            pin_verification_id: None,
        };
        let operator = |office: &str, on_behalf_of: Option<&CodiceFiscale>| Principal::Operator {
            operator_id: "E19010001".into(),
            office: office.into(),
            on_behalf_of: on_behalf_of.cloned(),
        };
        assert_eq!(may_act_for(&agent(&mario), &mario, "1901"), Ok(()));
        assert_eq!(
            may_act_for(&agent(&other), &mario, "1901"),
            Err(HalvesRefusal::NotTheCaller)
        );
        assert_eq!(may_act_for(&operator("1901", None), &mario, "1901"), Ok(()));
        assert_eq!(
            may_act_for(&operator("1901", Some(&mario)), &mario, "1901"),
            Ok(())
        );
        assert_eq!(
            may_act_for(&operator("1901", Some(&other)), &mario, "1901"),
            Err(HalvesRefusal::OtherCitizen)
        );
        assert_eq!(
            may_act_for(&operator("1900", None), &mario, "1901"),
            Err(HalvesRefusal::OtherOffice {
                competent: "1901".into()
            })
        );
        let citizen = Principal::Citizen {
            tax_code: mario.clone(),
            authentication: Authentication::Spid { level: 2 },
        };
        assert_eq!(
            may_act_for(&citizen, &mario, "1901"),
            Err(HalvesRefusal::NotStaff)
        );
    }
}
