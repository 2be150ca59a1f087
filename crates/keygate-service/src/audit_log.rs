//! The audit log: reading it, and keeping it within its retention (each kind of row for its own
//! time, pruned in bounded batches by the background flush). No SQL here.

use keygate_domain::{AdminScope, TenantId, Timestamp};
use keygate_store::{AuditFilter, AuditRecord};

use crate::{Caller, Keygate, ServiceResult};

/// Rows one pruning transaction deletes at most: short enough that the writer it holds (SQLite)
/// or the rows it locks (PostgreSQL) wait no request for long.
pub(crate) const PRUNE_BATCH: u32 = 1_000;

/// Batches per kind and run (once a minute): up to 20 000 rows a minute of each kind, far more
/// than the refusals a node may write in that minute.
pub(crate) const PRUNE_BATCHES: u32 = 20;

impl Keygate {
    /// The tenant's audit events, newest first. Members of `Configurator` or `User configurator`.
    pub async fn audit_log(
        &self,
        caller: &Caller,
        tenant: TenantId,
        filter: &AuditFilter,
    ) -> ServiceResult<Vec<AuditRecord>> {
        caller.require_admin(tenant, AdminScope::AuditRead)?;
        Ok(self.db().audit().list(tenant, filter).await?)
    }

    /// Deletes audit rows older than their kind's retention, as of `now`: at most
    /// [`PRUNE_BATCHES`] batches of [`PRUNE_BATCH`] rows per kind. Returns the rows deleted
    /// (changes, refusals); a failure is logged and leaves the rest for the next run.
    pub(crate) async fn prune_audit(&self, now: Timestamp) -> (u64, u64) {
        let retention = self.inner.config.audit_retention;
        let before = |keep: std::time::Duration| now.plus_millis(-i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        let audit = self.db().audit();
        let mut deleted = (0, 0);
        for refusals in [false, true] {
            let (cutoff, total) = if refusals {
                (before(retention.refusals), &mut deleted.1)
            } else {
                (before(retention.changes), &mut deleted.0)
            };
            for _ in 0..PRUNE_BATCHES {
                let batch = if refusals {
                    audit.prune_refusals(cutoff, PRUNE_BATCH).await
                } else {
                    audit.prune_changes(cutoff, PRUNE_BATCH).await
                };
                match batch {
                    Ok(n) => {
                        *total += n;
                        if n < u64::from(PRUNE_BATCH) {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, refusals, "pruning the audit log failed; retried in a minute");
                        break;
                    }
                }
                // Between batches, whatever waits for the database goes first.
                tokio::task::yield_now().await;
            }
        }
        if deleted != (0, 0) {
            tracing::info!(changes = deleted.0, refusals = deleted.1, "pruned audit rows past their retention");
        }
        deleted
    }
}
