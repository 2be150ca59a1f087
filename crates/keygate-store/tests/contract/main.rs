//! The storage contract: every test runs on SQLite, and on PostgreSQL when
//! `KEYGATE_TEST_POSTGRES_URL` is set. Each test gets a fresh database.

use keygate_domain::{
    Actor, ApiKeySecret, AuditEntry, Email, GroupId, IpRanges, PersonName, Purpose, Scopes, TenantId, TenantSlug,
    Timestamp, UnitId, UserCategory, UserId,
};
use keygate_store::{
    AuditFilter, ChangeKind, Database, Guard, HandsOver, NewKey, NewTenant, NewUser, StoreError, UsageUpdate,
};

/// Declares `name` once per engine: `sqlite::name` and `postgres::name`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let t = keygate_store::testing::fresh(keygate_store::Backend::Sqlite).await.expect("sqlite").expect("always");
                super::$name(&t.db).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(t) = keygate_store::testing::fresh(keygate_store::Backend::Postgres).await.expect("postgres") else {
                    eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
                    return;
                };
                assert_eq!(t.db.backend(), keygate_store::Backend::Postgres);
                super::$name(&t.db).await;
            })*
        }
    };
}

contract!(
    a_judged_write_refused_on_its_outcome_leaves_nothing_behind,
    grants_written_with_a_name_another_group_holds_are_rolled_back_with_it,
    a_new_tenant_has_unit_one_system_groups_and_an_admin_in_all_of_them,
    a_duplicate_tenant_slug_is_a_conflict_and_writes_nothing,
    a_stored_key_is_found_by_its_digest_and_holds_no_plaintext,
    the_same_digest_cannot_be_stored_twice,
    disabling_enabling_and_revoking_a_key_are_stored_and_audited,
    a_revoked_key_cannot_be_re_enabled,
    another_tenant_cannot_read_or_change_a_key,
    deactivating_a_user_is_visible_to_the_owner_lookup,
    a_user_with_an_unknown_group_is_not_created_at_all,
    the_public_api_switch_and_whitelist_are_stored,
    the_audit_log_refuses_updates_and_deletes,
    old_audit_rows_are_pruned_per_kind_in_bounded_batches_and_nothing_younger_can_be_deleted,
    the_audit_log_filters_by_key_and_action,
    every_change_appears_in_the_change_feed,
    last_used_times_are_written_in_batches_and_never_go_back,
    rolling_a_key_caps_the_old_keys_expiry_and_links_the_new_one,
    daily_call_counts_add_up_per_key_day_and_outcome,
    a_batch_of_more_rows_than_one_statement_takes_writes_every_row,
    a_console_session_is_found_by_its_digest_until_deleted,
    a_form_nonce_can_be_taken_only_once,
    the_limit_th_failed_log_in_locks_the_subject,
    a_node_reads_the_other_nodes_counts_with_their_names_and_a_new_node_starts_a_minute_back,
    units_deleted_at_the_same_time_are_all_deleted_none_refused_as_busy,
    a_key_read_by_its_digest_is_the_key_read_by_its_id_in_every_field,
);

async fn a_node_reads_the_other_nodes_counts_with_their_names_and_a_new_node_starts_a_minute_back(db: &Database) {
    use keygate_store::{Count, CountKind};
    let Some(start) = db.newest_count_seq().await.expect("read") else {
        assert_eq!(db.backend(), keygate_store::Backend::Sqlite);
        assert_eq!(db.count_seq_before(Timestamp::now()).await.expect("read"), None, "one node: nothing to share");
        assert!(db.exchange_counts("a", &[], 0).await.expect("write").is_none());
        return;
    };
    let key = Count { kind: CountKind::Key, subject: 7i64.to_le_bytes().to_vec(), n: 3 };
    let beat = Count { kind: CountKind::Key, subject: Vec::new(), n: 0 };
    let before = Timestamp::now();
    db.exchange_counts("node-a", std::slice::from_ref(&key), start).await.expect("a writes");
    db.exchange_counts("node-b", std::slice::from_ref(&beat), start).await.expect("b writes");
    let seen = db.exchange_counts("node-c", &[], start).await.expect("c reads").expect("postgres");
    let seen: Vec<(&str, &Count)> = seen.iter().map(|r| (r.node.as_str(), &r.count)).collect();
    assert_eq!(seen, vec![("node-a", &key), ("node-b", &beat)], "both reports, in order, with their nodes");
    let from = db.count_seq_before(before).await.expect("read").expect("postgres");
    assert_eq!(from, start, "a node starting now reads both reports");
    let later = db.count_seq_before(before.plus_millis(60_000)).await.expect("read").expect("postgres");
    assert!(later >= start + 2, "nothing newer than a minute ahead: start after the newest row ({later})");
}

