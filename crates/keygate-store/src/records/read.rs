//! Reading records: a page of a view (SQLite through `sqlite_reader`, PostgreSQL through a
//! cursor fetched in batches sized from the room left), one record by id, and the lookups a write
//! checks its references with.

use futures_util::TryStreamExt as _;
use keygate_domain::{
    TenantId, UnitId,
    filter::{CmpOp, Expr, Value},
    views::{Bound, View},
};

use super::{
    Records,
    bind::bind_all,
    page::{PageRows, PageText, time_budget_spent},
    query::{Properties, RowShape, ViewQuery, Visibility},
    sql::{Sql, view_sql},
};
use crate::{Pool, StoreError, StoreResult, on_pool};

/// Rows the first `FETCH` of a PostgreSQL page asks for: enough for one round trip on pages of
/// small rows, few enough that rows of a megabyte are not rendered in vain.
const FIRST_FETCH: i64 = 16;

/// The next `FETCH` size: the rows still wanted, but no more than the room left would hold at
/// the size of the rows read so far (plus one, which tells whether more follow).
fn next_fetch(page: &PageText<'_>, wanted: i64, max_bytes: usize) -> i64 {
    let left = wanted - page.fetched();
    let average = (page.len() / usize::try_from(page.fetched().max(1)).unwrap_or(1)).max(1);
    let room = max_bytes.saturating_sub(page.len()) / average + 1;
    left.min(i64::try_from(room).unwrap_or(i64::MAX)).max(1)
}

/// Reads a PostgreSQL page from a cursor, in one read-only transaction whose statements each
/// have the page's time budget; the whole read is held to it too. Fetching stops once the page
/// is full, so PostgreSQL renders at most one batch more than the page holds.
async fn postgres_page(pool: &sqlx::PgPool, sql: &Sql, q: &ViewQuery<'_>) -> StoreResult<PageRows> {
    let started = std::time::Instant::now();
    // The budget is a number from keygate's own settings, never request input.
    let begin = match q.time_budget {
        Some(t) => format!("BEGIN READ ONLY; SET LOCAL statement_timeout = {}", t.as_millis().clamp(1, 1 << 31)),
        None => "BEGIN READ ONLY".to_owned(),
    };
    let mut tx = pool.begin_with(begin).await?;
    bind_all!(sqlx::query(&sql.text), &sql.binds).execute(&mut *tx).await?;
    let wanted = i64::from(q.limit) + 1;
    let mut page = PageText::new(q.limit, q.max_bytes, q.growth);
    let mut batch = FIRST_FETCH.min(wanted);
    'read: loop {
        if q.time_budget.is_some_and(|t| started.elapsed() >= t) {
            return Err(time_budget_spent());
        }
        // A number of our own; not prepared, since each size would be a statement of its own.
        let fetch = format!("FETCH {batch} FROM page");
        let mut rows = sqlx::query_as::<_, (i64, String)>(&fetch).persistent(false).fetch(&mut *tx);
        let mut got = 0;
        while let Some((id, obj)) = rows.try_next().await? {
            got += 1;
            if !page.push(id, &obj) {
                break 'read;
            }
        }
        if got < batch || page.fetched() >= wanted {
            break;
        }
        batch = next_fetch(&page, wanted, q.max_bytes);
    }
    tx.commit().await?;
    Ok(page.finish())
}

