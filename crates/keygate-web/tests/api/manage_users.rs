//! The management API's users, groups, units and settings (issue 21), over real HTTP on SQLite
//! and PostgreSQL: what a User configurator's key may do, what the grant ceiling refuses with
//! nothing written, `If-Match`, cursor paging with `Link`, all-or-nothing settings and tenant
//! isolation.

use keygate_domain::{ApiKeySecret, TenantId, UnitId};
use keygate_service::{AuditFilter, Backend, Caller, CreateUser, IssueKey, KeyOwner};
use serde_json::{Value, json};

use crate::helpers::{TestApp, key_for, problem_code, spawn_app_on};

on_both_backends!(
    a_user_configurator_key_manages_a_programmatic_user_from_creation_to_reactivation,
    adding_a_user_to_a_group_beyond_the_key_is_refused_with_nothing_written,
    giving_a_group_grants_beyond_the_key_is_refused_with_nothing_written,
    making_a_programmatic_user_personal_is_judged_as_what_it_gains,
    paging_with_link_returns_every_user_exactly_once,
    a_settings_change_with_one_bad_field_changes_nothing,
    a_key_of_another_tenant_finds_none_of_this_tenants_users_groups_or_units,
    a_user_created_inactive_is_written_inactive_in_the_one_write_that_creates_them,
    a_rename_raced_by_a_new_group_of_that_name_is_refused_with_the_grants_unchanged,
    a_user_created_with_a_password_the_key_chose_is_judged_as_a_hand_over_of_all_they_will_hold,
    only_a_key_that_reaches_every_unit_creates_or_deletes_a_unit,
    a_unit_creation_racing_the_narrowing_of_its_creators_units_never_lands_after_it,
    a_group_named_to_pass_for_a_system_group_is_refused_and_not_written,
);

/// A programmatic user `email` in `groups` (made by the command line) and an unscoped key of it.
async fn actor(app: &TestApp, email: &str, groups: &[&str]) -> ApiKeySecret {
    let new = CreateUser {
        email: email.into(),
        name: "Ops".into(),
        category: "programmatic".into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..CreateUser::default()
    };
    app.keygate.create_user(&Caller::CLI, app.tenant, new).await.expect("actor");
    key_for(app, email, None).await
}

async fn call(app: &TestApp, method: &str, path: &str, key: &ApiKeySecret, body: Option<Value>) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = app.client.request(method, app.url(path)).bearer_auth(key.expose());
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

async fn group_id(app: &TestApp, name: &str) -> i64 {
    let groups = app.keygate.list_groups(&Caller::CLI, app.tenant).await.expect("groups");
    groups.iter().find(|g| g.name == name).expect("group").id.0
}

