//! Pages of rows of a megabyte, read from a real `keygate serve` process on SQLite and on
//! PostgreSQL: a key that may write only its own records stores 48 rows of 1 MB; rounds of 8
//! concurrent 10 MB pages of them keep the server's peak resident memory ≤ 512 MiB (read from
//! `/proc`) and `/healthz` ≤ 200 ms. Every wait is bounded.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::cluster::Node;

const ROWS: usize = 48;
const PAGES: usize = 8;
const ROUNDS: usize = 3;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_keygate"))
}

/// A database for one test: its URL and a directory of its own (the SQLite file, the server's
/// data directory), removed when dropped.
struct Db {
    url: String,
    dir: PathBuf,
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keygate-pages-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("directory");
    dir
}

fn sqlite_db() -> Db {
    let dir = fresh_dir("sqlite");
    Db { url: format!("sqlite://{}", dir.join("keygate.db").display()), dir }
}

fn postgres_db() -> Option<Db> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = rt.block_on(keygate_store::testing::empty_postgres_url()).expect("a database")?;
    Some(Db { url, dir: fresh_dir("postgres") })
}

/// `keygate ARGS` on the database; it must succeed: its standard output.
fn run(db: &Db, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .env("KEYGATE_DATABASE_URL", &db.url)
        .env("KEYGATE_DATA_DIR", &db.dir)
        .env("KEYGATE_LOG", "warn")
        .output()
        .expect("run keygate");
    assert!(out.status.success(), "keygate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tenant whose programmatic user may write only its own companies, and two keys of it (a key
/// runs at most 4 data queries at once).
fn own_records_keys(db: &Db) -> [String; 2] {
    run(db, &["init", "--tenant", "acme", "--admin-email", "admin@acme.example"]);
    run(db, &["tenants", "api", "on", "--tenant", "acme"]);
    run(db, &["groups", "create", "--tenant", "acme", "Own companies", "--grant", "companies:write:own"]);
    run(
        db,
        &[
            "users",
            "create",
            "--tenant",
            "acme",
            "--email",
            "writer@acme.example",
            "--name",
            "Writer",
            "--category",
            "programmatic",
            "--group",
            "Own companies",
        ],
    );
    let issue = || {
        let args = [
            "keys",
            "issue",
            "--tenant",
            "acme",
            "--user",
            "writer@acme.example",
            "--purpose",
            "pages",
            "--ip",
            "127.0.0.0/8",
            "--rate-limit",
            "1000000",
        ];
        run(db, &args).trim().to_owned()
    };
    [issue(), issue()]
}

/// One request on a connection of its own: the status, the body's length, and the body when it
/// is short (a long one is read and dropped, so that this process holds little).
fn request(addr: SocketAddr, method: &str, path: &str, key: &str, body: &[u8]) -> (u16, usize, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(body).expect("body");
    let mut start = Vec::new();
    let mut total = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                if start.len() < 4096 {
                    start.extend_from_slice(&buf[..n.min(4096)]);
                }
            }
            Err(e) => panic!("reading the answer to {path}: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&start).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body_at = text.find("\r\n\r\n").map_or(0, |i| i + 4);
    (status, total.saturating_sub(body_at), text[body_at.min(text.len())..].chars().take(400).collect())
}

/// Resident memory of process `pid` from `/proc`: (now, peak), in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).expect("field");
        line.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()).expect("number") * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn pages_of_megabyte_rows_stay_within_memory_and_keep_healthz_fast(db: &Db) {
    let keys = own_records_keys(db);
    let key = &keys[0];
    let node = Node::start(bin(), &db.url, &[("KEYGATE_DATA_DIR", db.dir.to_str().expect("path"))]);
    let blob = "x".repeat(999_000);
    for i in 0..ROWS {
        let body = format!(r#"{{"name":"big {i}","properties":{{"blob":"{blob}"}}}}"#);
        let (status, _, text) = request(node.addr, "POST", "/rest/v1/1/companies", key, body.as_bytes());
        assert_eq!(status, 201, "row {i}: {text}");
    }
    let (_, before) = rss(node.pid());

    let running = Arc::new(AtomicBool::new(true));
    let health = {
        let running = Arc::clone(&running);
        let addr = node.addr;
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while running.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (status, _, _) = request(addr, "GET", "/healthz", "", b"");
                assert_eq!(status, 200, "/healthz");
                worst = worst.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            worst
        })
    };
    let started = Instant::now();
    let mut answers = Vec::new();
    for _ in 0..ROUNDS {
        let readers: Vec<_> = (0..PAGES)
            .map(|i| {
                let (addr, key) = (node.addr, keys[i % 2].clone());
                std::thread::spawn(move || request(addr, "GET", "/rest/v1/1/views/companies", &key, b""))
            })
            .collect();
        answers.extend(readers.into_iter().map(|r| r.join().expect("reader")));
    }
    running.store(false, Ordering::Relaxed);
    let worst_health = health.join().expect("healthz thread");
    let (now, peak) = rss(node.pid());
    let took = started.elapsed();
    let statuses: Vec<u16> = answers.iter().map(|(s, _, _)| *s).collect();
    let sizes: Vec<usize> = answers.iter().map(|(_, n, _)| *n >> 20).collect();
    eprintln!(
        "{ROUNDS}×{PAGES} pages over {ROWS} rows of 1 MB in {took:?}: statuses {statuses:?}, MiB {sizes:?}; server \
         RSS {} MiB before, {} MiB after, peak {} MiB; /healthz worst {worst_health:?}",
        before >> 20,
        now >> 20,
        peak >> 20
    );
    for (status, bytes, text) in &answers {
        match status {
            200 => assert!(*bytes <= 10 * 1024 * 1024, "a page of {bytes} bytes is over the 10 MB cap"),
            503 => assert!(text.contains("page_memory_busy"), "{text}"),
            other => panic!("a page answered {other}: {text}"),
        }
    }
    assert!(statuses.iter().filter(|s| **s == 200).count() >= PAGES, "most pages are served: {statuses:?}");
    assert!(peak <= 512 * 1024 * 1024, "peak RSS of the server {} MiB", peak >> 20);
    assert!(worst_health <= Duration::from_millis(200), "/healthz took {worst_health:?} while pages were read");
}

#[test]
fn eight_concurrent_pages_of_megabyte_rows_keep_the_sqlite_server_within_512_mib() {
    pages_of_megabyte_rows_stay_within_memory_and_keep_healthz_fast(&sqlite_db());
}

#[test]
fn eight_concurrent_pages_of_megabyte_rows_keep_the_postgresql_server_within_512_mib() {
    let Some(db) = postgres_db() else {
        eprintln!("skipped: KEYGATE_TEST_POSTGRES_URL is not set");
        return;
    };
    pages_of_megabyte_rows_stay_within_memory_and_keep_healthz_fast(&db);
}
