//! Sportello's rules as plain types and functions.
//!
//! **Architecture invariant:** no I/O here. Nothing in this crate talks to
//! PostgreSQL, RabbitMQ or the network, and its `Cargo.toml` has no sqlx,
//! lapin, actix, tokio or reqwest to do it with. The service asks, the store
//! keeps; this crate decides. Time comes in as an argument.
//!
//! # Layout
//!
//! - [`admission`]: what every admission shares (the rejection, the
//!   routing key, the authentication floor, idempotency);
//! - [`intake`]: admitting a channel's message (schema, tax codes, channel
//!   and principal rules, attachments); [`content`]: uploaded files parsed by
//!   their kind; [`delegation`]: who may grant or revoke a delega;
//! - [`routing`]: *smistamento*, which office and desk a request goes to;
//! - [`ticket`]: the *quesito*'s lifecycle and who may change it;
//! - [`access_policy`]: which principals and credentials may use each
//!   HTTP route and broker command (`workers/config/access.json`);
//! - [`access`]: who may act on a case, and what an agent may read;
//! - [`protocol`]: protocol numbers, signatures, the daily register's chain;
//! - [`document`]: the document state machine, file kinds and names;
//! - [`notification`]: notification rules, contact choice, retry policy;
//!   [`sms`]: SMS length, encoding and phone numbers;
//! - [`appointment`]: calendars, slots in Europe/Rome, holidays, the
//!   two-phase booking; [`booking`]: admission of booking commands;
//! - [`video`]: join links, the SMS code, the room's state machine, rate
//!   limits, TURN credentials;
//! - [`application`]: benefits and their fields as data, IBAN, the
//!   credentials each service accepts, submission windows, the menu;
//! - [`pin`]: the PIN request, the tax code derived from personal data,
//!   secrets that never print, the sign-in's checks and lock policy;
//! - [`submission`]: the fate of a published message, refusal codes in
//!   Italian, who may read it;
//! - [`cron`]: cron expressions evaluated in the institute's time zone;
//! - [`client_address`]: the client behind trusted reverse proxies;
//! - [`vacuum`]: whether PostgreSQL keeps up with the tables Sportello churns;
//! - [`refusal`]: refusals' stable codes and the plain Italian a citizen reads.

pub mod access;
pub mod access_policy;
pub mod admission;
pub mod application;
pub mod appointment;
pub mod booking;
pub mod client_address;
pub mod content;
pub mod cron;
pub mod delegation;
pub mod document;
pub mod intake;
pub mod notification;
pub mod pin;
pub mod protocol;
pub mod refusal;
pub mod routing;
pub mod sms;
pub mod submission;
pub mod ticket;
pub mod vacuum;
pub mod video;
