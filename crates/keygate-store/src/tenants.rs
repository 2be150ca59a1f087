//! Tenants, their units and their Public API settings.

use keygate_domain::{
    AuditEntry, Email, IpRanges, KeyId, PersonName, SystemGroup, TenantId, TenantPolicy, TenantSlug, Timestamp, UnitId,
    UserId,
};

use crate::{
    ChangeKind, Database, StoreError, StoreResult, append_audit, on_pool, on_unique, record_change,
    rows::{from_json, to_json},
};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub policy: TenantPolicy,
    pub created_at: Timestamp,
}

/// A new tenant together with its first administrator, created in one transaction.
#[derive(Debug)]
pub struct NewTenant<'a> {
    pub slug: &'a TenantSlug,
    pub name: &'a str,
    pub admin_email: &'a Email,
    pub admin_name: &'a PersonName,
    pub admin_password_hash: &'a str,
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: i64,
    slug: String,
    name: String,
    public_api: bool,
    ip_whitelist: String,
    max_key_lifetime_days: Option<i64>,
    rate_limit_per_minute: i64,
    created_at: i64,
}

const TENANT_COLUMNS: &str =
    "id, slug, name, public_api, ip_whitelist, max_key_lifetime_days, rate_limit_per_minute, created_at";

impl TenantRow {
    fn into_record(self, units: Vec<UnitId>) -> StoreResult<TenantRecord> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("tenant {}: {what}", self.id));
        Ok(TenantRecord {
            policy: TenantPolicy {
                id: TenantId(self.id),
                slug: TenantSlug::parse(&self.slug).map_err(|_| corrupt("slug"))?,
                name: self.name.clone(),
                public_api: self.public_api,
                ip_whitelist: IpRanges::parse(&from_json(&self.ip_whitelist, "whitelist")?)
                    .map_err(|_| corrupt("whitelist"))?,
                max_key_lifetime_days: self.max_key_lifetime_days.and_then(|d| u32::try_from(d).ok()),
                rate_limit_per_minute: u32::try_from(self.rate_limit_per_minute).unwrap_or(u32::MAX),
                units,
            },
            created_at: Timestamp(self.created_at),
        })
    }
}

/// Tenant repository.
#[derive(Debug, Clone, Copy)]
pub struct Tenants<'a>(&'a Database);

impl Database {
    pub fn tenants(&self) -> Tenants<'_> {
        Tenants(self)
    }
}

/// Who creates or deletes a unit, when not the command line: a user, or a key of that user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitActor {
    pub user: UserId,
    pub key: Option<KeyId>,
}

