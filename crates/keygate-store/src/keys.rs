//! API key records. Only digests are stored; lookups by digest use a unique index.

use keygate_domain::{
    AuditEntry, IpRanges, KeyDigest, KeyId, KeyRecord, Purpose, Scopes, TenantId, Timestamp, UnitId, UserId,
};

use crate::{
    ChangeKind, Database, StoreError, StoreResult, append_audit,
    authz::{Guard, judged_write},
    on_pool, record_change,
    rows::{KEY_COLUMNS, KeyRow, to_json, units_to_json},
};

/// What a roll wrote: the successor, and the keys of the same line of rolls it ended (they had
/// been working still: the rolled key's predecessor in its overlap, or an earlier successor of the
/// rolled key). After a roll only the rolled key (until its overlap ends) and the new one work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rolled {
    pub new: KeyId,
    pub ended: Vec<KeyId>,
}

/// A key about to be stored. The plaintext is not part of it.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub created_by: Option<UserId>,
    pub purpose: Purpose,
    pub digest: KeyDigest,
    pub display: String,
    pub ip_ranges: IpRanges,
    pub scopes: Option<Scopes>,
    pub units: Option<Vec<UnitId>>,
    pub expires_at: Option<Timestamp>,
    pub rolled_from: Option<KeyId>,
    pub rate_limit_per_minute: Option<u32>,
}

impl NewKey {
    /// A key of `user_id` with what every key must have; everything else as a key issued with no
    /// choices gets it: from any address, the user's permissions and units, no expiry, the
    /// tenant's rate limit, created by nobody in particular, rolled from nothing. Set the rest
    /// with `..NewKey::new(…)`, so that a field added here is added in one place.
    pub fn new(tenant_id: TenantId, user_id: UserId, purpose: Purpose, digest: KeyDigest, display: String) -> Self {
        Self {
            tenant_id,
            user_id,
            created_by: None,
            purpose,
            digest,
            display,
            ip_ranges: IpRanges::any(),
            scopes: None,
            units: None,
            expires_at: None,
            rolled_from: None,
            rate_limit_per_minute: None,
        }
    }
}

/// A key with the names an administrator needs to read a list of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyListing {
    pub key: KeyRecord,
    pub user_email: String,
    pub user_name: String,
    pub user_active: bool,
    pub created_by_email: Option<String>,
}

/// A write-behind record of a key's last use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageUpdate {
    pub key_id: KeyId,
    pub at: Timestamp,
    pub ip: String,
}

/// Key repository.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a>(pub(crate) &'a Database);

impl Database {
    pub fn keys(&self) -> Keys<'_> {
        Keys(self)
    }
}

const INSERT_KEY: &str = "INSERT INTO api_keys (tenant_id, user_id, created_by, purpose, digest, display, ip_ranges, scopes, units, \
     expires_at, enabled, created_at, rolled_from, rate_limit_per_minute) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, TRUE, $11, $12, $13) RETURNING id";

/// Inserts `$new` (a `&NewKey`) in transaction `$tx`, yielding the new id.
macro_rules! insert_key {
    ($tx:expr, $new:expr) => {{
        let new: &NewKey = $new;
        sqlx::query_scalar::<_, i64>(INSERT_KEY)
            .bind(new.tenant_id.0)
            .bind(new.user_id.0)
            .bind(new.created_by.map(|u| u.0))
            .bind(new.purpose.as_str())
            .bind(new.digest.as_bytes().to_vec())
            .bind(&new.display)
            .bind(to_json(&new.ip_ranges.to_strings()))
            .bind(new.scopes.as_ref().map(|s| to_json(&s.to_strings())))
            .bind(units_to_json(&new.units))
            .bind(new.expires_at.map(|t| t.0))
            .bind(Timestamp::now().0)
            .bind(new.rolled_from.map(|k| k.0))
            .bind(new.rate_limit_per_minute.map(i64::from))
            .fetch_one($tx)
            .await
            .map_err(|e| crate::on_unique(e, || "a key with the same digest already exists".to_owned()))
    }};
}

