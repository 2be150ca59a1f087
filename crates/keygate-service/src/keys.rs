//! Keys: issue, list, disable, enable, revoke, roll (the console's and the command line's; the
//! management API's own use cases are in `keys_admin`).

use keygate_domain::{
    AdminScope, ApiKeySecret, IpRanges, KeyId, KeyRecord, KeyStatus, Purpose, Scope, Scopes, Subject, TenantId,
    Timestamp, UnitId, UserCategory, UserId,
};
use keygate_store::{HandsOver, KeyListing, NewKey, UserRecord};

use crate::{Caller, Keygate, ServiceError, ServiceResult, ceiling::Affects, error::invalid};

/// Whose key it is.
#[derive(Debug, Clone, Default)]
pub enum KeyOwner {
    /// The caller themselves (the original manual's flow).
    #[default]
    Myself,
    Email(String),
    Id(UserId),
}

/// A request to issue a key. Text fields are validated here. The default is the caller's own key
/// with no purpose and no ranges (refused until both are given) and no other choice: build one
/// with `IssueKey { purpose, ip_ranges, ..IssueKey::default() }`, so that a field added here is
/// added in one place.
#[derive(Debug, Clone, Default)]
pub struct IssueKey {
    pub owner: KeyOwner,
    pub purpose: String,
    pub ip_ranges: Vec<String>,
    /// `YYYY-MM-DD` or RFC 3339; empty or `None` for no expiry (or the tenant maximum).
    pub expires: Option<String>,
    /// `None` inherits the user's permissions.
    pub scopes: Option<Vec<String>>,
    pub units: Option<Vec<UnitId>>,
    pub rate_limit_per_minute: Option<u32>,
}

/// A freshly issued key. The secret exists only here: show it once, then drop it.
#[derive(Debug)]
pub struct IssuedKey {
    pub secret: ApiKeySecret,
    pub record: KeyRecord,
    /// Things the issuer should know, e.g. that a range admits any address.
    pub warnings: Vec<String>,
}

/// A key as an administrator sees it in a list, with its effective status.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub listing: KeyListing,
    /// `active`, `disabled`, `expired`, `revoked`, `user inactive` or `API off`.
    pub status: &'static str,
}

impl KeyView {
    /// `listing` with its effective status at `now` in a tenant whose API is `api_on`.
    pub(crate) fn of(listing: KeyListing, api_on: bool, now: Timestamp) -> Self {
        let status = match listing.key.status(now) {
            KeyStatus::Active if !listing.user_active => "user inactive",
            KeyStatus::Active if !api_on => "API off",
            other => other.as_str(),
        };
        Self { listing, status }
    }
}

/// The longest overlap a rolled key keeps working for.
pub const MAX_ROLL_OVERLAP_DAYS: i64 = 7;

/// A key made by a roll rolls itself no sooner than this many minutes after it was made, so that
/// a key holder writes at most 144 keys a day by rolling itself (administrators' rolls wait for
/// nothing).
pub const SELF_ROLL_MIN_AGE_MINUTES: i64 = 10;

impl Keygate {
    /// Issues a key. Members of `Configurator`; a console user may issue for themselves or for a
    /// programmatic user of the tenant (who then needs neither Configurator rights nor a password).
    pub async fn issue_key(&self, caller: &Caller, tenant: TenantId, req: IssueKey) -> ServiceResult<IssuedKey> {
        caller.require_admin(tenant, AdminScope::KeysWrite)?;
        let policy = self.tenant_by_id(tenant).await?.policy;
        let (secret, new, owner) = self.prepare_key(caller, tenant, &policy, &req).await?;
        let audit = caller.audit(tenant, "key.issued", "key").details(describe(&new, &owner.email));
        // Whoever gets the secret holds everything the key reaches: a hand-over of the new key.
        let affects = Affects::user(owner.id).handing_over(HandsOver::TheNewKey);
        let id = self
            .judged(caller, tenant, &format!("key for {}", owner.email), affects, async |guard| {
                self.db().keys().insert(&new, guard, &audit).await
            })
            .await?;
        let record = self.key(tenant, id).await?;
        Ok(IssuedKey { warnings: warnings(&record), secret, record })
    }

