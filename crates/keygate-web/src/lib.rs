//! keygate's HTTP surface: the authenticated Public API, key verification for services,
//! forward-auth for reverse proxies, and ops endpoints.
//!
//! Handlers parse requests, call the service layer and shape responses; they never run SQL and
//! hold no rules of their own. Every refusal leaves through `problem`.

mod access_log;
mod app;
#[cfg(test)]
mod classification_tests;
mod client_ip;
mod console;
mod deadline;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod log_lines;
mod manage;
mod metrics;
pub mod openapi;
mod ops;
mod problem;
mod problem_code;
mod problem_page;
mod request_id;
mod request_scope;
mod rest;
mod server;
mod verify;

use std::sync::Arc;

use axum::{
    Router,
    routing::{any, get, post},
};
use keygate_service::Keygate;

pub use access_log::{AccessLog, AccessLogDestination, AccessLogFormat, AccessLogSettings};
pub use app::{ACCESS_LOG, App, AppFuture, app};
pub use client_ip::TrustedProxies;
pub use log_lines::{LogFormat, log_subscriber};
pub use problem_code::ProblemCode;
use request_id::{RequestId, RequestIds};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: TrustedProxies,
    /// How long a connection may go without progress while none of its requests is being
    /// handled: a request's head must arrive within it, and an idle keep-alive connection is
    /// closed after it.
    pub idle_timeout: std::time::Duration,
    /// How long a request's body may take to arrive in full, from the end of its head. A body
    /// late past it ends the request and its connection.
    pub body_timeout: std::time::Duration,
    /// Connections served at once; more wait in the kernel's backlog (the accept loop waits).
    /// Lowered at the start to what the process's file-descriptor limit leaves room for.
    pub max_connections: usize,
    /// Connections one address (an IPv6 /64) may hold at once; more are closed at once.
    pub max_connections_per_address: usize,
    /// Whether the console's session cookie is marked `Secure`.
    pub cookie_secure: CookieSecure,
    /// The access log: off here (tests, embedding); the `keygate` binary turns it on.
    pub access_log: AccessLog,
}

/// When the session cookie carries `Secure` (setting `cookie_secure`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CookieSecure {
    /// Always, except when the socket peer is a loopback address and no trusted proxy forwarded
    /// the request: a browser on the same machine speaking plain HTTP (a developer's).
    #[default]
    Auto,
    Always,
    /// Never: only for plain-HTTP deployments that accept the risk.
    Never,
}

impl std::str::FromStr for CookieSecure {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(format!("cookie_secure is auto, always or never, not `{other}`")),
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: TrustedProxies::default(),
            idle_timeout: std::time::Duration::from_secs(30),
            body_timeout: std::time::Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_address: 256,
            cookie_secure: CookieSecure::Auto,
            access_log: AccessLog::off(),
        }
    }
}

/// Everything a handler needs. Passed, never global. One `Arc`, so extracting it per request
/// costs one reference count.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares between requests.
#[derive(Debug)]
pub struct Shared {
    pub keygate: Keygate,
    pub config: WebConfig,
    request_ids: RequestIds,
    metrics: metrics::Metrics,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(keygate: Keygate, config: WebConfig) -> Self {
        let metrics = metrics::Metrics::new(keygate.clone(), config.access_log.clone());
        Self(Arc::new(Shared { keygate, config, request_ids: RequestIds::new(), metrics }))
    }
}

/// The routes of axum's router that answer at volume (services' and proxies' verification): their
/// metrics are kept at hand, and their template is not copied per request.
const HOT_ROUTES: &[&str] = &["/v1/keys/verify", "/v1/forward-auth"];

/// axum's router: everything but the Public API (`/rest/v1/…`, see [`rest`]), which [`App`]
/// routes itself.
fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/keys/verify", post(verify::verify_key))
        .route("/v1/forward-auth", any(verify::forward_auth))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::serve_document))
        .route("/problems/{code}", get(problem_page::problem_page))
        .route("/", get(|| async { axum::response::Redirect::to("/console") }))
        .merge(manage::routes(&state))
        .merge(console::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(app::note_route))
        .with_state(state)
}

/// Every unknown path gets an answer that says so: a page under `/console`, a problem document
/// elsewhere (never an empty 404).
async fn not_found(axum::Extension(id): axum::Extension<RequestId>, uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path: String = uri.path().chars().take(200).collect();
    if path == "/console" || path.starts_with("/console/") {
        return console::not_found_page(&path);
    }
    problem::Problem::new(ProblemCode::NotFound, id)
        .detail(format!(
            "there is nothing at {path}; the Public API is under /rest/v1/{{unitId}}/…, its description at /openapi.json, the console at /console"
        ))
        .into_response()
}

/// Serves [`app`]`(state)` on `listener` until `shutdown` completes; in-flight requests are
/// allowed to finish, and then the access log is flushed: every answered request's line is
/// written (within 10 s) when this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let served = server::run(listener, app(state.clone()), &state.config, shutdown).await;
    let log = state.config.access_log.clone();
    if log.is_on() {
        let flushed = tokio::task::spawn_blocking(move || log.flush(std::time::Duration::from_secs(10))).await;
        if !matches!(flushed, Ok(true)) {
            tracing::warn!("the access log could not be written in full within 10 s of the shutdown");
        }
    }
    served
}
