//! What the binary and the ops endpoints need beyond a tenant's own use cases: every tenant,
//! groups with their member counts, an online backup, a readiness ping and closing the store.
//! The store itself stays behind [`Keygate`]: only tests reach it, through `store_for_tests`,
//! which exists with the `testing` feature alone (enabled by dev-dependencies, never by a build
//! of the web layer or the binary).

use std::path::Path;

use keygate_domain::TenantId;
use keygate_store::{GroupRecord, TenantRecord};

use crate::{Caller, Keygate, ServiceError, ServiceResult};

/// A group with the number of its members, as `keygate groups list` shows it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub group: GroupRecord,
    pub members: usize,
}

impl Keygate {
    /// Every tenant, by slug. Only the operator (a system caller): tenants do not see each other.
    pub async fn list_tenants(&self, caller: &Caller) -> ServiceResult<Vec<TenantRecord>> {
        require_system(caller, "the list of tenants")?;
        Ok(self.db().tenants().list().await?)
    }

    /// The tenant's groups, system groups first, each with its member count. Members of
    /// `User configurator` or `Configurator`, as [`Keygate::list_groups`].
    pub async fn list_groups_with_members(
        &self,
        caller: &Caller,
        tenant: TenantId,
    ) -> ServiceResult<Vec<GroupSummary>> {
        let groups = self.list_groups(caller, tenant).await?;
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let members = self.db().groups().members(tenant, group.id).await?.len();
            out.push(GroupSummary { group, members });
        }
        Ok(out)
    }

    /// Writes a consistent copy of the embedded database to `file` (which must not exist yet,
    /// created owner-only) while serving goes on; returns its size in bytes. Only the operator:
    /// the copy holds every tenant's data. PostgreSQL is backed up with its own tools.
    pub async fn backup_to(&self, caller: &Caller, file: &Path) -> ServiceResult<u64> {
        require_system(caller, "a backup")?;
        Ok(self.db().backup_to(file).await?)
    }

    /// Succeeds when the database answers a trivial query (readiness).
    pub async fn ping(&self) -> ServiceResult<()> {
        Ok(self.db().ping().await?)
    }

    /// Closes the database connections; a process calls it once, as it ends.
    pub async fn close(&self) {
        self.db().close().await;
    }

    /// The store behind the service, for tests that set up or read state no use case offers.
    /// Only with the `testing` feature, which only dev-dependencies enable.
    #[cfg(feature = "testing")]
    pub fn store_for_tests(&self) -> &keygate_store::Database {
        self.db()
    }
}

fn require_system(caller: &Caller, what: &str) -> ServiceResult<()> {
    match caller {
        Caller::System { .. } => Ok(()),
        _ => Err(ServiceError::Forbidden(format!("{what} is for the operator, from the command line"))),
    }
}
