//! Sportello: citizen-services workflow workers. See ARCHITECTURE.md for the map.

pub mod agent;
pub mod app;
pub mod applications;
pub mod appointments;
pub mod auth;
pub mod bench;
pub mod broker;
pub mod config;
pub mod contract;
pub mod dead_letters;
pub mod documents;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod notifications;
pub mod production;
pub mod publish;
pub mod runtime;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod tickets;
pub mod timers;
pub mod workers;
