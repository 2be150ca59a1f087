//! PostgreSQL down (a cluster of our own, paused): a call whose key keygate must read and cannot is
//! answered `503` with `Retry-After` within the verify path's wait (1.5 s), on the Public API,
//! forward-auth and the verify endpoint, never a refusal that blames the key; and is judged again
//! once PostgreSQL is back.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

use crate::cluster::{Node, OwnPostgres, cli_ok, seed, within};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_keygate"))
}

/// One request on a new connection: the status, the head, and how long the answer took.
fn request(addr: SocketAddr, method: &str, path: &str, key: &str, body: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new(), started.elapsed());
    };
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text, started.elapsed())
}

#[test]
fn with_postgresql_down_a_key_not_cached_is_503_with_retry_after_within_two_seconds_never_a_refusal() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(pg) = OwnPostgres::start(&repo) else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: PostgreSQL's binaries must be installed");
        eprintln!("skipped: no PostgreSQL binaries to start a cluster of our own");
        return;
    };
    let url = pg.url.clone();
    let keys = seed(bin(), &url, 3, None);
    let service = cli_ok(
        bin(),
        &url,
        &[
            "keys",
            "issue",
            "--tenant",
            "acme",
            "--user",
            "erp@acme.example",
            "--purpose",
            "verifier",
            "--ip",
            "127.0.0.0/8",
            "--scope",
            "keys:verify",
        ],
    );
    let service = service.trim();
    let node = Node::start(bin(), &url, &[]);
    // The verifying service's own key is cached by a first call; the three keys are not.
    let (status, _, _) = request(node.addr, "POST", "/v1/keys/verify", service, &format!("{{\"key\":\"{service}\"}}"));
    assert_eq!(status, 200);

    pg.pause();
    let calls = [
        ("GET", "/rest/v1/1/capability", keys[0].1.as_str(), String::new()),
        ("GET", "/v1/forward-auth", keys[1].1.as_str(), String::new()),
        ("POST", "/v1/keys/verify", service, format!("{{\"key\":\"{}\"}}", keys[2].1)),
    ];
    for (method, path, key, body) in &calls {
        let (status, head, took) = request(node.addr, method, path, key, body);
        eprintln!("{method} {path} with PostgreSQL down: {status} after {took:?}");
        assert_eq!(status, 503, "{method} {path}: {head}");
        assert!(head.to_ascii_lowercase().contains("\r\nretry-after: 5\r\n"), "{head}");
        assert!(head.contains("\"code\":\"unavailable\""), "{head}");
        assert!(took < Duration::from_secs(2), "{method} {path} answered after {took:?}");
    }
    // Twenty calls at once for one key not cached: the loads take turns, yet all are answered
    // within the one wait, not one wait after another.
    let started = Instant::now();
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let (addr, key) = (node.addr, keys[0].1.clone());
            std::thread::spawn(move || request(addr, "GET", "/rest/v1/1/capability", &key, "").0)
        })
        .collect();
    let statuses: Vec<u16> = burst.into_iter().map(|t| t.join().expect("thread")).collect();
    let took = started.elapsed();
    eprintln!("20 concurrent calls with PostgreSQL down: all answered after {took:?}");
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    assert!(took < Duration::from_secs(3), "20 concurrent calls took {took:?}");

    pg.resume();
    let back =
        within(Duration::from_secs(15), || request(node.addr, "GET", "/rest/v1/1/capability", &keys[0].1, "").0 == 200);
    assert!(back.is_some(), "the key is accepted again once PostgreSQL is back");
    let (status, _, _) = request(node.addr, "GET", "/v1/forward-auth", &keys[1].1, "");
    assert_eq!(status, 200, "no failure was counted against the caller during the outage");
}
