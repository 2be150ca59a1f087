//! A command's tenant, named by `--tenant SLUG` and resolved once by the dispatch.

use keygate_domain::TenantId;
use keygate_service::Keygate;

use super::args::TenantArg;

/// A command's tenant, resolved once from its `--tenant SLUG`.
#[derive(Debug)]
pub(super) struct Tenant {
    pub(super) id: TenantId,
    /// As typed, for messages.
    pub(super) slug: String,
}

impl Tenant {
    pub(super) async fn resolve(keygate: &Keygate, arg: &TenantArg) -> anyhow::Result<Self> {
        let record = keygate.tenant(&arg.slug).await?;
        Ok(Self { id: record.policy.id, slug: arg.slug.clone() })
    }
}
