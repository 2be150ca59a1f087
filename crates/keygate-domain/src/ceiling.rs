//! The grant ceiling (docs/design.md §6): no actor can give anyone a power that the actor does not hold.
//!
//! The ceiling judges **outcomes, not actions**. Every power is an [`Atom`]: a system power, or
//! (resource, read/write, own/all) in one unit (or in every unit). A principal (a user, or a key)
//! holds the atoms of its [`TenantState`]; [`judge`] compares the state before a write with the
//! state after it, both read inside the transaction that writes, and refuses when any principal
//! gains an atom the actor does not hold in that unit, when a secret is handed over (a password, a
//! key, a re-activation) for a principal whose atoms, own records included, exceed the actor's, or
//! when anyone but a Supervisor changes a Supervisor. Taking power away is never refused otherwise.
//! Pure: no storage, no HTTP.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use crate::{
    Scopes,
    ids::{GroupId, KeyId, UnitId, UserId},
    permission::{Access, AdminScope, Grant, Permissions, Reach, Resource, Scope, SystemGroup},
    user::UserCategory,
};

/// What someone holds: permissions, and the units they reach (`None`: every unit).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Power {
    pub permissions: Permissions,
    pub units: Option<BTreeSet<UnitId>>,
}

impl Power {
    pub fn new(permissions: Permissions, units: Option<&[UnitId]>) -> Self {
        Self { permissions, units: units.map(|u| u.iter().copied().collect()) }
    }

    /// What a key of a user with `owner` power reaches: the owner's permissions narrowed to the
    /// key's scopes, and the owner's units narrowed to the key's units.
    pub fn of_key(owner: &Power, scopes: Option<&crate::Scopes>, units: Option<&[UnitId]>) -> Self {
        let units = match (&owner.units, units) {
            (None, None) => None,
            (Some(owned), None) => Some(owned.clone()),
            (None, Some(key)) => Some(key.iter().copied().collect()),
            (Some(owned), Some(key)) => Some(key.iter().copied().filter(|u| owned.contains(u)).collect()),
        };
        Self { permissions: owner.permissions.narrowed_to(scopes), units }
    }
}

/// Who gives, for the console's choices ([`giveable_scopes`]): the command line holds everything,
/// a console user or an API key its own effective power.
#[derive(Debug, Clone, Copy)]
pub enum Authority<'a> {
    Everything,
    Holder(&'a Power),
}

/// Write ⊇ read, all ⊇ own; a Supervisor holds every grant.
fn holds_grant(actor: &Permissions, grant: Grant) -> bool {
    actor.supervisor || actor.reach(grant.resource, grant.access).is_some_and(|reach| reach >= grant.reach)
}

/// `keys:verify` reaches every key of the tenant: a Configurator (who manages them) holds it.
fn holds_verify(actor: &Permissions) -> bool {
    actor.supervisor || actor.configurator || actor.verify_keys
}

/// The grants of `grants` that `actor` holds nowhere: a new group may hold only grants its
/// creator holds (it gives nobody anything until someone joins it, which is judged on its
/// outcome; this keeps a creator from making a group they could never give).
pub fn grants_beyond(actor: Authority<'_>, grants: &[Grant]) -> Vec<Grant> {
    let Authority::Holder(holder) = actor else { return Vec::new() };
    grants.iter().copied().filter(|g| !holds_grant(&holder.permissions, *g)).collect()
}

