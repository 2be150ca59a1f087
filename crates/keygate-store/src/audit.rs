//! The append-only audit log. The schema refuses UPDATE on it, and DELETE too except for rows
//! older than the cutoff of a pruning transaction ([`Audit::prune`]; triggers on both engines).

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

/// The actions of refused calls and failed log-ins, the rows strangers cause, kept for their own
/// retention ([`Audit::prune_refusals`]); every other action is a change ([`Audit::prune_changes`]).
pub(crate) const REFUSAL_ACTIONS: [&str; 2] = ["call.refused", "session.login_failed"];

/// Old rows of one kind, at most `$4` of them: by action (index `audit_events_action_at`).
const OLD_REFUSALS: &str = "DELETE FROM audit_events WHERE id IN \
     (SELECT id FROM audit_events WHERE action IN ($2, $3) AND at < $1 LIMIT $4)";
/// Old rows of every other kind: by time (index `audit_events_at`); refusals that old are
/// normally gone already, their retention being the shorter.
const OLD_CHANGES: &str = "DELETE FROM audit_events WHERE id IN \
     (SELECT id FROM audit_events WHERE at < $1 AND action NOT IN ($2, $3) LIMIT $4)";

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

    /// Deletes at most `limit` refused-call and failed log-in rows older than `before`, in one
    /// transaction; returns how many.
    pub async fn prune_refusals(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        self.prune(OLD_REFUSALS, before, limit).await
    }

    /// Deletes at most `limit` rows of every other kind older than `before`, in one transaction;
    /// returns how many.
    pub async fn prune_changes(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        self.prune(OLD_CHANGES, before, limit).await
    }

    /// The transaction declares its cutoff in `audit_prune`, which the append-only trigger checks
    /// row by row, and removes it before committing.
    async fn prune(&self, sql: &'static str, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let [a, b] = REFUSAL_ACTIONS;
        on_pool!(self.0, p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO audit_prune (before) VALUES ($1)").bind(before.0).execute(&mut *tx).await?;
            let deleted = sqlx::query(sql)
                .bind(before.0)
                .bind(a)
                .bind(b)
                .bind(i64::from(limit))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM audit_prune").execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(deleted)
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
