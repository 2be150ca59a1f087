//! The operator plane over HTTP (issue 21), on SQLite and PostgreSQL: an operator credential
//! creates a tenant with its administrator, lists tenants, switches a tenant's API off and removes
//! a tenant in two steps; a tenant's key (a Supervisor's too) is refused on every operator route
//! and an operator credential on every tenant route; a revoked credential is refused; failures are
//! throttled like bad keys; no secret reaches a log.

use axum::{body::Body, http::Request};
use keygate_domain::Timestamp;
use keygate_service::{Backend, Caller, IssueKey, KeyOwner, LoginRequest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, key_for, problem_code, spawn_app, spawn_app_on};

on_both_backends!(
    an_operator_creates_a_tenant_whose_administrator_logs_in_and_is_given_a_key,
    a_bad_field_or_a_taken_slug_creates_nothing,
    an_operator_lists_tenants_in_pages_of_at_most_200_with_a_link,
    switching_a_tenants_api_off_refuses_its_keys_at_once,
    a_tenant_is_removed_in_two_steps_and_nothing_of_it_remains,
    a_tenant_key_even_a_supervisors_is_refused_on_every_operator_route,
    an_operator_credential_is_refused_on_every_tenant_route,
    a_revoked_operator_credential_is_refused,
);

async fn operator(app: &TestApp) -> String {
    app.keygate.issue_operator(&Caller::CLI, "sign-up service").await.expect("issue").secret.expose().to_owned()
}

