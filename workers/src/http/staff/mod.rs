//! Staff pages (*quesiti di sede*), server-rendered in Italian: the office's
//! queue with the search filters, a ticket's detail with its history and
//! attachments, and the forms that take it in charge, comment, close or
//! reassign it.
//!
//! The operator signs in by pasting the token their identity provider signed.
//! That opens a server-side session (`store::staff_sessions`) lasting as long
//! as the token, at most `MAX_SESSION`; the browser gets only the session's
//! random key, in an HttpOnly, SameSite=Strict cookie scoped to `/ufficio`.
//! Signing out ends the session for good. Besides the SameSite cookie, a POST
//! whose `Origin` names another site is refused.
//!
//! Handlers only translate between HTTP and `tickets`: the lifecycle rules
//! live in `domain::ticket`, access checks and transactions in `tickets`.
//! Statuses follow the JSON API's mapping (`http::error`); messages are
//! rewritten in Italian here, since the service's are for integrators.
//!
//! Layout: `session.rs` (who is signed in, cross-site refusal), `sign_in.rs`,
//! `queue.rs`, `ticket.rs` (detail page), `actions.rs` (its forms),
//! `documents.rs` (attachment download), `agenda.rs` (the office's
//! appointments of a day), `callbacks.rs` ("Richiamate", the phone
//! call-backs, with the calls sessions hold in `held_calls.rs`);
//! `render.rs` and `errors.rs` are shared by every page. A new page is a
//! new file here plus its routes below.

mod actions;
mod agenda;
mod callbacks;
mod documents;
mod errors;
mod held_calls;
mod queue;
mod render;
mod session;
mod sign_in;
mod ticket;

use actix_web::web;

use super::ApiState;

pub use held_calls::HeldCalls;
pub(crate) use sign_in::needs_secure_cookie;

const SESSION_COOKIE: &str = "sportello_sessione";
const SCOPE: &str = "/ufficio";
const LOGIN: &str = "/ufficio/accesso";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(LOGIN)
            .route(web::get().to(sign_in::login_page))
            .route(web::post().to(sign_in::login)),
    )
    .service(web::resource("/ufficio/uscita").route(web::post().to(sign_in::logout)))
    .service(web::resource(SCOPE).route(web::get().to(queue::queue)))
    .service(web::resource("/ufficio/quesiti/{ticket_id}").route(web::get().to(ticket::detail)))
    .service(
        web::resource("/ufficio/quesiti/{ticket_id}/{action}").route(web::post().to(actions::act)),
    )
    .service(
        web::resource("/ufficio/documenti/{document_id}").route(web::get().to(documents::download)),
    )
    .service(web::resource(agenda::AGENDA).route(web::get().to(agenda::agenda)))
    .service(web::resource(callbacks::CALLBACKS).route(web::get().to(callbacks::page)))
    .service(web::resource("/ufficio/richiamate/prendi").route(web::post().to(callbacks::take)))
    .service(web::resource("/ufficio/richiamate/esito").route(web::post().to(callbacks::record)));
}
