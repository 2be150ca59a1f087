//! The grant ceiling (docs/design.md §6) on SQLite and (when configured) PostgreSQL: the three
//! escalations found by trying keygate (issue 10) are refused with `grant_exceeds_actor`, audited,
//! and write nothing; groups change their members' keys on the next request; the capability answer
//! tells what a key really reaches.

use keygate_domain::{UnitId, UserId};
use keygate_service::{AuditFilter, Backend};
use keygate_service::{Caller, CreateUser, IssueKey, KeyOwner, ServiceError};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{TestApp, key_for, problem_code, spawn_app_on};

on_both_backends!(
    a_user_configurator_cannot_create_a_supervisor_with_a_password,
    a_users_write_key_cannot_create_a_supervisor_or_deactivate_the_administrator,
    a_configurator_cannot_issue_a_key_for_a_supervisor_programmatic_user,
    removing_a_grant_from_a_group_refuses_the_next_call_of_a_members_key,
    a_programmatic_user_reaches_only_what_its_groups_grant,
    the_capability_answer_shows_the_own_records_rule_and_dormant_scopes,
    a_refused_patch_of_a_user_writes_none_of_its_fields,
    a_retried_post_of_a_user_with_the_same_idempotency_key_gets_the_first_answer,
);

/// A user created by the command line, and that user acting as a logged-in console user does.
async fn console_user(app: &TestApp, email: &str, groups: &[&str], category: &str) -> (UserId, Caller) {
    let id = app
        .keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            CreateUser {
                email: email.into(),
                name: email.into(),
                category: category.into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("user");
    let owner = app.keygate.store_for_tests().users().owner_state(id).await.expect("read").expect("exists");
    let caller = Caller::User {
        id,
        tenant: app.tenant,
        email: email.into(),
        permissions: owner.permissions,
        units: owner.units,
        ip: Some("127.0.0.1".into()),
    };
    (id, caller)
}

async fn refusals(app: &TestApp) -> Vec<String> {
    let filter = AuditFilter { action: Some("grant.refused".into()), limit: 100, ..AuditFilter::default() };
    let events = app.keygate.store_for_tests().audit().list(app.tenant, &filter).await.expect("audit");
    events.into_iter().map(|e| format!("{} {}: {}", e.actor_label, e.target, e.details)).collect()
}

fn refused_for_lacking(result: Result<impl std::fmt::Debug, ServiceError>, lacking: &str) {
    match result {
        Err(ServiceError::GrantExceedsActor(message)) => assert!(message.contains(lacking), "{message}"),
        other => panic!("expected grant_exceeds_actor naming {lacking}, got {other:?}"),
    }
}

async fn a_user_configurator_cannot_create_a_supervisor_with_a_password(app: TestApp) {
    let (_, uc) = console_user(&app, "uc@acme.example", &["User configurator"], "personal").await;
    let attempt = app
        .keygate
        .create_user(
            &uc,
            app.tenant,
            CreateUser {
                email: "boss@acme.example".into(),
                name: "Boss".into(),
                category: "personal".into(),
                groups: vec!["Supervisor".into(), "Configurator".into()],
                password: Some(SecretString::from("a password long enough")),
                ..Default::default()
            },
        )
        .await;
    refused_for_lacking(attempt, "the `Supervisor` group");
    assert!(app.keygate.user_by_email(app.tenant, "boss@acme.example").await.is_err(), "nothing was written");
    assert!(refusals(&app).await.iter().any(|r| r.contains("user boss@acme.example")), "{:?}", refusals(&app).await);
    // What it holds it may give: a user in User configurator.
    let helper = CreateUser {
        email: "helper@acme.example".into(),
        name: "Helper".into(),
        category: "personal".into(),
        groups: vec!["user configurator".into()],
        ..Default::default()
    };
    app.keygate.create_user(&uc, app.tenant, helper).await.expect("a group it holds");
}

async fn a_users_write_key_cannot_create_a_supervisor_or_deactivate_the_administrator(app: TestApp) {
    app.keygate
        .create_group(&Caller::CLI, app.tenant, "User admins", &["users:write:all".into()])
        .await
        .expect("group");
    console_user(&app, "hr-sync@acme.example", &["User admins"], "programmatic").await;
    let key = key_for(&app, "hr-sync@acme.example", None).await;
    let post = |body: Value| app.client.post(app.url("/rest/v1/1/users")).bearer_auth(key.expose()).json(&body).send();

    let r = post(json!({"name": "Root", "email": "root@acme.example", "groups": ["Supervisor", "Configurator"]}))
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(problem_code(r).await, "grant_exceeds_actor");
    assert!(app.keygate.user_by_email(app.tenant, "root@acme.example").await.is_err(), "nothing was written");

    let r = app
        .client
        .patch(app.url(&format!("/rest/v1/1/users?id={}", app.admin)))
        .bearer_auth(key.expose())
        .json(&json!({"active": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], "grant_exceeds_actor");
    assert!(body["detail"].as_str().expect("detail").contains("Supervisor"), "{body}");
    assert!(app.keygate.user_by_id(app.tenant, app.admin).await.expect("admin").active, "the admin is still active");
    assert_eq!(refusals(&app).await.len(), 2, "both refusals are audited");

    // Within its own grants the key may still manage users.
    let r =
        post(json!({"name": "Sync 2", "email": "sync2@acme.example", "groups": ["User admins"]})).await.expect("send");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

async fn a_configurator_cannot_issue_a_key_for_a_supervisor_programmatic_user(app: TestApp) {
    let (_, configurator) = console_user(&app, "conf@acme.example", &["Configurator"], "personal").await;
    console_user(&app, "robot@acme.example", &["Supervisor"], "programmatic").await;
    let request = |scopes: Option<Vec<String>>| IssueKey {
        owner: KeyOwner::Email("robot@acme.example".into()),
        purpose: "escalation".into(),
        ip_ranges: vec!["127.0.0.0/8".into()],
        scopes,
        ..IssueKey::default()
    };
    let attempt = app.keygate.issue_key(&configurator, app.tenant, request(None)).await;
    refused_for_lacking(attempt, "the `Supervisor` group");
    let keys = app.keygate.list_keys(&Caller::CLI, app.tenant).await.expect("keys");
    assert!(keys.iter().all(|k| k.listing.user_email != "robot@acme.example"), "no key was written");
    // Even narrowed to a scope, the robot's reach exceeds a Configurator who holds no grants.
    let attempt = app.keygate.issue_key(&configurator, app.tenant, request(Some(vec!["companies:read".into()]))).await;
    refused_for_lacking(attempt, "companies:read:all");
    assert_eq!(refusals(&app).await.len(), 2);
}

async fn removing_a_grant_from_a_group_refuses_the_next_call_of_a_members_key(app: TestApp) {
    let grants = ["documents:read:all".to_owned(), "companies:read:all".to_owned()];
    app.keygate.create_group(&Caller::CLI, app.tenant, "Invoice export", &grants).await.expect("group");
    console_user(&app, "export@acme.example", &["invoice EXPORT"], "programmatic").await;
    let key = key_for(&app, "export@acme.example", None).await;
    let get = |path: &'static str| app.client.get(app.url(path)).bearer_auth(key.expose()).send();
    assert_eq!(get("/rest/v1/1/views/documents").await.expect("send").status(), 200);
    app.keygate
        .change_group_grants(&Caller::CLI, app.tenant, "Invoice export", &[], &["documents:read:all".into()])
        .await
        .expect("ungrant");
    let r = get("/rest/v1/1/views/documents").await.expect("send");
    assert_eq!(r.status(), 403, "the very next call");
    assert_eq!(problem_code(r).await, "insufficient_permission");
    assert_eq!(get("/rest/v1/1/views/companies").await.expect("send").status(), 200, "the other grant stays");
}

async fn a_programmatic_user_reaches_only_what_its_groups_grant(app: TestApp) {
    let grants = ["documents:read:all".to_owned(), "companies:read:all".to_owned()];
    app.keygate.create_group(&Caller::CLI, app.tenant, "Invoice export", &grants).await.expect("group");
    console_user(&app, "export@acme.example", &["Invoice export"], "programmatic").await;
    let key = key_for(&app, "export@acme.example", None).await;
    let r = app.client.get(app.url("/rest/v1/1/views/persons")).bearer_auth(key.expose()).send().await.expect("send");
    assert_eq!(problem_code(r).await, "insufficient_permission");
    let r = app
        .client
        .post(app.url("/rest/v1/1/documents"))
        .bearer_auth(key.expose())
        .json(&json!({"type": "INVOICE.SALES", "name": "Nope"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(problem_code(r).await, "insufficient_permission");
}

async fn the_capability_answer_shows_the_own_records_rule_and_dormant_scopes(app: TestApp) {
    let (_, _) = console_user(&app, "ada@acme.example", &[], "personal").await;
    app.keygate
        .create_group(&Caller::CLI, app.tenant, "Readers of companies", &["companies:read:all".into()])
        .await
        .expect("g");
    app.keygate
        .set_user_groups(
            &Caller::CLI,
            app.tenant,
            app.keygate.user_by_email(app.tenant, "ada@acme.example").await.expect("ada").id,
            &["Readers of companies".into()],
        )
        .await
        .expect("groups");
    let key = key_for(&app, "ada@acme.example", Some(&["companies:write", "jobs:read"])).await;
    let body: Value = app.capability(key.expose()).await.json().await.expect("json");
    assert_eq!(body["permissions"], json!(["companies:read:all", "companies:write:own", "jobs:read:own"]), "{body}");
    assert_eq!(body["dormantScopes"], json!(["companies:write", "jobs:read"]), "{body}");
}

/// A PATCH is one judged write: refused or invalid in any field, it writes none (a change of
/// groups with a deactivation of oneself used to write the groups and answer 422).
async fn a_refused_patch_of_a_user_writes_none_of_its_fields(app: TestApp) {
    app.keygate.create_unit(&Caller::CLI, app.tenant, Some(2), "Unit 2").await.expect("unit");
    app.keygate
        .create_group(&Caller::CLI, app.tenant, "User admins", &["users:write:all".into(), "jobs:read:all".into()])
        .await
        .expect("group");
    app.keygate.create_group(&Caller::CLI, app.tenant, "Jobs", &["jobs:read:all".into()]).await.expect("group");
    console_user(&app, "hr-sync@acme.example", &["User admins"], "programmatic").await;
    app.keygate
        .set_user_units(&Caller::CLI, app.tenant, user_id(&app, "hr-sync@acme.example").await, Some(vec![UnitId(1)]))
        .await
        .expect("units");
    let (target, _) = console_user(&app, "erp2@acme.example", &[], "programmatic").await;
    app.keygate.set_user_units(&Caller::CLI, app.tenant, target, Some(vec![UnitId(1)])).await.expect("units");
    let key = key_for(&app, "hr-sync@acme.example", None).await;
    let r = app
        .client
        .patch(app.url(&format!("/rest/v1/1/users?id={}", target.0)))
        .bearer_auth(key.expose())
        .json(&json!({"groups": ["Jobs"], "units": [1, 2]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403, "{}", r.text().await.unwrap_or_default());
    let user = app.keygate.user_by_id(app.tenant, target).await.expect("user");
    assert!(user.groups.is_empty(), "the groups were written by a refused PATCH: {:?}", user.groups);
    assert_eq!(user.units, Some(vec![UnitId(1)]));
    // Groups with a deactivation of oneself: the groups were written, then 422.
    let me = user_id(&app, "hr-sync@acme.example").await;
    let r = app
        .client
        .patch(app.url(&format!("/rest/v1/1/users?id={}", me.0)))
        .bearer_auth(key.expose())
        .json(&json!({"groups": ["User admins", "Jobs"], "active": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422, "{}", r.text().await.unwrap_or_default());
    let groups = app.keygate.user_by_id(app.tenant, me).await.expect("user").groups;
    assert_eq!(groups, vec!["User admins".to_owned()], "a PATCH answered 422 wrote its groups");
    // The allowed half alone is written.
    let r = app
        .client
        .patch(app.url(&format!("/rest/v1/1/users?id={}", target.0)))
        .bearer_auth(key.expose())
        .json(&json!({"groups": ["Jobs"]}))
        .send()
        .await
        .expect("send");
    assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
    assert_eq!(app.keygate.user_by_id(app.tenant, target).await.expect("user").groups, vec!["Jobs".to_owned()]);
}

/// A retry of `POST users` with its `Idempotency-Key` answered 409 (the email exists): it gets
/// the first answer, and one user exists.
async fn a_retried_post_of_a_user_with_the_same_idempotency_key_gets_the_first_answer(app: TestApp) {
    app.keygate
        .create_group(&Caller::CLI, app.tenant, "User admins", &["users:write:all".into()])
        .await
        .expect("group");
    console_user(&app, "hr-sync@acme.example", &["User admins"], "programmatic").await;
    let key = key_for(&app, "hr-sync@acme.example", None).await;
    let body = json!({"name": "New hire", "email": "hire@acme.example"});
    let post = || {
        app.client
            .post(app.url("/rest/v1/1/users"))
            .bearer_auth(key.expose())
            .header("Idempotency-Key", "hire-1")
            .json(&body)
            .send()
    };
    let first = post().await.expect("send");
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let again = post().await.expect("send");
    assert_eq!(again.status(), 201, "the retry was not answered with the first answer");
    assert_eq!(again.json::<Value>().await.expect("json"), first);
    assert_eq!(
        app.keygate
            .list_users(&Caller::CLI, app.tenant)
            .await
            .expect("users")
            .iter()
            .filter(|u| u.email == "hire@acme.example")
            .count(),
        1
    );
}

async fn user_id(app: &TestApp, email: &str) -> UserId {
    app.keygate.user_by_email(app.tenant, email).await.expect("user").id
}
