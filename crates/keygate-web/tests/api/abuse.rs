//! The abuse suite: each attack of issue 11, reproduced at a scale that fits CI, with the bound
//! it must meet asserted as a number. Bounded loops only; every server on 127.0.0.1:0.

use keygate_domain::{ApiKeySecret, KeyId, TenantId};
use keygate_service::{Caller, IssueKey, KeyOwner};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// A second tenant `other` in the app's database, its API on, with an administrator.
async fn other_tenant(app: &TestApp) -> TenantId {
    let other = app.keygate.create_tenant(&Caller::CLI, "other", "boss@other.example", None).await.expect("tenant");
    app.keygate.set_public_api(&Caller::CLI, other.tenant, true).await.expect("on");
    other.tenant
}

/// Issues a key of tenant `other` for its administrator.
async fn issue_in(
    app: &TestApp,
    tenant: TenantId,
    ranges: &[&str],
    rate_limit_per_minute: Option<u32>,
) -> (KeyId, ApiKeySecret) {
    let issued = app
        .keygate
        .issue_key(
            &Caller::CLI,
            tenant,
            IssueKey {
                owner: KeyOwner::Email("boss@other.example".into()),
                purpose: "foreign".into(),
                ip_ranges: ranges.iter().map(|s| (*s).to_owned()).collect(),
                expires: None,
                scopes: None,
                units: None,
                rate_limit_per_minute,
            },
        )
        .await
        .expect("issue");
    (issued.record.id, issued.secret)
}

async fn verify(app: &TestApp, service: &ApiKeySecret, body: serde_json::Value) -> serde_json::Value {
    verify_from(&app.client, app, service, body).await
}

/// A client whose connections come from `ip` (any address of 127.0.0.0/8 is this machine).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<std::net::IpAddr>().expect("ip")).build().expect("client")
}

async fn verify_from(
    client: &reqwest::Client,
    app: &TestApp,
    service: &ApiKeySecret,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = client.post(app.url("/v1/keys/verify")).bearer_auth(service.expose()).json(&body).send().await;
    let r = r.expect("send");
    assert_eq!(r.status(), 200, "the verifying service itself is not refused");
    r.json().await.expect("json")
}

/// Rows of the whole audit log (every tenant and none) whose source address is `ip`.
async fn audit_rows_from(app: &TestApp, ip: &str) -> i64 {
    let pool = keygate_store::testing::sqlite_pool(app.keygate.db()).expect("sqlite");
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE source_ip = $1")
        .bind(ip)
        .fetch_one(&pool)
        .await
        .expect("count")
}

/// Rows of the audit log, of usage counts and keys with a last use, that belong to `tenant`.
async fn footprint(app: &TestApp, tenant: TenantId) -> (i64, i64, i64) {
    let pool = keygate_store::testing::sqlite_pool(app.keygate.db()).expect("sqlite");
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE tenant_id = $1")
        .bind(tenant.0)
        .fetch_one(&pool)
        .await
        .expect("audit");
    let usage: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM key_usage_daily WHERE key_id IN (SELECT id FROM api_keys WHERE tenant_id = $1)",
    )
    .bind(tenant.0)
    .fetch_one(&pool)
    .await
    .expect("usage");
    let used: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND last_used_at IS NOT NULL")
            .bind(tenant.0)
            .fetch_one(&pool)
            .await
            .expect("keys");
    (audit, usage, used)
}

// --- items 1 and 2: verification is scoped to the caller's tenant; a claimed address is a claim --

#[tokio::test]
async fn a_verify_call_about_another_tenants_key_is_unknown_key_whatever_its_state_and_writes_nothing_there() {
    let app = spawn_app().await;
    let (_, service) = app.issue(&["127.0.0.0/8"], Some(&["keys:verify"])).await;
    let other = other_tenant(&app).await;
    let (_, narrow) = issue_in(&app, other, &["203.0.113.0/24"], None).await;
    let (disabled_id, disabled) = issue_in(&app, other, &["0.0.0.0/0"], None).await;
    app.keygate.set_key_enabled(&Caller::CLI, Some(other), disabled_id, false).await.expect("disable");
    let (_, budget) = issue_in(&app, other, &["0.0.0.0/0"], Some(3)).await;
    app.keygate.flush().await;
    let before = footprint(&app, other).await;

    let asks = [
        json!({"key": narrow.expose(), "ip": "198.51.100.1"}),
        json!({"key": narrow.expose(), "ip": "203.0.113.5", "unitId": 999}),
        json!({"key": disabled.expose(), "ip": "127.0.0.1"}),
        json!({"key": budget.expose(), "ip": "127.0.0.1"}),
    ];
    let mut codes = Vec::new();
    for ask in &asks {
        for _ in 0..5 {
            let body = verify(&app, &service, ask.clone()).await;
            codes.push(body["code"].as_str().unwrap_or("null").to_owned());
        }
    }
    let unknown = codes.iter().filter(|c| *c == "unknown_key").count();
    assert_eq!(unknown, 20, "every answer about another tenant's key is unknown_key: {codes:?}");
    app.keygate.flush().await;
    assert_eq!(footprint(&app, other).await, before, "(audit rows, usage rows, keys used) of the other tenant");

    // Its rate budget is untouched: the key still has all three calls of its minute.
    for i in 0..3 {
        assert_eq!(app.capability(budget.expose()).await.status(), 200, "call {i} of the key's own budget");
    }
}

