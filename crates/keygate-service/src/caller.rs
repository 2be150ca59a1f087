//! Who is asking: the command line (system), a logged-in console user, or an API key.
//!
//! A system caller holds every power, so only the `keygate` binary's own entry points may make
//! one: [`Caller::CLI`] exists only with the `system-caller` feature, which the binary enables and
//! the web layer does not (CI checks `cargo check -p keygate-web` alone), and [`SystemName`]
//! cannot be made anywhere else.

use keygate_domain::{
    Access, Actor, AdminScope, AuditEntry, KeyId, Permissions, Power, Reach, Resource, TenantId, UnitId, UserId,
};

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

impl crate::Verified {
    /// The verified key as a caller of the service's use cases (the data API's writes, the
    /// management API): its user's current permissions narrowed to its scopes, and the units both
    /// reach.
    pub fn caller(&self, ip: Option<String>) -> Caller {
        Caller::Key {
            key_id: self.key().id,
            user_id: self.owner.id,
            tenant: self.tenant.id,
            permissions: self.permissions().clone(),
            units: Power::of_key(
                &Power::new(self.owner.permissions.clone(), self.owner.units.as_deref()),
                self.key().scopes.as_ref(),
                self.key().units.as_deref(),
            )
            .units
            .map(|u| u.into_iter().collect()),
            ip,
        }
    }
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

    /// Who writes a unit, for the check that they reach every unit; `None` for the command line.
    pub(crate) fn unit_actor(&self) -> Option<keygate_store::UnitActor> {
        match self {
            Self::System { .. } => None,
            Self::User { id, .. } => Some(keygate_store::UnitActor { user: *id, key: None }),
            Self::Key { key_id, user_id, .. } => Some(keygate_store::UnitActor { user: *user_id, key: Some(*key_id) }),
        }
    }

    pub(crate) fn audit(&self, tenant: TenantId, action: &'static str, target: impl Into<String>) -> AuditEntry {
        let ip = match self {
            Self::User { ip, .. } | Self::Key { ip, .. } => ip.clone(),
            Self::System { .. } => None,
        };
        AuditEntry::new(Some(tenant), self.actor(), action, target).from_ip(ip)
    }

    /// The administrative power `scope` in this tenant: a console user in the system group the
    /// console asks for; a key whose user is in that group, unscoped or naming `scope` (or its
    /// family's write); the command line always.
    pub(crate) fn require_admin(&self, tenant: TenantId, scope: AdminScope) -> ServiceResult<()> {
        self.require_any_admin(tenant, &[scope])
    }

    /// As [`Self::require_admin`], for work any of `scopes` allows (a list of users serves both
    /// the key manager and the user manager).
    pub(crate) fn require_any_admin(&self, tenant: TenantId, scopes: &[AdminScope]) -> ServiceResult<()> {
        let first = scopes.first().copied().unwrap_or(AdminScope::SettingsWrite);
        match self {
            Self::System { .. } => Ok(()),
            Self::User { tenant: own, .. } | Self::Key { tenant: own, .. } if *own != tenant => {
                Err(ServiceError::NotFound("the tenant".to_owned()))
            }
            Self::User { permissions, .. } | Self::Key { permissions, .. }
                if scopes.iter().any(|s| permissions.allows_admin(*s)) =>
            {
                Ok(())
            }
            // A key with full write reach on users (an unscoped key of a User configurator, or one
            // scoped `users:write`) has managed users through the Public API since the start.
            Self::Key { permissions, .. }
                if scopes.iter().any(|s| matches!(s, AdminScope::UsersRead | AdminScope::UsersWrite))
                    && permissions.reach(Resource::Users, Access::Write) == Some(Reach::All) =>
            {
                Ok(())
            }
            Self::Key { .. } => Err(ServiceError::Forbidden(format!(
                "the key may not do this: it needs the scope `{first}` (or no scopes) and its user the `{}` group",
                first.group_name()
            ))),
            Self::User { .. } => {
                Err(ServiceError::Forbidden(format!("only members of the `{}` group may do this", first.group_name())))
            }
        }
    }
}
