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
}

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
    pub async fn recent(&self, after_seq: i64, since: Timestamp) -> StoreResult<Vec<Change>> {
        let rows: Vec<(i64, String, i64)> = on_pool!(self.0, p => sqlx::query_as(
            "SELECT seq, kind, entity_id FROM changes WHERE seq > $1 OR at >= $2 ORDER BY seq",
        )
        .bind(after_seq)
        .bind(since.0)
        .fetch_all(p)
        .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, kind, entity_id)| ChangeKind::parse(&kind).map(|kind| Change { seq, kind, entity_id }))
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
