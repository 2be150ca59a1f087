//! BENCHMARK ONLY — how fast a change reaches every node of a cluster (run by `bench/nodes.sh`).
//!
//! Starts a PostgreSQL of its own and three `keygate serve` processes (the binary given, a release
//! build) on it, loads every node with other keys, then for each trial disables one key and
//! measures "change committed → refused on every node": the disable runs in this process through
//! the service layer, exactly as `keygate keys disable` does, and the clock starts when its commit
//! returns. One poller per node calls that node with the key over a kept-alive connection in a
//! loop (one call every 0.5 ms) and notes its first refusal; it goes on until 1.2 s after the commit and counts any
//! call accepted later than 1 s after it (must be 0).
//!
//! ```text
//! cargo run --release -p keygate --example bench_nodes -- --bin target/release/keygate [--trials 30]
//! ```

#[path = "../tests/cli/cluster.rs"]
mod cluster;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use cluster::{Client, Node, OwnPostgres, load, seed, within};
use keygate_domain::KeyId;
use keygate_service::{Caller, Keygate, ServiceConfig};
use keygate_store::Database;

#[derive(Debug, Parser)]
struct Args {
    /// The keygate binary the nodes run.
    #[arg(long)]
    bin: PathBuf,
    #[arg(long, default_value_t = 30)]
    trials: usize,
    /// Load clients per node with other keys while measuring.
    #[arg(long, default_value_t = 1)]
    load: usize,
    /// Each load client makes at most one call per this many microseconds.
    #[arg(long, default_value_t = 2000)]
    pace_us: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let pg = OwnPostgres::start(&repo).ok_or_else(|| anyhow::anyhow!("cannot start a PostgreSQL of our own"))?;
    let keys = seed(&args.bin, &pg.url, 4, None);
    let (target_id, target) = (keys[0].0.parse::<i64>()?, keys[0].1.clone());
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&args.bin, &pg.url, &[])).collect();
    for node in &nodes {
        within(Duration::from_secs(5), || node.status("/rest/v1/1/capability", &target) == 200)
            .ok_or_else(|| anyhow::anyhow!("a node does not accept the key"))?;
    }
    let pace = Duration::from_micros(args.pace_us);
    let loads: Vec<_> = nodes.iter().enumerate().map(|(i, n)| load(&[n], &keys[1 + i].1, args.load, pace)).collect();
    let kg = Keygate::new(Database::connect_url(&pg.url).await?, ServiceConfig::default());
    let (mut delays, mut late_accepts) = (Vec::new(), 0u64);
    for _ in 0..args.trials {
        kg.set_key_enabled(&Caller::CLI, None, KeyId(target_id), true).await?;
        for node in &nodes {
            within(Duration::from_secs(3), || node.status("/rest/v1/1/capability", &target) == 200)
                .ok_or_else(|| anyhow::anyhow!("a node did not take the key back"))?;
        }
        let go = Arc::new(AtomicBool::new(false));
        let start = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let pollers: Vec<_> = nodes
            .iter()
            .map(|node| {
                let (addr, key, go, start) = (node.addr, target.clone(), go.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut client = Client::connect(addr).expect("connect");
                    let (mut refused_at, mut late) = (None, 0u64);
                    loop {
                        let status = client.get("/rest/v1/1/capability", &key).0;
                        let now = Instant::now();
                        if !go.load(Ordering::Acquire) {
                            std::thread::sleep(Duration::from_micros(500));
                            continue;
                        }
                        let t0 = start.lock().expect("lock").expect("set before go");
                        if status == 401 && refused_at.is_none() {
                            refused_at = Some(now.saturating_duration_since(t0));
                        }
                        if status == 200 && now.saturating_duration_since(t0) > Duration::from_secs(1) {
                            late += 1;
                        }
                        if now.saturating_duration_since(t0) > Duration::from_millis(1200) {
                            return (refused_at, late);
                        }
                        // Paced, so that the pollers measure the cluster and not take its CPU.
                        std::thread::sleep(Duration::from_micros(500));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        kg.set_key_enabled(&Caller::CLI, None, KeyId(target_id), false).await?;
        *start.lock().expect("lock") = Some(Instant::now());
        go.store(true, Ordering::Release);
        let mut slowest = Duration::ZERO;
        for poller in pollers {
            let (refused, late) = poller.join().expect("poller");
            late_accepts += late;
            slowest = slowest.max(refused.unwrap_or(Duration::from_secs(999)));
        }
        delays.push(slowest);
    }
    let mut served = 0;
    for (running, threads) in loads {
        running.store(false, Ordering::Relaxed);
        served += threads.into_iter().map(|t| t.join().expect("load")).sum::<u64>();
    }
    delays.sort();
    println!(
        "RESULT trials={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} accepted_after_1s={late_accepts} load_calls={served}",
        delays.len(),
        percentile(&delays, 0.5).as_secs_f64() * 1e3,
        percentile(&delays, 0.99).as_secs_f64() * 1e3,
        delays.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    kg.close().await;
    drop(nodes);
    drop(pg);
    Ok(())
}
