//! Issue 21's "Done when", end to end over HTTP on SQLite and PostgreSQL: from one key of a
//! Configurator + User configurator on a fresh tenant, and nothing but HTTP, a group, a
//! programmatic user in it and a key for that user from one range; the key reads a view; a bulk
//! disable of it and of a second key refuses both on the next request; the audit events of every
//! step come back through the API in order, once each, and a poll from the last cursor is empty.

use keygate_service::{AUDIT_SETTLE_MS, Backend, Caller, CreateUser};
use serde_json::{Value, json};

use crate::helpers::{TestApp, key_for, problem_code, spawn_app_on};

on_both_backends!(
    a_configurator_key_sets_up_an_integration_and_switches_it_off_over_http_alone_with_every_step_audited_once
);

/// On PostgreSQL an audit event is served once it is [`AUDIT_SETTLE_MS`] old.
async fn settle(app: &TestApp) {
    if app.keygate.store_for_tests().backend() == Backend::Postgres {
        tokio::time::sleep(std::time::Duration::from_millis(u64::try_from(AUDIT_SETTLE_MS).unwrap_or(0) + 150)).await;
    }
}

async fn call(app: &TestApp, method: &str, path: &str, key: &str, body: Option<Value>) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = app.client.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

async fn ok_json(response: reqwest::Response, status: u16) -> Value {
    let code = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(code, status, "{text}");
    serde_json::from_str(&text).expect("json")
}

/// Every audit event after `cursor`, oldest first, following `nextCursor` page by page (2 a
/// page, so that paging itself is exercised); the last id seen (or `cursor` when none).
async fn poll(app: &TestApp, key: &str, cursor: &str) -> (Vec<Value>, String) {
    let mut events = Vec::new();
    let mut after = cursor.to_owned();
    loop {
        let page =
            ok_json(call(app, "GET", &format!("/v1/audit-events?after={after}&limit=2"), key, None).await, 200).await;
        let items = page["items"].as_array().expect("items").clone();
        if let Some(last) = items.last() {
            after = last["id"].as_str().expect("id is a string").to_owned();
        }
        events.extend(items);
        if page["nextCursor"].is_null() {
            return (events, after);
        }
        assert!(events.len() <= 1_000, "a poll that does not end");
    }
}

async fn a_configurator_key_sets_up_an_integration_and_switches_it_off_over_http_alone_with_every_step_audited_once(
    app: TestApp,
) {
    // The one thing made outside HTTP: the administrator's key, as `keygate keys issue` would.
    // Readers holds invoices:read:all, which the new group may then grant (the ceiling).
    let ops_user = CreateUser {
        email: "ops@acme.example".into(),
        name: "Ops".into(),
        category: "programmatic".into(),
        groups: vec!["Configurator".into(), "User configurator".into(), "Readers".into()],
        ..CreateUser::default()
    };
    app.keygate.create_user(&Caller::CLI, app.tenant, ops_user).await.expect("ops user");
    let ops = key_for(&app, "ops@acme.example", None).await;
    let ops = ops.expose();
    settle(&app).await;
    let newest = ok_json(call(&app, "GET", "/v1/audit-events?limit=1", ops, None).await, 200).await;
    let start = newest["items"][0]["id"].as_str().expect("an event exists: the fixture's").to_owned();

    // 1. A group, 2. a programmatic user in it, 3. a key for that user from one range.
    let group =
        call(&app, "POST", "/v1/groups", ops, Some(json!({"name": "Integrations", "grants": ["invoices:read:all"]})));
    let group = ok_json(group.await, 201).await;
    let user = call(
        &app,
        "POST",
        "/v1/users",
        ops,
        Some(
            json!({"email": "erp-sync@acme.example", "name": "ERP sync", "category": "programmatic", "groups": ["Integrations"]}),
        ),
    );
    let user = ok_json(user.await, 201).await;
    assert_eq!((user["category"].clone(), user["groups"].clone()), (json!("programmatic"), json!(["Integrations"])));
    let user_id = user["id"].as_i64().expect("user id");
    let issue = |purpose: &'static str| {
        call(
            &app,
            "POST",
            "/v1/keys",
            ops,
            Some(json!({"user": user_id, "purpose": purpose, "ipRanges": ["127.0.0.0/8"]})),
        )
    };
    let issued = ok_json(issue("erp sync").await, 201).await;
    assert_eq!(issued["key"]["ipRanges"], json!(["127.0.0.0/8"]));
    assert_eq!(issued["key"]["status"], "active");
    let secret = issued["secret"].as_str().expect("secret").to_owned();
    let key_id = issued["key"]["id"].as_i64().expect("key id");
    // 4. The key reads a view its group grants.
    let view = ok_json(call(&app, "GET", "/rest/v1/1/views/invoices.sales?limit=5", &secret, None).await, 200).await;
    assert!(view.is_object(), "{view}");
    // 5. A second key, 6. both disabled in one bulk call.
    let other = ok_json(issue("erp sync, second").await, 201).await;
    let other_secret = other["secret"].as_str().expect("secret").to_owned();
    let other_id = other["key"]["id"].as_i64().expect("key id");
    assert_eq!(app.capability(&other_secret).await.status(), 200);
    let bulk = json!({"action": "disable", "items": [{"id": key_id}, {"id": other_id}]});
    let disabled = ok_json(call(&app, "POST", "/v1/keys/bulk", ops, Some(bulk)).await, 200).await;
    let states: Vec<&str> =
        disabled["items"].as_array().expect("items").iter().map(|k| k["status"].as_str().expect("status")).collect();
    assert_eq!(states, ["disabled", "disabled"]);
    // Refused on the very next request, both of them.
    for s in [&secret, &other_secret] {
        let refused = call(&app, "GET", "/rest/v1/1/views/invoices.sales?limit=5", s, None).await;
        assert_eq!(refused.status(), 401);
        assert_eq!(problem_code(refused).await, "key_disabled");
    }

    // The audit trail of every step, oldest first, once each, through the API.
    settle(&app).await;
    let (events, last) = poll(&app, ops, &start).await;
    let trail: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["action"].as_str().expect("action").to_owned(), e["target"].as_str().expect("target").to_owned()))
        .collect();
    let expected = [
        ("group.created", "group Integrations".to_owned()),
        ("user.created", "user erp-sync@acme.example".to_owned()),
        ("key.issued", format!("key {key_id}")),
        ("key.issued", format!("key {other_id}")),
        ("key.disabled", format!("key {key_id}")),
        ("key.disabled", format!("key {other_id}")),
    ];
    let expected: Vec<(String, String)> = expected.into_iter().map(|(a, t)| (a.to_owned(), t)).collect();
    assert_eq!(trail, expected, "every step once, in order, and nothing else");
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_str().expect("id").parse().expect("integer")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "strictly increasing: {ids:?}");
    assert!(events.iter().all(|e| e["actor"]["kind"] == "key"), "every step by the administrator's key: {events:?}");
    assert_eq!(group["name"], "Integrations");
    // A poll from the last cursor: nothing new.
    let (nothing, same) = poll(&app, ops, &last).await;
    assert!(nothing.is_empty(), "{nothing:?}");
    assert_eq!(same, last);
}
