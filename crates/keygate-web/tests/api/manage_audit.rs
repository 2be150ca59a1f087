//! `GET /v1/audit-events` over real HTTP, on SQLite and PostgreSQL: newest first with a `Link`
//! to older pages, a poll forwards from the last id seen that gets every newer event once and
//! then nothing, filters, `admin:audit:read`, tenants apart. And `Idempotency-Key` on a
//! management POST over HTTP (`POST /v1/keys`).

use keygate_domain::KeyId;
use keygate_service::{AUDIT_SETTLE_MS, Backend, Caller, IssueKey, KeyOwner};
use serde_json::Value;

use crate::helpers::{TestApp, USER, key_for, problem_code, spawn_app_on};

const ADMIN: &str = "admin@acme.example";

/// On PostgreSQL an event is served once it is [`AUDIT_SETTLE_MS`] old (every smaller id is
/// final by then); SQLite serves it at once.
async fn settle(app: &TestApp) {
    if app.keygate.store_for_tests().backend() == Backend::Postgres {
        tokio::time::sleep(std::time::Duration::from_millis(u64::try_from(AUDIT_SETTLE_MS).unwrap_or(0) + 150)).await;
    }
}

/// A key issued for the test user, as the command line would: one `key.issued` event.
async fn issue(app: &TestApp, purpose: &str) -> KeyId {
    app.keygate
        .issue_key(
            &Caller::CLI,
            app.tenant,
            IssueKey {
                owner: KeyOwner::Email(USER.into()),
                purpose: purpose.into(),
                ip_ranges: vec!["10.0.0.0/8".into()],
                ..IssueKey::default()
            },
        )
        .await
        .expect("issue")
        .record
        .id
}

async fn get(app: &TestApp, key: &str, path_and_query: &str) -> reqwest::Response {
    app.client.get(app.url(path_and_query)).bearer_auth(key).send().await.expect("request")
}

/// The page at `path_and_query`: its events, its `nextCursor`, its `Link` target.
async fn page(app: &TestApp, key: &str, path_and_query: &str) -> (Vec<Value>, Option<String>, Option<String>) {
    let response = get(app, key, path_and_query).await;
    assert_eq!(response.status(), 200, "{path_and_query}");
    let link = response.headers().get("link").map(|l| l.to_str().expect("link").to_owned());
    let body: Value = response.json().await.expect("json");
    let next = body["nextCursor"].as_str().map(str::to_owned);
    assert_eq!(link.is_some(), next.is_some(), "a Link exactly when there is a next page");
    let link = link.map(|l| {
        let target = l.strip_prefix('<').and_then(|l| l.split_once('>')).expect("<target>").0.to_owned();
        assert!(l.ends_with("; rel=\"next\""), "{l}");
        target
    });
    (body["items"].as_array().expect("items").clone(), next, link)
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(|e| e["id"].as_str().expect("id is a string").parse().expect("integer")).collect()
}

async fn events_come_back_newest_first_and_a_link_leads_to_older_pages(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await;
    for n in 0..5 {
        issue(&app, &format!("batch {n}")).await;
    }
    settle(&app).await;
    let (first, next, link) = page(&app, admin.expose(), "/v1/audit-events?action=key.issued&limit=2").await;
    assert_eq!(first.len(), 2);
    assert_eq!(first[0]["action"], "key.issued");
    assert_eq!(first[0]["actor"]["kind"], "system");
    assert!(first[0]["at"].as_str().expect("at").ends_with('Z'));
    let members: Vec<&str> = first[0].as_object().expect("event").keys().map(String::as_str).collect();
    assert_eq!(members, ["action", "actor", "at", "details", "id", "ip", "target"], "the documented AuditEvent");
    assert_eq!(next.as_deref(), Some(first[1]["id"].as_str().expect("id")));
    let mut all = ids(&first);
    let mut link = link;
    while let Some(target) = link {
        let (items, _, next_link) = page(&app, admin.expose(), &target).await;
        all.extend(ids(&items));
        link = next_link;
    }
    // 5 issued here, plus the fixture's keys (the admin's own).
    assert!(all.len() >= 5, "{all:?}");
    assert!(all.windows(2).all(|w| w[0] > w[1]), "strictly newest first, no repeats: {all:?}");
}

