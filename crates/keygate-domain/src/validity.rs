//! The validity rule: one pure function deciding whether a key may make a call, and if not, the
//! first reason why, in the fixed order of docs/design.md §3.

use std::net::IpAddr;

use crate::{
    api_key::KeyRecord,
    ids::{KeyId, TenantId, UnitId, UserId},
    permission::{Access, Permissions, Resource},
    tenant::TenantPolicy,
    time::Timestamp,
    user::OwnerState,
};

/// Why a call was refused. The `code` strings are a public contract: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefusalCode {
    MissingCredentials,
    MalformedKey,
    UnknownKey,
    KeyRevoked,
    KeyDisabled,
    KeyExpired,
    UserInactive,
    ApiDisabled,
    IpNotAllowed,
    UnknownUnit,
    UnitNotAllowed,
    InsufficientPermission,
    RateLimited,
    TooManyFailures,
    AmbiguousCredentials,
}

impl RefusalCode {
    /// Every code once, in the order of declaration (so that [`Self::index`] is a code's place
    /// here). A test with an exhaustive match does not compile while a variant is missing.
    pub const ALL: [RefusalCode; 15] = [
        Self::MissingCredentials,
        Self::MalformedKey,
        Self::UnknownKey,
        Self::KeyRevoked,
        Self::KeyDisabled,
        Self::KeyExpired,
        Self::UserInactive,
        Self::ApiDisabled,
        Self::IpNotAllowed,
        Self::UnknownUnit,
        Self::UnitNotAllowed,
        Self::InsufficientPermission,
        Self::RateLimited,
        Self::TooManyFailures,
        Self::AmbiguousCredentials,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::MalformedKey => "malformed_key",
            Self::UnknownKey => "unknown_key",
            Self::KeyRevoked => "key_revoked",
            Self::KeyDisabled => "key_disabled",
            Self::KeyExpired => "key_expired",
            Self::UserInactive => "user_inactive",
            Self::ApiDisabled => "api_disabled",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::UnknownUnit => "unknown_unit",
            Self::UnitNotAllowed => "unit_not_allowed",
            Self::InsufficientPermission => "insufficient_permission",
            Self::RateLimited => "rate_limited",
            Self::TooManyFailures => "too_many_failures",
            Self::AmbiguousCredentials => "ambiguous_credentials",
        }
    }

    /// The code's place in [`Self::ALL`] (for per-code tables such as counters).
    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The HTTP status a refusal maps to.
    pub fn status(self) -> u16 {
        match self {
            Self::MissingCredentials
            | Self::MalformedKey
            | Self::UnknownKey
            | Self::KeyRevoked
            | Self::KeyDisabled
            | Self::KeyExpired
            | Self::UserInactive => 401,
            Self::ApiDisabled | Self::IpNotAllowed | Self::UnitNotAllowed | Self::InsufficientPermission => 403,
            Self::UnknownUnit => 404,
            Self::RateLimited | Self::TooManyFailures => 429,
            Self::AmbiguousCredentials => 400,
        }
    }

    /// What the caller is told. Never distinguishes more than the caller's own key already reveals.
    pub fn title(self) -> &'static str {
        match self {
            Self::MissingCredentials => "No API key was sent; send `Authorization: Bearer <key>`",
            Self::MalformedKey => "The API key is not well-formed (wrong length, characters or checksum)",
            Self::UnknownKey => "The API key is not known",
            Self::KeyRevoked => "The API key has been revoked",
            Self::KeyDisabled => "The API key has been disabled",
            Self::KeyExpired => "The API key has expired",
            Self::UserInactive => "The user of the API key is not active",
            Self::ApiDisabled => "The Public API is switched off for this tenant",
            Self::IpNotAllowed => "Calls with this key are not allowed from this IP address",
            Self::UnknownUnit => "There is no such unit",
            Self::UnitNotAllowed => "The API key may not reach this unit",
            Self::InsufficientPermission => "The API key's user or scopes do not permit this",
            Self::RateLimited => "Too many requests for this key; retry later",
            Self::TooManyFailures => "Too many failed attempts from this address; retry later",
            Self::AmbiguousCredentials => {
                "More than one credential was sent (two `Authorization` headers, or a Bearer key and a different \
                 `X-API-Key`); send exactly one"
            }
        }
    }

    /// True for refusals about the credential itself (RFC 6750 `error="invalid_token"`).
    pub fn is_invalid_token(self) -> bool {
        self.status() == 401 && self != Self::MissingCredentials
    }
}

