//! Searching the audit log for the console and its CSV export: a time range, action, actor and
//! target filters, paging. Bounded by the store ([`keygate_store::AUDIT_SEARCH_MAX_ROWS`] rows a
//! read) and kept inside the caller's tenant. No SQL here.

use keygate_domain::{AdminScope, TenantId};
use keygate_store::{AuditRecord, AuditSearch};

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
}
