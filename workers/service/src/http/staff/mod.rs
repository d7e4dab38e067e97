//! Staff pages (*quesiti di sede*), server-rendered in Italian: the office's
//! queue with the search filters, a ticket's detail with its history and
//! attachments, and the forms that take it in charge, comment, close or
//! reassign it, or send its documents for protocol registration.
//!
//! The operator signs in by pasting the token their identity provider signed.
//! That opens a server-side session (`store::staff_sessions`) lasting as long
//! as the token, at most `MAX_SESSION`; the browser gets only the session's
//! random key, in an HttpOnly, SameSite=Strict cookie scoped to `/ufficio`.
//! Signing out ends the session for good. Besides the SameSite cookie, a POST
//! whose `Origin` names another site is refused.
//!
//! Handlers only translate between HTTP and the operations (`tickets`,
//! `documents`): the rules live in `domain`, access checks and transactions
//! in the operations.
//! Statuses follow the JSON API's mapping (`http::error`); messages are
//! rewritten in Italian here, since the service's are for integrators.
//!
//! Layout: `session.rs` (who is signed in, cross-site refusal), `sign_in.rs`,
//! `queue.rs`, `ticket.rs` (detail page), `actions.rs` (its forms),
//! `registration.rs` (its protocol form), `documents.rs` (attachment download), `agenda.rs` (the office's
//! appointments of a day), `callbacks.rs` ("Richiamate", the phone
//! call-backs, with the calls sessions hold in `held_calls.rs`);
//! `render.rs` and `errors.rs` are shared by every page. A new page is a
//! new file here plus its entries in `endpoints` below.

mod actions;
mod agenda;
mod callbacks;
mod documents;
mod errors;
mod held_calls;
mod queue;
mod registration;
mod render;
mod session;
mod sign_in;
mod ticket;

use super::endpoint::{page, Endpoint};
use super::ApiState;

pub use held_calls::HeldCalls;
pub(crate) use session::cross_origin;
pub(crate) use sign_in::needs_secure_cookie;

const SESSION_COOKIE: &str = "sportello_sessione";
const SCOPE: &str = "/ufficio";
const LOGIN: &str = "/ufficio/accesso";

/// The staff pages: HTML for operators, not part of the API's description.
pub(super) fn endpoints() -> Vec<Endpoint> {
    use actix_web::http::Method as M;
    vec![
        page(LOGIN, M::GET, sign_in::login_page),
        page(LOGIN, M::POST, sign_in::login),
        page("/ufficio/uscita", M::POST, sign_in::logout),
        page(SCOPE, M::GET, queue::queue),
        page("/ufficio/quesiti/{ticket_id}", M::GET, ticket::detail),
        // Before the actions' pattern, which would match it too: the first
        // resource that matches a path serves it.
        page(registration::REGISTRATION, M::POST, registration::register),
        page(
            "/ufficio/quesiti/{ticket_id}/{action}",
            M::POST,
            actions::act,
        ),
        page(
            "/ufficio/documenti/{document_id}",
            M::GET,
            documents::download,
        ),
        page(agenda::AGENDA, M::GET, agenda::agenda),
        page(callbacks::CALLBACKS, M::GET, callbacks::page),
        page("/ufficio/richiamate/prendi", M::POST, callbacks::take),
        page("/ufficio/richiamate/esito", M::POST, callbacks::record),
    ]
}
