//! The operator plane's storage (issue 21): operator credentials (only their digests), the
//! tenant listing operators page through, pending tenant removals (one-time confirmations, only
//! their digests), and removing a tenant's data from every table in one transaction.
//!
//! Bounds: at most [`MAX_OPERATORS`] credentials exist (a revoked one's row is deleted); at most
//! [`MAX_PENDING_REMOVALS`] removals are pending at once, one per tenant (expired ones are pruned
//! whenever one is asked for).

use keygate_domain::{AuditEntry, KeyDigest, OperatorId, TenantId, Timestamp};

use crate::{ChangeKind, Database, StoreError, StoreResult, append_audit, on_pool, on_unique, record_change};

/// The most operator credentials that may exist at once.
pub const MAX_OPERATORS: i64 = 100;

/// The most tenant removals that may be pending (asked for, not confirmed, not expired) at once.
pub const MAX_PENDING_REMOVALS: i64 = 100;

/// An operator credential as stored: everything but the secret, of which only the digest is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub id: OperatorId,
    pub name: String,
    /// `kgop_XX…YYYY`.
    pub display: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct OperatorRow {
    id: i64,
    name: String,
    display: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<OperatorRow> for OperatorRecord {
    fn from(r: OperatorRow) -> Self {
        Self {
            id: OperatorId(r.id),
            name: r.name,
            display: r.display,
            created_at: Timestamp(r.created_at),
            last_used_at: r.last_used_at.map(Timestamp),
        }
    }
}

/// A tenant as the operator plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantSummary {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub public_api: bool,
    pub created_at: i64,
}

/// Operator repository.
#[derive(Debug, Clone, Copy)]
pub struct Operators<'a>(&'a Database);

impl Database {
    pub fn operators(&self) -> Operators<'_> {
        Operators(self)
    }
}

/// Tables whose rows name their tenant, deleted in this order (children before parents); any
/// other table with a `tenant_id` column (a newer one) is emptied of the tenant first.
const TENANT_TABLES: [&str; 13] = [
    "idempotency_keys",
    "console_sessions",
    "tenant_removals",
    "time_entries",
    "documents",
    "tasks",
    "persons",
    "jobs",
    "companies",
    "api_keys",
    "user_groups",
    "users",
    "units",
];

