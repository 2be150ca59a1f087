//! The grant ceiling as a property: random tenants, random actors (console users, API keys, the
//! command line) and random administrative acts. Every act the ceiling lets through is applied to
//! a model tenant, and afterwards no user or key holds anything new that its giver lacked.
//!
//! What a principal holds is computed here independently of the domain's own permission code, as a
//! set of atoms (a system group, `resource:access:reach` expanded by write ⊇ read and all ⊇ own,
//! `keys:verify`, a unit), so a mistake in the ceiling cannot hide behind the same mistake in its
//! oracle. 10 000 cases from a seed that is printed when a case fails; set
//! `KEYGATE_PROPTEST_SEED` (64 hex digits) to replay one.

use std::collections::BTreeSet;

use keygate_domain::{
    Access, Authority, Gift, Grant, GroupPower, Permissions, Power, Reach, Resource, Scope, Scopes, SystemGroup,
    UnitId, decide,
};
use proptest::{
    prelude::*,
    test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner},
};

const CASES: u32 = 10_000;
const UNITS: [UnitId; 3] = [UnitId(1), UnitId(2), UnitId(3)];
const SYSTEM: [SystemGroup; 3] = SystemGroup::ALL;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Atom {
    Group(SystemGroup),
    Verify,
    Reach(Resource, Access, Reach),
    Unit(UnitId),
}

#[derive(Debug, Clone)]
struct Group {
    system: Option<SystemGroup>,
    grants: Vec<Grant>,
}

#[derive(Debug, Clone)]
struct User {
    groups: BTreeSet<usize>,
    units: Option<BTreeSet<UnitId>>,
}

#[derive(Debug, Clone)]
struct Key {
    owner: usize,
    scopes: Option<Scopes>,
    units: Option<Vec<UnitId>>,
}

#[derive(Debug, Clone)]
struct Tenant {
    groups: Vec<Group>,
    users: Vec<User>,
    keys: Vec<Key>,
}

#[derive(Debug, Clone, Copy)]
enum Actor {
    Cli,
    User(usize),
    Key(usize),
}

#[derive(Debug, Clone)]
enum Act {
    CreateUser { groups: BTreeSet<usize>, units: Option<BTreeSet<UnitId>> },
    SetGroups { user: usize, groups: BTreeSet<usize> },
    SetUnits { user: usize, units: Option<BTreeSet<UnitId>> },
    CreateGroup { grants: Vec<Grant> },
    SetGrants { group: usize, grants: Vec<Grant> },
    IssueKey { owner: usize, scopes: Option<Scopes>, units: Option<Vec<UnitId>> },
    SetPassword { user: usize },
    Deactivate { user: usize },
}

// --- the model: what the domain says a principal holds -------------------------------------------

impl Tenant {
    fn user_power(&self, user: usize) -> Power {
        let groups: Vec<&Group> = self.users[user].groups.iter().map(|g| &self.groups[*g]).collect();
        let system: Vec<SystemGroup> = groups.iter().filter_map(|g| g.system).collect();
        let grants = groups.iter().flat_map(|g| g.grants.iter().copied());
        Power { permissions: Permissions::of_user(&system, grants), units: self.users[user].units.clone() }
    }

    fn key_power(&self, key: usize) -> Power {
        let k = &self.keys[key];
        Power::of_key(&self.user_power(k.owner), k.scopes.as_ref(), k.units.as_deref())
    }

    fn group_power(&self, group: usize) -> GroupPower<'_> {
        GroupPower { system: self.groups[group].system, grants: &self.groups[group].grants }
    }

    fn actor_power(&self, actor: Actor) -> Option<Power> {
        match actor {
            Actor::Cli => None,
            Actor::User(u) => Some(self.user_power(u)),
            Actor::Key(k) => Some(self.key_power(k)),
        }
    }
}

