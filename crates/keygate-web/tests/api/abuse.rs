//! The abuse suite: each attack of issues 11 and 17, reproduced at a scale that fits CI, with the
//! bound it must meet asserted as a number. Bounded loops only; every server on 127.0.0.1:0.

use keygate_domain::{ApiKeySecret, KeyId, TenantId};
use keygate_service::Backend;
use keygate_service::{Caller, IssueKey, KeyOwner};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_on};

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
                rate_limit_per_minute,
                ..IssueKey::default()
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
    let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
    sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE source_ip = $1")
        .bind(ip)
        .fetch_one(&pool)
        .await
        .expect("count")
}

/// Rows of the audit log, of usage counts and keys with a last use, that belong to `tenant`.
async fn footprint(app: &TestApp, tenant: TenantId) -> (i64, i64, i64) {
    let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
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
    let app = crate::helpers::spawn_app_on(keygate_service::Backend::Sqlite, config).await.expect("sqlite");
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

#[tokio::test]
async fn the_key_cache_keeps_to_its_capacity_and_metrics_count_what_it_evicts() {
    let config = keygate_service::ServiceConfig { key_cache_capacity: 3, ..Default::default() };
    let app = crate::helpers::spawn_app_on(keygate_service::Backend::Sqlite, config).await.expect("sqlite");
    for _ in 0..8 {
        let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
        assert_eq!(app.capability(key.expose()).await.status(), 200);
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("send").text().await.expect("text");
    let value = |name: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).expect("metric");
        line.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("number")
    };
    assert_eq!(value("keygate_key_cache_capacity"), 3);
    assert_eq!(value("keygate_key_cache_entries"), 3, "8 keys used, 3 kept");
    assert_eq!(value("keygate_key_cache_evictions_total"), 5);
}

// --- item 4: password hashing is bounded by a memory budget; the throttle counts first -----------

/// The peak resident memory of this test process (each test runs in a process of its own).
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("number");
    kib * 1024
}

/// A request over a fresh connection from `ip`, written by hand (a reqwest client per source
/// address would weigh more than the server under test): the status and the response head.
async fn raw_request(app: &TestApp, ip: &str, head: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(std::net::SocketAddr::new(ip.parse().expect("ip"), 0)).expect("bind");
    let mut stream = socket.connect(app.addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body).await.expect("body");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// A log-in attempt from `ip`; the answer's status and `Retry-After`.
async fn log_in_from(app: &TestApp, ip: &str, email: &str, password: &str) -> (u16, Option<String>) {
    let body = format!(
        "tenant={}&email={}&password={}",
        crate::helpers::TENANT,
        email.replace('@', "%40"),
        password.replace(' ', "+")
    );
    let head = format!(
        "POST /console/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        body.len()
    );
    let (status, head) = raw_request(app, ip, &head, body.as_bytes()).await;
    let retry = head
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: ").or_else(|| l.strip_prefix("Retry-After: ")))
        .map(|v| v.trim().to_owned());
    (status, retry)
}

const CONCURRENT_LOG_INS: u32 = 200;

#[tokio::test]
async fn concurrent_wrong_log_ins_hash_within_the_memory_budget() {
    let app = spawn_app().await;
    let attempts = (0..CONCURRENT_LOG_INS).map(|i| {
        let app = &app;
        async move {
            let ip = format!("127.2.{}.{}", i / 200, 1 + i % 200);
            log_in_from(app, &ip, &format!("nobody{i}@acme.example"), "wrong horse battery staple").await
        }
    });
    let answers = futures_join_all(attempts).await;
    let peak = peak_rss_bytes();
    let (slots, started) = app.keygate.password_hashing();
    eprintln!("peak RSS {} MiB; {started} hashings, {slots} at a time", peak >> 20);
    assert!(peak <= 256 * 1024 * 1024, "peak RSS {} MiB under {CONCURRENT_LOG_INS} log-ins", peak >> 20);
    assert!(answers.iter().any(|(s, _)| *s == 401), "some attempts were checked: {answers:?}");
    for (status, retry) in &answers {
        assert!([401, 429, 503].contains(status), "{status}");
        assert!(*status == 401 || retry.is_some(), "a refusal for load says when to retry");
    }
}

const CONCURRENT_PASSWORD_SETS: u32 = 200;

/// Setting a password hashes it: every Argon2 run goes through the one gate, so 200 concurrent
/// password sets by a User configurator stay within the same memory as 200 log-ins (they took
/// the server to 3.5 GiB when they hashed outside it).
#[tokio::test]
async fn concurrent_password_sets_hash_within_the_memory_budget() {
    let app = spawn_app().await;
    let hr = app
        .keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            keygate_service::CreateUser {
                email: "hr@acme.example".into(),
                name: "HR".into(),
                category: "personal".into(),
                groups: vec!["User configurator".into()],
                ..Default::default()
            },
        )
        .await
        .expect("user");
    let permissions = app.keygate.user_permissions(&Caller::CLI, app.tenant, hr).await.expect("permissions");
    let caller = Caller::User {
        id: hr,
        tenant: app.tenant,
        email: "hr@acme.example".into(),
        permissions,
        units: None,
        ip: Some("127.0.0.1".into()),
    };
    // A user whose powers lie within HR's: its password may be set by HR.
    let bot = app
        .keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            keygate_service::CreateUser {
                email: "bot@acme.example".into(),
                name: "Bot".into(),
                category: "programmatic".into(),
                ..Default::default()
            },
        )
        .await
        .expect("user");
    let sets = (0..CONCURRENT_PASSWORD_SETS).map(|i| {
        let (app, caller) = (&app, &caller);
        async move {
            let password = secrecy::SecretString::from(format!("a long enough password {i}"));
            app.keygate.set_user_password(caller, app.tenant, bot, Some(password)).await
        }
    });
    let answers = futures_join_all(sets).await;
    let peak = peak_rss_bytes();
    let (slots, started) = app.keygate.password_hashing();
    eprintln!("peak RSS {} MiB; {started} hashings, {slots} at a time", peak >> 20);
    assert!(peak <= 256 * 1024 * 1024, "peak RSS {} MiB under {CONCURRENT_PASSWORD_SETS} password sets", peak >> 20);
    assert!(started >= 1 && answers.iter().any(Result::is_ok), "some passwords were set");
    for answer in &answers {
        assert!(
            matches!(answer, Ok(()) | Err(keygate_service::ServiceError::Busy(_))),
            "a set is done or refused as busy: {answer:?}"
        );
    }
}