/// Refuses, inside transaction `$tx` and behind the tenant's lock, a unit written by an actor who
/// does not reach every unit (its user, and its key if any, list units): a unit outside one's
/// reach gives everyone who reaches every unit their grants there, so only someone who reaches
/// every unit creates or deletes one.
macro_rules! reaches_every_unit {
    ($tx:expr, $tenant:expr, $actor:expr, $verb:literal) => {{
        let tenant: TenantId = $tenant;
        let actor: Option<UnitActor> = $actor;
        let mut listed = false;
        if let Some(actor) = actor {
            let user: Option<Option<String>> =
                sqlx::query_scalar("SELECT units FROM users WHERE tenant_id = $1 AND id = $2 AND active = $3")
                    .bind(tenant.0)
                    .bind(actor.user.0)
                    .bind(true)
                    .fetch_optional(&mut *$tx)
                    .await?;
            listed |= !matches!(user, Some(None));
            if let Some(key) = actor.key {
                let key: Option<Option<String>> =
                    sqlx::query_scalar("SELECT units FROM api_keys WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.0)
                        .bind(key.0)
                        .fetch_optional(&mut *$tx)
                        .await?;
                listed |= !matches!(key, Some(None));
            }
        }
        if listed {
            Err(StoreError::Refused(keygate_domain::GrantExceedsActor {
                message: concat!(
                    "only someone who reaches every unit may ",
                    $verb,
                    " a unit (everyone who reaches every unit holds their grants in it): you reach some units only"
                )
                .to_owned(),
                lacking: Vec::new(),
            }))
        } else {
            Ok(())
        }
    }};
}

impl Tenants<'_> {
    /// Creates the tenant with unit 1, the three system groups, and an administrator in all three.
    /// Returns the tenant and the administrator's ids.
    pub async fn create(&self, new: NewTenant<'_>, audit: &AuditEntry) -> StoreResult<(TenantId, UserId)> {
        let now = Timestamp::now().0;
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            let tenant_id: i64 = sqlx::query_scalar(
                "INSERT INTO tenants (slug, name, public_api, ip_whitelist, created_at) VALUES ($1, $2, FALSE, $3, $4) RETURNING id",
            )
            .bind(new.slug.as_str())
            .bind(new.name)
            .bind(to_json(&IpRanges::any().to_strings()))
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| on_unique(e, || format!("a tenant with the slug `{}` already exists", new.slug)))?;
            sqlx::query("INSERT INTO units (tenant_id, unit_id, name) VALUES ($1, 1, 'Main unit')")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            let user_id: i64 = sqlx::query_scalar(
                "INSERT INTO users (tenant_id, email, name, category, active, password_hash, created_at) \
                 VALUES ($1, $2, $3, 'personal', TRUE, $4, $5) RETURNING id",
            )
            .bind(tenant_id)
            .bind(new.admin_email.as_str())
            .bind(new.admin_name.as_str())
            .bind(new.admin_password_hash)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            for group in SystemGroup::ALL {
                let group_id: i64 = sqlx::query_scalar(
                    "INSERT INTO user_groups (tenant_id, name, system) VALUES ($1, $2, $3) RETURNING id",
                )
                .bind(tenant_id)
                .bind(group.name())
                .bind(group.name())
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO memberships (user_id, group_id) VALUES ($1, $2)")
                    .bind(user_id)
                    .bind(group_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut audit = audit.clone();
            audit.tenant_id = Some(TenantId(tenant_id));
            append_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok((TenantId(tenant_id), UserId(user_id)))
        })
    }

    pub async fn by_slug(&self, slug: &TenantSlug) -> StoreResult<Option<TenantRecord>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1");
        let row: Option<TenantRow> =
            on_pool!(self.0, p => sqlx::query_as(&sql).bind(slug.as_str()).fetch_optional(p).await)?;
        self.with_units(row).await
    }

    pub async fn by_id(&self, id: TenantId) -> StoreResult<Option<TenantRecord>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
        let row: Option<TenantRow> = on_pool!(self.0, p => sqlx::query_as(&sql).bind(id.0).fetch_optional(p).await)?;
        self.with_units(row).await
    }

    pub async fn list(&self) -> StoreResult<Vec<TenantRecord>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY slug");
        let rows: Vec<TenantRow> = on_pool!(self.0, p => sqlx::query_as(&sql).fetch_all(p).await)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let units = self.units(TenantId(row.id)).await?;
            out.push(row.into_record(units.into_iter().map(|(id, _)| id).collect())?);
        }
        Ok(out)
    }

    async fn with_units(&self, row: Option<TenantRow>) -> StoreResult<Option<TenantRecord>> {
        match row {
            None => Ok(None),
            Some(row) => {
                let units = self.units(TenantId(row.id)).await?;
                row.into_record(units.into_iter().map(|(id, _)| id).collect()).map(Some)
            }
        }
    }

    /// The tenant's units, by number.
    pub async fn units(&self, tenant: TenantId) -> StoreResult<Vec<(UnitId, String)>> {
        let rows: Vec<(i64, String)> = on_pool!(self.0, p => sqlx::query_as(
            "SELECT unit_id, name FROM units WHERE tenant_id = $1 ORDER BY unit_id",
        )
        .bind(tenant.0)
        .fetch_all(p)
        .await)?;
        Ok(rows.into_iter().map(|(id, name)| (UnitId(id), name)).collect())
    }

    pub async fn create_unit(
        &self,
        tenant: TenantId,
        unit: UnitId,
        name: &str,
        actor: Option<UnitActor>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            crate::authz::lock_tenant!(&mut *tx, tenant)?;
            reaches_every_unit!(&mut *tx, tenant, actor, "create")?;
            sqlx::query("INSERT INTO units (tenant_id, unit_id, name) VALUES ($1, $2, $3)")
                .bind(tenant.0)
                .bind(unit.0)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(|e| on_unique(e, || format!("unit {unit} already exists")))?;
            record_change!(&mut *tx, ChangeKind::Tenant, tenant.0)?;
            append_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Renames a unit.
    pub async fn rename_unit(&self, tenant: TenantId, unit: UnitId, name: &str, audit: &AuditEntry) -> StoreResult<()> {
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query("UPDATE units SET name = $3 WHERE tenant_id = $1 AND unit_id = $2")
                .bind(tenant.0)
                .bind(unit.0)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("unit {unit}")));
            }
            append_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deletes a unit that holds no records and is not the tenant's last.
    pub async fn delete_unit(
        &self,
        tenant: TenantId,
        unit: UnitId,
        actor: Option<UnitActor>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            // The tenant's lock is the first statement, a write: the counts below are then read
            // under it (a read first would fail at once on SQLite when another writer got in
            // between, and two deletes could each see the other's unit still there).
            crate::authz::lock_tenant!(&mut *tx, tenant).map_err(|_: StoreError| StoreError::NotFound(format!("unit {unit}")))?;
            reaches_every_unit!(&mut *tx, tenant, actor, "delete")?;
            let records: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM companies WHERE tenant_id = $1 AND unit_id = $2) \
                      + (SELECT COUNT(*) FROM persons WHERE tenant_id = $1 AND unit_id = $2) \
                      + (SELECT COUNT(*) FROM jobs WHERE tenant_id = $1 AND unit_id = $2) \
                      + (SELECT COUNT(*) FROM tasks WHERE tenant_id = $1 AND unit_id = $2) \
                      + (SELECT COUNT(*) FROM documents WHERE tenant_id = $1 AND unit_id = $2) \
                      + (SELECT COUNT(*) FROM time_entries WHERE tenant_id = $1 AND unit_id = $2)",
            )
            .bind(tenant.0)
            .bind(unit.0)
            .fetch_one(&mut *tx)
            .await?;
            if records > 0 {
                return Err(StoreError::Conflict(format!("unit {unit} holds {records} record(s) and cannot be deleted")));
            }
            let units: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM units WHERE tenant_id = $1")
                .bind(tenant.0)
                .fetch_one(&mut *tx)
                .await?;
            let done = sqlx::query("DELETE FROM units WHERE tenant_id = $1 AND unit_id = $2")
                .bind(tenant.0)
                .bind(unit.0)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("unit {unit}")));
            }
            if units <= 1 {
                return Err(StoreError::Conflict(format!("unit {unit} is the tenant's only unit")));
            }
            record_change!(&mut *tx, ChangeKind::Tenant, tenant.0)?;
            append_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Switches the tenant's Public API on or off.
    pub async fn set_public_api(&self, tenant: TenantId, on: bool, audit: &AuditEntry) -> StoreResult<()> {
        self.update(tenant, "UPDATE tenants SET public_api = $2 WHERE id = $1", Value::Bool(on), audit).await
    }

    /// Replaces the tenant-wide API IP whitelist.
    pub async fn set_whitelist(&self, tenant: TenantId, ranges: &IpRanges, audit: &AuditEntry) -> StoreResult<()> {
        let json = to_json(&ranges.to_strings());
        self.update(tenant, "UPDATE tenants SET ip_whitelist = $2 WHERE id = $1", Value::Text(json), audit).await
    }

    /// Sets the longest lifetime a new key may have (`None`: no maximum).
    pub async fn set_max_key_lifetime(
        &self,
        tenant: TenantId,
        days: Option<u32>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let days = days.map(i64::from);
        self.update(tenant, "UPDATE tenants SET max_key_lifetime_days = $2 WHERE id = $1", Value::OptInt(days), audit)
            .await
    }

    /// Sets the default per-key rate limit, in requests per minute.
    pub async fn set_rate_limit(&self, tenant: TenantId, per_minute: u32, audit: &AuditEntry) -> StoreResult<()> {
        let value = Value::OptInt(Some(i64::from(per_minute)));
        self.update(tenant, "UPDATE tenants SET rate_limit_per_minute = $2 WHERE id = $1", value, audit).await
    }

    async fn update(&self, tenant: TenantId, sql: &'static str, value: Value, audit: &AuditEntry) -> StoreResult<()> {
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            let q = sqlx::query(sql).bind(tenant.0);
            let q = match value {
                Value::Bool(b) => q.bind(b),
                Value::Text(t) => q.bind(t),
                Value::OptInt(i) => q.bind(i),
            };
            let done = q.execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("tenant {tenant}")));
            }
            record_change!(&mut *tx, ChangeKind::Tenant, tenant.0)?;
            append_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }
}