struct Fixture {
    tenant: TenantId,
    admin: UserId,
    user: UserId,
}

/// Schemathesis found `DELETE /v1/units/{id}` answering 500 "database is locked" on SQLite: the
/// delete read (counted records and units) before its first write, and a deferred transaction that
/// reads first fails at once when another writer got in between.
async fn units_deleted_at_the_same_time_are_all_deleted_none_refused_as_busy(db: &Database) {
    let f = fixture(db, "acme").await;
    let audit = || cli(Some(f.tenant), "unit.changed");
    for n in 2..=21 {
        db.tenants().create_unit(f.tenant, UnitId(n), &format!("Unit {n}"), None, &audit()).await.expect("unit");
    }
    let mut deletes = tokio::task::JoinSet::new();
    for n in 2..=21 {
        let (db, audit) = (db.clone(), audit());
        deletes.spawn(async move { (n, db.tenants().delete_unit(f.tenant, UnitId(n), None, &audit).await) });
    }
    while let Some(done) = deletes.join_next().await {
        let (n, deleted) = done.expect("task");
        assert!(deleted.is_ok(), "unit {n}: {deleted:?}");
    }
    let left: Vec<UnitId> = db.tenants().units(f.tenant).await.expect("units").into_iter().map(|(u, _)| u).collect();
    assert_eq!(left, vec![UnitId(1)]);
}

fn cli(tenant: Option<TenantId>, action: &'static str) -> AuditEntry {
    AuditEntry::new(tenant, Actor::CLI, action, "test")
}

async fn fixture(db: &Database, slug: &str) -> Fixture {
    let slug = TenantSlug::parse(slug).expect("slug");
    let admin_email = Email::parse(&format!("admin@{slug}.example")).expect("email");
    let (tenant, admin) = db
        .tenants()
        .create(
            NewTenant {
                slug: &slug,
                name: "Acme",
                admin_email: &admin_email,
                admin_name: &PersonName::parse("Admin").expect("name"),
                admin_password_hash: "$argon2id$fake",
            },
            &cli(None, "tenant.created"),
        )
        .await
        .expect("tenant");
    let email = Email::parse(&format!("erp@{slug}.example")).expect("email");
    let user = db
        .users()
        .create(
            NewUser {
                tenant_id: tenant,
                email: &email,
                name: &PersonName::parse("ERP integration").expect("name"),
                category: UserCategory::Programmatic,
                password_hash: None,
                units: Some(vec![UnitId(1)]),
                groups: &[],
                active: true,
                idempotency: None,
            },
            &Guard::allow_all(),
            &cli(Some(tenant), "user.created"),
        )
        .await
        .expect("user");
    Fixture { tenant, admin, user }
}

fn new_key(f: &Fixture, secret: &ApiKeySecret) -> NewKey {
    NewKey {
        created_by: Some(f.admin),
        ip_ranges: IpRanges::parse(&["10.0.0.0/8", "2001:db8::/32"]).expect("ranges"),
        scopes: Some(Scopes::parse(&["invoices:read"]).expect("scopes")),
        units: Some(vec![UnitId(1)]),
        expires_at: Some(Timestamp::now().plus_days(30)),
        rate_limit_per_minute: Some(120),
        ..NewKey::new(
            f.tenant,
            f.user,
            Purpose::parse("ERP export").expect("purpose"),
            secret.digest(),
            secret.display_form(),
        )
    }
}

async fn a_new_tenant_has_unit_one_system_groups_and_an_admin_in_all_of_them(db: &Database) {
    let f = fixture(db, "acme").await;
    let tenant = db.tenants().by_slug(&TenantSlug::parse("acme").expect("slug")).await.expect("read").expect("exists");
    assert_eq!(tenant.policy.id, f.tenant);
    assert_eq!(tenant.policy.units, vec![UnitId(1)]);
    assert!(!tenant.policy.public_api, "the API starts switched off");
    assert!(tenant.policy.ip_whitelist.allows_any_address());
    let admin = db.users().owner_state(f.admin).await.expect("read").expect("exists");
    assert!(admin.permissions.supervisor && admin.permissions.configurator && admin.permissions.user_configurator);
    let groups: Vec<String> = db.groups().list(f.tenant).await.expect("groups").into_iter().map(|g| g.name).collect();
    assert_eq!(groups.len(), 3);
    assert!(groups.contains(&"User configurator".to_owned()));
}