async fn a_user_configurator_key_manages_a_programmatic_user_from_creation_to_reactivation(app: TestApp) {
    let ops = actor(&app, "ops@acme.example", &["User configurator", "Readers"]).await;
    // Re-activation hands the user over, own records included: the user's group gives only what
    // the key holds in every unit.
    let group =
        call(&app, "POST", "/v1/groups", &ops, Some(json!({"name": "Invoices", "grants": ["invoices:read:all"]})))
            .await;
    let group = ok_json(group, 201).await;
    assert_eq!((group["system"].clone(), group["members"].clone()), (json!(false), json!([])));
    let created = call(
        &app,
        "POST",
        "/v1/users",
        &ops,
        Some(json!({"email": "ci@acme.example", "name": "CI", "category": "programmatic", "groups": ["Invoices"],
                    "password": "correct horse battery staple"})),
    )
    .await;
    assert!(created.headers().contains_key("etag"));
    let user = ok_json(created, 201).await;
    assert_eq!(user["groups"], json!(["Invoices"]));
    assert_eq!(user["category"], "programmatic");
    assert_eq!(user["active"], true);
    assert_eq!(user["hasPassword"], true);
    assert_eq!(user["units"], Value::Null, "every unit");
    assert!(user.get("password").is_none() && !user.to_string().contains("horse"), "{user}");
    let id = user["id"].as_i64().expect("id");

    // A second unit, then the user moves to it and out of every group.
    let unit = ok_json(call(&app, "POST", "/v1/units", &ops, Some(json!({"name": "Branch"}))).await, 201).await;
    assert_eq!(unit, json!({"id": 2, "name": "Branch"}));
    let path = format!("/v1/users/{id}");
    let changed = ok_json(
        call(&app, "PATCH", &path, &ops, Some(json!({"groups": [], "units": [2], "name": "CI bot"}))).await,
        200,
    )
    .await;
    assert_eq!((changed["groups"].clone(), changed["units"].clone()), (json!([]), json!([2])));
    assert_eq!(changed["name"], "CI bot");
    let back =
        ok_json(call(&app, "PATCH", &path, &ops, Some(json!({"groups": ["invoices"], "units": null}))).await, 200)
            .await;
    assert_eq!((back["groups"].clone(), back["units"].clone()), (json!(["Invoices"]), Value::Null));

    // The user's key works, stops on the next request after the deactivation, works again after.
    let issued = app
        .keygate
        .issue_key(
            &Caller::CLI,
            app.tenant,
            IssueKey {
                owner: KeyOwner::Id(keygate_domain::UserId(id)),
                purpose: "ci".into(),
                ip_ranges: vec!["127.0.0.0/8".into()],
                rate_limit_per_minute: Some(1_000_000),
                ..IssueKey::default()
            },
        )
        .await
        .expect("issue");
    let ci_key = issued.secret.expose().to_owned();
    assert_eq!(app.capability(&ci_key).await.status(), 200);
    let keys = ok_json(call(&app, "GET", &format!("{path}/keys"), &ops, None).await, 403).await;
    assert_eq!(keys["code"], "forbidden", "a User configurator alone does not read keys: {keys}");
    let off = ok_json(call(&app, "POST", &format!("{path}/deactivate"), &ops, None).await, 200).await;
    assert_eq!(off["active"], false);
    let refused = app.capability(&ci_key).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(problem_code(refused).await, "user_inactive");
    let on = ok_json(call(&app, "POST", &format!("{path}/activate"), &ops, None).await, 200).await;
    assert_eq!(on["active"], true);
    assert_eq!(app.capability(&ci_key).await.status(), 200);

    // The password goes away with a 204 and appears in no audit detail.
    let removed = call(&app, "DELETE", &format!("{path}/password"), &ops, None).await;
    assert_eq!(removed.status(), 204);
    assert!(removed.text().await.expect("body").is_empty());
    let now = ok_json(call(&app, "GET", &path, &ops, None).await, 200).await;
    assert_eq!(now["hasPassword"], false);
    let filter = AuditFilter { action: Some("user.".into()), limit: 100, ..AuditFilter::default() };
    let events = app.keygate.audit_log(&Caller::CLI, app.tenant, &filter).await.expect("audit");
    assert!(events.len() >= 5, "{events:?}");
    assert!(events.iter().all(|e| !e.details.contains("horse")), "{events:?}");

    // An administrator's key (Configurator too) reads the user's keys in the Key wire format.
    let admin = key_for(&app, "admin@acme.example", None).await;
    let keys = ok_json(call(&app, "GET", &format!("{path}/keys"), &admin, None).await, 200).await;
    assert_eq!(keys["items"].as_array().map(Vec::len), Some(1), "{keys}");
    assert_eq!(keys["items"][0]["user"]["email"], "ci@acme.example");
    assert_eq!(keys["items"][0]["status"], "active");
    assert_eq!(keys["items"][0]["ipRanges"], json!(["127.0.0.0/8"]));
}

/// A key whose user lacks the power, or whose scopes do not name it, is `403 forbidden`.
#[tokio::test]
async fn a_key_without_the_user_configurator_power_is_forbidden() {
    let app = spawn_app_on(Backend::Sqlite, Default::default()).await.expect("sqlite");
    let reader = key_for(&app, crate::helpers::USER, None).await;
    for (method, path) in [("GET", "/v1/users"), ("GET", "/v1/groups"), ("GET", "/v1/units"), ("GET", "/v1/settings")] {
        let r = call(&app, method, path, &reader, None).await;
        assert_eq!(r.status(), 403, "{method} {path}");
        assert_eq!(problem_code(r).await, "forbidden");
    }
    let body = json!({"email": "x@acme.example", "name": "X", "category": "programmatic"});
    let r = call(&app, "POST", "/v1/users", &reader, Some(body.clone())).await;
    assert_eq!(problem_code(r).await, "forbidden");
    // An administrator's key scoped to reading keys may not create users.
    let scoped = key_for(&app, "admin@acme.example", Some(&["admin:keys:read"])).await;
    let r = call(&app, "POST", "/v1/users", &scoped, Some(body)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_code(r).await, "forbidden");
    let users = app.keygate.list_users(&Caller::CLI, app.tenant).await.expect("users");
    assert_eq!(users.len(), 2, "nothing was created");
}

