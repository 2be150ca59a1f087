//! The console's audit search on both engines: time range, action prefix, actor and target text
//! (`%` and `_` taken literally), a key exactly, paging both ways, the row cap, and never a row of
//! another tenant.

use keygate_domain::{Actor, AuditEntry, TenantId, Timestamp, UserId};
use keygate_store::{AUDIT_SEARCH_MAX_ROWS, AuditSearch, Database};

use super::fixture;

contract!(
    the_audit_search_filters_by_time_action_actor_target_and_key_inside_one_tenant,
    the_audit_search_pages_both_ways_and_returns_at_most_10000_rows,
    a_poll_forwards_never_skips_an_id_that_commits_after_a_larger_one,
);

/// Two PostgreSQL transactions take ids A < B and B commits first. Read at once, B alone would
/// be served and a poller resuming after B would never see A; with the settle time B waits
/// until A has had time to commit, and the poll gets A then B. (SQLite has one writer: its
/// committed ids are final, served at once.)
async fn a_poll_forwards_never_skips_an_id_that_commits_after_a_larger_one(db: &Database) {
    let acme = fixture(db, "acme").await;
    let search = |after: i64| AuditSearch { after_id: Some(after), limit: 100, ..AuditSearch::default() };
    let now = Timestamp::now();
    let newest = AuditSearch { limit: 1, ..AuditSearch::default() };
    let last = db.audit_search().events(acme.tenant, &newest, None, 0).await.expect("newest");
    let last = last.first().map_or(0, |r| r.id);
    let Some(pool) = db.postgres_pool() else {
        db.audit().append(&[entry(acme.tenant, now, Actor::CLI, "key.issued", "key 1")]).await.expect("append");
        let served = db.audit_search().events(acme.tenant, &search(last), None, 60_000).await.expect("poll");
        assert_eq!(served.len(), 1, "SQLite serves a committed row at once");
        return;
    };
    let mut first = pool.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, at, actor_kind, actor_label, action, target) \
         VALUES ($1, $2, 'system', 'system (cli)', 'key.issued', 'key A')",
    )
    .bind(acme.tenant.0)
    .bind(now.0)
    .execute(&mut *first)
    .await
    .expect("A takes its id");
    db.audit().append(&[entry(acme.tenant, now, Actor::CLI, "key.issued", "key B")]).await.expect("B commits");
    let unsettled = db.audit_search().events(acme.tenant, &search(last), None, 0).await.expect("poll");
    assert_eq!(unsettled.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(), ["key B"], "without a settle time");
    let settle = 400;
    let early = db.audit_search().events(acme.tenant, &search(last), None, settle).await.expect("poll");
    assert!(early.is_empty(), "B waits while A may still commit: {early:?}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    first.commit().await.expect("A commits after B");
    tokio::time::sleep(std::time::Duration::from_millis(u64::try_from(settle).expect("ms") + 100)).await;
    let served = db.audit_search().events(acme.tenant, &search(last), None, settle).await.expect("poll");
    let targets: Vec<&str> = served.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["key A", "key B"], "both, in id order");
    let after_b = db.audit_search().events(acme.tenant, &search(served[1].id), None, settle).await.expect("poll");
    assert!(after_b.is_empty());
}

fn entry(tenant: TenantId, at: Timestamp, actor: Actor, action: &'static str, target: &str) -> AuditEntry {
    let mut e = AuditEntry::new(Some(tenant), actor, action, target);
    e.at = at;
    e
}

