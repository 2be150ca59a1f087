//! Business records behind the data API: views (filtered, paged reads) and record writes.
//!
//! SQL text here is assembled only from catalogue constants (`keygate_domain::views`) and `$n`
//! placeholders; every value a client sent is bound, never spliced.
//!
//! A page is cut at its byte cap *while* its rows are read, on both engines: SQLite steps the
//! statement row by row (`sqlite_reader`), PostgreSQL reads a cursor in batches sized from the
//! room left, so neither the database nor keygate ever renders more than the page can hold.
//! Each page also runs under a time budget (`statement_timeout`, SQLite's progress handler).

use std::{sync::Arc, time::Duration};

use futures_util::TryStreamExt as _;
use keygate_domain::{
    AuditEntry, TenantId, Timestamp, UnitId, UserId,
    filter::{CmpOp, Expr, Value},
    views::{Bound, Column, ColumnType, View, bind_value},
};

use crate::{Backend, Database, Pool, StoreError, StoreResult, append_audit, on_pool, on_unique};

/// Whose records a read may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Visibility {
    All,
    /// Only records whose owner column is this user.
    Own(UserId),
}

/// Asked before a page's text grows, with the bytes it would then hold; `false` ends the page
/// where it is (the rows read so far), so that concurrent pages share one memory budget.
pub type PageGrowth = Arc<dyn Fn(usize) -> bool + Send + Sync>;

/// One page request against a view.
#[derive(Clone, Copy)]
pub struct ViewQuery<'a> {
    pub view: &'static View,
    pub tenant: TenantId,
    pub unit: UnitId,
    pub visibility: Visibility,
    pub filter: Option<&'a Expr>,
    /// Rows per page.
    pub limit: u32,
    pub offset: u64,
    /// The most bytes the page's `data` array may take; rows that would pass it are left out.
    pub max_bytes: usize,
    /// Keyset continuation: rows with an id above this one (then `offset` is not applied).
    pub after_id: Option<i64>,
    /// Which columns and properties each row carries.
    pub shape: &'a RowShape<'a>,
    /// How long reading the page may take; past it the read fails with
    /// [`StoreError::is_query_timeout`]. `None`: no budget.
    pub time_budget: Option<Duration>,
    /// The memory the page may take, asked for as it grows; `None`: only `max_bytes` bounds it.
    pub growth: Option<&'a PageGrowth>,
}

impl std::fmt::Debug for ViewQuery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewQuery")
            .field("view", &self.view.name)
            .field("tenant", &self.tenant)
            .field("unit", &self.unit)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("max_bytes", &self.max_bytes)
            .field("time_budget", &self.time_budget)
            .finish_non_exhaustive()
    }
}

/// The SQLSTATE PostgreSQL gives a statement stopped by `statement_timeout` (`query_canceled`);
/// a SQLite page stopped by its progress handler is reported with the same code.
const QUERY_CANCELED: &str = "57014";

/// A SQLite page read stopped by its time budget, as a database error with PostgreSQL's code.
#[derive(Debug)]
struct TimeBudgetSpent;

impl std::fmt::Display for TimeBudgetSpent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the page read ran past its time budget")
    }
}

impl std::error::Error for TimeBudgetSpent {}