/// `POST /v1/users` with `active: false` used to create the user active and deactivate them in a
/// second write: a failure between the two left an active user that was asked for inactive.
async fn a_user_created_inactive_is_written_inactive_in_the_one_write_that_creates_them(app: TestApp) {
    let ops = actor(&app, "ops@acme.example", &["User configurator"]).await;
    let body = json!({"email": "later@acme.example", "name": "Later", "category": "programmatic", "active": false});
    let user = ok_json(call(&app, "POST", "/v1/users", &ops, Some(body)).await, 201).await;
    assert_eq!(user["active"], false, "{user}");
    let filter = AuditFilter { action: Some("user.".into()), limit: 100, ..AuditFilter::default() };
    let events: Vec<(String, String)> = app
        .keygate
        .audit_log(&Caller::CLI, app.tenant, &filter)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.target.contains("later@acme.example"))
        .map(|e| (e.action, e.details))
        .collect();
    assert_eq!(events.len(), 1, "one write, one event: {events:?}");
    assert_eq!(events[0].0, "user.created");
    assert!(events[0].1.contains("inactive"), "{events:?}");
    let read = ok_json(call(&app, "GET", &format!("/v1/users/{}", user["id"]), &ops, None).await, 200).await;
    assert_eq!(read["active"], false, "{read}");
}

/// `PATCH /v1/groups/{id}` with a name and grants used to write the grants, then rename in a
/// second write: a group created with that name between the two left the grants changed under a
/// `409` that said nothing was. Each round sends the rename and a new group of that name at once.
async fn a_rename_raced_by_a_new_group_of_that_name_is_refused_with_the_grants_unchanged(app: TestApp) {
    let ops = actor(&app, "ops@acme.example", &["User configurator", "Readers"]).await;
    let pool = ok_json(
        call(&app, "POST", "/v1/groups", &ops, Some(json!({"name": "Pool", "grants": ["invoices:read:all"]}))).await,
        201,
    )
    .await;
    let path = format!("/v1/groups/{}", pool["id"]);
    let (mut renamed, mut refused) = (0, 0);
    for round in 0..40 {
        let before = ok_json(call(&app, "GET", &path, &ops, None).await, 200).await;
        let grants = if before["grants"] == json!([]) { json!(["invoices:read:all"]) } else { json!([]) };
        let name = format!("Race {round}");
        let (patched, created) = tokio::join!(
            call(&app, "PATCH", &path, &ops, Some(json!({"name": name, "grants": grants}))),
            call(&app, "POST", "/v1/groups", &ops, Some(json!({"name": name, "grants": []}))),
        );
        let (patched, created) = (patched.status().as_u16(), created.status().as_u16());
        let after = ok_json(call(&app, "GET", &path, &ops, None).await, 200).await;
        match (patched, created) {
            (200, 409) => {
                renamed += 1;
                assert_eq!((&after["name"], &after["grants"]), (&json!(name), &grants), "round {round}");
            }
            (409, 201) => {
                refused += 1;
                assert_eq!(after, before, "round {round}: the rename was refused, so nothing may have changed");
            }
            other => panic!("round {round}: PATCH and POST answered {other:?}"),
        }
    }
    eprintln!("{renamed} rounds renamed the group, {refused} found the name taken");
}

async fn adding_a_user_to_a_group_beyond_the_key_is_refused_with_nothing_written(app: TestApp) {
    let ops = actor(&app, "ops@acme.example", &["User configurator"]).await;
    let body = json!({"email": "new@acme.example", "name": "New", "category": "programmatic", "groups": ["Readers"]});
    let r = call(&app, "POST", "/v1/users", &ops, Some(body)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_code(r).await, "grant_exceeds_actor");
    let found = ok_json(call(&app, "GET", "/v1/users?q=new%40acme", &ops, None).await, 200).await;
    assert_eq!(found["items"], json!([]), "no user was created");

    let plain = CreateUser {
        email: "plain@acme.example".into(),
        name: "Plain".into(),
        category: "programmatic".into(),
        ..CreateUser::default()
    };
    let id = app.keygate.create_user(&Caller::CLI, app.tenant, plain).await.expect("user").0;
    let path = format!("/v1/users/{id}");
    let r = call(&app, "PATCH", &path, &ops, Some(json!({"groups": ["Readers"], "name": "Renamed"}))).await;
    assert_eq!(problem_code(r).await, "grant_exceeds_actor");
    let after = ok_json(call(&app, "GET", &path, &ops, None).await, 200).await;
    assert_eq!((after["groups"].clone(), after["name"].clone()), (json!([]), json!("Plain")), "nothing changed");
    let filter = AuditFilter { action: Some("grant.refused".into()), limit: 10, ..AuditFilter::default() };
    let refused = app.keygate.audit_log(&Caller::CLI, app.tenant, &filter).await.expect("audit");
    assert_eq!(refused.len(), 2, "each refusal is audited: {refused:?}");
}

