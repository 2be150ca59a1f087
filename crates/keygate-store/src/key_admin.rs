//! The management API's key SQL: a filtered page of a tenant's keys read with `LIMIT` (never
//! every key), one key with its user's names, a change of a key's settings, and the disabling or
//! revoking of many keys in one transaction. Parameterised SQL on both engines; no rules here
//! beyond integrity (the service judges and authorises).

use keygate_domain::{AuditEntry, IpRanges, KeyId, KeyRecord, Purpose, TenantId, Timestamp, UserId};

use crate::{
    ChangeKind, KeyListing, StoreError, StoreResult, append_audit,
    authz::{Guard, judged_write},
    keys::Keys,
    on_pool, record_change,
    rows::{KEY_COLUMNS, KeyRow, to_json},
};

/// A key's own state, as a listing filters on it (its user's and tenant's switches aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStateFilter {
    Active,
    Disabled,
    Expired,
    Revoked,
}

/// Which keys a page holds; every member narrows it.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub user: Option<UserId>,
    pub state: Option<KeyStateFilter>,
    /// Keys whose purpose contains this text (case-insensitive for ASCII letters).
    pub purpose: Option<String>,
}

/// The settings of a key that can change after it is issued; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct KeyChange {
    pub purpose: Option<Purpose>,
    pub ip_ranges: Option<IpRanges>,
    /// `Some(None)`: no expiry.
    pub expires_at: Option<Option<Timestamp>>,
    /// `Some(None)`: the tenant's default.
    pub rate_limit_per_minute: Option<Option<u32>>,
}

/// What a bulk switch does to each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySwitch {
    Disable,
    Revoke,
}

#[derive(sqlx::FromRow)]
struct ListingRow {
    #[sqlx(flatten)]
    key: KeyRow,
    user_email: String,
    user_name: String,
    user_active: bool,
    created_by_email: Option<String>,
}

impl TryFrom<ListingRow> for KeyListing {
    type Error = StoreError;
    fn try_from(r: ListingRow) -> StoreResult<Self> {
        Ok(KeyListing {
            key: KeyRecord::try_from(r.key)?,
            user_email: r.user_email,
            user_name: r.user_name,
            user_active: r.user_active,
            created_by_email: r.created_by_email,
        })
    }
}

/// `SELECT … FROM` keys with their user's and creator's names, up to the `WHERE` clause's first
/// condition, `k.tenant_id = ` (the caller binds the tenant next).
fn listing_select() -> String {
    let columns = KEY_COLUMNS.split(", ").map(|c| format!("k.{c}")).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {columns}, u.email AS user_email, u.name AS user_name, u.active AS user_active, c.email AS created_by_email \
         FROM api_keys k JOIN users u ON u.id = k.user_id LEFT JOIN users c ON c.id = k.created_by \
         WHERE k.tenant_id = "
    )
}

