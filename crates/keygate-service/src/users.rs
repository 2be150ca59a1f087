//! Users: create, list, deactivate, reactivate.

use keygate_domain::{Email, PersonName, SystemGroup, TenantId, UnitId, UserCategory, UserId};
use keygate_store::{NewUser, UserRecord};
use secrecy::SecretString;

use crate::{Caller, Keygate, ServiceError, ServiceResult, error::invalid, password};

/// A user to create. Group names are matched case-insensitively against the tenant's groups.
#[derive(Debug, Default)]
pub struct CreateUser {
    pub email: String,
    pub name: String,
    pub category: String,
    pub groups: Vec<String>,
    pub units: Option<Vec<UnitId>>,
    pub password: Option<SecretString>,
}

/// The outcome of a deactivation: how many keys stopped working with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deactivated {
    pub keys_stopped: i64,
}

impl Keygate {
    /// Creates a user. Members of `User configurator` only.
    pub async fn create_user(&self, caller: &Caller, tenant: TenantId, new: CreateUser) -> ServiceResult<UserId> {
        caller.require_user_configurator(tenant)?;
        let email = Email::parse(&new.email).map_err(invalid)?;
        let name = PersonName::parse(&new.name).map_err(invalid)?;
        let category = UserCategory::parse(&new.category).map_err(ServiceError::Invalid)?;
        let known = self.db().users().groups(tenant).await?;
        let mut groups = Vec::new();
        for wanted in &new.groups {
            let found = known.iter().find(|g| g.name.eq_ignore_ascii_case(wanted.trim())).ok_or_else(|| {
                let names: Vec<&str> = known.iter().map(|g| g.name.as_str()).collect();
                ServiceError::Invalid(format!("there is no group `{wanted}`; the groups are: {}", names.join(", ")))
            })?;
            if !groups.contains(&found.name) {
                groups.push(found.name.clone());
            }
        }
        if let Some(units) = &new.units {
            let existing = self.tenant_by_id(tenant).await?.policy.units;
            if let Some(missing) = units.iter().find(|u| !existing.contains(u)) {
                return Err(ServiceError::Invalid(format!("there is no unit {missing} in this tenant")));
            }
        }
        let hash = match new.password {
            Some(p) => Some(password::hash_password(p).await?),
            None => None,
        };
        let audit = caller.audit(tenant, "user.created", format!("user {email}")).details(format!(
            "category {}; groups: {}",
            category.as_str(),
            groups.join(", ")
        ));
        let id = self
            .db()
            .users()
            .create(
                NewUser {
                    tenant_id: tenant,
                    email: &email,
                    name: &name,
                    category,
                    password_hash: hash.as_deref(),
                    units: new.units,
                    groups: &groups,
                },
                &audit,
            )
            .await?;
        Ok(id)
    }

    /// The tenant's users. Members of `User configurator` or `Configurator`.
    pub async fn list_users(&self, caller: &Caller, tenant: TenantId) -> ServiceResult<Vec<UserRecord>> {
        if caller.require_user_configurator(tenant).is_err() {
            caller.require_configurator(tenant)?;
        }
        Ok(self.db().users().list(tenant).await?)
    }

    pub async fn user_by_email(&self, tenant: TenantId, email: &str) -> ServiceResult<UserRecord> {
        let parsed = Email::parse(email).map_err(invalid)?;
        self.db()
            .users()
            .by_email(tenant, &parsed)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("the user {parsed}")))
    }

    pub async fn user_by_id(&self, tenant: TenantId, id: UserId) -> ServiceResult<UserRecord> {
        self.db().users().by_id(tenant, id).await?.ok_or_else(|| ServiceError::NotFound(format!("user {id}")))
    }

    /// Deactivates or reactivates a user; their keys follow on the next request.
    /// Members of `User configurator` only; nobody may deactivate themselves.
    pub async fn set_user_active(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        active: bool,
    ) -> ServiceResult<Deactivated> {
        caller.require_user_configurator(tenant)?;
        if !active && caller.user_id() == Some(user) {
            return Err(ServiceError::Invalid("you cannot deactivate yourself".to_owned()));
        }
        let record = self.user_by_id(tenant, user).await?;
        let keys = self.db().keys().count_usable_for_user(tenant, user).await?;
        let action = if active { "user.activated" } else { "user.deactivated" };
        let audit = caller
            .audit(tenant, action, format!("user {}", record.email))
            .details(format!("(user {user}); {keys} usable keys"));
        self.db().users().set_active(tenant, user, active, &audit).await?;
        self.inner.verifier.forget_user(user);
        Ok(Deactivated { keys_stopped: if active { 0 } else { keys } })
    }

    /// True when the user holds a system group, by name (for pages that list groups).
    pub fn is_system_group(name: &str) -> bool {
        SystemGroup::from_name(name).is_some()
    }
}
