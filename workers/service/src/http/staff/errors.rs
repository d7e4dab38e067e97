//! Refusals and failures as the pages say them: the JSON API's statuses
//! (`http::error`), Italian messages; server-side details stay in the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use super::render::{error_page, OperatorView};
use crate::documents::{DocumentError, RegistrationRefusal};
use crate::domain::document::IllegalTransition;
use crate::domain::ticket::{LifecycleError, MAX_COMMENT_CHARS};
use crate::http::ApiError;
use crate::tickets::{self, FilterError, TicketError};

pub(super) const NOT_AN_OPERATOR: &str = "Accesso riservato agli operatori di sede.";
pub(super) const UNAVAILABLE: &str =
    "Il servizio non ha potuto completare la richiesta; riprova più tardi.";

/// What the staff pages try to do to a ticket, as the form's URL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FormAction {
    TakeInCharge,
    Comment,
    Close,
    Reassign,
}

impl FormAction {
    pub(super) fn from_path(segment: &str) -> Option<FormAction> {
        match segment {
            "presa-in-carico" => Some(FormAction::TakeInCharge),
            "commento" => Some(FormAction::Comment),
            "chiusura" => Some(FormAction::Close),
            "riassegnazione" => Some(FormAction::Reassign),
            _ => None,
        }
    }

    /// "Un quesito … non può essere <participle>".
    fn participle(self) -> &'static str {
        match self {
            FormAction::TakeInCharge => "preso in carico",
            FormAction::Comment => "commentato",
            FormAction::Close => "chiuso",
            FormAction::Reassign => "riassegnato",
        }
    }
}

/// A refused or failed ticket operation as a page shows it.
pub(super) struct Failure {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl Failure {
    /// The status is the JSON API's for the same error; the message is Italian,
    /// and server-side details stay in the log.
    pub(super) fn of(error: TicketError, attempted: Option<FormAction>) -> Failure {
        let message = italian(&error, attempted);
        let error = ApiError::from(error);
        let status = error.status_code();
        if status.is_server_error() {
            tracing::error!(%error, "staff request failed");
            return Failure {
                status,
                message: UNAVAILABLE.into(),
            };
        }
        Failure { status, message }
    }