async fn a_duplicate_tenant_slug_is_a_conflict_and_writes_nothing(db: &Database) {
    fixture(db, "acme").await;
    let slug = TenantSlug::parse("acme").expect("slug");
    let err = db
        .tenants()
        .create(
            NewTenant {
                slug: &slug,
                name: "Other",
                admin_email: &Email::parse("x@other.example").expect("email"),
                admin_name: &PersonName::parse("X").expect("name"),
                admin_password_hash: "h",
            },
            &cli(None, "tenant.created"),
        )
        .await
        .expect_err("duplicate");
    assert!(matches!(err, StoreError::Conflict(ref m) if m.contains("acme")), "{err:?}");
    assert_eq!(db.tenants().list().await.expect("list").len(), 1);
}

async fn a_stored_key_is_found_by_its_digest_and_holds_no_plaintext(db: &Database) {
    let f = fixture(db, "acme").await;
    let secret = ApiKeySecret::generate();
    let id = db
        .keys()
        .insert(&new_key(&f, &secret), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect("insert");
    let found = db.keys().by_digest(&secret.digest()).await.expect("read").expect("exists");
    assert_eq!(found.id, id);
    assert_eq!(found.user_id, f.user);
    assert_eq!(found.display, secret.display_form());
    assert_eq!(found.rate_limit_per_minute, Some(120));
    assert!(found.ip_ranges.contains("2001:db8::5".parse().expect("ip")));
    assert!(db.keys().by_digest(&ApiKeySecret::generate().digest()).await.expect("read").is_none());
    let listing = db.keys().list(f.tenant).await.expect("list");
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].created_by_email.as_deref(), Some("admin@acme.example"));
    assert!(!format!("{listing:?}").contains(&secret.expose()[3..35]));
}

