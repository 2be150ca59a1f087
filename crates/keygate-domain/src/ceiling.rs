//! The grant ceiling (DESIGN §6): no actor can give anyone a power that the actor does not hold.
//!
//! [`decide`] is the one function that judges every administrative gift: a user's groups, a
//! group's grants, a user's units, a password or a re-activation (either hands over the user's
//! powers to whoever can then use them) and a key for another user. The console, the command line
//! and the Public API all call it before they write anything. Pure: no storage, no HTTP.

use std::{collections::BTreeSet, fmt};

use crate::{
    ids::UnitId,
    permission::{Access, Grant, Permissions, Resource, Scope, SystemGroup},
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

/// Who gives. The command line (`system (cli)`) runs with access to the database and holds
/// everything; a console user or an API key holds its own effective power.
#[derive(Debug, Clone, Copy)]
pub enum Authority<'a> {
    Everything,
    Holder(&'a Power),
}

/// A group as the ceiling sees it: a system group, or a custom group's grants.
#[derive(Debug, Clone, Copy)]
pub struct GroupPower<'a> {
    pub system: Option<SystemGroup>,
    pub grants: &'a [Grant],
}

/// An administrative act that can give a power.
#[derive(Debug, Clone, Copy)]
pub enum Gift<'a> {
    /// Creating a user (`target` is then empty) or changing a user's groups.
    Membership { target: &'a Power, removed: &'a [GroupPower<'a>], added: &'a [GroupPower<'a>] },
    /// Setting a user's units (`None`: every unit).
    Units { target: &'a Power, units: Option<&'a BTreeSet<UnitId>> },
    /// Creating a custom group or changing its grants; every member gains what is added.
    Grants { before: &'a [Grant], after: &'a [Grant] },
    /// Setting a user's password or re-activating them: whoever can then use the account holds
    /// all of `target`'s power.
    HandOver { target: &'a Power },
    /// Any other change to a user (deactivation): only a Supervisor touches a Supervisor.
    Edit { target: &'a Power },
    /// Issuing, rolling or enabling a key that reaches `key` (see [`Power::of_key`]).
    Key { key: &'a Power },
}

/// One thing the actor would give without holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lack {
    Group(SystemGroup),
    Grant(Grant),
    VerifyKeys,
    Unit(UnitId),
    EveryUnit,
}

impl fmt::Display for Lack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Group(g) => write!(f, "the `{}` group", g.name()),
            Self::Grant(g) => write!(f, "{g}"),
            Self::VerifyKeys => f.write_str("keys:verify"),
            Self::Unit(u) => write!(f, "unit {u}"),
            Self::EveryUnit => f.write_str("every unit"),
        }
    }
}

/// A refused gift: the message says what the actor lacks (and, for keys, what would fit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GrantExceedsActor {
    pub message: String,
    pub lacking: Vec<Lack>,
}

/// Judges `gift` by `actor`: `Ok` when everything it gives lies within what the actor holds.
pub fn decide(actor: Authority<'_>, gift: &Gift<'_>) -> Result<(), GrantExceedsActor> {
    let Authority::Holder(holder) = actor else { return Ok(()) };
    let mut lacking = BTreeSet::new();
    let supervisor_rule = |target: &Power, lacking: &mut BTreeSet<Lack>| {
        if target.permissions.supervisor && !holder.permissions.supervisor {
            lacking.insert(Lack::Group(SystemGroup::Supervisor));
        }
    };
    let what = match gift {
        Gift::Membership { target, removed, added } => {
            supervisor_rule(target, &mut lacking);
            for group in removed.iter().chain(added.iter()) {
                if let Some(system) = group.system
                    && !holds_group(&holder.permissions, system)
                {
                    lacking.insert(Lack::Group(system));
                }
            }
            for grant in added.iter().flat_map(|g| g.grants) {
                if !holds_grant(&holder.permissions, *grant) {
                    lacking.insert(Lack::Grant(*grant));
                }
            }
            "this change of groups would give or take powers you do not hold"
        }
        Gift::Units { target, units } => {
            supervisor_rule(target, &mut lacking);
            match (units, &target.units) {
                (None, None) => {}
                (None, Some(_)) => lack_units(holder, None, &mut lacking),
                // Narrowing from every unit gives nothing.
                (Some(_), None) => {}
                (Some(new), Some(old)) => {
                    let added: BTreeSet<UnitId> = new.difference(old).copied().collect();
                    lack_units(holder, Some(&added), &mut lacking);
                }
            }
            "these units would give reach you do not hold"
        }
        Gift::Grants { before, after } => {
            for grant in after.iter().filter(|g| !before.contains(g)) {
                if !holds_grant(&holder.permissions, *grant) {
                    lacking.insert(Lack::Grant(*grant));
                }
            }
            "these grants would give every member of the group powers you do not hold"
        }
        Gift::HandOver { target } => {
            lacking.extend(lacks(holder, target));
            "this would hand over a user whose powers exceed yours"
        }
        Gift::Edit { target } => {
            supervisor_rule(target, &mut lacking);
            "only a Supervisor may change a Supervisor"
        }
        Gift::Key { key } => {
            lacking.extend(lacks(holder, key));
            "this key would hold powers you do not hold"
        }
    };
    if lacking.is_empty() {
        return Ok(());
    }
    let lacking: Vec<Lack> = lacking.into_iter().collect();
    let names: Vec<String> = lacking.iter().map(ToString::to_string).collect();
    let mut message = format!("{what}: you lack {}", names.join(", "));
    if let Gift::Key { key } = gift {
        let fit = fitting_scopes(holder, key);
        if fit.is_empty() {
            message.push_str("; no scope of this user lies within your permissions");
        } else {
            let fit: Vec<String> = fit.iter().map(ToString::to_string).collect();
            message.push_str(&format!("; scopes within your permissions: {}", fit.join(" ")));
        }
    }
    Err(GrantExceedsActor { message, lacking })
}

