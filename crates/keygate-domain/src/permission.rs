//! Permissions: system groups, custom grants, key scopes, and their intersection.
//!
//! A user's permissions come only from group membership. A key's effective permissions are its
//! user's *current* permissions intersected with the key's scopes, computed on every call.

use std::{collections::BTreeSet, fmt, str::FromStr};

/// The business resources a grant or a scope can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Companies,
    Persons,
    Jobs,
    Tasks,
    Documents,
    Invoices,
    Time,
    Users,
}

impl Resource {
    pub const ALL: [Resource; 8] = [
        Self::Companies,
        Self::Persons,
        Self::Jobs,
        Self::Tasks,
        Self::Documents,
        Self::Invoices,
        Self::Time,
        Self::Users,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Companies => "companies",
            Self::Persons => "persons",
            Self::Jobs => "jobs",
            Self::Tasks => "tasks",
            Self::Documents => "documents",
            Self::Invoices => "invoices",
            Self::Time => "time",
            Self::Users => "users",
        }
    }
}

impl FromStr for Resource {
    type Err = InvalidPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidPermission(format!("`{s}` is not a resource; expected one of companies, persons, jobs, tasks, documents, invoices, time, users")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// Whose records a grant opens: the user's own, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reach {
    Own,
    All,
}

impl Reach {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Own => "own",
            Self::All => "all",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPermission(pub String);

/// One line of a custom group: `resource:read|write:own|all`. Write implies read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    pub resource: Resource,
    pub access: Access,
    pub reach: Reach,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.resource.as_str(), self.access.as_str(), self.reach.as_str())
    }
}

impl FromStr for Grant {
    type Err = InvalidPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let [resource, access, reach] = parts.as_slice() else {
            return Err(InvalidPermission(format!(
                "`{s}` is not a grant; expected resource:read|write:own|all, e.g. invoices:read:all"
            )));
        };
        let access = match *access {
            "read" => Access::Read,
            "write" => Access::Write,
            other => {
                return Err(InvalidPermission(format!("`{other}` is not an access; expected read or write")));
            }
        };
        let reach = match *reach {
            "own" => Reach::Own,
            "all" => Reach::All,
            other => {
                return Err(InvalidPermission(format!("`{other}` is not a reach; expected own or all")));
            }
        };
        Ok(Self { resource: resource.parse()?, access, reach })
    }
}

/// The groups every tenant has, with fixed meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SystemGroup {
    /// Sees and changes everything.
    Supervisor,
    /// System configuration: the Public API switch, the whitelist, keys.
    Configurator,
    /// Users, groups, deactivation.
    UserConfigurator,
}

impl SystemGroup {
    pub const ALL: [SystemGroup; 3] = [Self::Supervisor, Self::Configurator, Self::UserConfigurator];