impl Operators<'_> {
    /// Stores a new credential by its digest; `Conflict` when [`MAX_OPERATORS`] exist already.
    pub async fn issue(
        &self,
        name: &str,
        digest: &KeyDigest,
        display: &str,
        audit: &AuditEntry,
    ) -> StoreResult<OperatorRecord> {
        let now = Timestamp::now().0;
        on_pool!(self.0, p => {
            // One statement that counts and inserts: the transaction's first statement is a
            // write, so SQLite takes its write lock before reading (a read first fails at once
            // with SQLITE_BUSY when another writer got in between).
            let mut tx = p.begin().await?;
            let row: Option<OperatorRow> = sqlx::query_as(
                "INSERT INTO operators (name, digest, display, created_at) \
                 SELECT $1, $2, $3, $4 WHERE (SELECT COUNT(*) FROM operators) < $5 \
                 RETURNING id, name, display, created_at, last_used_at",
            )
            .bind(name)
            .bind(digest.as_bytes().as_slice())
            .bind(display)
            .bind(now)
            .bind(MAX_OPERATORS)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| on_unique(e, || "this credential exists already".to_owned()))?;
            let Some(row) = row else {
                return Err(StoreError::Conflict(format!(
                    "{MAX_OPERATORS} operator credentials exist, the most there may be; revoke one first"
                )));
            };
            let mut audit = audit.clone();
            audit.target = format!("operator {} ({})", row.name, row.id);
            append_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok(row.into())
        })
    }

    /// Every credential, oldest first (at most [`MAX_OPERATORS`]).
    pub async fn list(&self) -> StoreResult<Vec<OperatorRecord>> {
        let rows: Vec<OperatorRow> = on_pool!(self.0, p => sqlx::query_as(
            "SELECT id, name, display, created_at, last_used_at FROM operators ORDER BY id",
        )
        .fetch_all(p)
        .await)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The credential with this digest (the lookup compares whole digests in the database's index).
    pub async fn by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<OperatorRecord>> {
        let row: Option<OperatorRow> = on_pool!(self.0, p => sqlx::query_as(
            "SELECT id, name, display, created_at, last_used_at FROM operators WHERE digest = $1",
        )
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(p)
        .await)?;
        Ok(row.map(Into::into))
    }

    /// Notes a use of the credential.
    pub async fn used(&self, id: OperatorId, at: Timestamp) -> StoreResult<()> {
        on_pool!(self.0, p => sqlx::query("UPDATE operators SET last_used_at = $2 WHERE id = $1")
            .bind(id.0)
            .bind(at.0)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Deletes the credential (refused from then on); `NotFound` when there is none with this id.
    pub async fn revoke(&self, id: OperatorId, audit: &AuditEntry) -> StoreResult<OperatorRecord> {
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            let row: Option<OperatorRow> = sqlx::query_as(
                "DELETE FROM operators WHERE id = $1 RETURNING id, name, display, created_at, last_used_at",
            )
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Err(StoreError::NotFound(format!("operator credential {id}"))) };
            let mut audit = audit.clone();
            audit.target = format!("operator {} ({})", row.name, row.id);
            append_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok(row.into())
        })
    }

    /// Tenants by slug after `after` (exclusive), at most `limit` of them.
    pub async fn tenants(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<TenantSummary>> {
        let rows = on_pool!(self.0, p => sqlx::query_as(
            "SELECT id, slug, name, public_api, created_at FROM tenants WHERE ($1 IS NULL OR slug > $1) \
             ORDER BY slug LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(p)
        .await)?;
        Ok(rows)
    }

    /// Stores the digest of the tenant's removal confirmation, valid until `expires_at` (replacing
    /// any earlier one of the tenant). Expired ones are pruned first; `Conflict` when
    /// [`MAX_PENDING_REMOVALS`] of other tenants are pending.
    pub async fn request_removal(
        &self,
        tenant: TenantId,
        digest: &KeyDigest,
        operator: OperatorId,
        expires_at: Timestamp,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let now = Timestamp::now().0;
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM tenant_removals WHERE expires_at <= $1").bind(now).execute(&mut *tx).await?;
            let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenant_removals WHERE tenant_id <> $1")
                .bind(tenant.0)
                .fetch_one(&mut *tx)
                .await?;
            if pending >= MAX_PENDING_REMOVALS {
                return Err(StoreError::Conflict(format!(
                    "{pending} tenant removals are pending, the most there may be ({MAX_PENDING_REMOVALS}); \
                     confirm them or let them expire"
                )));
            }
            sqlx::query("DELETE FROM tenant_removals WHERE tenant_id = $1").bind(tenant.0).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO tenant_removals (tenant_id, digest, operator_id, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(tenant.0)
                .bind(digest.as_bytes().as_slice())
                .bind(operator.0)
                .bind(expires_at.0)
                .execute(&mut *tx)
                .await?;
            append_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Removes the tenant and every row of it, in every table, in one transaction, if `digest` is
    /// the digest of its pending confirmation and that has not expired at `now`; otherwise
    /// `Conflict` and nothing is written. Appends a change-feed row (every node forgets the tenant,
    /// so its keys are refused) and `audit` (outside any tenant). Returns the rows deleted.
    pub async fn remove_tenant(
        &self,
        tenant: TenantId,
        digest: &KeyDigest,
        now: Timestamp,
        audit: &AuditEntry,
    ) -> StoreResult<u64> {
        let discovered = self.tenant_tables().await?;
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            // The tenant's lock first (a write: SQLite's write lock, PostgreSQL's row lock), so
            // that a confirmation is used once even by two requests at the same time.
            crate::authz::lock_tenant!(&mut *tx, tenant)?;
            let pending: Option<(Vec<u8>, i64)> =
                sqlx::query_as("SELECT digest, expires_at FROM tenant_removals WHERE tenant_id = $1")
                    .bind(tenant.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            let valid = pending.is_some_and(|(stored, expires_at)| {
                KeyDigest::from_slice(&stored).is_some_and(|s| s == *digest) && now.0 < expires_at
            });
            if !valid {
                return Err(StoreError::Conflict(
                    "the confirmation is not valid: it is wrong, has expired or was used already; \
                     ask for a new one with POST …/removal"
                        .to_owned(),
                ));
            }
            let mut deleted = 0;
            deleted += sqlx::query("DELETE FROM key_usage_daily WHERE key_id IN (SELECT id FROM api_keys WHERE tenant_id = $1)")
                .bind(tenant.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            deleted += sqlx::query(
                "DELETE FROM memberships WHERE user_id IN (SELECT id FROM users WHERE tenant_id = $1)",
            )
            .bind(tenant.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let newer = discovered.iter().filter(|t| !TENANT_TABLES.contains(&t.as_str()) && t.as_str() != "audit_events");
            for table in newer.map(String::as_str).chain(TENANT_TABLES) {
                let sql = format!("DELETE FROM \"{table}\" WHERE tenant_id = $1");
                deleted += sqlx::query(&sql).bind(tenant.0).execute(&mut *tx).await?.rows_affected();
            }
            // The audit log is append-only; this transaction declares a cutoff the trigger lets
            // pass, deletes only this tenant's rows, and removes the cutoff before it commits.
            sqlx::query("INSERT INTO audit_prune (before) VALUES ($1)").bind(i64::MAX).execute(&mut *tx).await?;
            deleted += sqlx::query("DELETE FROM audit_events WHERE tenant_id = $1")
                .bind(tenant.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM audit_prune").execute(&mut *tx).await?;
            deleted += sqlx::query("DELETE FROM tenants WHERE id = $1").bind(tenant.0).execute(&mut *tx).await?.rows_affected();
            record_change!(&mut *tx, ChangeKind::Tenant, tenant.0)?;
            append_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(deleted)
        })
    }

    /// How many rows of the tenant each table holds (tables with a `tenant_id` column, and the
    /// memberships and daily counts of its users and keys). After a removal every count is 0.
    pub async fn rows_of_tenant(&self, tenant: TenantId) -> StoreResult<Vec<(String, i64)>> {
        let mut counts = Vec::new();
        let mut queries: Vec<(String, String)> = self
            .tenant_tables()
            .await?
            .into_iter()
            .map(|t| (t.clone(), format!("SELECT COUNT(*) FROM \"{t}\" WHERE tenant_id = $1")))
            .collect();
        queries.push((
            "memberships".into(),
            "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.tenant_id = $1".into(),
        ));
        queries.push((
            "key_usage_daily".into(),
            "SELECT COUNT(*) FROM key_usage_daily d JOIN api_keys k ON k.id = d.key_id WHERE k.tenant_id = $1".into(),
        ));
        queries.push(("tenants".into(), "SELECT COUNT(*) FROM tenants WHERE id = $1".into()));
        for (table, sql) in queries {
            let n: i64 = on_pool!(self.0, p => sqlx::query_scalar(&sql).bind(tenant.0).fetch_one(p).await)?;
            counts.push((table, n));
        }
        Ok(counts)
    }

    /// Every table with a `tenant_id` column, from the database's own catalogue (names of
    /// letters, digits and underscores only).
    async fn tenant_tables(&self) -> StoreResult<Vec<String>> {
        let names: Vec<String> = on_pool!(self.0, p => match self.0.backend() {
            crate::Backend::Sqlite => sqlx::query_scalar(
                "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c \
                 WHERE m.type = 'table' AND c.name = 'tenant_id' ORDER BY m.name",
            )
            .fetch_all(p)
            .await,
            crate::Backend::Postgres => sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND column_name = 'tenant_id' ORDER BY 1",
            )
            .fetch_all(p)
            .await,
        })?;
        Ok(names
            .into_iter()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .collect())
    }
}
