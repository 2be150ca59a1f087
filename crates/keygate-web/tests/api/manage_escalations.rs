//! The three escalations of docs/design.md §6 (issue 10; see `permissions.rs` for the console and
//! Public API forms of them) tried through the management API (issue 21), on SQLite and
//! PostgreSQL: each is refused with `403 grant_exceeds_actor`, audited as `grant.refused`, and
//! writes nothing. Also what an administrative scope carries: a key scoped `admin:keys:write`
//! gives no key more than itself, and `admin:users:write` is nothing without `User configurator`.

use keygate_domain::{ApiKeySecret, UserId};
use keygate_service::{AuditFilter, Backend, Caller, CreateUser};
use serde_json::{Value, json};

use crate::helpers::{TestApp, key_for, spawn_app_on};

on_both_backends!(
    a_user_configurator_key_cannot_create_a_supervisor_with_a_password_through_the_management_api,
    a_user_configurator_key_cannot_make_a_supervisor_or_deactivate_the_administrator_through_the_management_api,
    a_configurator_key_cannot_issue_a_key_for_a_supervisor_programmatic_user_through_the_management_api,
    a_key_scoped_to_write_keys_cannot_issue_a_key_for_settings_nor_an_unscoped_key,
    a_users_write_scope_without_the_user_configurator_group_is_forbidden,
);

const PASSWORD: &str = "a password long enough";

/// A user `email` made by the command line in `groups`; its id.
async fn user(app: &TestApp, email: &str, groups: &[&str], category: &str) -> UserId {
    let new = CreateUser {
        email: email.into(),
        name: email.into(),
        category: category.into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..CreateUser::default()
    };
    app.keygate.create_user(&Caller::CLI, app.tenant, new).await.expect("user")
}

/// A programmatic user `email` in `groups` and a key of it with `scopes` (`None`: unscoped).
async fn actor(app: &TestApp, email: &str, groups: &[&str], scopes: Option<&[&str]>) -> ApiKeySecret {
    user(app, email, groups, "programmatic").await;
    key_for(app, email, scopes).await
}

async fn call(app: &TestApp, method: &str, path: &str, key: &ApiKeySecret, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = app.client.request(method, app.url(path)).bearer_auth(key.expose());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("json") })
}

