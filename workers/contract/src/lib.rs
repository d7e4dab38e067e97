//! The message contract with integrators: what a channel publishes on
//! RabbitMQ and what Sportello publishes back.
//!
//! An integrator's Rust client can depend on this crate alone: it has no
//! sqlx, lapin or actix. Changing anything here is changing the broker
//! contract: a new message version (`schemas/<type>/vN.json`), never an edit
//! of a published one.
//!
//! # Layout
//!
//! - [`Envelope`], [`Principal`], [`Channel`] (`envelope`): who sends what,
//!   on whose behalf, authenticated how;
//! - [`CodiceFiscale`] (`codice_fiscale`): the tax code, parsed, never a
//!   plain string;
//! - `messages`: the payloads of requests and the events Sportello emits
//!   (`ticket.opened`, `ticket.changed`, `documents.*`, `appointment.*`, ...);
//! - [`routing`] and [`ticket`]: the words of routing and of a ticket's
//!   history that those events carry;
//! - [`applications`], [`appointments`], [`pin`]: the payloads of each
//!   capability's commands and replies;
//! - [`names`]: the exchanges, queues and headers of the broker topology;
//! - [`schemas`]: the JSON Schema catalogue of every message version,
//!   embedded from `schemas/`, that intake and `sportello publish` validate
//!   against.

pub mod applications;
pub mod appointments;
mod codice_fiscale;
mod envelope;
mod messages;
pub mod names;
pub mod pin;
pub mod routing;
pub mod schemas;
pub mod ticket;

pub use codice_fiscale::{CodiceFiscale, CodiceFiscaleError};
pub use envelope::{Authentication, Channel, Envelope, Identification, PinKind, Principal};
pub use messages::{
    AppointmentCancelled, AppointmentCompleted, AppointmentConfirmed, Contact, DelegationGranted,
    DelegationGrantedEvent, DelegationRevoked, DelegationRevokedEvent, DocumentStateChanged,
    DocumentsRegistered, DocumentsRegistrationRequested, Event, InlineAttachment, MessageAdded,
    RequestSubmitted, TicketChanged, TicketMessageAdded, TicketOpened, TimerFired,
};