/// The scopes `actor` may put on a key of a user holding `owner`: those whose reach the actor
/// holds too (a console offers only these; a refusal suggests them). `keys:verify` included when
/// the actor holds it.
pub fn giveable_scopes(actor: Authority<'_>, owner: &Power) -> Vec<Scope> {
    let everything = Power { permissions: Permissions::of_user(&[SystemGroup::Supervisor], []), units: None };
    let holder = match actor {
        Authority::Everything => &everything,
        Authority::Holder(p) => p,
    };
    let mut out = fitting_scopes(holder, owner);
    // Scopes of resources the owner holds no grant for reach only the owner's own records.
    for resource in Resource::ALL {
        if owner.permissions.reach(resource, Access::Read).is_none() {
            out.push(Scope::Resource(resource, Access::Write));
        }
    }
    if holds_verify(&holder.permissions) {
        out.push(Scope::KeysVerify);
    }
    // Admin scopes the giver carries and the owner's groups allow (a Supervisor holds them all).
    for admin in AdminScope::ALL {
        let gives = holder.permissions.supervisor || holder.permissions.allows_admin(admin);
        if gives && admin.group_flag(&owner.permissions) {
            out.push(Scope::Admin(admin));
        }
    }
    out.sort();
    out
}

/// The scopes of a key's owner that lie within `holder`'s permissions, for the refusal message.
fn fitting_scopes(holder: &Power, key: &Power) -> Vec<Scope> {
    let mut out = Vec::new();
    for resource in Resource::ALL {
        let fits = |access: Access| {
            key.permissions
                .reach(resource, access)
                .is_some_and(|reach| holds_grant(&holder.permissions, Grant { resource, access, reach }))
        };
        let read_fits = fits(Access::Read);
        if read_fits && fits(Access::Write) {
            out.push(Scope::Resource(resource, Access::Write));
        } else if read_fits {
            out.push(Scope::Resource(resource, Access::Read));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Outcomes: the state of a tenant's powers, its atoms, and the judgement of a change.
// ---------------------------------------------------------------------------------------------

/// Where an atom holds: one unit, or every unit (today's and tomorrow's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitScope {
    Every,
    Unit(UnitId),
}

impl fmt::Display for UnitScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Every => f.write_str("every unit"),
            Self::Unit(u) => write!(f, "unit {u}"),
        }
    }
}

/// A power that has no unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SystemPower {
    Supervisor,
    Configurator,
    UserConfigurator,
    VerifyKeys,
    /// An administrative scope of a scoped key (a user's system groups hold it whole).
    Admin(AdminScope),
}

/// One indivisible power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    System(SystemPower),
    /// `access` on `resource`, on the principal's own records (`Own`, relative to whoever holds
    /// it) or on all of them, in `unit`.
    Data {
        resource: Resource,
        access: Access,
        reach: Reach,
        unit: UnitScope,
    },
    /// `access` on the records that `owner` owns, in `unit`: what a secret of `owner` hands over.
    /// Held by `owner` and by whoever reaches all records of that resource in that unit.
    Records {
        resource: Resource,
        access: Access,
        owner: UserId,
        unit: UnitScope,
    },
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System(SystemPower::Supervisor) => f.write_str("the `Supervisor` group"),
            Self::System(SystemPower::Configurator) => f.write_str("the `Configurator` group"),
            Self::System(SystemPower::UserConfigurator) => f.write_str("the `User configurator` group"),
            Self::System(SystemPower::VerifyKeys) => f.write_str("keys:verify"),
            Self::System(SystemPower::Admin(a)) => write!(f, "the scope `{a}`"),
            Self::Data { resource, access, reach, unit } => {
                write!(f, "{} in {unit}", Grant { resource: *resource, access: *access, reach: *reach })
            }
            Self::Records { resource, access, owner, unit } => {
                write!(f, "{}:{} on the records of user {owner} in {unit}", resource.as_str(), access.as_str())
            }
        }
    }
}

/// A user as the ceiling sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub category: UserCategory,
    pub active: bool,
    pub has_password: bool,
    /// `None`: every unit.
    pub units: Option<BTreeSet<UnitId>>,
    pub groups: BTreeSet<GroupId>,
}

/// A group as the ceiling sees it: a system group, or a custom group's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub system: Option<SystemGroup>,
    pub grants: BTreeSet<Grant>,
}

