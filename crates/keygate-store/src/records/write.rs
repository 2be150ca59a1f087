//! Writing records: insert (with its audit event and idempotency answer in one transaction),
//! update, the stored answer of an idempotency key, and bulk seeding for demo data.

use keygate_domain::{AuditEntry, TenantId, Timestamp, UnitId, views::Bound};

use super::{
    Records,
    bind::{bind_all, bind_fields},
    storage::{RECORD_ROW_UNITS, StorageQuota, charge_storage, lock_storage},
};
use crate::{StoreError, StoreResult, append_audit, on_pool, on_unique};

/// A validated value for one writable column.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// SQL NULL, typed so that PostgreSQL accepts it for the column.
    Null(SqlType),
    Bound(Bound),
}

/// The SQL type of a NULL being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Int,
    Float,
    Text,
    Bool,
}

/// A record write: the table and (column, value) pairs from the catalogue.
#[derive(Debug, Clone)]
pub struct RecordWrite {
    pub table: &'static str,
    pub fields: Vec<(&'static str, FieldValue)>,
}

impl Records<'_> {
    /// Inserts a record with its audit event and, when given, its idempotency answer, in one
    /// transaction, within the tenant's storage `quota` (512 units a record plus its properties'
    /// characters). A concurrent retry with the same idempotency key loses the race and gets
    /// [`StoreError::IdempotencyKeyTaken`].
    #[allow(clippy::too_many_arguments)]
    pub async fn insert(
        &self,
        tenant: TenantId,
        unit: UnitId,
        write: &RecordWrite,
        quota: StorageQuota,
        audit: &AuditEntry,
        idempotency: Option<Idempotency<'_>>,
        answer: impl Fn(i64) -> String,
    ) -> StoreResult<(i64, String)> {
        let units = RECORD_ROW_UNITS.saturating_add(properties_units(write).unwrap_or(0));
        let mut columns = vec!["tenant_id", "unit_id", "created_at"];
        let mut binds = vec![
            FieldValue::Bound(Bound::Int(tenant.0)),
            FieldValue::Bound(Bound::Int(unit.0)),
            FieldValue::Bound(Bound::Int(Timestamp::now().0)),
        ];
        for (c, v) in &write.fields {
            columns.push(c);
            binds.push(v.clone());
        }
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) RETURNING id",
            write.table,
            columns.join(", "),
            placeholders.join(", ")
        );
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            lock_storage!(&mut *tx, tenant, quota)?;
            charge_storage!(&mut *tx, tenant, quota, units)?;
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            q = bind_fields!(q, binds.iter());
            let id = q.fetch_one(&mut *tx).await.map_err(|e| on_unique(e, || "a record with the same number already exists".to_owned()))?;
            let body = answer(id);
            if let Some(idem) = idempotency {
                remember_answer!(&mut *tx, tenant, idem, &body)?;
            }
            let mut audit = audit.clone();
            audit.target = format!("{} {id}", write.table);
            append_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok((id, body))
        })
    }

    /// Updates the listed columns of record `id` in the tenant and unit, with its audit event,
    /// within the tenant's storage `quota` (new properties are charged what they add).
    pub async fn update(
        &self,
        tenant: TenantId,
        unit: UnitId,
        id: i64,
        write: &RecordWrite,
        quota: StorageQuota,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        if write.fields.is_empty() {
            return Ok(());
        }
        let sets: Vec<String> =
            write.fields.iter().enumerate().map(|(i, (c, _))| format!("{c} = ${}", i + 4)).collect();
        let sql =
            format!("UPDATE {} SET {} WHERE tenant_id = $1 AND unit_id = $2 AND id = $3", write.table, sets.join(", "));
        let old_properties = format!(
            "SELECT CAST(LENGTH(properties) AS BIGINT) FROM {} WHERE tenant_id = $1 AND unit_id = $2 AND id = $3",
            write.table
        );
        let new_properties = properties_units(write);
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            if let Some(new_units) = new_properties {
                lock_storage!(&mut *tx, tenant, quota)?;
                let old_units: Option<i64> = sqlx::query_scalar(&old_properties)
                    .bind(tenant.0)
                    .bind(unit.0)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(old_units) = old_units else {
                    return Err(StoreError::NotFound(format!("{} {id}", write.table)));
                };
                charge_storage!(&mut *tx, tenant, quota, new_units - old_units)?;
            }
            let mut q = sqlx::query(&sql).bind(tenant.0).bind(unit.0).bind(id);
            q = bind_fields!(q, write.fields.iter().map(|(_, v)| v));
            if q.execute(&mut *tx).await.map_err(|e| on_unique(e, || "a record with the same number already exists".to_owned()))?.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("{} {id}", write.table)));
            }
            let mut audit = audit.clone();
            audit.target = format!("{} {id}", write.table);
            append_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The stored answer for an idempotency key: (request hash, status, body).
    pub async fn idempotent_answer(
        &self,
        tenant: TenantId,
        key_id: i64,
        idem_key: &str,
    ) -> StoreResult<Option<(Vec<u8>, i64, String)>> {
        on_pool!(self.0, p => sqlx::query_as(
            "SELECT request_hash, status, response FROM idempotency_keys WHERE tenant_id = $1 AND key_id = $2 AND idem_key = $3",
        )
        .bind(tenant.0)
        .bind(key_id)
        .bind(idem_key)
        .fetch_optional(p)
        .await
        .map_err(Into::into))
    }

    /// Bulk insert without audit, for demo and benchmark data: one transaction per call, counted
    /// in the tenant's storage (the command line's seeding is held to no quota).
    pub async fn seed(&self, tenant: TenantId, unit: UnitId, writes: &[RecordWrite]) -> StoreResult<()> {
        let units = writes
            .iter()
            .map(|w| RECORD_ROW_UNITS.saturating_add(properties_units(w).unwrap_or(0)))
            .fold(0_i64, i64::saturating_add);
        let unlimited = StorageQuota { limit: i64::MAX, shard: 0 };
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            lock_storage!(&mut *tx, tenant, unlimited)?;
            charge_storage!(&mut *tx, tenant, unlimited, units)?;
            for write in writes {
                let mut columns = vec!["tenant_id", "unit_id", "created_at"];
                columns.extend(write.fields.iter().map(|(c, _)| *c));
                let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
                let sql = format!("INSERT INTO {} ({}) VALUES ({})", write.table, columns.join(", "), placeholders.join(", "));
                let mut q = sqlx::query(&sql).bind(tenant.0).bind(unit.0).bind(Timestamp::now().0);
                q = bind_fields!(q, write.fields.iter().map(|(_, v)| v));
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

/// Stores the answer `$body` (201) of a creation under idempotency key `$idem`, inside
/// transaction `$tx`; a key already taken is [`StoreError::IdempotencyKeyTaken`].
macro_rules! remember_answer {
    ($tx:expr, $tenant:expr, $idem:expr, $body:expr) => {{
        let idem: $crate::Idempotency<'_> = $idem;
        let body: &str = $body;
        sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, key_id, idem_key, request_hash, status, response, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($tenant.0)
        .bind(idem.key_id)
        .bind(idem.key)
        .bind(idem.request_hash.to_vec())
        .bind(201_i64)
        .bind(body)
        .bind(keygate_domain::Timestamp::now().0)
        .execute($tx)
        .await
        .map_err(|e| match $crate::on_unique(e, String::new) {
            $crate::StoreError::Conflict(_) => $crate::StoreError::IdempotencyKeyTaken,
            other => other,
        })
    }};
}
pub(crate) use remember_answer;

/// An idempotency key to record with a creation.
#[derive(Debug, Clone, Copy)]
pub struct Idempotency<'a> {
    pub key_id: i64,
    pub key: &'a str,
    pub request_hash: &'a [u8; 32],
}

/// The characters of the custom properties `write` sets, if it sets them: what a record's
/// properties take of the tenant's storage (see [`super::storage`]).
fn properties_units(write: &RecordWrite) -> Option<i64> {
    write.fields.iter().find(|(column, _)| *column == "properties").map(|(_, value)| match value {
        FieldValue::Bound(Bound::Text(text)) => i64::try_from(text.chars().count()).unwrap_or(i64::MAX),
        _ => 0,
    })
}
