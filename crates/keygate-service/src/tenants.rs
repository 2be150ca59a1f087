//! Tenants: creating the first one, the Public API switch, the IP whitelist, the default rate
//! limit and the longest key lifetime (one at a time, or all at once for the management API).

use keygate_domain::{AdminScope, Email, IpRanges, PersonName, TenantId, TenantPolicy, TenantSlug, UserId};
use keygate_store::{NewTenant, SettingsUpdate, TenantRecord};
use secrecy::SecretString;

use crate::{Caller, Keygate, ServiceError, ServiceResult, error::invalid, password};

/// What `init` created. `generated_password` is set when no password was given; show it once.
#[derive(Debug)]
pub struct InitOutcome {
    pub tenant: TenantId,
    pub admin: UserId,
    pub generated_password: Option<SecretString>,
}

impl Keygate {
    /// Creates a tenant with unit 1 and an administrator in Supervisor, Configurator and
    /// User configurator. Only the command line (a system caller) may create tenants.
    pub async fn create_tenant(
        &self,
        caller: &Caller,
        slug: &str,
        admin_email: &str,
        password: Option<SecretString>,
    ) -> ServiceResult<InitOutcome> {
        if !matches!(caller, Caller::System { .. }) {
            return Err(ServiceError::Forbidden("tenants are created from the command line".to_owned()));
        }
        let slug = TenantSlug::parse(slug).map_err(invalid)?;
        let email = Email::parse(admin_email).map_err(invalid)?;
        let (password, generated) = match password {
            Some(p) => (p, false),
            None => (password::generate_password(), true),
        };
        let hash = password::hash_password(password.clone()).await?;
        let name = PersonName::parse("Administrator").map_err(invalid)?;
        let audit = keygate_domain::AuditEntry::new(None, caller.actor(), "tenant.created", format!("tenant {slug}"))
            .details(format!("administrator {email}"));
        let (tenant, admin) = self
            .db()
            .tenants()
            .create(
                NewTenant {
                    slug: &slug,
                    name: slug.as_str(),
                    admin_email: &email,
                    admin_name: &name,
                    admin_password_hash: &hash,
                },
                &audit,
            )
            .await?;
        Ok(InitOutcome { tenant, admin, generated_password: generated.then_some(password) })
    }

    /// The tenant with this slug, or `NotFound`.
    pub async fn tenant(&self, slug: &str) -> ServiceResult<TenantRecord> {
        let parsed = TenantSlug::parse(slug).map_err(invalid)?;
        self.db()
            .tenants()
            .by_slug(&parsed)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("the tenant `{slug}`")))
    }

    pub async fn tenant_by_id(&self, id: TenantId) -> ServiceResult<TenantRecord> {
        self.db().tenants().by_id(id).await?.ok_or_else(|| ServiceError::NotFound(format!("tenant {id}")))
    }

    /// Switches the tenant's Public API on or off; takes effect on the next request.
    pub async fn set_public_api(&self, caller: &Caller, tenant: TenantId, on: bool) -> ServiceResult<()> {
        caller.require_admin(tenant, AdminScope::SettingsWrite)?;
        let action = if on { "tenant.api_enabled" } else { "tenant.api_disabled" };
        self.db()
            .tenants()
            .set_public_api(tenant, on, &caller.audit(tenant, action, format!("tenant {tenant}")))
            .await?;
        self.inner.verifier.forget_tenant(tenant);
        Ok(())
    }

    /// Replaces the tenant-wide API IP whitelist; takes effect on the next request.
    pub async fn set_whitelist(&self, caller: &Caller, tenant: TenantId, ranges: &[String]) -> ServiceResult<IpRanges> {
        caller.require_admin(tenant, AdminScope::SettingsWrite)?;
        let ranges = IpRanges::parse(ranges).map_err(invalid)?;
        let audit =
            caller.audit(tenant, "tenant.whitelist_set", format!("tenant {tenant}")).details(ranges.to_string());
        self.db().tenants().set_whitelist(tenant, &ranges, &audit).await?;
        self.inner.verifier.forget_tenant(tenant);
        Ok(ranges)
    }

    /// Sets the tenant's default per-key rate limit (requests per minute, 1–1 000 000 000).
    pub async fn set_rate_limit(&self, caller: &Caller, tenant: TenantId, per_minute: u32) -> ServiceResult<()> {
        caller.require_admin(tenant, AdminScope::SettingsWrite)?;
        if !(1..=1_000_000_000).contains(&per_minute) {
            return Err(ServiceError::Invalid(
                "the rate limit must be between 1 and 1000000000 requests per minute".into(),
            ));
        }
        let audit = caller
            .audit(tenant, "tenant.rate_limit_set", format!("tenant {tenant}"))
            .details(format!("{per_minute}/min"));
        self.db().tenants().set_rate_limit(tenant, per_minute, &audit).await?;
        self.inner.verifier.forget_tenant(tenant);
        Ok(())
    }

    /// Sets the longest lifetime of new keys, in days (`None`: unlimited).
    pub async fn set_max_key_lifetime(
        &self,
        caller: &Caller,
        tenant: TenantId,
        days: Option<u32>,
    ) -> ServiceResult<()> {
        caller.require_admin(tenant, AdminScope::SettingsWrite)?;
        if days == Some(0) {
            return Err(ServiceError::Invalid("the maximum key lifetime must be at least one day".into()));
        }
        if days.is_some_and(|d| u64::from(d) > MAX_KEY_LIFETIME_DAYS) {
            return Err(ServiceError::Invalid(format!(
                "the maximum key lifetime is at most {MAX_KEY_LIFETIME_DAYS} days (or none)"
            )));
        }
        let audit = caller
            .audit(tenant, "tenant.max_key_lifetime_set", format!("tenant {tenant}"))
            .details(days.map_or("unlimited".to_owned(), |d| format!("{d} days")));
        self.db().tenants().set_max_key_lifetime(tenant, days, &audit).await?;
        self.inner.verifier.forget_tenant(tenant);
        Ok(())
    }
}

