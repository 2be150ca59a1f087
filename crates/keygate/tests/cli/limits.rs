//! Cluster-wide limits on real nodes: `keygate serve` processes on one PostgreSQL of their own, each
//! called as fast as a client can, accept a key no more than one bucket admits (not one bucket per
//! node), whether the load is even or reaches one node first, and slow a guessing address after
//! its 100 failures in all.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use crate::cluster::{Client, Node, OwnPostgres, cli, seed, within};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_keygate"))
}

/// A key of `acme`'s user `erp` limited to `per_minute`.
fn limited_key(url: &str, per_minute: u32) -> String {
    let limit = per_minute.to_string();
    let out = cli(
        bin(),
        url,
        &[
            "keys",
            "issue",
            "--tenant",
            "acme",
            "--user",
            "erp@acme.example",
            "--purpose",
            "limited",
            "--ip",
            "127.0.0.0/8",
            "--rate-limit",
            &limit,
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// One client per `(node, key, from)` calls `key` on `node` from `from` after the start until
/// `until`, one call per millisecond at most: the calls each key had accepted, in `keys` order.
fn run(plan: &[(&Node, &str, Duration)], keys: &[&str], until: Duration) -> Vec<u64> {
    let started = Instant::now();
    let accepted: Vec<(String, u64)> = std::thread::scope(|s| {
        let clients: Vec<_> = plan
            .iter()
            .map(|&(node, key, from)| {
                s.spawn(move || {
                    std::thread::sleep(from.saturating_sub(started.elapsed()));
                    let mut client = Client::connect(node.addr).expect("connect");
                    let mut accepted = 0;
                    while started.elapsed() < until {
                        match client.get("/rest/v1/1/capability", key).0 {
                            200 => accepted += 1,
                            0 => client = Client::connect(node.addr).expect("reconnect"),
                            _ => {}
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    (key.to_owned(), accepted)
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().expect("client")).collect()
    });
    keys.iter().map(|k| accepted.iter().filter(|(key, _)| key == k).map(|(_, n)| n).sum()).collect()
}

/// Waits until every node exchanges counts, then for ten exchanges (heartbeats every 100 ms), so
/// that every node has heard of every other.
fn settled(nodes: &[Node]) {
    let ok = within(Duration::from_secs(10), || {
        nodes.iter().all(|n| {
            n.text("/metrics").lines().any(|l| l.starts_with("keygate_write_behind_depth{queue=\"cluster_counts\"}"))
        })
    });
    assert!(ok.is_some(), "every node exchanges counts");
    std::thread::sleep(Duration::from_secs(1));
}

/// Even and uneven load on `nodes` for 10 s: a 300-a-minute key may be accepted what one bucket
/// admits in 10 s, 300 + 50, and 10 % more at most.
fn check_rate_limit(url: &str, nodes: &[Node]) {
    let (even, uneven) = (limited_key(url, 300), limited_key(url, 300));
    let mut plan: Vec<(&Node, &str, Duration)> = nodes.iter().map(|n| (n, even.as_str(), Duration::ZERO)).collect();
    // The uneven key: its first node alone for 4 s (its whole quota), then every node.
    plan.push((&nodes[0], uneven.as_str(), Duration::ZERO));
    plan.extend(nodes[1..].iter().map(|n| (n, uneven.as_str(), Duration::from_secs(4))));
    let seconds = 10;
    let accepted = run(&plan, &[&even, &uneven], Duration::from_secs(seconds));
    let one_bucket = 300 + 5 * seconds;
    let n = nodes.len();
    eprintln!(
        "a key limited to 300/min on {n} nodes for {seconds} s: {} accepted loaded evenly, {} loaded on one node \
         first (one bucket: {one_bucket}; one per node: {})",
        accepted[0],
        accepted[1],
        n as u64 * one_bucket
    );
    assert!(accepted[0] * 10 <= one_bucket * 11, "{n} nodes, even load: {} accepted, bound 385", accepted[0]);
    assert!(accepted[1] * 10 <= one_bucket * 11, "{n} nodes, uneven load: {} accepted, bound 385", accepted[1]);
    assert!(accepted[0] >= 300 && accepted[1] >= 300, "each key got its quota: {accepted:?}");
}

/// One address guessing keys on every node as fast as it can for 5 s: its failures before every
/// node refuses it.
fn check_failure_throttle(nodes: &[Node]) {
    let started = Instant::now();
    let failures: u64 = std::thread::scope(|s| {
        let guessers: Vec<_> = nodes
            .iter()
            .map(|node| {
                s.spawn(move || {
                    let mut client = Client::connect(node.addr).expect("connect");
                    let mut failures = 0;
                    while started.elapsed() < Duration::from_secs(5) {
                        match client.get("/rest/v1/1/capability", "kg_0000000000000000000000000000000000000").0 {
                            401 => failures += 1,
                            0 => client = Client::connect(node.addr).expect("reconnect"),
                            _ => {}
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    failures
                })
            })
            .collect();
        guessers.into_iter().map(|g| g.join().expect("guesser")).sum()
    });
    let n = nodes.len();
    eprintln!(
        "one address guessing on {n} nodes for 5 s: {failures} failures answered (limit 100; per node: {})",
        n * 100
    );
    assert!(failures <= 110, "{n} nodes: {failures} failures before the address was blocked everywhere");
    assert!(failures >= 100, "the address had its 100 tries: {failures}");
}

#[test]
fn a_key_on_3_and_then_10_nodes_is_accepted_what_one_bucket_admits_loaded_evenly_or_not_and_guesses_stop_at_100() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(pg) = OwnPostgres::start(&repo) else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: PostgreSQL's binaries must be installed");
        eprintln!("skipped: no PostgreSQL binaries to start a cluster of our own");
        return;
    };
    seed(bin(), &pg.url, 0, None);
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start(bin(), &pg.url, &[])).collect();
    settled(&nodes);
    check_rate_limit(&pg.url, &nodes);
    nodes.extend((0..7).map(|_| Node::start(bin(), &pg.url, &[])));
    settled(&nodes);
    check_rate_limit(&pg.url, &nodes);
    // Last: the address stays blocked for a minute.
    check_failure_throttle(&nodes);
}
