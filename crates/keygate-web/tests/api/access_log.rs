//! The access log of issue 20: its lines (text and JSON), no answered call's line lost at a
//! graceful shutdown, and a destination that blocks slows no call (its lines are dropped and
//! counted instead).

use std::{
    io::Write,
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use keygate_web::{AccessLog, AccessLogFormat, AccessLogSettings, AppState, WebConfig};

use crate::{
    app::{Captured, call, capability, request_id, text},
    helpers::spawn_app,
};

fn settings(format: AccessLogFormat) -> AccessLogSettings {
    AccessLogSettings { format, ..AccessLogSettings::default() }
}

/// `2026-12-06T23:34:55.123456Z`: RFC 3339, UTC, microseconds.
fn assert_timestamp(stamp: &str) {
    let shape: String = stamp.chars().map(|c| if c.is_ascii_digit() { 'd' } else { c }).collect();
    assert_eq!(shape, "dddd-dd-ddTdd:dd:dd.ddddddZ", "{stamp}");
}

/// The text line with its timestamp checked and taken off, and its duration replaced by `_`.
fn without_time(line: &str) -> String {
    let (stamp, rest) = line.split_once("  ").expect("a timestamp, two spaces");
    assert_timestamp(stamp);
    let (head, tail) = rest.split_once(" micros=").expect("micros");
    let (micros, tail) = tail.split_once(' ').expect("fields after micros");
    assert!(micros.parse::<u64>().is_ok(), "{line}");
    format!("{head} micros=_ {tail}")
}

#[tokio::test]
async fn the_access_log_lines_of_an_accepted_and_a_refused_call_in_text_and_in_json() {
    let t = spawn_app().await;
    let (key, secret) = t.issue(&["127.0.0.0/8"], None).await;
    let route = "/rest/v1/{unitId}/capability";
    for format in [AccessLogFormat::Text, AccessLogFormat::Json] {
        t.keygate.set_key_enabled(&keygate_service::Caller::CLI, Some(t.tenant), key, true).await.expect("enable");
        let captured = Captured::default();
        let log = AccessLog::to_writer(settings(format), Box::new(captured.clone())).expect("log");
        let app = keygate_web::app(AppState::new(
            t.keygate.clone(),
            WebConfig { access_log: log.clone(), ..WebConfig::default() },
        ));
        let accepted = call(&app, capability(secret.expose(), "/rest/v1/1/capability?secret=query")).await;
        assert_eq!(accepted.status(), StatusCode::OK);
        let accepted = request_id(&accepted);
        t.keygate.set_key_enabled(&keygate_service::Caller::CLI, Some(t.tenant), key, false).await.expect("disable");
        let refused = call(&app, capability(secret.expose(), "/rest/v1/1/capability")).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let refused = request_id(&refused);
        assert!(log.flush(Duration::from_secs(5)));
        let all = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        assert!(!all.contains(secret.expose()) && !all.contains("secret=query"), "{all}");
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.len(), 2, "{all}");
        let user = t.user;
        match format {
            AccessLogFormat::Text => {
                assert_eq!(
                    without_time(lines[0]),
                    format!(
                        "INFO request{{id={accepted}}}: keygate::access: answered method=GET route={route} \
                         status=200 micros=_ ip=127.0.0.1 key={key} user={user}"
                    )
                );
                assert_eq!(
                    without_time(lines[1]),
                    format!(
                        "INFO request{{id={refused}}}: keygate::access: answered method=GET route={route} \
                         status=401 micros=_ ip=127.0.0.1 key={key}"
                    )
                );
            }
            AccessLogFormat::Json => {
                let mut values: Vec<serde_json::Value> =
                    lines.iter().map(|l| serde_json::from_str(l).expect("JSON")).collect();
                for v in &mut values {
                    assert_timestamp(v["timestamp"].as_str().expect("timestamp"));
                    assert!(v["fields"]["micros"].as_u64().is_some(), "{v}");
                    v["timestamp"] = "T".into();
                    v["fields"]["micros"] = 0.into();
                }
                let expected = |id: &str, status: u16, user: Option<String>| {
                    let mut fields = serde_json::json!({
                        "message": "answered", "method": "GET", "route": route, "status": status,
                        "micros": 0, "ip": "127.0.0.1", "key": key.to_string(),
                    });
                    if let Some(user) = user {
                        fields["user"] = user.into();
                    }
                    serde_json::json!({
                        "timestamp": "T", "level": "INFO", "fields": fields,
                        "target": "keygate::access", "span": { "id": id, "name": "request" },
                    })
                };
                assert_eq!(values[0], expected(&accepted, 200, Some(user.to_string())));
                assert_eq!(values[1], expected(&refused, 401, None));
            }
        }
    }
}

