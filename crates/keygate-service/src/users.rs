//! Users: create, list, change groups, units and password, deactivate, reactivate. Every change
//! that can give a power is a judged write ([`Keygate::judged`]): the grant ceiling judges its
//! outcome inside the transaction that writes it.

use keygate_domain::{
    AdminScope, Email, GroupId, PersonName, Power, Subject, SystemGroup, TenantId, UnitId, UserCategory, UserId,
};
use keygate_store::{GroupRecord, HandsOver, Idempotency, NewUser, UserPageQuery, UserRecord, UserUpdate};
use secrecy::SecretString;

use crate::{Caller, Keygate, ServiceError, ServiceResult, ceiling::Affects, error::invalid, groups::resolve};

/// A user to create. Group names are matched case-insensitively against the tenant's groups.
#[derive(Debug, Default)]
pub struct CreateUser {
    /// Created deactivated (`false`, the default: active), in the same write: a user asked for
    /// inactive is never active, not even between two writes.
    pub inactive: bool,
    pub email: String,
    pub name: String,
    pub category: String,
    pub groups: Vec<String>,
    pub units: Option<Vec<UnitId>>,
    pub password: Option<SecretString>,
}

/// A change of a user's groups (by name), units (`Some(None)`: every unit) and active flag,
/// written all at once or not at all; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct ChangeUser {
    pub groups: Option<Vec<String>>,
    pub units: Option<Option<Vec<UnitId>>>,
    pub active: Option<bool>,
}

/// A change of a user (the management API's PATCH): [`ChangeUser`]'s fields, the name and the
/// category; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct UserPatch {
    pub name: Option<String>,
    pub category: Option<String>,
    pub groups: Option<Vec<String>>,
    pub units: Option<Option<Vec<UnitId>>>,
    pub active: Option<bool>,
}

/// The most users one page holds.
pub const USER_PAGE_MAX: u32 = 200;

/// Which users a page holds: those after `after` (by id), at most `limit`, filtered by active
/// flag, category and a text the email or name contains (any case).
#[derive(Debug, Default, Clone)]
pub struct UserQuery {
    pub after: Option<UserId>,
    pub limit: u32,
    pub active: Option<bool>,
    pub category: Option<String>,
    pub contains: Option<String>,
}

/// The outcome of a deactivation: how many keys stopped working with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deactivated {
    pub keys_stopped: i64,
}

impl Keygate {
    /// Creates a user. Members of `User configurator` only; judged on what the new user holds.
    pub async fn create_user(&self, caller: &Caller, tenant: TenantId, new: CreateUser) -> ServiceResult<UserId> {
        self.create_user_once(caller, tenant, new, None).await
    }

    /// [`Self::create_user`], remembering the answer under the API's `Idempotency-Key`.
    pub(crate) async fn create_user_once(
        &self,
        caller: &Caller,
        tenant: TenantId,
        new: CreateUser,
        idempotency: Option<Idempotency<'_>>,
    ) -> ServiceResult<UserId> {
        caller.require_admin(tenant, AdminScope::UsersWrite)?;
        let email = Email::parse(&new.email).map_err(invalid)?;
        let name = PersonName::parse(&new.name).map_err(invalid)?;
        let category = UserCategory::parse(&new.category).map_err(ServiceError::Invalid)?;
        let groups = self.resolve_groups(tenant, &new.groups).await?;
        let units = self.existing_units(tenant, new.units).await?;
        let hash = match new.password {
            Some(p) => Some(self.inner.hashing.hash(p).await?),
            None => None,
        };
        let target = format!("user {email}");
        let audit = caller.audit(tenant, "user.created", target.clone()).details(format!(
            "category {}{}; units: {}",
            category.as_str(),
            if new.inactive { ", inactive" } else { "" },
            describe_units(&units)
        ));
        let ids: Vec<GroupId> = groups.iter().map(|g| g.id).collect();
        let new = NewUser {
            tenant_id: tenant,
            email: &email,
            name: &name,
            category,
            password_hash: hash.as_deref(),
            units,
            groups: &ids,
            active: !new.inactive,
            idempotency,
        };
        // A password the caller chose lets the caller log in as the new user: a hand-over of all the
        // user will hold, own records included, as when a password is set later.
        let hands_over = if new.password_hash.is_some() { HandsOver::TheNewUser } else { HandsOver::Nothing };
        self.judged(caller, tenant, &target, Affects::nothing().handing_over(hands_over), async |guard| {
            self.db().users().create(new, guard, &audit).await
        })
        .await
    }