impl sqlx::error::DatabaseError for TimeBudgetSpent {
    fn message(&self) -> &str {
        "the page read ran past its time budget"
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(QUERY_CANCELED.into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

/// The error of a page read stopped by its time budget.
pub(crate) fn time_budget_spent() -> StoreError {
    StoreError::Database(sqlx::Error::Database(Box::new(TimeBudgetSpent)))
}

impl StoreError {
    /// Whether a read was stopped by its time budget (PostgreSQL's `statement_timeout`, the
    /// SQLite reader's progress handler).
    pub fn is_query_timeout(&self) -> bool {
        match self {
            Self::Database(e) => e.as_database_error().and_then(|d| d.code()).as_deref() == Some(QUERY_CANCELED),
            _ => false,
        }
    }
}

/// A page's rows gathered into one JSON array while they fit: the row limit, the byte cap, and
/// the memory the page is given. `push` says when to stop reading.
pub(crate) struct PageText<'g> {
    data: String,
    /// Bytes the page was given so far (what `data` may grow to without asking).
    held: usize,
    fetched: i64,
    kept: i64,
    last_id: Option<i64>,
    limit: u32,
    max_bytes: usize,
    growth: Option<&'g PageGrowth>,
}

impl<'g> PageText<'g> {
    /// The least a page asks for at once: small pages ask once.
    const FIRST_ASK: usize = 64 * 1024;

    pub(crate) fn new(limit: u32, max_bytes: usize, growth: Option<&'g PageGrowth>) -> Self {
        Self { data: String::new(), held: 0, fetched: 0, kept: 0, last_id: None, limit, max_bytes, growth }
    }

    /// Rows read so far.
    pub(crate) fn fetched(&self) -> i64 {
        self.fetched
    }

    /// Bytes gathered so far.
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// Adds row `id` rendered as `row` if it fits; `false` when the page is complete and no
    /// further row need be read (the row was counted: it tells that more rows follow).
    pub(crate) fn push(&mut self, id: i64, row: &str) -> bool {
        self.fetched += 1;
        if self.kept >= i64::from(self.limit) {
            return false;
        }
        // `[`, the separator and `]`.
        let need = self.data.len() + row.len() + 2 + usize::from(self.kept == 0);
        if need > self.max_bytes {
            return false;
        }
        if need > self.held {
            let ask = need.max(self.held.saturating_mul(2)).max(Self::FIRST_ASK).min(self.max_bytes);
            if let Some(grow) = self.growth
                && !grow(ask)
            {
                return false;
            }
            self.data.reserve_exact(ask.saturating_sub(self.data.len()));
            self.held = ask;
        }
        self.data.push(if self.kept == 0 { '[' } else { ',' });
        self.data.push_str(row);
        self.kept += 1;
        self.last_id = Some(id);
        true
    }

    pub(crate) fn finish(mut self) -> PageRows {
        if self.kept == 0 {
            self.data.push('[');
        }
        self.data.push(']');
        PageRows { fetched: self.fetched, kept: self.kept, last_id: self.last_id, data: self.data }
    }
}

/// The columns of a rendered row, and which custom properties it carries.
#[derive(Debug, Clone)]
pub struct RowShape<'a> {
    pub columns: Vec<&'static Column>,
    pub properties: Properties<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Properties<'a> {
    /// No `properties` member.
    Omit,
    /// Every property, as stored.
    All,
    /// Only these keys.
    Only(&'a [String]),
}

impl RowShape<'static> {
    /// Every column of the view, and every property when it has them.
    pub fn full(view: &'static View) -> Self {
        Self {
            columns: view.columns.iter().collect(),
            properties: if view.properties { Properties::All } else { Properties::Omit },
        }
    }
}

/// A SQL text with its bound values, numbered from `$1`.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bound>,
}

impl Sql {
    fn push_bind(&mut self, b: Bound) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
}

/// Compiles a checked filter into `sql`. The filter must have passed `check_filter` for `view`;
/// anything unexpected is an error, not a guess.
pub(crate) fn compile(expr: &Expr, view: &View, backend: Backend, sql: &mut Sql) -> StoreResult<()> {
    let column = |name: &str| -> StoreResult<&'static Column> {
        view.column(name).ok_or_else(|| StoreError::Conflict(format!("unknown column {name}")))
    };
    let bind = |c: &Column, v: &Value| bind_value(c, v).map_err(|e| StoreError::Conflict(e.to_string()));
    match expr {
        Expr::Or(items) | Expr::And(items) => {
            let joiner = if matches!(expr, Expr::Or(_)) { " OR " } else { " AND " };
            sql.text.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql.text.push_str(joiner);
                }
                compile(item, view, backend, sql)?;
            }
            sql.text.push(')');
        }
        Expr::Not(inner) => {
            sql.text.push_str("(NOT ");
            compile(inner, view, backend, sql)?;
            sql.text.push(')');
        }
        Expr::IsNull { column: name, negated } => {
            let c = column(name)?;
            sql.text.push_str(&format!("({} IS {}NULL)", c.sql, if *negated { "NOT " } else { "" }));
        }
        Expr::Like { column: name, pattern } => {
            let c = column(name)?;
            let p = sql.push_bind(Bound::Text(pattern.clone()));
            // SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE does the same, so both engines agree.
            let op = if backend == Backend::Postgres { "ILIKE" } else { "LIKE" };
            sql.text.push_str(&format!("({} {op} {p})", c.sql));
        }
        Expr::Any { column: name, values } => {
            let c = column(name)?;
            let mut placeholders = Vec::with_capacity(values.len());
            for v in values {
                let b = bind(c, v)?;
                placeholders.push(sql.push_bind(b));
            }
            sql.text.push_str(&format!("({} IN ({}))", c.sql, placeholders.join(", ")));
        }
        Expr::Compare { column: name, op, value: Value::Null } => {
            let c = column(name)?;
            let not = if *op == CmpOp::NotEq { "NOT " } else { "" };
            sql.text.push_str(&format!("({} IS {not}NULL)", c.sql));
        }
        Expr::Compare { column: name, op, value } => {
            let c = column(name)?;
            let b = bind(c, value)?;
            let p = sql.push_bind(b);
            sql.text.push_str(&format!("({} {} {p})", c.sql, op.as_str()));
        }
    }
    Ok(())
}