/// Runs every future to completion, concurrently, in order of the input.
async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    let mut pending: Vec<_> = set.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    out.extend(results.into_iter().map(|r| r.expect("finished")));
    out
}

#[tokio::test]
async fn a_burst_of_wrong_log_ins_for_one_account_is_locked_after_the_limit_however_concurrent() {
    let app = spawn_app().await;
    let attempts = (0..60u32).map(|i| {
        let app = &app;
        async move { log_in_from(app, &format!("127.3.0.{}", 1 + i), "admin@acme.example", "wrong horse battery").await }
    });
    let answers = futures_join_all(attempts).await;
    let checked = answers.iter().filter(|(s, _)| *s == 401).count();
    assert!(checked <= 10, "{checked} of 60 concurrent attempts on one account were checked; the limit is 10");
}

// --- item 6: log-in throttle rows are small and pruned -------------------------------------------

#[tokio::test]
async fn long_emails_do_not_grow_the_throttle_table() {
    let app = spawn_app().await;
    let long = format!("{}@acme.example", "a".repeat(100_000));
    for i in 0..20u32 {
        let (status, _) = log_in_from(&app, &format!("127.4.0.{}", 1 + i), &long, "wrong horse battery").await;
        assert!([401, 429].contains(&status), "{status}");
    }
    let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
    let bytes: i64 = sqlx::query_scalar("SELECT coalesce(sum(length(subject)), 0) FROM login_throttle")
        .fetch_one(&pool)
        .await
        .expect("sum");
    assert!(bytes <= 40 * 100, "{bytes} bytes of throttle subjects after 20 log-ins with 100 kB emails");
}

// --- item 5: slow bodies have a deadline; connections are capped overall and per address --------

/// Opens a connection from `ip` that sends a head announcing a 1 MB body, and then nothing.
async fn slow_body(app: &TestApp, ip: &str, path: &str) -> tokio::net::TcpStream {
    slow_body_with(app, ip, path, "").await
}

/// [`slow_body`] with extra header lines (each ending in `\r\n`).
async fn slow_body_with(app: &TestApp, ip: &str, path: &str, extra: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(std::net::SocketAddr::new(ip.parse().expect("ip"), 0)).expect("bind");
    let mut stream = socket.connect(app.addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{"
    );
    // The server may already have closed a connection over its cap: a failed write is an answer.
    let _ = stream.write_all(head.as_bytes()).await;
    stream
}

/// Whether the server still holds `stream` open: no bytes, no end within 20 ms.
async fn still_open(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(std::time::Duration::from_millis(20), stream.read(&mut buf)).await {
            Err(_) => return true,
            Ok(Ok(0) | Err(_)) => return false,
            // An answer (408, 503) may come before the close.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slow_bodies_are_capped_per_address_closed_at_their_deadline_and_healthz_stays_fast() {
    let web = keygate_web::WebConfig {
        body_timeout: std::time::Duration::from_secs(2),
        max_connections_per_address: 32,
        ..keygate_web::WebConfig::default()
    };
    let app = crate::helpers::spawn_app_with_web(web).await;
    // An authenticated verify call waits for its body; so would a data-API write.
    let (_, service) = app.issue(&["127.0.0.0/8"], Some(&["keys:verify"])).await;
    let auth = format!("Authorization: Bearer {}\r\n", service.expose());
    let started = std::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.push(slow_body_with(&app, "127.0.0.2", "/v1/keys/verify", &auth).await);
    }
    let mut latencies = Vec::new();
    for _ in 0..50 {
        let t = std::time::Instant::now();
        let (status, _) =
            raw_request(&app, "127.0.0.1", "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"").await;
        latencies.push(t.elapsed());
        assert_eq!(status, 200);
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100 - 1];
    assert!(p99 < std::time::Duration::from_millis(50), "/healthz p99 {p99:?} with 300 slow bodies open");
    let mut open = 0;
    for stream in &mut slow {
        open += usize::from(still_open(stream).await);
    }
    assert!(open >= 16, "only {open} slow connections open: the attack did not take");
    assert!(open <= 32, "{open} slow connections from one address held open; the cap is 32");
    tokio::time::sleep(
        std::time::Duration::from_secs(2).saturating_sub(started.elapsed()) + std::time::Duration::from_millis(700),
    )
    .await;
    let mut open = 0;
    for stream in &mut slow {
        open += usize::from(still_open(stream).await);
    }
    assert_eq!(open, 0, "slow bodies still open {:?} after they started, the deadline is 2 s", started.elapsed());
}

#[tokio::test]
async fn a_verify_call_without_a_key_is_answered_before_its_body_arrives() {
    let app = spawn_app().await;
    let mut stream = slow_body(&app, "127.0.0.1", "/v1/keys/verify").await;
    let started = std::time::Instant::now();
    let mut answer = [0u8; 12];
    let read = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        use tokio::io::AsyncReadExt;
        stream.read_exact(&mut answer).await
    })
    .await;
    assert!(read.is_ok(), "no answer within 1 s: the body was waited for before authentication");
    assert_eq!(&answer, b"HTTP/1.1 401", "answered in {:?}", started.elapsed());
}

