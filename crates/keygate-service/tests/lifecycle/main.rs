//! The key lifecycle through the service, on SQLite and (when configured) PostgreSQL: each
//! change makes verification refuse the key with its own code.

use std::net::IpAddr;

use keygate_domain::RefusalCode;
use keygate_service::{Caller, CreateUser, Credential, IssueKey, KeyOwner, Keygate, ServiceConfig, VerifyRequest};
use keygate_store::testing::TestDatabase;

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                let t = keygate_store::testing::fresh(keygate_store::Backend::Sqlite).await.expect("db").expect("sqlite");
                super::$name(t).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                let Some(t) = keygate_store::testing::fresh(keygate_store::Backend::Postgres).await.expect("db") else {
                    eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
                    return;
                };
                super::$name(t).await;
            })*
        }
    };
}

mod ceiling;
mod operations;

on_both_backends!(
    a_fresh_key_verifies_as_its_user,
    deactivating_the_user_refuses_the_key_with_user_inactive,
    disabling_the_key_refuses_it_with_key_disabled,
    revoking_the_key_refuses_it_with_key_revoked,
    switching_the_api_off_refuses_with_api_disabled,
    an_address_outside_the_ranges_is_refused_with_ip_not_allowed,
    a_configurator_may_issue_for_a_programmatic_user_but_not_for_another_person,
    a_non_configurator_may_not_issue_keys,
    bad_input_is_refused_with_a_message_and_writes_nothing,
);

struct World {
    kg: Keygate,
    tenant: keygate_domain::TenantId,
    user: keygate_domain::UserId,
    _t: TestDatabase,
}

async fn world(t: TestDatabase) -> World {
    let kg = Keygate::new(t.db.clone(), ServiceConfig::default());
    let outcome = kg.create_tenant(&Caller::CLI, "acme", "admin@acme.example", None).await.expect("tenant");
    kg.set_public_api(&Caller::CLI, outcome.tenant, true).await.expect("on");
    let user = kg
        .create_user(
            &Caller::CLI,
            outcome.tenant,
            CreateUser {
                email: "erp@acme.example".into(),
                name: "ERP".into(),
                category: "programmatic".into(),
                ..Default::default()
            },
        )
        .await
        .expect("user");
    World { kg, tenant: outcome.tenant, user, _t: t }
}