/// Verification reads a key by its digest (on SQLite through its own read-only connections, not
/// sqlx); an administrator's page reads it by id. Both must see the same key, every field set.
async fn a_key_read_by_its_digest_is_the_key_read_by_its_id_in_every_field(db: &Database) {
    let f = fixture(db, "acme").await;
    let (old_secret, new_secret) = (ApiKeySecret::generate(), ApiKeySecret::generate());
    let old = db
        .keys()
        .insert(&new_key(&f, &old_secret), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect("insert");
    let mut next = new_key(&f, &new_secret);
    next.rolled_from = Some(old);
    next.scopes = None;
    next.units = None;
    next.rate_limit_per_minute = None;
    let until = Timestamp::now().plus_days(1);
    let new = db
        .keys()
        .roll(old, &next, until, &Guard::allow_all(), &cli(Some(f.tenant), "key.rolled"))
        .await
        .expect("roll")
        .new;
    db.keys()
        .record_usage(&[UsageUpdate { key_id: new, at: Timestamp::now(), ip: "10.0.0.1".into() }])
        .await
        .expect("use");
    db.keys()
        .set_enabled(f.tenant, new, false, &Guard::allow_all(), &cli(Some(f.tenant), "key.disabled"))
        .await
        .expect("disable");
    db.keys().revoke(f.tenant, old, &cli(Some(f.tenant), "key.revoked")).await.expect("revoke");
    for (id, secret) in [(old, &old_secret), (new, &new_secret)] {
        let by_id = db.keys().by_id(f.tenant, id).await.expect("read").expect("exists");
        let by_digest = db.keys().by_digest(&secret.digest()).await.expect("read").expect("exists");
        assert_eq!(by_digest, by_id);
    }
    let new = db.keys().by_digest(&new_secret.digest()).await.expect("read").expect("exists");
    assert!(!new.enabled && new.last_used_ip.as_deref() == Some("10.0.0.1") && new.rolled_from == Some(old), "{new:?}");
    let old = db.keys().by_digest(&old_secret.digest()).await.expect("read").expect("exists");
    assert!(old.revoked_at.is_some() && old.expires_at == Some(until) && old.scopes.is_some(), "{old:?}");
}

async fn the_same_digest_cannot_be_stored_twice(db: &Database) {
    let f = fixture(db, "acme").await;
    let secret = ApiKeySecret::generate();
    db.keys()
        .insert(&new_key(&f, &secret), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect("first");
    let err = db
        .keys()
        .insert(&new_key(&f, &secret), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect_err("second");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn disabling_enabling_and_revoking_a_key_are_stored_and_audited(db: &Database) {
    let f = fixture(db, "acme").await;
    let secret = ApiKeySecret::generate();
    let id = db
        .keys()
        .insert(&new_key(&f, &secret), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect("insert");
    db.keys()
        .set_enabled(f.tenant, id, false, &Guard::allow_all(), &cli(Some(f.tenant), "key.disabled"))
        .await
        .expect("disable");
    assert!(!db.keys().by_id(f.tenant, id).await.expect("read").expect("exists").enabled);
    db.keys()
        .set_enabled(f.tenant, id, true, &Guard::allow_all(), &cli(Some(f.tenant), "key.enabled"))
        .await
        .expect("enable");
    db.keys().revoke(f.tenant, id, &cli(Some(f.tenant), "key.revoked")).await.expect("revoke");
    let key = db.keys().by_id(f.tenant, id).await.expect("read").expect("exists");
    assert!(key.revoked_at.is_some());
    let actions: Vec<String> = db
        .audit()
        .list(f.tenant, &AuditFilter { limit: 100, ..Default::default() })
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(&actions[..4], ["key.revoked", "key.enabled", "key.disabled", "key.issued"]);
}

async fn a_revoked_key_cannot_be_re_enabled(db: &Database) {
    let f = fixture(db, "acme").await;
    let id = db
        .keys()
        .insert(&new_key(&f, &ApiKeySecret::generate()), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect("insert");
    db.keys().revoke(f.tenant, id, &cli(Some(f.tenant), "key.revoked")).await.expect("revoke");
    let err = db
        .keys()
        .set_enabled(f.tenant, id, true, &Guard::allow_all(), &cli(Some(f.tenant), "key.enabled"))
        .await
        .expect_err("revoked");
    assert!(matches!(err, StoreError::NotFound(_)));
    assert!(
        db.keys().revoke(f.tenant, id, &cli(Some(f.tenant), "key.revoked")).await.is_err(),
        "revoking twice is refused"
    );
}

async fn another_tenant_cannot_read_or_change_a_key(db: &Database) {
    let a = fixture(db, "tenant-a").await;
    let b = fixture(db, "tenant-b").await;
    let id = db
        .keys()
        .insert(&new_key(&a, &ApiKeySecret::generate()), &Guard::allow_all(), &cli(Some(a.tenant), "key.issued"))
        .await
        .expect("insert");
    assert!(db.keys().by_id(b.tenant, id).await.expect("read").is_none());
    assert!(
        db.keys()
            .set_enabled(b.tenant, id, false, &Guard::allow_all(), &cli(Some(b.tenant), "key.disabled"))
            .await
            .is_err()
    );
    assert!(db.keys().revoke(b.tenant, id, &cli(Some(b.tenant), "key.revoked")).await.is_err());
    assert!(db.keys().list(b.tenant).await.expect("list").is_empty());
    assert!(db.users().by_id(b.tenant, a.user).await.expect("read").is_none());
    assert!(
        db.users()
            .set_active(b.tenant, a.user, false, &Guard::allow_all(), &cli(Some(b.tenant), "user.deactivated"))
            .await
            .is_err()
    );
    assert!(db.keys().by_id(a.tenant, id).await.expect("read").expect("still there").enabled);
}

async fn deactivating_a_user_is_visible_to_the_owner_lookup(db: &Database) {
    let f = fixture(db, "acme").await;
    assert!(db.users().owner_state(f.user).await.expect("read").expect("exists").active);
    db.users()
        .set_active(f.tenant, f.user, false, &Guard::allow_all(), &cli(Some(f.tenant), "user.deactivated"))
        .await
        .expect("deactivate");
    let owner = db.users().owner_state(f.user).await.expect("read").expect("exists");
    assert!(!owner.active);
    assert_eq!(owner.category, UserCategory::Programmatic);
    assert_eq!(owner.units, Some(vec![UnitId(1)]));
}

/// New grants and a new name are one write: when the name turns out to be taken (by a group made
/// after the caller looked), the grants are not written either, nor either audit row.
async fn grants_written_with_a_name_another_group_holds_are_rolled_back_with_it(db: &Database) {
    let f = fixture(db, "acme").await;
    let invoices = keygate_domain::parse_grants(&["invoices:read:all".to_owned()]).expect("grant");
    let pool = db.groups().create(f.tenant, "Pool", &[], &cli(Some(f.tenant), "group.created")).await.expect("pool");
    db.groups().create(f.tenant, "Taken", &[], &cli(Some(f.tenant), "group.created")).await.expect("taken");
    let filter = AuditFilter { limit: 1_000, ..AuditFilter::default() };
    let audits = async || db.audit().list(f.tenant, &filter).await.expect("audit").len();
    let audits_before = audits().await;
    let renamed = cli(Some(f.tenant), "group.renamed");
    let changed = cli(Some(f.tenant), "group.grants_changed");
    let err = db
        .groups()
        .set_grants(f.tenant, pool, &invoices, Some(("Taken", &renamed)), &Guard::allow_all(), &changed)
        .await
        .expect_err("the name is taken");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let after = db.groups().list(f.tenant).await.expect("groups");
    let pool_now = after.iter().find(|g| g.id == pool).expect("pool");
    assert_eq!((pool_now.name.as_str(), pool_now.grants.len()), ("Pool", 0), "neither the name nor the grants");
    assert_eq!(audits().await, audits_before, "no audit row either");

    db.groups()
        .set_grants(f.tenant, pool, &invoices, Some(("Invoices", &renamed)), &Guard::allow_all(), &changed)
        .await
        .expect("a free name");
    let after = db.groups().list(f.tenant).await.expect("groups");
    let pool_now = after.iter().find(|g| g.id == pool).expect("pool");
    assert_eq!((pool_now.name.as_str(), pool_now.grants.as_slice()), ("Invoices", invoices.as_slice()));
    assert_eq!(audits().await, audits_before + 2, "both changes audited");
}

/// The guard sees the state before and after the write, read in its transaction, and a refusal
/// rolls back the user, its memberships, its idempotent answer and its audit row together.
async fn a_judged_write_refused_on_its_outcome_leaves_nothing_behind(db: &Database) {
    let f = fixture(db, "acme").await;
    let groups = db.groups().list(f.tenant).await.expect("groups");
    let supervisor = groups.iter().find(|g| g.name == "Supervisor").expect("system group").id;
    let seen = std::sync::Mutex::new(Vec::new());
    let judge = |outcome: &keygate_domain::Outcome<'_>| {
        let new: Vec<_> =
            outcome.after.users.keys().filter(|u| !outcome.before.users.contains_key(u)).copied().collect();
        seen.lock().expect("lock").extend(new.iter().map(|u| outcome.after.users[u].groups.clone()));
        Err(keygate_domain::GrantExceedsActor { message: "no".into(), lacking: Vec::new() })
    };
    let guard = Guard {
        users: vec![f.admin],
        groups: Vec::new(),
        keys: Vec::new(),
        hands_over: HandsOver::Nothing,
        judge: &judge,
    };
    let email = Email::parse("boss@acme.example").expect("email");
    let audits_before =
        db.audit().list(f.tenant, &AuditFilter { limit: 1_000, ..AuditFilter::default() }).await.expect("audit").len();
    let err = db
        .users()
        .create(
            NewUser {
                tenant_id: f.tenant,
                email: &email,
                name: &PersonName::parse("Boss").expect("name"),
                category: UserCategory::Personal,
                password_hash: None,
                units: None,
                groups: &[supervisor],
                active: true,
                idempotency: None,
            },
            &guard,
            &cli(Some(f.tenant), "user.created"),
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
    assert_eq!(
        seen.into_inner().expect("lock"),
        vec![std::collections::BTreeSet::from([supervisor])],
        "the judge saw the new user in Supervisor"
    );
    assert!(db.users().by_email(f.tenant, &email).await.expect("read").is_none(), "the refused user was written");
    let audits =
        db.audit().list(f.tenant, &AuditFilter { limit: 1_000, ..AuditFilter::default() }).await.expect("audit").len();
    assert_eq!(audits, audits_before, "the refused write left an audit row");
}

async fn a_user_with_an_unknown_group_is_not_created_at_all(db: &Database) {
    let f = fixture(db, "acme").await;
    let groups = db.groups().list(f.tenant).await.expect("groups");
    let supervisor = groups.iter().find(|g| g.name == "Supervisor").expect("system group").id;
    let email = Email::parse("new@acme.example").expect("email");
    let err = db
        .users()
        .create(
            NewUser {
                tenant_id: f.tenant,
                email: &email,
                name: &PersonName::parse("New").expect("name"),
                category: UserCategory::Personal,
                password_hash: None,
                units: None,
                groups: &[supervisor, GroupId(999_999)],
                active: true,
                idempotency: None,
            },
            &Guard::allow_all(),
            &cli(Some(f.tenant), "user.created"),
        )
        .await
        .expect_err("unknown group");
    assert!(err.to_string().contains("group 999999"), "{err}");
    assert!(db.users().by_email(f.tenant, &email).await.expect("read").is_none());
}

async fn the_public_api_switch_and_whitelist_are_stored(db: &Database) {
    let f = fixture(db, "acme").await;
    db.tenants().set_public_api(f.tenant, true, &cli(Some(f.tenant), "tenant.api_on")).await.expect("on");
    let ranges = IpRanges::parse(&["203.0.113.0/24", "2001:db8::/48"]).expect("ranges");
    db.tenants().set_whitelist(f.tenant, &ranges, &cli(Some(f.tenant), "tenant.whitelist")).await.expect("set");
    let t = db.tenants().by_id(f.tenant).await.expect("read").expect("exists");
    assert!(t.policy.public_api);
    assert_eq!(t.policy.ip_whitelist, ranges);
}

async fn the_audit_log_refuses_updates_and_deletes(db: &Database) {
    let f = fixture(db, "acme").await;
    for sql in ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"] {
        let result = match db.postgres_pool() {
            Some(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            None => {
                let sqlite = keygate_store::testing::sqlite_pool(db).expect("sqlite pool");
                sqlx::query(sql).execute(&sqlite).await.map(|_| ())
            }
        };
        assert!(result.is_err(), "{sql} must be refused");
    }
    assert!(
        !db.audit().list(f.tenant, &AuditFilter { limit: 10, ..Default::default() }).await.expect("read").is_empty()
    );
}

async fn old_audit_rows_are_pruned_per_kind_in_bounded_batches_and_nothing_younger_can_be_deleted(db: &Database) {
    let f = fixture(db, "acme").await;
    let now = Timestamp::now();
    let row = |action: &'static str, days: i64| {
        let mut entry = cli(Some(f.tenant), action);
        entry.at = now.plus_days(-days);
        entry
    };
    let mut rows: Vec<AuditEntry> = Vec::new();
    rows.extend((0..30).map(|_| row("call.refused", 100)));
    rows.extend((0..5).map(|_| row("session.login_failed", 100)));
    rows.extend((0..4).map(|_| row("call.refused", 10)));
    rows.extend((0..7).map(|_| row("key.issued", 100)));
    rows.extend((0..9).map(|_| row("key.issued", 400)));
    db.audit().append(&rows).await.expect("append");
    let audit = db.audit();
    let refusals = now.plus_days(-90);
    assert_eq!(audit.prune_refusals(refusals, 20).await.expect("prune"), 20, "one batch, at most 20 rows");
    assert_eq!(audit.prune_refusals(refusals, 20).await.expect("prune"), 15);
    assert_eq!(audit.prune_refusals(refusals, 20).await.expect("prune"), 0);
    assert_eq!(audit.prune_changes(now.plus_days(-365), 20).await.expect("prune"), 9);
    let left = audit.list(f.tenant, &AuditFilter { limit: 1000, ..Default::default() }).await.expect("list");
    let count = |action: &str| left.iter().filter(|e| e.action == action).count();
    assert_eq!((count("call.refused"), count("session.login_failed"), count("key.issued")), (4, 0, 7));
    assert!(count("tenant.created") >= 1, "recent changes are kept");

    // A transaction that declares a cutoff may delete only rows older than it.
    let statements = [
        format!("INSERT INTO audit_prune (before) VALUES ({})", now.plus_days(-365).0),
        "DELETE FROM audit_events WHERE action = 'key.issued'".to_owned(),
    ];
    let refused = match db.postgres_pool() {
        Some(pool) => {
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query(&statements[0]).execute(&mut *tx).await.expect("cutoff");
            sqlx::query(&statements[1]).execute(&mut *tx).await.is_err()
        }
        None => {
            let pool = keygate_store::testing::sqlite_pool(db).expect("sqlite pool");
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query(&statements[0]).execute(&mut *tx).await.expect("cutoff");
            sqlx::query(&statements[1]).execute(&mut *tx).await.is_err()
        }
    };
    assert!(refused, "rows 100 days old are younger than a 365-day cutoff");
}

async fn the_audit_log_filters_by_key_and_action(db: &Database) {
    let f = fixture(db, "acme").await;
    let id = db
        .keys()
        .insert(&new_key(&f, &ApiKeySecret::generate()), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect("insert");
    let mut entry = cli(Some(f.tenant), "key.disabled");
    entry.target = format!("key {id}");
    db.keys().set_enabled(f.tenant, id, false, &Guard::allow_all(), &entry).await.expect("disable");
    let by_key =
        db.audit().list(f.tenant, &AuditFilter { key: Some(id), limit: 10, ..Default::default() }).await.expect("read");
    assert_eq!(by_key.len(), 2, "{by_key:?}");
    let by_action = db
        .audit()
        .list(f.tenant, &AuditFilter { action: Some("key.dis".into()), limit: 10, ..Default::default() })
        .await
        .expect("read");
    assert_eq!(by_action.len(), 1);
    assert_eq!(by_action[0].actor_label, "system (cli)");
}

async fn every_change_appears_in_the_change_feed(db: &Database) {
    let f = fixture(db, "acme").await;
    let before = db.changes().latest_seq().await.expect("seq");
    let id = db
        .keys()
        .insert(&new_key(&f, &ApiKeySecret::generate()), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect("insert");
    db.keys()
        .set_enabled(f.tenant, id, false, &Guard::allow_all(), &cli(Some(f.tenant), "key.disabled"))
        .await
        .expect("disable");
    db.users()
        .set_active(f.tenant, f.user, false, &Guard::allow_all(), &cli(Some(f.tenant), "user.deactivated"))
        .await
        .expect("deactivate");
    db.tenants().set_public_api(f.tenant, true, &cli(Some(f.tenant), "tenant.api_on")).await.expect("on");
    let far_future = Timestamp::now().plus_days(1);
    let seen: Vec<(ChangeKind, i64)> = db
        .changes()
        .recent(before, far_future)
        .await
        .expect("feed")
        .into_iter()
        .map(|c| (c.kind, c.entity_id))
        .collect();
    assert_eq!(seen, vec![(ChangeKind::Key, id.0), (ChangeKind::User, f.user.0), (ChangeKind::Tenant, f.tenant.0)]);
}

async fn last_used_times_are_written_in_batches_and_never_go_back(db: &Database) {
    let f = fixture(db, "acme").await;
    let id = db
        .keys()
        .insert(&new_key(&f, &ApiKeySecret::generate()), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect("insert");
    let t = Timestamp::now();
    db.keys().record_usage(&[UsageUpdate { key_id: id, at: t, ip: "10.0.0.1".into() }]).await.expect("write");
    db.keys()
        .record_usage(&[UsageUpdate { key_id: id, at: t.plus_millis(-5000), ip: "10.0.0.2".into() }])
        .await
        .expect("write");
    let key = db.keys().by_id(f.tenant, id).await.expect("read").expect("exists");
    assert_eq!(key.last_used_at, Some(t));
    assert_eq!(key.last_used_ip.as_deref(), Some("10.0.0.1"));
}

async fn rolling_a_key_caps_the_old_keys_expiry_and_links_the_new_one(db: &Database) {
    let f = fixture(db, "acme").await;
    let old = db
        .keys()
        .insert(&new_key(&f, &ApiKeySecret::generate()), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect("insert");
    let until = Timestamp::now().plus_days(1);
    let mut next = new_key(&f, &ApiKeySecret::generate());
    next.rolled_from = Some(old);
    let new = db
        .keys()
        .roll(old, &next, until, &Guard::allow_all(), &cli(Some(f.tenant), "key.rolled"))
        .await
        .expect("roll")
        .new;
    assert_eq!(db.keys().by_id(f.tenant, old).await.expect("read").expect("old").expires_at, Some(until));
    assert_eq!(db.keys().by_id(f.tenant, new).await.expect("read").expect("new").rolled_from, Some(old));
}

async fn daily_call_counts_add_up_per_key_day_and_outcome(db: &Database) {
    use keygate_store::DailyCount;
    let f = fixture(db, "acme").await;
    let id = db
        .keys()
        .insert(&new_key(&f, &ApiKeySecret::generate()), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
        .await
        .expect("insert");
    let count = |day, outcome: &str, count| DailyCount { key_id: id.0, day, outcome: outcome.into(), count };
    db.usage().add_daily(&[count(100, "accepted", 2), count(100, "key_disabled", 1)]).await.expect("first batch");
    db.usage().add_daily(&[count(100, "accepted", 3), count(101, "accepted", 1)]).await.expect("second batch");
    let rows = db.usage().daily_for_tenant(f.tenant, 100).await.expect("read");
    let seen: Vec<(i64, &str, i64)> = rows.iter().map(|r| (r.day, r.outcome.as_str(), r.count)).collect();
    assert_eq!(seen, vec![(100, "accepted", 5), (100, "key_disabled", 1), (101, "accepted", 1)]);
    assert_eq!(db.usage().daily_for_tenant(f.tenant, 101).await.expect("read").len(), 1);
    let other = fixture(db, "other").await;
    assert!(db.usage().daily_for_tenant(other.tenant, 0).await.expect("read").is_empty());
}

async fn a_batch_of_more_rows_than_one_statement_takes_writes_every_row(db: &Database) {
    use keygate_store::DailyCount;
    let f = fixture(db, "acme").await;
    let keys: Vec<NewKey> = (0..1203).map(|_| new_key(&f, &ApiKeySecret::generate())).collect();
    db.keys().insert_many_unaudited(&keys).await.expect("insert");
    let listed = db.keys().list(f.tenant).await.expect("list");
    assert_eq!(listed.len(), 1203);
    let t = Timestamp::now();
    let updates: Vec<UsageUpdate> = listed
        .iter()
        .enumerate()
        .map(|(i, k)| UsageUpdate {
            key_id: k.key.id,
            at: t.plus_millis(i as i64),
            ip: format!("10.0.{}.{}", i / 256, i % 256),
        })
        .collect();
    db.keys().record_usage(&updates).await.expect("write");
    let counts: Vec<DailyCount> = listed
        .iter()
        .map(|k| DailyCount { key_id: k.key.id.0, day: 100, outcome: "accepted".into(), count: 2 })
        .collect();
    db.usage().add_daily(&counts).await.expect("first");
    db.usage().add_daily(&counts).await.expect("second");
    for (i, k) in listed.iter().enumerate() {
        let key = db.keys().by_id(f.tenant, k.key.id).await.expect("read").expect("exists");
        assert_eq!(key.last_used_at, Some(t.plus_millis(i as i64)), "key {i}");
        assert_eq!(key.last_used_ip, Some(format!("10.0.{}.{}", i / 256, i % 256)), "key {i}");
    }
    let rows = db.usage().daily_for_tenant(f.tenant, 100).await.expect("read");
    assert_eq!(rows.len(), 1203);
    assert!(rows.iter().all(|r| r.count == 4), "both batches were added to every row");
}

async fn a_console_session_is_found_by_its_digest_until_deleted(db: &Database) {
    let f = fixture(db, "acme").await;
    let digest = [7u8; 32];
    db.sessions()
        .insert(
            &keygate_store::NewSession {
                digest: &digest,
                tenant_id: f.tenant,
                user_id: f.admin,
                csrf_token: "csrf",
                expires_at: Timestamp::now().plus_days(1),
                ip: Some("127.0.0.1"),
            },
            20,
        )
        .await
        .expect("insert");
    let found = db.sessions().by_digest(&digest).await.expect("read").expect("found");
    assert_eq!((found.user_id, found.csrf_token.as_str()), (f.admin.0, "csrf"));
    assert!(db.sessions().by_digest(&[8u8; 32]).await.expect("read").is_none());
    db.sessions().set_flash(&digest, Some("done")).await.expect("flash");
    assert_eq!(db.sessions().by_digest(&digest).await.expect("read").expect("found").flash.as_deref(), Some("done"));
    db.sessions().delete(&digest).await.expect("delete");
    assert!(db.sessions().by_digest(&digest).await.expect("read").is_none());
}

async fn a_form_nonce_can_be_taken_only_once(db: &Database) {
    let f = fixture(db, "acme").await;
    let digest = [9u8; 32];
    db.sessions()
        .insert(
            &keygate_store::NewSession {
                digest: &digest,
                tenant_id: f.tenant,
                user_id: f.admin,
                csrf_token: "csrf",
                expires_at: Timestamp::now().plus_days(1),
                ip: None,
            },
            20,
        )
        .await
        .expect("insert");
    db.sessions().set_form_nonce(&digest, "n1").await.expect("nonce");
    assert!(!db.sessions().take_form_nonce(&digest, "n2").await.expect("take"));
    assert!(db.sessions().take_form_nonce(&digest, "n1").await.expect("take"));
    assert!(!db.sessions().take_form_nonce(&digest, "n1").await.expect("take again"));
}

async fn the_limit_th_failed_log_in_locks_the_subject(db: &Database) {
    let now = Timestamp::now();
    let window = now.plus_millis(-60_000);
    let lock = now.plus_millis(60_000);
    for n in 1..3 {
        let state = db.sessions().count_failure("account:acme:a@b.example", now, window, 3, lock).await.expect("count");
        assert_eq!((state.failures, state.locked_until), (n, None));
    }
    let state = db.sessions().count_failure("account:acme:a@b.example", now, window, 3, lock).await.expect("count");
    assert_eq!(state.locked_until, Some(lock));
    assert_eq!(db.sessions().locked_until("account:acme:a@b.example", now).await.expect("read"), Some(lock));
    assert_eq!(db.sessions().locked_until("account:acme:a@b.example", lock.plus_millis(1)).await.expect("read"), None);
    db.sessions().clear_failures("account:acme:a@b.example").await.expect("clear");
    assert_eq!(db.sessions().locked_until("account:acme:a@b.example", now).await.expect("read"), None);
}

mod audit_search;
mod operators;
