//! Judged writes: every write that can change anyone's powers runs in one transaction that first
//! locks its tenant (so that judged writes of one tenant are serial on both engines), reads the
//! powers it may change ([`TenantState`]) before and after writing, and asks the service's
//! judgement ([`Guard`]) about that outcome before it commits. A refusal rolls everything back.
//!
//! Owns the SQL of reading a tenant's powers and the order lock → read → write → read → judge →
//! commit; the rule itself comes from the caller (the service's grant ceiling), never from here.

use std::collections::{BTreeMap, BTreeSet};

use keygate_domain::{
    GrantExceedsActor, GroupId, GroupState, KeyId, KeyState, Outcome, Scopes, Subject, TenantState, Timestamp,
    UserCategory, UserId, UserState,
};

use crate::{StoreError, StoreResult, rows::from_json, rows::units_from_json};

/// The judgement a write must pass, on its outcome.
pub type Judgement<'a> = dyn Fn(&Outcome<'_>) -> Result<(), GrantExceedsActor> + Send + Sync + 'a;

/// What a judged write may change and whom it hands a secret to. The store reads the state of
/// these users (and of every member of these groups), of their keys and of these keys, before and
/// after the write, inside its transaction.
pub struct Guard<'a> {
    pub users: Vec<UserId>,
    pub groups: Vec<GroupId>,
    pub keys: Vec<KeyId>,
    pub hands_over: HandsOver,
    pub judge: &'a Judgement<'a>,
}

impl std::fmt::Debug for Guard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("users", &self.users)
            .field("groups", &self.groups)
            .field("keys", &self.keys)
            .field("hands_over", &self.hands_over)
            .finish_non_exhaustive()
    }
}

/// Whose secret a write hands over (whoever receives it then holds all of that subject's powers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandsOver {
    Nothing,
    /// A password set, a re-activation, an enabled key.
    Subjects(Vec<Subject>),
    /// The keys issued or rolled by this write (their ids are known only once written).
    TheNewKey,
    /// The user this write creates, with a password the caller chose (the id is known only once
    /// written): whoever knows the password logs in as them.
    TheNewUser,
}

impl Guard<'_> {
    /// A guard that allows every outcome: for the store's own tests and tools that hold every
    /// power anyway (the service always judges).
    pub fn allow_all() -> Guard<'static> {
        Guard {
            users: Vec::new(),
            groups: Vec::new(),
            keys: Vec::new(),
            hands_over: HandsOver::Nothing,
            judge: &|_| Ok(()),
        }
    }

    /// Judges `before` → `after`; `new_users` and `new_keys` are the users and keys this write
    /// created (a bulk issue makes several keys; each is handed over).
    pub(crate) fn check(
        &self,
        before: &TenantState,
        after: &TenantState,
        new_users: &[UserId],
        new_keys: &[KeyId],
    ) -> StoreResult<()> {
        let handed_over: Vec<Subject> = match &self.hands_over {
            HandsOver::Nothing => Vec::new(),
            HandsOver::Subjects(s) => s.clone(),
            HandsOver::TheNewKey => new_keys.iter().copied().map(Subject::Key).collect(),
            HandsOver::TheNewUser => new_users.iter().copied().map(Subject::User).collect(),
        };
        (self.judge)(&Outcome { before, after, handed_over: &handed_over }).map_err(StoreError::Refused)
    }
}

/// A user's row: id, category, active, has a password, units.
pub(crate) type UserStateRow = (i64, String, bool, bool, Option<String>);
/// A key's row: id, user, scopes, units, enabled, expires at.
pub(crate) type KeyStateRow = (i64, i64, Option<String>, Option<String>, bool, Option<i64>);

/// Rows of a tenant's powers as read in one transaction.
#[derive(Debug, Default)]
pub(crate) struct StateRows {
    pub users: Vec<UserStateRow>,
    pub memberships: Vec<(i64, i64)>,
    pub groups: Vec<(i64, Option<String>, String)>,
    pub keys: Vec<KeyStateRow>,
}

impl StateRows {
    pub(crate) fn into_state(self) -> StoreResult<TenantState> {
        let now = Timestamp::now().0;
        let mut state = TenantState::default();
        for (id, system, grants) in self.groups {
            let record = crate::rows::group_record(id, String::new(), system, grants)?;
            state
                .groups
                .insert(GroupId(id), GroupState { system: record.system, grants: record.grants.into_iter().collect() });
        }
        let mut groups_of: BTreeMap<i64, BTreeSet<GroupId>> = BTreeMap::new();
        for (user, group) in self.memberships {
            groups_of.entry(user).or_default().insert(GroupId(group));
        }
        for (id, category, active, has_password, units) in self.users {
            let category =
                UserCategory::parse(&category).map_err(|_| StoreError::Corrupt(format!("user {id}: category")))?;
            let units = units_from_json(units.as_deref())?.map(|u| u.into_iter().collect());
            let groups = groups_of.remove(&id).unwrap_or_default();
            state.users.insert(UserId(id), UserState { category, active, has_password, units, groups });
        }
        for (id, user, scopes, units, enabled, expires_at) in self.keys {
            let scopes = match scopes {
                Some(text) => Some(
                    Scopes::parse(&from_json(&text, "key scopes")?)
                        .map_err(|e| StoreError::Corrupt(format!("key {id}: {e}")))?,
                ),
                None => None,
            };
            let units = units_from_json(units.as_deref())?.map(|u| u.into_iter().collect());
            let usable = enabled && expires_at.is_none_or(|at| at > now);
            state.keys.insert(KeyId(id), KeyState { user: UserId(user), scopes, units, usable });
        }
        Ok(state)
    }
}

