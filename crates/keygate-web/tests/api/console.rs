//! The console over real HTTP: log-in, session cookie, throttling, cross-site refusal, the
//! Configurator-only Public API page, keys shown once, and usage counted per key and day.

use keygate_service::{Caller, CreateUser};
use keygate_web::TrustedProxies;
use reqwest::{StatusCode, redirect::Policy};
use secrecy::SecretString;

use crate::helpers::{TENANT, TestApp, USER, spawn_app, spawn_app_with};

const ADMIN: &str = "ada@acme.example";
const CLERK: &str = "clerk@acme.example";
const PASSWORD: &str = "correct horse battery staple";
const PUBLIC_API: &str = "/console/configuration/system/integrations/public-api";

/// A personal user with a password; `groups` decides what they may do in the console.
async fn person(app: &TestApp, email: &str, groups: &[&str]) {
    app.keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            CreateUser {
                email: email.into(),
                name: "Person".into(),
                category: "personal".into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                units: None,
                password: Some(SecretString::from(PASSWORD)),
            },
        )
        .await
        .expect("user");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().expect("client")
}

async fn log_in(app: &TestApp, email: &str, password: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request =
        client().post(app.url("/console/login")).form(&[("tenant", TENANT), ("email", email), ("password", password)]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("log-in request")
}

fn set_cookie(response: &reqwest::Response) -> String {
    response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("a Set-Cookie header").to_owned()
}

/// `keygate_session=…` from a successful log-in, ready for a `Cookie` header.
async fn session(app: &TestApp, email: &str) -> String {
    let response = log_in(app, email, PASSWORD, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "log-in of {email} failed");
    set_cookie(&response).split(';').next().expect("cookie pair").to_owned()
}

async fn get(app: &TestApp, path: &str, cookie: &str) -> (StatusCode, String) {
    let response = client().get(app.url(path)).header("cookie", cookie).send().await.expect("get");
    (response.status(), response.text().await.expect("body"))
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no hidden field {name}")) + marker.len();
    html[start..].split('"').next().expect("value").to_owned()
}

async fn api_is_on(app: &TestApp) -> bool {
    app.keygate.tenant_by_id(app.tenant).await.expect("tenant").policy.public_api
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    person(&app, ADMIN, &["Configurator"]).await;
    let cookie = session(&app, ADMIN).await;
    let (_, page) = get(&app, PUBLIC_API, &cookie).await;
    let csrf = hidden(&page, "csrf");
    let form = [("csrf", csrf.as_str()), ("enabled", "off")];
    let url = app.url(&format!("{PUBLIC_API}/switch"));

    for (header, value) in [("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")] {
        let response =
            client().post(&url).header("cookie", &cookie).header(header, value).form(&form).send().await.expect("post");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert!(response.text().await.expect("body").contains("Cross-site request refused"));
        assert!(api_is_on(&app).await, "a cross-site post switched the API off");
    }

    let without_token = [("csrf", "forged"), ("enabled", "off")];
    let response = client().post(&url).header("cookie", &cookie).form(&without_token).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "a form without the session's CSRF token");
    assert!(api_is_on(&app).await);

    let same_origin = format!("http://{}", app.addr);
    let response = client()
        .post(&url)
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .header("origin", same_origin)
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!api_is_on(&app).await, "the console's own form did not switch the API off");
}

