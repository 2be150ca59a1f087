//! Issue 17, "prove it independently", through the real HTTP surfaces: random administrative
//! actions by random actors through the console's forms (session cookie, CSRF token, nonces), the
//! Public API (`POST`/`PATCH /rest/v1/{unit}/users`) and the management API (issue 21: API keys,
//! unscoped or with administrative and data scopes, issuing, rolling, enabling and bulk-issuing
//! keys, creating and changing users, passwords, activation, groups and units under `/v1/`), on
//! SQLite and PostgreSQL. After every action the state is read back and judged by an oracle
//! written from docs/design.md §6 and the issues' prose alone (it shares nothing with
//! `keygate_domain::ceiling`):
//!
//! - the administrative powers (`admin:<family>:read|write`) are atoms too: a member of
//!   `Configurator` holds keys, settings and audit, of `User configurator` users (groups, units)
//!   and audit, a Supervisor all; an unscoped key inherits its user's, a scoped key holds those it
//!   names (write holds read) while its user is a member of the group that holds them;
//!
//! - an accepted action gives no user and no usable key an atom it did not hold, unless the actor
//!   held that atom (in that unit; "every unit" only if the actor reaches every unit);
//! - a handed-over secret (password set, key issued/rolled/enabled for another user,
//!   re-activation) carries only atoms the actor held, a target's `own` atoms needing `all`;
//! - only a Supervisor changes a Supervisor; a new custom group grants only what its creator holds;
//! - a refused action changes nothing at all.
//!
//! Replay a run with `KEYGATE_CEILING_SEED=<seed>`; `KEYGATE_CEILING_ACTIONS` sets the count.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Instant;

use keygate_domain::{Email, SystemGroup, Timestamp, UnitId, UserId};
use keygate_service::Backend;
use keygate_service::{Caller, CreateUser, IssueKey, KeyOwner};
use reqwest::redirect::Policy;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::helpers::{TENANT, TestApp, spawn_app_on};

on_both_backends!(random_administrative_actions_over_http_give_nothing_the_actor_lacks);

const PUBLIC_API: &str = "/console/configuration/system/integrations/public-api";
const PASSWORD: &str = "correct horse battery staple";
const RESOURCES: [&str; 8] = ["companies", "persons", "jobs", "tasks", "documents", "invoices", "time", "users"];
/// Resources the actors hold something of: drawn more often, so that some grants pass.
const LIKELY: [&str; 6] = ["documents", "companies", "jobs", "invoices", "users", "persons"];
const SCOPES: [&str; 7] =
    ["documents:read", "companies:write", "companies:read", "jobs:read", "invoices:read", "users:write", "keys:verify"];

