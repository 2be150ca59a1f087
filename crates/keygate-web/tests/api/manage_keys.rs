//! The management API's keys over real HTTP (`/v1/keys…`), on SQLite and PostgreSQL: who may
//! do what (admin scopes and groups), the grant ceiling, `If-Match`, cursor pages with `Link`,
//! bulk calls (at most 100 items, all or nothing), a key rolling itself (once, even under a
//! race), and tenants kept apart.

use keygate_domain::UserId;
use keygate_service::{AuditFilter, Backend, Caller, CreateUser};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, USER, key_for, problem_code, spawn_app_on};

on_both_backends!(
    a_configurator_key_lists_issues_reads_changes_switches_and_rolls_keys,
    keys_without_the_admin_power_are_forbidden,
    an_issued_key_beyond_the_actors_power_is_refused_and_audited,
    a_change_with_a_stale_if_match_is_refused_412_and_writes_nothing,
    following_the_link_header_returns_every_key_once_and_a_page_holds_at_most_200,
    a_bulk_call_of_101_items_is_refused_and_writes_nothing,
    a_bulk_disable_of_two_keys_refuses_both_on_their_next_request,
    a_bulk_issue_whose_second_item_exceeds_the_ceiling_writes_nothing,
    a_key_rolls_itself_once_and_the_old_key_works_only_for_the_overlap,
    two_concurrent_self_rolls_of_one_key_give_one_successor_and_one_audited_refusal,
    a_key_made_by_a_roll_rolls_itself_only_after_ten_minutes_and_then_ends_its_predecessor,
    a_line_of_rolls_never_has_more_than_two_working_keys_and_revoking_those_two_ends_it,
    concurrent_rolls_along_one_line_never_leave_more_than_two_working_keys,
    a_key_of_one_tenant_never_sees_or_touches_a_key_of_another,
    the_usage_of_a_key_counts_accepted_and_refused_calls_per_day,
);

const ADMIN: &str = "admin@acme.example";

async fn call(app: &TestApp, method: &str, path: &str, key: &str, body: Option<Value>) -> Response {
    let url = app.url(path);
    let request = match method {
        "GET" => app.client.get(url),
        "POST" => app.client.post(url),
        "PATCH" => app.client.patch(url),
        other => panic!("{other}"),
    }
    .bearer_auth(key);
    let request = match body {
        Some(b) => request.json(&b),
        None => request,
    };
    request.send().await.expect("request")
}

async fn json_of(response: Response, status: StatusCode) -> Value {
    let got = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(got, status, "{body}");
    body
}