#[tokio::test]
async fn connections_over_the_global_cap_wait_in_the_backlog_until_a_place_is_free() {
    let web = keygate_web::WebConfig {
        body_timeout: std::time::Duration::from_secs(1),
        max_connections: 8,
        ..keygate_web::WebConfig::default()
    };
    let app = crate::helpers::spawn_app_with_web(web).await;
    let (_, service) = app.issue(&["127.0.0.0/8"], Some(&["keys:verify"])).await;
    let auth = format!("Authorization: Bearer {}\r\n", service.expose());
    let mut slow = Vec::new();
    for i in 0..8 {
        slow.push(slow_body_with(&app, &format!("127.0.5.{}", 1 + i), "/v1/keys/verify", &auth).await);
    }
    let started = std::time::Instant::now();
    let (status, _) =
        raw_request(&app, "127.0.6.1", "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"").await;
    assert_eq!(status, 200);
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(500),
        "served after {waited:?} with 8 of 8 places held: the cap was not kept"
    );
    assert!(waited < std::time::Duration::from_secs(3), "served after {waited:?}: the slow bodies' deadline is 1 s");
}

// --- item 7: refused calls reach the audit log even when a write of them fails -------------------

#[tokio::test]
async fn refused_calls_whose_audit_write_failed_are_written_by_a_later_flush() {
    let app = spawn_app().await;
    let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
    let refused_rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_events WHERE action = 'call.refused'")
            .fetch_one(&pool)
            .await
            .expect("count")
    };
    sqlx::query(
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_events WHEN NEW.action = 'call.refused' \
         BEGIN SELECT RAISE(ABORT, 'the disk is full'); END",
    )
    .execute(&pool)
    .await
    .expect("trigger");
    for i in 0..5u32 {
        // Five /24s: the audit log aggregates a source per /24 (IPv6: per /64).
        let client = client_from(&format!("127.{}.7.1", 10 + i));
        let r = client.get(app.url("/rest/v1/1/capability")).bearer_auth(ApiKeySecret::generate().expose()).send();
        assert_eq!(r.await.expect("send").status(), 401);
    }
    app.keygate.flush().await;
    assert_eq!(refused_rows().await, 0, "the write failed");
    sqlx::query("DROP TRIGGER audit_down").execute(&pool).await.expect("drop");
    app.keygate.flush().await;
    assert_eq!(refused_rows().await, 5, "one aggregated row per source /24, kept and written later");
}

// --- strict requests ------------------------------------------------------------------------------

#[tokio::test]
async fn a_misspelt_query_parameter_is_400_unknown_parameter_naming_the_accepted_ones() {
    let app = spawn_app().await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    let get = |path: &str| app.client.get(app.url(path)).bearer_auth(key.expose()).send();
    let r = get("/rest/v1/1/views/jobs?externalfilter=status%3D%27X%27").await.expect("send");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["code"], "unknown_parameter");
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains("`externalfilter`") && detail.contains("externalFilter, limit, offset"), "{detail}");
    assert_eq!(get("/rest/v1/1/views/jobs?limit=5&offset=0").await.expect("send").status(), 200);
    let r = get("/rest/v1/1/jobs?id=1&expand=all").await.expect("send");
    assert_eq!(r.status(), 400, "record calls take `id` only");
}

#[tokio::test]
async fn two_different_credentials_are_400_ambiguous_credentials() {
    let app = spawn_app().await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    let other = ApiKeySecret::generate();
    let url = app.url("/rest/v1/1/capability");
    let bearer = format!("Bearer {}", key.expose());
    let cases = [
        app.client
            .get(&url)
            .header("authorization", &bearer)
            .header("authorization", format!("Bearer {}", other.expose())),
        app.client.get(&url).bearer_auth(key.expose()).header("x-api-key", other.expose()),
        app.client.get(&url).header("x-api-key", key.expose()).header("x-api-key", other.expose()),
    ];
    for (i, request) in cases.into_iter().enumerate() {
        let r = request.send().await.expect("send");
        assert_eq!(r.status(), 400, "case {i}");
        assert!(r.headers()["www-authenticate"].to_str().expect("ascii").contains("invalid_request"));
        assert_eq!(crate::helpers::problem_code(r).await, "ambiguous_credentials", "case {i}");
    }
    let same = app.client.get(&url).bearer_auth(key.expose()).header("x-api-key", key.expose());
    assert_eq!(same.send().await.expect("send").status(), 200, "the same key twice is one credential");
}