    /// The same for a refused or failed operation on the ticket's documents.
    pub(super) fn of_documents(error: DocumentError) -> Failure {
        let message = italian_documents(&error);
        let error = ApiError::from(error);
        let status = error.status_code();
        if status.is_server_error() {
            tracing::error!(%error, "staff document request failed");
            return Failure {
                status,
                message: UNAVAILABLE.into(),
            };
        }
        Failure { status, message }
    }
}

/// A document operation refused, in the words of the ticket's page.
fn italian_documents(error: &DocumentError) -> String {
    match error {
        DocumentError::NotFound("case") => "Quesito non trovato.".into(),
        DocumentError::NotFound(_) => "Uno dei documenti scelti non è di questo quesito.".into(),
        // The session is always an operator's: refusals mean another office.
        DocumentError::Forbidden(_) => {
            "Il quesito è di un'altra sede: solo i suoi operatori possono inviarne i documenti \
             al protocollo."
                .into()
        }
        DocumentError::Registration(RegistrationRefusal::NoDocuments) => {
            "Scegli almeno un documento da protocollare.".into()
        }
        DocumentError::Registration(RegistrationRefusal::NoSubject) => {
            "L'oggetto della protocollazione è obbligatorio.".into()
        }
        DocumentError::Registration(
            RegistrationRefusal::KeyReused | RegistrationRefusal::BadKey,
        ) => "Il modulo è già stato usato per un'altra richiesta: ricarica la pagina.".into(),
        DocumentError::IllegalTransition(IllegalTransition::NotRegistrable(_)) => {
            "Uno dei documenti scelti è già stato inviato al protocollo, o è stato eliminato."
                .into()
        }
        DocumentError::Gone => "Uno dei documenti scelti è stato eliminato.".into(),
        DocumentError::Refused(_)
        | DocumentError::IllegalTransition(_)
        | DocumentError::TooLarge { .. } => {
            "Operazione non consentita sui documenti scelti.".into()
        }
        DocumentError::Storage(_)
        | DocumentError::Database(_)
        | DocumentError::Encoding(_)
        | DocumentError::YearChanged => UNAVAILABLE.into(),
    }
}

/// A search filter the queue cannot use, said with the form's own labels.
pub(super) fn italian_filter(error: &FilterError) -> String {
    let label = |field: &str| match field {
        "matricola" => "Matricola",
        "q" => "Oggetto",
        "opened_from" => "Aperti dal",
        "opened_to" => "Aperti al",
        "updated_from" => "Aggiornati dal",
        "updated_to" => "Aggiornati al",
        _ => "Filtro",
    };
    match error {
        FilterError::State(raw) => {
            format!("Stato «{raw}» sconosciuto: scegli aperta, in carico o chiusa.")
        }
        FilterError::TooLong { field } => format!(
            "«{}»: al massimo {} caratteri.",
            label(field),
            tickets::MAX_SEARCH_TEXT
        ),
        FilterError::Date { field, raw } => format!(
            "«{}»: «{raw}» non è una data valida (AAAA-MM-GG).",
            label(field)
        ),
        FilterError::OutOfRange { field } | FilterError::NoSuchLocalTime { field } => {
            format!("«{}»: data fuori dall'intervallo consentito.", label(field))
        }
        FilterError::Page => format!("Pagina fuori intervallo (da 1 a {}).", tickets::MAX_PAGE),
        FilterError::PerPage => format!(
            "Quesiti per pagina fuori intervallo (da 1 a {}).",
            tickets::MAX_PAGE_SIZE
        ),
    }
}

pub(super) fn italian(error: &TicketError, attempted: Option<FormAction>) -> String {
    match error {
        TicketError::NotFound => "Quesito non trovato.".into(),
        // The session is always an operator's: refusals mean another office.
        TicketError::Forbidden(_)
        | TicketError::Lifecycle(LifecycleError::NotYourOffice { .. }) => {
            "Il quesito è di un'altra sede: solo i suoi operatori possono consultarlo e lavorarlo."
                .into()
        }
        TicketError::Invalid(detail) => format!("Dati non validi: {detail}."),
        TicketError::Filter(filter) => italian_filter(filter),
        TicketError::Lifecycle(LifecycleError::IllegalTransition { state, .. }) => {
            match attempted {
                Some(action) => format!(
                    "Un quesito in stato «{state}» non può essere {}.",
                    action.participle()
                ),
                None => format!("Operazione non consentita su un quesito in stato «{state}»."),
            }
        }
        TicketError::Lifecycle(LifecycleError::MissingComment(_)) => {
            "Il commento è obbligatorio per questa operazione.".into()
        }
        TicketError::Lifecycle(LifecycleError::CommentTooLong) => {
            format!("Il commento può avere al massimo {MAX_COMMENT_CHARS} caratteri.")
        }
        TicketError::Lifecycle(LifecycleError::SameOffice(office)) => {
            format!("Il quesito è già della sede {office}.")
        }
        TicketError::UnknownOffice(office) => format!("La sede «{office}» non esiste."),
        TicketError::Database(_) | TicketError::Encoding(_) => UNAVAILABLE.into(),
    }
}

pub(super) fn not_found(operator: Option<&OperatorView>, what: &str) -> HttpResponse {
    error_page(
        StatusCode::NOT_FOUND,
        operator,
        &format!("{what} non trovato."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_italian_with_the_api_statuses() {
        let failure = Failure::of(
            TicketError::Lifecycle(LifecycleError::IllegalTransition {
                state: "chiusa",
                action: "x",
            }),
            Some(FormAction::TakeInCharge),
        );
        assert_eq!(failure.status, StatusCode::CONFLICT);
        assert_eq!(
            failure.message,
            "Un quesito in stato «chiusa» non può essere preso in carico."
        );
        let failure = Failure::of(
            TicketError::UnknownOffice("9999".into()),
            Some(FormAction::Reassign),
        );
        assert_eq!(failure.status, StatusCode::UNPROCESSABLE_ENTITY);
        let failure = Failure::of(TicketError::Forbidden("x".into()), None);
        assert_eq!(failure.status, StatusCode::FORBIDDEN);
        let failure = Failure::of(TicketError::Invalid("x".into()), None);
        assert_eq!(failure.status, StatusCode::BAD_REQUEST);
    }
}