impl Keys<'_> {
    /// Stores a new key, judged on its outcome (see [`Guard`]).
    pub async fn insert(&self, new: &NewKey, guard: &Guard<'_>, audit: &AuditEntry) -> StoreResult<KeyId> {
        judged_write!(self.0, new.tenant_id, guard, |tx| {
            let id = insert_key!(&mut *tx, new)?;
            let mut audit = audit.clone();
            audit.target = format!("key {id}");
            append_audit!(&mut *tx, &audit)?;
            (KeyId(id), None, Some(KeyId(id)))
        })
    }

    /// Stores `new` as the successor of `old`, which stops working at `old_expires_at`. At most two
    /// keys of one line of rolls work at once, the newest and the one it replaced: the roll ends,
    /// now, `old`'s own predecessor and any earlier successor of `old` that still work (see
    /// [`Rolled::ended`]).
    pub async fn roll(
        &self,
        old: KeyId,
        new: &NewKey,
        old_expires_at: Timestamp,
        guard: &Guard<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<Rolled> {
        self.roll_judged(old, new, old_expires_at, false, guard, audit).await
    }

    /// As [`Self::roll`], refused with [`StoreError::Conflict`] when `old` already has a successor:
    /// a key rolls itself once. The check and the write are one transaction behind the tenant's
    /// lock, so of two concurrent rolls of one key exactly one succeeds.
    pub async fn roll_once(
        &self,
        old: KeyId,
        new: &NewKey,
        old_expires_at: Timestamp,
        guard: &Guard<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<Rolled> {
        self.roll_judged(old, new, old_expires_at, true, guard, audit).await
    }

    async fn roll_judged(
        &self,
        old: KeyId,
        new: &NewKey,
        old_expires_at: Timestamp,
        once: bool,
        guard: &Guard<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<Rolled> {
        judged_write!(self.0, new.tenant_id, guard, |tx| {
            if once {
                let successor: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM api_keys WHERE tenant_id = $1 AND rolled_from = $2 LIMIT 1")
                        .bind(new.tenant_id.0)
                        .bind(old.0)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some(successor) = successor {
                    return Err(StoreError::Conflict(format!(
                        "key {old} was already rolled (its successor is key {successor}); a key rolls itself once"
                    )));
                }
            }
            // Only a key that works now is rolled: one that another roll ended, or a change
            // disabled, since the caller looked is refused here, behind the tenant's lock.
            let now = Timestamp::now();
            let done = sqlx::query(
                "UPDATE api_keys SET expires_at = CASE WHEN expires_at IS NULL OR expires_at > $3 THEN $3 ELSE expires_at END \
                 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL AND enabled = $4 \
                 AND (expires_at IS NULL OR expires_at > $5)",
            )
            .bind(new.tenant_id.0)
            .bind(old.0)
            .bind(old_expires_at.0)
            .bind(true)
            .bind(now.0)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!(
                    "key {old} stopped working before this roll (revoked, disabled, expired, or ended by another \
                     roll); only a working key can be rolled"
                )));
            }
            // The rest of the line stops now: `old`'s predecessor (still in its overlap) and the
            // successors `old` already had (an earlier roll of it), before the new one exists.
            let ended: Vec<i64> = sqlx::query_scalar(
                "UPDATE api_keys SET expires_at = $3 \
                 WHERE tenant_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3) \
                 AND (rolled_from = $2 OR id = (SELECT rolled_from FROM api_keys WHERE tenant_id = $1 AND id = $2)) \
                 RETURNING id",
            )
            .bind(new.tenant_id.0)
            .bind(old.0)
            .bind(now.0)
            .fetch_all(&mut *tx)
            .await?;
            let id = insert_key!(&mut *tx, new)?;
            record_change!(&mut *tx, ChangeKind::Key, old.0)?;
            for ended in &ended {
                record_change!(&mut *tx, ChangeKind::Key, *ended)?;
            }
            let mut audit = audit.clone();
            audit.details = format!("{}; new key {id}", audit.details);
            if !ended.is_empty() {
                let ended = ended.iter().map(|k| format!("key {k}")).collect::<Vec<_>>().join(", ");
                audit.details =
                    format!("{}; ended now, as only two keys of a line of rolls work at once: {ended}", audit.details);
            }
            append_audit!(&mut *tx, &audit)?;
            let rolled = Rolled { new: KeyId(id), ended: ended.into_iter().map(KeyId).collect() };
            (rolled, None, Some(KeyId(id)))
        })
    }

    /// Stores every key of `items` with its audit event in one judged transaction: all of them,
    /// or (an error, a refusal of any one) none. Each new key is handed over (see [`Guard`]).
    pub async fn insert_many(
        &self,
        tenant: TenantId,
        items: &[(NewKey, AuditEntry)],
        guard: &Guard<'_>,
    ) -> StoreResult<Vec<KeyId>> {
        judged_write!(self.0, tenant, guard, |tx| {
            let mut ids = Vec::with_capacity(items.len());
            for (new, audit) in items {
                if new.tenant_id != tenant {
                    return Err(StoreError::Conflict("a bulk issue is for one tenant".to_owned()));
                }
                let id = KeyId(insert_key!(&mut *tx, new)?);
                let mut audit = audit.clone();
                audit.target = format!("key {id}");
                append_audit!(&mut *tx, &audit)?;
                ids.push(id);
            }
            (ids.clone(), None, ids)
        })
    }

    /// The hot-path lookup (on a cache miss).
    /// The key with this digest: verification's read on a cache miss. On SQLite it goes through
    /// a read-only connection on the calling thread (see [`crate::sqlite_reader`]'s
    /// `key_by_digest`), not through sqlx's worker thread.
    pub async fn by_digest(&self, digest: &KeyDigest) -> StoreResult<Option<KeyRecord>> {
        if let Some(read) = self.0.sqlite_readers.as_ref().and_then(|r| r.key_by_digest(digest)) {
            return read?.map(KeyRecord::try_from).transpose();
        }
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE digest = $1");
        let row: Option<KeyRow> =
            on_pool!(self.0, p => sqlx::query_as(&sql).bind(digest.as_bytes().to_vec()).fetch_optional(p).await)?;
        row.map(KeyRecord::try_from).transpose()
    }

    pub async fn by_id(&self, tenant: TenantId, id: KeyId) -> StoreResult<Option<KeyRecord>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2");
        let row: Option<KeyRow> =
            on_pool!(self.0, p => sqlx::query_as(&sql).bind(tenant.0).bind(id.0).fetch_optional(p).await)?;
        row.map(KeyRecord::try_from).transpose()
    }

    /// Finds a key by id in any tenant: only for system actors (the command line).
    pub async fn find_any_tenant(&self, id: KeyId) -> StoreResult<Option<KeyRecord>> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row: Option<KeyRow> = on_pool!(self.0, p => sqlx::query_as(&sql).bind(id.0).fetch_optional(p).await)?;
        row.map(KeyRecord::try_from).transpose()
    }

    /// The tenant's keys, newest first, with their user's and creator's names.
    pub async fn list(&self, tenant: TenantId) -> StoreResult<Vec<KeyListing>> {
        let columns = KEY_COLUMNS.split(", ").map(|c| format!("k.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {columns}, u.email AS user_email, u.name AS user_name, u.active AS user_active, c.email AS created_by_email \
             FROM api_keys k JOIN users u ON u.id = k.user_id LEFT JOIN users c ON c.id = k.created_by \
             WHERE k.tenant_id = $1 ORDER BY k.id DESC"
        );
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            key: KeyRow,
            user_email: String,
            user_name: String,
            user_active: bool,
            created_by_email: Option<String>,
        }
        let rows: Vec<Row> = on_pool!(self.0, p => sqlx::query_as(&sql).bind(tenant.0).fetch_all(p).await)?;
        rows.into_iter()
            .map(|r| {
                Ok(KeyListing {
                    key: KeyRecord::try_from(r.key)?,
                    user_email: r.user_email,
                    user_name: r.user_name,
                    user_active: r.user_active,
                    created_by_email: r.created_by_email,
                })
            })
            .collect()
    }

    /// Disables or re-enables a key, judged on its outcome. A revoked key stays revoked.
    pub async fn set_enabled(
        &self,
        tenant: TenantId,
        id: KeyId,
        enabled: bool,
        guard: &Guard<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        judged_write!(self.0, tenant, guard, |tx| {
            let done =
                sqlx::query("UPDATE api_keys SET enabled = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL")
                    .bind(tenant.0)
                    .bind(id.0)
                    .bind(enabled)
                    .execute(&mut *tx)
                    .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("an unrevoked key {id} in this tenant")));
            }
            record_change!(&mut *tx, ChangeKind::Key, id.0)?;
            append_audit!(&mut *tx, audit)?;
            ((), None, None)
        })
    }

    /// Revokes a key for good.
    pub async fn revoke(&self, tenant: TenantId, id: KeyId, audit: &AuditEntry) -> StoreResult<()> {
        self.change(
            "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
            tenant,
            id,
            Timestamp::now().0,
            audit,
        )
        .await
    }

    async fn change(
        &self,
        sql: &'static str,
        tenant: TenantId,
        id: KeyId,
        value: i64,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            let q = sqlx::query(sql).bind(tenant.0).bind(id.0).bind(value);
            if q.execute(&mut *tx).await?.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("an unrevoked key {id} in this tenant")));
            }
            record_change!(&mut *tx, ChangeKind::Key, id.0)?;
            append_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Writes a batch of last-used times in one transaction; never moves a time backwards.
    pub async fn record_usage(&self, batch: &[UsageUpdate]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            // Many rows per statement: one statement per row costs a round trip each, and a
            // busy server has a row per key used in the last minute.
            for chunk in batch.chunks(crate::ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::new("WITH u(id, at, ip) AS (");
                q.push_values(chunk, |mut row, u| {
                    row.push_bind(u.key_id.0).push_bind(u.at.0).push_bind(u.ip.as_str());
                });
                q.push(
                    ") UPDATE api_keys SET last_used_at = u.at, last_used_ip = u.ip FROM u \
                     WHERE api_keys.id = u.id AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < u.at)",
                );
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// How many of the user's keys are neither revoked nor disabled (they stop working when the
    /// user is deactivated).
    pub async fn count_usable_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<i64> {
        on_pool!(self.0, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL AND enabled",
        )
        .bind(tenant.0)
        .bind(user.0)
        .fetch_one(p)
        .await
        .map_err(Into::into))
    }

    /// Bulk insert for benchmarks and demo data: no audit, one transaction per call.
    pub async fn insert_many_unaudited(&self, keys: &[NewKey]) -> StoreResult<()> {
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            for new in keys {
                insert_key!(&mut *tx, new)?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