async fn send(app: &TestApp, method: Method, path: &str, bearer: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

fn new_tenant(slug: &str, password: Option<&str>) -> Value {
    let mut admin = json!({"email": format!("owner@{slug}.example"), "name": "Grace Owner"});
    if let Some(p) = password {
        admin["password"] = json!(p);
    }
    json!({"slug": slug, "name": format!("{slug} Ltd"), "admin": admin})
}

async fn an_operator_creates_a_tenant_whose_administrator_logs_in_and_is_given_a_key(app: TestApp) {
    let op = operator(&app).await;
    let created = send(
        &app,
        Method::POST,
        "/v1/operator/tenants",
        &op,
        Some(new_tenant("globex", Some("correct horse battery"))),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.expect("json");
    assert_eq!(body["tenant"]["slug"], "globex");
    assert_eq!(body["tenant"]["name"], "globex Ltd");
    assert_eq!(body["tenant"]["publicApi"], false, "as `keygate init` leaves it");
    assert_eq!(body["admin"]["email"], "owner@globex.example");
    assert_eq!(body["admin"]["name"], "Grace Owner");
    assert_eq!(body["admin"]["hasPassword"], true);
    assert_eq!(body["admin"]["groups"], json!(["Configurator", "Supervisor", "User configurator"]));
    assert!(body.get("generatedPassword").is_none(), "a password was given");
    // The administrator logs in to the console with it …
    let login = LoginRequest {
        tenant: "globex".into(),
        email: "owner@globex.example".into(),
        password: "correct horse battery".to_owned().into(),
        ip: None,
    };
    app.keygate.login(login).await.expect("the new administrator logs in");
    // … and the command line gives them a key.
    let tenant = app.keygate.tenant("globex").await.expect("tenant").policy.id;
    assert_eq!(body["tenant"]["id"], tenant.0);
    let issued = app
        .keygate
        .issue_key(
            &Caller::CLI,
            tenant,
            IssueKey {
                owner: KeyOwner::Email("owner@globex.example".into()),
                purpose: "first key".into(),
                ip_ranges: vec!["127.0.0.0/8".into()],
                ..IssueKey::default()
            },
        )
        .await
        .expect("a key for the new administrator");
    assert!(issued.secret.expose().starts_with("kg_"));
    // Without a password, one is generated and answered once.
    let created = send(&app, Method::POST, "/v1/operator/tenants", &op, Some(new_tenant("initech", None))).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.expect("json");
    let generated = body["generatedPassword"].as_str().expect("generated password");
    assert!(generated.chars().count() >= 12, "{generated}");
    let login = LoginRequest {
        tenant: "initech".into(),
        email: "owner@initech.example".into(),
        password: generated.to_owned().into(),
        ip: None,
    };
    app.keygate.login(login).await.expect("the generated password logs in");
}

async fn a_bad_field_or_a_taken_slug_creates_nothing(app: TestApp) {
    let op = operator(&app).await;
    let taken =
        send(&app, Method::POST, "/v1/operator/tenants", &op, Some(new_tenant("acme", Some("correct horse battery"))))
            .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert_eq!(problem_code(taken).await, "conflict");
    let mut bad_email = new_tenant("globex", Some("correct horse battery"));
    bad_email["admin"]["email"] = json!("not an email");
    let short_password = new_tenant("globex", Some("short"));
    let bad_slug = new_tenant("Globex Inc", Some("correct horse battery"));
    for body in [bad_email, short_password, bad_slug] {
        let refused = send(&app, Method::POST, "/v1/operator/tenants", &op, Some(body.clone())).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(problem_code(refused).await, "invalid_input");
    }
    let unknown_field = json!({"slug": "globex", "name": "Globex", "admin": {"email": "a@globex.example", "name": "A"}, "plan": "gold"});
    let refused = send(&app, Method::POST, "/v1/operator/tenants", &op, Some(unknown_field)).await;
    assert_eq!(problem_code(refused).await, "invalid_input");
    let page: Value = send(&app, Method::GET, "/v1/operator/tenants", &op, None).await.json().await.expect("json");
    assert_eq!(page["items"].as_array().expect("items").len(), 1, "only acme: {page}");
    assert!(app.keygate.tenant("globex").await.is_err(), "nothing half-written");
}

async fn an_operator_lists_tenants_in_pages_of_at_most_200_with_a_link(app: TestApp) {
    let op = operator(&app).await;
    for slug in ["beta", "gamma", "delta"] {
        let created = send(
            &app,
            Method::POST,
            "/v1/operator/tenants",
            &op,
            Some(new_tenant(slug, Some("correct horse battery"))),
        )
        .await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let first = send(&app, Method::GET, "/v1/operator/tenants?limit=3", &op, None).await;
    assert_eq!(first.status(), StatusCode::OK);
    let link = first.headers().get("link").expect("Link").to_str().expect("ascii").to_owned();
    let body: Value = first.json().await.expect("json");
    let slugs: Vec<&str> =
        body["items"].as_array().expect("items").iter().map(|t| t["slug"].as_str().expect("slug")).collect();
    assert_eq!(slugs, ["acme", "beta", "delta"]);
    assert_eq!(body["nextCursor"], "delta");
    assert_eq!(link, "</v1/operator/tenants?limit=3&cursor=delta>; rel=\"next\"");
    let next = link.trim_start_matches('<').split('>').next().expect("target");
    let second = send(&app, Method::GET, next, &op, None).await;
    assert!(second.headers().get("link").is_none(), "the last page has no next");
    let body: Value = second.json().await.expect("json");
    assert_eq!(body["items"].as_array().expect("items").len(), 1);
    assert_eq!(body["items"][0]["slug"], "gamma");
    assert_eq!(body["nextCursor"], Value::Null);
    assert_eq!(
        send(&app, Method::GET, "/v1/operator/tenants?limit=200", &op, None).await.status(),
        StatusCode::OK,
        "200 is the largest page"
    );
    for (query, code) in
        [("limit=201", "invalid_parameter"), ("limit=0", "invalid_parameter"), ("page=2", "unknown_parameter")]
    {
        let refused = send(&app, Method::GET, &format!("/v1/operator/tenants?{query}"), &op, None).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(problem_code(refused).await, code, "{query}");
    }
}

async fn switching_a_tenants_api_off_refuses_its_keys_at_once(app: TestApp) {
    let op = operator(&app).await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    assert_eq!(app.capability(key.expose()).await.status(), StatusCode::OK);
    let off = send(&app, Method::POST, "/v1/operator/tenants/acme/api-off", &op, None).await;
    assert_eq!(off.status(), StatusCode::OK);
    let body: Value = off.json().await.expect("json");
    assert_eq!(body["slug"], "acme");
    assert_eq!(body["publicApi"], false);
    let refused = app.capability(key.expose()).await;
    assert_eq!(problem_code(refused).await, "api_disabled");
    let unknown = send(&app, Method::POST, "/v1/operator/tenants/nobody/api-off", &op, None).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // Audited with the operator as the actor, in the tenant's log.
    let events = app
        .keygate
        .store_for_tests()
        .audit()
        .list(
            app.tenant,
            &keygate_service::AuditFilter { action: Some("tenant.api".into()), limit: 10, ..Default::default() },
        )
        .await
        .expect("audit");
    let events: Vec<_> = events.into_iter().filter(|e| e.action == "tenant.api_disabled").collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_kind, "operator");
    assert!(events[0].actor_label.starts_with("operator sign-up service ("), "{}", events[0].actor_label);
}

async fn a_tenant_is_removed_in_two_steps_and_nothing_of_it_remains(app: TestApp) {
    let op = operator(&app).await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    assert_eq!(app.capability(key.expose()).await.status(), StatusCode::OK);
    app.keygate.flush().await;
    let before = app.keygate.store_for_tests().operators().rows_of_tenant(app.tenant).await.expect("rows");
    assert!(before.iter().map(|(_, n)| n).sum::<i64>() > 10, "{before:?}");
    // Without asking first, or without a confirmation: nothing is removed.
    let unasked = send(&app, Method::DELETE, "/v1/operator/tenants/acme?confirmation=kgop_nothing", &op, None).await;
    assert_eq!(problem_code(unasked).await, "conflict");
    let asked = send(&app, Method::POST, "/v1/operator/tenants/acme/removal", &op, None).await;
    assert_eq!(asked.status(), StatusCode::OK);
    let body: Value = asked.json().await.expect("json");
    let confirmation = body["confirmation"].as_str().expect("confirmation").to_owned();
    let expires = Timestamp::parse(body["expiresAt"].as_str().expect("expiresAt")).expect("RFC 3339");
    let in_ten_minutes = Timestamp::now().plus_millis(600_000).0 - expires.0;
    assert!((-5_000..=5_000).contains(&in_ten_minutes), "valid for 10 minutes: {body}");
    let missing = send(&app, Method::DELETE, "/v1/operator/tenants/acme", &op, None).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem_code(missing).await, "invalid_parameter");
    let wrong = keygate_domain::OperatorSecret::generate();
    let wrong =
        send(&app, Method::DELETE, &format!("/v1/operator/tenants/acme?confirmation={}", wrong.expose()), &op, None)
            .await;
    assert_eq!(wrong.status(), StatusCode::CONFLICT);
    assert_eq!(app.capability(key.expose()).await.status(), StatusCode::OK, "a refused removal removes nothing");
    let path = format!("/v1/operator/tenants/acme?confirmation={confirmation}");
    let removed = send(&app, Method::DELETE, &path, &op, None).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    // Its keys are refused at once; nothing of it remains in any table.
    assert_eq!(problem_code(app.capability(key.expose()).await).await, "unknown_key");
    app.keygate.flush().await;
    let after = app.keygate.store_for_tests().operators().rows_of_tenant(app.tenant).await.expect("rows");
    assert!(after.iter().all(|(_, n)| *n == 0), "no row of the tenant remains: {after:?}");
    assert!(after.len() >= before.len());
    // Used: refused, also after a tenant of the same slug is created again.
    assert_eq!(send(&app, Method::DELETE, &path, &op, None).await.status(), StatusCode::NOT_FOUND);
    let again =
        send(&app, Method::POST, "/v1/operator/tenants", &op, Some(new_tenant("acme", Some("correct horse battery"))))
            .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(send(&app, Method::DELETE, &path, &op, None).await.status(), StatusCode::CONFLICT);
    assert!(app.keygate.tenant("acme").await.is_ok(), "the new acme stays");
}

/// Every operator route, with a body where it takes one.
fn operator_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/v1/operator/tenants", None),
        (Method::POST, "/v1/operator/tenants", Some(new_tenant("globex", Some("correct horse battery")))),
        (Method::POST, "/v1/operator/tenants/acme/api-off", None),
        (Method::POST, "/v1/operator/tenants/acme/removal", None),
        (Method::DELETE, "/v1/operator/tenants/acme?confirmation=kgop_x", None),
    ]
}

