//! `spawn_app()`: a real keygate server on 127.0.0.1:0 over a fresh SQLite database, with a
//! tenant, an API-enabled configuration and helpers to issue keys.

use std::net::SocketAddr;

use keygate_domain::{ApiKeySecret, Grant, TenantId, UserId};
use keygate_service::testing::TestDatabase;
use keygate_service::{Caller, CreateUser, IssueKey, KeyOwner, Keygate, ServiceConfig};
use keygate_web::{AppState, TrustedProxies, WebConfig};
use tokio::sync::oneshot;

pub struct TestApp {
    pub addr: SocketAddr,
    pub keygate: Keygate,
    pub tenant: TenantId,
    pub user: UserId,
    pub admin: UserId,
    pub client: reqwest::Client,
    _db: TestDatabase,
    _stop: oneshot::Sender<()>,
}

pub const TENANT: &str = "acme";
pub const USER: &str = "erp@acme.example";

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TrustedProxies::default()).await
}

pub async fn spawn_app_with(trusted_proxies: TrustedProxies) -> TestApp {
    spawn_app_with_web(WebConfig { trusted_proxies, ..WebConfig::default() }).await
}

pub async fn spawn_app_with_web(web: WebConfig) -> TestApp {
    let t = keygate_service::testing::fresh_sqlite().await.expect("database");
    start(t, web, ServiceConfig::default()).await
}

/// A server over a fresh database of `backend`; `None` when that engine is not configured here.
pub async fn spawn_app_on(backend: keygate_service::Backend, config: ServiceConfig) -> Option<TestApp> {
    spawn_app_on_with_web(backend, config, WebConfig::default()).await
}

/// [`spawn_app_on`] with the HTTP layer's settings too (trusted proxies, connection caps).
pub async fn spawn_app_on_with_web(
    backend: keygate_service::Backend,
    config: ServiceConfig,
    web: WebConfig,
) -> Option<TestApp> {
    let t = keygate_service::testing::fresh(backend).await.expect("database")?;
    Some(start(t, web, config).await)
}

async fn start(t: TestDatabase, web: WebConfig, config: ServiceConfig) -> TestApp {
    let keygate = Keygate::new(t.db.clone(), config);
    let system = Caller::CLI;
    let outcome = keygate.create_tenant(&system, TENANT, "admin@acme.example", None).await.expect("tenant");
    keygate.set_public_api(&system, outcome.tenant, true).await.expect("api on");
    let grants: Vec<Grant> = vec!["invoices:read:all".parse().expect("grant"), "jobs:read:own".parse().expect("grant")];
    let audit = keygate_domain::AuditEntry::new(Some(outcome.tenant), system.actor(), "group.created", "group Readers");
    t.db.groups().create(outcome.tenant, "Readers", &grants, &audit).await.expect("group");
    let user = keygate
        .create_user(
            &system,
            outcome.tenant,
            CreateUser {
                email: USER.into(),
                name: "ERP".into(),
                category: "programmatic".into(),
                groups: vec!["Readers".into()],
                ..Default::default()
            },
        )
        .await
        .expect("user");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let state = AppState::new(keygate.clone(), web);
    tokio::spawn(async move {
        let _ = keygate_web::serve(listener, state, async move {
            let _ = stopped.await;
        })
        .await;
    });
    TestApp {
        addr,
        keygate,
        tenant: outcome.tenant,
        user,
        admin: outcome.admin,
        client: reqwest::Client::new(),
        _db: t,
        _stop: stop,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Issues a key for the test user from `ranges`, as the command line would.
    pub async fn issue(&self, ranges: &[&str], scopes: Option<&[&str]>) -> (keygate_domain::KeyId, ApiKeySecret) {
        self.issue_with(IssueKey {
            owner: KeyOwner::Email(USER.into()),
            purpose: "tests".into(),
            ip_ranges: ranges.iter().map(|s| (*s).to_owned()).collect(),
            scopes: scopes.map(|s| s.iter().map(|x| (*x).to_owned()).collect()),
            ..IssueKey::default()
        })
        .await
    }

    pub async fn issue_with(&self, req: IssueKey) -> (keygate_domain::KeyId, ApiKeySecret) {
        let issued = self.keygate.issue_key(&Caller::CLI, self.tenant, req).await.expect("issue");
        (issued.record.id, issued.secret)
    }

    pub async fn capability(&self, key: &str) -> reqwest::Response {
        self.client.get(self.url("/rest/v1/1/capability")).bearer_auth(key).send().await.expect("request")
    }
}

/// The `code` of a problem response, after checking its content type.
pub async fn problem_code(response: reqwest::Response) -> String {
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: serde_json::Value = response.json().await.expect("json body");
    assert!(body["requestId"].is_string() && body["title"].is_string() && body["type"].is_string());
    body["code"].as_str().expect("code").to_owned()
}

/// A key for `owner` from loopback, issued as the command line would, with a generous rate limit.
pub async fn key_for(app: &TestApp, owner: &str, scopes: Option<&[&str]>) -> ApiKeySecret {
    app.keygate
        .issue_key(
            &Caller::CLI,
            app.tenant,
            IssueKey {
                owner: KeyOwner::Email(owner.into()),
                purpose: "data tests".into(),
                ip_ranges: vec!["127.0.0.0/8".into()],
                scopes: scopes.map(|s| s.iter().map(|x| (*x).to_owned()).collect()),
                rate_limit_per_minute: Some(1_000_000),
                ..IssueKey::default()
            },
        )
        .await
        .expect("issue")
        .secret
}

/// One test function per backend: `mod sqlite` always, `mod postgres` when
/// `KEYGATE_TEST_POSTGRES_URL` is set. The calling module imports `spawn_app_on` and `Backend`.
macro_rules! on_both_backends {
    ($($name:ident $(with $config:expr)?),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                #[allow(unused_mut, unused_assignments, reason = "only some tests override the configuration")]
                let mut config = keygate_service::ServiceConfig::default();
                $(config = $config;)?
                let app = super::spawn_app_on(super::Backend::Sqlite, config).await.expect("sqlite is always there");
                super::$name(app).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                #[allow(unused_mut, unused_assignments, reason = "only some tests override the configuration")]
                let mut config = keygate_service::ServiceConfig::default();
                $(config = $config;)?
                let Some(app) = super::spawn_app_on(super::Backend::Postgres, config).await else {
                    eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
                    return;
                };
                super::$name(app).await;
            })*
        }
    };
}