    /// A new key of `req` with its secret and owner, every field checked (owner active and of this
    /// tenant, purpose, ranges, scopes, expiry within the tenant's maximum, units the owner
    /// reaches, rate limit); nothing written. The caller's power is the ceiling's to judge.
    pub(crate) async fn prepare_key(
        &self,
        caller: &Caller,
        tenant: TenantId,
        policy: &keygate_domain::TenantPolicy,
        req: &IssueKey,
    ) -> ServiceResult<(ApiKeySecret, NewKey, UserRecord)> {
        let owner = match &req.owner {
            KeyOwner::Myself => {
                let id = caller
                    .user_id()
                    .ok_or_else(|| ServiceError::Invalid("the command line must name the key's user".into()))?;
                self.user_by_id(tenant, id).await?
            }
            KeyOwner::Email(email) => self.user_by_email(tenant, email).await?,
            KeyOwner::Id(id) => self.user_by_id(tenant, *id).await?,
        };
        if !owner.active {
            return Err(ServiceError::Invalid(format!("{} is deactivated; reactivate the user first", owner.email)));
        }
        personal_rule(caller, &owner, "issued")?;
        let purpose = Purpose::parse(&req.purpose).map_err(invalid)?;
        let ip_ranges = IpRanges::parse(&req.ip_ranges).map_err(invalid)?;
        let scopes = match &req.scopes {
            Some(items) => Some(Scopes::parse(items).map_err(invalid)?),
            None => None,
        };
        let expires_at = self.expiry(policy, req.expires.as_deref())?;
        if let Some(units) = &req.units
            && let Some(u) = units.iter().find(|u| !policy.units.contains(u))
        {
            return Err(ServiceError::Invalid(format!("there is no unit {u} in this tenant")));
        }
        let (_, owner_power) = self.user_power(tenant, owner.id).await?;
        if let (Some(units), Some(owned)) = (&req.units, &owner_power.units)
            && let Some(u) = units.iter().find(|u| !owned.contains(u))
        {
            return Err(ServiceError::Invalid(format!("unit {u} is not one of {}'s units", owner.email)));
        }
        if req.rate_limit_per_minute == Some(0) {
            return Err(ServiceError::Invalid("a key's rate limit must be at least 1 request per minute".into()));
        }
        let secret = ApiKeySecret::generate();
        let new = NewKey {
            tenant_id: tenant,
            user_id: owner.id,
            created_by: caller.user_id(),
            purpose,
            digest: secret.digest(),
            display: secret.display_form(),
            ip_ranges,
            scopes,
            units: req.units.clone(),
            expires_at,
            rolled_from: None,
            rate_limit_per_minute: req.rate_limit_per_minute,
        };
        Ok((secret, new, owner))
    }

