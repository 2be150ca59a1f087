//! Three `keygate serve` processes on one PostgreSQL of their own: every change reaches every node
//! at once while they are under load, and they come through PostgreSQL's restart, a killed
//! listening connection and a node's `kill -9` without missing a change or losing a count.

use std::{
    path::Path,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use crate::cluster::{Node, OwnPostgres, cli, cli_ok, load, seed, within};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_keygate"))
}

/// Waits until every node answers `want` for `key`; the slowest node's delay.
fn all_answer(nodes: &[&Node], key: &str, want: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    for (i, node) in nodes.iter().enumerate() {
        let mut last = 0;
        let mut client = crate::cluster::Client::connect(node.addr).ok();
        let took = within(limit.saturating_sub(started.elapsed()), || {
            last = match client.as_mut() {
                Some(c) => c.get("/rest/v1/1/capability", key).0,
                None => 0,
            };
            if last == 0 {
                client = crate::cluster::Client::connect(node.addr).ok();
            }
            last == want
        });
        let metrics: Vec<String> =
            node.text("/metrics").lines().filter(|l| l.starts_with("keygate_change")).map(str::to_owned).collect();
        assert!(took.is_some(), "node {i} did not answer {want} within {limit:?} (it answers {last}); {metrics:?}");
    }
    started.elapsed()
}

fn accepted_calls(pg: &OwnPostgres, key_id: &str) -> u64 {
    let sql =
        format!("SELECT COALESCE(SUM(count), 0) FROM key_usage_daily WHERE key_id = {key_id} AND outcome = 'accepted'");
    pg.psql(&sql).trim().parse().expect("a count")
}

