//! Sportello's service: everything that does I/O around the domain's rules.
//!
//! # Layout
//!
//! The floors below this crate are re-exported under the names the code has
//! always used, so `crate::domain::ticket` here is `sportello_domain::ticket`:
//!
//! - [`contract`]: what integrators send and receive (`sportello-contract`);
//! - [`domain`]: the rules, with no I/O (`sportello-domain`);
//! - [`store`]: PostgreSQL, one module per table family (`sportello-store`).
//!
//! This crate's own modules, from the inside out:
//!
//! - operations, one module per capability: [`tickets`], [`documents`],
//!   [`appointments`], [`video`], [`applications`], [`pin`],
//!   [`delegations`], [`notifications`]. Each authorizes the caller, asks the
//!   domain, and writes one transaction with its outbox rows;
//! - the edges: [`http`] (the JSON API and the Italian staff pages),
//!   [`gateway`] (the video rooms' pages and WebSockets), [`broker`]
//!   (RabbitMQ: topology, confirmed publishing, dead letters, replies);
//! - [`workers`]: the worker kinds, thin loops around operations and the
//!   store, supervised by [`runtime`];
//! - process assembly: [`app`] (migrate, declare, start, stop), [`config`]
//!   and [`secrets`] (settings), [`production`] (the checks of production
//!   mode), [`auth`] (bearer tokens), [`telemetry`], [`metrics`];
//! - the commands of the `sportello` binary beyond running workers:
//!   [`publish`], [`dead_letters`], [`agent`].
//!
//! Benchmarks and chaos drills are a crate of their own (`sportello-bench`).
//! See ARCHITECTURE.md for the map and its invariants.

pub use sportello_contract as contract;
pub use sportello_domain as domain;
pub use sportello_store as store;

pub mod agent;
pub mod app;
pub mod applications;
pub mod appointments;
pub mod auth;
pub mod broker;
pub mod config;
pub mod dead_letters;
pub mod delegations;
pub mod documents;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod notifications;
pub mod pin;
pub mod production;
pub mod publish;
pub mod runtime;
pub mod secrets;
pub mod submissions;
pub mod telemetry;
pub mod tickets;
pub mod video;
pub mod workers;
