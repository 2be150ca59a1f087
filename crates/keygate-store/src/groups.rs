//! Groups and their grants. Every query is scoped by tenant. A change of a group's grants changes
//! the permissions of every member, so it appends a change-feed row for each member in the same
//! transaction: their cached permissions are dropped on every node.

use keygate_domain::{AuditEntry, Grant, GroupId, TenantId, UserId};

use crate::{
    ChangeKind, Database, StoreError, StoreResult, append_audit,
    authz::{Guard, judged_write},
    on_pool, on_unique,
    rows::to_json,
    rows::{GroupRecord, GroupRow},
};

/// Group repository.
#[derive(Debug, Clone, Copy)]
pub struct Groups<'a>(&'a Database);

impl Database {
    pub fn groups(&self) -> Groups<'_> {
        Groups(self)
    }
}

fn grants_json(grants: &[Grant]) -> String {
    to_json(&grants.iter().map(ToString::to_string).collect::<Vec<_>>())
}

/// Appends a `user` change for every member of `group`, inside the transaction `$tx`.
macro_rules! members_changed {
    ($tx:expr, $group:expr) => {
        sqlx::query(
            "INSERT INTO changes (at, kind, entity_id) SELECT $1, $2, user_id FROM memberships WHERE group_id = $3",
        )
        .bind(keygate_domain::Timestamp::now().0)
        .bind(ChangeKind::User.as_str())
        .bind($group)
        .execute($tx)
        .await
    };
}

impl Groups<'_> {
    /// The tenant's groups, system groups first, then by name.
    pub async fn list(&self, tenant: TenantId) -> StoreResult<Vec<GroupRecord>> {
        let rows: Vec<GroupRow> = on_pool!(self.0, p => sqlx::query_as(
            "SELECT id, name, system, grants FROM user_groups WHERE tenant_id = $1 ORDER BY system IS NULL, name",
        )
        .bind(tenant.0)
        .fetch_all(p)
        .await)?;
        rows.into_iter().map(GroupRow::into_record).collect()
    }

    /// The members of a group, by user id.
    pub async fn members(&self, tenant: TenantId, group: GroupId) -> StoreResult<Vec<UserId>> {
        let ids: Vec<i64> = on_pool!(self.0, p => sqlx::query_scalar(
            "SELECT m.user_id FROM memberships m JOIN user_groups g ON g.id = m.group_id \
             WHERE g.tenant_id = $1 AND g.id = $2 ORDER BY m.user_id",
        )
        .bind(tenant.0)
        .bind(group.0)
        .fetch_all(p)
        .await)?;
        Ok(ids.into_iter().map(UserId).collect())
    }

    /// Creates a custom group granting `grants`.
    pub async fn create(
        &self,
        tenant: TenantId,
        name: &str,
        grants: &[Grant],
        audit: &AuditEntry,
    ) -> StoreResult<GroupId> {
        let grants = grants_json(grants);
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO user_groups (tenant_id, name, system, grants) VALUES ($1, $2, NULL, $3) RETURNING id",
            )
            .bind(tenant.0)
            .bind(name)
            .bind(grants)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| on_unique(e, || format!("a group named `{name}` already exists")))?;
            append_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(GroupId(id))
        })
    }

    /// Renames a custom group. System groups keep their names.
    pub async fn rename(&self, tenant: TenantId, group: GroupId, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query("UPDATE user_groups SET name = $3 WHERE tenant_id = $1 AND id = $2 AND system IS NULL")
                .bind(tenant.0)
                .bind(group.0)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(|e| on_unique(e, || format!("a group named `{name}` already exists")))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("the custom group {}", group.0)));
            }
            append_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Replaces a custom group's grants and, with `rename`, its name (and the audit entry of that),
    /// in one judged transaction: judged on what every member and their keys gain, and a name
    /// another group holds by then rolls the grants back too. Every member's cached permissions
    /// are dropped.
    pub async fn set_grants(
        &self,
        tenant: TenantId,
        group: GroupId,
        grants: &[Grant],
        rename: Option<(&str, &AuditEntry)>,
        guard: &Guard<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let grants = grants_json(grants);
        let name = rename.map(|(name, _)| name);
        judged_write!(self.0, tenant, guard, |tx| {
            let done = sqlx::query(
                "UPDATE user_groups SET grants = $3, name = COALESCE($4, name) \
                 WHERE tenant_id = $1 AND id = $2 AND system IS NULL",
            )
            .bind(tenant.0)
            .bind(group.0)
            .bind(grants)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| on_unique(e, || format!("a group named `{}` already exists", name.unwrap_or_default())))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("the custom group {}", group.0)));
            }
            members_changed!(&mut *tx, group.0)?;
            append_audit!(&mut *tx, audit)?;
            if let Some((_, renamed)) = rename {
                append_audit!(&mut *tx, renamed)?;
            }
            ((), None, None)
        })
    }

    /// Deletes a custom group. With members it is refused unless `force`, which removes the
    /// memberships in the same judged transaction (their permissions shrink on the next request).
    pub async fn delete(
        &self,
        tenant: TenantId,
        group: GroupId,
        force: bool,
        guard: &Guard<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        judged_write!(self.0, tenant, guard, |tx| {
            let found: Option<Option<String>> =
                sqlx::query_scalar("SELECT system FROM user_groups WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(group.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            match found {
                None => return Err(StoreError::NotFound(format!("group {}", group.0))),
                Some(Some(name)) => {
                    return Err(StoreError::Conflict(format!("`{name}` is a system group and cannot be deleted")));
                }
                Some(None) => {}
            }
            let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE group_id = $1")
                .bind(group.0)
                .fetch_one(&mut *tx)
                .await?;
            if members > 0 && !force {
                return Err(StoreError::Conflict(format!(
                    "the group has {members} member(s); remove them first, or delete with --force to remove the memberships too"
                )));
            }
            members_changed!(&mut *tx, group.0)?;
            sqlx::query("DELETE FROM memberships WHERE group_id = $1").bind(group.0).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM user_groups WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(group.0)
                .execute(&mut *tx)
                .await?;
            append_audit!(&mut *tx, audit)?;
            ((), None, None)
        })
    }
}