#[test]
fn three_nodes_on_one_postgresql_learn_of_every_change_and_survive_faults() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(pg) = OwnPostgres::start(&repo) else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: PostgreSQL's binaries must be installed");
        eprintln!("skipped: no PostgreSQL binaries to start a cluster of our own");
        return;
    };
    let url = pg.url.clone();
    // The target key, and one load key per node (so that each node's counts can be checked).
    let keys = seed(bin(), &url, 4, None);
    let (target_id, target) = keys[0].clone();
    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start(bin(), &url, &[])).collect();
    let all: Vec<&Node> = nodes.iter().collect();
    all_answer(&all, &target, 200, Duration::from_secs(5));
    let mut loads = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        // Paced: on two cores an unpaced client would take the CPU that the nodes and PostgreSQL
        // need, and the test would measure the scheduler rather than keygate.
        loads.push(load(&[node], &keys[1 + i].1, 1, Duration::from_millis(2)));
    }

    // 1. A change committed on the command line is refused by every node at once, under load.
    let mut delays = Vec::new();
    for _ in 0..10 {
        cli_ok(bin(), &url, &["keys", "disable", "--tenant", "acme", &target_id]);
        delays.push(all_answer(&all, &target, 401, Duration::from_secs(1)));
        cli_ok(bin(), &url, &["keys", "enable", "--tenant", "acme", &target_id]);
        all_answer(&all, &target, 200, Duration::from_secs(1));
    }
    delays.sort();
    eprintln!("disable → refused on all 3 nodes (after the CLI returned): median {:?}, max {:?}", delays[5], delays[9]);

    // 2. Every listening connection killed from the server side: each node reconnects, reads the
    //    feed, and misses nothing committed meanwhile.
    let killed = pg.psql("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'");
    assert_eq!(killed.trim(), "3", "one listening connection per node");
    cli_ok(bin(), &url, &["keys", "disable", "--tenant", "acme", &target_id]);
    let took = all_answer(&all, &target, 401, Duration::from_secs(3));
    eprintln!("listeners killed, change committed at once: refused on all nodes after {took:?}");
    for (i, node) in nodes.iter().enumerate() {
        let reconnected = within(Duration::from_secs(3), || {
            node.text("/metrics")
                .lines()
                .any(|l| l.starts_with("keygate_change_listener_connects_total ") && !l.ends_with(" 1"))
        });
        assert!(reconnected.is_some(), "node {i} reports its reconnect");
    }
    cli_ok(bin(), &url, &["keys", "enable", "--tenant", "acme", &target_id]);
    all_answer(&all, &target, 200, Duration::from_secs(3));

    // 3. PostgreSQL restarted: cached keys keep working while it is down; afterwards every change
    //    is applied within the safety-net interval, and no usage count is lost or doubled.
    pg.pause();
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(2) {
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(
                node.status("/rest/v1/1/capability", &target),
                200,
                "node {i} refused a valid key during the outage"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let not_ready = within(Duration::from_secs(3), || nodes[0].status("/readyz", "") == 503);
    assert!(not_ready.is_some(), "a node without its database and listener is not ready");
    pg.resume();
    let back = Instant::now();
    cli_ok(bin(), &url, &["keys", "disable", "--tenant", "acme", &target_id]);
    let took = all_answer(&all, &target, 401, Duration::from_secs(3));
    eprintln!(
        "after the restart ({:?} outage): a change reached every node after {took:?}",
        outage.elapsed() - back.elapsed()
    );
    let ready = within(Duration::from_secs(5), || nodes.iter().all(|n| n.status("/readyz", "") == 200));
    assert!(ready.is_some(), "every node is ready again");

    // 4. One node killed with kill -9: the others carry on and still learn of changes.
    let mut served = Vec::new();
    for (running, threads) in loads {
        running.store(false, Ordering::Relaxed);
        served.push(threads.into_iter().map(|t| t.join().expect("load thread")).sum::<u64>());
    }
    drop(all);
    nodes[2].kill();
    cli_ok(bin(), &url, &["keys", "enable", "--tenant", "acme", &target_id]);
    all_answer(&[&nodes[0], &nodes[1]], &target, 200, Duration::from_secs(3));
    // Graceful stops write everything; the killed node's counts since its last write are lost.
    let killed_node = nodes.pop().expect("node 3");
    drop(nodes);
    drop(killed_node);
    for (i, calls) in served.iter().enumerate() {
        let counted = accepted_calls(&pg, &keys[1 + i].0);
        if i < 2 {
            assert_eq!(counted, *calls, "node {i}: every accepted call counted once, across the outage");
        } else {
            assert!(counted <= *calls, "the killed node never counts a call twice");
        }
        eprintln!("node {i}: {calls} calls served, {counted} counted");
    }

    // 5. Limits hold across the cluster: three fresh nodes share the load evenly.
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(bin(), &url, &[])).collect();
    let limited = cli(
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
            "limited",
            "--ip",
            "127.0.0.0/8",
            "--rate-limit",
            "120",
        ],
    );
    assert!(limited.status.success());
    let limited = String::from_utf8_lossy(&limited.stdout).trim().to_owned();
    let seconds = 10;
    let accepted: u64 = std::thread::scope(|s| {
        let runs: Vec<_> = nodes
            .iter()
            .map(|node| {
                let key = limited.clone();
                s.spawn(move || {
                    let mut client = crate::cluster::Client::connect(node.addr).expect("connect");
                    let started = Instant::now();
                    let mut accepted = 0u64;
                    while started.elapsed() < Duration::from_secs(seconds) {
                        if client.get("/rest/v1/1/capability", &key).0 == 200 {
                            accepted += 1;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    accepted
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("client")).sum()
    });
    // One bucket of 120 plus 10 s of refill is 140; each node alone would allow 140, 420 in all.
    let bound = (1.1 * (120.0 + 2.0 * seconds as f64)) as u64 + 3 * 10;
    eprintln!(
        "a key limited to 120/min, 3 nodes, {seconds} s at ~150 calls/s: {accepted} accepted (bound {bound}; per node alone: 420)"
    );
    assert!(accepted <= bound, "{accepted} accepted across the cluster");
    assert!(accepted >= 120, "the key got its quota: {accepted}");

    // 6. A guessing address is slowed down after about 100 failures in all, not 100 per node.
    let guesses = std::thread::scope(|s| {
        let runs: Vec<_> = nodes
            .iter()
            .map(|node| {
                s.spawn(move || {
                    let mut client = crate::cluster::Client::connect(node.addr).expect("connect");
                    let mut refused_as_failure = 0u64;
                    for _ in 0..200 {
                        match client.get("/rest/v1/1/capability", "kg_0000000000000000000000000000000000000").0 {
                            401 => refused_as_failure += 1,
                            429 => break,
                            0 => client = crate::cluster::Client::connect(node.addr).expect("reconnect"),
                            _ => {}
                        }
                        std::thread::sleep(Duration::from_millis(30));
                    }
                    refused_as_failure
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("guesser")).sum::<u64>()
    });
    eprintln!(
        "one address guessing on 3 nodes: {guesses} failures before every node slowed it down (per node alone: 300)"
    );
    assert!(guesses <= 130, "{guesses} guesses before the cluster-wide block");
}
