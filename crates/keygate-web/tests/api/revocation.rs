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

/// `keygate_cache_loads_total{cache="…"}` from `/metrics`.
async fn cache_loads(app: &TestApp, cache: &str) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let prefix = format!("keygate_cache_loads_total{{cache=\"{cache}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|n| n.parse().ok()).expect("the counter is exported")
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