#[tokio::test]
async fn a_cross_site_log_in_form_is_refused() {
    let app = spawn_app().await;
    person(&app, ADMIN, &["Configurator"]).await;
    let response = log_in(&app, ADMIN, PASSWORD, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn a_user_outside_configurator_gets_a_403_page_that_says_why() {
    let app = spawn_app().await;
    person(&app, CLERK, &[]).await;
    let cookie = session(&app, CLERK).await;
    let (status, body) = get(&app, PUBLIC_API, &cookie).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Only Configurators may manage the Public API"), "{body}");
    assert!(body.contains("Configurator group"));
    assert!(!body.contains("Generate API key"));
}

#[tokio::test]
async fn pages_without_a_session_send_the_browser_to_the_log_in_page() {
    let app = spawn_app().await;
    let response = client().get(app.url(PUBLIC_API)).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/console/login");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_same_site_strict_for_the_whole_site_and_expires() {
    let app = spawn_app().await;
    person(&app, ADMIN, &["Configurator"]).await;
    let cookie = set_cookie(&log_in(&app, ADMIN, PASSWORD, &[]).await);
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    for wanted in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(attributes.contains(&wanted), "{wanted} missing from {cookie}");
    }
    assert!(!attributes.contains(&"Secure"), "plain HTTP on loopback cannot use a Secure cookie: {cookie}");
}

#[tokio::test]
async fn the_session_cookie_is_secure_on_loopback_too_when_the_setting_says_always() {
    let web = keygate_web::WebConfig { cookie_secure: keygate_web::CookieSecure::Always, ..Default::default() };
    let app = crate::helpers::spawn_app_with_web(web).await;
    person(&app, ADMIN, &["Configurator"]).await;
    let cookie = set_cookie(&log_in(&app, ADMIN, PASSWORD, &[]).await);
    assert!(cookie.split(';').any(|a| a.trim() == "Secure"), "{cookie}");
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_a_trusted_proxy_that_terminated_https() {
    let app = spawn_app_with(TrustedProxies::parse(&["127.0.0.1".into()]).expect("valid")).await;
    person(&app, ADMIN, &["Configurator"]).await;
    let cookie = set_cookie(&log_in(&app, ADMIN, PASSWORD, &[("x-forwarded-proto", "https")]).await);
    assert!(cookie.split(';').any(|a| a.trim() == "Secure"), "{cookie}");

    let untrusted = spawn_app().await;
    person(&untrusted, ADMIN, &["Configurator"]).await;
    let cookie = set_cookie(&log_in(&untrusted, ADMIN, PASSWORD, &[("x-forwarded-proto", "https")]).await);
    assert!(!cookie.split(';').any(|a| a.trim() == "Secure"), "an untrusted peer's header was believed: {cookie}");
}

#[tokio::test]
async fn each_log_in_gets_a_new_session_id_and_log_out_ends_it() {
    let app = spawn_app().await;
    person(&app, ADMIN, &["Configurator"]).await;
    let first = session(&app, ADMIN).await;
    let second = session(&app, ADMIN).await;
    assert_ne!(first, second);
    let (status, page) = get(&app, "/console/configuration", &second).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = hidden(&page, "csrf");
    let response = client()
        .post(app.url("/console/logout"))
        .header("cookie", &second)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&response).contains("Max-Age=0"));
    let (status, _) = get(&app, "/console/configuration", &second).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the logged-out session still opens pages");
}

#[tokio::test]
async fn ten_wrong_passwords_throttle_the_account_even_for_the_right_password() {
    let app = spawn_app().await;
    person(&app, ADMIN, &["Configurator"]).await;
    for attempt in 1..=10 {
        let response = log_in(&app, ADMIN, "wrong horse battery staple", &[]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let response = log_in(&app, ADMIN, PASSWORD, &[]).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    assert!(response.headers().get("set-cookie").is_none());
    let body = response.text().await.expect("body");
    assert!(body.contains("Too many failed log-ins"), "{body}");
}

#[tokio::test]
async fn a_programmatic_user_without_a_password_cannot_log_in() {
    let app = spawn_app().await;
    for password in ["", "anything at all here"] {
        let response = log_in(&app, USER, password, &[]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get("set-cookie").is_none());
    }
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    person(&app, ADMIN, &["Configurator"]).await;
    let wrong = log_in(&app, ADMIN, "wrong horse battery staple", &[]).await;
    let unknown = log_in(&app, "nobody@acme.example", "wrong horse battery staple", &[]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), wrong.status());
    let wrong = wrong.text().await.expect("body").replace(ADMIN, "EMAIL");
    let unknown = unknown.text().await.expect("body").replace("nobody@acme.example", "EMAIL");
    assert_eq!(wrong, unknown);
    assert!(wrong.contains("The tenant, email or password is wrong."));
}

#[tokio::test]
async fn a_generated_key_is_shown_once_and_a_resent_form_does_not_show_it_again() {
    let app = spawn_app().await;
    person(&app, ADMIN, &["Configurator"]).await;
    let cookie = session(&app, ADMIN).await;
    let (_, page) = get(&app, PUBLIC_API, &cookie).await;
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("nonce", hidden(&page, "nonce")),
        ("owner", app.user.0.to_string()),
        ("purpose", "invoice export".to_owned()),
        ("ranges", "127.0.0.1/32".to_owned()),
    ];
    let post = || client().post(app.url(&format!("{PUBLIC_API}/keys"))).header("cookie", &cookie).form(&form);
    let response = post().send().await.expect("generate");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = response.text().await.expect("body");
    assert!(body.contains("It will not be shown again"));
    let key = hidden_key(&body);
    assert_eq!(app.capability(&key).await.status(), StatusCode::OK);

    let again = post().send().await.expect("resend");
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let again = again.text().await.expect("body");
    assert!(!again.contains(&key) && again.contains("already sent"));
    let (_, page) = get(&app, PUBLIC_API, &cookie).await;
    assert!(!page.contains(&key));
    assert_eq!(
        app.keygate.list_keys(&Caller::CLI, app.tenant).await.expect("keys").len(),
        1,
        "the resent form issued a key"
    );
}