async fn giving_a_group_grants_beyond_the_key_is_refused_with_nothing_written(app: TestApp) {
    let ops = actor(&app, "ops@acme.example", &["User configurator", "Readers"]).await;
    let readers = group_id(&app, "Readers").await;
    let path = format!("/v1/groups/{readers}");
    let before = ok_json(call(&app, "GET", &path, &ops, None).await, 200).await;
    assert_eq!(before["grants"], json!(["invoices:read:all", "jobs:read:own"]));
    assert_eq!(before["system"], false);
    let wider = json!({"grants": ["invoices:read:all", "jobs:read:own", "companies:write:all"], "name": "Wide"});
    let r = call(&app, "PATCH", &path, &ops, Some(wider)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_code(r).await, "grant_exceeds_actor");
    let after = ok_json(call(&app, "GET", &path, &ops, None).await, 200).await;
    assert_eq!(after, before, "neither the grants nor the name changed");
    let r = call(&app, "POST", "/v1/groups", &ops, Some(json!({"name": "Writers", "grants": ["companies:write:all"]})))
        .await;
    assert_eq!(problem_code(r).await, "grant_exceeds_actor");

    // A name another group holds is refused, and the grants written with it are not.
    call(&app, "POST", "/v1/groups", &ops, Some(json!({"name": "Taken", "grants": []}))).await;
    let r = call(&app, "PATCH", &path, &ops, Some(json!({"grants": ["invoices:read:all"], "name": "taken"}))).await;
    assert_eq!(r.status(), 409);
    let after = ok_json(call(&app, "GET", &path, &ops, None).await, 200).await;
    assert_eq!(after, before, "the grants did not change for a rename that could not be");

    // Within the key's powers: narrowing and renaming work, and a group is deleted only by force.
    let narrowed = ok_json(
        call(&app, "PATCH", &path, &ops, Some(json!({"grants": ["invoices:read:all"], "name": "Invoices"}))).await,
        200,
    )
    .await;
    assert_eq!(
        (narrowed["name"].clone(), narrowed["grants"].clone()),
        (json!("Invoices"), json!(["invoices:read:all"]))
    );
    let r = call(&app, "DELETE", &path, &ops, None).await;
    assert_eq!(r.status(), 409, "a group with members stays");
    let r = call(&app, "DELETE", &format!("{path}?force=yes"), &ops, None).await;
    assert_eq!(problem_code(r).await, "invalid_parameter");
    assert_eq!(call(&app, "DELETE", &format!("{path}?force=true"), &ops, None).await.status(), 204);
    assert_eq!(call(&app, "GET", &path, &ops, None).await.status(), 404);
}

/// `If-Match` with the version read before someone else's change is `412`, and writes nothing.
#[tokio::test]
async fn an_update_with_a_stale_if_match_is_412_and_writes_nothing() {
    let app = spawn_app_on(Backend::Sqlite, Default::default()).await.expect("sqlite");
    let ops = actor(&app, "ops@acme.example", &["User configurator", "Readers"]).await;
    let path = format!("/v1/users/{}", app.user.0);
    let read = call(&app, "GET", &path, &ops, None).await;
    let tag = read.headers().get("etag").expect("etag").to_str().expect("text").to_owned();
    let first = app
        .client
        .patch(app.url(&path))
        .bearer_auth(ops.expose())
        .header("if-match", &tag)
        .json(&json!({"name": "First"}))
        .send()
        .await
        .expect("request");
    assert_eq!(first.status(), 200);
    let second = app
        .client
        .patch(app.url(&path))
        .bearer_auth(ops.expose())
        .header("if-match", &tag)
        .json(&json!({"name": "Second"}))
        .send()
        .await
        .expect("request");
    assert_eq!(second.status(), 412);
    assert_eq!(problem_code(second).await, "precondition_failed");
    let now = ok_json(call(&app, "GET", &path, &ops, None).await, 200).await;
    assert_eq!(now["name"], "First");
    let unit = app
        .client
        .patch(app.url("/v1/units/1"))
        .bearer_auth(ops.expose())
        .header("if-match", "\"000000000000000000000000\"")
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .expect("request");
    assert_eq!(unit.status(), 412);
}