async fn a_poll_after_the_last_id_gets_every_newer_event_once_then_nothing(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await;
    settle(&app).await;
    let (newest, ..) = page(&app, admin.expose(), "/v1/audit-events?limit=1").await;
    let last: i64 = ids(&newest)[0];
    let mut made = Vec::new();
    for n in 0..3 {
        made.push(issue(&app, &format!("poll {n}")).await);
    }
    settle(&app).await;
    // Forwards, two at a time, oldest first.
    let (items, next, link) = page(&app, admin.expose(), &format!("/v1/audit-events?after={last}&limit=2")).await;
    assert_eq!(items.len(), 2);
    assert!(next.is_some());
    let (rest, next_after, _) = page(&app, admin.expose(), &link.expect("link")).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(next_after, None);
    let seen: Vec<i64> = ids(&items).into_iter().chain(ids(&rest)).collect();
    assert!(seen.windows(2).all(|w| w[0] < w[1]) && seen[0] > last, "{seen:?} after {last}");
    let targets: Vec<&str> = items.iter().chain(&rest).map(|e| e["target"].as_str().expect("target")).collect();
    assert_eq!(targets.len(), 3);
    assert!(items.iter().chain(&rest).all(|e| e["action"] == "key.issued"));
    // Nothing happened since: the next poll is empty.
    let newest_seen = *seen.last().expect("seen");
    let (nothing, next, _) = page(&app, admin.expose(), &format!("/v1/audit-events?after={newest_seen}")).await;
    assert!(nothing.is_empty(), "{nothing:?}");
    assert_eq!(next, None);
    // One more event: exactly it.
    issue(&app, "one more").await;
    settle(&app).await;
    let (one, ..) = page(&app, admin.expose(), &format!("/v1/audit-events?after={newest_seen}")).await;
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0]["action"], "key.issued");
}

async fn filters_narrow_by_action_key_user_actor_and_time(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await;
    let target = issue(&app, "to disable").await;
    app.keygate.set_key_enabled(&Caller::CLI, Some(app.tenant), target, false).await.expect("disable");
    issue(&app, "another").await;
    settle(&app).await;
    let (disabled, ..) = page(&app, admin.expose(), "/v1/audit-events?action=key.disabled").await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["target"], format!("key {target}"));
    let (about, ..) = page(&app, admin.expose(), &format!("/v1/audit-events?key={target}")).await;
    let actions: Vec<&str> = about.iter().map(|e| e["action"].as_str().expect("action")).collect();
    assert_eq!(actions, ["key.disabled", "key.issued"], "issued, then disabled; newest first");
    let (by_actor, ..) = page(&app, admin.expose(), "/v1/audit-events?actor=system&action=key.").await;
    assert!(by_actor.len() >= 3, "{by_actor:?}");
    let (by_user, ..) = page(&app, admin.expose(), &format!("/v1/audit-events?user={}", app.user)).await;
    assert!(by_user.iter().any(|e| e["action"] == "user.created"), "{by_user:?}");
    assert!(by_user.iter().all(|e| e["target"].as_str().unwrap_or("").contains(USER)), "{by_user:?}");
    let (old, ..) = page(&app, admin.expose(), "/v1/audit-events?to=2020-01-01T00:00:00Z").await;
    assert!(old.is_empty());
    let (recent, ..) = page(&app, admin.expose(), "/v1/audit-events?from=2020-01-01T00:00:00Z&limit=200").await;
    assert!(recent.len() >= 4);
    let bad = get(&app, admin.expose(), "/v1/audit-events?limit=201").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(problem_code(bad).await, "invalid_parameter");
    let unknown = get(&app, admin.expose(), "/v1/audit-events?offset=5").await;
    assert_eq!(problem_code(unknown).await, "unknown_parameter");
}

async fn a_key_without_admin_audit_read_is_forbidden(app: TestApp) {
    let scoped = key_for(&app, ADMIN, Some(&["admin:keys:read"])).await;
    let response = get(&app, scoped.expose(), "/v1/audit-events").await;
    assert_eq!(response.status(), 403);
    assert_eq!(problem_code(response).await, "forbidden");
    let plain_user = key_for(&app, USER, None).await;
    assert_eq!(get(&app, plain_user.expose(), "/v1/audit-events").await.status(), 403);
    let audit_only = key_for(&app, ADMIN, Some(&["admin:audit:read"])).await;
    assert_eq!(get(&app, audit_only.expose(), "/v1/audit-events").await.status(), 200);
    assert_eq!(app.client.get(app.url("/v1/audit-events")).send().await.expect("request").status(), 401);
}

