//! The counts nodes exchange for cluster-wide limits (PostgreSQL only; see migration 0011).

use keygate_domain::Timestamp;

use crate::{Database, Pool, ROWS_PER_STATEMENT, StoreResult};

/// What a count is about: a key's accepted calls, or a source's failed verifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountKind {
    Key,
    Failure,
}

impl CountKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Failure => "failure",
        }
    }
}

/// One node's report: `n` events of `kind` about `subject` (a key id as 8 bytes, or a source as 16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub kind: CountKind,
    pub subject: Vec<u8>,
    pub n: i64,
}

/// A count another node reported, with its row number (each row is applied once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedCount {
    pub seq: i64,
    pub at: Timestamp,
    /// The reporting node's name (random per process).
    pub node: String,
    pub count: Count,
}

impl Database {
    /// The newest report's row number (0 when there is none); `None` on SQLite.
    pub async fn newest_count_seq(&self) -> StoreResult<Option<i64>> {
        let Pool::Postgres(p) = &self.pool else { return Ok(None) };
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM cluster_counts").fetch_one(p).await?;
        Ok(Some(newest.unwrap_or(0)))
    }

    /// The row number just before the first report made at or after `since` (the newest row's when
    /// there is none, 0 when the table is empty): a node that starts reads from there, so that it
    /// knows what the others spent of the budgets it will share. `None` on SQLite.
    pub async fn count_seq_before(&self, since: Timestamp) -> StoreResult<Option<i64>> {
        let Pool::Postgres(p) = &self.pool else { return Ok(None) };
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT COALESCE((SELECT MIN(seq) - 1 FROM cluster_counts WHERE at >= $1), \
             (SELECT MAX(seq) FROM cluster_counts))",
        )
        .bind(since.0)
        .fetch_one(p)
        .await?;
        Ok(Some(seq.unwrap_or(0)))
    }

    /// Appends `mine` as `node`'s report and returns what other nodes reported after the row
    /// `after`, at most 100 000 rows. `None` on SQLite, where there are no other nodes.
    pub async fn exchange_counts(
        &self,
        node: &str,
        mine: &[Count],
        after: i64,
    ) -> StoreResult<Option<Vec<ReportedCount>>> {
        let Pool::Postgres(p) = &self.pool else { return Ok(None) };
        let now = Timestamp::now().0;
        for chunk in mine.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO cluster_counts (at, node, kind, subject, n) ");
            q.push_values(chunk, |mut row, c| {
                row.push_bind(now).push_bind(node).push_bind(c.kind.as_str()).push_bind(&c.subject).push_bind(c.n);
            });
            q.build().execute(p).await?;
        }
        let rows: Vec<(i64, i64, String, String, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT seq, at, node, kind, subject, n FROM cluster_counts WHERE seq > $1 AND node <> $2 \
             ORDER BY seq LIMIT 100000",
        )
        .bind(after)
        .bind(node)
        .fetch_all(p)
        .await?;
        Ok(Some(
            rows.into_iter()
                .filter_map(|(seq, at, node, kind, subject, n)| {
                    let kind = match kind.as_str() {
                        "key" => CountKind::Key,
                        "failure" => CountKind::Failure,
                        _ => return None,
                    };
                    Some(ReportedCount { seq, at: Timestamp(at), node, count: Count { kind, subject, n } })
                })
                .collect(),
        ))
    }

    /// Drops reports older than `before`; returns how many.
    pub async fn prune_counts(&self, before: Timestamp) -> StoreResult<u64> {
        let Pool::Postgres(p) = &self.pool else { return Ok(0) };
        let done = sqlx::query("DELETE FROM cluster_counts WHERE at < $1").bind(before.0).execute(p).await?;
        Ok(done.rows_affected())
    }
}
