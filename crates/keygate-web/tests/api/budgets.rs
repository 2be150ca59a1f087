//! What an insider's data queries may take, on SQLite and (when configured) PostgreSQL: hostile
//! `LIKE` patterns are refused before any work, a query past its time budget is stopped and
//! answered `503 query_timeout`, pages share one memory budget (`503 page_memory_busy` when it
//! has no room), and a key runs a bounded number of queries at once. Numbers are asserted.

use std::time::{Duration, Instant};

use keygate_domain::{UnitId, views::Bound};
use keygate_service::ServiceConfig;
use keygate_service::{Backend, FieldValue, RecordWrite};
use serde_json::{Value, json};

use crate::helpers::{TestApp, key_for, spawn_app_on};

on_both_backends!(
    a_hostile_like_is_refused_at_once_while_plain_pages_stay_fast,
    a_query_past_its_time_budget_is_stopped_and_answered_503_naming_the_budget with super::tight_time(),
    a_page_that_finds_no_room_in_the_memory_budget_is_503_and_the_room_comes_back_when_pages_are_sent
        with super::small_memory(),
);

fn tight_time() -> ServiceConfig {
    ServiceConfig { query_time_budget: Duration::from_millis(2), ..Default::default() }
}

fn small_memory() -> ServiceConfig {
    ServiceConfig {
        page_memory_budget: 10 * 1024 * 1024,
        page_memory_wait: Duration::from_millis(200),
        ..Default::default()
    }
}