async fn a_tenant_key_even_a_supervisors_is_refused_on_every_operator_route(app: TestApp) {
    let supervisor = key_for(&app, "admin@acme.example", None).await;
    assert_eq!(app.capability(supervisor.expose()).await.status(), StatusCode::OK, "a valid key of the tenant");
    let routes = operator_routes();
    assert_eq!(routes.len(), 5);
    for (method, path, body) in routes {
        let refused = send(&app, method.clone(), path, supervisor.expose(), body).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(refused.headers().get("www-authenticate").is_some());
        assert_eq!(problem_code(refused).await, "malformed_key", "{method} {path}");
    }
    for (method, path, body) in operator_routes() {
        let refused = app.client.request(method.clone(), app.url(path)).json(&body).send().await.expect("request");
        assert_eq!(problem_code(refused).await, "missing_credentials", "{method} {path} without a credential");
    }
    assert!(app.keygate.tenant("globex").await.is_err(), "nothing was created");
    assert_eq!(app.capability(supervisor.expose()).await.status(), StatusCode::OK, "nothing was switched off");
}

async fn an_operator_credential_is_refused_on_every_tenant_route(app: TestApp) {
    let op = operator(&app).await;
    for path in ["/rest/v1/1/capability", "/rest/v1/1/invoices"] {
        let refused = send(&app, Method::GET, path, &op, None).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(problem_code(refused).await, "malformed_key", "{path}");
    }
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    let verify = send(&app, Method::POST, "/v1/keys/verify", &op, Some(json!({"key": key.expose()}))).await;
    assert_eq!(verify.status(), StatusCode::UNAUTHORIZED);
    for path in ["/v1/keys", "/v1/keys/self", "/v1/users", "/v1/settings", "/v1/audit-events"] {
        let refused = send(&app, Method::GET, path, &op, None).await;
        assert!(
            matches!(
                refused.status(),
                StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ),
            "{path}: {}",
            refused.status()
        );
        assert_ne!(refused.status(), StatusCode::OK);
    }
    let console = app.client.get(app.url("/console/configuration")).bearer_auth(&op).send().await.expect("request");
    assert!(console.url().path() == "/console/login", "the console asks for a log-in: {}", console.url());
}