/// A key as the ceiling sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub user: UserId,
    /// `None`: inherits its user's permissions.
    pub scopes: Option<Scopes>,
    /// `None`: every unit of its user.
    pub units: Option<BTreeSet<UnitId>>,
    /// Enabled, not revoked, not expired.
    pub usable: bool,
}

/// The powers of (part of) one tenant: the users, groups and keys a write touches, the actor
/// and everything they refer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantState {
    pub users: BTreeMap<UserId, UserState>,
    pub groups: BTreeMap<GroupId, GroupState>,
    pub keys: BTreeMap<KeyId, KeyState>,
}

/// Someone who holds atoms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    User(UserId),
    Key(KeyId),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(u) => write!(f, "user {u}"),
            Self::Key(k) => write!(f, "key {k}"),
        }
    }
}

/// Who makes a change: the command line (`system (cli)`), which holds everything, or a subject
/// (a console user, an API key) whose atoms are read from the state *before* the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    Everything,
    Subject(Subject),
}

/// A write to judge: the state before and after it, and the subjects whose secret it hands over
/// (a password set, a key issued or rolled for someone, a re-activation, a key enabled).
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub before: &'a TenantState,
    pub after: &'a TenantState,
    pub handed_over: &'a [Subject],
}

/// A refused write: the message says what the actor lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GrantExceedsActor {
    pub message: String,
    pub lacking: Vec<Atom>,
}

impl TenantState {
    /// The permissions a user's groups give (the own-records rule on for personal users).
    pub fn permissions_of(&self, user: UserId) -> Option<Permissions> {
        let u = self.users.get(&user)?;
        let groups: Vec<&GroupState> = u.groups.iter().filter_map(|g| self.groups.get(g)).collect();
        let system: Vec<SystemGroup> = groups.iter().filter_map(|g| g.system).collect();
        let grants = groups.iter().flat_map(|g| g.grants.iter().copied());
        Some(Permissions::of_user(&system, grants).with_own_records(u.category == UserCategory::Personal))
    }

    /// What `subject` can use now: nothing while inactive or unusable. `None` if unknown.
    /// `dormant`: as if every user were active (what a re-activation would bring back).
    fn power_of(&self, subject: Subject, dormant: bool) -> Option<(UserId, Permissions, Option<BTreeSet<UnitId>>)> {
        match subject {
            Subject::User(id) => {
                let u = self.users.get(&id)?;
                if !u.active && !dormant {
                    return Some((id, Permissions::default(), Some(BTreeSet::new())));
                }
                Some((id, self.permissions_of(id)?, u.units.clone()))
            }
            Subject::Key(id) => {
                let k = self.keys.get(&id)?;
                let owner = self.users.get(&k.user)?;
                if !k.usable || (!owner.active && !dormant) {
                    return Some((k.user, Permissions::default(), Some(BTreeSet::new())));
                }
                let owner_power = Power { permissions: self.permissions_of(k.user)?, units: owner.units.clone() };
                let key_units: Option<Vec<UnitId>> = k.units.as_ref().map(|u| u.iter().copied().collect());
                let p = Power::of_key(&owner_power, k.scopes.as_ref(), key_units.as_deref());
                Some((k.user, p.permissions, p.units))
            }
        }
    }

    /// The atoms `subject` holds: system powers and what its grants reach, in its units. The
    /// own-records rule of a personal user is not an atom here: every personal user has it and
    /// nobody gives it, except by handing over a secret (see [`Self::handed_over`]).
    pub fn atoms(&self, subject: Subject) -> BTreeSet<Atom> {
        self.atoms_as(subject, false)
    }

    /// The atoms `subject` would hold if every user were active: powers given to an inactive
    /// user wake up when anyone re-activates them, so they are gifts too.
    pub fn dormant_atoms(&self, subject: Subject) -> BTreeSet<Atom> {
        self.atoms_as(subject, true)
    }

