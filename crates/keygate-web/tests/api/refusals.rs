//! Each refusal code with its status and headers.

use keygate_domain::{ApiKeySecret, IpRanges, Purpose, Timestamp, UnitId};
use keygate_service::NewKey;
use keygate_service::{Caller, IssueKey, KeyOwner};

use keygate_service::Backend;

use crate::helpers::{TestApp, USER, problem_code, spawn_app, spawn_app_on};

on_both_backends!(a_call_refused_insufficient_permission_is_counted_and_audited_as_a_refusal_not_as_accepted);

fn challenge(r: &reqwest::Response) -> String {
    r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_valid_key_gets_its_identity_and_rate_limit_headers() {
    let app = spawn_app().await;
    let (id, key) = app.issue(&["127.0.0.0/8"], None).await;
    let r = app.capability(key.expose()).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("ratelimit-policy").is_some());
    assert!(r.headers().get("ratelimit").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("r=")));
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["key"]["id"], id.0);
    assert_eq!(body["user"]["email"], USER);
    assert_eq!(body["user"]["category"], "programmatic");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["clientIp"], "127.0.0.1");
    assert!(body["permissions"].as_array().expect("list").iter().any(|p| p == "invoices:read:all"));
}

#[tokio::test]
async fn the_x_api_key_header_is_accepted_too() {
    let app = spawn_app().await;
    let (_, key) = app.issue(&["127.0.0.1"], None).await;
    let r =
        app.client.get(app.url("/rest/v1/1/capability")).header("x-api-key", key.expose()).send().await.expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn no_key_is_401_missing_credentials_without_an_error_attribute() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/rest/v1/1/capability")).send().await.expect("send");
    assert_eq!(r.status(), 401);
    let c = challenge(&r);
    assert!(c.starts_with("Bearer") && !c.contains("error="), "{c}");
    assert_eq!(problem_code(r).await, "missing_credentials");
}

#[tokio::test]
async fn a_key_with_a_wrong_checksum_is_401_malformed_key() {
    let app = spawn_app().await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    let mut broken = key.expose().to_owned();
    let last = if broken.ends_with('A') { "B" } else { "A" };
    broken.replace_range(40..41, last);
    let r = app.capability(&broken).await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("error=\"invalid_token\""));
    assert_eq!(problem_code(r).await, "malformed_key");
}

#[tokio::test]
async fn a_malformed_key_is_refused_without_reading_storage() {
    let app = spawn_app().await;
    app.keygate.store_for_tests().close().await;
    let r = app.capability("kg_notavalidkeyatallbutlongenough000000000").await;
    assert_eq!(r.status(), 401);
    assert_eq!(problem_code(r).await, "malformed_key");
}

#[tokio::test]
async fn a_well_formed_but_unknown_key_is_401_unknown_key() {
    let app = spawn_app().await;
    let r = app.capability(ApiKeySecret::generate().expose()).await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("invalid_token"));
    assert_eq!(problem_code(r).await, "unknown_key");
}

