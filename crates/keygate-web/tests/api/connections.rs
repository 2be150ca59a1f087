//! Connections that make no progress are closed; connections in use are not.

use std::time::{Duration, Instant};

use keygate_web::WebConfig;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::spawn_app_with_web;

const IDLE: Duration = Duration::from_millis(800);

async fn connect() -> (crate::helpers::TestApp, TcpStream) {
    let app = spawn_app_with_web(WebConfig { idle_timeout: IDLE, ..WebConfig::default() }).await;
    let stream = TcpStream::connect(app.addr).await.expect("connect");
    (app, stream)
}

/// Reads one HTTP/1.1 answer (head and `Content-Length` body); returns its status line.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await.expect("answer in time");
        assert_eq!(n.expect("read"), 1, "the connection closed mid-answer after {:?}", String::from_utf8_lossy(&seen));
        seen.push(byte[0]);
    }
    let head = String::from_utf8(seen).expect("ascii head");
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().expect("length")))
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("body");
    head.lines().next().unwrap_or_default().to_owned()
}

/// Waits for the server to close the connection; returns how long that took from `since`.
async fn closed_by_server(stream: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the server closed the connection within 10 s");
    assert!(matches!(n, Ok(0) | Err(_)), "expected the connection to close, got {n:?}");
    since.elapsed()
}

#[tokio::test]
async fn a_client_that_trickles_its_request_head_is_disconnected_after_the_idle_timeout() {
    let (_app, mut stream) = connect().await;
    let started = Instant::now();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.expect("write");
    // One byte every 100 ms: bytes keep coming, but the head never completes.
    let closed = loop {
        if stream.write_all(b"a").await.is_err() {
            break started.elapsed();
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0) | Err(_)) => break started.elapsed(),
            Ok(Ok(n)) => panic!("the server answered an incomplete head: {:?}", String::from_utf8_lossy(&buf[..n])),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "a trickling client was never cut off");
    };
    assert!(closed >= IDLE, "closed after {closed:?}, before the idle timeout of {IDLE:?}");
    assert!(closed < IDLE * 3, "closed only after {closed:?}, long after the idle timeout of {IDLE:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let (_app, mut stream) = connect().await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    assert_eq!(read_answer(&mut stream).await, "HTTP/1.1 200 OK");
    let after = closed_by_server(&mut stream, Instant::now()).await;
    assert!(after >= IDLE, "closed after {after:?}, before the idle timeout of {IDLE:?}");
    assert!(after < IDLE * 3, "closed only after {after:?}, long after the idle timeout of {IDLE:?}");
}

#[tokio::test]
async fn a_connection_that_keeps_sending_requests_stays_open_past_the_idle_timeout() {
    let (_app, mut stream) = connect().await;
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < IDLE * 4 {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("the connection is still open");
        assert_eq!(read_answer(&mut stream).await, "HTTP/1.1 200 OK");
        answered += 1;
        tokio::time::sleep(IDLE / 3).await;
    }
    assert!(answered >= 10, "only {answered} answers in {:?}", started.elapsed());
}