/// A change of a tenant's Public API settings; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct SettingsUpdate {
    pub public_api: Option<bool>,
    pub ip_whitelist: Option<IpRanges>,
    pub rate_limit_per_minute: Option<u32>,
    /// `Some(None)`: no maximum.
    pub max_key_lifetime_days: Option<Option<u32>>,
}

impl Tenants<'_> {
    /// Writes every given setting and its audit rows in one transaction: all of them, or none.
    pub async fn update_settings(
        &self,
        tenant: TenantId,
        change: &SettingsUpdate,
        audits: &[AuditEntry],
    ) -> StoreResult<()> {
        let whitelist = change.ip_whitelist.as_ref().map(|r| to_json(&r.to_strings()));
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            // The tenant's lock is the first statement, a write (a read first would fail at once
            // on SQLite when another writer got in between).
            crate::authz::lock_tenant!(&mut *tx, tenant).map_err(|_: StoreError| StoreError::NotFound(format!("tenant {tenant}")))?;
            if let Some(on) = change.public_api {
                sqlx::query("UPDATE tenants SET public_api = $2 WHERE id = $1").bind(tenant.0).bind(on).execute(&mut *tx).await?;
            }
            if let Some(json) = &whitelist {
                sqlx::query("UPDATE tenants SET ip_whitelist = $2 WHERE id = $1")
                    .bind(tenant.0)
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(n) = change.rate_limit_per_minute {
                sqlx::query("UPDATE tenants SET rate_limit_per_minute = $2 WHERE id = $1")
                    .bind(tenant.0)
                    .bind(i64::from(n))
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(days) = change.max_key_lifetime_days {
                sqlx::query("UPDATE tenants SET max_key_lifetime_days = $2 WHERE id = $1")
                    .bind(tenant.0)
                    .bind(days.map(i64::from))
                    .execute(&mut *tx)
                    .await?;
            }
            record_change!(&mut *tx, ChangeKind::Tenant, tenant.0)?;
            for audit in audits {
                append_audit!(&mut *tx, audit)?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

enum Value {
    Bool(bool),
    Text(String),
    OptInt(Option<i64>),
}