    pub(crate) fn expiry(
        &self,
        policy: &keygate_domain::TenantPolicy,
        text: Option<&str>,
    ) -> ServiceResult<Option<Timestamp>> {
        let now = Timestamp::now();
        let max = policy.max_key_lifetime_days.map(|d| now.plus_days(i64::from(d)));
        let requested = match text.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Some(Timestamp::parse(t).map_err(invalid)?),
            None => None,
        };
        match (requested, max) {
            (Some(at), _) if at <= now => Err(ServiceError::Invalid(format!("the expiry {at} is in the past"))),
            (Some(at), Some(max)) if at > max => Err(ServiceError::Invalid(format!(
                "the expiry {at} is beyond this tenant's maximum key lifetime of {} days (at most {max})",
                policy.max_key_lifetime_days.unwrap_or_default()
            ))),
            (Some(at), _) => Ok(Some(at)),
            (None, max) => Ok(max),
        }
    }

    pub async fn key(&self, tenant: TenantId, id: KeyId) -> ServiceResult<KeyRecord> {
        self.db().keys().by_id(tenant, id).await?.ok_or_else(|| ServiceError::NotFound(format!("key {id}")))
    }

    /// The tenant's keys with their effective status. Members of `Configurator`.
    pub async fn list_keys(&self, caller: &Caller, tenant: TenantId) -> ServiceResult<Vec<KeyView>> {
        caller.require_admin(tenant, AdminScope::KeysRead)?;
        let api_on = self.tenant_by_id(tenant).await?.policy.public_api;
        let now = Timestamp::now();
        let keys = self.db().keys().list(tenant).await?;
        Ok(keys.into_iter().map(|listing| KeyView::of(listing, api_on, now)).collect())
    }

    /// Resolves the tenant of a key: the caller's own tenant, or (command line) any tenant.
    async fn key_tenant(&self, caller: &Caller, tenant: Option<TenantId>, id: KeyId) -> ServiceResult<TenantId> {
        match (tenant, caller) {
            (Some(t), _) => Ok(t),
            (None, Caller::System { .. }) => Ok(self
                .db()
                .keys()
                .find_any_tenant(id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("key {id}")))?
                .tenant_id),
            (None, Caller::User { tenant, .. } | Caller::Key { tenant, .. }) => Ok(*tenant),
        }
    }

    /// Disables (`enabled = false`) or re-enables a key; refused on the next request.
    pub async fn set_key_enabled(
        &self,
        caller: &Caller,
        tenant: Option<TenantId>,
        id: KeyId,
        enabled: bool,
    ) -> ServiceResult<()> {
        let tenant = self.key_tenant(caller, tenant, id).await?;
        caller.require_admin(tenant, AdminScope::KeysWrite)?;
        let action = if enabled { "key.enabled" } else { "key.disabled" };
        let target = format!("key {id}");
        let audit = caller.audit(tenant, action, target.clone());
        // Enabling gives what the key reaches back to whoever holds it: a hand-over.
        let hands_over = if enabled { HandsOver::Subjects(vec![Subject::Key(id)]) } else { HandsOver::Nothing };
        self.judged(caller, tenant, &target, Affects::key(id).handing_over(hands_over), async |guard| {
            self.db().keys().set_enabled(tenant, id, enabled, guard, &audit).await
        })
        .await?;
        self.inner.verifier.forget_key(id);
        Ok(())
    }

    /// Revokes a key for good; refused on the next request.
    pub async fn revoke_key(&self, caller: &Caller, tenant: Option<TenantId>, id: KeyId) -> ServiceResult<()> {
        let tenant = self.key_tenant(caller, tenant, id).await?;
        caller.require_admin(tenant, AdminScope::KeysWrite)?;
        self.db().keys().revoke(tenant, id, &caller.audit(tenant, "key.revoked", format!("key {id}"))).await?;
        self.inner.verifier.forget_key(id);
        Ok(())
    }

    /// Issues a successor with the same owner, ranges, scopes and units; the old key keeps working
    /// for `overlap_hours` (at most 7 days), then expires. Only the rolled key and its successor
    /// work after a roll: the rest of their line of rolls ends now (see [`keygate_store::Rolled`]).
    pub async fn roll_key(
        &self,
        caller: &Caller,
        tenant: Option<TenantId>,
        id: KeyId,
        overlap_hours: i64,
    ) -> ServiceResult<IssuedKey> {
        let tenant = self.key_tenant(caller, tenant, id).await?;
        caller.require_admin(tenant, AdminScope::KeysWrite)?;
        if !(0..=MAX_ROLL_OVERLAP_DAYS * 24).contains(&overlap_hours) {
            return Err(ServiceError::Invalid(format!(
                "the overlap must be between 0 and {} hours",
                MAX_ROLL_OVERLAP_DAYS * 24
            )));
        }
        let old = self.key(tenant, id).await?;
        personal_rule(caller, &self.user_by_id(tenant, old.user_id).await?, "rolled")?;
        if old.status(Timestamp::now()) != KeyStatus::Active {
            return Err(ServiceError::Invalid(format!(
                "key {id} is {}; only an active key can be rolled",
                old.status(Timestamp::now()).as_str()
            )));
        }
        let secret = ApiKeySecret::generate();
        let new = successor(&old, caller, &secret);
        let until = Timestamp::now().plus_millis(overlap_hours * 3_600_000);
        let audit =
            caller.audit(tenant, "key.rolled", format!("key {id}")).details(format!("old key works until {until}"));
        // The successor's secret goes to the caller: a hand-over of everything it reaches.
        let affects = Affects::key(id).handing_over(HandsOver::TheNewKey);
        let rolled = self
            .judged(caller, tenant, &format!("key {id}"), affects, async |guard| {
                self.db().keys().roll(id, &new, until, guard, &audit).await
            })
            .await?;
        self.forget_rolled(id, &rolled);
        let record = self.key(tenant, rolled.new).await?;
        Ok(IssuedKey { warnings: warnings(&record), secret, record })
    }
}

