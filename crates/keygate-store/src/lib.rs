//! keygate's storage: one [`Database`] handle over SQLite (the embedded default) or PostgreSQL.
//!
//! Owns SQL and nothing else: no business rules beyond integrity, no HTTP. One SQL text serves
//! both engines (`$1…$N` placeholders); each repository method is written once and expanded for
//! both pools by `on_pool!`. Every change is written in one transaction together with its audit
//! event and its change-feed row, so a change is never stored without its trace.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    PgPool, SqlitePool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

mod audit;
mod audit_search;
mod authz;
mod backup;
mod changes;
mod cluster;
mod copy;
pub mod files;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod groups;
mod key_admin;
mod keys;
mod listen;
mod management_idempotency;
mod operators;
mod read_only;
mod records;
mod rows;
mod sessions;
mod sqlite_reader;
mod tenants;
#[cfg(feature = "testing")]
pub mod testing;
mod usage;
mod users;

pub use audit::{AuditFilter, AuditRecord};
pub use audit_search::{AUDIT_SEARCH_MAX_ROWS, AUDIT_SETTLE_MS, AuditSearch, AuditSearchRepo};
pub use authz::{Guard, HandsOver, Judgement};

pub use changes::{CHANGE_RETENTION_MS, Change, ChangeKind};
pub use cluster::{Count, CountKind, ReportedCount};
pub use copy::{CopyReport, TableCopy, copy_sqlite_to_postgres};
pub use groups::Groups;
pub use key_admin::{KeyChange, KeyFilter, KeyStateFilter, KeySwitch};
pub use keys::{KeyListing, NewKey, Rolled, UsageUpdate};
pub use listen::{CHANGE_CHANNEL, ChangeListener};
pub use management_idempotency::{IdempotentEntry, ManagementIdempotency, Reservation, ReserveLimits};
pub use operators::{MAX_OPERATORS, MAX_PENDING_REMOVALS, OperatorRecord, Operators, TenantSummary};
pub use read_only::SchemaState;
pub use records::{
    FieldValue, Idempotency, PageRows, Properties, RECORD_ROW_UNITS, RecordWrite, Records, RowShape, STORAGE_SHARDS,
    SqlType, StorageQuota, ViewQuery, Visibility,
};
pub use rows::GroupRecord;
pub use sessions::{NewSession, SessionRecord, ThrottleState};
pub use tenants::{NewTenant, SettingsUpdate, TenantRecord, UnitActor};
pub use usage::DailyCount;
pub use users::{NewUser, UserPageQuery, UserRecord, UserUpdate};

/// Errors of the storage layer. Database causes are kept for logs, never shown to callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} was not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// An idempotency key this request wanted is held by another request of the same key.
    #[error("the idempotency key is already taken")]
    IdempotencyKeyTaken,
    /// A judged write (see [`Guard`]) was refused on its outcome; nothing of it was written.
    #[error("{0}")]
    Refused(keygate_domain::GrantExceedsActor),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("the database could not be reached or refused the operation")]
    Database(#[source] sqlx::Error),
    #[error("the database schema could not be brought up to date")]
    Migration(#[source] sqlx::migrate::MigrateError),
    /// A write was refused because the database is read-only: opened so (see
    /// [`Database::open_sqlite_read_only`]), a read-only file, or a PostgreSQL standby. Each
    /// change is one transaction, so nothing of it was written.
    #[error("the database is read-only: nothing was written")]
    ReadOnly(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if refused_as_read_only(&e) { Self::ReadOnly(e) } else { Self::Database(e) }
    }
}

/// Whether the database refused `e` because it is read-only: SQLite's `SQLITE_READONLY` (and its
/// extended codes), PostgreSQL's `read_only_sql_transaction` (25006).
fn refused_as_read_only(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else { return false };
    let code = db.code();
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        code.and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 8)
    } else {
        code.as_deref() == Some("25006")
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Turns a unique-constraint violation into a [`StoreError::Conflict`] with a message for users.
pub(crate) fn on_unique(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(e),
    }
}

/// One connection pool's use, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// `sqlite` (sqlx: every write and most queries on SQLite), `sqlite_page_readers` (read-only
    /// connections for data-API pages and verification's key reads) or `postgres`.
    pub name: &'static str,
    /// Connections running a query now.
    pub in_use: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// Connections the pool opens at most; `None` where it has no bound of its own (page
    /// readers are bounded by the threads that use them, blocking threads for pages and the
    /// runtime's workers for key reads, and keep at most 8 idle).
    pub max: Option<u32>,
}

/// Which engine a [`Database`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The handle every repository hangs off. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    pub(crate) pool: Pool,
    /// Read-only connections for data-API pages and key reads on SQLite (see `sqlite_reader`).
    pub(crate) sqlite_readers: Option<std::sync::Arc<sqlite_reader::Readers>>,
    /// Opened read-only: every write fails with [`StoreError::ReadOnly`].
    pub(crate) read_only: bool,
}

