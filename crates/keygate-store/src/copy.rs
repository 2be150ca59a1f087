//! Moving from the embedded SQLite database to PostgreSQL: every table copied, row for row, in
//! one PostgreSQL transaction, then compared.
//!
//! The source is read through a read-only SQLite connection and is never written. The target is
//! inspected first, in a read-only transaction, and refused unless it is a new, empty database or a
//! keygate schema without rows: a refused copy leaves it exactly as it was. Only then is it
//! migrated and copied into. Tables are copied parents first (the order is read from
//! the target's foreign keys), ids are kept, identity sequences are set past the copied ids, and
//! afterwards every table's rows are read back and hashed on both sides: the counts and SHA-256
//! digests are reported, and any difference fails the copy (the transaction is rolled back).

use std::path::Path;

use rusqlite::{OpenFlags, types::ValueRef};
use sha2::{Digest, Sha256};
use sqlx::{Row, postgres::PgRow};

use crate::{Database, POSTGRES_MIGRATIONS, Pool, ROWS_PER_STATEMENT, SchemaState, StoreError, StoreResult};

/// What the copy did, table by table.
#[derive(Debug, Clone)]
pub struct CopyReport {
    pub tables: Vec<TableCopy>,
}

/// One table: rows in the source and in the target after the copy, and the digest of both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    pub source_rows: u64,
    pub target_rows: u64,
    /// SHA-256 over every row in key order, the same on both sides or the copy fails.
    pub digest: String,
}

/// The kinds of column the two schemas use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Text,
    Bytes,
    Real,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<Column>,
    identity: Option<String>,
    /// The primary key columns, for a stable row order on both sides.
    key: Vec<String>,
}

/// One value, as both engines agree on it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    Real(f64),
}

impl Value {
    /// A canonical encoding for the digest: a tag, then the value's bytes, length-prefixed.
    fn hash_into(&self, h: &mut Sha256) {
        match self {
            Self::Null => h.update([0]),
            Self::Int(i) => {
                h.update([1]);
                h.update(i.to_le_bytes());
            }
            Self::Bool(b) => h.update([2, u8::from(*b)]),
            Self::Text(t) => {
                h.update([3]);
                h.update((t.len() as u64).to_le_bytes());
                h.update(t.as_bytes());
            }
            Self::Bytes(b) => {
                h.update([4]);
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
            Self::Real(r) => {
                h.update([5]);
                h.update(r.to_bits().to_le_bytes());
            }
        }
    }
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

/// Copies the SQLite database at `source` into the PostgreSQL database `target`. The target is
/// checked before anything is written to it (`check_target`): a new, empty database, or one
/// holding only keygate's schema without rows; anything else is refused and left as it was. It is
/// then migrated and filled in one transaction. Nothing is written to `source`; on a failure after
/// the check nothing stays in `target` but keygate's schema.
pub async fn copy_sqlite_to_postgres(source: &Path, target: &Database) -> StoreResult<CopyReport> {
    let Pool::Postgres(pg) = &target.pool else {
        return Err(StoreError::Conflict("the target of a copy must be a PostgreSQL database".to_owned()));
    };
    let reader = rusqlite::Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::Conflict(format!("cannot open {} read-only: {e}", source.display())))?;
    let source_tables: Vec<String> = {
        let fail = |e: rusqlite::Error| StoreError::Conflict(format!("reading the source's tables failed: {e}"));
        let mut statement = reader
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'")
            .map_err(fail)?;
        let names = statement.query_map([], |row| row.get::<_, String>(0)).map_err(fail)?;
        names.collect::<Result<_, _>>().map_err(fail)?
    };
    let ours = keygate_tables();
    if let Some(missing) = source_tables.iter().find(|name| !ours.contains(name)) {
        return Err(corrupt(format!(
            "the source has a table {missing} that keygate's PostgreSQL schema lacks; nothing was written to the target"
        )));
    }
    check_target(target, pg, &ours).await?;
    target.migrate().await?;
    let tables = target_tables(pg).await?;
    if let Some(missing) = source_tables.iter().find(|name| !tables.iter().any(|t| &t.name == *name)) {
        return Err(corrupt(format!("the source has a table {missing} that the PostgreSQL schema lacks")));
    }
    let mut tx = pg.begin().await?;
    for table in &tables {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", table.name)).fetch_one(&mut *tx).await?;
        if rows > 0 {
            return Err(StoreError::Conflict(format!(
                "the target database is not empty (table {} has {rows} rows); copy only into a new, empty database",
                table.name
            )));
        }
    }
    let mut report = Vec::new();
    // Tables only PostgreSQL has (the cluster's exchange of counts) stay empty.
    for table in tables.iter().filter(|t| source_tables.contains(&t.name)) {
        let (source_rows, source_digest) = copy_table(&reader, table, &mut tx).await?;
        if let Some(id) = &table.identity {
            // Past the copied ids, so that the next row PostgreSQL numbers itself does not collide.
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{t}', '{id}'), COALESCE(MAX({id}), 0) + 1, false) FROM {t}",
                t = table.name
            ))
            .execute(&mut *tx)
            .await?;
        }
        let (target_rows, target_digest) = digest_target(table, &mut tx).await?;
        if (source_rows, &source_digest) != (target_rows, &target_digest) {
            return Err(corrupt(format!(
                "table {}: {source_rows} rows copied but {target_rows} read back, or their contents differ",
                table.name
            )));
        }
        report.push(TableCopy { table: table.name.clone(), source_rows, target_rows, digest: source_digest });
    }
    tx.commit().await?;
    Ok(CopyReport { tables: report })
}