async fn a_revoked_operator_credential_is_refused(app: TestApp) {
    let issued = app.keygate.issue_operator(&Caller::CLI, "old sign-up").await.expect("issue");
    let op = issued.secret.expose().to_owned();
    assert_eq!(send(&app, Method::GET, "/v1/operator/tenants", &op, None).await.status(), StatusCode::OK);
    app.keygate.revoke_operator(&Caller::CLI, issued.record.id).await.expect("revoke");
    let refused = send(&app, Method::GET, "/v1/operator/tenants", &op, None).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(problem_code(refused).await, "unknown_key");
}

#[tokio::test]
async fn failed_operator_authentications_are_throttled_like_bad_keys() {
    let app = spawn_app().await;
    let op = operator(&app).await;
    let limit = app.keygate.config().max_failures_per_ip;
    assert_eq!(limit, 100);
    let mut first_throttled = None;
    for i in 1..=limit + 5 {
        let bad = keygate_domain::OperatorSecret::generate();
        let refused = send(&app, Method::GET, "/v1/operator/tenants", bad.expose(), None).await;
        if refused.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(refused.headers().get("retry-after").is_some());
            first_throttled = Some(i);
            break;
        }
        assert_eq!(problem_code(refused).await, "unknown_key");
    }
    let at = first_throttled.expect("the source is throttled");
    assert!(at > limit / 2 && at <= limit + 1, "throttled after about {limit} failures, at {at}");
    let blocked = send(&app, Method::GET, "/v1/operator/tenants", &op, None).await;
    assert_eq!(problem_code(blocked).await, "too_many_failures", "even a valid credential waits");
}

#[tokio::test]
async fn no_operator_secret_confirmation_or_password_reaches_a_log() {
    use keygate_web::{AccessLog, AccessLogFormat, AccessLogSettings, AppState, WebConfig};

    use crate::app::{Captured, call, text};
    let t = spawn_app().await;
    let op = operator(&t).await;
    let captured = Captured::default();
    let settings = AccessLogSettings { format: AccessLogFormat::Json, ..AccessLogSettings::default() };
    let log = AccessLog::to_writer(settings, Box::new(captured.clone())).expect("access log");
    let app = keygate_web::app(AppState::new(
        t.keygate.clone(),
        WebConfig { access_log: log.clone(), ..WebConfig::default() },
    ));
    let writer = captured.clone();
    let subscriber = keygate_web::log_subscriber(
        tracing_subscriber::EnvFilter::new("debug"),
        keygate_web::LogFormat::Json,
        move || writer.clone(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let request = |method: &str, path: &str, body: Option<Value>| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {op}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request")
    };
    let password = "a secret password 123";
    let created = call(&app, request("POST", "/v1/operator/tenants", Some(new_tenant("globex", Some(password))))).await;
    assert_eq!(created.status(), 201);
    let generated = call(&app, request("POST", "/v1/operator/tenants", Some(new_tenant("initech", None)))).await;
    let generated: Value = serde_json::from_str(&text(generated).await).expect("json");
    let generated = generated["generatedPassword"].as_str().expect("generated").to_owned();
    let asked: Value = serde_json::from_str(
        &text(call(&app, request("POST", "/v1/operator/tenants/globex/removal", None)).await).await,
    )
    .expect("json");
    let confirmation = asked["confirmation"].as_str().expect("confirmation").to_owned();
    let wrong = call(&app, request("DELETE", "/v1/operator/tenants/globex?confirmation=kgop_wrong", None)).await;
    assert_eq!(wrong.status(), 409);
    let path = format!("/v1/operator/tenants/globex?confirmation={confirmation}");
    assert_eq!(call(&app, request("DELETE", &path, None)).await.status(), 204);
    t.keygate.flush().await;
    assert!(log.flush(std::time::Duration::from_secs(5)), "the access log's lines are written");
    let logged = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logged.contains("/v1/operator/tenants"), "the calls were logged: {logged}");
    for secret in [&op[7..39], &confirmation[7..39], password, generated.as_str()] {
        assert!(!logged.contains(secret), "`{secret}` is in the log");
    }
}
