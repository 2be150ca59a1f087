//! Console sessions and log-in throttling. Sessions are looked up by the SHA-256 digest of the
//! cookie's token; the token itself is never stored. No rules here beyond integrity: the service
//! decides lifetimes and limits and passes the times in.

use keygate_domain::{TenantId, Timestamp, UserId};

use crate::{Database, StoreResult, on_pool};

/// A stored console session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    pub tenant_id: i64,
    pub user_id: i64,
    pub csrf_token: String,
    pub form_nonce: Option<String>,
    pub flash: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// A session about to be stored.
#[derive(Debug)]
pub struct NewSession<'a> {
    pub digest: &'a [u8],
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub csrf_token: &'a str,
    pub expires_at: Timestamp,
    pub ip: Option<&'a str>,
}

/// The throttling state of one subject after a failure was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    pub failures: i64,
    pub locked_until: Option<Timestamp>,
}

/// Session and throttle repository.
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'a>(&'a Database);

impl Database {
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions(self)
    }
}

impl Sessions<'_> {
    /// Stores a new session and ends the user's oldest beyond the newest `keep` (the new one
    /// included), in one transaction: a user's log-ins hold at most `keep` rows however often they
    /// log in.
    pub async fn insert(&self, new: &NewSession<'_>, keep: u32) -> StoreResult<()> {
        let now = Timestamp::now().0;
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO console_sessions (digest, tenant_id, user_id, csrf_token, created_at, last_seen_at, expires_at, ip) \
                 VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
            )
            .bind(new.digest)
            .bind(new.tenant_id.0)
            .bind(new.user_id.0)
            .bind(new.csrf_token)
            .bind(now)
            .bind(new.expires_at.0)
            .bind(new.ip)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM console_sessions WHERE tenant_id = $1 AND user_id = $2 AND digest NOT IN \
                 (SELECT digest FROM console_sessions WHERE tenant_id = $1 AND user_id = $2 \
                  ORDER BY created_at DESC, digest DESC LIMIT $3)",
            )
            .bind(new.tenant_id.0)
            .bind(new.user_id.0)
            .bind(i64::from(keep))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn by_digest(&self, digest: &[u8]) -> StoreResult<Option<SessionRecord>> {
        on_pool!(self.0, p => sqlx::query_as::<_, SessionRecord>(
            "SELECT tenant_id, user_id, csrf_token, form_nonce, flash, created_at, last_seen_at, expires_at \
             FROM console_sessions WHERE digest = $1",
        )
        .bind(digest)
        .fetch_optional(p)
        .await
        .map_err(Into::into))
    }

    /// Records activity: the idle timer restarts from `at`.
    pub async fn touch(&self, digest: &[u8], at: Timestamp) -> StoreResult<()> {
        on_pool!(self.0, p => sqlx::query("UPDATE console_sessions SET last_seen_at = $2 WHERE digest = $1")
            .bind(digest)
            .bind(at.0)
            .execute(p)
            .await
            .map(|_| ())
            .map_err(Into::into))
    }

    pub async fn delete(&self, digest: &[u8]) -> StoreResult<()> {
        on_pool!(self.0, p => sqlx::query("DELETE FROM console_sessions WHERE digest = $1")
            .bind(digest)
            .execute(p)
            .await
            .map(|_| ())
            .map_err(Into::into))
    }

    /// Deletes sessions that expired before `now` (housekeeping at log-in time).
    pub async fn delete_expired(&self, now: Timestamp, idle_cutoff: Timestamp) -> StoreResult<()> {
        on_pool!(self.0, p => sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1 OR last_seen_at < $2")
            .bind(now.0)
            .bind(idle_cutoff.0)
            .execute(p)
            .await
            .map(|_| ())
            .map_err(Into::into))
    }

    /// Sets (or clears) the one-shot message shown on the next page.
    pub async fn set_flash(&self, digest: &[u8], flash: Option<&str>) -> StoreResult<()> {
        on_pool!(self.0, p => sqlx::query("UPDATE console_sessions SET flash = $2 WHERE digest = $1")
            .bind(digest)
            .bind(flash)
            .execute(p)
            .await
            .map(|_| ())
            .map_err(Into::into))
    }

    /// Stores a new single-use form nonce (replacing the previous one).
    pub async fn set_form_nonce(&self, digest: &[u8], nonce: &str) -> StoreResult<()> {
        on_pool!(self.0, p => sqlx::query("UPDATE console_sessions SET form_nonce = $2 WHERE digest = $1")
            .bind(digest)
            .bind(nonce)
            .execute(p)
            .await
            .map(|_| ())
            .map_err(Into::into))
    }

    /// Consumes the form nonce: true exactly once for the nonce that was stored, so a form
    /// that is submitted twice (a reload of its answer) acts once.
    pub async fn take_form_nonce(&self, digest: &[u8], nonce: &str) -> StoreResult<bool> {
        on_pool!(self.0, p => sqlx::query(
            "UPDATE console_sessions SET form_nonce = NULL WHERE digest = $1 AND form_nonce = $2",
        )
        .bind(digest)
        .bind(nonce)
        .execute(p)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(Into::into))
    }

    /// The lock of `subject`, if it is locked at `now`.
    pub async fn locked_until(&self, subject: &str, now: Timestamp) -> StoreResult<Option<Timestamp>> {
        let until: Option<Option<i64>> = on_pool!(self.0, p => sqlx::query_scalar(
            "SELECT locked_until FROM login_throttle WHERE subject = $1",
        )
        .bind(subject)
        .fetch_optional(p)
        .await)?;
        Ok(until.flatten().filter(|u| *u > now.0).map(Timestamp))
    }

    /// Counts a failed log-in of `subject`. Failures older than `window_start_after` start a new
    /// window; reaching `limit` locks the subject until `lock_until`.
    pub async fn count_failure(
        &self,
        subject: &str,
        now: Timestamp,
        window_start_after: Timestamp,
        limit: i64,
        lock_until: Timestamp,
    ) -> StoreResult<ThrottleState> {
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO login_throttle (subject, failures, window_start, locked_until) VALUES ($1, 1, $2, NULL) \
                 ON CONFLICT (subject) DO UPDATE SET \
                 failures = CASE WHEN login_throttle.window_start < $3 THEN 1 ELSE login_throttle.failures + 1 END, \
                 window_start = CASE WHEN login_throttle.window_start < $3 THEN $2 ELSE login_throttle.window_start END",
            )
            .bind(subject)
            .bind(now.0)
            .bind(window_start_after.0)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE login_throttle SET locked_until = $3, failures = 0, window_start = $4 \
                 WHERE subject = $1 AND failures >= $2",
            )
            .bind(subject)
            .bind(limit)
            .bind(lock_until.0)
            .bind(now.0)
            .execute(&mut *tx)
            .await?;
            let (failures, locked_until): (i64, Option<i64>) =
                sqlx::query_as("SELECT failures, locked_until FROM login_throttle WHERE subject = $1")
                    .bind(subject)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(ThrottleState { failures, locked_until: locked_until.filter(|u| *u > now.0).map(Timestamp) })
        })
    }

    /// Takes one counted attempt of `subject` back (a log-in counted before it succeeded).
    pub async fn forgive_one(&self, subject: &str) -> StoreResult<()> {
        on_pool!(self.0, p => sqlx::query(
            "UPDATE login_throttle SET failures = failures - 1 WHERE subject = $1 AND failures > 0",
        )
        .bind(subject)
        .execute(p)
        .await
        .map(|_| ())
        .map_err(Into::into))
    }

    /// Deletes throttle rows whose window started before `window_start_before` and that are not
    /// locked at `now`. Returns how many went.
    pub async fn prune_throttle(&self, window_start_before: Timestamp, now: Timestamp) -> StoreResult<u64> {
        on_pool!(self.0, p => sqlx::query(
            "DELETE FROM login_throttle WHERE window_start < $1 AND (locked_until IS NULL OR locked_until <= $2)",
        )
        .bind(window_start_before.0)
        .bind(now.0)
        .execute(p)
        .await
        .map(|done| done.rows_affected())
        .map_err(Into::into))
    }

    /// Forgets the failures of `subject` (after a successful log-in).
    pub async fn clear_failures(&self, subject: &str) -> StoreResult<()> {
        on_pool!(self.0, p => sqlx::query("DELETE FROM login_throttle WHERE subject = $1")
            .bind(subject)
            .execute(p)
            .await
            .map(|_| ())
            .map_err(Into::into))
    }
}
