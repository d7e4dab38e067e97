//! Sportello's system tests: one binary, a module per area, one harness.
//!
//! Every test drives the real RabbitMQ and PostgreSQL (and, where it says
//! so, a real SMTP sink, Chromium, or the `sportello` binary as a separate
//! process): `support` gives each test its own vhost and database, so they
//! run in parallel. `bash scripts/test.sh` starts the services and runs them
//! all; `cargo test -p sportello --test system -- <area>::` runs one area.
//!
//! One binary rather than one per file: each file used to link the whole
//! service on its own (27 binaries of about 650 MB each).

mod support;

// Intake: channels publish, the intake admits, routes and registers.
mod channels;
mod crash;
mod dead_letters;
mod delegations;
mod intake;
mod submissions;

// Tickets and what staff and agents see of them.
mod agent_reads;
mod staff_views;
mod tickets;

// The protocol register and documents.
mod documents;
mod protocol;

// Notifications and timers.
mod notifications;
mod sms_sink;
mod timers;

// Appointments, over HTTP, over the broker and on the staff pages.
mod appointments;
mod booking_over_broker;
mod callbacks;
mod staff_appointments;

// The video gateway.
mod gateway;
mod gateway_limits;
mod video_room_browser;

// Applications (click day) and the PIN.
mod applications;
mod pin;
mod pin_limits;

// The process as a whole: the access policy, the HTTP boundary, the API's
// description, refusals in Italian for citizens, production mode, each worker's least privilege, database
// health, metrics, one trace across processes (OTLP), and a newcomer's first run.
mod access_policy;
mod edges;
mod first_run;
mod italian;
mod metrics;
mod openapi;
mod privilege;
mod production;
mod traces;
mod vacuum;