async fn the_audit_search_filters_by_time_action_actor_target_and_key_inside_one_tenant(db: &Database) {
    let acme = fixture(db, "acme").await;
    let other = fixture(db, "other").await;
    let day = Timestamp::parse("2026-03-10").expect("day");
    let ada = || Actor::User { id: UserId(1), email: "Ada@acme.example".into() };
    let rows = vec![
        entry(acme.tenant, day.plus_days(-1), ada(), "key.issued", "key 7"),
        entry(acme.tenant, day, ada(), "key.disabled", "key 7"),
        entry(acme.tenant, day.plus_millis(3_600_000), Actor::CLI, "user.created", "user 100%_sure@acme.example"),
        entry(
            acme.tenant,
            day,
            Actor::Key { id: keygate_domain::KeyId(7), user_id: UserId(2) },
            "call.refused",
            "key 7",
        ),
        entry(acme.tenant, day, ada(), "key.disabled", "key 70"),
        entry(acme.tenant, day.plus_days(1), ada(), "key.revoked", "key 7"),
        // The same things in another tenant: never found from acme.
        entry(other.tenant, day, ada(), "key.disabled", "key 7"),
        entry(other.tenant, day, Actor::CLI, "user.created", "user 100%_sure@acme.example"),
    ];
    db.audit().append(&rows).await.expect("append");
    let search = |s: AuditSearch| async move {
        let found = db.audit_search().search(acme.tenant, &AuditSearch { limit: 100, ..s }).await.expect("search");
        assert!(found.iter().all(|r| r.tenant_id == Some(acme.tenant.0)), "another tenant's row: {found:?}");
        found.into_iter().map(|r| (r.action, r.target)).collect::<Vec<_>>()
    };
    let pair = |a: &str, t: &str| (a.to_owned(), t.to_owned());
    // One day, from its midnight to the next.
    let on_the_day =
        search(AuditSearch { from: Some(day.0), to: Some(day.plus_days(1).0), ..Default::default() }).await;
    assert_eq!(on_the_day.len(), 4, "{on_the_day:?}");
    assert!(!on_the_day.contains(&pair("key.issued", "key 7")) && !on_the_day.contains(&pair("key.revoked", "key 7")));
    // An action prefix, and the actor's label in any case.
    let disabled_by_ada =
        search(AuditSearch { action: Some("key.dis".into()), actor: Some("ada@ACME".into()), ..Default::default() })
            .await;
    assert_eq!(disabled_by_ada, vec![pair("key.disabled", "key 70"), pair("key.disabled", "key 7")]);
    // `%` and `_` in a text filter are themselves, not wildcards.
    assert_eq!(search(AuditSearch { target: Some("100%_sure".into()), ..Default::default() }).await.len(), 1);
    assert!(search(AuditSearch { target: Some("100%%sure".into()), ..Default::default() }).await.is_empty());
    assert!(search(AuditSearch { action: Some("%".into()), ..Default::default() }).await.is_empty());
    // A key exactly: its own calls and the events about it, not key 70's.
    let key7 = search(AuditSearch { key: Some(7), ..Default::default() }).await;
    assert_eq!(key7.len(), 4, "{key7:?}");
    assert!(!key7.contains(&pair("key.disabled", "key 70")));
    // The other tenant sees its own two rows (and its creation), never acme's.
    let theirs = db
        .audit_search()
        .search(other.tenant, &AuditSearch { target: Some("key 7".into()), limit: 100, ..Default::default() })
        .await
        .expect("search");
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].tenant_id, Some(other.tenant.0));
}

async fn the_audit_search_pages_both_ways_and_returns_at_most_10000_rows(db: &Database) {
    let acme = fixture(db, "acme").await;
    let start = Timestamp::parse("2026-03-10").expect("day");
    let rows: Vec<AuditEntry> = (0..10_005)
        .map(|i| entry(acme.tenant, start.plus_millis(i), Actor::CLI, "key.issued", &format!("key {i}")))
        .collect();
    db.audit().append(&rows).await.expect("append");
    let filter = AuditSearch { action: Some("key.issued".into()), ..Default::default() };
    let all =
        db.audit_search().search(acme.tenant, &AuditSearch { limit: u32::MAX, ..filter.clone() }).await.expect("all");
    assert_eq!(all.len(), 10_000, "the cap is {AUDIT_SEARCH_MAX_ROWS} rows");
    assert_eq!(all[0].target, "key 10004", "newest first");
    let page = |before_id: Option<i64>, after_id: Option<i64>| {
        let s = AuditSearch { before_id, after_id, limit: 50, ..filter.clone() };
        async move { db.audit_search().search(acme.tenant, &s).await.expect("page") }
    };
    let first = page(None, None).await;
    assert_eq!((first.len(), first[0].target.as_str(), first[49].target.as_str()), (50, "key 10004", "key 9955"));
    let second = page(Some(first[49].id), None).await;
    assert_eq!((second[0].target.as_str(), second[49].target.as_str()), ("key 9954", "key 9905"));
    let back = page(None, Some(second[0].id)).await;
    assert_eq!(back.iter().map(|r| r.id).collect::<Vec<_>>(), first.iter().map(|r| r.id).collect::<Vec<_>>());
    assert!(page(None, Some(first[0].id)).await.is_empty(), "nothing is newer than the newest");
}
