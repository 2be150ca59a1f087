//! Audit events: who did what to which thing, when and from where. Append-only by contract.

use crate::{
    ids::{KeyId, TenantId, UserId},
    operator::OperatorId,
    time::Timestamp,
};

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// keygate itself, e.g. `system (cli)` or `system (api)` for aggregated refusals.
    System(&'static str),
    /// A person (or programmatic user) in the console.
    User { id: UserId, email: String },
    /// A call made with an API key.
    Key { id: KeyId, user_id: UserId },
    /// An operator credential (the operator plane): creates, lists, switches off and removes
    /// tenants, nothing inside them.
    Operator { id: OperatorId, name: String },
}

impl Actor {
    pub const CLI: Actor = Actor::System("cli");

    pub fn kind(&self) -> &'static str {
        match self {
            Self::System(_) => "system",
            Self::User { .. } => "user",
            Self::Key { .. } => "key",
            Self::Operator { .. } => "operator",
        }
    }

    pub fn id(&self) -> Option<i64> {
        match self {
            Self::System(_) => None,
            Self::User { id, .. } => Some(id.0),
            Self::Key { id, .. } => Some(id.0),
            Self::Operator { id, .. } => Some(id.0),
        }
    }

    /// How the actor is shown in the audit log.
    pub fn label(&self) -> String {
        match self {
            Self::System(what) => format!("system ({what})"),
            Self::User { email, .. } => email.clone(),
            Self::Key { id, user_id } => format!("key {id} (user {user_id})"),
            Self::Operator { id, name } => format!("operator {name} ({id})"),
        }
    }
}

/// One line of the audit log, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub tenant_id: Option<TenantId>,
    pub at: Timestamp,
    pub actor: Actor,
    /// A stable dotted verb, e.g. `key.issued`, `user.deactivated`, `call.refused`.
    pub action: &'static str,
    /// What was acted on, e.g. `key 12`, `user ada@example.com`.
    pub target: String,
    /// Free-form details for administrators; never contains a secret.
    pub details: String,
    pub source_ip: Option<String>,
}

impl AuditEntry {
    pub fn new(tenant_id: Option<TenantId>, actor: Actor, action: &'static str, target: impl Into<String>) -> Self {
        Self {
            tenant_id,
            at: Timestamp::now(),
            actor,
            action,
            target: target.into(),
            details: String::new(),
            source_ip: None,
        }
    }

    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    pub fn from_ip(mut self, ip: Option<String>) -> Self {
        self.source_ip = ip;
        self
    }
}
