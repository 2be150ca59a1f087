//! `/metrics` as an operator reads it, on SQLite and PostgreSQL: real traffic through a real
//! server, then the exact numbers that traffic must give — cache hits and loads, accepted and
//! refused calls, console log-ins and their throttles, the write-behind queues, the change feed
//! and the database pools — and nothing in the scrape that names a tenant, user or key.

use std::{collections::HashMap, time::Duration};

use keygate_domain::ApiKeySecret;
use keygate_service::Backend;
use keygate_service::{Caller, CreateUser, ServiceConfig};
use secrecy::SecretString;

use crate::helpers::{TENANT, TestApp, USER, key_for, spawn_app_on};

on_both_backends!(
    a_cache_miss_then_hits_and_a_refused_call_are_counted_exactly,
    console_log_ins_are_counted_by_outcome_with_the_throttles_refusal,
    log_ins_beyond_the_hashing_slots_wait_and_are_refused_as_busy with super::one_hashing_slot(),
    the_write_behind_queues_show_what_waits_and_a_failed_flush_keeps_it,
    a_change_made_by_another_process_shows_its_lag_and_the_feed_read_age,
    every_database_pool_reports_its_connections_within_its_maximum,
);

fn one_hashing_slot() -> ServiceConfig {
    ServiceConfig {
        password_hash_memory: keygate_service::ARGON2_MEMORY_BYTES,
        password_hash_wait: Duration::from_millis(1),
        ..ServiceConfig::default()
    }
}

/// One scrape of `/metrics`: every series by its name and labels as printed, and every `# TYPE`.
struct Scrape {
    text: String,
    series: HashMap<String, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    async fn of(app: &TestApp) -> Self {
        let r = app.client.get(app.url("/metrics")).send().await.expect("metrics");
        assert_eq!(r.status(), 200);
        let text = r.text().await.expect("text");
        let mut series = HashMap::new();
        let mut types = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (name, value) = line.rsplit_once(' ').expect("series value");
                series.insert(name.to_owned(), value.parse().unwrap_or_else(|_| panic!("a number in `{line}`")));
            }
        }
        Self { text, series, types }
    }

    /// The value of a series, e.g. `keygate_cache_hits_total{cache="key"}`.
    fn value(&self, series: &str) -> f64 {
        *self.series.get(series).unwrap_or_else(|| panic!("`{series}` is not in the scrape:\n{}", self.text))
    }

    fn count(&self, series: &str) -> u64 {
        let v = self.value(series);
        assert!(v >= 0.0 && v.fract() == 0.0, "`{series}` = {v} is not a count");
        v as u64
    }

    /// How much a counter or gauge grew since `before`.
    fn grown(&self, before: &Scrape, series: &str) -> u64 {
        self.count(series) - before.series.get(series).map_or(0, |v| *v as u64)
    }

    fn kind(&self, family: &str) -> &str {
        self.types.get(family).unwrap_or_else(|| panic!("no # TYPE for `{family}`"))
    }
}

const PASSWORD: &str = "correct horse battery staple";
const ADA: &str = "ada@acme.example";

async fn add_ada(app: &TestApp) {
    app.keygate
        .create_user(
            &Caller::CLI,
            app.tenant,
            CreateUser {
                inactive: false,
                email: ADA.into(),
                name: "Ada".into(),
                category: "personal".into(),
                groups: vec!["Configurator".into()],
                units: None,
                password: Some(SecretString::from(PASSWORD)),
            },
        )
        .await
        .expect("user");
}

/// Posts the console log-in form; the status it answers.
async fn log_in(app: &TestApp, email: &str, password: &str) -> u16 {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let form = [("tenant", TENANT), ("email", email), ("password", password)];
    client.post(app.url("/console/login")).form(&form).send().await.expect("log in").status().as_u16()
}

async fn a_cache_miss_then_hits_and_a_refused_call_are_counted_exactly(app: TestApp) {
    let key = key_for(&app, USER, None).await;
    let before = Scrape::of(&app).await;
    for _ in 0..3 {
        assert_eq!(app.capability(key.expose()).await.status(), 200);
    }
    let r = app.capability("kg_not-a-key").await;
    assert_eq!(r.status(), 401);
    let after = Scrape::of(&app).await;
    for cache in ["key", "user", "tenant"] {
        let loads = format!("keygate_cache_loads_total{{cache=\"{cache}\"}}");
        let hits = format!("keygate_cache_hits_total{{cache=\"{cache}\"}}");
        assert_eq!(after.grown(&before, &loads), 1, "the first call misses the {cache} cache once");
        assert_eq!(after.grown(&before, &hits), 2, "the next two calls find the {cache} in the cache");
    }
    assert_eq!(after.grown(&before, "keygate_accepted_calls_total"), 3);
    assert_eq!(after.grown(&before, "keygate_refused_calls_total{code=\"malformed_key\"}"), 1);
    assert_eq!(after.grown(&before, "keygate_refused_calls_total{code=\"unknown_key\"}"), 0, "never looked up");
    assert_eq!(after.kind("keygate_cache_hits"), "counter");
    assert_eq!(after.kind("keygate_accepted_calls"), "counter");
    for private in [TENANT, USER, &key.expose()[..12]] {
        assert!(!after.text.contains(private), "the scrape names `{private}`:\n{}", after.text);
    }
}