fn request(ranges: &[&str]) -> IssueKey {
    IssueKey {
        owner: KeyOwner::Email("erp@acme.example".into()),
        purpose: "ERP export".into(),
        ip_ranges: ranges.iter().map(|s| (*s).to_owned()).collect(),
        ..IssueKey::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

async fn verify(w: &World, key: &str, from: &str) -> Result<keygate_domain::UserId, RefusalCode> {
    w.kg.verify(VerifyRequest { credential: Credential::Key(key), client_ip: ip(from), unit: None, required: None })
        .await
        .map(|v| v.owner.id)
        .map_err(|r| r.code)
}

async fn a_fresh_key_verifies_as_its_user(t: TestDatabase) {
    let w = world(t).await;
    let issued = w.kg.issue_key(&Caller::CLI, w.tenant, request(&["10.0.0.0/8"])).await.expect("issue");
    assert_eq!(verify(&w, issued.secret.expose(), "10.1.2.3").await, Ok(w.user));
}

async fn deactivating_the_user_refuses_the_key_with_user_inactive(t: TestDatabase) {
    let w = world(t).await;
    let issued = w.kg.issue_key(&Caller::CLI, w.tenant, request(&["10.0.0.0/8"])).await.expect("issue");
    assert!(verify(&w, issued.secret.expose(), "10.0.0.1").await.is_ok());
    w.kg.set_user_active(&Caller::CLI, w.tenant, w.user, false).await.expect("deactivate");
    assert_eq!(verify(&w, issued.secret.expose(), "10.0.0.1").await, Err(RefusalCode::UserInactive));
    w.kg.set_user_active(&Caller::CLI, w.tenant, w.user, true).await.expect("activate");
    assert!(verify(&w, issued.secret.expose(), "10.0.0.1").await.is_ok());
}

async fn disabling_the_key_refuses_it_with_key_disabled(t: TestDatabase) {
    let w = world(t).await;
    let issued = w.kg.issue_key(&Caller::CLI, w.tenant, request(&["10.0.0.0/8"])).await.expect("issue");
    assert!(verify(&w, issued.secret.expose(), "10.0.0.1").await.is_ok());
    w.kg.set_key_enabled(&Caller::CLI, None, issued.record.id, false).await.expect("disable");
    assert_eq!(verify(&w, issued.secret.expose(), "10.0.0.1").await, Err(RefusalCode::KeyDisabled));
}

async fn revoking_the_key_refuses_it_with_key_revoked(t: TestDatabase) {
    let w = world(t).await;
    let issued = w.kg.issue_key(&Caller::CLI, w.tenant, request(&["10.0.0.0/8"])).await.expect("issue");
    assert!(verify(&w, issued.secret.expose(), "10.0.0.1").await.is_ok());
    w.kg.revoke_key(&Caller::CLI, None, issued.record.id).await.expect("revoke");
    assert_eq!(verify(&w, issued.secret.expose(), "10.0.0.1").await, Err(RefusalCode::KeyRevoked));
    assert!(w.kg.set_key_enabled(&Caller::CLI, None, issued.record.id, true).await.is_err(), "revocation is final");
}

async fn switching_the_api_off_refuses_with_api_disabled(t: TestDatabase) {
    let w = world(t).await;
    let issued = w.kg.issue_key(&Caller::CLI, w.tenant, request(&["10.0.0.0/8"])).await.expect("issue");
    assert!(verify(&w, issued.secret.expose(), "10.0.0.1").await.is_ok());
    w.kg.set_public_api(&Caller::CLI, w.tenant, false).await.expect("off");
    assert_eq!(verify(&w, issued.secret.expose(), "10.0.0.1").await, Err(RefusalCode::ApiDisabled));
}

async fn an_address_outside_the_ranges_is_refused_with_ip_not_allowed(t: TestDatabase) {
    let w = world(t).await;
    let issued =
        w.kg.issue_key(&Caller::CLI, w.tenant, request(&["10.0.0.0/8", "2001:db8::/32"])).await.expect("issue");
    assert!(verify(&w, issued.secret.expose(), "2001:db8::1").await.is_ok());
    assert_eq!(verify(&w, issued.secret.expose(), "192.0.2.1").await, Err(RefusalCode::IpNotAllowed));
    w.kg.set_whitelist(&Caller::CLI, w.tenant, &["10.9.0.0/16".into()]).await.expect("whitelist");
    assert_eq!(verify(&w, issued.secret.expose(), "10.0.0.1").await, Err(RefusalCode::IpNotAllowed));
    assert!(verify(&w, issued.secret.expose(), "10.9.0.1").await.is_ok());
}

async fn console_user(w: &World, email: &str, groups: &[&str], category: &str) -> Caller {
    let id =
        w.kg.create_user(
            &Caller::CLI,
            w.tenant,
            CreateUser {
                email: email.into(),
                name: "Someone".into(),
                category: category.into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                ..Default::default()
            },
        )
        .await
        .expect("user");
    let owner = w.kg.store_for_tests().users().owner_state(id).await.expect("read").expect("exists");
    Caller::User {
        id,
        tenant: w.tenant,
        email: email.into(),
        permissions: owner.permissions,
        units: owner.units,
        ip: Some("127.0.0.1".into()),
    }
}

async fn a_configurator_may_issue_for_a_programmatic_user_but_not_for_another_person(t: TestDatabase) {
    let w = world(t).await;
    let configurator = console_user(&w, "conf@acme.example", &["Configurator"], "personal").await;
    console_user(&w, "person@acme.example", &[], "personal").await;
    let for_robot = w.kg.issue_key(&configurator, w.tenant, request(&["10.0.0.0/8"])).await.expect("programmatic");
    assert_eq!(for_robot.record.user_id, w.user);
    assert_eq!(for_robot.record.created_by, configurator.user_id());
    let mut for_person = request(&["10.0.0.0/8"]);
    for_person.owner = KeyOwner::Email("person@acme.example".into());
    assert!(matches!(
        w.kg.issue_key(&configurator, w.tenant, for_person).await,
        Err(keygate_service::ServiceError::Forbidden(_))
    ));
    let mut for_me = request(&["10.0.0.0/8"]);
    for_me.owner = KeyOwner::Myself;
    assert!(w.kg.issue_key(&configurator, w.tenant, for_me).await.is_ok());
}

async fn a_non_configurator_may_not_issue_keys(t: TestDatabase) {
    let w = world(t).await;
    let plain = console_user(&w, "plain@acme.example", &["User configurator"], "personal").await;
    let err = w.kg.issue_key(&plain, w.tenant, request(&["10.0.0.0/8"])).await.expect_err("forbidden");
    assert!(err.to_string().contains("Configurator"), "{err}");
}

async fn bad_input_is_refused_with_a_message_and_writes_nothing(t: TestDatabase) {
    let w = world(t).await;
    let cases: Vec<(IssueKey, &str)> = vec![
        (IssueKey { purpose: " ".into(), ..request(&["10.0.0.0/8"]) }, "purpose"),
        (request(&[]), "at least one IP range"),
        (request(&["10.0.0.300/8"]), "10.0.0.300/8"),
        (IssueKey { expires: Some("2001-01-01".into()), ..request(&["10.0.0.0/8"]) }, "in the past"),
        (IssueKey { expires: Some("soon".into()), ..request(&["10.0.0.0/8"]) }, "soon"),
        (IssueKey { scopes: Some(vec!["money:read".into()]), ..request(&["10.0.0.0/8"]) }, "money"),
        (
            IssueKey { owner: KeyOwner::Email("ghost@acme.example".into()), ..request(&["10.0.0.0/8"]) },
            "ghost@acme.example",
        ),
    ];
    for (req, expected) in cases {
        let err = w.kg.issue_key(&Caller::CLI, w.tenant, req).await.expect_err("refused");
        assert!(err.to_string().contains(expected), "`{err}` should mention `{expected}`");
    }
    assert!(w.kg.list_keys(&Caller::CLI, w.tenant).await.expect("list").is_empty());
}
