//! Groups: custom groups with their grants, beside the three system groups. Managed by members
//! of `User configurator`; a change of grants or a forced delete is a judged write (what every
//! member and their keys gain must lie within the caller's powers; only a Supervisor changes a
//! Supervisor), and reaches every member's keys on the next request.

use keygate_domain::{
    AdminScope, AuditEntry, Authority, Grant, GroupId, GroupName, TenantId, UserId, grants_beyond, parse_grants,
};
use keygate_store::GroupRecord;

use crate::{Caller, Keygate, ServiceError, ServiceResult, ceiling::Affects, error::invalid};

/// A group with the emails of its members.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub group: GroupRecord,
    pub members: Vec<String>,
}

impl Keygate {
    /// The tenant's groups, system groups first. Members of `User configurator` or `Configurator`.
    pub async fn list_groups(&self, caller: &Caller, tenant: TenantId) -> ServiceResult<Vec<GroupRecord>> {
        caller.require_any_admin(tenant, &[AdminScope::UsersRead, AdminScope::KeysRead])?;
        Ok(self.db().groups().list(tenant).await?)
    }

    /// One group and its members. Members of `User configurator` or `Configurator`.
    pub async fn group(&self, caller: &Caller, tenant: TenantId, name: &str) -> ServiceResult<GroupView> {
        caller.require_any_admin(tenant, &[AdminScope::UsersRead, AdminScope::KeysRead])?;
        let group = self.find_group(tenant, name).await?;
        let ids = self.db().groups().members(tenant, group.id).await?;
        let mut members = Vec::with_capacity(ids.len());
        for id in ids {
            members.push(self.user_by_id(tenant, id).await?.email);
        }
        Ok(GroupView { group, members })
    }