/// Runs `$body` with `$p` bound to the concrete pool, once compiled per engine.
/// Rows per multi-row statement in batch writes: far below SQLite's 32 766 and PostgreSQL's
/// 65 535 bind parameters, large enough that round trips stop mattering.
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

macro_rules! on_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match &$db.pool {
            $crate::Pool::Sqlite($p) => $body,
            $crate::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use on_pool;

pub(crate) static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
pub(crate) static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Database {
    /// Opens (creating if needed) the SQLite file `keygate.db` in `data_dir`: WAL, foreign keys on.
    /// A directory made here is 0700 and the database 0600, whatever the umask (see [`files`]).
    pub async fn open_data_dir(data_dir: &Path) -> StoreResult<Self> {
        files::create_private_dir(data_dir).map_err(|e| {
            StoreError::Conflict(format!("cannot create the data directory {}: {e}", data_dir.display()))
        })?;
        Self::open_sqlite_file(&data_dir.join("keygate.db")).await
    }

    /// Opens (creating if needed, 0600) a SQLite database file. `synchronous=FULL`: a committed
    /// change (a revocation, an issued key, an audit row) survives a power loss or an OS crash,
    /// not only a crash of keygate; WAL keeps the cost to one fsync per commit.
    pub async fn open_sqlite_file(path: &Path) -> StoreResult<Self> {
        files::create_private_file(path)
            .map_err(|e| StoreError::Conflict(format!("cannot create the database file {}: {e}", path.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Reads straight from the mapped file instead of copying pages through read(2).
            .pragma("mmap_size", "268435456")
            // 32 MiB of page cache per connection (SQLite's default is 2 MiB).
            .pragma("cache_size", "-32768");
        // SQLite work is CPU-bound in this process: connections beyond a few per core only add
        // thread switches (and memory), whatever the load.
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let pool = SqlitePoolOptions::new()
            .max_connections(u32::try_from((2 * cores).clamp(4, 16)).unwrap_or(4))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
            sqlite_readers: Some(std::sync::Arc::new(sqlite_reader::Readers::new(path))),
            read_only: false,
        })
    }

    /// Connects to `postgres://…` or `sqlite://…` URLs.
    pub async fn connect_url(url: &str) -> StoreResult<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Self { pool: Pool::Postgres(pool), sqlite_readers: None, read_only: false })
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Self::open_sqlite_file(Path::new(path)).await
        } else {
            Err(StoreError::Conflict(
                "the database URL must start with postgres:// or sqlite:// (or leave it unset to use the data directory)"
                    .to_owned(),
            ))
        }
    }

    /// Applies every pending migration of this engine.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            Pool::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        }
        .map_err(StoreError::Migration)
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Succeeds when the database answers a trivial query (readiness).
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()).map_err(Into::into))
    }

    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }

    /// The connection pools this handle holds and how they are used now: cheap, no query.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        fn sqlx_stats<DB: sqlx::Database>(name: &'static str, p: &sqlx::Pool<DB>) -> PoolStats {
            let size = p.size();
            let idle = u32::try_from(p.num_idle()).unwrap_or(u32::MAX).min(size);
            PoolStats { name, in_use: size - idle, idle, max: Some(p.options().get_max_connections()) }
        }
        let mut out = vec![match &self.pool {
            Pool::Sqlite(p) => sqlx_stats("sqlite", p),
            Pool::Postgres(p) => sqlx_stats("postgres", p),
        }];
        if let Some(readers) = &self.sqlite_readers {
            let (in_use, idle) = readers.usage();
            let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
            out.push(PoolStats { name: "sqlite_page_readers", in_use: n(in_use), idle: n(idle), max: None });
        }
        out
    }

    /// The PostgreSQL pool, for listeners; `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }
}

/// Appends an audit entry inside the transaction `$tx` (`&mut *tx`).
macro_rules! append_audit {
    ($tx:expr, $entry:expr) => {{
        let e: &keygate_domain::AuditEntry = $entry;
        sqlx::query(
            "INSERT INTO audit_events (tenant_id, at, actor_kind, actor_id, actor_label, action, target, details, source_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(e.tenant_id.map(|t| t.0))
        .bind(e.at.0)
        .bind(e.actor.kind())
        .bind(e.actor.id())
        .bind(e.actor.label())
        .bind(e.action)
        .bind(&e.target)
        .bind(&e.details)
        .bind(e.source_ip.as_deref())
        .execute($tx)
        .await
    }};
}
pub(crate) use append_audit;

/// Appends a change-feed row inside the transaction `$tx`.
macro_rules! record_change {
    ($tx:expr, $kind:expr, $id:expr) => {{
        let kind: $crate::ChangeKind = $kind;
        sqlx::query("INSERT INTO changes (at, kind, entity_id) VALUES ($1, $2, $3)")
            .bind(keygate_domain::Timestamp::now().0)
            .bind(kind.as_str())
            .bind($id)
            .execute($tx)
            .await
    }};
}
pub(crate) use record_change;
