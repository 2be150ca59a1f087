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
    let mut forwarded = headers.get_all("x-forwarded-for").iter().peekable();
    if forwarded.peek().is_none() {
        // X-Real-IP only when the proxy sent no X-Forwarded-For at all: a proxy that appends to
        // the chain does not also vouch for a header the client may have sent.
        return headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| parse_forwarded(s.trim()))
            .map_or(peer_ip, normalise);
    }
    forwarded_client(peer_ip, forwarded, trusted)
}

/// Walks `X-Forwarded-For` from the right: each entry a trusted proxy wrote is stepped over, and
/// the first address that is not one of ours is the client. An entry that does not parse ends the
/// chain: what lies left of it came through a hop that cannot be read, so the client is the last
/// address that was (a trusted proxy, or the peer). Entries left of the client prove nothing.
pub(crate) fn forwarded_client<'a>(
    peer_ip: IpAddr,
    values: impl Iterator<Item = &'a axum::http::HeaderValue>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let values: Vec<&axum::http::HeaderValue> = values.collect();
    let mut last = peer_ip;
    for value in values.iter().rev() {
        let Ok(text) = value.to_str() else { return last };
        for entry in text.rsplit(',') {
            let Some(ip) = parse_forwarded(entry.trim()).map(normalise) else { return last };
            if !trusted.contains(ip) {
                return ip;
            }
            last = ip;
        }
    }
    last
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
    fn an_unparseable_entry_ends_the_trusted_chain() {
        let peer: SocketAddr = "10.0.0.2:5000".parse().expect("addr");
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into()]).expect("valid");
        let ip = client_ip(peer, &headers("6.6.6.6, garbage"), &trusted);
        assert_eq!(ip, peer.ip(), "6.6.6.6 came through a hop nobody can read");
        let ip = client_ip(peer, &headers("6.6.6.6, nonsense, 10.0.0.3"), &trusted);
        assert_eq!(ip, "10.0.0.3".parse::<IpAddr>().expect("ip"), "the last readable trusted hop");
    }

    #[test]
    fn x_real_ip_is_ignored_beside_a_forwarded_chain_of_trusted_proxies() {
        let peer: SocketAddr = "10.0.0.2:5000".parse().expect("addr");
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into()]).expect("valid");
        let mut h = headers("10.0.0.9");
        h.insert("x-real-ip", HeaderValue::from_static("6.6.6.6"));
        assert_eq!(client_ip(peer, &h, &trusted), "10.0.0.9".parse::<IpAddr>().expect("ip"));
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
