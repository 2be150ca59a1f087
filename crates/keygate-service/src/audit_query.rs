//! Searching the audit log for the console and its CSV export: a time range, action, actor and
//! target filters, paging. Bounded by the store ([`keygate_store::AUDIT_SEARCH_MAX_ROWS`] rows a
//! read) and kept inside the caller's tenant; and the management API's `GET /v1/audit-events`
//! ([`Keygate::audit_events`]), which a SIEM polls forwards without gaps or duplicates. No SQL
//! here.

use keygate_domain::{AdminScope, TenantId};
use keygate_store::{AUDIT_SETTLE_MS, AuditRecord, AuditSearch};

use crate::{Caller, Keygate, ServiceResult};

impl Keygate {
    /// The tenant's audit events matching `search`, newest first. Members of `Configurator` or
    /// `User configurator` of that tenant.
    pub async fn search_audit(
        &self,
        caller: &Caller,
        tenant: TenantId,
        search: &AuditSearch,
    ) -> ServiceResult<Vec<AuditRecord>> {
        caller.require_admin(tenant, AdminScope::AuditRead)?;
        Ok(self.db().audit_search().search(tenant, search).await?)
    }

    /// The management API's audit events: [`Self::search_audit`]'s filters, plus events by, by
    /// keys of, or about `user`. Newest first, or with `after_id` oldest first from that cursor.
    /// Only events whose every smaller id is final are served (on PostgreSQL, rows written at
    /// least [`AUDIT_SETTLE_MS`] ago), so a poller that resumes after the last id it saw gets
    /// every later event once. Keys holding `admin:audit:read` (or their user's group).
    pub async fn audit_events(
        &self,
        caller: &Caller,
        tenant: TenantId,
        search: &AuditSearch,
        user: Option<i64>,
    ) -> ServiceResult<Vec<AuditRecord>> {
        caller.require_admin(tenant, AdminScope::AuditRead)?;
        Ok(self.db().audit_search().events(tenant, search, user, AUDIT_SETTLE_MS).await?)
    }
}
