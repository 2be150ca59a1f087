//! Using a database that must not or cannot be written — a read-only file, a copy, a PostgreSQL
//! standby — for commands that only read: opening it read-only (no file created, no setting
//! written, no migration run) and checking, instead of migrating, that its schema is this
//! keygate's. No business rules here.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
};

use crate::{Database, POSTGRES_MIGRATIONS, Pool, SQLITE_MIGRATIONS, StoreError, StoreResult, on_pool, sqlite_reader};

/// How the schema of a database compares with the migrations this keygate carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration is applied, as this keygate has it.
    Current,
    /// No migration was ever applied (no `_sqlx_migrations` table): not a keygate database yet.
    Unmigrated,
    /// These migrations of this keygate are not applied yet (`keygate migrate` applies them).
    Behind(Vec<i64>),
    /// These applied migrations are unknown to this keygate: a newer one migrated the database.
    Ahead(Vec<i64>),
    /// These applied migrations differ from this keygate's, or failed partway.
    Differs(Vec<i64>),
}

impl Database {
    /// Opens an existing SQLite database file read-only: nothing is created, no setting that
    /// writes is applied, no migration runs, and every write fails with [`StoreError::ReadOnly`].
    /// Where SQLite cannot make the `-shm` file a WAL database needs beside it (a directory this
    /// user may not write) and no `-wal` file exists (so no process is writing it), the file is
    /// read as immutable.
    pub async fn open_sqlite_read_only(path: &Path) -> StoreResult<Self> {
        if !path.is_file() {
            return Err(StoreError::NotFound(format!("the database file {}", path.display())));
        }
        let options = |immutable: bool| {
            SqliteConnectOptions::new()
                .filename(path)
                .read_only(true)
                .immutable(immutable)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        };
        // Connecting reads nothing: the first read is what needs the `-shm` file.
        let pool = |immutable: bool| async move {
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options(immutable))
                .await?;
            match sqlx::query("SELECT COUNT(*) FROM sqlite_master").execute(&pool).await {
                Ok(_) => Ok(pool),
                Err(e) => {
                    pool.close().await;
                    Err(e)
                }
            }
        };
        let pool = match pool(false).await {
            Ok(pool) => pool,
            Err(_) if !Path::new(&format!("{}-wal", path.display())).exists() => pool(true).await?,
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            pool: Pool::Sqlite(pool),
            sqlite_readers: Some(std::sync::Arc::new(sqlite_reader::Readers::new(path))),
            read_only: true,
        })
    }

    /// [`Self::connect_url`] read-only: a `sqlite://` file as [`Self::open_sqlite_read_only`];
    /// PostgreSQL with `default_transaction_read_only` on, so that the server itself refuses any
    /// write (also the way to use a standby).
    pub async fn connect_url_read_only(url: &str) -> StoreResult<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?.options([("default_transaction_read_only", "on")]);
            let pool = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Self { pool: Pool::Postgres(pool), sqlite_readers: None, read_only: true })
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            Self::open_sqlite_read_only(Path::new(path)).await
        } else {
            Self::connect_url(url).await
        }
    }

    /// Compares the applied migrations with this keygate's, without changing anything (for a
    /// database that cannot be migrated: read-only).
    pub async fn schema_state(&self) -> StoreResult<SchemaState> {
        let (migrator, has_table) = match &self.pool {
            Pool::Sqlite(p) => (
                &SQLITE_MIGRATIONS,
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(p)
                .await?
                    > 0,
            ),
            Pool::Postgres(p) => (
                &POSTGRES_MIGRATIONS,
                sqlx::query_scalar::<_, bool>("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(p)
                    .await?,
            ),
        };
        if !has_table {
            return Ok(SchemaState::Unmigrated);
        }
        let applied: Vec<(i64, bool, Vec<u8>)> = on_pool!(self, p => sqlx::query_as(
            "SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version"
        )
        .fetch_all(p)
        .await)?;
        let ours: Vec<_> = migrator.iter().filter(|m| !m.migration_type.is_down_migration()).collect();
        let ahead: Vec<i64> = applied.iter().map(|a| a.0).filter(|v| !ours.iter().any(|m| m.version == *v)).collect();
        let differs: Vec<i64> = applied
            .iter()
            .filter(|(v, success, sum)| {
                ours.iter().any(|m| m.version == *v && (!*success || m.checksum.as_ref() != sum.as_slice()))
            })
            .map(|a| a.0)
            .collect();
        let behind: Vec<i64> = ours.iter().map(|m| m.version).filter(|v| !applied.iter().any(|a| a.0 == *v)).collect();
        Ok(if !differs.is_empty() {
            SchemaState::Differs(differs)
        } else if !ahead.is_empty() {
            SchemaState::Ahead(ahead)
        } else if !behind.is_empty() {
            SchemaState::Behind(behind)
        } else {
            SchemaState::Current
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn migrated_file() -> (crate::testing::TestDatabase, std::path::PathBuf) {
        let t = crate::testing::fresh_sqlite().await.expect("db");
        let file = t.dir.as_ref().expect("dir").join("keygate.db");
        (t, file)
    }

    /// `db`, opened read-only on a current schema with no tenant, reads and refuses a write.
    async fn reads_and_refuses_writes(db: &Database) {
        assert!(db.is_read_only());
        assert_eq!(db.schema_state().await.expect("schema"), SchemaState::Current);
        assert!(db.tenants().list().await.expect("reads work").is_empty());
        let write = crate::on_pool!(db, p => sqlx::query("INSERT INTO changes (at, kind, entity_id) VALUES (1, 'key', 1)")
            .execute(p)
            .await
            .map(|_| ())
            .map_err(StoreError::from));
        assert!(matches!(write, Err(StoreError::ReadOnly(_))), "{write:?}");
    }

    #[tokio::test]
    async fn a_database_opened_read_only_reads_refuses_every_write_and_keeps_its_schema() {
        let (t, file) = migrated_file().await;
        t.db.close().await;
        let db = Database::open_sqlite_read_only(&file).await.expect("open read-only");
        reads_and_refuses_writes(&db).await;
    }

    #[tokio::test]
    async fn postgresql_opened_read_only_refuses_every_write_itself() {
        let Some(url) = crate::testing::empty_postgres_url().await.expect("server") else {
            eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
            return;
        };
        let writable = Database::connect_url(&url).await.expect("connect");
        writable.migrate().await.expect("migrate");
        writable.close().await;
        let db = Database::connect_url_read_only(&url).await.expect("connect read-only");
        reads_and_refuses_writes(&db).await;
        db.close().await;
    }

    #[tokio::test]
    async fn a_missing_file_is_not_created_when_opened_read_only() {
        let (t, file) = migrated_file().await;
        let missing = file.with_file_name("other.db");
        assert!(matches!(Database::open_sqlite_read_only(&missing).await, Err(StoreError::NotFound(_))));
        assert!(!missing.exists());
        drop(t);
    }

    #[tokio::test]
    async fn a_schema_older_or_newer_than_this_keygate_is_named_not_migrated() {
        let (t, file) = migrated_file().await;
        let pool = crate::testing::sqlite_pool(&t.db).expect("sqlite");
        let newest: i64 =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(&pool).await.expect("v");
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
            .bind(newest)
            .execute(&pool)
            .await
            .expect("forget");
        assert_eq!(t.db.schema_state().await.expect("schema"), SchemaState::Behind(vec![newest]));
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, 'from the future', TRUE, x'00', 0)",
        )
        .bind(newest + 1000)
        .execute(&pool)
        .await
        .expect("future");
        assert_eq!(t.db.schema_state().await.expect("schema"), SchemaState::Ahead(vec![newest + 1000]));
        sqlx::query("DROP TABLE _sqlx_migrations").execute(&pool).await.expect("drop");
        assert_eq!(t.db.schema_state().await.expect("schema"), SchemaState::Unmigrated);
        drop(file);
    }
}