/// A change of the tenant's Public API settings (the management API's PATCH); `None` leaves a
/// field as it is. Numbers are as given, checked here.
#[derive(Debug, Default, Clone)]
pub struct SettingsChange {
    pub public_api: Option<bool>,
    pub ip_whitelist: Option<Vec<String>>,
    pub rate_limit_per_minute: Option<u64>,
    /// `Some(None)`: no maximum.
    pub max_key_lifetime_days: Option<Option<u64>>,
}

/// The largest maximum key lifetime: 100 years.
pub const MAX_KEY_LIFETIME_DAYS: u64 = 36_500;

impl Keygate {
    /// The tenant's Public API settings. Members of `Configurator`.
    pub async fn tenant_settings(&self, caller: &Caller, tenant: TenantId) -> ServiceResult<TenantPolicy> {
        caller.require_admin(tenant, AdminScope::SettingsRead)?;
        Ok(self.tenant_by_id(tenant).await?.policy)
    }

    /// Checks a settings change without writing anything: every wrong field is named, and a
    /// change with one is refused whole. The management API asks this before `If-Match`, so that a
    /// bad body is a 422 whatever version it names.
    pub fn check_settings(change: &SettingsChange) -> ServiceResult<()> {
        Self::checked_settings(change).map(|_| ())
    }

    #[allow(clippy::type_complexity, reason = "the three checked values, used once")]
    fn checked_settings(
        change: &SettingsChange,
    ) -> ServiceResult<(Option<IpRanges>, Option<u32>, Option<Option<u32>>)> {
        let mut wrong = Vec::new();
        let whitelist = match change.ip_whitelist.as_deref().map(IpRanges::parse).transpose() {
            Ok(w) => w,
            Err(e) => {
                wrong.push(format!("ipWhitelist: {e}"));
                None
            }
        };
        let rate = match change.rate_limit_per_minute {
            Some(n) if (1..=1_000_000_000).contains(&n) => u32::try_from(n).ok(),
            Some(_) => {
                wrong.push("rateLimitPerMinute: must be between 1 and 1000000000 requests per minute".to_owned());
                None
            }
            None => None,
        };
        let lifetime = match change.max_key_lifetime_days {
            Some(Some(d)) if (1..=MAX_KEY_LIFETIME_DAYS).contains(&d) => Some(u32::try_from(d).ok()),
            Some(Some(_)) => {
                wrong.push(format!(
                    "maxKeyLifetimeDays: must be between 1 and {MAX_KEY_LIFETIME_DAYS} days, or null for no maximum"
                ));
                None
            }
            Some(None) => Some(None),
            None => None,
        };
        if !wrong.is_empty() {
            return Err(ServiceError::Invalid(format!("nothing was changed: {}", wrong.join("; "))));
        }
        Ok((whitelist, rate, lifetime))
    }

    /// Changes any of the tenant's Public API settings at once: every given field is checked
    /// first (the refusal names every wrong one), then all are written with their audit rows in
    /// one transaction, or none. Takes effect on the next request. Members of `Configurator`.
    pub async fn update_settings(
        &self,
        caller: &Caller,
        tenant: TenantId,
        change: SettingsChange,
    ) -> ServiceResult<TenantPolicy> {
        caller.require_admin(tenant, AdminScope::SettingsWrite)?;
        let (whitelist, rate, lifetime) = Self::checked_settings(&change)?;
        let target = format!("tenant {tenant}");
        let mut audits = Vec::new();
        if let Some(on) = change.public_api {
            let action = if on { "tenant.api_enabled" } else { "tenant.api_disabled" };
            audits.push(caller.audit(tenant, action, target.clone()));
        }
        if let Some(ranges) = &whitelist {
            audits.push(caller.audit(tenant, "tenant.whitelist_set", target.clone()).details(ranges.to_string()));
        }
        if let Some(n) = rate {
            audits.push(caller.audit(tenant, "tenant.rate_limit_set", target.clone()).details(format!("{n}/min")));
        }
        if let Some(days) = lifetime {
            audits.push(
                caller
                    .audit(tenant, "tenant.max_key_lifetime_set", target.clone())
                    .details(days.map_or("unlimited".to_owned(), |d| format!("{d} days"))),
            );
        }
        if !audits.is_empty() {
            let update = SettingsUpdate {
                public_api: change.public_api,
                ip_whitelist: whitelist,
                rate_limit_per_minute: rate,
                max_key_lifetime_days: lifetime,
            };
            self.db().tenants().update_settings(tenant, &update, &audits).await?;
            self.inner.verifier.forget_tenant(tenant);
        }
        Ok(self.tenant_by_id(tenant).await?.policy)
    }
}
