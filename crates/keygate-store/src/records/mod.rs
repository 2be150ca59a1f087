//! Business records behind the data API: views (filtered, paged reads) and record writes.
//!
//! SQL text here is assembled only from catalogue constants (`keygate_domain::views`) and `$n`
//! placeholders; every value a client sent is bound, never spliced.
//!
//! A page is cut at its byte cap *while* its rows are read, on both engines: SQLite steps the
//! statement row by row (`sqlite_reader`), PostgreSQL reads a cursor in batches sized from the
//! room left, so neither the database nor keygate ever renders more than the page can hold.
//! Each page also runs under a time budget (`statement_timeout`, SQLite's progress handler).
//!
//! One job per file: what a read asks for ([`query`]), its SQL ([`sql`]), the page it fills
//! ([`page`]), reading ([`read`]) and writing ([`write`]) records within the tenant's storage
//! quota ([`storage`]), and binding values ([`bind`]).

mod bind;
mod page;
mod query;
mod read;
mod sql;
mod storage;
mod write;

use crate::Database;

pub use page::{PageGrowth, PageRows};
pub(crate) use page::{PageText, time_budget_spent};
pub use query::{Properties, RowShape, ViewQuery, Visibility};
#[cfg(feature = "fuzzing")]
pub(crate) use sql::{Sql, compile};
pub use storage::{RECORD_ROW_UNITS, STORAGE_SHARDS, StorageQuota};
pub(crate) use write::remember_answer;
pub use write::{FieldValue, Idempotency, RecordWrite, SqlType};

/// Records repository.
#[derive(Debug, Clone, Copy)]
pub struct Records<'a>(&'a Database);

impl Database {
    pub fn records(&self) -> Records<'_> {
        Records(self)
    }
}
