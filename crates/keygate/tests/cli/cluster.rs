//! Several `keygate serve` processes on one PostgreSQL, for the multi-node test and for
//! `bench/nodes.sh` (which includes this file into its benchmark program). Real processes on
//! loopback, port 0; every wait is bounded.

#![allow(dead_code, reason = "the test and the benchmark each use part of the harness")]

use std::{
    io::{BufRead as _, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// A PostgreSQL cluster of our own (`.ci/postgres.sh start`), so that a fault test may stop and
/// start it without disturbing anything else; removed when dropped.
pub struct OwnPostgres {
    pub url: String,
    dir: String,
    script: PathBuf,
}

impl OwnPostgres {
    pub fn start(repo: &Path) -> Option<Self> {
        let script = repo.join(".ci/postgres.sh");
        let out = Command::new("bash").arg(&script).arg("start").stderr(Stdio::null()).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let value =
            |name: &str| text.lines().find_map(|l| l.strip_prefix(&format!("export {name}=")).map(str::to_owned));
        Some(Self { url: value("KEYGATE_TEST_POSTGRES_URL")?, dir: value("KEYGATE_PG_DIR")?, script })
    }

    /// Fast shutdown: every client is disconnected and the server is down until [`Self::resume`].
    pub fn pause(&self) {
        let ok = Command::new("bash").arg(&self.script).args(["pause", &self.dir]).stderr(Stdio::null()).status();
        assert!(ok.is_ok_and(|s| s.success()), "pg_ctl stop -m fast");
    }

    pub fn resume(&self) {
        let ok = Command::new("bash").arg(&self.script).args(["resume", &self.dir]).stderr(Stdio::null()).status();
        assert!(ok.is_ok_and(|s| s.success()), "pg_ctl start");
    }

    /// Runs SQL through `psql` (as the test runs it: a superuser).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql").args(["-XAtq", &self.url, "-c", sql]).output().expect("psql");
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(&self.script).args(["stop", &self.dir]).stderr(Stdio::null()).status();
    }
}

/// One serving process.
pub struct Node {
    child: Child,
    pub addr: SocketAddr,
}

impl Node {
    pub fn start(bin: &Path, url: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(bin);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("KEYGATE_DATABASE_URL", url)
            .env("KEYGATE_LOG", std::env::var("KEYGATE_TEST_NODE_LOGS").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start keygate serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let echo = std::env::var_os("KEYGATE_TEST_NODE_LOGS").is_some();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("node: {line}");
                }
                if let Some(addr) = line.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next()) {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server reports its address");
        Self { child, addr: addr.parse().expect("an address") }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The status of one `GET path` with `key` on a new connection (0 when the node is unreachable).
    pub fn status(&self, path: &str, key: &str) -> u16 {
        Client::connect(self.addr).map_or(0, |mut c| c.get(path, key).0)
    }

    /// The body of `GET path` (no key), e.g. `/metrics`.
    pub fn text(&self, path: &str) -> String {
        Client::connect(self.addr).map(|mut c| c.get(path, "").1).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1.1 client over one connection.
pub struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buffer: Vec::with_capacity(4096) })
    }

    /// `GET path` with `key` (none when empty): status and body; status 0 on a broken connection.
    pub fn get(&mut self, path: &str, key: &str) -> (u16, String) {
        let auth = if key.is_empty() { String::new() } else { format!("Authorization: Bearer {key}\r\n") };
        let request = format!("GET {path} HTTP/1.1\r\nHost: keygate\r\n{auth}\r\n");
        if self.stream.write_all(request.as_bytes()).is_err() {
            return (0, String::new());
        }
        self.read_answer().unwrap_or((0, String::new()))
    }

    fn read_answer(&mut self) -> Option<(u16, String)> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                let status = head.split_whitespace().nth(1)?.parse().ok()?;
                let length: usize = head
                    .lines()
                    .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
                    .and_then(|(_, v)| v.trim().parse().ok())
                    .unwrap_or(0);
                while self.buffer.len() < end + 4 + length {
                    let n = self.stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
                    self.buffer.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&self.buffer[end + 4..end + 4 + length]).into_owned();
                self.buffer.drain(..end + 4 + length);
                return Some((status, body));
            }
            let n = self.stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The `keygate` command line against PostgreSQL at `url`.
pub fn cli(bin: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("KEYGATE_DATABASE_URL", url)
        .env("KEYGATE_LOG", "warn")
        .output()
        .expect("run keygate")
}

/// Like [`cli`], but the command must succeed: its standard output.
pub fn cli_ok(bin: &Path, url: &str, args: &[&str]) -> String {
    let out = cli(bin, url, args);
    assert!(out.status.success(), "keygate {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tenant `acme` with its API on, a programmatic user and `keys` keys from loopback: the keys'
/// ids and secrets.
pub fn seed(bin: &Path, url: &str, keys: usize, rate_limit: Option<u32>) -> Vec<(String, String)> {
    cli_ok(bin, url, &["init", "--tenant", "acme", "--admin-email", "admin@acme.example"]);
    cli_ok(bin, url, &["tenants", "api", "on", "--tenant", "acme"]);
    cli_ok(
        bin,
        url,
        &[
            "users",
            "create",
            "--tenant",
            "acme",
            "--email",
            "erp@acme.example",
            "--name",
            "ERP",
            "--category",
            "programmatic",
        ],
    );
    let limit = rate_limit.unwrap_or(1_000_000_000).to_string();
    (0..keys)
        .map(|_| {
            let out = cli(
                bin,
                url,
                &[
                    "keys",
                    "issue",
                    "--tenant",
                    "acme",
                    "--user",
                    "erp@acme.example",
                    "--purpose",
                    "nodes",
                    "--ip",
                    "127.0.0.0/8",
                    "--rate-limit",
                    &limit,
                ],
            );
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let id = String::from_utf8_lossy(&out.stderr)
                .lines()
                .find_map(|l| l.strip_prefix("key id: ").map(|s| s.trim().to_owned()))
                .expect("key id");
            (id, String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .collect()
}

/// Waits until `check` holds, polling every 5 ms, for at most `limit`: how long it took, or `None`.
pub fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Background load: `per_node` clients per node calling `/rest/v1/1/capability` with `key` until
/// the returned flag is cleared, each at most one call per `pace` (zero: as fast as it can).
pub fn load(
    nodes: &[&Node],
    key: &str,
    per_node: usize,
    pace: Duration,
) -> (std::sync::Arc<std::sync::atomic::AtomicBool>, Vec<std::thread::JoinHandle<u64>>) {
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut threads = Vec::new();
    for node in nodes {
        for _ in 0..per_node {
            let (addr, key, running) = (node.addr, key.to_owned(), running.clone());
            threads.push(std::thread::spawn(move || {
                let mut calls = 0u64;
                let mut client = Client::connect(addr).ok();
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    match client.as_mut().map(|c| c.get("/rest/v1/1/capability", &key).0) {
                        Some(200) => {
                            calls += 1;
                            std::thread::sleep(pace);
                        }
                        _ => {
                            std::thread::sleep(Duration::from_millis(20));
                            client = Client::connect(addr).ok();
                        }
                    }
                }
                calls
            }));
        }
    }
    (running, threads)
}
