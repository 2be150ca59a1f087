//! Searching one tenant's audit log for the console: a time range, an action prefix, text in the
//! actor or the target, and paging by id in both directions, at most [`AUDIT_SEARCH_MAX_ROWS`]
//! rows per read. Every statement is fixed text with bound parameters; the tenant is always the
//! first condition, so no filter reaches another tenant's rows.
//!
//! [`AuditSearchRepo::events`] serves the management API's `GET /v1/audit-events`, where a SIEM
//! polls forwards from the last id it saw and must get every event once: ids only ever grow, and
//! a row is served only once every smaller id is final. SQLite has one writer at a time, whose
//! ids are taken and committed in order, so there every committed row is final. On PostgreSQL two
//! transactions may take ids 5 and 6 and commit 6 first; a poll between the commits would serve 6
//! and the next poll (`after=6`) never 5. So there a read serves only rows written (by the
//! database's clock, column `written_at`) at least `settle` before the read: every transaction
//! that took a smaller id took it earlier and has had `settle` to commit. Audit rows are written
//! at the end of short transactions, well inside the settle time ([`AUDIT_SETTLE_MS`]).

use keygate_domain::TenantId;

use crate::{AuditRecord, Database, StoreResult, on_pool};

/// The most rows one search returns, whatever its `limit` (a CSV export's cap).
pub const AUDIT_SEARCH_MAX_ROWS: u32 = 10_000;

/// How long a PostgreSQL audit row waits before the management API serves it: a transaction that
/// took an id must commit within this time for a poll never to skip it (see the module's header).
pub const AUDIT_SETTLE_MS: i64 = 2_000;

/// Which of a tenant's events to read. Text filters are case-insensitive substrings (ASCII case);
/// `%`, `_` and `\` in them match themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSearch {
    /// Events at or after this time (milliseconds since 1970).
    pub from: Option<i64>,
    /// Events before this time (milliseconds since 1970).
    pub to: Option<i64>,
    /// Events whose action starts with this text (`key.` matches every key event).
    pub action: Option<String>,
    /// Events whose actor's label contains this text (an email, `system (cli)`, `key 7`).
    pub actor: Option<String>,
    /// Events whose target contains this text (`key 7`, `user 3`, an email).
    pub target: Option<String>,
    /// Events by this key (its calls) or about it (target `key N`), exactly.
    pub key: Option<i64>,
    /// The page older than this id (newest first), or …
    pub before_id: Option<i64>,
    /// … the page newer than this id (still returned newest first).
    pub after_id: Option<i64>,
    /// Rows wanted, 1 to [`AUDIT_SEARCH_MAX_ROWS`].
    pub limit: u32,
}

/// The search statement followed by its ORDER BY: one fixed text per paging direction.
macro_rules! search_sql {
    ($order:literal) => {
        concat!(
            "SELECT id, tenant_id, at, actor_kind, actor_id, actor_label, action, target, details, source_ip \
             FROM audit_events WHERE tenant_id = $1 \
             AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at < $3) \
             AND ($4 IS NULL OR action LIKE $4 ESCAPE '\\') \
             AND ($5 IS NULL OR LOWER(actor_label) LIKE $5 ESCAPE '\\') \
             AND ($6 IS NULL OR LOWER(target) LIKE $6 ESCAPE '\\') \
             AND ($7 IS NULL OR id < $7) AND ($8 IS NULL OR id > $8) \
             AND ($9 IS NULL OR (actor_kind = 'key' AND actor_id = $9) OR target = $10) ",
            $order
        )
    };
}

const SEARCH_OLDER: &str = search_sql!("ORDER BY id DESC LIMIT $11");
const SEARCH_NEWER: &str = search_sql!("ORDER BY id ASC LIMIT $11");

/// The management API's search: [`search_sql`]'s conditions, plus events by, by keys of, or about
/// user `$12` (whose target is `user <email>`), and only rows written before `$13` (settled).
macro_rules! events_sql {
    ($order:literal) => {
        concat!(
            search_sql!(""),
            "AND ($12 IS NULL OR (actor_kind = 'user' AND actor_id = $12) \
             OR (actor_kind = 'key' AND actor_label LIKE $14) OR details LIKE $15 \
             OR target = (SELECT 'user ' || email FROM users WHERE tenant_id = $1 AND id = $12)) \
             AND ($13 IS NULL OR written_at IS NULL OR written_at <= $13) ",
            $order
        )
    };
}