    pub fn name(self) -> &'static str {
        match self {
            Self::Supervisor => "Supervisor",
            Self::Configurator => "Configurator",
            Self::UserConfigurator => "User configurator",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// The name of a custom group: 1–60 printable characters, not the name of a system group.
/// Names are unique per tenant whatever their case; [`GroupName::same`] compares them so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(text: &str) -> Result<Self, InvalidPermission> {
        let s = text.trim();
        if s.is_empty() || s.chars().count() > 60 || crate::text::has_invisible(s) {
            return Err(InvalidPermission(
                "a group name must be 1 to 60 printable characters, with no character that shows nothing \
                 (zero-width spaces, direction marks, spaces other than the plain one)"
                    .to_owned(),
            ));
        }
        if let Some(system) = SystemGroup::from_name(s) {
            return Err(InvalidPermission(format!("`{}` is a system group; choose another name", system.name())));
        }
        let looks = crate::text::skeleton(s);
        if let Some(system) = SystemGroup::ALL.into_iter().find(|g| crate::text::skeleton(g.name()) == looks) {
            return Err(InvalidPermission(format!(
                "`{s}` looks like the system group `{}`; choose a name that cannot be taken for it",
                system.name()
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Case-insensitive equality, the rule of the unique index.
    pub fn same(a: &str, b: &str) -> bool {
        a.trim().to_lowercase() == b.trim().to_lowercase()
    }
}

/// A list of grants from text, e.g. `["documents:read:all", "companies:read:own"]`, deduplicated.
pub fn parse_grants<S: AsRef<str>>(items: &[S]) -> Result<Vec<Grant>, InvalidPermission> {
    let mut set = BTreeSet::new();
    for item in items {
        set.insert(item.as_ref().parse::<Grant>()?);
    }
    Ok(set.into_iter().collect())
}

/// An administrative power of the management API (`/v1/…`) that a *scoped* key carries only
/// when it names it, and only while its user is in the system group the console asks for the
/// same work ([`AdminScope::group_flag`]). An unscoped key inherits its user's groups instead.
/// Write implies read of the same family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminScope {
    /// Keys: list, read, usage. Configurator.
    KeysRead,
    /// Keys: issue, change, disable, enable, revoke, roll. Configurator.
    KeysWrite,
    /// Users, groups and units: list and read. User configurator.
    UsersRead,
    /// Users, groups and units: create, change, (de)activate, passwords. User configurator.
    UsersWrite,
    /// Tenant settings (Public API switch, whitelist, rate limit, key lifetime): read. Configurator.
    SettingsRead,
    /// Tenant settings: change. Configurator.
    SettingsWrite,
    /// The audit log. Configurator or User configurator.
    AuditRead,
}

impl AdminScope {
    pub const ALL: [AdminScope; 7] = [
        Self::KeysRead,
        Self::KeysWrite,
        Self::UsersRead,
        Self::UsersWrite,
        Self::SettingsRead,
        Self::SettingsWrite,
        Self::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeysRead => "admin:keys:read",
            Self::KeysWrite => "admin:keys:write",
            Self::UsersRead => "admin:users:read",
            Self::UsersWrite => "admin:users:write",
            Self::SettingsRead => "admin:settings:read",
            Self::SettingsWrite => "admin:settings:write",
            Self::AuditRead => "admin:audit:read",
        }
    }

    /// Whether holding `self` holds `other`: the same scope, or the write of `other`'s family.
    pub fn implies(self, other: AdminScope) -> bool {
        self == other
            || matches!(
                (self, other),
                (Self::KeysWrite, Self::KeysRead)
                    | (Self::UsersWrite, Self::UsersRead)
                    | (Self::SettingsWrite, Self::SettingsRead)
            )
    }

    /// Whether a user with these permissions' system groups may use `self` (through an unscoped
    /// key, the console, or a scoped key naming it): the group the console asks for.
    pub fn group_flag(self, p: &Permissions) -> bool {
        match self {
            Self::KeysRead | Self::KeysWrite | Self::SettingsRead | Self::SettingsWrite => p.configurator,
            Self::UsersRead | Self::UsersWrite => p.user_configurator,
            Self::AuditRead => p.configurator || p.user_configurator,
        }
    }

    /// The system group named in a refusal.
    pub fn group_name(self) -> &'static str {
        match self {
            Self::KeysRead | Self::KeysWrite | Self::SettingsRead | Self::SettingsWrite => "Configurator",
            Self::UsersRead | Self::UsersWrite => "User configurator",
            Self::AuditRead => "Configurator` or `User configurator",
        }
    }
}

impl fmt::Display for AdminScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key scope: `resource:read`, `resource:write`, `keys:verify` (the verify endpoint), or an
/// administrative scope `admin:…` ([`AdminScope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Resource(Resource, Access),
    KeysVerify,
    Admin(AdminScope),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resource(r, a) => write!(f, "{}:{}", r.as_str(), a.as_str()),
            Self::KeysVerify => f.write_str("keys:verify"),
            Self::Admin(a) => f.write_str(a.as_str()),
        }
    }
}

impl FromStr for Scope {
    type Err = InvalidPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "keys:verify" {
            return Ok(Self::KeysVerify);
        }
        if s.starts_with("admin:") {
            return AdminScope::ALL.into_iter().find(|a| a.as_str() == s).map(Self::Admin).ok_or_else(|| {
                InvalidPermission(format!(
                    "`{s}` is not an admin scope; expected one of {}",
                    AdminScope::ALL.map(AdminScope::as_str).join(", ")
                ))
            });
        }
        let Some((resource, access)) = s.split_once(':') else {
            return Err(InvalidPermission(format!(
                "`{s}` is not a scope; expected resource:read, resource:write, keys:verify or admin:…"
            )));
        };
        let access = match access {
            "read" => Access::Read,
            "write" => Access::Write,
            other => {
                return Err(InvalidPermission(format!("`{other}` in scope `{s}` is not read or write")));
            }
        };
        Ok(Self::Resource(resource.parse()?, access))
    }
}

