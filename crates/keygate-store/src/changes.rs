//! The change feed that keeps every process's caches honest: each write that can alter a
//! verification appends `(kind, entity id)`, and every keygate process reads the recent rows.

use keygate_domain::Timestamp;

use crate::{Database, StoreResult, on_pool};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Key,
    User,
    Tenant,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::User => "user",
            Self::Tenant => "tenant",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "key" => Some(Self::Key),
            "user" => Some(Self::User),
            "tenant" => Some(Self::Tenant),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Change {
    pub seq: i64,
    pub kind: ChangeKind,
    pub entity_id: i64,
    /// When the writing process made the change (its clock, just before its commit).
    pub at: Timestamp,
}

const RECENT: &str = "SELECT seq, kind, entity_id, at FROM changes WHERE seq > $1 \
     UNION ALL SELECT seq, kind, entity_id, at FROM changes WHERE at >= $2";

/// How long change-feed rows are kept: far longer than any cache's TTL and the window for
/// out-of-order commits, so pruning never hides a change from a process that is polling.
pub const CHANGE_RETENTION_MS: i64 = 3_600_000;

/// Change-feed repository.
#[derive(Debug, Clone, Copy)]
pub struct Changes<'a>(&'a Database);

impl Database {
    pub fn changes(&self) -> Changes<'_> {
        Changes(self)
    }
}

impl Changes<'_> {
    /// Changes with a sequence number above `after_seq`, or written at or after `since`
    /// (the time window catches transactions that committed out of sequence order).
    /// Two index searches (the key, and `changes_at`) rather than one `OR`, which SQLite answers
    /// with a scan of the whole table on every poll; a row in both halves is kept once.
    pub async fn recent(&self, after_seq: i64, since: Timestamp) -> StoreResult<Vec<Change>> {
        let mut rows: Vec<(i64, String, i64, i64)> =
            on_pool!(self.0, p => sqlx::query_as(RECENT).bind(after_seq).bind(since.0).fetch_all(p).await)?;
        rows.sort_unstable_by_key(|(seq, ..)| *seq);
        rows.dedup_by_key(|(seq, ..)| *seq);
        Ok(rows
            .into_iter()
            .filter_map(|(seq, kind, entity_id, at)| {
                ChangeKind::parse(&kind).map(|kind| Change { seq, kind, entity_id, at: Timestamp(at) })
            })
            .collect())
    }

    /// The newest sequence number, or 0.
    pub async fn latest_seq(&self) -> StoreResult<i64> {
        let seq: Option<i64> =
            on_pool!(self.0, p => sqlx::query_scalar("SELECT MAX(seq) FROM changes").fetch_one(p).await)?;
        Ok(seq.unwrap_or(0))
    }

    /// Drops rows older than `before`; they have been seen by every process long ago.
    pub async fn prune(&self, before: Timestamp) -> StoreResult<u64> {
        on_pool!(self.0, p => sqlx::query("DELETE FROM changes WHERE at < $1")
            .bind(before.0)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
            .map_err(Into::into))
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_poll_of_the_change_feed_reads_through_indexes_not_the_whole_table() {
        let t = crate::testing::fresh_sqlite().await.expect("db");
        let pool = crate::testing::sqlite_pool(&t.db).expect("sqlite");
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", super::RECENT))
            .bind(5)
            .bind(7)
            .fetch_all(&pool)
            .await
            .expect("plan");
        let steps: Vec<&str> = plan.iter().map(|(_, _, _, step)| step.as_str()).collect();
        assert!(steps.iter().all(|s| !s.starts_with("SCAN")), "{steps:?}");
    }
}