/// A refusal with a detail for administrators (the audit log), not for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: RefusalCode,
    pub admin_detail: &'static str,
}

impl Refusal {
    pub fn new(code: RefusalCode, admin_detail: &'static str) -> Self {
        Self { code, admin_detail }
    }
}

/// What an operation needs beyond a valid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    Resource(Resource, Access),
    VerifyKeys,
}

/// Everything the rule looks at. `effective` is `owner.permissions.narrowed_to(key.scopes)`,
/// passed in so the caller can cache it (it depends only on the owner's groups and the key).
#[derive(Debug, Clone, Copy)]
pub struct VerifyInput<'a> {
    pub key: &'a KeyRecord,
    pub owner: &'a OwnerState,
    pub tenant: &'a TenantPolicy,
    pub effective: &'a Permissions,
    pub client_ip: IpAddr,
    pub unit: Option<UnitId>,
    pub required: Option<Requirement>,
    pub now: Timestamp,
}

/// Who a valid call runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    pub key_id: KeyId,
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub unit: Option<UnitId>,
    pub permissions: &'a Permissions,
}

/// Applies every check, in order: revoked → disabled → expired → owner active → tenant API on →
/// IP in the key's ranges and the tenant whitelist → unit exists and is allowed → permission.
/// (Format, checksum and digest lookup come before this; rate limits after.)
pub fn check_validity<'a>(input: &VerifyInput<'a>) -> Result<Principal<'a>, Refusal> {
    use RefusalCode::*;
    let VerifyInput { key, owner, tenant, effective, client_ip, unit, required, now } = *input;

    if key.revoked_at.is_some() {
        return Err(Refusal::new(KeyRevoked, "the key was revoked"));
    }
    if !key.enabled {
        return Err(Refusal::new(KeyDisabled, "the key is disabled"));
    }
    if key.expires_at.is_some_and(|at| at <= now) {
        return Err(Refusal::new(KeyExpired, "the key's expiry time has passed"));
    }
    if owner.id != key.user_id || owner.tenant_id != key.tenant_id || tenant.id != key.tenant_id {
        // Cannot happen with consistent storage; refuse rather than run as the wrong user.
        return Err(Refusal::new(UnknownKey, "the key's owner or tenant record did not match"));
    }
    if !owner.active {
        return Err(Refusal::new(UserInactive, "the key's user is deactivated"));
    }
    if !tenant.public_api {
        return Err(Refusal::new(ApiDisabled, "the tenant's Public API is switched off"));
    }
    if !key.ip_ranges.contains(client_ip) {
        return Err(Refusal::new(IpNotAllowed, "the client address is outside the key's IP ranges"));
    }
    if !tenant.ip_whitelist.contains(client_ip) {
        return Err(Refusal::new(IpNotAllowed, "the client address is outside the tenant's API IP whitelist"));
    }
    if let Some(unit) = unit {
        if !tenant.units.contains(&unit) {
            return Err(Refusal::new(UnknownUnit, "the unit does not exist in the tenant"));
        }
        if owner.units.as_ref().is_some_and(|units| !units.contains(&unit)) {
            return Err(Refusal::new(UnitNotAllowed, "the key's user may not reach this unit"));
        }
        if key.units.as_ref().is_some_and(|units| !units.contains(&unit)) {
            return Err(Refusal::new(UnitNotAllowed, "the key is restricted to other units"));
        }
    }
    match required {
        Some(Requirement::Resource(resource, access)) if effective.reach(resource, access).is_none() => {
            return Err(Refusal::new(
                InsufficientPermission,
                "neither the user's groups nor the key's scopes grant this",
            ));
        }
        Some(Requirement::VerifyKeys) if !effective.verify_keys => {
            return Err(Refusal::new(InsufficientPermission, "the key lacks the keys:verify scope"));
        }
        _ => {}
    }
    Ok(Principal { key_id: key.id, user_id: owner.id, tenant_id: tenant.id, unit, permissions: effective })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        api_key::{ApiKeySecret, Purpose},
        ip::IpRanges,
        permission::{Scopes, SystemGroup},
        tenant::TenantSlug,
        user::UserCategory,
    };

    struct World {
        key: KeyRecord,
        owner: OwnerState,
        tenant: TenantPolicy,
        effective: Permissions,
        ip: IpAddr,
        unit: Option<UnitId>,
        required: Option<Requirement>,
        now: Timestamp,
    }

    impl World {
        fn valid() -> Self {
            let secret = ApiKeySecret::generate();
            let now = Timestamp(1_800_000_000_000);
            let key = KeyRecord {
                created_by: Some(UserId(1)),
                purpose: Purpose::parse("ERP export").expect("valid"),
                ip_ranges: IpRanges::parse(&["10.0.0.0/8"]).expect("valid"),
                scopes: Some(Scopes::parse(&["invoices:read"]).expect("valid")),
                units: Some(vec![UnitId(1)]),
                expires_at: Some(now.plus_days(1)),
                ..crate::testing::key_record(KeyId(7), TenantId(1), UserId(2), &secret, now.plus_days(-1))
            };
            let owner = OwnerState {
                id: UserId(2),
                tenant_id: TenantId(1),
                name: "ERP".into(),
                email: "erp@example.com".into(),
                category: UserCategory::Programmatic,
                active: true,
                permissions: Permissions::of_user(&[], ["invoices:read:all".parse().expect("valid")]),
                units: Some(vec![UnitId(1), UnitId(2)]),
            };
            let tenant = TenantPolicy {
                id: TenantId(1),
                slug: TenantSlug::parse("acme").expect("valid"),
                name: "Acme".into(),
                public_api: true,
                ip_whitelist: IpRanges::parse(&["10.1.0.0/16"]).expect("valid"),
                max_key_lifetime_days: None,
                rate_limit_per_minute: 600,
                units: vec![UnitId(1), UnitId(2), UnitId(3)],
            };
            let effective = owner.permissions.narrowed_to(key.scopes.as_ref());
            Self {
                key,
                owner,
                tenant,
                effective,
                ip: "10.1.2.3".parse().expect("valid"),
                unit: Some(UnitId(1)),
                required: Some(Requirement::Resource(Resource::Invoices, Access::Read)),
                now,
            }
        }

        fn check(&self) -> Result<Principal<'_>, RefusalCode> {
            check_validity(&VerifyInput {
                key: &self.key,
                owner: &self.owner,
                tenant: &self.tenant,
                effective: &self.effective,
                client_ip: self.ip,
                unit: self.unit,
                required: self.required,
                now: self.now,
            })
            .map_err(|r| r.code)
        }
    }

    /// A code missing from `ALL` was counted under another code's name (the first's). The match
    /// is exhaustive: a new code does not compile until it has an arm, and its arm names its
    /// place in `ALL`, which does not compile (index out of bounds) until `ALL` holds it.
    #[test]
    fn all_holds_every_refusal_code_once_in_the_order_of_declaration() {
        use RefusalCode::*;
        let listed = |c: RefusalCode| match c {
            MissingCredentials => RefusalCode::ALL[0],
            MalformedKey => RefusalCode::ALL[1],
            UnknownKey => RefusalCode::ALL[2],
            KeyRevoked => RefusalCode::ALL[3],
            KeyDisabled => RefusalCode::ALL[4],
            KeyExpired => RefusalCode::ALL[5],
            UserInactive => RefusalCode::ALL[6],
            ApiDisabled => RefusalCode::ALL[7],
            IpNotAllowed => RefusalCode::ALL[8],
            UnknownUnit => RefusalCode::ALL[9],
            UnitNotAllowed => RefusalCode::ALL[10],
            InsufficientPermission => RefusalCode::ALL[11],
            RateLimited => RefusalCode::ALL[12],
            TooManyFailures => RefusalCode::ALL[13],
            AmbiguousCredentials => RefusalCode::ALL[14],
        };
        for (i, code) in RefusalCode::ALL.into_iter().enumerate() {
            assert_eq!(listed(code), code, "{code:?} is not at its own place in ALL");
            assert_eq!(code.index(), i, "{code:?}");
            assert_eq!(RefusalCode::from_code(code.code()), Some(code), "codes are distinct");
        }
    }

    #[test]
    fn a_key_meeting_every_condition_runs_as_its_user() {
        let w = World::valid();
        let p = w.check().expect("valid");
        assert_eq!(p.user_id, UserId(2));
        assert_eq!(p.key_id, KeyId(7));
    }

    #[test]
    fn each_failing_condition_is_named_by_its_code() {
        type Breaker = fn(&mut World);
        let cases: Vec<(RefusalCode, Breaker)> = vec![
            (RefusalCode::KeyRevoked, |w| w.key.revoked_at = Some(w.now)),
            (RefusalCode::KeyDisabled, |w| w.key.enabled = false),
            (RefusalCode::KeyExpired, |w| w.key.expires_at = Some(w.now)),
            (RefusalCode::UserInactive, |w| w.owner.active = false),
            (RefusalCode::ApiDisabled, |w| w.tenant.public_api = false),
            (RefusalCode::IpNotAllowed, |w| w.ip = "192.0.2.1".parse().expect("ip")),
            (RefusalCode::IpNotAllowed, |w| w.ip = "10.2.0.1".parse().expect("ip")),
            (RefusalCode::UnknownUnit, |w| w.unit = Some(UnitId(99))),
            (RefusalCode::UnitNotAllowed, |w| w.unit = Some(UnitId(3))),
            (RefusalCode::UnitNotAllowed, |w| w.unit = Some(UnitId(2))),
            (RefusalCode::InsufficientPermission, |w| {
                w.required = Some(Requirement::Resource(Resource::Companies, Access::Read))
            }),
            (RefusalCode::InsufficientPermission, |w| w.required = Some(Requirement::VerifyKeys)),
        ];
        for (expected, break_it) in cases {
            let mut w = World::valid();
            break_it(&mut w);
            assert_eq!(w.check().map(|_| ()), Err(expected));
        }
    }

    #[test]
    fn the_first_failing_condition_wins() {
        let mut w = World::valid();
        w.key.enabled = false;
        w.owner.active = false;
        w.tenant.public_api = false;
        assert_eq!(w.check().map(|_| ()), Err(RefusalCode::KeyDisabled));
        w.key.revoked_at = Some(w.now);
        assert_eq!(w.check().map(|_| ()), Err(RefusalCode::KeyRevoked));
    }

    #[test]
    fn a_supervisor_key_without_scopes_may_do_anything_in_its_units() {
        let mut w = World::valid();
        w.key.scopes = None;
        w.owner.permissions = Permissions::of_user(&[SystemGroup::Supervisor], []);
        w.effective = w.owner.permissions.narrowed_to(None);
        w.required = Some(Requirement::Resource(Resource::Users, Access::Write));
        assert!(w.check().is_ok());
    }

    proptest! {
        /// Breaking any one condition (or several) must never let the call through.
        #[test]
        fn the_rule_never_accepts_when_any_condition_is_false(broken in proptest::collection::vec(0usize..10, 1..4)) {
            let mut w = World::valid();
            for b in broken {
                match b {
                    0 => w.key.revoked_at = Some(w.now),
                    1 => w.key.enabled = false,
                    2 => w.key.expires_at = Some(w.now.plus_millis(-1)),
                    3 => w.owner.active = false,
                    4 => w.tenant.public_api = false,
                    5 => w.key.ip_ranges = IpRanges::parse(&["192.0.2.0/24"]).expect("valid"),
                    6 => w.tenant.ip_whitelist = IpRanges::parse(&["2001:db8::/32"]).expect("valid"),
                    7 => w.key.units = Some(vec![UnitId(2)]),
                    8 => w.owner.units = Some(vec![UnitId(3)]),
                    _ => w.required = Some(Requirement::Resource(Resource::Time, Access::Write)),
                }
            }
            prop_assert!(w.check().is_err());
        }
    }
}