#[tokio::test]
async fn a_trusted_proxy_on_this_machine_with_a_loopback_host_still_gets_a_secure_cookie() {
    let proxies = keygate_web::TrustedProxies::parse(&["127.0.0.1".into()]).expect("valid");
    let app = crate::helpers::spawn_app_with(proxies).await;
    let password = "correct horse battery staple";
    app.keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            keygate_service::CreateUser {
                inactive: false,
                email: "ada@acme.example".into(),
                name: "Ada".into(),
                category: "personal".into(),
                groups: vec!["Configurator".into()],
                units: None,
                password: Some(secrecy::SecretString::from(password)),
            },
        )
        .await
        .expect("user");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let form = [("tenant", crate::helpers::TENANT), ("email", "ada@acme.example"), ("password", password)];
    let log_in = |forwarded: bool| {
        let mut request = client.post(app.url("/console/login")).header("host", "127.0.0.1:8080").form(&form);
        if forwarded {
            request = request.header("x-forwarded-for", "203.0.113.5");
        }
        request.send()
    };
    let secure = |r: &reqwest::Response| {
        let cookie = r.headers()["set-cookie"].to_str().expect("ascii").to_owned();
        cookie.split(';').any(|a| a.trim() == "Secure")
    };
    let r = log_in(true).await.expect("log in");
    assert_eq!(r.status(), 303);
    assert!(secure(&r), "a remote browser behind the local proxy gets a Secure cookie");
    let r = log_in(false).await.expect("log in");
    assert!(!secure(&r), "a browser on this machine, no proxy in between, over plain HTTP");
}

// --- tables an outsider grows are pruned ---------------------------------------------------------

#[tokio::test]
async fn old_change_feed_and_throttle_rows_are_pruned_by_the_background_flush() {
    let app = spawn_app().await;
    let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
    let long_ago = keygate_domain::Timestamp::now().plus_millis(-2 * 3_600_000).0;
    for i in 0..100i64 {
        sqlx::query("INSERT INTO changes (at, kind, entity_id) VALUES ($1, 'key', $2)")
            .bind(long_ago)
            .bind(i)
            .execute(&pool)
            .await
            .expect("change");
        sqlx::query(
            "INSERT INTO login_throttle (subject, failures, window_start, locked_until) VALUES ($1, 3, $2, NULL)",
        )
        .bind(format!("ip:192.0.2.{i}"))
        .bind(long_ago)
        .execute(&pool)
        .await
        .expect("throttle");
    }
    app.keygate.flush().await;
    let old_changes: i64 = sqlx::query_scalar("SELECT count(*) FROM changes WHERE at = $1")
        .bind(long_ago)
        .fetch_one(&pool)
        .await
        .expect("n");
    let old_throttle: i64 =
        sqlx::query_scalar("SELECT count(*) FROM login_throttle").fetch_one(&pool).await.expect("n");
    assert_eq!((old_changes, old_throttle), (0, 0), "rows two hours old left after a flush");
}

#[tokio::test]
async fn the_database_holds_no_csrf_token_a_page_carries() {
    let app = spawn_app().await;
    let password = "correct horse battery staple";
    app.keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            keygate_service::CreateUser {
                inactive: false,
                email: "ada@acme.example".into(),
                name: "Ada".into(),
                category: "personal".into(),
                groups: vec!["Configurator".into()],
                units: None,
                password: Some(secrecy::SecretString::from(password)),
            },
        )
        .await
        .expect("user");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let form = [("tenant", crate::helpers::TENANT), ("email", "ada@acme.example"), ("password", password)];
    let r = client.post(app.url("/console/login")).form(&form).send().await.expect("log in");
    let cookie = r.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let page = client
        .get(app.url("/console/configuration/system/integrations/public-api"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    let csrf = page[start..].split('"').next().expect("value");
    let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT csrf_token FROM console_sessions").fetch_all(&pool).await.expect("rows");
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], csrf, "the CSRF token is stored as it is sent");
    assert!(!stored[0].contains(csrf) && !cookie.contains(&stored[0]));
}

// --- records: idempotency and references respect the unit and what the key may see --------------

async fn key_of(app: &TestApp, owner: &str) -> ApiKeySecret {
    let (_, key) = app
        .issue_with(IssueKey {
            owner: KeyOwner::Email(owner.into()),
            purpose: "records".into(),
            ip_ranges: vec!["127.0.0.0/8".into()],
            ..IssueKey::default()
        })
        .await;
    key
}

#[tokio::test]
async fn an_idempotency_key_replayed_on_another_unit_does_not_answer_the_first_units_record() {
    let app = spawn_app().await;
    let audit = keygate_domain::AuditEntry::new(Some(app.tenant), Caller::CLI.actor(), "unit.created", "unit 2");
    app.keygate
        .store_for_tests()
        .tenants()
        .create_unit(app.tenant, keygate_domain::UnitId(2), "Second", None, &audit)
        .await
        .expect("unit");
    let admin = key_of(&app, "admin@acme.example").await;
    let send = |unit: u32| {
        app.client
            .post(app.url(&format!("/rest/v1/{unit}/companies")))
            .bearer_auth(admin.expose())
            .header("idempotency-key", "order-42")
            .json(&json!({"name": "Once"}))
            .send()
    };
    let first = send(1).await.expect("send");
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.expect("json");
    let other = send(2).await.expect("send");
    let status = other.status();
    let body: serde_json::Value = other.json().await.expect("json");
    assert!(!(status == 201 && body == first), "unit 2 was answered with unit 1's record {first}");
}

