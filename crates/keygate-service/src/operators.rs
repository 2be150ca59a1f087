//! The operator plane (issue 21): operator credentials and the four things one may do.
//!
//! The company that runs keygate for many tenants issues operator credentials from the command
//! line ([`Keygate::issue_operator`], [`Keygate::operators`], [`Keygate::revoke_operator`], only
//! for the system caller). An [`Operator`] is what a credential authenticates as
//! ([`Keygate::authenticate_operator`]): it may list tenants, create a tenant with its first
//! administrator, switch a tenant's Public API off, and remove a tenant's data in two steps — and
//! nothing else. **An `Operator` is not a [`Caller`]** and cannot become one: no conversion exists,
//! its fields are private and only this module makes one, so no use case inside a tenant (keys,
//! users, groups, settings, records, audit) can be called with it. Every operator act is audited
//! with the actor `operator NAME (ID)`.

use std::net::IpAddr;

use keygate_domain::{
    Actor, AuditEntry, Email, KeyDigest, OperatorId, OperatorName, OperatorSecret, PersonName, RefusalCode, TenantId,
    TenantSlug, Timestamp,
};
use keygate_store::{NewTenant, OperatorRecord, TenantSummary, UserRecord};
use secrecy::SecretString;

use crate::{Caller, Credential, Keygate, Refused, ServiceError, ServiceResult, error::invalid, password};

/// How long a removal confirmation stays valid.
pub const REMOVAL_CONFIRMATION_TTL_MS: i64 = 10 * 60 * 1000;

/// The most tenants one page of the operator's listing holds.
pub const OPERATOR_PAGE_MAX: u32 = 200;

/// Who an operator credential authenticated as. Made only by [`Keygate::authenticate_operator`]
/// (and, for the command line's tests, nowhere else); never a [`Caller`].
#[derive(Debug, Clone)]
pub struct Operator {
    id: OperatorId,
    name: String,
    ip: Option<String>,
}

impl Operator {
    pub fn id(&self) -> OperatorId {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn actor(&self) -> Actor {
        Actor::Operator { id: self.id, name: self.name.clone() }
    }

    fn audit(&self, tenant: Option<TenantId>, action: &'static str, target: impl Into<String>) -> AuditEntry {
        AuditEntry::new(tenant, self.actor(), action, target).from_ip(self.ip.clone())
    }
}

/// A credential just issued: its record and the secret, to show once.
#[derive(Debug)]
pub struct IssuedOperator {
    pub record: OperatorRecord,
    pub secret: OperatorSecret,
}

/// What an operator asks to create: a tenant and its first administrator.
#[derive(Debug, Default)]
pub struct CreateTenant {
    pub slug: String,
    pub name: String,
    pub admin_email: String,
    pub admin_name: String,
    /// `None`: a password is generated and answered once.
    pub admin_password: Option<SecretString>,
}

/// A tenant created by an operator: the tenant, its administrator (in Supervisor, Configurator
/// and User configurator, as `keygate init` makes it) and the generated password, if any.
#[derive(Debug)]
pub struct CreatedTenant {
    pub tenant: TenantSummary,
    pub admin: UserRecord,
    pub generated_password: Option<SecretString>,
}

/// A removal asked for: the one-time confirmation (shown once) and when it expires.
#[derive(Debug)]
pub struct RemovalConfirmation {
    pub confirmation: OperatorSecret,
    pub expires_at: Timestamp,
}

fn system_only(caller: &Caller) -> ServiceResult<()> {
    match caller {
        Caller::System { .. } => Ok(()),
        _ => Err(ServiceError::Forbidden("operator credentials are managed from the command line".to_owned())),
    }
}

impl Keygate {
    /// Issues an operator credential named `name` (command line only). At most
    /// [`keygate_store::MAX_OPERATORS`] exist.
    pub async fn issue_operator(&self, caller: &Caller, name: &str) -> ServiceResult<IssuedOperator> {
        system_only(caller)?;
        let name = OperatorName::parse(name).map_err(invalid)?;
        let secret = OperatorSecret::generate();
        let audit = AuditEntry::new(None, caller.actor(), "operator.issued", "operator");
        let record =
            self.db().operators().issue(name.as_str(), &secret.digest(), &secret.display_form(), &audit).await?;
        Ok(IssuedOperator { record, secret })
    }

