//! Reading the audit log. Read-only; no SQL here.

use keygate_domain::TenantId;
use keygate_store::{AuditFilter, AuditRecord};

use crate::{Caller, Keygate, ServiceResult};

impl Keygate {
    /// The tenant's audit events, newest first. Members of `Configurator` or `User configurator`.
    pub async fn audit_log(
        &self,
        caller: &Caller,
        tenant: TenantId,
        filter: &AuditFilter,
    ) -> ServiceResult<Vec<AuditRecord>> {
        if caller.require_user_configurator(tenant).is_err() {
            caller.require_configurator(tenant)?;
        }
        Ok(self.db().audit().list(tenant, filter).await?)
    }
}
