//! Fresh databases for tests, on SQLite always and on PostgreSQL when
//! `KEYGATE_TEST_POSTGRES_URL` is set (each call creates a new database on that server).
//! Also the fixtures of domain values ([`key_record`]), so that tests, benches and examples build
//! a `KeyRecord` in one place. Behind the `testing` feature; not used by the product itself.

use std::path::PathBuf;

pub use keygate_domain::testing::key_record;

use crate::{Backend, Database, StoreResult};

/// A database that exists only for one test; the SQLite directory is removed on drop.
#[derive(Debug)]
pub struct TestDatabase {
    pub db: Database,
    pub dir: Option<PathBuf>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("os random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new, migrated SQLite database in its own temporary directory.
pub async fn fresh_sqlite() -> StoreResult<TestDatabase> {
    let dir = std::env::temp_dir().join(format!("keygate-test-{}", random_suffix()));
    let db = Database::open_data_dir(&dir).await?;
    db.migrate().await?;
    Ok(TestDatabase { db, dir: Some(dir) })
}

/// The PostgreSQL server to test against. With `CI=true` its absence is an error, never a skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var("KEYGATE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but KEYGATE_TEST_POSTGRES_URL is not set: PostgreSQL tests must run in CI")
        }
        _ => None,
    }
}

/// The URL of a new, empty PostgreSQL database (not migrated), or `None` when no server is
/// configured: for tests of what keygate does to a database it is given.
pub async fn empty_postgres_url() -> StoreResult<Option<String>> {
    let Some(url) = postgres_url() else { return Ok(None) };
    let admin = Database::connect_url(&url).await?;
    let name = format!("keygate_test_{}", random_suffix());
    if let Some(pool) = admin.postgres_pool() {
        // The name is generated above from hex digits only; identifiers cannot be bound.
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(pool).await?;
    }
    admin.close().await;
    Ok(Some(with_database(&url, &name)))
}

/// A new, migrated PostgreSQL database, or `None` when no server is configured.
pub async fn fresh_postgres() -> StoreResult<Option<TestDatabase>> {
    let Some(url) = empty_postgres_url().await? else { return Ok(None) };
    let db = Database::connect_url(&url).await?;
    db.migrate().await?;
    Ok(Some(TestDatabase { db, dir: None }))
}

/// A fresh database of the given engine; `None` when that engine is not available here.
pub async fn fresh(backend: Backend) -> StoreResult<Option<TestDatabase>> {
    match backend {
        Backend::Sqlite => fresh_sqlite().await.map(Some),
        Backend::Postgres => fresh_postgres().await,
    }
}

/// `postgres://u@h:5432/old?x=1` with the database `name` instead of `old`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let query = if query.is_empty() { String::new() } else { format!("?{query}") };
    format!("{}/{name}{query}", &base[..path_start])
}

/// The raw SQLite pool, for tests that must bypass the repositories (e.g. to prove the audit log
/// refuses tampering).
pub fn sqlite_pool(db: &Database) -> Option<sqlx::SqlitePool> {
    match &db.pool {
        crate::Pool::Sqlite(p) => Some(p.clone()),
        crate::Pool::Postgres(_) => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(
            super::with_database("postgres://p@127.0.0.1:5/postgres?sslmode=disable", "t"),
            "postgres://p@127.0.0.1:5/t?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://p@127.0.0.1:5", "t"), "postgres://p@127.0.0.1:5/t");
    }
}