fn hidden_key(html: &str) -> String {
    let start = html.find("value=\"kg_").expect("a key on the page") + "value=\"".len();
    html[start..].split('"').next().expect("key").to_owned()
}

#[tokio::test]
async fn any_address_needs_the_debugging_only_confirmation() {
    let app = spawn_app().await;
    person(&app, ADMIN, &["Configurator"]).await;
    let cookie = session(&app, ADMIN).await;
    let (_, page) = get(&app, PUBLIC_API, &cookie).await;
    let form = [
        ("csrf", hidden(&page, "csrf")),
        ("nonce", hidden(&page, "nonce")),
        ("owner", "me".to_owned()),
        ("purpose", "debugging".to_owned()),
        ("ranges", "0.0.0.0/0".to_owned()),
    ];
    let response = client()
        .post(app.url(&format!("{PUBLIC_API}/keys")))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.expect("body").contains("for debugging only"));
    assert!(app.keygate.list_keys(&Caller::CLI, app.tenant).await.expect("keys").is_empty());
}

#[tokio::test]
async fn accepted_and_refused_calls_are_counted_per_key_and_day() {
    let app = spawn_app().await;
    let (id, key) = app.issue(&["127.0.0.1/32"], None).await;
    assert_eq!(app.capability(key.expose()).await.status(), StatusCode::OK);
    assert_eq!(app.capability(key.expose()).await.status(), StatusCode::OK);
    app.keygate.set_key_enabled(&Caller::CLI, Some(app.tenant), id, false).await.expect("disable");
    assert_eq!(app.capability(key.expose()).await.status(), StatusCode::UNAUTHORIZED);
    app.keygate.flush().await;
    let usage = app.keygate.key_usage(&Caller::CLI, app.tenant, 30).await.expect("usage");
    let mine = usage.iter().find(|u| u.key_id == id).expect("the key's usage");
    assert_eq!(mine.total("accepted"), 2);
    assert_eq!(mine.total("key_disabled"), 1);
    assert_eq!(mine.days.len(), 30);
    assert_eq!(mine.days[29].values().sum::<i64>(), 3, "today's calls are on the last day");
}

#[tokio::test]
async fn rolling_a_key_in_the_console_shows_the_new_key_once_and_keeps_the_old_one_working_for_the_overlap() {
    let app = spawn_app().await;
    person(&app, ADMIN, &["Configurator"]).await;
    let (old_id, old_key) = app.issue(&["127.0.0.1/32"], None).await;
    let cookie = session(&app, ADMIN).await;
    let confirm = format!("{PUBLIC_API}/keys/{old_id}/roll");
    let (status, page) = get(&app, &confirm, &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("The old key keeps working for"));
    let form = [("csrf", hidden(&page, "csrf")), ("nonce", hidden(&page, "nonce")), ("overlap_hours", "24".to_owned())];
    let response = client().post(app.url(&confirm)).header("cookie", &cookie).form(&form).send().await.expect("roll");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.expect("body");
    assert!(body.contains("It will not be shown again"));
    let new_key = hidden_key(&body);
    assert_ne!(new_key, old_key.expose());
    assert_eq!(app.capability(&new_key).await.status(), StatusCode::OK);
    assert_eq!(
        app.capability(old_key.expose()).await.status(),
        StatusCode::OK,
        "the old key stops before the overlap ends"
    );
    let again = client().post(app.url(&confirm)).header("cookie", &cookie).form(&form).send().await.expect("resend");
    assert!(!again.text().await.expect("body").contains(&new_key));
}

#[tokio::test]
async fn the_users_page_is_for_user_configurators_only() {
    let app = spawn_app().await;
    person(&app, ADMIN, &["Configurator"]).await;
    person(&app, "hr@acme.example", &["User configurator"]).await;
    let (status, body) = get(&app, "/console/users", &session(&app, ADMIN).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("User configurator group"));
    let (status, body) = get(&app, "/console/users", &session(&app, "hr@acme.example").await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(USER) && body.contains("Programmatic"), "the programmatic user is not listed and marked");
}