impl Records<'_> {
    /// A page of a view: at most `fetch` rows in id order.
    pub async fn query(&self, q: &ViewQuery<'_>) -> StoreResult<PageRows> {
        let sql = view_sql(q, self.0.backend())?;
        match (&self.0.pool, &self.0.sqlite_readers) {
            (Pool::Sqlite(_), Some(readers)) => {
                let properties = match q.shape.properties {
                    _ if !q.view.properties => None,
                    Properties::Omit => None,
                    Properties::All => Some(None),
                    Properties::Only(keys) => Some(Some(keys.to_vec())),
                };
                let shape = crate::sqlite_reader::Shape { columns: q.shape.columns.clone(), properties };
                let read = crate::sqlite_reader::PageRead {
                    limit: q.limit,
                    max_bytes: q.max_bytes,
                    time_budget: q.time_budget,
                    growth: q.growth.cloned(),
                };
                readers.page(sql.text, sql.binds, shape, read).await
            }
            (Pool::Postgres(p), _) => postgres_page(p, &sql, q).await,
            (Pool::Sqlite(_), None) => Err(StoreError::Corrupt("the SQLite database has no read connections".into())),
        }
    }

    /// One record of a view by id, if visible.
    pub async fn get(
        &self,
        view: &'static View,
        tenant: TenantId,
        unit: UnitId,
        visibility: Visibility,
        id: i64,
    ) -> StoreResult<Option<String>> {
        let filter = Expr::Compare { column: "id".into(), op: CmpOp::Eq, value: Value::Integer(id) };
        let shape = RowShape::full(view);
        let q = ViewQuery {
            view,
            tenant,
            unit,
            visibility,
            filter: Some(&filter),
            limit: 1,
            offset: 0,
            max_bytes: usize::MAX >> 2,
            after_id: None,
            shape: &shape,
            time_budget: None,
            growth: None,
        };
        let page = self.query(&q).await?;
        // `[{…}]` → `{…}`
        Ok((page.kept == 1).then(|| page.data.trim().trim_start_matches('[').trim_end_matches(']').to_owned()))
    }

    /// True when `table` has a row `id` in the tenant (and unit, when given): references in a
    /// write must never point into another tenant.
    pub async fn exists(&self, table: &'static str, tenant: TenantId, id: i64) -> StoreResult<bool> {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = $1 AND id = $2");
        let n: i64 = on_pool!(self.0, p => sqlx::query_scalar(&sql).bind(tenant.0).bind(id).fetch_one(p).await)?;
        Ok(n > 0)
    }

    /// The owner of record `id`, if it exists in the tenant and unit.
    pub async fn owner_of(
        &self,
        table: &'static str,
        tenant: TenantId,
        unit: UnitId,
        id: i64,
    ) -> StoreResult<Option<i64>> {
        let sql = format!("SELECT owner_id FROM {table} WHERE tenant_id = $1 AND unit_id = $2 AND id = $3");
        on_pool!(self.0, p => sqlx::query_scalar(&sql).bind(tenant.0).bind(unit.0).bind(id).fetch_optional(p).await.map_err(Into::into))
    }

    /// The highest id in `table` (0 when empty), to find the rows a seeding batch added.
    pub async fn max_id(&self, table: &'static str) -> StoreResult<i64> {
        let sql = format!("SELECT MAX(id) FROM {table}");
        let n: Option<i64> = on_pool!(self.0, p => sqlx::query_scalar(&sql).fetch_one(p).await)?;
        Ok(n.unwrap_or(0))
    }

    /// Ids of the tenant's rows in `table` and `unit` above `after`, for linking seeded rows.
    pub async fn ids_after(
        &self,
        table: &'static str,
        tenant: TenantId,
        unit: UnitId,
        after: i64,
    ) -> StoreResult<Vec<i64>> {
        let sql = format!("SELECT id FROM {table} WHERE tenant_id = $1 AND unit_id = $2 AND id > $3 ORDER BY id");
        on_pool!(self.0, p => sqlx::query_scalar(&sql).bind(tenant.0).bind(unit.0).bind(after).fetch_all(p).await.map_err(Into::into))
    }

    /// How many documents the tenant has (for numbering new ones).
    pub async fn count_documents(&self, tenant: TenantId) -> StoreResult<i64> {
        on_pool!(self.0, p => sqlx::query_scalar("SELECT COUNT(*) FROM documents WHERE tenant_id = $1")
            .bind(tenant.0).fetch_one(p).await.map_err(Into::into))
    }
}