// ---------------------------------------------------------------------------------------------
// A seeded random source (splitmix64): no dependency, the same sequence for the same seed.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).expect("fits")).expect("fits")
    }
    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    /// Up to `max` distinct items of `items`.
    fn some<T: Clone + PartialEq>(&mut self, items: &[T], max: usize) -> Vec<T> {
        let n = self.below(max + 1);
        let mut out = Vec::new();
        for _ in 0..n {
            let x = self.pick(items).clone();
            if !out.contains(&x) {
                out.push(x);
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The state as read back through the service and the store.

#[derive(Debug, Clone, PartialEq)]
struct UserRow {
    email: String,
    personal: bool,
    active: bool,
    password_hash: Option<String>,
    units: Option<Vec<i64>>,
    groups: BTreeSet<i64>,
}

#[derive(Debug, Clone, PartialEq)]
struct GroupRow {
    name: String,
    system: Option<&'static str>,
    grants: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct KeyRow {
    user: i64,
    scopes: Option<BTreeSet<String>>,
    units: Option<Vec<i64>>,
    enabled: bool,
    revoked: bool,
    expires_at: Option<i64>,
    rolled_from: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
struct State {
    units: Vec<(i64, String)>,
    users: BTreeMap<i64, UserRow>,
    groups: BTreeMap<i64, GroupRow>,
    keys: BTreeMap<i64, KeyRow>,
}

async fn snapshot(app: &TestApp) -> State {
    let cli = Caller::CLI;
    let units = app.keygate.list_units(&cli, app.tenant).await.expect("units");
    let groups: BTreeMap<i64, GroupRow> = app
        .keygate
        .list_groups(&cli, app.tenant)
        .await
        .expect("groups")
        .into_iter()
        .map(|g| {
            let system = g.system.map(|s| match s {
                SystemGroup::Supervisor => "supervisor",
                SystemGroup::Configurator => "configurator",
                SystemGroup::UserConfigurator => "user configurator",
            });
            let grants = g.grants.iter().map(ToString::to_string).collect();
            (g.id.0, GroupRow { name: g.name, system, grants })
        })
        .collect();
    let mut users = BTreeMap::new();
    for u in app.keygate.list_users(&cli, app.tenant).await.expect("users") {
        let email = Email::parse(&u.email).expect("a stored email parses");
        let (_, password_hash, _) = app
            .keygate
            .store_for_tests()
            .users()
            .login_record(app.tenant, &email)
            .await
            .expect("login record")
            .expect("the user");
        let ids = u
            .groups
            .iter()
            .map(|name| {
                groups
                    .iter()
                    .find(|(_, g)| g.name.eq_ignore_ascii_case(name))
                    .map(|(id, _)| *id)
                    .unwrap_or_else(|| panic!("user {} is in an unknown group {name}", u.email))
            })
            .collect();
        let row = UserRow {
            email: u.email,
            personal: u.category == keygate_domain::UserCategory::Personal,
            active: u.active,
            password_hash,
            units: u.units.map(|l| l.iter().map(|x| x.0).collect()),
            groups: ids,
        };
        users.insert(u.id.0, row);
    }
    let keys = app
        .keygate
        .list_keys(&cli, app.tenant)
        .await
        .expect("keys")
        .into_iter()
        .map(|v| {
            let k = v.listing.key;
            let row = KeyRow {
                user: k.user_id.0,
                scopes: k.scopes.as_ref().map(|s| s.iter().map(ToString::to_string).collect()),
                units: k.units.map(|l| l.iter().map(|x| x.0).collect()),
                enabled: k.enabled,
                revoked: k.revoked_at.is_some(),
                expires_at: k.expires_at.map(|t| t.0),
                rolled_from: k.rolled_from.map(|r| r.0),
            };
            (k.id.0, row)
        })
        .collect();
    State { units: units.into_iter().map(|(id, name)| (id.0, name)).collect(), users, groups, keys }
}

// ---------------------------------------------------------------------------------------------
// The oracle: atoms per unit, from the prose.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// Every unit, today's and tomorrow's.
    Every,
    Unit(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Atom {
    Data { resource: String, write: bool, all: bool, place: Place },
    Power(&'static str),
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Data { resource, write, all, place } => {
                let access = if *write { "write" } else { "read" };
                let reach = if *all { "all" } else { "own" };
                match place {
                    Place::Every => write!(f, "{resource}:{access}:{reach}@every-unit"),
                    Place::Unit(u) => write!(f, "{resource}:{access}:{reach}@unit-{u}"),
                }
            }
            Atom::Power(p) => write!(f, "power:{p}"),
        }
    }
}

type Atoms = BTreeSet<Atom>;

const SUPERVISOR: &str = "Supervisor";
const CONFIGURATOR: &str = "Configurator";
const USER_CONFIGURATOR: &str = "User configurator";
const KEYS_VERIFY: &str = "keys:verify";
/// The administrative scopes (issue 21) and the group whose members hold each whole: Configurator
/// for keys and settings, User configurator for users (groups and units too), either for the audit
/// log. A Supervisor holds them all.
const ADMIN: [(&str, &[&str]); 7] = [
    ("admin:keys:read", &[CONFIGURATOR]),
    ("admin:keys:write", &[CONFIGURATOR]),
    ("admin:settings:read", &[CONFIGURATOR]),
    ("admin:settings:write", &[CONFIGURATOR]),
    ("admin:users:read", &[USER_CONFIGURATOR]),
    ("admin:users:write", &[USER_CONFIGURATOR]),
    ("admin:audit:read", &[CONFIGURATOR, USER_CONFIGURATOR]),
];

/// The administrative powers `user` holds as a *member* of Configurator or User configurator
/// (the groups the console asks for the same work); nothing when inactive.
fn member_admin(s: &State, user: i64) -> BTreeSet<&'static str> {
    let Some(u) = s.users.get(&user).filter(|u| u.active) else { return BTreeSet::new() };
    let systems: BTreeSet<&str> = u.groups.iter().filter_map(|g| s.groups.get(g).and_then(|g| g.system)).collect();
    let member = |group: &str| systems.contains(group.to_lowercase().as_str());
    ADMIN.iter().filter(|(_, groups)| groups.iter().any(|g| member(g))).map(|(scope, _)| *scope).collect()
}

/// A grant in a place, with what it includes: write includes read, all includes own.
fn grant(out: &mut Atoms, resource: &str, write: bool, all: bool, place: Place) {
    for w in [false, true] {
        for a in [false, true] {
            if (w && !write) || (a && !all) {
                continue;
            }
            out.insert(Atom::Data { resource: resource.to_owned(), write: w, all: a, place });
        }
    }
}

fn places(units: &Option<Vec<i64>>) -> Vec<Place> {
    match units {
        None => vec![Place::Every],
        Some(list) => list.iter().map(|u| Place::Unit(*u)).collect(),
    }
}

/// What a user holds: its groups' grants in each of its units; nothing when inactive. With
/// `own_rule`, a personal user's own records too (write, own, every resource).
fn user_atoms(s: &State, id: i64, own_rule: bool) -> Atoms {
    let mut out = Atoms::new();
    let Some(u) = s.users.get(&id) else { return out };
    if !u.active {
        return out;
    }
    let here = places(&u.units);
    for gid in &u.groups {
        let g = &s.groups[gid];
        match g.system {
            Some("supervisor") => {
                for p in &here {
                    for r in RESOURCES {
                        grant(&mut out, r, true, true, *p);
                    }
                }
                for power in [SUPERVISOR, CONFIGURATOR, USER_CONFIGURATOR, KEYS_VERIFY] {
                    out.insert(Atom::Power(power));
                }
                for (scope, _) in ADMIN {
                    out.insert(Atom::Power(scope));
                }
            }
            Some("user configurator") => {
                out.insert(Atom::Power(USER_CONFIGURATOR));
                for p in &here {
                    grant(&mut out, "users", true, true, *p);
                }
            }
            Some(_) => {
                out.insert(Atom::Power(CONFIGURATOR));
                out.insert(Atom::Power(KEYS_VERIFY));
            }
            None => {
                for text in &g.grants {
                    let parts: Vec<&str> = text.split(':').collect();
                    assert_eq!(parts.len(), 3, "a grant reads resource:access:reach: {text}");
                    for p in &here {
                        grant(&mut out, parts[0], parts[1] == "write", parts[2] == "all", *p);
                    }
                }
            }
        }
    }
    for scope in member_admin(s, id) {
        out.insert(Atom::Power(scope));
    }
    if own_rule && u.personal {
        for p in &here {
            for r in RESOURCES {
                grant(&mut out, r, true, false, *p);
            }
        }
    }
    out
}

fn usable(s: &State, id: i64, now: i64) -> bool {
    let k = &s.keys[&id];
    k.enabled && !k.revoked && k.expires_at.is_none_or(|e| e > now) && s.users.get(&k.user).is_some_and(|u| u.active)
}

/// What a key holds: its user's atoms ∩ its scopes ∩ its units; nothing when it cannot be used.
/// An administrative power (`admin:<family>:read|write`): an unscoped key inherits its user's;
/// a scoped key holds one it names (write holds read) while its user is a member of the group
/// the console asks for that work (a Supervisor's other powers aside).
fn key_atoms(s: &State, id: i64, own_rule: bool, now: i64) -> Atoms {
    let mut out = Atoms::new();
    if !usable(s, id, now) {
        return out;
    }
    let k = &s.keys[&id];
    let of_user = user_atoms(s, k.user, own_rule);
    if let Some(scopes) = &k.scopes {
        for scope in member_admin(s, k.user) {
            let named = |text: &str| scopes.contains(text);
            if named(scope) || scope.strip_suffix(":read").is_some_and(|family| named(&format!("{family}:write"))) {
                out.insert(Atom::Power(scope));
            }
        }
    }
    for atom in &of_user {
        match atom {
            Atom::Power(p) => match &k.scopes {
                None if *p != KEYS_VERIFY => {
                    out.insert(atom.clone());
                }
                Some(scopes) if *p == KEYS_VERIFY && scopes.contains(KEYS_VERIFY) => {
                    out.insert(atom.clone());
                }
                _ => {}
            },
            Atom::Data { resource, write, all, place } => {
                let scoped = match &k.scopes {
                    None => true,
                    Some(scopes) => {
                        scopes.contains(&format!("{resource}:write"))
                            || (!write && scopes.contains(&format!("{resource}:read")))
                    }
                };
                if !scoped {
                    continue;
                }
                let wheres: Vec<Place> = match (&k.units, place) {
                    (None, p) => vec![*p],
                    (Some(list), Place::Every) => list.iter().map(|u| Place::Unit(*u)).collect(),
                    (Some(list), Place::Unit(u)) if list.contains(u) => vec![Place::Unit(*u)],
                    (Some(_), Place::Unit(_)) => vec![],
                };
                for w in wheres {
                    out.insert(Atom::Data { resource: resource.clone(), write: *write, all: *all, place: w });
                }
            }
        }
    }
    out
}

/// Whether `set` holds `atom`: in its unit, or in every unit.
fn holds(set: &Atoms, atom: &Atom) -> bool {
    if set.contains(atom) {
        return true;
    }
    match atom {
        Atom::Data { resource, write, all, place: Place::Unit(_) } => {
            set.contains(&Atom::Data { resource: resource.clone(), write: *write, all: *all, place: Place::Every })
        }
        _ => false,
    }
}

/// What a handed-over secret carries: every atom, a target's own records needing `all`.
fn handed_over(set: &Atoms) -> Atoms {
    set.iter()
        .map(|a| match a {
            Atom::Data { resource, write, place, .. } => {
                Atom::Data { resource: resource.clone(), write: *write, all: true, place: *place }
            }
            power => power.clone(),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Principal {
    User(i64),
    Key(i64),
}

fn principals(s: &State, now: i64) -> BTreeMap<Principal, Atoms> {
    let mut out = BTreeMap::new();
    for id in s.users.keys() {
        out.insert(Principal::User(*id), user_atoms(s, *id, false));
    }
    for id in s.keys.keys() {
        out.insert(Principal::Key(*id), key_atoms(s, *id, false, now));
    }
    out
}

fn describe(s: &State, p: Principal) -> String {
    match p {
        Principal::User(id) => format!("{:?}", s.users.get(&id)),
        Principal::Key(id) => format!("{:?}", s.keys.get(&id)),
    }
}

fn list(atoms: &[Atom]) -> String {
    atoms.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Who acted: a console user, or the user of an API key.
#[derive(Debug, Clone, Copy)]
struct ActorRef {
    user: i64,
    key: Option<i64>,
}

fn actor_atoms(s: &State, actor: ActorRef, now: i64) -> Atoms {
    match actor.key {
        Some(k) => key_atoms(s, k, false, now),
        None => user_atoms(s, actor.user, false),
    }
}

/// The invariant after one action; each violation as a printable report.
fn judge(before: &State, after: &State, actor: ActorRef, accepted: bool, now: i64, seen: &mut Judged) -> Vec<String> {
    let mut problems = Vec::new();
    if !accepted {
        if before != after {
            problems.push(format!("a refused action changed the state:\n{}", diff(before, after)));
        }
        return problems;
    }
    let held = actor_atoms(before, actor, now);
    let lacking = |wanted: &Atoms| -> Vec<Atom> { wanted.iter().filter(|a| !holds(&held, a)).cloned().collect() };
    // 1. Gains.
    let was = principals(before, now);
    for (p, atoms) in principals(after, now) {
        let empty = Atoms::new();
        let prev = was.get(&p).unwrap_or(&empty);
        let gained: Atoms = atoms.iter().filter(|a| !holds(prev, a)).cloned().collect();
        if !gained.is_empty() {
            seen.gains += 1;
        }
        let missing = lacking(&gained);
        if !missing.is_empty() {
            problems.push(format!(
                "{p:?} gained atoms the actor lacks: {}\n  before: {}\n  after:  {}",
                list(&missing),
                describe(before, p),
                describe(after, p)
            ));
        }
    }
    // 2. Handed-over secrets.
    for (id, u) in &after.users {
        if *id == actor.user {
            continue;
        }
        let old = before.users.get(id);
        let password_set = u.password_hash.is_some() && old.is_some_and(|o| o.password_hash != u.password_hash);
        let reactivated = u.active && old.is_some_and(|o| !o.active);
        if password_set || reactivated {
            seen.handovers += 1;
            let missing = lacking(&handed_over(&user_atoms(after, *id, true)));
            if !missing.is_empty() {
                let why = if password_set { "a password set" } else { "a re-activation" };
                problems.push(format!(
                    "{why} handed over user {id} with atoms the actor lacks: {}\n  before: {:?}\n  after:  {u:?}",
                    list(&missing),
                    old
                ));
            }
        }
    }
    for (id, k) in &after.keys {
        if k.user == actor.user || !usable(after, *id, now) {
            continue;
        }
        if before.keys.contains_key(id) && usable(before, *id, now) {
            continue;
        }
        seen.handovers += 1;
        let missing = lacking(&handed_over(&key_atoms(after, *id, true, now)));
        if !missing.is_empty() {
            problems.push(format!(
                "key {id} of user {} became usable (issued, rolled, enabled or its user re-activated) with atoms \
                 the actor lacks: {}\n  before: {:?}\n  after:  {k:?}",
                k.user,
                list(&missing),
                before.keys.get(id)
            ));
        }
    }
    // 3. Only a Supervisor changes a Supervisor.
    if !held.contains(&Atom::Power(SUPERVISOR)) {
        let supervisor_group: Vec<i64> =
            before.groups.iter().filter(|(_, g)| g.system == Some("supervisor")).map(|(id, _)| *id).collect();
        let is_supervisor =
            |u: Option<&UserRow>| u.is_some_and(|u| u.groups.iter().any(|g| supervisor_group.contains(g)));
        let ids: BTreeSet<i64> = before.users.keys().chain(after.users.keys()).copied().collect();
        for id in ids {
            let (old, new) = (before.users.get(&id), after.users.get(&id));
            if (is_supervisor(old) || is_supervisor(new)) && old != new {
                problems.push(format!(
                    "a non-Supervisor changed Supervisor user {id}\n  before: {old:?}\n  after:  {new:?}"
                ));
            }
        }
    }
    // 4. A new custom group grants only what its creator holds (in some unit).
    for (id, g) in &after.groups {
        if before.groups.contains_key(id) || g.system.is_some() {
            continue;
        }
        for text in &g.grants {
            let parts: Vec<&str> = text.split(':').collect();
            let mut wanted = Atoms::new();
            grant(&mut wanted, parts[0], parts[1] == "write", parts[2] == "all", Place::Every);
            let shapes = |a: &Atom| match a {
                Atom::Data { resource, write, all, .. } => Some((resource.clone(), *write, *all)),
                Atom::Power(_) => None,
            };
            let have: BTreeSet<_> = held.iter().filter_map(shapes).collect();
            if wanted.iter().filter_map(shapes).any(|s| !have.contains(&s)) {
                problems.push(format!("group {} was created with {text}, which its creator holds nowhere", g.name));
            }
        }
    }
    problems
}

fn diff(before: &State, after: &State) -> String {
    let mut out = Vec::new();
    if before.units != after.units {
        out.push(format!("  units: {:?} -> {:?}", before.units, after.units));
    }
    let users: BTreeSet<i64> = before.users.keys().chain(after.users.keys()).copied().collect();
    for id in users {
        if before.users.get(&id) != after.users.get(&id) {
            out.push(format!("  user {id}: {:?} -> {:?}", before.users.get(&id), after.users.get(&id)));
        }
    }
    let groups: BTreeSet<i64> = before.groups.keys().chain(after.groups.keys()).copied().collect();
    for id in groups {
        if before.groups.get(&id) != after.groups.get(&id) {
            out.push(format!("  group {id}: {:?} -> {:?}", before.groups.get(&id), after.groups.get(&id)));
        }
    }
    let keys: BTreeSet<i64> = before.keys.keys().chain(after.keys.keys()).copied().collect();
    for id in keys {
        if before.keys.get(&id) != after.keys.get(&id) {
            out.push(format!("  key {id}: {:?} -> {:?}", before.keys.get(&id), after.keys.get(&id)));
        }
    }
    out.join("\n")
}

// ---------------------------------------------------------------------------------------------
// The actors and the HTTP surfaces.

#[derive(Debug)]
struct Actor {
    label: &'static str,
    user: i64,
    email: String,
    /// `Some` for the API actors: its key's id and secret.
    key: Option<(i64, String)>,
    /// Whether the key acts through the management API (`/v1/`) rather than the Public API.
    manage: bool,
    cookie: Option<String>,
    weight: usize,
}

impl Actor {
    fn as_ref(&self) -> ActorRef {
        ActorRef { user: self.user, key: self.key.as_ref().map(|(id, _)| *id) }
    }
}

struct Http<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.find(&marker)
        .map(|start| html[start + marker.len()..].split('"').next().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

impl Http<'_> {
    async fn get(&self, path: &str, cookie: &str) -> (u16, String) {
        let r = self.client.get(self.app.url(path)).header("cookie", cookie).send().await.expect("get");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    async fn post(&self, path: &str, cookie: &str, form: &[(String, String)]) -> (u16, String) {
        let r = self.client.post(self.app.url(path)).header("cookie", cookie).form(form).send().await.expect("post");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    async fn log_in(&self, email: &str) -> Option<String> {
        let form = [("tenant", TENANT), ("email", email), ("password", PASSWORD)];
        let r = self.client.post(self.app.url("/console/login")).form(&form).send().await.expect("log-in");
        if r.status().as_u16() != 303 {
            return None;
        }
        let cookie = r.headers().get("set-cookie")?.to_str().ok()?;
        Some(cookie.split(';').next()?.to_owned())
    }

    /// The actor's session cookie and CSRF token, logging in again when the session ended
    /// (deactivated and re-activated, say). `None` when the actor cannot log in now.
    async fn session(&self, actor: &mut Actor, state: &State) -> Option<(String, String)> {
        for _ in 0..2 {
            if let Some(cookie) = &actor.cookie {
                let (status, page) = self.get("/console/configuration", cookie).await;
                if status == 200 {
                    return Some((cookie.clone(), hidden(&page, "csrf")));
                }
            }
            // Log in only when it can succeed: failed log-ins throttle the account.
            let me = state.users.get(&actor.user)?;
            if !me.active || me.password_hash.is_none() {
                return None;
            }
            actor.cookie = self.log_in(&actor.email).await;
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

/// How much the oracle had to judge: principals that gained atoms, secrets handed over.
#[derive(Debug, Default)]
struct Judged {
    gains: usize,
    handovers: usize,
}

#[derive(Debug, Default)]
struct Counts {
    accepted: BTreeMap<&'static str, usize>,
    refused: BTreeMap<&'static str, usize>,
    server_errors: usize,
    skipped: usize,
}

async fn person(app: &TestApp, email: &str, groups: &[&str], units: Option<Vec<i64>>, password: bool) -> i64 {
    let id = app
        .keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            CreateUser {
                inactive: false,
                email: email.into(),
                name: email.into(),
                category: if password { "personal" } else { "programmatic" }.into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                units: units.map(|l| l.into_iter().map(UnitId).collect()),
                password: password.then(|| SecretString::from(PASSWORD)),
            },
        )
        .await
        .expect("user");
    id.0
}

async fn cli_key(app: &TestApp, user: i64, scopes: Option<&[&str]>) -> (i64, String) {
    let issued = app
        .keygate
        .issue_key(
            &Caller::CLI,
            app.tenant,
            IssueKey {
                owner: KeyOwner::Id(UserId(user)),
                purpose: "ceiling random".into(),
                ip_ranges: vec!["127.0.0.0/8".into()],
                scopes: scopes.map(|s| s.iter().map(|x| (*x).to_owned()).collect()),
                rate_limit_per_minute: Some(1_000_000),
                ..IssueKey::default()
            },
        )
        .await
        .expect("issue");
    (issued.record.id.0, issued.secret.expose().to_owned())
}

fn seed() -> u64 {
    match std::env::var("KEYGATE_CEILING_SEED") {
        Ok(s) => s.trim().parse().expect("KEYGATE_CEILING_SEED is a number"),
        Err(_) => {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).expect("random seed");
            u64::from_le_bytes(bytes)
        }
    }
}

async fn random_administrative_actions_over_http_give_nothing_the_actor_lacks(app: TestApp) {
    let started = Instant::now();
    let seed = seed();
    let actions: usize = std::env::var("KEYGATE_CEILING_ACTIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(250);
    eprintln!("ceiling_random: seed {seed} ({actions} actions); replay with KEYGATE_CEILING_SEED={seed}");
    let mut rng = Rng(seed);

    // The world: units 1-3, groups with grants, actors with small and mixed rights, targets.
    let cli = Caller::CLI;
    for (n, name) in [(2, "Branch"), (3, "Warehouse")] {
        app.keygate.create_unit(&cli, app.tenant, Some(n), name).await.expect("unit");
    }
    for (name, grants) in [
        ("Docs", &["documents:read:all"][..]),
        ("Companies", &["companies:write:all"][..]),
        ("User admins", &["users:write:all"][..]),
        ("Own jobs", &["jobs:read:own", "persons:read:own"][..]),
    ] {
        let grants: Vec<String> = grants.iter().map(|g| (*g).to_owned()).collect();
        app.keygate.create_group(&cli, app.tenant, name, &grants).await.expect("group");
    }
    let small = person(&app, "uc-small@acme.example", &["User configurator", "Docs"], Some(vec![1]), true).await;
    let mixed = person(
        &app,
        "uc-mixed@acme.example",
        &["User configurator", "Configurator", "Companies", "Readers"],
        Some(vec![1, 2]),
        true,
    )
    .await;
    let conf = person(&app, "conf@acme.example", &["Configurator", "Docs", "Own jobs", "Readers"], None, true).await;
    let sup = person(&app, "sup@acme.example", &["Supervisor"], None, true).await;
    let sync = person(&app, "hr-sync@acme.example", &["User admins", "Docs"], Some(vec![1]), false).await;
    let api_key = cli_key(&app, sync, None).await;
    person(&app, "clerk@acme.example", &["Docs"], Some(vec![1]), true).await;
    let robot = person(&app, "robot@acme.example", &["Companies"], Some(vec![2]), false).await;
    cli_key(&app, app.user.0, None).await;
    cli_key(&app, robot, Some(&["companies:read"])).await;
    cli_key(&app, conf, Some(&["documents:read", "keys:verify"])).await;
    // Management-API actors (issue 21): keys with administrative scopes, or unscoped.
    let manage = |label: &'static str, user: i64, email: &str, key: (i64, String), weight: usize| Actor {
        label,
        user,
        email: email.to_owned(),
        key: Some(key),
        cookie: None,
        manage: true,
        weight,
    };
    let mixed_key = cli_key(&app, mixed, None).await;
    let keys_key =
        cli_key(&app, conf, Some(&["admin:keys:write", "admin:audit:read", "documents:read", "companies:write"])).await;
    let users_key = cli_key(&app, small, Some(&["admin:users:write", "documents:read", "users:write"])).await;
    let outsider_key = cli_key(&app, sync, Some(&["admin:users:write", "admin:keys:write", "users:write"])).await;
    let sup_key = cli_key(&app, sup, Some(&["admin:keys:write", "admin:users:write", "companies:read"])).await;

    let mut actors = [
        Actor {
            label: "uc-small",
            user: small,
            email: "uc-small@acme.example".into(),
            key: None,
            cookie: None,
            manage: false,
            weight: 25,
        },
        Actor {
            label: "uc-mixed",
            user: mixed,
            email: "uc-mixed@acme.example".into(),
            key: None,
            cookie: None,
            manage: false,
            weight: 25,
        },
        Actor {
            label: "configurator",
            user: conf,
            email: "conf@acme.example".into(),
            key: None,
            cookie: None,
            manage: false,
            weight: 20,
        },
        Actor {
            label: "supervisor",
            user: sup,
            email: "sup@acme.example".into(),
            key: None,
            cookie: None,
            manage: false,
            weight: 10,
        },
        Actor {
            label: "api-key",
            user: sync,
            email: "hr-sync@acme.example".into(),
            key: Some(api_key),
            cookie: None,
            manage: false,
            weight: 20,
        },
        manage("manage-unscoped", mixed, "uc-mixed@acme.example", mixed_key, 16),
        manage("manage-keys-scoped", conf, "conf@acme.example", keys_key, 12),
        manage("manage-users-scoped", small, "uc-small@acme.example", users_key, 12),
        manage("manage-outside-groups", sync, "hr-sync@acme.example", outsider_key, 3),
        manage("manage-supervisor-scoped", sup, "sup@acme.example", sup_key, 3),
    ];
    let actor_keys: Vec<i64> = actors.iter().filter_map(|a| a.key.as_ref().map(|(id, _)| *id)).collect();
    let actor_users: Vec<i64> = actors.iter().map(|a| a.user).collect();
    let http = Http { app: &app, client: reqwest::Client::builder().redirect(Policy::none()).build().expect("client") };

    let mut counts = Counts::default();
    let mut seen = Judged::default();
    let mut violations: Vec<String> = Vec::new();
    let mut next = 0usize;
    let mut state = snapshot(&app).await;
    // What the actors start with: the command line gives it back every 10 actions, so that a run
    // keeps exploring what rights can do instead of decaying into actors whose rights were all
    // taken away (every action refused). A group renamed or deleted meanwhile is not given back.
    let grounding: Vec<(i64, Vec<String>, Option<Vec<UnitId>>)> = {
        let mut out = Vec::new();
        for actor in &actors {
            let user = app.keygate.user_by_id(app.tenant, UserId(actor.user)).await.expect("actor");
            out.push((actor.user, user.groups, user.units));
        }
        out
    };
    // At least `actions` actions, and on until the floors below are met (at most three times as
    // many): some seeds draw mostly what the actors may not do.
    for step in 0..actions * 3 {
        let accepted_so_far: usize = counts.accepted.values().sum();
        if step >= actions && accepted_so_far >= actions / 5 && seen.gains + seen.handovers >= 5 {
            break;
        }
        if step > 0 && step % 10 == 0 {
            for (user, groups, units) in &grounding {
                let known = app.keygate.list_groups(&cli, app.tenant).await.expect("groups");
                let groups: Vec<String> =
                    groups.iter().filter(|g| known.iter().any(|k| &k.name == *g)).cloned().collect();
                let user = UserId(*user);
                let _ = app.keygate.set_user_active(&cli, app.tenant, user, true).await;
                let _ = app.keygate.set_user_groups(&cli, app.tenant, user, &groups).await;
                let _ = app.keygate.set_user_units(&cli, app.tenant, user, units.clone()).await;
            }
            for key in &actor_keys {
                let _ = app.keygate.set_key_enabled(&cli, Some(app.tenant), keygate_domain::KeyId(*key), true).await;
            }
            state = snapshot(&app).await;
        }
        let total: usize = actors.iter().map(|a| a.weight).sum();
        let mut roll = rng.below(total);
        let mut who = 0;
        while roll >= actors[who].weight {
            roll -= actors[who].weight;
            who += 1;
        }
        next += 1;
        let before = state.clone();
        let done = act(&http, &mut rng, &mut actors[who], &before, (&actor_users, &actor_keys), next).await;
        let Some((kind, what, status, accepted)) = done else {
            counts.skipped += 1;
            continue;
        };
        let now = Timestamp::now().0;
        let after = snapshot(&app).await;
        if status >= 500 {
            counts.server_errors += 1;
            eprintln!("step {step}: {} {what}: server error {status}", actors[who].label);
        }
        *if accepted { &mut counts.accepted } else { &mut counts.refused }.entry(kind).or_default() += 1;
        for problem in judge(&before, &after, actors[who].as_ref(), accepted, now, &mut seen) {
            let verdict = if accepted { "accepted" } else { "refused" };
            let report = format!(
                "VIOLATION at step {step} (seed {seed}): actor {} (user {}) did {what} -> {status} ({verdict})\n  \
                 actor held: {}\n{problem}",
                actors[who].label,
                actors[who].user,
                list(&actor_atoms(&before, actors[who].as_ref(), now).into_iter().collect::<Vec<_>>()),
            );
            eprintln!("{report}");
            violations.push(report);
        }
        state = after;
    }
    let accepted: usize = counts.accepted.values().sum();
    let refused: usize = counts.refused.values().sum();
    eprintln!(
        "ceiling_random: seed {seed}: {accepted} accepted {:?}, {refused} refused {:?}, {} server errors, {} skipped; \
         judged {} gains and {} handed-over secrets; {} users, {} groups, {} keys at the end, in {:.1} s",
        counts.accepted,
        counts.refused,
        counts.server_errors,
        counts.skipped,
        seen.gains,
        seen.handovers,
        state.users.len(),
        state.groups.len(),
        state.keys.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        violations.is_empty(),
        "{} violations of the grant ceiling (seed {seed}):\n{}",
        violations.len(),
        violations.join("\n\n")
    );
    assert!(accepted >= actions / 5, "too few accepted actions ({accepted}): the test would pass vacuously");
    assert!(refused >= actions / 10, "too few refused actions ({refused}): the ceiling was hardly tried");
    assert_eq!(counts.server_errors, 0, "the server answered 5xx (seed {seed})");
    assert!(seen.gains + seen.handovers >= 5, "the oracle judged too few gains and hand-overs: {seen:?}");
}

fn random_units(rng: &mut Rng, state: &State) -> Option<Vec<i64>> {
    if rng.percent(25) {
        return None;
    }
    let ids: Vec<i64> = state.units.iter().map(|(id, _)| *id).collect();
    let mut picked = rng.some(&ids, 3);
    if picked.is_empty() {
        picked.push(*rng.pick(&ids));
    }
    if rng.percent(3) {
        picked.push(99);
    }
    picked.sort_unstable();
    Some(picked)
}

fn random_groups(rng: &mut Rng, state: &State) -> Vec<String> {
    let names: Vec<String> = state.groups.values().map(|g| g.name.clone()).collect();
    let custom: Vec<String> = state.groups.values().filter(|g| g.system.is_none()).map(|g| g.name.clone()).collect();
    if rng.percent(40) && !custom.is_empty() { vec![rng.pick(&custom).clone()] } else { rng.some(&names, 3) }
}

fn random_grants(rng: &mut Rng) -> Vec<String> {
    let n = rng.below(3);
    (0..n)
        .map(|_| {
            let r = if rng.percent(85) { *rng.pick(&LIKELY) } else { *rng.pick(&RESOURCES) };
            let access = if rng.percent(60) { "read" } else { "write" };
            let reach = if rng.percent(60) { "all" } else { "own" };
            format!("{r}:{access}:{reach}")
        })
        .collect()
}

/// A target user: mostly users who are not actors; now and then an actor or the administrator.
fn random_user(rng: &mut Rng, state: &State, actors: &[i64]) -> i64 {
    let all: Vec<i64> = state.users.keys().copied().collect();
    let others: Vec<i64> = all.iter().copied().filter(|id| !actors.contains(id)).collect();
    if rng.percent(80) && !others.is_empty() { *rng.pick(&others) } else { *rng.pick(&all) }
}

fn pairs(fields: &[(&str, String)]) -> Vec<(String, String)> {
    fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// One random action of `actor` through HTTP: (kind, description, status, accepted), or `None`
/// when the actor cannot act now (a console user who cannot log in).
async fn act(
    http: &Http<'_>,
    rng: &mut Rng,
    actor: &mut Actor,
    state: &State,
    (actors, actor_keys): (&[i64], &[i64]),
    n: usize,
) -> Option<(&'static str, String, u16, bool)> {
    if let Some((_, secret)) = &actor.key {
        if actor.manage {
            return Some(manage_action(http, rng, secret, actor.user, state, (actors, actor_keys), n).await);
        }
        return Some(api_action(http, rng, secret, state, actors, n).await);
    }
    let (cookie, csrf) = http.session(actor, state).await?;
    let mut form = vec![("csrf".to_owned(), csrf)];
    let target = random_user(rng, state, actors);
    let custom: Vec<i64> = state.groups.iter().filter(|(_, g)| g.system.is_none()).map(|(id, _)| *id).collect();
    let choice = rng.below(100);
    let (kind, what, path): (&'static str, String, String) = match choice {
        0..=9 => {
            let programmatic = rng.percent(50);
            let groups = random_groups(rng, state);
            let units = random_units(rng, state);
            let password = rng.percent(40);
            let email = format!("n{n}@acme.example");
            form.extend(pairs(&[
                ("category", if programmatic { "programmatic" } else { "personal" }.to_owned()),
                ("name", format!("New {n}")),
                ("email", email.clone()),
            ]));
            form.extend(groups.iter().map(|g| ("group".to_owned(), g.clone())));
            form.extend(units.iter().flatten().map(|u| ("unit".to_owned(), u.to_string())));
            if password {
                form.push(("password".to_owned(), format!("a new password {n:04}")));
            }
            let what = format!(
                "console create user {email} programmatic={programmatic} groups={groups:?} units={units:?} \
                 password={password}"
            );
            ("console create user", what, "/console/users".to_owned())
        }
        10..=22 => {
            let groups = random_groups(rng, state);
            form.extend(groups.iter().map(|g| ("group".to_owned(), g.clone())));
            (
                "console user groups",
                format!("console set groups of user {target} to {groups:?}"),
                format!("/console/users/{target}/groups"),
            )
        }
        23..=32 => {
            let units = random_units(rng, state);
            form.push(("reach".to_owned(), if units.is_some() { "some" } else { "every" }.to_owned()));
            form.extend(units.iter().flatten().map(|u| ("unit".to_owned(), u.to_string())));
            (
                "console user units",
                format!("console set units of user {target} to {units:?}"),
                format!("/console/users/{target}/units"),
            )
        }
        33..=42 => {
            let action = if rng.percent(35) { "deactivate" } else { "activate" };
            // Deactivating an actor is taking power away (always allowed); it would only end coverage.
            let target = if actors.contains(&target) { random_user(rng, state, actors) } else { target };
            (
                "console (de)activate",
                format!("console {action} user {target}"),
                format!("/console/users/{target}/{action}"),
            )
        }
        43..=47 => {
            let others: Vec<i64> = state.users.keys().copied().filter(|id| !actors.contains(id)).collect();
            let target = *rng.pick(&others);
            let remove = rng.percent(15);
            if remove {
                form.push(("remove".to_owned(), "yes".to_owned()));
            } else {
                form.push(("password".to_owned(), format!("another password {n:04}")));
            }
            let what = format!("console {} password of user {target}", if remove { "remove" } else { "set" });
            ("console password", what, format!("/console/users/{target}/password"))
        }
        48..=54 => {
            let grants = random_grants(rng);
            let name = format!("Group {n}");
            form.push(("name".to_owned(), name.clone()));
            form.extend(grants.iter().map(|g| ("grant".to_owned(), g.clone())));
            (
                "console create group",
                format!("console create group {name} with {grants:?}"),
                "/console/groups".to_owned(),
            )
        }
        55..=63 if !custom.is_empty() => {
            let g = *rng.pick(&custom);
            let grants = random_grants(rng);
            form.extend(grants.iter().map(|x| ("grant".to_owned(), x.clone())));
            let what = format!("console set grants of group {g} ({}) to {grants:?}", state.groups[&g].name);
            ("console group grants", what, format!("/console/groups/{g}/grants"))
        }
        64..=67 if !custom.is_empty() => {
            let g = *rng.pick(&custom);
            let names: Vec<String> = state.groups.values().map(|x| x.name.clone()).collect();
            let new_name = if rng.percent(80) { format!("Renamed {n}") } else { rng.pick(&names).clone() };
            form.push(("new_name".to_owned(), new_name.clone()));
            let what = format!("console rename group {g} ({}) to {new_name}", state.groups[&g].name);
            ("console rename group", what, format!("/console/groups/{g}/rename"))
        }
        68..=71 if !custom.is_empty() => {
            let g = *rng.pick(&custom);
            let force = rng.percent(70);
            if force {
                form.push(("force".to_owned(), "yes".to_owned()));
            }
            let what = format!("console delete group {g} ({}) force={force}", state.groups[&g].name);
            ("console delete group", what, format!("/console/groups/{g}/delete"))
        }
        72..=74 if state.units.len() < 6 => {
            form.extend(pairs(&[("number", String::new()), ("name", format!("Unit of step {n}"))]));
            ("console create unit", "console create unit".to_owned(), "/console/units".to_owned())
        }
        75..=86 => {
            // The two-step form: the page for the chosen user, then the form with its nonce.
            let owner = random_user(rng, state, actors);
            let owner = if rng.percent(15) { actor.user } else { owner };
            let (_, page) = http.get(&format!("{PUBLIC_API}?for={owner}"), &cookie).await;
            let scopes = if rng.percent(50) { rng.some(&SCOPES, 2) } else { vec![] };
            let units = if rng.percent(40) { random_units(rng, state).unwrap_or_default() } else { vec![] };
            form.extend(pairs(&[
                ("nonce", hidden(&page, "nonce")),
                ("owner", owner.to_string()),
                ("purpose", format!("random {n}")),
                ("ranges", "127.0.0.1/32".to_owned()),
            ]));
            form.extend(scopes.iter().map(|s| ("scope".to_owned(), (*s).to_owned())));
            form.extend(units.iter().map(|u| ("unit".to_owned(), u.to_string())));
            let what = format!("console issue key for user {owner} scopes={scopes:?} units={units:?}");
            let (status, body) = http.post(&format!("{PUBLIC_API}/keys"), &cookie, &form).await;
            let accepted = status == 200 && body.contains("It will not be shown again");
            return Some(("console issue key", what, status, accepted));
        }
        _ if !state.keys.is_empty() => {
            let ids: Vec<i64> = state.keys.keys().copied().collect();
            let key = *rng.pick(&ids);
            let action = *rng.pick(&["disable", "enable", "enable", "revoke", "roll", "roll"]);
            // Revoking an actor's key is taking power away (always allowed); it would only end coverage.
            let action = if action == "revoke" && actor_keys.contains(&key) { "disable" } else { action };
            let path = format!("{PUBLIC_API}/keys/{key}/{action}");
            let what = format!("console {action} key {key} of user {}", state.keys[&key].user);
            if action == "roll" {
                let (_, page) = http.get(&path, &cookie).await;
                let hours = if rng.percent(50) { "1" } else { "24" };
                form.extend(pairs(&[("nonce", hidden(&page, "nonce")), ("overlap_hours", hours.to_owned())]));
                let (status, body) = http.post(&path, &cookie, &form).await;
                let accepted = status == 200 && body.contains("It will not be shown again");
                return Some(("console roll key", what, status, accepted));
            }
            ("console key switch", what, path)
        }
        _ => return Some(("none", "nothing".to_owned(), 200, true)),
    };
    let (status, _) = http.post(&path, &cookie, &form).await;
    Some((kind, what, status, (200..400).contains(&status)))
}

async fn api_action(
    http: &Http<'_>,
    rng: &mut Rng,
    secret: &str,
    state: &State,
    actors: &[i64],
    n: usize,
) -> (&'static str, String, u16, bool) {
    let units_json = |u: &Option<Vec<i64>>| match u {
        None => Value::Null,
        Some(l) => json!(l),
    };
    let (kind, what, request) = if rng.percent(35) {
        let email = format!("n{n}@acme.example");
        let mut body = Map::new();
        body.insert("name".into(), json!(format!("Api {n}")));
        body.insert("email".into(), json!(email));
        if rng.percent(30) {
            body.insert("category".into(), json!("personal"));
        }
        body.insert("groups".into(), json!(random_groups(rng, state)));
        let units = random_units(rng, state);
        if rng.percent(70) {
            body.insert("units".into(), units_json(&units));
        }
        let body = Value::Object(body);
        let r = http.client.post(http.app.url("/rest/v1/1/users")).bearer_auth(secret).json(&body);
        ("api POST users", format!("api POST users {body}"), r)
    } else {
        let target = random_user(rng, state, actors);
        let mut body = Map::new();
        while body.is_empty() {
            if rng.percent(50) {
                body.insert("groups".into(), json!(random_groups(rng, state)));
            }
            if rng.percent(40) {
                body.insert("units".into(), units_json(&random_units(rng, state)));
            }
            if rng.percent(40) && !actors.contains(&target) {
                body.insert("active".into(), json!(rng.percent(65)));
            }
        }
        let body = Value::Object(body);
        let r =
            http.client.patch(http.app.url(&format!("/rest/v1/1/users?id={target}"))).bearer_auth(secret).json(&body);
        ("api PATCH users", format!("api PATCH user {target} {body}"), r)
    };
    let status = request.send().await.expect("api call").status().as_u16();
    (kind, what, status, (200..300).contains(&status))
}

/// Scopes a key issued through the management API may name: data scopes and administrative ones.
const MANAGE_SCOPES: [&str; 11] = [
    "documents:read",
    "companies:write",
    "invoices:read",
    "users:write",
    "keys:verify",
    "admin:keys:read",
    "admin:keys:write",
    "admin:users:write",
    "admin:settings:write",
    "admin:audit:read",
    "admin:users:read",
];

/// A key item of `POST /v1/keys` (and of a bulk issue) for a random owner: mostly another user,
/// now and then the actor itself; unscoped a quarter of the time.
fn random_key_item(rng: &mut Rng, state: &State, actors: &[i64], me: i64, n: usize) -> Value {
    let owner = if rng.percent(20) { me } else { random_user(rng, state, actors) };
    let mut item = Map::new();
    item.insert("user".into(), json!(owner));
    item.insert("purpose".into(), json!(format!("managed {n}")));
    item.insert("ipRanges".into(), json!(["127.0.0.1/32"]));
    if !rng.percent(25) {
        let mut scopes = rng.some(&MANAGE_SCOPES, 3);
        if scopes.is_empty() {
            scopes.push(*rng.pick(&MANAGE_SCOPES));
        }
        item.insert("scopes".into(), json!(scopes));
    }
    if rng.percent(30)
        && let Some(units) = random_units(rng, state)
    {
        item.insert("units".into(), json!(units));
    }
    Value::Object(item)
}

/// One random administrative call of a key through the management API (`/v1/`): (kind,
/// description, status, accepted). Accepted is a 2xx answer.
async fn manage_action(
    http: &Http<'_>,
    rng: &mut Rng,
    secret: &str,
    me: i64,
    state: &State,
    (actors, actor_keys): (&[i64], &[i64]),
    n: usize,
) -> (&'static str, String, u16, bool) {
    let units_json = |u: &Option<Vec<i64>>| match u {
        None => Value::Null,
        Some(l) => json!(l),
    };
    let custom: Vec<i64> = state.groups.iter().filter(|(_, g)| g.system.is_none()).map(|(id, _)| *id).collect();
    let others: Vec<i64> = state.users.keys().copied().filter(|id| !actors.contains(id)).collect();
    let keys: Vec<i64> = state.keys.keys().copied().collect();
    let (kind, method, path, body): (&'static str, &str, String, Option<Value>) = match rng.below(100) {
        0..=15 => ("manage issue key", "POST", "/v1/keys".to_owned(), Some(random_key_item(rng, state, actors, me, n))),
        16..=27 if !keys.is_empty() => {
            let key = *rng.pick(&keys);
            let action = *rng.pick(&["disable", "enable", "enable", "revoke", "roll", "roll"]);
            let action = if action == "revoke" && actor_keys.contains(&key) { "disable" } else { action };
            let body = (action == "roll").then(|| json!({"overlapHours": if rng.percent(50) { 1 } else { 24 }}));
            let kind = if action == "roll" { "manage roll key" } else { "manage key switch" };
            (kind, "POST", format!("/v1/keys/{key}/{action}"), body)
        }
        28..=35 => {
            let body = if rng.percent(65) || keys.is_empty() {
                let count = 1 + rng.below(3);
                let items: Vec<Value> =
                    (0..count).map(|i| random_key_item(rng, state, actors, me, n * 10 + i)).collect();
                json!({"action": "issue", "items": items})
            } else {
                let mut picked: Vec<i64> = rng.some(&keys, 3).into_iter().filter(|k| !actor_keys.contains(k)).collect();
                if picked.is_empty() {
                    picked.push(*rng.pick(&keys));
                }
                let items: Vec<Value> = picked.iter().map(|id| json!({"id": id})).collect();
                json!({"action": if rng.percent(60) || picked.iter().any(|k| actor_keys.contains(k)) { "disable" } else { "revoke" }, "items": items})
            };
            ("manage bulk keys", "POST", "/v1/keys/bulk".to_owned(), Some(body))
        }
        36..=47 => {
            let mut body = Map::new();
            body.insert("email".into(), json!(format!("n{n}@acme.example")));
            body.insert("name".into(), json!(format!("Managed {n}")));
            body.insert("category".into(), json!(if rng.percent(50) { "programmatic" } else { "personal" }));
            body.insert("groups".into(), json!(random_groups(rng, state)));
            if rng.percent(70) {
                body.insert("units".into(), units_json(&random_units(rng, state)));
            }
            if rng.percent(40) {
                body.insert("password".into(), json!(format!("a new password {n:04}")));
            }
            if rng.percent(10) {
                body.insert("active".into(), json!(false));
            }
            ("manage create user", "POST", "/v1/users".to_owned(), Some(Value::Object(body)))
        }
        48..=59 => {
            let target = random_user(rng, state, actors);
            let mut body = Map::new();
            while body.is_empty() {
                if rng.percent(50) {
                    body.insert("groups".into(), json!(random_groups(rng, state)));
                }
                if rng.percent(40) {
                    body.insert("units".into(), units_json(&random_units(rng, state)));
                }
                if rng.percent(30) && !actors.contains(&target) {
                    body.insert("active".into(), json!(rng.percent(65)));
                }
                if rng.percent(15) {
                    body.insert("name".into(), json!(format!("Renamed {n}")));
                }
            }
            ("manage patch user", "PATCH", format!("/v1/users/{target}"), Some(Value::Object(body)))
        }
        60..=66 if !others.is_empty() => {
            let target = *rng.pick(&others);
            let action = if rng.percent(35) { "deactivate" } else { "activate" };
            ("manage (de)activate", "POST", format!("/v1/users/{target}/{action}"), None)
        }
        67..=72 if !others.is_empty() => {
            let target = *rng.pick(&others);
            if rng.percent(15) {
                ("manage password", "DELETE", format!("/v1/users/{target}/password"), None)
            } else {
                let body = json!({"password": format!("another password {n:04}")});
                ("manage password", "PUT", format!("/v1/users/{target}/password"), Some(body))
            }
        }
        73..=79 => {
            let body = json!({"name": format!("Managed group {n}"), "grants": random_grants(rng)});
            ("manage create group", "POST", "/v1/groups".to_owned(), Some(body))
        }
        80..=89 if !custom.is_empty() => {
            let g = *rng.pick(&custom);
            let mut body = json!({"grants": random_grants(rng)});
            if rng.percent(15) {
                body["name"] = json!(format!("Managed rename {n}"));
            }
            ("manage change group", "PATCH", format!("/v1/groups/{g}"), Some(body))
        }
        90..=93 if !custom.is_empty() => {
            let g = *rng.pick(&custom);
            let force = rng.percent(70);
            ("manage delete group", "DELETE", format!("/v1/groups/{g}?force={force}"), None)
        }
        94..=96 if state.units.len() < 6 => {
            ("manage create unit", "POST", "/v1/units".to_owned(), Some(json!({"name": format!("Managed unit {n}")})))
        }
        _ => ("manage issue key", "POST", "/v1/keys".to_owned(), Some(random_key_item(rng, state, actors, me, n))),
    };
    let method_ = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = http.client.request(method_, http.app.url(&path)).bearer_auth(secret);
    if let Some(body) = &body {
        request = request.json(body);
    }
    let response = request.send().await.expect("management call");
    let status = response.status().as_u16();
    let what = match &body {
        Some(b) => format!("{method} {path} {b}"),
        None => format!("{method} {path}"),
    };
    (kind, what, status, (200..300).contains(&status))
}