/// Runs `act` through the ceiling; applies it when allowed. `Err` carries nothing: a refusal.
fn attempt(tenant: &mut Tenant, actor: Actor, act: &Act) -> Result<(), ()> {
    let power = tenant.actor_power(actor);
    let authority = power.as_ref().map_or(Authority::Everything, Authority::Holder);
    let nobody = Power { units: Some(BTreeSet::new()), ..Power::default() };
    let allowed = |gift: Gift<'_>| decide(authority, &gift).map_err(|_| ());
    match act {
        Act::CreateUser { groups, units } => {
            let added: Vec<GroupPower<'_>> = groups.iter().map(|g| tenant.group_power(*g)).collect();
            allowed(Gift::Membership { target: &nobody, removed: &[], added: &added })?;
            allowed(Gift::Units { target: &nobody, units: units.as_ref() })?;
            tenant.users.push(User { groups: groups.clone(), units: units.clone() });
        }
        Act::SetGroups { user, groups } => {
            let target = tenant.user_power(*user);
            let before = &tenant.users[*user].groups;
            let removed: Vec<GroupPower<'_>> = before.difference(groups).map(|g| tenant.group_power(*g)).collect();
            let added: Vec<GroupPower<'_>> = groups.difference(before).map(|g| tenant.group_power(*g)).collect();
            allowed(Gift::Membership { target: &target, removed: &removed, added: &added })?;
            tenant.users[*user].groups = groups.clone();
        }
        Act::SetUnits { user, units } => {
            let target = tenant.user_power(*user);
            allowed(Gift::Units { target: &target, units: units.as_ref() })?;
            tenant.users[*user].units = units.clone();
        }
        Act::CreateGroup { grants } => {
            allowed(Gift::Grants { before: &[], after: grants })?;
            tenant.groups.push(Group { system: None, grants: grants.clone() });
        }
        Act::SetGrants { group, grants } => {
            if tenant.groups[*group].system.is_some() {
                return Err(()); // system groups carry no grants: refused before the ceiling
            }
            allowed(Gift::Grants { before: &tenant.groups[*group].grants, after: grants })?;
            tenant.groups[*group].grants = grants.clone();
        }
        Act::IssueKey { owner, scopes, units } => {
            let key = Power::of_key(&tenant.user_power(*owner), scopes.as_ref(), units.as_deref());
            allowed(Gift::Key { key: &key })?;
            tenant.keys.push(Key { owner: *owner, scopes: scopes.clone(), units: units.clone() });
        }
        Act::SetPassword { user } => allowed(Gift::HandOver { target: &tenant.user_power(*user) })?,
        Act::Deactivate { user } => allowed(Gift::Edit { target: &tenant.user_power(*user) })?,
    }
    Ok(())
}

// --- the oracle: atoms, computed without the domain's permission code -----------------------------

fn every_reach(resource: Resource) -> Vec<Atom> {
    [Access::Read, Access::Write]
        .into_iter()
        .flat_map(|a| [Reach::Own, Reach::All].map(|r| Atom::Reach(resource, a, r)))
        .collect()
}

fn grant_atoms(g: Grant) -> Vec<Atom> {
    let accesses: &[Access] = if g.access == Access::Write { &[Access::Read, Access::Write] } else { &[Access::Read] };
    let reaches: &[Reach] = if g.reach == Reach::All { &[Reach::Own, Reach::All] } else { &[Reach::Own] };
    accesses.iter().flat_map(|a| reaches.iter().map(move |r| Atom::Reach(g.resource, *a, *r))).collect()
}

fn unit_atoms(units: Option<&BTreeSet<UnitId>>) -> Vec<Atom> {
    match units {
        None => UNITS.iter().map(|u| Atom::Unit(*u)).collect(),
        Some(set) => set.iter().map(|u| Atom::Unit(*u)).collect(),
    }
}

/// A user's atoms straight from their groups.
fn user_atoms(t: &Tenant, user: usize) -> BTreeSet<Atom> {
    let mut out = BTreeSet::new();
    for g in &t.users[user].groups {
        let group = &t.groups[*g];
        match group.system {
            Some(SystemGroup::Supervisor) => {
                out.extend(SYSTEM.map(Atom::Group));
                out.insert(Atom::Verify);
                out.extend(Resource::ALL.into_iter().flat_map(every_reach));
            }
            Some(SystemGroup::Configurator) => {
                out.insert(Atom::Group(SystemGroup::Configurator));
                out.insert(Atom::Verify);
            }
            Some(SystemGroup::UserConfigurator) => {
                out.insert(Atom::Group(SystemGroup::UserConfigurator));
                out.extend(every_reach(Resource::Users));
            }
            None => out.extend(group.grants.iter().flat_map(|g| grant_atoms(*g))),
        }
    }
    out.extend(unit_atoms(t.users[user].units.as_ref()));
    out
}

/// A key's atoms: its owner's, kept where the scopes admit them, within the key's units.
fn key_atoms(t: &Tenant, key: usize) -> BTreeSet<Atom> {
    let k = &t.keys[key];
    let owner = user_atoms(t, k.owner);
    let key_units: Option<BTreeSet<UnitId>> = k.units.as_ref().map(|u| u.iter().copied().collect());
    let in_units = |u: &UnitId| key_units.as_ref().is_none_or(|set| set.contains(u));
    owner
        .into_iter()
        .filter(|atom| match (atom, &k.scopes) {
            (Atom::Unit(u), _) => in_units(u),
            (_, None) => true,
            (Atom::Reach(r, a, _), Some(s)) => {
                s.contains(Scope::Resource(*r, *a))
                    || (*a == Access::Read && s.contains(Scope::Resource(*r, Access::Write)))
            }
            (Atom::Group(_) | Atom::Verify, Some(_)) => false,
        })
        .chain(k.scopes.iter().filter(|s| s.contains(Scope::KeysVerify)).map(|_| Atom::Verify))
        .collect()
}

