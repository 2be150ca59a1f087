//! Tenants: the slug that names them and the policy every API call of theirs obeys.

use std::fmt;

use crate::{
    ids::{TenantId, UnitId},
    ip::IpRanges,
};

/// A tenant's slug, like a subdomain: 2–63 of `a-z 0-9 -`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantSlug(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a tenant slug: use 2 to 63 lowercase letters, digits and inner hyphens, like a subdomain (e.g. acme-agency)"
)]
pub struct InvalidTenantSlug(pub String);

impl TenantSlug {
    pub fn parse(text: &str) -> Result<Self, InvalidTenantSlug> {
        let s = text.trim();
        let ok = (2..=63).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok { Ok(Self(s.to_owned())) } else { Err(InvalidTenantSlug(text.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tenant-wide settings the validity rule reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    pub id: TenantId,
    pub slug: TenantSlug,
    pub name: String,
    pub public_api: bool,
    pub ip_whitelist: IpRanges,
    pub max_key_lifetime_days: Option<u32>,
    /// Requests per minute per key, unless the key overrides it.
    pub rate_limit_per_minute: u32,
    pub units: Vec<UnitId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomain_like_slugs_are_accepted() {
        assert!(TenantSlug::parse("acme").is_ok());
        assert!(TenantSlug::parse("acme-agency-2").is_ok());
    }

    #[test]
    fn slugs_that_could_not_be_a_subdomain_are_refused() {
        for bad in ["", "a", "Acme", "-acme", "acme-", "ac me", "acmé", &"a".repeat(64)] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