    /// The tenant's users. Members of `User configurator` or `Configurator`.
    pub async fn list_users(&self, caller: &Caller, tenant: TenantId) -> ServiceResult<Vec<UserRecord>> {
        caller.require_any_admin(tenant, &[AdminScope::UsersRead, AdminScope::KeysRead])?;
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
    /// Members of `User configurator` only; nobody may deactivate themselves. Re-activation hands
    /// the user (and their keys) back: judged as a hand-over.
    pub async fn set_user_active(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        active: bool,
    ) -> ServiceResult<Deactivated> {
        let keys = self.db().keys().count_usable_for_user(tenant, user).await?;
        self.change_user(caller, tenant, user, ChangeUser { active: Some(active), ..ChangeUser::default() }).await?;
        Ok(Deactivated { keys_stopped: if active { 0 } else { keys } })
    }

    /// Replaces a user's groups. Members of `User configurator`.
    pub async fn set_user_groups(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        names: &[String],
    ) -> ServiceResult<()> {
        self.change_user(caller, tenant, user, ChangeUser { groups: Some(names.to_vec()), ..ChangeUser::default() })
            .await
    }

    /// Sets the units a user reaches (`None`: every unit). Members of `User configurator`.
    pub async fn set_user_units(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        units: Option<Vec<UnitId>>,
    ) -> ServiceResult<()> {
        self.change_user(caller, tenant, user, ChangeUser { units: Some(units), ..ChangeUser::default() }).await
    }

    /// Changes a user's groups, units and active flag in one judged write: what the user and
    /// their keys gain must lie within the caller's own powers in each unit, re-activation hands
    /// the user over, only a Supervisor changes a Supervisor, and a refusal writes nothing.
    /// Members of `User configurator`; nobody deactivates themselves.
    pub async fn change_user(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        change: ChangeUser,
    ) -> ServiceResult<()> {
        let ChangeUser { groups, units, active } = change;
        self.patch_user(caller, tenant, user, UserPatch { groups, units, active, ..UserPatch::default() }).await
    }

    /// [`Self::change_user`] with the user's name and category too (the management API's PATCH):
    /// every field is checked first, then all are written in one judged write, or none.
    pub async fn patch_user(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
        change: UserPatch,
    ) -> ServiceResult<()> {
        caller.require_admin(tenant, AdminScope::UsersWrite)?;
        if change.active == Some(false) && caller.user_id() == Some(user) {
            return Err(ServiceError::Invalid("you cannot deactivate yourself".to_owned()));
        }
        let record = self.user_by_id(tenant, user).await?;
        let name = change.name.as_deref().map(PersonName::parse).transpose().map_err(invalid)?;
        let category =
            change.category.as_deref().map(UserCategory::parse).transpose().map_err(ServiceError::Invalid)?;
        let groups = match &change.groups {
            Some(names) => Some(self.resolve_groups(tenant, names).await?),
            None => None,
        };
        let units = match change.units {
            Some(units) => Some(self.existing_units(tenant, units).await?),
            None => None,
        };
        let target = format!("user {}", record.email);
        let mut what = Vec::new();
        if let Some(units) = &units {
            what.push(format!("units before: {}; after: {}", describe_units(&record.units), describe_units(units)));
        }
        if groups.is_some() {
            what.push(format!("groups before: {}", names_or_none(record.groups.iter().map(String::as_str))));
        }
        if let Some(name) = &name {
            what.push(format!("name before: {}; after: {}", record.name, name.as_str()));
        }
        if let Some(category) = category {
            what.push(format!("category before: {}; after: {}", record.category.as_str(), category.as_str()));
        }
        let profile = name.is_some() || category.is_some();
        let action = match (change.active, groups.is_some() || units.is_some() || profile) {
            (Some(true), false) => "user.activated",
            (Some(false), false) => "user.deactivated",
            (None, _) if profile => "user.changed",
            (None, _) if units.is_none() => "user.groups_changed",
            (None, _) if groups.is_none() => "user.units_changed",
            _ => "user.changed",
        };
        if let Some(active) = change.active {
            what.push(format!("active: {active}"));
        }
        let audit = caller.audit(tenant, action, target.clone()).details(format!("(user {user}); {}", what.join("; ")));
        let ids: Option<Vec<GroupId>> = groups.map(|g| g.iter().map(|g| g.id).collect());
        let update = UserUpdate { groups: ids.as_deref(), units, active: change.active, name: name.as_ref(), category };
        // Re-activation hands the user back; so does making them personal, for a personal user
        // also reaches their own records: either needs every power the user then holds.
        let becomes_personal = category == Some(UserCategory::Personal) && record.category != UserCategory::Personal;
        let hands_over = if change.active == Some(true) || becomes_personal {
            HandsOver::Subjects(vec![Subject::User(user)])
        } else {
            HandsOver::Nothing
        };
        self.judged(caller, tenant, &target, Affects::user(user).handing_over(hands_over), async |guard| {
            self.db().users().update(tenant, user, &update, guard, &audit).await
        })
        .await?;
        self.inner.verifier.forget_user(user);
        Ok(())
    }

    /// One user of the tenant. Members of `User configurator` or `Configurator`.
    pub async fn get_user(&self, caller: &Caller, tenant: TenantId, user: UserId) -> ServiceResult<UserRecord> {
        caller.require_any_admin(tenant, &[AdminScope::UsersRead, AdminScope::KeysRead])?;
        self.user_by_id(tenant, user).await
    }

    /// One page of the tenant's users by id (at most [`USER_PAGE_MAX`]) and the id to continue
    /// after, if there are more. Members of `User configurator` or `Configurator`.
    pub async fn list_users_page(
        &self,
        caller: &Caller,
        tenant: TenantId,
        query: UserQuery,
    ) -> ServiceResult<(Vec<UserRecord>, Option<UserId>)> {
        caller.require_any_admin(tenant, &[AdminScope::UsersRead, AdminScope::KeysRead])?;
        let limit = query.limit.clamp(1, USER_PAGE_MAX);
        let category = query.category.as_deref().map(UserCategory::parse).transpose().map_err(ServiceError::Invalid)?;
        let contains = query.contains.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if contains.as_ref().is_some_and(|t| t.chars().count() > 200) {
            return Err(ServiceError::Invalid("the search text is longer than 200 characters".to_owned()));
        }
        let page = UserPageQuery { after: query.after, limit: limit + 1, active: query.active, category, contains };
        let mut users = self.db().users().page(tenant, &page).await?;
        let next = if users.len() > limit as usize {
            users.truncate(limit as usize);
            users.last().map(|u| u.id)
        } else {
            None
        };
        Ok((users, next))
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
            caller.require_admin(tenant, AdminScope::UsersWrite)?;
        }
        let record = self.user_by_id(tenant, user).await?;
        if password.is_none() && record.category != UserCategory::Programmatic {
            return Err(ServiceError::Invalid(format!(
                "{} is a personal user and needs a password to log in; only a programmatic user may have none",
                record.email
            )));
        }
        let target = format!("user {}", record.email);
        let hash = match password {
            Some(p) => Some(self.inner.hashing.hash(p).await?),
            None => None,
        };
        let what = if hash.is_some() { "user.password_set" } else { "user.password_removed" };
        let audit =
            caller.audit(tenant, what, target.clone()).details("every console session of the user ended".to_owned());
        // Whoever sets a password can log in as the user: a hand-over, unless it is their own.
        let hands_over = if own { HandsOver::Nothing } else { HandsOver::Subjects(vec![Subject::User(user)]) };
        self.judged(caller, tenant, &target, Affects::user(user).handing_over(hands_over), async |guard| {
            self.db().users().set_password_hash(tenant, user, hash.as_deref(), guard, &audit).await
        })
        .await
    }

    /// A user's permissions as the store computes them for verification (groups, and the
    /// own-records rule for personal users). Members of `User configurator` or `Configurator`.
    pub async fn user_permissions(
        &self,
        caller: &Caller,
        tenant: TenantId,
        user: UserId,
    ) -> ServiceResult<keygate_domain::Permissions> {
        caller.require_any_admin(tenant, &[AdminScope::UsersRead, AdminScope::KeysRead])?;
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