/// A key's explicit scopes. Absent scopes mean "inherit the user's permissions".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, InvalidPermission> {
        let mut set = BTreeSet::new();
        for item in items {
            for part in item.as_ref().split([',', ' ']).filter(|p| !p.is_empty()) {
                set.insert(part.parse()?);
            }
        }
        Ok(Self(set))
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Write implies read, as it does for grants.
    pub fn admits(&self, resource: Resource, access: Access) -> bool {
        self.contains(Scope::Resource(resource, access))
            || (access == Access::Read && self.contains(Scope::Resource(resource, Access::Write)))
    }
}

/// What a principal may do: system-group flags plus per-resource reach.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    pub supervisor: bool,
    pub configurator: bool,
    pub user_configurator: bool,
    pub verify_keys: bool,
    /// The administrative scopes a *scoped* key carries (those its user's groups allow). Empty for
    /// users and unscoped keys, whose system groups say it ([`Permissions::allows_admin`]).
    pub admin: BTreeSet<AdminScope>,
    /// The own-records rule: without a grant a *personal* user still reaches the records they
    /// own. A programmatic user reaches only what its groups grant (the manual's least privilege).
    pub own_records: bool,
    grants: BTreeSet<Grant>,
}

impl Permissions {
    /// A user's permissions from their system groups and the grants of their custom groups.
    pub fn of_user(system: &[SystemGroup], grants: impl IntoIterator<Item = Grant>) -> Self {
        Self {
            supervisor: system.contains(&SystemGroup::Supervisor),
            configurator: system.contains(&SystemGroup::Configurator),
            user_configurator: system.contains(&SystemGroup::UserConfigurator),
            verify_keys: false,
            admin: BTreeSet::new(),
            own_records: false,
            grants: grants.into_iter().collect(),
        }
    }

    /// The same permissions with the own-records rule on or off (on for personal users).
    #[must_use]
    pub fn with_own_records(mut self, on: bool) -> Self {
        self.own_records = on;
        self
    }

    /// How far `access` on `resource` reaches; `None` means "only records the user owns" is *not*
    /// implied here: callers treat `None` as own-records-only for reads of business data.
    pub fn reach(&self, resource: Resource, access: Access) -> Option<Reach> {
        if self.supervisor {
            return Some(Reach::All);
        }
        if resource == Resource::Users && self.user_configurator {
            return Some(Reach::All);
        }
        self.grants
            .iter()
            .filter(|g| {
                g.resource == resource && (g.access == access || (access == Access::Read && g.access == Access::Write))
            })
            .map(|g| g.reach)
            .max()
    }

    /// Whether these permissions carry the administrative power `scope`: through the system group
    /// the console asks for (users, unscoped keys), or a scoped key's `admin:…` scope.
    pub fn allows_admin(&self, scope: AdminScope) -> bool {
        scope.group_flag(self) || self.admin.iter().any(|held| held.implies(scope))
    }

