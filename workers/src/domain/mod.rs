//! Domain rules as plain functions and types: no I/O here.

pub mod access;
pub mod application;
pub mod appointment;
pub mod booking;
pub mod content;
pub mod delegation;
pub mod document;
pub mod intake;
pub mod notification;
pub mod pin;
pub mod protocol;
pub mod routing;
pub mod sms;
pub mod ticket;
pub mod video;