#[tokio::test]
async fn no_answered_calls_access_log_line_is_lost_at_a_graceful_shutdown() {
    let t = spawn_app().await;
    let (_, secret) = t.issue(&["127.0.0.0/8"], None).await;
    let captured = Captured::default();
    // Lines leave their buffers only when a buffer is full (1 MiB) or at the shutdown's flush.
    let settings = AccessLogSettings {
        format: AccessLogFormat::Json,
        batch_bytes: 1 << 20,
        flush_interval: Duration::from_secs(3600),
        ..AccessLogSettings::default()
    };
    let log = AccessLog::to_writer(settings, Box::new(captured.clone())).expect("log");
    let state = AppState::new(t.keygate.clone(), WebConfig { access_log: log.clone(), ..WebConfig::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(keygate_web::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    const CALLS: usize = 200;
    let calls = (0..CALLS).map(|i| {
        let (client, key) = (client.clone(), secret.expose().to_owned());
        async move {
            let path = if i % 10 == 0 { "/rest/v1/1/capability" } else { "/healthz" };
            let answer = client.get(format!("http://{addr}{path}")).bearer_auth(key).send().await.expect("answered");
            assert!(answer.status().is_success(), "{}", answer.status());
            answer.headers()["x-request-id"].to_str().expect("ascii").to_owned()
        }
    });
    let mut ids: Vec<String> = futures_join_all(calls).await;
    assert_eq!(captured.0.lock().expect("lock").len(), 0, "the lines are still in their buffers");
    drop(client);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), server).await.expect("stopped").expect("task").expect("served");
    let lines = captured.lines();
    let mut logged: Vec<String> = lines.iter().map(|l| l["span"]["id"].as_str().expect("id").to_owned()).collect();
    ids.sort();
    logged.sort();
    assert_eq!(logged, ids, "every answered call has its line once the server has stopped");
    assert_eq!((log.written(), log.dropped()), (CALLS as u64, 0));
}

/// Runs the futures concurrently, in order of their results.
async fn futures_join_all<F: std::future::Future<Output = T> + Send + 'static, T: Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<T> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

/// A destination whose first write blocks until released: a full disk, a stuck pipe.
struct Blocked {
    entered: Option<mpsc::Sender<()>>,
    release: Arc<Mutex<mpsc::Receiver<()>>>,
    inner: Captured,
}

impl Write for Blocked {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(entered) = self.entered.take() {
            let _ = entered.send(());
            let _ = self.release.lock().expect("lock").recv();
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_blocked_destination_slows_no_call_and_the_lines_it_cannot_take_are_dropped_and_counted() {
    let t = spawn_app().await;
    let captured = Captured::default();
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let blocked =
        Blocked { entered: Some(entered_tx), release: Arc::new(Mutex::new(release_rx)), inner: captured.clone() };
    // Every line is a batch of its own; the queue holds 4; the writer never sweeps by itself.
    let settings = AccessLogSettings {
        batch_bytes: 1,
        queue_batches: 4,
        flush_interval: Duration::from_secs(3600),
        ..AccessLogSettings::default()
    };
    let log = AccessLog::to_writer(settings, Box::new(blocked)).expect("log");
    let app = keygate_web::app(AppState::new(
        t.keygate.clone(),
        WebConfig { access_log: log.clone(), ..WebConfig::default() },
    ));
    let healthz = || Request::get("/healthz").body(Body::empty()).expect("request");

    // The first line reaches the writer, which blocks in its write.
    assert_eq!(call(&app, healthz()).await.status(), StatusCode::OK);
    entered.recv_timeout(Duration::from_secs(5)).expect("the writer took the first line");
    // 100 more calls: 4 lines wait in the queue, 96 are dropped, and no call waits.
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(call(&app, healthz()).await.status(), StatusCode::OK);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "100 calls took {took:?} with the log's destination blocked");
    assert_eq!(log.dropped(), 96);
    let metrics = text(call(&app, Request::get("/metrics").body(Body::empty()).expect("request")).await).await;
    assert!(
        metrics.lines().any(|l| l == "keygate_access_log_dropped_total 96"),
        "the drop counter in /metrics: {metrics}"
    );
    // The /metrics call's own line is dropped too (the queue is still full).
    assert_eq!(log.dropped(), 97);

    // Released, the writer writes what it held and what waited: 5 lines, nothing more lost.
    release.send(()).expect("release");
    assert!(log.flush(Duration::from_secs(5)));
    assert_eq!((log.written(), log.dropped()), (5, 97));
    let all = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert_eq!(all.lines().count(), 5, "{all}");
    assert!(all.lines().all(|l| l.contains(" route=/healthz status=200 ")), "{all}");
}