/// Supervisor only by a Supervisor; Configurator and User configurator by a Supervisor or a
/// holder of that same group.
fn holds_group(actor: &Permissions, group: SystemGroup) -> bool {
    actor.supervisor
        || match group {
            SystemGroup::Supervisor => false,
            SystemGroup::Configurator => actor.configurator,
            SystemGroup::UserConfigurator => actor.user_configurator,
        }
}

/// Write ⊇ read, all ⊇ own; a Supervisor holds every grant.
fn holds_grant(actor: &Permissions, grant: Grant) -> bool {
    actor.supervisor || actor.reach(grant.resource, grant.access).is_some_and(|reach| reach >= grant.reach)
}

/// `keys:verify` reaches every key of the tenant: a Configurator (who manages them) holds it.
fn holds_verify(actor: &Permissions) -> bool {
    actor.supervisor || actor.configurator || actor.verify_keys
}

fn lack_units(holder: &Power, wanted: Option<&BTreeSet<UnitId>>, lacking: &mut BTreeSet<Lack>) {
    let Some(held) = &holder.units else { return };
    match wanted {
        None => {
            lacking.insert(Lack::EveryUnit);
        }
        Some(wanted) => lacking.extend(wanted.difference(held).map(|u| Lack::Unit(*u))),
    }
}