async fn paging_with_link_returns_every_user_exactly_once(app: TestApp) {
    for n in 0..7 {
        let new = CreateUser {
            email: format!("bot{n}@acme.example"),
            name: format!("Bot {n}"),
            category: "programmatic".into(),
            ..CreateUser::default()
        };
        app.keygate.create_user(&Caller::CLI, app.tenant, new).await.expect("user");
    }
    let ops = actor(&app, "ops@acme.example", &["User configurator"]).await;
    // admin, erp, 7 bots and ops: 10 users, 2 a page: 5 pages.
    let mut next = Some(app.url("/v1/users?limit=2"));
    let (mut seen, mut pages) = (Vec::new(), 0);
    while let Some(url) = next.take() {
        let r = app.client.get(&url).bearer_auth(ops.expose()).send().await.expect("request");
        let link = r.headers().get("link").map(|l| l.to_str().expect("text").to_owned());
        let page = ok_json(r, 200).await;
        pages += 1;
        seen.extend(page["items"].as_array().expect("items").iter().map(|u| u["id"].as_i64().expect("id")));
        assert_eq!(link.is_some(), !page["nextCursor"].is_null(), "{page}");
        next = link.map(|l| {
            let target = l.trim_start_matches('<').split('>').next().expect("target").to_owned();
            assert!(target.contains("limit=2"), "{target}");
            app.url(&target)
        });
        assert!(pages <= 6, "the paging never ends");
    }
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!((seen.len(), unique.len(), pages), (10, 10, 5), "{seen:?}");

    let bots =
        ok_json(call(&app, "GET", "/v1/users?q=BOT&category=programmatic&limit=200", &ops, None).await, 200).await;
    assert_eq!(bots["items"].as_array().map(Vec::len), Some(7));
    let personal = ok_json(call(&app, "GET", "/v1/users?category=personal&active=true", &ops, None).await, 200).await;
    assert_eq!(personal["items"].as_array().map(Vec::len), Some(1), "the administrator");
    let wild = ok_json(call(&app, "GET", "/v1/users?q=%25", &ops, None).await, 200).await;
    assert_eq!(wild["items"], json!([]), "`%` is a character, not a wildcard");
    for (query, code) in [
        ("limit=0", "invalid_parameter"),
        ("limit=201", "invalid_parameter"),
        ("cursor=x", "invalid_parameter"),
        ("active=yes", "invalid_parameter"),
        ("sort=name", "unknown_parameter"),
    ] {
        let r = call(&app, "GET", &format!("/v1/users?{query}"), &ops, None).await;
        assert_eq!(r.status(), 400, "{query}");
        assert_eq!(problem_code(r).await, code, "{query}");
    }
}

