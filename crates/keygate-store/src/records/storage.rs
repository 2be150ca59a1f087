//! What a tenant's records take, and the quota they stay within (DESIGN §7: a key that may write
//! its own records must not fill the disk). A record costs [`RECORD_ROW_UNITS`] plus the
//! characters of its custom properties, the one field that may be large (1 MB); its other fields
//! are short and capped, so the row cost covers them.
//!
//! The count lives in `record_storage`, one row per tenant and shard, and changes in the
//! transaction that writes the record: a write that would take the tenant past its quota is
//! refused there, with nothing written. The shard is the writing key's (`key % `[`STORAGE_SHARDS`]),
//! so that a tenant's concurrent writers do not all queue on one row; writers on different shards
//! may each see room for their own record at once, so a tenant can pass its quota by at most one
//! record per shard (16 × 1 MB).

/// What a record costs besides its custom properties: its row, indexes and short fields.
pub const RECORD_ROW_UNITS: i64 = 512;

/// Rows of `record_storage` per tenant.
pub const STORAGE_SHARDS: i64 = 16;

/// The quota a record write is held to: the tenant's limit, and the shard the write counts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageQuota {
    /// Units (see the module's header) the tenant's records may take at most.
    pub limit: i64,
    /// Usually the writing key's id; taken modulo [`STORAGE_SHARDS`].
    pub shard: i64,
}

impl StorageQuota {
    pub(crate) fn shard(self) -> i64 {
        self.shard.rem_euclid(STORAGE_SHARDS)
    }
}

/// Takes the write lock of the tenant's storage shard as the first statement of a record write's
/// transaction (`$tx`: `&mut *tx`): on SQLite a transaction that read first and then writes fails
/// at once when another writer committed in between, so the reads of a charge come after a write.
/// On PostgreSQL it row-locks the shard (one key's writes queue on it).
macro_rules! lock_storage {
    ($tx:expr, $tenant:expr, $quota:expr) => {{
        let tenant: keygate_domain::TenantId = $tenant;
        let quota: $crate::records::StorageQuota = $quota;
        sqlx::query("UPDATE record_storage SET used = used WHERE tenant_id = $1 AND shard = $2")
            .bind(tenant.0)
            .bind(quota.shard())
            .execute($tx)
            .await
            .map(|_| ())
    }};
}
pub(crate) use lock_storage;

/// Charges `$units` (negative: a refund) to tenant `$tenant`'s storage on `$quota`'s shard, inside
/// the transaction `$tx` (`&mut *tx`, evaluated at each use); a charge that would take the tenant past its limit is
/// [`crate::StoreError::Conflict`], naming what the records take.
macro_rules! charge_storage {
    ($tx:expr, $tenant:expr, $quota:expr, $units:expr) => {{
        let tenant: keygate_domain::TenantId = $tenant;
        let quota: $crate::records::StorageQuota = $quota;
        let units: i64 = $units;
        let mut refused = None;
        if units > 0 {
            let used: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) FROM record_storage WHERE tenant_id = $1",
            )
            .bind(tenant.0)
            .fetch_one($tx)
            .await?;
            if used.saturating_add(units) > quota.limit {
                refused = Some($crate::StoreError::Conflict(format!(
                    "the tenant's records take {used} of the {} storage units their quota allows \
                     (record_storage_per_tenant_mib; a record takes 512 units and the characters of its \
                     properties), and this write needs {units} more: nothing was written",
                    quota.limit
                )));
            }
        }
        match refused {
            Some(e) => Err(e),
            None if units == 0 => Ok(()),
            None => sqlx::query(
                "INSERT INTO record_storage (tenant_id, shard, used) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id, shard) DO UPDATE SET used = record_storage.used + excluded.used",
            )
            .bind(tenant.0)
            .bind(quota.shard())
            .bind(units)
            .execute($tx)
            .await
            .map(|_| ())
            .map_err($crate::StoreError::from),
        }
    }};
}
pub(crate) use charge_storage;