#[tokio::test]
async fn revoked_disabled_and_inactive_keys_get_their_own_401_codes() {
    let app = spawn_app().await;
    let (revoked, revoked_key) = app.issue(&["127.0.0.0/8"], None).await;
    let (disabled, disabled_key) = app.issue(&["127.0.0.0/8"], None).await;
    app.keygate.revoke_key(&Caller::CLI, None, revoked).await.expect("revoke");
    app.keygate.set_key_enabled(&Caller::CLI, None, disabled, false).await.expect("disable");
    for (key, code) in [(revoked_key, "key_revoked"), (disabled_key, "key_disabled")] {
        let r = app.capability(key.expose()).await;
        assert_eq!(r.status(), 401);
        assert!(challenge(&r).contains("invalid_token"));
        assert_eq!(problem_code(r).await, code);
    }
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    app.keygate.set_user_active(&Caller::CLI, app.tenant, app.user, false).await.expect("deactivate");
    let r = app.capability(key.expose()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(problem_code(r).await, "user_inactive");
}

#[tokio::test]
async fn an_expired_key_is_401_key_expired() {
    let app = spawn_app().await;
    let secret = ApiKeySecret::generate();
    let new = NewKey {
        tenant_id: app.tenant,
        user_id: app.user,
        created_by: None,
        purpose: Purpose::parse("expired").expect("purpose"),
        digest: secret.digest(),
        display: secret.display_form(),
        ip_ranges: IpRanges::parse(&["127.0.0.0/8"]).expect("ranges"),
        scopes: None,
        units: None,
        expires_at: Some(Timestamp::now().plus_millis(-1000)),
        rolled_from: None,
        rate_limit_per_minute: None,
    };
    app.keygate.store_for_tests().keys().insert_many_unaudited(&[new]).await.expect("insert");
    let r = app.capability(secret.expose()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(problem_code(r).await, "key_expired");
}

#[tokio::test]
async fn an_address_outside_the_key_is_told_which_address_keygate_saw() {
    let app = spawn_app().await;
    let (_, elsewhere) = app.issue(&["10.0.0.0/8"], None).await;
    let body: serde_json::Value = app.capability(elsewhere.expose()).await.json().await.expect("json");
    assert_eq!(body["code"], "ip_not_allowed");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("came from 127.0.0.1") || d.contains("come from 127.0.0.1")),
        "{body}"
    );
}

#[tokio::test]
async fn the_api_switched_off_and_foreign_addresses_are_403() {
    let app = spawn_app().await;
    let (_, elsewhere) = app.issue(&["10.0.0.0/8"], None).await;
    let r = app.capability(elsewhere.expose()).await;
    assert_eq!(r.status(), 403);
    assert!(challenge(&r).contains("ip_not_allowed"));
    assert_eq!(problem_code(r).await, "ip_not_allowed");

    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    app.keygate.set_whitelist(&Caller::CLI, app.tenant, &["192.0.2.0/24".into()]).await.expect("whitelist");
    assert_eq!(problem_code(app.capability(key.expose()).await).await, "ip_not_allowed");
    app.keygate.set_whitelist(&Caller::CLI, app.tenant, &["127.0.0.1/32".into()]).await.expect("whitelist");
    assert_eq!(app.capability(key.expose()).await.status(), 200);

    app.keygate.set_public_api(&Caller::CLI, app.tenant, false).await.expect("api off");
    let r = app.capability(key.expose()).await;
    assert_eq!(r.status(), 403);
    assert_eq!(problem_code(r).await, "api_disabled");
}

#[tokio::test]
async fn a_unit_outside_the_key_is_403_and_a_missing_unit_is_404() {
    let app = spawn_app().await;
    let audit = keygate_domain::AuditEntry::new(Some(app.tenant), keygate_domain::Actor::CLI, "unit.created", "unit 2");
    app.keygate
        .store_for_tests()
        .tenants()
        .create_unit(app.tenant, UnitId(2), "Second", None, &audit)
        .await
        .expect("unit");
    let (_, key) = app
        .issue_with(IssueKey {
            owner: KeyOwner::Email(USER.into()),
            purpose: "unit one only".into(),
            ip_ranges: vec!["127.0.0.0/8".into()],
            units: Some(vec![UnitId(1)]),
            ..IssueKey::default()
        })
        .await;
    let r = app.client.get(app.url("/rest/v1/2/capability")).bearer_auth(key.expose()).send().await.expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(problem_code(r).await, "unit_not_allowed");
    let r = app.client.get(app.url("/rest/v1/9/capability")).bearer_auth(key.expose()).send().await.expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(problem_code(r).await, "unknown_unit");
}

#[tokio::test]
async fn over_the_rate_limit_is_429_with_retry_after_and_ratelimit_headers() {
    let app = spawn_app().await;
    let (_, key) = app
        .issue_with(IssueKey {
            owner: KeyOwner::Email(USER.into()),
            purpose: "slow".into(),
            ip_ranges: vec!["127.0.0.0/8".into()],
            rate_limit_per_minute: Some(2),
            ..IssueKey::default()
        })
        .await;
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    let r = app.capability(key.expose()).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(r.headers()["ratelimit-policy"], "\"key\";q=2;w=60");
    assert!(r.headers()["ratelimit"].to_str().expect("ascii").starts_with("\"key\";r=0;"));
    assert_eq!(problem_code(r).await, "rate_limited");
}

