//! Who the client is behind reverse proxies (`TRUSTED_PROXIES`).
//!
//! `X-Forwarded-For` and `Forwarded` are written by whoever sends the
//! request, so they are believed only from a trusted proxy: the peer of the
//! connection must be one, and each hop read from the right must be one
//! before the next hop to its left is believed. The client is the
//! rightmost address that is not a trusted proxy. A hop that is not an
//! address (`unknown`, an obfuscated `_node`, garbage) ends the walk: the
//! client is then the last trusted hop, never something a client wrote.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// Why a `TRUSTED_PROXIES` entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TRUSTED_PROXIES: `{0}` is neither an IP address nor a CIDR network (like 10.0.0.0/8 or 2001:db8::/32)")]
pub struct ProxyListError(pub String);

impl TrustedProxies {
    /// Addresses and CIDR networks, separated by commas or spaces; empty:
    /// no proxy is trusted and the connection's peer is the client.
    pub fn parse(raw: &str) -> Result<Self, ProxyListError> {
        raw.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| ProxyListError(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`) is that IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The forwarding headers of a request, each line as received, in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Forwarding<'a> {
    pub forwarded: &'a [&'a str],
    pub x_forwarded_for: &'a [&'a str],
}

/// The client of a request that came from `peer`. `Forwarded` (RFC 7239)
/// wins over `X-Forwarded-For` when a trusted proxy sent both.
pub fn client_address(peer: IpAddr, headers: Forwarding<'_>, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.trusts(peer) {
        return peer;
    }
    let hops: Vec<Option<IpAddr>> = if !headers.forwarded.is_empty() {
        headers
            .forwarded
            .iter()
            .flat_map(|line| line.split(','))
            .map(forwarded_for)
            .collect()
    } else {
        headers
            .x_forwarded_for
            .iter()
            .flat_map(|line| line.split(','))
            .map(|hop| parse_hop(hop.trim()))
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(hop) = hop.map(canonical) else {
            return client;
        };
        client = hop;
        if !trusted.trusts(hop) {
            return hop;
        }
    }
    client
}

/// The `for=` of one `Forwarded` element; `None` when it has none usable.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_hop(value.trim().trim_matches('"')))
            .flatten()
    })
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    fn xff<'a>(lines: &'a [&'a str]) -> Forwarding<'a> {
        Forwarding {
            forwarded: &[],
            x_forwarded_for: lines,
        }
    }

    #[test]
    fn the_list_takes_addresses_and_networks_and_names_a_bad_entry() {
        let trusted = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8 2001:db8::/32").unwrap();
        assert!(trusted.trusts(ip("127.0.0.1")));
        assert!(trusted.trusts(ip("10.20.30.40")));
        assert!(trusted.trusts(ip("::ffff:10.1.1.1")), "IPv4-mapped");
        assert!(trusted.trusts(ip("2001:db8::5")));
        assert!(!trusted.trusts(ip("192.0.2.1")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/8,proxy.example"),
            Err(ProxyListError("proxy.example".into()))
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let client = client_address(ip("192.0.2.9"), xff(&["198.51.100.1"]), &trusted);
        assert_eq!(client, ip("192.0.2.9"));
        let nobody = TrustedProxies::default();
        assert_eq!(
            client_address(ip("10.0.0.1"), xff(&["198.51.100.1"]), &nobody),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client wrote a fake first hop; the proxies appended the truth.
        let lines = ["203.0.113.66, 198.51.100.7", "10.0.0.2"];
        assert_eq!(
            client_address(ip("10.0.0.1"), xff(&lines), &trusted),
            ip("198.51.100.7")
        );
        // Only proxies: the leftmost one is as far as we can see.
        assert_eq!(
            client_address(ip("10.0.0.1"), xff(&["10.0.0.3, 10.0.0.2"]), &trusted),
            ip("10.0.0.3")
        );
        // No header at all: the peer (a proxy talking for itself).
        assert_eq!(
            client_address(ip("10.0.0.1"), xff(&[]), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_hop_that_is_not_an_address_stops_the_walk_at_the_last_trusted_one() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            client_address(
                ip("10.0.0.1"),
                xff(&["198.51.100.7, unknown, 10.0.0.2"]),
                &trusted
            ),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), xff(&["garbage"]), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_elements_with_ports_and_ipv6_are_read_and_win() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let forwarded = [
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#,
            "for=10.0.0.2:8080",
        ];
        let headers = Forwarding {
            forwarded: &forwarded,
            x_forwarded_for: &["198.51.100.1"],
        };
        assert_eq!(
            client_address(ip("10.0.0.1"), headers, &trusted),
            ip("2001:db8:cafe::17")
        );
        let obfuscated = ["for=_hidden"];
        let headers = Forwarding {
            forwarded: &obfuscated,
            x_forwarded_for: &[],
        };
        assert_eq!(
            client_address(ip("10.0.0.1"), headers, &trusted),
            ip("10.0.0.1")
        );
    }
}
