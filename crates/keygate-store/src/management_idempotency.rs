//! The management API's `Idempotency-Key` entries (table `management_idempotency`): one per key
//! and Idempotency-Key, first reserved while the request runs, then holding its answer. The
//! bounds (how long an entry lives, how many one key holds, how large a stored answer may be) are
//! the service's, passed in; this module only applies them. What an answer may contain (never a
//! secret) is the service's too.

use crate::{Database, StoreResult, on_pool};

/// A stored entry: the request's digest, and once answered the answer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdempotentEntry {
    pub tenant_id: i64,
    pub key_id: i64,
    pub idem_key: String,
    pub request_hash: Vec<u8>,
    pub created_at: i64,
    /// `None` while the first request is in progress.
    pub status: Option<i64>,
    /// A JSON array of `[name, value]` pairs (content type, location, version).
    pub headers: String,
    pub body: String,
    /// What was left out of the stored answer (empty: nothing), e.g. `secret`.
    pub withheld: String,
}

/// The first request with its Idempotency-Key, or the entry that was already there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved for this request: run it, then [`ManagementIdempotency::answer`] or
    /// [`ManagementIdempotency::release`].
    Reserved,
    /// Another request with this key came first (in progress, or answered).
    Existing(IdempotentEntry),
}

/// What [`ManagementIdempotency::reserve`] applies.
#[derive(Debug, Clone, Copy)]
pub struct ReserveLimits {
    /// Now (milliseconds since 1970).
    pub now: i64,
    /// Entries created before this have expired: ignored and replaced.
    pub expired_before: i64,
    /// An entry still in progress that was created before this was abandoned (its request died):
    /// replaced.
    pub abandoned_before: i64,
    /// The most entries one key holds; the oldest beyond it are evicted.
    pub per_key: u32,
}

const COLUMNS: &str = "tenant_id, key_id, idem_key, request_hash, created_at, status, headers, body, withheld";

/// The management idempotency repository.
#[derive(Debug, Clone, Copy)]
pub struct ManagementIdempotency<'a>(&'a Database);

impl Database {
    pub fn management_idempotency(&self) -> ManagementIdempotency<'_> {
        ManagementIdempotency(self)
    }
}

impl ManagementIdempotency<'_> {
    /// Reserves `idem_key` of key `key_id` for a request with digest `hash`, in one transaction:
    /// an expired or abandoned entry of that name is dropped first, and after the insert the
    /// key's oldest entries beyond `limits.per_key` are evicted. When an entry is there (answered
    /// or in progress, whatever its digest), it is returned unchanged.
    pub async fn reserve(
        &self,
        tenant: i64,
        key_id: i64,
        idem_key: &str,
        hash: &[u8],
        limits: ReserveLimits,
    ) -> StoreResult<Reservation> {
        let select = format!("SELECT {COLUMNS} FROM management_idempotency WHERE key_id = $1 AND idem_key = $2");
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "DELETE FROM management_idempotency WHERE key_id = $1 AND idem_key = $2 \
                 AND (created_at < $3 OR (status IS NULL AND created_at < $4))",
            )
            .bind(key_id)
            .bind(idem_key)
            .bind(limits.expired_before)
            .bind(limits.abandoned_before)
            .execute(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO management_idempotency (tenant_id, key_id, idem_key, request_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id, idem_key) DO NOTHING",
            )
            .bind(tenant)
            .bind(key_id)
            .bind(idem_key)
            .bind(hash.to_vec())
            .bind(limits.now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                let existing: IdempotentEntry =
                    sqlx::query_as(&select).bind(key_id).bind(idem_key).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                return Ok(Reservation::Existing(existing));
            }
            sqlx::query(
                "DELETE FROM management_idempotency WHERE key_id = $1 AND seq <= \
                 (SELECT seq FROM management_idempotency WHERE key_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
            )
            .bind(key_id)
            .bind(i64::from(limits.per_key))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Reservation::Reserved)
        })
    }

    /// Stores the answer of the reserved request (`status`, `headers` as a JSON array of pairs,
    /// `body`, and what was `withheld` from it).
    pub async fn answer(
        &self,
        key_id: i64,
        idem_key: &str,
        status: u16,
        headers: &str,
        body: &str,
        withheld: &str,
    ) -> StoreResult<()> {
        on_pool!(self.0, p => sqlx::query(
            "UPDATE management_idempotency SET status = $3, headers = $4, body = $5, withheld = $6 \
             WHERE key_id = $1 AND idem_key = $2 AND status IS NULL",
        )
        .bind(key_id)
        .bind(idem_key)
        .bind(i64::from(status))
        .bind(headers)
        .bind(body)
        .bind(withheld)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Drops the reservation of a request that has no answer to keep (a server error, a request
    /// that died): a retry runs again.
    pub async fn release(&self, key_id: i64, idem_key: &str) -> StoreResult<()> {
        on_pool!(self.0, p => sqlx::query(
            "DELETE FROM management_idempotency WHERE key_id = $1 AND idem_key = $2 AND status IS NULL",
        )
        .bind(key_id)
        .bind(idem_key)
        .execute(p)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The entry of `idem_key` of key `key_id`, as stored.
    pub async fn get(&self, key_id: i64, idem_key: &str) -> StoreResult<Option<IdempotentEntry>> {
        let select = format!("SELECT {COLUMNS} FROM management_idempotency WHERE key_id = $1 AND idem_key = $2");
        Ok(on_pool!(self.0, p => sqlx::query_as(&select).bind(key_id).bind(idem_key).fetch_optional(p).await)?)
    }

    /// How many entries key `key_id` holds.
    pub async fn count(&self, key_id: i64) -> StoreResult<i64> {
        Ok(on_pool!(self.0, p => sqlx::query_scalar("SELECT COUNT(*) FROM management_idempotency WHERE key_id = $1")
            .bind(key_id)
            .fetch_one(p)
            .await)?)
    }

    /// Deletes at most `limit` entries created before `before`; returns how many.
    pub async fn prune(&self, before: i64, limit: u32) -> StoreResult<u64> {
        Ok(on_pool!(self.0, p => sqlx::query(
            "DELETE FROM management_idempotency WHERE seq IN \
             (SELECT seq FROM management_idempotency WHERE created_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?)
    }
}
