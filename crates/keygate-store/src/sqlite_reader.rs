//! Page reads of the data API and verification's key reads on SQLite, through rusqlite on a few
//! read-only connections.
//!
//! sqlx hands SQLite rows from its worker thread to the async side one by one, which for a
//! 1000-row page costs more than reading the rows. Here a blocking task steps the statement and
//! writes each row straight into the page's JSON text. Same SQL (built by `records::view_sql`),
//! same bound values, read-only connections: this path cannot write. Stepping stops at the first
//! row the page cannot hold (by count, bytes or memory), and a progress handler stops a read that
//! runs past its time budget.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use keygate_domain::KeyDigest;
use keygate_domain::views::{Bound, Column, ColumnType};
use rusqlite::{OpenFlags, OptionalExtension as _, types::ValueRef};
use serde_json::{Map, Value as Json};

use crate::{
    PageRows, StoreError, StoreResult,
    records::{PageGrowth, PageText, time_budget_spent},
    rows::{KEY_COLUMNS, KeyRow},
};

/// What bounds one page read.
pub(crate) struct PageRead {
    pub limit: u32,
    pub max_bytes: usize,
    pub time_budget: Option<Duration>,
    pub growth: Option<PageGrowth>,
}

/// SQLite virtual-machine steps between two looks at the clock: about a few microseconds.
const STEPS_PER_CHECK: std::os::raw::c_int = 1000;

/// What a read-only connection is for; each kind keeps its own idle connections.
#[derive(Debug, Clone, Copy)]
enum Use {
    /// Data-API pages, on blocking threads: wait up to 10 s for SQLite's locks (in WAL mode a
    /// reader rarely has to); read the file through a 256 MiB memory map and 32 MiB of cache.
    Page = 0,
    /// Verification's key reads, on the runtime's threads: never wait for a lock (the caller
    /// asks sqlx instead); no memory map, so that the pages a process reads all over a large
    /// database are not counted in its resident memory once per connection, and 8 MiB of cache,
    /// which holds the upper levels of the digest index and the table.
    Key = 1,
}

impl Use {
    fn busy_timeout(self) -> Duration {
        match self {
            Use::Page => Duration::from_secs(10),
            Use::Key => Duration::ZERO,
        }
    }

    fn pragmas(self) -> &'static str {
        match self {
            Use::Page => "PRAGMA mmap_size = 268435456; PRAGMA cache_size = -32768;",
            Use::Key => "PRAGMA mmap_size = 0; PRAGMA cache_size = -8192;",
        }
    }
}

/// Idle read-only connections to one SQLite file.
pub(crate) struct Readers {
    path: PathBuf,
    /// Per [`Use`], at most 8 each.
    idle: [Mutex<Vec<rusqlite::Connection>>; 2],
    /// Connections reading a page now (for `/metrics`).
    in_use: AtomicUsize,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").field("path", &self.path).finish_non_exhaustive()
    }
}

/// What a page row carries, owned so that it can cross into a blocking task.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub columns: Vec<&'static Column>,
    /// `None`: no properties; `Some(None)`: all; `Some(Some(keys))`: only these.
    pub properties: Option<Option<Vec<String>>>,
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("sqlite read: {e}")))
}

impl Readers {
    pub(crate) fn new(path: &Path) -> Self {
        Self { path: path.to_owned(), idle: Default::default(), in_use: AtomicUsize::new(0) }
    }

    /// Connections reading a page now, and idle ones of either use.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let idle = self.idle.iter().map(|l| l.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()).sum();
        (self.in_use.load(Ordering::Relaxed), idle)
    }

    /// An idle connection for `what`, or a new one.
    fn connection(&self, what: Use) -> rusqlite::Result<rusqlite::Connection> {
        let idle = self.idle[what as usize].lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        if let Some(c) = idle {
            return Ok(c);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let c = rusqlite::Connection::open_with_flags(&self.path, flags)?;
        c.busy_timeout(what.busy_timeout())?;
        c.execute_batch(what.pragmas())?;
        Ok(c)
    }

    fn give_back(&self, what: Use, c: rusqlite::Connection) {
        let mut idle = self.idle[what as usize].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < 8 {
            idle.push(c);
        }
    }

    /// Runs a page query (`SELECT id, columns…, [properties] … LIMIT limit + 1`) and renders the
    /// rows that fit as a JSON array, within the read's time budget.
    pub(crate) async fn page(
        self: &Arc<Self>,
        sql: String,
        binds: Vec<Bound>,
        shape: Shape,
        read: PageRead,
    ) -> StoreResult<PageRows> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = this.connection(Use::Page).map_err(failed)?;
            this.in_use.fetch_add(1, Ordering::Relaxed);
            if let Some(budget) = read.time_budget {
                let deadline = Instant::now() + budget;
                conn.progress_handler(STEPS_PER_CHECK, Some(move || Instant::now() >= deadline));
            }
            let page = read_page(&conn, &sql, &binds, &shape, &read);
            conn.progress_handler(0, None::<fn() -> bool>);
            this.in_use.fetch_sub(1, Ordering::Relaxed);
            this.give_back(Use::Page, conn);
            page
        })
        .await
        .map_err(failed)?
    }
}