async fn console_log_ins_are_counted_by_outcome_with_the_throttles_refusal(app: TestApp) {
    add_ada(&app).await;
    let attempt = |outcome: &str| format!("keygate_login_attempts_total{{outcome=\"{outcome}\"}}");
    let before = Scrape::of(&app).await;
    assert_eq!(log_in(&app, ADA, "wrong horse battery staple").await, 401);
    assert_eq!(log_in(&app, ADA, PASSWORD).await, 303, "a success takes the failure back");
    let middle = Scrape::of(&app).await;
    assert_eq!(middle.grown(&before, &attempt("failed")), 1);
    assert_eq!(middle.grown(&before, &attempt("succeeded")), 1);
    // Ten failures are allowed; the attempt after them is refused before any hashing.
    for _ in 0..10 {
        assert_eq!(log_in(&app, ADA, "wrong horse battery staple").await, 401);
    }
    assert_eq!(log_in(&app, ADA, PASSWORD).await, 429, "locked, even with the right password");
    let after = Scrape::of(&app).await;
    assert_eq!(after.grown(&middle, &attempt("failed")), 10);
    assert_eq!(after.grown(&middle, &attempt("throttled")), 1);
    assert_eq!(after.grown(&middle, &attempt("succeeded")), 0);
    assert_eq!(after.grown(&before, &attempt("busy")), 0);
    assert_eq!(after.grown(&before, &attempt("error")), 0);
    assert_eq!(after.grown(&before, "keygate_password_hashings_total"), 12, "the throttled attempt hashed nothing");
    assert_eq!(after.grown(&before, "keygate_password_hashing_queued_total"), 0, "one at a time never waits");
    assert_eq!(after.count("keygate_password_hashing_slots"), 4, "the default budget holds four");
    assert_eq!(after.count("keygate_password_hashing_in_use"), 0);
    assert!(!after.text.contains(ADA), "the scrape names the user");
}

