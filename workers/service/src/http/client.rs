//! The client's address behind trusted reverse proxies
//! (`TRUSTED_PROXIES`, `domain::client_address`): the access log and the
//! PIN's limits per address use it.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::{web, HttpRequest};

use super::ApiState;
use crate::domain::client_address::{client_address, Forwarding};

/// The client of `request`: its peer, or what trusted proxies say.
pub fn of(request: &HttpRequest) -> IpAddr {
    let peer = request
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let Some(state) = request.app_data::<web::Data<ApiState>>() else {
        return peer;
    };
    let lines = |name: &str| -> Vec<&str> {
        request
            .headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    let forwarded = lines("forwarded");
    let x_forwarded_for = lines("x-forwarded-for");
    client_address(
        peer,
        Forwarding {
            forwarded: &forwarded,
            x_forwarded_for: &x_forwarded_for,
        },
        &state.trusted_proxies,
    )
}