/// 2 000 time entries whose notes are 2 000 `a`s: what the hostile pattern was aimed at.
async fn long_notes(app: &TestApp) {
    let note = "a".repeat(2000);
    let writes: Vec<RecordWrite> = (0..2000)
        .map(|i| RecordWrite {
            table: "time_entries",
            fields: vec![
                ("owner_id", FieldValue::Bound(Bound::Int(app.admin.0))),
                ("user_id", FieldValue::Bound(Bound::Int(app.admin.0))),
                ("date", FieldValue::Bound(Bound::Text(format!("2026-01-{:02}", 1 + i % 28)))),
                ("hours", FieldValue::Bound(Bound::Float(1.0))),
                ("note", FieldValue::Bound(Bound::Text(note.clone()))),
            ],
        })
        .collect();
    for chunk in writes.chunks(500) {
        app.keygate.store_for_tests().records().seed(app.tenant, UnitId(1), chunk).await.expect("seed");
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn view_path(filter: &str, limit: u32) -> String {
    format!("/rest/v1/1/views/intervals.track?limit={limit}&externalFilter={}", encode(filter))
}

/// Status, problem body (or page) and how long the answer took.
async fn timed_get(app: &TestApp, key: &str, path: &str) -> (u16, Value, Duration, Option<String>) {
    let started = Instant::now();
    let r = app.client.get(app.url(path)).bearer_auth(key).send().await.expect("request");
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed(), retry)
}

async fn a_hostile_like_is_refused_at_once_while_plain_pages_stay_fast(app: TestApp) {
    long_notes(&app).await;
    let hostile_key = key_for(&app, "admin@acme.example", None).await;
    let plain_key = key_for(&app, "admin@acme.example", None).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(timed_get(&app, plain_key.expose(), "/rest/v1/1/views/intervals.track?limit=10").await.2);
    }
    idle.sort();
    let hostile = view_path(&format!("note LIKE '%{}b%'", "a".repeat(1990)), 1000);
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let attackers: Vec<_> = (0..32)
        .map(|_| {
            let (client, url, key, running) =
                (app.client.clone(), app.url(&hostile), hostile_key.expose().to_owned(), running.clone());
            tokio::spawn(async move {
                let mut worst = Duration::ZERO;
                let mut answers = 0;
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    let r = client.get(&url).bearer_auth(&key).send().await.expect("request");
                    assert_eq!(r.status(), 400);
                    let body: Value = r.json().await.expect("problem");
                    assert_eq!(body["code"], "invalid_filter");
                    let detail = body["detail"].as_str().unwrap_or_default();
                    assert!(detail.contains("at most 64 characters"), "{detail}");
                    worst = worst.max(started.elapsed());
                    answers += 1;
                    // Ten a second each, 320 a second in all: far more than the 32 requests per
                    // 6.9 s the pattern used to cost, without turning into a flood of requests.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (answers, worst)
            })
        })
        .collect();
    let mut plain = Vec::new();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..60 {
        let (status, page, took, _) =
            timed_get(&app, plain_key.expose(), "/rest/v1/1/views/intervals.track?limit=10").await;
        assert_eq!(status, 200, "{page}");
        plain.push(took);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut hostile_answers = 0;
    let mut hostile_worst = Duration::ZERO;
    for a in attackers {
        let (n, worst) = a.await.expect("attacker");
        hostile_answers += n;
        hostile_worst = hostile_worst.max(worst);
    }
    plain.sort();
    let p50 = plain[plain.len() / 2];
    eprintln!(
        "32 hostile clients: {hostile_answers} answers, the slowest in {hostile_worst:?}; plain pages meanwhile p50 \
         {p50:?}, max {:?} (alone: p50 {:?})",
        plain[plain.len() - 1],
        idle[idle.len() / 2]
    );
    assert!(hostile_answers >= 32, "every attacker got answers");
    assert!(hostile_worst <= Duration::from_secs(1), "a hostile LIKE took {hostile_worst:?} to be answered");
    assert!(p50 <= Duration::from_millis(20), "plain pages p50 {p50:?} while hostile LIKEs were sent");
}

async fn a_query_past_its_time_budget_is_stopped_and_answered_503_naming_the_budget(app: TestApp) {
    long_notes(&app).await;
    let key = key_for(&app, "admin@acme.example", None).await;
    // The worst the limits allow: four patterns of 64 characters, none matching.
    let like = format!("note LIKE '%{}b%'", "a".repeat(61));
    let filter = vec![like; 4].join(" OR ");
    let (status, body, took, retry) = timed_get(&app, key.expose(), &view_path(&filter, 1000)).await;
    eprintln!("a query over a 2 ms budget: {status} in {took:?}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "query_timeout");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("2 ms") && detail.contains("query_time_budget_ms"), "{detail}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(took <= Duration::from_secs(1), "answered after {took:?}");
}

/// A page request on a connection whose reader takes nothing: the server cannot send the page,
/// so the page keeps its share of the memory budget.
async fn stalled_page(app: &TestApp, key: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    let mut stream = socket.connect(app.addr).await.expect("connect");
    let head = format!("GET /rest/v1/1/views/companies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("send");
    stream
}

async fn a_page_that_finds_no_room_in_the_memory_budget_is_503_and_the_room_comes_back_when_pages_are_sent(
    app: TestApp,
) {
    // Rows of 3 MB: three make a page of 9 MB, most of the 10 MiB budget.
    let blob = "x".repeat(3_000_000);
    for i in 0..4 {
        let write = RecordWrite {
            table: "companies",
            fields: vec![
                ("owner_id", FieldValue::Bound(Bound::Int(app.admin.0))),
                ("name", FieldValue::Bound(Bound::Text(format!("Big {i}")))),
                ("properties", FieldValue::Bound(Bound::Text(json!({ "blob": blob }).to_string()))),
            ],
        };
        app.keygate.store_for_tests().records().seed(app.tenant, UnitId(1), &[write]).await.expect("seed");
    }
    let key = key_for(&app, "admin@acme.example", None).await;
    let stalled = stalled_page(&app, key.expose()).await;
    let held = async {
        loop {
            let (in_use, _) = app.keygate.page_memory();
            if in_use >= 8 * 1024 * 1024 {
                return in_use;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let in_use = tokio::time::timeout(Duration::from_secs(10), held).await.expect("the stalled page holds its share");
    let (status, body, took, retry) = timed_get(&app, key.expose(), "/rest/v1/1/views/companies").await;
    eprintln!("a stalled page holds {} KiB; the next page: {status} after {took:?}", in_use >> 10);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "page_memory_busy");
    assert!(body["detail"].as_str().unwrap_or_default().contains("page_memory_budget_mib"), "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(took <= Duration::from_secs(1), "answered after {took:?}");
    // Small pages still fit in what is left.
    let (status, _, _, _) = timed_get(&app, key.expose(), "/rest/v1/1/views/companies?columns=id,name").await;
    assert_eq!(status, 200, "a page of small rows still fits");
    drop(stalled);
    let freed = async {
        while app.keygate.page_memory().0 > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), freed).await.expect("a closed connection gives its share back");
    let (status, page, _, _) = timed_get(&app, key.expose(), "/rest/v1/1/views/companies").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["metadata"]["count"], 3, "three rows of 3 MB fit a 10 MB page");
}

/// The limit is the service's, not the store's: one engine shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_runs_at_most_its_limit_of_queries_at_once_and_other_keys_are_not_held_back() {
    let config = ServiceConfig { queries_per_key: 1, ..Default::default() };
    let app = spawn_app_on(Backend::Sqlite, config).await.expect("sqlite");
    long_notes(&app).await;
    let busy = key_for(&app, "admin@acme.example", None).await;
    let other = key_for(&app, "admin@acme.example", None).await;
    // Slow enough to overlap: four patterns of 64 characters over 2 000 notes of 2 000 characters.
    let filter = vec![format!("note LIKE '%{}b%'", "a".repeat(61)); 4].join(" OR ");
    let path = view_path(&filter, 1000);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, key) = (app.client.clone(), app.url(&path), busy.expose().to_owned());
            tokio::spawn(async move {
                let r = client.get(&url).bearer_auth(&key).send().await.expect("request");
                let status = r.status().as_u16();
                let retry = r.headers().get("retry-after").is_some();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (status, retry, body["code"].as_str().unwrap_or_default().to_owned())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, _, _, _) = timed_get(&app, other.expose(), "/rest/v1/1/views/intervals.track?limit=10").await;
    assert_eq!(status, 200, "another key is not held back");
    let mut answers = Vec::new();
    for c in calls {
        answers.push(c.await.expect("call"));
    }
    let refused = answers.iter().filter(|(s, retry, code)| *s == 429 && *retry && code == "too_many_queries").count();
    let ran = answers.iter().filter(|(s, _, _)| [200, 503].contains(s)).count();
    eprintln!("8 concurrent slow queries of one key with queries_per_key = 1: {ran} ran, {refused} refused");
    assert!(refused >= 1, "{answers:?}");
    assert!(ran >= 1, "{answers:?}");
    assert_eq!(refused + ran, 8, "{answers:?}");
}
