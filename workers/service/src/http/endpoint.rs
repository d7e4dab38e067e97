//! One route as the table (`routes`) holds it: its path, method, who it is
//! for, and what serves it. Handlers build their entries with [`api`] and
//! [`page`]; the table that mounts them all sits above the handlers.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder, Route};

/// Who a route is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The JSON API (and the probes): described in `/openapi.json`.
    Api,
    /// The operators' HTML pages under `/ufficio`: not part of the API,
    /// left out of the description on purpose.
    StaffPages,
    /// Static assets beside the pages (the favicon): not part of the API,
    /// left out of the description on purpose.
    Assets,
}

/// One method on one path, and what serves it.
pub struct Endpoint {
    pub path: &'static str,
    pub method: Method,
    pub surface: Surface,
    pub(super) route: Route,
}

fn endpoint<F, Args>(path: &'static str, method: Method, surface: Surface, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Endpoint {
        path,
        route: web::method(method.clone()).to(handler),
        method,
        surface,
    }
}

/// A route of the API.
pub(super) fn api<F, Args>(path: &'static str, method: Method, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    endpoint(path, method, Surface::Api, handler)
}

/// A staff page.
pub(super) fn page<F, Args>(path: &'static str, method: Method, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    endpoint(path, method, Surface::StaffPages, handler)
}

/// A static asset.
pub(super) fn asset<F, Args>(path: &'static str, method: Method, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    endpoint(path, method, Surface::Assets, handler)
}