/// Everything of `wanted` that `holder` does not hold.
fn lacks(holder: &Power, wanted: &Power) -> BTreeSet<Lack> {
    let mut out = BTreeSet::new();
    let (have, want) = (&holder.permissions, &wanted.permissions);
    for (flag, group) in [
        (want.supervisor, SystemGroup::Supervisor),
        (want.configurator, SystemGroup::Configurator),
        (want.user_configurator, SystemGroup::UserConfigurator),
    ] {
        if flag && !holds_group(have, group) {
            out.insert(Lack::Group(group));
        }
    }
    if want.verify_keys && !holds_verify(have) {
        out.insert(Lack::VerifyKeys);
    }
    for resource in Resource::ALL {
        for access in [Access::Read, Access::Write] {
            if let Some(reach) = want.reach(resource, access) {
                let grant = Grant { resource, access, reach };
                if !holds_grant(have, grant) {
                    out.insert(Lack::Grant(grant));
                }
            }
        }
    }
    lack_units(holder, wanted.units.as_ref(), &mut out);
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scopes;

    fn grant(s: &str) -> Grant {
        s.parse().expect("test grant")
    }

    fn power(system: &[SystemGroup], grants: &[&str]) -> Power {
        Power::new(Permissions::of_user(system, grants.iter().map(|g| grant(g))), None)
    }

    fn system(group: SystemGroup) -> GroupPower<'static> {
        GroupPower { system: Some(group), grants: &[] }
    }

    #[test]
    fn a_user_configurator_cannot_put_anyone_into_supervisor_or_configurator() {
        let actor = power(&[SystemGroup::UserConfigurator], &[]);
        let added = [system(SystemGroup::Supervisor), system(SystemGroup::Configurator)];
        let refused = decide(
            Authority::Holder(&actor),
            &Gift::Membership { target: &Power::default(), removed: &[], added: &added },
        )
        .expect_err("escalation");
        assert_eq!(refused.lacking, vec![Lack::Group(SystemGroup::Supervisor), Lack::Group(SystemGroup::Configurator)]);
        assert!(refused.message.contains("`Supervisor`"), "{}", refused.message);
    }

    #[test]
    fn a_holder_of_a_system_group_may_give_that_group_and_the_command_line_gives_anything() {
        let actor = power(&[SystemGroup::UserConfigurator], &[]);
        let added = [system(SystemGroup::UserConfigurator)];
        let gift = Gift::Membership { target: &Power::default(), removed: &[], added: &added };
        assert_eq!(decide(Authority::Holder(&actor), &gift), Ok(()));
        let added = [system(SystemGroup::Supervisor)];
        let gift = Gift::Membership { target: &Power::default(), removed: &[], added: &added };
        assert_eq!(decide(Authority::Everything, &gift), Ok(()));
    }

    #[test]
    fn only_a_supervisor_edits_a_supervisor() {
        let actor = power(&[SystemGroup::UserConfigurator], &[]);
        let admin = power(&[SystemGroup::Supervisor], &[]);
        assert!(decide(Authority::Holder(&actor), &Gift::Edit { target: &admin }).is_err());
        let boss = power(&[SystemGroup::Supervisor], &[]);
        assert_eq!(decide(Authority::Holder(&boss), &Gift::Edit { target: &admin }), Ok(()));
    }

    #[test]
    fn a_custom_grant_is_given_only_within_the_actors_reach() {
        let actor = power(&[SystemGroup::UserConfigurator], &["documents:write:own", "companies:read:all"]);
        let ok = [grant("documents:read:own"), grant("companies:read:own")];
        assert_eq!(decide(Authority::Holder(&actor), &Gift::Grants { before: &[], after: &ok }), Ok(()));
        let too_much = [grant("documents:read:all"), grant("companies:write:own")];
        let refused = decide(Authority::Holder(&actor), &Gift::Grants { before: &[], after: &too_much })
            .expect_err("beyond the actor");
        assert_eq!(
            refused.lacking,
            vec![Lack::Grant(grant("companies:write:own")), Lack::Grant(grant("documents:read:all"))]
        );
    }

    #[test]
    fn removing_a_grant_the_actor_lacks_is_not_a_gift() {
        let actor = power(&[SystemGroup::UserConfigurator], &[]);
        let before = [grant("documents:read:all")];
        assert_eq!(decide(Authority::Holder(&actor), &Gift::Grants { before: &before, after: &[] }), Ok(()));
    }

    #[test]
    fn a_configurator_cannot_issue_a_key_for_a_supervisor_and_is_told_which_scopes_fit() {
        let actor = power(&[SystemGroup::Configurator], &["companies:read:all"]);
        let owner = power(&[SystemGroup::Supervisor], &[]);
        let key = Power::of_key(&owner, None, None);
        let refused = decide(Authority::Holder(&actor), &Gift::Key { key: &key }).expect_err("escalation");
        assert!(refused.lacking.contains(&Lack::Group(SystemGroup::Supervisor)));
        assert!(refused.message.contains("scopes within your permissions: companies:read"), "{}", refused.message);
        let scoped = Power::of_key(&owner, Some(&Scopes::parse(&["companies:read"]).expect("scope")), None);
        assert_eq!(decide(Authority::Holder(&actor), &Gift::Key { key: &scoped }), Ok(()));
    }

    #[test]
    fn units_are_given_only_from_the_actors_own() {
        let mut actor = power(&[SystemGroup::UserConfigurator], &[]);
        actor.units = Some([UnitId(1), UnitId(2)].into());
        let target = Power { units: Some([UnitId(1)].into()), ..Power::default() };
        let two: BTreeSet<UnitId> = [UnitId(1), UnitId(2)].into();
        let three: BTreeSet<UnitId> = [UnitId(1), UnitId(3)].into();
        let holder = Authority::Holder(&actor);
        assert_eq!(decide(holder, &Gift::Units { target: &target, units: Some(&two) }), Ok(()));
        assert_eq!(
            decide(holder, &Gift::Units { target: &target, units: Some(&three) }).expect_err("unit 3").lacking,
            vec![Lack::Unit(UnitId(3))]
        );
        assert_eq!(
            decide(holder, &Gift::Units { target: &target, units: None }).expect_err("every unit").lacking,
            vec![Lack::EveryUnit]
        );
    }

    #[test]
    fn a_password_hands_over_the_users_whole_power() {
        let actor = power(&[SystemGroup::UserConfigurator], &["jobs:read:all"]);
        let reader = power(&[], &["jobs:read:own"]);
        assert_eq!(decide(Authority::Holder(&actor), &Gift::HandOver { target: &reader }), Ok(()));
        let configurator = power(&[SystemGroup::Configurator], &[]);
        assert!(decide(Authority::Holder(&actor), &Gift::HandOver { target: &configurator }).is_err());
    }
}
