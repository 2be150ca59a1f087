//! The verify endpoint for services, and forward-auth for reverse proxies.

use keygate_domain::ApiKeySecret;
use keygate_service::Caller;
use keygate_web::TrustedProxies;
use serde_json::json;

use crate::helpers::{problem_code, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_service_key_with_keys_verify_checks_another_key() {
    let app = spawn_app().await;
    let (_, service) = app.issue(&["127.0.0.0/8"], Some(&["keys:verify"])).await;
    let (id, target) = app.issue(&["203.0.113.0/24"], None).await;
    let ask = |body: serde_json::Value| {
        app.client.post(app.url("/v1/keys/verify")).bearer_auth(service.expose()).json(&body).send()
    };
    let r =
        ask(json!({"key": target.expose(), "ip": "203.0.113.5", "permission": "invoices:read"})).await.expect("send");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["valid"], true);
    assert_eq!(body["keyId"], id.0);
    assert_eq!(body["tenant"], "acme");

    let body: serde_json::Value =
        ask(json!({"key": target.expose(), "ip": "198.51.100.1"})).await.expect("send").json().await.expect("json");
    assert_eq!(body["valid"], false);
    assert_eq!(body["code"], "ip_not_allowed");
    let body: serde_json::Value =
        ask(json!({"key": target.expose(), "ip": "203.0.113.5", "permission": "companies:write"}))
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
    assert_eq!(body["code"], "insufficient_permission");

    let r = ask(json!({"key": target.expose(), "nonsense": 1})).await.expect("send");
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn a_key_without_keys_verify_may_not_use_the_verify_endpoint() {
    let app = spawn_app().await;
    let (_, plain) = app.issue(&["127.0.0.0/8"], None).await;
    let r = app
        .client
        .post(app.url("/v1/keys/verify"))
        .bearer_auth(plain.expose())
        .json(&json!({"key": ApiKeySecret::generate().expose()}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert!(r.headers()["www-authenticate"].to_str().expect("ascii").contains("insufficient_scope"));
    assert_eq!(problem_code(r).await, "insufficient_permission");
}

#[tokio::test]
async fn a_key_of_another_tenant_is_unknown_to_a_verifying_service() {
    let a = spawn_app().await;
    let (_, service) = a.issue(&["127.0.0.0/8"], Some(&["keys:verify"])).await;
    // A second tenant in the same database.
    let other = a.keygate.create_tenant(&Caller::CLI, "other", "boss@other.example", None).await.expect("tenant");
    a.keygate.set_public_api(&Caller::CLI, other.tenant, true).await.expect("on");
    let issued = a
        .keygate
        .issue_key(
            &Caller::CLI,
            other.tenant,
            keygate_service::IssueKey {
                owner: keygate_service::KeyOwner::Email("boss@other.example".into()),
                purpose: "foreign".into(),
                ip_ranges: vec!["0.0.0.0/0".into()],
                expires: None,
                scopes: None,
                units: None,
                rate_limit_per_minute: None,
            },
        )
        .await
        .expect("issue");
    let body: serde_json::Value = a
        .client
        .post(a.url("/v1/keys/verify"))
        .bearer_auth(service.expose())
        .json(&json!({"key": issued.secret.expose(), "ip": "127.0.0.1"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(body["valid"], false);
    assert_eq!(body["code"], "unknown_key");
    assert!(body["keyId"].is_null() && body["tenant"].is_null());
}

#[tokio::test]
async fn forward_auth_answers_200_with_identity_headers() {
    let app = spawn_app().await;
    let (id, key) = app.issue(&["127.0.0.0/8"], None).await;
    let r = app.client.get(app.url("/v1/forward-auth")).bearer_auth(key.expose()).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-keygate-tenant"], "acme");
    assert_eq!(r.headers()["x-keygate-key-id"], id.0.to_string().as_str());
    assert_eq!(r.headers()["x-keygate-user-id"], app.user.0.to_string().as_str());
    assert!(r.headers()["x-keygate-permissions"].to_str().expect("ascii").contains("invoices:read:all"));
    let r = app.client.get(app.url("/v1/forward-auth")).send().await.expect("send");
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn forward_auth_believes_forwarded_addresses_only_from_trusted_proxies() {
    let untrusted = spawn_app().await;
    let (_, key) = untrusted.issue(&["203.0.113.0/24"], None).await;
    let r = untrusted
        .client
        .get(untrusted.url("/v1/forward-auth"))
        .bearer_auth(key.expose())
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403, "a client cannot pick its own address");

    let trusted = spawn_app_with(TrustedProxies::parse(&["127.0.0.1".into()]).expect("valid")).await;
    let (_, key) = trusted.issue(&["203.0.113.0/24"], None).await;
    let r = trusted
        .client
        .get(trusted.url("/v1/forward-auth"))
        .bearer_auth(key.expose())
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-uri", "/rest/v1/1/views/jobs")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}