async fn a_settings_change_with_one_bad_field_changes_nothing(app: TestApp) {
    let admin = key_for(&app, "admin@acme.example", None).await;
    let before = ok_json(call(&app, "GET", "/v1/settings", &admin, None).await, 200).await;
    assert_eq!(before["publicApi"], true);
    assert_eq!(before["maxKeyLifetimeDays"], Value::Null);
    let bad =
        json!({"publicApi": false, "ipWhitelist": ["10.0.0.0/8"], "rateLimitPerMinute": 0, "maxKeyLifetimeDays": 30});
    let r = call(&app, "PATCH", "/v1/settings", &admin, Some(bad)).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.expect("json");
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("rateLimitPerMinute")), "{problem}");
    // `null` where a value must be is refused before anything else is looked at, even with a
    // stale If-Match (it read as "absent" and met the 412 first; schemathesis ST201).
    let r = app
        .client
        .patch(app.url("/v1/settings"))
        .bearer_auth(admin.expose())
        .header("if-match", "\"9b2f6c0e41d7a35c8e10f4b2\"")
        .json(&json!({"rateLimitPerMinute": null}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422, "null is not a rate limit");
    let r = app
        .client
        .patch(app.url("/v1/settings"))
        .bearer_auth(admin.expose())
        .header("if-match", "\"9b2f6c0e41d7a35c8e10f4b2\"")
        .json(&json!({"rateLimitPerMinute": 0}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422, "a bad value is named before a stale version (schemathesis ST201)");
    // The key still works (the API stayed on, the whitelist did not change): nothing was written.
    let after = ok_json(call(&app, "GET", "/v1/settings", &admin, None).await, 200).await;
    assert_eq!(after, before);

    let good =
        json!({"rateLimitPerMinute": 120, "maxKeyLifetimeDays": 90, "ipWhitelist": ["127.0.0.0/8", "10.0.0.0/8"]});
    let changed = ok_json(call(&app, "PATCH", "/v1/settings", &admin, Some(good)).await, 200).await;
    assert_eq!(
        changed,
        json!({"publicApi": true, "ipWhitelist": ["127.0.0.0/8", "10.0.0.0/8"], "rateLimitPerMinute": 120, "maxKeyLifetimeDays": 90})
    );
    let none =
        ok_json(call(&app, "PATCH", "/v1/settings", &admin, Some(json!({"maxKeyLifetimeDays": null}))).await, 200)
            .await;
    assert_eq!(none["maxKeyLifetimeDays"], Value::Null);
    assert_eq!(none["rateLimitPerMinute"], 120, "an absent field stays");
    // A User configurator's key has no power over settings.
    let ops = actor(&app, "ops@acme.example", &["User configurator"]).await;
    let r = call(&app, "PATCH", "/v1/settings", &ops, Some(json!({"rateLimitPerMinute": 5}))).await;
    assert_eq!(problem_code(r).await, "forbidden");
}

async fn a_key_of_another_tenant_finds_none_of_this_tenants_users_groups_or_units(app: TestApp) {
    let other = app.keygate.create_tenant(&Caller::CLI, "globex", "admin@globex.example", None).await.expect("tenant");
    app.keygate.set_public_api(&Caller::CLI, other.tenant, true).await.expect("api on");
    let key = globex_key(&app, other.tenant).await;
    let readers = group_id(&app, "Readers").await;
    app.keygate.create_unit(&Caller::CLI, app.tenant, Some(77), "Acme only").await.expect("unit");
    let erp = app.user.0;
    for (method, path, body) in [
        ("GET", format!("/v1/users/{erp}"), None),
        ("PATCH", format!("/v1/users/{erp}"), Some(json!({"name": "Taken"}))),
        ("POST", format!("/v1/users/{erp}/deactivate"), None),
        ("DELETE", format!("/v1/users/{erp}/password"), None),
        ("GET", format!("/v1/users/{erp}/keys"), None),
        ("GET", format!("/v1/groups/{readers}"), None),
        ("PATCH", format!("/v1/groups/{readers}"), Some(json!({"grants": []}))),
        ("DELETE", format!("/v1/groups/{readers}?force=true"), None),
        ("GET", "/v1/units/77".to_owned(), None),
        ("PATCH", "/v1/units/77".to_owned(), Some(json!({"name": "Taken"}))),
        ("DELETE", "/v1/units/77".to_owned(), None),
    ] {
        let r = call(&app, method, &path, &key, body).await;
        assert_eq!(r.status(), 404, "{method} {path}");
        assert_eq!(problem_code(r).await, "not_found", "{method} {path}");
    }
    let erp_now = app.keygate.user_by_id(app.tenant, app.user).await.expect("erp");
    assert!(erp_now.active && erp_now.name == "ERP");
    let units = app.keygate.list_units(&Caller::CLI, app.tenant).await.expect("units");
    assert!(units.contains(&(UnitId(77), "Acme only".to_owned())));
    let listed = ok_json(call(&app, "GET", "/v1/users", &key, None).await, 200).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "globex's administrator alone: {listed}");
}

async fn globex_key(app: &TestApp, tenant: TenantId) -> ApiKeySecret {
    app.keygate
        .issue_key(
            &Caller::CLI,
            tenant,
            IssueKey {
                owner: KeyOwner::Email("admin@globex.example".into()),
                purpose: "isolation".into(),
                ip_ranges: vec!["127.0.0.0/8".into()],
                rate_limit_per_minute: Some(1_000_000),
                ..IssueKey::default()
            },
        )
        .await
        .expect("issue")
        .secret
}

/// A personal user also reaches their own records: turning a programmatic user personal is judged
/// as a hand-over (refused for a key that lacks any of the user's powers, nothing written).
async fn making_a_programmatic_user_personal_is_judged_as_what_it_gains(app: TestApp) {
    let ops = actor(&app, "ops@acme.example", &["User configurator", "Readers"]).await;
    let path = format!("/v1/users/{}", app.user.0);
    let r = call(&app, "PATCH", &path, &ops, Some(json!({"category": "personal", "name": "ERP person"}))).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_code(r).await, "grant_exceeds_actor");
    let after = ok_json(call(&app, "GET", &path, &ops, None).await, 200).await;
    assert_eq!((after["category"].clone(), after["name"].clone()), (json!("programmatic"), json!("ERP")));
    // A Supervisor's key holds every power: the same change passes, and the name with it.
    let admin = key_for(&app, "admin@acme.example", None).await;
    let changed = call(&app, "PATCH", &path, &admin, Some(json!({"category": "personal", "name": "ERP person"}))).await;
    let changed = ok_json(changed, 200).await;
    assert_eq!((changed["category"].clone(), changed["name"].clone()), (json!("personal"), json!("ERP person")));
    let r = call(&app, "PATCH", &path, &admin, Some(json!({"category": "robot"}))).await;
    assert_eq!(problem_code(r).await, "invalid_input");
}

