//! The README's "Ten minutes with keygate", run as written (issue 19): the shell block between
//! its `walkthrough:start` and `walkthrough:end` markers, in a folder where `keygate demo` ran
//! first, with this build's `keygate` on the PATH and the server's port moved to a free one.
//! Every `#>` line the README promises is checked against what the steps printed.

use super::{Dir, data_dir, run_demo};

const README: &str = include_str!("../../../../README.md");

/// The walkthrough's shell text, without its code fence.
fn walkthrough() -> String {
    let start = README.find("<!-- walkthrough:start -->").expect("the start marker in README.md");
    let end = README.find("<!-- walkthrough:end -->").expect("the end marker in README.md");
    README[start..end].lines().skip(1).filter(|line| !line.starts_with("```")).collect::<Vec<_>>().join("\n")
}

/// Kills the walkthrough's process group (the shell and the server it started) however the test ends.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = signal_group("KILL", self.0);
    }
}

/// Sends `signal` to process group `pgid` and to nothing else.
fn signal_group(signal: &str, pgid: u32) -> std::io::Result<std::process::ExitStatus> {
    // `-s SIGNAL -- -PGID`: procps-ng 4.0.2 misreads `-SIGNAL -PGID` (see the test below).
    std::process::Command::new("kill").args(["-s", signal, "--", &format!("-{pgid}")]).status()
}

/// Debian 12's `kill` (procps-ng 4.0.2) reads `kill -KILL -12345` as `kill(-1, SIGKILL)`: every
/// process it may signal, the whole machine for root. A walkthrough whose shell got a pid starting
/// with 1 killed the CI run (and any shell around it). A harmless signal to a group that cannot
/// exist, starting with 1, must reach no process outside it.
#[test]
fn signalling_a_process_group_reaches_no_process_outside_it() {
    let folder = data_dir("signal-group");
    std::fs::create_dir_all(&folder.0).expect("folder");
    let (ready, got) = (folder.0.join("ready"), folder.0.join("got"));
    let script = format!(
        "trap 'touch {got}' CONT; touch {ready}; for _ in $(seq 100); do sleep 0.1 & wait $!; done",
        got = got.display(),
        ready = ready.display()
    );
    let mut sentinel = std::process::Command::new("bash").args(["-c", &script]).spawn().expect("bash");
    let started = std::time::Instant::now();
    while !ready.exists() && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(ready.exists(), "the sentinel did not start");
    // Above any pid (pid_max is at most 4 194 304): no such group, so kill reaches nothing.
    let _ = signal_group("CONT", 19_999_999);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let reached = got.exists();
    let _ = sentinel.kill();
    let _ = sentinel.wait();
    assert!(!reached, "a signal meant for group 19999999 reached a process outside it");
}

#[test]
fn the_readme_walkthrough_run_as_written_after_the_demo_ends_with_the_promised_401() {
    use std::os::unix::process::CommandExt as _;
    let folder = data_dir("walkthrough");
    std::fs::create_dir_all(&folder.0).expect("folder");
    let data = Dir(folder.0.join("keygate-data"));
    let (served, said) = run_demo(&data, "127.0.0.1:0");
    assert!(served, "{said}");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let script = walkthrough().replace("127.0.0.1:8080", &addr);
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_keygate")).parent().expect("the binary's folder").to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let child = std::process::Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{script}")])
        .current_dir(&folder.0)
        .env("PATH", path)
        .env("KEYGATE_LISTEN", &addr)
        .env("KEYGATE_LOG", "warn")
        .env_remove("KEYGATE_DATA_DIR")
        .env_remove("KEYGATE_DATABASE_URL")
        .env_remove("KEYGATE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash");
    let group = Group(child.id());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx.recv_timeout(std::time::Duration::from_secs(120)).expect("the walkthrough ends within 120 s");
    drop(group);
    let out = out.expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let printed = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the walkthrough failed:\n{printed}");
    assert_eq!(stdout.lines().last(), Some("HTTP/1.1 401 Unauthorized"), "{printed}");
    for promised in script.lines().filter_map(|l| l.strip_prefix("#>")) {
        for part in promised.split('…').map(str::trim).filter(|p| !p.is_empty()) {
            assert!(printed.contains(part), "the README promises `{part}`, which was not printed:\n{printed}");
        }
    }
    // The demo's tenant and key were not touched.
    let demo = super::ok(&super::keygate(&data, &["keys", "list", "--tenant", "demo"]));
    assert_eq!(demo.lines().filter(|l| l.contains(" active ")).count(), 1, "{demo}");
}