/// A programmatic user in `groups` and an unscoped key of theirs.
async fn member_key(app: &TestApp, email: &str, groups: &[&str], scopes: Option<&[&str]>) -> (UserId, String) {
    let id = app
        .keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            CreateUser {
                email: email.into(),
                name: email.into(),
                category: "programmatic".into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("user");
    (id, key_for(app, email, scopes).await.expose().to_owned())
}

async fn count_keys(app: &TestApp) -> usize {
    app.keygate.list_keys(&Caller::CLI, app.tenant).await.expect("keys").len()
}

/// The tenant's audit events whose action starts with `action`, as `action target: details`.
async fn audited(app: &TestApp, action: &str) -> Vec<String> {
    let filter = AuditFilter { limit: 1000, ..AuditFilter::default() };
    let events = app.keygate.store_for_tests().audit().list(app.tenant, &filter).await.expect("audit");
    events
        .into_iter()
        .filter(|e| e.action.starts_with(action))
        .map(|e| format!("{} {}: {}", e.action, e.target, e.details))
        .collect()
}

fn issue_body(user: UserId, purpose: &str) -> Value {
    json!({ "user": user.0, "purpose": purpose, "ipRanges": ["127.0.0.0/8"] })
}

async fn a_configurator_key_lists_issues_reads_changes_switches_and_rolls_keys(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await.expose().to_owned();
    let issued = call(&app, "POST", "/v1/keys", &admin, Some(issue_body(app.user, "nightly export"))).await;
    assert_eq!(issued.headers()["location"].to_str().expect("location").split('/').count(), 4);
    let issued = json_of(issued, StatusCode::CREATED).await;
    let secret = issued["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("kg_"));
    let id = issued["key"]["id"].as_i64().expect("id");
    assert_eq!(issued["key"]["user"]["email"], USER);
    assert_eq!(issued["key"]["status"], "active");
    assert_eq!(issued["key"]["scopes"], Value::Null);
    // The new key works at once.
    assert_eq!(app.capability(&secret).await.status(), StatusCode::OK);

    let listed = json_of(call(&app, "GET", "/v1/keys?purpose=NIGHTLY", &admin, None).await, StatusCode::OK).await;
    let ids: Vec<i64> =
        listed["items"].as_array().expect("items").iter().map(|k| k["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, vec![id]);
    assert_eq!(listed["nextCursor"], Value::Null);
    let of_user =
        json_of(call(&app, "GET", &format!("/v1/keys?user={}", app.user.0), &admin, None).await, StatusCode::OK).await;
    assert!(of_user["items"].as_array().expect("items").iter().all(|k| k["user"]["id"] == app.user.0));

    let read = call(&app, "GET", &format!("/v1/keys/{id}"), &admin, None).await;
    let tag = read.headers()["etag"].to_str().expect("etag").to_owned();
    let read = json_of(read, StatusCode::OK).await;
    assert_eq!(read["purpose"], "nightly export");
    assert_eq!(read["ipRanges"], json!(["127.0.0.0/8"]));

    let patched = app
        .client
        .patch(app.url(&format!("/v1/keys/{id}")))
        .bearer_auth(&admin)
        .header("if-match", &tag)
        .json(&json!({ "purpose": "hourly export", "rateLimitPerMinute": 90, "expiresAt": "2099-01-01" }))
        .send()
        .await
        .expect("patch");
    assert_ne!(patched.headers()["etag"].to_str().expect("etag"), tag);
    let patched = json_of(patched, StatusCode::OK).await;
    assert_eq!(
        (patched["purpose"].as_str(), patched["rateLimitPerMinute"].as_i64()),
        (Some("hourly export"), Some(90))
    );
    assert!(patched["expiresAt"].as_str().expect("expiry").starts_with("2099-01-01"));
    let back =
        call(&app, "PATCH", &format!("/v1/keys/{id}"), &admin, Some(json!({ "rateLimitPerMinute": null }))).await;
    assert_eq!(json_of(back, StatusCode::OK).await["rateLimitPerMinute"], Value::Null);
    assert!(audited(&app, "key.updated").await.iter().any(|e| e.contains("purpose \"hourly export\"")));

    let disabled =
        json_of(call(&app, "POST", &format!("/v1/keys/{id}/disable"), &admin, None).await, StatusCode::OK).await;
    assert_eq!(disabled["status"], "disabled");
    assert_eq!(problem_code(app.capability(&secret).await).await, "key_disabled");
    let enabled =
        json_of(call(&app, "POST", &format!("/v1/keys/{id}/enable"), &admin, None).await, StatusCode::OK).await;
    assert_eq!(enabled["status"], "active");
    assert_eq!(app.capability(&secret).await.status(), StatusCode::OK);

    let rolled = call(&app, "POST", &format!("/v1/keys/{id}/roll"), &admin, Some(json!({ "overlapHours": 2 }))).await;
    let rolled = json_of(rolled, StatusCode::CREATED).await;
    assert_eq!(rolled["key"]["rolledFrom"], id);
    assert_eq!(rolled["key"]["purpose"], "hourly export");
    let successor = rolled["secret"].as_str().expect("secret").to_owned();
    assert_eq!(app.capability(&successor).await.status(), StatusCode::OK);
    assert_eq!(app.capability(&secret).await.status(), StatusCode::OK, "the old key works during the overlap");

    let revoked =
        json_of(call(&app, "POST", &format!("/v1/keys/{id}/revoke"), &admin, None).await, StatusCode::OK).await;
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revokedAt"].is_string());
    assert_eq!(problem_code(app.capability(&secret).await).await, "key_revoked");
    let revoked_list = json_of(call(&app, "GET", "/v1/keys?state=revoked", &admin, None).await, StatusCode::OK).await;
    assert_eq!(revoked_list["items"].as_array().expect("items").len(), 1);
    let actions = audited(&app, "key.").await;
    for action in ["key.issued", "key.updated", "key.disabled", "key.enabled", "key.rolled", "key.revoked"] {
        assert!(actions.iter().any(|a| a.starts_with(action)), "{action} missing from {actions:?}");
    }
    let bad = call(&app, "GET", "/v1/keys?colour=red", &admin, None).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem_code(bad).await, "unknown_parameter");
    let bad = call(&app, "GET", "/v1/keys?state=sleeping", &admin, None).await;
    assert_eq!(problem_code(bad).await, "invalid_parameter");
}

async fn keys_without_the_admin_power_are_forbidden(app: TestApp) {
    let (_, target) = member_key(&app, "target@acme.example", &[], None).await;
    let target_id = json_of(call(&app, "GET", "/v1/keys/self", &target, None).await, StatusCode::OK).await["id"]
        .as_i64()
        .expect("id");
    let plain = key_for(&app, USER, None).await.expose().to_owned();
    let read_only = key_for(&app, ADMIN, Some(&["admin:keys:read"])).await.expose().to_owned();
    let (_, not_configurator) =
        member_key(&app, "writer@acme.example", &["Readers"], Some(&["admin:keys:write"])).await;
    let before = count_keys(&app).await;
    for (who, key) in
        [("no admin power", &plain), ("admin:keys:read only", &read_only), ("not a Configurator", &not_configurator)]
    {
        let issue = call(&app, "POST", "/v1/keys", key, Some(issue_body(app.user, "sneaky"))).await;
        assert_eq!(issue.status(), StatusCode::FORBIDDEN, "{who}");
        assert_eq!(problem_code(issue).await, "forbidden", "{who}");
        let disable = call(&app, "POST", &format!("/v1/keys/{target_id}/disable"), key, None).await;
        assert_eq!(problem_code(disable).await, "forbidden", "{who}");
        let bulk = json!({ "action": "revoke", "items": [{ "id": target_id }] });
        assert_eq!(problem_code(call(&app, "POST", "/v1/keys/bulk", key, Some(bulk)).await).await, "forbidden");
    }
    for (who, key) in [("no admin power", &plain), ("not a Configurator", &not_configurator)] {
        let list = call(&app, "GET", "/v1/keys", key, None).await;
        assert_eq!(list.status(), StatusCode::FORBIDDEN, "{who}");
    }
    assert_eq!(call(&app, "GET", "/v1/keys", &read_only, None).await.status(), StatusCode::OK);
    assert_eq!(count_keys(&app).await, before, "nothing was issued");
    assert_eq!(app.capability(&target).await.status(), StatusCode::OK, "nothing was disabled or revoked");
}

async fn an_issued_key_beyond_the_actors_power_is_refused_and_audited(app: TestApp) {
    // A Configurator with no data grants may issue keys, but not one for a user who reads invoices.
    let (ops, ops_key) = member_key(&app, "ops@acme.example", &["Configurator"], None).await;
    let before = count_keys(&app).await;
    let refused = call(&app, "POST", "/v1/keys", &ops_key, Some(issue_body(app.user, "escalation"))).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(problem_code(refused).await, "grant_exceeds_actor");
    assert_eq!(count_keys(&app).await, before);
    let refusals = audited(&app, "grant.refused").await;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(refusals[0].contains("invoices"), "{refusals:?}");
    // Within its power (a key for itself) it may.
    let own = call(&app, "POST", "/v1/keys", &ops_key, Some(issue_body(ops, "own"))).await;
    assert_eq!(own.status(), StatusCode::CREATED);
}

async fn a_change_with_a_stale_if_match_is_refused_412_and_writes_nothing(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await.expose().to_owned();
    let (id, _) = app.issue(&["127.0.0.1/32"], None).await;
    let path = format!("/v1/keys/{}", id.0);
    let first = call(&app, "GET", &path, &admin, None).await;
    let tag = first.headers()["etag"].to_str().expect("etag").to_owned();
    // Someone else changes the key after it was read.
    let other = call(&app, "PATCH", &path, &admin, Some(json!({ "ipRanges": ["10.0.0.0/8"] }))).await;
    assert_eq!(other.status(), StatusCode::OK);
    let stale = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("if-match", &tag)
        .json(&json!({ "purpose": "overwritten" }))
        .send()
        .await
        .expect("patch");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(problem_code(stale).await, "precondition_failed");
    let now = json_of(call(&app, "GET", &path, &admin, None).await, StatusCode::OK).await;
    assert_eq!((now["purpose"].as_str(), now["ipRanges"].clone()), (Some("tests"), json!(["10.0.0.0/8"])));
    assert_eq!(audited(&app, "key.updated").await.len(), 1, "only the first change was written");
    let bogus = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("if-match", "\"0000\"")
        .json(&json!({ "purpose": "x" }))
        .send()
        .await
        .expect("patch");
    assert_eq!(bogus.status(), StatusCode::PRECONDITION_FAILED);
}

async fn following_the_link_header_returns_every_key_once_and_a_page_holds_at_most_200(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await.expose().to_owned();
    for _ in 0..6 {
        app.issue(&["127.0.0.1/32"], None).await;
    }
    let total = count_keys(&app).await;
    assert_eq!(total, 7);
    let mut seen = Vec::new();
    let mut next = Some("/v1/keys?limit=3".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let answer = call(&app, "GET", &path, &admin, None).await;
        next = answer.headers().get("link").map(|l| {
            let l = l.to_str().expect("link");
            assert!(l.ends_with(">; rel=\"next\""), "{l}");
            l.trim_start_matches('<').split('>').next().expect("target").to_owned()
        });
        let page = json_of(answer, StatusCode::OK).await;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        assert_eq!(page["nextCursor"].is_null(), next.is_none());
        seen.extend(items.iter().map(|k| k["id"].as_i64().expect("id")));
        pages += 1;
    }
    assert_eq!(pages, 3, "7 keys in pages of 3");
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (total, total), "every key once: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first: {seen:?}");

    assert_eq!(call(&app, "GET", "/v1/keys?limit=200", &admin, None).await.status(), StatusCode::OK);
    for limit in ["201", "0", "many"] {
        let over = call(&app, "GET", &format!("/v1/keys?limit={limit}"), &admin, None).await;
        assert_eq!(over.status(), StatusCode::BAD_REQUEST, "limit={limit}");
        assert_eq!(problem_code(over).await, "invalid_parameter");
    }
    let bad_cursor = call(&app, "GET", "/v1/keys?cursor=abc", &admin, None).await;
    assert_eq!(problem_code(bad_cursor).await, "invalid_parameter");
}

async fn a_bulk_call_of_101_items_is_refused_and_writes_nothing(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await.expose().to_owned();
    let before = count_keys(&app).await;
    let events_before = audited(&app, "key.issued").await.len();
    let items: Vec<Value> = (0..101).map(|i| issue_body(app.user, &format!("bulk {i}"))).collect();
    let answer = call(&app, "POST", "/v1/keys/bulk", &admin, Some(json!({ "action": "issue", "items": items }))).await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem_code(answer).await, "invalid_parameter");
    assert_eq!(count_keys(&app).await, before);
    // 100 is the most one call takes, and all of them are written.
    let items: Vec<Value> = (0..100).map(|i| issue_body(app.user, &format!("bulk {i}"))).collect();
    let answer = call(&app, "POST", "/v1/keys/bulk", &admin, Some(json!({ "action": "issue", "items": items }))).await;
    let done = json_of(answer, StatusCode::CREATED).await;
    assert_eq!(done["items"].as_array().expect("items").len(), 100);
    assert_eq!(count_keys(&app).await, before + 100);
    assert_eq!(audited(&app, "key.issued").await.len(), events_before + 100, "one event per key");
}

async fn a_bulk_disable_of_two_keys_refuses_both_on_their_next_request(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await.expose().to_owned();
    let (a, a_secret) = app.issue(&["127.0.0.1/32"], None).await;
    let (b, b_secret) = app.issue(&["127.0.0.1/32"], None).await;
    assert_eq!(app.capability(a_secret.expose()).await.status(), StatusCode::OK);
    let body = json!({ "action": "disable", "items": [{ "id": a.0 }, { "id": b.0 }] });
    let done = json_of(call(&app, "POST", "/v1/keys/bulk", &admin, Some(body)).await, StatusCode::OK).await;
    assert!(done["items"].as_array().expect("items").iter().all(|k| k["status"] == "disabled"), "{done}");
    for secret in [&a_secret, &b_secret] {
        assert_eq!(problem_code(app.capability(secret.expose()).await).await, "key_disabled");
    }
    // One unknown id among known ones: nothing is revoked.
    let body = json!({ "action": "revoke", "items": [{ "id": a.0 }, { "id": 999_999 }] });
    let answer = call(&app, "POST", "/v1/keys/bulk", &admin, Some(body)).await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let a_now = json_of(call(&app, "GET", &format!("/v1/keys/{}", a.0), &admin, None).await, StatusCode::OK).await;
    assert_eq!(a_now["status"], "disabled");
}

async fn a_bulk_issue_whose_second_item_exceeds_the_ceiling_writes_nothing(app: TestApp) {
    let (ops, ops_key) = member_key(&app, "ops@acme.example", &["Configurator"], None).await;
    let before = count_keys(&app).await;
    let body = json!({ "action": "issue", "items": [issue_body(ops, "fine"), issue_body(app.user, "beyond")] });
    let answer = call(&app, "POST", "/v1/keys/bulk", &ops_key, Some(body)).await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert_eq!(problem_code(answer).await, "grant_exceeds_actor");
    assert_eq!(count_keys(&app).await, before, "not even the first item was written");
    assert_eq!(audited(&app, "grant.refused").await.len(), 1);
    assert!(audited(&app, "key.issued").await.iter().all(|e| !e.contains("\"fine\"")));
}

async fn a_key_rolls_itself_once_and_the_old_key_works_only_for_the_overlap(app: TestApp) {
    // A key with no admin power and scopes reads and rolls itself.
    let old = key_for(&app, USER, Some(&["invoices:read"])).await.expose().to_owned();
    let me = json_of(call(&app, "GET", "/v1/keys/self", &old, None).await, StatusCode::OK).await;
    assert_eq!(me["user"]["email"], USER);
    let rolled = call(&app, "POST", "/v1/keys/self/roll", &old, Some(json!({ "overlapHours": 1 }))).await;
    let rolled = json_of(rolled, StatusCode::CREATED).await;
    let new = rolled["secret"].as_str().expect("secret").to_owned();
    for member in ["user", "scopes", "units", "ipRanges", "purpose", "rateLimitPerMinute"] {
        assert_eq!(rolled["key"][member], me[member], "{member}");
    }
    assert_eq!(rolled["key"]["rolledFrom"], me["id"]);
    assert_eq!(call(&app, "GET", "/v1/keys/self", &old, None).await.status(), StatusCode::OK, "overlap");
    assert_eq!(call(&app, "GET", "/v1/keys/self", &new, None).await.status(), StatusCode::OK);
    // A second roll of the old key (a leaked copy) is refused and audited; no third key appears.
    let before = count_keys(&app).await;
    let again = call(&app, "POST", "/v1/keys/self/roll", &old, Some(json!({}))).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(problem_code(again).await, "conflict");
    assert_eq!(count_keys(&app).await, before);
    let refused = audited(&app, "key.roll_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains(&format!("key {}", me["id"])), "{refused:?}");
    // With no overlap, the rolled key is refused at once. (A key made by a roll waits ten minutes
    // before it may roll itself, so this starts from a key an administrator issued.)
    let fresh = key_for(&app, USER, Some(&["invoices:read"])).await.expose().to_owned();
    let newest = call(&app, "POST", "/v1/keys/self/roll", &fresh, Some(json!({ "overlapHours": 0 }))).await;
    let newest = json_of(newest, StatusCode::CREATED).await["secret"].as_str().expect("secret").to_owned();
    assert_eq!(problem_code(call(&app, "GET", "/v1/keys/self", &fresh, None).await).await, "key_expired");
    assert_eq!(call(&app, "GET", "/v1/keys/self", &newest, None).await.status(), StatusCode::OK);
    let hours = call(&app, "POST", "/v1/keys/self/roll", &newest, Some(json!({ "overlapHours": 169 }))).await;
    assert_eq!(problem_code(hours).await, "invalid_input");
    let typo = call(&app, "POST", "/v1/keys/self/roll", &newest, Some(json!({ "overlap": 1 }))).await;
    assert_eq!(problem_code(typo).await, "invalid_input");
    // A bare POST (no body), as a CI script sends it, rolls with the default overlap of 24 hours.
    let issued = key_for(&app, USER, None).await.expose().to_owned();
    let bare = app.client.post(app.url("/v1/keys/self/roll")).bearer_auth(&issued).send().await.expect("roll");
    let bare = json_of(bare, StatusCode::CREATED).await;
    assert!(bare["secret"].as_str().is_some_and(|s| s.starts_with("kg_")));
}

async fn two_concurrent_self_rolls_of_one_key_give_one_successor_and_one_audited_refusal(app: TestApp) {
    let old = key_for(&app, USER, None).await.expose().to_owned();
    let before = count_keys(&app).await;
    let body = Some(json!({ "overlapHours": 1 }));
    let (a, b) = tokio::join!(
        call(&app, "POST", "/v1/keys/self/roll", &old, body.clone()),
        call(&app, "POST", "/v1/keys/self/roll", &old, body.clone()),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    assert_eq!(count_keys(&app).await, before + 1, "exactly one successor");
    assert_eq!(audited(&app, "key.roll_refused").await.len(), 1);
    assert_eq!(audited(&app, "key.rolled").await.len(), 1);
}

/// The secrets of `secrets` that a call is accepted with now.
async fn working(app: &TestApp, secrets: &[String]) -> Vec<String> {
    let mut working = Vec::new();
    for secret in secrets {
        if call(app, "GET", "/v1/keys/self", secret, None).await.status() == StatusCode::OK {
            working.push(secret.clone());
        }
    }
    working
}

/// An administrator's roll of key `id` with a week of overlap: the successor's id and secret.
async fn admin_roll(app: &TestApp, admin: &str, id: i64) -> (i64, String) {
    let answer = call(app, "POST", &format!("/v1/keys/{id}/roll"), admin, Some(json!({ "overlapHours": 168 }))).await;
    let rolled = json_of(answer, StatusCode::CREATED).await;
    (rolled["key"]["id"].as_i64().expect("id"), rolled["secret"].as_str().expect("secret").to_owned())
}

/// Moves key `id`'s creation `minutes` into the past, as if it had been made that long ago.
async fn backdate(app: &TestApp, id: i64, minutes: i64) {
    let at = keygate_domain::Timestamp::now().plus_millis(-minutes * 60_000).0;
    let db = app.keygate.store_for_tests();
    let sql = "UPDATE api_keys SET created_at = $1 WHERE id = $2";
    let done = match (keygate_service::testing::sqlite_pool(db), db.postgres_pool()) {
        (Some(pool), _) => sqlx::query(sql).bind(at).bind(id).execute(&pool).await.map(|r| r.rows_affected()),
        (None, Some(pool)) => sqlx::query(sql).bind(at).bind(id).execute(pool).await.map(|r| r.rows_affected()),
        (None, None) => unreachable!("a database is SQLite or PostgreSQL"),
    };
    assert_eq!(done.expect("backdate"), 1);
}

async fn a_key_made_by_a_roll_rolls_itself_only_after_ten_minutes_and_then_ends_its_predecessor(app: TestApp) {
    let first = key_for(&app, USER, None).await.expose().to_owned();
    let rolled = call(&app, "POST", "/v1/keys/self/roll", &first, Some(json!({ "overlapHours": 168 }))).await;
    let rolled = json_of(rolled, StatusCode::CREATED).await;
    let (second_id, second) =
        (rolled["key"]["id"].as_i64().expect("id"), rolled["secret"].as_str().expect("s").to_owned());
    // Made by a roll a moment ago: its own roll is refused, says from when, and is audited.
    let before = count_keys(&app).await;
    let soon = call(&app, "POST", "/v1/keys/self/roll", &second, Some(json!({ "overlapHours": 168 }))).await;
    assert_eq!(soon.status(), StatusCode::CONFLICT);
    let why: Value = soon.json().await.expect("problem");
    let detail = why["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("less than 10 minutes ago") && detail.contains("can roll itself from"), "{why}");
    assert_eq!(count_keys(&app).await, before, "nothing was written");
    assert_eq!(audited(&app, "key.roll_refused").await.len(), 1);
    assert_eq!(working(&app, &[first.clone(), second.clone()]).await.len(), 2, "both still work (the overlap)");
    // Eleven minutes later it may; the first key, still in its week of overlap, stops at once.
    backdate(&app, second_id, 11).await;
    let third = call(&app, "POST", "/v1/keys/self/roll", &second, Some(json!({ "overlapHours": 168 }))).await;
    let third = json_of(third, StatusCode::CREATED).await["secret"].as_str().expect("secret").to_owned();
    assert_eq!(working(&app, &[first.clone(), second.clone(), third.clone()]).await, [second, third]);
    assert_eq!(problem_code(call(&app, "GET", "/v1/keys/self", &first, None).await).await, "key_expired");
    let rolls = audited(&app, "key.rolled").await;
    assert!(rolls.iter().any(|e| e.contains("ended now")), "the roll names the key it ended: {rolls:?}");
}

async fn a_line_of_rolls_never_has_more_than_two_working_keys_and_revoking_those_two_ends_it(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await.expose().to_owned();
    let start = key_for(&app, USER, None).await;
    let start_id = json_of(call(&app, "GET", "/v1/keys/self", start.expose(), None).await, StatusCode::OK).await["id"]
        .as_i64()
        .expect("id");
    // Every secret the line ever had, by id; each roll keeps a week of overlap.
    let mut line: Vec<(i64, String)> = vec![(start_id, start.expose().to_owned())];
    for round in 0..6 {
        // Roll the newest key, or (every third round) roll again the key before it.
        let target = if round % 3 == 2 && line.len() >= 2 { line[line.len() - 2].0 } else { line[line.len() - 1].0 };
        let (id, secret) = admin_roll(&app, &admin, target).await;
        line.push((id, secret.clone()));
        let secrets: Vec<String> = line.iter().map(|(_, s)| s.clone()).collect();
        let now = working(&app, &secrets).await;
        assert!(now.len() <= 2, "round {round}: {} keys of one line work", now.len());
        assert!(now.contains(&secret), "round {round}: the newest key works");
    }
    // Revoking the two that work ends the line: no secret it ever had is accepted.
    let secrets: Vec<String> = line.iter().map(|(_, s)| s.clone()).collect();
    for secret in working(&app, &secrets).await {
        let id = line.iter().find(|(_, s)| *s == secret).expect("in the line").0;
        let revoked = call(&app, "POST", &format!("/v1/keys/{id}/revoke"), &admin, None).await;
        assert_eq!(revoked.status(), StatusCode::OK, "{}", revoked.text().await.unwrap_or_default());
    }
    assert_eq!(working(&app, &secrets).await, Vec::<String>::new());
}

async fn concurrent_rolls_along_one_line_never_leave_more_than_two_working_keys(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await.expose().to_owned();
    let start = key_for(&app, USER, None).await.expose().to_owned();
    let start_id = json_of(call(&app, "GET", "/v1/keys/self", &start, None).await, StatusCode::OK).await["id"]
        .as_i64()
        .expect("id");
    let (next_id, next) = admin_roll(&app, &admin, start_id).await;
    let mut line = vec![(start_id, start), (next_id, next)];
    let roll = |id: i64| {
        let (app, admin) = (&app, &admin);
        async move {
            let path = format!("/v1/keys/{id}/roll");
            let answer = call(app, "POST", &path, admin, Some(json!({ "overlapHours": 168 }))).await;
            match answer.status() {
                StatusCode::CREATED => {
                    let rolled: Value = answer.json().await.expect("json");
                    Ok((rolled["key"]["id"].as_i64().expect("id"), rolled["secret"].as_str().expect("s").to_owned()))
                }
                other => Err((other, problem_code(answer).await)),
            }
        }
    };
    for round in 0..8 {
        // The two keys that work, rolled at the same time: whichever roll comes first ends the
        // other key, so the other roll finds no working key to roll.
        let (older, newer) = (line[line.len() - 2].0, line[line.len() - 1].0);
        let (a, b) = tokio::join!(roll(older), roll(newer));
        let (new, refusal) = match (a, b) {
            (Ok(new), Err(refusal)) | (Err(refusal), Ok(new)) => (new, refusal),
            other => panic!("round {round}: one roll must win and one be refused, got {other:?}"),
        };
        let refused_as = [
            (StatusCode::CONFLICT, "conflict".to_owned()), // the other roll came first, inside the write
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input".to_owned()), // … or before the caller looked
        ];
        assert!(refused_as.contains(&refusal), "round {round}: {refusal:?}");
        line.push(new.clone());
        let secrets: Vec<String> = line.iter().map(|(_, s)| s.clone()).collect();
        let now = working(&app, &secrets).await;
        assert_eq!(now.len(), 2, "round {round}: the key rolled and its successor work, nothing else");
        assert!(now.contains(&new.1), "round {round}: the successor works");
        // Go on from the two that work, oldest first.
        let mut alive: Vec<(i64, String)> = line.iter().filter(|(_, s)| now.contains(s)).cloned().collect();
        alive.sort();
        line.retain(|k| !alive.contains(k));
        line.extend(alive);
    }
}

async fn a_key_of_one_tenant_never_sees_or_touches_a_key_of_another(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await.expose().to_owned();
    let beta = app.keygate.create_tenant(&Caller::CLI, "beta", "admin@beta.example", None).await.expect("tenant");
    app.keygate.set_public_api(&Caller::CLI, beta.tenant, true).await.expect("api on");
    let theirs = app
        .keygate
        .issue_key(
            &Caller::CLI,
            beta.tenant,
            keygate_service::IssueKey {
                owner: keygate_service::KeyOwner::Email("admin@beta.example".into()),
                purpose: "beta".into(),
                ip_ranges: vec!["127.0.0.0/8".into()],
                ..Default::default()
            },
        )
        .await
        .expect("issue");
    let id = theirs.record.id.0;
    for (method, path, body) in [
        ("GET", format!("/v1/keys/{id}"), None),
        ("GET", format!("/v1/keys/{id}/usage"), None),
        ("PATCH", format!("/v1/keys/{id}"), Some(json!({ "purpose": "mine" }))),
        ("POST", format!("/v1/keys/{id}/disable"), None),
        ("POST", format!("/v1/keys/{id}/revoke"), None),
        ("POST", format!("/v1/keys/{id}/roll"), Some(json!({}))),
        ("POST", "/v1/keys/bulk".to_owned(), Some(json!({ "action": "disable", "items": [{ "id": id }] }))),
    ] {
        let answer = call(&app, method, &path, &admin, body).await;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(problem_code(answer).await, "not_found");
    }
    let issue_there = call(&app, "POST", "/v1/keys", &admin, Some(issue_body(beta.admin, "cross"))).await;
    assert_eq!(issue_there.status(), StatusCode::NOT_FOUND, "a user of another tenant is not found");
    let listed = json_of(call(&app, "GET", "/v1/keys?limit=200", &admin, None).await, StatusCode::OK).await;
    assert!(listed["items"].as_array().expect("items").iter().all(|k| k["id"] != id));
    assert_eq!(app.capability(theirs.secret.expose()).await.status(), StatusCode::OK, "their key still works");
}

async fn the_usage_of_a_key_counts_accepted_and_refused_calls_per_day(app: TestApp) {
    let admin = key_for(&app, ADMIN, None).await.expose().to_owned();
    let (id, secret) = app.issue(&["127.0.0.1/32"], None).await;
    for _ in 0..3 {
        assert_eq!(app.capability(secret.expose()).await.status(), StatusCode::OK);
    }
    app.keygate.flush().await;
    let usage = call(&app, "GET", &format!("/v1/keys/{}/usage?days=7", id.0), &admin, None).await;
    let usage = json_of(usage, StatusCode::OK).await;
    let days = usage["days"].as_array().expect("days");
    assert_eq!(days.len(), 7);
    assert_eq!(days[6]["date"], usage["to"]);
    assert_eq!(usage["totals"]["accepted"], 3);
    assert_eq!(usage["lastUsedIp"], "127.0.0.1");
    let over = call(&app, "GET", &format!("/v1/keys/{}/usage?days=367", id.0), &admin, None).await;
    assert_eq!(problem_code(over).await, "invalid_parameter");
}
