//! The operator plane's storage on both engines: credentials by digest only and at most 100 of
//! them, pending removals (one-time, expiring, at most 100), and a removal that leaves no row of
//! the tenant in any table and touches nothing of another tenant.

use keygate_domain::{Actor, ApiKeySecret, AuditEntry, KeyDigest, OperatorId, OperatorSecret, TenantId, Timestamp};
use keygate_store::{DailyCount, Database, Guard, MAX_OPERATORS, MAX_PENDING_REMOVALS, NewSession, StoreError};

use super::{cli, fixture, new_key};

contract!(
    at_most_100_operator_credentials_exist_and_a_revoked_one_is_found_no_more,
    an_operator_credential_is_stored_as_its_digest_and_nothing_else,
    removing_a_tenant_needs_its_pending_unexpired_confirmation_and_leaves_no_row_of_it,
    at_most_100_removals_are_pending_and_an_expired_one_makes_room,
    daily_counts_of_a_removed_tenants_keys_are_dropped_not_a_failed_batch,
    tenants_are_listed_by_slug_after_a_cursor,
);

fn operator_audit(action: &'static str) -> AuditEntry {
    AuditEntry::new(None, Actor::Operator { id: OperatorId(1), name: "sign-up".into() }, action, "tenant")
}

async fn at_most_100_operator_credentials_exist_and_a_revoked_one_is_found_no_more(db: &Database) {
    assert_eq!(MAX_OPERATORS, 100);
    let mut first = None;
    for i in 0..100 {
        let s = OperatorSecret::generate();
        let r = db
            .operators()
            .issue(&format!("op {i}"), &s.digest(), &s.display_form(), &cli(None, "operator.issued"))
            .await
            .expect("issue");
        first.get_or_insert((r.id, s));
    }
    let extra = OperatorSecret::generate();
    let err =
        db.operators().issue("op 101", &extra.digest(), "x", &cli(None, "operator.issued")).await.expect_err("101st");
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("100")), "{err:?}");
    assert_eq!(db.operators().list().await.expect("list").len(), 100);
    let (id, secret) = first.expect("one");
    assert!(db.operators().by_digest(&secret.digest()).await.expect("read").is_some());
    db.operators().revoke(id, &cli(None, "operator.revoked")).await.expect("revoke");
    assert!(db.operators().by_digest(&secret.digest()).await.expect("read").is_none(), "revoked: not found");
    assert!(matches!(db.operators().revoke(id, &cli(None, "operator.revoked")).await, Err(StoreError::NotFound(_))));
    db.operators().issue("op 101", &extra.digest(), "x", &cli(None, "operator.issued")).await.expect("room again");
}

async fn an_operator_credential_is_stored_as_its_digest_and_nothing_else(db: &Database) {
    let s = OperatorSecret::generate();
    db.operators()
        .issue("sign-up", &s.digest(), &s.display_form(), &cli(None, "operator.issued"))
        .await
        .expect("issue");
    let body = &s.expose()[7..39];
    let listed = db.operators().list().await.expect("list");
    assert!(!format!("{listed:?}").contains(body));
    if let Some(pool) = keygate_store::testing::sqlite_pool(db) {
        let rows: Vec<(i64, String, Vec<u8>, String, i64)> =
            sqlx::query_as("SELECT id, name, digest, display, created_at FROM operators")
                .fetch_all(&pool)
                .await
                .expect("rows");
        assert_eq!(rows.len(), 1);
        let (_, name, digest, display, _) = &rows[0];
        assert_eq!(digest.as_slice(), s.digest().as_bytes().as_slice(), "the digest is SHA-256 of the secret");
        for text in [name, display, &String::from_utf8_lossy(digest).into_owned()] {
            assert!(!text.contains(body), "no part of the secret in {text}");
        }
    }
}