/// Takes the tenant's lock for a judged write, inside transaction `$tx` (`&mut *tx`): a row lock on
/// PostgreSQL, the database's write lock on SQLite (taken by this first write, before any read).
macro_rules! lock_tenant {
    ($tx:expr, $tenant:expr) => {{
        let tenant: keygate_domain::TenantId = $tenant;
        let done = sqlx::query("UPDATE tenants SET name = name WHERE id = $1").bind(tenant.0).execute($tx).await?;
        if done.rows_affected() == 0 { Err($crate::StoreError::NotFound("the tenant".to_owned())) } else { Ok(()) }
    }};
}
pub(crate) use lock_tenant;

/// Reads, inside transaction `$tx` (a `&mut Transaction`), the powers a judged write may change:
/// the users of `$guard` and `$extra_users`, every member of its groups, all the tenant's groups,
/// and the unrevoked keys of those users plus the keys of `$guard` and `$extra_keys`.
macro_rules! load_state {
    ($tx:expr, $tenant:expr, $guard:expr, $extra_users:expr, $extra_keys:expr) => {{
        let tenant: keygate_domain::TenantId = $tenant;
        let guard: &$crate::authz::Guard<'_> = $guard;
        let extra_users: &[keygate_domain::UserId] = $extra_users;
        let extra_keys: &[keygate_domain::KeyId] = $extra_keys;
        async {
            let mut rows = $crate::authz::StateRows::default();
            let mut users: std::collections::BTreeSet<i64> =
                guard.users.iter().chain(extra_users).map(|u| u.0).collect();
            for group in &guard.groups {
                let members: Vec<i64> = sqlx::query_scalar(
                    "SELECT m.user_id FROM memberships m JOIN user_groups g ON g.id = m.group_id \
                     WHERE g.tenant_id = $1 AND g.id = $2",
                )
                .bind(tenant.0)
                .bind(group.0)
                .fetch_all(&mut **$tx)
                .await?;
                users.extend(members);
            }
            let mut keys: std::collections::BTreeSet<i64> = guard.keys.iter().chain(extra_keys).map(|k| k.0).collect();
            for key in &keys.clone() {
                let owner: Option<i64> =
                    sqlx::query_scalar("SELECT user_id FROM api_keys WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.0)
                        .bind(key)
                        .fetch_optional(&mut **$tx)
                        .await?;
                users.extend(owner);
            }
            rows.groups = sqlx::query_as("SELECT id, system, grants FROM user_groups WHERE tenant_id = $1")
                .bind(tenant.0)
                .fetch_all(&mut **$tx)
                .await?;
            for user in &users {
                let row: Option<$crate::authz::UserStateRow> = sqlx::query_as(
                    "SELECT id, category, active, (password_hash IS NOT NULL), units FROM users \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.0)
                .bind(user)
                .fetch_optional(&mut **$tx)
                .await?;
                let Some(row) = row else { continue };
                rows.users.push(row);
                let groups: Vec<i64> = sqlx::query_scalar("SELECT group_id FROM memberships WHERE user_id = $1")
                    .bind(user)
                    .fetch_all(&mut **$tx)
                    .await?;
                rows.memberships.extend(groups.into_iter().map(|g| (*user, g)));
                let owned: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM api_keys WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
                )
                .bind(tenant.0)
                .bind(user)
                .fetch_all(&mut **$tx)
                .await?;
                keys.extend(owned);
            }
            for key in &keys {
                let row: Option<$crate::authz::KeyStateRow> = sqlx::query_as(
                    "SELECT id, user_id, scopes, units, enabled, expires_at FROM api_keys \
                     WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
                )
                .bind(tenant.0)
                .bind(key)
                .fetch_optional(&mut **$tx)
                .await?;
                rows.keys.extend(row);
            }
            rows.into_state()
        }
        .await
    }};
}
pub(crate) use load_state;

/// Runs one judged write on `$db`: begin, lock the tenant, read the state, run `$write` (an
/// expression using the transaction `$tx` that yields `(value, Option<UserId> created, the
/// keys created: an `Option<KeyId>` or a `Vec<KeyId>`)`), read the state again, judge, commit. Any error or a refusal drops
/// the transaction, so nothing of the write stays.
macro_rules! judged_write {
    ($db:expr, $tenant:expr, $guard:expr, |$tx:ident| $write:expr) => {{
        let tenant: keygate_domain::TenantId = $tenant;
        let guard: &$crate::authz::Guard<'_> = $guard;
        $crate::on_pool!($db, p => {
            let mut $tx = p.begin().await?;
            $crate::authz::lock_tenant!(&mut *$tx, tenant)?;
            let before = $crate::authz::load_state!(&mut $tx, tenant, guard, &[], &[])?;
            let (value, new_user, new_key): (_, Option<keygate_domain::UserId>, _) = $write;
            let new_users: Vec<keygate_domain::UserId> = new_user.into_iter().collect();
            let new_keys: Vec<keygate_domain::KeyId> = new_key.into_iter().collect();
            let after = $crate::authz::load_state!(&mut $tx, tenant, guard, &new_users, &new_keys)?;
            guard.check(&before, &after, &new_users, &new_keys)?;
            $tx.commit().await?;
            Ok(value)
        })
    }};
}
pub(crate) use judged_write;
