//! The stable codes of refusals, and the plain Italian a citizen reads for
//! each. A portal shows a refusal's `message` as it is, so the words must be
//! the citizen's; programs branch on the code, which never changes.
//!
//! [`Code`] is the one list: the HTTP API, the gateway and the broker's
//! answers name refusals by it, so a code without its Italian sentence does
//! not compile ([`Code::italian`] is an exhaustive match).

use chrono::{DateTime, Utc};

use crate::application::policy::Credential;
use crate::cron::TIME_ZONE;

/// Declares the codes once: the enum, its wire names and the list of all,
/// which cannot drift apart.
macro_rules! codes {
    ($($variant:ident = $name:literal,)*) => {
        /// A refusal's stable code, as programs read it (`error`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, for tests and the docs.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code on the wire: `not_found`, `pin_locked`, ...
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    BadRequest = "bad_request",
    Unauthenticated = "unauthenticated",
    Forbidden = "forbidden",
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    Timeout = "timeout",
    Invalid = "invalid",
    Refused = "refused",
    TooLarge = "too_large",
    IllegalTransition = "illegal_transition",
    Gone = "gone",
    Retry = "retry",
    Conflict = "conflict",
    TooManyRequests = "too_many_requests",
    Internal = "internal",
    Unavailable = "unavailable",
    PrincipalNotAllowed = "principal_not_allowed",
    CredentialRequired = "credential_required",
    PinVerificationRequired = "pin_verification_required",
    UnknownOffice = "unknown_office",
    UnknownDesk = "unknown_desk",
    SlotUnavailable = "slot_unavailable",
    SlotTaken = "slot_taken",
    HoldExpired = "hold_expired",
    NotYetEligible = "not_yet_eligible",
    ConversationRequired = "conversation_required",
    LimitReached = "limit_reached",
    SchemeNotOpen = "scheme_not_open",
    IdempotencyKeyReused = "idempotency_key_reused",
    NotConfirmed = "not_confirmed",
    PinAlreadyIssued = "pin_already_issued",
    WrongPin = "wrong_pin",
    PinLocked = "pin_locked",
    PinRevoked = "pin_revoked",
    FirstUseRequired = "first_use_required",
    InitialPinReplaced = "initial_pin_replaced",
    SimplifiedNotAllowed = "simplified_not_allowed",
    RecoveryNotAvailable = "recovery_not_available",
    ContactsMismatch = "contacts_mismatch",
    LinkInvalid = "link_invalid",
    NoPin = "no_pin",
    PinInUse = "pin_in_use",
    NothingFailed = "nothing_failed",
    StillSending = "still_sending",
    NotCurrentHalf = "not_current_half",
    HalfNotFailed = "half_not_failed",
    NoSuchContact = "no_such_contact",
    InvalidLink = "invalid_link",
    NotYet = "not_yet",
    Expired = "expired",
    NoPass = "no_pass",
    DocumentsOff = "documents_off",
    TooManyCodes = "too_many_codes",
    SmsFailed = "sms_failed",
    WrongCode = "wrong_code",
    NoCode = "no_code",
    CrossOrigin = "cross_origin",
    // The intake's refusals of a published message (`GET /submissions`).
    InvalidMessage = "invalid_message",
    RoutingKeyMismatch = "routing_key_mismatch",
    UnknownMessageType = "unknown_message_type",
    MissingSubject = "missing_subject",
    NoDelegation = "no_delegation",
    InvalidAttachment = "invalid_attachment",
    ApplicationRefused = "application_refused",
    PolicyUnavailable = "policy_unavailable",
    PinRequestRefused = "pin_request_refused",
    UnknownScheme = "unknown_scheme",
    MessageIdReused = "message_id_reused",
    MessageRefused = "message_refused",
    DelegationRefused = "delegation_refused",
    RefusedByDatabase = "refused_by_database",
    ProcessingFailed = "processing_failed",
    // A refusal kept without a code.
    Unspecified = "unspecified",
}

impl Code {
    /// The code named `name` on the wire, if it is one of ours.
    pub fn parse(name: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|code| code.as_str() == name)
    }

    /// What a citizen reads: plain Italian, no technical words, saying what
    /// to do next where there is something to do.
    pub fn italian(self) -> &'static str {
        match self {
            Code::BadRequest => "La richiesta non è scritta correttamente: controlla i dati e riprova.",
            Code::Unauthenticated => "Devi prima accedere: entra con SPID, CIE, CNS o PIN e riprova.",
            Code::Forbidden => "Non hai i permessi per questa operazione.",
            Code::NotFound => "Non abbiamo trovato quello che cerchi.",
            Code::MethodNotAllowed => "Questa operazione non è disponibile su questa pagina.",
            Code::Timeout => "I dati sono arrivati troppo lentamente: riprova.",
            Code::Invalid => "Alcuni dati non sono corretti: controllali e riprova.",
            Code::Refused => "Il file non è stato accettato: controlla che sia un PDF, un'immagine JPEG o PNG integra.",
            Code::TooLarge => "Il file o i dati inviati sono troppo grandi.",
            Code::IllegalTransition => "Questa operazione non è possibile nello stato attuale della pratica.",
            Code::Gone => "Non è più disponibile: è stato eliminato.",
            Code::Retry => "Non è stato possibile completare l'operazione in questo momento: riprova.",
            Code::Conflict => "L'operazione è in conflitto con una richiesta già presente.",
            Code::TooManyRequests => "Hai fatto troppi tentativi in poco tempo: attendi e riprova.",
            Code::Internal => "Il servizio non è riuscito a completare la richiesta: riprova più tardi.",
            Code::Unavailable => "Il servizio non è al momento disponibile: riprova tra poco.",
            Code::PrincipalNotAllowed => "Questo servizio non è disponibile per il tuo profilo.",
            Code::CredentialRequired => "Per questo servizio serve un accesso più sicuro.",
            Code::PinVerificationRequired => "Prima di procedere dobbiamo verificare la prima metà del tuo PIN.",
            Code::UnknownOffice => "La sede indicata non esiste.",
            Code::UnknownDesk => "Lo sportello indicato non esiste in questa sede.",
            Code::SlotUnavailable => "L'orario scelto non è prenotabile: scegline un altro.",
            Code::SlotTaken => "L'orario scelto è appena stato occupato: scegline un altro tra quelli liberi.",
            Code::HoldExpired => "Il tempo per confermare la prenotazione è scaduto: prenota di nuovo.",
            Code::NotYetEligible => "Non puoi ancora prenotare un appuntamento per questa pratica.",
            Code::ConversationRequired => "Per prenotare questo appuntamento scrivi prima un messaggio alla sede.",
            Code::LimitReached => "Hai già il numero massimo di appuntamenti: disdicine uno per prenotarne un altro.",
            Code::SchemeNotOpen => "Per questa gestione non è ancora possibile prenotare appuntamenti.",
            Code::IdempotencyKeyReused => "Questa richiesta ha lo stesso identificativo di una già inviata, ma un contenuto diverso: ricomincia dall'inizio.",
            Code::NotConfirmed => "La ricevuta sarà disponibile quando l'appuntamento sarà confermato.",
            Code::PinAlreadyIssued => "Hai già un PIN: per recuperarlo usa \"Hai smarrito il PIN?\".",
            Code::WrongPin => "Codice fiscale o PIN non corretti.",
            Code::PinLocked => "Il PIN è bloccato dopo troppi tentativi errati: attendi o usa \"Hai smarrito il PIN?\".",
            Code::PinRevoked => "Questo PIN è stato revocato: richiedine uno nuovo.",
            Code::FirstUseRequired => "Al primo accesso devi scegliere un nuovo PIN.",
            Code::InitialPinReplaced => "Il PIN iniziale è già stato sostituito: accedi con il PIN che hai scelto.",
            Code::SimplifiedNotAllowed => "Con la prima metà del PIN non puoi usare questo servizio.",
            Code::RecoveryNotAvailable => "Il recupero del PIN non è disponibile: rivolgiti a una sede.",
            Code::ContactsMismatch => "I recapiti indicati non corrispondono a quelli che abbiamo: rivolgiti a una sede.",
            Code::LinkInvalid => "Il collegamento non è valido, è già stato usato o è scaduto: ricomincia da \"Hai smarrito il PIN?\".",
            Code::NoPin => "Non risulta un PIN a tuo nome.",
            Code::PinInUse => "Il PIN è già stato usato: non serve sostituirlo.",
            Code::NothingFailed => "Nessun invio del PIN risulta fallito.",
            Code::StillSending => "Stiamo ancora provando a inviare il PIN: attendi l'esito.",
            Code::NotCurrentHalf => "Questa metà del PIN non è più quella valida.",
            Code::HalfNotFailed => "L'invio di questa metà del PIN non è fallito.",
            Code::NoSuchContact => "Il recapito indicato non è tra quelli che abbiamo.",
            Code::InvalidLink => "Il collegamento non è valido: usa quello del Centro notifiche.",
            Code::NotYet => "La stanza apre 15 minuti prima dell'appuntamento: torna più tardi.",
            Code::Expired => "Il collegamento è scaduto: la pagina non è più disponibile.",
            Code::NoPass => "Apri il collegamento e inserisci il codice ricevuto via SMS.",
            Code::DocumentsOff => "L'invio dei documenti non è attivo in questo momento.",
            Code::TooManyCodes => "Hai chiesto troppi codici: usa l'ultimo codice ricevuto.",
            Code::SmsFailed => "Non è stato possibile inviare l'SMS: riprova tra qualche minuto.",
            Code::WrongCode => "Il codice non è corretto.",
            Code::NoCode => "Il codice non è più valido (scaduto o troppi tentativi): chiedine uno nuovo.",
            Code::CrossOrigin => "Il modulo non proviene da questa pagina.",
            Code::InvalidMessage | Code::RoutingKeyMismatch | Code::UnknownMessageType => "La richiesta non è stata accettata perché non è compilata correttamente: riprova dal servizio che hai usato.",
            Code::MissingSubject => "La richiesta non è stata accettata: non indica la persona a cui si riferisce.",
            Code::NoDelegation => "La richiesta non è stata accettata: non risulta una delega attiva per questa persona o posizione.",
            Code::InvalidAttachment => "La richiesta non è stata accettata: uno degli allegati non va bene (formato, nome o dimensione).",
            Code::ApplicationRefused => "La domanda non è stata accettata: controlla i dati inseriti e il periodo di presentazione.",
            Code::PolicyUnavailable => "La domanda non è stata accettata perché il servizio non era disponibile: riprova più tardi.",
            Code::PinRequestRefused => "La richiesta di PIN non è stata accettata: controlla i dati inseriti.",
            Code::UnknownScheme => "La richiesta non è stata accettata: la gestione indicata non esiste.",
            Code::MessageIdReused => "La richiesta non è stata accettata perché il suo identificativo è già stato usato: inviala di nuovo come nuova richiesta.",
            Code::MessageRefused => "Il messaggio non è stato aggiunto: la pratica è chiusa o non è tua.",
            Code::DelegationRefused => "La delega non è stata registrata: controlla i dati, le date e la gestione indicata.",
            Code::RefusedByDatabase | Code::ProcessingFailed | Code::Unspecified => "La richiesta non è stata accettata: se il problema continua, contatta il Contact Center.",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a refusal carries beyond its code that helps a citizen, already
/// safe to show: field names, an instant, the credentials accepted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Specifics {
    /// The refused fields, by their names in the form.
    pub fields: Vec<String>,
    /// `pin_locked`: until when.
    pub locked_until: Option<DateTime<Utc>>,
    /// `not_yet_eligible`: from when.
    pub possible_from: Option<DateTime<Utc>>,
    /// `credential_required`: the accepted credentials, as the policy names them.
    pub requires: Vec<String>,
    /// `too_many_requests` and the like: seconds to wait (`Retry-After`).
    pub retry_after: Option<u64>,
    /// `slot_taken`: whether free alternatives are offered.
    pub alternatives: bool,
}

/// The citizen's sentence for `code`, with what `specifics` adds.
pub fn for_citizen(code: Code, specifics: &Specifics) -> String {
    let mut text = code.italian().to_owned();
    if !specifics.fields.is_empty() {
        text.push_str(&format!(
            " Campi da correggere: {}.",
            specifics.fields.join(", ")
        ));
    }
    if let Some(until) = specifics.locked_until {
        text.push_str(&format!(" Il blocco termina il {}.", rome(until)));
    }
    if let Some(from) = specifics.possible_from {
        text.push_str(&format!(" Potrai prenotare dal {}.", rome(from)));
    }
    if !specifics.requires.is_empty() {
        let accepted: Vec<&str> = specifics
            .requires
            .iter()
            .map(|name| credential_name(name))
            .collect();
        text.push_str(&format!(" Puoi accedere con: {}.", accepted.join(", ")));
    }
    if let Some(seconds) = specifics.retry_after {
        text.push_str(&format!(" Riprova tra {}.", wait(seconds)));
    }
    if specifics.alternatives {
        text.push_str(" Ti proponiamo gli orari liberi più vicini.");
    }
    text
}

/// An instant as the citizen's pages say it: "29/11/2026 alle 11:15", Rome's clock.
fn rome(at: DateTime<Utc>) -> String {
    at.with_timezone(&TIME_ZONE)
        .format("%d/%m/%Y alle %H:%M")
        .to_string()
}

fn wait(seconds: u64) -> String {
    match seconds {
        0 | 1 => "un secondo".to_owned(),
        2..=119 => format!("{seconds} secondi"),
        _ => format!("{} minuti", seconds.div_ceil(60)),
    }
}

/// A credential as a citizen knows it; a name we do not know is shown as given.
fn credential_name(name: &str) -> &str {
    let known = [
        (Credential::Spid2, "SPID (livello 2 o 3)"),
        (Credential::Cie, "CIE"),
        (Credential::Cns, "CNS"),
        (Credential::Eidas, "eIDAS"),
        (Credential::PinDispositivo, "PIN dispositivo"),
        (Credential::PinOrdinary, "PIN ordinario"),
        (Credential::PinSimplified, "prima metà del PIN"),
    ];
    known
        .iter()
        .find(|(credential, _)| credential.as_str() == name)
        .map_or(name, |(_, words)| words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words of English that would betray an untranslated sentence.
    const ENGLISH: &[&str] = &[
        " the ", " is ", " not ", " try ", " again", " must ", " request", " found", " invalid",
        " error",
    ];

    #[test]
    fn every_code_has_its_wire_name_once_and_parses_back() {
        let mut names = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(names.insert(code.as_str()), "{code} twice");
            assert_eq!(Code::parse(code.as_str()), Some(*code));
            assert!(code
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(Code::parse("nonsense"), None);
    }

    #[test]
    fn every_code_reads_as_plain_italian() {
        for code in Code::ALL {
            let text = format!(" {} ", code.italian().to_lowercase());
            assert!(text.trim().ends_with('.'), "{code}: {text}");
            for word in ENGLISH {
                assert!(!text.contains(word), "{code}: {word:?} in {text}");
            }
            assert!(!text.contains(code.as_str()), "{code}: the code in {text}");
        }
    }

    #[test]
    fn specifics_are_added_in_italian() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T10:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let text = for_citizen(
            Code::PinLocked,
            &Specifics {
                locked_until: Some(at),
                ..Specifics::default()
            },
        );
        assert!(
            text.ends_with("Il blocco termina il 29/11/2026 alle 11:15."),
            "{text}"
        );
        let text = for_citizen(
            Code::CredentialRequired,
            &Specifics {
                requires: vec!["spid2".into(), "cie".into(), "future_id".into()],
                ..Specifics::default()
            },
        );
        assert!(
            text.ends_with("Puoi accedere con: SPID (livello 2 o 3), CIE, future_id."),
            "{text}"
        );
        let text = for_citizen(
            Code::Invalid,
            &Specifics {
                fields: vec!["birth_date".into()],
                retry_after: Some(90),
                ..Specifics::default()
            },
        );
        assert!(text.contains("Campi da correggere: birth_date."), "{text}");
        assert!(text.ends_with("Riprova tra 90 secondi."), "{text}");
        assert_eq!(wait(600), "10 minuti");
        assert_eq!(wait(1), "un secondo");
    }
}
