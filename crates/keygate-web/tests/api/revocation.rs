//! Changes made through keygate refuse the very next request, even while other keys keep the
//! server busy.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use keygate_service::{Caller, CreateUser, IssueKey, KeyOwner};

use crate::helpers::{TestApp, problem_code, spawn_app};

/// Keeps eight clients calling with keys of a second user until stopped; counts their successes.
async fn background_load(app: &TestApp) -> (Arc<AtomicBool>, Arc<AtomicU64>, Vec<tokio::task::JoinHandle<()>>) {
    app.keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            CreateUser {
                email: "other@acme.example".into(),
                name: "Other".into(),
                category: "programmatic".into(),
                ..Default::default()
            },
        )
        .await
        .expect("user");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (_, key) = app
            .issue_with(IssueKey {
                owner: KeyOwner::Email("other@acme.example".into()),
                purpose: "load".into(),
                ip_ranges: vec!["127.0.0.0/8".into()],
                rate_limit_per_minute: Some(1_000_000),
                ..IssueKey::default()
            })
            .await;
        let (client, url, stop, ok) = (app.client.clone(), app.url("/rest/v1/1/capability"), stop.clone(), ok.clone());
        let key = key.expose().to_owned();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = client.get(&url).bearer_auth(&key).send().await
                    && r.status() == 200
                {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Let the load reach its stride before the change.
    while ok.load(Ordering::Relaxed) < 50 {
        tokio::task::yield_now().await;
    }
    (stop, ok, tasks)
}

