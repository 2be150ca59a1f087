//! Users, groups and memberships. Every query is scoped by tenant except the key-owner lookup,
//! whose user id comes from a key record that already belongs to its tenant.

use keygate_domain::{
    AuditEntry, Email, GroupId, OwnerState, Permissions, PersonName, SystemGroup, TenantId, Timestamp, UnitId,
    UserCategory, UserId,
};

use crate::{
    ChangeKind, Database, StoreError, StoreResult, append_audit,
    authz::{Guard, judged_write},
    on_pool, on_unique, record_change,
    rows::{GroupRecord, GroupRow, units_from_json, units_to_json},
};

/// A user as stored, with the names of their groups. The password hash never leaves the store
/// except through `Users::login_record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub email: String,
    pub name: String,
    pub category: UserCategory,
    pub active: bool,
    pub has_password: bool,
    pub units: Option<Vec<UnitId>>,
    pub groups: Vec<String>,
    pub created_at: Timestamp,
}

#[derive(Debug)]
pub struct NewUser<'a> {
    pub tenant_id: TenantId,
    pub email: &'a Email,
    pub name: &'a PersonName,
    pub category: UserCategory,
    pub password_hash: Option<&'a str>,
    pub units: Option<Vec<UnitId>>,
    pub groups: &'a [GroupId],
    /// Whether the user can log in and their keys verify from the start.
    pub active: bool,
    /// The API's `Idempotency-Key`: the answer `{"id": …}` is stored with the user.
    pub idempotency: Option<crate::Idempotency<'a>>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    tenant_id: i64,
    email: String,
    name: String,
    category: String,
    active: bool,
    has_password: bool,
    units: Option<String>,
    created_at: i64,
}

const USER_COLUMNS: &str =
    "id, tenant_id, email, name, category, active, (password_hash IS NOT NULL) AS has_password, units, created_at";

/// Inserts memberships of user `$user` (an i64) in `$groups` (`&[GroupId]`, this tenant's only)
/// inside transaction `$tx` (`&mut tx`); yields the groups' names as they are in the transaction.
macro_rules! insert_memberships {
    ($tx:expr, $tenant:expr, $user:expr, $groups:expr) => {{
        let tenant: TenantId = $tenant;
        let groups: &[GroupId] = $groups;
        async {
            let mut names = Vec::with_capacity(groups.len());
            for group in groups {
                // The group must be this tenant's: the insert selects it by tenant.
                let done = sqlx::query(
                    "INSERT INTO memberships (user_id, group_id) SELECT $1, id FROM user_groups WHERE tenant_id = $2 AND id = $3",
                )
                .bind($user)
                .bind(tenant.0)
                .bind(group.0)
                .execute(&mut **$tx)
                .await
                .map_err(|e| on_unique(e, || format!("group {} is listed twice", group.0)))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("group {}", group.0)));
                }
                let name: String = sqlx::query_scalar("SELECT name FROM user_groups WHERE id = $1")
                    .bind(group.0)
                    .fetch_one(&mut **$tx)
                    .await?;
                names.push(name);
            }
            Ok::<_, StoreError>(names)
        }
        .await
    }};
}

/// User repository.
#[derive(Debug, Clone, Copy)]
pub struct Users<'a>(&'a Database);

impl Database {
    pub fn users(&self) -> Users<'_> {
        Users(self)
    }
}

