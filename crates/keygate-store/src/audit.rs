//! The append-only audit log. The schema refuses UPDATE and DELETE on it (triggers on both engines).

use keygate_domain::{AuditEntry, KeyId, TenantId, Timestamp, UserId};

use crate::{Database, StoreResult, append_audit, on_pool};

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub tenant_id: Option<i64>,
    pub at: i64,
    pub actor_kind: String,
    pub actor_id: Option<i64>,
    pub actor_label: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub source_ip: Option<String>,
}

impl AuditRecord {
    pub fn time(&self) -> Timestamp {
        Timestamp(self.at)
    }
}

/// Which events to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Events by this user, or by keys of this user.
    pub user: Option<UserId>,
    /// Events by this key or about it.
    pub key: Option<KeyId>,
    /// Events whose action starts with this text (`key.` matches every key event).
    pub action: Option<String>,
    /// Only events older than this id (paging).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// Audit repository.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a>(&'a Database);

impl Database {
    pub fn audit(&self) -> Audit<'_> {
        Audit(self)
    }
}

impl Audit<'_> {
    /// Appends events that are not part of another change (refused calls, logins).
    pub async fn append(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            for entry in entries {
                append_audit!(&mut *tx, entry)?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// A tenant's events, newest first. Never returns another tenant's events.
    pub async fn list(&self, tenant: TenantId, filter: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let key_target = filter.key.map(|k| format!("key {k}"));
        let action = filter.action.as_ref().map(|a| format!("{}%", a.replace(['%', '_'], "")));
        let limit = i64::from(filter.limit.clamp(1, 1000));
        on_pool!(self.0, p => sqlx::query_as::<_, AuditRecord>(
            "SELECT id, tenant_id, at, actor_kind, actor_id, actor_label, action, target, details, source_ip \
             FROM audit_events WHERE tenant_id = $1 \
             AND ($2 IS NULL OR actor_id = $2 OR target = $3 OR details LIKE $4) \
             AND ($5 IS NULL OR (actor_kind = 'key' AND actor_id = $5) OR target = $6) \
             AND ($7 IS NULL OR action LIKE $7) \
             AND ($8 IS NULL OR id < $8) \
             ORDER BY id DESC LIMIT $9",
        )
        .bind(tenant.0)
        .bind(filter.user.map(|u| u.0))
        .bind(filter.user.map(|u| format!("user {u}")))
        .bind(filter.user.map(|u| format!("%(user {u})%")))
        .bind(filter.key.map(|k| k.0))
        .bind(key_target)
        .bind(action)
        .bind(filter.before_id)
        .bind(limit)
        .fetch_all(p)
        .await
        .map_err(Into::into))
    }
}
