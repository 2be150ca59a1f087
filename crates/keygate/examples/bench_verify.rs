//! BENCHMARK ONLY — times keygate's verify step in process, for the cold path of `bench/api.sh`.
//!
//! Opens a data dir the way `keygate serve` does (same `Keygate`, same `ServiceConfig`, the same
//! background change-feed poll and last-used write-behind), then verifies keys from a file one
//! after another, each exactly once, and reports the distribution of the time one `verify` call
//! takes. In a fresh process every key is a cache miss: its record is read from the database. The
//! owner and tenant are shared by all keys and are cached by the `--warmup` calls, which are not
//! counted.
//!
//! This measures the verify step alone, without HTTP and without the load generator: on a shared
//! or virtual machine, loopback round trips at one connection carry scheduler wake-up delays that
//! have nothing to do with keygate (`bench/api.sh` reports both figures).
//!
//! ```text
//! cargo run --release -p keygate --example bench_verify -- --data-dir DIR --keys cold.txt \
//!     [--skip 0] [--warmup 100] [--max 200000] [--seconds 10]
//! ```
//!
//! Prints one line: `RESULT misses=… rate=… p50_us=… p90_us=… p99_us=… p999_us=… max_us=…`.

use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use keygate_domain::UnitId;
use keygate_service::{Credential, Keygate, Refused, ServiceConfig, Verified, VerifyRequest};
use keygate_store::Database;

/// Times one cache-miss verify per key of `--keys`.
#[derive(Debug, Parser)]
struct Args {
    /// keygate's data directory (SQLite), seeded by the `bench_seed` example.
    #[arg(long)]
    data_dir: PathBuf,
    /// Plaintext keys, one per line, as written by `bench_seed`.
    #[arg(long)]
    keys: PathBuf,
    /// Lines of `--keys` to pass over first (keys another run already sent).
    #[arg(long, default_value_t = 0)]
    skip: usize,
    /// Verifications made first and not counted (they fill the owner and tenant caches).
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// At most this many counted verifications.
    #[arg(long, default_value_t = 200_000)]
    max: usize,
    /// Stop counting after this many seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The same runtime the keygate binary builds (crates/keygate/src/main.rs).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.keys).with_context(|| format!("cannot open {}", args.keys.display()))?;
    let keys: Vec<String> =
        BufReader::new(file).lines().skip(args.skip).take(args.warmup + args.max).collect::<Result<_, _>>()?;
    if keys.len() <= args.warmup {
        bail!("{} has too few keys after --skip {} for --warmup {}", args.keys.display(), args.skip, args.warmup);
    }
    let db = Database::open_data_dir(&args.data_dir).await.context("cannot open the data directory")?;
    db.migrate().await.context("cannot migrate the database")?;
    let keygate = Keygate::new(db, ServiceConfig::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = keygate.spawn_background(stopped);

    for key in &keys[..args.warmup] {
        verify(&keygate, key).await.map_err(|r| anyhow::anyhow!("a warm-up key was refused: {}", r.code.code()))?;
    }
    let mut times = Vec::with_capacity(keys.len() - args.warmup);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    for key in &keys[args.warmup..] {
        let t = Instant::now();
        let verified = verify(&keygate, key).await;
        times.push(t.elapsed());
        if let Err(r) = verified {
            bail!("key {} was refused: {}", times.len() + args.warmup + args.skip, r.code.code());
        }
        if t >= deadline {
            break;
        }
    }
    let wall = started.elapsed();
    let _ = stop.send(true);
    let _ = background.await;
    keygate.close().await;

    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1].as_secs_f64() * 1e6;
    println!(
        "RESULT misses={} rate={:.0} p50_us={:.0} p90_us={:.0} p99_us={:.0} p999_us={:.0} max_us={:.0}",
        times.len(),
        times.len() as f64 / wall.as_secs_f64(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(0.999),
        at(1.0),
    );
    Ok(())
}

/// One verification as `GET /rest/v1/1/capability` from 127.0.0.1 makes it.
async fn verify(keygate: &Keygate, key: &str) -> Result<Verified, Refused> {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    keygate
        .verify(VerifyRequest {
            credential: Credential::Key(key),
            client_ip: ip,
            unit: Some(UnitId(1)),
            required: None,
        })
        .await
}