/// Asserts a `403 grant_exceeds_actor` whose detail names `lacking`.
fn refused(answer: &(u16, Value), lacking: &str, what: &str) {
    let (status, body) = answer;
    assert_eq!((*status, body["code"].as_str()), (403, Some("grant_exceeds_actor")), "{what}: {body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(lacking), "{what}: the refusal does not name {lacking}: {body}");
    assert!(!detail.contains(PASSWORD), "{what}: a secret in the answer: {body}");
}

/// The `grant.refused` audit events of the tenant, as "actor target: details".
async fn refusals(app: &TestApp) -> Vec<String> {
    let filter = AuditFilter { action: Some("grant.refused".into()), limit: 100, ..AuditFilter::default() };
    let events = app.keygate.store_for_tests().audit().list(app.tenant, &filter).await.expect("audit");
    events.into_iter().map(|e| format!("{} {}: {}", e.actor_label, e.target, e.details)).collect()
}

/// What a refused call must leave alone: the users (with groups, units, activity and whether a
/// password is set) and the keys.
async fn written(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let users = app.keygate.list_users(&Caller::CLI, app.tenant).await.expect("users");
    let mut out = Vec::new();
    for u in users {
        let email = keygate_domain::Email::parse(&u.email).expect("a stored email parses");
        let login = app.keygate.store_for_tests().users().login_record(app.tenant, &email).await.expect("login");
        let has_password = login.is_some_and(|(_, hash, _)| hash.is_some());
        out.push(format!("{} {:?} {:?} {} {has_password}", u.email, u.groups, u.units, u.active));
    }
    let keys = app.keygate.list_keys(&Caller::CLI, app.tenant).await.expect("keys");
    let keys = keys.iter().map(|k| format!("{:?}", k.listing.key)).collect();
    (out, keys)
}

async fn a_user_configurator_key_cannot_create_a_supervisor_with_a_password_through_the_management_api(app: TestApp) {
    let uc = actor(&app, "uc@acme.example", &["User configurator"], None).await;
    let scoped = key_for(&app, "uc@acme.example", Some(&["admin:users:write"])).await;
    let before = written(&app).await;
    let boss = json!({"email": "boss@acme.example", "name": "Boss", "category": "personal",
                      "groups": ["Supervisor", "Configurator"], "password": PASSWORD});
    refused(&call(&app, "POST", "/v1/users", &uc, Some(boss.clone())).await, "Supervisor", "unscoped key");
    refused(&call(&app, "POST", "/v1/users", &scoped, Some(boss)).await, "Supervisor", "admin:users:write key");
    // The same hand-over in two steps: a password for a user who is a Supervisor already.
    let robot = user(&app, "robot@acme.example", &["Supervisor"], "programmatic").await;
    let before_password = written(&app).await;
    let path = format!("/v1/users/{}/password", robot.0);
    refused(&call(&app, "PUT", &path, &uc, Some(json!({"password": PASSWORD}))).await, "Supervisor", "password");
    assert_eq!(written(&app).await, before_password, "a refused password was written");
    assert!(app.keygate.user_by_email(app.tenant, "boss@acme.example").await.is_err(), "nothing was written");
    assert_eq!(before.1, written(&app).await.1, "no key was written");
    let audited = refusals(&app).await;
    assert_eq!(audited.len(), 3, "each of the 3 refusals is audited once: {audited:?}");
    assert_eq!(audited.iter().filter(|r| r.contains("boss@acme.example")).count(), 2, "{audited:?}");
    assert!(audited.iter().all(|r| !r.contains(PASSWORD)), "a secret in the audit log: {audited:?}");
    // What the key holds it may give: a programmatic user in User configurator, with a password (a
    // personal one would also hand over their own records, which the key does not reach).
    let helper = json!({"email": "helper@acme.example", "name": "Helper", "category": "programmatic",
                        "groups": ["User configurator"], "password": PASSWORD});
    let (status, body) = call(&app, "POST", "/v1/users", &uc, Some(helper)).await;
    assert_eq!(status, 201, "{body}");
}

async fn a_user_configurator_key_cannot_make_a_supervisor_or_deactivate_the_administrator_through_the_management_api(
    app: TestApp,
) {
    let uc = actor(&app, "uc@acme.example", &["User configurator"], None).await;
    let clerk = user(&app, "clerk@acme.example", &[], "programmatic").await;
    let before = written(&app).await;
    let root = json!({"email": "root@acme.example", "name": "Root", "category": "programmatic",
                      "groups": ["Supervisor"], "active": false});
    refused(&call(&app, "POST", "/v1/users", &uc, Some(root)).await, "Supervisor", "create, even inactive");
    let admin = format!("/v1/users/{}", app.admin.0);
    refused(&call(&app, "POST", &format!("{admin}/deactivate"), &uc, None).await, "Supervisor", "deactivate");
    refused(&call(&app, "PATCH", &admin, &uc, Some(json!({"active": false}))).await, "Supervisor", "patch active");
    // Made programmatic, the administrator could be left without a password: refused.
    let category = json!({"category": "programmatic"});
    refused(&call(&app, "PATCH", &admin, &uc, Some(category)).await, "Supervisor", "patch category");
    let (status, body) = call(&app, "DELETE", &format!("{admin}/password"), &uc, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_input")),
        "a personal user keeps a password: {body}"
    );
    let clerk_path = format!("/v1/users/{}", clerk.0);
    let promote = json!({"groups": ["Supervisor"], "name": "Promoted"});
    refused(&call(&app, "PATCH", &clerk_path, &uc, Some(promote)).await, "Supervisor", "promote");
    // Beyond its own grants as well: a group it does not hold, as one judged write.
    app.keygate.create_group(&Caller::CLI, app.tenant, "Payroll", &["invoices:write:all".into()]).await.expect("g");
    let payroll = json!({"groups": ["Payroll"], "units": [1]});
    refused(&call(&app, "PATCH", &clerk_path, &uc, Some(payroll)).await, "invoices:write:all", "payroll");
    assert_eq!(written(&app).await, before, "a refused call wrote something");
    assert!(app.keygate.user_by_id(app.tenant, app.admin).await.expect("admin").active, "the admin is still active");
    assert_eq!(refusals(&app).await.len(), 6, "each of the 6 refusals is audited: {:?}", refusals(&app).await);
    // Taking its own kind of power away needs none: the clerk is deactivated.
    let (status, body) = call(&app, "POST", &format!("{clerk_path}/deactivate"), &uc, None).await;
    assert_eq!((status, body["active"].clone()), (200, json!(false)), "{body}");
}

async fn a_configurator_key_cannot_issue_a_key_for_a_supervisor_programmatic_user_through_the_management_api(
    app: TestApp,
) {
    let conf = actor(&app, "conf@acme.example", &["Configurator"], None).await;
    let robot = user(&app, "robot@acme.example", &["Supervisor"], "programmatic").await;
    let before = written(&app).await;
    let issue = |scopes: Value| json!({"user": robot.0, "purpose": "escalation", "ipRanges": ["127.0.0.0/8"], "scopes": scopes});
    refused(&call(&app, "POST", "/v1/keys", &conf, Some(issue(Value::Null))).await, "Supervisor", "unscoped");
    // Even narrowed to a scope, the robot's reach exceeds a Configurator who holds no grants.
    let narrow = issue(json!(["companies:read"]));
    refused(&call(&app, "POST", "/v1/keys", &conf, Some(narrow.clone())).await, "companies:read:all", "scoped");
    // In a bulk call, one such item refuses the whole call: the harmless first item is not written.
    let own = user(&app, "ci@acme.example", &[], "programmatic").await;
    let before_bulk = written(&app).await;
    let harmless = json!({"user": own.0, "purpose": "ci", "ipRanges": ["127.0.0.0/8"]});
    let bulk = json!({"action": "issue", "items": [harmless, narrow]});
    refused(&call(&app, "POST", "/v1/keys/bulk", &conf, Some(bulk)).await, "companies:read:all", "bulk");
    assert_eq!(written(&app).await, before_bulk, "a refused bulk call wrote a key");
    assert_eq!(before.1, written(&app).await.1, "no key was written");
    assert_eq!(refusals(&app).await.len(), 3, "each of the 3 refusals is audited: {:?}", refusals(&app).await);
    // A key of the robot issued by the command line: rolling or enabling it hands it over too.
    let robot_key = app
        .keygate
        .issue_key(
            &Caller::CLI,
            app.tenant,
            keygate_service::IssueKey {
                owner: keygate_service::KeyOwner::Id(robot),
                purpose: "robot".into(),
                ip_ranges: vec!["127.0.0.0/8".into()],
                ..keygate_service::IssueKey::default()
            },
        )
        .await
        .expect("issue")
        .record
        .id;
    let before_roll = written(&app).await;
    let roll = json!({"overlapHours": 1});
    refused(
        &call(&app, "POST", &format!("/v1/keys/{}/roll", robot_key.0), &conf, Some(roll)).await,
        "Supervisor",
        "roll",
    );
    assert_eq!(written(&app).await, before_roll, "a refused roll wrote something");
    let (status, body) = call(&app, "POST", &format!("/v1/keys/{}/disable", robot_key.0), &conf, None).await;
    assert_eq!(status, 200, "taking power away needs none: {body}");
    let before_switch = written(&app).await;
    refused(
        &call(&app, "POST", &format!("/v1/keys/{}/enable", robot_key.0), &conf, None).await,
        "Supervisor",
        "enable",
    );
    assert_eq!(written(&app).await, before_switch, "a refused enable wrote something");
    assert_eq!(refusals(&app).await.len(), 5);
}

async fn a_key_scoped_to_write_keys_cannot_issue_a_key_for_settings_nor_an_unscoped_key(app: TestApp) {
    let keys_writer = actor(&app, "conf@acme.example", &["Configurator"], Some(&["admin:keys:write"])).await;
    let me = app.keygate.user_by_email(app.tenant, "conf@acme.example").await.expect("me").id;
    let before = written(&app).await;
    let issue = |scopes: Value| json!({"user": me.0, "purpose": "next", "ipRanges": ["127.0.0.0/8"], "scopes": scopes});
    let settings = issue(json!(["admin:settings:write"]));
    refused(&call(&app, "POST", "/v1/keys", &keys_writer, Some(settings)).await, "admin:settings:write", "settings");
    let unscoped = call(&app, "POST", "/v1/keys", &keys_writer, Some(issue(Value::Null))).await;
    refused(&unscoped, "Configurator", "unscoped");
    let bulk =
        json!({"action": "issue", "items": [issue(json!(["admin:keys:read"])), issue(json!(["admin:audit:read"]))]});
    refused(&call(&app, "POST", "/v1/keys/bulk", &keys_writer, Some(bulk)).await, "admin:audit:read", "bulk");
    assert_eq!(written(&app).await, before, "a refused issue wrote a key");
    assert_eq!(refusals(&app).await.len(), 3, "each of the 3 refusals is audited: {:?}", refusals(&app).await);
    // What it carries it may give: `admin:keys:read` (write holds read).
    let (status, body) = call(&app, "POST", "/v1/keys", &keys_writer, Some(issue(json!(["admin:keys:read"])))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["key"]["scopes"], json!(["admin:keys:read"]));
}

async fn a_users_write_scope_without_the_user_configurator_group_is_forbidden(app: TestApp) {
    let key =
        actor(&app, "conf@acme.example", &["Configurator"], Some(&["admin:users:write", "admin:keys:read"])).await;
    let before = written(&app).await;
    let new = json!({"email": "new@acme.example", "name": "New", "category": "programmatic", "groups": []});
    for (method, path, body) in [
        ("POST", "/v1/users".to_owned(), Some(new)),
        ("POST", format!("/v1/users/{}/deactivate", app.user.0), None),
        ("POST", "/v1/groups".to_owned(), Some(json!({"name": "G", "grants": []}))),
    ] {
        let (status, answer) = call(&app, method, &path, &key, body).await;
        assert_eq!((status, answer["code"].as_str()), (403, Some("forbidden")), "{method} {path}: {answer}");
    }
    assert_eq!(written(&app).await, before, "a forbidden call wrote something");
    // The scope it carries through its group still works (and reads users, as the console's keys
    // page does).
    let (status, body) = call(&app, "GET", "/v1/keys", &key, None).await;
    assert_eq!(status, 200, "{body}");
}
