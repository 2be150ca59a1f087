//! The verify endpoint for services, and forward-auth for reverse proxies.

use keygate_domain::{ApiKeySecret, UnitId};
use keygate_service::{Caller, IssueKey, KeyOwner};
use keygate_web::TrustedProxies;
use serde_json::json;

use crate::helpers::{USER, problem_code, spawn_app, spawn_app_with};

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
    let problem: serde_json::Value = r.json().await.expect("json");
    assert_eq!(problem["code"], "insufficient_permission");
    // Like every other 403, it says what is missing.
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("keys:verify")), "{problem}");
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
                ..IssueKey::default()
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

/// issue 17, item 9: forward-auth read the unit of `/rest/v1/{unitId}/…` only in its plain
/// spelling and judged every other spelling as a call without a unit, so a unit-1 key passed for
/// paths that an upstream reads as unit 2. Seen failing before the fix: 7 of these 8 were 200.
#[tokio::test]
async fn forward_auth_refuses_a_public_api_uri_whose_unit_it_cannot_read_and_never_judges_it_without_one() {
    let app = spawn_app_with(TrustedProxies::parse(&["127.0.0.1".into()]).expect("valid")).await;
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
            rate_limit_per_minute: Some(1_000_000),
            ..IssueKey::default()
        })
        .await;
    let ask = |uri: &'static str| {
        app.client.get(app.url("/v1/forward-auth")).bearer_auth(key.expose()).header("x-forwarded-uri", uri).send()
    };
    // Eight spellings of a unit-2 path, as an upstream (or the proxy in front of it) may read them.
    let unit_two = [
        "/rest/v1/%32/views/jobs",            // a percent-escaped digit
        "/rest/v1/2;jsessionid=x/views/jobs", // `;` parameters, dropped by servlet containers
        "/REST/v1/2/views/jobs",              // case, ignored by case-insensitive routers
        "/rest/v1/1/../2/views/jobs",         // a dot segment (RFC 3986 removes it)
        "//rest/v1/2/views/jobs",             // a double slash (nginx's merge_slashes)
        "/rest/v1/./2/views/jobs",            // a `.` segment
        "/rest/v1/1/%2e%2e/2/views/jobs",     // an escaped dot segment
        "/rest/v1%2f2/views/jobs",            // an escaped slash
    ];
    for uri in unit_two {
        let r = ask(uri).await.expect("send");
        assert_eq!(r.status(), 400, "{uri}: a unit-1 key must not pass for a path that can read as unit 2");
        assert!(r.headers().get("x-keygate-key-id").is_none(), "{uri}");
        assert_eq!(problem_code(r).await, "unreadable_unit", "{uri}");
    }
    // Through the proxy's other header name too.
    let r = app
        .client
        .get(app.url("/v1/forward-auth"))
        .bearer_auth(key.expose())
        .header("x-original-uri", "/rest/v1/%32/views/jobs")
        .send()
        .await
        .expect("send");
    assert_eq!(problem_code(r).await, "unreadable_unit");

    // The plain spellings are judged as before.
    let r = ask("/rest/v1/2/views/jobs").await.expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(problem_code(r).await, "unit_not_allowed");
    for uri in ["/rest/v1/1/views/jobs", "/rest/v1/1/views/my%20jobs?limit=5", "/rest/v1/1/capability", "/elsewhere/2"]
    {
        let r = ask(uri).await.expect("send");
        assert_eq!(r.status(), 200, "{uri}");
    }
}

/// A problem's `type` pointed to a domain keygate does not serve: it is keygate's own page now,
/// which says what the code means; an unknown code is a 404 problem.
#[tokio::test]
async fn a_problems_type_is_a_page_keygate_serves_about_its_code() {
    let app = spawn_app().await;
    let refused = app
        .client
        .get(app.url("/rest/v1/1/capability"))
        .bearer_auth(ApiKeySecret::generate().expose())
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 401);
    let problem: serde_json::Value = refused.json().await.expect("json");
    let kind = problem["type"].as_str().expect("type");
    assert_eq!(kind, "/problems/unknown_key");
    let page = app.client.get(app.url(kind)).send().await.expect("send");
    assert_eq!(page.status(), 200);
    let text = page.text().await.expect("text");
    assert!(text.starts_with("unknown_key") && text.contains("HTTP status 401"), "{text}");
    let unknown = app.client.get(app.url("/problems/no_such_code")).send().await.expect("send");
    assert_eq!(unknown.status(), 404);
    assert_eq!(problem_code(unknown).await, "not_found");
}

/// The page a problem's `type` points to was plain text for everyone: a browser gets an HTML page
/// now that says what the code means and what to do, and a refusal's document carries a `detail`
/// (it had none).
#[tokio::test]
async fn a_browser_following_a_problems_type_gets_a_page_about_its_code_and_the_refusal_says_what_to_do() {
    let app = spawn_app().await;
    let refused = app.client.get(app.url("/rest/v1/1/capability")).send().await.expect("send");
    assert_eq!(refused.status(), 401);
    let problem: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(problem["code"], "missing_credentials");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("Authorization: Bearer"), "the refusal has no detail that says what to do: {problem}");
    let kind = problem["type"].as_str().expect("type");
    let page = app.client.get(app.url(kind)).header("accept", "text/html,*/*;q=0.8").send().await.expect("send");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/html; charset=utf-8"));
    let html = page.text().await.expect("text");
    assert!(html.contains("<h1><code>missing_credentials</code></h1>") && html.contains("What to do"), "{html}");
    assert!(html.contains("<strong>401</strong>"), "{html}");
}