fn actor_atoms(t: &Tenant, actor: Actor) -> Option<BTreeSet<Atom>> {
    match actor {
        Actor::Cli => None,
        Actor::User(u) => Some(user_atoms(t, u)),
        Actor::Key(k) => Some(key_atoms(t, k)),
    }
}

/// After an allowed act: whatever any user or key gained, or any user lost of a system group,
/// the actor held.
fn check(before: &Tenant, after: &Tenant, actor: Actor, act: &Act) -> Result<(), TestCaseError> {
    let Some(held) = actor_atoms(before, actor) else { return Ok(()) };
    let within = |gained: BTreeSet<Atom>, what: String| -> Result<(), TestCaseError> {
        let beyond: Vec<&Atom> = gained.iter().filter(|a| !held.contains(a)).collect();
        prop_assert!(beyond.is_empty(), "{what} gained {beyond:?}, which actor {actor:?} lacks ({held:?})");
        Ok(())
    };
    for u in 0..after.users.len() {
        let old = if u < before.users.len() { user_atoms(before, u) } else { BTreeSet::new() };
        let new = user_atoms(after, u);
        within(new.difference(&old).copied().collect(), format!("user {u}"))?;
        let lost_groups = old.difference(&new).filter(|a| matches!(a, Atom::Group(_))).copied().collect();
        within(lost_groups, format!("user {u} (system groups taken away)"))?;
        if old.contains(&Atom::Group(SystemGroup::Supervisor)) && before.users[u].groups != after.users[u].groups
            || old.contains(&Atom::Group(SystemGroup::Supervisor)) && before.users[u].units != after.users[u].units
        {
            prop_assert!(
                held.contains(&Atom::Group(SystemGroup::Supervisor)),
                "a non-Supervisor changed Supervisor {u}"
            );
        }
    }
    for k in 0..after.keys.len() {
        let old = if k < before.keys.len() { key_atoms(before, k) } else { BTreeSet::new() };
        within(key_atoms(after, k).difference(&old).copied().collect(), format!("key {k}"))?;
    }
    match act {
        Act::SetPassword { user } => within(user_atoms(before, *user), format!("the password of user {user}"))?,
        Act::Deactivate { user } if user_atoms(before, *user).contains(&Atom::Group(SystemGroup::Supervisor)) => {
            prop_assert!(held.contains(&Atom::Group(SystemGroup::Supervisor)), "a non-Supervisor deactivated one");
        }
        _ => {}
    }
    Ok(())
}

// --- random tenants, actors and acts ---------------------------------------------------------------

fn grant() -> impl Strategy<Value = Grant> {
    (0..Resource::ALL.len(), any::<bool>(), any::<bool>()).prop_map(|(r, write, all)| Grant {
        resource: Resource::ALL[r],
        access: if write { Access::Write } else { Access::Read },
        reach: if all { Reach::All } else { Reach::Own },
    })
}

fn units() -> impl Strategy<Value = Option<BTreeSet<UnitId>>> {
    prop::option::of(prop::collection::btree_set(1i64..=3, 0..=3).prop_map(|s| s.into_iter().map(UnitId).collect()))
}

fn scopes() -> impl Strategy<Value = Option<Scopes>> {
    let all: Vec<String> = Resource::ALL
        .iter()
        .flat_map(|r| [format!("{}:read", r.as_str()), format!("{}:write", r.as_str())])
        .chain(["keys:verify".to_owned()])
        .collect();
    prop::option::of(prop::sample::subsequence(all, 0..=4).prop_map(|s| Scopes::parse(&s).expect("known scopes")))
}