#[tokio::test]
async fn a_guessing_client_is_slowed_down_after_a_hundred_failures() {
    let app = spawn_app().await;
    for _ in 0..100 {
        let r = app.capability(ApiKeySecret::generate().expose()).await;
        assert_eq!(r.status(), 401);
    }
    let (_, good) = app.issue(&["127.0.0.0/8"], None).await;
    let r = app.capability(good.expose()).await;
    assert_eq!(r.status(), 429, "even a good key waits while its address is blocked");
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(problem_code(r).await, "too_many_failures");
}

#[tokio::test]
async fn refused_calls_reach_the_audit_log_aggregated() {
    let app = spawn_app().await;
    let (id, key) = app.issue(&["10.0.0.0/8"], None).await;
    for _ in 0..20 {
        assert_eq!(app.capability(key.expose()).await.status(), 403);
    }
    app.keygate.flush().await;
    let events = app
        .keygate
        .store_for_tests()
        .audit()
        .list(app.tenant, &keygate_service::AuditFilter { key: Some(id), limit: 50, ..Default::default() })
        .await
        .expect("audit");
    let refused: Vec<_> = events.iter().filter(|e| e.action == "call.refused").collect();
    assert_eq!(refused.len(), 1, "twenty refusals, one aggregated event: {events:?}");
    assert!(refused[0].details.contains("ip_not_allowed") && refused[0].details.contains("×20"));
    assert_eq!(refused[0].source_ip.as_deref(), Some("127.0.0.1"));
}

/// The test user's group grants `invoices:read:all` and `jobs:read:own`, nothing on companies.
/// Before, each 403 was counted `accepted` and left no audit row.
async fn a_call_refused_insufficient_permission_is_counted_and_audited_as_a_refusal_not_as_accepted(app: TestApp) {
    let (id, key) = app.issue(&["127.0.0.0/8"], None).await;
    let get = |path: &'static str| app.client.get(app.url(path)).bearer_auth(key.expose()).send();
    for _ in 0..2 {
        assert_eq!(get("/rest/v1/1/views/invoices.sales").await.expect("send").status(), 200);
    }
    for _ in 0..3 {
        let r = get("/rest/v1/1/views/companies").await.expect("send");
        assert_eq!(r.status(), 403);
        assert_eq!(problem_code(r).await, "insufficient_permission");
    }
    let r = app.client.post(app.url("/rest/v1/1/companies")).bearer_auth(key.expose());
    let r = r.json(&serde_json::json!({"name": "Nope"})).send().await.expect("send");
    assert_eq!(problem_code(r).await, "insufficient_permission", "a write the key may not make");
    app.keygate.flush().await;

    let usage = app.keygate.key_usage(&Caller::CLI, app.tenant, 1).await.expect("usage");
    let mine = usage.iter().find(|u| u.key_id == id).expect("the key's usage");
    assert_eq!((mine.total("accepted"), mine.total("insufficient_permission")), (2, 4), "(accepted, refused)");
    let filter = keygate_service::AuditFilter { key: Some(id), limit: 50, ..Default::default() };
    let events = app.keygate.store_for_tests().audit().list(app.tenant, &filter).await.expect("audit");
    let refused: Vec<_> = events.iter().filter(|e| e.action == "call.refused").collect();
    assert_eq!(refused.len(), 1, "four refusals, one aggregated row: {events:?}");
    assert!(refused[0].details.starts_with("insufficient_permission") && refused[0].details.contains("(×4)"));
    assert_eq!(refused[0].source_ip.as_deref(), Some("127.0.0.1"));
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("send").text().await.expect("text");
    let refused_metric = metrics.lines().find(|l| l.contains("insufficient_permission")).unwrap_or_default();
    assert!(refused_metric.ends_with(" 4"), "{refused_metric}");
    let accepted_metric = metrics.lines().find(|l| l.starts_with("keygate_accepted_calls")).unwrap_or_default();
    assert!(accepted_metric.ends_with(" 2"), "{accepted_metric}");
}