async fn log_ins_beyond_the_hashing_slots_wait_and_are_refused_as_busy(app: TestApp) {
    add_ada(&app).await;
    let before = Scrape::of(&app).await;
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let (url, email) = (app.url("/console/login"), format!("nobody{i}@acme.example"));
            tokio::spawn(async move {
                let form = [("tenant", TENANT), ("email", &email), ("password", "wrong horse battery staple")];
                reqwest::Client::new().post(url).form(&form).send().await.expect("log in").status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for a in attempts {
        statuses.push(a.await.expect("task"));
    }
    let refused = statuses.iter().filter(|s| **s == 401).count() as u64;
    let busy = statuses.iter().filter(|s| **s == 503).count() as u64;
    assert_eq!(refused + busy, 8, "{statuses:?}");
    assert!(busy >= 1, "8 attempts at once, one slot, 1 ms of patience: {statuses:?}");
    let after = Scrape::of(&app).await;
    assert_eq!(after.grown(&before, "keygate_login_attempts_total{outcome=\"busy\"}"), busy);
    assert_eq!(after.grown(&before, "keygate_login_attempts_total{outcome=\"failed\"}"), refused);
    assert_eq!(after.grown(&before, "keygate_password_hashings_total"), refused, "only the answered ones hashed");
    let queued = after.grown(&before, "keygate_password_hashing_queued_total");
    assert!(queued >= busy && queued < 8, "{queued} waited: every busy one, never the first");
    assert_eq!(after.count("keygate_password_hashing_slots"), 1);
    assert_eq!(after.count("keygate_password_hashing_in_use"), 0, "all answered: the slot is free");
}

async fn the_write_behind_queues_show_what_waits_and_a_failed_flush_keeps_it(app: TestApp) {
    let depth = |queue: &str| format!("keygate_write_behind_depth{{queue=\"{queue}\"}}");
    let failed = |queue: &str| format!("keygate_write_behind_failed_writes_total{{queue=\"{queue}\"}}");
    let lag = |queue: &str| format!("keygate_write_behind_lag_seconds{{queue=\"{queue}\"}}");
    let key = key_for(&app, USER, None).await;
    app.keygate.flush().await;
    let empty = Scrape::of(&app).await;
    for queue in ["last_used", "call_counts", "refused_calls"] {
        assert_eq!(empty.count(&depth(queue)), 0, "{queue} after a flush");
        assert!(empty.value(&lag(queue)) < 1.0, "{queue} was just written whole");
    }
    assert_eq!(empty.kind("keygate_write_behind_depth"), "gauge");
    assert_eq!(empty.kind("keygate_write_behind_lag_seconds"), "gauge");
    assert_eq!(empty.kind("keygate_write_behind_failed_writes"), "counter");
    for _ in 0..2 {
        assert_eq!(app.capability(key.expose()).await.status(), 200);
    }
    assert_eq!(app.capability(ApiKeySecret::generate().expose()).await.status(), 401);
    let waiting = Scrape::of(&app).await;
    assert_eq!(waiting.count(&depth("last_used")), 1, "the key's first use");
    assert_eq!(waiting.count(&depth("call_counts")), 1, "one key with calls to count");
    assert_eq!(waiting.count(&depth("refused_calls")), 1, "one refusal group: unknown key from 127.0.0.1");

    // The database goes away: a flush fails, keeps everything, and says so.
    app.keygate.store_for_tests().close().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.keygate.flush().await;
    let failing = Scrape::of(&app).await;
    assert_eq!(failing.grown(&empty, &failed("last_used")), 1);
    assert_eq!(failing.grown(&empty, &failed("call_counts")), 1);
    assert_eq!(failing.grown(&empty, &failed("refused_calls")), 4, "a final flush tries the audit write four times");
    assert_eq!(failing.count(&depth("last_used")), 1, "kept for the next flush");
    assert_eq!(failing.count(&depth("call_counts")), 1, "gathered into one (key, day, outcome) count, kept");
    assert_eq!(failing.count(&depth("refused_calls")), 1, "kept for a retry");
    for queue in ["last_used", "call_counts", "refused_calls"] {
        assert!(failing.value(&lag(queue)) > waiting.value(&lag(queue)), "{queue}: not written since");
    }
    assert_eq!(failing.grown(&empty, "keygate_write_behind_dropped_total{queue=\"refused_calls\"}"), 0);
}

async fn a_change_made_by_another_process_shows_its_lag_and_the_feed_read_age(app: TestApp) {
    let (id, key) = app.issue(&["127.0.0.0/8"], None).await;
    assert_eq!(app.capability(key.expose()).await.status(), 200);
    app.keygate.catch_up().await.expect("the first read starts at the end of the feed");
    let before = Scrape::of(&app).await;
    assert!(before.value("keygate_change_feed_read_age_seconds") < 1.0, "the feed was just read");
    assert_eq!(before.kind("keygate_change_apply_lag_seconds"), "histogram");
    // A second service over the same database stands for the command line or another node.
    let other = keygate_service::Keygate::new(app.keygate.store_for_tests().clone(), ServiceConfig::default());
    other.set_key_enabled(&Caller::CLI, Some(app.tenant), id, false).await.expect("disable");
    tokio::time::sleep(Duration::from_millis(20)).await;
    app.keygate.catch_up().await.expect("read the feed");
    assert_eq!(app.capability(key.expose()).await.status(), 401, "the change was applied");
    let after = Scrape::of(&app).await;
    assert_eq!(after.grown(&before, "keygate_change_apply_lag_seconds_count"), 1, "one change applied");
    let lag =
        after.value("keygate_change_apply_lag_seconds_sum") - before.value("keygate_change_apply_lag_seconds_sum");
    assert!((0.02..1.0).contains(&lag), "made 20 ms before it was read, applied after {lag} s");
    assert_eq!(after.grown(&before, "keygate_change_apply_lag_seconds_bucket{le=\"0.01\"}"), 0);
    assert_eq!(after.grown(&before, "keygate_change_apply_lag_seconds_bucket{le=\"1.0\"}"), 1);
    assert_eq!(after.grown(&before, "keygate_change_apply_lag_seconds_bucket{le=\"+Inf\"}"), 1);
    assert!(after.value("keygate_change_feed_read_age_seconds") < 1.0);
}

async fn every_database_pool_reports_its_connections_within_its_maximum(app: TestApp) {
    let key = key_for(&app, USER, None).await;
    let r = app.client.get(app.url("/rest/v1/1/views/invoices.sales?limit=5")).bearer_auth(key.expose()).send().await;
    assert_eq!(r.expect("page").status(), 200);
    let pools: &[&str] = match app.keygate.store_for_tests().backend() {
        Backend::Sqlite => &["sqlite", "sqlite_page_readers"],
        Backend::Postgres => &["postgres"],
    };
    let in_use = |scrape: &Scrape, pool: &str| {
        scrape.count(&format!("keygate_db_connections{{pool=\"{pool}\",state=\"in_use\"}}"))
    };
    // sqlx hands a connection back to its pool in a task of its own, just after the answer.
    let started = std::time::Instant::now();
    let scrape = loop {
        let scrape = Scrape::of(&app).await;
        if pools.iter().all(|pool| in_use(&scrape, pool) == 0) || started.elapsed() > Duration::from_secs(1) {
            break scrape;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for pool in pools {
        let idle = scrape.count(&format!("keygate_db_connections{{pool=\"{pool}\",state=\"idle\"}}"));
        assert_eq!(in_use(&scrape, pool), 0, "{pool}: nothing runs between requests");
        assert!(idle >= 1, "{pool}: the page read left its connection open for the next");
        if *pool != "sqlite_page_readers" {
            let max = scrape.count(&format!("keygate_db_connections_max{{pool=\"{pool}\"}}"));
            assert!((4..=16).contains(&max) && idle <= max, "{pool}: {idle} idle of at most {max}");
        }
    }
    assert_eq!(scrape.text.matches("keygate_db_connections{").count(), 2 * pools.len(), "no other pool");
    assert_eq!(scrape.kind("keygate_db_connections"), "gauge");
}

/// deploy/prometheus/keygate-alerts.yml and deploy/grafana/keygate-dashboard.json are what operators
/// load: every `keygate_…` and `process_…` series they name must be one that `/metrics` serves (on
/// PostgreSQL, which serves every family), so a renamed metric cannot leave an alert or a panel
/// silently watching nothing. (The disk alert's `node_…` series come from node_exporter.)
#[tokio::test]
async fn the_shipped_dashboard_and_alert_rules_name_only_series_that_metrics_serves() {
    let Some(app) = spawn_app_on(Backend::Postgres, ServiceConfig::default()).await else {
        eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
        return;
    };
    let deploy = |file: &str| {
        std::fs::read_to_string(format!("{}/../../deploy/{file}", env!("CARGO_MANIFEST_DIR"))).expect(file)
    };
    let rules = deploy("prometheus/keygate-alerts.yml");
    let dashboard = deploy("grafana/keygate-dashboard.json");
    let panels: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let queries: Vec<String> = panels["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets").iter())
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect();
    assert!(queries.len() >= 20, "the dashboard has {} queries", queries.len());
    // A serving process: its background work holds the change listener, whose series join in.
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let _background = app.keygate.spawn_background(stop);
    let started = std::time::Instant::now();
    while !app.keygate.listener_health().enabled && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = key_for(&app, USER, None).await;
    let answer = app.client.get(app.url("/rest/v1/1/capability")).bearer_auth(key.expose()).send().await.expect("call");
    assert_eq!(answer.status(), 200);
    let scrape = Scrape::of(&app).await;
    for (file, text, at_least) in [("alert rules", rules, 12), ("dashboard", queries.join("\n"), 25)] {
        let mut named = std::collections::BTreeSet::new();
        for prefix in ["keygate_", "process_"] {
            for (at, _) in text.match_indices(prefix) {
                let name: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                named.insert(name);
            }
        }
        assert!(named.len() >= at_least, "the {file} name {} series", named.len());
        for name in &named {
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            assert!(
                scrape.types.contains_key(family) || scrape.types.contains_key(name.as_str()),
                "the {file} name `{name}`, which /metrics does not serve:\n{}",
                scrape.text
            );
        }
    }
}

/// An operator's dashboard starts from the process figures every exporter gives and which build
/// runs: `process_…` and `keygate_build_info`.
#[tokio::test]
async fn metrics_show_the_process_and_the_build() {
    let app = crate::helpers::spawn_app().await;
    let scrape = Scrape::of(&app).await;
    assert!(scrape.value("process_resident_memory_bytes") > 1_000_000.0, "{}", scrape.text);
    assert!(scrape.value("process_open_fds") >= 3.0);
    assert!(scrape.value("process_max_fds") >= scrape.value("process_open_fds"));
    assert!(scrape.value("process_cpu_seconds_total") >= 0.0);
    assert!(scrape.value("process_start_time_seconds") > 1_700_000_000.0);
    let build = scrape.series.keys().find(|s| s.starts_with("keygate_build_info{")).expect("build info");
    assert!(build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))), "{build}");
    assert_eq!(scrape.kind("process_cpu_seconds"), "counter");
}