async fn a_user_created_with_a_password_the_key_chose_is_judged_as_a_hand_over_of_all_they_will_hold(app: TestApp) {
    // A programmatic User configurator holds no one's own records; a personal user reaches theirs.
    let ops = actor(&app, "ops@acme.example", &["User configurator", "Readers"]).await;
    let password = "Chosen-by-ops-123";
    let personal = |email: &str, password: Option<&str>| {
        let mut body = json!({"email": email, "name": "Mole", "category": "personal", "groups": []});
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        body
    };
    for units in [None, Some(json!([1]))] {
        let mut body = personal("mole@acme.example", Some(password));
        if let Some(units) = units {
            body["units"] = units;
        }
        let r = call(&app, "POST", "/v1/users", &ops, Some(body.clone())).await;
        assert_eq!(r.status(), 403, "{body}");
        assert_eq!(problem_code(r).await, "grant_exceeds_actor");
    }
    let users = app.keygate.list_users(&Caller::CLI, app.tenant).await.expect("users");
    assert!(!users.iter().any(|u| u.email == "mole@acme.example"), "the refused user was written");
    // Without a password nobody can log in as them (setting one later is judged): allowed.
    let r = call(&app, "POST", "/v1/users", &ops, Some(personal("quiet@acme.example", None))).await;
    let quiet = ok_json(r, 201).await;
    let path = format!("/v1/users/{}/password", quiet["id"]);
    let r = call(&app, "PUT", &path, &ops, Some(json!({"password": password}))).await;
    assert_eq!(problem_code(r).await, "grant_exceeds_actor", "the same hand-over, later");
    // A programmatic user with a password, in a group whose grants the key holds on all records:
    // it hands over nothing the key lacks.
    let grants = vec!["invoices:read:all".to_owned()];
    app.keygate.create_group(&Caller::CLI, app.tenant, "Invoice readers", &grants).await.expect("group");
    let robot = json!({"email": "robot@acme.example", "name": "Robot", "category": "programmatic",
        "groups": ["Invoice readers"], "password": password});
    ok_json(call(&app, "POST", "/v1/users", &ops, Some(robot)).await, 201).await;
    // A Supervisor holds every power: the personal user with a password is created.
    let admin = key_for(&app, "admin@acme.example", None).await;
    ok_json(call(&app, "POST", "/v1/users", &admin, Some(personal("mole@acme.example", Some(password)))).await, 201)
        .await;
}

/// The tenant's unit numbers, by the command line.
async fn unit_ids(app: &TestApp) -> Vec<i64> {
    app.keygate.list_units(&Caller::CLI, app.tenant).await.expect("units").into_iter().map(|(u, _)| u.0).collect()
}

async fn only_a_key_that_reaches_every_unit_creates_or_deletes_a_unit(app: TestApp) {
    app.keygate.create_unit(&Caller::CLI, app.tenant, Some(2), "Two").await.expect("unit 2");
    // A User configurator confined to unit 1: a unit beyond its reach gives everyone who reaches
    // every unit their grants there, which it cannot judge.
    let confined = CreateUser {
        email: "confined@acme.example".into(),
        name: "Confined".into(),
        category: "programmatic".into(),
        groups: vec!["User configurator".into()],
        units: Some(vec![UnitId(1)]),
        ..CreateUser::default()
    };
    app.keygate.create_user(&Caller::CLI, app.tenant, confined).await.expect("user");
    let confined = key_for(&app, "confined@acme.example", None).await;
    let before = unit_ids(&app).await;
    let r = call(&app, "POST", "/v1/units", &confined, Some(json!({"id": 7, "name": "Seven"}))).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_code(r).await, "grant_exceeds_actor");
    let r = call(&app, "DELETE", "/v1/units/2", &confined, None).await;
    assert_eq!(problem_code(r).await, "grant_exceeds_actor");
    assert_eq!(unit_ids(&app).await, before, "nothing was created or deleted");
    // A key narrowed to unit 1, of a user who reaches every unit: the key is confined too.
    actor(&app, "ops@acme.example", &["User configurator"]).await;
    let narrowed = app
        .keygate
        .issue_key(
            &Caller::CLI,
            app.tenant,
            IssueKey {
                owner: KeyOwner::Email("ops@acme.example".into()),
                purpose: "unit one".into(),
                ip_ranges: vec!["127.0.0.0/8".into()],
                units: Some(vec![UnitId(1)]),
                ..IssueKey::default()
            },
        )
        .await
        .expect("key")
        .secret;
    let r = call(&app, "POST", "/v1/units", &narrowed, Some(json!({"id": 7, "name": "Seven"}))).await;
    assert_eq!(problem_code(r).await, "grant_exceeds_actor");
    assert_eq!(unit_ids(&app).await, before);
    // Reaching every unit, the same user's unnarrowed key creates and deletes.
    let ops = key_for(&app, "ops@acme.example", None).await;
    ok_json(call(&app, "POST", "/v1/units", &ops, Some(json!({"id": 7, "name": "Seven"}))).await, 201).await;
    assert_eq!(call(&app, "DELETE", "/v1/units/7", &ops, None).await.status(), 204);
    assert_eq!(unit_ids(&app).await, before);
}

