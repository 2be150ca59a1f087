//! `Idempotency-Key` on every management API POST: an axum middleware around the management
//! router. A POST with the header is verified first (a stranger's request reaches no table), its
//! method, path, query and body are digested, and the service decides
//! ([`keygate_service::Keygate::idempotency_begin`]): the first request runs and its answer is
//! kept; a retry of the same request gets that answer again with `Idempotent-Replayed: true`; the
//! same key with another request is `idempotency_key_reused`; a duplicate while the first runs is
//! `409 conflict`. Server errors are not kept. A secret the first answer showed is never stored:
//! its replay lacks the `secret` field and says `Idempotency-Withheld: secret` (shown once).
//! Entries belong to the verified key (its id, never its secret). Bounds: the service's
//! `IDEMPOTENCY_*` constants.

use axum::{
    Router,
    body::Body,
    extract::{FromRequestParts, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use keygate_service::{IdempotencyStart, Keygate, StoredAnswer, Verified};
use sha2::{Digest, Sha256};

use super::extract::{Admin, AlreadyVerified, BODY_LIMIT};
use crate::{AppState, problem_code::ProblemCode, rest::auth::authenticated};

/// The request header that names a request.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// On a replayed answer: `true`.
pub(crate) const REPLAYED: &str = "idempotent-replayed";
/// On a replayed answer that lacks part of the first: `secret` (shown once, in the first answer)
/// or `body` (over the stored size cap).
pub(crate) const WITHHELD: &str = "idempotency-withheld";

/// The headers of an answer that are kept with it.
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

/// `routes` with the Idempotency-Key layer.
pub(super) fn layer(routes: Router<AppState>, state: &AppState) -> Router<AppState> {
    routes.layer(axum::middleware::from_fn_with_state(state.clone(), idempotent))
}

async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The operator plane's credential is not a tenant key: its routes are not this layer's.
    if request.method() != Method::POST
        || !request.headers().contains_key(IDEMPOTENCY_KEY)
        || request.uri().path().starts_with("/v1/operator/")
    {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let admin = match Admin::from_request_parts(&mut parts, &state).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let name = match parts.headers.get(IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        Some(Ok(name)) => name.to_owned(),
        _ => {
            return admin.problem(
                ProblemCode::InvalidParameter,
                "the Idempotency-Key header must be 1 to 255 printable characters",
            );
        }
    };
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return admin.problem(ProblemCode::BodyTooLarge, format!("the body is over {BODY_LIMIT} bytes"));
    };
    let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let hash: [u8; 32] = Sha256::new()
        .chain_update(parts.method.as_str())
        .chain_update(b"\0")
        .chain_update(target.as_bytes())
        .chain_update(b"\0")
        .chain_update(&bytes)
        .finalize()
        .into();
    match state.keygate.idempotency_begin(&admin.v, &name, &hash).await {
        Ok(IdempotencyStart::Proceed) => {}
        Ok(IdempotencyStart::Replay(answer)) => return replay(&admin.v, answer),
        Err(e) => return admin.failed(e),
    }
    let mut reserved = Reserved { keygate: state.keygate.clone(), v: admin.v.clone(), name, done: false };
    parts.extensions.insert(AlreadyVerified { v: admin.v, ip: admin.ip });
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let (answer, body) = response.into_parts();
    // Management answers are made whole in memory; reading them back costs no more than that.
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let kept: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|h| Some((h.as_str().to_owned(), answer.headers.get(h)?.to_str().ok()?.to_owned())))
        .collect();
    let kept = reserved.keygate.idempotency_answer(&reserved.v, &reserved.name, answer.status.as_u16(), &kept, &body);
    if let Err(e) = kept.await {
        tracing::warn!(error = %e, "keeping an Idempotency-Key answer failed; a retry runs the request again");
    } else {
        reserved.done = true;
    }
    Response::from_parts(answer, Body::from(body))
}

/// A stored answer, sent again with `Idempotent-Replayed: true` and the key's rate headers.
fn replay(v: &Verified, answer: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    if !answer.withheld.is_empty()
        && let Ok(withheld) = HeaderValue::from_str(&answer.withheld)
    {
        headers.insert(WITHHELD, withheld);
    }
    authenticated(v, response)
}

