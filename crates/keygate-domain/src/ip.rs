//! IP ranges: the CIDR lists of a key and of a tenant's API whitelist, IPv4 and IPv6.

use std::{fmt, net::IpAddr};

use ipnet::IpNet;

/// A non-empty list of CIDR ranges, normalised to their network address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRanges(Vec<IpNet>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIpRanges {
    #[error("at least one IP range is required (use 0.0.0.0/0 and ::/0 only for debugging)")]
    Empty,
    /// Every entry that is not a range, each named.
    #[error("{} in CIDR notation, such as 203.0.113.0/24 or 2001:db8::/32", quoted(.0))]
    NotCidr(Vec<String>),
    #[error("too many IP ranges ({0}); at most {max} are allowed", max = IpRanges::MAX)]
    TooMany(usize),
}

impl IpRanges {
    pub const MAX: usize = 100;

    /// Parses CIDR ranges; a bare address means that single address (`/32` or `/128`).
    /// Entries may also be separated by commas or whitespace inside one string.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, InvalidIpRanges> {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for item in items {
            for part in item.as_ref().split([',', ' ', '\n', '\r', '\t']).filter(|p| !p.is_empty()) {
                let net = match part.parse::<IpNet>() {
                    Ok(net) => net.trunc(),
                    Err(_) => match part.parse::<IpAddr>() {
                        Ok(ip) => IpNet::from(normalise(ip)),
                        Err(_) => {
                            if bad.len() < 20 {
                                bad.push(part.chars().take(64).collect());
                            }
                            continue;
                        }
                    },
                };
                if !nets.contains(&net) {
                    nets.push(net);
                }
            }
        }
        if !bad.is_empty() {
            return Err(InvalidIpRanges::NotCidr(bad));
        }
        if nets.is_empty() {
            return Err(InvalidIpRanges::Empty);
        }
        if nets.len() > Self::MAX {
            return Err(InvalidIpRanges::TooMany(nets.len()));
        }
        Ok(Self(nets))
    }

    /// Every address, IPv4 and IPv6: the default tenant whitelist.
    pub fn any() -> Self {
        Self(vec!["0.0.0.0/0".parse().expect("valid literal"), "::/0".parse().expect("valid literal")])
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalise(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// True when some range admits every address of its family: for debugging only.
    pub fn allows_any_address(&self) -> bool {
        self.0.iter().any(|net| net.prefix_len() == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &IpNet> {
        self.0.iter()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for IpRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_strings().join(", "))
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) is matched as IPv4.
pub fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `` `a` is not an IP range`` or `` `a` and `b` are not IP ranges`` (up to 20 entries named).
fn quoted(items: &[String]) -> String {
    let names: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match names.as_slice() {
        [one] => format!("{one} is not an IP range"),
        [first @ .., last] => format!("{} and {last} are not IP ranges", first.join(", ")),
        [] => "nothing is an IP range".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn an_address_inside_a_range_is_admitted_and_one_outside_is_not() {
        let r = IpRanges::parse(&["203.0.113.0/24", "2001:db8::/32"]).expect("valid");
        assert!(r.contains(ip("203.0.113.7")));
        assert!(r.contains(ip("2001:db8::1")));
        assert!(!r.contains(ip("203.0.114.1")));
        assert!(!r.contains(ip("2001:db9::1")));
    }

    #[test]
    fn an_ipv4_mapped_ipv6_peer_matches_its_ipv4_range() {
        let r = IpRanges::parse(&["127.0.0.0/8"]).expect("valid");
        assert!(r.contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn a_bare_address_is_a_single_host_range() {
        let r = IpRanges::parse(&["10.1.2.3"]).expect("valid");
        assert_eq!(r.to_strings(), vec!["10.1.2.3/32"]);
    }

    #[test]
    fn host_bits_are_cleared_and_duplicates_merged() {
        let r = IpRanges::parse(&["10.1.2.3/8, 10.0.0.0/8"]).expect("valid");
        assert_eq!(r.to_strings(), vec!["10.0.0.0/8"]);
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert_eq!(IpRanges::parse::<&str>(&[]), Err(InvalidIpRanges::Empty));
        assert_eq!(IpRanges::parse(&[" , "]), Err(InvalidIpRanges::Empty));
    }

    #[test]
    fn garbage_is_refused_and_named() {
        let err = IpRanges::parse(&["10.0.0.0/8", "example.com"]).expect_err("invalid");
        assert_eq!(err, InvalidIpRanges::NotCidr(vec!["example.com".into()]));
        let both = IpRanges::parse(&["10.0.0.0/8", "example.com", "10.0.0.0/33"]).expect_err("invalid");
        assert!(
            both.to_string().starts_with("`example.com` and `10.0.0.0/33` are not IP ranges in CIDR notation"),
            "{both}"
        );
    }

    #[test]
    fn allow_all_ranges_are_flagged_as_debugging_only() {
        assert!(IpRanges::parse(&["0.0.0.0/0"]).expect("valid").allows_any_address());
        assert!(IpRanges::parse(&["::/0"]).expect("valid").allows_any_address());
        assert!(!IpRanges::parse(&["10.0.0.0/8"]).expect("valid").allows_any_address());
    }
}
