//! Fixtures of domain values for the tests, benches and examples of every crate (feature
//! `testing`; `keygate_store::testing` re-exports them). A field added to [`KeyRecord`] is added
//! here and in the store's row conversion, nowhere else. Not used by the product.

use crate::{ApiKeySecret, IpRanges, KeyId, KeyRecord, Purpose, TenantId, Timestamp, UserId};

/// A plain stored key of `secret`: enabled, not revoked, from any address, with its user's
/// permissions (no scopes), every unit, no expiry, the tenant's rate limit, purpose `test`,
/// created at `created_at` and never used. Change what a test needs with `..key_record(…)`.
pub fn key_record(
    id: KeyId,
    tenant: TenantId,
    user: UserId,
    secret: &ApiKeySecret,
    created_at: Timestamp,
) -> KeyRecord {
    KeyRecord {
        id,
        tenant_id: tenant,
        user_id: user,
        created_by: None,
        purpose: Purpose::parse("test").expect("a valid purpose"),
        digest: secret.digest(),
        display: secret.display_form(),
        ip_ranges: IpRanges::any(),
        scopes: None,
        units: None,
        expires_at: None,
        enabled: true,
        revoked_at: None,
        created_at,
        last_used_at: None,
        last_used_ip: None,
        rolled_from: None,
        rate_limit_per_minute: None,
    }
}