#[tokio::test]
async fn a_reference_to_a_record_the_key_cannot_see_is_refused_like_one_that_does_not_exist() {
    let app = spawn_app().await;
    let admin = key_of(&app, "admin@acme.example").await;
    let r =
        app.client.post(app.url("/rest/v1/1/companies")).bearer_auth(admin.expose()).json(&json!({"name": "Theirs"}));
    let company: serde_json::Value = r.send().await.expect("send").json().await.expect("json");
    // A personal user without any grant sees only the companies it owns (a programmatic user
    // would see none at all).
    let pat = keygate_service::CreateUser {
        email: "pat@acme.example".into(),
        name: "Pat".into(),
        category: "personal".into(),
        ..Default::default()
    };
    app.keygate.create_user(&Caller::CLI, app.tenant, pat).await.expect("user");
    let erp = key_of(&app, "pat@acme.example").await;
    let job = |company_id: &serde_json::Value| {
        app.client
            .post(app.url("/rest/v1/1/jobs"))
            .bearer_auth(erp.expose())
            .json(&json!({"name": "A job", "companyId": company_id}))
            .send()
    };
    let hidden = job(&company["id"]).await.expect("send");
    let hidden_status = hidden.status();
    let hidden: serde_json::Value = hidden.json().await.expect("json");
    let missing: serde_json::Value = job(&json!(987_654)).await.expect("send").json().await.expect("json");
    assert_eq!(hidden_status, 422, "{hidden}");
    let message = |v: &serde_json::Value| {
        v["errors"][0]["message"].as_str().unwrap_or_default().replace(|c: char| c.is_ascii_digit(), "")
    };
    assert_eq!(message(&hidden), message(&missing), "the answer tells nothing about someone else's record");
}

#[tokio::test]
async fn a_key_without_a_grant_on_users_sees_no_group_by_the_accident_of_its_ids() {
    let app = spawn_app().await;
    let erp = key_of(&app, crate::helpers::USER).await;
    let r = app.client.get(app.url("/rest/v1/1/views/groups")).bearer_auth(erp.expose()).send().await.expect("send");
    let status = r.status();
    let body: serde_json::Value = r.json().await.expect("json");
    let ids: Vec<i64> =
        body["data"].as_array().map_or_else(Vec::new, |rows| rows.iter().filter_map(|g| g["id"].as_i64()).collect());
    assert!(status == 403 || ids.is_empty(), "user {} sees groups {ids:?} ({status})", app.user.0);
}

