//! Who is asking: the command line (system), or a logged-in console user.

use keygate_domain::{Actor, AuditEntry, Permissions, TenantId, UserId};

use crate::{ServiceError, ServiceResult};

#[derive(Debug, Clone)]
pub enum Caller {
    /// An operator with shell access to the server (`system (cli)`): may do anything.
    System { what: &'static str },
    /// A console user, acting inside their own tenant with their own permissions.
    User { id: UserId, tenant: TenantId, email: String, permissions: Permissions, ip: Option<String> },
}

impl Caller {
    pub const CLI: Caller = Caller::System { what: "cli" };

    pub fn actor(&self) -> Actor {
        match self {
            Self::System { what } => Actor::System(what),
            Self::User { id, email, .. } => Actor::User { id: *id, email: email.clone() },
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User { id, .. } => Some(*id),
            Self::System { .. } => None,
        }
    }

    pub(crate) fn audit(&self, tenant: TenantId, action: &'static str, target: impl Into<String>) -> AuditEntry {
        let ip = match self {
            Self::User { ip, .. } => ip.clone(),
            Self::System { .. } => None,
        };
        AuditEntry::new(Some(tenant), self.actor(), action, target).from_ip(ip)
    }

    /// Members of `Configurator` (system configuration, the Public API, keys) of this tenant.
    pub(crate) fn require_configurator(&self, tenant: TenantId) -> ServiceResult<()> {
        self.require(tenant, |p| p.configurator, "Configurator")
    }

    /// Members of `User configurator` (users, groups, deactivation) of this tenant.
    pub(crate) fn require_user_configurator(&self, tenant: TenantId) -> ServiceResult<()> {
        self.require(tenant, |p| p.user_configurator, "User configurator")
    }

    fn require(&self, tenant: TenantId, has: impl Fn(&Permissions) -> bool, group: &str) -> ServiceResult<()> {
        match self {
            Self::System { .. } => Ok(()),
            Self::User { tenant: own, permissions, .. } if *own == tenant && has(permissions) => Ok(()),
            Self::User { tenant: own, .. } if *own != tenant => Err(ServiceError::NotFound("the tenant".to_owned())),
            Self::User { .. } => {
                Err(ServiceError::Forbidden(format!("only members of the `{group}` group may do this")))
            }
        }
    }
}