/// A reservation whose request has not been answered: dropped (the client went away, the
/// handler panicked) it is released, so a retry runs again rather than wait for it to expire.
struct Reserved {
    keygate: Keygate,
    v: Verified,
    name: String,
    done: bool,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (keygate, v, name) = (self.keygate.clone(), self.v.clone(), std::mem::take(&mut self.name));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = keygate.idempotency_release(&v, &name).await {
                    tracing::warn!(error = %e, "releasing an unanswered Idempotency-Key failed; it expires on its own");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    //! The layer around a real handler (issuing a key through the service, as `POST /v1/keys`
    //! will), on a router built here: no management POST exists yet on this branch.

    use std::{
        net::SocketAddr,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use axum::{extract::ConnectInfo, http::HeaderMap, routing::post};
    use keygate_service::{
        AuditSearch, Backend, Caller, IDEMPOTENCY_KEY_MAX, IDEMPOTENCY_PER_KEY, IDEMPOTENCY_TTL, IssueKey, KeyOwner,
        ServiceConfig,
    };
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::{WebConfig, manage::extract::JsonBody};

    const ADMIN: &str = "admin@acme.example";

    struct Fixture {
        state: AppState,
        tenant: keygate_domain::TenantId,
        key: String,
        key_id: i64,
        /// Calls that reached the handler.
        calls: Arc<AtomicUsize>,
        _db: keygate_service::testing::TestDatabase,
    }

    async fn fixture(backend: Backend) -> Option<Fixture> {
        let t = keygate_service::testing::fresh(backend).await.expect("database")?;
        let keygate = keygate_service::Keygate::new(t.db.clone(), ServiceConfig::default());
        let tenant = keygate.create_tenant(&Caller::CLI, "acme", ADMIN, None).await.expect("tenant").tenant;
        keygate.set_public_api(&Caller::CLI, tenant, true).await.expect("api on");
        let issued = keygate
            .issue_key(
                &Caller::CLI,
                tenant,
                IssueKey {
                    owner: KeyOwner::Email(ADMIN.into()),
                    purpose: "automation".into(),
                    ip_ranges: vec!["127.0.0.0/8".into()],
                    rate_limit_per_minute: Some(1_000_000),
                    ..IssueKey::default()
                },
            )
            .await
            .expect("key");
        Some(Fixture {
            state: AppState::new(keygate, WebConfig::default()),
            tenant,
            key: issued.secret.expose().to_owned(),
            key_id: issued.record.id.0,
            calls: Arc::new(AtomicUsize::new(0)),
            _db: t,
        })
    }

    /// `POST /issue {purpose}`: issues a key for the admin through the service (audited
    /// `key.issued`) and shows its secret once; `POST /fail`: a server error on its first call.
    fn router(f: &Fixture) -> Router {
        let (issues, fails) = (f.calls.clone(), f.calls.clone());
        let routes = Router::new()
            .route(
                "/issue",
                post(move |admin: Admin, State(state): State<AppState>, JsonBody(body): JsonBody<Value>| {
                    let calls = issues.clone();
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let request = IssueKey {
                            owner: KeyOwner::Email(ADMIN.into()),
                            purpose: body["purpose"].as_str().unwrap_or("").to_owned(),
                            ip_ranges: vec!["10.0.0.0/8".into()],
                            ..IssueKey::default()
                        };
                        match state.keygate.issue_key(&admin.caller, admin.tenant(), request).await {
                            Ok(k) => admin.answer(
                                StatusCode::CREATED,
                                &json!({"key": {"id": k.record.id.0.to_string()}, "secret": k.secret.expose(), "warnings": []}),
                            ),
                            Err(e) => admin.failed(e),
                        }
                    }
                }),
            )
            .route(
                "/fail",
                post(move |admin: Admin| {
                    let calls = fails.clone();
                    async move {
                        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                            admin.problem(ProblemCode::InternalError, "the first call fails")
                        } else {
                            admin.answer(StatusCode::OK, &json!({"ok": true}))
                        }
                    }
                }),
            );
        layer(routes, &f.state).with_state(f.state.clone())
    }

    async fn send(
        router: &Router,
        key: &str,
        path: &str,
        idem: Option<&str>,
        body: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::post(path).header(header::AUTHORIZATION, format!("Bearer {key}"));
        if let Some(idem) = idem {
            request = request.header(IDEMPOTENCY_KEY, idem);
        }
        let mut request = request.body(Body::from(body.to_owned())).expect("request");
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        let response = router.clone().oneshot(request).await.expect("answer");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
    }

    async fn issued_events(f: &Fixture) -> usize {
        let search = AuditSearch { action: Some("key.issued".into()), limit: 1_000, ..AuditSearch::default() };
        f.state.keygate.store_for_tests().audit_search().search(f.tenant, &search).await.expect("audit").len()
    }

