//! Every route the HTTP server mounts, in one table. `http::serve` mounts
//! the table and `tests/openapi.rs` reads it ([`mounted`]): every route of
//! the API must be described in `/openapi.json` (`http::openapi`), so a
//! route added here without its `#[utoipa::path]` fails that test.
//!
//! To add a route: an `api` entry here (or a `page` entry in
//! `staff::endpoints` for a staff page), a `#[utoipa::path(...)]` on its
//! handler, and the handler in `paths(...)` of `openapi::ApiDoc`.

use actix_web::http::Method;
use actix_web::{web, Route};

use super::endpoint::{api, asset, Endpoint, Surface};

use super::{
    applications, appointments, assets, documents, health, notifications, openapi, pin, staff,
    submissions, tickets,
};

/// The whole table, in mounting order.
fn table() -> Vec<Endpoint> {
    use Method as M;
    let mut table = vec![
        api("/openapi.json", M::GET, openapi::document),
        api("/health", M::GET, health::plain),
        api("/health/live", M::GET, health::live),
        api("/health/ready", M::GET, health::ready),
        api("/cases/{case_id}/documents", M::GET, documents::list),
        api("/cases/{case_id}/documents", M::POST, documents::upload),
        api(
            "/cases/{case_id}/registrations",
            M::POST,
            documents::send_for_registration,
        ),
        api(
            "/documents/{document_id}/content",
            M::GET,
            documents::download,
        ),
        api(
            "/documents/{document_id}/history",
            M::GET,
            documents::history,
        ),
        api("/documents/{document_id}", M::DELETE, documents::delete),
        api(
            "/registrations/{registration_id}/receipt.pdf",
            M::GET,
            documents::receipt,
        ),
        api(
            "/registrations/{registration_id}/annulment",
            M::POST,
            documents::annul,
        ),
        api("/tickets", M::GET, tickets::search),
        api("/tickets/{ticket_id}", M::GET, tickets::detail),
        api(
            "/tickets/{ticket_id}/take-in-charge",
            M::POST,
            tickets::take_in_charge,
        ),
        api("/tickets/{ticket_id}/comments", M::POST, tickets::comment),
        api("/tickets/{ticket_id}/close", M::POST, tickets::close),
        api("/tickets/{ticket_id}/reassign", M::POST, tickets::reassign),
        api(
            "/tickets/{ticket_id}/notifications",
            M::GET,
            notifications::ticket_log,
        ),
        api(
            "/appointments/{appointment_id}/notifications",
            M::GET,
            notifications::appointment_log,
        ),
        api("/offices", M::GET, tickets::offices),
        api("/agent-reads", M::GET, tickets::agent_reads),
        api("/notifications", M::GET, notifications::centre),
        api("/submissions", M::GET, submissions::fate),
        api(
            "/notifications/{notification_id}/read",
            M::PUT,
            notifications::mark_read,
        ),
        api(
            "/notifications/{notification_id}/read",
            M::DELETE,
            notifications::mark_unread,
        ),
        api("/me/contacts", M::GET, notifications::contacts),
        api("/me/contacts", M::PUT, notifications::save_contacts),
    ];
    table.extend(appointments::endpoints());
    table.extend(applications::endpoints());
    table.extend(pin::endpoints());
    table.extend(staff::endpoints());
    table.push(asset("/favicon.ico", M::GET, assets::favicon));
    table
}

/// Path, method and surface of every mounted route.
pub fn mounted() -> Vec<(&'static str, Method, Surface)> {
    table()
        .into_iter()
        .map(|e| (e.path, e.method, e.surface))
        .collect()
}

/// Mounts the table: one resource per path with all its methods, so a
/// method a path does not serve is 405 with `Allow` (`http::edge`).
pub fn mount(cfg: &mut web::ServiceConfig) {
    let mut resources: Vec<(&'static str, Vec<Route>)> = Vec::new();
    for endpoint in table() {
        match resources
            .iter_mut()
            .find(|(path, _)| *path == endpoint.path)
        {
            Some((_, routes)) => routes.push(endpoint.route),
            None => resources.push((endpoint.path, vec![endpoint.route])),
        }
    }
    for (path, routes) in resources {
        let resource = routes
            .into_iter()
            .fold(web::resource(path), |resource, route| resource.route(route));
        cfg.service(resource);
    }
}