/// The tables keygate's PostgreSQL migrations create, read from their SQL, and the migration ledger
/// `_sqlx_migrations`.
fn keygate_tables() -> Vec<String> {
    let mut names = vec!["_sqlx_migrations".to_owned()];
    for migration in POSTGRES_MIGRATIONS.iter().filter(|m| !m.migration_type.is_down_migration()) {
        let sql = migration.sql.to_ascii_lowercase();
        for (at, _) in sql.match_indices("create table") {
            let rest = sql[at + "create table".len()..].trim_start();
            let rest = rest.strip_prefix("if not exists").unwrap_or(rest).trim_start();
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Refuses a target that is not a new, empty database or keygate's own schema without rows,
/// before anything is written to it: it is only read, in a read-only transaction. Refused are
/// tables, views and foreign tables that keygate's migrations do not create, or that sit in
/// another schema than the one keygate would use; a migration ledger with migrations this keygate
/// does not have (another application's, or a newer keygate's); and any row in keygate's tables.
async fn check_target(target: &Database, pg: &sqlx::PgPool, ours: &[String]) -> StoreResult<()> {
    let refuse = |why: String| {
        StoreError::Conflict(format!(
            "{why}; nothing was written to it. Copy only into a new, empty database (e.g. `createdb keygate`)"
        ))
    };
    let mut tx = pg.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
    let relations: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, n.nspname = current_schema() FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *tx)
    .await?;
    let foreign: Vec<String> = relations
        .iter()
        .filter(|(_, name, here)| !*here || !ours.contains(name))
        .map(|(schema, name, _)| format!("{schema}.{name}"))
        .collect();
    if !foreign.is_empty() {
        let shown: Vec<&str> = foreign.iter().take(5).map(String::as_str).collect();
        let more = if foreign.len() > 5 { format!(" and {} more", foreign.len() - 5) } else { String::new() };
        return Err(refuse(format!(
            "the target database holds {} table(s) that are not keygate's ({}{more}): it belongs to another \
             application",
            foreign.len(),
            shown.join(", ")
        )));
    }
    tx.rollback().await?;
    match target.schema_state().await? {
        SchemaState::Unmigrated | SchemaState::Current | SchemaState::Behind(_) => {}
        SchemaState::Ahead(versions) | SchemaState::Differs(versions) => {
            return Err(refuse(format!(
                "the target database's _sqlx_migrations records migrations {versions:?} that this keygate does \
                 not have (another application's, or a newer keygate's)"
            )));
        }
    }
    let mut tx = pg.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
    for (_, name, _) in relations.iter().filter(|(_, name, _)| name != "_sqlx_migrations") {
        // The name is one of keygate's own, read from its migrations; identifiers cannot be bound.
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {name}")).fetch_one(&mut *tx).await?;
        if rows > 0 {
            return Err(refuse(format!("the target database is not empty (table {name} has {rows} rows)")));
        }
    }
    tx.rollback().await?;
    Ok(())
}

/// The target's tables (keygate's own: everything but the migration ledger), parents first.
async fn target_tables(pg: &sqlx::PgPool) -> StoreResult<Vec<Table>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations' \
         ORDER BY table_name",
    )
    .fetch_all(pg)
    .await?;
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c \
         WHERE c.contype = 'f' AND c.conrelid <> c.confrelid",
    )
    .fetch_all(pg)
    .await?;
    let mut ordered: Vec<String> = Vec::new();
    let mut left = names.clone();
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|t| {
                edges.iter().all(|(child, parent)| child != *t || ordered.contains(parent) || !names.contains(parent))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(corrupt(format!("the foreign keys of {left:?} form a cycle")));
        }
        left.retain(|t| !ready.contains(t));
        ordered.extend(ready);
    }
    let mut tables = Vec::new();
    for name in ordered {
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_identity::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(pg)
        .await?;
        let key: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
        )
        .bind(&name)
        .fetch_all(pg)
        .await?;
        let mut table = Table { name: name.clone(), columns: Vec::new(), identity: None, key };
        for (column, data_type, identity) in columns {
            let kind = match data_type.as_str() {
                "bigint" | "integer" | "smallint" => Kind::Int,
                "boolean" => Kind::Bool,
                "text" | "character varying" => Kind::Text,
                "bytea" => Kind::Bytes,
                "double precision" | "real" => Kind::Real,
                other => return Err(corrupt(format!("{name}.{column} has a type the copy does not know: {other}"))),
            };
            if identity == "YES" {
                table.identity = Some(column.clone());
            }
            table.columns.push(Column { name: column, kind });
        }
        if table.key.is_empty() {
            table.key = table.columns.iter().map(|c| c.name.clone()).collect();
        }
        tables.push(table);
    }
    Ok(tables)
}