impl Readers {
    /// The row of the key with this digest, read on the calling thread: verification's cache
    /// miss. A point read through the unique index costs a few microseconds from the page
    /// cache, less than handing it to sqlx's worker thread and back (which was most of a miss's
    /// 100 µs); it can neither write nor wait for a lock. `None`: SQLite answered busy (a rare
    /// moment in WAL mode, e.g. while another connection recovers the WAL index); the caller then
    /// asks sqlx, which waits without holding this thread.
    pub(crate) fn key_by_digest(&self, digest: &KeyDigest) -> Option<StoreResult<Option<KeyRow>>> {
        let read = self.connection(Use::Key).and_then(|conn| {
            let row = conn
                .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE digest = ?1"))
                .and_then(|mut stmt| stmt.query_row([&digest.as_bytes()[..]], KeyRow::from_rusqlite).optional());
            self.give_back(Use::Key, conn);
            row
        });
        match read {
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => None,
            read => Some(read.map_err(failed)),
        }
    }
}

/// A failed step: the time budget's interruption, or a failure.
fn step_failed(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::OperationInterrupted) => time_budget_spent(),
        _ => failed(e),
    }
}

fn read_page(
    conn: &rusqlite::Connection,
    sql: &str,
    binds: &[Bound],
    shape: &Shape,
    read: &PageRead,
) -> StoreResult<PageRows> {
    let mut stmt = conn.prepare_cached(sql).map_err(failed)?;
    for (i, b) in binds.iter().enumerate() {
        let index = stmt
            .parameter_index(&format!("${}", i + 1))
            .map_err(failed)?
            .ok_or_else(|| failed(format!("parameter ${} is not in the statement", i + 1)))?;
        match b {
            Bound::Int(v) => stmt.raw_bind_parameter(index, v),
            Bound::Float(v) => stmt.raw_bind_parameter(index, v),
            Bound::Text(v) => stmt.raw_bind_parameter(index, v),
            Bound::Bool(v) => stmt.raw_bind_parameter(index, v),
        }
        .map_err(failed)?;
    }
    let mut rows = stmt.raw_query();
    let mut page = PageText::new(read.limit, read.max_bytes, read.growth.as_ref());
    let mut row_text = String::with_capacity(1024);
    while let Some(row) = rows.next().map_err(step_failed)? {
        row_text.clear();
        // The row after a full page is only counted: it tells that more rows follow.
        let id = if page.fetched() < i64::from(read.limit) { render(row, shape, &mut row_text)? } else { 0 };
        if !page.push(id, &row_text) {
            break;
        }
    }
    Ok(page.finish())
}

/// Writes one row as a JSON object; returns its id (column 0).
fn render(row: &rusqlite::Row<'_>, shape: &Shape, out: &mut String) -> StoreResult<i64> {
    use std::fmt::Write as _;
    let value = |i: usize| row.get_ref(i).map_err(failed);
    let id = match value(0)? {
        ValueRef::Integer(i) => i,
        _ => return Err(StoreError::Corrupt("a row id is not an integer".into())),
    };
    out.push('{');
    for (n, c) in shape.columns.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        json_string(out, c.name);
        out.push(':');
        match (c.ty, value(n + 1)?) {
            (_, ValueRef::Null) => out.push_str("null"),
            (ColumnType::Bool, ValueRef::Integer(i)) => out.push_str(if i != 0 { "true" } else { "false" }),
            (ColumnType::Money, ValueRef::Integer(cents)) => {
                let sign = if cents < 0 { "-" } else { "" };
                let _ = write!(out, "{sign}{}.{:02}", (cents / 100).unsigned_abs(), (cents % 100).unsigned_abs());
            }
            (ColumnType::Int | ColumnType::Number, ValueRef::Integer(i)) => {
                let _ = write!(out, "{i}");
            }
            (ColumnType::Number, ValueRef::Real(f)) if f.is_finite() => {
                let _ = write!(out, "{f}");
            }
            (ColumnType::JsonList, ValueRef::Text(t)) => match std::str::from_utf8(t) {
                Ok(t) if serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok() => out.push_str(t),
                _ => out.push_str("[]"),
            },
            (ColumnType::Text | ColumnType::Date, ValueRef::Text(t)) => {
                json_string(out, std::str::from_utf8(t).map_err(|_| StoreError::Corrupt("text is not UTF-8".into()))?);
            }
            (_, other) => return Err(StoreError::Corrupt(format!("column {} holds {:?}", c.name, other.data_type()))),
        }
    }
    if let Some(which) = &shape.properties {
        if !shape.columns.is_empty() {
            out.push(',');
        }
        out.push_str("\"properties\":");
        let text = match value(shape.columns.len() + 1)? {
            ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or("{}"),
            _ => "{}",
        };
        match which {
            None if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => out.push_str(text),
            None => out.push_str("{}"),
            Some(keys) => {
                let all: Map<String, Json> = serde_json::from_str(text).unwrap_or_default();
                let picked: Map<String, Json> =
                    keys.iter().map(|k| (k.clone(), all.get(k).cloned().unwrap_or(Json::Null))).collect();
                out.push_str(&Json::Object(picked).to_string());
            }
        }
    }
    out.push('}');
    Ok(id)
}