impl Users<'_> {
    /// Creates a user and their memberships (groups by id, this tenant's only), judged on its
    /// outcome by `guard`. The audit row names the groups as they are in the transaction.
    pub async fn create(&self, new: NewUser<'_>, guard: &Guard<'_>, audit: &AuditEntry) -> StoreResult<UserId> {
        let category = new.category.as_str();
        let units = units_to_json(&new.units);
        judged_write!(self.0, new.tenant_id, guard, |tx| {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (tenant_id, email, name, category, active, password_hash, units, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(new.tenant_id.0)
            .bind(new.email.as_str())
            .bind(new.name.as_str())
            .bind(category)
            .bind(new.active)
            .bind(new.password_hash)
            .bind(units)
            .bind(Timestamp::now().0)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| {
                on_unique(e, || format!("a user with the email {} already exists in this tenant", new.email))
            })?;
            let names = insert_memberships!(&mut tx, new.tenant_id, id, new.groups)?;
            let mut audit = audit.clone();
            audit.details = format!("{}; groups: {}", audit.details, names_or_none(&names));
            append_audit!(&mut *tx, &audit)?;
            if let Some(idem) = new.idempotency {
                crate::records::remember_answer!(
                    &mut *tx,
                    new.tenant_id,
                    idem,
                    &serde_json::json!({ "id": id }).to_string()
                )?;
            }
            (UserId(id), Some(UserId(id)), None)
        })
    }

    pub async fn by_email(&self, tenant: TenantId, email: &Email) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND email = $2");
        let row: Option<UserRow> =
            on_pool!(self.0, p => sqlx::query_as(&sql).bind(tenant.0).bind(email.as_str()).fetch_optional(p).await)?;
        self.with_groups(row).await
    }

    pub async fn by_id(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2");
        let row: Option<UserRow> =
            on_pool!(self.0, p => sqlx::query_as(&sql).bind(tenant.0).bind(id.0).fetch_optional(p).await)?;
        self.with_groups(row).await
    }

    /// Every user of the tenant, programmatic users included, by email.
    pub async fn list(&self, tenant: TenantId) -> StoreResult<Vec<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY email");
        let rows: Vec<UserRow> = on_pool!(self.0, p => sqlx::query_as(&sql).bind(tenant.0).fetch_all(p).await)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(user) = self.with_groups(Some(row)).await? {
                out.push(user);
            }
        }
        Ok(out)
    }

    async fn with_groups(&self, row: Option<UserRow>) -> StoreResult<Option<UserRecord>> {
        let Some(row) = row else { return Ok(None) };
        let groups = self.groups_of(UserId(row.id)).await?;
        Ok(Some(UserRecord {
            id: UserId(row.id),
            tenant_id: TenantId(row.tenant_id),
            category: UserCategory::parse(&row.category)
                .map_err(|_| StoreError::Corrupt(format!("user {}: category", row.id)))?,
            email: row.email,
            name: row.name,
            active: row.active,
            has_password: row.has_password,
            units: units_from_json(row.units.as_deref())?,
            groups: groups.into_iter().map(|g| g.name).collect(),
            created_at: Timestamp(row.created_at),
        }))
    }

    async fn groups_of(&self, user: UserId) -> StoreResult<Vec<GroupRecord>> {
        let rows: Vec<GroupRow> = on_pool!(self.0, p => sqlx::query_as(
            "SELECT g.id, g.name, g.system, g.grants FROM memberships m JOIN user_groups g ON g.id = m.group_id \
             WHERE m.user_id = $1 ORDER BY g.name",
        )
        .bind(user.0)
        .fetch_all(p)
        .await)?;
        rows.into_iter().map(GroupRow::into_record).collect()
    }

    /// Activates or deactivates a user, judged on its outcome. Their keys follow on the next request.
    pub async fn set_active(
        &self,
        tenant: TenantId,
        user: UserId,
        active: bool,
        guard: &Guard<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        judged_write!(self.0, tenant, guard, |tx| {
            let done = sqlx::query("UPDATE users SET active = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(user.0)
                .bind(active)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
            record_change!(&mut *tx, ChangeKind::User, user.0)?;
            append_audit!(&mut *tx, audit)?;
            ((), None, None)
        })
    }

    /// Sets (or clears) a user's password hash and ends every console session of that user,
    /// judged on its outcome.
    pub async fn set_password_hash(
        &self,
        tenant: TenantId,
        user: UserId,
        hash: Option<&str>,
        guard: &Guard<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        judged_write!(self.0, tenant, guard, |tx| {
            let done = sqlx::query("UPDATE users SET password_hash = $3 WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(user.0)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
            sqlx::query("DELETE FROM console_sessions WHERE user_id = $1").bind(user.0).execute(&mut *tx).await?;
            append_audit!(&mut *tx, audit)?;
            ((), None, None)
        })
    }

    /// What a login needs: id, password hash (if any) and whether the user is active.
    pub async fn login_record(
        &self,
        tenant: TenantId,
        email: &Email,
    ) -> StoreResult<Option<(UserId, Option<String>, bool)>> {
        let row: Option<(i64, Option<String>, bool)> = on_pool!(self.0, p => sqlx::query_as(
            "SELECT id, password_hash, active FROM users WHERE tenant_id = $1 AND email = $2",
        )
        .bind(tenant.0)
        .bind(email.as_str())
        .fetch_optional(p)
        .await)?;
        Ok(row.map(|(id, hash, active)| (UserId(id), hash, active)))
    }

    /// The current state of a key's owner, with permissions computed from their groups.
    pub async fn owner_state(&self, user: UserId) -> StoreResult<Option<OwnerState>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = on_pool!(self.0, p => sqlx::query_as(&sql).bind(user.0).fetch_optional(p).await)?;
        let Some(row) = row else { return Ok(None) };
        let groups = self.groups_of(user).await?;
        let system: Vec<SystemGroup> = groups.iter().filter_map(|g| g.system).collect();
        let grants = groups.iter().flat_map(|g| g.grants.iter().copied());
        let category = UserCategory::parse(&row.category)
            .map_err(|_| StoreError::Corrupt(format!("user {}: category", row.id)))?;
        Ok(Some(OwnerState {
            id: user,
            tenant_id: TenantId(row.tenant_id),
            category,
            name: row.name,
            email: row.email,
            active: row.active,
            permissions: Permissions::of_user(&system, grants).with_own_records(category == UserCategory::Personal),
            units: units_from_json(row.units.as_deref())?,
        }))
    }

    /// Changes a user's groups (ids of this tenant's groups), units (`Some(None)`: every unit)
    /// and active flag in one judged transaction: all of it is written, or none.
    pub async fn update(
        &self,
        tenant: TenantId,
        user: UserId,
        change: &UserUpdate<'_>,
        guard: &Guard<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let units = change.units.as_ref().map(units_to_json);
        judged_write!(self.0, tenant, guard, |tx| {
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(user.0)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
            let mut audit = audit.clone();
            if let Some(groups) = change.groups {
                sqlx::query("DELETE FROM memberships WHERE user_id = $1").bind(user.0).execute(&mut *tx).await?;
                let names = insert_memberships!(&mut tx, tenant, user.0, groups)?;
                audit.details = format!("{}; groups now: {}", audit.details, names_or_none(&names));
            }
            if let Some(units) = &units {
                sqlx::query("UPDATE users SET units = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(user.0)
                    .bind(units)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(name) = change.name {
                sqlx::query("UPDATE users SET name = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(user.0)
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(category) = change.category {
                sqlx::query("UPDATE users SET category = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(user.0)
                    .bind(category.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(active) = change.active {
                sqlx::query("UPDATE users SET active = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.0)
                    .bind(user.0)
                    .bind(active)
                    .execute(&mut *tx)
                    .await?;
            }
            record_change!(&mut *tx, ChangeKind::User, user.0)?;
            append_audit!(&mut *tx, &audit)?;
            ((), None, None)
        })
    }
}

/// A change of a user's groups, units, active flag, name and category; `None` leaves a field as
/// it is.
#[derive(Debug, Default)]
pub struct UserUpdate<'a> {
    pub groups: Option<&'a [GroupId]>,
    /// `Some(None)`: every unit.
    pub units: Option<Option<Vec<UnitId>>>,
    pub active: Option<bool>,
    pub name: Option<&'a PersonName>,
    pub category: Option<UserCategory>,
}

/// Which users a page holds: those after `after` (by id), at most `limit`, filtered.
#[derive(Debug, Default, Clone)]
pub struct UserPageQuery {
    pub after: Option<UserId>,
    pub limit: u32,
    pub active: Option<bool>,
    pub category: Option<UserCategory>,
    /// Email or name contains this text (any case).
    pub contains: Option<String>,
}

impl Users<'_> {
    /// One page of the tenant's users by id, read with SQL `LIMIT` (the store never reads the
    /// whole tenant for a page), each with their groups (one more query for the page).
    pub async fn page(&self, tenant: TenantId, query: &UserPageQuery) -> StoreResult<Vec<UserRecord>> {
        let pattern = query.contains.as_deref().map(|text| {
            let escaped: String = text
                .to_lowercase()
                .chars()
                .flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] })
                .collect();
            format!("%{escaped}%")
        });
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id > $2 \
             AND ($3 IS NULL OR active = $3) AND ($4 IS NULL OR category = $4) \
             AND ($5 IS NULL OR LOWER(email) LIKE $5 ESCAPE '\\' OR LOWER(name) LIKE $5 ESCAPE '\\') \
             ORDER BY id LIMIT $6"
        );
        let rows: Vec<UserRow> = on_pool!(self.0, p => sqlx::query_as(&sql)
            .bind(tenant.0)
            .bind(query.after.map_or(i64::MIN, |u| u.0))
            .bind(query.active)
            .bind(query.category.map(UserCategory::as_str))
            .bind(pattern.as_deref())
            .bind(i64::from(query.limit))
            .fetch_all(p)
            .await)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // The page's ids as bound parameters ($2…$n+1, at most a page of them).
        let ids = (0..rows.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT m.user_id, g.name FROM memberships m JOIN user_groups g ON g.id = m.group_id \
             WHERE g.tenant_id = $1 AND m.user_id IN ({ids}) ORDER BY g.name"
        );
        let memberships: Vec<(i64, String)> = on_pool!(self.0, p => {
            let mut q = sqlx::query_as(&sql).bind(tenant.0);
            for row in &rows {
                q = q.bind(row.id);
            }
            q.fetch_all(p).await
        })?;
        rows.into_iter()
            .map(|row| {
                let groups = memberships.iter().filter(|(u, _)| *u == row.id).map(|(_, g)| g.clone()).collect();
                Ok(UserRecord {
                    id: UserId(row.id),
                    tenant_id: TenantId(row.tenant_id),
                    category: UserCategory::parse(&row.category)
                        .map_err(|_| StoreError::Corrupt(format!("user {}: category", row.id)))?,
                    email: row.email,
                    name: row.name,
                    active: row.active,
                    has_password: row.has_password,
                    units: units_from_json(row.units.as_deref())?,
                    groups,
                    created_at: Timestamp(row.created_at),
                })
            })
            .collect()
    }
}

fn names_or_none(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}