/// PostgreSQL: the JSON expression of one column value, for `json_build_object`.
fn postgres_value(c: &Column) -> String {
    match c.ty {
        ColumnType::Money => format!("({} / 100.0)", c.sql),
        ColumnType::JsonList => format!("({})::json", c.sql),
        _ => c.sql.to_owned(),
    }
}

/// The SQL for one page of a view.
///
/// - SQLite: `SELECT id, columns…, [properties] … LIMIT limit + 1`, read and rendered by
///   [`crate::sqlite_reader`].
/// - PostgreSQL: `DECLARE page NO SCROLL CURSOR FOR SELECT id, json_build_object(…)::text …`,
///   read in batches by [`Records::query`], which stops fetching once the page is full.
pub(crate) fn view_sql(q: &ViewQuery<'_>, backend: Backend) -> StoreResult<Sql> {
    let v = q.view;
    let mut sql = Sql::default();
    let id = v.columns.first().map_or("id", |c| c.sql);
    let with_properties = v.properties && q.shape.properties != Properties::Omit;
    let selected = match backend {
        Backend::Sqlite => {
            let mut columns: Vec<&str> = vec![id];
            columns.extend(q.shape.columns.iter().map(|c| c.sql));
            if with_properties {
                columns.push("properties");
            }
            columns.join(", ")
        }
        Backend::Postgres => {
            let mut members: Vec<String> =
                q.shape.columns.iter().map(|c| format!("'{}', {}", c.name, postgres_value(c))).collect();
            match q.shape.properties {
                Properties::All if v.properties => members.push("'properties', (properties)::json".to_owned()),
                Properties::Only(keys) if v.properties => {
                    let mut picked = Vec::new();
                    for key in keys {
                        let label = sql.push_bind(Bound::Text(key.clone()));
                        picked.push(format!("{label}::text, (properties)::json -> {label}::text"));
                    }
                    members.push(format!("'properties', json_build_object({})", picked.join(", ")));
                }
                _ => {}
            }
            format!("{id} AS id, json_build_object({})::text AS obj", members.join(", "))
        }
    };
    let tenant = sql.push_bind(Bound::Int(q.tenant.0));
    let mut filter = format!("tenant_id = {tenant}");
    if let Some(unit) = v.unit {
        let p = sql.push_bind(Bound::Int(q.unit.0));
        filter.push_str(&format!(" AND {unit} = {p}"));
    }
    if let Some(base) = v.base {
        filter.push_str(&format!(" AND {base}"));
    }
    if let Visibility::Own(user) = q.visibility {
        let p = sql.push_bind(Bound::Int(user.0));
        filter.push_str(&format!(" AND {} = {p}", v.owner));
    }
    if let Some(expr) = q.filter {
        let mut compiled = Sql { text: String::new(), binds: std::mem::take(&mut sql.binds) };
        compile(expr, v, backend, &mut compiled)?;
        sql.binds = compiled.binds;
        filter.push_str(" AND ");
        filter.push_str(&compiled.text);
    }
    if let Some(after) = q.after_id {
        let p = sql.push_bind(Bound::Int(after));
        filter.push_str(&format!(" AND {id} > {p}"));
    }
    let fetch = sql.push_bind(Bound::Int(i64::from(q.limit) + 1));
    let offset =
        sql.push_bind(Bound::Int(if q.after_id.is_some() { 0 } else { i64::try_from(q.offset).unwrap_or(i64::MAX) }));
    let rows = format!("SELECT {selected} FROM {} WHERE {filter} ORDER BY {id} LIMIT {fetch} OFFSET {offset}", v.table);
    sql.text = match backend {
        Backend::Sqlite => rows,
        Backend::Postgres => format!("DECLARE page NO SCROLL CURSOR FOR {rows}"),
    };
    Ok(sql)
}

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

/// One page as the database rendered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRows {
    /// Rows found, up to limit + 1 (more than `limit` means more pages follow).
    pub fetched: i64,
    /// Rows in `data`.
    pub kept: i64,
    pub last_id: Option<i64>,
    /// A JSON array of row objects.
    pub data: String,
}

