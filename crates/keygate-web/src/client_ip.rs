//! The client's address: the socket peer, or — only when the peer is a trusted proxy — the
//! address the proxy forwarded. Believing `X-Forwarded-For` from anyone would let a caller
//! choose the IP its key is checked against.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;
use keygate_domain::ip::normalise;

/// CIDR ranges of the reverse proxies in front of keygate.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn parse(items: &[String]) -> Result<Self, String> {
        items
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{s}` is not a trusted proxy address or CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalise(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Resolves the client address of a request that arrived from `peer`.
pub(crate) fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer_ip = normalise(peer.ip());
    if trusted.is_empty() || !trusted.contains(peer_ip) {
        return peer_ip;
    }
    // Walk X-Forwarded-For from the right: the first address that is not one of our proxies is
    // the client. Entries left of it were written by the client and prove nothing.
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| parse_forwarded(s.trim()))
        .collect();
    if let Some(ip) = forwarded.iter().rev().find(|ip| !trusted.contains(**ip)) {
        return normalise(*ip);
    }
    if let Some(ip) = headers.get("x-real-ip").and_then(|v| v.to_str().ok()).and_then(|s| parse_forwarded(s.trim())) {
        return normalise(ip);
    }
    forwarded.first().copied().map_or(peer_ip, normalise)
}

/// Accepts `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` and `[2001:db8::1]:443`.
fn parse_forwarded(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).expect("header"));
        h
    }

    #[test]
    fn forwarded_addresses_from_an_untrusted_peer_are_ignored() {
        let peer: SocketAddr = "198.51.100.7:5000".parse().expect("addr");
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into()]).expect("valid");
        assert_eq!(client_ip(peer, &headers("203.0.113.9"), &trusted), peer.ip());
    }

    #[test]
    fn a_trusted_proxy_forwards_the_rightmost_untrusted_address() {
        let peer: SocketAddr = "10.0.0.2:5000".parse().expect("addr");
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into()]).expect("valid");
        let ip = client_ip(peer, &headers("6.6.6.6, 203.0.113.9, 10.0.0.3"), &trusted);
        assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn x_real_ip_is_used_when_there_is_no_forwarded_for() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let trusted = TrustedProxies::parse(&["127.0.0.1".into()]).expect("valid");
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", HeaderValue::from_static("192.0.2.44"));
        assert_eq!(client_ip(peer, &h, &trusted), "192.0.2.44".parse::<IpAddr>().expect("ip"));
    }
}