    /// The user's permissions narrowed to a key's scopes. System-group powers (configuration,
    /// user administration) never pass through a scoped key as such: only the `admin:…` scopes it
    /// names that its user's groups allow; `keys:verify` comes only from scopes.
    pub fn narrowed_to(&self, scopes: Option<&Scopes>) -> Permissions {
        let Some(scopes) = scopes else {
            return self.clone();
        };
        let mut grants = BTreeSet::new();
        for resource in Resource::ALL {
            for access in [Access::Read, Access::Write] {
                if !scopes.admits(resource, access) {
                    continue;
                }
                {
                    if let Some(reach) = self.reach(resource, access) {
                        grants.insert(Grant { resource, access, reach });
                    }
                }
            }
        }
        let admin = scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Admin(a) if a.group_flag(self) => Some(*a),
                _ => None,
            })
            .collect();
        Permissions {
            supervisor: false,
            configurator: false,
            user_configurator: false,
            verify_keys: scopes.contains(Scope::KeysVerify),
            admin,
            own_records: self.own_records,
            grants,
        }
    }

    /// How far a key with `scopes` (`None`: inherit) reaches into `resource` for `access`:
    /// `None` when the scopes leave it out; otherwise the widest grant, and without one the
    /// records the user owns when the own-records rule applies (personal users).
    pub fn effective_reach(&self, scopes: Option<&Scopes>, resource: Resource, access: Access) -> Option<Reach> {
        if scopes.is_some_and(|s| !s.admits(resource, access)) {
            return None;
        }
        self.reach(resource, access).or(self.own_records.then_some(Reach::Own))
    }

    /// Everything a key with `scopes` may do, the own-records rule spelled out: the system
    /// powers it carries, `keys:verify`, then `resource:access:reach` for every resource and
    /// access it reaches, e.g. `["companies:read:all", "companies:write:own", …]`.
    pub fn effective_list(&self, scopes: Option<&Scopes>) -> Vec<String> {
        let narrowed = self.narrowed_to(scopes);
        let mut out: Vec<String> = narrowed
            .to_strings()
            .into_iter()
            .filter(|p| !p.contains(':') || p == "keys:verify" || p.starts_with("admin:"))
            .collect();
        for resource in Resource::ALL {
            for access in [Access::Read, Access::Write] {
                if let Some(reach) = self.effective_reach(scopes, resource, access) {
                    out.push(Grant { resource, access, reach }.to_string());
                }
            }
        }
        out
    }

    /// The scopes of a key that its user holds no grant for now: they reach nothing (or only the
    /// user's own records) today, and wake up if the user gains a grant (live inheritance).
    pub fn dormant_scopes(&self, scopes: Option<&Scopes>) -> Vec<String> {
        let Some(scopes) = scopes else { return Vec::new() };
        scopes
            .iter()
            .filter(|s| match s {
                Scope::Resource(resource, access) => self.reach(*resource, *access).is_none(),
                Scope::KeysVerify => false,
                Scope::Admin(a) => !a.group_flag(self),
            })
            .map(ToString::to_string)
            .collect()
    }

    /// Stable, human-readable list, e.g. `["companies:read:all", "supervisor"]`.
    pub fn to_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.supervisor {
            out.push("supervisor".to_owned());
        }
        if self.configurator {
            out.push("configurator".to_owned());
        }
        if self.user_configurator {
            out.push("user-configurator".to_owned());
        }
        if self.verify_keys {
            out.push("keys:verify".to_owned());
        }
        out.extend(self.admin.iter().map(|a| a.as_str().to_owned()));
        out.extend(self.grants.iter().map(ToString::to_string));
        out
    }

    pub fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(s: &str) -> Grant {
        s.parse().expect("test grant")
    }

    #[test]
    fn a_supervisor_reaches_everything() {
        let p = Permissions::of_user(&[SystemGroup::Supervisor], []);
        assert_eq!(p.reach(Resource::Invoices, Access::Write), Some(Reach::All));
    }

    #[test]
    fn write_implies_read_and_the_widest_grant_wins() {
        let p = Permissions::of_user(&[], [grant("jobs:write:own"), grant("jobs:read:all")]);
        assert_eq!(p.reach(Resource::Jobs, Access::Read), Some(Reach::All));
        assert_eq!(p.reach(Resource::Jobs, Access::Write), Some(Reach::Own));
        assert_eq!(p.reach(Resource::Companies, Access::Read), None);
    }

    #[test]
    fn scopes_narrow_but_never_widen() {
        let p = Permissions::of_user(&[], [grant("invoices:read:all")]);
        let scopes = Scopes::parse(&["invoices:read", "companies:write"]).expect("valid");
        let eff = p.narrowed_to(Some(&scopes));
        assert_eq!(eff.reach(Resource::Invoices, Access::Read), Some(Reach::All));
        assert_eq!(eff.reach(Resource::Companies, Access::Write), None);
    }

    #[test]
    fn a_scoped_key_of_a_configurator_carries_no_configuration_power() {
        let p = Permissions::of_user(&[SystemGroup::Configurator, SystemGroup::Supervisor], []);
        let eff = p.narrowed_to(Some(&Scopes::parse(&["jobs:read"]).expect("valid")));
        assert!(!eff.configurator && !eff.supervisor);
        assert_eq!(eff.reach(Resource::Jobs, Access::Read), Some(Reach::All));
        assert_eq!(eff.reach(Resource::Tasks, Access::Read), None);
    }

    #[test]
    fn the_effective_list_spells_out_the_own_records_rule_and_dormant_scopes_are_named() {
        let programmatic = Permissions::of_user(&[], [grant("companies:read:all")]);
        let scopes = Scopes::parse(&["companies:write", "jobs:read"]).expect("valid");
        assert_eq!(programmatic.effective_list(Some(&scopes)), ["companies:read:all"].map(String::from));
        assert_eq!(programmatic.effective_reach(None, Resource::Jobs, Access::Read), None);
        let p = programmatic.with_own_records(true);
        let scopes = Scopes::parse(&["companies:write", "jobs:read"]).expect("valid");
        assert_eq!(
            p.effective_list(Some(&scopes)),
            ["companies:read:all", "companies:write:own", "jobs:read:own"].map(String::from)
        );
        assert_eq!(p.dormant_scopes(Some(&scopes)), ["companies:write", "jobs:read"].map(String::from));
        assert_eq!(p.effective_reach(Some(&scopes), Resource::Tasks, Access::Read), None);
        assert_eq!(p.effective_list(None).len(), 16, "an unscoped key reaches every resource, at least its own");
    }

    #[test]
    fn grants_and_scopes_reject_unknown_words_with_a_reason() {
        assert!("invoices:read:everything".parse::<Grant>().expect_err("bad").0.contains("own or all"));
        assert!("money:read".parse::<Scope>().expect_err("bad").0.contains("not a resource"));
        assert_eq!("keys:verify".parse::<Scope>(), Ok(Scope::KeysVerify));
    }

    #[test]
    fn a_group_name_that_looks_like_a_system_group_or_hides_characters_is_refused() {
        for name in
            ["Supervisor\u{200B}", "Supervis\u{43E}r", "\u{421}onfigurator", "User\u{A0}configurator", "Superv1sor"]
        {
            assert!(GroupName::parse(name).is_err(), "{name:?} was accepted");
        }
        assert!(
            GroupName::parse("Supervis\u{43E}r")
                .expect_err("look-alike")
                .0
                .contains("looks like the system group `Supervisor`")
        );
        for name in ["Supervisors of sales", "Účetní", "Продажи", "User configurators EU"] {
            assert!(GroupName::parse(name).is_ok(), "{name:?} was refused");
        }
    }

    #[test]
    fn group_names_are_trimmed_and_may_not_be_a_system_group() {
        assert_eq!(GroupName::parse("  Invoice export ").expect("valid").as_str(), "Invoice export");
        assert!(GroupName::parse("supervisor").expect_err("system").0.contains("system group"));
        assert!(GroupName::parse("").is_err() && GroupName::parse(&"x".repeat(61)).is_err());
        assert!(GroupName::same("Sales", " sales"));
    }

    #[test]
    fn system_groups_are_found_by_their_display_name() {
        assert_eq!(SystemGroup::from_name("user configurator"), Some(SystemGroup::UserConfigurator));
        assert_eq!(SystemGroup::from_name("Accountant"), None);
    }

    #[test]
    fn a_scoped_key_carries_an_admin_scope_only_while_its_user_is_in_the_group_the_console_asks_for() {
        let configurator = Permissions::of_user(&[SystemGroup::Configurator], []);
        let clerk = Permissions::of_user(&[], [grant("invoices:read:all")]);
        let scopes = Scopes::parse(&["admin:keys:write", "admin:users:write", "invoices:read"]).expect("valid");
        let key = configurator.narrowed_to(Some(&scopes));
        assert!(key.allows_admin(AdminScope::KeysWrite) && key.allows_admin(AdminScope::KeysRead));
        assert!(!key.allows_admin(AdminScope::UsersWrite), "the user is not a User configurator");
        assert!(!key.allows_admin(AdminScope::SettingsWrite), "not named");
        assert!(!key.configurator, "the group itself never passes through a scoped key");
        assert!(!clerk.narrowed_to(Some(&scopes)).allows_admin(AdminScope::KeysRead));
        assert!(configurator.allows_admin(AdminScope::SettingsWrite), "an unscoped key inherits the group");
        assert_eq!(clerk.dormant_scopes(Some(&scopes)), ["admin:keys:write", "admin:users:write"]);
    }

    #[test]
    fn admin_scopes_read_and_print_as_they_are_written_and_an_unknown_one_names_the_choices() {
        for a in AdminScope::ALL {
            assert_eq!(a.as_str().parse::<Scope>(), Ok(Scope::Admin(a)));
        }
        let err = "admin:everything".parse::<Scope>().expect_err("unknown");
        assert!(err.0.contains("admin:keys:read") && err.0.contains("admin:audit:read"), "{}", err.0);
    }
}
