//! Documents of a case: what may be uploaded, what a file name may be, and
//! the state machine *uploaded -> registration in progress -> registered*, or
//! *deleted*. Plain rules; HTTP and storage are elsewhere.

use serde::{Deserialize, Serialize};

/// Where a document is in its life. The labels are the colours the citizen's
/// area shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentState {
    /// No label.
    Uploaded,
    /// Orange: sent to the protocol register, number not yet assigned.
    RegistrationInProgress,
    /// Green: has a protocol number.
    Registered,
    /// Red.
    Deleted,
}

impl DocumentState {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentState::Uploaded => "uploaded",
            DocumentState::RegistrationInProgress => "registration_in_progress",
            DocumentState::Registered => "registered",
            DocumentState::Deleted => "deleted",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            DocumentState::Uploaded,
            DocumentState::RegistrationInProgress,
            DocumentState::Registered,
            DocumentState::Deleted,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// The label citizens and operators read (seed 000): *Protocollato*
    /// (green), *Protocollazione in corso* (orange), *Eliminato* (red); no
    /// label while a document was not sent for registration.
    pub fn label(self) -> Option<Label> {
        let label = |text, colour| Some(Label { text, colour });
        match self {
            DocumentState::Uploaded => None,
            DocumentState::RegistrationInProgress => label("Protocollazione in corso", "orange"),
            DocumentState::Registered => label("Protocollato", "green"),
            DocumentState::Deleted => label("Eliminato", "red"),
        }
    }
}

/// A document state's label: its words and its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Label {
    pub text: &'static str,
    pub colour: &'static str,
}

/// Which way a document travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// *Inviati*: the citizen (or their intermediary) sent it.
    FromCitizen,
    /// *Ricevuti*: the office sent it to the citizen.
    ToCitizen,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::FromCitizen => "from_citizen",
            Direction::ToCitizen => "to_citizen",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "from_citizen" => Some(Direction::FromCitizen),
            "to_citizen" => Some(Direction::ToCitizen),
            _ => None,
        }
    }
}

/// Which side of the case is acting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The citizen or an intermediary acting for them.
    Citizen,
    /// An operator of the competent office.
    Office,
    /// The registration worker.
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Delete,
    SendForRegistration,
    CompleteRegistration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IllegalTransition {
    #[error("a document that is {0} cannot be deleted: only uploaded documents can")]
    NotDeletable(&'static str),
    #[error("only the side that sent a document can delete it")]
    NotTheSender,
    #[error("a document that is {0} cannot be sent for registration: only uploaded documents can")]
    NotRegistrable(&'static str),
    #[error("only an operator of the office can send documents for registration")]
    NotAnOperator,
    #[error("a document that is {0} has no registration in progress")]
    NoRegistrationInProgress(&'static str),
    #[error("only the registration worker completes a registration")]
    NotTheRegister,
}

/// The state after `action`, or why it is not allowed.
pub fn transition(
    state: DocumentState,
    direction: Direction,
    action: Action,
    side: Side,
) -> Result<DocumentState, IllegalTransition> {
    use DocumentState::*;
    match action {
        Action::Delete => {
            let sender = match direction {
                Direction::FromCitizen => Side::Citizen,
                Direction::ToCitizen => Side::Office,
            };
            if side != sender {
                return Err(IllegalTransition::NotTheSender);
            }
            match state {
                Uploaded => Ok(Deleted),
                other => Err(IllegalTransition::NotDeletable(other.as_str())),
            }
        }
        Action::SendForRegistration => {
            if side != Side::Office {
                return Err(IllegalTransition::NotAnOperator);
            }
            match state {
                Uploaded => Ok(RegistrationInProgress),
                other => Err(IllegalTransition::NotRegistrable(other.as_str())),
            }
        }
        Action::CompleteRegistration => {
            if side != Side::System {
                return Err(IllegalTransition::NotTheRegister);
            }
            match state {
                RegistrationInProgress => Ok(Registered),
                other => Err(IllegalTransition::NoRegistrationInProgress(other.as_str())),
            }
        }
    }
}

/// The kinds of file the institute accepts, recognised by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Pdf,
    /// CAdES signed file (`.p7m`): a DER-encoded CMS SignedData.
    P7m,
    Jpeg,
    Png,
}

impl FileKind {
    pub fn media_type(self) -> &'static str {
        match self {
            FileKind::Pdf => "application/pdf",
            FileKind::P7m => "application/pkcs7-mime",
            FileKind::Jpeg => "image/jpeg",
            FileKind::Png => "image/png",
        }
    }
}

/// DER of the object identifier 1.2.840.113549.1.7.2 (CMS signedData).
const SIGNED_DATA_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];