/// Binds `$binds` (a `&[Bound]`) onto query `$q`.
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bound::Int(i) => q.bind(*i),
                Bound::Float(f) => q.bind(*f),
                Bound::Text(t) => q.bind(t.clone()),
                Bound::Bool(x) => q.bind(*x),
            };
        }
        q
    }};
}

/// Binds each `&FieldValue` of `$values` onto query `$q`.
macro_rules! bind_fields {
    ($q:expr, $values:expr) => {{
        let mut q = $q;
        for v in $values {
            q = match v {
                FieldValue::Null(SqlType::Int) => q.bind(None::<i64>),
                FieldValue::Null(SqlType::Float) => q.bind(None::<f64>),
                FieldValue::Null(SqlType::Text) => q.bind(None::<String>),
                FieldValue::Null(SqlType::Bool) => q.bind(None::<bool>),
                FieldValue::Bound(b) => bind_all!(q, std::iter::once(b)),
            };
        }
        q
    }};
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

/// Records repository.
#[derive(Debug, Clone, Copy)]
pub struct Records<'a>(&'a Database);

impl Database {
    pub fn records(&self) -> Records<'_> {
        Records(self)
    }
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

    /// Inserts a record with its audit event and, when given, its idempotency answer, in one
    /// transaction. A concurrent retry with the same idempotency key loses the race and gets
    /// [`StoreError::IdempotencyKeyTaken`].
    pub async fn insert(
        &self,
        tenant: TenantId,
        unit: UnitId,
        write: &RecordWrite,
        audit: &AuditEntry,
        idempotency: Option<Idempotency<'_>>,
        answer: impl Fn(i64) -> String,
    ) -> StoreResult<(i64, String)> {
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

    /// Updates the listed columns of record `id` in the tenant and unit, with its audit event.
    pub async fn update(
        &self,
        tenant: TenantId,
        unit: UnitId,
        id: i64,
        write: &RecordWrite,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        if write.fields.is_empty() {
            return Ok(());
        }
        let sets: Vec<String> =
            write.fields.iter().enumerate().map(|(i, (c, _))| format!("{c} = ${}", i + 4)).collect();
        let sql =
            format!("UPDATE {} SET {} WHERE tenant_id = $1 AND unit_id = $2 AND id = $3", write.table, sets.join(", "));
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
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

    /// Bulk insert without audit, for demo and benchmark data: one transaction per call.
    pub async fn seed(&self, tenant: TenantId, unit: UnitId, writes: &[RecordWrite]) -> StoreResult<()> {
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
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

#[cfg(test)]
mod tests {
    use keygate_domain::{filter::parse, views::view};

    use super::*;

    #[test]
    fn client_text_never_reaches_the_sql_text() {
        let v = view("companies").expect("view");
        let shape = RowShape::full(v);
        let filter = parse("name = 'x''; DROP TABLE users; --' OR name LIKE '%'' OR 1=1 --'").expect("parses");
        let q = ViewQuery {
            view: v,
            tenant: TenantId(1),
            unit: UnitId(1),
            visibility: Visibility::All,
            filter: Some(&filter),
            limit: 10,
            max_bytes: 1 << 20,
            offset: 0,
            after_id: None,
            shape: &shape,
            time_budget: None,
            growth: None,
        };
        let sql = view_sql(&q, Backend::Sqlite).expect("compiles");
        assert!(!sql.text.contains("DROP") && !sql.text.contains("1=1"), "{}", sql.text);
        assert!(sql.binds.contains(&Bound::Text("x'; DROP TABLE users; --".into())));
    }

    #[test]
    fn own_reach_and_the_view_base_narrow_the_query() {
        let v = view("invoices.sales").expect("view");
        let shape = RowShape::full(v);
        let q = ViewQuery {
            view: v,
            tenant: TenantId(1),
            unit: UnitId(2),
            visibility: Visibility::Own(UserId(9)),
            filter: None,
            limit: 10,
            max_bytes: 1 << 20,
            offset: 5,
            after_id: None,
            shape: &shape,
            time_budget: None,
            growth: None,
        };
        let sql = view_sql(&q, Backend::Postgres).expect("compiles");
        assert!(sql.text.contains("tenant_id = $1 AND unit_id = $2 AND (type = 'INVOICE.SALES'"), "{}", sql.text);
        assert!(sql.text.contains("owner_id = $3"));
        assert!(sql.text.contains("ORDER BY id LIMIT $4 OFFSET $5"));
    }
}