async fn a_unit_creation_racing_the_narrowing_of_its_creators_units_never_lands_after_it(app: TestApp) {
    let ops_id = app
        .keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            CreateUser {
                email: "ops@acme.example".into(),
                name: "Ops".into(),
                category: "programmatic".into(),
                groups: vec!["User configurator".into()],
                ..CreateUser::default()
            },
        )
        .await
        .expect("user");
    let ops = key_for(&app, "ops@acme.example", None).await;
    let admin = key_for(&app, "admin@acme.example", None).await;
    let user_path = format!("/v1/users/{}", ops_id.0);
    let (mut created, mut refused) = (0, 0);
    for round in 0..12 {
        let id = 100 + round;
        let (create, narrow) = tokio::join!(
            call(&app, "POST", "/v1/units", &ops, Some(json!({"id": id, "name": format!("Unit {id}")}))),
            call(&app, "PATCH", &user_path, &admin, Some(json!({"units": [1]}))),
        );
        assert_eq!(narrow.status(), 200, "round {round}");
        let exists = unit_ids(&app).await.contains(&id);
        match create.status().as_u16() {
            201 => {
                created += 1;
                assert!(exists, "round {round}");
            }
            403 => {
                refused += 1;
                assert!(!exists, "round {round}: refused, yet unit {id} exists");
            }
            other => panic!("round {round}: {other}"),
        }
        // The audit log's order is the order the writes took the tenant's lock in: no unit was
        // created after its creator was confined to unit 1.
        let filter = AuditFilter { limit: 1000, ..Default::default() };
        let events = app.keygate.store_for_tests().audit().list(app.tenant, &filter).await.expect("audit");
        let at = |action: &str, target: &str| {
            events.iter().find(|e| e.action == action && e.target.contains(target)).map(|e| e.id)
        };
        if let Some(unit_at) = at("unit.created", &format!("unit {id}")) {
            let narrowed_at = events
                .iter()
                .filter(|e| e.action == "user.units_changed")
                .map(|e| e.id)
                .max()
                .expect("the narrowing was audited");
            assert!(unit_at < narrowed_at, "round {round}: unit {id} was created after its creator was confined");
        }
        // Back to every unit for the next round.
        let widen = call(&app, "PATCH", &user_path, &admin, Some(json!({"units": null}))).await;
        assert_eq!(widen.status(), 200, "round {round}");
    }
    assert_eq!(created + refused, 12);
}

async fn a_group_named_to_pass_for_a_system_group_is_refused_and_not_written(app: TestApp) {
    let ops = actor(&app, "ops@acme.example", &["User configurator", "Readers"]).await;
    let before = app.keygate.list_groups(&Caller::CLI, app.tenant).await.expect("groups").len();
    for name in ["Supervisor\u{200B}", "Supervis\u{43E}r", "\u{421}onfigurator", "User\u{A0}configurator"] {
        let r = call(&app, "POST", "/v1/groups", &ops, Some(json!({"name": name, "grants": []}))).await;
        assert_eq!(r.status(), 422, "{name:?}");
        assert_eq!(problem_code(r).await, "invalid_input", "{name:?}");
    }
    let renamed = call(
        &app,
        "PATCH",
        &format!("/v1/groups/{}", group_id(&app, "Readers").await),
        &ops,
        Some(json!({"name": "Supervis\u{43E}r"})),
    )
    .await;
    assert_eq!(renamed.status(), 422, "a rename is held to the same rule");
    assert_eq!(app.keygate.list_groups(&Caller::CLI, app.tenant).await.expect("groups").len(), before);
    assert!(group_named_exists(&app, "Readers").await, "the refused rename left the name");
}

async fn group_named_exists(app: &TestApp, name: &str) -> bool {
    app.keygate.list_groups(&Caller::CLI, app.tenant).await.expect("groups").iter().any(|g| g.name == name)
}