/// What the bytes are, whatever the name or declared type says.
pub fn detect_kind(bytes: &[u8]) -> Option<FileKind> {
    match infer::get(bytes).map(|t| t.mime_type()) {
        Some("application/pdf") => return Some(FileKind::Pdf),
        Some("image/jpeg") => return Some(FileKind::Jpeg),
        Some("image/png") => return Some(FileKind::Png),
        _ => {}
    }
    // A SEQUENCE whose content type (within its first bytes, after the
    // length octets) is signedData.
    let head = &bytes[..bytes.len().min(32)];
    let is_signed_data = head.first() == Some(&0x30)
        && head
            .windows(SIGNED_DATA_OID.len())
            .any(|w| w == SIGNED_DATA_OID);
    is_signed_data.then_some(FileKind::P7m)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileNameError {
    #[error("the file name is empty")]
    Empty,
    #[error("the file name is longer than {MAX_FILE_NAME} characters")]
    TooLong,
    #[error("the file name `{0}` contains a path (`/`, `\\` or `..`); send the bare name")]
    ContainsPath(String),
}

pub const MAX_FILE_NAME: usize = 120;

/// The name shown to people. A name that tries to be a path is refused (it is
/// never used as one anyway: storage is by content hash); other unusual
/// characters become `_`.
pub fn sanitize_file_name(raw: &str) -> Result<String, FileNameError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FileNameError::Empty);
    }
    if trimmed.contains('/') || trimmed.contains('\\') || trimmed.contains("..") {
        return Err(FileNameError::ContainsPath(raw.to_owned()));
    }
    if trimmed.chars().count() > MAX_FILE_NAME {
        return Err(FileNameError::TooLong);
    }
    let cleaned: String = trimmed
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A leading dot would make a hidden file if someone saved it as is.
    Ok(cleaned.trim_start_matches('.').to_owned()).and_then(|name| {
        if name.is_empty() {
            Err(FileNameError::Empty)
        } else {
            Ok(name)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Direction::*;
    use DocumentState::*;

    #[test]
    fn the_citizen_deletes_only_uploaded_documents_they_sent() {
        assert_eq!(
            transition(Uploaded, FromCitizen, Delete, Side::Citizen),
            Ok(Deleted)
        );
        for state in [RegistrationInProgress, Registered, Deleted] {
            assert!(matches!(
                transition(state, FromCitizen, Delete, Side::Citizen),
                Err(IllegalTransition::NotDeletable(_))
            ));
        }
        assert_eq!(
            transition(Uploaded, ToCitizen, Delete, Side::Citizen),
            Err(IllegalTransition::NotTheSender)
        );
    }

    #[test]
    fn registration_goes_through_in_progress_and_only_the_office_starts_it() {
        let sent = transition(Uploaded, FromCitizen, SendForRegistration, Side::Office);
        assert_eq!(sent, Ok(RegistrationInProgress));
        assert_eq!(
            transition(
                RegistrationInProgress,
                FromCitizen,
                CompleteRegistration,
                Side::System
            ),
            Ok(Registered)
        );
        assert_eq!(
            transition(Uploaded, FromCitizen, SendForRegistration, Side::Citizen),
            Err(IllegalTransition::NotAnOperator)
        );
        assert!(transition(Registered, FromCitizen, SendForRegistration, Side::Office).is_err());
        assert!(transition(Uploaded, FromCitizen, CompleteRegistration, Side::System).is_err());
        assert!(transition(
            RegistrationInProgress,
            FromCitizen,
            CompleteRegistration,
            Side::Office
        )
        .is_err());
    }

    #[test]
    fn labels_are_the_seeds() {
        let label = |state: DocumentState| state.label().map(|l| (l.text, l.colour));
        assert_eq!(label(Uploaded), None);
        assert_eq!(
            label(RegistrationInProgress),
            Some(("Protocollazione in corso", "orange"))
        );
        assert_eq!(label(Registered), Some(("Protocollato", "green")));
        assert_eq!(label(Deleted), Some(("Eliminato", "red")));
    }

    #[test]
    fn kinds_are_recognised_by_content() {
        assert_eq!(detect_kind(b"%PDF-1.7\n..."), Some(FileKind::Pdf));
        assert_eq!(
            detect_kind(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some(FileKind::Jpeg)
        );
        assert_eq!(
            detect_kind(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0]),
            Some(FileKind::Png)
        );
        let mut p7m = vec![0x30, 0x80];
        p7m.extend_from_slice(SIGNED_DATA_OID);
        p7m.extend_from_slice(&[0xa0, 0x80, 0x30, 0x80]);
        assert_eq!(detect_kind(&p7m), Some(FileKind::P7m));
        // An executable named .pdf is still an executable.
        assert_eq!(detect_kind(b"MZ\x90\x00\x03\x00\x00\x00"), None);
        assert_eq!(detect_kind(b"plain text"), None);
        assert_eq!(detect_kind(b""), None);
    }

    #[test]
    fn file_names_are_cleaned_and_paths_refused() {
        assert_eq!(
            sanitize_file_name(" carta d'identità.pdf ").unwrap(),
            "carta d_identità.pdf"
        );
        assert_eq!(sanitize_file_name(".bashrc").unwrap(), "bashrc");
        for bad in ["../../etc/passwd", "a/b.pdf", "C:\\x.pdf", "..pdf"] {
            assert!(
                matches!(sanitize_file_name(bad), Err(FileNameError::ContainsPath(_))),
                "{bad}"
            );
        }
        assert_eq!(sanitize_file_name("  "), Err(FileNameError::Empty));
        assert_eq!(
            sanitize_file_name(&"a".repeat(200)),
            Err(FileNameError::TooLong)
        );
        assert_eq!(sanitize_file_name("a\u{0}b.pdf").unwrap(), "a_b.pdf");
    }
}
