//! Tenants: creating the first one, the Public API switch, the IP whitelist.

use keygate_domain::{AdminScope, Email, IpRanges, PersonName, TenantId, TenantSlug, UserId};
use keygate_store::{NewTenant, TenantRecord};
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
        let audit = caller
            .audit(tenant, "tenant.max_key_lifetime_set", format!("tenant {tenant}"))
            .details(days.map_or("unlimited".to_owned(), |d| format!("{d} days")));
        self.db().tenants().set_max_key_lifetime(tenant, days, &audit).await?;
        self.inner.verifier.forget_tenant(tenant);
        Ok(())
    }
}
