//! The message contract with integrators: envelope, principals, payloads, schemas.

pub mod applications;
pub mod appointments;
mod codice_fiscale;
mod envelope;
mod messages;
pub mod pin;
pub mod schemas;

pub use codice_fiscale::{CodiceFiscale, CodiceFiscaleError};
pub use envelope::{Authentication, Channel, Envelope, Identification, PinKind, Principal};
pub use messages::{
    AppointmentCancelled, AppointmentCompleted, AppointmentConfirmed, Contact, DelegationGranted,
    DelegationGrantedEvent, DelegationRevoked, DelegationRevokedEvent, DocumentStateChanged,
    DocumentsRegistered, DocumentsRegistrationRequested, Event, InlineAttachment, MessageAdded,
    RequestSubmitted, TicketChanged, TicketMessageAdded, TicketOpened, TimerFired,
};