const EVENTS_OLDER: &str = events_sql!("ORDER BY id DESC LIMIT $11");
const EVENTS_NEWER: &str = events_sql!("ORDER BY id ASC LIMIT $11");

/// The audit search repository.
#[derive(Debug, Clone, Copy)]
pub struct AuditSearchRepo<'a>(&'a Database);

impl Database {
    pub fn audit_search(&self) -> AuditSearchRepo<'_> {
        AuditSearchRepo(self)
    }
}

/// `text` as a LIKE pattern that matches it literally: `\`, `%` and `_` escaped with `\`.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl AuditSearchRepo<'_> {
    /// As [`Self::search`], for the management API: also events by, by keys of, or about `user`;
    /// and on PostgreSQL only rows written at least `settle_ms` ago by the database's clock (see
    /// the module's header; SQLite's rows are final once committed). With `after_id` (and no
    /// `before_id`) the oldest `limit` newer events, oldest first; otherwise newest first.
    pub async fn events(
        &self,
        tenant: TenantId,
        search: &AuditSearch,
        user: Option<i64>,
        settle_ms: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        let limit = i64::from(search.limit.clamp(1, AUDIT_SEARCH_MAX_ROWS));
        let text = |t: &Option<String>| {
            t.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(|t| format!("%{}%", literal(&t.to_lowercase())))
        };
        let action =
            search.action.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(|a| format!("{}%", literal(a)));
        let newer = search.after_id.is_some() && search.before_id.is_none();
        let sql = if newer { EVENTS_NEWER } else { EVENTS_OLDER };
        let settled: Option<i64> = match &self.0.pool {
            crate::Pool::Sqlite(_) => None,
            crate::Pool::Postgres(p) => {
                let now: i64 = sqlx::query_scalar("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT")
                    .fetch_one(p)
                    .await?;
                Some(now.saturating_sub(settle_ms.max(0)))
            }
        };
        let rows = on_pool!(self.0, p => sqlx::query_as::<_, AuditRecord>(sql)
            .bind(tenant.0)
            .bind(search.from)
            .bind(search.to)
            .bind(action.clone())
            .bind(text(&search.actor))
            .bind(text(&search.target))
            .bind(search.before_id)
            .bind(search.after_id)
            .bind(search.key)
            .bind(search.key.map(|k| format!("key {k}")))
            .bind(limit)
            .bind(user)
            .bind(settled)
            .bind(user.map(|u| format!("key % (user {u})")))
            .bind(user.map(|u| format!("%(user {u})%")))
            .fetch_all(p)
            .await
            .map_err(crate::StoreError::from))?;
        Ok(rows)
    }

    /// The tenant's events matching `search`, newest first, at most `limit` (and never more than
    /// [`AUDIT_SEARCH_MAX_ROWS`]). With `after_id`, the oldest `limit` events newer than it.
    pub async fn search(&self, tenant: TenantId, search: &AuditSearch) -> StoreResult<Vec<AuditRecord>> {
        let limit = i64::from(search.limit.clamp(1, AUDIT_SEARCH_MAX_ROWS));
        let text = |t: &Option<String>| {
            t.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(|t| format!("%{}%", literal(&t.to_lowercase())))
        };
        let action =
            search.action.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(|a| format!("{}%", literal(a)));
        let newer = search.after_id.is_some() && search.before_id.is_none();
        let sql = if newer { SEARCH_NEWER } else { SEARCH_OLDER };
        let mut rows = on_pool!(self.0, p => sqlx::query_as::<_, AuditRecord>(sql)
            .bind(tenant.0)
            .bind(search.from)
            .bind(search.to)
            .bind(action.clone())
            .bind(text(&search.actor))
            .bind(text(&search.target))
            .bind(search.before_id)
            .bind(search.after_id)
            .bind(search.key)
            .bind(search.key.map(|k| format!("key {k}")))
            .bind(limit)
            .fetch_all(p)
            .await
            .map_err(crate::StoreError::from))?;
        if newer {
            rows.reverse();
        }
        Ok(rows)
    }
}
