//! Who is uploading: the client an upload is counted against for the per-client cap.
//!
//! The client is the peer's address, as `serve` records it on every request
//! ([`ConnectInfo<SocketAddr>`]). Only when the peer is one of the configured trusted proxies is
//! `X-Forwarded-For` read: from the right, skipping trusted hops, the first other address is the
//! client (hops further left were written by whoever sent the request and can be forged). A
//! router served without connect info has no client: only the per-source cap applies then.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

/// The forwarding header trusted proxies append to.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// The client of a request, or `None` when the peer is unknown.
pub fn of(extensions: &Extensions, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()?
        .0
        .ip()
        .to_canonical();
    Some(resolve(peer, headers, trusted))
}

/// `peer`, or the rightmost untrusted `X-Forwarded-For` hop when `peer` is a trusted proxy.
fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // A hop that is not an address (garbage, `unknown`) ends the walk: what lies left of
        // it cannot be told apart from a forgery.
        let Ok(address) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = address.to_canonical();
        if !trusted.contains(&client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(FORWARDED_FOR, value.parse().unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_peer() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let forwarded = headers(&["198.51.100.7, 203.0.113.9"]);
        assert_eq!(
            resolve(ip("192.0.2.1"), &forwarded, &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &forwarded, &trusted),
            ip("203.0.113.9")
        );
        // Two trusted proxies in a row: skip both.
        let chained = headers(&["198.51.100.7", "203.0.113.9, 10.0.0.2"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &chained, &trusted),
            ip("203.0.113.9")
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        let garbage = headers(&["198.51.100.7, unknown"]);
        assert_eq!(resolve(ip("10.0.0.1"), &garbage, &trusted), ip("10.0.0.1"));
        // IPv4-mapped IPv6 peers match IPv4 entries.
        let mapped = ip("::ffff:10.0.0.1").to_canonical();
        assert_eq!(resolve(mapped, &forwarded, &trusted), ip("203.0.113.9"));
    }
}