/// Appends `s` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use keygate_domain::KeyDigest;

    use super::Readers;

    /// Another process holding the database exclusively (WAL in `locking_mode=EXCLUSIVE`) makes a
    /// reader busy: verification's read must hand back at once, so that the caller waits off the
    /// runtime's thread, and read normally once the database is free.
    /// A WAL database in a fresh directory with an `api_keys` table holding key 7 of `digest`,
    /// and the connection that made it.
    fn database_with_one_key(digest: &KeyDigest) -> (std::path::PathBuf, rusqlite::Connection) {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("keygate-reader-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("keygate.db");
        let holder = rusqlite::Connection::open(&path).expect("open");
        holder
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE api_keys (id INTEGER PRIMARY KEY, tenant_id, user_id, \
                 created_by, purpose, digest UNIQUE, display, ip_ranges, scopes, units, expires_at, enabled, \
                 revoked_at, created_at, last_used_at, last_used_ip, rolled_from, rate_limit_per_minute);",
            )
            .expect("schema");
        holder
            .execute(
                "INSERT INTO api_keys VALUES (7, 1, 2, NULL, 'p', ?1, 'kg_…', '[]', NULL, NULL, NULL, 1, NULL, 0, NULL, \
                 NULL, NULL, NULL)",
                [&digest.as_bytes()[..]],
            )
            .expect("row");
        (dir, holder)
    }

    /// Another process holding the database exclusively (WAL in `locking_mode=EXCLUSIVE`) makes a
    /// reader busy: verification's read must hand back at once, so that the caller waits off the
    /// runtime's thread, and read normally once the database is free.
    #[test]
    fn a_key_read_while_the_database_is_held_exclusively_hands_back_instead_of_waiting() {
        let digest = KeyDigest::of("kg_the key of this test");
        let (dir, holder) = database_with_one_key(&digest);
        let path = dir.join("keygate.db");
        holder
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN IMMEDIATE; UPDATE api_keys SET enabled = 0;")
            .expect("hold");
        let readers = Readers::new(&path);
        let started = std::time::Instant::now();
        assert!(readers.key_by_digest(&digest).is_none(), "busy: handed back");
        // Handed back at once, not after the 10 s busy timeout of page reads.
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        drop(holder);
        let found = readers.key_by_digest(&digest).expect("not busy").expect("read").expect("found");
        assert_eq!(crate::rows::KeyRow::id_of(&found), 7);
        assert!(readers.key_by_digest(&KeyDigest::of("kg_another")).expect("not busy").expect("read").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Key reads open a connection per thread reading at once; afterwards at most 8 stay open.
    #[test]
    fn after_32_threads_read_keys_at_once_at_most_8_connections_stay_open() {
        let digest = KeyDigest::of("kg_the key of this test");
        let (dir, holder) = database_with_one_key(&digest);
        drop(holder);
        let readers = Readers::new(&dir.join("keygate.db"));
        let start = std::sync::Barrier::new(32);
        std::thread::scope(|scope| {
            for _ in 0..32 {
                scope.spawn(|| {
                    start.wait();
                    for _ in 0..20 {
                        assert!(matches!(readers.key_by_digest(&digest), Some(Ok(Some(_)))));
                    }
                });
            }
        });
        let (in_use, idle) = readers.usage();
        assert_eq!(in_use, 0);
        assert!((1..=8).contains(&idle), "{idle} idle connections");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn strings_are_escaped_as_json() {
        let mut out = String::new();
        super::json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(serde_json::from_str::<String>(&out).expect("valid JSON"), "a\"b\\c\nd\u{1}é");
    }
}