#[tokio::test]
async fn a_claimed_address_never_feeds_the_failure_throttle_nor_the_audit_source() {
    let app = spawn_app().await;
    let (_, service) = app.issue(&["127.0.0.0/8"], Some(&["keys:verify"])).await;
    let (_, victim) = app.issue(&["127.0.0.0/8"], None).await;
    // The verifying service calls from 127.0.0.2 and claims 127.0.0.1, where the victim is.
    let service_client = client_from("127.0.0.2");
    let garbage = ApiKeySecret::generate();
    for _ in 0..120 {
        let body =
            verify_from(&service_client, &app, &service, json!({"key": garbage.expose(), "ip": "127.0.0.1"})).await;
        assert_eq!(body["code"], "unknown_key");
        verify_from(&service_client, &app, &service, json!({"key": "kg_garbage", "ip": "198.51.100.9"})).await;
    }
    let r = app.capability(victim.expose()).await;
    assert_eq!(r.status(), 200, "240 failures claimed for 127.0.0.1 lock nobody out");
    // Nor does a valid key claimed for an address clear that address's own failures.
    let guesser = client_from("127.0.0.3");
    for _ in 0..99 {
        let r = guesser.get(app.url("/rest/v1/1/capability")).bearer_auth(garbage.expose()).send().await;
        assert_eq!(r.expect("send").status(), 401);
    }
    let body = verify_from(&service_client, &app, &service, json!({"key": victim.expose(), "ip": "127.0.0.3"})).await;
    assert_eq!(body["valid"], true);
    let r = guesser.get(app.url("/rest/v1/1/capability")).bearer_auth(garbage.expose()).send().await;
    assert_eq!(r.expect("send").status(), 401, "the 100th failure");
    let r = guesser.get(app.url("/rest/v1/1/capability")).bearer_auth(garbage.expose()).send().await;
    assert_eq!(r.expect("send").status(), 429, "blocked after 100 failures of its own, whatever was claimed");
    app.keygate.flush().await;
    assert_eq!(audit_rows_from(&app, "198.51.100.9").await, 0, "a claimed address is no audit source");
}

#[tokio::test]
async fn a_key_verified_for_a_claimed_address_keeps_the_real_caller_as_its_last_use() {
    let app = spawn_app().await;
    let (_, service) = app.issue(&["127.0.0.0/8"], Some(&["keys:verify"])).await;
    let (id, target) = app.issue(&["203.0.113.0/24"], None).await;
    let body = verify(&app, &service, json!({"key": target.expose(), "ip": "203.0.113.5"})).await;
    assert_eq!(body["valid"], true);
    app.keygate.flush().await;
    let record = app.keygate.key(app.tenant, id).await.expect("key");
    assert_eq!(record.last_used_ip.as_deref(), Some("127.0.0.1"), "the address the call came from, not the claim");
}

#[tokio::test]
async fn forward_auth_for_a_named_tenant_finds_no_key_of_another_and_writes_nothing_there() {
    let app = spawn_app().await;
    let other = other_tenant(&app).await;
    let (disabled_id, disabled) = issue_in(&app, other, &["0.0.0.0/0"], None).await;
    app.keygate.set_key_enabled(&Caller::CLI, Some(other), disabled_id, false).await.expect("disable");
    let (_, valid) = issue_in(&app, other, &["0.0.0.0/0"], None).await;
    app.keygate.flush().await;
    let before = footprint(&app, other).await;
    for key in [&disabled, &valid] {
        let r = app.client.get(app.url("/v1/forward-auth?tenant=acme")).bearer_auth(key.expose()).send().await;
        let r = r.expect("send");
        assert_eq!(r.status(), 401);
        assert_eq!(crate::helpers::problem_code(r).await, "unknown_key");
    }
    app.keygate.flush().await;
    assert_eq!(footprint(&app, other).await, before, "(audit rows, usage rows, keys used) of the other tenant");
    let r = app.client.get(app.url("/v1/forward-auth?tenant=other")).bearer_auth(valid.expose()).send().await;
    assert_eq!(r.expect("send").status(), 200, "its own tenant's key passes");
}

// --- item 3: the failed-verification map has a fixed capacity ------------------------------------

#[tokio::test]
async fn failures_from_more_sources_than_the_map_holds_keep_it_at_its_capacity() {
    let config = keygate_service::ServiceConfig { failure_capacity: 64, ..Default::default() };
    let app = crate::helpers::spawn_app_on(keygate_store::Backend::Sqlite, config).await.expect("sqlite");
    let garbage = ApiKeySecret::generate();
    for i in 0..400u32 {
        let client = client_from(&format!("127.0.{}.{}", 1 + i / 200, 1 + i % 200));
        let r = client.get(app.url("/rest/v1/1/capability")).bearer_auth(garbage.expose()).send().await;
        assert_eq!(r.expect("send").status(), 401);
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("send").text().await.expect("text");
    let gauge = |name: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).expect("gauge");
        line.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("number")
    };
    assert_eq!(gauge("keygate_failure_capacity"), 64);
    assert!(gauge("keygate_failure_sources") <= 64, "{} sources tracked", gauge("keygate_failure_sources"));
    assert!(gauge("keygate_failure_map_bytes") < 4096, "{} bytes for 64 sources", gauge("keygate_failure_map_bytes"));
}