/// `text` as a `LIKE` pattern matching any value that contains it (`\` escapes).
fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Keys<'_> {
    /// At most `limit` of the tenant's keys matching `filter`, newest first, with ids below
    /// `before` (the cursor of the previous page), and the cursor of the next page if there is
    /// one. One query with `LIMIT limit + 1`: rows beyond the page are never read.
    pub async fn page(
        &self,
        tenant: TenantId,
        filter: &KeyFilter,
        before: Option<KeyId>,
        limit: u32,
    ) -> StoreResult<(Vec<KeyListing>, Option<KeyId>)> {
        let now = Timestamp::now().0;
        let rows: Vec<ListingRow> = on_pool!(self.0, p => {
            let mut q = sqlx::QueryBuilder::new(listing_select());
            q.push_bind(tenant.0);
            if let Some(user) = filter.user {
                q.push(" AND k.user_id = ").push_bind(user.0);
            }
            match filter.state {
                None => {}
                Some(KeyStateFilter::Revoked) => {
                    q.push(" AND k.revoked_at IS NOT NULL");
                }
                Some(KeyStateFilter::Disabled) => {
                    q.push(" AND k.revoked_at IS NULL AND NOT k.enabled");
                }
                Some(KeyStateFilter::Expired) => {
                    q.push(" AND k.revoked_at IS NULL AND k.enabled AND k.expires_at IS NOT NULL AND k.expires_at <= ")
                        .push_bind(now);
                }
                Some(KeyStateFilter::Active) => {
                    q.push(" AND k.revoked_at IS NULL AND k.enabled AND (k.expires_at IS NULL OR k.expires_at > ")
                        .push_bind(now)
                        .push(")");
                }
            }
            if let Some(purpose) = filter.purpose.as_deref().filter(|p| !p.is_empty()) {
                q.push(" AND LOWER(k.purpose) LIKE ").push_bind(contains_pattern(purpose)).push(" ESCAPE '\\'");
            }
            if let Some(before) = before {
                q.push(" AND k.id < ").push_bind(before.0);
            }
            q.push(" ORDER BY k.id DESC LIMIT ").push_bind(i64::from(limit) + 1);
            q.build_query_as().fetch_all(p).await
        })?;
        let mut items = rows.into_iter().map(KeyListing::try_from).collect::<StoreResult<Vec<_>>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|k| k.key.id)
        } else {
            None
        };
        Ok((items, next))
    }

    /// One key of the tenant with its user's and creator's names.
    pub async fn listing(&self, tenant: TenantId, id: KeyId) -> StoreResult<Option<KeyListing>> {
        let sql = format!("{} $1 AND k.id = $2", listing_select());
        let row: Option<ListingRow> =
            on_pool!(self.0, p => sqlx::query_as(&sql).bind(tenant.0).bind(id.0).fetch_optional(p).await)?;
        row.map(KeyListing::try_from).transpose()
    }

    /// Changes a key's settings, judged on its outcome (an expiry moved later can make an expired
    /// key work again). `expect` sees the key as it is inside the transaction; when it says no
    /// (the key changed since the caller read it), nothing is written and the answer is `false`.
    /// A revoked key is a [`StoreError::Conflict`].
    pub async fn update(
        &self,
        tenant: TenantId,
        id: KeyId,
        change: &KeyChange,
        expect: &(dyn Fn(&KeyRecord) -> bool + Send + Sync),
        guard: &Guard<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let select = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2");
        judged_write!(self.0, tenant, guard, |tx| {
            let row: Option<KeyRow> =
                sqlx::query_as(&select).bind(tenant.0).bind(id.0).fetch_optional(&mut *tx).await?;
            let Some(row) = row else { return Err(StoreError::NotFound(format!("key {id}"))) };
            let current = KeyRecord::try_from(row)?;
            if current.revoked_at.is_some() {
                return Err(StoreError::Conflict(format!("key {id} is revoked: a revoked key does not change")));
            }
            if !expect(&current) {
                return Ok(false);
            }
            let purpose = change.purpose.as_ref().unwrap_or(&current.purpose);
            let ranges = change.ip_ranges.as_ref().unwrap_or(&current.ip_ranges);
            let expires_at = change.expires_at.unwrap_or(current.expires_at);
            let rate = change.rate_limit_per_minute.unwrap_or(current.rate_limit_per_minute);
            sqlx::query(
                "UPDATE api_keys SET purpose = $3, ip_ranges = $4, expires_at = $5, rate_limit_per_minute = $6 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(purpose.as_str())
            .bind(to_json(&ranges.to_strings()))
            .bind(expires_at.map(|t| t.0))
            .bind(rate.map(i64::from))
            .execute(&mut *tx)
            .await?;
            record_change!(&mut *tx, ChangeKind::Key, id.0)?;
            append_audit!(&mut *tx, audit)?;
            (true, None, None)
        })
    }

    /// Disables or revokes every key of `ids` (each with its audit event of `audits`, in order)
    /// in one judged transaction: all of them, or none when any is unknown, of another tenant or
    /// already revoked.
    pub async fn switch_many(
        &self,
        tenant: TenantId,
        ids: &[KeyId],
        switch: KeySwitch,
        audits: &[AuditEntry],
        guard: &Guard<'_>,
    ) -> StoreResult<()> {
        let sql = match switch {
            KeySwitch::Disable => {
                "UPDATE api_keys SET enabled = FALSE WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL"
            }
            KeySwitch::Revoke => {
                "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL"
            }
        };
        let now = Timestamp::now().0;
        judged_write!(self.0, tenant, guard, |tx| {
            for id in ids {
                let mut q = sqlx::query(sql).bind(tenant.0).bind(id.0);
                if switch == KeySwitch::Revoke {
                    q = q.bind(now);
                }
                if q.execute(&mut *tx).await?.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("an unrevoked key {id} in this tenant")));
                }
                record_change!(&mut *tx, ChangeKind::Key, id.0)?;
            }
            for audit in audits {
                append_audit!(&mut *tx, audit)?;
            }
            ((), None, None)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn a_purpose_filter_matches_its_text_anywhere_and_its_wildcards_literally() {
        assert_eq!(contains_pattern("CI deploy"), "%ci deploy%");
        assert_eq!(contains_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }
}
