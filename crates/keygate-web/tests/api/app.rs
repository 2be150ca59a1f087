//! `keygate_web::app` called in process, without a server: the Public API and the rest of
//! keygate behind the same layers (request id, its span on every log line, metrics, the access
//! log).

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode},
    response::Response,
};
use keygate_web::{AccessLog, AccessLogFormat, AccessLogSettings, App, AppState, WebConfig};
use tower::ServiceExt;

use crate::helpers::spawn_app;

fn from_loopback(request: Request<Body>) -> Request<Body> {
    let mut request = request;
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    request
}

pub(crate) async fn call(app: &App, request: Request<Body>) -> Response {
    app.clone().oneshot(from_loopback(request)).await.expect("infallible")
}

pub(crate) async fn text(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

pub(crate) fn capability(key: &str, path: &str) -> Request<Body> {
    Request::get(path).header("authorization", format!("Bearer {key}")).body(Body::empty()).expect("request")
}

pub(crate) fn request_id(response: &Response) -> String {
    response.headers().get("x-request-id").expect("X-Request-Id").to_str().expect("ascii").to_owned()
}

#[tokio::test]
async fn the_whole_application_answers_in_process_and_every_answer_carries_its_own_request_id() {
    let t = spawn_app().await;
    let (_, secret) = t.issue(&["127.0.0.0/8"], None).await;
    let app = keygate_web::app(AppState::new(t.keygate.clone(), WebConfig::default()));
    let answered = call(&app, capability(secret.expose(), "/rest/v1/1/capability")).await;
    assert_eq!(answered.status(), StatusCode::OK);
    let first = request_id(&answered);
    assert!(text(answered).await.contains("\"tenant\":\"acme\""));

    let console = call(&app, Request::get("/console/login").body(Body::empty()).expect("request")).await;
    assert_eq!(console.status(), StatusCode::OK);
    let second = request_id(&console);
    assert_ne!(first, second, "each request has its own id");

    let refused = call(&app, Request::get("/rest/v1/1/capability").body(Body::empty()).expect("request")).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let third = request_id(&refused);
    let body = text(refused).await;
    assert!(body.contains(&format!("\"requestId\":\"{third}\"")), "the problem document names the header's id: {body}");

    // The routes that answer at volume keep their series at hand after the first call: a second
    // call, a status not kept at hand, and a hot route of axum's router count in the same series.
    assert_eq!(call(&app, capability(secret.expose(), "/rest/v1/1/capability")).await.status(), StatusCode::OK);
    let post = Request::post("/rest/v1/1/capability").body(Body::empty()).expect("request");
    assert_eq!(call(&app, post).await.status(), StatusCode::METHOD_NOT_ALLOWED);
    let proxy = Request::get("/v1/forward-auth").body(Body::empty()).expect("request");
    assert_eq!(call(&app, proxy).await.status(), StatusCode::UNAUTHORIZED);

    let metrics = text(call(&app, Request::get("/metrics").body(Body::empty()).expect("request")).await).await;
    for line in [
        r#"keygate_http_requests_total{route="/rest/v1/{unitId}/capability",status="200"} 2"#,
        r#"keygate_http_requests_total{route="/rest/v1/{unitId}/capability",status="401"} 1"#,
        r#"keygate_http_requests_total{route="/rest/v1/… (method not allowed)",status="405"} 1"#,
        r#"keygate_http_requests_total{route="/v1/forward-auth",status="401"} 1"#,
        r#"keygate_http_request_duration_seconds_count{route="/rest/v1/{unitId}/capability"} 3"#,
        r#"keygate_http_requests_total{route="/console/login",status="200"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_request_without_its_peer_address_is_refused_rather_than_judged_from_a_guess() {
    let t = spawn_app().await;
    let (_, secret) = t.issue(&["0.0.0.0/0"], None).await;
    let app = keygate_web::app(AppState::new(t.keygate.clone(), WebConfig::default()));
    let answered = app.oneshot(capability(secret.expose(), "/rest/v1/1/capability")).await.expect("infallible");
    assert_eq!(answered.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text(answered).await.contains("ConnectInfo"));
}

/// Log lines written as the server writes them (`KEYGATE_LOG_FORMAT=json`), kept in memory.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub(crate) fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
    }
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_id_and_the_access_log_names_the_key_but_never_the_secret() {
    let t = spawn_app().await;
    let (key_id, secret) = t.issue(&["127.0.0.0/8"], None).await;
    let captured = Captured::default();
    // The access log writes its own lines, in the JSON shape of the tracing lines around it.
    let settings = AccessLogSettings { format: AccessLogFormat::Json, ..AccessLogSettings::default() };
    let log = AccessLog::to_writer(settings, Box::new(captured.clone())).expect("access log");
    let web = WebConfig { access_log: log.clone(), ..WebConfig::default() };
    let app = keygate_web::app(AppState::new(t.keygate.clone(), web));
    let writer = captured.clone();
    // The subscriber the `keygate` binary installs, in its JSON format.
    let subscriber = keygate_web::log_subscriber(
        tracing_subscriber::EnvFilter::new("info"),
        keygate_web::LogFormat::Json,
        move || writer.clone(),
    );
    // The test's runtime has one thread: everything the app does runs under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    // A query string the access log must not repeat.
    let accepted = request_id(&call(&app, capability(secret.expose(), "/rest/v1/1/capability?x=1")).await);
    // A console form post from another site: the guard logs why it refused, inside the request.
    let cross_site = Request::post("/console/login")
        .header("origin", "https://evil.example")
        .header("host", "keygate.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("tenant=acme&email=a%40b.c&password=x"))
        .expect("request");
    let refused = call(&app, cross_site).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused = request_id(&refused);
    // A key of the tenant that is refused is named too; a key nobody has cannot be.
    t.keygate.set_key_enabled(&keygate_service::Caller::CLI, Some(t.tenant), key_id, false).await.expect("disable");
    let disabled = call(&app, capability(secret.expose(), "/rest/v1/1/capability")).await;
    assert_eq!(disabled.status(), StatusCode::UNAUTHORIZED);
    let disabled = request_id(&disabled);
    let unknown_key = keygate_domain::ApiKeySecret::generate();
    let unknown = request_id(&call(&app, capability(unknown_key.expose(), "/rest/v1/1/capability")).await);

    assert!(log.flush(std::time::Duration::from_secs(5)), "the access log's lines are written");
    let lines = captured.lines();
    let of = |id: &str| -> Vec<&serde_json::Value> { lines.iter().filter(|l| l["span"]["id"] == id).collect() };
    let access = |id: &str| {
        let found: Vec<_> = of(id).into_iter().filter(|l| l["target"] == keygate_web::ACCESS_LOG).collect();
        assert_eq!(found.len(), 1, "one access line for request {id} in {lines:#?}");
        found[0].clone()
    };
    let line = access(&accepted);
    assert_eq!(line["level"], "INFO");
    let fields = &line["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/rest/v1/{unitId}/capability", "the template, never the path or its query");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["key"], key_id.to_string());
    assert!(fields["micros"].as_u64().is_some(), "{line}");
    // New with the access log of issue 20: the client's address and the key's user.
    assert_eq!(fields["ip"], "127.0.0.1");
    assert_eq!(fields["user"], t.user.to_string());

    let guard_line =
        of(&refused).into_iter().find(|l| l["fields"]["message"] == "refused a cross-site console form post");
    assert!(guard_line.is_some(), "the guard's line carries the request's id: {lines:#?}");
    let line = access(&refused);
    assert_eq!(line["fields"]["route"], "/console/login");
    assert_eq!(line["fields"]["status"], 403);
    assert!(line["fields"].get("key").is_none(), "no key was accepted: {line}");
    let line = access(&disabled);
    assert_eq!(
        (line["fields"]["status"].clone(), line["fields"]["key"].clone()),
        (401.into(), key_id.to_string().into())
    );
    assert!(line["fields"].get("user").is_none(), "a refused call names no user: {line}");
    let line = access(&unknown);
    assert_eq!(line["fields"]["status"], 401);
    assert!(line["fields"].get("key").is_none(), "an unknown key has no id: {line}");

    let all = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(!all.contains(secret.expose()), "the key never reaches the logs");
    assert!(lines.iter().all(|l| l["span"]["id"].is_string()), "no line of these requests lacks its id: {lines:#?}");
}

#[tokio::test]
async fn a_trusted_proxys_request_id_is_kept_and_anyone_elses_is_ignored() {
    let t = spawn_app().await;
    let trusted_proxies = keygate_web::TrustedProxies::parse(&["127.0.0.1/32".to_owned()]).expect("proxies");
    let behind_proxy =
        keygate_web::app(AppState::new(t.keygate.clone(), WebConfig { trusted_proxies, ..WebConfig::default() }));
    let direct = keygate_web::app(AppState::new(t.keygate.clone(), WebConfig::default()));
    let with_id = |id: &str| {
        Request::get("/rest/v1/1/capability").header("x-request-id", id).body(Body::empty()).expect("request")
    };

    let kept = call(&behind_proxy, with_id("nginx-5f1c0e7b2a9d4c31")).await;
    assert_eq!(request_id(&kept), "nginx-5f1c0e7b2a9d4c31");
    assert!(text(kept).await.contains(r#""requestId":"nginx-5f1c0e7b2a9d4c31""#), "the problem document names it too");

    let ignored = call(&direct, with_id("chosen-by-the-client")).await;
    assert_ne!(request_id(&ignored), "chosen-by-the-client", "a client that is no trusted proxy picks no id");
    for unusable in ["has space", &"x".repeat(65)] {
        let answered = call(&behind_proxy, with_id(unusable)).await;
        let id = request_id(&answered);
        assert!(id != unusable && !id.is_empty(), "{unusable:?} is replaced by keygate's own id, not repeated");
    }
}