/// The key order, byte-wise on both engines (SQLite compares text as bytes; PostgreSQL would use
/// the database's collation unless told `C`).
fn order_by(table: &Table, postgres: bool) -> String {
    let text = |name: &str| table.columns.iter().any(|c| c.name == name && c.kind == Kind::Text);
    let keys: Vec<String> =
        table.key.iter().map(|k| if postgres && text(k) { format!("{k} COLLATE \"C\"") } else { k.clone() }).collect();
    keys.join(", ")
}

/// Rows read back per statement when digesting the target.
const READ_BACK_ROWS: i64 = 10_000;

/// Reads the source table in key order, inserts it in batches, and digests what was read.
async fn copy_table(
    reader: &rusqlite::Connection,
    table: &Table,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
) -> StoreResult<(u64, String)> {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let select = format!("SELECT {} FROM {} ORDER BY {}", names.join(", "), table.name, order_by(table, false));
    let fail = |e: rusqlite::Error| StoreError::Conflict(format!("reading {} from the source failed: {e}", table.name));
    let mut statement = reader.prepare(&select).map_err(fail)?;
    let mut rows = statement.query([]).map_err(fail)?;
    let mut hash = Sha256::new();
    let mut count = 0u64;
    let mut batch: Vec<Vec<Value>> = Vec::new();
    while let Some(row) = rows.next().map_err(fail)? {
        let mut values = Vec::with_capacity(table.columns.len());
        for (i, column) in table.columns.iter().enumerate() {
            let value = from_sqlite(row.get_ref(i).map_err(fail)?, column.kind)
                .ok_or_else(|| corrupt(format!("{}.{} holds a value of another type", table.name, column.name)))?;
            value.hash_into(&mut hash);
            values.push(value);
        }
        count += 1;
        batch.push(values);
        if batch.len() * table.columns.len() >= ROWS_PER_STATEMENT * 8 {
            insert(table, &std::mem::take(&mut batch), tx).await?;
        }
    }
    if !batch.is_empty() {
        insert(table, &batch, tx).await?;
    }
    Ok((count, hex(hash.finalize().as_slice())))
}

