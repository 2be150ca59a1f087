//! A page as it is read: its rows gathered into one JSON array while they fit (row limit, byte
//! cap, the memory it is given) and the error of a read stopped by its time budget. Both engines'
//! readers fill a page here; no SQL here.

use std::sync::Arc;

use crate::StoreError;

/// Asked before a page's text grows, with the bytes it would then hold; `false` ends the page
/// where it is (the rows read so far), so that concurrent pages share one memory budget.
pub type PageGrowth = Arc<dyn Fn(usize) -> bool + Send + Sync>;

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