async fn stop_load(stop: Arc<AtomicBool>, ok: Arc<AtomicU64>, tasks: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    assert!(ok.load(Ordering::Relaxed) > 50, "the other keys kept working throughout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_key_is_refused_on_the_next_request_under_load() {
    let app = spawn_app().await;
    let (id, key) = app.issue(&["127.0.0.0/8"], None).await;
    let (stop, ok, tasks) = background_load(&app).await;
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    app.keygate.set_key_enabled(&Caller::CLI, None, id, false).await.expect("disable");
    assert_eq!(problem_code(app.capability(key.expose()).await).await, "key_disabled");
    app.keygate.set_key_enabled(&Caller::CLI, None, id, true).await.expect("enable");
    assert_eq!(app.capability(key.expose()).await.status(), 200, "re-enabling works on the next request too");
    stop_load(stop, ok, tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_the_user_refuses_their_key_on_the_next_request_under_load() {
    let app = spawn_app().await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    let (stop, ok, tasks) = background_load(&app).await;
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    let outcome = app.keygate.set_user_active(&Caller::CLI, app.tenant, app.user, false).await.expect("deactivate");
    assert_eq!(outcome.keys_stopped, 1);
    assert_eq!(problem_code(app.capability(key.expose()).await).await, "user_inactive");
    stop_load(stop, ok, tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_tenant_api_off_refuses_the_next_request_under_load() {
    let app = spawn_app().await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    let (stop, ok, tasks) = background_load(&app).await;
    stop.store(true, Ordering::Relaxed);
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    app.keygate.set_public_api(&Caller::CLI, app.tenant, false).await.expect("off");
    assert_eq!(problem_code(app.capability(key.expose()).await).await, "api_disabled");
    stop.store(false, Ordering::Relaxed);
    stop_load(stop, ok, tasks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_by_another_process_reaches_the_server_within_a_second() {
    let app = spawn_app().await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = app.keygate.spawn_background(stop_rx);
    let (id, key) = app.issue(&["127.0.0.0/8"], None).await;
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    // A second service over the same database stands for the command line or another node.
    let other = keygate_service::Keygate::new(app.keygate.store_for_tests().clone(), Default::default());
    other.revoke_key(&Caller::CLI, Some(app.tenant), id).await.expect("revoke");
    let started = std::time::Instant::now();
    loop {
        let r = app.capability(key.expose()).await;
        if r.status() == 401 {
            assert_eq!(problem_code(r).await, "key_revoked");
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "still accepted after a second");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let _ = background.await;
}

/// The value of the series `series` (name and labels) from `/metrics`.
async fn scraped(app: &TestApp, series: &str) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let prefix = format!("{series} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|n| n.parse().ok()).expect("the series is exported")
}

/// `keygate_cache_loads_total{cache="…"}`: the cache's database reads inside calls.
async fn cache_loads(app: &TestApp, cache: &str) -> u64 {
    scraped(app, &format!("keygate_cache_loads_total{{cache=\"{cache}\"}}")).await
}

/// `keygate_key_reads_ahead_total{outcome="…"}`.
async fn reads_ahead(app: &TestApp, outcome: &str) -> u64 {
    scraped(app, &format!("keygate_key_reads_ahead_total{{outcome=\"{outcome}\"}}")).await
}

/// Calls capability with every key at once; each must succeed.
async fn burst(app: &TestApp, keys: &[keygate_domain::ApiKeySecret]) {
    let calls: Vec<_> = keys
        .iter()
        .map(|key| {
            let (client, url, key) = (app.client.clone(), app.url("/rest/v1/1/capability"), key.expose().to_owned());
            tokio::spawn(async move { client.get(url).bearer_auth(key).send().await.expect("request").status() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task"), 200);
    }
}

#[tokio::test]
async fn a_burst_of_calls_for_a_user_not_cached_reads_that_user_once() {
    let app = spawn_app().await;
    let mut keys = Vec::new();
    for _ in 0..24 {
        keys.push(app.issue(&["127.0.0.0/8"], None).await.1);
    }
    // Caches the keys, and opens one connection per key, so the next burst arrives at once.
    burst(&app, &keys).await;
    // Deactivating and reactivating the user drops the cached user, and only it: the 24 keys stay
    // cached, so every call of the next burst misses on the user at the same moment.
    for active in [false, true] {
        app.keygate.set_user_active(&Caller::CLI, app.tenant, app.user, active).await.expect("(de)activate");
    }
    let (users, key_loads) = (cache_loads(&app, "user").await, cache_loads(&app, "key").await);
    burst(&app, &keys).await;
    assert_eq!(cache_loads(&app, "key").await - key_loads, 0, "the keys were still cached");
    assert_eq!(cache_loads(&app, "user").await - users, 1, "24 concurrent calls of one user read it once");
}

// Reads ahead of the TTL: a key in steady use is read again in the background once three quarters
// of its TTL are over, so that no call waits for the read the TTL would make one of them do.

on_both_backends!(
    a_key_in_steady_use_is_read_again_before_its_ttl_runs_out_and_no_call_waits_for_that_read
        with super::short_ttl(),
    a_change_no_invalidation_reported_is_refused_once_the_read_ahead_sees_it_before_the_ttl_runs_out
        with super::short_ttl(),
    a_revocation_while_reads_ahead_run_all_the_time_is_never_undone_by_one
        with super::tiny_ttl(),
);

use crate::helpers::spawn_app_on;
use keygate_service::Backend;

/// A TTL that a test can outlive: reads ahead start after 3 s.
fn short_ttl() -> keygate_service::ServiceConfig {
    keygate_service::ServiceConfig { cache_ttl: std::time::Duration::from_secs(4), ..Default::default() }
}

/// A TTL so short that, under steady calls, a read ahead is nearly always under way.
fn tiny_ttl() -> keygate_service::ServiceConfig {
    keygate_service::ServiceConfig { cache_ttl: std::time::Duration::from_millis(40), ..Default::default() }
}

/// Waits (at most `within`) until `n` reads ahead have renewed their entry; false if they did not.
async fn renewals_reach(app: &TestApp, n: u64, within: std::time::Duration) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if reads_ahead(app, "renewed").await >= n {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

async fn a_key_in_steady_use_is_read_again_before_its_ttl_runs_out_and_no_call_waits_for_that_read(app: TestApp) {
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    let first = std::time::Instant::now();
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    let (loaded, renewed) = (cache_loads(&app, "key").await, reads_ahead(&app, "renewed").await);
    // Past three quarters of the 4 s TTL: served from the cache, and read again behind the call.
    tokio::time::sleep_until((first + std::time::Duration::from_millis(3_200)).into()).await;
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    assert!(
        renewals_reach(&app, renewed + 1, std::time::Duration::from_millis(600)).await,
        "the key was not read again before its TTL ran out"
    );
    assert_eq!(cache_loads(&app, "key").await, loaded, "a read ahead counted as a load: hits and loads are lookups");
    // Past the TTL of the first read: the entry was renewed, so the call reads nothing.
    tokio::time::sleep_until((first + std::time::Duration::from_millis(4_300)).into()).await;
    let before = cache_loads(&app, "key").await;
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    assert_eq!(cache_loads(&app, "key").await, before, "a call past the first TTL waited for a database read");
}

async fn a_change_no_invalidation_reported_is_refused_once_the_read_ahead_sees_it_before_the_ttl_runs_out(
    app: TestApp,
) {
    let (id, key) = app.issue(&["127.0.0.0/8"], None).await;
    let first = std::time::Instant::now();
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    // Disabled behind keygate's back: no change is recorded, so nothing invalidates the entry.
    let db = app.keygate.store_for_tests();
    let sql = "UPDATE api_keys SET enabled = $1 WHERE id = $2";
    match (keygate_service::testing::sqlite_pool(db), db.postgres_pool()) {
        (Some(pool), _) => sqlx::query(sql).bind(false).bind(id.0).execute(&pool).await.map(|r| r.rows_affected()),
        (None, Some(pool)) => sqlx::query(sql).bind(false).bind(id.0).execute(pool).await.map(|r| r.rows_affected()),
        (None, None) => unreachable!("a database is SQLite or PostgreSQL"),
    }
    .map(|rows| assert_eq!(rows, 1))
    .expect("update");
    tokio::time::sleep_until((first + std::time::Duration::from_millis(3_200)).into()).await;
    // The cached entry still answers this call, and its read ahead finds the change.
    assert_eq!(app.capability(key.expose()).await.status(), 200, "the change was seen before any read");
    let refused = loop {
        let r = app.capability(key.expose()).await;
        if r.status() != 200 {
            break r;
        }
        assert!(first.elapsed() < std::time::Duration::from_millis(3_900), "accepted until the TTL nearly ran out");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(problem_code(refused).await, "key_disabled");
    assert_eq!(reads_ahead(&app, "dropped").await, 1, "the read ahead dropped the entry it found changed");
}

async fn a_revocation_while_reads_ahead_run_all_the_time_is_never_undone_by_one(app: TestApp) {
    let renewed = reads_ahead(&app, "renewed").await;
    for round in 0..10 {
        let (id, key) = app.issue(&["127.0.0.0/8"], None).await;
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let (client, url, key, stop) =
                    (app.client.clone(), app.url("/rest/v1/1/capability"), key.expose().to_owned(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = client.get(&url).bearer_auth(&key).send().await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(100 + 20 * round)).await;
        app.keygate.revoke_key(&Caller::CLI, Some(app.tenant), id).await.expect("revoke");
        // Reads ahead that began before the revocation end during these calls: none may bring
        // the key back.
        for call in 0..40 {
            let r = app.capability(key.expose()).await;
            assert_eq!(r.status(), 401, "round {round}, call {call} after the revocation was accepted");
            assert_eq!(problem_code(r).await, "key_revoked");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for caller in callers {
            caller.await.expect("caller");
        }
    }
    assert!(reads_ahead(&app, "renewed").await > renewed, "the calls ran no read ahead, so they tried no race");
}