async fn removing_a_tenant_needs_its_pending_unexpired_confirmation_and_leaves_no_row_of_it(db: &Database) {
    let acme = fixture(db, "acme").await;
    let other = fixture(db, "other").await;
    for f in [&acme, &other] {
        let secret = ApiKeySecret::generate();
        let key = db
            .keys()
            .insert(&new_key(f, &secret), &Guard::allow_all(), &cli(Some(f.tenant), "key.issued"))
            .await
            .expect("key");
        db.usage()
            .add_daily(&[DailyCount { key_id: key.0, day: 20_000, outcome: "accepted".into(), count: 3 }])
            .await
            .expect("usage");
        let digest = KeyDigest::of(&format!("session {}", f.tenant.0));
        db.sessions()
            .insert(
                &NewSession {
                    digest: digest.as_bytes(),
                    tenant_id: f.tenant,
                    user_id: f.admin,
                    csrf_token: "csrf",
                    expires_at: Timestamp::now().plus_millis(60_000),
                    ip: None,
                },
                20,
            )
            .await
            .expect("session");
    }
    let before_other = db.operators().rows_of_tenant(other.tenant).await.expect("count");
    let before = db.operators().rows_of_tenant(acme.tenant).await.expect("count");
    let nonzero = |rows: &[(String, i64)], table: &str| rows.iter().any(|(t, n)| t == table && *n > 0);
    for table in [
        "users",
        "api_keys",
        "units",
        "user_groups",
        "memberships",
        "key_usage_daily",
        "console_sessions",
        "audit_events",
        "tenants",
    ] {
        assert!(nonzero(&before, table), "the fixture has rows in {table}: {before:?}");
    }
    let confirmation = OperatorSecret::generate();
    let now = Timestamp::now();
    let removed = |n: i64| operator_audit("tenant.removed").details(format!("{n}"));
    // Nothing pending: refused.
    let err =
        db.operators().remove_tenant(acme.tenant, &confirmation.digest(), now, &removed(0)).await.expect_err("none");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let expires = now.plus_millis(600_000);
    db.operators()
        .request_removal(
            acme.tenant,
            &confirmation.digest(),
            OperatorId(1),
            expires,
            &operator_audit("tenant.removal_requested"),
        )
        .await
        .expect("request");
    // A wrong confirmation, and the right one after it expired: refused, nothing removed.
    let wrong = OperatorSecret::generate();
    assert!(db.operators().remove_tenant(acme.tenant, &wrong.digest(), now, &removed(1)).await.is_err());
    assert!(db.operators().remove_tenant(acme.tenant, &confirmation.digest(), expires, &removed(2)).await.is_err());
    // Another tenant's pending confirmation does not remove this one.
    assert!(db.operators().remove_tenant(other.tenant, &confirmation.digest(), now, &removed(3)).await.is_err());
    let unchanged = db.operators().rows_of_tenant(acme.tenant).await.expect("count");
    assert_eq!(unchanged.iter().find(|(t, _)| t == "tenants"), Some(&("tenants".to_owned(), 1)));
    let deleted =
        db.operators().remove_tenant(acme.tenant, &confirmation.digest(), now, &removed(4)).await.expect("removed");
    assert!(deleted >= 10, "{deleted} rows deleted");
    let after = db.operators().rows_of_tenant(acme.tenant).await.expect("count");
    assert!(after.iter().all(|(_, n)| *n == 0), "no row of the tenant remains: {after:?}");
    assert!(after.len() >= 15, "every table was counted: {after:?}");
    assert_eq!(db.operators().rows_of_tenant(other.tenant).await.expect("count"), {
        let mut b = before_other.clone();
        // The other tenant's rows are exactly as they were (its pending-removal count included).
        for row in &mut b {
            if row.0 == "tenant_removals" {
                row.1 = 0;
            }
        }
        b
    });
    // Used: refused (the tenant and its pending confirmation are gone).
    assert!(db.operators().remove_tenant(acme.tenant, &confirmation.digest(), now, &removed(5)).await.is_err());
    // The removal itself is audited outside any tenant, with the operator as the actor.
    if let Some(pool) = keygate_store::testing::sqlite_pool(db) {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT actor_kind, actor_label FROM audit_events WHERE action = 'tenant.removed' AND tenant_id IS NULL",
        )
        .fetch_all(&pool)
        .await
        .expect("rows");
        assert_eq!(rows, vec![("operator".to_owned(), "operator sign-up (1)".to_owned())]);
    }
    assert!(
        db.sessions()
            .by_digest(KeyDigest::of(&format!("session {}", acme.tenant.0)).as_bytes())
            .await
            .expect("read")
            .is_none()
    );
}