    /// The group with this id and its members' ids. Members of `User configurator` or
    /// `Configurator`; a group of another tenant is not found.
    pub async fn group_by_id(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: GroupId,
    ) -> ServiceResult<(GroupRecord, Vec<UserId>)> {
        caller.require_any_admin(tenant, &[AdminScope::UsersRead, AdminScope::KeysRead])?;
        let group = self
            .db()
            .groups()
            .list(tenant)
            .await?
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| ServiceError::NotFound(format!("group {}", id.0)))?;
        let members = self.db().groups().members(tenant, group.id).await?;
        Ok((group, members))
    }

    /// The group called `name` (any case), or an error listing the tenant's groups.
    pub(crate) async fn find_group(&self, tenant: TenantId, name: &str) -> ServiceResult<GroupRecord> {
        let known = self.db().groups().list(tenant).await?;
        resolve(&known, name).cloned()
    }

    /// Creates a custom group. Members of `User configurator`; each grant must lie within the
    /// caller's own permissions.
    pub async fn create_group(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &str,
        grants: &[String],
    ) -> ServiceResult<GroupRecord> {
        caller.require_admin(tenant, AdminScope::UsersWrite)?;
        let name = GroupName::parse(name).map_err(invalid)?;
        let grants = parse_grants(grants).map_err(invalid)?;
        let known = self.db().groups().list(tenant).await?;
        if let Some(same) = known.iter().find(|g| GroupName::same(&g.name, name.as_str())) {
            return Err(ServiceError::Conflict(format!("a group named `{}` already exists", same.name)));
        }
        let target = format!("group {}", name.as_str());
        // A new group has no members: it gives nothing until someone joins it (a judged write);
        // still, nobody makes a group with grants they could never give.
        let power = caller.power();
        let authority = power.as_ref().map_or(Authority::Everything, Authority::Holder);
        let beyond = grants_beyond(authority, &grants);
        if !beyond.is_empty() {
            let message = format!("a new group may hold only grants you hold: you lack {}", list(&beyond));
            let audit = caller.audit(tenant, "grant.refused", target).details(message.clone());
            if let Err(e) = self.db().audit().append(&[audit]).await {
                tracing::error!(error = %e, "writing the audit event of a refused grant failed");
            }
            return Err(ServiceError::GrantExceedsActor(message));
        }
        let audit = caller.audit(tenant, "group.created", target).details(format!("grants: {}", list(&grants)));
        self.db().groups().create(tenant, name.as_str(), &grants, &audit).await?;
        self.find_group(tenant, name.as_str()).await
    }

    /// Renames a custom group. Members of `User configurator`.
    pub async fn rename_group(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &str,
        new_name: &str,
    ) -> ServiceResult<()> {
        caller.require_admin(tenant, AdminScope::UsersWrite)?;
        let group = self.custom_group(tenant, name, "renamed").await?;
        let new_name = self.free_name(tenant, &group, new_name).await?;
        let audit = renamed_audit(caller, tenant, &group, &new_name);
        self.db().groups().rename(tenant, group.id, new_name.as_str(), &audit).await?;
        Ok(())
    }

    /// `new_name` for `group`, parsed, unless another group of the tenant holds it (in any case).
    async fn free_name(&self, tenant: TenantId, group: &GroupRecord, new_name: &str) -> ServiceResult<GroupName> {
        let new_name = GroupName::parse(new_name).map_err(invalid)?;
        let known = self.db().groups().list(tenant).await?;
        if let Some(same) = known.iter().find(|g| g.id != group.id && GroupName::same(&g.name, new_name.as_str())) {
            return Err(ServiceError::Conflict(format!("a group named `{}` already exists", same.name)));
        }
        Ok(new_name)
    }

    /// Adds and removes grants of a custom group; every member's keys follow on the next request.
    /// Members of `User configurator`; what is added must lie within the caller's permissions.
    pub async fn change_group_grants(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &str,
        add: &[String],
        remove: &[String],
    ) -> ServiceResult<GroupRecord> {
        let group = self.custom_group(tenant, name, "given grants").await?;
        let add = parse_grants(add).map_err(invalid)?;
        let remove = parse_grants(remove).map_err(invalid)?;
        let mut after: Vec<Grant> = group.grants.iter().copied().filter(|g| !remove.contains(g)).collect();
        after.extend(add);
        after.sort();
        after.dedup();
        self.replace_grants(caller, tenant, group, after, None).await
    }

    /// Sets a custom group's grants to exactly `grants` (the console's checkboxes) and, with
    /// `new_name`, renames it in the same write: a refusal, or a name another group takes
    /// meanwhile, changes neither.
    pub async fn set_group_grants(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &str,
        grants: &[String],
        new_name: Option<&str>,
    ) -> ServiceResult<GroupRecord> {
        // Before anything is looked up: without the power, no answer tells which names are taken.
        caller.require_admin(tenant, AdminScope::UsersWrite)?;
        let group = self.custom_group(tenant, name, "given grants").await?;
        let grants = parse_grants(grants).map_err(invalid)?;
        let new_name = match new_name {
            Some(new_name) => {
                Some(self.free_name(tenant, &group, new_name).await?).filter(|n| n.as_str() != group.name)
            }
            None => None,
        };
        self.replace_grants(caller, tenant, group, grants, new_name).await
    }

    /// Replaces `group`'s grants with `after` and, with `rename`, its name, in one judged write.
    async fn replace_grants(
        &self,
        caller: &Caller,
        tenant: TenantId,
        group: GroupRecord,
        after: Vec<Grant>,
        rename: Option<GroupName>,
    ) -> ServiceResult<GroupRecord> {
        caller.require_admin(tenant, AdminScope::UsersWrite)?;
        let target = format!("group {}", group.name);
        let audit = caller.audit(tenant, "group.grants_changed", target.clone()).details(format!(
            "before: {}; after: {}",
            list(&group.grants),
            list(&after)
        ));
        let renamed =
            rename.as_ref().map(|new_name| (new_name.as_str(), renamed_audit(caller, tenant, &group, new_name)));
        self.judged(caller, tenant, &target, Affects::group(group.id), async |guard| {
            let rename = renamed.as_ref().map(|(name, audit)| (*name, audit));
            self.db().groups().set_grants(tenant, group.id, &after, rename, guard, &audit).await
        })
        .await?;
        self.forget_members(tenant, &group).await?;
        self.find_group(tenant, rename.as_ref().map_or(group.name.as_str(), GroupName::as_str)).await
    }

    /// Deletes a custom group. With members it is refused unless `force`, which removes the
    /// memberships (audited with the members' emails). Members of `User configurator`.
    pub async fn delete_group(&self, caller: &Caller, tenant: TenantId, name: &str, force: bool) -> ServiceResult<()> {
        caller.require_admin(tenant, AdminScope::UsersWrite)?;
        let view = self.group(caller, tenant, name).await?;
        if view.group.system.is_some() {
            return Err(ServiceError::Invalid(format!(
                "`{}` is a system group and cannot be deleted",
                view.group.name
            )));
        }
        let members = if view.members.is_empty() { "none".to_owned() } else { view.members.join(", ") };
        let target = format!("group {}", view.group.name);
        let audit = caller
            .audit(tenant, "group.deleted", target.clone())
            .details(format!("grants: {}; memberships removed: {members}", list(&view.group.grants)));
        let ids = self.db().groups().members(tenant, view.group.id).await?;
        // Removing memberships takes power away, but only a Supervisor changes a Supervisor.
        self.judged(caller, tenant, &target, Affects::group(view.group.id), async |guard| {
            self.db().groups().delete(tenant, view.group.id, force, guard, &audit).await
        })
        .await?;
        ids.into_iter().for_each(|id| self.inner.verifier.forget_user(id));
        Ok(())
    }

    async fn custom_group(&self, tenant: TenantId, name: &str, what: &str) -> ServiceResult<GroupRecord> {
        let group = self.find_group(tenant, name).await?;
        if group.system.is_some() {
            return Err(ServiceError::Invalid(format!(
                "`{}` is a system group: its meaning is fixed and it cannot be {what}",
                group.name
            )));
        }
        Ok(group)
    }

    /// Drops this process's cached permissions of every member at once (other processes follow
    /// the change feed).
    async fn forget_members(&self, tenant: TenantId, group: &GroupRecord) -> ServiceResult<()> {
        for user in self.db().groups().members(tenant, group.id).await? {
            self.inner.verifier.forget_user(user);
        }
        Ok(())
    }
}

/// The group called `name` among `known`, case-insensitively.
pub(crate) fn resolve<'a>(known: &'a [GroupRecord], name: &str) -> ServiceResult<&'a GroupRecord> {
    known.iter().find(|g| GroupName::same(&g.name, name)).ok_or_else(|| {
        let names: Vec<&str> = known.iter().map(|g| g.name.as_str()).collect();
        ServiceError::Invalid(format!("there is no group `{}`; the groups are: {}", name.trim(), names.join(", ")))
    })
}

/// The audit entry of `group` renamed to `new_name`.
fn renamed_audit(caller: &Caller, tenant: TenantId, group: &GroupRecord, new_name: &GroupName) -> AuditEntry {
    caller.audit(tenant, "group.renamed", format!("group {}", group.name)).details(format!(
        "before: {}; after: {}",
        group.name,
        new_name.as_str()
    ))
}

fn list(grants: &[Grant]) -> String {
    if grants.is_empty() {
        return "none".to_owned();
    }
    grants.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}