impl Keygate {
    /// Drops from the verification cache the key a roll rolled and those it ended.
    pub(crate) fn forget_rolled(&self, rolled_key: KeyId, rolled: &keygate_store::Rolled) {
        self.inner.verifier.forget_key(rolled_key);
        for ended in &rolled.ended {
            self.inner.verifier.forget_key(*ended);
        }
    }
}

/// The successor of `old` under `secret`: the same owner, purpose, ranges, scopes, units, expiry
/// and rate limit, rolled from `old`, made by `caller`.
pub(crate) fn successor(old: &KeyRecord, caller: &Caller, secret: &ApiKeySecret) -> NewKey {
    NewKey {
        tenant_id: old.tenant_id,
        user_id: old.user_id,
        created_by: caller.user_id(),
        purpose: old.purpose.clone(),
        digest: secret.digest(),
        display: secret.display_form(),
        ip_ranges: old.ip_ranges.clone(),
        scopes: old.scopes.clone(),
        units: old.units.clone(),
        expires_at: old.expires_at,
        rolled_from: Some(old.id),
        rate_limit_per_minute: old.rate_limit_per_minute,
    }
}

/// What a key for one user may carry when the caller issues it: the console offers only these.
#[derive(Debug, Clone)]
pub struct KeyChoices {
    /// Scopes the user holds and the caller may give (or that reach only the user's own records).
    pub scopes: Vec<Scope>,
    /// The user's units that the caller reaches too, with their names.
    pub units: Vec<(UnitId, String)>,
}

impl Keygate {
    /// The scopes and units the caller may put on a key for `owner`. Members of `Configurator`.
    pub async fn key_choices(&self, caller: &Caller, tenant: TenantId, owner: UserId) -> ServiceResult<KeyChoices> {
        caller.require_admin(tenant, AdminScope::KeysRead)?;
        let (_, owner_power) = self.user_power(tenant, owner).await?;
        let power = caller.power();
        let authority = power.as_ref().map_or(keygate_domain::Authority::Everything, keygate_domain::Authority::Holder);
        let scopes = keygate_domain::giveable_scopes(authority, &owner_power);
        let reach = |u: &UnitId| {
            owner_power.units.as_ref().is_none_or(|s| s.contains(u))
                && power.as_ref().and_then(|p| p.units.as_ref()).is_none_or(|s| s.contains(u))
        };
        let units = self.db().tenants().units(tenant).await?.into_iter().filter(|(u, _)| reach(u)).collect();
        Ok(KeyChoices { scopes, units })
    }
}

/// A key of a personal user is issued or rolled only by that person (the command line aside):
/// its secret is theirs.
pub(crate) fn personal_rule(caller: &Caller, owner: &UserRecord, what: &str) -> ServiceResult<()> {
    match caller.user_id() {
        Some(me) if me != owner.id && owner.category != UserCategory::Programmatic => Err(ServiceError::Forbidden(
            format!("{} is a personal user: keys are {what} for yourself or for a programmatic user", owner.email),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn describe(new: &NewKey, owner: &str) -> String {
    format!(
        "for {owner}; purpose \"{}\"; ranges {}; scopes {}; expires {}",
        new.purpose.as_str(),
        new.ip_ranges,
        new.scopes.as_ref().map_or("inherit".to_owned(), |s| s.to_strings().join(" ")),
        new.expires_at.map_or("never".to_owned(), |t| t.to_rfc3339()),
    )
}

pub(crate) fn warnings(record: &KeyRecord) -> Vec<String> {
    let mut out = Vec::new();
    if record.ip_ranges.allows_any_address() {
        out.push("this key accepts calls from any address: use that for debugging only".to_owned());
    }
    if record.scopes.as_ref().is_some_and(|s| s.contains(Scope::KeysVerify)) {
        out.push("this key may verify other keys of the tenant (keys:verify)".to_owned());
    }
    out
}
