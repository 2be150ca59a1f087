//! The grant ceiling at the service boundary: every administrative gift goes through
//! [`Keygate::judge`], which asks the domain's one rule ([`decide`]) before anything is written,
//! and audits a refusal with its reason.

use keygate_domain::{Authority, Gift, TenantId, decide};

use crate::{Caller, Keygate, ServiceError, ServiceResult};

impl Keygate {
    /// `Ok` when `gift` lies within what `caller` holds; otherwise an audited
    /// [`ServiceError::GrantExceedsActor`] naming what the caller lacks.
    pub(crate) async fn judge(
        &self,
        caller: &Caller,
        tenant: TenantId,
        target: &str,
        gift: Gift<'_>,
    ) -> ServiceResult<()> {
        let power = caller.power();
        let authority = power.as_ref().map_or(Authority::Everything, Authority::Holder);
        let Err(refused) = decide(authority, &gift) else { return Ok(()) };
        let audit = caller.audit(tenant, "grant.refused", target).details(refused.message.clone());
        if let Err(e) = self.db().audit().append(&[audit]).await {
            tracing::error!(error = %e, "writing the audit event of a refused grant failed");
        }
        Err(ServiceError::GrantExceedsActor(refused.message))
    }
}
