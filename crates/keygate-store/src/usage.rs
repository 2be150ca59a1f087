//! Per-key, per-day call counters, written behind in batches by the service layer.

use keygate_domain::{KeyId, TenantId};

use crate::{Database, StoreResult, on_pool};

/// Calls of one key on one UTC day (days since 1970-01-01) with one outcome
/// (`accepted` or a refusal code).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DailyCount {
    pub key_id: i64,
    pub day: i64,
    pub outcome: String,
    pub count: i64,
}

/// Usage repository.
#[derive(Debug, Clone, Copy)]
pub struct Usage<'a>(&'a Database);

impl Database {
    pub fn usage(&self) -> Usage<'_> {
        Usage(self)
    }
}

impl Usage<'_> {
    /// Adds a batch of counts in one transaction (an UPSERT both engines understand).
    pub async fn add_daily(&self, batch: &[DailyCount]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            // The rows come from a map, so no (key, day, outcome) is twice in one statement
            // (PostgreSQL refuses to update a row twice in one INSERT … ON CONFLICT).
            for chunk in batch.chunks(crate::ROWS_PER_STATEMENT) {
                // Counts of a key whose tenant was removed meanwhile are dropped, not a failed batch.
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO key_usage_daily (key_id, day, outcome, count) \
                     SELECT column1, column2, column3, column4 FROM (",
                );
                q.push_values(chunk, |mut row, c| {
                    row.push_bind(c.key_id).push_bind(c.day).push_bind(c.outcome.as_str()).push_bind(c.count);
                });
                q.push(") AS v WHERE EXISTS (SELECT 1 FROM api_keys k WHERE k.id = v.column1)");
                q.push(" ON CONFLICT (key_id, day, outcome) DO UPDATE SET count = key_usage_daily.count + excluded.count");
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The counts of the tenant's keys from `since_day` on, by key and day.
    pub async fn daily_for_tenant(&self, tenant: TenantId, since_day: i64) -> StoreResult<Vec<DailyCount>> {
        on_pool!(self.0, p => sqlx::query_as::<_, DailyCount>(
            "SELECT d.key_id, d.day, d.outcome, d.count FROM key_usage_daily d JOIN api_keys k ON k.id = d.key_id \
             WHERE k.tenant_id = $1 AND d.day >= $2 ORDER BY d.key_id, d.day, d.outcome",
        )
        .bind(tenant.0)
        .bind(since_day)
        .fetch_all(p)
        .await
        .map_err(Into::into))
    }

    /// One key's counts from `since_day` on.
    pub async fn daily_for_key(&self, tenant: TenantId, key: KeyId, since_day: i64) -> StoreResult<Vec<DailyCount>> {
        on_pool!(self.0, p => sqlx::query_as::<_, DailyCount>(
            "SELECT d.key_id, d.day, d.outcome, d.count FROM key_usage_daily d JOIN api_keys k ON k.id = d.key_id \
             WHERE k.tenant_id = $1 AND d.key_id = $2 AND d.day >= $3 ORDER BY d.day, d.outcome",
        )
        .bind(tenant.0)
        .bind(key.0)
        .bind(since_day)
        .fetch_all(p)
        .await
        .map_err(Into::into))
    }
}