    fn atoms_as(&self, subject: Subject, dormant: bool) -> BTreeSet<Atom> {
        let Some((_, permissions, units)) = self.power_of(subject, dormant) else { return BTreeSet::new() };
        let mut out = BTreeSet::new();
        let (supervisor, configurator) = (permissions.supervisor, permissions.supervisor || permissions.configurator);
        // A Supervisor holds every system power; a Configurator user (who manages keys) holds
        // `keys:verify`, but a key only through its `keys:verify` scope.
        let verify = match subject {
            Subject::User(_) => configurator,
            Subject::Key(_) => permissions.verify_keys,
        };
        for (on, power) in [
            (supervisor, SystemPower::Supervisor),
            (configurator, SystemPower::Configurator),
            (supervisor || permissions.user_configurator, SystemPower::UserConfigurator),
            (verify, SystemPower::VerifyKeys),
        ] {
            if on {
                out.insert(Atom::System(power));
            }
        }
        out.extend(permissions.admin.iter().map(|a| Atom::System(SystemPower::Admin(*a))));
        for unit in unit_scopes(units.as_ref()) {
            for resource in Resource::ALL {
                for access in [Access::Read, Access::Write] {
                    if let Some(reach) = permissions.reach(resource, access) {
                        out.insert(Atom::Data { resource, access, reach, unit });
                    }
                }
            }
        }
        out
    }

    /// Everything a secret of `subject` hands over: its atoms, with "own records" made concrete
    /// (the records of the subject's user), the own-records rule of a personal user included.
    pub fn handed_over(&self, subject: Subject) -> BTreeSet<Atom> {
        let Some((owner, permissions, units)) = self.power_of(subject, false) else { return BTreeSet::new() };
        let scopes = match subject {
            Subject::Key(k) => self.keys.get(&k).and_then(|k| k.scopes.clone()),
            Subject::User(_) => None,
        };
        let mut out: BTreeSet<Atom> = self
            .atoms(subject)
            .into_iter()
            .map(|a| match a {
                Atom::Data { resource, access, reach: Reach::Own, unit } => {
                    Atom::Records { resource, access, owner, unit }
                }
                other => other,
            })
            .collect();
        if permissions.own_records {
            for unit in unit_scopes(units.as_ref()) {
                for resource in Resource::ALL {
                    for access in [Access::Read, Access::Write] {
                        if scopes.as_ref().is_none_or(|s| s.admits(resource, access))
                            && permissions.reach(resource, access).is_none()
                        {
                            out.insert(Atom::Records { resource, access, owner, unit });
                        }
                    }
                }
            }
        }
        out
    }

    fn is_supervisor(&self, user: UserId) -> bool {
        self.permissions_of(user).is_some_and(|p| p.supervisor)
    }
}

fn unit_scopes(units: Option<&BTreeSet<UnitId>>) -> Vec<UnitScope> {
    match units {
        None => vec![UnitScope::Every],
        Some(set) => set.iter().map(|u| UnitScope::Unit(*u)).collect(),
    }
}

/// Whether a holder of `held` (whose user is `me`) holds `atom`: system powers as they are (see
/// [`TenantState::atoms`] for what each implies); write holds read, all holds own, every unit holds
/// each unit; the records of a user are held by that user and by whoever reaches all of them.
pub fn holds(held: &BTreeSet<Atom>, me: Option<UserId>, atom: &Atom) -> bool {
    let system = |p: SystemPower| held.contains(&Atom::System(p));
    let data = |resource: Resource, access: Access, reach: Reach, unit: UnitScope| {
        held.iter().any(|h| match *h {
            Atom::Data { resource: r, access: a, reach: re, unit: u } => {
                r == resource
                    && (a == access || (a == Access::Write && access == Access::Read))
                    && re >= reach
                    && (u == unit || u == UnitScope::Every)
            }
            _ => false,
        })
    };
    match *atom {
        // An admin scope is held as such (or its family's write), or whole by the system group
        // the console asks for (a Supervisor holds both groups' atoms).
        Atom::System(SystemPower::Admin(a)) => {
            held.iter().any(|h| matches!(h, Atom::System(SystemPower::Admin(b)) if b.implies(a)))
                || match a {
                    AdminScope::UsersRead | AdminScope::UsersWrite => system(SystemPower::UserConfigurator),
                    AdminScope::AuditRead => system(SystemPower::Configurator) || system(SystemPower::UserConfigurator),
                    _ => system(SystemPower::Configurator),
                }
        }
        Atom::System(p) => system(p),
        Atom::Data { resource, access, reach, unit } => data(resource, access, reach, unit),
        Atom::Records { resource, access, owner, unit } => {
            me == Some(owner) || data(resource, access, Reach::All, unit)
        }
    }
}