fn from_sqlite(value: ValueRef<'_>, kind: Kind) -> Option<Value> {
    Some(match (value, kind) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(i), Kind::Int) => Value::Int(i),
        (ValueRef::Integer(i), Kind::Bool) => Value::Bool(i != 0),
        (ValueRef::Integer(i), Kind::Real) => Value::Real(i as f64),
        (ValueRef::Real(r), Kind::Real) => Value::Real(r),
        (ValueRef::Text(t), Kind::Text) => Value::Text(String::from_utf8(t.to_vec()).ok()?),
        (ValueRef::Blob(b), Kind::Bytes) => Value::Bytes(b.to_vec()),
        (ValueRef::Text(t), Kind::Bytes) => Value::Bytes(t.to_vec()),
        _ => return None,
    })
}

async fn insert(table: &Table, rows: &[Vec<Value>], tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> StoreResult<()> {
    let width = table.columns.len();
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let overriding = if table.identity.is_some() { " OVERRIDING SYSTEM VALUE" } else { "" };
    let tuples: Vec<String> = (0..rows.len())
        .map(|r| {
            let params: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    // Table and column names come from the target's own catalogue, never from input.
    let sql = format!("INSERT INTO {} ({}){overriding} VALUES {}", table.name, names.join(", "), tuples.join(", "));
    let mut query = sqlx::query(&sql);
    for row in rows {
        for (value, column) in row.iter().zip(&table.columns) {
            query = match (value, column.kind) {
                (Value::Null, Kind::Int) => query.bind(None::<i64>),
                (Value::Null, Kind::Bool) => query.bind(None::<bool>),
                (Value::Null, Kind::Text) => query.bind(None::<String>),
                (Value::Null, Kind::Bytes) => query.bind(None::<Vec<u8>>),
                (Value::Null, Kind::Real) => query.bind(None::<f64>),
                (Value::Int(i), _) => query.bind(*i),
                (Value::Bool(b), _) => query.bind(*b),
                (Value::Text(t), _) => query.bind(t.clone()),
                (Value::Bytes(b), _) => query.bind(b.clone()),
                (Value::Real(r), _) => query.bind(*r),
            };
        }
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Reads the table back from the target in key order and digests it like the source.
async fn digest_target(table: &Table, tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> StoreResult<(u64, String)> {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {} LIMIT $1 OFFSET $2",
        names.join(", "),
        table.name,
        order_by(table, true)
    );
    let mut hash = Sha256::new();
    let mut count: i64 = 0;
    loop {
        let rows: Vec<PgRow> = sqlx::query(&sql).bind(READ_BACK_ROWS).bind(count).fetch_all(&mut **tx).await?;
        for row in &rows {
            for (i, column) in table.columns.iter().enumerate() {
                let value = match column.kind {
                    Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
                    Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
                    Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
                    Kind::Bytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Bytes),
                    Kind::Real => row.try_get::<Option<f64>, _>(i)?.map(Value::Real),
                };
                value.unwrap_or(Value::Null).hash_into(&mut hash);
            }
        }
        count += rows.len() as i64;
        if (rows.len() as i64) < READ_BACK_ROWS {
            break;
        }
    }
    Ok((count as u64, hex(hash.finalize().as_slice())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::{check_target, keygate_tables, target_tables};
    use crate::Pool;

    #[test]
    fn keygates_tables_are_read_from_its_migrations() {
        let names = keygate_tables();
        for table in ["_sqlx_migrations", "tenants", "api_keys", "audit_events", "time_entries", "cluster_counts"] {
            assert!(names.iter().any(|n| n == table), "{table} is missing from {names:?}");
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    /// What the migrations create is what the check knows as keygate's, so a database that keygate
    /// migrated and that holds no rows is a valid target.
    #[tokio::test]
    async fn a_migrated_keygate_schema_without_rows_is_a_valid_target() {
        let Some(t) = crate::testing::fresh_postgres().await.expect("server") else {
            eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
            return;
        };
        let Pool::Postgres(pg) = &t.db.pool else { unreachable!("a PostgreSQL database") };
        let mut created: Vec<String> = target_tables(pg).await.expect("tables").into_iter().map(|t| t.name).collect();
        created.push("_sqlx_migrations".to_owned());
        created.sort();
        let mut known = keygate_tables();
        known.sort();
        assert_eq!(created, known, "the tables the migrations create and those the check knows");
        check_target(&t.db, pg, &known).await.expect("an empty keygate schema is a valid target");
        t.db.close().await;
    }
}