    async fn on_both(test: impl AsyncFn(Fixture)) {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            match fixture(backend).await {
                Some(f) => test(f).await,
                None => eprintln!("skipped on {backend:?}: not configured here"),
            }
        }
    }

    #[tokio::test]
    async fn a_retry_gets_the_first_answer_without_the_secret_and_the_key_is_issued_once() {
        on_both(async |f: Fixture| {
            let app = router(&f);
            let before = issued_events(&f).await;
            let (status, headers, first) = send(&app, &f.key, "/issue", Some("ci-42"), r#"{"purpose":"ci"}"#).await;
            assert_eq!(status, StatusCode::CREATED, "{first}");
            assert!(!headers.contains_key(REPLAYED));
            let first: Value = serde_json::from_str(&first).expect("json");
            let secret = first["secret"].as_str().expect("secret shown once").to_owned();
            let (status, headers, again) = send(&app, &f.key, "/issue", Some("ci-42"), r#"{"purpose":"ci"}"#).await;
            assert_eq!(status, StatusCode::CREATED);
            assert_eq!(headers[REPLAYED], "true");
            assert_eq!(headers[WITHHELD], "secret");
            assert_eq!(headers[header::CONTENT_TYPE], "application/json");
            assert!(!again.contains(&secret), "the replay must not show the secret: {again}");
            let again: Value = serde_json::from_str(&again).expect("json");
            assert_eq!(again["key"], first["key"]);
            assert_eq!(f.calls.load(Ordering::SeqCst), 1, "the handler ran once");
            assert_eq!(issued_events(&f).await, before + 1, "one key.issued event");
            let row = f
                .state
                .keygate
                .store_for_tests()
                .management_idempotency()
                .get(f.key_id, "ci-42")
                .await
                .expect("read")
                .expect("stored");
            assert!(!row.body.contains(&secret) && !row.body.contains("kg_"), "stored: {}", row.body);
            assert_eq!((row.status, row.withheld.as_str()), (Some(201), "secret"));
        })
        .await;
    }

    #[tokio::test]
    async fn the_same_idempotency_key_with_another_body_or_path_is_refused_as_reused() {
        on_both(async |f: Fixture| {
            let app = router(&f);
            assert_eq!(send(&app, &f.key, "/issue", Some("k1"), r#"{"purpose":"a"}"#).await.0, StatusCode::CREATED);
            for (path, body) in [("/issue", r#"{"purpose":"b"}"#), ("/fail", "")] {
                let (status, _, problem) = send(&app, &f.key, path, Some("k1"), body).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
                assert!(problem.contains("idempotency_key_reused"), "{problem}");
            }
            assert_eq!(f.calls.load(Ordering::SeqCst), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn a_server_error_is_not_kept_and_the_retry_runs_again() {
        on_both(async |f: Fixture| {
            let app = router(&f);
            assert_eq!(send(&app, &f.key, "/fail", Some("f1"), "").await.0, StatusCode::INTERNAL_SERVER_ERROR);
            let (status, headers, _) = send(&app, &f.key, "/fail", Some("f1"), "").await;
            assert_eq!(status, StatusCode::OK);
            assert!(!headers.contains_key(REPLAYED));
            assert_eq!(f.calls.load(Ordering::SeqCst), 2);
        })
        .await;
    }

    #[tokio::test]
    async fn a_duplicate_while_the_first_is_in_progress_is_a_conflict() {
        on_both(async |f: Fixture| {
            let app = router(&f);
            let store = f.state.keygate.store_for_tests().management_idempotency();
            let hash = [7u8; 32];
            let now = keygate_domain::Timestamp::now().0;
            let limits = keygate_service::ReserveLimits {
                now,
                expired_before: now - 86_400_000,
                abandoned_before: now - 300_000,
                per_key: IDEMPOTENCY_PER_KEY,
            };
            // The first request holds the name (reserved, not answered); the hash is its own.
            store.reserve(f.tenant.0, f.key_id, "busy", &hash, limits).await.expect("reserve");
            let (status, _, problem) = send(&app, &f.key, "/issue", Some("busy"), r#"{"purpose":"x"}"#).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "another request: {problem}");
            let row = store.get(f.key_id, "busy").await.expect("read").expect("row");
            assert!(row.status.is_none());
            // The same request while the first runs.
            let body = r#"{"purpose":"y"}"#;
            let same: [u8; 32] =
                Sha256::new().chain_update("POST\0/issue\0").chain_update(body.as_bytes()).finalize().into();
            store.reserve(f.tenant.0, f.key_id, "busy2", &same, limits).await.expect("reserve");
            let (status, _, problem) = send(&app, &f.key, "/issue", Some("busy2"), body).await;
            assert_eq!(status, StatusCode::CONFLICT, "{problem}");
            assert_eq!(f.calls.load(Ordering::SeqCst), 0, "neither ran");
        })
        .await;
    }

    #[tokio::test]
    async fn a_stranger_or_a_bad_name_writes_nothing_and_names_of_255_characters_are_taken() {
        on_both(async |f: Fixture| {
            let app = router(&f);
            let (status, ..) = send(&app, "kg_not_a_key", "/issue", Some("s1"), r#"{"purpose":"x"}"#).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            let long = "n".repeat(IDEMPOTENCY_KEY_MAX + 1);
            let (status, _, problem) = send(&app, &f.key, "/issue", Some(&long), r#"{"purpose":"x"}"#).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
            assert!(problem.contains("invalid_parameter"));
            let longest = "n".repeat(IDEMPOTENCY_KEY_MAX);
            assert_eq!(send(&app, &f.key, "/issue", Some(&longest), r#"{"purpose":"x"}"#).await.0, StatusCode::CREATED);
            let store = f.state.keygate.store_for_tests().management_idempotency();
            assert_eq!(store.count(f.key_id).await.expect("count"), 1);
            assert_eq!(f.calls.load(Ordering::SeqCst), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn the_maintenance_run_forgets_entries_older_than_24_hours_and_keeps_younger_ones() {
        on_both(async |f: Fixture| {
            let store = f.state.keygate.store_for_tests().management_idempotency();
            let now = keygate_domain::Timestamp::now().0;
            let hour = 3_600_000;
            for (name, age) in [("25h", 25 * hour), ("23h", 23 * hour)] {
                let at = now - age;
                let limits = keygate_service::ReserveLimits {
                    now: at,
                    expired_before: at - 24 * hour,
                    abandoned_before: at - 300_000,
                    per_key: IDEMPOTENCY_PER_KEY,
                };
                store.reserve(f.tenant.0, f.key_id, name, &[1; 32], limits).await.expect("reserve");
            }
            f.state.keygate.flush().await;
            assert!(store.get(f.key_id, "25h").await.expect("read").is_none(), "expired and pruned");
            assert!(store.get(f.key_id, "23h").await.expect("read").is_some(), "still within 24 h");
        })
        .await;
    }

    #[tokio::test]
    async fn a_key_holds_at_most_1000_names_the_oldest_evicted_and_each_lives_24_hours() {
        on_both(async |f: Fixture| {
            assert_eq!((IDEMPOTENCY_PER_KEY, IDEMPOTENCY_TTL.as_secs()), (1_000, 86_400));
            let store = f.state.keygate.store_for_tests().management_idempotency();
            let now = keygate_domain::Timestamp::now().0;
            let day = 86_400_000;
            let limits = |at: i64| keygate_service::ReserveLimits {
                now: at,
                expired_before: at - day,
                abandoned_before: at - 300_000,
                per_key: IDEMPOTENCY_PER_KEY,
            };
            // The first name, made a day and a minute ago, has expired: it is replaced.
            store.reserve(f.tenant.0, f.key_id, "n0", &[1; 32], limits(now - day - 60_000)).await.expect("old");
            let again = store.reserve(f.tenant.0, f.key_id, "n0", &[2; 32], limits(now)).await.expect("again");
            assert_eq!(again, keygate_service::Reservation::Reserved);
            for n in 1..=1_000 {
                store.reserve(f.tenant.0, f.key_id, &format!("n{n}"), &[1; 32], limits(now)).await.expect("reserve");
            }
            assert_eq!(store.count(f.key_id).await.expect("count"), 1_000);
            assert!(store.get(f.key_id, "n0").await.expect("read").is_none(), "the oldest was evicted");
            assert!(store.get(f.key_id, "n1000").await.expect("read").is_some());
            // Pruning (the maintenance run) drops what is older than 24 hours, and only that.
            assert_eq!(store.prune(now + 1, 5_000).await.expect("prune"), 1_000);
            assert_eq!(store.prune(now + 1, 5_000).await.expect("prune"), 0);
        })
        .await;
    }
}
