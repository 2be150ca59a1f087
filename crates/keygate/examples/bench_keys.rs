//! BENCHMARK ONLY — ten million keys (issue 20): bulk-inserts `--count` keys, then verifies them in
//! process the way `keygate serve` does (same `Keygate`, default `ServiceConfig`, its background
//! tasks) and prints, in one run: cold verification p50/p99 (each key once, a cache miss), the
//! memory per cached key (anonymous memory: the heap, not SQLite's mapped file pages), RSS with
//! the cache at its capacity (and its anonymous and file-backed parts), and warm throughput with
//! one key, with a Zipf-distributed choice (P(rank k) ∝ 1/k) over all keys and over as many as the
//! cache holds, and with a uniform choice over all keys. Each timed run counts its key reads
//! (cache misses). One key and Zipf over the cached keys are measured in five alternating turns,
//! after the write-behind of the fill's uses is over; the ratio is the median of the turns'. Each
//! turn also prints how many CPUs the process kept busy (2.00 on this machine: no thread waited).
//! `--tasks 1` measures without two calls ever running together (no contention between cores):
//! on this machine its turns vary by a few percent, where 8 tasks' one-key figure swings by 2–3×.
//!
//! The keys are derived from their index (a fixed pseudo-random body plus its checksum), so nothing
//! but the database holds them: never point this at a database that matters. Run by
//! `bench/keys.sh`, which makes the tenant and the user first.
//!
//! ```text
//! cargo run --release -p keygate --example bench_keys -- (--data-dir DIR | --database-url URL) \
//!     --tenant bench --user b@bench.example [--count 10000000] [--seed] [--seconds 5] [--cold 50000] \
//!     [--tasks 8] [--draws FILE] [--cached-keys FILE]
//! bench_keys --floor
//! ```
//!
//! `--draws FILE` also writes the texts of 262 144 keys drawn with the same Zipf choice, and
//! `--cached-keys FILE` those of all the keys it draws from, for `bench/keys.sh` to send over HTTP
//! to keygate and to its baseline. `--floor` measures, without a database, what the Zipf choice
//! costs more than one key on this machine for the least state a verification could touch
//! ([`floor`]).

use std::{
    collections::HashMap,
    hash::BuildHasherDefault,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use keygate_domain::{ApiKeySecret, Email, IpRanges, KeyDigest, Purpose, TenantSlug, UnitId};
use keygate_service::{Credential, Keygate, ServiceConfig, VerifyRequest};
use keygate_store::{Database, NewKey};

#[derive(Debug, Parser)]
struct Args {
    /// keygate's data directory (SQLite).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL URL instead.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, required_unless_present = "floor")]
    tenant: Option<String>,
    #[arg(long, required_unless_present = "floor")]
    user: Option<String>,
    #[arg(long, default_value_t = 10_000_000)]
    count: u64,
    /// Insert the keys first.
    #[arg(long)]
    seed: bool,
    /// Seconds per warm measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Cold verifications timed one after another.
    #[arg(long, default_value_t = 50_000)]
    cold: u64,
    /// Tasks verifying at once in the warm measurements (1: no two calls ever run together).
    #[arg(long, default_value_t = 8)]
    tasks: u64,
    /// Also write the texts of ZIPF_DRAWS keys drawn with the Zipf choice over the keys the cache
    /// holds to this file, one per line, for the HTTP measurement of `bench/keys.sh`.
    #[arg(long)]
    draws: Option<PathBuf>,
    /// Also write the texts of the keys the Zipf choice draws from (as many as the cache holds) to
    /// this file, one per line: the keys `bench/keys.sh` gives its baseline server.
    #[arg(long)]
    cached_keys: Option<PathBuf>,
    /// Only measure this machine's floor (no database): see [`floor`].
    #[arg(long)]
    floor: bool,
}

/// `--tasks`.
static TASKS: AtomicU64 = AtomicU64::new(8);

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Key number `i`: always the same text.
fn key(i: u64) -> String {
    let mut body = String::with_capacity(41);
    body.push_str("kg_");
    for part in 0..4 {
        let mut x = mix(i.wrapping_mul(4).wrapping_add(part) ^ 0x6b67_6174_6520_3230);
        for _ in 0..8 {
            body.push(BASE62[(x % 62) as usize] as char);
            x /= 62;
        }
    }
    let sum = keygate_domain::api_key::checksum(&body);
    body.push_str(&sum);
    body
}

/// A field of /proc/self/status in bytes (`VmRSS`, `RssAnon`, `RssFile`).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn rss_bytes() -> u64 {
    status_bytes("VmRSS")
}