    /// Every operator credential (command line only).
    pub async fn operators(&self, caller: &Caller) -> ServiceResult<Vec<OperatorRecord>> {
        system_only(caller)?;
        Ok(self.db().operators().list().await?)
    }

    /// Revokes an operator credential (command line only): refused from the next request on.
    pub async fn revoke_operator(&self, caller: &Caller, id: OperatorId) -> ServiceResult<OperatorRecord> {
        system_only(caller)?;
        let audit = AuditEntry::new(None, caller.actor(), "operator.revoked", "operator");
        Ok(self.db().operators().revoke(id, &audit).await?)
    }

    /// Authenticates an operator credential sent from `source`. Guesses (a malformed, unknown or
    /// revoked operator credential) are counted by the same failure throttle as bad keys; none
    /// sent, two sent, or a well-formed tenant key are refused and audited but not counted, as a
    /// missing key is not (none of them could ever pass here). A blocked source is refused before
    /// anything is read.
    pub async fn authenticate_operator(&self, credential: Credential<'_>, source: IpAddr) -> Result<Operator, Refused> {
        self.throttle_gate(source)?;
        let text = match credential {
            Credential::Missing => {
                return Err(self.refused_from(source, RefusalCode::MissingCredentials, "no operator credential sent"));
            }
            Credential::Ambiguous => {
                let detail = "more than one credential sent";
                return Err(self.refused_from(source, RefusalCode::AmbiguousCredentials, detail));
            }
            Credential::Key(text) => text,
        };
        if keygate_domain::api_key::check_format(text).is_ok() {
            // A tenant's key, well formed: refused here, but no guess at an operator credential.
            let detail = "a tenant's key is not an operator credential";
            return Err(self.refused_from(source, RefusalCode::MalformedKey, detail));
        }
        let Ok(secret) = OperatorSecret::parse(text) else {
            let detail = "not an operator credential (format or checksum wrong)";
            return Err(self.failed_from(source, RefusalCode::MalformedKey, detail));
        };
        let record = match self.db().operators().by_digest(&secret.digest()).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                let detail = "no operator credential has this digest";
                return Err(self.failed_from(source, RefusalCode::UnknownKey, detail));
            }
            Err(e) => {
                tracing::error!(error = %e, "operator authentication could not read storage");
                return Err(Refused {
                    retry_after_secs: Some(crate::UNAVAILABLE_RETRY_AFTER_SECS),
                    unavailable: true,
                    ..RefusalCode::UnknownKey.into()
                });
            }
        };
        self.succeeded_from(source);
        if let Err(e) = self.db().operators().used(record.id, Timestamp::now()).await {
            tracing::warn!(error = %e, "noting an operator credential's use failed");
        }
        Ok(Operator { id: record.id, name: record.name, ip: Some(source.to_string()) })
    }

    /// Tenants by slug, after the slug `after`, at most `limit` (1–[`OPERATOR_PAGE_MAX`]); and
    /// the cursor of the next page.
    pub async fn operator_tenants(
        &self,
        _operator: &Operator,
        after: Option<&str>,
        limit: u32,
    ) -> ServiceResult<(Vec<TenantSummary>, Option<String>)> {
        let limit = limit.clamp(1, OPERATOR_PAGE_MAX);
        let mut rows = self.db().operators().tenants(after, limit + 1).await?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|t| t.slug.clone())
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Creates a tenant (its Public API off, as `keygate init` leaves it) with unit 1, the three
    /// system groups and its first administrator in all of them, in one transaction. Every field
    /// is checked before anything is written; a taken slug is `Conflict`.
    pub async fn operator_create_tenant(&self, operator: &Operator, new: CreateTenant) -> ServiceResult<CreatedTenant> {
        let slug = TenantSlug::parse(&new.slug).map_err(invalid)?;
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 120 || name.chars().any(char::is_control) {
            return Err(ServiceError::Invalid("a tenant's name must be 1 to 120 printable characters".to_owned()));
        }
        let email = Email::parse(&new.admin_email).map_err(invalid)?;
        let admin_name = PersonName::parse(&new.admin_name).map_err(invalid)?;
        if self.db().tenants().by_slug(&slug).await?.is_some() {
            return Err(ServiceError::Conflict(format!("a tenant with the slug `{slug}` already exists")));
        }
        let (password, generated) = match new.admin_password {
            Some(p) => (p, false),
            None => (password::generate_password(), true),
        };
        let hash = self.inner.hashing.hash(password.clone()).await?;
        let audit =
            operator.audit(None, "tenant.created", format!("tenant {slug}")).details(format!("administrator {email}"));
        let (tenant, admin) = self
            .db()
            .tenants()
            .create(
                NewTenant {
                    slug: &slug,
                    name,
                    admin_email: &email,
                    admin_name: &admin_name,
                    admin_password_hash: &hash,
                },
                &audit,
            )
            .await?;
        let record = self.tenant_summary(tenant).await?;
        let admin = self
            .db()
            .users()
            .by_id(tenant, admin)
            .await?
            .ok_or_else(|| ServiceError::Internal("the new administrator is not there".to_owned()))?;
        Ok(CreatedTenant { tenant: record, admin, generated_password: generated.then_some(password) })
    }

    /// Switches the tenant's Public API off: its keys are refused from the next request on (on
    /// other nodes through the change feed).
    pub async fn operator_api_off(&self, operator: &Operator, slug: &str) -> ServiceResult<TenantSummary> {
        let tenant = self.operator_tenant(slug).await?;
        let audit = operator.audit(Some(tenant), "tenant.api_disabled", format!("tenant {slug}"));
        self.db().tenants().set_public_api(tenant, false, &audit).await?;
        self.inner.verifier.forget_tenant(tenant);
        self.tenant_summary(tenant).await
    }

    /// The first step of removing a tenant: a one-time confirmation, valid for
    /// [`REMOVAL_CONFIRMATION_TTL_MS`], of which only the digest is stored.
    pub async fn operator_request_removal(
        &self,
        operator: &Operator,
        slug: &str,
    ) -> ServiceResult<RemovalConfirmation> {
        let tenant = self.operator_tenant(slug).await?;
        let confirmation = OperatorSecret::generate();
        let expires_at = Timestamp::now().plus_millis(REMOVAL_CONFIRMATION_TTL_MS);
        let audit = operator.audit(Some(tenant), "tenant.removal_requested", format!("tenant {slug}"));
        self.db().operators().request_removal(tenant, &confirmation.digest(), operator.id, expires_at, &audit).await?;
        Ok(RemovalConfirmation { confirmation, expires_at })
    }

    /// The second step: with the tenant's pending confirmation, deletes every row of the tenant
    /// in one transaction; its keys and sessions are refused at once (other nodes: change feed).
    /// A wrong, expired or used confirmation is `Conflict` and removes nothing. Returns the rows
    /// deleted.
    pub async fn operator_remove_tenant(
        &self,
        operator: &Operator,
        slug: &str,
        confirmation: &str,
    ) -> ServiceResult<u64> {
        let tenant = self.operator_tenant(slug).await?;
        let digest = KeyDigest::of(confirmation);
        let audit = operator.audit(None, "tenant.removed", format!("tenant {slug} ({tenant})"));
        let deleted = self.db().operators().remove_tenant(tenant, &digest, Timestamp::now(), &audit).await?;
        self.inner.verifier.forget_tenant(tenant);
        Ok(deleted)
    }

    async fn operator_tenant(&self, slug: &str) -> ServiceResult<TenantId> {
        let parsed = TenantSlug::parse(slug).map_err(|_| ServiceError::NotFound(format!("the tenant `{slug}`")))?;
        let record = self.db().tenants().by_slug(&parsed).await?;
        record.map(|t| t.policy.id).ok_or_else(|| ServiceError::NotFound(format!("the tenant `{slug}`")))
    }

    async fn tenant_summary(&self, tenant: TenantId) -> ServiceResult<TenantSummary> {
        let r = self
            .db()
            .tenants()
            .by_id(tenant)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("tenant {tenant}")))?;
        Ok(TenantSummary {
            id: r.policy.id.0,
            slug: r.policy.slug.as_str().to_owned(),
            name: r.policy.name,
            public_api: r.policy.public_api,
            created_at: r.created_at.0,
        })
    }
}