/// The atoms `subject` holds after a change that it did not hold before, now or once re-activated.
pub fn gained(before: &TenantState, after: &TenantState, subject: Subject) -> BTreeSet<Atom> {
    let had = before.atoms(subject);
    let mut out: BTreeSet<Atom> = after.atoms(subject).into_iter().filter(|a| !holds(&had, None, a)).collect();
    // Dormant powers count: what an inactive user (or a key of one) is given now, it holds the
    // moment anyone re-activates it.
    let had = before.dormant_atoms(subject);
    out.extend(after.dormant_atoms(subject).into_iter().filter(|a| !holds(&had, None, a)));
    out
}

/// Judges a write by its outcome: `Ok` when everything any subject gains, and everything a handed
/// over secret carries, lies within what `actor` held before the write, and no Supervisor was
/// changed by anyone but a Supervisor.
pub fn judge(actor: Judge, outcome: &Outcome<'_>) -> Result<(), GrantExceedsActor> {
    let Judge::Subject(actor) = actor else { return Ok(()) };
    let Outcome { before, after, handed_over } = *outcome;
    let held = before.atoms(actor);
    let me = match actor {
        Subject::User(u) => Some(u),
        Subject::Key(k) => before.keys.get(&k).map(|k| k.user),
    };
    let mut lacking = BTreeSet::new();
    let mut why = Vec::new();
    let subjects = after.users.keys().map(|u| Subject::User(*u)).chain(after.keys.keys().map(|k| Subject::Key(*k)));
    let mut gains = false;
    for subject in subjects {
        for atom in gained(before, after, subject) {
            if !holds(&held, me, &atom) {
                lacking.insert(atom);
                gains = true;
            }
        }
    }
    if gains {
        why.push("this change would give powers you do not hold");
    }
    let mut handed = false;
    for subject in handed_over {
        for atom in after.handed_over(*subject) {
            if !holds(&held, me, &atom) {
                lacking.insert(atom);
                handed = true;
            }
        }
    }
    if handed {
        why.push("this would hand over powers you do not hold");
    }
    if !held.contains(&Atom::System(SystemPower::Supervisor)) {
        // A password set on a Supervisor changes them even when `has_password` stays true.
        let handed = |id: &UserId| handed_over.contains(&Subject::User(*id));
        let changed = before
            .users
            .iter()
            .any(|(id, was)| before.is_supervisor(*id) && (after.users.get(id) != Some(was) || handed(id)));
        if changed {
            lacking.insert(Atom::System(SystemPower::Supervisor));
            why.push("only a Supervisor may change a Supervisor");
        }
    }
    if lacking.is_empty() {
        return Ok(());
    }
    let lacking: Vec<Atom> = lacking.into_iter().collect();
    let names: Vec<String> = lacking.iter().take(12).map(ToString::to_string).collect();
    let more = if lacking.len() > 12 { format!(" and {} more", lacking.len() - 12) } else { String::new() };
    Err(GrantExceedsActor { message: format!("{}: you lack {}{more}", why.join("; "), names.join(", ")), lacking })
}
