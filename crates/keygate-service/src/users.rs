//! Users: create, list, change groups, units and password, deactivate, reactivate. Every change
//! that can give a power passes the grant ceiling ([`Keygate::judge`]) before anything is written.

use std::collections::BTreeSet;

use keygate_domain::{
    AuditEntry, Email, Gift, GroupId, GroupPower, PersonName, Power, SystemGroup, TenantId, UnitId, UserCategory,
    UserId,
};
use keygate_store::{GroupRecord, NewUser, UserRecord};
use secrecy::SecretString;

use crate::{Caller, Keygate, ServiceError, ServiceResult, error::invalid, groups::resolve, password};

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

/// A change of a user that passed every check and is ready to be written.
#[derive(Debug)]
pub(crate) struct Planned {
    tenant: TenantId,
    user: UserId,
    change: Change,
    audit: AuditEntry,
}

#[derive(Debug)]
enum Change {
    Groups(Vec<GroupId>),
    Units(Option<Vec<UnitId>>),
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
        let groups = self.resolve_groups(tenant, &new.groups).await?;
        let units = self.existing_units(tenant, new.units).await?;
        // A new user holds nothing yet, not even a unit: everything they get is a gift.
        let nobody = Power { units: Some(BTreeSet::new()), ..Power::default() };
        let target = format!("user {email}");
        let added = group_powers(&groups);
        self.judge(caller, tenant, &target, Gift::Membership { target: &nobody, removed: &[], added: &added }).await?;
        let unit_set = unit_set(&units);
        self.judge(caller, tenant, &target, Gift::Units { target: &nobody, units: unit_set.as_ref() }).await?;
        let groups: Vec<String> = groups.into_iter().map(|g| g.name).collect();
        let hash = match new.password {
            Some(p) => Some(password::hash_password(p).await?),
            None => None,
        };
        let audit = caller.audit(tenant, "user.created", target).details(format!(
            "category {}; groups: {}; units: {}",
            category.as_str(),
            groups.join(", "),
            describe_units(&units)
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
                    units,
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
        let (record, power) = self.user_power(tenant, user).await?;
        let target = format!("user {}", record.email);
        // Re-activation hands the user's powers back; deactivation only touches them.
        let gift = if active { Gift::HandOver { target: &power } } else { Gift::Edit { target: &power } };
        self.judge(caller, tenant, &target, gift).await?;
        let keys = self.db().keys().count_usable_for_user(tenant, user).await?;
        let action = if active { "user.activated" } else { "user.deactivated" };
        let audit = caller.audit(tenant, action, target).details(format!("(user {user}); {keys} usable keys"));
        self.db().users().set_active(tenant, user, active, &audit).await?;
        self.inner.verifier.forget_user(user);
        Ok(Deactivated { keys_stopped: if active { 0 } else { keys } })
    }

    /// Replaces a user's groups. Members of `User configurator`; what is added or taken away must
    /// lie within the caller's own groups and grants, and only a Supervisor changes a Supervisor.
    pub async fn set_user_groups(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        names: &[String],
    ) -> ServiceResult<()> {
        let plan = self.plan_user_groups(caller, tenant, user, names).await?;
        self.apply(plan).await
    }

    /// Checks a change of groups against the rules and the ceiling, writing nothing yet.
    pub(crate) async fn plan_user_groups(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        names: &[String],
    ) -> ServiceResult<Planned> {
        caller.require_user_configurator(tenant)?;
        let (record, power) = self.user_power(tenant, user).await?;
        let wanted = self.resolve_groups(tenant, names).await?;
        let current: Vec<GroupRecord> = {
            let known = self.db().groups().list(tenant).await?;
            known.into_iter().filter(|g| record.groups.contains(&g.name)).collect()
        };
        let removed: Vec<GroupRecord> =
            current.iter().filter(|g| !wanted.iter().any(|w| w.id == g.id)).cloned().collect();
        let added: Vec<GroupRecord> =
            wanted.iter().filter(|g| !current.iter().any(|c| c.id == g.id)).cloned().collect();
        let target = format!("user {}", record.email);
        let (removed_powers, added_powers) = (group_powers(&removed), group_powers(&added));
        self.judge(
            caller,
            tenant,
            &target,
            Gift::Membership { target: &power, removed: &removed_powers, added: &added_powers },
        )
        .await?;
        let after: Vec<&str> = wanted.iter().map(|g| g.name.as_str()).collect();
        let audit = caller.audit(tenant, "user.groups_changed", target).details(format!(
            "before: {}; after: {}",
            names_or_none(record.groups.iter().map(String::as_str)),
            names_or_none(after.iter().copied())
        ));
        let ids: Vec<_> = wanted.iter().map(|g| g.id).collect();
        Ok(Planned { tenant, user, change: Change::Groups(ids), audit })
    }

    /// Sets the units a user reaches (`None`: every unit). Members of `User configurator`; units
    /// added must be units the caller reaches.
    pub async fn set_user_units(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        units: Option<Vec<UnitId>>,
    ) -> ServiceResult<()> {
        let plan = self.plan_user_units(caller, tenant, user, units).await?;
        self.apply(plan).await
    }

    /// Checks a change of units against the rules and the ceiling, writing nothing yet.
    pub(crate) async fn plan_user_units(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        units: Option<Vec<UnitId>>,
    ) -> ServiceResult<Planned> {
        caller.require_user_configurator(tenant)?;
        let (record, power) = self.user_power(tenant, user).await?;
        let units = self.existing_units(tenant, units).await?;
        let target = format!("user {}", record.email);
        let set = unit_set(&units);
        self.judge(caller, tenant, &target, Gift::Units { target: &power, units: set.as_ref() }).await?;
        let audit = caller.audit(tenant, "user.units_changed", target).details(format!(
            "before: {}; after: {}",
            describe_units(&record.units),
            describe_units(&units)
        ));
        Ok(Planned { tenant, user, change: Change::Units(units), audit })
    }

    /// Writes a change that [`Self::plan_user_groups`] or [`Self::plan_user_units`] allowed.
    pub(crate) async fn apply(&self, plan: Planned) -> ServiceResult<()> {
        let Planned { tenant, user, change, audit } = plan;
        match change {
            Change::Groups(ids) => self.db().users().set_groups(tenant, user, &ids, &audit).await?,
            Change::Units(units) => self.db().users().set_units(tenant, user, &units, &audit).await?,
        }
        self.inner.verifier.forget_user(user);
        Ok(())
    }

    /// Sets or resets a user's password (`None` removes it: programmatic users only). Every
    /// console session of the user ends at once. Members of `User configurator`, or the user
    /// themselves; whoever sets it can log in as the user, so the user's powers must lie within the
    /// caller's.
    pub async fn set_user_password(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        password: Option<SecretString>,
    ) -> ServiceResult<()> {
        let own = caller.user_id() == Some(user) && matches!(caller, Caller::User { .. });
        if !own {
            caller.require_user_configurator(tenant)?;
        }
        let (record, power) = self.user_power(tenant, user).await?;
        if password.is_none() && record.category != UserCategory::Programmatic {
            return Err(ServiceError::Invalid(format!(
                "{} is a personal user and needs a password to log in; only a programmatic user may have none",
                record.email
            )));
        }
        let target = format!("user {}", record.email);
        if !own {
            self.judge(caller, tenant, &target, Gift::HandOver { target: &power }).await?;
        }
        let hash = match password {
            Some(p) => Some(password::hash_password(p).await?),
            None => None,
        };
        let what = if hash.is_some() { "user.password_set" } else { "user.password_removed" };
        let audit = caller.audit(tenant, what, target).details("every console session of the user ended".to_owned());
        self.db().users().set_password_hash(tenant, user, hash.as_deref(), &audit).await?;
        Ok(())
    }

    /// A user's permissions as the store computes them for verification (groups, and the
    /// own-records rule for personal users). Members of `User configurator` or `Configurator`.
    pub async fn user_permissions(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
    ) -> ServiceResult<keygate_domain::Permissions> {
        if caller.require_user_configurator(tenant).is_err() {
            caller.require_configurator(tenant)?;
        }
        Ok(self.user_power(tenant, user).await?.1.permissions)
    }

    /// A user of this tenant and what they hold now.
    pub(crate) async fn user_power(&self, tenant: TenantId, user: UserId) -> ServiceResult<(UserRecord, Power)> {
        let record = self.user_by_id(tenant, user).await?;
        let owner = self
            .db()
            .users()
            .owner_state(user)
            .await?
            .filter(|o| o.tenant_id == tenant)
            .ok_or_else(|| ServiceError::NotFound(format!("user {user}")))?;
        Ok((record, Power::new(owner.permissions, owner.units.as_deref())))
    }

    /// The groups called `names` (any case), each once, or an error listing the tenant's groups.
    async fn resolve_groups(&self, tenant: TenantId, names: &[String]) -> ServiceResult<Vec<GroupRecord>> {
        let known = self.db().groups().list(tenant).await?;
        let mut out: Vec<GroupRecord> = Vec::new();
        for name in names.iter().filter(|n| !n.trim().is_empty()) {
            let found = resolve(&known, name)?;
            if !out.iter().any(|g| g.id == found.id) {
                out.push(found.clone());
            }
        }
        Ok(out)
    }

    /// `units` if every one exists in the tenant (sorted, each once).
    async fn existing_units(&self, tenant: TenantId, units: Option<Vec<UnitId>>) -> ServiceResult<Option<Vec<UnitId>>> {
        let Some(mut units) = units else { return Ok(None) };
        let existing = self.tenant_by_id(tenant).await?.policy.units;
        if let Some(missing) = units.iter().find(|u| !existing.contains(u)) {
            return Err(ServiceError::Invalid(format!("there is no unit {missing} in this tenant")));
        }
        if units.is_empty() {
            return Err(ServiceError::Invalid("a user needs at least one unit (or every unit)".to_owned()));
        }
        units.sort();
        units.dedup();
        Ok(Some(units))
    }

    /// True when the user holds a system group, by name (for pages that list groups).
    pub fn is_system_group(name: &str) -> bool {
        SystemGroup::from_name(name).is_some()
    }
}

fn group_powers(groups: &[GroupRecord]) -> Vec<GroupPower<'_>> {
    groups.iter().map(|g| GroupPower { system: g.system, grants: &g.grants }).collect()
}

fn unit_set(units: &Option<Vec<UnitId>>) -> Option<BTreeSet<UnitId>> {
    units.as_ref().map(|u| u.iter().copied().collect())
}

fn describe_units(units: &Option<Vec<UnitId>>) -> String {
    match units {
        None => "every unit".to_owned(),
        Some(u) => u.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
    }
}

fn names_or_none<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}
