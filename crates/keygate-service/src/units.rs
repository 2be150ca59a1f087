//! Units: the `{unitId}` of the Public API. Created, renamed and deleted by members of
//! `User configurator`; a unit that holds records is never deleted.

use keygate_domain::{AdminScope, PersonName, TenantId, UnitId};

use crate::{Caller, Keygate, ServiceError, ServiceResult, ceiling::Affects, error::invalid};

/// The largest unit number (the API carries it as a path segment; the original allows 0–100).
pub const MAX_UNIT_ID: i64 = 2_147_483_647;

impl Keygate {
    /// The tenant's units by number. Members of `User configurator` or `Configurator`.
    pub async fn list_units(&self, caller: &Caller, tenant: TenantId) -> ServiceResult<Vec<(UnitId, String)>> {
        caller.require_any_admin(tenant, &[AdminScope::UsersRead, AdminScope::KeysRead])?;
        Ok(self.db().tenants().units(tenant).await?)
    }

    /// Creates a unit, numbered `id` or the next free number. Members of `User configurator`.
    pub async fn create_unit(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: Option<i64>,
        name: &str,
    ) -> ServiceResult<UnitId> {
        caller.require_admin(tenant, AdminScope::UsersWrite)?;
        let name = PersonName::parse(name).map_err(|_| invalid("a unit name must be 1 to 120 printable characters"))?;
        let existing = self.db().tenants().units(tenant).await?;
        let id = match id {
            Some(id) if !(0..=MAX_UNIT_ID).contains(&id) => {
                return Err(ServiceError::Invalid(format!("a unit number must be between 0 and {MAX_UNIT_ID}")));
            }
            Some(id) => UnitId(id),
            None => UnitId(existing.iter().map(|(u, _)| u.0).max().map_or(1, |m| m + 1)),
        };
        if existing.iter().any(|(u, _)| *u == id) {
            return Err(ServiceError::Conflict(format!("unit {id} already exists")));
        }
        let audit =
            caller.audit(tenant, "unit.created", format!("unit {id}")).details(format!("name: {}", name.as_str()));
        let target = format!("unit {id}");
        self.judged(caller, tenant, &target, Affects::nothing(), async |_| {
            self.db().tenants().create_unit(tenant, id, name.as_str(), caller.unit_actor(), &audit).await
        })
        .await?;
        self.inner.verifier.forget_tenant(tenant);
        Ok(id)
    }

    /// Renames a unit. Members of `User configurator`.
    pub async fn rename_unit(&self, caller: &Caller, tenant: TenantId, id: UnitId, name: &str) -> ServiceResult<()> {
        caller.require_admin(tenant, AdminScope::UsersWrite)?;
        let name = PersonName::parse(name).map_err(|_| invalid("a unit name must be 1 to 120 printable characters"))?;
        let before = self
            .db()
            .tenants()
            .units(tenant)
            .await?
            .into_iter()
            .find(|(u, _)| *u == id)
            .ok_or_else(|| ServiceError::NotFound(format!("unit {id}")))?
            .1;
        let audit = caller
            .audit(tenant, "unit.renamed", format!("unit {id}"))
            .details(format!("before: {before}; after: {}", name.as_str()));
        self.db().tenants().rename_unit(tenant, id, name.as_str(), &audit).await?;
        Ok(())
    }

    /// Deletes a unit that holds no records. Members of `User configurator`.
    pub async fn delete_unit(&self, caller: &Caller, tenant: TenantId, id: UnitId) -> ServiceResult<()> {
        caller.require_admin(tenant, AdminScope::UsersWrite)?;
        let target = format!("unit {id}");
        let audit = caller.audit(tenant, "unit.deleted", target.clone());
        self.judged(caller, tenant, &target, Affects::nothing(), async |_| {
            self.db().tenants().delete_unit(tenant, id, caller.unit_actor(), &audit).await
        })
        .await?;
        self.inner.verifier.forget_tenant(tenant);
        Ok(())
    }
}
