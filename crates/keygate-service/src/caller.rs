//! Who is asking: the command line (system), a logged-in console user, or an API key.
//!
//! A system caller holds every power, so only the `keygate` binary's own entry points may make
//! one: [`Caller::CLI`] exists only with the `system-caller` feature, which the binary enables and
//! the web layer does not (CI checks `cargo check -p keygate-web` alone), and [`SystemName`]
//! cannot be made anywhere else.

use keygate_domain::{Access, Actor, AuditEntry, KeyId, Permissions, Power, Reach, Resource, TenantId, UnitId, UserId};

use crate::{ServiceError, ServiceResult};

/// The name a system caller is audited under (`system (cli)`). Made only in this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemName(&'static str);

impl SystemName {
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

#[derive(Debug, Clone)]
pub enum Caller {
    /// An operator with shell access to the server (`system (cli)`): may do anything.
    System { what: SystemName },
    /// A console user, acting inside their own tenant with their own permissions and units
    /// (`None`: every unit).
    User {
        id: UserId,
        tenant: TenantId,
        email: String,
        permissions: Permissions,
        units: Option<Vec<UnitId>>,
        ip: Option<String>,
    },
    /// A Public API call, running as the key's user with the key's effective permissions and units.
    Key {
        key_id: KeyId,
        user_id: UserId,
        tenant: TenantId,
        permissions: Permissions,
        units: Option<Vec<UnitId>>,
        ip: Option<String>,
    },
}

impl Caller {
    /// The command line: an operator with shell access to the server. Only for the `keygate`
    /// binary's own entry points (and tests and fuzzing), behind the `system-caller` feature.
    #[cfg(any(feature = "system-caller", feature = "fuzzing"))]
    pub const CLI: Caller = Caller::System { what: SystemName("cli") };

    pub fn actor(&self) -> Actor {
        match self {
            Self::System { what } => Actor::System(what.0),
            Self::User { id, email, .. } => Actor::User { id: *id, email: email.clone() },
            Self::Key { key_id, user_id, .. } => Actor::Key { id: *key_id, user_id: *user_id },
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User { id, .. } | Self::Key { user_id: id, .. } => Some(*id),
            Self::System { .. } => None,
        }
    }

    /// What the caller holds, for the grant ceiling; `None` for the command line, which holds
    /// everything.
    pub fn power(&self) -> Option<Power> {
        match self {
            Self::System { .. } => None,
            Self::User { permissions, units, .. } | Self::Key { permissions, units, .. } => {
                Some(Power::new(permissions.clone(), units.as_deref()))
            }
        }
    }

    pub(crate) fn audit(&self, tenant: TenantId, action: &'static str, target: impl Into<String>) -> AuditEntry {
        let ip = match self {
            Self::User { ip, .. } | Self::Key { ip, .. } => ip.clone(),
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
            // A key manages users only with full write reach on users (an unscoped key of a
            // User configurator, or one scoped `users:write`); it never configures the system.
            Self::Key { tenant: own, permissions, .. } if *own == tenant && group == "User configurator" => {
                if permissions.reach(Resource::Users, Access::Write) == Some(Reach::All) {
                    Ok(())
                } else {
                    Err(ServiceError::Forbidden(
                        "the key may not manage users (it needs users:write on all users)".to_owned(),
                    ))
                }
            }
            Self::Key { .. } => Err(ServiceError::Forbidden(format!("API keys cannot act as the `{group}` group"))),
            Self::User { tenant: own, permissions, .. } if *own == tenant && has(permissions) => Ok(()),
            Self::User { tenant: own, .. } if *own != tenant => Err(ServiceError::NotFound("the tenant".to_owned())),
            Self::User { .. } => {
                Err(ServiceError::Forbidden(format!("only members of the `{group}` group may do this")))
            }
        }
    }
}