#[tokio::test]
async fn healthz_stays_fast_with_a_thousand_slow_bodies_open() {
    let web =
        keygate_web::WebConfig { body_timeout: std::time::Duration::from_secs(5), ..keygate_web::WebConfig::default() };
    let app = crate::helpers::spawn_app_with_web(web).await;
    let (_, service) = app.issue(&["127.0.0.0/8"], Some(&["keys:verify"])).await;
    let auth = format!("Authorization: Bearer {}\r\n", service.expose());
    let mut slow = Vec::new();
    for i in 0..1000u32 {
        // 40 addresses, 25 connections each: under the per-address cap, so all of them are held.
        slow.push(slow_body_with(&app, &format!("127.0.8.{}", 1 + i % 40), "/v1/keys/verify", &auth).await);
    }
    let mut latencies = Vec::new();
    for _ in 0..100 {
        let t = std::time::Instant::now();
        let (status, _) =
            raw_request(&app, "127.0.0.1", "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"").await;
        latencies.push(t.elapsed());
        assert_eq!(status, 200);
    }
    latencies.sort();
    let p99 = latencies[98];
    let mut open = 0;
    for stream in slow.iter_mut().take(50) {
        open += usize::from(still_open(stream).await);
    }
    eprintln!("/healthz p50 {:?}, p99 {p99:?} with 1 000 slow bodies open", latencies[49]);
    assert_eq!(open, 50, "the slow bodies were held while /healthz was measured");
    assert!(p99 < std::time::Duration::from_millis(50), "/healthz p99 {p99:?}");
}

#[tokio::test]
async fn over_long_passwords_and_emails_are_refused_before_any_hashing_or_throttle_row() {
    let app = spawn_app().await;
    let (_, before) = app.keygate.password_hashing();
    let long_password = "p".repeat(1025);
    let long_email = format!("{}@acme.example", "a".repeat(250));
    for i in 0..10u32 {
        let ip = format!("127.9.0.{}", 1 + i);
        let (status, _) = log_in_from(&app, &ip, "admin@acme.example", &long_password).await;
        assert_eq!(status, 401);
        let (status, _) = log_in_from(&app, &ip, &long_email, "wrong horse battery").await;
        assert_eq!(status, 401);
    }
    let (_, after) = app.keygate.password_hashing();
    assert_eq!(after - before, 0, "Argon2 ran for inputs over the length limits");
    let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM login_throttle").fetch_one(&pool).await.expect("count");
    assert_eq!(rows, 0, "throttle rows for inputs over the length limits");
}

// --- issue 17 item 7: the audit log is bounded against strangers, and pruned ---------------------

/// One number from a query over the whole database, on either engine.
async fn scalar(app: &TestApp, sql: &str) -> i64 {
    match app.keygate.store_for_tests().postgres_pool() {
        Some(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql),
        None => {
            let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
            sqlx::query_scalar(sql).fetch_one(&pool).await.expect(sql)
        }
    }
}

/// A server on `backend` behind a trusted proxy on 127.0.0.1 (its `X-Forwarded-For` is believed).
async fn behind_a_proxy(backend: keygate_service::Backend) -> Option<TestApp> {
    let proxies = keygate_web::TrustedProxies::parse(&["127.0.0.1".into()]).expect("valid");
    let web = keygate_web::WebConfig { trusted_proxies: proxies, ..keygate_web::WebConfig::default() };
    crate::helpers::spawn_app_on_with_web(backend, keygate_service::ServiceConfig::default(), web).await
}

/// Refused calls counted in `call.refused` rows: the `(×N)` of each row, plus the calls a summary
/// row says were not listed one by one.
fn calls_in(details: &[String]) -> u64 {
    details
        .iter()
        .filter_map(|d| match d.split("(×").nth(1) {
            Some(rest) => rest.split(')').next()?.parse::<u64>().ok(),
            None => d.split(' ').next()?.parse::<u64>().ok(),
        })
        .sum()
}

async fn refused_details(app: &TestApp) -> Vec<String> {
    let sql = "SELECT details FROM audit_events WHERE action = 'call.refused'";
    match app.keygate.store_for_tests().postgres_pool() {
        Some(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.expect(sql),
        None => {
            let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
            sqlx::query_scalar(sql).fetch_all(&pool).await.expect(sql)
        }
    }
}

/// The attack of issue 17: unknown keys from ever new IPv6 addresses of one /64, through a trusted
/// proxy, from four clients as fast as they go for 20 s, with a flush every second (the server
/// flushes every 5 s). Before, every call added a row: thousands.
async fn ipv6_addresses_rotated_inside_one_64_for_20_s_add_at_most_100_audit_rows(app: TestApp) {
    const ATTACK: std::time::Duration = std::time::Duration::from_secs(20);
    let garbage = ApiKeySecret::generate();
    let started = std::time::Instant::now();
    let flusher = {
        let keygate = app.keygate.clone();
        tokio::spawn(async move {
            while started.elapsed() < ATTACK {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                keygate.flush().await;
            }
        })
    };
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let (client, url, key) =
                (app.client.clone(), app.url("/rest/v1/1/capability"), garbage.expose().to_owned());
            tokio::spawn(async move {
                let (mut calls, mut blocked) = (0u64, 0u64);
                while started.elapsed() < ATTACK {
                    let address = format!(
                        "2001:db8:17:7:{c:x}:{:x}:{:x}:{:x}",
                        calls >> 32,
                        (calls >> 16) & 0xffff,
                        calls & 0xffff
                    );
                    let r = client.get(&url).bearer_auth(&key).header("x-forwarded-for", address).send().await;
                    let status = r.expect("send").status().as_u16();
                    assert!(status == 401 || status == 429, "{status}");
                    calls += 1;
                    blocked += u64::from(status == 429);
                }
                (calls, blocked)
            })
        })
        .collect();
    let (mut calls, mut blocked) = (0, 0);
    for client in clients {
        let (c, b) = client.await.expect("client");
        calls += c;
        blocked += b;
    }
    flusher.await.expect("flusher");
    app.keygate.flush().await;
    let rows = scalar(&app, "SELECT count(*) FROM audit_events WHERE action = 'call.refused'").await;
    let counted = calls_in(&refused_details(&app).await);
    eprintln!("{calls} calls from one /64 in 20 s ({blocked} while it was blocked): {rows} audit rows");
    assert!(calls >= 1_000, "the attack did not take: {calls} calls");
    assert!(blocked > 0, "the /64 was blocked after 100 failures");
    assert!(rows <= 100, "{rows} audit rows for {calls} refused calls from one /64 in 20 s");
    assert_eq!(counted, calls, "every refused call is counted in some row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_addresses_rotated_inside_one_64_for_20_s_add_at_most_100_audit_rows_on_sqlite() {
    let app = behind_a_proxy(keygate_service::Backend::Sqlite).await.expect("sqlite");
    ipv6_addresses_rotated_inside_one_64_for_20_s_add_at_most_100_audit_rows(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_addresses_rotated_inside_one_64_for_20_s_add_at_most_100_audit_rows_on_postgresql() {
    let Some(app) = behind_a_proxy(keygate_service::Backend::Postgres).await else {
        eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
        return;
    };
    ipv6_addresses_rotated_inside_one_64_for_20_s_add_at_most_100_audit_rows(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_from_2_000_different_64s_get_60_audit_rows_in_a_minute_one_summing_up_the_others() {
    let app = behind_a_proxy(keygate_service::Backend::Sqlite).await.expect("sqlite");
    let garbage = ApiKeySecret::generate();
    let url = app.url("/rest/v1/1/capability");
    for round in 0..2u32 {
        let clients: Vec<_> = (0..4u32)
            .map(|c| {
                let (client, url, key) = (app.client.clone(), url.clone(), garbage.expose().to_owned());
                tokio::spawn(async move {
                    for i in 0..250u32 {
                        let address = format!("2001:db8:{round:x}{c:x}:{i:x}::1");
                        let r = client.get(&url).bearer_auth(&key).header("x-forwarded-for", address).send().await;
                        assert_eq!(r.expect("send").status(), 401);
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.expect("client");
        }
        // Two flushes within the minute, 1 000 new sources each.
        app.keygate.flush().await;
    }
    let rows = scalar(&app, "SELECT count(*) FROM audit_events WHERE action = 'call.refused'").await;
    let details = refused_details(&app).await;
    assert_eq!(rows, 60, "audit rows of a minute of strangers from 2 000 prefixes");
    assert!(details.iter().any(|d| d.contains("further refused calls without a known key")), "a summary row");
    // 59 listed and a summary of the first 1 000 calls; the second 1 000, arriving with no room
    // left in the minute, are summed up in the next minute's first row.
    assert_eq!(calls_in(&details), 1_000, "the rows of the first flush list or sum up its refused calls");
}

on_both_backends!(
    audit_rows_past_their_retention_are_pruned_by_the_flush_in_bounded_batches,
    a_key_that_writes_its_own_records_fills_at_most_its_tenants_storage_quota with super::one_mib_of_records(),
    record_writes_of_eight_keys_at_once_all_land_and_are_all_counted,
);

/// Inserts `n` audit rows of `action` made `days` ago, in one statement.
async fn old_rows(app: &TestApp, n: u32, action: &str, days: i64) {
    let at = keygate_domain::Timestamp::now().plus_days(-days).0;
    let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
               INSERT INTO audit_events (tenant_id, at, actor_kind, actor_label, action, target, details) \
               SELECT $2, $3, 'system', 'system (test)', $4, 'test', '' FROM n";
    match app.keygate.store_for_tests().postgres_pool() {
        Some(pool) => {
            let q = sqlx::query(sql).bind(i64::from(n)).bind(app.tenant.0).bind(at).bind(action);
            q.execute(pool).await.expect("insert");
        }
        None => {
            let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
            let q = sqlx::query(sql).bind(i64::from(n)).bind(app.tenant.0).bind(at).bind(action);
            q.execute(&pool).await.expect("insert");
        }
    }
}

/// Default retention: a year of changes, 90 days of refusals; at most 20 batches of 1 000 rows of
/// each kind per run.
async fn audit_rows_past_their_retention_are_pruned_by_the_flush_in_bounded_batches(app: TestApp) {
    old_rows(&app, 21_500, "call.refused", 91).await;
    old_rows(&app, 100, "session.login_failed", 91).await;
    old_rows(&app, 300, "key.issued", 91).await;
    old_rows(&app, 1_200, "key.issued", 366).await;
    let recent_sql = "SELECT count(*) FROM audit_events WHERE at > (SELECT max(at) FROM audit_events) - 86400000";
    let recent = scalar(&app, recent_sql).await;
    assert!(recent >= 3, "the tenant's own recent rows");
    let old = |action: &'static str, days: i64| {
        let at = keygate_domain::Timestamp::now().plus_days(-days + 1).0;
        let app = &app;
        async move {
            let sql = format!("SELECT count(*) FROM audit_events WHERE action = '{action}' AND at < {at}");
            scalar(app, &sql).await
        }
    };
    app.keygate.flush().await;
    let left = old("call.refused", 91).await + old("session.login_failed", 91).await;
    assert_eq!(left, 1_600, "one run deletes at most 20 000 refusals");
    assert_eq!(old("key.issued", 366).await, 0, "changes past a year");
    app.keygate.flush().await;
    assert_eq!(old("call.refused", 91).await, 0, "the rest at the next run");
    assert_eq!(old("session.login_failed", 91).await, 0, "failed log-ins are refusals");
    assert_eq!(old("key.issued", 91).await, 300, "changes within the year are kept");
    assert_eq!(scalar(&app, recent_sql).await, recent, "recent rows are kept");
    // The log is still append-only for anything but pruning.
    let delete = "DELETE FROM audit_events WHERE action = 'key.issued'";
    let refused = match app.keygate.store_for_tests().postgres_pool() {
        Some(pool) => sqlx::query(delete).execute(pool).await.is_err(),
        None => {
            let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
            sqlx::query(delete).execute(&pool).await.is_err()
        }
    };
    assert!(refused, "a DELETE outside pruning is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventy_failed_log_ins_from_seventy_addresses_add_60_audit_rows_in_a_minute() {
    let app = spawn_app().await;
    let mut answers = Vec::new();
    // Four at a time: as many as the hashing gate runs at once, so none is refused as busy.
    for chunk in (0..70u32).collect::<Vec<_>>().chunks(4) {
        let attempts = chunk.iter().map(|&i| {
            let app = &app;
            async move {
                let ip = format!("127.9.0.{}", 1 + i);
                log_in_from(app, &ip, &format!("nobody{i}@acme.example"), "wrong horse battery staple").await
            }
        });
        answers.extend(futures_join_all(attempts).await);
    }
    let checked = answers.iter().filter(|(s, _)| *s == 401).count();
    assert_eq!(checked, 70, "every attempt was checked: {answers:?}");
    app.keygate.flush().await;
    let rows = scalar(&app, "SELECT count(*) FROM audit_events WHERE action = 'session.login_failed'").await;
    assert_eq!(rows, 60, "failed log-in rows in a minute of 70 failures");
}

/// A tenant's records may take 1 MiB of storage units (a record: 512 plus its properties' characters).
fn one_mib_of_records() -> keygate_service::ServiceConfig {
    keygate_service::ServiceConfig { record_storage_per_tenant: 1024 * 1024, ..Default::default() }
}

/// Persons in unit 1 of `tenant`, counted by the command line's store.
async fn persons(app: &TestApp, tenant: TenantId) -> i64 {
    let sql = "SELECT COUNT(*) FROM persons WHERE tenant_id = $1";
    match app.keygate.store_for_tests().postgres_pool() {
        Some(pool) => sqlx::query_scalar(sql).bind(tenant.0).fetch_one(pool).await.expect("count"),
        None => {
            let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
            sqlx::query_scalar(sql).bind(tenant.0).fetch_one(&pool).await.expect("count")
        }
    }
}

/// The insider of DESIGN §7: a personal user's key that may write only its own persons, with
/// 200 000 characters of custom properties per record (the cap is 1 MB).
async fn a_key_that_writes_its_own_records_fills_at_most_its_tenants_storage_quota(app: TestApp) {
    let grants = vec!["persons:write:own".to_owned()];
    app.keygate.create_group(&Caller::CLI, app.tenant, "Own persons", &grants).await.expect("group");
    let person = keygate_service::CreateUser {
        email: "insider@acme.example".into(),
        name: "Insider".into(),
        category: "personal".into(),
        groups: vec!["Own persons".into()],
        ..keygate_service::CreateUser::default()
    };
    app.keygate.create_user(&Caller::CLI, app.tenant, person).await.expect("user");
    let key = crate::helpers::key_for(&app, "insider@acme.example", None).await;
    let filler = "x".repeat(199_950);
    let body = |n: u32| json!({"firstName": "Fill", "lastName": format!("Er {n}"), "properties": {"blob": filler}});
    let post = |n: u32| app.client.post(app.url("/rest/v1/1/persons")).bearer_auth(key.expose()).json(&body(n)).send();
    // Five records of about 200 512 units fit in 1 048 576; the sixth does not.
    let mut ids = Vec::new();
    for n in 0..5 {
        let r = post(n).await.expect("post");
        assert_eq!(r.status(), 201, "record {n}");
        ids.push(r.json::<serde_json::Value>().await.expect("json")["id"].as_i64().expect("id"));
    }
    let before = persons(&app, app.tenant).await;
    for n in 5..25 {
        let r = post(n).await.expect("post");
        assert_eq!(r.status(), 409, "record {n} was not refused");
        let problem: serde_json::Value = r.json().await.expect("problem");
        assert_eq!(problem["code"], "conflict");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("record_storage_per_tenant_mib") && detail.contains("nothing was written"), "{detail}");
    }
    assert_eq!(persons(&app, app.tenant).await, before, "twenty refused writes wrote nothing");
    // Growing a record's properties is held to the same quota; shrinking gives the room back.
    let patch = |id: i64, properties: serde_json::Value| {
        app.client
            .patch(app.url(&format!("/rest/v1/1/persons?id={id}")))
            .bearer_auth(key.expose())
            .json(&json!({ "properties": properties }))
            .send()
    };
    let bigger = json!({"blob": "y".repeat(400_000)});
    assert_eq!(patch(ids[0], bigger).await.expect("patch").status(), 409);
    assert_eq!(patch(ids[0], json!({})).await.expect("patch").status(), 200);
    assert_eq!(post(99).await.expect("post").status(), 201, "the room a smaller record gave back is used again");
    // The quota is the tenant's own: another tenant's writes are not held to what this one took.
    let other = other_tenant(&app).await;
    let (_, theirs) = issue_in(&app, other, &["127.0.0.0/8"], None).await;
    let r = app
        .client
        .post(app.url("/rest/v1/1/persons"))
        .bearer_auth(theirs.expose())
        .json(&body(0))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201, "the other tenant's first record");
    assert_eq!(persons(&app, other).await, 1);
}

/// The storage count is written in every record write's transaction: writers at once must neither
/// fail on it (SQLite's one writer) nor lose a count.
async fn record_writes_of_eight_keys_at_once_all_land_and_are_all_counted(app: TestApp) {
    let mut keys = Vec::new();
    for _ in 0..8 {
        keys.push(crate::helpers::key_for(&app, "admin@acme.example", None).await);
    }
    let before = persons(&app, app.tenant).await;
    let mut writers = tokio::task::JoinSet::new();
    for (k, key) in keys.iter().enumerate() {
        let (client, url, key) = (app.client.clone(), app.url("/rest/v1/1/persons"), key.expose().to_owned());
        writers.spawn(async move {
            let mut statuses = Vec::new();
            for n in 0..10 {
                let body = json!({"firstName": "Many", "lastName": format!("{k}-{n}"), "properties": {"n": n}});
                let r = client.post(&url).bearer_auth(&key).json(&body).send().await.expect("post");
                statuses.push(r.status().as_u16());
            }
            statuses
        });
    }
    let statuses: Vec<u16> = writers.join_all().await.into_iter().flatten().collect();
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert_eq!(persons(&app, app.tenant).await, before + 80);
    let sql = "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) FROM record_storage WHERE tenant_id = $1";
    let used: i64 = match app.keygate.store_for_tests().postgres_pool() {
        Some(pool) => sqlx::query_scalar(sql).bind(app.tenant.0).fetch_one(pool).await.expect("used"),
        None => {
            let pool = keygate_service::testing::sqlite_pool(app.keygate.store_for_tests()).expect("sqlite");
            sqlx::query_scalar(sql).bind(app.tenant.0).fetch_one(&pool).await.expect("used")
        }
    };
    // 80 records of 512 units and `{"n":N}` (7 characters) each, over what the tenant held before.
    assert!(used >= 80 * (512 + 7), "{used} units counted for 80 records");
}