/// RSS as `N MiB (anonymous A, file F)`: the file part is SQLite's memory-mapped database pages,
/// shared with the OS page cache and reclaimable; the anonymous part is the process's own.
fn rss_text() -> String {
    let mib = |b: u64| b as f64 / 1048576.0;
    format!(
        "{:.0} MiB (anonymous {:.0}, file-backed {:.0})",
        mib(rss_bytes()),
        mib(status_bytes("RssAnon")),
        mib(status_bytes("RssFile"))
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.floor {
        floor();
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn open(args: &Args) -> anyhow::Result<Database> {
    let db = match (&args.data_dir, &args.database_url) {
        (Some(dir), None) => Database::open_data_dir(dir).await?,
        (None, Some(url)) => Database::connect_url(url).await?,
        _ => bail!("give --data-dir or --database-url"),
    };
    db.migrate().await.context("cannot migrate")?;
    Ok(db)
}

async fn seed(db: &Database, args: &Args) -> anyhow::Result<()> {
    let (tenant_slug, user_email) =
        (args.tenant.as_deref().unwrap_or_default(), args.user.as_deref().unwrap_or_default());
    let slug = TenantSlug::parse(tenant_slug).map_err(anyhow::Error::msg)?;
    let Some(tenant) = db.tenants().by_slug(&slug).await? else { bail!("no tenant `{tenant_slug}`") };
    let email = Email::parse(user_email).map_err(|e| anyhow::anyhow!("`{}` is not an email address", e.0))?;
    let Some(user) = db.users().by_email(tenant.policy.id, &email).await? else { bail!("no user {user_email}") };
    let ranges = IpRanges::parse(&["127.0.0.0/8"]).map_err(anyhow::Error::msg)?;
    let purpose = Purpose::parse("benchmark (bench/keys.sh)").map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let workers = if args.database_url.is_some() { 4 } else { 1 };
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (db, next, ranges, purpose, count) =
            (db.clone(), next.clone(), ranges.clone(), purpose.clone(), args.count);
        let (tenant_id, user_id) = (tenant.policy.id, user.id);
        tasks.push(tokio::spawn(async move {
            loop {
                let from = next.fetch_add(10_000, Ordering::Relaxed);
                if from >= count {
                    return anyhow::Ok(());
                }
                let batch: Vec<NewKey> = (from..(from + 10_000).min(count))
                    .map(|i| {
                        let secret = ApiKeySecret::parse(&key(i)).expect("a well-formed key");
                        NewKey {
                            tenant_id,
                            user_id,
                            created_by: None,
                            purpose: purpose.clone(),
                            digest: secret.digest(),
                            display: secret.display_form(),
                            ip_ranges: ranges.clone(),
                            scopes: None,
                            units: None,
                            expires_at: None,
                            rolled_from: None,
                            rate_limit_per_minute: None,
                        }
                    })
                    .collect();
                db.keys().insert_many_unaudited(&batch).await?;
                if (from / 10_000) % 50 == 0 {
                    eprintln!("bench_keys: {from} keys inserted ({:.0} s)", started.elapsed().as_secs_f64());
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    eprintln!("bench_keys: {} keys inserted in {:.0} s", args.count, started.elapsed().as_secs_f64());
    Ok(())
}

async fn verify(keygate: &Keygate, key: &str) -> bool {
    keygate
        .verify(VerifyRequest {
            credential: Credential::Key(key),
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            unit: Some(UnitId(1)),
            required: None,
        })
        .await
        .is_ok()
}

/// Key choices drawn ahead per task: the draws and the keys' texts are made before the clock
/// starts, so that the figure is keygate's verification, not the benchmark's key generation.
const DRAWS: usize = 1 << 16;

/// Verifications per second of [`TASKS`] tasks for `seconds`, each going round its own [`DRAWS`] keys
/// chosen with `choose`. `warm`: every drawn key is verified once before the clock starts, so the
/// run measures keys the cache holds (a hot path); otherwise the first pass reads the database.
/// Also returns the key reads (cache misses) made while the clock ran, and the CPUs the process
/// kept busy meanwhile (2.0: both cores all the time; less: its threads waited).
async fn throughput(
    keygate: &Keygate,
    seconds: u64,
    warm: bool,
    choose: fn(&mut u64) -> u64,
) -> anyhow::Result<(f64, u64, f64)> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Every task's draws are made and warmed before any task starts: a task started while the
    // others still warm up would count calls made before the clock.
    let mut draws = Vec::new();
    for t in 0..TASKS.load(Ordering::Relaxed) {
        let mut state = mix(t + 1);
        let texts: Vec<String> = (0..DRAWS).map(|_| key(choose(&mut state))).collect();
        if warm {
            for text in &texts {
                anyhow::ensure!(verify(keygate, text).await, "warm-up key {text} refused");
            }
        }
        draws.push(texts);
    }
    let go = Arc::new(tokio::sync::Barrier::new(draws.len() + 1));
    let mut tasks = Vec::new();
    for texts in draws {
        let (keygate, done, stop, go) = (keygate.clone(), done.clone(), stop.clone(), go.clone());
        tasks.push(tokio::spawn(async move {
            go.wait().await;
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let text = &texts[n % DRAWS];
                if !verify(&keygate, text).await {
                    return Err(anyhow::anyhow!("key {text} was refused"));
                }
                n += 1;
                if n.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
            done.fetch_add(n as u64, Ordering::Relaxed);
            Ok(())
        }));
    }
    go.wait().await;
    let key_reads = || keygate.cache_loads()[0].1;
    let (started, reads_before, ticks_before) = (Instant::now(), key_reads(), cpu_ticks());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpus = (cpu_ticks() - ticks_before) as f64 / 100.0 / elapsed;
    Ok((done.load(Ordering::Relaxed) as f64 / elapsed, key_reads() - reads_before, cpus))
}

/// CPU time this process has used, in clock ticks (1/100 s).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
    fields.get(11).zip(fields.get(12)).map_or(0, |(u, s)| u.parse().unwrap_or(0) + s.parse().unwrap_or(0))
}

/// Waits until the process idles (under 5 % of a CPU over a second), at most 90 s: the
/// write-behind of the uses a phase made (keygate writes a key's first use within seconds) is
/// over, and does not take CPU from the next measurement. Returns the seconds waited.
async fn settle() -> f64 {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(90) {
        let before = cpu_ticks();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if cpu_ticks() - before <= 5 {
            break;
        }
    }
    started.elapsed().as_secs_f64()
}

/// Turns of one key and Zipf over the cached keys in the warm measurement.
const WARM_TURNS: usize = 5;

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

static KEYS: AtomicU64 = AtomicU64::new(0);
static CACHED: AtomicU64 = AtomicU64::new(0);

fn uniform01(state: &mut u64) -> f64 {
    *state = mix(*state);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Rank `k` of `n` with P(k) ∝ 1/k (continuous approximation), spread over the key numbers.
fn zipf(state: &mut u64, n: u64) -> u64 {
    let rank = ((n as f64 + 1.0).powf(uniform01(state)) - 1.0) as u64;
    rank.min(n - 1).wrapping_mul(2_654_435_761) % n
}

async fn run(args: Args) -> anyhow::Result<()> {
    let db = open(&args).await?;
    if args.seed {
        seed(&db, &args).await?;
    }
    KEYS.store(args.count, Ordering::Relaxed);
    TASKS.store(args.tasks.max(1), Ordering::Relaxed);
    let config = ServiceConfig::default();
    let capacity = config.key_cache_capacity as u64;
    CACHED.store(capacity.min(args.count), Ordering::Relaxed);
    let keygate = Keygate::new(db, config);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let background = keygate.spawn_background(stopped);
    for i in 0..100 {
        anyhow::ensure!(verify(&keygate, &key(i)).await, "warm-up key {i} refused");
    }
    let rss_start = rss_bytes();
    let begun = Instant::now();

    // 1. Cold: distinct keys, each once, timed one after another.
    let mut times = Vec::with_capacity(args.cold as usize);
    let mut state = 7;
    for _ in 0..args.cold {
        let i = 100 + (uniform01(&mut state) * (args.count - 100) as f64) as u64;
        let text = key(i);
        let t = Instant::now();
        anyhow::ensure!(verify(&keygate, &text).await, "cold key {i} refused");
        times.push(t.elapsed());
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)].as_secs_f64() * 1e6;
    let (entries, _, _) = keygate.key_cache();
    let (rss_cold, anon_cold) = (rss_bytes(), status_bytes("RssAnon"));
    println!(
        "RESULT cold verifications={} p50_us={:.0} p99_us={:.0} p999_us={:.0} ({entries} keys cached; RSS {}, \
         {:.0} MiB more than after the warm-up)",
        times.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        rss_text(),
        rss_cold.saturating_sub(rss_start) as f64 / 1048576.0
    );

    // 2. The cache filled to its capacity (and past it: evictions), then RSS.
    let fill = (capacity + capacity / 10).min(args.count);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (keygate, next) = (keygate.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= fill {
                    return;
                }
                let _ = verify(&keygate, &key(i)).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let (filled, capacity, evictions) = keygate.key_cache();
    // Anonymous memory only: the cached keys live on the heap; the database pages SQLite maps
    // are file-backed. SQLite's own page caches (anonymous, at most 32 MiB per connection) were
    // mostly filled by the cold run's reads all over the database.
    let per_key =
        status_bytes("RssAnon").saturating_sub(anon_cold) as f64 / filled.saturating_sub(entries).max(1) as f64;
    println!(
        "RESULT filled with {fill} keys in {:.0} s: {filled} cached (capacity {capacity}), {evictions} evicted; RSS {}; \
         memory per cached key ~{per_key:.0} bytes",
        started.elapsed().as_secs_f64(),
        rss_text()
    );

    let settled = settle().await;
    eprintln!("bench_keys: the write-behind of the fill's uses took {settled:.0} s");

    // 3. Warm throughput, 8 tasks (`--tasks`) on the runtime's workers. One key and a Zipf choice over the
    // keys the cache holds are measured in turns, WARM_TURNS times: this machine's speed drifts
    // by 10–20 % over tens of seconds, and the ratio of two runs seconds apart cancels most of
    // that. The figure is the median of the turns' ratios; each run's key reads (cache misses)
    // are counted, so a ratio that includes database reads says so.
    let (mut ones, mut zipfs, mut ratios, mut zipf_misses) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..WARM_TURNS {
        let (one, _, one_cpus) = throughput(&keygate, args.seconds, true, |_| 0).await?;
        let (zipf, misses, zipf_cpus) =
            throughput(&keygate, args.seconds, true, |s| zipf(s, CACHED.load(Ordering::Relaxed))).await?;
        eprintln!(
            "bench_keys: turn {}: one key {one:.0}/s ({one_cpus:.2} CPUs busy), Zipf {zipf:.0}/s ({misses} key reads, \
             {zipf_cpus:.2} CPUs busy), {:.0} s after the start",
            ones.len() + 1,
            begun.elapsed().as_secs_f64()
        );
        ones.push(one);
        zipfs.push(zipf);
        ratios.push(zipf / one);
        zipf_misses.push(misses);
    }
    let (one, zipf_cached, zipf_ratio) = (median(&ones), median(&zipfs), median(&ratios));
    let (zipf_all, all_misses, _) =
        throughput(&keygate, args.seconds, false, |s| zipf(s, KEYS.load(Ordering::Relaxed))).await?;
    let (uniform, uniform_misses, _) =
        throughput(&keygate, args.seconds, false, |s| (uniform01(s) * KEYS.load(Ordering::Relaxed) as f64) as u64)
            .await?;
    let (entries, _, evictions) = keygate.key_cache();
    println!(
        "RESULT warm verifications/s (median of {WARM_TURNS} turns): one key {one:.0}; Zipf over the {} keys the cache \
         holds {zipf_cached:.0} ({zipf_ratio:.2} of one key; turns {}; key reads in its timed runs {zipf_misses:?}); \
         Zipf over all {} keys {zipf_all:.0} ({:.2}, {all_misses} key reads); uniform over all {uniform:.0} ({:.2}, \
         {uniform_misses} key reads); {entries} cached, {evictions} evicted; RSS {}",
        CACHED.load(Ordering::Relaxed),
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" "),
        args.count,
        zipf_all / one,
        uniform / one,
        rss_text()
    );
    if let Some(path) = &args.draws {
        let mut state = 1;
        let texts: Vec<String> =
            (0..ZIPF_DRAWS).map(|_| key(zipf(&mut state, CACHED.load(Ordering::Relaxed)))).collect();
        write_lines(path, &texts)?;
    }
    if let Some(path) = &args.cached_keys {
        let texts: Vec<String> = (0..CACHED.load(Ordering::Relaxed)).map(key).collect();
        write_lines(path, &texts)?;
    }
    let _ = stop.send(true);
    let _ = background.await;
    keygate.close().await;
    Ok(())
}

/// Writes one text per line.
fn write_lines(path: &std::path::Path, texts: &[String]) -> anyhow::Result<()> {
    std::fs::write(path, texts.join("\n") + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// Keys drawn for `--draws`: as many as four tasks of the in-process measurement go round.
const ZIPF_DRAWS: usize = 4 * DRAWS;

/// What a Zipf choice over as many keys as the default cache holds costs more than one key on
/// this machine, for the least a cached verification could touch: a single-threaded loop that
/// SHA-256es a key's text, looks the digest up in a table whose slot holds the digest and 32 bytes
/// of state (64 bytes, one cache line, inline: no pointer, lock or atomic behind it), and writes
/// the state. The difference is memory that the CPU's caches do not hold for the tail of the
/// distribution. A verification reads more per key than that (the validity rule's fields, the IP
/// ranges, the rate bucket, the usage), so it can only pay more; and a ratio of 0.9 leaves it a
/// ninth of its one-key cost for the difference.
fn floor() {
    let n = ServiceConfig::default().key_cache_capacity as u64;
    let mut table: HashMap<[u8; 32], [u64; 4], BuildHasherDefault<FirstBytes>> = HashMap::default();
    for i in 0..n {
        table.insert(*KeyDigest::of(&key(i)).as_bytes(), [i, 1, 3, 0]);
    }
    let one: Vec<String> = (0..DRAWS).map(|_| key(0)).collect();
    let mut state = 1;
    let drawn: Vec<String> = (0..DRAWS).map(|_| key(zipf(&mut state, n))).collect();
    let mut per_call = |texts: &[String]| {
        let started = Instant::now();
        let mut calls = 0usize;
        while started.elapsed() < Duration::from_secs(2) {
            for _ in 0..4096 {
                let text = &texts[calls % DRAWS];
                let slot = table.get_mut(KeyDigest::of(text).as_bytes()).expect("every drawn key is in the table");
                slot[3] = std::hint::black_box(slot[3] ^ slot[0] ^ slot[1] ^ slot[2]);
                calls += 1;
            }
        }
        started.elapsed().as_secs_f64() * 1e9 / calls as f64
    };
    let mut extras = Vec::new();
    for turn in 1..=WARM_TURNS {
        let (one_ns, zipf_ns) = (per_call(&one), per_call(&drawn));
        eprintln!("bench_keys: floor turn {turn}: one key {one_ns:.0} ns a call, Zipf {zipf_ns:.0} ns");
        extras.push(zipf_ns - one_ns);
    }
    println!(
        "RESULT floor: with the least state a verification could touch (a 64-byte table slot per key: SHA-256, \
         lookup, one write), a Zipf choice over {n} keys costs {:.0} ns a call more than one key on this machine \
         (median of {WARM_TURNS} turns)",
        median(&extras)
    );
}

/// Hashes a digest to its first eight bytes, as keygate's caches do.
#[derive(Default)]
struct FirstBytes(u64);

impl std::hash::Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0; 8];
        first.copy_from_slice(&bytes[..8.min(bytes.len())]);
        self.0 = u64::from_le_bytes(first);
    }
}