async fn a_tenants_key_never_sees_another_tenants_events(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await;
    let other = app.keygate.create_tenant(&Caller::CLI, "globex", "admin@globex.example", None).await.expect("tenant");
    let theirs = app
        .keygate
        .issue_key(
            &Caller::CLI,
            other.tenant,
            IssueKey {
                owner: KeyOwner::Email("admin@globex.example".into()),
                purpose: "globex".into(),
                ip_ranges: vec!["10.0.0.0/8".into()],
                ..IssueKey::default()
            },
        )
        .await
        .expect("issue")
        .record
        .id;
    settle(&app).await;
    let (all, ..) = page(&app, admin.expose(), "/v1/audit-events?limit=200&after=0").await;
    assert!(!all.is_empty());
    let text = serde_json::to_string(&all).expect("json");
    assert!(!text.contains("globex"), "{text}");
    let (about_theirs, ..) = page(&app, admin.expose(), &format!("/v1/audit-events?key={theirs}")).await;
    assert!(about_theirs.is_empty(), "{about_theirs:?}");
}

async fn on_postgresql_an_event_is_served_once_it_is_2_seconds_old(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await;
    settle(&app).await;
    let (newest, ..) = page(&app, admin.expose(), "/v1/audit-events?limit=1").await;
    let last = ids(&newest)[0];
    issue(&app, "fresh").await;
    let (fresh, ..) = page(&app, admin.expose(), &format!("/v1/audit-events?after={last}")).await;
    if app.keygate.store_for_tests().backend() == Backend::Postgres {
        assert_eq!(AUDIT_SETTLE_MS, 2_000);
        assert!(fresh.is_empty(), "not yet settled: {fresh:?}");
        settle(&app).await;
        let (settled, ..) = page(&app, admin.expose(), &format!("/v1/audit-events?after={last}")).await;
        assert_eq!(settled.len(), 1);
    } else {
        assert_eq!(fresh.len(), 1, "SQLite's committed ids are final at once");
    }
}

on_both_backends!(
    events_come_back_newest_first_and_a_link_leads_to_older_pages,
    a_poll_after_the_last_id_gets_every_newer_event_once_then_nothing,
    filters_narrow_by_action_key_user_actor_and_time,
    a_key_without_admin_audit_read_is_forbidden,
    a_tenants_key_never_sees_another_tenants_events,
    on_postgresql_an_event_is_served_once_it_is_2_seconds_old,
    an_idempotent_issue_over_http_is_answered_twice_and_done_once,
);

/// `POST /v1/keys` with an `Idempotency-Key`, sent twice: the same status and key, one key
/// issued (one `key.issued` event), the secret neither replayed nor stored; another body under
/// the same name is `idempotency_key_reused`.
async fn an_idempotent_issue_over_http_is_answered_twice_and_done_once(app: TestApp) {
    let issued = app
        .keygate
        .issue_key(
            &Caller::CLI,
            app.tenant,
            IssueKey {
                owner: KeyOwner::Email(ADMIN.into()),
                purpose: "automation".into(),
                ip_ranges: vec!["127.0.0.0/8".into()],
                rate_limit_per_minute: Some(1_000_000),
                ..IssueKey::default()
            },
        )
        .await
        .expect("issue");
    let admin = issued.secret;
    let issued_events = async || {
        let search =
            keygate_service::AuditSearch { action: Some("key.issued".into()), limit: 1_000, ..Default::default() };
        app.keygate.store_for_tests().audit_search().search(app.tenant, &search).await.expect("audit").len()
    };
    let before = issued_events().await;
    let send = |purpose: &str| {
        let body = serde_json::json!({"user": app.user.0, "purpose": purpose, "ipRanges": ["10.0.0.0/8"]});
        app.client
            .post(app.url("/v1/keys"))
            .bearer_auth(admin.expose())
            .header("idempotency-key", "issue-ci-1")
            .json(&body)
            .send()
    };
    let first = send("ci").await.expect("first");
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("json");
    let secret = first["secret"].as_str().expect("secret").to_owned();
    let again = send("ci").await.expect("again");
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["idempotency-withheld"], "secret");
    let again_text = again.text().await.expect("body");
    assert!(!again_text.contains(&secret), "{again_text}");
    let again: Value = serde_json::from_str(&again_text).expect("json");
    assert_eq!(again["key"], first["key"]);
    assert!(again.get("secret").is_none());
    assert_eq!(issued_events().await, before + 1, "one key issued for two requests");
    let row = app
        .keygate
        .store_for_tests()
        .management_idempotency()
        .get(issued.record.id.0, "issue-ci-1")
        .await
        .expect("read")
        .expect("row");
    // The stored answer keeps the key's display form (`kg_ABCD…wxyz`), never the secret.
    assert!(!row.body.contains(&secret) && !row.body.contains("\"secret\""), "{}", row.body);
    assert_eq!((row.status, row.withheld.as_str()), (Some(201), "secret"));
    let reused = send("another purpose").await.expect("reused");
    assert_eq!(reused.status(), 400);
    assert_eq!(problem_code(reused).await, "idempotency_key_reused");
    assert_eq!(issued_events().await, before + 1);
}