async fn at_most_100_removals_are_pending_and_an_expired_one_makes_room(db: &Database) {
    assert_eq!(MAX_PENDING_REMOVALS, 100);
    let mut tenants: Vec<TenantId> = Vec::new();
    for i in 0..101 {
        tenants.push(fixture(db, &format!("t{i}")).await.tenant);
    }
    let later = Timestamp::now().plus_millis(600_000);
    let ask = |t: TenantId, until: Timestamp| async move {
        let d = OperatorSecret::generate().digest();
        db.operators().request_removal(t, &d, OperatorId(1), until, &operator_audit("tenant.removal_requested")).await
    };
    for t in &tenants[..100] {
        ask(*t, later).await.expect("pending");
    }
    let err = ask(tenants[100], later).await.expect_err("101st");
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("100")), "{err:?}");
    // Asking again for a tenant replaces its confirmation: still 100.
    ask(tenants[0], later).await.expect("replaced");
    assert!(ask(tenants[100], later).await.is_err());
    // An expired one is pruned when the next is asked for.
    ask(tenants[0], Timestamp::now().plus_millis(-1)).await.expect("expired at once");
    ask(tenants[100], later).await.expect("room made by the expired one");
}

async fn daily_counts_of_a_removed_tenants_keys_are_dropped_not_a_failed_batch(db: &Database) {
    let acme = fixture(db, "acme").await;
    let other = fixture(db, "other").await;
    let (s1, s2) = (ApiKeySecret::generate(), ApiKeySecret::generate());
    let k1 = db
        .keys()
        .insert(&new_key(&acme, &s1), &Guard::allow_all(), &cli(Some(acme.tenant), "key.issued"))
        .await
        .expect("key");
    let k2 = db
        .keys()
        .insert(&new_key(&other, &s2), &Guard::allow_all(), &cli(Some(other.tenant), "key.issued"))
        .await
        .expect("key");
    let c = OperatorSecret::generate();
    let until = Timestamp::now().plus_millis(600_000);
    db.operators()
        .request_removal(acme.tenant, &c.digest(), OperatorId(1), until, &operator_audit("tenant.removal_requested"))
        .await
        .expect("ask");
    db.operators()
        .remove_tenant(acme.tenant, &c.digest(), Timestamp::now(), &operator_audit("tenant.removed"))
        .await
        .expect("removed");
    let counts = [
        DailyCount { key_id: k1.0, day: 20_000, outcome: "accepted".into(), count: 5 },
        DailyCount { key_id: k2.0, day: 20_000, outcome: "accepted".into(), count: 7 },
    ];
    db.usage().add_daily(&counts).await.expect("the batch is written");
    assert!(db.operators().rows_of_tenant(acme.tenant).await.expect("count").iter().all(|(_, n)| *n == 0));
    let other_rows = db.operators().rows_of_tenant(other.tenant).await.expect("count");
    assert!(other_rows.contains(&("key_usage_daily".to_owned(), 1)), "{other_rows:?}");
}

async fn tenants_are_listed_by_slug_after_a_cursor(db: &Database) {
    for slug in ["c-corp", "a-corp", "b-corp"] {
        fixture(db, slug).await;
    }
    let page = db.operators().tenants(None, 2).await.expect("page");
    assert_eq!(page.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(), ["a-corp", "b-corp"]);
    let next = db.operators().tenants(Some("b-corp"), 2).await.expect("page");
    assert_eq!(next.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(), ["c-corp"]);
}