fn group_set() -> impl Strategy<Value = BTreeSet<usize>> {
    prop::collection::btree_set(0usize..8, 0..=3)
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        (group_set(), units()).prop_map(|(groups, units)| Act::CreateUser { groups, units }),
        (any::<usize>(), group_set()).prop_map(|(user, groups)| Act::SetGroups { user, groups }),
        (any::<usize>(), units()).prop_map(|(user, units)| Act::SetUnits { user, units }),
        prop::collection::vec(grant(), 0..=3).prop_map(|grants| Act::CreateGroup { grants }),
        (any::<usize>(), prop::collection::vec(grant(), 0..=3))
            .prop_map(|(group, grants)| Act::SetGrants { group, grants }),
        (any::<usize>(), scopes(), units()).prop_map(|(owner, scopes, units)| Act::IssueKey {
            owner,
            scopes,
            units: units.map(|u| u.into_iter().collect())
        }),
        any::<usize>().prop_map(|user| Act::SetPassword { user }),
        any::<usize>().prop_map(|user| Act::Deactivate { user }),
    ]
}

/// Indices drawn as any `usize` are taken modulo what exists when the act runs.
fn bind(t: &Tenant, act: &Act) -> Act {
    let (users, groups) = (t.users.len(), t.groups.len());
    let valid = |set: &BTreeSet<usize>| set.iter().map(|g| g % groups).collect::<BTreeSet<_>>();
    match act.clone() {
        Act::CreateUser { groups: g, units } => Act::CreateUser { groups: valid(&g), units },
        Act::SetGroups { user, groups: g } => Act::SetGroups { user: user % users, groups: valid(&g) },
        Act::SetUnits { user, units } => Act::SetUnits { user: user % users, units },
        Act::SetGrants { group, grants } => Act::SetGrants { group: group % groups, grants },
        Act::IssueKey { owner, scopes, units } => Act::IssueKey { owner: owner % users, scopes, units },
        Act::SetPassword { user } => Act::SetPassword { user: user % users },
        Act::Deactivate { user } => Act::Deactivate { user: user % users },
        other @ Act::CreateGroup { .. } => other,
    }
}

fn tenant() -> impl Strategy<Value = Tenant> {
    let custom = prop::collection::vec(prop::collection::vec(grant(), 0..=3), 1..=4);
    let users = prop::collection::vec((group_set(), units()), 1..=5);
    let keys = prop::collection::vec((any::<usize>(), scopes(), units()), 0..=3);
    (custom, users, keys).prop_map(|(custom, users, keys)| {
        let mut groups: Vec<Group> = SYSTEM.iter().map(|s| Group { system: Some(*s), grants: vec![] }).collect();
        groups.extend(custom.into_iter().map(|grants| Group { system: None, grants }));
        let n = groups.len();
        let users: Vec<User> = users
            .into_iter()
            .map(|(g, units)| User { groups: g.into_iter().map(|i| i % n).collect(), units })
            .collect();
        let keys = keys
            .into_iter()
            .map(|(owner, scopes, units)| Key {
                owner: owner % users.len(),
                scopes,
                units: units.map(|u| u.into_iter().collect()),
            })
            .collect();
        Tenant { groups, users, keys }
    })
}

fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    match std::env::var("KEYGATE_PROPTEST_SEED") {
        Ok(hex) => {
            for (i, byte) in seed.iter_mut().enumerate() {
                *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).expect("64 hex digits"), 16).expect("hex");
            }
        }
        Err(_) => getrandom::fill(&mut seed).expect("random seed"),
    }
    seed
}

#[test]
fn no_actor_gives_a_power_it_does_not_hold() {
    let seed = seed();
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let config = Config { cases: CASES, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let case = (tenant(), prop::collection::vec((any::<usize>(), act()), 1..=6));
    let allowed = std::cell::Cell::new(0u32);
    let refused = std::cell::Cell::new(0u32);
    let result = runner.run(&case, |(mut tenant, acts)| {
        for (who, act) in &acts {
            let actors = 1 + tenant.users.len() + tenant.keys.len();
            let actor = match who % actors {
                0 => Actor::Cli,
                i if i <= tenant.users.len() => Actor::User(i - 1),
                i => Actor::Key(i - 1 - tenant.users.len()),
            };
            let act = bind(&tenant, act);
            let before = tenant.clone();
            if attempt(&mut tenant, actor, &act).is_ok() {
                allowed.set(allowed.get() + 1);
                check(&before, &tenant, actor, &act)?;
            } else {
                refused.set(refused.get() + 1);
                prop_assert!(
                    matches!(actor, Actor::User(_) | Actor::Key(_)) || matches!(act, Act::SetGrants { .. }),
                    "the command line was refused {act:?}"
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nreplay with KEYGATE_PROPTEST_SEED={hex}");
    }
    // Both outcomes must actually occur, or the property says nothing.
    let (allowed, refused) = (allowed.get(), refused.get());
    println!("{allowed} acts allowed, {refused} refused (seed {hex})");
    assert!(allowed > 5_000 && refused > 5_000, "allowed {allowed}, refused {refused} (seed {hex})");
}
